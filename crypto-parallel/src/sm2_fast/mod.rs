//! Fast, verification-only SM2 signatures (the default SM2 verifier; `sm2.rs` wraps it) (GB/T 32918.2-2016 §7.1 steps B1–B7) on the
//! recommended curve, with fiat-crypto's formally verified field arithmetic.
//!
//! - `verify_digest(key, e, r, s)`: e = SM3(Z_A ‖ M) already computed.
//! - `PublicKey`: a parsed 65-byte uncompressed SEC1 key (on-curve checked), with `z_a`
//!   and `digest` helpers (default user id "1234567812345678").
//! - `PrecomputedKey`: a key with its own comb table (~16 KiB) for repeated signers.
//! - `KeyCache` / `verify_digest_cached`: a bounded, sharded cache that builds a
//!   `PrecomputedKey` once a key has been seen `build_after` times.
//!
//! All inputs are public, so arithmetic is variable-time. The field's multiplication,
//! squaring, addition and subtraction run as x86-64 assembly (`mulx`/`adcx`/`adox`,
//! `mulx.rs`) where the CPU has BMI2 and ADX, and as fiat-crypto's portable code
//! elsewhere or with `POLYLEDGER_SM2_FIELD=portable`; the assembly is the only `unsafe`
//! (each block with its soundness argument). No panics on any input.

mod cache;
mod fastmul;
mod field;
#[cfg(target_arch = "x86_64")]
mod mulx;
mod point;
mod scalar;
mod tables;
mod verify;

pub use cache::{KeyCache, global_cache, verify_digest_cached};
pub use tables::warm_up;
pub use verify::{
    DEFAULT_DISTID, PrecomputedKey, PublicKey, verify_digest, verify_digest_with_key,
    verify_message, z_a_prefix,
};

#[doc(hidden)]
pub mod internals {
    //! Exposed for tests and benchmarks only.
    pub use crate::sm2_fast::field::{Fe, P, batch_invert};
    pub use crate::sm2_fast::point::{Affine, Cached, Jacobian, generator, is_on_curve};
    pub use crate::sm2_fast::scalar::{N, U256, u256_from_be, u256_to_be, wnaf};
    pub use crate::sm2_fast::tables::{CombTable, mul_comb, mul_uncached};

    /// Forces the portable (fiat) field arithmetic even where the CPU has BMI2 and ADX
    /// (`true`), or goes back to detecting (`false`). Process-wide.
    pub fn force_portable_field(on: bool) {
        #[cfg(target_arch = "x86_64")]
        crate::sm2_fast::mulx::force_portable(on);
        #[cfg(not(target_arch = "x86_64"))]
        let _ = on;
    }

    /// The field arithmetic `Fe` uses now: "mulx/adx assembly" or "fiat".
    pub fn field_backend() -> &'static str {
        #[cfg(target_arch = "x86_64")]
        if crate::sm2_fast::mulx::available() {
            return "mulx/adx assembly";
        }
        "fiat"
    }
}
