#!/usr/bin/env bash
# Makes sure the PostgreSQL server binaries the store tests run throwaway clusters from are
# installed (/usr/lib/postgresql/<version>/bin: initdb, pg_ctl, postgres), and `runuser` for
# running them as the `postgres` user when the tests run as root. Idempotent.
set -euo pipefail
if compgen -G "/usr/lib/postgresql/*/bin/initdb" > /dev/null && command -v runuser > /dev/null; then
    exit 0
fi
if [[ $(id -u) -eq 0 ]] && command -v apt-get > /dev/null; then
    echo "installing the PostgreSQL server binaries (apt-get install postgresql)"
    # Do not start the distribution's own cluster: the tests use private clusters only.
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql util-linux > /dev/null
    rm -f /usr/sbin/policy-rc.d
    exit 0
fi
echo "the store tests need the PostgreSQL server binaries in /usr/lib/postgresql/<version>/bin:" >&2
echo "install them (Debian/Ubuntu: sudo apt-get install postgresql)" >&2
exit 1
