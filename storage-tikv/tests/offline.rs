//! What needs no TiKV server: key encoding under a prefix, batch limits, and failing fast
//! (with the PD endpoints named) when no PD answers.

use std::time::{Duration, Instant};

use engine::store::{StoreError, WriteBatch};
use storage_tikv::{
    BATCH_BYTES_MAX, ENTRY_BYTES_MAX, TikvOptions, TikvStore, check_batch, decode_key, encode_key,
    encode_range,
};

#[test]
fn keys_live_under_the_prefix_and_come_back_without_it() {
    assert_eq!(encode_key(b"", b"abc"), b"abc");
    assert_eq!(encode_key(b"p/", b"\x00\xff"), b"p/\x00\xff");
    assert_eq!(decode_key(b"p/", b"p/\x00\xff"), Some(&b"\x00\xff"[..]));
    assert_eq!(decode_key(b"p/", b"q/\x00"), None);
    // A range keeps its order under the prefix: start < end stays start < end.
    let (start, end) = encode_range(b"tenant-a/", b"\x01", b"\x02");
    assert!(start < end);
    assert!(start.starts_with(b"tenant-a/") && end.starts_with(b"tenant-a/"));
    // Another prefix's keys never fall inside the range.
    assert!(!(start.as_slice()..end.as_slice()).contains(&&b"tenant-b/\x01"[..]));
}

#[test]
fn oversized_entries_and_batches_are_refused_before_sending() {
    let mut batch = WriteBatch::new();
    batch.put(b"k".to_vec(), vec![0; ENTRY_BYTES_MAX - 1]);
    check_batch(b"", &batch).unwrap();
    // The prefix counts toward the entry.
    assert!(
        matches!(check_batch(b"pp", &batch), Err(StoreError::Backend(m)) if m.contains("entry"))
    );
    let mut batch = WriteBatch::new();
    for i in 0..(BATCH_BYTES_MAX / (ENTRY_BYTES_MAX - 16) + 1) {
        batch.put(format!("k{i:08}").into_bytes(), vec![0; ENTRY_BYTES_MAX - 16]);
    }
    assert!(matches!(check_batch(b"", &batch), Err(StoreError::Backend(m)) if m.contains("batch")));
}

#[test]
fn no_pd_listening_fails_at_once_naming_the_endpoints() {
    // A port nothing listens on: connection refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let endpoint = format!("127.0.0.1:{port}");
    let started = Instant::now();
    let error = TikvStore::open(TikvOptions::new(vec![endpoint.clone()])).err().expect("no PD");
    let elapsed = started.elapsed();
    assert!(matches!(&error, StoreError::Unavailable(m) if m.contains(&endpoint)), "{error}");
    assert!(elapsed < Duration::from_secs(8), "took {elapsed:?}");
    println!("no PD: {error} (after {elapsed:?})");
}

#[test]
fn a_pd_that_never_answers_fails_within_the_connect_timeout() {
    // Accepts TCP connections and never says anything (a hung PD, or the wrong service).
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = listener.local_addr().unwrap().to_string();
    let held = std::thread::spawn(move || {
        let mut open = Vec::new();
        listener.set_nonblocking(true).unwrap();
        let until = Instant::now() + Duration::from_secs(15);
        while Instant::now() < until {
            if let Ok((stream, _)) = listener.accept() {
                open.push(stream);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    });
    let mut options = TikvOptions::new(vec![endpoint.clone()]);
    options.connect_timeout = Duration::from_secs(2);
    let started = Instant::now();
    let error = TikvStore::open(options).err().expect("a silent PD");
    let elapsed = started.elapsed();
    assert!(matches!(&error, StoreError::Unavailable(m) if m.contains(&endpoint)), "{error}");
    assert!(elapsed < Duration::from_secs(6), "took {elapsed:?}");
    println!("silent PD: {error} (after {elapsed:?})");
    drop(held);
}

#[test]
fn no_endpoint_is_an_error() {
    assert!(matches!(
        TikvStore::open(TikvOptions::new(Vec::new())),
        Err(StoreError::Unavailable(_))
    ));
}
