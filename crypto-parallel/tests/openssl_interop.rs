//! Interoperability with OpenSSL's command-line tool: keys made by OpenSSL load here,
//! ours load there, and signatures verify in both directions.
//!
//! OpenSSL 3.0's `pkeyutl` does not apply GB/T 32918's default user id on its own, so the
//! id is passed explicitly (`-pkeyopt distid:1234567812345678`); our default stays the
//! standard's. The `openssl` command comes with the `openssl` Debian package, which
//! `scripts/system-deps.sh` installs.

use std::path::{Path, PathBuf};
use std::process::Command;

use crypto_parallel::{PrivateKey, PublicKey, Signature, SignatureAlgorithm};

const DISTID_OPTION: &str = "distid:1234567812345678";

struct Workspace {
    dir: tempfile::TempDir,
}

impl Workspace {
    fn new() -> Self {
        Workspace { dir: tempfile::tempdir().expect("temp dir") }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, bytes).expect("write temp file");
        path
    }

    fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.path(name)).expect("read temp file")
    }
}

/// Runs `openssl` with `args`; returns whether it succeeded and its combined output.
fn openssl(args: &[&dyn AsRef<std::ffi::OsStr>]) -> (bool, String) {
    let output = Command::new("openssl")
        .args(args.iter().map(|a| a.as_ref()))
        .output()
        .expect("the `openssl` command is needed; run scripts/system-deps.sh");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

fn openssl_ok(args: &[&dyn AsRef<std::ffi::OsStr>]) -> String {
    let (ok, text) = openssl(args);
    assert!(ok, "openssl {:?} failed: {text}", args.iter().map(|a| a.as_ref()).collect::<Vec<_>>());
    text
}

fn read_text(path: &Path) -> String {
    std::fs::read_to_string(path).expect("read PEM")
}

/// Generates a key with OpenSSL; returns (private PEM path, public PEM path).
fn openssl_keypair(work: &Workspace, genpkey_args: &[&str]) -> (PathBuf, PathBuf) {
    let private_path = work.path("openssl-key.pem");
    let public_path = work.path("openssl-pub.pem");
    let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"genpkey"];
    for arg in genpkey_args {
        args.push(arg);
    }
    args.push(&"-out");
    args.push(&private_path);
    openssl_ok(&args);
    openssl_ok(&[&"pkey", &"-in", &private_path, &"-pubout", &"-out", &public_path]);
    (private_path, public_path)
}

/// Our key written as PEM files; returns (private PEM path, public PEM path).
fn our_keypair_files(work: &Workspace, private_key: &PrivateKey) -> (PathBuf, PathBuf) {
    let private_path = work.write("our-key.pem", private_key.to_pem().unwrap().as_bytes());
    let public_path =
        work.write("our-pub.pem", private_key.public_key().to_pem().unwrap().as_bytes());
    (private_path, public_path)
}

#[test]
fn sm2_openssl_signs_we_verify() {
    let work = Workspace::new();
    let (private_path, public_path) = openssl_keypair(&work, &["-algorithm", "SM2"]);
    let private_key = PrivateKey::from_pem(&read_text(&private_path)).unwrap();
    let public_key = PublicKey::from_pem(&read_text(&public_path)).unwrap();
    assert_eq!(private_key.algorithm(), SignatureAlgorithm::Sm2);
    assert_eq!(private_key.public_key(), public_key, "OpenSSL's key pair must match ours");

    for (index, message) in [&b"abc"[..], b"", &[0x5a; 3000]].into_iter().enumerate() {
        let message_path = work.write(&format!("message-{index}"), message);
        let signature_path = work.path(&format!("signature-{index}.der"));
        openssl_ok(&[
            &"pkeyutl",
            &"-sign",
            &"-rawin",
            &"-digest",
            &"sm3",
            &"-inkey",
            &private_path,
            &"-in",
            &message_path,
            &"-out",
            &signature_path,
            &"-pkeyopt",
            &DISTID_OPTION,
        ]);
        let der = work.read(&format!("signature-{index}.der"));
        let signature = Signature::from_der(SignatureAlgorithm::Sm2, &der).unwrap();
        public_key.verify(message, &signature).unwrap();
        crypto_parallel::sm2::verify_reference(
            public_key.as_bytes(),
            crypto_parallel::sm2::DEFAULT_DISTID,
            message,
            signature.as_bytes(),
        )
        .unwrap();
        let mut tampered = message.to_vec();
        tampered.push(0);
        assert!(public_key.verify(&tampered, &signature).is_err());
    }
}

#[test]
fn sm2_we_sign_openssl_verifies() {
    let work = Workspace::new();
    let private_key = PrivateKey::generate(SignatureAlgorithm::Sm2);
    let (private_path, public_path) = our_keypair_files(&work, &private_key);

    // Our PKCS#8 loads in OpenSSL and yields our public key.
    let derived_path = work.path("derived-pub.pem");
    openssl_ok(&[&"pkey", &"-in", &private_path, &"-pubout", &"-out", &derived_path]);
    assert_eq!(PublicKey::from_pem(&read_text(&derived_path)).unwrap(), private_key.public_key());

    let message = b"batch 2026-11-24 recalled by the regulator";
    let message_path = work.write("message", message);
    let signature_path = work.write("signature.der", &private_key.sign(message).to_der().unwrap());
    let verify = |message_path: &PathBuf| {
        openssl(&[
            &"pkeyutl",
            &"-verify",
            &"-rawin",
            &"-digest",
            &"sm3",
            &"-pubin",
            &"-inkey",
            &public_path,
            &"-in",
            message_path,
            &"-sigfile",
            &signature_path,
            &"-pkeyopt",
            &DISTID_OPTION,
        ])
    };
    let (ok, text) = verify(&message_path);
    assert!(ok && text.contains("Signature Verified Successfully"), "{text}");
    // The check can fail: OpenSSL rejects our signature on another message.
    let other_path = work.write("other", b"batch 2026-11-25");
    let (ok, text) = verify(&other_path);
    assert!(!ok, "OpenSSL accepted a signature over another message: {text}");
}

#[test]
fn ed25519_interoperates_both_ways() {
    let work = Workspace::new();
    let (private_path, public_path) = openssl_keypair(&work, &["-algorithm", "ED25519"]);
    let private_key = PrivateKey::from_pem(&read_text(&private_path)).unwrap();
    let public_key = PublicKey::from_pem(&read_text(&public_path)).unwrap();
    assert_eq!(private_key.public_key(), public_key);

    let message = b"ed25519 message";
    let message_path = work.write("message", message);
    let signature_path = work.path("signature.bin");
    openssl_ok(&[
        &"pkeyutl",
        &"-sign",
        &"-rawin",
        &"-inkey",
        &private_path,
        &"-in",
        &message_path,
        &"-out",
        &signature_path,
    ]);
    let theirs =
        Signature::from_raw(SignatureAlgorithm::Ed25519, &work.read("signature.bin")).unwrap();
    public_key.verify(message, &theirs).unwrap();
    // Ed25519 is deterministic: same key, same message, same bytes.
    assert_eq!(private_key.sign(message), theirs);

    let ours = PrivateKey::generate(SignatureAlgorithm::Ed25519);
    let (_, our_public_path) = our_keypair_files(&work, &ours);
    let our_signature_path = work.write("our-signature.bin", ours.sign(message).as_bytes());
    let text = openssl_ok(&[
        &"pkeyutl",
        &"-verify",
        &"-rawin",
        &"-pubin",
        &"-inkey",
        &our_public_path,
        &"-in",
        &message_path,
        &"-sigfile",
        &our_signature_path,
    ]);
    assert!(text.contains("Signature Verified Successfully"), "{text}");
}

#[test]
fn ecdsa_p256_interoperates_both_ways() {
    let work = Workspace::new();
    let (private_path, public_path) =
        openssl_keypair(&work, &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]);
    let private_key = PrivateKey::from_pem(&read_text(&private_path)).unwrap();
    let public_key = PublicKey::from_pem(&read_text(&public_path)).unwrap();
    assert_eq!(private_key.algorithm(), SignatureAlgorithm::EcdsaP256);
    assert_eq!(private_key.public_key(), public_key);

    let message = b"p-256 message";
    let message_path = work.write("message", message);
    let signature_path = work.path("signature.der");
    openssl_ok(&[
        &"dgst",
        &"-sha256",
        &"-sign",
        &private_path,
        &"-out",
        &signature_path,
        &message_path,
    ]);
    let theirs =
        Signature::from_der(SignatureAlgorithm::EcdsaP256, &work.read("signature.der")).unwrap();
    public_key.verify(message, &theirs).unwrap();

    let ours = PrivateKey::generate(SignatureAlgorithm::EcdsaP256);
    let (_, our_public_path) = our_keypair_files(&work, &ours);
    let our_signature_path = work.write("our.der", &ours.sign(message).to_der().unwrap());
    let text = openssl_ok(&[
        &"dgst",
        &"-sha256",
        &"-verify",
        &our_public_path,
        &"-signature",
        &our_signature_path,
        &message_path,
    ]);
    assert!(text.contains("Verified OK"), "{text}");
}
