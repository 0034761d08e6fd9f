#!/usr/bin/env bash
# build-as-project.sh LANGUAGE SOURCE NAME: builds the policy SOURCE, written in LANGUAGE (c,
# python or javascript), into target/examples/NAME.wasm exactly as a project that
# `vane plugin new NAME --lang LANGUAGE` writes builds: in target/examples/NAME/, with that
# project's build.sh (host/templates/LANGUAGE/build.sh) and vane's WIT, its tools in
# $VANE_TOOLS_DIR (default target/examples/tools). So the examples' builds run the scripts new
# projects get.
set -euo pipefail

language=$1
source=$2
name=$3
# The project's folder is emptied first: a name must be one, and not the tool cache's.
if [[ ! "$name" =~ ^[a-z][a-z0-9-]*$ || "$name" = tools ]]; then
    echo "build-as-project.sh: $name cannot name a project" >&2
    exit 1
fi
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
case "$language" in
    c) policy=policy.c ;;
    python) policy=app.py ;;
    javascript) policy=policy.js ;;
    *) echo "build-as-project.sh: no project template for $language" >&2; exit 1 ;;
esac

project="$root/target/examples/$name"
rm -rf "$project"
mkdir -p "$project/wit"
sed "s/{{name}}/$name/g" "$root/host/templates/$language/build.sh" >"$project/build.sh"
cp "$root/plugins/kit/wit/balancer.wit" "$project/wit/"
cp "$source" "$project/$policy"
if [ "$language" = javascript ]; then
    cp "$root/examples/javascript/package.json" "$root/examples/javascript/package-lock.json" \
        "$project/"
fi
VANE_TOOLS_DIR="${VANE_TOOLS_DIR:-$root/target/examples/tools}" bash "$project/build.sh"
cp "$project/$name.wasm" "$root/target/examples/$name.wasm"
