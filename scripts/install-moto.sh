#!/usr/bin/env bash
# Installs moto's server (the AWS stand-in of the aws provider tests) into
# .test-deps/moto, pinned by constraints/moto.txt. Idempotent: does nothing when the
# pinned version is already there. Needs python3 with venv (Debian: python3-venv).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv="${KEYAUDIT_TEST_DEPS:-$root/.test-deps}/moto"
want="5.2.5"
if [ -x "$venv/bin/moto_server" ] && "$venv/bin/python" -c "import moto, sys; sys.exit(moto.__version__ != '$want')" 2>/dev/null; then
    exit 0
fi
echo "installing moto[server]==$want into $venv" >&2
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check \
    -c "$root/constraints/moto.txt" "moto[server]==$want"
"$venv/bin/moto_server" --help >/dev/null
