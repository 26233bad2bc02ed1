#!/usr/bin/env bash
# Runs every test of keyaudit. Installs what the tests need when it is missing:
# tmux (Debian), moto and OpenBao (PyPI, pinned, into .test-deps/).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/test-deps.sh
export KEYAUDIT_TEST_DEPS="$PWD/.test-deps"
cargo test --release --all-features "$@"
