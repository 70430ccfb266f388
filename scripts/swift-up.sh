#!/usr/bin/env bash
# swift-up.sh DIR BASE_PORT
#
# Sets up a real single-node OpenStack Swift (pip package "swift") from
# scratch in DIR and starts it on 127.0.0.1, for the tests of the Swift backup
# store (scripts/swift-test-stack.sh brings it up behind a Keystone):
#   BASE_PORT    proxy-server       (http://127.0.0.1:BASE_PORT/v1/...)
#   BASE_PORT+1  object-server
#   BASE_PORT+2  container-server
#   BASE_PORT+3  account-server
#   BASE_PORT+4  memcached          (Debian package; installed if missing;
#                                    not used with MEMCACHED=none)
# One storage policy (Policy-0), one replica, rings of 2^10 partitions with
# one device "d1" each, built with swift-ring-builder.  Data lives in
# DIR/srv/node/d1 (or $SWIFT_DEVICES/d1); the file system must support user
# xattrs (ext4 and tmpfs do; ext4 holds only ~3.3 KB of object metadata per
# object).  Every start wipes the rings and the data.  Servers run through
# DIR/etc/swift-server.py so that DIR/etc/swift.conf (not
# /etc/swift/swift.conf) is used.  The proxy pipeline has the container and
# account quota middlewares (X-Container-Meta-Quota-Bytes and friends).
#
# Auth ($SWIFT_AUTH):
#   tempauth (default)  GET http://127.0.0.1:BASE_PORT/auth/v1.0 with
#                       X-Auth-User demo:demo, X-Auth-Key demo -> account
#                       AUTH_demo; also admin:admin (reseller admin),
#                       test:tester/testing, test2:tester2/testing2,
#                       test:tester3/testing3 (no .admin).
#   keystone            keystonemiddleware auth_token + swift keystoneauth.
#                       Needs KEYSTONE_OPENRC = the admin-openrc written by
#                       keystone-up.sh.  Registers in that Keystone: user
#                       "swift" (project "service", roles admin + service),
#                       roles ResellerAdmin and swiftoperator, and service
#                       "swift" of type "object-store" with public/internal/
#                       admin endpoints http://127.0.0.1:BASE_PORT/v1/AUTH_%(tenant_id)s
#                       (an existing object-store service is replaced).
#                       Users with role admin, member or swiftoperator on a
#                       project own its account AUTH_<project id>.
#
# Writes DIR/etc/*.conf + rings, DIR/log/*.log, DIR/swift.env (ports, URLs,
# credentials), DIR/swift-openrc (environment for the `swift` CLI as the
# demo user), DIR/swift.pids (one process-group id per line) and DIR/stop.sh.
#
# Stop it with:  DIR/stop.sh     (= kill -- -PGID for each line of swift.pids)
#
# Environment overrides:
#   SWIFT_VENV      existing virtualenv with swift + keystonemiddleware +
#                   python-swiftclient (default: DIR/venv, created if absent)
#   SWIFT_VERSION (2.38.3)  KEYSTONEMIDDLEWARE_VERSION (13.0.1)
#   SWIFTCLIENT_VERSION (4.11.0)  PYTHON (python3)
#   SWIFT_AUTH      tempauth | keystone                      (tempauth)
#   KEYSTONE_OPENRC admin openrc of the Keystone (keystone mode only)
#   SWIFT_SERVICE_PASSWORD  password of the keystone user "swift" (swift)
#   OPERATOR_ROLES  keystoneauth operator_roles (admin, member, swiftoperator)
#   SWIFT_DEVICES   directory that holds the device dir d1 (DIR/srv/node);
#                   e.g. a directory under /dev/shm for tmpfs (RAM)
#   SWIFT_WORKERS   workers per server; 0 = no fork, one process each (1)
#   SWIFT_MAX_FILE_SIZE  [swift-constraints] max_file_size in bytes (Swift's
#                   default 5 GiB); lower it to force segmented uploads
#   MEMCACHED       memcached binary, or "none" (keystone mode only; tempauth
#                   needs memcache)                          (memcached)
#   UPDATER_INTERVAL  seconds between runs of swift-container-updater, which
#                   copies container object counts/bytes into the account
#                   (HEAD account); 0 = do not start it      (5)
set -euo pipefail

if [ $# -lt 2 ]; then
  echo "usage: $0 DIR BASE_PORT" >&2
  exit 2
fi
DIR=$1
BASE=$2
SWIFT_VERSION=${SWIFT_VERSION:-2.38.3}
KEYSTONEMIDDLEWARE_VERSION=${KEYSTONEMIDDLEWARE_VERSION:-13.0.1}
SWIFTCLIENT_VERSION=${SWIFTCLIENT_VERSION:-4.11.0}
PYTHON=${PYTHON:-python3}
SWIFT_AUTH=${SWIFT_AUTH:-tempauth}
SWIFT_SERVICE_PASSWORD=${SWIFT_SERVICE_PASSWORD:-swift}
OPERATOR_ROLES=${OPERATOR_ROLES:-admin, member, swiftoperator}
SWIFT_WORKERS=${SWIFT_WORKERS:-1}
MEMCACHED=${MEMCACHED:-memcached}
UPDATER_INTERVAL=${UPDATER_INTERVAL:-5}

case "$SWIFT_AUTH" in
  tempauth)
    if [ "$MEMCACHED" = none ]; then
      echo "tempauth keeps its tokens in memcache: MEMCACHED=none is not possible" >&2
      exit 2
    fi ;;
  keystone)
    if [ -z "${KEYSTONE_OPENRC:-}" ] || [ ! -r "$KEYSTONE_OPENRC" ]; then
      echo "SWIFT_AUTH=keystone needs KEYSTONE_OPENRC (admin-openrc of keystone-up.sh)" >&2
      exit 2
    fi
    KEYSTONE_OPENRC=$(cd "$(dirname "$KEYSTONE_OPENRC")" && pwd)/$(basename "$KEYSTONE_OPENRC") ;;
  *) echo "SWIFT_AUTH must be tempauth or keystone" >&2; exit 2 ;;
esac

mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
VENV=${SWIFT_VENV:-$DIR/venv}
ETC=$DIR/etc
LOG=$DIR/log
DEVICES=${SWIFT_DEVICES:-$DIR/srv/node}
P_PROXY=$BASE
P_OBJ=$((BASE + 1))
P_CONT=$((BASE + 2))
P_ACC=$((BASE + 3))
P_MC=$((BASE + 4))
PROXY_URL="http://127.0.0.1:$P_PROXY"
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo -n "$@"; fi; }
T0=$(date +%s%N)
ts() {
  local ms=$(( ($(date +%s%N) - T0) / 1000000 ))
  printf '[swift-up %3d.%03ds] %s\n' $((ms / 1000)) $((ms % 1000)) "$*"
}

if [ -e "$DIR/swift.pids" ]; then
  while read -r pg; do
    if [ -n "$pg" ] && kill -0 "$pg" 2>/dev/null; then
      echo "swift already running from $DIR (pgid $pg); run $DIR/stop.sh first" >&2
      exit 1
    fi
  done < "$DIR/swift.pids"
fi
for p in "$P_PROXY" "$P_OBJ" "$P_CONT" "$P_ACC" "$P_MC"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
    echo "port $p on 127.0.0.1 is already in use" >&2
    exit 1
  fi
done

# 1. virtualenv with swift + keystonemiddleware + python-swiftclient
if [ ! -x "$VENV/bin/swift-proxy-server" ] || [ ! -x "$VENV/bin/swift" ] ||
   ! "$VENV/bin/python" -c 'import keystonemiddleware.auth_token' 2>/dev/null; then
  ts "creating venv $VENV and installing swift==$SWIFT_VERSION keystonemiddleware==$KEYSTONEMIDDLEWARE_VERSION python-swiftclient==$SWIFTCLIENT_VERSION"
  if ! "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null; then
    # Debian ships the venv module separately
    ts "installing python3-venv (apt-get)"
    as_root env DEBIAN_FRONTEND=noninteractive timeout 300 \
      apt-get install -y -qq --no-install-recommends python3-venv < /dev/null ||
      { as_root timeout 300 apt-get update -qq < /dev/null &&
        as_root env DEBIAN_FRONTEND=noninteractive timeout 300 \
          apt-get install -y -qq --no-install-recommends python3-venv < /dev/null; }
  fi
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
  PIP_NO_INPUT=1 timeout 900 "$VENV/bin/pip" install -q --disable-pip-version-check \
    "swift==$SWIFT_VERSION" \
    "keystonemiddleware==$KEYSTONEMIDDLEWARE_VERSION" \
    "python-swiftclient==$SWIFTCLIENT_VERSION"
fi
PY=$VENV/bin/python

# 2. memcached (Debian package) unless MEMCACHED=none
if [ "$MEMCACHED" != none ] && ! command -v "$MEMCACHED" >/dev/null 2>&1; then
  ts "installing memcached (apt-get)"
  if [ "$(id -u)" != 0 ]; then
    echo "memcached is missing and installing it needs root (or MEMCACHED=none)" >&2
    exit 1
  fi
  # keep the package's init script from starting a system-wide memcached
  made_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    made_policy=1
  fi
  mkdir -p "$DIR/log"
  rc=0
  {
    if ! apt-cache show memcached >/dev/null 2>&1; then
      timeout 300 apt-get update -qq || true
    fi
    DEBIAN_FRONTEND=noninteractive timeout 300 \
      apt-get install -y -qq --no-install-recommends memcached
  } > "$DIR/log/apt-memcached.log" 2>&1 < /dev/null || rc=$?
  if [ "$made_policy" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
  if [ "$rc" != 0 ]; then cat "$DIR/log/apt-memcached.log" >&2; exit 1; fi
  MEMCACHED=memcached
fi

# 3. config, rings, empty device (fresh every time)
ts "writing config and building rings"
rm -rf "$ETC" "$DEVICES/d1"
mkdir -p "$ETC" "$LOG" "$DEVICES/d1" "$DIR/cache"
USER_NAME=$(id -un)

# Swift reads swift.conf (hash prefix/suffix, storage policies, constraints)
# from the fixed path /etc/swift/swift.conf when its modules are imported;
# the servers' swift_dir option only moves the rings and the hash settings.
# This launcher points that path at DIR/etc before Swift is imported, so
# nothing under /etc is needed or used.  Usage: swift-server.py NAME CONF...
# (NAME: proxy, object, container, account, container-updater)
cat > "$ETC/swift-server.py" <<'EOF'
import importlib
import logging
import os
import sys

import swift.common.utils as utils
import swift.common.utils.logs as swift_logs

utils.SWIFT_CONF_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                     'swift.conf')


class NoSyslog(logging.NullHandler):
    """Swift always adds a syslog handler (/dev/log, or else UDP to
    localhost:514) next to the stderr one that -v adds: log to stderr only."""
    def __init__(self, *args, **kwargs):
        logging.NullHandler.__init__(self)


swift_logs.ThreadSafeSysLogHandler = NoSyslog
name = sys.argv[1]
module = {'proxy': 'swift.proxy.server', 'object': 'swift.obj.server',
          'container': 'swift.container.server',
          'account': 'swift.account.server',
          'container-updater': 'swift.container.updater'}[name]
sys.argv = ['swift-' + name + ('' if '-' in name else '-server')] + sys.argv[2:]
sys.exit(importlib.import_module(module).main())
EOF

{
  cat <<EOF
[swift-hash]
swift_hash_path_prefix = trove-test-prefix
swift_hash_path_suffix = trove-test-suffix

[storage-policy:0]
name = Policy-0
default = yes
EOF
  if [ -n "${SWIFT_MAX_FILE_SIZE:-}" ]; then
    printf '\n[swift-constraints]\nmax_file_size = %s\n' "$SWIFT_MAX_FILE_SIZE"
  fi
} > "$ETC/swift.conf"

common_defaults() {  # $1 = port, $2 = log name
  cat <<EOF
[DEFAULT]
log_name = $2
bind_ip = 127.0.0.1
bind_port = $1
workers = $SWIFT_WORKERS
user = $USER_NAME
swift_dir = $ETC
devices = $DEVICES
mount_check = false
disable_fallocate = true
recon_cache_path = $DIR/cache
log_level = INFO
EOF
}

for kind in object container account; do
  case $kind in
    object) port=$P_OBJ ;; container) port=$P_CONT ;; account) port=$P_ACC ;;
  esac
  {
    common_defaults "$port" "$kind-server"
    cat <<EOF

[pipeline:main]
pipeline = healthcheck $kind-server

[app:$kind-server]
use = egg:swift#$kind

[filter:healthcheck]
use = egg:swift#healthcheck
EOF
    if [ "$kind" = container ]; then
      printf '\n[container-updater]\nlog_name = container-updater\ninterval = %s\n' \
        "$UPDATER_INTERVAL"
    fi
  } > "$ETC/$kind-server.conf"
done

if [ "$SWIFT_AUTH" = tempauth ]; then
  AUTH_FILTERS="tempauth"
else
  AUTH_FILTERS="authtoken keystoneauth"
fi
if [ "$MEMCACHED" != none ]; then CACHE=cache; else CACHE=; fi
{
  common_defaults "$P_PROXY" proxy-server
  cat <<EOF

[pipeline:main]
pipeline = catch_errors gatekeeper healthcheck proxy-logging $CACHE listing_formats bulk tempurl $AUTH_FILTERS copy container-quotas account-quotas slo dlo versioned_writes symlink proxy-logging proxy-server

[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true
allow_account_management = true
# one node only: never "error limit" it (by default one 507, e.g. ENOSPC on
# xattrs, makes the proxy skip the device -> 503 for everything for 60 s)
error_suppression_interval = 0
# generous timeouts for a loaded 2-core machine
conn_timeout = 5
node_timeout = 60

[filter:catch_errors]
use = egg:swift#catch_errors
[filter:gatekeeper]
use = egg:swift#gatekeeper
[filter:healthcheck]
use = egg:swift#healthcheck
[filter:proxy-logging]
use = egg:swift#proxy_logging
[filter:cache]
use = egg:swift#memcache
memcache_servers = 127.0.0.1:$P_MC
[filter:listing_formats]
use = egg:swift#listing_formats
[filter:bulk]
use = egg:swift#bulk
[filter:tempurl]
use = egg:swift#tempurl
[filter:copy]
use = egg:swift#copy
[filter:container-quotas]
use = egg:swift#container_quotas
[filter:account-quotas]
use = egg:swift#account_quotas
[filter:slo]
use = egg:swift#slo
[filter:dlo]
use = egg:swift#dlo
[filter:versioned_writes]
use = egg:swift#versioned_writes
allow_versioned_writes = true
allow_object_versioning = true
[filter:symlink]
use = egg:swift#symlink

[filter:tempauth]
use = egg:swift#tempauth
user_admin_admin = admin .admin .reseller_admin
user_demo_demo = demo .admin
user_test_tester = testing .admin
user_test2_tester2 = testing2 .admin
user_test_tester3 = testing3
EOF
  if [ "$SWIFT_AUTH" = keystone ]; then
    # shellcheck disable=SC1090
    KS_AUTH_URL=$(. "$KEYSTONE_OPENRC" && echo "$OS_AUTH_URL")
    cat <<EOF

[filter:authtoken]
paste.filter_factory = keystonemiddleware.auth_token:filter_factory
www_authenticate_uri = $KS_AUTH_URL
auth_url = $KS_AUTH_URL
auth_type = password
project_domain_id = default
user_domain_id = default
project_name = service
username = swift
password = $SWIFT_SERVICE_PASSWORD
delay_auth_decision = True
include_service_catalog = False
EOF
    if [ "$MEMCACHED" != none ]; then echo "cache = swift.cache"; fi
    cat <<EOF

[filter:keystoneauth]
use = egg:swift#keystoneauth
operator_roles = $OPERATOR_ROLES
reseller_admin_role = ResellerAdmin
EOF
  fi
} > "$ETC/proxy-server.conf"

# rings: 2^10 partitions, 1 replica, min_part_hours 1, one device each;
# the three are built in parallel (each swift-ring-builder call is ~0.4 s)
RB=$VENV/bin/swift-ring-builder
build_ring() {  # kind port
  "$RB" "$ETC/$1.builder" create 10 1 1 &&
    "$RB" "$ETC/$1.builder" add "r1z1-127.0.0.1:$2/d1" 1 &&
    { "$RB" "$ETC/$1.builder" rebalance || [ $? = 1 ]; }  # 1 = warning only
}
build_ring object "$P_OBJ" > "$LOG/ring-object.log" 2>&1 &
build_ring container "$P_CONT" > "$LOG/ring-container.log" 2>&1 &
build_ring account "$P_ACC" > "$LOG/ring-account.log" 2>&1 &
wait
for kind in object container account; do
  if [ ! -s "$ETC/$kind.ring.gz" ]; then
    cat "$LOG/ring-$kind.log" >&2; exit 1
  fi
done

# 4. start the servers, each in its own session (pid = process group id)
: > "$DIR/swift.pids"
cat > "$DIR/stop.sh" <<'EOF'
#!/usr/bin/env bash
# stops every process group listed in swift.pids (written by swift-up.sh)
cd "$(dirname "$0")"
[ -e swift.pids ] || exit 0
while read -r pg; do
  [ -n "$pg" ] && kill -- -"$pg" 2>/dev/null || true
done < swift.pids
for _ in $(seq 1 50); do
  alive=0
  while read -r pg; do
    [ -n "$pg" ] && kill -0 -- -"$pg" 2>/dev/null && alive=1
  done < swift.pids
  [ "$alive" = 0 ] && break
  sleep 0.2
done
while read -r pg; do
  [ -n "$pg" ] && kill -9 -- -"$pg" 2>/dev/null || true
done < swift.pids
rm -f swift.pids
EOF
chmod +x "$DIR/stop.sh"

start() {  # name, command...
  local name=$1; shift
  setsid "$@" > "$LOG/$name.log" 2>&1 < /dev/null &
  echo $! >> "$DIR/swift.pids"
}
fail() {
  echo "$*" >&2
  "$DIR/stop.sh"
  exit 1
}

if [ "$MEMCACHED" != none ]; then
  ts "starting memcached on 127.0.0.1:$P_MC"
  mc_user=()
  if [ "$(id -u)" = 0 ]; then mc_user=(-u root); fi  # memcached refuses root otherwise
  start memcached "$MEMCACHED" -l 127.0.0.1 -p "$P_MC" -U 0 -m 64 "${mc_user[@]}"
fi
ts "starting account/container/object/proxy servers (workers=$SWIFT_WORKERS)"
for kind in account container object proxy; do
  start "$kind-server" "$PY" "$ETC/swift-server.py" "$kind" \
    "$ETC/$kind-server.conf" -v
done
if [ "$UPDATER_INTERVAL" != 0 ]; then
  start container-updater "$PY" "$ETC/swift-server.py" container-updater \
    "$ETC/container-server.conf" -v
fi

wait_healthy() {  # url, what  (60 s at most)
  local deadline=$((SECONDS + 60))
  while [ "$SECONDS" -lt "$deadline" ]; do
    if "$PY" -c 'import sys, urllib.request
urllib.request.urlopen(sys.argv[1], timeout=2).read()' "$1" 2>/dev/null; then
      return 0
    fi
    while read -r pg; do
      kill -0 "$pg" 2>/dev/null || fail "$2 (or another server) died; see $LOG"
    done < "$DIR/swift.pids"
    sleep 0.25
  done
  fail "$2 did not answer on $1 within 60 s; see $LOG"
}
wait_healthy "http://127.0.0.1:$P_ACC/healthcheck" account-server
wait_healthy "http://127.0.0.1:$P_CONT/healthcheck" container-server
wait_healthy "http://127.0.0.1:$P_OBJ/healthcheck" object-server
wait_healthy "$PROXY_URL/healthcheck" proxy-server
ts "proxy answers on $PROXY_URL"

# 5. credentials: tempauth users, or Keystone service/endpoint/user
{
  echo "SWIFT_PROXY_URL=$PROXY_URL"
  echo "SWIFT_AUTH=$SWIFT_AUTH"
  echo "SWIFT_PORTS=proxy:$P_PROXY,object:$P_OBJ,container:$P_CONT,account:$P_ACC,memcached:$P_MC"
} > "$DIR/swift.env"

if [ "$SWIFT_AUTH" = tempauth ]; then
  cat >> "$DIR/swift.env" <<EOF
SWIFT_TEMPAUTH_URL=$PROXY_URL/auth/v1.0
SWIFT_DEMO_ACCOUNT_URL=$PROXY_URL/v1/AUTH_demo
EOF
  cat > "$DIR/swift-openrc" <<EOF
unset OS_AUTH_URL OS_AUTH_TYPE OS_IDENTITY_API_VERSION OS_USERNAME OS_PASSWORD \
  OS_PROJECT_NAME OS_USER_DOMAIN_NAME OS_PROJECT_DOMAIN_NAME OS_STORAGE_URL \
  OS_AUTH_TOKEN
export ST_AUTH=$PROXY_URL/auth/v1.0
export ST_USER=demo:demo
export ST_KEY=demo
EOF
else
  ts "registering object-store service, endpoints and user swift in Keystone"
  # shellcheck disable=SC1090
  ( . "$KEYSTONE_OPENRC"
    "$PY" - "$PROXY_URL" "$SWIFT_SERVICE_PASSWORD" "${OS_REGION_NAME:-RegionOne}" \
      "$DIR/swift.env" <<'EOF'
import os, sys, requests
proxy_url, svc_pw, region, env_file = sys.argv[1:]
auth_url = os.environ['OS_AUTH_URL'].rstrip('/')
body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
    "name": os.environ['OS_USERNAME'],
    "domain": {"name": os.environ.get('OS_USER_DOMAIN_NAME', 'Default')},
    "password": os.environ['OS_PASSWORD']}}},
    "scope": {"project": {"name": os.environ['OS_PROJECT_NAME'], "domain": {
        "name": os.environ.get('OS_PROJECT_DOMAIN_NAME', 'Default')}}}}}
r = requests.post(auth_url + "/auth/tokens", json=body, timeout=30)
r.raise_for_status()
H = {"X-Auth-Token": r.headers["X-Subject-Token"]}


def call(method, path, obj=None):
    rr = requests.request(method, auth_url + path, json=obj, headers=H,
                          timeout=30)
    if rr.status_code >= 400:
        sys.exit("%s %s -> %s %s" % (method, path, rr.status_code, rr.text))
    return rr.json() if rr.content else None


roles = {x["name"]: x["id"] for x in call("GET", "/roles")["roles"]}
for role in ("admin", "member", "service", "swiftoperator", "ResellerAdmin"):
    if role not in roles:
        roles[role] = call("POST", "/roles", {"role": {"name": role}})["role"]["id"]
projects = call("GET", "/projects?name=service&domain_id=default")["projects"]
if projects:
    svc_project = projects[0]["id"]
else:
    svc_project = call("POST", "/projects", {"project": {
        "name": "service", "domain_id": "default", "enabled": True}})["project"]["id"]
users = call("GET", "/users?name=swift&domain_id=default")["users"]
if users:
    uid = users[0]["id"]
    call("PATCH", "/users/" + uid, {"user": {"password": svc_pw, "enabled": True}})
else:
    uid = call("POST", "/users", {"user": {
        "name": "swift", "domain_id": "default", "password": svc_pw,
        "enabled": True, "default_project_id": svc_project}})["user"]["id"]
for role in ("admin", "service"):
    call("PUT", "/projects/%s/users/%s/roles/%s" % (svc_project, uid, roles[role]))
# replace any object-store service (and its endpoints)
for s in call("GET", "/services?type=object-store")["services"]:
    for e in call("GET", "/endpoints?service_id=" + s["id"])["endpoints"]:
        call("DELETE", "/endpoints/" + e["id"])
    call("DELETE", "/services/" + s["id"])
sid = call("POST", "/services", {"service": {
    "name": "swift", "type": "object-store", "description": "Object Storage",
    "enabled": True}})["service"]["id"]
url = proxy_url + "/v1/AUTH_%(tenant_id)s"
for iface in ("public", "internal", "admin"):
    call("POST", "/endpoints", {"endpoint": {
        "service_id": sid, "interface": iface, "region_id": region,
        "url": url, "enabled": True}})
with open(env_file, "a") as f:
    f.write("SWIFT_KEYSTONE_AUTH_URL=%s\n" % auth_url)
    f.write("SWIFT_SERVICE_ID=%s\nSWIFT_SERVICE_USER_ID=%s\n" % (sid, uid))
    f.write("SWIFT_ENDPOINT_TEMPLATE=%s\n" % url)
EOF
  ) || fail "registering swift in Keystone failed"
  demo_rc=$(dirname "$KEYSTONE_OPENRC")/demo-openrc
  {
    echo "unset ST_AUTH ST_USER ST_KEY OS_STORAGE_URL OS_AUTH_TOKEN"
    if [ -r "$demo_rc" ]; then
      grep '^export ' "$demo_rc"
    else
      echo "# no demo-openrc next to $KEYSTONE_OPENRC: using the admin one"
      grep '^export ' "$KEYSTONE_OPENRC"
    fi
  } > "$DIR/swift-openrc"
fi

# 6. self-check: the demo user can HEAD its account (swift CLI + swift-openrc)
if ! timeout 60 bash -c '. "$1"; "$2/bin/swift" stat' _ "$DIR/swift-openrc" \
    "$VENV" > "$LOG/selfcheck.log" 2>&1; then
  cat "$LOG/selfcheck.log" >&2
  fail "self-check (swift stat as demo) failed"
fi
ts "done: $SWIFT_AUTH auth, proxy $PROXY_URL, pgids $(tr '\n' ' ' < "$DIR/swift.pids")"
