//! The node's WAL syncer: one thread that makes the store's unsynced writes durable
//! (`KvStore::sync`) while the ledger actors go on executing.
//!
//! A ledger actor commits a block with `Ledger::commit_unsynced`, takes a ticket here and
//! executes its next block; before it reports the block (or writes the next one) it
//! waits for the ticket. The thread syncs once for every ticket taken since its last
//! sync, so the blocks of several ledgers written meanwhile share one fsync.
//!
//! A failed sync is permanent: the store cannot say what reached the disk, so every
//! wait from then on fails and the actors halt their ledgers (a restart recovers from
//! what is on disk, always a prefix of whole blocks).

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use engine::store::KvStore;
use parking_lot::{Condvar, Mutex};

/// Tickets and the sync thread (see the module documentation).
pub struct WalSyncer {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    /// Wakes the thread (a ticket taken, or stop) and the waiters (a sync done).
    changed: Condvar,
}

#[derive(Default)]
struct State {
    /// The last ticket handed out.
    taken: u64,
    /// Every ticket up to this one is durable.
    synced: u64,
    failed: Option<String>,
    stop: bool,
    /// Syncs run, for tests and metrics.
    syncs: u64,
}

impl WalSyncer {
    /// Starts the thread for `store`.
    pub fn start(store: Arc<dyn KvStore>) -> std::io::Result<Self> {
        let shared = Arc::new(Shared::default());
        let thread = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("wal-sync".into())
                .spawn(move || run(&shared, store.as_ref()))?
        };
        Ok(WalSyncer { shared, thread: Some(thread) })
    }

    /// A ticket for every write that returned before this call: `wait` on it returns once
    /// they are durable.
    pub fn ticket(&self) -> u64 {
        let mut state = self.shared.state.lock();
        state.taken += 1;
        let ticket = state.taken;
        drop(state);
        self.shared.changed.notify_all();
        ticket
    }

    /// Waits until `ticket` is durable; `Err` when a sync failed (then every later wait
    /// fails too).
    pub fn wait(&self, ticket: u64) -> Result<(), String> {
        let mut state = self.shared.state.lock();
        loop {
            // A ticket synced before a failure stays durable.
            if state.synced >= ticket {
                return Ok(());
            }
            if let Some(reason) = &state.failed {
                return Err(format!("the WAL sync failed: {reason}"));
            }
            // A bounded wait: the thread notifies, this only guards against a lost
            // wake-up turning into a hang.
            self.shared.changed.wait_for(&mut state, Duration::from_millis(100));
        }
    }

    /// Syncs run so far.
    pub fn syncs(&self) -> u64 {
        self.shared.state.lock().syncs
    }
}

fn run(shared: &Shared, store: &dyn KvStore) {
    let mut state = shared.state.lock();
    loop {
        if state.stop {
            return;
        }
        if state.taken == state.synced || state.failed.is_some() {
            shared.changed.wait(&mut state);
            continue;
        }
        let target = state.taken;
        drop(state);
        let result = store.sync();
        state = shared.state.lock();
        state.syncs += 1;
        match result {
            Ok(()) => state.synced = target,
            Err(error) => {
                tracing::error!(%error, "WAL sync failed: the ledgers on this store halt");
                state.failed = Some(error.to_string());
            }
        }
        shared.changed.notify_all();
    }
}

impl Drop for WalSyncer {
    /// Stops the thread after the sync in progress, if any (the store's own close makes
    /// the rest durable).
    fn drop(&mut self) {
        self.shared.state.lock().stop = true;
        self.shared.changed.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
