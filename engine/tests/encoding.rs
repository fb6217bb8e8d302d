//! Canonical encoding: fixed vectors (a changed byte layout fails here), round trips,
//! and garbage input giving typed errors.

mod common;

use common::key;
use crypto_parallel::{HashAlgorithm, SignatureAlgorithm};
use engine::model::*;
use engine::proof::{StateProof, TxProof};
use proptest::prelude::*;

fn fixed_transaction() -> Transaction {
    // Ed25519 signatures are deterministic, so the whole encoding is fixed.
    let signer = key(9, SignatureAlgorithm::Ed25519);
    let content = TransactionContent {
        ledger_id: LedgerId([0xab; 32]),
        nonce: 42,
        timestamp_ms: 1_764_000_000_000,
        operations: vec![
            Operation::RegisterDataAccount { name: "milk".into() },
            Operation::WriteKv {
                account: "milk".into(),
                key: b"LOT-1".to_vec(),
                value: b"{}".to_vec(),
                expected_version: -1,
            },
            Operation::RegisterUser {
                public_key: key(10, SignatureAlgorithm::Ed25519).public_key(),
            },
        ],
    };
    Transaction::sign(content, &[&signer]).unwrap()
}

fn fixed_header() -> BlockHeader {
    BlockHeader {
        ledger_id: LedgerId([1; 32]),
        height: 0x0102030405060708,
        previous_hash: [2; 32],
        tx_root: [3; 32],
        state_root: [4; 32],
        timestamp_ms: 1_764_000_000_000,
        proposer: Address([5; 32]),
    }
}

#[test]
fn transaction_content_layout_is_fixed() {
    let content = fixed_transaction().content.encode();
    let expected = concat!(
        "01",                                                               // format version
        "abababababababababababababababababababababababababababababababab", // ledger id
        "000000000000002a",                                                 // nonce
        "0000019ab697e800",                                                 // timestamp_ms
        "00000003",                                                         // operation count
        "02",
        "0004",
        "6d696c6b", // RegisterDataAccount "milk"
        "03",
        "0004",
        "6d696c6b",
        "0005",
        "4c4f542d31",
        "00000002",
        "7b7d",
        "ffffffffffffffff", // WriteKv
        "01",
        "0022",
        "0202", // RegisterUser, key length, Ed25519 code
    );
    assert_eq!(hex::encode(&content[..expected.len() / 2]), expected);
    assert_eq!(content.len(), expected.len() / 2 + 32, "ends with the 32-byte Ed25519 key");
}

#[test]
fn transaction_hash_and_signature_are_fixed() {
    let transaction = fixed_transaction();
    assert_eq!(
        hex::encode(transaction.hash(HashAlgorithm::Sm3)),
        "bcd16ab6efc78503450fc2f1c7b2dc87feb8200bebc6578000bffe979754e7d9"
    );
    assert_eq!(
        hex::encode(transaction.hash(HashAlgorithm::Sha256)),
        "639be1d98b7e3253c6f45b6e0ac76247151c82537cfb30eaf2f3f659f3443448"
    );
    assert_eq!(
        hex::encode(transaction.encode()),
        "01abababababababababababababababababababababababababababababababab000000000000002a0000019ab697e800000000030200046d696c6b0300046d696c6b00054c4f542d31000000027b7dffffffffffffffff0100220202be5c0d1677121a44c4d70fb2bd3ce55a857afe47e8cafc78b527eb6cb8cb37d4000000010022020244584f59255d9bd7a681ce66a1ca7a3843d7ce3ab61c66d8850d746a8366d0750042020299f4cc0095230a10d9b1409b53b57c6e2f4627f18c0a8ba5dd7118ca572797c4cc721845195f69747ce0bef4fdbf3699b21dcb276114b4419296132a82088e03"
    );
}

#[test]
fn block_header_layout_is_fixed() {
    let header = fixed_header();
    let bytes = header.encode();
    assert_eq!(bytes.len(), BlockHeader::ENCODED_LEN);
    let expected = format!(
        "01{}{}{}{}{}{}{}",
        "01".repeat(32),
        "0102030405060708",
        "02".repeat(32),
        "03".repeat(32),
        "04".repeat(32),
        "0000019ab697e800",
        "05".repeat(32)
    );
    assert_eq!(hex::encode(&bytes), expected);
    assert_eq!(BlockHeader::decode(&bytes).unwrap(), header);
    assert_eq!(
        hex::encode(header.hash(HashAlgorithm::Sm3)),
        "0d5ef6404e5a0df3d86e49ae6e76eaecbdb98a37cadd38a77dc0724ff791204a"
    );
}

#[test]
fn round_trips() {
    let transaction = fixed_transaction();
    assert_eq!(Transaction::decode(&transaction.encode()).unwrap(), transaction);
    let settings = common::settings(&key(1, SignatureAlgorithm::Sm2), HashAlgorithm::Sm3);
    assert_eq!(LedgerSettings::decode(&settings.encode()).unwrap(), settings);
}

#[test]
fn invalid_but_well_framed_input_is_refused() {
    let transaction = fixed_transaction();
    let bytes = transaction.encode();
    // Trailing byte.
    let mut trailing = bytes.clone();
    trailing.push(0);
    assert!(Transaction::decode(&trailing).is_err());
    // Unknown format version.
    let mut version = bytes.clone();
    version[0] = 2;
    assert!(matches!(
        Transaction::decode(&version),
        Err(engine::codec::DecodeError::UnknownTag { .. })
    ));
    // Expected version below -1.
    let mut content = transaction.content.clone();
    content.operations = vec![Operation::WriteKv {
        account: "a".into(),
        key: vec![],
        value: vec![],
        expected_version: -2,
    }];
    assert!(content.check().is_err());
    // Names with spaces or empty.
    assert!(check_name("has space").is_err());
    assert!(check_name("").is_err());
    assert!(check_name(&"x".repeat(129)).is_err());
    // An oversized transaction is refused before parsing.
    let huge = vec![0u8; engine::limits::TX_ENCODED_LEN_MAX + 1];
    assert!(matches!(Transaction::decode(&huge), Err(engine::codec::DecodeError::TooLong { .. })));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    /// Garbage never panics a decoder.
    #[test]
    fn decoders_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let _ = Transaction::decode(&bytes);
        let _ = BlockHeader::decode(&bytes);
        let _ = LedgerSettings::decode(&bytes);
        let _ = TxProof::decode(&bytes);
        let _ = StateProof::decode(&bytes);
    }

    /// Mutations of a valid transaction decode to an error or to a transaction that
    /// re-encodes to exactly the same bytes (one encoding per value).
    #[test]
    fn mutated_transactions_are_rejected_or_canonical(position in 0usize..400, byte in any::<u8>()) {
        let mut bytes = fixed_transaction().encode();
        let position = position % bytes.len();
        bytes[position] = byte;
        if let Ok(decoded) = Transaction::decode(&bytes) {
            prop_assert_eq!(decoded.encode(), bytes);
        }
    }

    #[test]
    fn data_writes_round_trip(
        key_bytes in prop::collection::vec(any::<u8>(), 0..64),
        value in prop::collection::vec(any::<u8>(), 0..256),
        expected_version in -1i64..1000,
        nonce in any::<u64>(),
    ) {
        let signer = key(9, SignatureAlgorithm::Ed25519);
        let content = TransactionContent {
            ledger_id: LedgerId([7; 32]),
            nonce,
            timestamp_ms: 0,
            operations: vec![Operation::WriteKv { account: "acct".into(), key: key_bytes, value, expected_version }],
        };
        let transaction = Transaction::sign(content, &[&signer]).unwrap();
        prop_assert_eq!(Transaction::decode(&transaction.encode()).unwrap(), transaction);
    }
}
