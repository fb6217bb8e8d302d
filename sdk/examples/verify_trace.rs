//! A consumer-side check of a product's trace: fetch `GET /api/v1/trace/{code}` from a
//! gateway and verify every event, recall and lineage link offline; print the timeline
//! and the block hashes to compare with a node you trust.
//!
//! ```sh
//! cargo run -p sdk --example verify_trace -- http://127.0.0.1:8080 \
//!     'https://id.gs1.org/01/10614141073464/21/2017'
//! ```

use sdk::Client;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(url), Some(code)) = (args.next(), args.next()) else {
        eprintln!("usage: verify_trace GATEWAY_URL TRACE_CODE");
        std::process::exit(2);
    };
    let client = Client::new(&url)?;
    let trace = client.trace(&code).await?;
    let verified = sdk::trace::verify(&trace)?;
    println!("{}: {} events, {} recalls", trace.code, verified.events, verified.recalls);
    for recall in &trace.recalls {
        println!("  RECALLED: GTIN {} lot {}: {}", recall.gtin, recall.lot, recall.reason);
    }
    for event in &trace.events {
        println!(
            "  {}  {:<16} {:<14} on {} at height {}{}{}",
            event.event_time,
            event.biz_step.as_deref().unwrap_or(&event.event_type),
            event.action.as_deref().unwrap_or(""),
            event.ledger,
            event.height,
            event.via.as_deref().map(|v| format!(" (inside {v})")).unwrap_or_default(),
            if event.recall_alert { "  [after recall]" } else { "" },
        );
    }
    println!("lineage links checked: {}", verified.lineage_links);
    println!("blocks the proofs end at (compare with a node you trust):");
    for ((ledger, height), hash) in &verified.blocks {
        println!("  ledger {}… height {height}: {}", &ledger[..12], hex::encode(hash));
    }
    Ok(())
}
