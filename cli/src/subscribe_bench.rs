//! `polyledger demo --subscriptions`: what subscriptions cost and how fast they deliver.
//!
//! Every transaction of the workload also publishes its record as an event. Part 1:
//! saturated closed-loop rounds, in-process, after a warm-up round, alternating (A-B-B-A) between no extra
//! subscribers and 100 idle subscribers (SSE, on topics that receive nothing, so every
//! commit wakes them) plus one stalled subscriber (it never reads the ledger's busy event
//! stream): committed tx/s side by side. Part 2: an open-loop run at `--share` of the
//! ceiling with the same subscribers attached and one live subscriber on ledger 0's event
//! stream (SDK, over HTTP): delivery latency from the node's commit of a block to the
//! subscriber receiving its first event (p50/p99), and events/s the subscriber received.
//! Part 3: a new subscriber reads ledger 0's whole event stream from position 0: the
//! events/s one subscriber can take.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crypto_parallel::PrivateKey;
use futures::StreamExt;
use loadgen::ledger::{EVENT_ACCOUNT, EmbeddedTarget, LedgerTarget, Workload, WorkloadSource};
use loadgen::{Cursor, Mode};
use parking_lot::Mutex;
use sdk::Subscription;
use sdk::wire::{EventFilter, StreamItem};

use crate::load::{LoadArgs, Outcome, PLAN_RATE_MAX, mean, probe_ceiling};
use crate::{Failure, runtime};

const IDLE: usize = 100;

/// Idle subscribers and the stalled one, while attached.
struct Attached {
    tasks: Vec<tokio::task::JoinHandle<()>>,
    _stalled: std::net::TcpStream,
}

fn attach(
    client: &sdk::Client,
    ledgers: &[LedgerTarget],
    http: SocketAddr,
) -> Result<Attached, Failure> {
    let tasks = (0..IDLE)
        .map(|i| {
            let ledger = hex::encode(ledgers[i % ledgers.len()].id.0);
            let topic = format!("idle-{i}");
            let stream = client.subscribe(
                &ledger,
                Subscription::Topic { account: EVENT_ACCOUNT.into(), topic },
                None,
            );
            tokio::spawn(async move {
                futures::pin_mut!(stream);
                while stream.next().await.is_some() {}
            })
        })
        .collect();
    use std::io::Write;
    let mut stalled = std::net::TcpStream::connect(http).map_err(|e| runtime(e.to_string()))?;
    let path = format!("/api/v1/ledgers/{}/stream/events?from=0", hex::encode(ledgers[0].id.0));
    write!(stalled, "GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n")
        .map_err(|e| runtime(e.to_string()))?;
    Ok(Attached { tasks, _stalled: stalled })
}

impl Drop for Attached {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// What the live subscriber received.
#[derive(Default)]
struct Received {
    /// When the first event of each block height arrived.
    first_at_height: HashMap<u64, Instant>,
    events: u64,
    first: Option<Instant>,
    last: Option<Instant>,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Runs the measurement (the node runs in this process; its HTTP API on `http`).
pub async fn measure(
    args: &LoadArgs,
    handles: Vec<actors::LedgerHandle>,
    ledgers: Vec<LedgerTarget>,
    signer: PrivateKey,
    http: SocketAddr,
) -> Result<Outcome, Failure> {
    let ledger_count = ledgers.len();
    let ceiling = probe_ceiling(args, &ledgers, &signer);
    // A warm-up round (not counted: the first round on fresh memtables and caches runs
    // faster than any later one), then A-B-B-A.
    let rounds = 5;
    let budget = ceiling.min(PLAN_RATE_MAX)
        * (args.calibrate.as_secs_f64() * rounds as f64 + args.share * args.duration.as_secs_f64());
    let batches = (budget * 1.1 / ledger_count as f64 / args.batch as f64).ceil() as u64 + 2;
    eprintln!(
        "signing {} transactions before the run…",
        batches * (args.batch * ledger_count) as u64
    );
    let spec = loadgen::ledger::WorkloadSpec { publish: true, ..args.spec() };
    let (source, _) =
        WorkloadSource::pre_signed(Workload::new(spec, ledgers.clone(), signer), batches);
    let source = Arc::new(source);
    let cursor = Cursor::new();
    let target = Arc::new(EmbeddedTarget::new(handles.clone(), args.timeout));
    let client = sdk::Client::new(&format!("http://{http}")).map_err(|e| runtime(e.to_string()))?;

    // Part 1: saturated rounds, A-B-B-A.
    let closed = Mode::Closed { concurrency: (3 * ledger_count).max(4), duration: args.calibrate };
    let (mut without, mut with, mut reports) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let subscribed = round == 2 || round == 3;
        let attached = if subscribed { Some(attach(&client, &ledgers, http)?) } else { None };
        tokio::time::sleep(Duration::from_millis(300)).await; // connections established
        let report = loadgen::run_with_cursor(
            target.clone(),
            source.clone(),
            closed.clone(),
            args.progress(),
            &cursor,
        )
        .await
        .with_name(match (round, subscribed) {
            (0, _) => "warm-up (not counted)",
            (_, true) => "101 subscribers",
            (_, false) => "no subscribers",
        });
        drop(attached);
        if round > 0 {
            if subscribed { &mut with } else { &mut without }.push(report.throughput_tps);
        }
        reports.push(report);
    }

    // Part 2: open loop at --share of what the rounds without subscribers sustained.
    let sustained = mean(&without);
    let rate = (sustained * args.share).min(PLAN_RATE_MAX);
    let committed: Arc<Mutex<HashMap<u64, Instant>>> = Arc::default();
    let mut notices = handles[0].subscribe();
    let recorder = {
        let committed = committed.clone();
        tokio::spawn(async move {
            loop {
                match notices.recv().await {
                    Ok(notice) => {
                        committed.lock().insert(notice.height, notice.committed_at);
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(_) => return,
                }
            }
        })
    };
    let received: Arc<Mutex<Received>> = Arc::default();
    let live = {
        let received = received.clone();
        let stream = client.subscribe(
            &hex::encode(ledgers[0].id.0),
            Subscription::Events(EventFilter {
                account: Some(EVENT_ACCOUNT.into()),
                ..Default::default()
            }),
            None,
        );
        tokio::spawn(async move {
            futures::pin_mut!(stream);
            while let Some(Ok(message)) = stream.next().await {
                if let StreamItem::Event(event) = message.item {
                    let now = Instant::now();
                    let mut received = received.lock();
                    received.first_at_height.entry(event.height).or_insert(now);
                    received.events += 1;
                    received.first.get_or_insert(now);
                    received.last = Some(now);
                }
            }
        })
    };
    let attached = attach(&client, &ledgers, http)?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let open = Mode::Open { rate, duration: args.duration, max_in_flight: 48 };
    let report =
        loadgen::run_with_cursor(target.clone(), source.clone(), open, args.progress(), &cursor)
            .await
            .with_name("open loop, 101 subscribers + 1 live");
    tokio::time::sleep(Duration::from_secs(1)).await; // the last deliveries
    drop(attached);
    live.abort();
    recorder.abort();
    let (latencies, events, events_per_s) = {
        let committed = committed.lock();
        let received = received.lock();
        let mut latencies: Vec<f64> = received
            .first_at_height
            .iter()
            .filter_map(|(height, at)| {
                committed.get(height).map(|c| at.saturating_duration_since(*c).as_secs_f64() * 1e3)
            })
            .collect();
        latencies.sort_by(f64::total_cmp);
        let span = match (received.first, received.last) {
            (Some(first), Some(last)) if last > first => (last - first).as_secs_f64(),
            _ => 0.0,
        };
        let per_s = if span > 0.0 { received.events as f64 / span } else { 0.0 };
        (latencies, received.events, per_s)
    };
    reports.push(report);

    // Part 3: a new subscriber reads ledger 0's whole event stream from position 0 (a
    // catch-up): how many events/s one subscriber receives when it is not waiting for
    // commits.
    let total = {
        let handle = handles[0].clone();
        tokio::task::spawn_blocking(move || handle.reader().and_then(|r| r.event_count()))
            .await
            .map_err(|e| runtime(e.to_string()))?
            .map_err(|e| runtime(e.to_string()))?
    };
    let catch_up = {
        let stream = client.subscribe(
            &hex::encode(ledgers[0].id.0),
            Subscription::Events(EventFilter::default()),
            Some(0),
        );
        futures::pin_mut!(stream);
        let started = Instant::now();
        let mut count = 0u64;
        while count < total {
            match tokio::time::timeout(Duration::from_secs(30), stream.next()).await {
                Ok(Some(Ok(_))) => count += 1,
                _ => break,
            }
        }
        (count, started.elapsed().as_secs_f64())
    };
    let catch_up_rate = catch_up.0 as f64 / catch_up.1.max(1e-9);

    let (a, b) = (mean(&without), mean(&with));
    let summary = format!(
        "no subscribers:                   {} tx/s (mean {a:.0})\n\
         100 idle + 1 stalled subscribers: {} tx/s (mean {b:.0})\n\
         with / without = {:.1}% (saturated, in-process load, {} s per round, warm-up, then A-B-B-A)\n\
         open loop at {rate:.0} tx/s offered with the same subscribers attached:\n\
         delivery commit → live subscriber (first event of each block, {} blocks): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms\n\
         live subscriber received {events} events, {events_per_s:.0} events/s (what ledger 0 committed)\n\
         catch-up: one subscriber read {} of ledger 0's events from position 0 in {:.1} s: {catch_up_rate:.0} events/s\n",
        without.iter().map(|v| format!("{v:.0}")).collect::<Vec<_>>().join(", "),
        with.iter().map(|v| format!("{v:.0}")).collect::<Vec<_>>().join(", "),
        100.0 * b / a.max(1e-9),
        args.calibrate.as_secs_f64(),
        latencies.len(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or(0.0),
        catch_up.0,
        catch_up.1,
    );
    let json = serde_json::json!({
        "without_tps": without, "with_tps": with, "with_over_without": b / a.max(1e-9),
        "open_rate": rate, "delivery_p50_ms": percentile(&latencies, 0.5),
        "delivery_p99_ms": percentile(&latencies, 0.99), "delivered_blocks": latencies.len(),
        "events": events, "events_per_s": events_per_s,
        "catch_up_events": catch_up.0, "catch_up_s": catch_up.1, "catch_up_events_per_s": catch_up_rate,
    });
    Outcome::of_runs(&summary, reports, json)
}
