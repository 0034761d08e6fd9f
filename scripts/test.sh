#!/usr/bin/env bash
# Sets up and runs every test: builds the plugins, the example policies in every language (each
# build installs its tools) and vane, then the unit and end-to-end tests.
set -euo pipefail
cd "$(dirname "$0")/.."
# The end-to-end tests run curl (the TLS tests speak to vane as a user's curl does) and
# dnsmasq (the DNS server the discovery tests change records on).
missing=()
command -v curl >/dev/null || missing+=(curl ca-certificates)
command -v dnsmasq >/dev/null || [ -x /usr/sbin/dnsmasq ] || missing+=(dnsmasq-base)
if [ "${#missing[@]}" -gt 0 ]; then
    as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
    as_root apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
bash scripts/build-plugins.sh
# The gRPC tests run a real gRPC server and client (grpcio, from PyPI).
bash scripts/install-grpc.sh
# The browser tests drive Debian's Chromium with Playwright (from PyPI).
bash scripts/install-browser.sh
bash scripts/build-examples.sh
# One build of vane and every test target together, so the binary the end-to-end tests run and
# the tests themselves share one set of features and nothing is compiled twice.
cargo build --all-targets
cargo test "$@"
