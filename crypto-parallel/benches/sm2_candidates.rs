//! Single-core SM2-with-SM3 candidates: signs/s and verifies/s of each library we could
//! build the SM2 provider on, measured the same way.
//!
//! Every candidate signs and verifies one fixed 256-byte message in a plain
//! single-threaded loop (no rayon), with the standard user id `"1234567812345678"` where
//! the library lets us choose it. Each criterion group `sm2_<candidate>` has
//! `Throughput::Elements(1)`, so criterion reports operations per second as `elem/s`:
//!
//! - `sm2_rustcrypto`: RustCrypto `sm2` — `SigningKey`/`VerifyingKey` built once, outside
//!   the loop (cached keys).
//! - `sm2_rustcrypto_from_bytes`: `crypto_parallel::sm2::verify_reference`, RustCrypto's
//!   verifier parsing the key (and computing `Z_A`) on every call.
//! - `sm2_efficient_sm2`: the `efficient-sm2` crate's own API (`KeyPair::sign`,
//!   `Signature::verify`), as a user of that crate would call it.
//! - `sm2_polyledger_default`: our provider — `PrivateKey::sign` and
//!   `crypto_parallel::sm2::verify_with_distid` (wrapped `efficient-sm2`, key parsed on
//!   every call).
//! - `sm2_libsm`: `libsm::sm2::signature::SigCtx` (`sign`, `verify`).
//! - `sm2_openssl`: the system OpenSSL through the `openssl` crate
//!   (`EVP_DigestSign`/`EVP_DigestVerify` with SM3 on an SM2 key). The crate cannot set the
//!   user id, so OpenSSL's default is used (empty in OpenSSL 3.0; same hashing cost, see
//!   `bench_openssl`).
//!
//! Before any timing, each candidate checks that its own signature verifies, and that
//! signatures interoperate with the others (a RustCrypto signature must verify under
//! every candidate, and each candidate's signature must verify under `crypto_parallel`,
//! with the user id that candidate uses), so a broken candidate fails instead of reporting
//! a speed. `efficient-sm2` and `libsm` hard-code the standard id; OpenSSL's sign/verify
//! timings include creating the `Signer`/`Verifier` (an `EVP_MD_CTX`) per call, as a user
//! of the crate would.
//!
//! Run with:
//!
//! ```text
//! cargo bench -p crypto-parallel --bench sm2_candidates
//! ```

use std::hint::black_box;
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main};
use crypto_parallel::sm2::{
    DEFAULT_DISTID, sign_with_distid, verify_reference, verify_with_distid,
};
use crypto_parallel::{PrivateKey, SignatureAlgorithm};
use sm2::dsa::signature::{Signer as _, Verifier as _};

/// The fixed message every candidate signs.
fn message() -> Vec<u8> {
    (0..256u32).map(|i| (i.wrapping_mul(131) ^ 0x5a) as u8).collect()
}

/// One SM2 key shared by all candidates (so their signatures can be cross-checked).
struct Fixture {
    key: PrivateKey,
    public: Vec<u8>,
    secret: Vec<u8>,
    message: Vec<u8>,
}

impl Fixture {
    fn new() -> Self {
        let key = PrivateKey::generate(SignatureAlgorithm::Sm2);
        let public = key.public_key().as_bytes().to_vec();
        let secret = key.expose_secret_bytes().to_vec();
        assert_eq!(public.len(), 65);
        assert_eq!(secret.len(), 32);
        Fixture { key, public, secret, message: message() }
    }

    /// Raw `r || s` signed by RustCrypto `sm2` with the default user id.
    fn rustcrypto_signature(&self) -> Vec<u8> {
        sign_with_distid(&self.secret, DEFAULT_DISTID, &self.message).expect("RustCrypto signs")
    }

    /// Asserts that a raw `r || s` signature (default user id) verifies under both
    /// `crypto_parallel` paths.
    fn assert_polyledger_accepts(&self, signature: &[u8], who: &str) {
        self.assert_polyledger_accepts_with(DEFAULT_DISTID, signature, who);
    }

    /// Same, with an explicit user id.
    fn assert_polyledger_accepts_with(&self, distid: &str, signature: &[u8], who: &str) {
        verify_with_distid(&self.public, distid, &self.message, signature)
            .unwrap_or_else(|e| panic!("{who} signature rejected by verify_with_distid: {e}"));
        verify_reference(&self.public, distid, &self.message, signature)
            .unwrap_or_else(|e| panic!("{who} signature rejected by verify_reference: {e}"));
    }
}

fn configure<'a>(c: &'a mut Criterion, name: &str) -> BenchmarkGroup<'a, WallTime> {
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements(1));
    group
}

fn bench_rustcrypto(c: &mut Criterion, fx: &Fixture) {
    let secret = sm2::SecretKey::from_slice(&fx.secret).expect("valid scalar");
    let signing_key = sm2::dsa::SigningKey::new(DEFAULT_DISTID, &secret).expect("signing key");
    let public = sm2::PublicKey::from_sec1_bytes(&fx.public).expect("valid point");
    let verifying_key = sm2::dsa::VerifyingKey::new(DEFAULT_DISTID, public).expect("verifying key");

    // Correctness gates: own round trip, and interop with efficient-sm2 and crypto_parallel.
    let signature: sm2::dsa::Signature = signing_key.sign(&fx.message);
    verifying_key.verify(&fx.message, &signature).expect("RustCrypto verifies its own signature");
    let raw = signature.to_bytes();
    fx.assert_polyledger_accepts(&raw, "RustCrypto");
    let efficient_pk = efficient_sm2::PublicKey::new(&fx.public[1..33], &fx.public[33..]);
    efficient_sm2::Signature::from_slice(&raw)
        .expect("efficient-sm2 parses")
        .verify(&efficient_pk, &fx.message)
        .expect("efficient-sm2 accepts a RustCrypto signature");

    let mut group = configure(c, "sm2_rustcrypto");
    group.bench_function("sign", |b| {
        b.iter(|| {
            let signature: sm2::dsa::Signature = signing_key.sign(black_box(&fx.message));
            signature
        })
    });
    group.bench_function("verify", |b| {
        b.iter(|| {
            let ok = verifying_key.verify(black_box(&fx.message), black_box(&signature)).is_ok();
            assert!(ok);
        })
    });
    group.finish();

    let mut group = configure(c, "sm2_rustcrypto_from_bytes");
    group.bench_function("verify", |b| {
        b.iter(|| {
            let ok = verify_reference(
                black_box(&fx.public),
                DEFAULT_DISTID,
                black_box(&fx.message),
                black_box(&raw),
            )
            .is_ok();
            assert!(ok);
        })
    });
    group.finish();
}

fn bench_efficient_sm2(c: &mut Criterion, fx: &Fixture) {
    // efficient-sm2 always uses the default user id (hard-coded "1234567812345678").
    let key_pair = efficient_sm2::KeyPair::new(&fx.secret).expect("efficient-sm2 key pair");
    let public = key_pair.public_key();
    assert_eq!(public.bytes_less_safe(), &fx.public[..], "same public key");

    let signature = key_pair.sign(&fx.message).expect("efficient-sm2 signs");
    signature.verify(&public, &fx.message).expect("efficient-sm2 verifies its own signature");
    let mut raw = signature.r().to_vec();
    raw.extend_from_slice(&signature.s());
    fx.assert_polyledger_accepts(&raw, "efficient-sm2");
    let rustcrypto_raw = fx.rustcrypto_signature();
    efficient_sm2::Signature::from_slice(&rustcrypto_raw)
        .expect("efficient-sm2 parses")
        .verify(&public, &fx.message)
        .expect("efficient-sm2 accepts a RustCrypto signature");

    let mut group = configure(c, "sm2_efficient_sm2");
    group.bench_function("sign", |b| {
        b.iter(|| key_pair.sign(black_box(&fx.message)).expect("efficient-sm2 signs"))
    });
    group.bench_function("verify", |b| {
        b.iter(|| {
            let signature = efficient_sm2::Signature::from_slice(black_box(&raw)).expect("parses");
            let ok = signature.verify(black_box(&public), black_box(&fx.message)).is_ok();
            assert!(ok);
        })
    });
    group.finish();
}

fn bench_polyledger_default(c: &mut Criterion, fx: &Fixture) {
    let signature = fx.key.sign(&fx.message);
    let raw = signature.as_bytes().to_vec();
    fx.assert_polyledger_accepts(&raw, "polyledger");
    fx.key.public_key().verify(&fx.message, &signature).expect("PublicKey::verify accepts");
    let rustcrypto_raw = fx.rustcrypto_signature();
    verify_with_distid(&fx.public, DEFAULT_DISTID, &fx.message, &rustcrypto_raw)
        .expect("verify_with_distid accepts a RustCrypto signature");
    let efficient_pk = efficient_sm2::PublicKey::new(&fx.public[1..33], &fx.public[33..]);
    efficient_sm2::Signature::from_slice(&raw)
        .expect("efficient-sm2 parses")
        .verify(&efficient_pk, &fx.message)
        .expect("efficient-sm2 accepts a polyledger signature");

    let mut group = configure(c, "sm2_polyledger_default");
    group.bench_function("sign", |b| b.iter(|| fx.key.sign(black_box(&fx.message))));
    group.bench_function("verify", |b| {
        b.iter(|| {
            let ok = verify_with_distid(
                black_box(&fx.public),
                DEFAULT_DISTID,
                black_box(&fx.message),
                black_box(&raw),
            )
            .is_ok();
            assert!(ok);
        })
    });
    group.finish();

    // The same arithmetic without the per-key table: what a key seen for the first time
    // (or evicted) costs; then the same on fiat's portable field arithmetic (what a CPU
    // without BMI2/ADX runs): the before/after of the assembly, in one run.
    for (name, portable) in
        [("sm2_polyledger_uncached", false), ("sm2_polyledger_uncached_fiat", true)]
    {
        crypto_parallel::sm2_fast::internals::force_portable_field(portable);
        let mut group = configure(c, name);
        group.bench_function("verify", |b| {
            b.iter(|| {
                assert!(crypto_parallel::sm2_fast::verify_message(
                    black_box(&fx.public),
                    black_box(&fx.message),
                    black_box(&raw),
                ));
            })
        });
        group.finish();
    }
    crypto_parallel::sm2_fast::internals::force_portable_field(false);

    // One field multiplication each way.
    use crypto_parallel::sm2_fast::internals::Fe;
    let x = Fe::from_limbs([0x1234_5678_9abc_def0, 7, 0xdead_beef, 0x0fff_ffff_ffff_ffff]);
    let y = Fe::from_limbs([3, 0xffff_0000_ffff_0000, 42, 0x7fff_ffff_0000_0001]);
    let mut group = configure(c, "sm2_field");
    group.bench_function("mul", |b| b.iter(|| black_box(&x).mul(black_box(&y))));
    group.bench_function("mul_fiat", |b| b.iter(|| black_box(&x).mul_fiat(black_box(&y))));
    group.bench_function("square", |b| b.iter(|| black_box(&x).square()));
    group.bench_function("square_fiat", |b| b.iter(|| black_box(&x).square_fiat()));
    group.bench_function("add", |b| b.iter(|| black_box(&x).add(black_box(&y))));
    group.bench_function("add_fiat", |b| b.iter(|| black_box(&x).add_fiat(black_box(&y))));
    group.bench_function("sub", |b| b.iter(|| black_box(&x).sub(black_box(&y))));
    group.bench_function("sub_fiat", |b| b.iter(|| black_box(&x).sub_fiat(black_box(&y))));
    group.finish();

    // The point operations the uncached path is made of (see perf/RESULTS.md).
    use crypto_parallel::sm2_fast::internals::{generator, u256_from_be, wnaf};
    let g = generator();
    let pj = g.to_jacobian().double().add_affine(&g); // 3G, z ≠ 1
    let qj = pj.double();
    let mut group = configure(c, "sm2_point");
    group.bench_function("double", |b| b.iter(|| black_box(&pj).double()));
    group.bench_function("add", |b| b.iter(|| black_box(&pj).add(black_box(&qj))));
    group.bench_function("add_affine", |b| b.iter(|| black_box(&pj).add_affine(black_box(&g))));
    let scalar = u256_from_be(&[0x5a; 32]);
    group.bench_function("wnaf5", |b| b.iter(|| wnaf(black_box(&scalar), 5)));
    group.bench_function("invert", |b| b.iter(|| black_box(&x).invert()));
    group.finish();
    println!(
        "sm2_fast field arithmetic on this CPU: {}",
        crypto_parallel::sm2_fast::internals::field_backend()
    );
}

fn bench_libsm(c: &mut Criterion, fx: &Fixture) {
    // libsm's `sign`/`verify` always hash with the default user id "1234567812345678".
    let ctx = libsm::sm2::signature::SigCtx::new();
    let secret = ctx.load_seckey(&fx.secret).expect("libsm loads the scalar");
    let public = ctx.pk_from_sk(&secret).expect("libsm public key");
    assert_eq!(
        ctx.serialize_pubkey(&public, false).expect("serialises"),
        fx.public,
        "same public key"
    );

    let signature = ctx.sign(&fx.message, &secret, &public).expect("libsm signs");
    assert!(ctx.verify(&fx.message, &public, &signature).expect("libsm verify runs"));
    let mut raw = to_32_bytes(&signature.get_r().to_bytes_be());
    raw.extend_from_slice(&to_32_bytes(&signature.get_s().to_bytes_be()));
    fx.assert_polyledger_accepts(&raw, "libsm");
    let rustcrypto_raw = fx.rustcrypto_signature();
    let foreign =
        libsm::sm2::signature::Signature::new(&rustcrypto_raw[..32], &rustcrypto_raw[32..]);
    assert!(ctx.verify(&fx.message, &public, &foreign).expect("libsm verify runs"));

    let mut group = configure(c, "sm2_libsm");
    group.bench_function("sign", |b| {
        b.iter(|| ctx.sign(black_box(&fx.message), &secret, &public).expect("libsm signs"))
    });
    group.bench_function("verify", |b| {
        b.iter(|| {
            let ok = ctx
                .verify(black_box(&fx.message), black_box(&public), black_box(&signature))
                .expect("libsm verify runs");
            assert!(ok);
        })
    });
    group.finish();
}

/// Left-pads a big-endian integer to 32 bytes.
fn to_32_bytes(bytes: &[u8]) -> Vec<u8> {
    assert!(bytes.len() <= 32);
    let mut out = vec![0u8; 32 - bytes.len()];
    out.extend_from_slice(bytes);
    out
}

fn bench_openssl(c: &mut Criterion, fx: &Fixture) {
    use openssl::hash::MessageDigest;
    use openssl::pkey::{Id, PKey};
    use openssl::sign::{Signer, Verifier};

    // The same key, through PKCS#8 / SPKI PEM: OpenSSL 3 decodes an EC key on the SM2
    // curve as an SM2 key, which its digest-sign API (`EVP_DigestSign*`) accepts with SM3,
    // computing `e = SM3(Z_A || M)` itself. No fallback to raw-digest `PkeyCtx` signing
    // was needed.
    //
    // User id: the `openssl` crate has no safe way to set the SM2 id
    // (`EVP_PKEY_CTX_set1_id` / the "distid" parameter), so OpenSSL's library default
    // applies. OpenSSL 3.0 defaults to the EMPTY id, not the standard's "1234567812345678"
    // (checked below: its signatures verify under `crypto_parallel` with id "" and not with
    // `DEFAULT_DISTID`). For speed this does not matter: `Z_A` is one SM3 over
    // 2 + |id| + 192 bytes, which is 4 compression blocks for both a 0- and a 16-byte id.
    // The id OpenSSL uses is detected rather than assumed, so a build that defaults to the
    // standard id passes too; any other behaviour fails the checks.
    let private_pem = fx.key.to_pem().expect("PKCS#8 PEM");
    let public_pem = fx.key.public_key().to_pem().expect("SPKI PEM");
    let private = PKey::private_key_from_pem(private_pem.as_bytes()).expect("OpenSSL loads key");
    let public = PKey::public_key_from_pem(public_pem.as_bytes()).expect("OpenSSL loads key");
    // Provider-native keys report `id() == -1` in OpenSSL 3, so the key type is not
    // asserted here; the cross-checks below fail unless OpenSSL really does SM2-with-SM3.
    assert!(private.id() == Id::SM2 || private.id().as_raw() == -1, "unexpected key type");

    let sign = |message: &[u8]| -> Vec<u8> {
        let mut signer = Signer::new(MessageDigest::sm3(), &private).expect("SM2 signer");
        signer.sign_oneshot_to_vec(message).expect("OpenSSL signs")
    };
    let verify = |message: &[u8], der: &[u8]| -> bool {
        let mut verifier = Verifier::new(MessageDigest::sm3(), &public).expect("SM2 verifier");
        verifier.verify_oneshot(der, message).unwrap_or(false)
    };

    let der = sign(&fx.message);
    assert!(verify(&fx.message, &der), "OpenSSL verifies its own signature");
    let raw = sm2::dsa::Signature::from_der(&der).expect("OpenSSL writes DER r, s").to_bytes();
    let openssl_distid = [DEFAULT_DISTID, ""]
        .into_iter()
        .find(|id| verify_with_distid(&fx.public, id, &fx.message, &raw).is_ok())
        .expect("OpenSSL signature verifies under crypto_parallel with the standard or empty id");
    eprintln!("OpenSSL's default SM2 user id: {openssl_distid:?}");
    fx.assert_polyledger_accepts_with(openssl_distid, &raw, "OpenSSL");
    let rustcrypto_raw =
        sign_with_distid(&fx.secret, openssl_distid, &fx.message).expect("RustCrypto signs");
    let rustcrypto_der = sm2::dsa::Signature::from_slice(&rustcrypto_raw).expect("raw").to_der();
    assert!(
        verify(&fx.message, rustcrypto_der.as_bytes()),
        "OpenSSL accepts a RustCrypto signature made with the same user id"
    );

    let mut group = configure(c, "sm2_openssl");
    group.bench_function("sign", |b| b.iter(|| sign(black_box(&fx.message))));
    group.bench_function("verify", |b| {
        b.iter(|| {
            let ok = verify(black_box(&fx.message), black_box(&der));
            assert!(ok);
        })
    });
    group.finish();
}

fn sm2_candidates(c: &mut Criterion) {
    let fx = Fixture::new();
    bench_rustcrypto(c, &fx);
    bench_efficient_sm2(c, &fx);
    bench_polyledger_default(c, &fx);
    bench_libsm(c, &fx);
    bench_openssl(c, &fx);
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

criterion_group! {
    name = benches;
    config = config();
    targets = sm2_candidates
}
criterion_main!(benches);
