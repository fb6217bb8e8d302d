//! `verify_batch` must answer exactly what one-by-one verification answers, for every
//! algorithm and for mixed batches, on the inline path and on the pool.

use std::sync::OnceLock;

use crypto_parallel::{
    BATCH_CHUNK_LEN, BatchVerifier, PrivateKey, PublicKey, Signature, SignatureAlgorithm,
    VerifyItem,
};
use proptest::prelude::*;

/// A few keys per algorithm, made once (key generation is not what is tested).
fn keys() -> &'static Vec<(PrivateKey, PublicKey)> {
    static KEYS: OnceLock<Vec<(PrivateKey, PublicKey)>> = OnceLock::new();
    KEYS.get_or_init(|| {
        SignatureAlgorithm::ALL
            .into_iter()
            .flat_map(|algorithm| (0..3).map(move |_| PrivateKey::generate(algorithm)))
            .map(|private_key| {
                let public_key = private_key.public_key();
                (private_key, public_key)
            })
            .collect()
    })
}

/// How one item is (or is not) broken.
#[derive(Debug, Clone, Copy)]
enum Fault {
    None,
    FlipMessageBit(u8),
    FlipSignatureByte(u8),
    /// Verify with another key of the same algorithm.
    WrongKey,
    /// Pair the signature with a key of another algorithm.
    ForeignKey,
}

/// `foreign_weight` 0 keeps every item within its key's algorithm.
fn fault(foreign_weight: u32) -> impl Strategy<Value = Fault> {
    prop_oneof![
        6 => Just(Fault::None),
        1 => any::<u8>().prop_map(Fault::FlipMessageBit),
        1 => (0u8..64).prop_map(Fault::FlipSignatureByte),
        1 => Just(Fault::WrongKey),
        foreign_weight => Just(Fault::ForeignKey),
    ]
}

#[derive(Debug)]
struct Case {
    public_key: PublicKey,
    message: Vec<u8>,
    signature: Signature,
}

fn build(key_index: usize, message: Vec<u8>, fault: Fault) -> Case {
    let all = keys();
    let (private_key, public_key) = &all[key_index % all.len()];
    let signature = private_key.sign(&message);
    let mut case = Case { public_key: public_key.clone(), message, signature };
    match fault {
        Fault::None => {}
        Fault::FlipMessageBit(bit) => {
            if case.message.is_empty() {
                case.message.push(0);
            } else {
                let len = case.message.len();
                case.message[(bit as usize / 8) % len] ^= 1 << (bit % 8);
            }
        }
        Fault::FlipSignatureByte(position) => {
            let mut raw = case.signature.as_bytes().to_vec();
            raw[position as usize] ^= 0x40;
            // An out-of-range scalar cannot even be constructed; keep the original then
            // and break the message instead, so the item is still invalid.
            match Signature::from_raw(case.signature.algorithm(), &raw) {
                Ok(tampered) => case.signature = tampered,
                Err(_) => case.message.push(1),
            }
        }
        Fault::WrongKey => {
            let algorithm = case.public_key.algorithm();
            case.public_key = all
                .iter()
                .map(|(_, public_key)| public_key)
                .find(|other| other.algorithm() == algorithm && **other != case.public_key)
                .expect("three keys per algorithm")
                .clone();
        }
        Fault::ForeignKey => {
            let algorithm = case.public_key.algorithm();
            case.public_key = all
                .iter()
                .map(|(_, public_key)| public_key)
                .find(|other| other.algorithm() != algorithm)
                .expect("several algorithms")
                .clone();
        }
    }
    case
}

fn check_against_one_by_one(cases: &[Case], verifier: &BatchVerifier) -> Result<(), TestCaseError> {
    let items: Vec<VerifyItem<'_>> = cases
        .iter()
        .map(|case| VerifyItem {
            public_key: &case.public_key,
            message: &case.message,
            signature: &case.signature,
        })
        .collect();
    let batch = verifier.verify_batch(&items);
    prop_assert_eq!(batch.len(), cases.len());
    for (index, (case, verdict)) in cases.iter().zip(&batch).enumerate() {
        let single = case.public_key.verify(&case.message, &case.signature);
        prop_assert_eq!(verdict, &single, "item {}", index);
    }
    Ok(())
}

fn cases(
    key_choice: impl Strategy<Value = usize>,
    max_len: usize,
    foreign_weight: u32,
) -> impl Strategy<Value = Vec<Case>> {
    prop::collection::vec(
        (key_choice, prop::collection::vec(any::<u8>(), 0..80), fault(foreign_weight)),
        0..max_len,
    )
    .prop_map(|raw| {
        raw.into_iter().map(|(key, message, fault)| build(key, message, fault)).collect()
    })
}

fn two_threads() -> &'static BatchVerifier {
    static VERIFIER: OnceLock<BatchVerifier> = OnceLock::new();
    VERIFIER.get_or_init(|| BatchVerifier::new(2))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Mixed algorithms, sizes crossing the inline limit so both paths run.
    #[test]
    fn mixed_batches_equal_one_by_one(cases in cases(0usize..9, 3 * BATCH_CHUNK_LEN, 1)) {
        check_against_one_by_one(&cases, two_threads())?;
    }

    /// One algorithm per batch (keys are laid out 3 per algorithm): the providers' own
    /// batch paths, Ed25519's batch equation among them.
    #[test]
    fn single_algorithm_batches_equal_one_by_one(
        cases in (0usize..3).prop_flat_map(|a| cases(a * 3..a * 3 + 3, 2 * BATCH_CHUNK_LEN + 5, 0)),
    ) {
        check_against_one_by_one(&cases, two_threads())?;
    }
}

#[test]
fn one_bad_signature_rejects_exactly_that_one() {
    for algorithm in SignatureAlgorithm::ALL {
        let private_key = PrivateKey::generate(algorithm);
        let public_key = private_key.public_key();
        let messages: Vec<Vec<u8>> =
            (0..(3 * BATCH_CHUNK_LEN as u32)).map(|i| i.to_be_bytes().to_vec()).collect();
        let mut signatures: Vec<Signature> =
            messages.iter().map(|message| private_key.sign(message)).collect();
        let bad = 100;
        signatures[bad] = private_key.sign(b"something else");
        let items: Vec<VerifyItem<'_>> = messages
            .iter()
            .zip(&signatures)
            .map(|(message, signature)| VerifyItem { public_key: &public_key, message, signature })
            .collect();
        let results = crypto_parallel::verify_batch(&items);
        for (index, result) in results.iter().enumerate() {
            assert_eq!(result.is_ok(), index != bad, "{algorithm} item {index}: {result:?}");
        }
    }
}

#[test]
fn empty_batch_is_empty() {
    assert!(crypto_parallel::verify_batch(&[]).is_empty());
}
