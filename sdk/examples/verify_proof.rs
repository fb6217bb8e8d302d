//! Verifies a saved proof document offline (no node): what an auditor or a consumer app
//! runs on a proof it was handed.
//!
//! ```sh
//! cargo run -p sdk --example verify_proof -- proof.json [TRUSTED_BLOCK_HASH]
//! ```

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next() else {
        eprintln!("usage: verify_proof PROOF.json [TRUSTED_BLOCK_HASH]");
        std::process::exit(2);
    };
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        eprintln!("{path}: {e}");
        std::process::exit(2)
    });
    let document: sdk::wire::ProofDocument = serde_json::from_str(&text).unwrap_or_else(|e| {
        eprintln!("{path}: not a proof document: {e}");
        std::process::exit(2)
    });
    match sdk::proof::verify(&document) {
        Ok(verified) => {
            let hash = hex::encode(verified.block_hash);
            if let Some(trusted) = args.next()
                && trusted.to_ascii_lowercase() != hash
            {
                eprintln!("INVALID: the proof ends at block {hash}, not the trusted {trusted}");
                std::process::exit(4);
            }
            println!(
                "VALID: {} proof, ledger {}, block {} ({hash})",
                document.kind, document.ledger_id, verified.height
            );
        }
        Err(error) => {
            eprintln!("INVALID: {error}");
            std::process::exit(4);
        }
    }
}
