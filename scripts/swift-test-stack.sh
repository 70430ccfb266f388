#!/usr/bin/env bash
# Starts the real Keystone + Swift of the backup store tests once and reuses it.
#
# usage: scripts/swift-test-stack.sh [--stop]
#
# Prints the path of the stack's env file on its last line (shell syntax):
#   OS_AUTH_URL          Keystone v3 (its own instance, not the one of the API tests)
#   SWIFT_PROXY_URL      http://127.0.0.1:<proxy port>
#   DEMO_USER, DEMO_PASSWORD, DEMO_PROJECT, DEMO_PROJECT_ID   the tenant the tests act as
#   DEMO_STORAGE_URL     the demo project's account: $SWIFT_PROXY_URL/v1/AUTH_<project id>
# When a stack already runs from the state directory and answers (Keystone and the Swift
# proxy), it is reused at once; otherwise whatever is left of an earlier one is stopped
# and a fresh one is brought up: scripts/keystone-up.sh, then scripts/swift-up.sh in
# Keystone mode (a minute or two the first time, when the virtualenvs are built; some
# seconds afterwards). Concurrent callers wait on a lock file, so parallel tests share one
# bring-up. `--stop` stops both.
#
# Swift runs without memcached here: the proxy then reads a container's usage afresh on
# every request, so a container quota (X-Container-Meta-Quota-Bytes) takes effect at once
# instead of after the container-info cache time.
#
# Environment: SWIFT_TEST_DIR (state directory, default target/swift-stack),
# SWIFT_TEST_BASE (first of its 6 loopback ports, default 29700: Swift proxy, object,
# container, account servers, an unused memcached port, Keystone).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
dir=${SWIFT_TEST_DIR:-$repo/target/swift-stack}
base=${SWIFT_TEST_BASE:-29700}
ks_port=$((base + 5))
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

exec 9>"$dir.lock"
flock 9

stop_stack() {
    [ -x "$dir/swift/stop.sh" ] && "$dir/swift/stop.sh" >/dev/null 2>&1 || true
    if [ -d "$dir/keystone" ]; then
        "$repo/scripts/keystone-up.sh" --dir "$dir/keystone" --stop >/dev/null 2>&1 9>&- || true
    fi
}

if [ "${1:-}" = --stop ]; then
    stop_stack
    rm -f "$dir/env"
    exit 0
fi

answers() { # URL: true when it answers HTTP at all
    curl -s -o /dev/null --max-time 5 "$1"
}

if [ -f "$dir/env" ]; then
    # shellcheck disable=SC1091
    . "$dir/env"
    if answers "$OS_AUTH_URL" && curl -fs -o /dev/null --max-time 5 "$SWIFT_PROXY_URL/healthcheck"; then
        echo "swift-test-stack: reusing the stack in $dir" >&2
        echo "$dir/env"
        exit 0
    fi
fi

echo "swift-test-stack: starting Keystone and Swift in $dir on ports $base..$ks_port (log: $dir.log)" >&2
stop_stack
rm -f "$dir/env"
: >"$dir.log"
if ! setsid "$repo/scripts/keystone-up.sh" --dir "$dir/keystone" --port "$ks_port" \
    --trove-port "$((base + 6))" >>"$dir.log" 2>&1 9>&- </dev/null; then
    echo "swift-test-stack: keystone-up.sh failed; last lines of $dir.log:" >&2
    tail -n 20 "$dir.log" >&2
    exit 1
fi
if ! SWIFT_AUTH=keystone KEYSTONE_OPENRC="$dir/keystone/admin-openrc" MEMCACHED=none \
    UPDATER_INTERVAL=0 SWIFT_VENV="${SWIFT_VENV:-$repo/target/venvs/swift}" \
    setsid "$repo/scripts/swift-up.sh" "$dir/swift" "$base" >>"$dir.log" 2>&1 9>&- </dev/null; then
    echo "swift-test-stack: swift-up.sh failed; last lines of $dir.log:" >&2
    tail -n 20 "$dir.log" >&2
    stop_stack
    exit 1
fi

# shellcheck disable=SC1091
. "$dir/keystone/ids.env"
# swift.env is not shell syntax (its endpoint template has parentheses)
SWIFT_PROXY_URL=$(sed -n 's/^SWIFT_PROXY_URL=//p' "$dir/swift/swift.env")
cat >"$dir/env.tmp" <<ENV
OS_AUTH_URL=http://127.0.0.1:$ks_port/v3
SWIFT_PROXY_URL=$SWIFT_PROXY_URL
DEMO_USER=demo
DEMO_PASSWORD=${DEMO_PASSWORD:-demo}
DEMO_PROJECT=demo
DEMO_PROJECT_ID=$DEMO_PROJECT_ID
DEMO_STORAGE_URL=$SWIFT_PROXY_URL/v1/AUTH_$DEMO_PROJECT_ID
ENV
mv "$dir/env.tmp" "$dir/env"
echo "$dir/env"
