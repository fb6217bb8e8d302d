//! Differential tests against RustCrypto `sm2` (and efficient-sm2 on well-formed
//! inputs): valid signatures and single-bit flips of r, s, the message and the key.
//! POLYLEDGER_SM2_DIFF_CASES overrides the case count (default 100,000 in release, 20,000 in
//! debug builds).

use super::common::*;
use crypto_parallel::sm2_fast::{KeyCache, PrecomputedKey, PublicKey, verify_digest};
use rayon::prelude::*;

#[derive(Clone, Copy, Debug)]
enum Mutation {
    None,
    FlipR,
    FlipS,
    FlipMessage,
    FlipKey,
}

fn cases() -> usize {
    std::env::var("POLYLEDGER_SM2_DIFF_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if cfg!(debug_assertions) { 20_000 } else { 100_000 })
}

#[test]
fn differential_vs_rustcrypto_and_efficient_sm2() {
    let total = cases();
    let per_key = 20;
    let cache = KeyCache::new(64, 2);
    let counts: Vec<[usize; 5]> = (0..total.div_ceil(per_key))
        .into_par_iter()
        .map(|chunk| {
            let mut rng = Rng(0x5eed_0000 + chunk as u64);
            let signer = Signer::random(&mut rng);
            let key = PublicKey::from_sec1_uncompressed(&signer.public).expect("valid key parses");
            let pre = PrecomputedKey::new(&key);
            let mut accepted = [0usize; 5];
            for _ in 0..per_key {
                let len = rng.below(300) as usize;
                let mut message: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
                let e = key.digest(&message);
                let (mut r, mut s) = signer.sign_digest(&e);
                let mut public = signer.public;
                let mutation = match rng.below(5) {
                    0 => Mutation::None,
                    1 => Mutation::FlipR,
                    2 => Mutation::FlipS,
                    3 => Mutation::FlipMessage,
                    _ => Mutation::FlipKey,
                };
                let mut e2 = e;
                match mutation {
                    Mutation::None => {}
                    Mutation::FlipR => r[rng.below(32) as usize] ^= 1 << rng.below(8),
                    Mutation::FlipS => s[rng.below(32) as usize] ^= 1 << rng.below(8),
                    Mutation::FlipMessage => {
                        if message.is_empty() {
                            message.push(0);
                        } else {
                            let i = rng.below(message.len() as u64) as usize;
                            message[i] ^= 1 << rng.below(8);
                        }
                        e2 = key.digest(&message);
                    }
                    Mutation::FlipKey => public[rng.below(65) as usize] ^= 1 << rng.below(8),
                }
                let reference = rustcrypto_verify(&public, &e2, &r, &s);
                let ours = verify_digest(&public, &e2, &r, &s);
                assert_eq!(
                    ours, reference,
                    "{mutation:?} key {public:02x?} e {e2:02x?} r {r:02x?} s {s:02x?}"
                );
                assert_eq!(
                    cache.verify_digest(&public, &e2, &r, &s),
                    reference,
                    "cached {mutation:?}"
                );
                if !matches!(mutation, Mutation::FlipKey) {
                    assert_eq!(
                        pre.verify_digest(&e2, &r, &s),
                        reference,
                        "precomputed {mutation:?}"
                    );
                    // efficient-sm2 lacks the range checks: compare where RustCrypto parses.
                    if sm2::dsa::Signature::from_scalars(r, s).is_ok() {
                        assert_eq!(
                            efficient_verify(&public, &e2, &r, &s),
                            reference,
                            "efficient-sm2 {mutation:?}"
                        );
                    }
                }
                if matches!(mutation, Mutation::None) {
                    assert!(reference, "a fresh signature must verify");
                }
                if reference {
                    accepted[mutation as usize] += 1;
                }
            }
            accepted
        })
        .collect();
    let mut accepted = [0usize; 5];
    for c in counts {
        for i in 0..5 {
            accepted[i] += c[i];
        }
    }
    eprintln!("{total} cases; accepted per mutation [none, r, s, msg, key]: {accepted:?}");
    assert_eq!(
        accepted[1] + accepted[2] + accepted[3] + accepted[4],
        0,
        "a flipped input verified"
    );
}

/// Random (mostly invalid) signatures against valid keys: all paths agree (all reject).
#[test]
fn random_signatures_agree() {
    let mut rng = Rng(77);
    let signer = Signer::random(&mut rng);
    let key = PublicKey::from_sec1_uncompressed(&signer.public).unwrap();
    let pre = PrecomputedKey::new(&key);
    for _ in 0..2_000 {
        let e: [u8; 32] = rng.bytes();
        let r: [u8; 32] = rng.bytes();
        let s: [u8; 32] = rng.bytes();
        let reference = rustcrypto_verify(&signer.public, &e, &r, &s);
        assert_eq!(verify_digest(&signer.public, &e, &r, &s), reference);
        assert_eq!(pre.verify_digest(&e, &r, &s), reference);
    }
}
