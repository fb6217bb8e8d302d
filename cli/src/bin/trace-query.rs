//! `trace-query`: latency of `GET /api/v1/trace/{code}` on a running node, for the
//! trace benchmark (`perf/trace-10m.sh`).
//!
//! Reads the codes (one per line, as `trace-fill --hot-out` writes them), sends a
//! warm-up, then for each client count in `--clients` a closed loop of `--requests`
//! requests shared by that many concurrent clients, round-robin over the codes. A
//! request's latency runs from sending it until its whole body is in. Every answer must
//! be `200` with exactly `--expect-events` events (checked after the clock stops).
//! After the timed runs, one trace per code is verified offline (`sdk::trace::verify`:
//! signatures, inclusion proofs, payloads).
//!
//! Prints one JSON object: per client count, p50/p90/p99/max latency (ms) and
//! requests/s.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::json;

/// Command line.
#[derive(Parser, Debug)]
#[command(name = "trace-query", about = "Latency of GET /api/v1/trace/{code}")]
struct Args {
    /// The node's HTTP API.
    #[arg(long, default_value = "http://127.0.0.1:8090")]
    url: String,
    /// The codes to trace, one per line.
    #[arg(long)]
    codes: PathBuf,
    /// Timed requests per client count.
    #[arg(long, default_value_t = 2000)]
    requests: usize,
    /// Untimed requests first (one client).
    #[arg(long, default_value_t = 200)]
    warmup: usize,
    /// Client counts, comma-separated.
    #[arg(long, default_value = "1,4", value_delimiter = ',')]
    clients: Vec<usize>,
    /// Events every trace must have.
    #[arg(long, default_value_t = 50)]
    expect_events: usize,
}

/// What is checked of an answer (the rest is skipped unparsed).
#[derive(Deserialize)]
struct Answer {
    events: Vec<IgnoredAny>,
    truncated: bool,
}

/// One answer: latency, status, body.
struct Sample {
    latency: Duration,
    status: u16,
    body: Vec<u8>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("trace-query: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("trace-query: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Percent-encodes one path segment.
fn segment(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

async fn get(client: &reqwest::Client, url: &str) -> Result<Sample, String> {
    let started = Instant::now();
    let response = client.get(url).send().await.map_err(|e| format!("{url}: {e}"))?;
    let status = response.status().as_u16();
    let body = response.bytes().await.map_err(|e| format!("{url}: {e}"))?.to_vec();
    Ok(Sample { latency: started.elapsed(), status, body })
}

/// `Err` unless the answer is 200 with exactly `expect` events, not truncated.
fn check(url: &str, sample: &Sample, expect: usize) -> Result<(), String> {
    if sample.status != 200 {
        let text = String::from_utf8_lossy(&sample.body[..sample.body.len().min(300)]);
        return Err(format!("{url}: status {}: {text}", sample.status));
    }
    let answer: Answer =
        serde_json::from_slice(&sample.body).map_err(|e| format!("{url}: not a trace: {e}"))?;
    if answer.events.len() != expect || answer.truncated {
        return Err(format!(
            "{url}: {} events (truncated: {}), expected {expect}",
            answer.events.len(),
            answer.truncated
        ));
    }
    Ok(())
}

/// The value at quantile `q` of sorted `values` (nearest rank).
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// `requests` requests shared by `clients` closed-loop clients; latencies and the
/// wall time.
async fn closed_loop(
    client: &reqwest::Client,
    urls: &Arc<Vec<String>>,
    clients: usize,
    requests: usize,
    expect: usize,
) -> Result<(Vec<f64>, f64, u64), String> {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (client, urls, next) = (client.clone(), urls.clone(), next.clone());
        tasks.push(tokio::task::spawn(async move {
            let mut samples = Vec::new();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= requests {
                    return Ok::<_, String>(samples);
                }
                let url = &urls[n % urls.len()];
                samples.push((n % urls.len(), get(&client, url).await?));
            }
        }));
    }
    let mut all = Vec::with_capacity(requests);
    for task in tasks {
        all.extend(task.await.map_err(|e| e.to_string())??);
    }
    let wall = started.elapsed().as_secs_f64();
    let mut latencies = Vec::with_capacity(all.len());
    let mut body_bytes = 0u64;
    for (index, sample) in &all {
        check(&urls[*index], sample, expect)?;
        latencies.push(sample.latency.as_secs_f64() * 1000.0);
        body_bytes += sample.body.len() as u64;
    }
    latencies.sort_by(f64::total_cmp);
    Ok((latencies, wall, body_bytes / all.len().max(1) as u64))
}

async fn run(args: &Args) -> Result<(), String> {
    let text = std::fs::read_to_string(&args.codes)
        .map_err(|e| format!("{}: {e}", args.codes.display()))?;
    let codes: Vec<String> =
        text.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned).collect();
    if codes.is_empty() {
        return Err(format!("{}: no codes", args.codes.display()));
    }
    let base = args.url.trim_end_matches('/');
    let urls: Arc<Vec<String>> =
        Arc::new(codes.iter().map(|c| format!("{base}/api/v1/trace/{}", segment(c))).collect());
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .pool_max_idle_per_host(64)
        .build()
        .map_err(|e| e.to_string())?;

    let warm = Instant::now();
    let (warm_latencies, _, _) =
        closed_loop(&client, &urls, 1, args.warmup.max(urls.len()), args.expect_events).await?;
    eprintln!(
        "trace-query: warm-up {} requests in {:.1} s (p50 {:.1} ms)",
        warm_latencies.len(),
        warm.elapsed().as_secs_f64(),
        quantile(&warm_latencies, 0.5)
    );

    let mut runs = Vec::new();
    for &clients in &args.clients {
        let (latencies, wall, body_bytes) =
            closed_loop(&client, &urls, clients.max(1), args.requests, args.expect_events).await?;
        let run = json!({
            "clients": clients,
            "requests": latencies.len(),
            "ok": latencies.len(),
            "events_per_trace": args.expect_events,
            "p50_ms": quantile(&latencies, 0.50),
            "p90_ms": quantile(&latencies, 0.90),
            "p99_ms": quantile(&latencies, 0.99),
            "max_ms": latencies.last().copied().unwrap_or(0.0),
            "mean_ms": latencies.iter().sum::<f64>() / latencies.len().max(1) as f64,
            "requests_per_s": latencies.len() as f64 / wall,
            "response_bytes": body_bytes,
        });
        eprintln!("trace-query: {run}");
        runs.push(run);
    }

    // Offline verification of one trace per code (untimed).
    let mut verified_events = 0;
    for url in urls.iter() {
        let sample = get(&client, url).await?;
        check(url, &sample, args.expect_events)?;
        let trace: sdk::wire::TraceView =
            serde_json::from_slice(&sample.body).map_err(|e| format!("{url}: {e}"))?;
        let verified =
            sdk::trace::verify(&trace).map_err(|e| format!("{url}: does not verify: {e}"))?;
        verified_events += verified.events;
    }

    let report = json!({
        "url": base,
        "codes": codes.len(),
        "warmup": warm_latencies.len(),
        "runs": runs,
        "verified_traces": codes.len(),
        "verified_events": verified_events,
    });
    println!("{report}");
    Ok(())
}
