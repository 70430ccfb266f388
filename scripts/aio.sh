#!/usr/bin/env bash
# Runs Trove-rs all-in-one with embedded defaults: a SQLite control database under
# ./var/aio, the datastores whose servers are installed on this machine registered with
# their validation rules and a default version, and a few flavors for the local compute
# driver. Safe to run again: every step is idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
state="$root/var/aio"
mkdir -p "$state"

conf="$state/trove.conf"
if [ ! -f "$conf" ]; then
    cat > "$conf" <<CONF
[DEFAULT]
control_exchange = trove

[database]
connection = sqlite:///$state/trove.sqlite
CONF
fi

cargo build --quiet --bin trove-manage
manage() { "$root/target/debug/trove-manage" --config-file "$conf" "$@"; }

manage db_sync

register() { # register DATASTORE MANAGER VERSION_NAME VERSION_NUMBER RULES
    local ds=$1 manager=$2 name=$3 number=$4 rules=$5
    manage datastore_update "$ds" ""
    manage datastore_version_update "$ds" "$name" "$manager" "" "" 1 --version "$number"
    manage datastore_update "$ds" "$name"
    manage db_load_datastore_config_parameters "$ds" "$name" "$rules" --version "$number"
    echo "registered $ds $name ($number)"
}

if command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ]; then
    number=$( (mariadbd --version 2>/dev/null || /usr/sbin/mariadbd --version) \
        | sed -n 's/.*Ver \([0-9][0-9.]*\).*/\1/p')
    register mariadb mariadb "$(echo "$number" | cut -d. -f1,2)" "$number" \
        "$root/etc/validation-rules/mariadb.json"
fi
for bin in /usr/lib/postgresql/*/bin/postgres; do
    [ -x "$bin" ] || continue
    number=$("$bin" --version | sed -n 's/.*(PostgreSQL) \([0-9][0-9.]*\).*/\1/p')
    register postgresql postgresql "$(echo "$number" | cut -d. -f1)" "$number" \
        "$root/etc/validation-rules/postgresql.json"
done

# Flavors for the local compute driver: id name RAM(MB) vCPUs disk(GB).
existing=$(manage flavor_list | awk 'NR > 1 {print $1}')
while read -r id name ram vcpus disk; do
    if ! grep -qx "$id" <<<"$existing"; then
        manage flavor_create "$name" "$ram" "$vcpus" "$disk" --id "$id" >/dev/null
    fi
done <<FLAVORS
1 m1.tiny 512 1 1
2 m1.small 1024 1 5
3 m1.medium 2048 2 10
4 m1.large 4096 4 20
FLAVORS

manage flavor_list
echo
echo "Control database: $state/trove.sqlite (config: $conf)"
