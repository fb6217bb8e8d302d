//! Throughput of the crypto SPI as the engine uses it.
//!
//! - `verify_one_core/<algorithm>`: verifies/s per core through `PublicKey::verify`
//!   (key bytes parsed on every call, as for a transaction off the wire);
//! - `verify_batch_one_thread/ed25519_1024`: Ed25519's batch equation on one thread;
//! - `verify_batch_sm2_10000/{1_thread,all_threads}`: `BatchVerifier` on 10,000 SM2 items,
//!   followed by an interleaved speed-up measurement printed as `speed-up: …`;
//! - `hash/<algorithm>/{256B,1MiB}`: hashes/s and MB/s;
//! - `hash_many/sm3_<len>B_x1000/{one_by_one,hash_many}`: 1,000 messages of a block's
//!   typical sizes (a 34-byte transaction-tree leaf, a 200-byte value, a ~330-byte
//!   transaction) hashed one by one and with `hash_many` (sixteen lanes with AVX-512,
//!   two halves of eight with AVX2).
//!
//! Run: `cargo bench -p crypto-parallel --bench crypto` (results in perf/RESULTS.md).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group};
use crypto_parallel::{
    BatchVerifier, HashAlgorithm, PrivateKey, PublicKey, Signature, SignatureAlgorithm, VerifyItem,
    hash, hash_many,
};

struct Signed {
    public_key: PublicKey,
    messages: Vec<Vec<u8>>,
    signatures: Vec<Signature>,
}

/// `count` 256-byte messages signed by 16 keys (a consortium has few signers).
fn signed(algorithm: SignatureAlgorithm, count: usize) -> Vec<Signed> {
    (0..16)
        .map(|key_index| {
            let private_key = PrivateKey::generate(algorithm);
            let messages: Vec<Vec<u8>> = (0..count / 16)
                .map(|i| {
                    let mut message = vec![key_index as u8; 256];
                    message[..8].copy_from_slice(&(i as u64).to_be_bytes());
                    message
                })
                .collect();
            let signatures = messages.iter().map(|m| private_key.sign(m)).collect();
            Signed { public_key: private_key.public_key(), messages, signatures }
        })
        .collect()
}

fn items(signed: &[Signed]) -> Vec<VerifyItem<'_>> {
    signed
        .iter()
        .flat_map(|s| {
            s.messages.iter().zip(&s.signatures).map(|(message, signature)| VerifyItem {
                public_key: &s.public_key,
                message,
                signature,
            })
        })
        .collect()
}

fn verify_one_core(c: &mut Criterion) {
    let mut group = c.benchmark_group("verify_one_core");
    group.throughput(Throughput::Elements(1));
    group.sample_size(20).measurement_time(Duration::from_secs(3));
    for algorithm in SignatureAlgorithm::ALL {
        let private_key = PrivateKey::generate(algorithm);
        let public_key = private_key.public_key();
        let message = vec![7u8; 256];
        let signature = private_key.sign(&message);
        public_key.verify(&message, &signature).expect("benchmark input must verify");
        group.bench_function(algorithm.name(), |b| {
            b.iter(|| public_key.verify(black_box(&message), black_box(&signature)).unwrap())
        });
    }
    group.finish();

    let mut group = c.benchmark_group("sign_one_core");
    group.throughput(Throughput::Elements(1));
    group.sample_size(20).measurement_time(Duration::from_secs(3));
    for algorithm in SignatureAlgorithm::ALL {
        let private_key = PrivateKey::generate(algorithm);
        let message = vec![7u8; 256];
        group
            .bench_function(algorithm.name(), |b| b.iter(|| private_key.sign(black_box(&message))));
    }
    group.finish();
}

fn ed25519_batch(c: &mut Criterion) {
    let signed = signed(SignatureAlgorithm::Ed25519, 1024);
    let items = items(&signed);
    let one_thread = BatchVerifier::new(1);
    let mut group = c.benchmark_group("verify_batch_one_thread");
    group.throughput(Throughput::Elements(items.len() as u64));
    group.sample_size(20).measurement_time(Duration::from_secs(3));
    group.bench_function("ed25519_1024", |b| {
        b.iter(|| {
            let results = one_thread.verify_batch(black_box(&items));
            assert!(results.iter().all(|r| r.is_ok()));
        })
    });
    group.finish();
}

fn sm2_batch(c: &mut Criterion) {
    let signed = signed(SignatureAlgorithm::Sm2, 10_000);
    let items = items(&signed);
    let one_thread = BatchVerifier::new(1);
    let all_threads = BatchVerifier::global();
    let mut group = c.benchmark_group("verify_batch_sm2_10000");
    group.throughput(Throughput::Elements(items.len() as u64));
    group.sample_size(10).measurement_time(Duration::from_secs(15));
    for (name, verifier) in [("1_thread", &one_thread), ("all_threads", all_threads)] {
        group.bench_function(name, |b| {
            b.iter(|| {
                let results = verifier.verify_batch(black_box(&items));
                assert!(results.iter().all(|r| r.is_ok()));
            })
        });
    }
    group.finish();
}

/// Interleaves 1-thread and all-thread runs of the same 10,000-item SM2 batch and prints
/// the median speed-up, so the ratio comes from one run on one (noisy) machine.
fn report_sm2_speedup() {
    let signed = signed(SignatureAlgorithm::Sm2, 10_000);
    let items = items(&signed);
    let one_thread = BatchVerifier::new(1);
    let all_threads = BatchVerifier::global();
    let time = |verifier: &BatchVerifier| {
        let start = Instant::now();
        let results = verifier.verify_batch(&items);
        assert!(results.iter().all(|r| r.is_ok()));
        start.elapsed().as_secs_f64()
    };
    let mut ratios = Vec::new();
    let mut rates = Vec::new();
    for _ in 0..5 {
        let single = time(&one_thread);
        let all = time(all_threads);
        ratios.push(single / all);
        rates.push((items.len() as f64 / single, items.len() as f64 / all));
    }
    ratios.sort_by(f64::total_cmp);
    let median = ratios[ratios.len() / 2];
    println!(
        "verify_batch SM2 x{}: threads={} speed-up median={median:.2} (runs: {:?}); verifies/s (1 thread, all): {:?}",
        items.len(),
        all_threads.threads(),
        ratios.iter().map(|r| format!("{r:.2}")).collect::<Vec<_>>(),
        rates.iter().map(|(a, b)| format!("{a:.0}/{b:.0}")).collect::<Vec<_>>(),
    );
}

fn hashing(c: &mut Criterion) {
    let mut group = c.benchmark_group("hash");
    group.sample_size(20).measurement_time(Duration::from_secs(3));
    let small = vec![0x61u8; 256];
    let large = vec![0x61u8; 1 << 20];
    for algorithm in HashAlgorithm::ALL {
        group.throughput(Throughput::Elements(1));
        group.bench_function(format!("{}/256B", algorithm.name()), |b| {
            b.iter(|| hash(algorithm, black_box(&small)))
        });
        group.throughput(Throughput::Bytes(large.len() as u64));
        group.bench_function(format!("{}/1MiB", algorithm.name()), |b| {
            b.iter(|| hash(algorithm, black_box(&large)))
        });
    }
    group.finish();
}

fn hashing_many(c: &mut Criterion) {
    let mut group = c.benchmark_group("hash_many");
    group.sample_size(20).measurement_time(Duration::from_secs(3));
    println!(
        "hash_many: side-by-side SM3 (AVX-512 or AVX2) available: {}",
        crypto_parallel::hash_many::simd_available()
    );
    for len in [34usize, 200, 330] {
        let messages: Vec<Vec<u8>> = (0..1_000u32)
            .map(|i| [i.to_be_bytes().as_slice(), &vec![0x61; len - 4]].concat())
            .collect();
        group.throughput(Throughput::Elements(messages.len() as u64));
        group.bench_function(format!("sm3_{len}B_x1000/one_by_one"), |b| {
            b.iter(|| {
                black_box(&messages).iter().map(|m| hash(HashAlgorithm::Sm3, m)).collect::<Vec<_>>()
            })
        });
        group.bench_function(format!("sm3_{len}B_x1000/hash_many"), |b| {
            b.iter(|| hash_many(HashAlgorithm::Sm3, black_box(&messages)))
        });
    }
    group.finish();
}

criterion_group!(benches, verify_one_core, ed25519_batch, sm2_batch, hashing, hashing_many);

fn main() {
    benches();
    report_sm2_speedup();
    Criterion::default().configure_from_args().final_summary();
}
