#!/usr/bin/env bash
# A sweep of 1, 2, 4, 8 ledgers on one node (`polyledger demo --ledgers N`, over HTTP):
# how throughput scales with ledgers (each ledger is its own actor, block pipeline and
# state tree). Usage: perf/ledger-sweep.sh [extra demo flags]. Reports in perf/out/.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/system-deps.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/polyledger-target}"
cargo build --release --locked -p cli --bin polyledger
bin="$CARGO_TARGET_DIR/release/polyledger"
out=perf/out/sweep-$(date -u +%Y%m%d-%H%M%S)
mkdir -p "$out"
for n in 1 2 4 8; do
  echo "== $n ledgers"
  "$bin" demo --ledgers "$n" --http 127.0.0.1:0 --data "$out/ledgers-$n" --no-progress "$@" \
    | tee "$out/ledgers-$n.txt" | grep -E "^(calibration|headline|verify ceiling)"
done
