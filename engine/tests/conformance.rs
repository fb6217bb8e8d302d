//! The `KvStore` conformance suite on the in-memory store (the model the others are
//! compared with; `storage-rocksdb/tests/conformance.rs` runs the same suite on RocksDB).

#[test]
fn memory_store_conforms() {
    engine::conformance::run_all(engine::store::MemoryStore::new);
}
