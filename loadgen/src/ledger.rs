//! The polyledger side of the load generator: a traceability-shaped workload of signed
//! transactions, and the two targets — gateways over HTTP ([`HttpTarget`]) and an
//! in-process node ([`EmbeddedTarget`], the engine without HTTP).
//!
//! # Workload
//!
//! Per ledger, write `i` goes to trace code `i mod keys` of the run (or, with probability
//! `hot_share`, to one of the `max(1, keys / 100)` hot codes), as an EPCIS-like event
//! record of about `value_size` bytes. Its expected version is the number of earlier writes
//! to the same key in this run: the workload assumes every earlier write committed in
//! order, so a failed or reordered write of a key makes the later ones fail with
//! `VERSION_CONFLICT` — counted by the report, as a real client would see it. Keys carry a
//! random run id, so runs never collide with earlier data.
//!
//! With a shard map ([`Routing`]), the ledgers are a category's and each trace code is
//! written on the ledger [`sharding::ShardMap::route`] gives it — the function the
//! gateway's capture and the SDK use — so a split category is loaded as it is routed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actors::{LedgerHandle, SubmitError, TxStatus};
use bytes::Bytes;
use crypto_parallel::PrivateKey;
use engine::model::{LedgerId, Operation, ResultCode, Transaction, TransactionContent};
use rayon::prelude::*;

use crate::{BatchResult, Source, Target, TxResult};

/// Data account the workload writes to (registered by `prepare` when missing).
pub const ACCOUNT: &str = "trace";
/// Event account a publishing workload (`WorkloadSpec::publish`) publishes to.
pub const EVENT_ACCOUNT: &str = "trace-events";
/// The topic it publishes on.
pub const EVENT_TOPIC: &str = "capture";

/// The shape of the workload.
#[derive(Debug, Clone)]
pub struct WorkloadSpec {
    /// Distinct trace codes per ledger.
    pub keys: u64,
    /// Share of writes (0..=1) that go to the hot codes.
    pub hot_share: f64,
    /// Approximate size of each event record in bytes.
    pub value_size: usize,
    /// Transactions per batch (one HTTP request / one submit call).
    pub batch_size: usize,
    /// Each transaction also publishes its record as an event (`EVENT_ACCOUNT` /
    /// `EVENT_TOPIC`): the workload of the subscription benchmark.
    pub publish: bool,
    /// Route trace codes through a shard map (the ledgers are then the category's, in
    /// the map's order).
    pub routing: Option<Arc<Routing>>,
}

/// Routing of a workload's trace codes: a shard map and the category loaded.
#[derive(Debug, Clone)]
pub struct Routing {
    /// The map.
    pub map: sharding::ShardMap,
    /// The category whose ledgers are loaded.
    pub category: String,
}

impl Default for WorkloadSpec {
    fn default() -> Self {
        WorkloadSpec {
            keys: 1_000_000,
            hot_share: 0.0,
            value_size: 200,
            batch_size: 200,
            publish: false,
            routing: None,
        }
    }
}

/// One ledger the workload targets.
#[derive(Debug, Clone)]
pub struct LedgerTarget {
    /// Its id.
    pub id: LedgerId,
    /// Its name (report rows).
    pub name: String,
}

/// A batch ready to send: the transactions, and their encoded batch body.
pub struct LedgerBatch {
    /// The ledger.
    pub ledger: LedgerId,
    /// The transactions (the embedded target submits these).
    pub transactions: Vec<Transaction>,
    /// `encode_transactions` bytes (the HTTP target posts these).
    pub body: Bytes,
}

/// The GTIN of the workload's trace codes (GS1's example company prefix 0614141).
pub const WORKLOAD_GTIN: &str = "10614141073464";

/// Builds transactions for ledgers from one signer.
pub struct Workload {
    spec: WorkloadSpec,
    ledgers: Vec<LedgerTarget>,
    signer: PrivateKey,
    run_id: String,
    nonce_base: u64,
    /// Per ledger, per key: writes assigned so far (the next expected version).
    versions: Vec<parking_lot::Mutex<std::collections::HashMap<u64, i64>>>,
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

impl Workload {
    /// A workload over `ledgers`, signed by `signer` (a registered user of each ledger).
    pub fn new(spec: WorkloadSpec, ledgers: Vec<LedgerTarget>, signer: PrivateKey) -> Self {
        let run: u64 = rand::random();
        let versions = ledgers.iter().map(|_| Default::default()).collect();
        Workload {
            spec,
            ledgers,
            signer,
            run_id: format!("{:06x}", run & 0xff_ffff),
            nonce_base: run,
            versions,
        }
    }

    /// The run id in every key of this run.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// The ledgers.
    pub fn ledgers(&self) -> &[LedgerTarget] {
        &self.ledgers
    }

    /// The trace code of key number `k` of `ledger`: a GS1 Digital Link (canonical
    /// form). With routing, the first of `k`'s candidate serials that the shard map
    /// routes to `ledger` (about as many tries as the category has ledgers).
    pub fn key(&self, ledger: usize, k: u64) -> String {
        let code = |j: u64| {
            let serial = if j == 0 {
                format!("{}{k:09}", self.run_id)
            } else {
                format!("{}{k:09}.{j}", self.run_id)
            };
            format!("https://id.gs1.org/01/{WORKLOAD_GTIN}/21/{serial}")
        };
        let Some(routing) = &self.spec.routing else { return code(0) };
        let wanted = self.ledgers[ledger].name.as_str();
        (0..)
            .map(code)
            .find(|candidate| {
                routing.map.route(sharding::Target::Category(&routing.category), candidate)
                    == Ok(wanted)
            })
            .expect("some serial routes to every ledger of the category")
    }

    fn key_number(&self, ledger: usize, i: u64) -> u64 {
        let draw = splitmix(self.nonce_base ^ ((ledger as u64) << 48) ^ i);
        let hot = (draw >> 11) as f64 / (1u64 << 53) as f64 <= self.spec.hot_share
            && self.spec.hot_share > 0.0;
        if hot {
            let hot_keys = (self.spec.keys / 100).max(1);
            splitmix(draw) % hot_keys
        } else {
            i % self.spec.keys.max(1)
        }
    }

    fn event(&self, key: &str, i: u64) -> Vec<u8> {
        const STEPS: [&str; 5] =
            ["commissioning", "packing", "shipping", "receiving", "retail_selling"];
        let mut record = format!(
            "{{\"type\":\"ObjectEvent\",\"action\":\"OBSERVE\",\"bizStep\":\"{}\",\
             \"epcList\":[\"{key}\"],\"eventTime\":\"2026-11-24T10:{:02}:{:02}Z\",\
             \"readPoint\":\"urn:epc:id:sgln:0614141.00777.{}\",\"seq\":{i}",
            STEPS[(i % 5) as usize],
            (i / 60) % 60,
            i % 60,
            i % 1000,
        );
        if record.len() + 12 < self.spec.value_size {
            let pad = self.spec.value_size - record.len() - 12;
            record.push_str(",\"pad\":\"");
            record.extend(std::iter::repeat_n('x', pad));
            record.push('"');
        }
        record.push('}');
        record.into_bytes()
    }

    /// Transaction number `i` of ledger `ledger` (versions are assigned in call order
    /// per key: build a ledger's transactions in order).
    pub fn transaction(&self, ledger: usize, i: u64) -> (u64, TransactionContent) {
        let k = self.key_number(ledger, i);
        let key = self.key(ledger, k);
        let expected_version = {
            let mut versions = self.versions[ledger].lock();
            let next = versions.entry(k).or_insert(-1);
            let expected = *next;
            *next += 1;
            expected
        };
        let mut content = TransactionContent {
            ledger_id: self.ledgers[ledger].id,
            nonce: self.nonce_base.wrapping_add(((ledger as u64) << 40) + i),
            timestamp_ms: sdk::builder::now_ms(),
            operations: Vec::with_capacity(2),
        };
        let record = self.event(&key, i);
        if self.spec.publish {
            content.operations.push(Operation::PublishEvent {
                account: EVENT_ACCOUNT.into(),
                topic: EVENT_TOPIC.into(),
                payload: record.clone(),
            });
        }
        content.operations.push(Operation::WriteKv {
            account: ACCOUNT.into(),
            key: key.clone().into_bytes(),
            value: record,
            expected_version,
        });
        (k, content)
    }

    /// Builds and signs batch `seq` of `ledger` (signatures in parallel).
    pub fn build_batch(&self, ledger: usize, seq: u64) -> LedgerBatch {
        let first = seq * self.spec.batch_size as u64;
        let contents: Vec<TransactionContent> = (first..first + self.spec.batch_size as u64)
            .map(|i| self.transaction(ledger, i).1)
            .collect();
        let transactions: Vec<Transaction> = contents
            .into_par_iter()
            .map(|content| {
                Transaction::sign(content, &[&self.signer])
                    .expect("workload transactions are valid")
            })
            .collect();
        let body = Bytes::from(engine::model::encode_transactions(transactions.iter()));
        LedgerBatch { ledger: self.ledgers[ledger].id, transactions, body }
    }
}

/// How batches come from a workload.
pub enum Signing {
    /// Every batch built and signed before the run (`PreSigned::build`).
    PreSigned(Vec<Vec<Arc<LedgerBatch>>>),
    /// Built and signed when the sender asks (`--sign-online`): the signing time is paid
    /// inside the measured run and shows in the latency.
    Online,
}

/// The `Source` over a workload.
pub struct WorkloadSource {
    workload: Workload,
    signing: Signing,
}

/// What pre-signing took.
#[derive(Debug, Clone, Copy)]
pub struct SigningReport {
    /// Transactions signed.
    pub transactions: u64,
    /// Wall time.
    pub elapsed: Duration,
}

impl SigningReport {
    /// Signatures per second.
    pub fn rate(&self) -> f64 {
        self.transactions as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

impl WorkloadSource {
    /// Pre-builds `batches_per_ledger` batches for every ledger, signing on all cores.
    pub fn pre_signed(workload: Workload, batches_per_ledger: u64) -> (Self, SigningReport) {
        let start = Instant::now();
        let batches: Vec<Vec<Arc<LedgerBatch>>> = (0..workload.ledgers.len())
            .map(|ledger| {
                (0..batches_per_ledger)
                    .map(|seq| Arc::new(workload.build_batch(ledger, seq)))
                    .collect()
            })
            .collect();
        let report = SigningReport {
            transactions: batches_per_ledger
                * workload.ledgers.len() as u64
                * workload.spec.batch_size as u64,
            elapsed: start.elapsed(),
        };
        (WorkloadSource { workload, signing: Signing::PreSigned(batches) }, report)
    }

    /// Builds and signs each batch when it is due.
    pub fn online(workload: Workload) -> Self {
        WorkloadSource { workload, signing: Signing::Online }
    }

    /// The workload.
    pub fn workload(&self) -> &Workload {
        &self.workload
    }
}

impl Source<LedgerBatch> for WorkloadSource {
    fn ledgers(&self) -> usize {
        self.workload.ledgers.len()
    }

    fn batch_size(&self) -> usize {
        self.workload.spec.batch_size
    }

    fn batch(&self, ledger: usize, seq: u64) -> Option<Arc<LedgerBatch>> {
        match &self.signing {
            Signing::PreSigned(batches) => batches.get(ledger)?.get(seq as usize).cloned(),
            Signing::Online => Some(Arc::new(self.workload.build_batch(ledger, seq))),
        }
    }

    fn ledger_name(&self, ledger: usize) -> String {
        self.workload.ledgers[ledger].name.clone()
    }
}

fn result_of(result: ResultCode) -> TxResult {
    match result {
        ResultCode::Committed => TxResult::Committed,
        other => TxResult::failed(other.name().to_ascii_uppercase()),
    }
}

/// Gateways over HTTP: batches go round-robin over them, each with `wait=commit`.
pub struct HttpTarget {
    clients: Vec<sdk::Client>,
    next: std::sync::atomic::AtomicUsize,
    timeout: Duration,
}

impl HttpTarget {
    /// A target over `clients` (at least one); `timeout` bounds each batch's wait for
    /// finality (a batch not final by then counts as `TIMEOUT`).
    pub fn new(clients: Vec<sdk::Client>, timeout: Duration) -> Self {
        assert!(!clients.is_empty(), "at least one gateway");
        HttpTarget { clients, next: Default::default(), timeout }
    }
}

impl Target for HttpTarget {
    type Batch = LedgerBatch;

    async fn submit(&self, _ledger: usize, batch: Arc<LedgerBatch>) -> BatchResult {
        let at = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % self.clients.len();
        match self.clients[at]
            .submit_encoded_and_wait(&batch.ledger, batch.body.clone(), self.timeout)
            .await
        {
            Ok(outcomes) => BatchResult::Done(
                outcomes
                    .into_iter()
                    .map(|outcome| match (outcome.status.as_str(), outcome.result.as_deref()) {
                        ("committed", Some("committed")) => TxResult::Committed,
                        (_, Some(code)) => TxResult::failed(code.to_ascii_uppercase()),
                        (status, None) => TxResult::failed(status.to_ascii_uppercase()),
                    })
                    .collect(),
            ),
            Err(error) => {
                let code = match error.status() {
                    Some(status) => format!("HTTP {status} {}", error.code()),
                    None => error.code().to_owned(),
                };
                BatchResult::error(code, error.to_string())
            }
        }
    }
}

/// An in-process node: batches go straight to `LedgerHandle::submit` (no HTTP).
pub struct EmbeddedTarget {
    handles: Vec<LedgerHandle>,
    timeout: Duration,
}

impl EmbeddedTarget {
    /// A target over the node's ledgers, in workload order.
    pub fn new(handles: Vec<LedgerHandle>, timeout: Duration) -> Self {
        EmbeddedTarget { handles, timeout }
    }
}

impl Target for EmbeddedTarget {
    type Batch = LedgerBatch;

    async fn submit(&self, ledger: usize, batch: Arc<LedgerBatch>) -> BatchResult {
        let handle = &self.handles[ledger];
        let submitted = match handle.submit(batch.transactions.clone()).await {
            Ok(submitted) => submitted,
            Err(error @ SubmitError::Busy { .. }) => {
                return BatchResult::error("BUSY", error.to_string());
            }
            Err(error) => return BatchResult::error("SUBMIT", error.to_string()),
        };
        match tokio::time::timeout(self.timeout, submitted.wait()).await {
            Err(_) => BatchResult::error("TIMEOUT", "not final in time"),
            Ok(Err(error)) => BatchResult::error("STOPPED", error.to_string()),
            Ok(Ok(outcomes)) => BatchResult::Done(
                outcomes
                    .into_iter()
                    .map(|outcome| match outcome.status {
                        TxStatus::Committed { result, .. } => result_of(result),
                        TxStatus::Rejected(rejection) => TxResult::failed(rejection.code()),
                    })
                    .collect(),
            ),
        }
    }
}

/// Makes sure `signer` can write to `ACCOUNT` in every ledger of the workload, through
/// `client`: registers the data account where it is missing and waits for the commit.
pub async fn prepare_http(
    client: &sdk::Client,
    ledgers: &[LedgerTarget],
    signer: &PrivateKey,
) -> Result<(), String> {
    for ledger in ledgers {
        let exists = client
            .account(&ledger.id, ACCOUNT)
            .await
            .map_err(|e| format!("{}: {e}", ledger.name))?
            .is_some();
        if exists {
            continue;
        }
        let tx = sdk::TxBuilder::new(ledger.id)
            .register_data_account(ACCOUNT)
            .sign(&[signer])
            .map_err(|e| e.to_string())?;
        let outcomes = client
            .submit_and_wait(&ledger.id, &[tx], Duration::from_secs(30))
            .await
            .map_err(|e| format!("{}: registering `{ACCOUNT}`: {e}", ledger.name))?;
        match outcomes.first().and_then(|o| o.result.as_deref()) {
            Some("committed") | Some("account_exists") => {}
            other => {
                return Err(format!(
                    "{}: registering `{ACCOUNT}` answered {other:?} ({:?}); is the key a \
                     registered user of the ledger?",
                    ledger.name,
                    outcomes.first().and_then(|o| o.reason.clone())
                ));
            }
        }
    }
    Ok(())
}

/// `prepare_http` for an in-process node.
pub async fn prepare_embedded(handles: &[LedgerHandle], signer: &PrivateKey) -> Result<(), String> {
    for handle in handles {
        let reader = handle.reader().map_err(|e| format!("{}: {e}", handle.name()))?;
        let has_account =
            reader.data_account_owner(ACCOUNT).map_err(|e| format!("{}: {e}", handle.name()))?;
        let has_events = reader
            .event_account_owner(EVENT_ACCOUNT)
            .map_err(|e| format!("{}: {e}", handle.name()))?;
        let mut builder = sdk::TxBuilder::new(handle.id());
        match (has_account.is_some(), has_events.is_some()) {
            (true, true) => continue,
            (false, true) => builder = builder.register_data_account(ACCOUNT),
            (true, false) => builder = builder.register_event_account(EVENT_ACCOUNT),
            (false, false) => {
                builder =
                    builder.register_data_account(ACCOUNT).register_event_account(EVENT_ACCOUNT)
            }
        }
        let tx = builder.sign(&[signer]).map_err(|e| e.to_string())?;
        let outcomes = handle
            .submit(vec![tx])
            .await
            .map_err(|e| format!("{}: {e}", handle.name()))?
            .wait()
            .await
            .map_err(|e| format!("{}: {e}", handle.name()))?;
        match &outcomes[0].status {
            TxStatus::Committed {
                result: ResultCode::Committed | ResultCode::AccountExists,
                ..
            } => {}
            other => {
                return Err(format!(
                    "{}: registering `{ACCOUNT}`: {other:?}; is the key a registered user?",
                    handle.name()
                ));
            }
        }
    }
    Ok(())
}
