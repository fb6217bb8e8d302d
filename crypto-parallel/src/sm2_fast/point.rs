//! (Internal arithmetic: public only through the hidden `internals` module, for tests
//! and benchmarks; documented where it is defined, not item by item.)
#![allow(missing_docs)]

//! Points of the SM2 recommended curve y^2 = x^3 - 3x + b: affine points for tables,
//! Jacobian (X, Y, Z) ↦ (X/Z^2, Y/Z^3) for accumulation (Z = 0 is the point at infinity).
//! Formulas from the Explicit-Formulas Database (a = -3): the doubling as OpenSSL's
//! `ecp_nistz256_point_double` arranges dbl-2001-b, madd-2007-bl and add-2007-bl (with
//! Z3 from 2·Z1·Z2 rather than (Z1 + Z2)² - Z1² - Z2²: a multiplication for a squaring
//! and two fewer subtractions), with the exceptional cases (infinity, P = ±Q) handled
//! explicitly. Each operation has a form generic over the field arithmetic (`_in`, see
//! `field::Arith`), which the scalar multiplications use, and one that picks it per call.

use crate::sm2_fast::field::{Arith, Fe, batch_invert, with_arith};
use crate::sm2_fast::scalar::u256_from_be;

/// b of the recommended curve (big-endian).
pub const B_BYTES: [u8; 32] =
    hex32("28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93");
pub const GX_BYTES: [u8; 32] =
    hex32("32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7");
pub const GY_BYTES: [u8; 32] =
    hex32("BC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0");

pub(crate) const fn hex32(text: &str) -> [u8; 32] {
    const fn nibble(c: u8) -> u8 {
        match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            _ => panic!("not a hex digit"),
        }
    }
    let bytes = text.as_bytes();
    assert!(bytes.len() == 64);
    let mut out = [0u8; 32];
    let mut i = 0;
    while i < 32 {
        out[i] = (nibble(bytes[2 * i]) << 4) | nibble(bytes[2 * i + 1]);
        i += 1;
    }
    out
}

/// An affine point known to be on the curve and not the point at infinity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Affine {
    pub x: Fe,
    pub y: Fe,
}

#[derive(Clone, Copy, Debug)]
pub struct Jacobian {
    pub x: Fe,
    pub y: Fe,
    pub z: Fe,
}

/// A Jacobian point (never infinity) with Z² and Z³ kept, for a table that is added
/// many times: each addition then saves a squaring and a multiplication.
#[derive(Clone, Copy, Debug)]
pub struct Cached {
    pub x: Fe,
    pub y: Fe,
    pub z: Fe,
    pub zz: Fe,
    pub zzz: Fe,
}

impl Cached {
    /// `None` for infinity.
    pub fn new(p: &Jacobian) -> Option<Cached> {
        if p.is_infinity() {
            return None;
        }
        let zz = p.z.square();
        Some(Cached { x: p.x, y: p.y, z: p.z, zz, zzz: zz.mul(&p.z) })
    }

    #[inline(always)]
    pub fn neg(&self) -> Cached {
        Cached { y: self.y.neg(), ..*self }
    }

    #[inline(always)]
    pub fn to_jacobian(&self) -> Jacobian {
        Jacobian { x: self.x, y: self.y, z: self.z }
    }
}

pub fn curve_b() -> Fe {
    Fe::from_limbs(u256_from_be(&B_BYTES))
}

pub fn generator() -> Affine {
    Affine {
        x: Fe::from_limbs(u256_from_be(&GX_BYTES)),
        y: Fe::from_limbs(u256_from_be(&GY_BYTES)),
    }
}

/// y^2 == x^3 - 3x + b
pub fn is_on_curve(x: &Fe, y: &Fe) -> bool {
    let x2 = x.square();
    let x3 = x2.mul(x);
    let three_x = x.double().add(x);
    let rhs = x3.sub(&three_x).add(&curve_b());
    y.square() == rhs
}

impl Affine {
    #[inline(always)]
    pub fn neg(&self) -> Affine {
        Affine { x: self.x, y: self.y.neg() }
    }
    pub fn to_jacobian(&self) -> Jacobian {
        Jacobian { x: self.x, y: self.y, z: Fe::one() }
    }
}

impl Jacobian {
    pub fn infinity() -> Jacobian {
        Jacobian { x: Fe::one(), y: Fe::one(), z: Fe::ZERO }
    }

    #[inline(always)]
    pub fn is_infinity(&self) -> bool {
        self.z.is_zero()
    }

    #[inline(always)]
    pub fn neg(&self) -> Jacobian {
        Jacobian { x: self.x, y: self.y.neg(), z: self.z }
    }

    /// 2·self for a = -3, arranged as OpenSSL's `ecp_nistz256_point_double`: 4M + 4S
    /// and 10 additions-like operations (dbl-2001-b is 3M + 5S but 15 of them; a
    /// squaring costs about a multiplication here, so the additions decide).
    /// With y2 = 2Y: S = y2² = 4Y², 4·β = X·S, Z3 = y2·Z, 8Y⁴ = S²/2,
    /// α = 3(X - Z²)(X + Z²), X3 = α² - 2·(4β), Y3 = α(4β - X3) - 8Y⁴.
    /// Infinity maps to infinity (Z3 = 2YZ = 0).
    #[inline(always)]
    pub fn double(&self) -> Jacobian {
        with_arith!(f => self.double_in(f))
    }

    /// [`Jacobian::double`] with the arithmetic given.
    #[inline(always)]
    pub fn double_in<F: Arith>(&self, f: F) -> Jacobian {
        let y2 = f.double(&self.y);
        let s = f.square(&y2);
        let z3 = f.mul(&y2, &self.z);
        let delta = f.square(&self.z);
        let beta4 = f.mul(&self.x, &s);
        let y4_8 = f.square(&s).halve();
        let t = f.mul(&f.sub(&self.x, &delta), &f.add(&self.x, &delta));
        let alpha = f.add(&f.double(&t), &t);
        let x3 = f.sub(&f.square(&alpha), &f.double(&beta4));
        let y3 = f.sub(&f.mul(&alpha, &f.sub(&beta4, &x3)), &y4_8);
        Jacobian { x: x3, y: y3, z: z3 }
    }

    /// self + q for a table point with Z², Z³ kept (add-2007-bl, "readdition"): 11M + 3S.
    #[inline(always)]
    pub fn add_cached(&self, q: &Cached) -> Jacobian {
        with_arith!(f => self.add_cached_in(f, q))
    }

    /// [`Jacobian::add_cached`] with the arithmetic given.
    #[inline(always)]
    pub fn add_cached_in<F: Arith>(&self, f: F, q: &Cached) -> Jacobian {
        if self.is_infinity() {
            return q.to_jacobian();
        }
        let z1z1 = f.square(&self.z);
        let u1 = f.mul(&self.x, &q.zz);
        let u2 = f.mul(&q.x, &z1z1);
        let s1 = f.mul(&self.y, &q.zzz);
        let s2 = f.mul(&f.mul(&q.y, &self.z), &z1z1);
        let h = f.sub(&u2, &u1);
        let r = f.double(&f.sub(&s2, &s1));
        if h.is_zero() {
            return if r.is_zero() { self.double_in(f) } else { Jacobian::infinity() };
        }
        let i = f.square(&f.double(&h));
        let j = f.mul(&h, &i);
        let v = f.mul(&u1, &i);
        let x3 = f.sub(&f.sub(&f.square(&r), &j), &f.double(&v));
        let y3 = f.sub(&f.mul(&r, &f.sub(&v, &x3)), &f.double(&f.mul(&s1, &j)));
        // (Z1 + Z2)² - Z1² - Z2² = 2·Z1·Z2.
        let z3 = f.mul(&f.double(&f.mul(&self.z, &q.z)), &h);
        Jacobian { x: x3, y: y3, z: z3 }
    }

    /// self + q with q affine (madd-2007-bl): 8M + 3S.
    #[inline(always)]
    pub fn add_affine(&self, q: &Affine) -> Jacobian {
        with_arith!(f => self.add_affine_in(f, q))
    }

    /// [`Jacobian::add_affine`] with the arithmetic given.
    #[inline(always)]
    pub fn add_affine_in<F: Arith>(&self, f: F, q: &Affine) -> Jacobian {
        if self.is_infinity() {
            return q.to_jacobian();
        }
        let z1z1 = f.square(&self.z);
        let u2 = f.mul(&q.x, &z1z1);
        let s2 = f.mul(&f.mul(&q.y, &self.z), &z1z1);
        let h = f.sub(&u2, &self.x);
        let r = f.double(&f.sub(&s2, &self.y));
        if h.is_zero() {
            return if r.is_zero() { self.double_in(f) } else { Jacobian::infinity() };
        }
        let hh = f.square(&h);
        let i = f.double(&f.double(&hh));
        let j = f.mul(&h, &i);
        let v = f.mul(&self.x, &i);
        let x3 = f.sub(&f.sub(&f.square(&r), &j), &f.double(&v));
        let y3 = f.sub(&f.mul(&r, &f.sub(&v, &x3)), &f.double(&f.mul(&self.y, &j)));
        // (Z1 + H)² - Z1² - H² = 2·Z1·H.
        let z3 = f.double(&f.mul(&self.z, &h));
        Jacobian { x: x3, y: y3, z: z3 }
    }

    /// self + q (add-2007-bl): 12M + 4S, the squaring and multiplication of q's Z² and
    /// Z³ included (`add_cached` without them kept).
    pub fn add(&self, q: &Jacobian) -> Jacobian {
        match Cached::new(q) {
            Some(q) => self.add_cached(&q),
            None => *self,
        }
    }

    /// Affine form; `None` for infinity. (One inversion; tests and tables only.)
    pub fn to_affine(&self) -> Option<Affine> {
        if self.is_infinity() {
            return None;
        }
        let zi = self.z.invert();
        let zi2 = zi.square();
        Some(Affine { x: self.x.mul(&zi2), y: self.y.mul(&zi2).mul(&zi) })
    }
}

/// Converts non-infinity Jacobian points to affine with one inversion.
/// Returns `None` if any input is infinity.
pub fn batch_to_affine(points: &[Jacobian]) -> Option<Vec<Affine>> {
    if points.iter().any(|p| p.is_infinity()) {
        return None;
    }
    let mut zs: Vec<Fe> = points.iter().map(|p| p.z).collect();
    batch_invert(&mut zs);
    Some(
        points
            .iter()
            .zip(zs.iter())
            .map(|(p, zi)| {
                let zi2 = zi.square();
                Affine { x: p.x.mul(&zi2), y: p.y.mul(&zi2).mul(zi) }
            })
            .collect(),
    )
}
