#!/usr/bin/env bash
# Installs what the browser tests (tests/browser/) drive: Debian's Chromium (apt, as root, if
# missing) and Playwright for Python (pinned, under target/browser-python, run against that
# Chromium; Playwright's own browser downloads are never used). Does nothing when both are
# there already. Needs python3 with pip.
set -euo pipefail

PLAYWRIGHT_VERSION=1.49.1

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
target="$root/target/browser-python"
python="${PYTHON:-python3}"

# The tests drive /usr/bin/chromium, where Debian's package puts it.
if [ ! -x /usr/bin/chromium ]; then
    as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
    as_root apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium
fi

stamp="$target/.installed"
want="playwright==$PLAYWRIGHT_VERSION $("$python" -c 'import sys; print(sys.version.split()[0])')"
if [[ "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
    echo "installing playwright $PLAYWRIGHT_VERSION into $target" >&2
    rm -rf "$target"
    mkdir -p "$target"
    "$python" -m pip install --quiet --disable-pip-version-check --no-input --root-user-action=ignore \
        --target "$target" "playwright==$PLAYWRIGHT_VERSION"
    echo "$want" >"$stamp"
fi
