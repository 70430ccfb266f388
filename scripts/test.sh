#!/usr/bin/env bash
# The project's test command: installs and starts what the tests need, then runs every
# test of the workspace (unit, integration against the real RabbitMQ, MariaDB and
# PostgreSQL on this host, and the oslo.messaging interoperability tests).
#
#   scripts/test.sh                 # everything
#   scripts/test.sh -p trove-db     # extra arguments go to the test runner
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
    if [ -x "$HOME/.cargo/bin/cargo" ]; then
        export PATH="$HOME/.cargo/bin:$PATH"
    else
        echo "cargo not found: install Rust with rustup (https://rustup.rs) first" >&2
        exit 1
    fi
fi

scripts/ensure-services.sh
# python-troveclient 8.11 and python-openstackclient for the client compatibility tests.
scripts/client-venv.sh >/dev/null

cargo fmt --all -- --check

# The trove-openstack tests bring up a real Nova (and Neutron) stack once per run on
# 127.0.0.1:29500-29610; stop them when the run ends so nothing is left holding the ports.
stop_nova_stacks() {
    scripts/nova-test-stack.sh --stop >/dev/null 2>&1 || true
    NOVA_TEST_DIR=target/nova-stack-ovn scripts/nova-test-stack.sh --stop >/dev/null 2>&1 || true
}
# The trove-backup Swift tests bring up a real Keystone and Swift once per run on
# 127.0.0.1:29700-29705 (scripts/swift-test-stack.sh; it builds its virtualenv and needs no
# system package beyond python3-venv and curl); stop them as well.
stop_test_stacks() {
    stop_nova_stacks
    scripts/swift-test-stack.sh --stop >/dev/null 2>&1 || true
    # The Keystones of the trove-api tests (scripts/keystone-up.sh, one per directory under
    # target/tmp, reused while the run lasts).
    for d in target/tmp/keystone*/; do
        [ -f "$d/keystone.pid" ] && scripts/keystone-up.sh --dir "$d" --stop >/dev/null 2>&1
    done
    true
}
trap stop_test_stacks EXIT

if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --no-fail-fast "$@"
else
    cargo test --workspace --no-fail-fast "$@"
fi
