//! Montgomery multiplication specialised to p = 2^256 - 2^224 - 2^96 + 2^64 - 1
//! (-p^-1 mod 2^64 = 1, so each quotient digit is the low limb itself). Same domain
//! and outputs as fiat's `fiat_sm2_mul`; checked against it in tests/edge.rs.

use crate::sm2_fast::field::P;

#[inline(always)]
fn mac(acc: u64, a: u64, b: u64, carry: u64) -> (u64, u64) {
    let t = (acc as u128) + (a as u128) * (b as u128) + (carry as u128);
    (t as u64, (t >> 64) as u64)
}

#[inline(always)]
fn adc(a: u64, b: u64, carry: u64) -> (u64, u64) {
    let t = (a as u128) + (b as u128) + (carry as u128);
    (t as u64, (t >> 64) as u64)
}

/// One Montgomery reduction step on (t0..t4): adds q·p with q = t0, shifts by 64.
/// Returns the 5 limbs (the 5th being a carry ≤ 1 combined later).
#[inline(always)]
fn reduce_step(t: [u64; 5]) -> [u64; 4 + 1] {
    let q = t[0];
    // q·p = q·2^256 - q·2^224 - q·2^96 + q·2^64 - q, so t0 + q·p ≡ 0 (mod 2^64) and
    // (t + q·p)/2^64 = t[1..] + q·(2^192 - 2^160 - 2^32 + 1): no multiplications.
    let lo = (q as u128) << 32; // q·2^32 (≤ 96 bits)
    let lo0 = lo as u64;
    let lo1 = (lo >> 64) as u64;
    // Compute A = q·2^192 + q, B = q·2^160 + q·2^32, result = A - B (non-negative).
    let a = [q, 0, 0, q];
    let b = [lo0, lo1, lo0, lo1]; // q·2^32 at limb 0..1, q·2^160 = (q·2^32)·2^128 at limb 2..3
    let (d0, br) = a[0].overflowing_sub(b[0]);
    let (d1, br1) = sbb(a[1], b[1], br as u64);
    let (d2, br2) = sbb(a[2], b[2], br1);
    let (d3, _br3) = sbb(a[3], b[3], br2);
    // (T + q·p) / 2^64 = t[1..5] + d, with d = q·(2^192 - 2^160 - 2^32 + 1) = A - B ≥ 0.
    let (r0, c) = adc(t[1], d0, 0);
    let (r1, c) = adc(t[2], d1, c);
    let (r2, c) = adc(t[3], d2, c);
    let (r3, c) = adc(t[4], d3, c);
    [r0, r1, r2, r3, c]
}

#[inline(always)]
fn sbb(a: u64, b: u64, borrow: u64) -> (u64, u64) {
    let t = (a as u128).wrapping_sub(b as u128).wrapping_sub(borrow as u128);
    (t as u64, ((t >> 64) as u64) & 1)
}

#[inline(always)]
pub fn mont_mul(a: &[u64; 4], b: &[u64; 4]) -> [u64; 4] {
    // Schoolbook 4x4 → 8 limbs.
    let mut t = [0u64; 8];
    for i in 0..4 {
        let mut carry = 0u64;
        for j in 0..4 {
            let (v, c) = mac(t[i + j], a[i], b[j], carry);
            t[i + j] = v;
            carry = c;
        }
        t[i + 4] = carry;
    }
    reduce(t)
}

#[inline(always)]
pub fn mont_square(a: &[u64; 4]) -> [u64; 4] {
    // Off-diagonal products once, doubled, plus squares.
    let mut t = [0u64; 8];
    for i in 0..3 {
        let mut carry = 0u64;
        for j in (i + 1)..4 {
            let (v, c) = mac(t[i + j], a[i], a[j], carry);
            t[i + j] = v;
            carry = c;
        }
        t[i + 4] = carry;
    }
    let mut top = 0u64;
    for limb in t.iter_mut() {
        let next = *limb >> 63;
        *limb = (*limb << 1) | top;
        top = next;
    }
    let mut carry = 0u64;
    for i in 0..4 {
        let sq = (a[i] as u128) * (a[i] as u128);
        let (v, c) = adc(t[2 * i], sq as u64, carry);
        t[2 * i] = v;
        let (v, c2) = adc(t[2 * i + 1], (sq >> 64) as u64, c);
        t[2 * i + 1] = v;
        carry = c2;
    }
    reduce(t)
}

#[inline(always)]
fn reduce(t: [u64; 8]) -> [u64; 4] {
    // Four steps; each consumes the low limb. Carries out of step k join limb t[k+5].
    let s = reduce_step([t[0], t[1], t[2], t[3], t[4]]);
    let (x5, c) = adc(t[5], s[4], 0);
    let s = reduce_step([s[0], s[1], s[2], s[3], x5]);
    let (x6, c) = adc(t[6], s[4], c);
    let s = reduce_step([s[0], s[1], s[2], s[3], x6]);
    let (x7, c) = adc(t[7], s[4], c);
    let s = reduce_step([s[0], s[1], s[2], s[3], x7]);
    let top = s[4] + c; // value = s[0..4] + top·2^256 < 2p
    let r = [s[0], s[1], s[2], s[3]];
    let (d0, b0) = sbb(r[0], P[0], 0);
    let (d1, b1) = sbb(r[1], P[1], b0);
    let (d2, b2) = sbb(r[2], P[2], b1);
    let (d3, b3) = sbb(r[3], P[3], b2);
    // Subtract p unless (no top carry and a borrow occurred), i.e. unless r < p.
    if top == 0 && b3 == 1 { r } else { [d0, d1, d2, d3] }
}
