#!/usr/bin/env bash
# Makes (or reuses) a virtualenv with the clients Trove-rs must stay compatible with:
# python-troveclient 8.11 (the `trove` command and the `openstack database` plugin)
# and python-openstackclient, both from PyPI. Prints the virtualenv's path on stdout
# (progress goes to stderr), so callers can write:
#
#     venv=$(scripts/client-venv.sh) && . target/keystone/demo-openrc && "$venv/bin/trove" list
#
# usage: scripts/client-venv.sh [VENV_DIR]      (default: target/venvs/troveclient)
#
# Environment: TROVECLIENT_SPEC (python-troveclient==8.11.*), OPENSTACKCLIENT_SPEC
# (python-openstackclient), PYTHON (python3). The first run downloads and installs;
# later runs find the marker file and return at once. Changing a spec rebuilds it.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
venv=${1:-$repo/target/venvs/troveclient}
python=${PYTHON:-python3}
specs=("${TROVECLIENT_SPEC:-python-troveclient==8.11.*}" "${OPENSTACKCLIENT_SPEC:-python-openstackclient}")
marker="$venv/.installed"

mkdir -p "$(dirname "$venv")"
venv=$(cd "$(dirname "$venv")" && pwd)/$(basename "$venv")
# serialise concurrent callers (parallel test processes, two shells)
exec 9>"$venv.lock"
flock 9

if [ "$(cat "$marker" 2>/dev/null)" != "${specs[*]}" ]; then
    echo "[client-venv] installing ${specs[*]} into $venv" >&2
    rm -rf "$venv"
    "$python" -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "${specs[@]}" >&2
    # fail here, not later in a test, when the entry points are missing
    "$venv/bin/trove" --version >/dev/null 2>&1 || {
        echo "[client-venv] $venv/bin/trove does not run" >&2
        exit 1
    }
    "$venv/bin/openstack" --version >/dev/null
    echo "${specs[*]}" >"$marker"
fi
echo "$venv"
