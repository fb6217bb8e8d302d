#!/usr/bin/env bash
# The test command of the README (and of CI): installs what is missing, then checks
# formatting, lints and runs every test of the workspace.
#
# Build artefacts go to $CARGO_TARGET_DIR (default ~/.cache/polyledger-target) so that a
# fresh clone reuses earlier builds.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/system-deps.sh --for-tests
rustup component add rustfmt clippy >/dev/null 2>&1 || true
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/polyledger-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo test"
cargo test --workspace --locked "$@"
echo "== SM2 tests again on the portable field arithmetic (POLYLEDGER_SM2_FIELD=portable)"
POLYLEDGER_SM2_FIELD=portable cargo test -p crypto-parallel --locked --test sm2_fast "$@"
# Lints last, so test failures show first. Clippy reuses the RocksDB build of the tests
# (dependencies are built without debug info, like build scripts: see Cargo.toml).
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
