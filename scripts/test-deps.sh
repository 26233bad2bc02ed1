#!/usr/bin/env bash
# Installs the real servers and tools the tests use, once, into .test-deps/ (git-ignored).
# Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
deps="$PWD/.test-deps"
mkdir -p "$deps"

if ! command -v tmux >/dev/null 2>&1; then
    echo "test-deps: installing tmux" >&2
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq && apt-get install -y -qq tmux >/dev/null
    else
        sudo apt-get update -qq && sudo apt-get install -y -qq tmux >/dev/null
    fi
fi

# The openssl command makes the GitHub App key of the github provider tests (the
# Debian package; any OpenSSL 3.x: `genrsa -traditional`).
if ! command -v openssl >/dev/null 2>&1; then
    echo "test-deps: installing openssl" >&2
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq && apt-get install -y -qq openssl >/dev/null
    else
        sudo apt-get update -qq && sudo apt-get install -y -qq openssl >/dev/null
    fi
fi

# OpenBao (Vault API) for the vault provider tests.
scripts/openbao.sh >/dev/null

# moto (AWS stand-in, pinned by constraints/moto.txt) for the aws provider tests.
scripts/install-moto.sh

# Prism (npm, pinned), the validating proxy in front of the SaaS provider fakes.
scripts/install-prism.sh

# The vendors' Python clients (python-gitlab, cloudflare; PyPI, pinned) that drive those fakes.
scripts/install-pyclients.sh

# PostgreSQL (Debian) for the team store's tests: each test binary starts its own cluster.
scripts/postgres.sh >/dev/null
