//! The engine's `KvStore` conformance suite, on RocksDB.

use storage_rocksdb::RocksStore;

#[test]
fn rocks_store_conforms() {
    let dirs = std::cell::RefCell::new(Vec::new());
    engine::conformance::run_all(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = RocksStore::open(dir.path()).expect("open RocksDB");
        dirs.borrow_mut().push(dir);
        store
    });
}

#[test]
fn data_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = RocksStore::open(dir.path()).unwrap();
        let mut batch = engine::store::WriteBatch::new();
        batch.put(b"k".to_vec(), b"v".to_vec());
        engine::store::KvStore::write(&store, batch).unwrap();
    }
    let store = RocksStore::open(dir.path()).unwrap();
    assert_eq!(engine::store::KvStore::get(&store, b"k").unwrap(), Some(b"v".to_vec()));
}

/// The tuning that has no setter in RocksDB's C API is set by name; RocksDB's own
/// OPTIONS file shows that it took, and a batch of keys in and out of one table
/// prefix reads back.
#[test]
fn memtable_insert_hint_is_set_by_table_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let store = RocksStore::open(dir.path()).unwrap();
    let options = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(Result::ok)
        .find(|entry| entry.file_name().to_string_lossy().starts_with("OPTIONS-"))
        .expect("an OPTIONS file");
    let text = std::fs::read_to_string(options.path()).unwrap();
    let wanted = format!(
        "memtable_insert_with_hint_prefix_extractor=rocksdb.FixedPrefix.{}",
        engine::layout::TABLE_PREFIX_LEN
    );
    assert!(text.contains(&wanted), "{wanted} not in RocksDB's OPTIONS file");
    let ledger = engine::model::LedgerId([7; 32]);
    let mut batch = engine::store::WriteBatch::new();
    let mut keys = Vec::new();
    for i in 0..1000u64 {
        keys.push(engine::layout::block_key(&ledger, i));
        keys.push(engine::layout::meta_key(&ledger, &format!("m{i}")));
    }
    keys.push(b"short".to_vec()); // outside the extractor's domain
    for (i, key) in keys.iter().enumerate() {
        batch.put(key.clone(), i.to_le_bytes().to_vec());
    }
    engine::store::KvStore::write(&store, batch).unwrap();
    for (i, key) in keys.iter().enumerate() {
        let value = engine::store::KvStore::get(&store, key).unwrap();
        assert_eq!(value, Some(i.to_le_bytes().to_vec()));
    }
}
