#!/usr/bin/env bash
# Benchmark: wall time from POST to ACTIVE per datastore beside the bare time to initialise
# and start the same server by hand (crates/trove/benches/create_to_active.rs). Needs root
# (loop devices, mounts, the database service account) and the MariaDB / PostgreSQL servers
# installed; needs no other service (the all-in-one mode runs in the benchmark's process).
#
#   scripts/bench-create.sh                       # 5 runs per datastore
#   BENCH_RUNS=10 scripts/bench-create.sh
#   BENCH_DATASTORES=mariadb scripts/bench-create.sh
#
# The table goes to standard output and, as JSON, to target/bench/create_to_active.json.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
    echo "bench-create.sh: needs root (loop devices, mounts, the database service account)" >&2
    exit 1
fi
if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
fi

exec cargo bench -p trove --bench create_to_active "$@"
