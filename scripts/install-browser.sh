#!/usr/bin/env bash
# Installs what the browser tests (tests/browser/) drive: Debian's Chromium (apt, as root, if
# missing) and Playwright for Python (pinned, under target/browser-python, run against that
# Chromium; Playwright's own browser downloads are never used). Does nothing when both are
# there already. Needs python3 with pip.
set -euo pipefail

PLAYWRIGHT_VERSION=1.49.1

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# The tests drive /usr/bin/chromium, where Debian's package puts it.
if [ ! -x /usr/bin/chromium ]; then
    as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
    as_root apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium
fi

bash "$root/scripts/pip-into-target.sh" browser-python "playwright==$PLAYWRIGHT_VERSION"
