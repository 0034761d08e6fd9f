#!/usr/bin/env bash
# Builds the example policy "fastest" (app.py) into target/examples/fastest-python.wasm the way
# a project written by `vane plugin new --lang python` builds (scripts/build-as-project.sh): its
# build.sh installs componentize-py (PyPI) into $VANE_TOOLS_DIR, by default
# target/examples/tools. Needs python3 with pip. Runnable from any folder; safe to run again.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec bash "$here/../../scripts/build-as-project.sh" python "$here/app.py" fastest-python
