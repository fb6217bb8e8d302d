//! The fast SM2 verifier (`crypto_parallel::sm2_fast`) against RustCrypto's `sm2` (the
//! reference), efficient-sm2 and OpenSSL: differential tests on valid signatures and
//! single-bit flips, the standard's edge cases, a published GM/T 0003.5 example, and the
//! per-key cache.

mod common;
mod differential;
mod edge;
