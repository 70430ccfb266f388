#!/usr/bin/env bash
# Runs a real OpenStack Keystone (the "keystone" package from PyPI) on 127.0.0.1 for
# development and for the trove-api authentication tests.
#
# usage: scripts/keystone-up.sh [--dir DIR] [--port PORT|auto] [--trove-port PORT] [--reset]
#        scripts/keystone-up.sh --dir DIR --stop
#
#   --dir DIR          state directory (default: target/keystone)
#   --port PORT        Keystone listens on 127.0.0.1:PORT (default: 5000); "auto" keeps
#                      the port of an earlier setup in DIR, else picks a free one
#   --trove-port PORT  port of the Trove API in the catalog (default: 8779)
#   --reset            throw away the database and keys in DIR and set up afresh
#   --stop             stop the Keystone started from DIR, keep its state
#
# What it sets up (SQLite database and Fernet keys inside DIR, served by gunicorn):
#   * user admin / $ADMIN_PASSWORD (admin) in project admin, role admin
#   * user demo  / $DEMO_PASSWORD (demo) in project demo, roles member and reader
#   * user trove / $SERVICE_PASSWORD (trove) in project service, roles service and
#     admin: the account trove-api uses to validate user tokens ([keystone_authtoken])
#   * service "trove" of type "database" with public, internal and admin endpoints
#     http://127.0.0.1:<trove port>/v1.0/%(tenant_id)s in region $REGION (RegionOne)
# and writes into DIR:
#   keystone.env   OS_AUTH_URL, KEYSTONE_PORT, TROVE_PORT, KEYSTONE_PID (shell syntax)
#   ids.env        project and user ids (ADMIN_PROJECT_ID=..., DEMO_USER_ID=..., ...)
#   admin-openrc, demo-openrc, service-openrc   credentials for the OpenStack clients
#   keystone.pid (gunicorn's process group), keystone.log, manage.log
#
# Idempotent: when Keystone already runs from DIR on PORT it only prints the summary;
# a different PORT or trove port than the earlier setup in DIR starts over from nothing;
# when DIR holds a finished setup for the same ports it just starts gunicorn again
# (a second or two); otherwise it sets everything up from nothing. The virtualenv
# with keystone and gunicorn is built once and reused (default target/venvs/keystone).
#
# Environment: KEYSTONE_VENV (virtualenv path), KEYSTONE_VERSION (30.0.0), PYTHON
# (python3), ADMIN_PASSWORD, DEMO_PASSWORD, SERVICE_PASSWORD, REGION, WORKERS (1).
#
# Keystone 30 has no keystone-wsgi-public script and reads sys.argv through oslo.config
# when it is imported, so gunicorn loads a two-line shim (DIR/keystone_app.py) that
# clears the command line before importing keystone.wsgi.api.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
dir=$repo/target/keystone
port=5000
trove_port=8779
reset=0
stop=0
while [ $# -gt 0 ]; do
    case $1 in
        --dir) dir=$2; shift 2 ;;
        --port) port=$2; shift 2 ;;
        --trove-port) trove_port=$2; shift 2 ;;
        --reset) reset=1; shift ;;
        --stop) stop=1; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "keystone-up: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
done

version=${KEYSTONE_VERSION:-30.0.0}
python=${PYTHON:-python3}
venv=${KEYSTONE_VENV:-$repo/target/venvs/keystone}
admin_pw=${ADMIN_PASSWORD:-admin}
demo_pw=${DEMO_PASSWORD:-demo}
service_pw=${SERVICE_PASSWORD:-trove}
region=${REGION:-RegionOne}
# One worker by default: SQLite allows one writer, and password logins write (last active
# time), so concurrent logins across workers fail with "database is locked" otherwise.
workers=${WORKERS:-1}

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

# One invocation at a time per state directory (fd 8 stays closed in gunicorn).
exec 8>"$dir/.lock"
flock 8

running_pid() { # prints the pid when the gunicorn started from DIR is alive
    local pid cmd
    [ -f "$dir/keystone.pid" ] || return 1
    pid=$(cat "$dir/keystone.pid")
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
    # after a reboot the number may belong to some other process: check it is ours
    cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
    case $cmd in *gunicorn*"--chdir $dir "*) echo "$pid" ;; *) return 1 ;; esac
}
port_taken() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
if [ "$port" = auto ]; then
    # keep the port of an earlier setup in DIR while it is ours or free
    port=$(sed -n 's/^KEYSTONE_PORT=//p' "$dir/keystone.env" 2>/dev/null || true)
    if [ -n "$port" ] && port_taken "$port" && ! running_pid >/dev/null; then
        port=""
    fi
    if [ -z "$port" ]; then
        port=$("$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    fi
fi
auth_url="http://127.0.0.1:$port/v3"
trove_url="http://127.0.0.1:$trove_port/v1.0/%(tenant_id)s"
setup_id="port=$port trove_url=$trove_url version=$version"

start_ns=$(date +%s%N)
say() {
    local ms=$((($(date +%s%N) - start_ns) / 1000000))
    printf '[keystone-up %d.%03ds] %s\n' $((ms / 1000)) $((ms % 1000)) "$*" >&2
}

answers() { # true when Keystone answers GET /v3 on our port
    "$venv/bin/python" - "$auth_url" <<'PY' >/dev/null 2>&1
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=2) as reply:
    sys.exit(0 if reply.status == 200 else 1)
PY
}

stop_keystone() {
    local pid
    if pid=$(running_pid); then
        say "stopping keystone (process group $pid)"
        kill -- -"$pid" 2>/dev/null || kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 -- -"$pid" 2>/dev/null || true
    fi
    rm -f "$dir/keystone.pid"
}

summary() {
    echo "OS_AUTH_URL=$auth_url"
    echo "KEYSTONE_DIR=$dir"
    cat "$dir/ids.env"
    echo "openrc files: $dir/admin-openrc $dir/demo-openrc $dir/service-openrc"
}

if [ "$stop" = 1 ]; then
    stop_keystone
    exit 0
fi

done_id=$(cat "$dir/.setup-done" 2>/dev/null || true)
if [ "$reset" = 1 ] || [ "$done_id" != "$setup_id" ]; then
    stop_keystone
fi
if pid=$(running_pid); then
    if answers; then
        say "keystone already runs from $dir (pid $pid) on $auth_url"
        summary
        exit 0
    fi
    say "keystone from $dir (pid $pid) does not answer; restarting it"
    stop_keystone
fi
if port_taken "$port"; then
    echo "keystone-up: 127.0.0.1:$port is already taken by another process" >&2
    exit 1
fi

# --- virtualenv: built once, shared by every state directory -------------------------
mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9
marker="$venv/.keystone-$version-installed"
if [ ! -f "$marker" ]; then
    say "building $venv (keystone==$version, gunicorn); this takes a few minutes once"
    rm -rf "$venv"
    "$python" -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "keystone==$version" gunicorn
    touch "$marker"
fi
flock -u 9

# --- database, keys and bootstrap (only when DIR has no finished setup) ------------
if [ "$done_id" != "$setup_id" ] || [ "$reset" = 1 ]; then
    say "setting up a new keystone in $dir"
    rm -rf "$dir/fernet-keys" "$dir/credential-keys" "$dir/keystone.db" \
        "$dir/.setup-done" "$dir/ids.env"
    mkdir -p "$dir/fernet-keys" "$dir/credential-keys"
    chmod 700 "$dir/fernet-keys" "$dir/credential-keys"
    cat >"$dir/keystone.conf" <<CONF
[DEFAULT]
use_stderr = true
[database]
connection = sqlite:///$dir/keystone.db?timeout=60
[token]
provider = fernet
# one day: tests revoke tokens explicitly instead of waiting for them to expire
expiration = 86400
[fernet_tokens]
key_repository = $dir/fernet-keys
[fernet_receipts]
key_repository = $dir/fernet-keys
[credential]
key_repository = $dir/credential-keys
[identity]
# the cheapest bcrypt cost: test suites log in often
password_hash_rounds = 4
[cache]
enabled = false
CONF
    manage() { "$venv/bin/keystone-manage" --config-file "$dir/keystone.conf" "$@" >>"$dir/manage.log" 2>&1; }
    owner=(--keystone-user "$(id -un)" --keystone-group "$(id -gn)")
    say "keystone-manage db_sync"
    manage db_sync
    manage fernet_setup "${owner[@]}"
    manage credential_setup "${owner[@]}"
    say "keystone-manage bootstrap"
    manage bootstrap --bootstrap-username admin --bootstrap-password "$admin_pw" \
        --bootstrap-project-name admin --bootstrap-role-name admin \
        --bootstrap-service-name keystone --bootstrap-region-id "$region" \
        --bootstrap-admin-url "$auth_url" --bootstrap-internal-url "$auth_url" \
        --bootstrap-public-url "$auth_url"
fi

# gunicorn's own arguments must not reach oslo.config inside keystone
cat >"$dir/keystone_app.py" <<'PY'
import sys
sys.argv = sys.argv[:1]
from keystone.wsgi.api import application  # noqa: E402,F401
PY

# --- start gunicorn in its own session: the pid is also the process group ----------
say "starting gunicorn on 127.0.0.1:$port"
OS_KEYSTONE_CONFIG_DIR=$dir setsid "$venv/bin/gunicorn" --chdir "$dir" \
    --bind "127.0.0.1:$port" --workers "$workers" --timeout 120 \
    keystone_app:application >>"$dir/keystone.log" 2>&1 </dev/null 8>&- 9>&- &
pid=$!
echo "$pid" >"$dir/keystone.pid"
for _ in $(seq 1 240); do
    answers && break
    if ! kill -0 "$pid" 2>/dev/null; then
        echo "keystone-up: gunicorn exited; see $dir/keystone.log" >&2
        exit 1
    fi
    sleep 0.25
done
answers || { echo "keystone-up: no answer from $auth_url; see $dir/keystone.log" >&2; exit 1; }
say "keystone answers on $auth_url"

# --- projects, users, roles and the database service (plain REST) -----------------
if [ ! -f "$dir/ids.env" ]; then
    say "creating projects, users and the database service"
    "$venv/bin/python" - "$auth_url" "$region" "$trove_url" "$dir/ids.env" \
        "$admin_pw" "$demo_pw" "$service_pw" <<'PY'
import json, sys, urllib.error, urllib.request

auth_url, region, trove_url, ids_path, admin_pw, demo_pw, service_pw = sys.argv[1:]
token = None


def call(method, path, body=None):
    """One Keystone request; returns (headers, decoded JSON or None)."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(auth_url + path, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("X-Auth-Token", token)
    try:
        with urllib.request.urlopen(req, timeout=60) as reply:
            raw = reply.read()
            return reply.headers, (json.loads(raw) if raw else None)
    except urllib.error.HTTPError as err:
        sys.exit("%s %s failed: %s %s" % (method, path, err.code, err.read().decode()))


def find_or_create(collection, key, name, attrs, query=""):
    """Returns the id of the named entity, creating it when missing."""
    _, found = call("GET", "/%s?name=%s%s" % (collection, name, query))
    if found[collection]:
        return found[collection][0]["id"]
    _, made = call("POST", "/" + collection, {key: dict(attrs, name=name)})
    return made[key]["id"]


login = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
    "name": "admin", "domain": {"id": "default"}, "password": admin_pw}}},
    "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}}
headers, reply = call("POST", "/auth/tokens", login)
token = headers["X-Subject-Token"]
ids = {"ADMIN_PROJECT_ID": reply["token"]["project"]["id"],
       "ADMIN_USER_ID": reply["token"]["user"]["id"]}

roles = {r: find_or_create("roles", "role", r, {})
         for r in ("admin", "member", "reader", "service")}
service_id = find_or_create("services", "service", "trove",
                            {"type": "database", "description": "Database",
                             "enabled": True})
_, existing = call("GET", "/endpoints?service_id=" + service_id)
have = {e["interface"] for e in existing["endpoints"]}
for interface in ("public", "internal", "admin"):
    if interface not in have:
        call("POST", "/endpoints", {"endpoint": {
            "service_id": service_id, "interface": interface,
            "region_id": region, "url": trove_url, "enabled": True}})

accounts = (("demo", "demo", demo_pw, ("member", "reader")),
            ("service", "trove", service_pw, ("service", "admin")))
for project, user, password, user_roles in accounts:
    project_id = find_or_create("projects", "project", project,
                                {"domain_id": "default", "enabled": True})
    user_id = find_or_create("users", "user", user,
                             {"domain_id": "default", "password": password,
                              "enabled": True, "default_project_id": project_id})
    for role in user_roles:
        call("PUT", "/projects/%s/users/%s/roles/%s" % (project_id, user_id, roles[role]))
    ids[project.upper() + "_PROJECT_ID"] = project_id
    ids[user.upper() + "_USER_ID"] = user_id

with open(ids_path + ".tmp", "w") as out:
    for name in sorted(ids):
        out.write("%s=%s\n" % (name, ids[name]))
PY
    mv "$dir/ids.env.tmp" "$dir/ids.env"
fi

openrc() { # openrc FILE USER PASSWORD PROJECT
    cat >"$1" <<RC
export OS_AUTH_URL=$auth_url
export OS_AUTH_TYPE=password
export OS_IDENTITY_API_VERSION=3
export OS_USERNAME=$2
export OS_PASSWORD=$3
export OS_PROJECT_NAME=$4
export OS_USER_DOMAIN_NAME=Default
export OS_PROJECT_DOMAIN_NAME=Default
export OS_REGION_NAME=$region
export OS_INTERFACE=public
RC
}
openrc "$dir/admin-openrc" admin "$admin_pw" admin
openrc "$dir/demo-openrc" demo "$demo_pw" demo
openrc "$dir/service-openrc" trove "$service_pw" service
cat >"$dir/keystone.env" <<ENV
OS_AUTH_URL=$auth_url
KEYSTONE_PORT=$port
TROVE_PORT=$trove_port
KEYSTONE_PID=$pid
ENV
echo "$setup_id" >"$dir/.setup-done"
say "done: keystone pid $pid serves $auth_url"
summary
