//! (Internal arithmetic: public only through the hidden `internals` module, for tests
//! and benchmarks; documented where it is defined, not item by item.)
#![allow(missing_docs)]

//! 256-bit integers (little-endian u64 limbs) and the few operations modulo the group
//! order n that verification needs: range checks, (r + s) mod n, (r - e) mod n, and
//! scalar recodings (wNAF, comb indices). Everything here handles public data only.

/// The group order n of the SM2 recommended curve, little-endian limbs.
pub const N: [u64; 4] =
    [0x53bb_f409_39d5_4123, 0x7203_df6b_21c6_052b, 0xffff_ffff_ffff_ffff, 0xffff_fffe_ffff_ffff];

pub type U256 = [u64; 4];

pub fn u256_from_be(bytes: &[u8; 32]) -> U256 {
    let mut out = [0u64; 4];
    for (i, limb) in out.iter_mut().enumerate() {
        let start = 32 - 8 * (i + 1);
        let mut word = [0u8; 8];
        word.copy_from_slice(&bytes[start..start + 8]);
        *limb = u64::from_be_bytes(word);
    }
    out
}

pub fn u256_to_be(value: &U256) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (i, limb) in value.iter().enumerate() {
        let start = 32 - 8 * (i + 1);
        out[start..start + 8].copy_from_slice(&limb.to_be_bytes());
    }
    out
}

/// a < b
pub fn lt(a: &U256, b: &U256) -> bool {
    for i in (0..4).rev() {
        if a[i] != b[i] {
            return a[i] < b[i];
        }
    }
    false
}

pub fn is_zero(a: &U256) -> bool {
    (a[0] | a[1] | a[2] | a[3]) == 0
}

/// (a + b, carry)
pub fn add(a: &U256, b: &U256) -> (U256, bool) {
    let mut out = [0u64; 4];
    let mut carry = false;
    for i in 0..4 {
        let (s1, c1) = a[i].overflowing_add(b[i]);
        let (s2, c2) = s1.overflowing_add(carry as u64);
        out[i] = s2;
        carry = c1 | c2;
    }
    (out, carry)
}

/// (a - b, borrow)
pub fn sub(a: &U256, b: &U256) -> (U256, bool) {
    let mut out = [0u64; 4];
    let mut borrow = false;
    for i in 0..4 {
        let (d1, b1) = a[i].overflowing_sub(b[i]);
        let (d2, b2) = d1.overflowing_sub(borrow as u64);
        out[i] = d2;
        borrow = b1 | b2;
    }
    (out, borrow)
}

/// Any 256-bit value reduced mod n (2^256 < 2n, so one subtraction suffices).
pub fn reduce_once(a: &U256) -> U256 {
    if lt(a, &N) { *a } else { sub(a, &N).0 }
}

/// (a + b) mod n for a, b < n.
pub fn add_mod_n(a: &U256, b: &U256) -> U256 {
    let (sum, carry) = add(a, b);
    if carry || !lt(&sum, &N) { sub(&sum, &N).0 } else { sum }
}

/// (a - b) mod n for a, b < n.
pub fn sub_mod_n(a: &U256, b: &U256) -> U256 {
    let (diff, borrow) = sub(a, b);
    if borrow { add(&diff, &N).0 } else { diff }
}

#[inline(always)]
pub fn bit(k: &U256, i: usize) -> u32 {
    if i >= 256 { 0 } else { ((k[i >> 6] >> (i & 63)) & 1) as u32 }
}

/// `count` (≤ 32) bits of k starting at bit `start`.
#[inline(always)]
fn bits(k: &U256, start: usize, count: usize) -> u32 {
    if start >= 256 {
        return 0;
    }
    let limb = start >> 6;
    let shift = start & 63;
    let mut v = k[limb] >> shift;
    if shift + count > 64 && limb + 1 < 4 {
        v |= k[limb + 1] << (64 - shift);
    }
    (v & ((1u64 << count) - 1)) as u32
}

/// Length of a wNAF digit array (256 bits plus the final carry, for w ≤ 15).
pub const NAF_LEN: usize = 272;

/// Width-`w` NAF of k (2 ≤ w ≤ 15): digits each 0 or odd in (-2^(w-1), 2^(w-1)), with
/// k = Σ digit[i]·2^i. Returns the digits and the index of the highest non-zero digit + 1.
pub fn wnaf(k: &U256, w: usize) -> ([i32; NAF_LEN], usize) {
    let mut naf = [0i32; NAF_LEN];
    let mut carry = 0u32;
    let mut i = 0usize;
    let mut top = 0usize;
    while i < 256 || carry != 0 {
        if bit(k, i) == carry {
            i += 1;
            continue;
        }
        let mut word = bits(k, i, w) as i32 + carry as i32;
        carry = ((word >> (w - 1)) & 1) as u32;
        word -= (carry as i32) << w;
        naf[i] = word;
        top = i + 1;
        i += w;
    }
    (naf, top)
}

/// Comb index for the 8-tooth, spacing-32 comb: bit b of the result is bit (32·b + i) of k.
#[inline(always)]
pub fn comb_index(k: &U256, i: usize) -> usize {
    let mut idx = 0usize;
    for b in 0..8 {
        let pos = 32 * b + i;
        idx |= (((k[pos >> 6] >> (pos & 63)) & 1) as usize) << b;
    }
    idx
}
