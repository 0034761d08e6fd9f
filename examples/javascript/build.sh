#!/usr/bin/env bash
# Builds the example policy "fastest" (fastest.js) into target/examples/fastest-javascript.wasm
# the way a project written by `vane plugin new --lang js` builds (scripts/build-as-project.sh):
# its build.sh installs componentize-js and jco (npm, pinned in this folder's package.json and
# package-lock.json) into $VANE_TOOLS_DIR, by default target/examples/tools. Needs node and npm.
# Runnable from any folder; safe to run again.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec bash "$here/../../scripts/build-as-project.sh" javascript "$here/fastest.js" fastest-javascript
