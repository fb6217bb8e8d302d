#!/usr/bin/env bash
# GET /api/v1/trace/{code} latency on a big ledger: one solo ledger on RocksDB filled
# offline (cli/src/bin/trace-fill.rs) with RECORDS capture-like EPCIS transactions (one
# ObjectEvent on one SGTIN each, blocks of BLOCK_TXS), HOT_CODES of which have EVENTS
# events each spread over the whole fill; then `polyledger node` on that data and
# cli/src/bin/trace-query.rs: a warm-up, then REQUESTS traces of the hot codes with 1
# and with 4 concurrent clients (p50/p90/p99/max, requests/s; every answer 200 with
# exactly EVENTS events; one trace per code verified offline).
#
# The capture key is a fresh Ed25519 key registered at genesis next to the demo admin
# (signatures = ["sm2", "ed25519"]): signing 10M events with SM2 would take longer than
# executing them. The ledger hashes with SM3 (the default).
#
# Usage: [RECORDS=10000000] [HOT_CODES=20] [EVENTS=50] [BLOCK_TXS=2000] [REQUESTS=2000]
#        [FILL_CACHE_MIB=256] [KEEP=1] perf/trace-10m.sh
#        (FILL_CACHE_MIB: the fill's RocksDB block cache; past ~4M records the node's 256
#        MiB makes the fill ~5x slower, 8192 keeps it near 5,000 records/s)
#        REUSE=perf/out/trace-10m-<stamp> [REQUESTS=2000] [KEEP=1] perf/trace-10m.sh
#          (queries again a fill kept with KEEP=1, with its EVENTS; no new fill)
# Reports (fill.json, query-<stamp>.json, node.log) in perf/out/trace-10m-<stamp>/; the data
# directory is deleted at the end unless KEEP=1.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/system-deps.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/polyledger-target}"
cargo build --release --locked -p cli --bins
bin="$CARGO_TARGET_DIR/release"
records="${RECORDS:-10000000}"
hot="${HOT_CODES:-20}"
events="${EVENTS:-50}"
block_txs="${BLOCK_TXS:-2000}"
requests="${REQUESTS:-2000}"
if [ -n "${REUSE:-}" ]; then
  out=$(cd "$REUSE" && pwd)
  [ -d "$out/data" ] || { echo "$out/data: no kept fill" >&2; exit 1; }
  echo "== reusing the fill in $out"
  cat "$out/fill.json"
else
out=$(pwd)/perf/out/trace-10m-$(date -u +%Y%m%d-%H%M%S)
mkdir -p "$out"
"$bin/polyledger" keygen --out "$out/node.key.pem" > /dev/null
capture_pub=$("$bin/polyledger" keygen --algorithm ed25519 --out "$out/capture.key.pem" \
  | sed -n 's/^public key: //p')
admin=$(grep -m1 '^admins' deploy/solo.toml | sed 's/.*\["\(.*\)"\].*/\1/')
cat > "$out/map.json" <<JSON
{"epoch": 1, "categories": {"dairy": ["dairy-0"]}, "prefixes": {"0614141": "dairy"}}
JSON
cat > "$out/node.toml" <<TOML
[node]
id = 1
key_file = "node.key.pem"
data = "rocksdb://data"
p2p_listen = "127.0.0.1:7191"
http_listen = "127.0.0.1:8091"

[[ledgers]]
name = "dairy-0"
signatures = ["sm2", "ed25519"]
admins = ["$admin", "$capture_pub"]
created_ms = 1767225600000

[traceability]
shard_map = "map.json"
capture_key_file = "capture.key.pem"
TOML

echo "== fill: $records records, $hot hot codes x $events events, blocks of $block_txs"
"$bin/trace-fill" --config "$out/node.toml" --records "$records" --hot-codes "$hot" \
  --events-per-hot-code "$events" --block-txs "$block_txs" --hot-out "$out/hot-codes.txt" \
  --block-cache-mib "${FILL_CACHE_MIB:-256}" \
  > "$out/fill.json" 2> >(tee "$out/fill.log" >&2)
cat "$out/fill.json"
du -sb "$out/data" | tee "$out/du.txt"
fi

echo "== node on the filled data"
"$bin/polyledger" node --config "$out/node.toml" 2> "$out/node.log" &
pid=$!
trap 'kill -TERM $pid 2>/dev/null || true; wait $pid 2>/dev/null || true' EXIT
ready=0
for _ in $(seq 300); do
  if curl -sf http://127.0.0.1:8091/readyz > /dev/null; then ready=1; break; fi
  sleep 0.2
done
[ "$ready" = 1 ] || { echo "node not ready; see $out/node.log" >&2; exit 1; }
curl -sf http://127.0.0.1:8091/api/v1/ledgers > "$out/ledgers.json" || true

echo "== trace queries: $requests per run, 1 and 4 clients"
query="$out/query-$(date -u +%Y%m%d-%H%M%S).json"
"$bin/trace-query" --url http://127.0.0.1:8091 --codes "$out/hot-codes.txt" \
  --requests "$requests" --clients 1,4 --expect-events "$events" > "$query"
cat "$query"
kill -TERM $pid; wait $pid || true
trap - EXIT
if [ "${KEEP:-0}" != 1 ]; then rm -rf "$out/data" "$out/data-state" "$out/data-backups"; fi
echo "reports in $out"
