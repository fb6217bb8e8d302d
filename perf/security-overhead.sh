#!/usr/bin/env bash
# The cost of the security features on a 3-node Raft deployment (deploy/local-3, RocksDB,
# same machine), side by side in one run, in A-B-B-A order:
#   off: p2p_tls = false, plain HTTP, no tokens, ledgers without roles (no permission
#        checks beyond the legacy defaults);
#   on:  TLS 1.3 between nodes (default), HTTPS gateway with a bearer token, every ledger
#        permissioned (roles in the genesis; the load's signer holds them, so every
#        transaction's permission is looked up from state).
# Each run is a closed loop (`--closed`, 16 batches of 200 in flight, round-robin over the
# three gateways) for DURATION (default 10s); prints committed tx/s per run and on/off.
# Usage: [DURATION=10s] perf/security-overhead.sh. Reports in perf/out/.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/system-deps.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/polyledger-target}"
cargo build --release --locked -p cli --bin polyledger
bin="$CARGO_TARGET_DIR/release/polyledger"
out=perf/out/security-overhead-$(date -u +%Y%m%d-%H%M%S)
mkdir -p "$out"
root=$(pwd)

# Two copies of deploy/local-3: keys and configs; data under each copy.
for mode in off on; do
  mkdir -p "$out/$mode"
  cp deploy/local-3/node*.key.pem deploy/admin.key.pem "$out/$mode/"
done
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
  -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
  -addext "basicConstraints=critical,CA:FALSE" \
  -keyout "$out/on/gateway.key.pem" -out "$out/on/gateway.crt.pem" 2>/dev/null
"$bin" token --out "$out/on/load.token" --name load > "$out/on/token.toml"
for i in 1 2 3; do
  python3 - "$i" "$out" <<'PY'
import sys, re
i, out = sys.argv[1], sys.argv[2]
text = open(f"deploy/local-3/node{i}.toml").read()
# The example's own HTTPS and token section goes: each mode sets its own.
text = text[: text.index("\n# The client API over HTTPS")] + "\n" if "# The client API over HTTPS" in text else text
off = text.replace("[node]\n", "[node]\np2p_tls = false\n", 1)
open(f"{out}/off/node{i}.toml", "w").write(off)
roles = ('roles = [{ name = "operator", permissions = ["register_user", '
         '"register_data_account", "write_data", "register_event_account", '
         '"publish_event", "approve_transactions"] }, '
         '{ name = "auditor", permissions = ["approve_transactions"] }]\n')
on = re.sub(r"(created_ms = \d+\n)", lambda m: m.group(1) + roles, text)
on += "\n[gateway]\ntls_cert_file = \"gateway.crt.pem\"\ntls_key_file = \"gateway.key.pem\"\n\n"
on += open(f"{out}/on/token.toml").read().split("\n", 1)[1]
open(f"{out}/on/node{i}.toml", "w").write(on)
PY
done

run() { # mode label
  local mode=$1 label=$2 scheme=http pids=()
  rm -rf "$out/$mode/data"
  for i in 1 2 3; do
    "$bin" node --config "$out/$mode/node$i.toml" 2> "$out/$label-node$i.log" &
    pids+=($!)
  done
  [ "$mode" = on ] && scheme=https
  for port in 8101 8102 8103; do
    for _ in $(seq 150); do curl -sfk "$scheme://localhost:$port/readyz" >/dev/null && break; sleep 0.2; done
  done
  local env=()
  if [ "$mode" = on ]; then
    env=(POLYLEDGER_TOKEN_FILE="$out/on/load.token" POLYLEDGER_CA_FILE="$out/on/gateway.crt.pem")
  fi
  env "${env[@]}" "$bin" loadgen --gateway "$scheme://localhost:8101" \
    --gateway "$scheme://localhost:8102" --gateway "$scheme://localhost:8103" \
    --key "$out/$mode/admin.key.pem" --closed --duration "${DURATION:-10s}" --no-progress \
    --out "$out/$label.json" > "$out/$label.txt" 2>&1 || true
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait "${pids[@]}" 2>/dev/null || true
}

run off off-1
run on on-1
run on on-2
run off off-2

python3 - "$out" <<'PY' | tee "$out/summary.txt"
import json, sys, glob
out = sys.argv[1]
def tps(label):
    report = json.load(open(f"{out}/{label}.json"))
    latency = report["latency"]
    return report["throughput_tps"], report["fail"], f"p50 {latency['p50_ms']:.0f} ms, p99 {latency['p99_ms']:.0f} ms"
rows = {}
for label in ["off-1", "on-1", "on-2", "off-2"]:
    t, fail, lat = tps(label)
    rows[label] = t
    print(f"{label}: {t:,.0f} committed tx/s, {fail} failed, {lat}")
off = (rows["off-1"] + rows["off-2"]) / 2
on = (rows["on-1"] + rows["on-2"]) / 2
print(f"mean off {off:,.0f} tx/s, mean on {on:,.0f} tx/s: on/off = {100 * on / off:.1f}%")
PY
