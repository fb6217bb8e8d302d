//! The SM2 field mod p = 2^256 - 2^224 - 2^96 + 2^64 - 1 in x86-64 assembly:
//! Montgomery multiplication and squaring with BMI2 `mulx` and ADX `adcx`/`adox` (two
//! independent carry chains), addition and subtraction. Used when the CPU has BMI2 and
//! ADX and the portable path is not forced (checked once at run time; `Fe` falls back to
//! fiat otherwise). Same domain and outputs as fiat's `fiat_sm2_mul`, `_square`, `_add`
//! and `_sub` (a·b·2^-256 mod p etc., fully reduced); checked against them on edge
//! cases and millions of random inputs in tests/sm2_fast.
//!
//! Method (coarsely integrated operand scanning): for each limb b_i, the accumulator
//! gains a·b_i (one `mulx` per limb of a, low halves on the CF chain, high halves on
//! the OF chain), then one reduction step divides it by 2^64. Because -p^-1 ≡ 1
//! (mod 2^64) the quotient digit is the low limb q itself, and
//! (acc + q·p) / 2^64 = acc[1..] + q + q·2^192 - q·2^32 - q·2^160,
//! which takes shifts, additions and subtractions, no multiplication. With a, b < p the
//! accumulator stays below 2p after every step (the usual Montgomery bound), so one
//! conditional subtraction of p at the end makes the result canonical. Before each
//! reduction the accumulator is below 2p + p·(2^64 - 1) < 2^320, so five registers hold
//! it (no carry leaves a row), and with `a` in registers the whole multiplication fits
//! the 13 general registers inline assembly may use.
//!
//! Operands go in registers where they fit (`a` of the multiplication, both of add and
//! sub), so a value just computed feeds the next operation without a store and reload:
//! that took a point doubling from 209 to 180 ns on the 2-vCPU machine.

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

/// a·b·2^-256 mod p for a, b < p (Montgomery domain). Callers must have checked
/// [`available`]; the inputs must be canonical (< p), as every `Fe` is.
#[inline(always)]
pub fn mont_mul(a: &[u64; 4], b: &[u64; 4]) -> [u64; 4] {
    debug_assert!(cpu_supports());
    let (r0, r1, r2, r3): (u64, u64, u64, u64);
    // SAFETY: the assembly reads exactly 32 bytes through `b`, a valid, aligned
    // reference to `[u64; 4]` for the whole block (`a` comes in registers); it writes
    // only the registers declared below (every one is an output or a discarded in/out,
    // so the compiler keeps nothing live in them), touches no other memory and no stack
    // (`nostack`, `readonly`), and its result depends only on the inputs (`pure`). The
    // flags it changes are clobbered by default (no `preserves_flags`). The only
    // instructions beyond x86-64's base set are `mulx` (BMI2) and `adcx`/`adox` (ADX);
    // `mont_mul` is reached only after `available()` saw both features on this CPU (it
    // never says yes otherwise), so none of them can fault.
    unsafe {
        core::arch::asm!(
            // Row 0: (c0..c4) = a·b0.
            "mov rdx, qword ptr [{b}]",
            "mulx {c1}, {c0}, {a0}",
            "mulx {c2}, {lo}, {a1}",
            "add {c1}, {lo}",
            "mulx {c3}, {lo}, {a2}",
            "adc {c2}, {lo}",
            "mulx {c4}, {lo}, {a3}",
            "adc {c3}, {lo}",
            "adc {c4}, 0",
            // Reduction 0: q = c0; (c1,c2,c3,c4, c0) = (acc + q·p) / 2^64.
            "mov {lo}, {c0}",
            "shl {lo}, 32",
            "mov {hi}, {c0}",
            "shr {hi}, 32",
            "add {c1}, {c0}",
            "adc {c2}, 0",
            "adc {c3}, 0",
            "adc {c4}, {c0}",
            "mov {c0}, 0",
            "adc {c0}, 0",
            "sub {c1}, {lo}",
            "sbb {c2}, {hi}",
            "sbb {c3}, {lo}",
            "sbb {c4}, {hi}",
            "sbb {c0}, 0",
            // Row 1: (c1,c2,c3,c4,c0) += a·b1 (< 2^320: no sixth limb).
            "mov rdx, qword ptr [{b} + 8]",
            "xor {lo:e}, {lo:e}",
            "mulx {hi}, {lo}, {a0}",
            "adcx {c1}, {lo}",
            "adox {c2}, {hi}",
            "mulx {hi}, {lo}, {a1}",
            "adcx {c2}, {lo}",
            "adox {c3}, {hi}",
            "mulx {hi}, {lo}, {a2}",
            "adcx {c3}, {lo}",
            "adox {c4}, {hi}",
            "mulx {hi}, {lo}, {a3}",
            "adcx {c4}, {lo}",
            "adox {c0}, {hi}",
            "adc {c0}, 0",
            // Reduction 1: q = c1; (c2,c3,c4,c0, c1) = (acc + q·p) / 2^64.
            "mov {lo}, {c1}",
            "shl {lo}, 32",
            "mov {hi}, {c1}",
            "shr {hi}, 32",
            "add {c2}, {c1}",
            "adc {c3}, 0",
            "adc {c4}, 0",
            "adc {c0}, {c1}",
            "mov {c1}, 0",
            "adc {c1}, 0",
            "sub {c2}, {lo}",
            "sbb {c3}, {hi}",
            "sbb {c4}, {lo}",
            "sbb {c0}, {hi}",
            "sbb {c1}, 0",
            // Row 2: (c2,c3,c4,c0,c1) += a·b2 (< 2^320: no sixth limb).
            "mov rdx, qword ptr [{b} + 16]",
            "xor {lo:e}, {lo:e}",
            "mulx {hi}, {lo}, {a0}",
            "adcx {c2}, {lo}",
            "adox {c3}, {hi}",
            "mulx {hi}, {lo}, {a1}",
            "adcx {c3}, {lo}",
            "adox {c4}, {hi}",
            "mulx {hi}, {lo}, {a2}",
            "adcx {c4}, {lo}",
            "adox {c0}, {hi}",
            "mulx {hi}, {lo}, {a3}",
            "adcx {c0}, {lo}",
            "adox {c1}, {hi}",
            "adc {c1}, 0",
            // Reduction 2: q = c2; (c3,c4,c0,c1, c2) = (acc + q·p) / 2^64.
            "mov {lo}, {c2}",
            "shl {lo}, 32",
            "mov {hi}, {c2}",
            "shr {hi}, 32",
            "add {c3}, {c2}",
            "adc {c4}, 0",
            "adc {c0}, 0",
            "adc {c1}, {c2}",
            "mov {c2}, 0",
            "adc {c2}, 0",
            "sub {c3}, {lo}",
            "sbb {c4}, {hi}",
            "sbb {c0}, {lo}",
            "sbb {c1}, {hi}",
            "sbb {c2}, 0",
            // Row 3: (c3,c4,c0,c1,c2) += a·b3 (< 2^320: no sixth limb).
            "mov rdx, qword ptr [{b} + 24]",
            "xor {lo:e}, {lo:e}",
            "mulx {hi}, {lo}, {a0}",
            "adcx {c3}, {lo}",
            "adox {c4}, {hi}",
            "mulx {hi}, {lo}, {a1}",
            "adcx {c4}, {lo}",
            "adox {c0}, {hi}",
            "mulx {hi}, {lo}, {a2}",
            "adcx {c0}, {lo}",
            "adox {c1}, {hi}",
            "mulx {hi}, {lo}, {a3}",
            "adcx {c1}, {lo}",
            "adox {c2}, {hi}",
            "adc {c2}, 0",
            // Reduction 3: q = c3; (c4,c0,c1,c2, c3) = (acc + q·p) / 2^64.
            "mov {lo}, {c3}",
            "shl {lo}, 32",
            "mov {hi}, {c3}",
            "shr {hi}, 32",
            "add {c4}, {c3}",
            "adc {c0}, 0",
            "adc {c1}, 0",
            "adc {c2}, {c3}",
            "mov {c3}, 0",
            "adc {c3}, 0",
            "sub {c4}, {lo}",
            "sbb {c0}, {hi}",
            "sbb {c1}, {lo}",
            "sbb {c2}, {hi}",
            "sbb {c3}, 0",
            // Final: t = result - p; keep the result if that borrowed past the top limb.
            "mov {a0}, {c4}",
            "mov {a1}, {c0}",
            "mov {a2}, {c1}",
            "mov {a3}, {c2}",
            "sub {a0}, -1",
            "mov rdx, 0xffffffff00000000",
            "sbb {a1}, rdx",
            "sbb {a2}, -1",
            "mov rdx, 0xfffffffeffffffff",
            "sbb {a3}, rdx",
            "sbb {c3}, 0",
            "cmovnc {c4}, {a0}",
            "cmovnc {c0}, {a1}",
            "cmovnc {c1}, {a2}",
            "cmovnc {c2}, {a3}",
            a0 = inout(reg) a[0] => _,
            a1 = inout(reg) a[1] => _,
            a2 = inout(reg) a[2] => _,
            a3 = inout(reg) a[3] => _,
            b = in(reg) b.as_ptr(),
            lo = out(reg) _,
            hi = out(reg) _,
            c0 = out(reg) r1,
            c1 = out(reg) r2,
            c2 = out(reg) r3,
            c3 = out(reg) _,
            c4 = out(reg) r0,
            out("rdx") _,
            options(pure, readonly, nostack),
        );
    }
    [r0, r1, r2, r3]
}

/// a² · 2^-256 mod p for a < p: like [`mont_mul`] with a = b, but the six cross products
/// are computed once and doubled (10 `mulx` instead of 16), and the 512-bit square is
/// then reduced: four reduction steps on its low half give (T_low + Q·p)/2^256, to which
/// the high half is added; with a < p the sum is below p + p, so one conditional
/// subtraction of p makes it canonical. Same preconditions as [`mont_mul`].
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
            "xor {t5}, {t5}",
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
            "xor {t7}, {t7}",
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
            // Reduce the low half (t0..t3); e0 = {a}, e1 = rdx are the window's top limbs.
            "xor {a:e}, {a:e}",
            "xor edx, edx",
            // Step 0: q = t0 → (t1, t2, t3, e0, e1).
            "mov {lo}, {t0}",
            "shl {lo}, 32",
            "mov {hi}, {t0}",
            "shr {hi}, 32",
            "add {t1}, {t0}",
            "adc {t2}, 0",
            "adc {t3}, 0",
            "adc {a}, {t0}",
            "adc rdx, 0",
            "sub {t1}, {lo}",
            "sbb {t2}, {hi}",
            "sbb {t3}, {lo}",
            "sbb {a}, {hi}",
            "sbb rdx, 0",
            // Step 1: q = t1 → (t2, t3, e0, e1, t0).
            "xor {t0:e}, {t0:e}",
            "mov {lo}, {t1}",
            "shl {lo}, 32",
            "mov {hi}, {t1}",
            "shr {hi}, 32",
            "add {t2}, {t1}",
            "adc {t3}, 0",
            "adc {a}, 0",
            "adc rdx, {t1}",
            "adc {t0}, 0",
            "sub {t2}, {lo}",
            "sbb {t3}, {hi}",
            "sbb {a}, {lo}",
            "sbb rdx, {hi}",
            "sbb {t0}, 0",
            // Step 2: q = t2 → (t3, e0, e1, t0, t1).
            "xor {t1:e}, {t1:e}",
            "mov {lo}, {t2}",
            "shl {lo}, 32",
            "mov {hi}, {t2}",
            "shr {hi}, 32",
            "add {t3}, {t2}",
            "adc {a}, 0",
            "adc rdx, 0",
            "adc {t0}, {t2}",
            "adc {t1}, 0",
            "sub {t3}, {lo}",
            "sbb {a}, {hi}",
            "sbb rdx, {lo}",
            "sbb {t0}, {hi}",
            "sbb {t1}, 0",
            // Step 3: q = t3 → (e0, e1, t0, t1, t2).
            "xor {t2:e}, {t2:e}",
            "mov {lo}, {t3}",
            "shl {lo}, 32",
            "mov {hi}, {t3}",
            "shr {hi}, 32",
            "add {a}, {t3}",
            "adc rdx, 0",
            "adc {t0}, 0",
            "adc {t1}, {t3}",
            "adc {t2}, 0",
            "sub {a}, {lo}",
            "sbb rdx, {hi}",
            "sbb {t0}, {lo}",
            "sbb {t1}, {hi}",
            "sbb {t2}, 0",
            // Plus the high half: R = (e0, e1, t0, t1) with top limb t2, R < 2p.
            "add {a}, {t4}",
            "adc rdx, {t5}",
            "adc {t0}, {t6}",
            "adc {t1}, {t7}",
            "adc {t2}, 0",
            // Final: R - p into (t3..t6); keep R if that borrowed past the top limb.
            "mov {t3}, {a}",
            "mov {t4}, rdx",
            "mov {t5}, {t0}",
            "mov {t6}, {t1}",
            "sub {t3}, -1",
            "mov {t7}, 0xffffffff00000000",
            "sbb {t4}, {t7}",
            "sbb {t5}, -1",
            "mov {t7}, 0xfffffffeffffffff",
            "sbb {t6}, {t7}",
            "sbb {t2}, 0",
            "cmovnc {a}, {t3}",
            "cmovnc rdx, {t4}",
            "cmovnc {t0}, {t5}",
            "cmovnc {t1}, {t6}",
            "mov {lo}, rdx",
            a = inout(reg) a.as_ptr() => r0,
            lo = out(reg) r1,
            hi = out(reg) _,
            t0 = out(reg) r2,
            t1 = out(reg) r3,
            t2 = out(reg) _,
            t3 = out(reg) _,
            t4 = out(reg) _,
            t5 = out(reg) _,
            t6 = out(reg) _,
            t7 = out(reg) _,
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
