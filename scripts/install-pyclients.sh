#!/usr/bin/env bash
# Installs the vendors' own Python clients that drive the provider fakes in the tests
# (python-gitlab), pinned by constraints/pyclients.txt, into .test-deps/pyclients.
# Idempotent: does nothing when the pinned versions are there.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv="${KEYAUDIT_TEST_DEPS:-$root/.test-deps}/pyclients"
if [ -x "$venv/bin/python" ] && "$venv/bin/pip" freeze --disable-pip-version-check 2>/dev/null \
    | grep -qxF "python-gitlab==8.6.0"; then
    exit 0
fi
echo "installing python-gitlab into $venv" >&2
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check \
    -c "$root/constraints/pyclients.txt" "python-gitlab==8.6.0"
