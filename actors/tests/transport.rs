//! Node-to-node transport tests, all on 127.0.0.1 and bounded in time.
//!
//! Raw-socket tests speak the handshake by hand from the layout in the module docs, so
//! they check the documented wire format as well as the rejections.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use actors::p2p_tls::{EXPORTER_LABEL, P2pTls, SERVER_NAME};
use actors::transport::{Envelope, NodeId, PeerConfig, Transport, TransportConfig};
use bytes::Bytes;
use crypto_parallel::{PrivateKey, PublicKey, Signature, SignatureAlgorithm};

const LEDGER_A: [u8; 32] = [0xAA; 32];
const LEDGER_B: [u8; 32] = [0xBB; 32];

fn key() -> PrivateKey {
    PrivateKey::generate(SignatureAlgorithm::Sm2)
}

fn any_port() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// Nothing listens there; dialing it fails at once.
fn nowhere() -> SocketAddr {
    "127.0.0.1:1".parse().unwrap()
}

fn peer(id: NodeId, key: &PrivateKey, address: SocketAddr) -> PeerConfig {
    PeerConfig { id, public_key: key.public_key(), address }
}

fn start_with(config: TransportConfig) -> (Transport, Receiver<Envelope>) {
    let (tx, rx) = channel();
    let transport = Transport::start(
        config,
        Arc::new(move |envelope| {
            let _ = tx.send(envelope);
        }),
    )
    .expect("transport starts");
    (transport, rx)
}

fn start(
    id: NodeId,
    key: &PrivateKey,
    listen: SocketAddr,
    peers: Vec<PeerConfig>,
) -> (Transport, Receiver<Envelope>) {
    start_with(TransportConfig::new(id, key.clone(), listen, peers))
}

/// Polls `condition` every 10 ms until it holds or `limit` passes.
fn wait_until(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn wait_connected(transport: &Transport, expected: &[NodeId]) {
    assert!(
        wait_until(Duration::from_secs(10), || transport.connected() == expected),
        "node {} connected to {:?}, expected {expected:?}",
        transport.id(),
        transport.connected()
    );
}

fn recv(rx: &Receiver<Envelope>) -> Envelope {
    rx.recv_timeout(Duration::from_secs(10)).expect("message arrives")
}

/// Sends one message and checks it arrives intact.
fn round_trip(from: &Transport, to: &Transport, to_rx: &Receiver<Envelope>, text: &'static str) {
    from.send(to.id(), LEDGER_A, 3, Bytes::from_static(text.as_bytes()));
    let envelope = recv(to_rx);
    assert_eq!(
        envelope,
        Envelope {
            from: from.id(),
            ledger: LEDGER_A,
            kind: 3,
            payload: Bytes::from_static(text.as_bytes())
        }
    );
}

#[test]
fn three_nodes_fully_connected_deliver_in_order_per_pair() {
    const N: u32 = 300;
    let keys = [key(), key(), key()];
    let ids: [NodeId; 3] = [1, 2, 3];
    let nodes: Vec<(Transport, Receiver<Envelope>)> = (0..3)
        .map(|i| {
            let peers = (0..3).filter(|&j| j != i).map(|j| peer(ids[j], &keys[j], nowhere()));
            start(ids[i], &keys[i], any_port(), peers.collect())
        })
        .collect();
    for (i, (node, _)) in nodes.iter().enumerate() {
        for j in (0..3).filter(|&j| j != i) {
            assert!(node.set_peer_address(ids[j], nodes[j].0.local_addr()));
        }
    }
    for (i, (node, _)) in nodes.iter().enumerate() {
        let others: Vec<NodeId> = (0..3).filter(|&j| j != i).map(|j| ids[j]).collect();
        wait_connected(node, &others);
    }

    // Payload: sender id, receiver id, sequence number per (sender, receiver) pair.
    for seq in 0..N {
        for (i, (node, _)) in nodes.iter().enumerate() {
            for j in (0..3).filter(|&j| j != i) {
                for (l, ledger) in [LEDGER_A, LEDGER_B].into_iter().enumerate() {
                    let pair_seq = seq * 2 + l as u32;
                    let mut payload = Vec::new();
                    payload.extend_from_slice(&ids[i].to_be_bytes());
                    payload.extend_from_slice(&ids[j].to_be_bytes());
                    payload.extend_from_slice(&pair_seq.to_be_bytes());
                    node.send(ids[j], ledger, 10 + l as u8, payload.into());
                }
            }
        }
    }

    for (i, (node, rx)) in nodes.iter().enumerate() {
        let mut next_seq = std::collections::HashMap::new();
        for _ in 0..(2 * 2 * N) {
            let envelope = recv(rx);
            let p = &envelope.payload;
            let sender = u64::from_be_bytes(p[0..8].try_into().unwrap());
            let receiver = u64::from_be_bytes(p[8..16].try_into().unwrap());
            let pair_seq = u32::from_be_bytes(p[16..20].try_into().unwrap());
            assert_eq!(envelope.from, sender, "from is the authenticated sender");
            assert_eq!(receiver, ids[i]);
            let l = (pair_seq % 2) as usize;
            assert_eq!(envelope.ledger, [LEDGER_A, LEDGER_B][l]);
            assert_eq!(envelope.kind, 10 + l as u8);
            let expected = next_seq.entry(sender).or_insert(0u32);
            assert_eq!(pair_seq, *expected, "in order from node {sender} to node {}", ids[i]);
            *expected += 1;
        }
        assert!(rx.recv_timeout(Duration::from_millis(100)).is_err(), "no extra messages");
        assert_eq!(node.dropped(), 0);
    }
    for (node, _) in nodes {
        node.shutdown();
    }
}

#[test]
fn throughput_smoke_100k_messages() {
    const TOTAL: u64 = 100_000;
    let (k1, k2) = (key(), key());
    let received = Arc::new(AtomicU64::new(0));
    let out_of_order = Arc::new(AtomicBool::new(false));
    let n2 = {
        let (received, out_of_order) = (received.clone(), out_of_order.clone());
        Transport::start(
            TransportConfig::new(2, k2.clone(), any_port(), vec![peer(1, &k1, nowhere())]),
            Arc::new(move |envelope: Envelope| {
                let seq = u64::from_be_bytes(envelope.payload[..8].try_into().unwrap());
                if received.fetch_add(1, Ordering::Relaxed) != seq {
                    out_of_order.store(true, Ordering::Relaxed);
                }
            }),
        )
        .unwrap()
    };
    let (n1, _rx1) = start(1, &k1, any_port(), vec![peer(2, &k2, n2.local_addr())]);
    wait_connected(&n1, &[2]);
    wait_connected(&n2, &[1]);

    let started = Instant::now();
    let deadline = Duration::from_secs(20);
    let payload = Bytes::from_static(&[7; 24]);
    for seq in 0..TOTAL {
        // Keep well under the 64k queue: the test checks delivery, not queue overflow.
        if seq % 10_000 == 0 {
            assert!(wait_until(deadline, || received.load(Ordering::Relaxed) + 30_000 >= seq));
        }
        let mut message = seq.to_be_bytes().to_vec();
        message.extend_from_slice(&payload);
        n1.send(2, LEDGER_A, 1, message.into());
    }
    assert!(
        wait_until(deadline, || received.load(Ordering::Relaxed) == TOTAL),
        "received {} of {TOTAL}",
        received.load(Ordering::Relaxed)
    );
    eprintln!("100k messages 1 -> 2 in {:?}", started.elapsed());
    assert!(!out_of_order.load(Ordering::Relaxed), "delivered in order");
    assert_eq!(n1.dropped(), 0);
    n1.shutdown();
    n2.shutdown();
}

#[test]
fn node_with_wrong_key_for_its_id_is_rejected() {
    let (k1, k2, k3, wrong) = (key(), key(), key(), key());
    let (n2, rx2) =
        start(2, &k2, any_port(), vec![peer(1, &k1, nowhere()), peer(3, &k3, nowhere())]);
    // Claims id 1 (so it dials node 2) but holds the wrong key.
    let (fake1, fake1_rx) = start(1, &wrong, any_port(), vec![peer(2, &k2, n2.local_addr())]);
    // Claims id 3 (so node 2 dials it) but holds the wrong key.
    let (fake3, fake3_rx) = start(3, &wrong, any_port(), vec![peer(2, &k2, nowhere())]);
    n2.set_peer_address(3, fake3.local_addr());

    std::thread::sleep(Duration::from_millis(1500)); // many dial attempts
    for node in [&n2, &fake1, &fake3] {
        assert!(node.connected().is_empty(), "node {} connected", node.id());
    }
    fake1.send(2, LEDGER_A, 1, Bytes::from_static(b"forged"));
    fake3.send(2, LEDGER_A, 1, Bytes::from_static(b"forged"));
    n2.send(1, LEDGER_A, 1, Bytes::from_static(b"secret"));
    n2.send(3, LEDGER_A, 1, Bytes::from_static(b"secret"));
    assert_eq!((fake1.dropped(), fake3.dropped(), n2.dropped()), (1, 1, 2));
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        rx2.try_recv().is_err() && fake1_rx.try_recv().is_err() && fake3_rx.try_recv().is_err()
    );
    fake1.shutdown();
    fake3.shutdown();

    // The real node 1 still gets in.
    let (n1, rx1) = start(1, &k1, any_port(), vec![peer(2, &k2, n2.local_addr())]);
    wait_connected(&n1, &[2]);
    wait_connected(&n2, &[1]);
    round_trip(&n1, &n2, &rx2, "hello");
    round_trip(&n2, &n1, &rx1, "hello back");
    n1.shutdown();
    n2.shutdown();
}

#[test]
fn unknown_id_is_rejected() {
    let (k0, k1, k2) = (key(), key(), key());
    let (n2, rx2) = start(2, &k2, any_port(), vec![peer(1, &k1, nowhere())]);
    // Node 0 is not in node 2's configuration.
    let (n0, _rx0) = start(0, &k0, any_port(), vec![peer(2, &k2, n2.local_addr())]);
    std::thread::sleep(Duration::from_millis(1000));
    assert!(n0.connected().is_empty());
    assert!(n2.connected().is_empty());
    n0.send(2, LEDGER_A, 1, Bytes::from_static(b"let me in"));
    assert_eq!(n0.dropped(), 1);
    std::thread::sleep(Duration::from_millis(100));
    assert!(rx2.try_recv().is_err());
    n0.shutdown();
    n2.shutdown();
}

// ---- A hand-written client speaking the documented wire format. -------------------

/// A hand-written client's connection: plain TCP, or TLS over TCP (rustls, blocking).
trait Conn: Read + Write + Send {}
impl<T: Read + Write + Send> Conn for T {}
type RawStream = Box<dyn Conn>;

fn tcp(address: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    stream
}

/// A plain TCP connection.
fn connect(address: SocketAddr) -> RawStream {
    Box::new(tcp(address))
}

/// A TLS connection as a dialer opens it, with the session's exporter value.
fn connect_tls(address: SocketAddr) -> (RawStream, [u8; 32]) {
    let mut sock = tcp(address);
    let name = rustls::pki_types::ServerName::try_from(SERVER_NAME).unwrap();
    let mut tls = rustls::ClientConnection::new(Arc::new(P2pTls::client_config()), name).unwrap();
    while tls.is_handshaking() {
        tls.complete_io(&mut sock).expect("TLS handshake");
    }
    let mut exporter = [0; 32];
    tls.export_keying_material(&mut exporter, EXPORTER_LABEL, None).unwrap();
    (Box::new(rustls::StreamOwned::new(tls, sock)), exporter)
}

fn write_frame(stream: &mut RawStream, body: &[u8]) {
    let mut frame = (body.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(body);
    stream.write_all(&frame).unwrap();
    stream.flush().unwrap();
}

fn read_frame(stream: &mut RawStream) -> io::Result<Vec<u8>> {
    let mut len = [0; 4];
    stream.read_exact(&mut len)?;
    let mut body = vec![0; u32::from_be_bytes(len) as usize];
    stream.read_exact(&mut body)?;
    Ok(body)
}

/// Reads the next non-keepalive frame.
fn read_data_frame(stream: &mut RawStream) -> Vec<u8> {
    loop {
        let frame = read_frame(stream).expect("frame");
        if !frame.is_empty() {
            return frame;
        }
    }
}

/// Reads (and ignores) frames until the other side closes; panics if it does not.
fn expect_closed(stream: &mut RawStream) {
    loop {
        match read_frame(stream) {
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                panic!("connection was not closed")
            }
            Err(_) => return,
        }
    }
}

fn hello(id: NodeId, challenge: &[u8; 32], public_key: &PublicKey) -> Vec<u8> {
    let key = public_key.to_bytes();
    let mut out = b"POLYP2P\0".to_vec();
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(challenge);
    out.extend_from_slice(&(key.len() as u16).to_be_bytes());
    out.extend_from_slice(&key);
    out
}

/// Parses a hello: (id, challenge, public key bytes).
fn parse_hello(body: &[u8]) -> (NodeId, [u8; 32], Vec<u8>) {
    assert_eq!(&body[..8], b"POLYP2P\0");
    assert_eq!(u16::from_be_bytes([body[8], body[9]]), 1);
    let id = u64::from_be_bytes(body[10..18].try_into().unwrap());
    let challenge = body[18..50].try_into().unwrap();
    let len = u16::from_be_bytes([body[50], body[51]]) as usize;
    assert_eq!(body.len(), 52 + len);
    (id, challenge, body[52..].to_vec())
}

fn signed_message(
    dialer: NodeId,
    acceptor: NodeId,
    dc: &[u8; 32],
    ac: &[u8; 32],
    role: u8,
    exporter: Option<&[u8; 32]>,
) -> Vec<u8> {
    let mut out = b"polyledger-p2p-v1".to_vec();
    out.extend_from_slice(&dialer.to_be_bytes());
    out.extend_from_slice(&acceptor.to_be_bytes());
    out.extend_from_slice(dc);
    out.extend_from_slice(ac);
    out.push(role);
    if let Some(exporter) = exporter {
        out.extend_from_slice(exporter);
    }
    out
}

/// A raw dialer's view of a handshake: its stream, and the acceptor's challenge.
struct RawSession {
    stream: RawStream,
    acceptor_challenge: [u8; 32],
    /// The TLS session's exporter value (`None` on plain TCP).
    exporter: Option<[u8; 32]>,
}

impl RawSession {
    /// The message the dialer signs in this session.
    fn dialer_message(&self, dialer: NodeId, acceptor: NodeId, challenge: &[u8; 32]) -> Vec<u8> {
        signed_message(
            dialer,
            acceptor,
            challenge,
            &self.acceptor_challenge,
            0x01,
            self.exporter.as_ref(),
        )
    }
}

/// Dials `address` as node `id`, sends a hello with `claimed_key`, checks the acceptor's
/// hello and auth (it must be node `acceptor` holding `acceptor_key`), and returns before
/// sending our auth.
fn raw_dial(
    address: SocketAddr,
    tls: bool,
    id: NodeId,
    challenge: &[u8; 32],
    claimed_key: &PublicKey,
    acceptor: NodeId,
    acceptor_key: &PublicKey,
) -> RawSession {
    let (mut stream, exporter) = if tls {
        let (stream, exporter) = connect_tls(address);
        (stream, Some(exporter))
    } else {
        (connect(address), None)
    };
    write_frame(&mut stream, &hello(id, challenge, claimed_key));
    let (their_id, their_challenge, their_key) = parse_hello(&read_frame(&mut stream).unwrap());
    assert_eq!(their_id, acceptor);
    assert_eq!(their_key, acceptor_key.to_bytes());
    let signature = Signature::from_bytes(&read_frame(&mut stream).unwrap()).unwrap();
    acceptor_key
        .verify(
            &signed_message(id, acceptor, challenge, &their_challenge, 0x02, exporter.as_ref()),
            &signature,
        )
        .expect("acceptor's signature verifies over the documented message");
    RawSession { stream, acceptor_challenge: their_challenge, exporter }
}

#[test]
fn raw_handshake_matches_the_documented_format_and_replay_is_rejected() {
    raw_handshake(false);
}

#[test]
fn raw_handshake_over_tls_is_bound_to_the_session() {
    raw_handshake(true);
}

fn raw_handshake(tls: bool) {
    let (k1, k2, other) = (key(), key(), key());
    let mut config = TransportConfig::new(2, k2.clone(), any_port(), vec![peer(1, &k1, nowhere())]);
    config.tls = tls;
    let (n2, rx2) = start_with(config);
    let address = n2.local_addr();

    // An honest handshake as node 1, by hand.
    let c1 = [0x11; 32];
    let mut a = raw_dial(address, tls, 1, &c1, &k1.public_key(), 2, &k2.public_key());
    let auth = k1.sign(&a.dialer_message(1, 2, &c1)).to_bytes();
    write_frame(&mut a.stream, &auth);
    wait_connected(&n2, &[1]);

    // A data frame by hand: ledger | kind | payload.
    let mut frame = LEDGER_B.to_vec();
    frame.push(42);
    frame.extend_from_slice(b"raw payload");
    write_frame(&mut a.stream, &frame);
    let envelope = recv(&rx2);
    assert_eq!(
        envelope,
        Envelope {
            from: 1,
            ledger: LEDGER_B,
            kind: 42,
            payload: Bytes::from_static(b"raw payload")
        }
    );
    // And the other direction.
    n2.send(1, LEDGER_A, 9, Bytes::from_static(b"to node 1"));
    let frame = read_data_frame(&mut a.stream);
    assert_eq!(&frame[..32], &LEDGER_A);
    assert_eq!(frame[32], 9);
    assert_eq!(&frame[33..], b"to node 1");

    // Replay: same hello, the recorded auth; the acceptor's fresh challenge defeats it.
    let mut replay = raw_dial(address, tls, 1, &c1, &k1.public_key(), 2, &k2.public_key());
    assert_ne!(replay.acceptor_challenge, a.acceptor_challenge, "fresh challenge");
    write_frame(&mut replay.stream, &auth);
    expect_closed(&mut replay.stream);

    // Right public key, signature by another key.
    let mut forged = raw_dial(address, tls, 1, &[0x22; 32], &k1.public_key(), 2, &k2.public_key());
    let bad = other.sign(&forged.dialer_message(1, 2, &[0x22; 32])).to_bytes();
    write_frame(&mut forged.stream, &bad);
    expect_closed(&mut forged.stream);

    // A signature made for the acceptor's role is not accepted from the dialer.
    let mut reflected =
        raw_dial(address, tls, 1, &[0x33; 32], &k1.public_key(), 2, &k2.public_key());
    let wrong_role = k1
        .sign(&signed_message(
            1,
            2,
            &[0x33; 32],
            &reflected.acceptor_challenge,
            0x02,
            reflected.exporter.as_ref(),
        ))
        .to_bytes();
    write_frame(&mut reflected.stream, &wrong_role);
    expect_closed(&mut reflected.stream);

    if tls {
        // Over TLS the signature must cover this session's exporter: one made without it
        // (as on plain TCP), or over another session's (a relaying man in the middle
        // holds two sessions), is rejected.
        let c = [0x66; 32];
        let mut unbound = raw_dial(address, true, 1, &c, &k1.public_key(), 2, &k2.public_key());
        let plain =
            k1.sign(&signed_message(1, 2, &c, &unbound.acceptor_challenge, 0x01, None)).to_bytes();
        write_frame(&mut unbound.stream, &plain);
        expect_closed(&mut unbound.stream);

        let mut relayed = raw_dial(address, true, 1, &c, &k1.public_key(), 2, &k2.public_key());
        let elsewhere =
            signed_message(1, 2, &c, &relayed.acceptor_challenge, 0x01, Some(&[0x77; 32]));
        write_frame(&mut relayed.stream, &k1.sign(&elsewhere).to_bytes());
        expect_closed(&mut relayed.stream);
    }

    // The rejected attempts left the authenticated connection alone.
    assert_eq!(n2.connected(), vec![1]);
    n2.send(1, LEDGER_A, 9, Bytes::from_static(b"still here"));
    assert_eq!(&read_data_frame(&mut a.stream)[33..], b"still here");

    // A new authenticated connection from node 1 supersedes the old one.
    let c1b = [0x44; 32];
    let mut b = raw_dial(address, tls, 1, &c1b, &k1.public_key(), 2, &k2.public_key());
    let auth_b = k1.sign(&b.dialer_message(1, 2, &c1b)).to_bytes();
    write_frame(&mut b.stream, &auth_b);
    expect_closed(&mut a.stream);
    wait_connected(&n2, &[1]);
    n2.send(1, LEDGER_A, 9, Bytes::from_static(b"new connection"));
    assert_eq!(&read_data_frame(&mut b.stream)[33..], b"new connection");
    n2.shutdown();
}

#[test]
fn garbage_and_bad_hellos_do_not_hurt_the_listener() {
    let (k1, k2, k3) = (key(), key(), key());
    let mut config = TransportConfig::new(
        2,
        k2.clone(),
        any_port(),
        vec![peer(1, &k1, nowhere()), peer(3, &k3, nowhere())],
    );
    // The hellos are checked on plain TCP; TLS ports refuse them earlier (see
    // `plaintext_to_a_tls_port_is_refused`).
    config.tls = false;
    config.handshake_timeout = Duration::from_millis(500);
    let (n2, rx2) = start_with(config);
    let address = n2.local_addr();

    // Random bytes.
    let mut garbage = connect(address);
    let noise: Vec<u8> =
        (0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    garbage.write_all(&noise).unwrap();
    expect_closed(&mut garbage);

    // A 4 GiB length prefix.
    let mut huge = connect(address);
    huge.write_all(&[0xFF; 8]).unwrap();
    expect_closed(&mut huge);

    // Wrong magic; wrong version.
    let mut bad_magic = hello(1, &[1; 32], &k1.public_key());
    bad_magic[0] ^= 0xFF;
    let mut bad_version = hello(1, &[1; 32], &k1.public_key());
    bad_version[9] = 2;
    for body in [bad_magic, bad_version] {
        let mut stream = connect(address);
        write_frame(&mut stream, &body);
        expect_closed(&mut stream);
    }

    // A configured peer with the larger id must not dial.
    let mut wrong_direction = connect(address);
    write_frame(&mut wrong_direction, &hello(3, &[1; 32], &k3.public_key()));
    expect_closed(&mut wrong_direction);

    // Silence: closed after the handshake timeout.
    let started = Instant::now();
    let mut silent = connect(address);
    expect_closed(&mut silent);
    assert!(started.elapsed() < Duration::from_secs(4));

    // A good peer still connects, and traffic flows.
    let mut good = TransportConfig::new(1, k1.clone(), any_port(), vec![peer(2, &k2, address)]);
    good.tls = false;
    let (n1, rx1) = start_with(good);
    wait_connected(&n1, &[2]);
    wait_connected(&n2, &[1]);
    round_trip(&n1, &n2, &rx2, "after the garbage");
    round_trip(&n2, &n1, &rx1, "still fine");
    n1.shutdown();
    n2.shutdown();
}

#[test]
fn idle_connection_is_closed() {
    let (k1, k2) = (key(), key());
    let mut config = TransportConfig::new(2, k2.clone(), any_port(), vec![peer(1, &k1, nowhere())]);
    config.keepalive_interval = Duration::from_millis(100);
    config.idle_timeout = Duration::from_millis(500);
    let (n2, _rx2) = start_with(config);

    // Authenticates by hand, then never sends a frame (not even a keepalive).
    let c1 = [0x55; 32];
    let mut session =
        raw_dial(n2.local_addr(), true, 1, &c1, &k1.public_key(), 2, &k2.public_key());
    let auth = k1.sign(&session.dialer_message(1, 2, &c1));
    write_frame(&mut session.stream, &auth.to_bytes());
    wait_connected(&n2, &[1]);
    // Node 2 keeps sending keepalives (empty frames) while it waits.
    assert!(read_frame(&mut session.stream).unwrap().is_empty());
    expect_closed(&mut session.stream);
    wait_connected(&n2, &[]);
    n2.shutdown();
}

#[test]
fn traffic_resumes_after_either_node_restarts() {
    let (k1, k2) = (key(), key());
    let (n2, rx2) = start(2, &k2, any_port(), vec![peer(1, &k1, nowhere())]);
    let address2 = n2.local_addr();
    let (n1, rx1) = start(1, &k1, any_port(), vec![peer(2, &k2, address2)]);
    wait_connected(&n1, &[2]);
    wait_connected(&n2, &[1]);
    round_trip(&n1, &n2, &rx2, "before");
    round_trip(&n2, &n1, &rx1, "before");

    // Restart node 2 (the acceptor) on the same address.
    n2.shutdown();
    wait_connected(&n1, &[]);
    let (n2, rx2) = start(2, &k2, address2, vec![peer(1, &k1, nowhere())]);
    wait_connected(&n1, &[2]);
    wait_connected(&n2, &[1]);
    round_trip(&n1, &n2, &rx2, "after node 2 restarted");
    round_trip(&n2, &n1, &rx1, "after node 2 restarted");

    // Restart node 1 (the dialer).
    n1.shutdown();
    wait_connected(&n2, &[]);
    let (n1, rx1) = start(1, &k1, any_port(), vec![peer(2, &k2, address2)]);
    wait_connected(&n1, &[2]);
    wait_connected(&n2, &[1]);
    round_trip(&n1, &n2, &rx2, "after node 1 restarted");
    round_trip(&n2, &n1, &rx1, "after node 1 restarted");
    n1.shutdown();
    n2.shutdown();
}

#[test]
fn send_to_disconnected_peer_drops_without_blocking() {
    let (k1, k2) = (key(), key());
    let mut config = TransportConfig::new(1, k1, any_port(), vec![peer(2, &k2, nowhere())]);
    config.max_frame_bytes = 1024;
    let (n1, _rx1) = start_with(config);
    let started = Instant::now();
    for i in 0..10_000u32 {
        n1.send(2, LEDGER_A, 1, Bytes::copy_from_slice(&i.to_be_bytes()));
    }
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
    assert_eq!(n1.dropped(), 10_000);

    n1.send(99, LEDGER_A, 1, Bytes::new()); // unknown peer
    n1.send(1, LEDGER_A, 1, Bytes::new()); // ourselves
    n1.send(2, LEDGER_A, 1, Bytes::from(vec![0; 2000])); // larger than a frame
    assert_eq!(n1.dropped(), 10_003);

    let clone = n1.clone();
    n1.shutdown();
    clone.send(2, LEDGER_A, 1, Bytes::new()); // after shutdown
    assert_eq!(clone.dropped(), 10_004);
}

#[test]
fn start_reports_address_in_use_and_bad_config() {
    let (k1, k2) = (key(), key());
    let (n1, _rx1) = start(1, &k1, any_port(), vec![]);
    let taken = TransportConfig::new(2, k2.clone(), n1.local_addr(), vec![]);
    let error = Transport::start(taken.clone(), Arc::new(|_| {})).unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::AddrInUse);
    // The same from inside a runtime (a node starting under actix): an error, not a
    // panic from dropping the transport's own runtime there.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let error = runtime.block_on(async { Transport::start(taken, Arc::new(|_| {})).unwrap_err() });
    assert_eq!(error.kind(), io::ErrorKind::AddrInUse);

    let own_id = TransportConfig::new(2, k2.clone(), any_port(), vec![peer(2, &k2, nowhere())]);
    assert!(Transport::start(own_id, Arc::new(|_| {})).is_err());
    let mut no_queue = TransportConfig::new(2, k2, any_port(), vec![]);
    no_queue.queue_len = 0;
    assert!(Transport::start(no_queue, Arc::new(|_| {})).is_err());
    n1.shutdown();
}

#[test]
fn start_and_shutdown_inside_a_tokio_runtime() {
    let (k1, k2) = (key(), key());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let (n2, rx2) = start(2, &k2, any_port(), vec![peer(1, &k1, nowhere())]);
        let (n1, _rx1) = start(1, &k1, any_port(), vec![peer(2, &k2, n2.local_addr())]);
        let deadline = Instant::now() + Duration::from_secs(10);
        while n1.connected() != [2] || n2.connected() != [1] {
            assert!(Instant::now() < deadline, "connects");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        n1.send(2, LEDGER_A, 5, Bytes::from_static(b"from inside"));
        let deadline = Instant::now() + Duration::from_secs(10);
        let envelope = loop {
            if let Ok(envelope) = rx2.try_recv() {
                break envelope;
            }
            assert!(Instant::now() < deadline, "arrives");
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        assert_eq!(envelope.payload, Bytes::from_static(b"from inside"));
        n1.shutdown(); // inside an async context: must not panic
        drop(n2); // dropping the last handle stops it too
    });
}

#[test]
fn plaintext_to_a_tls_port_is_refused() {
    let (k1, k2) = (key(), key());
    let (n2, rx2) = start(2, &k2, any_port(), vec![peer(1, &k1, nowhere())]);
    let address = n2.local_addr();

    // A well-formed plaintext hello is not a TLS ClientHello: closed at once.
    let mut raw = connect(address);
    write_frame(&mut raw, &hello(1, &[1; 32], &k1.public_key()));
    expect_closed(&mut raw);

    // A node with the right key but TLS off never gets a connection.
    let mut plain = TransportConfig::new(1, k1.clone(), any_port(), vec![peer(2, &k2, address)]);
    plain.tls = false;
    let (n1, _rx1) = start_with(plain);
    assert!(!wait_until(Duration::from_millis(1500), || n1.is_connected(2) || n2.is_connected(1)));
    n1.send(2, LEDGER_A, 1, Bytes::from_static(b"plaintext"));
    assert!(rx2.recv_timeout(Duration::from_millis(200)).is_err(), "nothing delivered");
    n1.shutdown();

    // The same node with TLS on connects.
    let (n1, rx1) = start(1, &k1, any_port(), vec![peer(2, &k2, address)]);
    wait_connected(&n1, &[2]);
    round_trip(&n1, &n2, &rx2, "over TLS");
    round_trip(&n2, &n1, &rx1, "and back");
    n1.shutdown();
    n2.shutdown();
}

/// A TCP relay between a dialer and an acceptor that can flip one bit of the next chunk
/// the dialer sends, and counts connections the acceptor closed.
struct TamperingProxy {
    address: SocketAddr,
    tamper_next: Arc<AtomicBool>,
    closed_by_acceptor: Arc<AtomicU64>,
}

impl TamperingProxy {
    fn start(upstream: SocketAddr) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let tamper_next = Arc::new(AtomicBool::new(false));
        let closed_by_acceptor = Arc::new(AtomicU64::new(0));
        let (tamper, closed) = (tamper_next.clone(), closed_by_acceptor.clone());
        std::thread::spawn(move || {
            // Bounded: a handful of connections per test.
            for client in listener.incoming().take(16) {
                let Ok(client) = client else { return };
                let Ok(server) = TcpStream::connect(upstream) else { return };
                let (mut from_client, mut to_server) = (client.try_clone().unwrap(), server);
                let (mut from_server, mut to_client) = (to_server.try_clone().unwrap(), client);
                let tamper = tamper.clone();
                std::thread::spawn(move || {
                    let mut buffer = [0u8; 64 * 1024];
                    while let Ok(n) = from_client.read(&mut buffer) {
                        if n == 0 {
                            break;
                        }
                        if tamper.swap(false, Ordering::SeqCst) {
                            buffer[n - 1] ^= 0x01;
                        }
                        if to_server.write_all(&buffer[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = to_server.shutdown(std::net::Shutdown::Both);
                });
                let closed = closed.clone();
                std::thread::spawn(move || {
                    let mut buffer = [0u8; 64 * 1024];
                    loop {
                        match from_server.read(&mut buffer) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                if to_client.write_all(&buffer[..n]).is_err() {
                                    break;
                                }
                            }
                        }
                    }
                    closed.fetch_add(1, Ordering::SeqCst);
                    let _ = to_client.shutdown(std::net::Shutdown::Both);
                });
            }
        });
        TamperingProxy { address, tamper_next, closed_by_acceptor }
    }
}

#[test]
fn a_tampered_frame_drops_the_connection() {
    let (k1, k2) = (key(), key());
    let (n2, rx2) = start(2, &k2, any_port(), vec![peer(1, &k1, nowhere())]);
    let proxy = TamperingProxy::start(n2.local_addr());
    let (n1, rx1) = start(1, &k1, any_port(), vec![peer(2, &k2, proxy.address)]);
    wait_connected(&n1, &[2]);
    round_trip(&n1, &n2, &rx2, "before");
    assert_eq!(proxy.closed_by_acceptor.load(Ordering::SeqCst), 0);

    // One bit of the next TLS record from node 1 flips on the way.
    proxy.tamper_next.store(true, Ordering::SeqCst);
    n1.send(2, LEDGER_A, 7, Bytes::from_static(b"tampered on the way"));
    assert!(
        wait_until(Duration::from_secs(5), || proxy.closed_by_acceptor.load(Ordering::SeqCst) > 0),
        "node 2 closed the connection whose record failed authentication"
    );
    // Nothing altered was delivered: whatever arrived is exactly what was sent.
    while let Ok(envelope) = rx2.recv_timeout(Duration::from_millis(200)) {
        assert_eq!(envelope.payload, Bytes::from_static(b"tampered on the way"));
    }
    // Node 1 dials again (through the proxy, which no longer tampers) and traffic flows.
    assert!(wait_until(Duration::from_secs(10), || {
        n1.send(2, LEDGER_B, 1, Bytes::from_static(b"after"));
        rx2.recv_timeout(Duration::from_millis(100)).is_ok_and(|e| e.ledger == LEDGER_B)
    }));
    round_trip(&n2, &n1, &rx1, "after reconnecting");
    n1.shutdown();
    n2.shutdown();
}

#[test]
fn a_peer_added_at_run_time_connects() {
    let (k1, k2) = (key(), key());
    // Node 2 knows node 1; node 1 learns of node 2 only later (a ledger admitting it).
    let (n2, rx2) = start(2, &k2, any_port(), vec![peer(1, &k1, nowhere())]);
    let (n1, rx1) = start(1, &k1, any_port(), vec![]);
    assert!(!wait_until(Duration::from_millis(300), || n1.is_connected(2)));
    assert!(n1.add_peer(peer(2, &k2, n2.local_addr())));
    assert!(!n1.add_peer(peer(2, &k2, n2.local_addr())), "already known");
    assert!(!n1.add_peer(peer(1, &k1, n2.local_addr())), "itself");
    wait_connected(&n1, &[2]);
    round_trip(&n1, &n2, &rx2, "after add_peer");
    round_trip(&n2, &n1, &rx1, "and back");
    n1.shutdown();
    n2.shutdown();
}
