#!/usr/bin/env bash
# EPCIS capture throughput next to raw transaction submission, one node, in one run:
# 4 solo ledgers on RocksDB (deploy/solo.toml's first four), a shard map with one company
# prefix per category, the demo admin key as capture key. Order A-B-B-A:
#   capture (perf/capture_load.py: 4 clients, 100-event documents, closed loop)
#   raw     (polyledger loadgen --closed: 16 batches of 200 transactions in flight)
# DURATION seconds each (default 10). Usage: [DURATION=10] perf/capture.sh
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/system-deps.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/polyledger-target}"
cargo build --release --locked -p cli --bin polyledger
bin="$CARGO_TARGET_DIR/release/polyledger"
out=$(pwd)/perf/out/capture-$(date -u +%Y%m%d-%H%M%S)
mkdir -p "$out"
"$bin" keygen --out "$out/node.key.pem" > /dev/null
admin=$(grep -m1 '^admins' deploy/solo.toml | sed 's/.*\["\(.*\)"\].*/\1/')
cat > "$out/map.json" <<JSON
{"epoch": 1,
 "categories": {"dairy": ["dairy-0"], "liquor": ["liquor-0"], "formula": ["formula-0"], "drugs": ["drugs-0"]},
 "prefixes": {"0614141": "dairy", "9506000": "liquor", "4012345": "formula", "0012345": "drugs"}}
JSON
{
  printf '[node]\nid = 1\nkey_file = "node.key.pem"\ndata = "rocksdb://data"\n'
  printf 'p2p_listen = "127.0.0.1:7190"\nhttp_listen = "127.0.0.1:8090"\n\n'
  for name in dairy liquor formula drugs; do
    printf '[[ledgers]]\nname = "%s-0"\nadmins = ["%s"]\ncreated_ms = 1767225600000\n\n' "$name" "$admin"
  done
  printf '[traceability]\nshard_map = "map.json"\ncapture_key_file = "%s"\n' "$(pwd)/deploy/admin.key.pem"
} > "$out/node.toml"
"$bin" node --config "$out/node.toml" 2> "$out/node.log" &
pid=$!
trap 'kill -TERM $pid 2>/dev/null || true; wait $pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -sf http://127.0.0.1:8090/readyz >/dev/null && break; sleep 0.2; done
d="${DURATION:-10}"
capture() { python3 perf/capture_load.py 127.0.0.1 8090 "$d" 4 "$1" | tee "$out/$1.json"; }
raw() {
  "$bin" loadgen --gateway http://127.0.0.1:8090 --key deploy/admin.key.pem --closed \
    --duration "${d}s" --no-progress --out "$out/$1.json" > "$out/$1.txt" 2>&1
  python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print(json.dumps({'tx_per_s': r['throughput_tps'], 'p99_ms': r['latency']['p99_ms'], 'failed': r['fail']}))" "$out/$1.json" | tee -a "$out/$1.txt"
}
capture capture-1
raw raw-1
raw raw-2
capture capture-2
echo "reports in $out"
