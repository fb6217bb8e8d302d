//! Crypto decoders of untrusted bytes (keys, signatures, PEM, DER, base58): typed errors,
//! never panics; whatever decodes must verify nothing it should not.
#![no_main]

use crypto_parallel::{PrivateKey, PublicKey, Signature, SignatureAlgorithm};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = PrivateKey::from_bytes(data);
    let _ = PublicKey::from_spki_der(data);
    let _ = PrivateKey::from_pkcs8_der(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = PublicKey::from_pem(text);
        let _ = PrivateKey::from_pem(text);
        let _ = PublicKey::from_base58(text);
    }
    for algorithm in SignatureAlgorithm::ALL {
        let _ = Signature::from_der(algorithm, data);
    }
    if let (Ok(key), Ok(signature)) = (PublicKey::from_bytes(data), Signature::from_bytes(data)) {
        let _ = key.verify(b"fuzz", &signature);
    }
});
