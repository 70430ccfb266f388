#!/usr/bin/env bash
# Starts the real Nova stack of the trove-openstack integration tests once and reuses it.
#
# usage: scripts/nova-test-stack.sh [--stop]
#
# Prints the path of the stack's env file (AUTH_URL, COMPUTE_URL, IMAGE_ID, ...) on its last
# line. When a stack already runs from the state directory and answers (Keystone, Nova and
# nova-compute alive), it is reused at once; otherwise whatever is left of an earlier one is
# stopped and scripts/nova-up.sh brings up a fresh one (about 2 minutes the first time, when
# it builds the virtualenv; under a minute afterwards). Concurrent callers wait on a lock
# file, so parallel tests share one bring-up. `--stop` stops the stack.
#
# Environment: NOVA_TEST_DIR (state directory, default target/nova-stack),
# NOVA_TEST_BASE (first of its loopback ports, default 29500: 11 of them, 12 with Cinder),
# NEUTRON (stub or ovn, passed to nova-up.sh; default stub), CINDER (1: the stack runs a
# real Cinder too, see nova-up.sh; default 1 with NEUTRON=ovn, else 0). A running stack
# without Cinder is not reused when Cinder is wanted; one with Cinder serves either way.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
dir=${NOVA_TEST_DIR:-$repo/target/nova-stack}
base=${NOVA_TEST_BASE:-29500}
wanted=${NEUTRON:-stub}
if [ "$wanted" = ovn ]; then want_cinder=${CINDER:-1}; else want_cinder=${CINDER:-0}; fi
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

exec 9>"$dir.lock"
flock 9

if [ "${1:-}" = --stop ]; then
    [ -x "$dir/stop.sh" ] && "$dir/stop.sh" >/dev/null 2>&1 || true
    rm -f "$dir/env"
    exit 0
fi

answers() { # URL: true when it answers HTTP at all
    curl -s -o /dev/null --max-time 5 "$1"
}
alive() { # pid file: true when the process lives
    [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

if [ -f "$dir/env" ]; then
    # (an env file of a stack without Cinder has no CINDER line)
    unset CINDER VOLUME_URL
    # shellcheck disable=SC1091
    . "$dir/env"
    if [ "${NEUTRON:-stub}" = "$wanted" ] &&
        answers "$AUTH_URL" && answers "$COMPUTE_URL" &&
        alive "$dir/pids/nova-compute.pid" &&
        { [ "$want_cinder" != 1 ] || { [ "${CINDER:-0}" = 1 ] &&
            answers "$VOLUME_URL" && alive "$dir/pids/cinder-volume.pid"; }; }; then
        echo "nova-test-stack: reusing the stack in $dir" >&2
        echo "$dir/env"
        exit 0
    fi
fi

echo "nova-test-stack: starting a stack in $dir on ports $base..$((base + 10 + want_cinder)) (log: $dir.log)" >&2
if [ -x "$dir/stop.sh" ]; then
    "$dir/stop.sh" >/dev/null 2>&1 || true
fi
rm -f "$dir/env"
if ! NEUTRON=$wanted CINDER=$want_cinder setsid "$repo/scripts/nova-up.sh" "$dir" "$base" >"$dir.log" 2>&1 9>&-; then
    echo "nova-test-stack: nova-up.sh failed; last lines of $dir.log:" >&2
    tail -n 20 "$dir.log" >&2
    exit 1
fi
echo "$dir/env"
