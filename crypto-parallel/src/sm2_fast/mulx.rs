//! The SM2 field mod p = 2^256 - 2^224 - 2^96 + 2^64 - 1 in x86-64 assembly:
//! Montgomery multiplication and squaring with BMI2 `mulx` and ADX `adcx`/`adox` (two
//! independent carry chains), addition and subtraction. Used when the CPU has BMI2 and
//! ADX and the portable path is not forced (checked once at run time; `Fe` falls back to
//! fiat otherwise). Same domain and outputs as fiat's `fiat_sm2_mul`, `_square`, `_add`
//! and `_sub` (a·b·2^-256 mod p etc., fully reduced); checked against them on edge
//! cases and millions of random inputs in tests/sm2_fast.
//!
//! Method: the 512-bit product first (product scanning row by row: low halves of the
//! `mulx` products on the CF chain, high halves on the OF chain), then four "short"
//! Montgomery reduction steps on its low half only, then the high half added and one
//! conditional subtraction of p. Because -p^-1 ≡ 1 (mod 2^64) each quotient digit is
//! the low limb q itself, and a step is
//! (L + q·p) / 2^64 = L[1..] + q·2^192 + q - q·2^32 - q·2^160,
//! done with shifts and one borrow chain (see `montreds!`): 8 arithmetic instructions
//! and no carry limb. The idea, reducing the low half in place and reusing q's register
//! as the new top limb, is the one AWS's formally verified s2n-bignum uses for this
//! prime; the code here is our own. With a, b < p the reduced low half is at most p and
//! the high half below p, so their sum is at most 2p and one conditional subtraction
//! makes it canonical.
//!
//! The multiplication takes both operands through pointers: product, accumulator and
//! scratch need all 13 general registers inline assembly may use. Additions and
//! subtractions take theirs in registers.
//!
//! Instruction counts matter more than latency here: the multiplication is limited by
//! the ALUs (on the Zen 3 machine four independent multiplications took as long each as
//! a dependent chain of them), and this arrangement has about a fifth fewer micro-ops
//! than the earlier interleaved one (12-instruction reduction steps with a carry limb).

#![allow(unsafe_code)]

use std::sync::atomic::{AtomicU8, Ordering};

const UNKNOWN: u8 = 0;
const ASSEMBLY: u8 = 1;
const PORTABLE: u8 = 2;

/// Which multiplication `Fe::mul` uses: detected once, or forced portable by
/// [`force_portable`] (tests and benchmarks compare both paths in one process).
static MODE: AtomicU8 = AtomicU8::new(UNKNOWN);

/// Whether [`mont_mul`] is to be used: this CPU has BMI2 and ADX, and the portable path
/// is not forced. One relaxed load after the first call.
#[inline(always)]
pub fn available() -> bool {
    match MODE.load(Ordering::Relaxed) {
        ASSEMBLY => true,
        PORTABLE => false,
        _ => detect(),
    }
}

/// The environment variable that forces the portable path (value `portable`): a switch
/// for operators who suspect the assembly, and how CI runs the tests on both paths.
pub const ENV_FIELD: &str = "POLYLEDGER_SM2_FIELD";

#[cold]
fn detect() -> bool {
    let forced = std::env::var(ENV_FIELD).is_ok_and(|v| v.eq_ignore_ascii_case("portable"));
    let has = !forced && cpu_supports();
    MODE.store(if has { ASSEMBLY } else { PORTABLE }, Ordering::Relaxed);
    has
}

/// Forces fiat's portable multiplication (`true`), or goes back to detecting (`false`).
pub fn force_portable(on: bool) {
    MODE.store(if on { PORTABLE } else { UNKNOWN }, Ordering::Relaxed);
}

/// Whether the CPU could run the assembly at all (whatever is forced).
pub fn cpu_supports() -> bool {
    std::is_x86_feature_detected!("bmi2") && std::is_x86_feature_detected!("adx")
}

/// One Montgomery reduction step on the low half of a product, in assembly text:
/// with q = d0, `[d0; d3; d2; d1]` becomes `([d3; d2; d1; d0] + q·p) / 2^64`, using
/// `{lo}`, `{hi}`, `rdx` and `{a}` as scratch.
///
/// Because -p^-1 ≡ 1 (mod 2^64) the quotient digit is q = d0 itself, and as
/// d0 + q·(2^64 - 1) = q·2^64 the step is
/// `[d3; d2; d1] + q·2^192 + q - q·2^32 - q·2^160`. The register that held q becomes
/// the new top limb (its q·2^192 term), and the other three terms are one subtraction
/// of `[q·2^32 ; q·2^32 - q]` (two 128-bit halves), so one borrow chain and no carry
/// limb: 8 arithmetic instructions, against 12 when q and q·2^192 are added separately
/// and the rest subtracted. The result is non-negative and below 2^192 + p < 2^256
/// (for any 256-bit input), so the chain never borrows out of the top limb.
macro_rules! montreds {
    ($d3:literal, $d2:literal, $d1:literal, $d0:literal) => {
        concat!(
            "mov {lo}, {",
            $d0,
            "}\n",
            "shl {lo}, 32\n",
            "mov {hi}, {",
            $d0,
            "}\n",
            "shr {hi}, 32\n",
            // (a : rdx) = q·2^32, (hi : lo) = q·2^32 - q.
            "mov rdx, {lo}\n",
            "mov {a}, {hi}\n",
            "sub {lo}, {",
            $d0,
            "}\n",
            "sbb {hi}, 0\n",
            "sub {",
            $d1,
            "}, {lo}\n",
            "sbb {",
            $d2,
            "}, {hi}\n",
            "sbb {",
            $d3,
            "}, rdx\n",
            "sbb {",
            $d0,
            "}, {a}\n",
        )
    };
}

/// The end of a multiplication or squaring: the reduced low half `[t3; t2; t1; t0]`
/// (at most p) plus the high half `[t7; t6; t5; t4]` (below p) is r ≤ 2p in
/// `[lo; t7; t6; t5; t4]`; then r + (2^320 - p) carries out of the fifth limb exactly
/// when r ≥ p, and in that case its low four limbs are r - p. The result is left in
/// `[t7; t6; t5; t4]`, below p. 2^320 - p = [2^64 - 1; 2^32; 0; 2^32 - 1; 1].
macro_rules! add_high_and_reduce {
    () => {
        concat!(
            "xor {lo:e}, {lo:e}\n",
            "add {t4}, {t0}\n",
            "adc {t5}, {t1}\n",
            "adc {t6}, {t2}\n",
            "adc {t7}, {t3}\n",
            "adc {lo}, 0\n",
            "mov {t1}, 0xffffffff\n",
            "mov {t3}, 0x100000000\n",
            "mov {t0}, {t4}\n",
            "mov {t2}, {t6}\n",
            "add {t0}, 1\n",
            "adc {t1}, {t5}\n",
            "adc {t2}, 0\n",
            "adc {t3}, {t7}\n",
            "adc {lo}, -1\n",
            "cmovc {t4}, {t0}\n",
            "cmovc {t5}, {t1}\n",
            "cmovc {t6}, {t2}\n",
            "cmovc {t7}, {t3}\n",
        )
    };
}

/// The product `[t7; …; t0]` to its canonical Montgomery reduction in `[t7; t6; t5; t4]`:
/// four `montreds!` steps rotate the reduced low half back to (t0..t3), then
/// `add_high_and_reduce!`. Shared by the multiplication and the squaring.
macro_rules! reduce_product {
    () => {
        concat!(
            montreds!("t3", "t2", "t1", "t0"),
            montreds!("t0", "t3", "t2", "t1"),
            montreds!("t1", "t0", "t3", "t2"),
            montreds!("t2", "t1", "t0", "t3"),
            add_high_and_reduce!(),
        )
    };
}

/// a·b·2^-256 mod p for a, b < p (Montgomery domain). Callers must have checked
/// [`available`]; the inputs must be canonical (< p), as every `Fe` is.
///
/// The 512-bit product first (row by row: low halves of the `mulx` products on the CF
/// chain, high halves on the OF chain), then four short reduction steps on its low
/// half (`montreds!`), then the high half added and one conditional subtraction. With
/// a, b < p: the reduced low half (L + Q·p)/2^256 is at most p and the high half is
/// below p, so the sum is at most 2p and one subtraction makes it canonical.
#[inline(always)]
pub fn mont_mul(a: &[u64; 4], b: &[u64; 4]) -> [u64; 4] {
    debug_assert!(cpu_supports());
    let (r0, r1, r2, r3): (u64, u64, u64, u64);
    // SAFETY: the assembly reads exactly 32 bytes through each of `a` and `b`, valid,
    // aligned references to `[u64; 4]` for the whole block; it writes only the
    // registers declared below (every one an output or a discarded in/out, so the
    // compiler keeps nothing live in them), touches no other memory and no stack
    // (`nostack`, `readonly`), and its result depends only on the inputs (`pure`). The
    // flags it changes are clobbered by default (no `preserves_flags`). The only
    // instructions beyond x86-64's base set are `mulx` (BMI2) and `adcx`/`adox` (ADX);
    // `mont_mul` is reached only after `available()` saw both features on this CPU (it
    // never says yes otherwise), so none of them can fault.
    unsafe {
        core::arch::asm!(
            // Row 0: (t0..t4) = a·b0.
            "mov rdx, qword ptr [{b}]",
            "mulx {t1}, {t0}, qword ptr [{a}]",
            "mulx {t2}, {lo}, qword ptr [{a} + 8]",
            "add {t1}, {lo}",
            "mulx {t3}, {lo}, qword ptr [{a} + 16]",
            "adc {t2}, {lo}",
            "mulx {t4}, {lo}, qword ptr [{a} + 24]",
            "adc {t3}, {lo}",
            "adc {t4}, 0",
            // Row 1: (t1..t5) += a·b1. `xor` clears CF and OF; the row's two pending
            // carries go into the new top limb, which cannot overflow (the sum so far
            // is below 2^384).
            "xor {lo:e}, {lo:e}",
            "mov rdx, qword ptr [{b} + 8]",
            "mulx {hi}, {lo}, qword ptr [{a}]",
            "adcx {t1}, {lo}",
            "adox {t2}, {hi}",
            "mulx {hi}, {lo}, qword ptr [{a} + 8]",
            "adcx {t2}, {lo}",
            "adox {t3}, {hi}",
            "mulx {hi}, {lo}, qword ptr [{a} + 16]",
            "adcx {t3}, {lo}",
            "adox {t4}, {hi}",
            "mulx {t5}, {lo}, qword ptr [{a} + 24]",
            "adcx {t4}, {lo}",
            "mov edx, 0",
            "adcx {t5}, rdx",
            "adox {t5}, rdx",
            // Row 2: (t2..t6) += a·b2.
            "xor {lo:e}, {lo:e}",
            "mov rdx, qword ptr [{b} + 16]",
            "mulx {hi}, {lo}, qword ptr [{a}]",
            "adcx {t2}, {lo}",
            "adox {t3}, {hi}",
            "mulx {hi}, {lo}, qword ptr [{a} + 8]",
            "adcx {t3}, {lo}",
            "adox {t4}, {hi}",
            "mulx {hi}, {lo}, qword ptr [{a} + 16]",
            "adcx {t4}, {lo}",
            "adox {t5}, {hi}",
            "mulx {t6}, {lo}, qword ptr [{a} + 24]",
            "adcx {t5}, {lo}",
            "mov edx, 0",
            "adcx {t6}, rdx",
            "adox {t6}, rdx",
            // Row 3: (t3..t7) += a·b3.
            "xor {lo:e}, {lo:e}",
            "mov rdx, qword ptr [{b} + 24]",
            "mulx {hi}, {lo}, qword ptr [{a}]",
            "adcx {t3}, {lo}",
            "adox {t4}, {hi}",
            "mulx {hi}, {lo}, qword ptr [{a} + 8]",
            "adcx {t4}, {lo}",
            "adox {t5}, {hi}",
            "mulx {hi}, {lo}, qword ptr [{a} + 16]",
            "adcx {t5}, {lo}",
            "adox {t6}, {hi}",
            "mulx {t7}, {lo}, qword ptr [{a} + 24]",
            "adcx {t6}, {lo}",
            "mov edx, 0",
            "adcx {t7}, rdx",
            "adox {t7}, rdx",
            reduce_product!(),
            a = inout(reg) a.as_ptr() => _,
            b = in(reg) b.as_ptr(),
            lo = out(reg) _,
            hi = out(reg) _,
            t0 = out(reg) _,
            t1 = out(reg) _,
            t2 = out(reg) _,
            t3 = out(reg) _,
            t4 = out(reg) r0,
            t5 = out(reg) r1,
            t6 = out(reg) r2,
            t7 = out(reg) r3,
            out("rdx") _,
            options(pure, readonly, nostack),
        );
    }
    [r0, r1, r2, r3]
}

/// a² · 2^-256 mod p for a < p: like [`mont_mul`] with a = b, but the six cross products
/// are computed once and doubled (10 `mulx` instead of 16); the reduction and the final
/// subtraction are the same. Same preconditions as [`mont_mul`].
#[inline(always)]
pub fn mont_square(a: &[u64; 4]) -> [u64; 4] {
    debug_assert!(cpu_supports());
    let (r0, r1, r2, r3): (u64, u64, u64, u64);
    // SAFETY: as for `mont_mul`: reads 32 bytes through the valid reference `a`, writes
    // only the declared registers, no other memory, no stack; BMI2/ADX were detected
    // before any call (`available()`).
    unsafe {
        core::arch::asm!(
            // Cross products a_i·a_j (i < j) into (t1..t6).
            "mov rdx, qword ptr [{a}]",
            "mulx {t2}, {t1}, qword ptr [{a} + 8]",
            "mulx {t3}, {lo}, qword ptr [{a} + 16]",
            "add {t2}, {lo}",
            "mulx {t4}, {lo}, qword ptr [{a} + 24]",
            "adc {t3}, {lo}",
            "adc {t4}, 0",
            "mov rdx, qword ptr [{a} + 8]",
            "xor {t5:e}, {t5:e}",
            "mulx {hi}, {lo}, qword ptr [{a} + 16]",
            "adcx {t3}, {lo}",
            "adox {t4}, {hi}",
            "mulx {hi}, {lo}, qword ptr [{a} + 24]",
            "adcx {t4}, {lo}",
            "adox {t5}, {hi}",
            "mov {t6}, 0",
            "adcx {t5}, {t6}",
            "mov rdx, qword ptr [{a} + 16]",
            "mulx {t6}, {lo}, qword ptr [{a} + 24]",
            "add {t5}, {lo}",
            "adc {t6}, 0",
            // Doubled: (t1..t7) = 2·cross.
            "xor {t7:e}, {t7:e}",
            "add {t1}, {t1}",
            "adc {t2}, {t2}",
            "adc {t3}, {t3}",
            "adc {t4}, {t4}",
            "adc {t5}, {t5}",
            "adc {t6}, {t6}",
            "adc {t7}, 0",
            // Plus the squares a_i² at limbs 2i, 2i+1: T = (t0..t7).
            "mov rdx, qword ptr [{a}]",
            "mulx {hi}, {t0}, rdx",
            "add {t1}, {hi}",
            "mov rdx, qword ptr [{a} + 8]",
            "mulx {hi}, {lo}, rdx",
            "adc {t2}, {lo}",
            "adc {t3}, {hi}",
            "mov rdx, qword ptr [{a} + 16]",
            "mulx {hi}, {lo}, rdx",
            "adc {t4}, {lo}",
            "adc {t5}, {hi}",
            "mov rdx, qword ptr [{a} + 24]",
            "mulx {hi}, {lo}, rdx",
            "adc {t6}, {lo}",
            "adc {t7}, {hi}",
            reduce_product!(),
            a = inout(reg) a.as_ptr() => _,
            lo = out(reg) _,
            hi = out(reg) _,
            t0 = out(reg) _,
            t1 = out(reg) _,
            t2 = out(reg) _,
            t3 = out(reg) _,
            t4 = out(reg) r0,
            t5 = out(reg) r1,
            t6 = out(reg) r2,
            t7 = out(reg) r3,
            out("rdx") _,
            options(pure, readonly, nostack),
        );
    }
    [r0, r1, r2, r3]
}

/// a + b mod p for a, b < p (any domain). Base x86-64 only; gated with the rest.
#[inline(always)]
pub fn add(a: &[u64; 4], b: &[u64; 4]) -> [u64; 4] {
    let (mut r0, mut r1, mut r2, mut r3) = (a[0], a[1], a[2], a[3]);
    // SAFETY: registers only (no memory, no stack); base x86-64 instructions.
    unsafe {
        core::arch::asm!(
            "xor {top:e}, {top:e}",
            "add {r0}, {s0}",
            "adc {r1}, {s1}",
            "adc {r2}, {s2}",
            "adc {r3}, {s3}",
            "adc {top}, 0",
            // s = r - p; keep r if that borrowed past the top bit (r < p).
            "mov {s0}, {r0}",
            "mov {s1}, {r1}",
            "mov {s2}, {r2}",
            "mov {s3}, {r3}",
            "sub {s0}, -1",
            "mov {k}, 0xffffffff00000000",
            "sbb {s1}, {k}",
            "sbb {s2}, -1",
            "mov {k}, 0xfffffffeffffffff",
            "sbb {s3}, {k}",
            "sbb {top}, 0",
            "cmovnc {r0}, {s0}",
            "cmovnc {r1}, {s1}",
            "cmovnc {r2}, {s2}",
            "cmovnc {r3}, {s3}",
            r0 = inout(reg) r0,
            r1 = inout(reg) r1,
            r2 = inout(reg) r2,
            r3 = inout(reg) r3,
            s0 = inout(reg) b[0] => _,
            s1 = inout(reg) b[1] => _,
            s2 = inout(reg) b[2] => _,
            s3 = inout(reg) b[3] => _,
            top = out(reg) _,
            k = out(reg) _,
            options(pure, nomem, nostack),
        );
    }
    [r0, r1, r2, r3]
}

/// a - b mod p for a, b < p (any domain). Base x86-64 only; gated with the rest.
#[inline(always)]
pub fn sub(a: &[u64; 4], b: &[u64; 4]) -> [u64; 4] {
    let (mut r0, mut r1, mut r2, mut r3) = (a[0], a[1], a[2], a[3]);
    // SAFETY: registers only (no memory, no stack); base x86-64 instructions.
    unsafe {
        core::arch::asm!(
            "sub {r0}, {b0}",
            "sbb {r1}, {b1}",
            "sbb {r2}, {b2}",
            "sbb {r3}, {b3}",
            // m = all ones if it borrowed (a < b), else 0; add p & m.
            "sbb {m}, {m}",
            "mov {b1}, 0xffffffff00000000",
            "and {b1}, {m}",
            "mov {b3}, 0xfffffffeffffffff",
            "and {b3}, {m}",
            "add {r0}, {m}",
            "adc {r1}, {b1}",
            "adc {r2}, {m}",
            "adc {r3}, {b3}",
            r0 = inout(reg) r0,
            r1 = inout(reg) r1,
            r2 = inout(reg) r2,
            r3 = inout(reg) r3,
            b0 = in(reg) b[0],
            b1 = inout(reg) b[1] => _,
            b3 = inout(reg) b[3] => _,
            b2 = in(reg) b[2],
            m = out(reg) _,
            options(pure, nomem, nostack),
        );
    }
    [r0, r1, r2, r3]
}
