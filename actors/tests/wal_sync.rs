//! The node's WAL syncer (`actors::wal_sync`): a ticket is durable once a sync that began
//! after it is done (one sync may serve several tickets); a failed sync fails every
//! later wait, and a ticket synced before it stays durable.

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use actors::wal_sync::WalSyncer;
use common::FailingSyncStore;

#[test]
fn a_ticket_is_durable_after_a_sync_that_began_after_it() {
    let store = Arc::new(FailingSyncStore::default());
    let syncer = WalSyncer::start(store.clone()).unwrap();
    let first = syncer.ticket();
    syncer.wait(first).unwrap();
    assert!(store.syncs.load(Ordering::SeqCst) >= 1);
    let (second, third) = (syncer.ticket(), syncer.ticket());
    syncer.wait(third).unwrap();
    syncer.wait(second).unwrap();
    assert!(syncer.syncs() >= 2 && syncer.syncs() <= 3, "{} syncs", syncer.syncs());
    assert_eq!(syncer.syncs(), store.syncs.load(Ordering::SeqCst));
}

#[test]
fn a_failed_sync_fails_every_later_wait() {
    let store = Arc::new(FailingSyncStore::default());
    let syncer = WalSyncer::start(store.clone()).unwrap();
    let durable = syncer.ticket();
    syncer.wait(durable).unwrap();
    store.fail.store(true, Ordering::SeqCst);
    let error = syncer.wait(syncer.ticket()).unwrap_err();
    assert!(error.contains("input/output error"), "{error}");
    syncer.wait(durable).expect("a ticket synced before the failure stays durable");
    store.fail.store(false, Ordering::SeqCst);
    assert!(syncer.wait(syncer.ticket()).is_err(), "a sync after a failure is not trusted");
}
