//! Webhooks: the node POSTs a ledger's committed blocks or events to a receiver, signed
//! with the node key, at least once and in order.
//!
//! Each webhook is a `Follower` (a cursor, not a queue) and a cursor file. A batch is
//! POSTed until the receiver answers 2xx — errors, timeouts and 5xx are retried with
//! exponential backoff (100 ms doubling to 30 s), forever: nothing is skipped. Only after
//! a 2xx does the cursor move, and it is written to disk (write, fsync, rename), so a
//! restart resends at most the batch in flight. Receivers de-duplicate by `position`.
//!
//! Request: `POST url`, body `[StreamMessage, …]` (JSON), headers
//! `X-Polyledger-Position` (the last message's position), `X-Polyledger-Key` (the node's
//! public key, hex of its binary form), `X-Polyledger-Signature` (hex of the node key's
//! signature over the exact body bytes; `sdk::webhook::verify` checks it).

use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use actors::LedgerHandle;
use actors::config::WebhookSection;
use actors::follow::{FollowError, Follower};
use crypto_parallel::PrivateKey;
use prometheus::{IntCounterVec, IntGaugeVec};
use sdk::wire::EventFilter;

use crate::streams::{Spec, next_messages};

/// First retry delay; doubles per failure up to `RETRY_MAX`.
pub const RETRY_MIN: Duration = Duration::from_millis(100);
/// Longest retry delay.
pub const RETRY_MAX: Duration = Duration::from_secs(30);

static ATTEMPTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    prometheus::register_int_counter_vec!(
        "polyledger_webhook_posts_total",
        "Webhook POSTs, by webhook and outcome (ok, error, timeout, status_NNN).",
        &["webhook", "outcome"]
    )
    .expect("metric registers once")
});

static POSITION: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    prometheus::register_int_gauge_vec!(
        "polyledger_webhook_position",
        "Position after the last message a webhook's receiver acknowledged.",
        &["webhook"]
    )
    .expect("metric registers once")
});

/// Why a webhook could not start.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// Its ledger is not on this node.
    #[error("webhook {0}: no ledger named {1} on this node")]
    UnknownLedger(String, String),
    /// Its cursor file is unreadable or corrupt.
    #[error("webhook {name}: cursor {}: {reason}", path.display())]
    Cursor {
        /// Webhook.
        name: String,
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The HTTP client could not be built.
    #[error("webhook {0}: {1}")]
    Client(String, String),
}

/// One configured webhook, ready to run.
pub struct Webhook {
    section: WebhookSection,
    handle: LedgerHandle,
    key: Arc<PrivateKey>,
    cursor_file: Option<PathBuf>,
    from: u64,
    http: reqwest::Client,
}

fn read_cursor(path: &Path) -> Result<Option<u64>, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => text.trim().parse().map(Some).map_err(|_| format!("not a position: {text:?}")),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error.to_string()),
    }
}

fn write_cursor(path: &Path, position: u64) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("cursor.tmp");
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(position.to_string().as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

impl Webhook {
    /// Prepares `section` on this node's `ledgers`; the cursor lives in `state_dir`
    /// (`None`: in memory only, for `memory://` nodes).
    pub fn new(
        section: WebhookSection,
        ledgers: &[LedgerHandle],
        key: Arc<PrivateKey>,
        state_dir: Option<&Path>,
    ) -> Result<Self, WebhookError> {
        let handle =
            ledgers.iter().find(|handle| handle.name() == section.ledger).cloned().ok_or_else(
                || WebhookError::UnknownLedger(section.name.clone(), section.ledger.clone()),
            )?;
        let cursor_file = state_dir.map(|dir| dir.join(format!("webhook-{}.cursor", section.name)));
        let from = match &cursor_file {
            Some(path) => read_cursor(path)
                .map_err(|reason| WebhookError::Cursor {
                    name: section.name.clone(),
                    path: path.clone(),
                    reason,
                })?
                .unwrap_or(section.from),
            None => section.from,
        };
        for outcome in ["ok", "error", "timeout"] {
            ATTEMPTS.with_label_values(&[&section.name, outcome]);
        }
        POSITION.with_label_values(&[&section.name]).set(from as i64);
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(section.timeout_ms))
            .build()
            .map_err(|e| WebhookError::Client(section.name.clone(), e.to_string()))?;
        Ok(Webhook { section, handle, key, cursor_file, from, http })
    }

    /// Where delivery resumes.
    pub fn position(&self) -> u64 {
        self.from
    }

    fn spec(&self) -> Spec {
        let s = &self.section;
        match s.stream.as_str() {
            "blocks" => Spec::Blocks,
            _ => Spec::Events(EventFilter {
                account: s.account.clone(),
                topic: s.topic.clone(),
                event_type: s.event_type.clone(),
                biz_step: s.biz_step.clone(),
                epc: s.epc.clone(),
            }),
        }
    }

    /// Delivers until the ledger stops on this node.
    pub async fn run(self) {
        let name = self.section.name.clone();
        if let Some(dir) = self.cursor_file.as_deref().and_then(Path::parent)
            && let Err(error) = std::fs::create_dir_all(dir)
        {
            tracing::error!(webhook = %name, dir = %dir.display(), %error, "cannot create the cursor directory");
        }
        let ledger = hex::encode(self.handle.id().0);
        let spec = self.spec();
        let position = POSITION.with_label_values(&[&name]);
        position.set(self.from as i64);
        let mut follower = Follower::new(self.handle.clone(), self.from);
        tracing::info!(webhook = %name, url = %self.section.url, from = self.from, "webhook delivering");
        loop {
            let messages = match next_messages(&mut follower, &spec, &ledger).await {
                Ok(messages) => messages,
                Err(FollowError::Stopped) => return,
                Err(error) => {
                    tracing::error!(webhook = %name, %error, "reading the ledger failed; retrying");
                    tokio::time::sleep(RETRY_MAX).await;
                    continue;
                }
            };
            for batch in messages.chunks(self.section.batch) {
                let last = batch.last().expect("chunks are not empty").position;
                let body = serde_json::to_vec(batch).expect("stream messages serialize");
                self.deliver(&name, body, last).await;
                position.set(last as i64 + 1);
                if let Some(path) = &self.cursor_file
                    && let Err(error) = write_cursor(path, last + 1)
                {
                    tracing::error!(webhook = %name, path = %path.display(), %error, "cannot save the cursor; a restart resends from the last saved one");
                }
            }
        }
    }

    /// POSTs `body` until the receiver answers 2xx.
    async fn deliver(&self, name: &str, body: Vec<u8>, last: u64) {
        let signature = hex::encode(self.key.sign(&body).to_bytes());
        let public_key = hex::encode(self.key.public_key().to_bytes());
        let mut delay = RETRY_MIN;
        loop {
            let result = self
                .http
                .post(&self.section.url)
                .header("content-type", "application/json")
                .header("x-polyledger-position", last.to_string())
                .header("x-polyledger-key", &public_key)
                .header("x-polyledger-signature", &signature)
                .body(body.clone())
                .send()
                .await;
            let outcome = match &result {
                Ok(response) if response.status().is_success() => "ok".to_owned(),
                Ok(response) => format!("status_{}", response.status().as_u16()),
                Err(error) if error.is_timeout() => "timeout".to_owned(),
                Err(_) => "error".to_owned(),
            };
            ATTEMPTS.with_label_values(&[name, &outcome]).inc();
            if outcome == "ok" {
                return;
            }
            tracing::warn!(webhook = %name, %outcome, retry_in_ms = delay.as_millis() as u64, "webhook delivery failed");
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(RETRY_MAX);
        }
    }
}
