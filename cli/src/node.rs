//! `polyledger node`: a node from its configuration file, serving the HTTP API until
//! SIGTERM or Ctrl-C. `Running` is shared with `demo` and `loadgen --embedded`.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use actors::config::{NodeConfig, StorageUri};
use actors::{Node, NodeOptions};
use crypto_parallel::{BatchVerifier, PrivateKey};
use engine::store::{KvStore, MemoryStore};

use crate::{Failure, hex_string, invalid, runtime};

pub fn open_store(uri: &StorageUri) -> Result<Arc<dyn KvStore>, Failure> {
    match uri {
        StorageUri::Memory => Ok(Arc::new(MemoryStore::new())),
        StorageUri::RocksDb(path) => {
            std::fs::create_dir_all(path)
                .map_err(|e| runtime(format!("{}: {e}", path.display())))?;
            let store = storage_rocksdb::RocksStore::open(path)
                .map_err(|e| runtime(format!("opening RocksDB at {}: {e}", path.display())))?;
            Ok(Arc::new(store))
        }
        StorageUri::TiKv { endpoints, keyspace, prefix } => {
            let mut options = storage_tikv::TikvOptions::new(endpoints.clone());
            options.keyspace = keyspace.clone();
            options.prefix = prefix.clone().unwrap_or_default().into_bytes();
            let store = storage_tikv::TikvStore::open(options)
                .map_err(|e| runtime(format!("opening {uri}: {e}")))?;
            Ok(Arc::new(store))
        }
    }
}

/// Reads a node's configuration and key.
pub fn load(config_path: &Path) -> Result<(NodeConfig, PrivateKey), Failure> {
    let config = NodeConfig::load(config_path)
        .map_err(|e| invalid(format!("{}: {e}", config_path.display())))?;
    // Unlocked before anything starts: a wrong password stops here, with nothing opened.
    let key =
        crate::keys::read_key(&config.node.key_file, config.node.key_password_file.as_deref())
            .map_err(|e| {
                invalid(format!("node.key_file {}: {e}", config.node.key_file.display()))
            })?;
    Ok((config, key))
}

/// `[traceability]`: the shard map and the capture key, read before anything serves.
fn capture_options(config: &NodeConfig) -> Result<Option<gateway::capture::Capture>, Failure> {
    let Some(section) = &config.traceability else { return Ok(None) };
    let text = std::fs::read_to_string(&section.shard_map).map_err(|e| {
        invalid(format!("traceability.shard_map {}: {e}", section.shard_map.display()))
    })?;
    let map = sharding::ShardMap::from_json(&text).map_err(|e| {
        invalid(format!("traceability.shard_map {}: {e}", section.shard_map.display()))
    })?;
    let key =
        crate::keys::read_key(&section.capture_key_file, config.node.key_password_file.as_deref())
            .map_err(|e| {
                invalid(format!(
                    "traceability.capture_key_file {}: {e}",
                    section.capture_key_file.display()
                ))
            })?;
    let map = match &section.map_ledger {
        Some(ledger) => gateway::shardmap::MapSource::on_ledger(map, ledger.clone()),
        None => gateway::shardmap::MapSource::file(map),
    };
    Ok(Some(gateway::capture::Capture { map, key: Arc::new(key) }))
}

/// A started node with its HTTP API.
pub struct Running {
    /// The node.
    pub node: Node,
    /// Where the HTTP API listens.
    pub http: SocketAddr,
    stop_http: tokio::sync::oneshot::Sender<()>,
    server: actix_rt::task::JoinHandle<std::io::Result<()>>,
}

/// Starts the node of `config` and its HTTP API. Runs inside an actix `System`.
pub async fn start(config: &NodeConfig, key: PrivateKey) -> Result<Running, Failure> {
    BatchVerifier::init_global(config.pools.verify_threads_resolved());
    let webhook_key = Arc::new(key.clone());
    let options = NodeOptions::from_config(config, key).map_err(|e| invalid(e.to_string()))?;
    let store = open_store(&config.node.data)?;
    let node = Node::start(options, store.clone()).map_err(|e| runtime(e.to_string()))?;
    // Webhooks first: a bad one (unreadable cursor) stops the start before serving.
    let state_dir = config.node.state_dir();
    let mut webhooks = Vec::new();
    for section in &config.webhooks {
        let hook = gateway::webhooks::Webhook::new(
            section.clone(),
            &node.ledgers(),
            webhook_key.clone(),
            state_dir.as_deref(),
        )
        .map_err(|e| invalid(e.to_string()))?;
        webhooks.push(hook);
    }
    for hook in webhooks {
        actix_rt::spawn(hook.run());
    }
    let named: Vec<_> =
        node.ledgers().iter().map(|ledger| (ledger.name().to_owned(), ledger.id())).collect();
    // TLS material is read before the API starts: a bad file stops the start here.
    let tls = match &config.gateway.tls {
        Some((cert, key)) => Some(gateway::tls::server_config(cert, key).map_err(invalid)?),
        None => None,
    };
    let options = gateway::GatewayOptions {
        backup: crate::ops::backup_target(config, store, named),
        tokens: gateway::auth::Tokens::new(&config.gateway.tokens),
        capture: capture_options(config)?,
    };
    for ledger in node.ledgers().iter() {
        tracing::info!(
            ledger = ledger.name(),
            id = %hex_string(&ledger.id().0),
            height = ledger.head().height,
            "ledger open"
        );
    }
    let http_listen = config.node.http_listen;
    let listener = tokio::net::TcpListener::bind(http_listen)
        .await
        .map_err(|e| runtime(format!("node.http_listen {http_listen}: {e}")))?;
    let http = listener.local_addr().map_err(|e| runtime(e.to_string()))?;
    let (stop_http, http_stopped) = tokio::sync::oneshot::channel::<()>();
    let router = gateway::router_with(node.ledger_set(), options);
    let stopped = async move {
        let _ = http_stopped.await;
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let server = match tls {
        Some(tls) => actix_rt::spawn(gateway::tls::serve_tls(listener, tls, router, stopped)),
        None => actix_rt::spawn(gateway::serve(listener, router, stopped)),
    };
    tracing::info!(
        node = node.id(),
        http = %http,
        scheme,
        tokens = config.gateway.tokens.len(),
        p2p_tls = config.node.p2p_tls,
        "node running"
    );
    Ok(Running { node, http, stop_http, server })
}

impl Running {
    /// Stops the HTTP API, then the node (finishing blocks in flight within `grace`).
    pub async fn stop(self, grace: Duration) {
        tracing::info!("stopping: finishing blocks in flight");
        let _ = self.stop_http.send(());
        self.node.shutdown(grace).await;
        let _ = self.server.await;
        tracing::info!("stopped");
    }
}

/// `polyledger node --config FILE`.
pub fn run_node(config_path: &Path, grace: Duration) -> Result<(), Failure> {
    let (config, key) = load(config_path)?;
    actix_rt::System::new().block_on(async move {
        let running = start(&config, key).await?;
        tracing::info!("SIGTERM or Ctrl-C stops the node");
        wait_for_stop().await;
        running.stop(grace).await;
        Ok(())
    })
}

pub async fn wait_for_stop() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
