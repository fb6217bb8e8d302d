//! The engine's `KvStore` conformance suite on a real TiKV cluster, and the loss and
//! return of the cluster. Needs `POLYLEDGER_TIKV_PD=host:port[,host:port]` (a cluster
//! from `deploy/tikv/`); without it this prints `SKIPPED` and runs nothing, so it never
//! counts as passed (a plain binary, not the test harness).

use std::time::{SystemTime, UNIX_EPOCH};

use storage_tikv::{TikvOptions, TikvStore};

fn main() {
    let Ok(endpoints) = std::env::var("POLYLEDGER_TIKV_PD") else {
        println!("SKIPPED: set POLYLEDGER_TIKV_PD to run the conformance suite against TiKV");
        return;
    };
    let endpoints: Vec<String> = endpoints.split(',').map(|e| e.trim().to_owned()).collect();
    // Every store of the run under its own prefix: fresh and empty, and nothing of an
    // earlier run is seen.
    let run = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    let mut count = 0u32;
    engine::conformance::run_all(|| {
        count += 1;
        let mut options = TikvOptions::new(endpoints.clone());
        options.prefix = format!("polyledger-conformance/{run}/{count}/").into_bytes();
        TikvStore::open(options).expect("open TiKV")
    });
    println!("tikv conformance: {count} checks passed against PD {}", endpoints.join(","));
}
