//! The fast SM2 verifier (the default `Sm2Provider::verify`) against RustCrypto's
//! reference verifier on arbitrary inputs: the same verdict (valid or not) for every
//! key, message and signature, including keys and signatures derived from the input and
//! then mutated, so that valid signatures are reached too. Never a panic.
#![no_main]

use crypto_parallel::sm2::{DEFAULT_DISTID, Sm2Provider, verify_reference};
use crypto_parallel::SignatureProvider;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let provider = Sm2Provider;
    // Raw form: key ‖ signature ‖ message straight from the input.
    if data.len() >= 65 + 64 {
        let (key, rest) = data.split_at(65);
        let (signature, message) = rest.split_at(64);
        let fast = provider.verify(key, message, signature).is_ok();
        let reference = verify_reference(key, DEFAULT_DISTID, message, signature).is_ok();
        assert_eq!(fast, reference, "verdicts differ on raw input");
    }
    // Derived form: a real key and signature from the input, then an optional bit flip.
    if data.len() >= 34 {
        let (seed, rest) = data.split_at(32);
        let (flip, message) = rest.split_at(2);
        let Ok(()) = provider.check_private_key(seed) else { return };
        let key = provider.public_key_from_private(seed).expect("valid private key");
        let mut signature = provider.sign(seed, message).expect("signing works");
        let mut key = key;
        let bit = u16::from_be_bytes([flip[0], flip[1]]) as usize;
        match bit % 4 {
            0 => {}
            1 => signature[(bit / 4) % 64] ^= 1 << (bit % 8),
            2 => key[1 + (bit / 4) % 64] ^= 1 << (bit % 8),
            _ => signature[(bit / 4) % 64] ^= 0xff,
        }
        let fast = provider.verify(&key, message, &signature).is_ok();
        let reference = verify_reference(&key, DEFAULT_DISTID, message, &signature).is_ok();
        assert_eq!(fast, reference, "verdicts differ on a derived signature (mutation {})", bit % 4);
    }
});
