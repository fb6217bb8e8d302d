//! Following a ledger from a position: the cursor behind subscriptions (SSE, WebSocket)
//! and webhooks.
//!
//! A `Follower` owns no queue. It reads committed data from the store from its position
//! on (catch-up reads, a bounded page at a time) and, once caught up, sleeps until the
//! ledger announces a new block. The announcement channel is a fixed-size ring
//! (`broadcast`): a follower that falls behind it loses only wake-ups, never data, and
//! its consumer's pace never reaches the ledger actor. A slow consumer therefore costs
//! one cursor and one page in memory, and cannot stall commits.

use std::sync::Arc;

use engine::ledger::{EngineError, EventRecord, Ledger, StoredBlock};
use engine::store::KvStore;
use tokio::sync::broadcast;

use crate::{BlockNotice, LedgerHandle};

/// A ledger reader at its committed head.
pub type Reader = Ledger<Arc<dyn KvStore>>;

/// Items read from a position, and the position after them.
#[derive(Debug)]
pub struct Page<T> {
    /// What was found (possibly nothing, when a filter dropped everything read).
    pub items: Vec<(u64, T)>,
    /// Where the next read starts; greater than the position read from when anything
    /// was read, filtered or not.
    pub next: u64,
}

/// Why following stopped.
#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    /// Reading the ledger failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The ledger stopped on this node (shutdown).
    #[error("the ledger stopped on this node")]
    Stopped,
}

/// A cursor over one ledger's committed data.
pub struct Follower {
    handle: LedgerHandle,
    notices: broadcast::Receiver<BlockNotice>,
    position: u64,
}

impl Follower {
    /// A follower whose next read starts at `from`.
    pub fn new(handle: LedgerHandle, from: u64) -> Self {
        // Subscribe before the first read, so no commit falls between the two.
        let notices = handle.subscribe();
        Follower { handle, notices, position: from }
    }

    /// Where the next read starts.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Waits until `fetch` (run on the blocking pool against the committed state) finds
    /// items at or after the position; returns them and moves past them.
    pub async fn next<T, F>(&mut self, fetch: F) -> Result<Vec<(u64, T)>, FollowError>
    where
        T: Send + 'static,
        F: Fn(&Reader, u64) -> Result<Page<T>, EngineError> + Clone + Send + 'static,
    {
        loop {
            // Wake-ups that arrived while the consumer was busy are covered by the read
            // below; a commit after this point sends a new one.
            loop {
                match self.notices.try_recv() {
                    Ok(_) | Err(broadcast::error::TryRecvError::Lagged(_)) => continue,
                    Err(broadcast::error::TryRecvError::Empty) => break,
                    Err(broadcast::error::TryRecvError::Closed) => {
                        return Err(FollowError::Stopped);
                    }
                }
            }
            let handle = self.handle.clone();
            let fetch = fetch.clone();
            let position = self.position;
            let page = tokio::task::spawn_blocking(move || fetch(&handle.reader()?, position))
                .await
                .map_err(|_| FollowError::Stopped)??;
            if page.next > self.position {
                self.position = page.next;
                if !page.items.is_empty() {
                    return Ok(page.items);
                }
                continue; // everything read was filtered out: read on
            }
            match self.notices.recv().await {
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return Err(FollowError::Stopped),
            }
        }
    }
}

/// Reads up to `limit` committed blocks from height `from`.
pub fn blocks(
    limit: usize,
) -> impl Fn(&Reader, u64) -> Result<Page<StoredBlock>, EngineError> + Clone {
    move |reader, from| {
        let head = reader.head().height;
        let mut items = Vec::new();
        let mut height = from;
        while height <= head && items.len() < limit {
            if let Some(block) = reader.block(height)? {
                items.push((height, block));
            }
            height += 1;
        }
        Ok(Page { items, next: height.max(from) })
    }
}

/// Reads up to `limit` events from event number `from`, keeping those `keep` accepts.
pub fn events<K>(
    limit: usize,
    keep: K,
) -> impl Fn(&Reader, u64) -> Result<Page<EventRecord>, EngineError> + Clone
where
    K: Fn(&EventRecord) -> bool + Clone,
{
    move |reader, from| {
        let read = reader.events(from, limit)?;
        let next = read.last().map_or(from, |event| event.number + 1);
        let items = read.into_iter().filter(|e| keep(e)).map(|e| (e.number, e)).collect();
        Ok(Page { items, next })
    }
}

/// Reads up to `limit` events of one topic from sequence `from`.
pub fn topic(
    account: String,
    topic: String,
    limit: usize,
) -> impl Fn(&Reader, u64) -> Result<Page<EventRecord>, EngineError> + Clone {
    move |reader, from| {
        let read = reader.topic_events(&account, &topic, from, limit)?;
        let next = read.last().map_or(from, |event| event.sequence + 1);
        Ok(Page { items: read.into_iter().map(|e| (e.sequence, e)).collect(), next })
    }
}
