//! Every engine decoder of untrusted bytes: must return a typed error or a value that
//! re-encodes to the same bytes; never panic.
#![no_main]

use engine::model::{BlockHeader, LedgerSettings, Transaction};
use engine::proof::{StateProof, TxProof};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(transaction) = Transaction::decode(data) {
        assert_eq!(transaction.encode(), data, "one encoding per transaction");
    }
    if let Ok(header) = BlockHeader::decode(data) {
        assert_eq!(header.encode(), data);
    }
    if let Ok(settings) = LedgerSettings::decode(data) {
        assert_eq!(settings.encode(), data);
    }
    if let Ok(proof) = TxProof::decode(data) {
        assert_eq!(proof.encode(), data);
        let _ = engine::proof::verify_tx_proof(crypto_parallel::HashAlgorithm::Sm3, &proof);
    }
    if let Ok(proof) = StateProof::decode(data) {
        let _ = engine::proof::verify_state_proof(crypto_parallel::HashAlgorithm::Sm3, &proof);
    }
});
