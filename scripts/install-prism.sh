#!/usr/bin/env bash
# Installs Prism (the validating proxy of the provider tests: every request and answer
# between keyaudit and a provider's fake is checked against the vendor's OpenAPI
# description) into .test-deps/prism, pinned. Idempotent: does nothing when the pinned
# version is there. Needs node (>= 18.20) and npm.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir="${KEYAUDIT_TEST_DEPS:-$root/.test-deps}/prism"
want="5.14.2"
bin="$dir/node_modules/.bin/prism"
if [ -x "$bin" ] && [ "$("$bin" --version 2>/dev/null)" = "$want" ]; then
    exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
    echo "install-prism: npm is missing (Debian: apt-get install nodejs npm)" >&2
    exit 1
fi
echo "installing @stoplight/prism-cli@$want into $dir" >&2
mkdir -p "$dir"
npm install --silent --no-audit --no-fund --prefix "$dir" "@stoplight/prism-cli@$want" >/dev/null
test "$("$bin" --version)" = "$want"
