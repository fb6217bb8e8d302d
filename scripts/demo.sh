#!/usr/bin/env bash
# The main job of the README: installs what is missing, builds the release binary and
# runs `polyledger demo` — an embedded single node (RocksDB, solo consensus, eight
# category ledgers) driven by the load generator over HTTP for about 20 seconds.
# Arguments go to `polyledger demo` (see `--help`), e.g. scripts/demo.sh --embedded.
#
# Build artefacts go to $CARGO_TARGET_DIR (default ~/.cache/polyledger-target). The first
# release build compiles RocksDB's C++ (10-20 minutes on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/system-deps.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/polyledger-target}"
cargo build --release --locked -p cli --bin polyledger
exec "$CARGO_TARGET_DIR/release/polyledger" demo "$@"
