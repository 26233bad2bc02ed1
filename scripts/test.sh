#!/usr/bin/env bash
# Runs every test of keyaudit, after the style checks: rustfmt, and clippy with every
# warning an error (both fail fast, before anything is installed or built for the tests).
# Installs what the tests need when it is missing: tmux (Debian), moto and OpenBao
# (PyPI, pinned, into .test-deps/).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "scripts/test.sh: cargo fmt --check" >&2
if ! cargo fmt --check; then
    echo "scripts/test.sh: FAILED: the code is not formatted as rustfmt formats it (diff above); run \`cargo fmt\` and commit the result" >&2
    exit 1
fi
echo "scripts/test.sh: cargo clippy --all-targets --all-features -- -D warnings" >&2
if ! cargo clippy --all-targets --all-features -- -D warnings; then
    echo "scripts/test.sh: FAILED: clippy has warnings (above); fix them (or allow one with a reason) before the tests run" >&2
    exit 1
fi

scripts/test-deps.sh
export KEYAUDIT_TEST_DEPS="$PWD/.test-deps"
cargo test --release --all-features "$@"
