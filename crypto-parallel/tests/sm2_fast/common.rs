#![allow(dead_code)]
use sm2::dsa::signature::hazmat::{PrehashSigner, PrehashVerifier};
use sm2::elliptic_curve::sec1::ToSec1Point;

pub const DISTID: &str = "1234567812345678";

/// splitmix64: deterministic test randomness.
pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn bytes<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        for chunk in out.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
        out
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

pub struct Signer {
    pub signing: sm2::dsa::SigningKey,
    pub public: [u8; 65],
}

impl Signer {
    pub fn random(rng: &mut Rng) -> Signer {
        loop {
            let secret: [u8; 32] = rng.bytes();
            if let Ok(signing) = sm2::dsa::SigningKey::from_slice(DISTID, &secret) {
                let point = signing.verifying_key().as_affine().to_sec1_point(false);
                let public: [u8; 65] = point.as_bytes().try_into().unwrap();
                return Signer { signing, public };
            }
        }
    }
    pub fn sign_digest(&self, e: &[u8; 32]) -> ([u8; 32], [u8; 32]) {
        let sig: sm2::dsa::Signature = self.signing.sign_prehash(e).unwrap();
        let bytes = sig.to_bytes();
        (bytes[..32].try_into().unwrap(), bytes[32..].try_into().unwrap())
    }
}

/// RustCrypto's verdict on (key bytes, e, r, s); any parse failure is a rejection.
pub fn rustcrypto_verify(public: &[u8], e: &[u8; 32], r: &[u8; 32], s: &[u8; 32]) -> bool {
    let Ok(key) = sm2::dsa::VerifyingKey::from_sec1_bytes(DISTID, public) else {
        return false;
    };
    let Ok(sig) = sm2::dsa::Signature::from_scalars(*r, *s) else {
        return false;
    };
    key.verify_prehash(e, &sig).is_ok()
}

/// efficient-sm2's verdict (no range or on-curve checks of its own: call only on
/// well-formed inputs).
pub fn efficient_verify(public: &[u8; 65], e: &[u8; 32], r: &[u8; 32], s: &[u8; 32]) -> bool {
    let key = efficient_sm2::PublicKey::new(&public[1..33], &public[33..]);
    match efficient_sm2::Signature::new(r, s) {
        Ok(sig) => sig.verify_digest(&key, e).is_ok(),
        Err(_) => false,
    }
}
