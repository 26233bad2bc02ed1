#!/usr/bin/env bash
# Makes sure the PostgreSQL server binaries (initdb, pg_ctl, postgres) are installed and
# prints their directory on standard output, e.g. /usr/lib/postgresql/15/bin.
#
#   scripts/postgres.sh            install Debian's `postgresql` when missing, print the bin dir
#
# The team store's tests (tests/team_*.rs) and its benchmark (benches/team.rs) call this
# script themselves and start a private cluster per test binary (initdb as the `postgres`
# OS user, pg_ctl on 127.0.0.1 with a free port); CI may run it first through
# scripts/test-deps.sh.
set -euo pipefail

find_bin() {
    local d
    # The newest major version installed.
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5 -n -r); do
        if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then
            echo "$d"
            return 0
        fi
    done
    return 1
}

if bin="$(find_bin)"; then
    echo "$bin"
    exit 0
fi

echo "postgres.sh: installing Debian's postgresql (initdb is missing)" >&2
if [ "$(id -u)" = 0 ]; then
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
else
    sudo apt-get update -qq >&2
    sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
fi
if bin="$(find_bin)"; then
    echo "$bin"
    exit 0
fi
echo "postgres.sh: postgresql was installed, but no initdb was found under /usr/lib/postgresql/*/bin" >&2
exit 1
