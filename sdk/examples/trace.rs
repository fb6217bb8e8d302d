//! A product's traceability history, end to end through a gateway: register a data
//! account, record three events of one trace code (each waiting for finality), read the
//! history, fetch a proof of the latest value and verify it offline.
//!
//! ```sh
//! polyledger demo --data /tmp/demo          # or any node; keep it running:
//! polyledger node --config /tmp/demo/node.toml &
//! cargo run -p sdk --example trace -- http://127.0.0.1:8080 /tmp/demo/admin.key.pem
//! ```
//! The key must be a registered user of the ledger (the demo's admin key is).

use std::time::Duration;

use sdk::{Client, LedgerId, TxBuilder};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(url), Some(key_file)) = (args.next(), args.next()) else {
        eprintln!("usage: trace GATEWAY_URL KEY.pem [LEDGER_NAME]");
        std::process::exit(2);
    };
    let wanted = args.next();
    let key = sdk::keys::read_private_key(&key_file)?;
    let client = Client::new(&url)?;
    let ledgers = client.ledgers().await?;
    let view = match &wanted {
        Some(name) => ledgers.iter().find(|l| &l.name == name).ok_or("no such ledger")?,
        None => ledgers.first().ok_or("the node hosts no ledgers")?,
    };
    let ledger = LedgerId(sdk::wire::parse_hash("id", &view.id)?);
    println!("ledger {} ({}), height {}", view.name, view.id, view.height);
    let wait = Duration::from_secs(10);

    if client.account(&ledger, "products").await?.is_none() {
        let tx = TxBuilder::new(ledger).register_data_account("products").sign(&[&key])?;
        let outcome = &client.submit_and_wait(&ledger, &[tx], wait).await?[0];
        println!("registered data account `products`: {:?}", outcome.result);
    }

    // One trace code per run; each event is the key's next version.
    let code = format!("urn:epc:id:sgtin:0614141.107346.{}", sdk::builder::now_ms());
    for (version, step) in ["commissioning", "shipping", "retail_selling"].iter().enumerate() {
        let event =
            format!("{{\"type\":\"ObjectEvent\",\"bizStep\":\"{step}\",\"epc\":\"{code}\"}}");
        let tx = TxBuilder::new(ledger)
            .write("products", &code, event, version as i64 - 1)
            .sign(&[&key])?;
        let outcome = &client.submit_and_wait(&ledger, &[tx], wait).await?[0];
        println!("{step:>15}: {} at height {:?}", outcome.status, outcome.height);
    }

    let history = client.history(&ledger, "products", code.as_bytes(), 0, 100).await?;
    for version in &history.versions {
        println!(
            "version {} (block {}): {}",
            version.version,
            version.height,
            version.value.as_deref().unwrap_or("<binary>")
        );
    }

    // The proof needs no trust in the node: verify it here, then compare the block hash
    // it ends at with one obtained independently (here: the same node's block).
    let proof = client.prove_key(&ledger, "products", code.as_bytes(), None).await?;
    let verified = sdk::proof::verify(&proof)?;
    let block = client.block(&ledger, verified.height).await?.ok_or("block vanished")?;
    assert_eq!(block.hash, hex::encode(verified.block_hash));
    println!(
        "proof verified offline: version {:?} of {code} in block {} ({})",
        proof.version, verified.height, block.hash
    );
    std::fs::write("proof.json", serde_json::to_string_pretty(&proof)?)?;
    println!("saved proof.json — check it anywhere with `polyledger proof verify proof.json`");
    Ok(())
}
