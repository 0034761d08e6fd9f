#!/usr/bin/env bash
# The soak (not part of CI): the release `vane` binary for MINUTES (default 20) under steady
# load, while backends are killed and revived every few seconds, the plugin is swapped every
# 10 s among round-robin, least-conn and a misbehaving one (by a config reload), and health
# flaps. Prints requests, failures, p50/p99, resident memory, open file descriptors and
# runtime tasks per minute; fails if an idempotent request failed or any of those kept growing.
#
#   bash scripts/soak.sh [MINUTES] [CLIENTS]
set -euo pipefail
cd "$(dirname "$0")/.."
minutes="${1:-20}"
clients="${2:-16}"
bash scripts/build-plugins.sh
cargo build --release -p vane -p vane-e2e --bin vane --bin soak
exec target/release/soak --minutes "$minutes" --clients "$clients" --vane target/release/vane
