//! The SM2 verification equation and the public API around it.

use sm3::Digest;

use crate::sm2_fast::field::{Fe, P};
use crate::sm2_fast::point::{Affine, Jacobian, is_on_curve};
use crate::sm2_fast::scalar::{self, N, U256};
use crate::sm2_fast::tables::{CombTable, mul_comb, mul_uncached};

/// The default distinguishing identifier of GB/T 32918 / GM/T 0009.
pub const DEFAULT_DISTID: &str = "1234567812345678";

/// A ≤ 8191-byte id keeps ENTL_A (a 16-bit bit count) exact.
const DISTID_LEN_MAX: usize = (u16::MAX as usize) / 8;

/// a, b, x_G, y_G of the recommended curve, as hashed into Z_A.
const CURVE_PARAMETERS: [[u8; 32]; 4] = [
    crate::sm2_fast::point::hex32(
        "FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFC",
    ),
    crate::sm2_fast::point::B_BYTES,
    crate::sm2_fast::point::GX_BYTES,
    crate::sm2_fast::point::GY_BYTES,
];

/// A parsed SM2 public key: a point on the recommended curve (never infinity).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey {
    point: Affine,
    bytes: [u8; 65],
}

impl PublicKey {
    /// Parses 65-byte uncompressed SEC1 (`04 ‖ x ‖ y`), with x, y < p and the point on
    /// the curve. Compressed keys and the infinity encoding are rejected at this layer.
    pub fn from_sec1_uncompressed(bytes: &[u8]) -> Option<PublicKey> {
        let bytes: &[u8; 65] = bytes.try_into().ok()?;
        if bytes[0] != 0x04 {
            return None;
        }
        let x: &[u8; 32] = bytes[1..33].try_into().ok()?;
        let y: &[u8; 32] = bytes[33..65].try_into().ok()?;
        let x = Fe::from_be_bytes(x)?;
        let y = Fe::from_be_bytes(y)?;
        if !is_on_curve(&x, &y) {
            return None;
        }
        // The curve has prime order n (cofactor 1), so every affine point on it has
        // order n; the affine encoding cannot be infinity.
        Some(PublicKey { point: Affine { x, y }, bytes: *bytes })
    }

    /// The key's 65-byte uncompressed SEC1 encoding.
    pub fn as_bytes(&self) -> &[u8; 65] {
        &self.bytes
    }

    /// Z_A with the default user id.
    pub fn z_a(&self) -> [u8; 32] {
        self.z_a_with_distid(DEFAULT_DISTID.as_bytes()).unwrap_or([0; 32])
    }

    /// Z_A = SM3(ENTL_A ‖ ID_A ‖ a ‖ b ‖ x_G ‖ y_G ‖ x_A ‖ y_A); `None` for an id
    /// longer than 8191 bytes.
    pub fn z_a_with_distid(&self, distid: &[u8]) -> Option<[u8; 32]> {
        let mut hasher = z_a_prefix(distid)?;
        hasher.update(&self.bytes[1..]);
        Some(hasher.finalize().into())
    }

    /// e = SM3(Z_A ‖ M) with the default user id.
    pub fn digest(&self, message: &[u8]) -> [u8; 32] {
        digest_with_z(&self.z_a(), message)
    }
}

/// SM3 fed with ENTL_A ‖ ID_A ‖ a ‖ b ‖ x_G ‖ y_G, the part of Z_A before the key;
/// `None` for an id longer than 8191 bytes. For the default id those 146 bytes are the
/// same for every key: they are hashed once (two of Z_A's four SM3 blocks) and the
/// hasher's state is cloned.
pub fn z_a_prefix(distid: &[u8]) -> Option<sm3::Sm3> {
    fn feed(distid: &[u8]) -> sm3::Sm3 {
        let bit_len = (distid.len() * 8) as u16;
        let mut hasher = sm3::Sm3::new();
        hasher.update(bit_len.to_be_bytes());
        hasher.update(distid);
        for parameter in &CURVE_PARAMETERS {
            hasher.update(parameter);
        }
        hasher
    }
    static DEFAULT: std::sync::OnceLock<sm3::Sm3> = std::sync::OnceLock::new();
    if distid == DEFAULT_DISTID.as_bytes() {
        return Some(DEFAULT.get_or_init(|| feed(distid)).clone());
    }
    if distid.len() > DISTID_LEN_MAX {
        return None;
    }
    Some(feed(distid))
}

/// e = SM3(Z_A ‖ M).
pub fn digest_with_z(z_a: &[u8; 32], message: &[u8]) -> [u8; 32] {
    let mut hasher = sm3::Sm3::new();
    hasher.update(z_a);
    hasher.update(message);
    hasher.finalize().into()
}

/// B1/B2 and B5: r, s ∈ [1, n-1] and t = (r + s) mod n ≠ 0. Returns (r, s, t).
fn check_scalars(r: &[u8; 32], s: &[u8; 32]) -> Option<(U256, U256, U256)> {
    let r = scalar::u256_from_be(r);
    let s = scalar::u256_from_be(s);
    if scalar::is_zero(&r) || scalar::is_zero(&s) || !scalar::lt(&r, &N) || !scalar::lt(&s, &N) {
        return None;
    }
    let t = scalar::add_mod_n(&r, &s);
    if scalar::is_zero(&t) {
        return None;
    }
    Some((r, s, t))
}

/// B6/B7 without inverting Z: R ≠ ∞ and (e + x_R) mod n == r, i.e. x_R ∈ {c, c + n}
/// (the latter only when c + n < p) with c = (r - e) mod n, checked as X == c·Z².
fn check_x(point: &Jacobian, r: &U256, e: &[u8; 32]) -> bool {
    if point.is_infinity() {
        return false;
    }
    let e = scalar::reduce_once(&scalar::u256_from_be(e));
    let c = scalar::sub_mod_n(r, &e);
    let z2 = point.z.square();
    if point.x == Fe::from_limbs(c).mul(&z2) {
        return true;
    }
    let (c_plus_n, carry) = scalar::add(&c, &N);
    !carry && scalar::lt(&c_plus_n, &P) && point.x == Fe::from_limbs(c_plus_n).mul(&z2)
}

/// Verifies (r, s) over the digest e = SM3(Z_A ‖ M) for a 65-byte uncompressed key.
pub fn verify_digest(public_key: &[u8; 65], e: &[u8; 32], r: &[u8; 32], s: &[u8; 32]) -> bool {
    match PublicKey::from_sec1_uncompressed(public_key) {
        Some(key) => verify_digest_with_key(&key, e, r, s),
        None => false,
    }
}

/// Verifies (r, s) over e for a parsed key (no per-key precomputation).
pub fn verify_digest_with_key(key: &PublicKey, e: &[u8; 32], r: &[u8; 32], s: &[u8; 32]) -> bool {
    let Some((r, s, t)) = check_scalars(r, s) else {
        return false;
    };
    let point = mul_uncached(&s, &t, &key.point);
    check_x(&point, &r, e)
}

/// Verifies a raw 64-byte `r ‖ s` signature over `message` with the default user id
/// (computes Z_A and e). `public_key` is 65-byte uncompressed SEC1.
pub fn verify_message(public_key: &[u8], message: &[u8], signature: &[u8]) -> bool {
    let Some(key) = PublicKey::from_sec1_uncompressed(public_key) else {
        return false;
    };
    let Ok(signature) = <&[u8; 64]>::try_from(signature) else {
        return false;
    };
    let (r, s) = signature.split_at(32);
    let (Ok(r), Ok(s)) = (<&[u8; 32]>::try_from(r), <&[u8; 32]>::try_from(s)) else {
        return false;
    };
    verify_digest_with_key(&key, &key.digest(message), r, s)
}

/// A public key with its own comb table (~16 KiB): verification then needs 31
/// doublings instead of 256. Building costs about two uncached verifications.
pub struct PrecomputedKey {
    key: PublicKey,
    table: CombTable,
}

impl PrecomputedKey {
    /// Builds the key's comb table (~16 KiB; costs about two verifications).
    pub fn new(key: &PublicKey) -> PrecomputedKey {
        // A parsed key is a valid point of order n, so the table always builds; the
        // fallback keeps this panic-free regardless.
        let table = CombTable::new(&key.point).unwrap_or_else(CombTable::empty);
        PrecomputedKey { key: key.clone(), table }
    }

    /// The key.
    pub fn public_key(&self) -> &PublicKey {
        &self.key
    }

    /// `verify_digest` with this key's table.
    pub fn verify_digest(&self, e: &[u8; 32], r: &[u8; 32], s: &[u8; 32]) -> bool {
        let Some((r, s, t)) = check_scalars(r, s) else {
            return false;
        };
        if self.table.is_empty() {
            return check_x(&mul_uncached(&s, &t, &self.key.point), &r, e);
        }
        let point = mul_comb(&s, &t, &self.table);
        check_x(&point, &r, e)
    }
}
