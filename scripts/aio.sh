#!/usr/bin/env bash
# Runs Trove-rs all-in-one: API (noauth, 127.0.0.1:8779), taskmanager, conductor and a guest
# agent per instance in one process, with a SQLite control database and the local compute
# driver under ./var/aio. On first start it registers the MariaDB and PostgreSQL servers
# installed on this machine (installing them from Debian's packages when missing and
# allowed) and four flavors, then prints how to use it. Ctrl-C stops it; running it again
# picks the instances up where they were.
#
#   scripts/aio.sh                       # state under ./var/aio
#   scripts/aio.sh --state-dir /srv/aio  # extra arguments go to trove-aio
#   scripts/aio.sh --config-file my.conf # operator settings on top of the defaults
#
# As root, instances get ext4 volumes on loop devices of exactly their size; otherwise
# their volumes are plain directories whose size is not enforced.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
fi

missing=()
command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ] || missing+=(mariadb-server mariadb-client)
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || missing+=(postgresql)
if [ ${#missing[@]} -gt 0 ] && command -v apt-get >/dev/null 2>&1; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "installing ${missing[*]} (the database servers instances run)" >&2
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

cargo build --quiet --bin trove-aio
has_state_dir=false
for a in "$@"; do [ "$a" = "--state-dir" ] && has_state_dir=true; done
if $has_state_dir; then
    exec target/debug/trove-aio "$@"
fi
exec target/debug/trove-aio --state-dir var/aio "$@"
