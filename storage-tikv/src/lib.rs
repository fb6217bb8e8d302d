//! `TikvStore`: the engine's `KvStore` on a TiKV cluster, for ledgers that outgrow one
//! machine's disk (billions of records). RocksDB stays the embedded default.
//!
//! - **Transactional API, not raw.** `KvStore::write` promises that a batch (a block's
//!   state, history, indexes, head and the consensus applied marker) is visible entirely
//!   or not at all. Raw KV batches are atomic per region only, and a block's keys span
//!   regions; a raw commit protocol would have to make every key idempotent per height and
//!   every read height-bounded, which the engine's layout is not (docs/ARCHITECTURE.md).
//!   TiKV's transactions (Percolator two-phase commit) give the atomicity directly; the
//!   cost is a timestamp from PD per read and per write.
//! - **Compare-and-swap head.** A batch's expectations (`WriteBatch::expect`: the ledger
//!   head) are read inside the same optimistic transaction; TiKV's conflict detection
//!   makes check and write one step, so two writers can never both advance a ledger.
//! - **Limits.** An entry (key + value) above 6 MiB (TiDB's default
//!   `txn-entry-size-limit`, well inside TiKV's `raftstore.raft-entry-max-size` of 8 MiB)
//!   or a batch above [`BATCH_BYTES_MAX`] is refused before anything is sent. The client splits
//!   a transaction's mutations per region and retries region errors (stale epoch, not
//!   leader) with its own backoff; reads are retried here with backoff on transient errors
//!   until the call's deadline.
//! - **Timeouts on every call** (`TikvOptions::timeout`, default 5 s) and on connecting
//!   (`connect_timeout`, default 5 s): an unreachable PD fails the node's start with the
//!   endpoints named, a TiKV lost mid-run turns into `StoreError::Timeout`/`Unavailable`.
//! - **Key prefix** (optional): every key is stored under `prefix`, so several
//!   deployments (or test runs) can share one cluster without a keyspace each.
//!
//! The store is synchronous (`KvStore`); calls run on the store's own Tokio runtime and
//! the caller waits on a channel, so it may be called from any thread, async or not.

use std::future::Future;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use engine::store::{Direction, Entries, KvStore, StoreError, WriteBatch, WriteOp};
use tikv_client::{BoundRange, CheckLevel, Key, TransactionClient, TransactionOptions};

/// The largest key + value of one mutation: TiDB's default `txn-entry-size-limit`,
/// below TiKV's 8 MiB raft entry limit (one mutation must fit in one raft entry).
pub const ENTRY_BYTES_MAX: usize = 6 << 20;
/// The largest batch this store sends as one transaction (a block's batch is far below).
pub const BATCH_BYTES_MAX: usize = 256 << 20;
/// Entries per scan request (a larger `limit` pages).
const SCAN_PAGE: usize = 4096;

/// How to reach a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TikvOptions {
    /// PD endpoints (`host:port`).
    pub endpoints: Vec<String>,
    /// A TiKV keyspace (API v2, `storage.api-version = 2` on the cluster); `None`: API v1.
    pub keyspace: Option<String>,
    /// Prepended to every key (may be empty).
    pub prefix: Vec<u8>,
    /// Deadline of every read and write.
    pub timeout: Duration,
    /// Deadline of connecting to PD at open.
    pub connect_timeout: Duration,
}

impl TikvOptions {
    /// Defaults for `endpoints`: API v1, no prefix, 5 s deadlines.
    pub fn new(endpoints: Vec<String>) -> Self {
        TikvOptions {
            endpoints,
            keyspace: None,
            prefix: Vec::new(),
            timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
        }
    }
}

/// A `KvStore` on a TiKV cluster.
pub struct TikvStore {
    client: TransactionClient,
    /// Always `Some` until dropped (taken there: a runtime must not block while shutting
    /// down, and the store may be dropped inside another async runtime).
    runtime: Option<tokio::runtime::Runtime>,
    options: TikvOptions,
}

impl Drop for TikvStore {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl TikvStore {
    /// Connects to the cluster's PD endpoints; fails within `connect_timeout` (plus
    /// thread start-up) with the endpoints named when none answers.
    pub fn open(options: TikvOptions) -> Result<Self, StoreError> {
        if options.endpoints.is_empty() {
            return Err(StoreError::Unavailable("tikv: no PD endpoint given".into()));
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("tikv-client")
            .enable_all()
            .build()
            .map_err(|e| StoreError::Unavailable(format!("tikv: starting its runtime: {e}")))?;
        let mut config = tikv_client::Config::default().with_timeout(options.timeout);
        if let Some(keyspace) = &options.keyspace {
            config = config.with_keyspace(keyspace);
        }
        let connected = Self::connect(&runtime, &options, config);
        match connected {
            Ok(client) => Ok(TikvStore { client, runtime: Some(runtime), options }),
            Err(error) => {
                runtime.shutdown_background();
                Err(error)
            }
        }
    }

    fn connect(
        runtime: &tokio::runtime::Runtime,
        options: &TikvOptions,
        config: tikv_client::Config,
    ) -> Result<TransactionClient, StoreError> {
        let endpoints = options.endpoints.clone();
        let named = endpoints.join(",");
        let connect = async move { TransactionClient::new_with_config(endpoints, config).await };
        let client = wait(runtime, options.connect_timeout, connect)
            .map_err(|_| {
                StoreError::Unavailable(format!(
                    "tikv: no answer from PD {named} within {} ms",
                    options.connect_timeout.as_millis()
                ))
            })?
            .map_err(|e| StoreError::Unavailable(format!("tikv: cannot reach PD {named}: {e}")))?;
        // One round trip proves a PD leader answers (connect alone may not).
        let probe = client.clone();
        wait(runtime, options.connect_timeout, async move { probe.current_timestamp().await })
            .map_err(|_| {
                StoreError::Unavailable(format!(
                    "tikv: PD {named} gave no timestamp within {} ms",
                    options.connect_timeout.as_millis()
                ))
            })?
            .map_err(|e| StoreError::Unavailable(format!("tikv: PD {named}: {e}")))?;
        Ok(client)
    }

    fn runtime(&self) -> &tokio::runtime::Runtime {
        self.runtime.as_ref().expect("present until dropped")
    }

    /// The options it was opened with.
    pub fn options(&self) -> &TikvOptions {
        &self.options
    }

    /// Runs a read with retries on transient errors until the call's deadline.
    fn read<T, F, Fut>(&self, what: &str, mut attempt: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnMut(TransactionClient) -> Fut,
        Fut: Future<Output = Result<T, tikv_client::Error>> + Send + 'static,
    {
        let deadline = Instant::now() + self.options.timeout;
        let mut backoff = Duration::from_millis(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let outcome = wait(self.runtime(), left, attempt(self.client.clone()))
                .map_err(|_| StoreError::Timeout(self.options.timeout.as_millis() as u64))?;
            match outcome {
                Ok(value) => return Ok(value),
                Err(error) if transient(&error) && Instant::now() + backoff < deadline => {
                    tracing::debug!(%error, what, "tikv: transient error; retrying");
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_millis(500));
                }
                Err(error) => return Err(map_error(what, error)),
            }
        }
    }

    fn snapshot_options() -> TransactionOptions {
        TransactionOptions::new_optimistic().read_only().drop_check(CheckLevel::None)
    }
}

/// Runs `future` on `runtime` and waits for it at most `timeout`, from any thread
/// (inside another async runtime too: the caller blocks on a channel, not on Tokio).
fn wait<T: Send + 'static>(
    runtime: &tokio::runtime::Runtime,
    timeout: Duration,
    future: impl Future<Output = T> + Send + 'static,
) -> Result<T, mpsc::RecvTimeoutError> {
    let (sender, receiver) = mpsc::sync_channel(1);
    runtime.spawn(async move {
        let _ = sender.send(future.await);
    });
    receiver.recv_timeout(timeout)
}

/// Errors worth another attempt for a read (the cluster is electing, a region moved).
fn transient(error: &tikv_client::Error) -> bool {
    use tikv_client::Error as E;
    matches!(
        error,
        E::RegionError(_)
            | E::Grpc(_)
            | E::GrpcAPI(_)
            | E::NoCurrentRegions
            | E::EntryNotFoundInRegionCache
            | E::ResolveLockError(_)
            | E::Io(_)
    )
}

/// A client error as a store error: write conflicts are conflicts (someone else
/// advanced), connection trouble is unavailability, the rest is the backend's.
pub fn map_error(what: &str, error: tikv_client::Error) -> StoreError {
    use tikv_client::Error as E;
    match &error {
        E::KeyError(key_error) if key_error.conflict.is_some() => {
            StoreError::Conflict(format!("tikv {what}: {error}"))
        }
        E::Grpc(_) | E::GrpcAPI(_) | E::Io(_) | E::Channel(_) | E::Canceled(_) => {
            StoreError::Unavailable(format!("tikv {what}: {error}"))
        }
        E::UndeterminedError(_) => StoreError::Unavailable(format!(
            "tikv {what}: outcome unknown (the commit may or may not have applied; reopen to \
             read the head): {error}"
        )),
        _ => StoreError::Backend(format!("tikv {what}: {error}")),
    }
}

/// `prefix ‖ key`.
pub fn encode_key(prefix: &[u8], key: &[u8]) -> Vec<u8> {
    let mut encoded = Vec::with_capacity(prefix.len() + key.len());
    encoded.extend_from_slice(prefix);
    encoded.extend_from_slice(key);
    encoded
}

/// The stored key without `prefix` (`None` when it does not start with it).
pub fn decode_key<'a>(prefix: &[u8], stored: &'a [u8]) -> Option<&'a [u8]> {
    stored.strip_prefix(prefix)
}

/// The stored range of `start <= key < end` under `prefix`.
pub fn encode_range(prefix: &[u8], start: &[u8], end: &[u8]) -> (Vec<u8>, Vec<u8>) {
    (encode_key(prefix, start), encode_key(prefix, end))
}

/// Refuses a batch TiKV would refuse (or that is unreasonably large) before sending it.
pub fn check_batch(prefix: &[u8], batch: &WriteBatch) -> Result<(), StoreError> {
    let mut total = 0usize;
    for op in batch.ops() {
        let bytes = match op {
            WriteOp::Put { key, value } => prefix.len() + key.len() + value.len(),
            WriteOp::Delete { key } => prefix.len() + key.len(),
        };
        if bytes > ENTRY_BYTES_MAX {
            return Err(StoreError::Backend(format!(
                "tikv: an entry of {bytes} bytes exceeds the {ENTRY_BYTES_MAX}-byte limit per \
                 entry (TiKV's raft entries are at most 8 MiB)"
            )));
        }
        total += bytes;
    }
    if total > BATCH_BYTES_MAX {
        return Err(StoreError::Backend(format!(
            "tikv: a batch of {total} bytes exceeds this store's limit of {BATCH_BYTES_MAX} bytes"
        )));
    }
    Ok(())
}

impl KvStore for TikvStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let key = encode_key(&self.options.prefix, key);
        self.read("get", move |client| {
            let key = key.clone();
            async move {
                let timestamp = client.current_timestamp().await?;
                client.snapshot(timestamp, TikvStore::snapshot_options()).get(key).await
            }
        })
    }

    fn multi_get(&self, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let encoded: Vec<Vec<u8>> =
            keys.iter().map(|key| encode_key(&self.options.prefix, key)).collect();
        let found = self.read("multi_get", move |client| {
            let keys = encoded.clone();
            async move {
                let timestamp = client.current_timestamp().await?;
                let mut snapshot = client.snapshot(timestamp, TikvStore::snapshot_options());
                let pairs: Vec<(Vec<u8>, Vec<u8>)> = snapshot
                    .batch_get(keys)
                    .await?
                    .map(|pair| (Vec::from(pair.0), pair.1))
                    .collect();
                Ok(pairs)
            }
        })?;
        let found: std::collections::HashMap<Vec<u8>, Vec<u8>> = found.into_iter().collect();
        Ok(keys
            .iter()
            .map(|key| found.get(&encode_key(&self.options.prefix, key)).cloned())
            .collect())
    }

    fn scan(
        &self,
        start: &[u8],
        end: &[u8],
        direction: Direction,
        limit: usize,
    ) -> Result<Entries, StoreError> {
        if start >= end || limit == 0 {
            return Ok(Vec::new());
        }
        let prefix = self.options.prefix.clone();
        let (mut low, mut high) = encode_range(&prefix, start, end);
        let mut entries = Vec::new();
        while entries.len() < limit {
            let page = (limit - entries.len()).min(SCAN_PAGE);
            let range: BoundRange = (Key::from(low.clone())..Key::from(high.clone())).into();
            let pairs: Vec<(Vec<u8>, Vec<u8>)> = self.read("scan", move |client| {
                let range = range.clone();
                async move {
                    let timestamp = client.current_timestamp().await?;
                    let mut snapshot = client.snapshot(timestamp, TikvStore::snapshot_options());
                    let pairs = match direction {
                        Direction::Forward => snapshot.scan(range, page as u32).await?.collect(),
                        Direction::Reverse => {
                            snapshot.scan_reverse(range, page as u32).await?.collect()
                        }
                    };
                    let pairs: Vec<tikv_client::KvPair> = pairs;
                    Ok(pairs.into_iter().map(|pair| (Vec::from(pair.0), pair.1)).collect())
                }
            })?;
            let full = pairs.len() == page;
            let Some((last, _)) = pairs.last() else { break };
            match direction {
                // Next page after the last key: the smallest key greater than it.
                Direction::Forward => {
                    low = last.clone();
                    low.push(0);
                }
                // Next page below the last key (the end is exclusive).
                Direction::Reverse => high = last.clone(),
            }
            for (key, value) in pairs {
                let key = decode_key(&prefix, &key)
                    .ok_or_else(|| StoreError::Backend("tikv: scan left the key prefix".into()))?
                    .to_vec();
                entries.push((key, value));
            }
            if !full || low >= high {
                break;
            }
        }
        Ok(entries)
    }

    fn write(&self, batch: WriteBatch) -> Result<(), StoreError> {
        if batch.is_empty() && batch.expectations().is_empty() {
            return Ok(());
        }
        let prefix = self.options.prefix.clone();
        check_batch(&prefix, &batch)?;
        let client = self.client.clone();
        let commit = async move {
            let options = TransactionOptions::new_optimistic().drop_check(CheckLevel::Warn);
            let mut transaction = client.begin_with_options(options).await?;
            let result: Result<Result<(), StoreError>, tikv_client::Error> = async {
                for (key, expected) in batch.expectations() {
                    let current = transaction.get(encode_key(&prefix, key)).await?;
                    if current != *expected {
                        return Ok(Err(engine::store::expectation_failed(
                            key,
                            expected.as_deref(),
                            current.as_deref(),
                        )));
                    }
                }
                for op in batch.ops() {
                    match op {
                        WriteOp::Put { key, value } => {
                            transaction.put(encode_key(&prefix, key), value.clone()).await?
                        }
                        WriteOp::Delete { key } => {
                            transaction.delete(encode_key(&prefix, key)).await?
                        }
                    }
                }
                Ok(Ok(()))
            }
            .await;
            match result {
                Ok(Ok(())) => transaction.commit().await.map(|_| Ok(())),
                other => {
                    let _ = transaction.rollback().await;
                    other
                }
            }
        };
        match wait(self.runtime(), self.options.timeout, commit) {
            Err(_) => Err(StoreError::Timeout(self.options.timeout.as_millis() as u64)),
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(conflict))) => Err(conflict),
            Ok(Err(error)) => Err(map_error("write", error)),
        }
    }
}
