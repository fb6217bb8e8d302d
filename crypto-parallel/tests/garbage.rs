//! Garbage in, typed errors out: no decoder of untrusted bytes may panic.

use crypto_parallel::{PrivateKey, PublicKey, Signature, SignatureAlgorithm};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn binary_decoders_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..140)) {
        let _ = PublicKey::from_bytes(&bytes);
        let _ = PrivateKey::from_bytes(&bytes);
        let _ = Signature::from_bytes(&bytes);
        for algorithm in SignatureAlgorithm::ALL {
            let _ = PublicKey::from_raw(algorithm, &bytes);
            let _ = PrivateKey::from_raw(algorithm, &bytes);
            let _ = Signature::from_raw(algorithm, &bytes);
            let _ = Signature::from_der(algorithm, &bytes);
        }
        let _ = PublicKey::from_spki_der(&bytes);
        let _ = PrivateKey::from_pkcs8_der(&bytes);
    }

    /// Valid algorithm code followed by random bytes of the right length: the decoders
    /// reach the curve checks, which must reject cleanly.
    #[test]
    fn right_length_garbage_is_rejected_or_valid(
        algorithm_index in 0usize..3,
        bytes in prop::collection::vec(any::<u8>(), 65),
    ) {
        let algorithm = SignatureAlgorithm::ALL[algorithm_index];
        let provider = algorithm.provider();
        let key = PublicKey::from_raw(algorithm, &bytes[..provider.public_key_len()]);
        let signature = Signature::from_raw(algorithm, &bytes[..provider.signature_len()]);
        if let (Ok(key), Ok(signature)) = (key, signature) {
            // Random bytes that happen to decode must still not verify.
            prop_assert!(key.verify(b"message", &signature).is_err());
        }
    }

    #[test]
    fn text_decoders_never_panic(text in "\\PC{0,200}") {
        let _ = PublicKey::from_base58(&text);
        let _ = PrivateKey::from_base58(&text);
        let _ = Signature::from_base58(&text);
        let _ = PublicKey::from_pem(&text);
        let _ = PrivateKey::from_pem(&text);
    }

    /// A PEM frame around garbage: parsed far enough to reach the DER decoders.
    #[test]
    fn pem_framed_garbage_is_a_typed_error(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        for label in ["PRIVATE KEY", "PUBLIC KEY"] {
            let pem = der::pem::encode_string(label, der::pem::LineEnding::LF, &bytes).unwrap();
            prop_assert!(PrivateKey::from_pem(&pem).is_err());
            prop_assert!(PublicKey::from_pem(&pem).is_err());
        }
    }
}
