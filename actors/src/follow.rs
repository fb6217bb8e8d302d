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
    stopping: tokio::sync::watch::Receiver<bool>,
    position: u64,
}

impl Follower {
    /// A follower whose next read starts at `from`.
    pub fn new(handle: LedgerHandle, from: u64) -> Self {
        // Subscribe before the first read, so no commit falls between the two.
        let notices = handle.subscribe();
        let stopping = handle.stopping();
        Follower { handle, notices, stopping, position: from }
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
            if *self.stopping.borrow() {
                return Err(FollowError::Stopped);
            }
            tokio::select! {
                notice = self.notices.recv() => match notice {
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return Err(FollowError::Stopped),
                },
                _ = self.stopping.wait_for(|stopping| *stopping) => return Err(FollowError::Stopped),
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
        let (mut height, mut transactions) = (from, 0usize);
        // A block message lists its transactions: stop at one full block's worth.
        while height <= head && items.len() < limit && transactions < engine::limits::BLOCK_TXS_MAX
        {
            if let Some(block) = reader.block(height)? {
                transactions += block.transactions.len();
                items.push((height, block));
            }
            height += 1;
        }
        Ok(Page { items, next: height.max(from) })
    }
}

/// A page of events stops after this many payload bytes (it holds at least one event),
/// so a page's memory is bounded however large the payloads (up to 1 MiB each).
pub const PAGE_PAYLOAD_BYTES: usize = 256 << 10;

/// Events are read from the store this many at a time, until a page is full.
const READ_CHUNK: usize = 16;

/// Reads events with `read(from, chunk)` until `limit` events or `PAGE_PAYLOAD_BYTES`
/// are read; `position` gives each event's stream position.
fn bounded_page(
    from: u64,
    limit: usize,
    mut read: impl FnMut(u64, usize) -> Result<Vec<EventRecord>, EngineError>,
    position: impl Fn(&EventRecord) -> u64,
) -> Result<(Vec<EventRecord>, u64), EngineError> {
    let (mut events, mut bytes, mut next) = (Vec::new(), 0usize, from);
    while events.len() < limit && bytes < PAGE_PAYLOAD_BYTES {
        let chunk = read(next, READ_CHUNK.min(limit - events.len()))?;
        let short = chunk.len() < READ_CHUNK.min(limit - events.len());
        for event in chunk {
            bytes += event.payload.len();
            next = position(&event) + 1;
            events.push(event);
            if bytes >= PAGE_PAYLOAD_BYTES {
                break;
            }
        }
        if short {
            break;
        }
    }
    Ok((events, next))
}

/// Reads up to `limit` events (and `PAGE_PAYLOAD_BYTES`) from event number `from`,
/// keeping those `keep` accepts.
pub fn events<K>(
    limit: usize,
    keep: K,
) -> impl Fn(&Reader, u64) -> Result<Page<EventRecord>, EngineError> + Clone
where
    K: Fn(&EventRecord) -> bool + Clone,
{
    move |reader, from| {
        let (read, next) =
            bounded_page(from, limit, |at, n| reader.events(at, n), |event| event.number)?;
        let items = read.into_iter().filter(|e| keep(e)).map(|e| (e.number, e)).collect();
        Ok(Page { items, next })
    }
}

/// Reads up to `limit` events (and `PAGE_PAYLOAD_BYTES`) of one topic from sequence
/// `from`.
pub fn topic(
    account: String,
    topic: String,
    limit: usize,
) -> impl Fn(&Reader, u64) -> Result<Page<EventRecord>, EngineError> + Clone {
    move |reader, from| {
        let (read, next) = bounded_page(
            from,
            limit,
            |at, n| reader.topic_events(&account, &topic, at, n),
            |event| event.sequence,
        )?;
        Ok(Page { items: read.into_iter().map(|e| (e.sequence, e)).collect(), next })
    }
}
