//! Precomputed tables and the two double-scalar multiplications s·G + t·P.
//!
//! - Uncached (`mul_uncached`): one accumulator doubled 256 times (the doublings that
//!   t·P needs anyway); t is recoded as width-5 wNAF over a Jacobian table of
//!   P, 3P, …, 15P built per call, and s as width-`G_WNAF_W` wNAF over a static affine
//!   table of odd multiples of G (mixed additions). G therefore costs no doublings of
//!   its own: only ~256/(G_WNAF_W+1) mixed additions.
//! - Precomputed key (`mul_comb`): both G and P have an 8-tooth comb with spacing 32
//!   (T[j] = Σ_{bit b of j} 2^(32b)·Q, 255 affine points, 16 KiB per point); s·G + t·P
//!   then costs 31 doublings and ≤ 64 mixed additions.

use std::sync::OnceLock;

use crate::sm2_fast::field::{Arith, with_arith};
use crate::sm2_fast::point::{Affine, Cached, Jacobian, batch_to_affine, generator};
use crate::sm2_fast::scalar::{U256, comb_index, wnaf};

/// wNAF width for s·G in the uncached path (2^(w-2) affine points in the static table).
pub const G_WNAF_W: usize = 10;
/// wNAF width for t·P in the uncached path.
pub const P_WNAF_W: usize = 5;

/// The odd multiples 1·Q, 3·Q, …, (2^(w-1) - 1)·Q.
fn odd_multiples_jacobian(q: &Affine, w: usize) -> Vec<Jacobian> {
    let count = 1usize << (w - 2);
    let mut out = Vec::with_capacity(count);
    let q_j = q.to_jacobian();
    let two_q = q_j.double();
    out.push(q_j);
    match Cached::new(&two_q) {
        Some(two_q) => {
            for i in 1..count {
                out.push(out[i - 1].add_cached(&two_q));
            }
        }
        // 2Q = infinity: Q had order 2 (not a point of this prime-order curve).
        None => out.resize(count, Jacobian::infinity()),
    }
    out
}

fn g_wnaf_table() -> &'static [Affine] {
    static TABLE: OnceLock<Vec<Affine>> = OnceLock::new();
    TABLE.get_or_init(|| {
        batch_to_affine(&odd_multiples_jacobian(&generator(), G_WNAF_W))
            .expect("odd multiples of G are never infinity")
    })
}

/// An 8-tooth, spacing-32 comb table for a point Q of order n: entry j - 1 is
/// Σ_{bit b of j} 2^(32b)·Q for j in 1..=255.
pub struct CombTable {
    points: Vec<Affine>,
}

impl CombTable {
    /// Q must be a valid curve point other than infinity (so of prime order n, and
    /// every entry is a non-zero multiple k·Q with k < n).
    /// Returns `None` only if that precondition is violated.
    pub fn new(q: &Affine) -> Option<CombTable> {
        let mut teeth = Vec::with_capacity(8);
        let mut acc = q.to_jacobian();
        for b in 0..8 {
            if b > 0 {
                for _ in 0..32 {
                    acc = acc.double();
                }
            }
            teeth.push(acc);
        }
        let teeth = batch_to_affine(&teeth)?;
        let mut jac: Vec<Jacobian> = Vec::with_capacity(255);
        for j in 1usize..256 {
            let top = usize::BITS as usize - 1 - j.leading_zeros() as usize;
            let rest = j & !(1 << top);
            let p = if rest == 0 {
                teeth[top].to_jacobian()
            } else {
                jac[rest - 1].add_affine(&teeth[top])
            };
            jac.push(p);
        }
        let points = batch_to_affine(&jac)?;
        Some(CombTable { points })
    }

    pub(crate) fn empty() -> CombTable {
        CombTable { points: Vec::new() }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.points.len() != 255
    }

    #[inline(always)]
    fn get(&self, idx: usize) -> Option<&Affine> {
        if idx == 0 { None } else { self.points.get(idx - 1) }
    }
}

pub fn g_comb_table() -> &'static CombTable {
    static TABLE: OnceLock<CombTable> = OnceLock::new();
    TABLE.get_or_init(|| {
        CombTable::new(&generator()).expect("G is a valid point of order n (a constant)")
    })
}

/// Builds the static tables now (otherwise the first verification does it).
pub fn warm_up() {
    let _ = g_wnaf_table();
    let _ = g_comb_table();
}

#[inline(always)]
fn digit_index(d: i32) -> usize {
    (d.unsigned_abs() >> 1) as usize
}

/// s·G + t·P without per-key precomputation.
pub fn mul_uncached(s: &U256, t: &U256, p: &Affine) -> Jacobian {
    with_arith!(f => mul_uncached_in(f, s, t, p))
}

#[inline(always)]
fn mul_uncached_in<F: Arith>(f: F, s: &U256, t: &U256, p: &Affine) -> Jacobian {
    let g_table = g_wnaf_table();
    // Odd multiples k·P (k < 16) of a point of order n are never infinity; were one
    // (an invalid point), the result is infinity, which no signature check accepts.
    let Some(p_table) = odd_multiples_jacobian(p, P_WNAF_W)
        .iter()
        .map(Cached::new)
        .collect::<Option<Vec<Cached>>>()
    else {
        return Jacobian::infinity();
    };
    let (naf_g, top_g) = wnaf(s, G_WNAF_W);
    let (naf_p, top_p) = wnaf(t, P_WNAF_W);
    let top = top_g.max(top_p);
    let mut acc = Jacobian::infinity();
    for i in (0..top).rev() {
        if !acc.is_infinity() {
            acc = acc.double_in(f);
        }
        let dp = naf_p[i];
        if dp != 0
            && let Some(q) = p_table.get(digit_index(dp))
        {
            acc = if dp > 0 { acc.add_cached_in(f, q) } else { acc.add_cached_in(f, &q.neg()) };
        }
        let dg = naf_g[i];
        if dg != 0
            && let Some(q) = g_table.get(digit_index(dg))
        {
            acc = if dg > 0 { acc.add_affine_in(f, q) } else { acc.add_affine_in(f, &q.neg()) };
        }
    }
    acc
}

/// s·G + t·P with P's comb table.
pub fn mul_comb(s: &U256, t: &U256, p_table: &CombTable) -> Jacobian {
    with_arith!(f => mul_comb_in(f, s, t, p_table))
}

#[inline(always)]
fn mul_comb_in<F: Arith>(f: F, s: &U256, t: &U256, p_table: &CombTable) -> Jacobian {
    let g_table = g_comb_table();
    let mut acc = Jacobian::infinity();
    for i in (0..32).rev() {
        if !acc.is_infinity() {
            acc = acc.double_in(f);
        }
        if let Some(q) = g_table.get(comb_index(s, i)) {
            acc = acc.add_affine_in(f, q);
        }
        if let Some(q) = p_table.get(comb_index(t, i)) {
            acc = acc.add_affine_in(f, q);
        }
    }
    acc
}
