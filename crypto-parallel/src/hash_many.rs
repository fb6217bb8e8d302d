//! Many independent hashes in one call.
//!
//! A block hashes many short, independent messages: every transaction's canonical bytes,
//! every written value, every state key, every leaf of the transaction tree. One by one,
//! SM3 runs its 64 rounds on one 32-bit lane at a time (~15 cycles per byte on the
//! benchmark machine, the largest single item in a profile of block execution). On a CPU
//! with AVX-512, [`hash_many`] runs sixteen SM3 compressions side by side, one message
//! per 32-bit lane of the 512-bit registers: the same instructions, sixteen results.
//! With AVX2 only (AMD Zen 2/3, older Intel), it runs two halves of eight lanes in
//! 256-bit registers.
//!
//! SM3 (GB/T 32905-2016) has no data-dependent branches and only 32-bit operations
//! (add, xor, and/or, rotate), so each lane computes exactly the scalar function; the
//! tests compare every length from 0 to 300 bytes and mixed batches with the `sm3` crate.
//! Messages are grouped by their number of 64-byte blocks, sixteen per group; a lane
//! whose message has fewer blocks than the longest in its group keeps its state
//! (masked merge) while the others go on.
//!
//! SHA-256, and SM3 without AVX-512 or AVX2 or for fewer than [`MIN_BATCH`] messages,
//! hash one by one: the results are the same either way.

use crate::algorithm::HashAlgorithm;
use crate::hash::{DIGEST_LEN, HashDigest, hash};

/// Below this many messages SM3 hashes them one by one (a sixteen-lane step costs about
/// as much as two or three scalar compressions).
pub const MIN_BATCH: usize = 4;

/// Sixteen lanes of 32 bits in a 512-bit register.
const LANES: usize = 16;

/// Hashes each message with `algorithm`: `result[i] == hash(algorithm, messages[i])`.
pub fn hash_many<M: AsRef<[u8]>>(algorithm: HashAlgorithm, messages: &[M]) -> Vec<HashDigest> {
    match algorithm {
        HashAlgorithm::Sm3
            if messages.len() >= MIN_BATCH
                && let Some(path) = simd_path() =>
        {
            sm3_many_simd(messages, path)
                .into_iter()
                .map(|digest| HashDigest::new(HashAlgorithm::Sm3, digest))
                .collect()
        }
        _ => messages.iter().map(|message| hash(algorithm, message.as_ref())).collect(),
    }
}

/// Whether SM3 hashes many messages side by side on this CPU (AVX-512F or AVX2).
pub fn simd_available() -> bool {
    simd_path().is_some()
}

/// How a group of sixteen lanes is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Simd {
    /// All sixteen lanes in 512-bit registers.
    Avx512,
    /// Two halves of eight lanes in 256-bit registers (CPUs without AVX-512, such as
    /// AMD's Zen 2 and 3): rotations take two shifts and an or, and the three-input
    /// logic functions two or three instructions, so a lane costs more than with
    /// AVX-512, and still far less than one by one.
    Avx2,
}

/// The fastest path this CPU has; `None` where SM3 hashes one by one.
fn simd_path() -> Option<Simd> {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return Some(Simd::Avx512);
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            return Some(Simd::Avx2);
        }
    }
    None
}

/// SM3's initial value (GB/T 32905-2016, 4.1).
const IV: [u32; 8] = [
    0x7380166f, 0x4914b2b9, 0x172442d7, 0xda8a0600, 0xa96f30bc, 0x163138aa, 0xe38dee4d, 0xb0fb0e4e,
];

/// Round constants already rotated: `T_j <<< (j mod 32)`.
const T: [u32; 64] = {
    let mut t = [0u32; 64];
    let mut j = 0;
    while j < 64 {
        let base: u32 = if j < 16 { 0x79cc4519 } else { 0x7a879d8a };
        t[j] = base.rotate_left((j % 32) as u32);
        j += 1;
    }
    t
};

/// One message's place in a group: its full 64-byte blocks come from the message, its
/// last one or two (the rest of the bytes, `0x80`, zeros, the bit length) from `tail`.
struct Lane<'a> {
    message: &'a [u8],
    full_blocks: usize,
    blocks: usize,
    tail: [u8; 128],
}

impl<'a> Lane<'a> {
    fn new(message: &'a [u8]) -> Self {
        let full_blocks = message.len() / 64;
        let rest = &message[full_blocks * 64..];
        let mut tail = [0u8; 128];
        tail[..rest.len()].copy_from_slice(rest);
        tail[rest.len()] = 0x80;
        let tail_blocks = if rest.len() + 9 <= 64 { 1 } else { 2 };
        let bits = (message.len() as u64).wrapping_mul(8);
        tail[tail_blocks * 64 - 8..tail_blocks * 64].copy_from_slice(&bits.to_be_bytes());
        Lane { message, full_blocks, blocks: full_blocks + tail_blocks, tail }
    }

    fn block(&self, index: usize) -> &[u8] {
        if index < self.full_blocks {
            &self.message[index * 64..index * 64 + 64]
        } else {
            let at = (index - self.full_blocks) * 64;
            &self.tail[at..at + 64]
        }
    }
}

/// Number of 64-byte blocks SM3 compresses for a message of `len` bytes.
fn block_count(len: usize) -> usize {
    len / 64 + if len % 64 + 9 <= 64 { 1 } else { 2 }
}

/// The side-by-side path; `path` must be one this CPU has ([`simd_path`]).
fn sm3_many_simd<M: AsRef<[u8]>>(messages: &[M], path: Simd) -> Vec<[u8; DIGEST_LEN]> {
    // Group messages of the same length in blocks, so lanes seldom idle.
    let mut order: Vec<usize> = (0..messages.len()).collect();
    order.sort_by_key(|&i| block_count(messages[i].as_ref().len()));
    let mut digests = vec![[0u8; DIGEST_LEN]; messages.len()];
    for group in order.chunks(LANES) {
        let lanes: Vec<Lane<'_>> = group.iter().map(|&i| Lane::new(messages[i].as_ref())).collect();
        let state = compress_group(&lanes, path);
        for (lane, &i) in group.iter().enumerate() {
            for (word, out) in digests[i].chunks_exact_mut(4).enumerate() {
                out.copy_from_slice(&state[word][lane].to_be_bytes());
            }
        }
    }
    digests
}

/// Runs every lane's blocks through the compression function; the result is the
/// chaining value per word and lane (`state[word][lane]`).
fn compress_group(lanes: &[Lane<'_>], path: Simd) -> [[u32; LANES]; 8] {
    debug_assert!(!lanes.is_empty() && lanes.len() <= LANES);
    let mut state = [[0u32; LANES]; 8];
    for (word, value) in IV.iter().enumerate() {
        state[word] = [*value; LANES];
    }
    let most = lanes.iter().map(|lane| lane.blocks).max().unwrap_or(0);
    // Lane l's current block; the compression reads it word by word across lanes.
    let mut blocks = [[0u8; 64]; LANES];
    for index in 0..most {
        let mut active: u16 = 0;
        for (l, lane) in lanes.iter().enumerate() {
            if index < lane.blocks {
                active |= 1 << l;
                blocks[l].copy_from_slice(lane.block(index));
            }
        }
        #[cfg(target_arch = "x86_64")]
        x86::compress(&mut state, &blocks, active, path);
        #[cfg(not(target_arch = "x86_64"))]
        unreachable!("the side-by-side path runs only where simd_path() is some {active} {path:?}");
    }
    state
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use core::arch::x86_64::*;

    use super::{LANES, Simd, T};

    /// One SM3 compression in each active lane (bit `l` of `active`); inactive lanes
    /// keep their state.
    pub(super) fn compress(
        state: &mut [[u32; LANES]; 8],
        blocks: &[[u8; 64]; LANES],
        active: u16,
        path: Simd,
    ) {
        match path {
            Simd::Avx512 => {
                assert!(is_x86_feature_detected!("avx512f"), "AVX-512F checked by the caller");
                // SAFETY: the CPU supports AVX-512F (asserted above, at run time), the
                // only requirement of `compress_avx512`'s target feature.
                #[allow(unsafe_code)]
                unsafe {
                    compress_avx512(state, blocks, active)
                }
            }
            Simd::Avx2 => {
                assert!(is_x86_feature_detected!("avx2"), "AVX2 checked by the caller");
                for half in 0..2 {
                    let bits = (active >> (8 * half)) as u8;
                    if bits == 0 {
                        continue;
                    }
                    // SAFETY: the CPU supports AVX2 (asserted above, at run time), the
                    // only requirement of `avx2::compress8`'s target feature.
                    #[allow(unsafe_code)]
                    unsafe {
                        avx2::compress8(state, blocks, half * 8, bits)
                    }
                }
            }
        }
    }

    /// Eight lanes in 256-bit registers: the same rounds as `compress_avx512`, with
    /// AVX2's instructions (no rotate, no three-input logic, no masks).
    mod avx2 {
        use core::arch::x86_64::*;

        use super::super::{LANES, T};

        /// x <<< L (R = 32 - L).
        #[target_feature(enable = "avx2")]
        fn rol<const L: i32, const R: i32>(x: __m256i) -> __m256i {
            _mm256_or_si256(_mm256_slli_epi32::<L>(x), _mm256_srli_epi32::<R>(x))
        }

        #[target_feature(enable = "avx2")]
        fn xor3(x: __m256i, y: __m256i, z: __m256i) -> __m256i {
            _mm256_xor_si256(_mm256_xor_si256(x, y), z)
        }

        #[target_feature(enable = "avx2")]
        fn p0(x: __m256i) -> __m256i {
            xor3(x, rol::<9, 23>(x), rol::<17, 15>(x))
        }

        #[target_feature(enable = "avx2")]
        fn p1(x: __m256i) -> __m256i {
            xor3(x, rol::<15, 17>(x), rol::<23, 9>(x))
        }

        /// The eight u32s of `state[word][first..first + 8]` (safe lane reads).
        #[target_feature(enable = "avx2")]
        fn load(lanes: &[u32; LANES], first: usize) -> __m256i {
            let l = &lanes[first..first + 8];
            _mm256_setr_epi32(
                l[0] as i32,
                l[1] as i32,
                l[2] as i32,
                l[3] as i32,
                l[4] as i32,
                l[5] as i32,
                l[6] as i32,
                l[7] as i32,
            )
        }

        /// Message word `j` (big-endian) of blocks `first..first + 8`.
        #[target_feature(enable = "avx2")]
        fn message_word(blocks: &[[u8; 64]; LANES], first: usize, j: usize) -> __m256i {
            let word = |l: usize| {
                let b = &blocks[first + l][4 * j..4 * j + 4];
                i32::from_be_bytes([b[0], b[1], b[2], b[3]])
            };
            _mm256_setr_epi32(
                word(0),
                word(1),
                word(2),
                word(3),
                word(4),
                word(5),
                word(6),
                word(7),
            )
        }

        /// One compression in each active lane of `first..first + 8` (bit l of `active`
        /// for lane first + l); the others keep their state.
        #[target_feature(enable = "avx2")]
        pub(super) fn compress8(
            state: &mut [[u32; LANES]; 8],
            blocks: &[[u8; 64]; LANES],
            first: usize,
            active: u8,
        ) {
            let mut w = [_mm256_setzero_si256(); 68];
            for (j, word) in w.iter_mut().take(16).enumerate() {
                *word = message_word(blocks, first, j);
            }
            for j in 16..68 {
                let x = xor3(w[j - 16], w[j - 9], rol::<15, 17>(w[j - 3]));
                w[j] = xor3(p1(x), rol::<7, 25>(w[j - 13]), w[j - 6]);
            }
            let v: [__m256i; 8] = core::array::from_fn(|i| load(&state[i], first));
            let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h] = v;
            for (j, &t) in T.iter().enumerate() {
                let a12 = rol::<12, 20>(a);
                let ss1 = rol::<7, 25>(_mm256_add_epi32(
                    _mm256_add_epi32(a12, e),
                    _mm256_set1_epi32(t as i32),
                ));
                let ss2 = _mm256_xor_si256(ss1, a12);
                let (ff, gg) = if j < 16 {
                    (xor3(a, b, c), xor3(e, f, g))
                } else {
                    (
                        // (a & b) | (c & (a | b)); (e & f) | (!e & g)
                        _mm256_or_si256(
                            _mm256_and_si256(a, b),
                            _mm256_and_si256(c, _mm256_or_si256(a, b)),
                        ),
                        _mm256_or_si256(_mm256_and_si256(e, f), _mm256_andnot_si256(e, g)),
                    )
                };
                let tt1 = _mm256_add_epi32(
                    _mm256_add_epi32(ff, d),
                    _mm256_add_epi32(ss2, _mm256_xor_si256(w[j], w[j + 4])),
                );
                let tt2 = _mm256_add_epi32(_mm256_add_epi32(gg, h), _mm256_add_epi32(ss1, w[j]));
                d = c;
                c = rol::<9, 23>(b);
                b = a;
                a = tt1;
                h = g;
                g = rol::<19, 13>(f);
                f = e;
                e = p0(tt2);
            }
            let mask = _mm256_setr_epi32(
                -i32::from(active & 1 != 0),
                -i32::from(active & 2 != 0),
                -i32::from(active & 4 != 0),
                -i32::from(active & 8 != 0),
                -i32::from(active & 16 != 0),
                -i32::from(active & 32 != 0),
                -i32::from(active & 64 != 0),
                -i32::from(active & 128 != 0),
            );
            for (i, new) in [a, b, c, d, e, f, g, h].into_iter().enumerate() {
                let merged = _mm256_xor_si256(v[i], _mm256_and_si256(mask, new));
                // Lanes out of the register one by one (safe: extract by constant index).
                let out = &mut state[i][first..first + 8];
                out[0] = _mm256_extract_epi32::<0>(merged) as u32;
                out[1] = _mm256_extract_epi32::<1>(merged) as u32;
                out[2] = _mm256_extract_epi32::<2>(merged) as u32;
                out[3] = _mm256_extract_epi32::<3>(merged) as u32;
                out[4] = _mm256_extract_epi32::<4>(merged) as u32;
                out[5] = _mm256_extract_epi32::<5>(merged) as u32;
                out[6] = _mm256_extract_epi32::<6>(merged) as u32;
                out[7] = _mm256_extract_epi32::<7>(merged) as u32;
            }
        }
    }

    /// Message word `j` of every lane's block, as big-endian u32s: a gather of the
    /// `j`-th 4 bytes of the sixteen blocks, then a byte swap in each lane.
    #[target_feature(enable = "avx512f")]
    fn message_word(blocks: &[[u8; 64]; LANES], j: usize) -> __m512i {
        assert!(j < 16);
        let offsets = _mm512_add_epi32(
            _mm512_setr_epi32(
                0, 64, 128, 192, 256, 320, 384, 448, 512, 576, 640, 704, 768, 832, 896, 960,
            ),
            _mm512_set1_epi32(4 * j as i32),
        );
        // SAFETY: `blocks` is 16 × 64 contiguous readable bytes; lane l reads the 4
        // bytes at 64·l + 4·j ≤ 64·15 + 60, inside it (j < 16 asserted above).
        #[allow(unsafe_code)]
        let little = unsafe { _mm512_i32gather_epi32::<1>(offsets, blocks.as_ptr().cast()) };
        // Byte swap: bytes 0 and 2 of the word rotated left by 8 land at 1 and 3, bytes
        // 1 and 3 rotated left by 24 land at 0 and 2.
        _mm512_ternarylogic_epi32::<CHOOSE>(
            _mm512_set1_epi32(0x00ff_00ff),
            _mm512_rol_epi32::<8>(little),
            _mm512_rol_epi32::<24>(little),
        )
    }

    /// Loads sixteen u32 lanes.
    #[target_feature(enable = "avx512f")]
    fn load(lanes: &[u32; LANES]) -> __m512i {
        // SAFETY: `lanes` is a valid, readable 64-byte array; the load is unaligned.
        #[allow(unsafe_code)]
        unsafe {
            _mm512_loadu_si512(lanes.as_ptr().cast())
        }
    }

    /// Stores sixteen u32 lanes.
    #[target_feature(enable = "avx512f")]
    fn store(lanes: &mut [u32; LANES], value: __m512i) {
        // SAFETY: `lanes` is a valid, writable 64-byte array; the store is unaligned.
        #[allow(unsafe_code)]
        unsafe {
            _mm512_storeu_si512(lanes.as_mut_ptr().cast(), value)
        }
    }

    // Truth tables of `_mm512_ternarylogic_epi32` for inputs (x, y, z) = (0xf0, 0xcc, 0xaa).
    /// x ^ y ^ z
    const XOR3: i32 = 0x96;
    /// (x & y) | (x & z) | (y & z): SM3's FF for rounds 16..64
    const MAJ: i32 = 0xe8;
    /// (x & y) | (!x & z): SM3's GG for rounds 16..64
    const CHOOSE: i32 = 0xca;

    #[target_feature(enable = "avx512f")]
    fn p0(x: __m512i) -> __m512i {
        _mm512_ternarylogic_epi32::<XOR3>(x, _mm512_rol_epi32::<9>(x), _mm512_rol_epi32::<17>(x))
    }

    #[target_feature(enable = "avx512f")]
    fn p1(x: __m512i) -> __m512i {
        _mm512_ternarylogic_epi32::<XOR3>(x, _mm512_rol_epi32::<15>(x), _mm512_rol_epi32::<23>(x))
    }

    #[target_feature(enable = "avx512f")]
    fn compress_avx512(state: &mut [[u32; LANES]; 8], blocks: &[[u8; 64]; LANES], active: u16) {
        // Message expansion (GB/T 32905-2016, 5.3.2): W_0..W_67; W'_j = W_j ^ W_{j+4}.
        let mut w = [_mm512_setzero_si512(); 68];
        for (j, word) in w.iter_mut().take(16).enumerate() {
            *word = message_word(blocks, j);
        }
        for j in 16..68 {
            let x = _mm512_ternarylogic_epi32::<XOR3>(
                w[j - 16],
                w[j - 9],
                _mm512_rol_epi32::<15>(w[j - 3]),
            );
            w[j] = _mm512_ternarylogic_epi32::<XOR3>(
                p1(x),
                _mm512_rol_epi32::<7>(w[j - 13]),
                w[j - 6],
            );
        }
        let v: [__m512i; 8] = core::array::from_fn(|i| load(&state[i]));
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h] = v;
        for j in 0..64 {
            let a12 = _mm512_rol_epi32::<12>(a);
            let ss1 = _mm512_rol_epi32::<7>(_mm512_add_epi32(
                _mm512_add_epi32(a12, e),
                _mm512_set1_epi32(T[j] as i32),
            ));
            let ss2 = _mm512_xor_si512(ss1, a12);
            let (ff, gg) = if j < 16 {
                (
                    _mm512_ternarylogic_epi32::<XOR3>(a, b, c),
                    _mm512_ternarylogic_epi32::<XOR3>(e, f, g),
                )
            } else {
                (
                    _mm512_ternarylogic_epi32::<MAJ>(a, b, c),
                    _mm512_ternarylogic_epi32::<CHOOSE>(e, f, g),
                )
            };
            let tt1 = _mm512_add_epi32(
                _mm512_add_epi32(ff, d),
                _mm512_add_epi32(ss2, _mm512_xor_si512(w[j], w[j + 4])),
            );
            let tt2 = _mm512_add_epi32(_mm512_add_epi32(gg, h), _mm512_add_epi32(ss1, w[j]));
            d = c;
            c = _mm512_rol_epi32::<9>(b);
            b = a;
            a = tt1;
            h = g;
            g = _mm512_rol_epi32::<19>(f);
            f = e;
            e = p0(tt2);
        }
        for (i, new) in [a, b, c, d, e, f, g, h].into_iter().enumerate() {
            let merged = _mm512_mask_mov_epi32(v[i], active, _mm512_xor_si512(v[i], new));
            store(&mut state[i], merged);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(message: &[u8]) -> [u8; DIGEST_LEN] {
        *hash(HashAlgorithm::Sm3, message).as_bytes()
    }

    /// Deterministic filler bytes (no RNG needed for coverage of lengths).
    fn message(len: usize, seed: usize) -> Vec<u8> {
        (0..len).map(|i| (i.wrapping_mul(31) ^ seed.wrapping_mul(131) ^ (i >> 3)) as u8).collect()
    }

    #[test]
    fn block_counts_match_the_padding_rule() {
        assert_eq!(block_count(0), 1);
        assert_eq!(block_count(55), 1);
        assert_eq!(block_count(56), 2);
        assert_eq!(block_count(64), 2);
        assert_eq!(block_count(119), 2);
        assert_eq!(block_count(120), 3);
        for len in 0..300 {
            assert_eq!(Lane::new(&message(len, 0)).blocks, block_count(len), "len {len}");
        }
    }

    /// Every side-by-side path this CPU can run (AVX-512 machines run AVX2 too).
    fn paths() -> Vec<Simd> {
        let mut paths = Vec::new();
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                paths.push(Simd::Avx512);
            }
            if std::arch::is_x86_feature_detected!("avx2") {
                paths.push(Simd::Avx2);
            }
        }
        if paths.is_empty() {
            println!("SKIPPED: neither AVX-512F nor AVX2 on this CPU; SM3 hashes one by one here");
        }
        paths
    }

    #[test]
    fn every_length_to_300_bytes_matches_the_sm3_crate() {
        for path in paths() {
            // Sixteen messages of one length per call, fewer than nine (one AVX2 half),
            // and all lengths in one call.
            let all: Vec<Vec<u8>> = (0..=300).map(|len| message(len, len)).collect();
            for len in 0..=300 {
                for count in [LANES, 5, 9] {
                    let same: Vec<Vec<u8>> = (0..count).map(|seed| message(len, seed)).collect();
                    let got = sm3_many_simd(&same, path);
                    for (m, digest) in same.iter().zip(&got) {
                        assert_eq!(*digest, reference(m), "{path:?}, length {len}, {count}");
                    }
                }
            }
            let got = sm3_many_simd(&all, path);
            for (m, digest) in all.iter().zip(&got) {
                assert_eq!(*digest, reference(m), "{path:?}, length {} mixed", m.len());
            }
        }
    }

    #[test]
    fn gb_t_32905_vectors_in_every_lane() {
        for path in paths() {
            gb_t_32905_vectors_on(path);
        }
    }

    fn gb_t_32905_vectors_on(path: Simd) {
        let abc = b"abc".to_vec();
        let abcd = "abcd".repeat(16).into_bytes();
        let batch: Vec<&[u8]> =
            (0..20).map(|i| if i % 3 == 0 { &abc[..] } else { &abcd }).collect();
        for (m, digest) in batch.iter().zip(sm3_many_simd(&batch, path)) {
            let expected = if m.len() == 3 {
                "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
            } else {
                "debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732"
            };
            assert_eq!(hex::encode(digest), expected);
        }
    }

    #[test]
    fn hash_many_keeps_the_order_for_every_size_and_algorithm() {
        for algorithm in HashAlgorithm::ALL {
            for count in [0, 1, MIN_BATCH - 1, MIN_BATCH, 15, 16, 17, 33, 100] {
                // Lengths vary so grouping reorders messages; results must not move.
                let messages: Vec<Vec<u8>> =
                    (0..count).map(|i| message((i * 37) % 260, i)).collect();
                let got = hash_many(algorithm, &messages);
                let expected: Vec<HashDigest> =
                    messages.iter().map(|m| hash(algorithm, m)).collect();
                assert_eq!(got, expected, "{algorithm:?}, {count} messages");
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn random_batches_match_one_by_one(
            messages in proptest::collection::vec(
                proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400), 0..40)
        ) {
            let got = hash_many(HashAlgorithm::Sm3, &messages);
            for (m, digest) in messages.iter().zip(&got) {
                proptest::prop_assert_eq!(*digest.as_bytes(), reference(m));
            }
            proptest::prop_assert_eq!(got.len(), messages.len());
        }
    }
}
