#!/usr/bin/env bash
# Single node, the README's headline: `polyledger demo` (RocksDB, solo, 8 category
# ledgers, SM2) driven over HTTP, then the gateway-overhead run (in-process vs HTTP on
# the same node, and wait=commit latency at 50% of the HTTP maximum).
# Usage: perf/single-node.sh [extra demo flags]. Reports land in perf/out/.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/system-deps.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/polyledger-target}"
cargo build --release --locked -p cli --bin polyledger
bin="$CARGO_TARGET_DIR/release/polyledger"
out=perf/out/single-node-$(date -u +%Y%m%d-%H%M%S)
mkdir -p "$out"
echo "== machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); commit $(git rev-parse --short HEAD)"
"$bin" demo --http 127.0.0.1:0 --data "$out/demo" --no-progress "$@" | tee "$out/demo.txt"
"$bin" demo --http 127.0.0.1:0 --data "$out/overhead" --overhead --no-progress "$@" | tee "$out/overhead.txt"
