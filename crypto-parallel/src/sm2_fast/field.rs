//! (Internal arithmetic: public only through the hidden `internals` module, for tests
//! and benchmarks; documented where it is defined, not item by item.)
#![allow(missing_docs)]

//! The SM2 base field GF(p), p = 2^256 - 2^224 - 2^96 + 2^64 - 1, on fiat-crypto's
//! formally verified Montgomery arithmetic (`fiat_crypto::sm2_64`). Variable-time helpers
//! (`is_zero`, `==`, `invert`) are fine here: verification handles only public data.

use fiat_crypto::sm2_64::*;

/// Whether `mul`/`square` use the specialised reduction in `fastmul` (differentially
/// tested against fiat) instead of fiat's generic word-by-word Montgomery code.
pub const SPECIALISED: bool = false;

/// A field element in the Montgomery domain, fully reduced (< p) as fiat guarantees.
#[derive(Clone, Copy, Debug)]
pub struct Fe(pub(crate) [u64; 4]);

/// p, little-endian limbs.
pub const P: [u64; 4] =
    [0xffff_ffff_ffff_ffff, 0xffff_ffff_0000_0000, 0xffff_ffff_ffff_ffff, 0xffff_fffe_ffff_ffff];

#[inline(always)]
fn m(a: &Fe) -> fiat_sm2_montgomery_domain_field_element {
    fiat_sm2_montgomery_domain_field_element(a.0)
}

/// Runs `$body` with `$f` bound to the arithmetic chosen now: the assembly where it is
/// usable, else the portable code. The body is compiled once per backend.
macro_rules! with_arith {
    ($f:ident => $body:expr) => {{
        #[cfg(target_arch = "x86_64")]
        {
            if let Some($f) = $crate::sm2_fast::field::Assembly::get() {
                $body
            } else {
                let $f = $crate::sm2_fast::field::Portable;
                $body
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let $f = $crate::sm2_fast::field::Portable;
            $body
        }
    }};
}
pub(crate) use with_arith;

impl Fe {
    pub const ZERO: Fe = Fe([0; 4]);

    pub fn one() -> Fe {
        let mut out = fiat_sm2_montgomery_domain_field_element([0; 4]);
        fiat_sm2_set_one(&mut out);
        Fe(out.0)
    }

    /// From little-endian limbs of an integer `< p` (caller checks the bound).
    #[inline]
    pub fn from_limbs(limbs: [u64; 4]) -> Fe {
        let mut out = fiat_sm2_montgomery_domain_field_element([0; 4]);
        fiat_sm2_to_montgomery(&mut out, &fiat_sm2_non_montgomery_domain_field_element(limbs));
        Fe(out.0)
    }

    /// From 32 big-endian bytes; `None` unless the value is `< p`.
    pub fn from_be_bytes(bytes: &[u8; 32]) -> Option<Fe> {
        let limbs = crate::sm2_fast::scalar::u256_from_be(bytes);
        if !crate::sm2_fast::scalar::lt(&limbs, &P) {
            return None;
        }
        Some(Fe::from_limbs(limbs))
    }

    /// The canonical integer (little-endian limbs, `< p`).
    pub fn to_limbs(&self) -> [u64; 4] {
        let mut out = fiat_sm2_non_montgomery_domain_field_element([0; 4]);
        fiat_sm2_from_montgomery(&mut out, &m(self));
        out.0
    }

    #[inline(always)]
    pub fn mul(&self, rhs: &Fe) -> Fe {
        with_arith!(f => f.mul(self, rhs))
    }

    /// fiat-crypto's verified multiplication (the reference for `mul`).
    #[inline(always)]
    pub fn mul_fiat(&self, rhs: &Fe) -> Fe {
        let mut out = fiat_sm2_montgomery_domain_field_element([0; 4]);
        fiat_sm2_mul(&mut out, &m(self), &m(rhs));
        Fe(out.0)
    }

    #[inline(always)]
    pub fn square(&self) -> Fe {
        with_arith!(f => f.square(self))
    }

    /// fiat-crypto's verified squaring (the reference for `square`).
    #[inline(always)]
    pub fn square_fiat(&self) -> Fe {
        let mut out = fiat_sm2_montgomery_domain_field_element([0; 4]);
        fiat_sm2_square(&mut out, &m(self));
        Fe(out.0)
    }

    #[inline(always)]
    pub fn add(&self, rhs: &Fe) -> Fe {
        with_arith!(f => f.add(self, rhs))
    }

    /// fiat-crypto's verified addition (the reference for `add`).
    #[inline(always)]
    pub fn add_fiat(&self, rhs: &Fe) -> Fe {
        let mut out = fiat_sm2_montgomery_domain_field_element([0; 4]);
        fiat_sm2_add(&mut out, &m(self), &m(rhs));
        Fe(out.0)
    }

    #[inline(always)]
    pub fn sub(&self, rhs: &Fe) -> Fe {
        with_arith!(f => f.sub(self, rhs))
    }

    /// fiat-crypto's verified subtraction (the reference for `sub`).
    #[inline(always)]
    pub fn sub_fiat(&self, rhs: &Fe) -> Fe {
        let mut out = fiat_sm2_montgomery_domain_field_element([0; 4]);
        fiat_sm2_sub(&mut out, &m(self), &m(rhs));
        Fe(out.0)
    }

    /// -a mod p (0 - a: fiat's `opp` computes the same).
    #[inline(always)]
    pub fn neg(&self) -> Fe {
        with_arith!(f => f.neg(self))
    }

    #[inline(always)]
    pub fn double(&self) -> Fe {
        self.add(self)
    }

    /// a / 2 mod p: a + p if a is odd (then even), shifted right by one; below p
    /// either way for a < p. Plain Rust on both paths (the compiler emits add-with-carry
    /// and shift chains); linear, so the Montgomery domain does not matter.
    #[inline(always)]
    pub fn halve(&self) -> Fe {
        let a = self.0;
        let mask = 0u64.wrapping_sub(a[0] & 1);
        let mut t = [0u64; 4];
        let mut carry = 0u128;
        for i in 0..4 {
            let sum = a[i] as u128 + (P[i] & mask) as u128 + carry;
            t[i] = sum as u64;
            carry = sum >> 64;
        }
        let top = carry as u64;
        Fe([
            (t[0] >> 1) | (t[1] << 63),
            (t[1] >> 1) | (t[2] << 63),
            (t[2] >> 1) | (t[3] << 63),
            (t[3] >> 1) | (top << 63),
        ])
    }

    #[inline(always)]
    pub fn is_zero(&self) -> bool {
        (self.0[0] | self.0[1] | self.0[2] | self.0[3]) == 0
    }

    /// a^(p-2) by square-and-multiply (variable time; used only when building tables).
    pub fn invert(&self) -> Fe {
        // p - 2
        let e: [u64; 4] = [P[0] - 2, P[1], P[2], P[3]];
        let mut acc = Fe::one();
        for limb in (0..4).rev() {
            for bit in (0..64).rev() {
                acc = acc.square();
                if (e[limb] >> bit) & 1 == 1 {
                    acc = acc.mul(self);
                }
            }
        }
        acc
    }
}

/// The field operations the point formulas are written against, so that the choice of
/// arithmetic is made once per scalar multiplication instead of before every field
/// operation (`Fe::mul` and friends check the backend each time: a load, a compare and
/// a branch, and the portable path inlined beside the assembly). Each backend computes
/// exactly what `Fe`'s methods compute.
pub trait Arith: Copy {
    fn mul(self, a: &Fe, b: &Fe) -> Fe;
    fn square(self, a: &Fe) -> Fe;
    fn add(self, a: &Fe, b: &Fe) -> Fe;
    fn sub(self, a: &Fe, b: &Fe) -> Fe;
    #[inline(always)]
    fn double(self, a: &Fe) -> Fe {
        self.add(a, a)
    }
    #[inline(always)]
    fn neg(self, a: &Fe) -> Fe {
        self.sub(&Fe::ZERO, a)
    }
}

/// fiat-crypto's verified arithmetic (the `SPECIALISED` multiplication when that is on).
#[derive(Clone, Copy, Debug)]
pub struct Portable;

impl Arith for Portable {
    #[inline(always)]
    fn mul(self, a: &Fe, b: &Fe) -> Fe {
        if SPECIALISED {
            return Fe(crate::sm2_fast::fastmul::mont_mul(&a.0, &b.0));
        }
        a.mul_fiat(b)
    }
    #[inline(always)]
    fn square(self, a: &Fe) -> Fe {
        if SPECIALISED {
            return Fe(crate::sm2_fast::fastmul::mont_square(&a.0));
        }
        a.square_fiat()
    }
    #[inline(always)]
    fn add(self, a: &Fe, b: &Fe) -> Fe {
        a.add_fiat(b)
    }
    #[inline(always)]
    fn sub(self, a: &Fe, b: &Fe) -> Fe {
        a.sub_fiat(b)
    }
}

/// The mulx/adx assembly (`mulx`). A value of this type exists only where
/// [`Assembly::get`] found the assembly usable, so holding one is the proof the
/// assembly's preconditions need.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy, Debug)]
pub struct Assembly(());

#[cfg(target_arch = "x86_64")]
impl Assembly {
    /// `Some` when this CPU has BMI2 and ADX and the portable path is not forced.
    #[inline(always)]
    pub fn get() -> Option<Assembly> {
        crate::sm2_fast::mulx::available().then_some(Assembly(()))
    }
}

#[cfg(target_arch = "x86_64")]
impl Arith for Assembly {
    #[inline(always)]
    fn mul(self, a: &Fe, b: &Fe) -> Fe {
        Fe(crate::sm2_fast::mulx::mont_mul(&a.0, &b.0))
    }
    #[inline(always)]
    fn square(self, a: &Fe) -> Fe {
        Fe(crate::sm2_fast::mulx::mont_square(&a.0))
    }
    #[inline(always)]
    fn add(self, a: &Fe, b: &Fe) -> Fe {
        Fe(crate::sm2_fast::mulx::add(&a.0, &b.0))
    }
    #[inline(always)]
    fn sub(self, a: &Fe, b: &Fe) -> Fe {
        Fe(crate::sm2_fast::mulx::sub(&a.0, &b.0))
    }
}

impl PartialEq for Fe {
    // Representations are canonical (< p), so limb equality is field equality.
    fn eq(&self, other: &Fe) -> bool {
        self.0 == other.0
    }
}
impl Eq for Fe {}

/// Inverts every element in place with one field inversion (Montgomery's trick).
/// All inputs must be non-zero.
pub fn batch_invert(values: &mut [Fe]) {
    if values.is_empty() {
        return;
    }
    let mut prefix = Vec::with_capacity(values.len());
    let mut acc = Fe::one();
    for v in values.iter() {
        prefix.push(acc);
        acc = acc.mul(v);
    }
    let mut inv = acc.invert();
    for i in (0..values.len()).rev() {
        let next = inv.mul(&values[i]);
        values[i] = inv.mul(&prefix[i]);
        inv = next;
    }
}
