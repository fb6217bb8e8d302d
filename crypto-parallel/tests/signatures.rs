//! Sign/verify behaviour of every signature algorithm through the public SPI: known
//! answers, round trips, and every way a signature must be rejected.

use crypto_parallel::{CryptoError, PrivateKey, PublicKey, Signature, SignatureAlgorithm};

fn unhex(text: &str) -> Vec<u8> {
    hex::decode(text).expect("test vector hex")
}

/// RFC 8032 §7.1, tests 1–3 (secret key, public key, message, signature).
const RFC8032_VECTORS: [(&str, &str, &str, &str); 3] = [
    (
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "",
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    ),
    (
        "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "72",
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    ),
    (
        "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
        "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
        "af82",
        "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
    ),
];

#[test]
fn ed25519_rfc8032_vectors() {
    for (secret, public, message, signature) in RFC8032_VECTORS {
        let private_key =
            PrivateKey::from_raw(SignatureAlgorithm::Ed25519, &unhex(secret)).unwrap();
        let public_key = private_key.public_key();
        assert_eq!(public_key.as_bytes(), unhex(public).as_slice());
        let message = unhex(message);
        // Ed25519 is deterministic: our signature must equal the RFC's byte for byte.
        let ours = private_key.sign(&message);
        assert_eq!(ours.as_bytes(), unhex(signature).as_slice());
        let theirs = Signature::from_raw(SignatureAlgorithm::Ed25519, &unhex(signature)).unwrap();
        public_key.verify(&message, &theirs).unwrap();
    }
}

#[test]
fn round_trip_every_algorithm() {
    for algorithm in SignatureAlgorithm::ALL {
        let private_key = PrivateKey::generate(algorithm);
        let public_key = private_key.public_key();
        let provider = algorithm.provider();
        assert_eq!(public_key.as_bytes().len(), provider.public_key_len(), "{algorithm}");
        for message in [&b""[..], b"abc", &[0xa5; 1000]] {
            let signature = private_key.sign(message);
            assert_eq!(signature.algorithm(), algorithm);
            assert_eq!(signature.as_bytes().len(), provider.signature_len(), "{algorithm}");
            public_key.verify(message, &signature).unwrap();
            // The binary and text forms carry the algorithm and round-trip.
            let decoded = Signature::from_bytes(&signature.to_bytes()).unwrap();
            assert_eq!(decoded, signature);
            assert_eq!(Signature::from_base58(&signature.to_base58()).unwrap(), signature);
        }
        assert_eq!(PublicKey::from_bytes(&public_key.to_bytes()).unwrap(), public_key);
        assert_eq!(PublicKey::from_base58(&public_key.to_base58()).unwrap(), public_key);
        assert_eq!(PrivateKey::from_bytes(&private_key.to_bytes()).unwrap(), private_key);
        assert_eq!(PrivateKey::from_base58(&private_key.to_base58()).unwrap(), private_key);
    }
}

#[test]
fn tampering_is_rejected_every_algorithm() {
    for algorithm in SignatureAlgorithm::ALL {
        let private_key = PrivateKey::generate(algorithm);
        let public_key = private_key.public_key();
        let message = b"lot 4711 left the dairy at 06:00".to_vec();
        let signature = private_key.sign(&message);

        // Tampered message: every single-bit flip of the first bytes.
        for bit in 0..16 {
            let mut tampered = message.clone();
            tampered[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(
                public_key.verify(&tampered, &signature),
                Err(CryptoError::InvalidSignature),
                "{algorithm} bit {bit}"
            );
        }
        // Tampered signature: a flip in each half; it either no longer parses (out of
        // range) or no longer verifies, never passes.
        for position in [0, 31, 32, 63] {
            let mut raw = signature.as_bytes().to_vec();
            raw[position] ^= 0x01;
            if let Ok(tampered) = Signature::from_raw(algorithm, &raw) {
                assert!(public_key.verify(&message, &tampered).is_err(), "{algorithm} {position}");
            }
        }
        // Wrong key of the same algorithm.
        let other = PrivateKey::generate(algorithm).public_key();
        assert_eq!(other.verify(&message, &signature), Err(CryptoError::InvalidSignature));
        // Wrong algorithm code: same bytes relabelled, or a signature of another
        // algorithm, are both rejected.
        for foreign in SignatureAlgorithm::ALL.into_iter().filter(|a| *a != algorithm) {
            let mut relabelled = signature.to_bytes();
            relabelled[..2].copy_from_slice(&foreign.code().0.to_be_bytes());
            if let Ok(relabelled) = Signature::from_bytes(&relabelled) {
                assert!(matches!(
                    public_key.verify(&message, &relabelled),
                    Err(CryptoError::AlgorithmMismatch { .. })
                ));
            }
            let foreign_signature = PrivateKey::generate(foreign).sign(&message);
            assert!(matches!(
                public_key.verify(&message, &foreign_signature),
                Err(CryptoError::AlgorithmMismatch { .. })
            ));
        }
    }
}

#[test]
fn sm2_default_user_id_is_the_standard_one() {
    use crypto_parallel::sm2;
    assert_eq!(sm2::DEFAULT_DISTID, "1234567812345678");
    let private_key = PrivateKey::generate(SignatureAlgorithm::Sm2);
    let public_key = private_key.public_key();
    let message = b"trace code 6901234567892";
    let signature = private_key.sign(message);
    // The provider's default equals an explicit "1234567812345678", on both paths.
    sm2::verify_with_distid(
        public_key.as_bytes(),
        "1234567812345678",
        message,
        signature.as_bytes(),
    )
    .unwrap();
    sm2::verify_reference(public_key.as_bytes(), "1234567812345678", message, signature.as_bytes())
        .unwrap();
    // Any other id gives a different Z_A, so the signature no longer verifies.
    assert_eq!(
        sm2::verify_with_distid(
            public_key.as_bytes(),
            "ALICE123@YAHOO.COM",
            message,
            signature.as_bytes()
        ),
        Err(CryptoError::InvalidSignature)
    );
    // A non-default id works when used on both sides explicitly.
    let custom =
        sm2::sign_with_distid(private_key.expose_secret_bytes(), "retailer-42", message).unwrap();
    sm2::verify_with_distid(public_key.as_bytes(), "retailer-42", message, &custom).unwrap();
    sm2::verify_reference(public_key.as_bytes(), "retailer-42", message, &custom).unwrap();
    let signature = Signature::from_raw(SignatureAlgorithm::Sm2, &custom).unwrap();
    assert_eq!(public_key.verify(message, &signature), Err(CryptoError::InvalidSignature));
    // Ids longer than ENTL's 16 bits allow are a typed error.
    let long_id = "x".repeat(sm2::DISTID_LEN_MAX + 1);
    assert!(matches!(
        sm2::verify_with_distid(public_key.as_bytes(), &long_id, message, signature.as_bytes()),
        Err(CryptoError::DistinguishingIdTooLong { .. })
    ));
}

#[test]
fn sm2_fast_path_edge_cases_match_reference() {
    use crypto_parallel::sm2;
    // n, the order of the SM2 base point.
    let n = unhex("FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123");
    let private_key = PrivateKey::generate(SignatureAlgorithm::Sm2);
    let public_key = private_key.public_key();
    let message = b"edge";
    let good = private_key.sign(message).as_bytes().to_vec();
    let zero = [0u8; 32];
    let mut n_minus_r = [0u8; 32];
    {
        // s = n - r makes t = r + s ≡ 0 (mod n), which the standard rejects (step B5).
        let r = &good[..32];
        let mut borrow = 0i16;
        for i in (0..32).rev() {
            let mut digit = n[i] as i16 - r[i] as i16 - borrow;
            borrow = if digit < 0 { 1 } else { 0 };
            if digit < 0 {
                digit += 256;
            }
            n_minus_r[i] = digit as u8;
        }
    }
    let cases: Vec<Vec<u8>> = vec![
        [&zero[..], &good[32..]].concat(),       // r = 0
        [&good[..32], &zero[..]].concat(),       // s = 0
        [&n[..], &good[32..]].concat(),          // r = n
        [&good[..32], &n[..]].concat(),          // s = n
        [&[0xff; 32][..], &good[32..]].concat(), // r > n
        [&good[..32], &n_minus_r[..]].concat(),  // r + s = n
        good.clone(),
    ];
    for (index, raw) in cases.iter().enumerate() {
        let fast =
            sm2::verify_with_distid(public_key.as_bytes(), sm2::DEFAULT_DISTID, message, raw);
        let reference =
            sm2::verify_reference(public_key.as_bytes(), sm2::DEFAULT_DISTID, message, raw);
        assert_eq!(fast.is_ok(), reference.is_ok(), "case {index}: {fast:?} vs {reference:?}");
        assert_eq!(fast.is_ok(), index == cases.len() - 1, "case {index}");
    }
}

#[test]
fn sm2_compressed_keys_normalise() {
    use crypto_parallel::sm2;
    let public_key = PrivateKey::generate(SignatureAlgorithm::Sm2).public_key();
    let raw = public_key.as_bytes();
    let mut compressed = vec![2 + (raw[64] & 1)];
    compressed.extend_from_slice(&raw[1..33]);
    assert_eq!(sm2::public_key_from_sec1(&compressed).unwrap(), raw);
    // The canonical binary form is the uncompressed one only.
    assert!(PublicKey::from_raw(SignatureAlgorithm::Sm2, &compressed).is_err());
}

#[test]
fn invalid_points_and_scalars_are_typed_errors() {
    for algorithm in [SignatureAlgorithm::Sm2, SignatureAlgorithm::EcdsaP256] {
        let mut off_curve = PrivateKey::generate(algorithm).public_key().as_bytes().to_vec();
        off_curve[64] ^= 1;
        assert!(matches!(
            PublicKey::from_raw(algorithm, &off_curve),
            Err(CryptoError::MalformedPublicKey { .. })
        ));
        assert!(matches!(
            PublicKey::from_raw(algorithm, &[0u8; 65]),
            Err(CryptoError::MalformedPublicKey { .. })
        ));
        assert!(matches!(
            PrivateKey::from_raw(algorithm, &[0u8; 32]),
            Err(CryptoError::MalformedPrivateKey { .. })
        ));
        assert!(matches!(
            PrivateKey::from_raw(algorithm, &[0xffu8; 32]),
            Err(CryptoError::MalformedPrivateKey { .. })
        ));
    }
    assert!(matches!(
        PublicKey::from_bytes(&[0x7f, 0x7f, 1, 2, 3]),
        Err(CryptoError::UnknownAlgorithm { code: 0x7f7f })
    ));
    assert!(PublicKey::from_bytes(&[]).is_err());
    assert!(PublicKey::from_base58("0OIl not base58").is_err());
}

#[test]
fn secrets_never_print() {
    for algorithm in SignatureAlgorithm::ALL {
        let private_key = PrivateKey::generate(algorithm);
        let printed = format!("{private_key:?}");
        assert!(printed.contains("redacted"), "{printed}");
        let secret_hex = hex::encode(private_key.expose_secret_bytes());
        assert!(!printed.contains(&secret_hex));
        assert!(!printed.contains(private_key.to_base58().as_str()));
    }
}

#[test]
fn pem_round_trip_every_algorithm() {
    for algorithm in SignatureAlgorithm::ALL {
        let private_key = PrivateKey::generate(algorithm);
        let pem = private_key.to_pem().unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        assert_eq!(PrivateKey::from_pem(&pem).unwrap(), private_key);
        let public_key = private_key.public_key();
        let public_pem = public_key.to_pem().unwrap();
        assert!(public_pem.starts_with("-----BEGIN PUBLIC KEY-----"));
        assert_eq!(PublicKey::from_pem(&public_pem).unwrap(), public_key);
        // A public key where a private one is expected (and vice versa) is an error.
        assert!(matches!(PrivateKey::from_pem(&public_pem), Err(CryptoError::MalformedPem { .. })));
        assert!(matches!(PublicKey::from_pem(&pem), Err(CryptoError::MalformedPem { .. })));
    }
}

#[test]
fn der_signatures_round_trip() {
    for algorithm in [SignatureAlgorithm::Sm2, SignatureAlgorithm::EcdsaP256] {
        let signature = PrivateKey::generate(algorithm).sign(b"m");
        let der = signature.to_der().unwrap();
        assert_eq!(der[0], 0x30, "DER SEQUENCE");
        assert_eq!(Signature::from_der(algorithm, &der).unwrap(), signature);
        assert!(Signature::from_der(algorithm, &der[..der.len() - 1]).is_err());
    }
    let ed = PrivateKey::generate(SignatureAlgorithm::Ed25519).sign(b"m");
    assert!(ed.to_der().is_err());
}
