//! Node configuration (TOML).
//!
//! One file configures one node: who it is (`[node]`), the other nodes it talks to
//! (`[[peers]]`), the ledgers it serves (`[[ledgers]]`) and the tuning of its block
//! building, mempool, Raft and thread pools. [`NodeConfig::load`] parses and validates
//! it; every mistake is reported before the node starts, as a [`ConfigError`] that names
//! the field (`ledgers[2].participants: node 9 is neither this node nor a peer`). Unknown
//! fields are errors, so a typo is never silently ignored.
//!
//! Relative paths (`key_file`, `rocksdb://` paths, `public_key_file`) are relative to the
//! directory of the configuration file.
//!
//! # Reference
//!
//! Every field, with its default (`deploy/` holds runnable examples):
//!
//! ```toml
//! # Node 1 of a three-node consortium.
//!
//! [node]
//! id = 1                          # required; >= 1 and unique among the nodes
//! key_file = "node1.key.pem"      # required; this node's PKCS#8 PEM private key, or an
//!                                 # encrypted one (`polyledger keygen --encrypt`)
//! key_password_file = "node1.pw"  # optional; the encrypted key's password (first line);
//!                                 # without it, POLYLEDGER_KEY_PASSWORD
//! data = "rocksdb://data/node1"   # required; where ledgers are stored:
//!                                 #   "memory://"                  nothing survives a restart
//!                                 #   "rocksdb:///absolute/path"   or "rocksdb://relative/path"
//!                                 #   "tikv://pd1:2379,pd2:2379"   TiKV placement drivers
//! p2p_listen = "0.0.0.0:7101"     # required; node-to-node transport
//! p2p_tls = true                  # default true; TLS 1.3 between nodes, bound to the node
//!                                 # keys (all nodes of a deployment must agree)
//! http_listen = "127.0.0.1:8080"  # default "127.0.0.1:8080"; client API
//! backup_dir = "backups/node1"    # default: the rocksdb data path + "-backups"; where
//!                                 # `polyledger backup` (POST /api/v1/admin/backup) writes
//!
//! # One [[peers]] table per other node; none for a node that runs alone.
//! [[peers]]
//! id = 2                          # required; >= 1, unique, not this node's id
//! address = "10.0.0.2:7101"       # required; its p2p_listen, as reachable from here
//! # Its node key: exactly one of `public_key` (base58) or `public_key_file` (PEM).
//! public_key = "4SpXPh1BrAM5hU4YPkn59ce7NJz8Lhjdh2uZzxNrvWqYyeatEEJA79HncvKYaM4yD1mX2fN7NN8EQv6UEqgQUYnRxcV"
//! # public_key_file = "node2.pub.pem"
//!
//! [[peers]]
//! id = 3
//! address = "10.0.0.3:7101"
//! public_key = "4SpYP4UFvBYcgRmB3pXvMEknT3WgmVVRZoiKF4WovKEPyC5ZLS67UD7MjtqPUv1vH4xDRdLfCJ4JpeSJ5UxxgVYLfKp"
//!
//! # One [[ledgers]] table per ledger; at least one. Every node of a ledger must give it
//! # the same name, consensus, participants, hash, signatures, admins and created_ms: they
//! # make its genesis block, whose hash is the ledger id.
//! [[ledgers]]
//! name = "dairy-0"                # required; 1 to 128 printable ASCII bytes, no spaces; unique
//! consensus = "raft"              # "solo" | "raft" | "bft"; default "solo" without peers, else "raft"
//! participants = [1, 2, 3]        # node ids at genesis (order does not matter); default:
//!                                 # "solo" → this node; "raft" → this node + all peers. A
//!                                 # raft ledger's list without this node: the node joins
//!                                 # when a transaction admits it (docs/OPERATIONS.md)
//! participant_quorum = 0          # default 0: a majority of the current participants must
//!                                 # co-sign an admission or removal; part of the genesis
//! hash = "sm3"                    # "sm3" (default) | "sha256"
//! signatures = ["sm2"]            # user signature algorithms; default ["sm2"];
//!                                 # any of "sm2", "ed25519", "ecdsa-p256"
//! admins = ["4SpZa39cknW82ggqH18aGWuGrAmXY5H3FPiRMPecEgrE7hKhTG1jbpBm5nnP89zdCQHmJuFTgWqDhuvyg58GkP3gS3N"]
//!                                 # required, at least one: base58 user keys registered at
//!                                 # genesis, each of an algorithm in `signatures`
//! regulators = []                # base58 keys that may record recalls (registered at
//!                                 # genesis); default none; part of the genesis
//! roles = [{ name = "brand", permissions = ["register_data_account", "write_data"] }]
//!                                 # default none; any role makes the ledger permissioned
//!                                 # (permissions enforced; the admins hold every role);
//!                                 # part of the genesis
//! created_ms = 1767225600000      # genesis time, ms since the Unix epoch; default 0; REQUIRED
//!                                 # (non-zero) when a raft ledger has other participants
//!
//! [block]
//! max_txs = 2000                  # default 2000; 1..=20000 (engine::limits::BLOCK_TXS_MAX)
//! max_delay_ms = 20               # default 20; 1..=10000: a block is cut at most this long
//!                                 # after its first transaction arrived
//! pipelined_commit = true         # default true: a block's fsync runs while the next one
//!                                 # executes (it is reported only once durable); false:
//!                                 # each block is fsync'd in its own write
//!
//! [mempool]
//! capacity = 100000               # default 100000 transactions per ledger; >= block.max_txs
//!
//! [raft]
//! tick_ms = 100                   # default 100; 1..=60000
//! election_ticks = 10             # default 10; > heartbeat_ticks
//! heartbeat_ticks = 2             # default 2; >= 1
//! max_log_entries_kept = 1000     # default 1000; log entries kept after compaction
//!
//! [pools]
//! verify_threads = 0              # default 0 = one per core; signature verification
//! transport_threads = 1           # default 1; >= 1
//!
//! # One [[webhooks]] table per receiver: the node POSTs a ledger's committed blocks or
//! # events to it, signed with the node key, retrying until it answers 2xx (nothing is
//! # skipped). Its position survives restarts (a cursor file next to the data).
//! [[webhooks]]
//! name = "recalls-to-erp"         # required; unique; names the cursor file
//! ledger = "dairy-0"              # required; one of [[ledgers]]
//! url = "http://10.0.0.9:9000/hook"  # required; http:// or https://
//! stream = "events"               # "events" (default) | "blocks"
//! account = "recalls"             # optional event filters (stream = "events"):
//! # topic = "..."   type = "ObjectEvent"   bizStep = "shipping"   epc = "urn:epc:id:sgtin:..."
//! from = 0                        # default 0: the first position when no cursor exists
//! batch = 100                     # default 100; messages per POST, 1..=1000
//! timeout_ms = 5000               # default 5000; per POST
//!
//! # The client API's protection. Off by default (plain HTTP, no tokens: right for a
//! # gateway on 127.0.0.1); the deploy examples turn both on.
//! [gateway]
//! tls_cert_file = "gateway.crt.pem"  # with tls_key_file: HTTPS (TLS 1.3/1.2, rustls)
//! tls_key_file = "gateway.key.pem"   # PEM private key (PKCS#8, SEC1 or PKCS#1)
//! [[gateway.tokens]]              # any token: every request but /, /healthz, /readyz and
//!                                 # /metrics needs `Authorization: Bearer <token>`
//! name = "acme-erp"               # required; unique; what logs name (never the token)
//! sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
//!                                 # required; hex SHA-256 of the token: no secret here
//! user = "4SpZa39cknW82ggqH18aGWuGrAmXY5H3FPiRMPecEgrE7hKhTG1jbpBm5nnP89zdCQHmJuFTgWqDhuvyg58GkP3gS3N"
//!                                 # optional; a user's public key (base58): then every
//!                                 # transaction submitted with this token must be signed
//!                                 # first by that user
//!
//! # EPCIS capture (POST /epcis/capture); absent: off.
//! [traceability]
//! shard_map = "shardmap.json"     # required; category → ledgers, prefixes/GTINs → category
//! capture_key_file = "capture.key.pem"  # required; the user key that signs captured events
//! map_ledger = "dairy-0"          # optional; one of [[ledgers]] (a dedicated `system`
//!                                 # ledger in production) that records the shard map
//!                                 # (data account `shard-map`, key `map`, one version
//!                                 # per epoch): every node routes by it, changes are
//!                                 # auditable; the file's map is recorded there first
//! ```

use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crypto_parallel::{HashAlgorithm, PublicKey, SignatureAlgorithm};
use engine::limits::{BLOCK_TXS_MAX, PARTICIPANTS_MAX};
use engine::model::{LedgerSettings, check_name};
use serde::Deserialize;

/// Upper bound of `block.max_delay_ms`.
pub const MAX_DELAY_MS_MAX: u64 = 10_000;

/// Upper bound of `raft.tick_ms`.
pub const TICK_MS_MAX: u64 = 60_000;

/// Default `node.http_listen`.
pub const DEFAULT_HTTP_LISTEN: &str = "127.0.0.1:8080";

/// An invalid configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file (the configuration or a `public_key_file`) could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not TOML, or a field is missing, unknown or of the wrong type. The message is
    /// toml's, with the line and column.
    #[error("{0}")]
    Toml(String),
    /// A field's value is not acceptable.
    #[error("{field}: {reason}")]
    Invalid {
        /// The field, as a path: `node.data`, `peers[1].address`, `ledgers[2].participants`.
        field: String,
        /// What is wrong and what is expected.
        reason: String,
    },
}

impl ConfigError {
    /// The field an `Invalid` error names.
    pub fn field(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid { field, .. } => Some(field),
            _ => None,
        }
    }
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { field: field.into(), reason: reason.into() }
}

/// A node's configuration: one TOML file (see the module docs for every field).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeConfig {
    /// `[node]`: this node.
    pub node: NodeSection,
    /// `[[peers]]`: the other nodes; empty for a node that runs alone.
    pub peers: Vec<PeerSection>,
    /// `[[ledgers]]`: the ledgers this node serves; at least one.
    pub ledgers: Vec<LedgerSection>,
    /// `[block]`: block building.
    pub block: BlockSection,
    /// `[mempool]`: pending transactions.
    pub mempool: MempoolSection,
    /// `[raft]`: Raft timing and log compaction.
    pub raft: RaftSection,
    /// `[pools]`: thread pools.
    pub pools: PoolsSection,
    /// `[[webhooks]]`: receivers of a ledger's blocks or events.
    pub webhooks: Vec<WebhookSection>,
    /// `[gateway]`: TLS and bearer tokens of the client API.
    pub gateway: GatewaySection,
    /// `[traceability]`: EPCIS capture (`POST /epcis/capture`); absent: off.
    pub traceability: Option<TraceabilitySection>,
}

/// `[traceability]`: where captured EPCIS events go and who signs them.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TraceabilitySection {
    /// `shard_map`: the shard map's JSON file (`sharding::map`), resolved against the
    /// config's directory.
    pub shard_map: PathBuf,
    /// `capture_key_file`: the user key (PKCS#8 PEM, or encrypted with the node key's
    /// password) that signs capture transactions; a registered user of the ledgers.
    pub capture_key_file: PathBuf,
    /// `map_ledger`: the ledger that records the shard map; `None`: the file's map.
    #[serde(default)]
    pub map_ledger: Option<String>,
}

/// `[gateway]`: the client API's TLS and bearer tokens.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GatewaySection {
    /// `tls_cert_file` and `tls_key_file`, resolved against the config's directory:
    /// serve HTTPS. Both or neither.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// `[[gateway.tokens]]`: when any, every API request needs one of them.
    pub tokens: Vec<TokenSection>,
}

/// `[[gateway.tokens]]`: one bearer token, by its hash.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenSection {
    /// `name`: what logs and errors call the token.
    pub name: String,
    /// `sha256`: SHA-256 of the token's UTF-8 bytes.
    pub sha256: [u8; 32],
    /// `user`: submissions with this token must be signed first by this key.
    pub user: Option<PublicKey>,
}

impl fmt::Debug for TokenSection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The hash is not the secret, but there is no reason to print it either.
        f.debug_struct("TokenSection")
            .field("name", &self.name)
            .field("user", &self.user.as_ref().map(PublicKey::to_base58))
            .finish_non_exhaustive()
    }
}

/// `[[webhooks]]`: one receiver.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSection {
    /// `name`: unique; names the cursor file.
    pub name: String,
    /// `ledger`: the ledger's name.
    pub ledger: String,
    /// `url`: where to POST.
    pub url: String,
    /// `stream`: `events` (default) or `blocks`.
    #[serde(default = "default_stream")]
    pub stream: String,
    /// `account`: only events of this event account.
    pub account: Option<String>,
    /// `topic`: only events of this topic.
    pub topic: Option<String>,
    /// `type`: only JSON payloads with this `type`.
    #[serde(rename = "type")]
    pub event_type: Option<String>,
    /// `bizStep`: only JSON payloads with this `bizStep`.
    #[serde(rename = "bizStep")]
    pub biz_step: Option<String>,
    /// `epc`: only JSON payloads naming this EPC.
    pub epc: Option<String>,
    /// `from`: the first position when no cursor exists yet.
    #[serde(default)]
    pub from: u64,
    /// `batch`: messages per POST.
    #[serde(default = "default_webhook_batch")]
    pub batch: usize,
    /// `timeout_ms`: per POST.
    #[serde(default = "default_webhook_timeout")]
    pub timeout_ms: u64,
}

fn default_stream() -> String {
    "events".into()
}

fn default_webhook_batch() -> usize {
    100
}

fn default_webhook_timeout() -> u64 {
    5000
}

/// `[node]`: this node's identity, storage and listen addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSection {
    /// `id`: node id, >= 1, unique among the nodes (participants name nodes by id).
    pub id: u64,
    /// `key_file`: this node's PKCS#8 PEM private key, resolved against the config's
    /// directory. Its public key is not in the config: pass it to
    /// [`LedgerSection::settings`].
    pub key_file: PathBuf,
    /// `key_password_file`: the password of an encrypted `key_file` (else the
    /// `POLYLEDGER_KEY_PASSWORD` environment variable), resolved like `key_file`.
    pub key_password_file: Option<PathBuf>,
    /// `data`: where the ledgers are stored.
    pub data: StorageUri,
    /// `p2p_listen`: the node-to-node transport's address.
    pub p2p_listen: SocketAddr,
    /// `p2p_tls`: TLS on node-to-node connections; default `true`.
    pub p2p_tls: bool,
    /// `http_listen`: the client API's address; default `127.0.0.1:8080`.
    pub http_listen: SocketAddr,
    /// `backup_dir`: where online backups go; default: the RocksDB path + `-backups`
    /// (`None` for `memory://` without one: no backups).
    pub backup_dir: Option<PathBuf>,
}

impl NodeSection {
    /// Where this node keeps its own files beside the ledgers (webhook cursors):
    /// the RocksDB path + `-state`; `None` for other storage.
    pub fn state_dir(&self) -> Option<PathBuf> {
        match &self.data {
            StorageUri::RocksDb(path) => {
                let mut dir = path.clone().into_os_string();
                dir.push("-state");
                Some(PathBuf::from(dir))
            }
            _ => None,
        }
    }
}

/// Where a node stores its ledgers (`node.data`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageUri {
    /// `memory://`: in memory; nothing survives a restart (tests, demos).
    Memory,
    /// `rocksdb:///absolute/path` or `rocksdb://relative/path` (relative to the config's
    /// directory): a local RocksDB directory.
    RocksDb(PathBuf),
    /// `tikv://pd1:2379,pd2:2379[?keyspace=NAME&prefix=TEXT]`: a TiKV cluster, by its
    /// placement-driver endpoints; optionally an API v2 keyspace, and a key prefix so
    /// several deployments can share one cluster.
    TiKv {
        /// PD endpoints, `host:port`.
        endpoints: Vec<String>,
        /// `keyspace=`: an API v2 keyspace (the cluster runs `storage.api-version = 2`).
        keyspace: Option<String>,
        /// `prefix=`: prepended to every key.
        prefix: Option<String>,
    },
}

const STORAGE_SCHEMES: &str = "expected memory://, rocksdb:///absolute/path, \
                               rocksdb://relative/path or \
                               tikv://PD_HOST:PORT[,PD_HOST:PORT...][?keyspace=NAME&prefix=TEXT]";

impl StorageUri {
    /// Parses a storage URI; a relative `rocksdb://` path is joined to `base_dir`.
    pub fn parse(text: &str, base_dir: &Path) -> Result<Self, String> {
        let unknown = || format!("`{text}` is not a storage URI; {STORAGE_SCHEMES}");
        let (scheme, rest) = text.split_once("://").ok_or_else(unknown)?;
        match scheme {
            "memory" if rest.is_empty() => Ok(StorageUri::Memory),
            "memory" => Err(format!("`{text}`: memory:// takes no path")),
            "rocksdb" if rest.is_empty() => Err(format!("`{text}`: rocksdb:// needs a path")),
            "rocksdb" => Ok(StorageUri::RocksDb(resolve(base_dir, Path::new(rest)))),
            "tikv" => {
                let (hosts, query) = rest.split_once('?').unwrap_or((rest, ""));
                let endpoints: Vec<String> =
                    hosts.split(',').map(|endpoint| endpoint.trim().to_owned()).collect();
                for endpoint in &endpoints {
                    check_endpoint(endpoint)
                        .map_err(|reason| format!("`{text}`: PD endpoint `{endpoint}` {reason}"))?;
                }
                let (mut keyspace, mut prefix) = (None, None);
                for pair in query.split('&').filter(|pair| !pair.is_empty()) {
                    match pair.split_once('=') {
                        Some(("keyspace", value)) if !value.is_empty() => {
                            keyspace = Some(value.to_owned())
                        }
                        Some(("prefix", value)) if !value.is_empty() => {
                            prefix = Some(value.to_owned())
                        }
                        _ => {
                            return Err(format!(
                                "`{text}`: unknown or empty option `{pair}` (keyspace=NAME, \
                                 prefix=TEXT)"
                            ));
                        }
                    }
                }
                Ok(StorageUri::TiKv { endpoints, keyspace, prefix })
            }
            _ => Err(unknown()),
        }
    }
}

/// `host:port` with a non-empty host and a numeric port.
fn check_endpoint(endpoint: &str) -> Result<(), &'static str> {
    match endpoint.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => Ok(()),
        _ => Err("is not HOST:PORT"),
    }
}

impl fmt::Display for StorageUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StorageUri::Memory => f.write_str("memory://"),
            StorageUri::RocksDb(path) => write!(f, "rocksdb://{}", path.display()),
            StorageUri::TiKv { endpoints, keyspace, prefix } => {
                write!(f, "tikv://{}", endpoints.join(","))?;
                let options: Vec<String> = [("keyspace", keyspace), ("prefix", prefix)]
                    .into_iter()
                    .filter_map(|(name, value)| value.as_ref().map(|v| format!("{name}={v}")))
                    .collect();
                if !options.is_empty() {
                    write!(f, "?{}", options.join("&"))?;
                }
                Ok(())
            }
        }
    }
}

/// `[[peers]]`: another node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerSection {
    /// `id`: its node id (>= 1, unique, not this node's).
    pub id: u64,
    /// `address`: its `p2p_listen`, as reachable from this node.
    pub address: SocketAddr,
    /// Its node key: `public_key` (base58) or `public_key_file` (PEM `PUBLIC KEY`),
    /// exactly one of the two.
    pub public_key: PublicKey,
}

/// `[[ledgers]]`: one ledger this node serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerSection {
    /// `name`: unique; 1 to 128 printable ASCII bytes without spaces
    /// ([`engine::model::check_name`]).
    pub name: String,
    /// `consensus`: `"solo"`, `"raft"` or `"bft"`; default `"solo"` when there are no
    /// peers, else `"raft"`.
    pub consensus: ConsensusKind,
    /// `participants`: the consensus nodes, by id, sorted; must include this node.
    /// Default: this node for `solo`; this node and all peers for `raft`.
    pub participants: Vec<u64>,
    /// `hash`: `"sm3"` (default) or `"sha256"`.
    pub hash: HashAlgorithm,
    /// `signatures`: signature algorithms accepted from users; default `["sm2"]`; names
    /// `"sm2"`, `"ed25519"`, `"ecdsa-p256"`.
    pub signatures: Vec<SignatureAlgorithm>,
    /// `admins`: users registered at genesis (base58 keys); at least one.
    pub admins: Vec<PublicKey>,
    /// `regulators`: keys that may record recalls (base58); registered at genesis too.
    pub regulators: Vec<PublicKey>,
    /// `roles`: roles defined at genesis, `{ name, permissions = [...] }`; any makes the
    /// ledger permissioned (the admins hold them all).
    pub roles: Vec<(String, u32)>,
    /// `created_ms`: genesis time, milliseconds since the Unix epoch; default 0. Required
    /// (non-zero) for a raft ledger with other participants, so that all nodes compute
    /// the same genesis.
    pub created_ms: u64,
    /// `participant_quorum`: co-signatures of current participants an admission or
    /// removal needs; 0 (default): a majority.
    pub participant_quorum: u32,
}

/// A ledger's consensus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConsensusKind {
    /// One node orders and commits alone.
    Solo,
    /// Raft among the participants (crash fault tolerant).
    Raft,
    /// Tendermint among the participants (Byzantine fault tolerant: `3f + 1` tolerate
    /// `f` arbitrarily faulty); every block carries a commit certificate.
    Bft,
}

impl ConsensusKind {
    /// Every kind.
    pub const ALL: [ConsensusKind; 3] =
        [ConsensusKind::Solo, ConsensusKind::Raft, ConsensusKind::Bft];

    /// The name in configs and in [`LedgerSettings::consensus`]: `"solo"`, `"raft"`,
    /// `"bft"`.
    pub const fn name(self) -> &'static str {
        match self {
            ConsensusKind::Solo => "solo",
            ConsensusKind::Raft => "raft",
            ConsensusKind::Bft => "bft",
        }
    }

    /// The kind with this name (as printed by `name`).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.name() == name)
    }
}

impl fmt::Display for ConsensusKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `[block]`: when the leader cuts a block.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BlockSection {
    /// `max_txs`: transactions per block; default 2000, `1..=engine::limits::BLOCK_TXS_MAX`.
    pub max_txs: usize,
    /// `max_delay_ms`: a block is cut at most this long after its first transaction
    /// arrived; default 20, `1..=10_000`.
    pub max_delay_ms: u64,
    /// `pipelined_commit`: write each block without an fsync and sync the WAL on the
    /// node's syncer thread while the next block executes; a block is reported only
    /// once durable. Default true; false: every block is fsync'd in its own write.
    pub pipelined_commit: bool,
}

impl Default for BlockSection {
    fn default() -> Self {
        BlockSection { max_txs: 2000, max_delay_ms: 20, pipelined_commit: true }
    }
}

impl BlockSection {
    /// `max_delay_ms` as a duration.
    pub fn max_delay(&self) -> Duration {
        Duration::from_millis(self.max_delay_ms)
    }
}

/// `[mempool]`: pending transactions.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MempoolSection {
    /// `capacity`: pending transactions per ledger; default 100_000, at least
    /// `block.max_txs`. Beyond it, submissions are refused.
    pub capacity: usize,
}

impl Default for MempoolSection {
    fn default() -> Self {
        MempoolSection { capacity: 100_000 }
    }
}

/// `[raft]`: Raft timing and log compaction (for `raft` ledgers).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RaftSection {
    /// `tick_ms`: one logical clock tick; default 100, `1..=60_000`.
    pub tick_ms: u64,
    /// `election_ticks`: ticks without a leader before a follower campaigns; default 10,
    /// more than `heartbeat_ticks`.
    pub election_ticks: usize,
    /// `heartbeat_ticks`: ticks between leader heartbeats; default 2, at least 1.
    pub heartbeat_ticks: usize,
    /// `max_log_entries_kept`: log entries kept after compaction (a follower further
    /// behind gets a snapshot); default 1000.
    pub max_log_entries_kept: u64,
}

impl Default for RaftSection {
    fn default() -> Self {
        RaftSection {
            tick_ms: 100,
            election_ticks: 10,
            heartbeat_ticks: 2,
            max_log_entries_kept: 1000,
        }
    }
}

impl RaftSection {
    /// `tick_ms` as a duration.
    pub fn tick(&self) -> Duration {
        Duration::from_millis(self.tick_ms)
    }
}

/// `[pools]`: thread pools shared by all ledgers.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PoolsSection {
    /// `verify_threads`: signature-verification threads; default 0 = one per core.
    pub verify_threads: usize,
    /// `transport_threads`: node-to-node transport threads; default 1, at least 1.
    pub transport_threads: usize,
}

impl Default for PoolsSection {
    fn default() -> Self {
        PoolsSection { verify_threads: 0, transport_threads: 1 }
    }
}

impl PoolsSection {
    /// `verify_threads`, with 0 replaced by the number of cores.
    pub fn verify_threads_resolved(&self) -> usize {
        match self.verify_threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }
}

// ---- Parsing: TOML into raw structs, then into the typed ones, naming fields. ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    node: RawNode,
    #[serde(default)]
    peers: Vec<RawPeer>,
    #[serde(default)]
    ledgers: Vec<RawLedger>,
    #[serde(default)]
    block: BlockSection,
    #[serde(default)]
    mempool: MempoolSection,
    #[serde(default)]
    raft: RaftSection,
    #[serde(default)]
    pools: PoolsSection,
    #[serde(default)]
    webhooks: Vec<WebhookSection>,
    #[serde(default)]
    gateway: RawGateway,
    traceability: Option<TraceabilitySection>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawGateway {
    tls_cert_file: Option<String>,
    tls_key_file: Option<String>,
    #[serde(default)]
    tokens: Vec<RawToken>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawToken {
    name: String,
    sha256: String,
    user: Option<String>,
}

impl RawGateway {
    fn convert(self, base_dir: &Path) -> Result<GatewaySection, ConfigError> {
        let tls = match (self.tls_cert_file, self.tls_key_file) {
            (None, None) => None,
            (Some(cert), Some(key)) => {
                Some((resolve(base_dir, Path::new(&cert)), resolve(base_dir, Path::new(&key))))
            }
            (Some(_), None) => {
                return Err(invalid("gateway.tls_key_file", "required with tls_cert_file"));
            }
            (None, Some(_)) => {
                return Err(invalid("gateway.tls_cert_file", "required with tls_key_file"));
            }
        };
        let mut names = HashSet::new();
        let mut hashes = HashSet::new();
        let mut tokens = Vec::with_capacity(self.tokens.len());
        for (i, token) in self.tokens.into_iter().enumerate() {
            let field = format!("gateway.tokens[{i}]");
            if token.name.trim().is_empty() || !names.insert(token.name.clone()) {
                return Err(invalid(format!("{field}.name"), "empty or not unique"));
            }
            let sha256: [u8; 32] = hex::decode(token.sha256.trim())
                .ok()
                .and_then(|bytes| bytes.try_into().ok())
                .ok_or_else(|| {
                    invalid(
                        format!("{field}.sha256"),
                        "not 64 hex digits (the SHA-256 of the token, e.g. from \
                         `polyledger token`)",
                    )
                })?;
            if !hashes.insert(sha256) {
                return Err(invalid(format!("{field}.sha256"), "the same token is listed twice"));
            }
            let user = token
                .user
                .map(|text| parse_base58_key(&format!("{field}.user"), &text))
                .transpose()?;
            tokens.push(TokenSection { name: token.name, sha256, user });
        }
        Ok(GatewaySection { tls, tokens })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    id: u64,
    key_file: String,
    key_password_file: Option<String>,
    data: String,
    p2p_listen: String,
    p2p_tls: Option<bool>,
    http_listen: Option<String>,
    backup_dir: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPeer {
    id: u64,
    address: String,
    public_key: Option<String>,
    public_key_file: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLedger {
    name: String,
    consensus: Option<String>,
    participants: Option<Vec<u64>>,
    hash: Option<String>,
    signatures: Option<Vec<String>>,
    #[serde(default)]
    admins: Vec<String>,
    #[serde(default)]
    regulators: Vec<String>,
    #[serde(default)]
    roles: Vec<RawRole>,
    created_ms: Option<u64>,
    participant_quorum: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRole {
    name: String,
    #[serde(default)]
    permissions: Vec<String>,
}

/// `path` if absolute, else `base_dir/path`.
fn resolve(base_dir: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() { path.to_path_buf() } else { base_dir.join(path) }
}

fn parse_address(field: &str, text: &str) -> Result<SocketAddr, ConfigError> {
    text.trim().parse().map_err(|_| {
        invalid(field, format!("`{text}` is not an IP:PORT socket address (e.g. 127.0.0.1:7101)"))
    })
}

fn parse_base58_key(field: &str, text: &str) -> Result<PublicKey, ConfigError> {
    PublicKey::from_base58(text)
        .map_err(|error| invalid(field, format!("not a base58 public key: {error}")))
}

impl RawNode {
    fn convert(self, base_dir: &Path) -> Result<NodeSection, ConfigError> {
        if self.key_file.trim().is_empty() {
            return Err(invalid("node.key_file", "empty; give the PEM private key's path"));
        }
        let http_listen = self.http_listen.as_deref().unwrap_or(DEFAULT_HTTP_LISTEN);
        let data = StorageUri::parse(&self.data, base_dir)
            .map_err(|reason| invalid("node.data", reason))?;
        let backup_dir = match (&self.backup_dir, &data) {
            (Some(dir), _) => Some(resolve(base_dir, Path::new(dir))),
            (None, StorageUri::RocksDb(path)) => {
                let mut dir = path.clone().into_os_string();
                dir.push("-backups");
                Some(PathBuf::from(dir))
            }
            (None, _) => None,
        };
        Ok(NodeSection {
            id: self.id,
            key_file: resolve(base_dir, Path::new(&self.key_file)),
            key_password_file: self
                .key_password_file
                .as_deref()
                .map(|f| resolve(base_dir, Path::new(f))),
            backup_dir,
            data,
            p2p_listen: parse_address("node.p2p_listen", &self.p2p_listen)?,
            p2p_tls: self.p2p_tls.unwrap_or(true),
            http_listen: parse_address("node.http_listen", http_listen)?,
        })
    }
}

impl RawPeer {
    fn convert(self, index: usize, base_dir: &Path) -> Result<PeerSection, ConfigError> {
        let field = format!("peers[{index}]");
        let public_key = match (self.public_key, self.public_key_file) {
            (Some(text), None) => parse_base58_key(&format!("{field}.public_key"), &text)?,
            (None, Some(file)) => {
                let path = resolve(base_dir, Path::new(&file));
                let pem = std::fs::read_to_string(&path)
                    .map_err(|source| ConfigError::Io { path: path.clone(), source })?;
                PublicKey::from_pem(&pem).map_err(|error| {
                    invalid(
                        format!("{field}.public_key_file"),
                        format!("{}: not a PEM PUBLIC KEY: {error}", path.display()),
                    )
                })?
            }
            (Some(_), Some(_)) | (None, None) => {
                return Err(invalid(
                    format!("{field}.public_key"),
                    "give exactly one of public_key (base58) or public_key_file (PEM)",
                ));
            }
        };
        Ok(PeerSection {
            id: self.id,
            address: parse_address(&format!("{field}.address"), &self.address)?,
            public_key,
        })
    }
}

impl RawLedger {
    fn convert(
        self,
        index: usize,
        own_id: u64,
        peers: &[PeerSection],
    ) -> Result<LedgerSection, ConfigError> {
        let field = format!("ledgers[{index}]");
        let consensus = match self.consensus.as_deref() {
            None if peers.is_empty() => ConsensusKind::Solo,
            None => ConsensusKind::Raft,
            Some(name) => ConsensusKind::from_name(name).ok_or_else(|| {
                invalid(
                    format!("{field}.consensus"),
                    format!("`{name}`: expected solo, raft or bft"),
                )
            })?,
        };
        let mut participants = self.participants.unwrap_or_else(|| match consensus {
            ConsensusKind::Solo => vec![own_id],
            ConsensusKind::Raft | ConsensusKind::Bft => {
                std::iter::once(own_id).chain(peers.iter().map(|peer| peer.id)).collect()
            }
        });
        participants.sort_unstable();
        let hash = match self.hash.as_deref() {
            None => HashAlgorithm::default(),
            Some(name) => HashAlgorithm::from_name(name).ok_or_else(|| {
                invalid(format!("{field}.hash"), format!("`{name}`: expected sm3 or sha256"))
            })?,
        };
        let signatures = match self.signatures {
            None => vec![SignatureAlgorithm::default()],
            Some(names) => names
                .iter()
                .enumerate()
                .map(|(i, name)| {
                    SignatureAlgorithm::from_name(name).ok_or_else(|| {
                        invalid(
                            format!("{field}.signatures[{i}]"),
                            format!("`{name}`: expected sm2, ed25519 or ecdsa-p256"),
                        )
                    })
                })
                .collect::<Result<_, _>>()?,
        };
        let admins = self
            .admins
            .iter()
            .enumerate()
            .map(|(i, text)| parse_base58_key(&format!("{field}.admins[{i}]"), text))
            .collect::<Result<_, _>>()?;
        let regulators = self
            .regulators
            .iter()
            .enumerate()
            .map(|(i, text)| parse_base58_key(&format!("{field}.regulators[{i}]"), text))
            .collect::<Result<_, _>>()?;
        let roles = self
            .roles
            .iter()
            .enumerate()
            .map(|(i, role)| {
                let mut bits = 0u32;
                for (j, name) in role.permissions.iter().enumerate() {
                    bits |= engine::model::permission::by_name(name).ok_or_else(|| {
                        invalid(
                            format!("{field}.roles[{i}].permissions[{j}]"),
                            format!(
                                "`{name}`: one of {}",
                                engine::model::permission::NAMES
                                    .iter()
                                    .map(|(n, _)| *n)
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                        )
                    })?;
                }
                check_name(&role.name)
                    .map_err(|reason| invalid(format!("{field}.roles[{i}].name"), reason))?;
                Ok((role.name.clone(), bits))
            })
            .collect::<Result<Vec<_>, ConfigError>>()?;
        Ok(LedgerSection {
            name: self.name,
            consensus,
            participants,
            hash,
            signatures,
            admins,
            regulators,
            roles,
            created_ms: self.created_ms.unwrap_or(0),
            participant_quorum: self.participant_quorum.unwrap_or(0),
        })
    }
}

/// Checks `min <= value <= max`, naming `field`.
fn check_range<T: PartialOrd + fmt::Display>(
    field: &str,
    value: T,
    min: T,
    max: T,
) -> Result<(), ConfigError> {
    if value < min || value > max {
        return Err(invalid(field, format!("{value} is out of range {min}..={max}")));
    }
    Ok(())
}

impl NodeConfig {
    /// Parses and validates a configuration; relative paths (`key_file`, `rocksdb://`
    /// paths, `public_key_file`) resolve against `base_dir`. Reads `public_key_file`s,
    /// not `key_file`.
    pub fn from_toml_str(text: &str, base_dir: &Path) -> Result<Self, ConfigError> {
        let raw: RawConfig = toml::from_str(text)
            .map_err(|error| ConfigError::Toml(error.to_string().trim_end().to_owned()))?;
        let node = raw.node.convert(base_dir)?;
        let peers = raw
            .peers
            .into_iter()
            .enumerate()
            .map(|(i, peer)| peer.convert(i, base_dir))
            .collect::<Result<Vec<_>, _>>()?;
        let ledgers = raw
            .ledgers
            .into_iter()
            .enumerate()
            .map(|(i, ledger)| ledger.convert(i, node.id, &peers))
            .collect::<Result<_, _>>()?;
        let config = NodeConfig {
            node,
            peers,
            ledgers,
            block: raw.block,
            mempool: raw.mempool,
            raft: raw.raft,
            pools: raw.pools,
            webhooks: raw.webhooks,
            gateway: raw.gateway.convert(base_dir)?,
            traceability: raw.traceability.map(|section| TraceabilitySection {
                shard_map: resolve(base_dir, &section.shard_map),
                capture_key_file: resolve(base_dir, &section.capture_key_file),
                map_ledger: section.map_ledger,
            }),
        };
        config.validate()?;
        Ok(config)
    }

    /// Reads, parses and validates the file at `path`; relative paths in it resolve
    /// against its directory.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Io { path: path.to_path_buf(), source })?;
        Self::from_toml_str(&text, path.parent().unwrap_or(Path::new("")))
    }

    /// Checks every rule across fields (run by `from_toml_str` and `load`; run it again
    /// after changing a config in code).
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_node()?;
        self.validate_peers()?;
        self.validate_ledgers()?;
        self.validate_tuning()?;
        self.validate_webhooks()?;
        if let Some(name) = self.traceability.as_ref().and_then(|t| t.map_ledger.as_ref())
            && self.ledger(name).is_none()
        {
            return Err(invalid(
                "traceability.map_ledger",
                format!("no ledger `{name}` is configured on this node"),
            ));
        }
        Ok(())
    }

    fn validate_webhooks(&self) -> Result<(), ConfigError> {
        let mut names = HashSet::new();
        for (i, hook) in self.webhooks.iter().enumerate() {
            let field = |name: &str| format!("webhooks[{i}].{name}");
            check_name(&hook.name).map_err(|reason| invalid(field("name"), reason))?;
            if !names.insert(&hook.name) {
                return Err(invalid(field("name"), "the name of an earlier webhook"));
            }
            if self.ledger(&hook.ledger).is_none() {
                return Err(invalid(field("ledger"), format!("no ledger named {}", hook.ledger)));
            }
            if !(hook.url.starts_with("http://") || hook.url.starts_with("https://")) {
                return Err(invalid(field("url"), "must start with http:// or https://"));
            }
            let filtered =
                [&hook.account, &hook.topic, &hook.event_type, &hook.biz_step, &hook.epc]
                    .iter()
                    .any(|condition| condition.is_some());
            match hook.stream.as_str() {
                "events" => {}
                "blocks" if !filtered => {}
                "blocks" => {
                    return Err(invalid(field("stream"), "event filters need stream = \"events\""));
                }
                other => {
                    return Err(invalid(
                        field("stream"),
                        format!("`{other}`: expected events or blocks"),
                    ));
                }
            }
            if !(1..=1000).contains(&hook.batch) {
                return Err(invalid(field("batch"), "must be 1 to 1000"));
            }
            if hook.timeout_ms == 0 || hook.timeout_ms > 600_000 {
                return Err(invalid(field("timeout_ms"), "must be 1 to 600000"));
            }
        }
        Ok(())
    }

    /// The peer with node id `id`.
    pub fn peer(&self, id: u64) -> Option<&PeerSection> {
        self.peers.iter().find(|peer| peer.id == id)
    }

    /// The ledger named `name`.
    pub fn ledger(&self, name: &str) -> Option<&LedgerSection> {
        self.ledgers.iter().find(|ledger| ledger.name == name)
    }

    fn validate_node(&self) -> Result<(), ConfigError> {
        let node = &self.node;
        if node.id == 0 {
            return Err(invalid("node.id", "must be at least 1"));
        }
        if node.key_file.as_os_str().is_empty() {
            return Err(invalid("node.key_file", "empty; give the PEM private key's path"));
        }
        match &node.data {
            StorageUri::Memory => {}
            StorageUri::RocksDb(path) if path.as_os_str().is_empty() => {
                return Err(invalid("node.data", "rocksdb:// needs a path"));
            }
            StorageUri::RocksDb(_) => {}
            StorageUri::TiKv { endpoints, .. } => {
                if endpoints.is_empty() {
                    return Err(invalid("node.data", "tikv:// needs at least one PD endpoint"));
                }
                for endpoint in endpoints {
                    check_endpoint(endpoint).map_err(|reason| {
                        invalid("node.data", format!("PD endpoint `{endpoint}` {reason}"))
                    })?;
                }
            }
        }
        if node.http_listen == node.p2p_listen {
            return Err(invalid(
                "node.http_listen",
                format!("{} is also node.p2p_listen", node.http_listen),
            ));
        }
        Ok(())
    }

    fn validate_peers(&self) -> Result<(), ConfigError> {
        let mut ids = HashSet::new();
        let mut addresses = HashSet::new();
        let mut keys = HashSet::new();
        for (i, peer) in self.peers.iter().enumerate() {
            let field = format!("peers[{i}]");
            if peer.id == 0 {
                return Err(invalid(format!("{field}.id"), "must be at least 1"));
            }
            if peer.id == self.node.id {
                return Err(invalid(format!("{field}.id"), format!("{} is node.id", peer.id)));
            }
            if !ids.insert(peer.id) {
                return Err(invalid(
                    format!("{field}.id"),
                    format!("{} is the id of an earlier peer", peer.id),
                ));
            }
            if peer.address == self.node.p2p_listen {
                return Err(invalid(
                    format!("{field}.address"),
                    format!("{} is node.p2p_listen", peer.address),
                ));
            }
            if !addresses.insert(peer.address) {
                return Err(invalid(
                    format!("{field}.address"),
                    format!("{} is the address of an earlier peer", peer.address),
                ));
            }
            if !keys.insert(&peer.public_key) {
                return Err(invalid(
                    format!("{field}.public_key"),
                    "the public key of an earlier peer",
                ));
            }
        }
        Ok(())
    }

    fn validate_ledgers(&self) -> Result<(), ConfigError> {
        if self.ledgers.is_empty() {
            return Err(invalid("ledgers", "at least one [[ledgers]] table"));
        }
        let mut names = HashSet::new();
        for (i, ledger) in self.ledgers.iter().enumerate() {
            let field = format!("ledgers[{i}]");
            check_name(&ledger.name).map_err(|reason| invalid(format!("{field}.name"), reason))?;
            if !names.insert(ledger.name.as_str()) {
                return Err(invalid(
                    format!("{field}.name"),
                    format!("`{}` is the name of an earlier ledger", ledger.name),
                ));
            }
            self.validate_participants(&field, ledger)?;
            validate_algorithms(&field, ledger)?;
        }
        Ok(())
    }

    fn validate_participants(
        &self,
        prefix: &str,
        ledger: &LedgerSection,
    ) -> Result<(), ConfigError> {
        let field = format!("{prefix}.participants");
        let participants = &ledger.participants;
        if participants.len() > PARTICIPANTS_MAX {
            return Err(invalid(field, format!("more than {PARTICIPANTS_MAX} nodes")));
        }
        let mut seen = HashSet::new();
        for &id in participants {
            if !seen.insert(id) {
                return Err(invalid(field, format!("node {id} is named twice")));
            }
            if id != self.node.id && self.peer(id).is_none() {
                return Err(invalid(
                    field,
                    format!("node {id} is neither this node (node.id) nor a peer"),
                ));
            }
        }
        // A raft ledger may list the nodes of its genesis without this one: it joins
        // when a transaction admits it.
        if !seen.contains(&self.node.id) && ledger.consensus != ConsensusKind::Raft {
            return Err(invalid(
                field,
                format!(
                    "must include this node ({}): a node serves only its own ledgers",
                    self.node.id
                ),
            ));
        }
        if ledger.consensus == ConsensusKind::Solo && participants.len() > 1 {
            return Err(invalid(
                field,
                format!("a solo ledger has one participant, not {}", participants.len()),
            ));
        }
        if ledger.consensus != ConsensusKind::Solo
            && participants.len() > 1
            && ledger.created_ms == 0
        {
            return Err(invalid(
                format!("{prefix}.created_ms"),
                "required for a raft or bft ledger with other participants, so that every \
                 node computes the same genesis (e.g. created_ms = 1767225600000)",
            ));
        }
        Ok(())
    }

    fn validate_tuning(&self) -> Result<(), ConfigError> {
        let (block, raft) = (&self.block, &self.raft);
        check_range("block.max_txs", block.max_txs, 1, BLOCK_TXS_MAX)?;
        check_range("block.max_delay_ms", block.max_delay_ms, 1, MAX_DELAY_MS_MAX)?;
        if self.mempool.capacity < block.max_txs {
            return Err(invalid(
                "mempool.capacity",
                format!(
                    "{} is less than block.max_txs ({}): a full block must fit",
                    self.mempool.capacity, block.max_txs
                ),
            ));
        }
        check_range("raft.tick_ms", raft.tick_ms, 1, TICK_MS_MAX)?;
        if raft.heartbeat_ticks == 0 {
            return Err(invalid("raft.heartbeat_ticks", "must be at least 1"));
        }
        if raft.election_ticks <= raft.heartbeat_ticks {
            return Err(invalid(
                "raft.election_ticks",
                format!(
                    "{} must be more than raft.heartbeat_ticks ({})",
                    raft.election_ticks, raft.heartbeat_ticks
                ),
            ));
        }
        if self.pools.transport_threads == 0 {
            return Err(invalid("pools.transport_threads", "must be at least 1"));
        }
        Ok(())
    }
}

fn validate_algorithms(field: &str, ledger: &LedgerSection) -> Result<(), ConfigError> {
    if ledger.signatures.is_empty() {
        return Err(invalid(format!("{field}.signatures"), "at least one signature algorithm"));
    }
    let mut seen = HashSet::new();
    for (i, algorithm) in ledger.signatures.iter().enumerate() {
        if !seen.insert(algorithm) {
            return Err(invalid(
                format!("{field}.signatures[{i}]"),
                format!("{algorithm} is named twice"),
            ));
        }
    }
    if ledger.admins.is_empty() {
        return Err(invalid(
            format!("{field}.admins"),
            "at least one admin key (nobody could write to the ledger otherwise)",
        ));
    }
    if ledger.admins.len() > PARTICIPANTS_MAX {
        return Err(invalid(format!("{field}.admins"), format!("more than {PARTICIPANTS_MAX}")));
    }
    let mut seen = HashSet::new();
    for (i, admin) in ledger.admins.iter().enumerate() {
        if !seen.insert(admin) {
            return Err(invalid(format!("{field}.admins[{i}]"), "the key of an earlier admin"));
        }
        if !ledger.signatures.contains(&admin.algorithm()) {
            return Err(invalid(
                format!("{field}.admins[{i}]"),
                format!("a {} key, not in {field}.signatures", admin.algorithm()),
            ));
        }
    }
    if ledger.regulators.len() > PARTICIPANTS_MAX {
        return Err(invalid(
            format!("{field}.regulators"),
            format!("more than {PARTICIPANTS_MAX}"),
        ));
    }
    let mut seen = HashSet::new();
    for (i, regulator) in ledger.regulators.iter().enumerate() {
        if !seen.insert(regulator) {
            return Err(invalid(
                format!("{field}.regulators[{i}]"),
                "the key of an earlier regulator",
            ));
        }
        if !ledger.signatures.contains(&regulator.algorithm()) {
            return Err(invalid(
                format!("{field}.regulators[{i}]"),
                format!("a {} key, not in {field}.signatures", regulator.algorithm()),
            ));
        }
    }
    Ok(())
}

impl LedgerSection {
    /// The ledger's genesis settings. Participants become node keys in ascending id
    /// order: `own_key` (this node's public key, from `node.key_file`) for `node.id`,
    /// the peers' keys for the others. Nodes configured alike therefore compute identical
    /// settings, hence the same genesis block and ledger id.
    pub fn settings(
        &self,
        config: &NodeConfig,
        own_key: &PublicKey,
    ) -> Result<LedgerSettings, ConfigError> {
        let field = match config.ledgers.iter().position(|ledger| ledger.name == self.name) {
            Some(i) => format!("ledgers[{i}]"),
            None => format!("ledger `{}`", self.name),
        };
        if let Some(i) = config.peers.iter().position(|peer| peer.public_key == *own_key) {
            return Err(invalid(
                "node.key_file",
                format!("this node's public key is also peers[{i}].public_key"),
            ));
        }
        let mut ids = self.participants.clone();
        ids.sort_unstable();
        let participants = ids
            .iter()
            .map(|&id| {
                if id == config.node.id {
                    Ok(own_key.clone())
                } else {
                    config.peer(id).map(|peer| peer.public_key.clone()).ok_or_else(|| {
                        invalid(
                            format!("{field}.participants"),
                            format!("node {id} is neither this node (node.id) nor a peer"),
                        )
                    })
                }
            })
            .collect::<Result<_, _>>()?;
        let settings = LedgerSettings {
            name: self.name.clone(),
            hash_algorithm: self.hash,
            signature_algorithms: self.signatures.clone(),
            consensus: self.consensus.name().to_owned(),
            participants,
            initial_users: self.admins.clone(),
            regulators: self.regulators.clone(),
            participant_quorum: self.participant_quorum,
            roles: self.roles.clone(),
            created_ms: self.created_ms,
            parents: Vec::new(),
        };
        settings.check().map_err(|reason| invalid(field, reason))?;
        Ok(settings)
    }
}
