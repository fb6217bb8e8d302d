//! Commit certificates: a certificate verifies only for its block, at its height, signed
//! by more than 2/3 of the participants; short, foreign, tampered, duplicated or garbage
//! certificates are refused with their reason.

use std::collections::BTreeMap;

use crypto_parallel::{PrivateKey, PublicKey, SignatureAlgorithm};
use engine::certificate::{Certificate, CertificateError, VoteKind, vote_sign_bytes};
use engine::model::LedgerId;

const LEDGER: LedgerId = LedgerId([3; 32]);
const BLOCK: [u8; 32] = [9; 32];

fn keys() -> Vec<PrivateKey> {
    (0..4).map(|_| PrivateKey::generate(SignatureAlgorithm::Sm2)).collect()
}

fn participants(keys: &[PrivateKey]) -> BTreeMap<u64, PublicKey> {
    keys.iter().enumerate().map(|(i, k)| (i as u64 + 1, k.public_key())).collect()
}

fn certificate(keys: &[PrivateKey], signers: &[u64]) -> Certificate {
    let message = vote_sign_bytes(VoteKind::Precommit, &LEDGER, 5, 2, Some(&BLOCK));
    Certificate {
        height: 5,
        round: 2,
        block_hash: BLOCK,
        signatures: signers.iter().map(|m| (*m, keys[*m as usize - 1].sign(&message))).collect(),
    }
}

#[test]
fn a_quorum_certificate_verifies_and_round_trips() {
    let keys = keys();
    let certificate = certificate(&keys, &[1, 2, 4]);
    let decoded = Certificate::decode(&certificate.encode()).unwrap();
    assert_eq!(decoded, certificate);
    decoded.verify(&LEDGER, 5, &BLOCK, &participants(&keys)).unwrap();
}

#[test]
fn short_foreign_and_mismatched_certificates_are_refused() {
    let keys = keys();
    let all = participants(&keys);
    let short = certificate(&keys, &[1, 2]);
    assert!(matches!(
        short.verify(&LEDGER, 5, &BLOCK, &all),
        Err(CertificateError::NoQuorum { signed: 2, participants: 4 })
    ));
    // Signed by a key that is not a participant at this height.
    let mut fewer = all.clone();
    fewer.remove(&4);
    assert!(matches!(
        certificate(&keys, &[1, 2, 4]).verify(&LEDGER, 5, &BLOCK, &fewer),
        Err(CertificateError::NotAParticipant(4))
    ));
    let outsider = PrivateKey::generate(SignatureAlgorithm::Sm2);
    let mut swapped = all.clone();
    swapped.insert(2, outsider.public_key());
    assert!(matches!(
        certificate(&keys, &[1, 2, 4]).verify(&LEDGER, 5, &BLOCK, &swapped),
        Err(CertificateError::BadSignature(2))
    ));
    let good = certificate(&keys, &[1, 2, 3]);
    assert!(matches!(
        good.verify(&LEDGER, 5, &[8; 32], &all),
        Err(CertificateError::WrongBlock { .. })
    ));
    assert!(matches!(
        good.verify(&LEDGER, 6, &BLOCK, &all),
        Err(CertificateError::WrongHeight { .. })
    ));
    // The same signatures under another block hash or ledger do not verify.
    let mut moved = good.clone();
    moved.block_hash = [8; 32];
    assert!(matches!(
        moved.verify(&LEDGER, 5, &[8; 32], &all),
        Err(CertificateError::BadSignature(1))
    ));
    assert!(matches!(
        good.verify(&LedgerId([4; 32]), 5, &BLOCK, &all),
        Err(CertificateError::BadSignature(1))
    ));
}

#[test]
fn duplicated_signers_and_garbage_are_malformed() {
    let keys = keys();
    let mut doubled = certificate(&keys, &[1, 2]);
    doubled.signatures.push(doubled.signatures[1].clone());
    assert!(matches!(
        Certificate::decode(&doubled.encode()),
        Err(CertificateError::NotCanonical(2))
    ));
    let bytes = certificate(&keys, &[1, 2, 3]).encode();
    for cut in [0, 1, 20, bytes.len() - 1] {
        assert!(Certificate::decode(&bytes[..cut]).is_err(), "truncated at {cut}");
    }
    let mut trailing = bytes.clone();
    trailing.push(0);
    assert!(Certificate::decode(&trailing).is_err());
    let mut version = bytes;
    version[0] = 9;
    assert!(Certificate::decode(&version).is_err());
}
