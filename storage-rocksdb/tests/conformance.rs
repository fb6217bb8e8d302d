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
