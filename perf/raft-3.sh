#!/usr/bin/env bash
# Three local nodes over Raft (deploy/local-3: public demo keys, 5 ledgers, 127.0.0.1),
# each a separate `polyledger node` process with its own RocksDB; the load generator
# ramps the offered rate over HTTP (batches round-robin over the three gateways) to find
# the highest rate whose p99 finality stays within 1 s.
# Usage: [START_RATE=2000] perf/raft-3.sh [extra loadgen flags]. Reports in perf/out/.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/system-deps.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/polyledger-target}"
cargo build --release --locked -p cli --bin polyledger
bin="$CARGO_TARGET_DIR/release/polyledger"
out=perf/out/raft-3-$(date -u +%Y%m%d-%H%M%S)
mkdir -p "$out"
rm -rf deploy/local-3/data
pids=()
cleanup() { for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done; wait || true; }
trap cleanup EXIT
for i in 1 2 3; do
  "$bin" node --config "deploy/local-3/node$i.toml" 2> "$out/node$i.log" &
  pids+=($!)
done
# The gateways serve HTTPS with a bearer token (deploy/local-3's public demo material).
export POLYLEDGER_CA_FILE=deploy/local-3/gateway.crt.pem
export POLYLEDGER_TOKEN_FILE=deploy/local-3/demo.token
for port in 8101 8102 8103; do
  for _ in $(seq 100); do
    curl -sf --cacert "$POLYLEDGER_CA_FILE" "https://localhost:$port/readyz" >/dev/null && break
    sleep 0.2
  done
done
"$bin" loadgen --gateway https://localhost:8101 --gateway https://localhost:8102 \
  --gateway https://localhost:8103 --key deploy/admin.key.pem \
  --find-max --p99-ms 1000 --start-rate "${START_RATE:-2000}" --stage 5s --no-progress \
  --out "$out/report.json" --markdown "$out/report.md" "$@" | tee "$out/report.txt"
