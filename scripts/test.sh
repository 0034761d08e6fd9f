#!/usr/bin/env bash
# Sets up and runs every test: builds the plugins, the example policies in every language (each
# build installs its tools) and vane, then the unit and end-to-end tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build-plugins.sh
bash scripts/build-examples.sh
# One build of vane and every test target together, so the binary the end-to-end tests run and
# the tests themselves share one set of features and nothing is compiled twice.
cargo build --all-targets
cargo test "$@"
