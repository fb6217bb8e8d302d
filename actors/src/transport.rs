//! Node-to-node transport: one authenticated TCP connection per peer pair, shared by
//! every ledger the two nodes run.
//!
//! Each ledger's consensus group exchanges opaque messages through this transport; a
//! message ([`Envelope`]) is tagged with the 32-byte ledger id and a one-byte kind, and
//! the receiver learns the sender's [`NodeId`] from the authenticated connection it
//! arrived on.
//!
//! # Design
//!
//! - **One connection per peer pair.** The node with the smaller id dials, the node with
//!   the larger id accepts; both directions use that connection. A dialer retries forever
//!   (until [`Transport::shutdown`]) with exponential backoff: 50 ms doubling to a 2 s cap,
//!   each wait drawn uniformly from `[d/2, d]`. The address is re-read on every attempt,
//!   and [`Transport::set_peer_address`] wakes a dialer at once.
//! - **Peers** come from the configuration, and at run time from ledgers that admit a
//!   participant ([`Transport::add_peer`]): its id, key and address are then known here
//!   and it is dialed like a configured peer.
//! - **Authentication.** A handshake proves that each side holds the private key
//!   configured for the id it claims, over fresh 32-byte challenges from both sides (so a
//!   recorded handshake cannot be replayed). Unknown ids, wrong keys, bad signatures,
//!   wrong magic or version, a dialer with the larger id and handshakes slower than
//!   [`TransportConfig::handshake_timeout`] are rejected: the connection is closed and the
//!   reason logged with `tracing::warn!`. A newly authenticated connection from a peer
//!   supersedes (closes) the previous one, so a restarted peer is taken back at once.
//! - **Sending never waits.** [`Transport::send`] puts the message into the peer's
//!   bounded outbound queue ([`TransportConfig::queue_len`] entries). When the peer is not
//!   connected, the queue is full, or the message is larger than the frame limit, the
//!   message is dropped and counted ([`Transport::dropped`]); consensus protocols
//!   retransmit. Messages sent *while* connected to the same peer are delivered in order.
//!   The connection's writer drains everything queued, encodes it and flushes once.
//! - **Receiving.** Each inbound message is handed to the [`Inbound`] callback on the
//!   connection's reader task, in arrival order. The callback must not block (an actix
//!   `do_send` is right). A panicking callback loses that message only.
//! - **Liveness.** A writer idle for [`TransportConfig::keepalive_interval`] sends an
//!   empty keepalive frame; a reader that receives no frame for
//!   [`TransportConfig::idle_timeout`] drops the connection (half-open TCP detection).
//! - **Runtime.** The transport runs on its own multi-thread tokio runtime
//!   ([`TransportConfig::worker_threads`] workers), so [`Transport::start`] is a plain
//!   function that works inside or outside another runtime; it binds the listener before
//!   returning, so "address in use" is reported at once.
//!
//! - **TLS** ([`TransportConfig::tls`], on by default; `[node] p2p_tls`): every
//!   connection runs TLS 1.3 (rustls) first, and the handshake below runs inside it with
//!   the session's exporter value appended to the signed message, which binds the node
//!   keys to that TLS session ([`crate::p2p_tls`] explains the binding). A plaintext
//!   client on a TLS port fails the TLS handshake and is closed; a frame altered on the
//!   way fails its record's authentication tag and the connection is closed.
//!
//! # Wire format
//!
//! With TLS on, everything below is the TLS application data; the TLS layer is standard
//! (TLS 1.3, any certificate, server name `polyledger-node`, no client certificate).
//! All integers are big-endian. Every message on a connection, handshake included, is a
//! frame: `length: u32 | body [length]` (the length counts the body only; tokio-util's
//! `LengthDelimitedCodec` with its defaults). Handshake frames are at most
//! [`HANDSHAKE_MAX_FRAME`] bytes; data frames at most
//! [`TransportConfig::max_frame_bytes`] (64 MiB by default). A frame over the limit closes
//! the connection.
//!
//! ## Handshake
//!
//! Immediately after the TCP connection opens, each side sends a **hello** frame:
//!
//! | offset | size | field                                                          |
//! |-------:|-----:|----------------------------------------------------------------|
//! | 0      | 8    | magic `"POLYP2P\0"` (`50 4F 4C 59 50 32 50 00`)                |
//! | 8      | 2    | protocol version, `u16` = 1                                    |
//! | 10     | 8    | sender's node id, `u64`                                        |
//! | 18     | 32   | challenge: 32 fresh random bytes                               |
//! | 50     | 2    | public key length `n`, `u16`                                   |
//! | 52     | n    | sender's node public key, binary form `algorithm: u16 \| raw`  |
//!
//! Each side then checks the other's hello: magic and version; the id is a configured
//! peer (and not its own); the key bytes equal that peer's configured key exactly; the
//! dialer's id is smaller than the acceptor's; and, on the dialer, that the acceptor is
//! the peer it meant to dial. If all holds it sends an **auth** frame whose body is a
//! signature, binary form `algorithm: u16 | raw` (SM2: 64-byte `r | s`), over the
//! **signed message**:
//!
//! | offset | size | field                                                          |
//! |-------:|-----:|----------------------------------------------------------------|
//! | 0      | 17   | domain `"polyledger-p2p-v1"` (ASCII)                           |
//! | 17     | 8    | dialer's node id, `u64`                                        |
//! | 25     | 8    | acceptor's node id, `u64`                                      |
//! | 33     | 32   | dialer's challenge                                             |
//! | 65     | 32   | acceptor's challenge                                           |
//! | 97     | 1    | signer's role: `0x01` dialer, `0x02` acceptor                  |
//! | 98     | 32   | TLS only: exporter, label `EXPERIMENTAL-polyledger-p2p`, no context |
//!
//! Each side verifies the other's auth against the configured public key with the other
//! side's role byte. Only then is the connection live. Both sides' fresh challenges make
//! every signed message unique; the role byte stops a signature being reflected back.
//!
//! ## Data frames
//!
//! After the handshake every frame body is either empty (a keepalive, ignored) or:
//!
//! | offset | size | field                                                          |
//! |-------:|-----:|----------------------------------------------------------------|
//! | 0      | 32   | ledger id                                                      |
//! | 32     | 1    | message kind                                                   |
//! | 33     | rest | payload (opaque to the transport)                              |
//!
//! A non-empty body shorter than 33 bytes closes the connection. The sender is the
//! authenticated peer of the connection.

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::SocketAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use crypto_parallel::{PrivateKey, PublicKey, Signature};
use futures::{SinkExt, StreamExt};
use parking_lot::{Mutex, RwLock};
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::runtime::Runtime;
use tokio::sync::{Notify, Semaphore, mpsc};
use tokio_util::codec::{Encoder, FramedRead, FramedWrite, LengthDelimitedCodec};
use tokio_util::either::Either;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::p2p_tls::{EXPORTER_LABEL, EXPORTER_LEN, P2pTls, SERVER_NAME};

/// A connection: plain TCP, or TLS over TCP.
type Stream = Either<TcpStream, tokio_rustls::TlsStream<TcpStream>>;

/// A node's id, unique among the nodes of a deployment.
pub type NodeId = u64;

/// The callback that receives every inbound message. It runs on the transport's tokio
/// tasks and must not block.
pub type Inbound = Arc<dyn Fn(Envelope) + Send + Sync>;

/// Protocol magic, the first 8 bytes of a hello.
pub const MAGIC: [u8; 8] = *b"POLYP2P\0";
/// Protocol version carried in the hello.
pub const PROTOCOL_VERSION: u16 = 1;
/// Domain separator at the start of the signed handshake message.
pub const SIGNING_DOMAIN: &[u8] = b"polyledger-p2p-v1";
/// Role byte of a handshake signature made by the dialer.
pub const ROLE_DIALER: u8 = 0x01;
/// Role byte of a handshake signature made by the acceptor.
pub const ROLE_ACCEPTOR: u8 = 0x02;
/// Length of a handshake challenge.
pub const CHALLENGE_LEN: usize = 32;
/// Largest handshake frame body accepted (hello or auth).
pub const HANDSHAKE_MAX_FRAME: usize = 4096;
/// Length of a data frame's header: ledger id (32) and kind (1).
pub const FRAME_HEADER_LEN: usize = 33;

/// Default [`TransportConfig::max_frame_bytes`]: 64 MiB.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 64 << 20;
/// Default [`TransportConfig::queue_len`]: outbound messages queued per peer.
pub const DEFAULT_QUEUE_LEN: usize = 65_536;
/// Default [`TransportConfig::handshake_timeout`].
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Default [`TransportConfig::keepalive_interval`].
pub const DEFAULT_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(2);
/// Default [`TransportConfig::idle_timeout`].
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(20);
/// Default [`TransportConfig::worker_threads`].
pub const DEFAULT_WORKER_THREADS: usize = 1;

/// First reconnect delay.
const BACKOFF_MIN: Duration = Duration::from_millis(50);
/// Largest reconnect delay.
const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// Most handshakes in progress on the listener; further connections are closed at once.
const MAX_PENDING_HANDSHAKES: usize = 256;
/// Most messages a writer encodes before it flushes.
const WRITE_BATCH: usize = 1024;
/// Bytes a writer buffers before it writes them out mid-batch.
const WRITE_BUFFER: usize = 256 * 1024;
/// Initial capacity of a reader's buffer.
const READ_BUFFER: usize = 64 * 1024;

/// A peer the node connects to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerConfig {
    /// The peer's node id.
    pub id: NodeId,
    /// The peer's node public key; the peer must prove it holds the private key.
    pub public_key: PublicKey,
    /// Where the peer listens (dialed only when the peer's id is larger than ours).
    pub address: SocketAddr,
}

/// Configuration of a [`Transport`].
#[derive(Debug, Clone)]
pub struct TransportConfig {
    /// This node's id.
    pub id: NodeId,
    /// This node's private key; it signs the handshake.
    pub key: PrivateKey,
    /// Address to listen on (port 0 picks a free port; see [`Transport::local_addr`]).
    pub listen: SocketAddr,
    /// The other nodes. Only these may connect, each with its configured key.
    pub peers: Vec<PeerConfig>,
    /// Largest data frame body (header included) sent or accepted, in bytes.
    pub max_frame_bytes: usize,
    /// Outbound queue length per peer, in messages.
    pub queue_len: usize,
    /// Longest a handshake (TCP connect included, when dialing) may take.
    pub handshake_timeout: Duration,
    /// A connection with nothing to send for this long sends a keepalive frame.
    pub keepalive_interval: Duration,
    /// A connection that receives no frame for this long is closed.
    pub idle_timeout: Duration,
    /// Worker threads of the transport's tokio runtime.
    pub worker_threads: usize,
    /// TLS on every connection (both sides must agree; see [`crate::p2p_tls`]). On by
    /// default.
    pub tls: bool,
}

impl TransportConfig {
    /// A configuration with the default limits and timeouts.
    pub fn new(id: NodeId, key: PrivateKey, listen: SocketAddr, peers: Vec<PeerConfig>) -> Self {
        TransportConfig {
            id,
            key,
            listen,
            peers,
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            queue_len: DEFAULT_QUEUE_LEN,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            keepalive_interval: DEFAULT_KEEPALIVE_INTERVAL,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            worker_threads: DEFAULT_WORKER_THREADS,
            tls: true,
        }
    }

    fn validate(&self) -> io::Result<()> {
        let invalid = |reason: String| Err(io::Error::new(io::ErrorKind::InvalidInput, reason));
        if self.max_frame_bytes < FRAME_HEADER_LEN || self.max_frame_bytes > u32::MAX as usize {
            return invalid(format!(
                "max_frame_bytes must be in [{FRAME_HEADER_LEN}, {}], got {}",
                u32::MAX,
                self.max_frame_bytes
            ));
        }
        if self.queue_len == 0 {
            return invalid("queue_len must be at least 1".into());
        }
        if self.worker_threads == 0 {
            return invalid("worker_threads must be at least 1".into());
        }
        if self.handshake_timeout.is_zero()
            || self.keepalive_interval.is_zero()
            || self.idle_timeout <= self.keepalive_interval
        {
            return invalid(
                "timeouts must be positive and idle_timeout longer than keepalive_interval".into(),
            );
        }
        let mut seen = HashSet::new();
        for peer in &self.peers {
            if peer.id == self.id {
                return invalid(format!("peer list contains this node's own id {}", self.id));
            }
            if !seen.insert(peer.id) {
                return invalid(format!("peer id {} is listed twice", peer.id));
            }
        }
        Ok(())
    }
}

/// One message between nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The sending node (the authenticated peer of the connection it arrived on).
    pub from: NodeId,
    /// The ledger the message belongs to.
    pub ledger: [u8; 32],
    /// Message kind, meaningful to the ledger's consensus group.
    pub kind: u8,
    /// The message itself, opaque to the transport.
    pub payload: Bytes,
}

/// The node-to-node transport. Cheap to clone; every clone drives the same transport, and
/// [`Transport::send`] may be called from any thread. Dropping the last clone stops it
/// too (without waiting); [`Transport::shutdown`] stops it and waits for its threads.
#[derive(Clone)]
pub struct Transport {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("id", &self.inner.state.id)
            .field("local_addr", &self.inner.local_addr)
            .finish_non_exhaustive()
    }
}

/// Owns the runtime; the runtime's tasks hold only [`State`], so there is no cycle.
struct Inner {
    state: Arc<State>,
    local_addr: SocketAddr,
    runtime: Mutex<Option<Runtime>>,
}

impl Inner {
    /// Stops everything; waits for the runtime's threads only when `wait` and when not
    /// inside an asynchronous context (where blocking would panic).
    fn stop(&self, wait: bool) {
        self.state.closed.store(true, Ordering::SeqCst);
        self.state.cancel.cancel();
        for peer in self.state.peers.read().values() {
            peer.link.write().take();
        }
        if let Some(runtime) = self.runtime.lock().take() {
            if wait && tokio::runtime::Handle::try_current().is_err() {
                runtime.shutdown_timeout(Duration::from_secs(2));
            } else {
                runtime.shutdown_background();
            }
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop(false);
    }
}

/// What the runtime's tasks share.
struct State {
    id: NodeId,
    key: PrivateKey,
    /// `key`'s public key, binary form, as sent in the hello.
    public_key_bytes: Vec<u8>,
    /// Configured peers, and those added since ([`Transport::add_peer`]).
    peers: RwLock<HashMap<NodeId, Arc<Peer>>>,
    max_frame_bytes: usize,
    queue_len: usize,
    handshake_timeout: Duration,
    keepalive_interval: Duration,
    idle_timeout: Duration,
    inbound: Inbound,
    dropped: AtomicU64,
    closed: AtomicBool,
    cancel: CancellationToken,
    next_generation: AtomicU64,
    pending_handshakes: Arc<Semaphore>,
    /// TLS acceptor and connector, when TLS is on.
    tls: Option<P2pTls>,
}

/// A configured peer and its live connection, if any.
struct Peer {
    id: NodeId,
    public_key: PublicKey,
    /// `public_key` in binary form, compared with the hello's bytes.
    public_key_bytes: Vec<u8>,
    address: Mutex<SocketAddr>,
    address_changed: Notify,
    link: RwLock<Option<Link>>,
}

/// The sending side of a live, authenticated connection.
struct Link {
    generation: u64,
    tx: mpsc::Sender<Outbound>,
    /// Closes the connection when the link is replaced or removed.
    _close: DropGuard,
}

/// The listening socket, bound with SO_REUSEADDR (a restarted node rebinds its port
/// while the old connections linger in TIME_WAIT). Needs a runtime context.
fn bind_listener(listen: SocketAddr) -> io::Result<TcpListener> {
    let socket = if listen.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(listen)?;
    socket.listen(1024)
}

/// A queued outbound message.
struct Outbound {
    ledger: [u8; 32],
    kind: u8,
    payload: Bytes,
}

impl Transport {
    /// Binds the listener (synchronously: a bind error is returned here), starts the
    /// transport's runtime, its listener and one dialer per peer whose id is larger than
    /// ours, and returns. Works inside or outside a tokio runtime.
    pub fn start(config: TransportConfig, inbound: Inbound) -> io::Result<Transport> {
        config.validate()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.worker_threads)
            .thread_name(format!("p2p-{}", config.id))
            .enable_io()
            .enable_time()
            .build()?;
        let bound = {
            let _context = runtime.enter();
            bind_listener(config.listen).and_then(|listener| {
                let local_addr = listener.local_addr()?;
                let tls = if config.tls { Some(P2pTls::new()?) } else { None };
                Ok((listener, local_addr, tls))
            })
        };
        let (listener, local_addr, tls) = match bound {
            Ok(bound) => bound,
            Err(e) => {
                // Dropping a runtime blocks on its threads, which panics when this is
                // called from inside another runtime (an actix node's start); a failed
                // start must return its error instead.
                runtime.shutdown_background();
                return Err(e);
            }
        };

        let peers = config
            .peers
            .iter()
            .map(|p| {
                let peer = Peer {
                    id: p.id,
                    public_key_bytes: p.public_key.to_bytes(),
                    public_key: p.public_key.clone(),
                    address: Mutex::new(p.address),
                    address_changed: Notify::new(),
                    link: RwLock::new(None),
                };
                (p.id, Arc::new(peer))
            })
            .collect::<HashMap<_, _>>();
        let state = Arc::new(State {
            id: config.id,
            public_key_bytes: config.key.public_key().to_bytes(),
            key: config.key,
            peers: RwLock::new(peers),
            max_frame_bytes: config.max_frame_bytes,
            queue_len: config.queue_len,
            handshake_timeout: config.handshake_timeout,
            keepalive_interval: config.keepalive_interval,
            idle_timeout: config.idle_timeout,
            inbound,
            dropped: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            cancel: CancellationToken::new(),
            next_generation: AtomicU64::new(0),
            pending_handshakes: Arc::new(Semaphore::new(MAX_PENDING_HANDSHAKES)),
            tls,
        });

        runtime.spawn(accept_loop(state.clone(), listener));
        for peer in state.peers.read().values().filter(|p| p.id > state.id) {
            runtime.spawn(dial_loop(state.clone(), peer.clone()));
        }
        tracing::info!(node = state.id, %local_addr, tls = config.tls, "p2p transport listening");
        Ok(Transport {
            inner: Arc::new(Inner { state, local_addr, runtime: Mutex::new(Some(runtime)) }),
        })
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.inner.state.id
    }

    /// The address the listener is bound to (the real port when `listen` used port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    /// Queues a message for `to` without blocking or waiting. When `to` is not a
    /// connected peer (this node's own id included), its queue is full, the payload does
    /// not fit in a frame, or the transport is shut down, the message is dropped and
    /// counted in [`Transport::dropped`].
    pub fn send(&self, to: NodeId, ledger: [u8; 32], kind: u8, payload: Bytes) {
        let state = &self.inner.state;
        let queued = !state.closed.load(Ordering::Relaxed)
            && FRAME_HEADER_LEN + payload.len() <= state.max_frame_bytes
            && state.peers.read().get(&to).is_some_and(|peer| {
                peer.link.read().as_ref().is_some_and(|link| {
                    link.tx.try_send(Outbound { ledger, kind, payload }).is_ok()
                })
            });
        if !queued {
            state.dropped.fetch_add(1, Ordering::Relaxed);
            tracing::trace!(node = state.id, to, "p2p message dropped");
        }
    }

    /// Peers with a live, authenticated connection, in ascending id order.
    pub fn connected(&self) -> Vec<NodeId> {
        let mut ids: Vec<NodeId> = self
            .inner
            .state
            .peers
            .read()
            .values()
            .filter(|p| p.link.read().is_some())
            .map(|p| p.id)
            .collect();
        ids.sort_unstable();
        ids
    }

    /// Whether peer `id` has a live, authenticated connection now.
    pub fn is_connected(&self, id: NodeId) -> bool {
        self.inner.state.peers.read().get(&id).is_some_and(|p| p.link.read().is_some())
    }

    /// Messages dropped so far (peer not connected, queue full, too large, shut down).
    pub fn dropped(&self) -> u64 {
        self.inner.state.dropped.load(Ordering::Relaxed)
    }

    /// Changes where peer `id` is dialed; the dialer uses it from its next attempt, which
    /// starts at once if it was waiting. A live connection is kept. Returns `false` when
    /// `id` is not a configured peer.
    pub fn set_peer_address(&self, id: NodeId, address: SocketAddr) -> bool {
        match self.inner.state.peers.read().get(&id) {
            Some(peer) => {
                *peer.address.lock() = address;
                peer.address_changed.notify_one();
                true
            }
            None => false,
        }
    }

    /// Adds a peer at run time (a participant admitted by a ledger transaction): it may
    /// connect from now on, and is dialed when its id is larger than ours. Returns
    /// `false` (and changes nothing) when `peer.id` is this node's or already known.
    pub fn add_peer(&self, peer: PeerConfig) -> bool {
        let state = &self.inner.state;
        if peer.id == state.id {
            return false;
        }
        let added = {
            let mut peers = state.peers.write();
            if peers.contains_key(&peer.id) {
                return false;
            }
            let added = Arc::new(Peer {
                id: peer.id,
                public_key_bytes: peer.public_key.to_bytes(),
                public_key: peer.public_key,
                address: Mutex::new(peer.address),
                address_changed: Notify::new(),
                link: RwLock::new(None),
            });
            peers.insert(peer.id, added.clone());
            added
        };
        tracing::info!(node = state.id, peer = added.id, "p2p peer added");
        if added.id > state.id
            && let Some(runtime) = self.inner.runtime.lock().as_ref()
        {
            runtime.spawn(dial_loop(state.clone(), added));
        }
        true
    }

    /// Stops the listener, every connection and every dialer, and drops the runtime
    /// (waiting up to 2 s for its threads, except inside a tokio runtime context, where
    /// blocking is not allowed and the threads wind down in the background).
    /// Other clones of this transport stop too; their sends are dropped.
    pub fn shutdown(self) {
        self.inner.stop(true);
        tracing::info!(node = self.inner.state.id, "p2p transport shut down");
    }
}

/// Why a handshake failed.
#[derive(Debug, thiserror::Error)]
enum HandshakeError {
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
    #[error("timed out")]
    Timeout,
    #[error("handshake frame of {0} bytes exceeds the limit")]
    FrameTooLong(usize),
    #[error("malformed hello: {0}")]
    Malformed(&'static str),
    #[error("wrong protocol magic")]
    BadMagic,
    #[error("unsupported protocol version {0}")]
    BadVersion(u16),
    #[error("unknown node id {0}")]
    UnknownPeer(NodeId),
    #[error("node {0} dialed, but the node with the smaller id must dial")]
    WrongDirection(NodeId),
    #[error("dialed node {expected}, but node {found} answered")]
    UnexpectedPeer { expected: NodeId, found: NodeId },
    #[error("node {0} presented a public key other than its configured key")]
    WrongKey(NodeId),
    #[error("bad handshake signature from node {0}")]
    BadSignature(NodeId),
    #[error("TLS handshake failed: {0}")]
    Tls(io::Error),
}

/// The side of the connection this node is on.
#[derive(Clone, Copy)]
enum Role {
    /// We dialed the peer with this id.
    Dialer(NodeId),
    Acceptor,
}

/// A decoded hello.
struct Hello {
    id: NodeId,
    challenge: [u8; CHALLENGE_LEN],
    public_key: Vec<u8>,
}

fn encode_hello(id: NodeId, challenge: &[u8; CHALLENGE_LEN], public_key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(52 + public_key.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&PROTOCOL_VERSION.to_be_bytes());
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(challenge);
    out.extend_from_slice(&(public_key.len() as u16).to_be_bytes());
    out.extend_from_slice(public_key);
    out
}

fn decode_hello(bytes: &[u8]) -> Result<Hello, HandshakeError> {
    if bytes.len() < 10 {
        return Err(HandshakeError::Malformed("shorter than magic and version"));
    }
    if bytes[..8] != MAGIC {
        return Err(HandshakeError::BadMagic);
    }
    let version = u16::from_be_bytes([bytes[8], bytes[9]]);
    if version != PROTOCOL_VERSION {
        return Err(HandshakeError::BadVersion(version));
    }
    if bytes.len() < 52 {
        return Err(HandshakeError::Malformed("shorter than 52 bytes"));
    }
    let id = u64::from_be_bytes(bytes[10..18].try_into().expect("8 bytes"));
    let challenge: [u8; CHALLENGE_LEN] = bytes[18..50].try_into().expect("32 bytes");
    let key_len = usize::from(u16::from_be_bytes([bytes[50], bytes[51]]));
    if bytes.len() != 52 + key_len {
        return Err(HandshakeError::Malformed("public key length does not match the frame"));
    }
    Ok(Hello { id, challenge, public_key: bytes[52..].to_vec() })
}

/// The message a handshake signature covers (see the module docs); `exporter` is the TLS
/// session's exporter value when the connection runs over TLS, `None` on plain TCP.
pub fn handshake_signed_message(
    dialer: NodeId,
    acceptor: NodeId,
    dialer_challenge: &[u8; CHALLENGE_LEN],
    acceptor_challenge: &[u8; CHALLENGE_LEN],
    signer_role: u8,
    exporter: Option<&[u8; EXPORTER_LEN]>,
) -> Vec<u8> {
    let mut out =
        Vec::with_capacity(SIGNING_DOMAIN.len() + 16 + 2 * CHALLENGE_LEN + 1 + EXPORTER_LEN);
    out.extend_from_slice(SIGNING_DOMAIN);
    out.extend_from_slice(&dialer.to_be_bytes());
    out.extend_from_slice(&acceptor.to_be_bytes());
    out.extend_from_slice(dialer_challenge);
    out.extend_from_slice(acceptor_challenge);
    out.push(signer_role);
    if let Some(exporter) = exporter {
        out.extend_from_slice(exporter);
    }
    out
}

/// Opens TLS on a fresh TCP connection when the transport uses it; returns the stream
/// and the session's exporter value (what the handshake signatures bind to).
async fn open_stream(
    state: &State,
    tcp: TcpStream,
    dialing: bool,
) -> Result<(Stream, Option<[u8; EXPORTER_LEN]>), HandshakeError> {
    let Some(tls) = &state.tls else {
        return Ok((Either::Left(tcp), None));
    };
    let mut exporter = [0u8; EXPORTER_LEN];
    let stream = if dialing {
        let name = rustls::pki_types::ServerName::try_from(SERVER_NAME).expect("valid name");
        let stream = tls.connector.connect(name, tcp).await.map_err(HandshakeError::Tls)?;
        stream
            .get_ref()
            .1
            .export_keying_material(&mut exporter, EXPORTER_LABEL, None)
            .map_err(|e| HandshakeError::Tls(io::Error::other(e)))?;
        tokio_rustls::TlsStream::Client(stream)
    } else {
        let stream = tls.acceptor.accept(tcp).await.map_err(HandshakeError::Tls)?;
        stream
            .get_ref()
            .1
            .export_keying_material(&mut exporter, EXPORTER_LABEL, None)
            .map_err(|e| HandshakeError::Tls(io::Error::other(e)))?;
        tokio_rustls::TlsStream::Server(stream)
    };
    Ok((Either::Right(stream), Some(exporter)))
}

async fn write_handshake_frame(stream: &mut Stream, body: &[u8]) -> io::Result<()> {
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
    frame.extend_from_slice(body);
    stream.write_all(&frame).await?;
    stream.flush().await
}

/// Reads exactly one frame, so no byte after it is consumed.
async fn read_handshake_frame(stream: &mut Stream) -> Result<Vec<u8>, HandshakeError> {
    let len = stream.read_u32().await? as usize;
    if len > HANDSHAKE_MAX_FRAME {
        return Err(HandshakeError::FrameTooLong(len));
    }
    let mut body = vec![0; len];
    stream.read_exact(&mut body).await?;
    Ok(body)
}

/// Runs the handshake; returns the authenticated peer.
async fn handshake(
    state: &State,
    stream: &mut Stream,
    exporter: Option<&[u8; EXPORTER_LEN]>,
    role: Role,
) -> Result<Arc<Peer>, HandshakeError> {
    let challenge: [u8; CHALLENGE_LEN] = rand::random();
    write_handshake_frame(stream, &encode_hello(state.id, &challenge, &state.public_key_bytes))
        .await?;
    let hello = decode_hello(&read_handshake_frame(stream).await?)?;
    let peer =
        state.peers.read().get(&hello.id).cloned().ok_or(HandshakeError::UnknownPeer(hello.id))?;
    match role {
        Role::Dialer(expected) if hello.id != expected => {
            return Err(HandshakeError::UnexpectedPeer { expected, found: hello.id });
        }
        Role::Acceptor if hello.id > state.id => {
            return Err(HandshakeError::WrongDirection(hello.id));
        }
        _ => {}
    }
    if hello.public_key != peer.public_key_bytes {
        return Err(HandshakeError::WrongKey(hello.id));
    }
    let (dialer, acceptor, dialer_challenge, acceptor_challenge, ours, theirs) = match role {
        Role::Dialer(_) => {
            (state.id, peer.id, &challenge, &hello.challenge, ROLE_DIALER, ROLE_ACCEPTOR)
        }
        Role::Acceptor => {
            (peer.id, state.id, &hello.challenge, &challenge, ROLE_ACCEPTOR, ROLE_DIALER)
        }
    };
    let signed = |role| {
        handshake_signed_message(
            dialer,
            acceptor,
            dialer_challenge,
            acceptor_challenge,
            role,
            exporter,
        )
    };
    let signature = state.key.sign(&signed(ours));
    write_handshake_frame(stream, &signature.to_bytes()).await?;
    let auth = read_handshake_frame(stream).await?;
    Signature::from_bytes(&auth)
        .and_then(|signature| peer.public_key.verify(&signed(theirs), &signature))
        .map_err(|_| HandshakeError::BadSignature(peer.id))?;
    Ok(peer.clone())
}

/// Logs a failed handshake: protocol violations as warnings, plain I/O trouble (the other
/// side closed, typically because it rejected us and logged why) at debug level.
fn log_rejected(state: &State, remote: SocketAddr, error: &HandshakeError) {
    match error {
        HandshakeError::Io(_) => {
            tracing::debug!(node = state.id, %remote, %error, "p2p handshake failed");
        }
        _ => tracing::warn!(node = state.id, %remote, %error, "p2p handshake rejected"),
    }
}

/// Accepts connections until shutdown; each handshake runs on its own task.
async fn accept_loop(state: Arc<State>, listener: TcpListener) {
    loop {
        let accepted = tokio::select! {
            _ = state.cancel.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let (tcp, remote) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(node = state.id, %error, "p2p accept failed");
                tokio::time::sleep(BACKOFF_MIN).await;
                continue;
            }
        };
        let Ok(permit) = state.pending_handshakes.clone().try_acquire_owned() else {
            tracing::warn!(node = state.id, %remote, "p2p too many pending handshakes; closed");
            continue;
        };
        let state = state.clone();
        tokio::spawn(async move {
            let _ = tcp.set_nodelay(true);
            let attempt = async {
                let (mut stream, exporter) = open_stream(&state, tcp, false).await?;
                let peer =
                    handshake(&state, &mut stream, exporter.as_ref(), Role::Acceptor).await?;
                Ok::<_, HandshakeError>((peer, stream))
            };
            let result = tokio::select! {
                _ = state.cancel.cancelled() => return,
                result = tokio::time::timeout(state.handshake_timeout, attempt) =>
                    result.unwrap_or(Err(HandshakeError::Timeout)),
            };
            drop(permit);
            match result {
                Ok((peer, stream)) => run_connection(&state, &peer, stream, remote).await,
                Err(error) => log_rejected(&state, remote, &error),
            }
        });
    }
}

/// Reconnect delays: exponential with jitter.
struct Backoff {
    next: Duration,
}

impl Backoff {
    fn new() -> Self {
        Backoff { next: BACKOFF_MIN }
    }

    fn reset(&mut self) {
        self.next = BACKOFF_MIN;
    }

    /// A delay drawn uniformly from `[d/2, d]`, then `d` doubles up to the cap.
    fn next_delay(&mut self) -> Duration {
        let base = self.next;
        self.next = (base * 2).min(BACKOFF_MAX);
        let micros = base.as_micros() as u64;
        Duration::from_micros(rand::random_range(micros / 2..=micros))
    }
}

/// Dials `peer` until shutdown, keeping one connection up.
async fn dial_loop(state: Arc<State>, peer: Arc<Peer>) {
    let mut backoff = Backoff::new();
    loop {
        let address = *peer.address.lock();
        let attempt = async {
            let tcp = TcpStream::connect(address).await?;
            tcp.set_nodelay(true)?;
            let (mut stream, exporter) = open_stream(&state, tcp, true).await?;
            handshake(&state, &mut stream, exporter.as_ref(), Role::Dialer(peer.id)).await?;
            Ok::<_, HandshakeError>(stream)
        };
        let result = tokio::select! {
            _ = state.cancel.cancelled() => return,
            result = tokio::time::timeout(state.handshake_timeout, attempt) =>
                result.unwrap_or(Err(HandshakeError::Timeout)),
        };
        match result {
            Ok(stream) => {
                backoff.reset();
                run_connection(&state, &peer, stream, address).await;
            }
            Err(error) => log_rejected(&state, address, &error),
        }
        let delay = backoff.next_delay();
        tokio::select! {
            _ = state.cancel.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
            _ = peer.address_changed.notified() => backoff.reset(),
        }
    }
}

/// Closes a connection and removes its link (when still current) when dropped, so a
/// panic cannot leave a dead link behind.
struct ConnectionGuard<'a> {
    peer: &'a Peer,
    generation: u64,
    close: CancellationToken,
}

impl Drop for ConnectionGuard<'_> {
    fn drop(&mut self) {
        self.close.cancel();
        let mut link = self.peer.link.write();
        if link.as_ref().is_some_and(|l| l.generation == self.generation) {
            *link = None;
        }
    }
}

/// Serves an authenticated connection until it fails, is superseded or the transport
/// shuts down.
async fn run_connection(state: &Arc<State>, peer: &Arc<Peer>, stream: Stream, remote: SocketAddr) {
    if state.cancel.is_cancelled() {
        return;
    }
    let generation = state.next_generation.fetch_add(1, Ordering::Relaxed);
    let close = state.cancel.child_token();
    let (tx, rx) = mpsc::channel(state.queue_len);
    let old =
        peer.link.write().replace(Link { generation, tx, _close: close.clone().drop_guard() });
    let superseded = old.is_some();
    drop(old);
    let _guard = ConnectionGuard { peer, generation, close: close.clone() };
    tracing::info!(node = state.id, peer = peer.id, %remote, superseded, "p2p peer connected");

    let (read_half, write_half) = tokio::io::split(stream);
    let writer = tokio::spawn(write_loop(write_half, rx, close.clone(), state.keepalive_interval));
    let reason = tokio::select! {
        _ = close.cancelled() => "closed".to_string(),
        reason = read_loop(state, peer.id, read_half) => reason,
    };
    close.cancel();
    writer.abort();
    tracing::info!(node = state.id, peer = peer.id, %reason, "p2p peer disconnected");
}

/// Delivers inbound frames until the connection ends; returns why it ended.
async fn read_loop(state: &State, from: NodeId, read_half: ReadHalf<Stream>) -> String {
    let codec = LengthDelimitedCodec::builder().max_frame_length(state.max_frame_bytes).new_codec();
    let mut frames = FramedRead::with_capacity(read_half, codec, READ_BUFFER);
    loop {
        let frame = match tokio::time::timeout(state.idle_timeout, frames.next()).await {
            Err(_) => return "idle timeout".into(),
            Ok(None) => return "closed by peer".into(),
            Ok(Some(Err(error))) => return format!("read error: {error}"),
            Ok(Some(Ok(frame))) => frame,
        };
        if frame.is_empty() {
            continue; // keepalive
        }
        if frame.len() < FRAME_HEADER_LEN {
            tracing::warn!(node = state.id, peer = from, len = frame.len(), "p2p short frame");
            return "short frame".into();
        }
        let mut payload = frame.freeze();
        let header = payload.split_to(FRAME_HEADER_LEN);
        let envelope = Envelope {
            from,
            ledger: header[..32].try_into().expect("32 bytes"),
            kind: header[32],
            payload,
        };
        if catch_unwind(AssertUnwindSafe(|| (state.inbound)(envelope))).is_err() {
            tracing::error!(node = state.id, peer = from, "p2p inbound callback panicked");
        }
    }
}

/// A frame to write.
enum Frame {
    Data(Outbound),
    Keepalive,
}

/// Encodes [`Frame`]s exactly as `LengthDelimitedCodec` frames them, without first
/// copying the payload into a frame buffer.
struct FrameEncoder;

impl Encoder<Frame> for FrameEncoder {
    type Error = io::Error;

    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> io::Result<()> {
        match frame {
            Frame::Keepalive => dst.put_u32(0),
            Frame::Data(message) => {
                // `send` checked the length against max_frame_bytes (itself <= u32::MAX).
                let len = FRAME_HEADER_LEN + message.payload.len();
                dst.reserve(4 + len);
                dst.put_u32(len as u32);
                dst.put_slice(&message.ledger);
                dst.put_u8(message.kind);
                dst.put_slice(&message.payload);
            }
        }
        Ok(())
    }
}

/// Writes queued messages in batches (one flush per batch) and keepalives when idle.
/// Ends the connection when it stops.
async fn write_loop(
    write_half: WriteHalf<Stream>,
    mut rx: mpsc::Receiver<Outbound>,
    close: CancellationToken,
    keepalive_interval: Duration,
) {
    let _close = close.clone().drop_guard();
    let mut sink = FramedWrite::new(write_half, FrameEncoder);
    sink.set_backpressure_boundary(WRITE_BUFFER);
    let mut keepalive = tokio::time::interval(keepalive_interval);
    keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    keepalive.reset();
    let mut batch = Vec::with_capacity(WRITE_BATCH);
    loop {
        let result = tokio::select! {
            biased;
            _ = close.cancelled() => return,
            received = rx.recv_many(&mut batch, WRITE_BATCH) => {
                if received == 0 {
                    return; // link replaced or removed
                }
                write_batch(&mut sink, &mut batch).await
            }
            _ = keepalive.tick() => sink.send(Frame::Keepalive).await,
        };
        if result.is_err() {
            return;
        }
        keepalive.reset();
    }
}

async fn write_batch(
    sink: &mut FramedWrite<WriteHalf<Stream>, FrameEncoder>,
    batch: &mut Vec<Outbound>,
) -> io::Result<()> {
    for message in batch.drain(..) {
        sink.feed(Frame::Data(message)).await?;
    }
    sink.flush().await
}
