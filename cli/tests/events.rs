//! Events and subscriptions against a real `polyledger node` process: event pages and
//! filters, SSE resume by `Last-Event-ID`, WebSocket streams, a subscriber killed at
//! random moments during load (every event once after de-duplication, in order per
//! topic), stalled subscribers (memory bounded, commits go on, nothing lost), webhooks
//! whose receiver fails (retried, nothing skipped, across a node restart), and an online
//! backup taken under load, restored and verified.
#![cfg(unix)]

mod support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::Value;
use support::*;

/// A small deterministic generator (the seed is printed, so a failure replays).
struct Rng(u64);

impl Rng {
    fn seeded() -> Rng {
        let seed = std::env::var("POLYLEDGER_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(now_nanos);
        eprintln!("seed {seed} (POLYLEDGER_TEST_SEED={seed} replays it)");
        Rng(seed | 1)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn now_nanos() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
}

/// Publishes `count` events on topics t0..t2 of `shipments`, in batches of `batch`,
/// nonces from `nonce`; payload `{"n": k}` with k = first_k + i.
fn publish_events(
    node: &NodeProcess,
    nonce: u64,
    first_k: u64,
    count: u64,
    batch: u64,
    pause: Duration,
) {
    let mut k = first_k;
    while k < first_k + count {
        let n = batch.min(first_k + count - k);
        let operations = (k..k + n)
            .map(|k| publish("shipments", &format!("t{}", k % 3), &format!("{{\"n\":{k}}}")))
            .collect();
        node.commit(&node.transactions(nonce + k, operations));
        k += n;
        std::thread::sleep(pause);
    }
}

/// Every position 0..total present once, identical content for duplicates, per-topic
/// sequences 0.. in event order.
fn check_complete(seen: &BTreeMap<u64, Value>, total: u64) {
    let positions: Vec<u64> = seen.keys().copied().collect();
    assert_eq!(positions, (0..total).collect::<Vec<_>>(), "every event exactly once");
    let mut next_sequence: BTreeMap<String, u64> = BTreeMap::new();
    for (position, message) in seen {
        let topic = message["topic"].as_str().unwrap().to_owned();
        let expected = next_sequence.entry(topic.clone()).or_insert(0);
        assert_eq!(
            message["sequence"].as_u64().unwrap(),
            *expected,
            "topic {topic} in order at {position}"
        );
        *expected += 1;
        let payload: Value = serde_json::from_str(message["payload"].as_str().unwrap()).unwrap();
        assert_eq!(payload["n"].as_u64().unwrap(), *position, "payload of event {position}");
    }
}

fn record(seen: &mut BTreeMap<u64, Value>, message: Value) {
    let position = message["position"].as_u64().unwrap();
    if let Some(earlier) = seen.get(&position) {
        assert_eq!(earlier, &message, "a redelivered position carries the same message");
    }
    seen.insert(position, message);
}

#[test]
fn a_subscriber_killed_at_random_moments_gets_every_event_once() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::start(&dir.path().join("node"), "");
    node.commit(&node.transactions(1, vec![register_events("shipments")]));
    let total = 1500;
    let mut rng = Rng::seeded();
    let mut seen = BTreeMap::new();
    let (mut runs, mut redelivered) = (0, 0);
    std::thread::scope(|scope| {
        let load =
            scope.spawn(|| publish_events(&node, 100, 0, total, 25, Duration::from_millis(15)));
        let deadline = Instant::now() + Duration::from_secs(180);
        let mut next = 0u64;
        while (seen.len() as u64) < total {
            assert!(Instant::now() < deadline, "only {} of {total} events after 180 s", seen.len());
            runs += 1;
            let mut child = polyledger()
                .args(["watch", "--gateway", &node.url(), "--ledger", "dairy-0", "events"])
                .args(["--from", &next.to_string()])
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let stdout = child.stdout.take().unwrap();
            let (lines, received) = mpsc::channel();
            let reader = std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { return };
                    if lines.send(line).is_err() {
                        return;
                    }
                }
            });
            // Killed (SIGKILL) at a random moment: mid-connect, mid-stream, mid-line.
            std::thread::sleep(Duration::from_millis(20 + rng.below(400)));
            child.kill().unwrap();
            child.wait().unwrap();
            reader.join().unwrap();
            let mut last = None;
            for line in received.try_iter() {
                // A line cut by the kill is not valid JSON: it is simply received again.
                let Ok(message) = serde_json::from_str::<Value>(&line) else { continue };
                let position = message["position"].as_u64().unwrap();
                assert!(last.is_none_or(|last| position > last), "one run's positions increase");
                last = Some(position);
                if seen.contains_key(&position) {
                    redelivered += 1;
                }
                record(&mut seen, message);
                next = next.max(position + 1);
            }
        }
        load.join().unwrap();
    });
    eprintln!("{runs} subscriber runs, {redelivered} redelivered messages de-duplicated");
    assert!(runs >= 3, "the subscriber was restarted during the load");
    check_complete(&seen, total);
}

/// Reads SSE from a raw connection until `count` data messages arrived.
fn read_sse(
    port: u16,
    path: &str,
    last_event_id: Option<u64>,
    count: usize,
) -> (u16, Vec<(String, Value)>) {
    let last = last_event_id.map(|id| id.to_string());
    let (status, messages) = read_sse_ids(port, path, last.as_deref(), count);
    (status, messages.into_iter().map(|(event, _, value)| (event, value)).collect())
}

/// `read_sse` with the resume id as text; also returns each message's SSE id.
fn read_sse_ids(
    port: u16,
    path: &str,
    last_event_id: Option<&str>,
    count: usize,
) -> (u16, Vec<(String, String, Value)>) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let resume = last_event_id.map_or(String::new(), |id| format!("Last-Event-ID: {id}\r\n"));
    let head = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n{resume}\r\n"
    );
    stream.write_all(head.as_bytes()).unwrap();
    let mut reader = BufReader::new(stream);
    let mut status_line = String::new();
    reader.read_line(&mut status_line).unwrap();
    let status: u16 = status_line.get(9..12).unwrap().parse().unwrap();
    if status != 200 {
        return (status, Vec::new());
    }
    let mut messages = Vec::new();
    let (mut event, mut data, mut id) = (String::new(), String::new(), String::new());
    while messages.len() < count {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap() == 0 {
            break;
        }
        let line = line.trim_end();
        if let Some(value) = line.strip_prefix("event: ").or_else(|| line.strip_prefix("event:")) {
            event = value.to_owned();
        } else if let Some(value) = line.strip_prefix("id: ").or_else(|| line.strip_prefix("id:")) {
            id = value.to_owned();
        } else if let Some(value) =
            line.strip_prefix("data: ").or_else(|| line.strip_prefix("data:"))
        {
            data = value.to_owned();
        } else if line.is_empty() && !data.is_empty() {
            if event != "start" {
                messages.push((event.clone(), id.clone(), serde_json::from_str(&data).unwrap()));
            }
            data.clear();
        }
    }
    (status, messages)
}

#[test]
fn pages_filters_sse_resume_and_websocket() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = NodeProcess::start(&dir.path().join("node"), "");
    node.commit(&node.transactions(1, vec![register_events("shipments")]));
    publish_events(&node, 100, 0, 12, 12, Duration::ZERO);
    let epcis = r#"{"type":"ObjectEvent","bizStep":"urn:epcglobal:cbv:bizstep:shipping","epcList":["urn:epc:id:sgtin:0614141.107346.2017"]}"#;
    node.commit(&node.transactions(500, vec![publish("shipments", "epcis", epcis)]));
    let base = format!("/api/v1/ledgers/{}", node.id);

    // Pages: by number, by topic, filtered (EPCIS conditions on JSON payloads).
    let (status, page) = get_json(node.port, &format!("{base}/events?from=2&limit=3"));
    assert_eq!(status, 200, "{page}");
    let numbers: Vec<u64> =
        page["events"].as_array().unwrap().iter().map(|e| e["number"].as_u64().unwrap()).collect();
    assert_eq!((numbers, page["next"].as_u64()), (vec![2, 3, 4], Some(5)));
    let (_, page) = get_json(node.port, &format!("{base}/events/shipments/t1?from=1"));
    let sequences: Vec<u64> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["sequence"].as_u64().unwrap())
        .collect();
    assert_eq!(sequences, [1, 2, 3], "t1 holds 4 events (n = 1, 4, 7, 10)");
    for query in
        ["bizStep=shipping", "type=ObjectEvent", "epc=urn:epc:id:sgtin:0614141.107346.2017"]
    {
        let (_, page) = get_json(node.port, &format!("{base}/events?{query}"));
        let found = page["events"].as_array().unwrap();
        assert_eq!(found.len(), 1, "{query}: {page}");
        assert_eq!(found[0]["number"], 12);
    }
    let (_, page) = get_json(node.port, &format!("{base}/events?bizStep=receiving"));
    assert!(page["events"].as_array().unwrap().is_empty());
    assert_eq!(get_json(node.port, &format!("{base}/events/nobody/t0")).0, 404);
    assert_eq!(get_json(node.port, "/api/v1/ledgers/nope/events").0, 404);
    assert_eq!(get_json(node.port, &format!("{base}/events?limit=0")).0, 400);

    // SSE: `Last-Event-ID` wins over `from` (a browser reconnects with both).
    let (status, messages) =
        read_sse(node.port, &format!("{base}/stream/events?from=0"), Some(5), 3);
    assert_eq!(status, 200);
    let positions: Vec<u64> =
        messages.iter().map(|(_, m)| m["position"].as_u64().unwrap()).collect();
    assert_eq!(positions, [6, 7, 8]);
    assert!(messages.iter().all(|(event, m)| event == "event" && m["kind"] == "event"));
    let (_, blocks) = read_sse(node.port, &format!("{base}/stream/blocks?from=1"), None, 2);
    assert_eq!(blocks[0].1["position"], 1);
    assert_eq!(blocks[0].1["block"]["height"], 1);
    assert_eq!(
        blocks[1].1["transactions"].as_array().unwrap().len(),
        12,
        "block 2 = the 12 publications"
    );
    let (status, _) = read_sse(node.port, &format!("{base}/stream/blocks"), Some(u64::MAX - 1), 0);
    assert_eq!(status, 200);
    let (status, _) =
        http(node.port, "GET", &format!("{base}/stream/blocks?from=x"), "text/plain", b"");
    assert_eq!(status, 400);
    let (status, _) = read_sse(node.port, "/api/v1/ledgers/nope/stream/blocks", None, 0);
    assert_eq!(status, 404);

    // WebSocket: a topic from sequence 0, live: the 4 stored, then one published later.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let url = format!("ws://127.0.0.1:{}{base}/ws/events/shipments/t2?from=0", node.port);
    runtime.block_on(async {
        let (mut socket, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
        let mut sequences = Vec::new();
        while sequences.len() < 4 {
            let frame = socket.next().await.unwrap().unwrap();
            let message: Value = serde_json::from_str(frame.to_text().unwrap()).unwrap();
            sequences.push(message["position"].as_u64().unwrap());
        }
        assert_eq!(sequences, [0, 1, 2, 3]);
        let later = node.transactions(900, vec![publish("shipments", "t2", "{\"n\":99}")]);
        let port = node.port;
        let id = node.id.clone();
        tokio::task::spawn_blocking(move || {
            let body = engine::model::encode_transactions(later.iter());
            let path = format!("/api/v1/ledgers/{id}/transactions?wait=commit");
            http(port, "POST", &path, "application/vnd.polyledger.batch", &body)
        })
        .await
        .unwrap();
        let frame = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let message: Value = serde_json::from_str(frame.to_text().unwrap()).unwrap();
        assert_eq!(
            (message["position"].as_u64(), message["payload"].as_str()),
            (Some(4), Some("{\"n\":99}"))
        );
    });

    // Open subscriptions do not hold up a graceful stop: they end (SSE `error` STOPPED).
    let mut open_stream = TcpStream::connect(("127.0.0.1", node.port)).unwrap();
    let head = format!("GET {base}/stream/blocks HTTP/1.1\r\nHost: x\r\n\r\n");
    open_stream.write_all(head.as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    node.stop();
    open_stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut tail = String::new();
    let _ = open_stream.read_to_string(&mut tail);
    assert!(tail.contains("event: error") && tail.contains("STOPPED"), "{tail}");
}
#[test]
fn stalled_subscribers_keep_memory_bounded_and_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::start(&dir.path().join("node"), "");
    node.commit(&node.transactions(1, vec![register_events("shipments")]));
    let base = format!("/api/v1/ledgers/{}", node.id);
    // Stalled subscribers: they send the request, then never read.
    let stalled: Vec<TcpStream> = (0..20)
        .map(|_| {
            let mut stream = TcpStream::connect(("127.0.0.1", node.port)).unwrap();
            let head = format!("GET {base}/stream/events?from=0 HTTP/1.1\r\nHost: x\r\n\r\n");
            stream.write_all(head.as_bytes()).unwrap();
            stream
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let before = node.rss_bytes();
    // 2,000 events of 8 KiB: 16 MiB of payload, which every subscriber has to receive
    // (×3 in JSON with the hex form). Queued per subscriber, that would be ~1 GiB.
    let filler = "x".repeat(8 << 10);
    let started = Instant::now();
    for round in 0..20u64 {
        let operations = (0..100)
            .map(|i| {
                publish(
                    "shipments",
                    "bulk",
                    &format!("{{\"n\":{},\"fill\":\"{filler}\"}}", round * 100 + i),
                )
            })
            .collect();
        node.commit(&node.transactions(1000 + round * 100, operations));
    }
    let elapsed = started.elapsed();
    let after = node.rss_bytes();
    let growth = after.saturating_sub(before);
    eprintln!(
        "committed 2000 events in {elapsed:?} with 20 stalled subscribers; RSS {before} → {after} (+{growth} bytes)"
    );
    assert!(growth < 256 << 20, "node memory grew by {growth} bytes with stalled subscribers");
    // A stalled subscriber that starts reading gets everything, in order.
    let stream = stalled.into_iter().next().unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut reader = BufReader::new(stream);
    let mut positions = Vec::new();
    while positions.len() < 2000 {
        let mut line = String::new();
        assert!(reader.read_line(&mut line).unwrap() > 0, "stream ended early");
        if let Some(id) = line.strip_prefix("id: ").or_else(|| line.strip_prefix("id:")) {
            positions.push(id.trim().parse::<u64>().unwrap());
        }
    }
    assert_eq!(positions, (0..2000).collect::<Vec<u64>>());
}

/// A webhook receiver that fails the first deliveries on purpose: a dropped connection,
/// a timeout, a 500; then it accepts. Returns every accepted (headers, body).
fn receiver(listener: TcpListener, accepted: mpsc::Sender<(BTreeMap<String, String>, Vec<u8>)>) {
    // One thread per connection, so the deliberately slow answer does not hold up the
    // retry behind it.
    for (attempt, stream) in listener.incoming().enumerate() {
        let Ok(stream) = stream else { return };
        let accepted = accepted.clone();
        std::thread::spawn(move || answer(attempt, stream, accepted));
    }
}

fn answer(
    attempt: usize,
    mut stream: TcpStream,
    accepted: mpsc::Sender<(BTreeMap<String, String>, Vec<u8>)>,
) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut headers = BTreeMap::new();
    let mut line = String::new();
    reader.read_line(&mut line).unwrap_or(0);
    loop {
        line.clear();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
        }
    }
    let length: usize = headers.get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    match attempt {
        0 => drop(stream), // connection closed without an answer
        1 => std::thread::sleep(Duration::from_millis(1500)), // past timeout_ms
        2 => {
            let _ = stream.write_all(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
        _ => {
            // Acknowledged only once the receiver has it (a receiver acknowledges what
            // it stored).
            if accepted.send((headers, body)).is_ok() {
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
            }
        }
    }
}

#[test]
fn webhooks_retry_failures_sign_deliveries_and_skip_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let hook_port = listener.local_addr().unwrap().port();
    let (accepted, deliveries) = mpsc::channel();
    std::thread::spawn(move || receiver(listener, accepted));
    let extra = format!(
        "[[webhooks]]\nname = \"erp\"\nledger = \"dairy-0\"\nurl = \"http://127.0.0.1:{hook_port}/hook\"\n\
         account = \"shipments\"\nbatch = 7\ntimeout_ms = 500\n"
    );
    let mut node = NodeProcess::start(&dir.path().join("node"), &extra);
    let node_key = node.node_key.public_key();
    node.commit(&node.transactions(1, vec![register_events("shipments")]));
    publish_events(&node, 100, 0, 40, 10, Duration::ZERO);
    let mut seen = BTreeMap::new();
    let take = |seen: &mut BTreeMap<u64, Value>, until: u64| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while (seen.len() as u64) < until {
            let left = deadline.saturating_duration_since(Instant::now());
            let (headers, body) =
                deliveries.recv_timeout(left).expect("webhook deliveries stopped");
            let messages = sdk::webhook::verify(
                &body,
                &headers["x-polyledger-key"],
                &headers["x-polyledger-signature"],
                std::slice::from_ref(&node_key),
            )
            .expect("a delivery signed by the node key");
            assert!(messages.len() <= 7, "batch = 7");
            let last = messages.last().unwrap().position;
            assert_eq!(headers["x-polyledger-position"], last.to_string());
            for message in messages {
                let value = serde_json::to_value(&message).unwrap();
                record(seen, value);
            }
        }
    };
    take(&mut seen, 40);
    // Tampered body or a stranger's key: refused.
    let stranger = crypto_parallel::PrivateKey::generate(crypto_parallel::SignatureAlgorithm::Sm2);
    let body = b"[]";
    let signature = hex::encode(stranger.sign(body).to_bytes());
    let key = hex::encode(stranger.public_key().to_bytes());
    assert!(matches!(
        sdk::webhook::verify(body, &key, &signature, std::slice::from_ref(&node_key)),
        Err(sdk::webhook::WebhookError::UntrustedKey)
    ));
    // The receiver's failures were retried: a dropped connection, a timeout, a 500.
    let (_, metrics) = http(node.port, "GET", "/metrics", "text/plain", b"");
    for outcome in ["error", "timeout", "status_500", "ok"] {
        assert!(
            metrics.lines().any(|l| l.starts_with("polyledger_webhook_posts_total")
                && l.contains(&format!("outcome=\"{outcome}\""))),
            "no {outcome} attempt counted:\n{metrics}"
        );
    }
    // Restart: delivery resumes from the saved cursor, nothing skipped.
    node.stop();
    node.restart();
    publish_events(&node, 1000, 40, 20, 10, Duration::ZERO);
    take(&mut seen, 60);
    check_complete(&seen, 60);
    // The node saw the last acknowledgement (it follows the receiver's storing).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, metrics) = http(node.port, "GET", "/metrics", "text/plain", b"");
        if metrics.contains("polyledger_webhook_position{webhook=\"erp\"} 60") {
            break;
        }
        assert!(Instant::now() < deadline, "position metric not at 60");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn backup_under_load_restores_to_a_verified_ledger_that_keeps_committing() {
    let dir = tempfile::tempdir().unwrap();
    let node_dir = dir.path().join("node");
    let mut node = NodeProcess::start(&node_dir, "");
    node.commit(&node.transactions(1, vec![register_events("shipments")]));
    let manifest: Value = std::thread::scope(|scope| {
        let load = scope.spawn(|| publish_events(&node, 100, 0, 600, 20, Duration::from_millis(5)));
        std::thread::sleep(Duration::from_millis(400));
        let output = polyledger()
            .args(["backup", "--gateway", &node.url(), "--name", "under-load"])
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        load.join().unwrap();
        serde_json::from_slice(&output.stdout).unwrap()
    });
    let backed_up = manifest["ledgers"][0]["height"].as_u64().unwrap();
    let final_height = node.height();
    eprintln!("backup at height {backed_up}; load ended at {final_height}");
    assert!(backed_up >= 1 && backed_up <= final_height);
    // The same name again: refused, nothing overwritten.
    let again = polyledger()
        .args(["backup", "--gateway", &node.url(), "--name", "under-load"])
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("BACKUP_EXISTS"));

    // Restore into a new directory: verified, then swapped in for the node's data.
    let backup = std::path::PathBuf::from(manifest["path"].as_str().unwrap());
    let restored = node_dir.join("restored");
    let output = polyledger()
        .arg("restore")
        .arg("--from")
        .arg(&backup)
        .arg("--data")
        .arg(&restored)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["ledgers"][0]["height"].as_u64(), Some(backed_up));
    assert_eq!(report["ledgers"][0]["valid"], true);
    // Into an occupied directory: refused.
    let output = polyledger()
        .arg("restore")
        .arg("--from")
        .arg(&backup)
        .arg("--data")
        .arg(&restored)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));

    node.stop();
    std::fs::rename(node_dir.join("data"), node_dir.join("data-before")).unwrap();
    std::fs::rename(&restored, node_dir.join("data")).unwrap();
    node.restart();
    assert_eq!(node.height(), backed_up, "the node runs on the backup's height");
    let (_, page) =
        get_json(node.port, &format!("/api/v1/ledgers/{}/events?from=0&limit=1000", node.id));
    let count = page["events"].as_array().unwrap().len() as u64;
    node.commit(&node.transactions(50_000, vec![publish("shipments", "after", "{}")]));
    assert_eq!(node.height(), backed_up + 1, "commits continue on the restored data");
    let (_, page) =
        get_json(node.port, &format!("/api/v1/ledgers/{}/events?from={count}", node.id));
    assert_eq!(page["events"][0]["number"].as_u64(), Some(count), "event numbering continues");
}

#[test]
fn a_recall_reaches_the_ledgers_subscribers_and_the_system_stream() {
    let dir = tempfile::tempdir().unwrap();
    let regulator = fixed_key(5);
    let ledger_extra = format!("regulators = [\"{}\"]", regulator.public_key().to_base58());
    // A second ledger: the system stream covers every ledger of the node.
    let extra = format!(
        "[[ledgers]]\nname = \"meat-0\"\nsignatures = [\"ed25519\"]\nadmins = [\"{}\"]\n\
         created_ms = 1767225600000\n",
        admin_key().public_key().to_base58()
    );
    let node = NodeProcess::start_with(&dir.path().join("node"), &ledger_extra, &extra);
    let (_, settings) = get_json(node.port, &format!("/api/v1/ledgers/{}/settings", node.id));
    assert_eq!(settings["regulators"][0], hex::encode(regulator.public_key().to_bytes()));
    let key_file = dir.path().join("regulator.pem");
    std::fs::write(&key_file, regulator.to_pem().unwrap().as_bytes()).unwrap();
    let admin_file = dir.path().join("admin.pem");
    std::fs::write(&admin_file, admin_key().to_pem().unwrap().as_bytes()).unwrap();
    let recall = |key: &std::path::Path, lot: &str| {
        polyledger()
            .args(["tx", "recall", "--gateway", &node.url(), "--ledger", "dairy-0", "--key"])
            .arg(key)
            .args(["--gtin", "09506000134352", "--lot", lot, "--reason", "Listeria", "--json"])
            .output()
            .unwrap()
    };

    // Two subscribers, on their own runtime: the ledger's event stream (system events)
    // and the node's system stream; both open before the recall.
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let client = sdk::Client::new(&node.url()).unwrap();
    let subscriptions = [
        client
            .subscribe(
                "dairy-0",
                sdk::Subscription::Events(sdk::wire::EventFilter {
                    account: Some("$system".into()),
                    ..Default::default()
                }),
                None,
            )
            .boxed(),
        client.subscribe("", sdk::Subscription::System, None).boxed(),
    ];
    let receivers: Vec<_> = subscriptions
        .into_iter()
        .map(|mut stream| {
            let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
            runtime.spawn(async move {
                while let Some(message) = stream.next().await {
                    if sender.send(message).is_err() {
                        return;
                    }
                }
            });
            receiver
        })
        .collect();
    std::thread::sleep(Duration::from_millis(700));
    let by_admin = recall(&admin_file, "LOT-7");
    assert!(!by_admin.status.success(), "an admin is not a regulator");
    assert!(String::from_utf8_lossy(&by_admin.stdout).contains("no_permission"), "{by_admin:?}");
    let by_regulator = recall(&key_file, "LOT-7");
    assert!(by_regulator.status.success(), "{}", String::from_utf8_lossy(&by_regulator.stderr));
    let again = recall(&key_file, "LOT-7");
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("account_exists"),
        "recalled once: {again:?}"
    );
    for mut receiver in receivers {
        let message = runtime
            .block_on(async {
                tokio::time::timeout(Duration::from_secs(10), receiver.recv()).await
            })
            .expect("the recall is delivered")
            .unwrap()
            .unwrap();
        assert_eq!(message.ledger, node.id);
        let sdk::wire::StreamItem::Event(event) = message.item else { panic!("an event") };
        assert_eq!((event.account.as_str(), event.topic.as_str()), ("$system", "recall"));
        let payload: Value = serde_json::from_str(event.payload.as_deref().unwrap()).unwrap();
        assert_eq!(
            (payload["gtin"].as_str(), payload["lot"].as_str()),
            (Some("09506000134352"), Some("LOT-7"))
        );
    }
    drop(runtime);

    // The system stream resumes from a cursor (its SSE id): only what came after.
    let (_, first) =
        read_sse_ids(node.port, "/api/v1/stream/system?from=dairy-0=0,meat-0=0", None, 1);
    let cursor = first[0].1.clone();
    assert!(cursor.contains("dairy-0=1") && cursor.contains("meat-0=0"), "{cursor}");
    let output = recall(&key_file, "LOT-8");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let (_, resumed) = read_sse_ids(node.port, "/api/v1/stream/system", Some(&cursor), 1);
    let payload: Value = serde_json::from_str(resumed[0].2["payload"].as_str().unwrap()).unwrap();
    assert_eq!(payload["lot"], "LOT-8");
    let (status, _) = read_sse_ids(node.port, "/api/v1/stream/system?from=nope=1", None, 0);
    assert_eq!(status, 404);
    // A bad GTIN never leaves the client.
    let output = polyledger()
        .args(["tx", "recall", "--gateway", &node.url(), "--ledger", "dairy-0", "--key"])
        .arg(&key_file)
        .args(["--gtin", "09506000134353", "--lot", "LOT-9", "--reason", "x"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("check digit"));
}
