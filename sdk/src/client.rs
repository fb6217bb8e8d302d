//! The HTTP client of a polyledger gateway (`/api/v1`). Every call answers the wire type
//! of its route, or a `ClientError` that keeps the gateway's problem code.

use std::time::Duration;

use engine::model::{Hash32, LedgerId, Transaction};

use crate::wire::{
    Accepted, BlockTxPage, BlockView, HistoryPage, LedgerView, Outcome, Outcomes, Problem,
    ProofDocument, SettingsView, TxStatusView, ValueView,
};

/// Content type of the binary batch body (`docs/FORMAT.md` §13).
pub const BATCH_CONTENT_TYPE: &str = "application/vnd.polyledger.batch";

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The gateway answered an error (RFC 7807 problem).
    #[error("HTTP {}: {} ({})", .0.status, .0.code, .0.detail)]
    Problem(Problem),
    /// The gateway could not be reached, or the connection broke.
    #[error("transport: {0}")]
    Transport(String),
    /// The answer was not what the route documents.
    #[error("unexpected answer: {0}")]
    Decode(String),
}

impl ClientError {
    /// The stable error code: the problem's code, `TRANSPORT` or `DECODE`.
    pub fn code(&self) -> &str {
        match self {
            ClientError::Problem(problem) => &problem.code,
            ClientError::Transport(_) => "TRANSPORT",
            ClientError::Decode(_) => "DECODE",
        }
    }

    /// The HTTP status, when the gateway answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Problem(problem) => Some(problem.status),
            _ => None,
        }
    }
}

/// A client of one gateway. Cheap to clone (one connection pool).
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the reqwest client: its default headers hold the bearer token.
        f.debug_struct("Client").field("base", &self.base).finish_non_exhaustive()
    }
}

/// How a [`Client`] reaches a protected gateway.
#[derive(Clone, Default)]
pub struct ClientOptions {
    /// Bearer token sent with every request (`[[gateway.tokens]]` on the node).
    pub token: Option<String>,
    /// Extra trusted CA certificates, PEM (a gateway with a private CA or a
    /// self-signed certificate); the system's roots are trusted as well.
    pub ca_pem: Option<Vec<u8>>,
}

impl std::fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientOptions")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("ca_pem", &self.ca_pem.as_ref().map(Vec::len))
            .finish()
    }
}

fn transport(error: reqwest::Error) -> ClientError {
    // reqwest's message stops at "error sending request"; the causes say why (refused,
    // an untrusted certificate, a TLS version mismatch…).
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    ClientError::Transport(text)
}

/// Percent-encodes one path segment (keys may hold any byte).
pub(crate) fn segment(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A token may travel over HTTPS, or over plain HTTP to this machine only.
fn sends_token_safely(base_url: &str) -> bool {
    let Some(rest) = base_url.strip_prefix("http://") else { return true };
    let authority = rest.split('/').next().unwrap_or("");
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => authority.rsplit_once(':').map_or(authority, |(host, _)| host),
    };
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

impl Client {
    /// A client of the gateway at `base_url` (`http://127.0.0.1:8080`).
    pub fn new(base_url: &str) -> Result<Self, ClientError> {
        Self::with_options(base_url, &ClientOptions::default())
    }

    /// A client of the gateway at `base_url` (`https://…` for a TLS gateway) with a
    /// token and extra trusted CAs.
    pub fn with_options(base_url: &str, options: &ClientOptions) -> Result<Self, ClientError> {
        let mut builder = reqwest::Client::builder().pool_max_idle_per_host(64).tcp_nodelay(true);
        if let Some(token) = &options.token {
            if token.trim().is_empty() {
                return Err(ClientError::Transport("the bearer token is empty".into()));
            }
            if !sends_token_safely(base_url) {
                return Err(ClientError::Transport(format!(
                    "refusing to send a bearer token over plain HTTP to {base_url}: use \
                     https:// (plain http:// is allowed to loopback addresses only)"
                )));
            }
            let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|_| {
                    ClientError::Transport("the token is not a valid header value".into())
                })?;
            value.set_sensitive(true);
            let mut headers = reqwest::header::HeaderMap::new();
            headers.insert(reqwest::header::AUTHORIZATION, value);
            builder = builder.default_headers(headers);
        }
        if let Some(pem) = &options.ca_pem {
            let certificates = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| ClientError::Transport(format!("CA certificates: {e}")))?;
            if certificates.is_empty() {
                return Err(ClientError::Transport("CA certificates: none in the PEM".into()));
            }
            for certificate in certificates {
                builder = builder.add_root_certificate(certificate);
            }
        }
        let http = builder.build().map_err(transport)?;
        Ok(Client { http, base: base_url.trim_end_matches('/').to_owned() })
    }

    /// Asks the node for an online backup (`POST /api/v1/admin/backup`, loopback
    /// clients only) and returns its manifest.
    pub async fn backup(
        &self,
        name: Option<String>,
    ) -> Result<crate::wire::BackupManifest, ClientError> {
        let response = self
            .http
            .post(format!("{}/api/v1/admin/backup", self.base))
            .json(&crate::wire::BackupRequest { name })
            .send()
            .await
            .map_err(transport)?;
        Self::answer(response).await
    }

    /// Creates a ledger on this node at run time from its canonical settings bytes
    /// (`POST /api/v1/admin/ledgers`, loopback clients only).
    pub async fn create_ledger(
        &self,
        settings: &engine::model::LedgerSettings,
    ) -> Result<LedgerView, ClientError> {
        let body =
            crate::wire::CreateLedgerRequest { settings_hex: hex::encode(settings.encode()) };
        let response = self
            .http
            .post(format!("{}/api/v1/admin/ledgers", self.base))
            .json(&body)
            .send()
            .await
            .map_err(transport)?;
        Self::answer(response).await
    }

    /// The shard map captures are routed by (`GET /api/v1/shard-map`): route offline
    /// with it through [`crate::routing`].
    pub async fn shard_map(&self) -> Result<crate::wire::ShardMapView, ClientError> {
        self.get("/api/v1/shard-map").await
    }

    /// Records the next shard map (`PUT /api/v1/admin/shard-map`, loopback only).
    pub async fn put_shard_map(
        &self,
        map: &crate::routing::ShardMap,
    ) -> Result<crate::wire::ShardMapView, ClientError> {
        let response = self
            .http
            .put(format!("{}/api/v1/admin/shard-map", self.base))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(map.to_canonical_json())
            .send()
            .await
            .map_err(transport)?;
        Self::answer(response).await
    }

    /// The gateway's base URL.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.http
    }

    async fn answer<T: serde::de::DeserializeOwned>(
        response: reqwest::Response,
    ) -> Result<T, ClientError> {
        let status = response.status();
        let body = response.bytes().await.map_err(transport)?;
        if status.is_success() {
            return serde_json::from_slice(&body).map_err(|e| ClientError::Decode(e.to_string()));
        }
        Err(match serde_json::from_slice::<Problem>(&body) {
            Ok(problem) => ClientError::Problem(problem),
            Err(_) => ClientError::Problem(Problem {
                status: status.as_u16(),
                code: format!("HTTP_{}", status.as_u16()),
                title: status.canonical_reason().unwrap_or("error").to_owned(),
                detail: String::from_utf8_lossy(&body).chars().take(200).collect(),
            }),
        })
    }

    async fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let response =
            self.http.get(format!("{}{path}", self.base)).send().await.map_err(transport)?;
        Self::answer(response).await
    }

    /// Like `get`, with 404 as `None`.
    async fn find<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
    ) -> Result<Option<T>, ClientError> {
        match self.get(path).await {
            Ok(value) => Ok(Some(value)),
            Err(ClientError::Problem(problem)) if problem.status == 404 => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// The ledgers the node hosts.
    pub async fn ledgers(&self) -> Result<Vec<LedgerView>, ClientError> {
        self.get("/api/v1/ledgers").await
    }

    /// One ledger.
    pub async fn ledger(&self, ledger: &LedgerId) -> Result<LedgerView, ClientError> {
        self.get(&format!("/api/v1/ledgers/{}", hex::encode(ledger.0))).await
    }

    /// A ledger's genesis settings.
    pub async fn settings(&self, ledger: &LedgerId) -> Result<SettingsView, ClientError> {
        self.get(&format!("/api/v1/ledgers/{}/settings", hex::encode(ledger.0))).await
    }

    /// Submits a batch and answers at once with the hashes.
    pub async fn submit(
        &self,
        ledger: &LedgerId,
        transactions: &[Transaction],
    ) -> Result<Accepted, ClientError> {
        let body = engine::model::encode_transactions(transactions.iter());
        let response = self.post_batch(ledger, body.into(), None).await?;
        Self::answer(response).await
    }

    /// Submits a batch and waits until every transaction is final or `timeout` passes
    /// (`TIMEOUT` problem; the transactions may still commit — query them).
    pub async fn submit_and_wait(
        &self,
        ledger: &LedgerId,
        transactions: &[Transaction],
        timeout: Duration,
    ) -> Result<Vec<Outcome>, ClientError> {
        let body = engine::model::encode_transactions(transactions.iter());
        self.submit_encoded_and_wait(ledger, body.into(), timeout).await
    }

    /// `submit_and_wait` for a batch already encoded (`encode_transactions`): the load
    /// generator encodes before it measures.
    pub async fn submit_encoded_and_wait(
        &self,
        ledger: &LedgerId,
        body: bytes::Bytes,
        timeout: Duration,
    ) -> Result<Vec<Outcome>, ClientError> {
        let response = self.post_batch(ledger, body, Some(timeout)).await?;
        let outcomes: Outcomes = Self::answer(response).await?;
        Ok(outcomes.outcomes)
    }

    async fn post_batch(
        &self,
        ledger: &LedgerId,
        body: bytes::Bytes,
        wait: Option<Duration>,
    ) -> Result<reqwest::Response, ClientError> {
        let mut url =
            format!("{}/api/v1/ledgers/{}/transactions", self.base, hex::encode(ledger.0));
        if let Some(timeout) = wait {
            url.push_str(&format!("?wait=commit&timeout_ms={}", timeout.as_millis().max(1)));
        }
        let mut request = self
            .http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, BATCH_CONTENT_TYPE)
            .body(body);
        if let Some(timeout) = wait {
            // The gateway answers TIMEOUT at `timeout`; allow for the network on top.
            request = request.timeout(timeout + Duration::from_secs(5));
        }
        request.send().await.map_err(transport)
    }

    /// A transaction's status; `None` when the node does not know it.
    pub async fn transaction(
        &self,
        ledger: &LedgerId,
        hash: &Hash32,
    ) -> Result<Option<TxStatusView>, ClientError> {
        self.find(&format!(
            "/api/v1/ledgers/{}/transactions/{}",
            hex::encode(ledger.0),
            hex::encode(hash)
        ))
        .await
    }

    /// The latest block.
    pub async fn latest_block(&self, ledger: &LedgerId) -> Result<BlockView, ClientError> {
        self.get(&format!("/api/v1/ledgers/{}/blocks/latest", hex::encode(ledger.0))).await
    }

    /// The block at `height`.
    pub async fn block(
        &self,
        ledger: &LedgerId,
        height: u64,
    ) -> Result<Option<BlockView>, ClientError> {
        self.find(&format!("/api/v1/ledgers/{}/blocks/{height}", hex::encode(ledger.0))).await
    }

    /// The block with hash `hash`.
    pub async fn block_by_hash(
        &self,
        ledger: &LedgerId,
        hash: &Hash32,
    ) -> Result<Option<BlockView>, ClientError> {
        self.find(&format!(
            "/api/v1/ledgers/{}/blocks/hash/{}",
            hex::encode(ledger.0),
            hex::encode(hash)
        ))
        .await
    }

    /// A page of the transactions of the block at `height`.
    pub async fn block_transactions(
        &self,
        ledger: &LedgerId,
        height: u64,
        from: u32,
        limit: u32,
    ) -> Result<Option<BlockTxPage>, ClientError> {
        self.find(&format!(
            "/api/v1/ledgers/{}/blocks/{height}/transactions?from={from}&limit={limit}",
            hex::encode(ledger.0)
        ))
        .await
    }

    /// Data account `name`, if registered.
    pub async fn account(
        &self,
        ledger: &LedgerId,
        name: &str,
    ) -> Result<Option<crate::wire::AccountView>, ClientError> {
        self.find(&format!(
            "/api/v1/ledgers/{}/accounts/{}",
            hex::encode(ledger.0),
            segment(name.as_bytes())
        ))
        .await
    }

    /// The latest version of `key` in data account `account`.
    pub async fn latest(
        &self,
        ledger: &LedgerId,
        account: &str,
        key: &[u8],
    ) -> Result<Option<ValueView>, ClientError> {
        self.find(&format!(
            "/api/v1/ledgers/{}/accounts/{}/keys/{}",
            hex::encode(ledger.0),
            segment(account.as_bytes()),
            segment(key)
        ))
        .await
    }

    /// A page of `key`'s history, oldest first.
    pub async fn history(
        &self,
        ledger: &LedgerId,
        account: &str,
        key: &[u8],
        from_version: u64,
        limit: u32,
    ) -> Result<HistoryPage, ClientError> {
        self.get(&format!(
            "/api/v1/ledgers/{}/accounts/{}/keys/{}/history?from_version={from_version}&limit={limit}",
            hex::encode(ledger.0),
            segment(account.as_bytes()),
            segment(key)
        ))
        .await
    }

    /// A product's trace (`code`: EPC URN or GS1 Digital Link URI): every captured
    /// event in time order with its proof; check it with [`crate::trace::verify`].
    pub async fn trace(&self, code: &str) -> Result<crate::wire::TraceView, ClientError> {
        self.get(&format!("/api/v1/trace/{}", segment(code.as_bytes()))).await
    }

    /// One page of captured EPCIS events; `query` holds EPCIS query parameters
    /// (`MATCH_epc`, `EQ_bizStep`, `GE_eventTime`, `LT_eventTime`, `perPage`,
    /// `nextPageToken`).
    pub async fn epcis_events(
        &self,
        query: &[(&str, &str)],
    ) -> Result<crate::wire::EpcisEventsPage, ClientError> {
        let query: Vec<String> = query
            .iter()
            .map(|(name, value)| format!("{name}={}", segment(value.as_bytes())))
            .collect();
        self.get(&format!("/epcis/events?{}", query.join("&"))).await
    }

    /// Proof that transaction `hash` (with its result) is in its block.
    pub async fn prove_transaction(
        &self,
        ledger: &LedgerId,
        hash: &Hash32,
    ) -> Result<ProofDocument, ClientError> {
        self.get(&format!(
            "/api/v1/ledgers/{}/proofs/transactions/{}",
            hex::encode(ledger.0),
            hex::encode(hash)
        ))
        .await
    }

    /// Proof of `key`'s value (or absence) at `height` (default: the latest block).
    pub async fn prove_key(
        &self,
        ledger: &LedgerId,
        account: &str,
        key: &[u8],
        height: Option<u64>,
    ) -> Result<ProofDocument, ClientError> {
        let query = height.map(|h| format!("?height={h}")).unwrap_or_default();
        self.get(&format!(
            "/api/v1/ledgers/{}/proofs/accounts/{}/keys/{}{query}",
            hex::encode(ledger.0),
            segment(account.as_bytes()),
            segment(key)
        ))
        .await
    }
}
