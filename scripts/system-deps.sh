#!/usr/bin/env bash
# Installs the system packages the build and the tests need, if any are missing.
# Debian/Ubuntu (apt-get). Safe to run repeatedly: it does nothing when all are present.
#   pkg-config, libssl-dev: the `openssl` crate (OpenSSL is an SM2 benchmark candidate)
#   openssl:                the OpenSSL interoperability tests call the `openssl` command
#   libclang-dev, g++:      RocksDB's bundled C++ build (bindgen needs libclang)
#   chromium, prometheus (--for-tests, the test command): the explorer page test loads
#                           the page in headless Chromium; the monitoring test runs
#                           promtool (Debian's `prometheus` package) on /metrics and the
#                           alert rules
set -euo pipefail

packages=(pkg-config libssl-dev openssl libclang-dev g++)
[ "${1:-}" = "--for-tests" ] && packages+=(chromium prometheus)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "polyledger: installing system packages: ${missing[*]}" >&2
if ! command -v apt-get >/dev/null 2>&1; then
  echo "polyledger: apt-get not found; install these packages by hand: ${missing[*]}" >&2
  exit 1
fi
sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
"${sudo_cmd[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
