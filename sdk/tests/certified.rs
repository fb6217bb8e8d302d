//! Offline verification of `bft` blocks and proofs: a proof whose block carries a commit
//! certificate of more than 2/3 of the participants verifies; a certificate short of 2/3,
//! signed by a non-participant, over a different block hash, or missing is rejected.

use std::collections::BTreeMap;

use crypto_parallel::{HashAlgorithm, PrivateKey, PublicKey, SignatureAlgorithm};
use engine::certificate::{Certificate, VoteKind, vote_sign_bytes};
use engine::ledger::{Ledger, SignatureCheck};
use engine::model::{Address, LedgerSettings, Operation, Transaction, TransactionContent};
use engine::store::MemoryStore;
use sdk::wire::BlockView;

struct Setup {
    ledger: Ledger<MemoryStore>,
    nodes: Vec<PrivateKey>,
    tx_hash: [u8; 32],
}

fn setup() -> Setup {
    let nodes: Vec<PrivateKey> =
        (0..4).map(|_| PrivateKey::generate(SignatureAlgorithm::Sm2)).collect();
    let admin = PrivateKey::generate(SignatureAlgorithm::Sm2);
    let settings = LedgerSettings {
        name: "dairy-bft".into(),
        hash_algorithm: HashAlgorithm::Sm3,
        signature_algorithms: vec![SignatureAlgorithm::Sm2],
        consensus: "bft".into(),
        participants: nodes.iter().map(PrivateKey::public_key).collect(),
        initial_users: vec![admin.public_key()],
        regulators: Vec::new(),
        participant_quorum: 0,
        parents: Vec::new(),
        roles: Vec::new(),
        created_ms: 1_764_000_000_000,
    };
    let mut ledger = Ledger::create(MemoryStore::new(), settings).unwrap();
    let content = TransactionContent {
        ledger_id: ledger.id(),
        nonce: 1,
        timestamp_ms: 1_764_000_000_001,
        operations: vec![Operation::RegisterDataAccount { name: "trace".into() }],
    };
    let transaction = Transaction::sign(content, &[&admin]).unwrap();
    let tx_hash = transaction.content.hash(HashAlgorithm::Sm3);
    let proposer = Address::of(HashAlgorithm::Sm3, &nodes[0].public_key());
    ledger
        .append_block(vec![transaction], SignatureCheck::Verify, 1_764_000_000_002, proposer)
        .unwrap();
    Setup { ledger, nodes, tx_hash }
}

fn participants(nodes: &[PrivateKey]) -> BTreeMap<u64, PublicKey> {
    nodes.iter().enumerate().map(|(i, k)| (i as u64 + 1, k.public_key())).collect()
}

fn certificate(setup: &Setup, signers: &[(u64, &PrivateKey)], block: [u8; 32]) -> String {
    let message = vote_sign_bytes(VoteKind::Precommit, &setup.ledger.id(), 1, 0, Some(&block));
    let certificate = Certificate {
        height: 1,
        round: 0,
        block_hash: block,
        signatures: signers.iter().map(|(m, key)| (*m, key.sign(&message))).collect(),
    };
    hex::encode(certificate.encode())
}

#[test]
fn certified_proofs_verify_and_bad_certificates_are_rejected() {
    let setup = setup();
    let participants = participants(&setup.nodes);
    let proof = setup.ledger.prove_transaction(&setup.tx_hash).unwrap().unwrap();
    let mut document = sdk::proof::tx_document(HashAlgorithm::Sm3, &proof);
    let block = setup.ledger.block(1).unwrap().unwrap();
    let n = &setup.nodes;

    // Without a certificate: the plain proof holds, the certified check refuses.
    sdk::proof::verify(&document).unwrap();
    assert!(sdk::proof::verify_certified(&document, &participants).is_err());

    document.certificate_hex =
        Some(certificate(&setup, &[(1, &n[0]), (2, &n[1]), (4, &n[3])], block.hash));
    let verified = sdk::proof::verify_certified(&document, &participants).unwrap();
    assert_eq!(verified.block_hash, block.hash);

    let cases = [
        ("short of 2/3", certificate(&setup, &[(1, &n[0]), (2, &n[1])], block.hash)),
        (
            "signed by a non-participant",
            certificate(
                &setup,
                &[(1, &n[0]), (2, &n[1]), (3, &PrivateKey::generate(SignatureAlgorithm::Sm2))],
                block.hash,
            ),
        ),
        (
            "member number outside the set",
            certificate(&setup, &[(1, &n[0]), (2, &n[1]), (5, &n[2])], block.hash),
        ),
        (
            "over a different block hash",
            certificate(&setup, &[(1, &n[0]), (2, &n[1]), (3, &n[2])], [7; 32]),
        ),
        ("garbage", "00ff".into()),
    ];
    for (what, certificate_hex) in cases {
        let mut tampered = document.clone();
        tampered.certificate_hex = Some(certificate_hex.clone());
        let error = sdk::proof::verify_certified(&tampered, &participants).unwrap_err();
        eprintln!("{what}: {error}");

        let mut view = BlockView::new(&block.header, &block.hash, block.transactions.len());
        view.certificate_hex = Some(certificate_hex);
        assert!(
            sdk::proof::verify_block_certificate(
                HashAlgorithm::Sm3,
                &setup.ledger.id(),
                &view,
                &participants
            )
            .is_err(),
            "{what}: block accepted"
        );
    }
    let mut view = BlockView::new(&block.header, &block.hash, block.transactions.len());
    view.certificate_hex = document.certificate_hex.clone();
    sdk::proof::verify_block_certificate(
        HashAlgorithm::Sm3,
        &setup.ledger.id(),
        &view,
        &participants,
    )
    .unwrap();
    // A header edited after certification no longer matches its hash.
    let mut edited = view.clone();
    edited.header_hex = edited.header_hex.replacen('0', "1", 1);
    assert!(
        sdk::proof::verify_block_certificate(
            HashAlgorithm::Sm3,
            &setup.ledger.id(),
            &edited,
            &participants
        )
        .is_err()
    );
}
