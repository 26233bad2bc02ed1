#!/usr/bin/env bash
# Installs the vendors' own Python clients that drive the provider fakes in the tests
# (python-gitlab; cloudflare, Cloudflare's official SDK), pinned by
# constraints/pyclients.txt, into .test-deps/pyclients.
# Idempotent: does nothing when the pinned versions are there.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv="${KEYAUDIT_TEST_DEPS:-$root/.test-deps}/pyclients"
clients=("python-gitlab==8.6.0" "cloudflare==5.9.0")
if [ -x "$venv/bin/python" ]; then
    have=$("$venv/bin/pip" freeze --disable-pip-version-check 2>/dev/null || true)
    missing=0
    for c in "${clients[@]}"; do
        grep -qxF "$c" <<<"$have" || missing=1
    done
    [ "$missing" = 0 ] && exit 0
fi
echo "installing ${clients[*]} into $venv" >&2
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check \
    -c "$root/constraints/pyclients.txt" "${clients[@]}"
