#!/usr/bin/env bash
# Installs the pinned toolchains that build Python and JavaScript tools,
# from PyPI and npm, for the language tests (and for trying `airlock build`
# by hand). Idempotent: a second run with unchanged pins does nothing.
#
#   target/lang-toolchains/python   a venv with componentize-py (tests/languages/requirements.txt)
#   tests/languages/node_modules    componentize-js, preview2-shim, esbuild (tests/languages/package-lock.json)
#
# Put target/lang-toolchains/python/bin and tests/languages/node_modules/.bin
# on PATH to use them with `airlock build`.
#
#   bash scripts/lang-toolchains.sh
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
pins="$root/tests/languages"

venv="$root/target/lang-toolchains/python"
if [ ! -x "$venv/bin/componentize-py" ] || ! cmp -s "$pins/requirements.txt" "$venv/.pins"; then
    echo "installing componentize-py into $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$pins/requirements.txt"
    cp "$pins/requirements.txt" "$venv/.pins"
fi

modules="$pins/node_modules"
if [ ! -x "$modules/.bin/componentize-js" ] || [ ! -x "$modules/.bin/esbuild" ] \
    || ! cmp -s "$pins/package-lock.json" "$modules/.pins"; then
    echo "installing componentize-js and esbuild into $modules" >&2
    (cd "$pins" && npm ci --no-audit --no-fund --silent)
    cp "$pins/package-lock.json" "$modules/.pins"
fi
