#!/usr/bin/env bash
# nova-up.sh DIR BASE_PORT   (the project copy of the shared nova-fake-up.sh recipe)
#
# Brings up a real, single-node OpenStack compute control plane on loopback,
# from scratch, in DIR: Keystone (nova-keystone-up.sh beside this script), private
# MariaDB and RabbitMQ instances (data in DIR), Placement, Glance (file
# store), nova-api, nova-conductor, nova-scheduler and nova-compute with
# Nova's own fake virt driver.  No hypervisor: a "guest" is a Python object
# in the nova-compute process, but every API call, RPC, scheduling decision,
# placement allocation, DB row and state transition is real Nova 34.0.0.
#
# Ports (all 127.0.0.1):
#   BASE+0 keystone   BASE+1 placement   BASE+2 nova-api (compute, /v2.1)
#   BASE+3 glance     BASE+4 mariadb     BASE+5 rabbitmq (amqp)
#   BASE+6 rabbitmq erlang distribution  BASE+7 epmd
#   BASE+8 network API: Neutron stand-in or real Neutron (see NEUTRON below)
#   BASE+9 OVN northbound DB, BASE+10 OVN southbound DB (NEUTRON=ovn only)
#   BASE+11 cinder-api (block-storage / volumev3, /v3; CINDER=1 only)
#
# Afterwards DIR holds:
#   keystone/admin-openrc, keystone/demo-openrc   (OS_* variables; source them)
#   env          URLs, ports, FLAVOR_TINY_ID=1 FLAVOR_SMALL_ID=2 IMAGE_ID, ids
#   pids/*.pid   one file per started process (gunicorn ones lead a group)
#   logs/*.log   one log per service
#   stop.sh      stops everything this script started, by PID, bounded
# Running it again on the same DIR starts from fresh state (venv kept).
# It boots no server: nova-fake-smoke.py DIR does (see nova-fake-notes.md).
#
# Environment:
#   NOVA_VENV       existing virtualenv that has the packages below (default
#                   DIR/venv, created and pip-installed if absent)
#   PYTHON          interpreter for a new venv (default python3; >= 3.11)
#   COMPUTE_DRIVER  fake.FakeDriverWithoutFakeNodes (default): FakeDriver
#                   (1000 vCPU, 800000 MB RAM, 600000 GB disk) with a node
#                   UUID kept in DIR/nova/state/compute_id, so nova-compute
#                   can be restarted; fake.FakeDriver and
#                   fake.SmallFakeDriver (2 vCPU, 8192 MB, 1028 GB) work too
#                   but draw a new node UUID per process: a restarted
#                   nova-compute refuses to start ("No local node identity").
#   NEUTRON         stub (default): a ~40-line stand-in (DIR/neutron_stub.py)
#                   for the read-only Neutron calls Nova makes for servers
#                   booted with networks "none" (GET /v2.0/ports?device_id=,
#                   /v2.0/networks, /v2.0/extensions: all empty lists);
#                   ovn: real Neutron 29.0.0 (ML2/OVN; API under gunicorn)
#                   with private OVN NB/SB ovsdb-servers and ovn-northd
#                   (Debian ovn-central); no ovn-controller: a shell loop
#                   (DIR/ovn/fake-ovn-controller.sh) keeps a chassis named
#                   fake-compute-1 "alive" so ports bind (vif_type ovs) and
#                   servers boot with networks/ports; no packets flow.
#                   Creates shared network "shared-net" 10.199.0.0/24
#                   (NETWORK_ID in DIR/env).
#                   none: register no network endpoint; then GET
#                   /servers/{id}, /servers/detail and delete answer 500
#                   (EndpointNotFound) for every server
#   SERVICE_PASSWORD password of the nova/placement/glance/neutron service
#                   users in project "service" (default "service")
#   ADMIN_PASSWORD, DEMO_PASSWORD, REGION: passed on to keystone-up.sh;
#   TROVE_URL       its database endpoint (keystone-up.sh's default if unset)
#   CINDER          1: also a real Cinder 29.0.0 (2026.2): cinder-api under
#                   gunicorn on BASE+11, cinder-scheduler and cinder-volume
#                   with the fake back end shipped in the cinder package
#                   (cinder.tests.fake_driver.FakeLoggingVolumeDriver: every
#                   volume operation is real Cinder API, RPC, scheduling and
#                   database work; the driver stores no data and attaches
#                   nothing), its database in the stack's MariaDB, its RPC on
#                   the stack's RabbitMQ, catalog types block-storage and
#                   volumev3, and nova.conf [cinder] so that Nova boots
#                   servers with BDMv2 volumes; default 0 (no Cinder)
#   CINDER_VENV     virtualenv of Cinder (default DIR/cinder-venv, created and
#                   pip-installed if absent; kept apart from the Nova venv)
#   KEYSTONE_UP     path of the keystone set-up script (default: nova-keystone-up.sh
#                   beside this script; scripts/keystone-up.sh has other arguments)
#
# Needs root for apt-get (rabbitmq-server, mariadb-server) when they are not
# installed yet; it never starts the system-wide services.
set -euo pipefail

if [ $# -lt 2 ]; then
  echo "usage: $0 DIR BASE_PORT" >&2
  exit 2
fi
DIR=$1
BASE=$2
HERE=$(cd "$(dirname "$0")" && pwd)
KEYSTONE_UP=${KEYSTONE_UP:-$HERE/nova-keystone-up.sh}
PYTHON=${PYTHON:-python3}
COMPUTE_DRIVER=${COMPUTE_DRIVER:-fake.FakeDriverWithoutFakeNodes}
NEUTRON=${NEUTRON:-stub}
CINDER=${CINDER:-0}
SERVICE_PASSWORD=${SERVICE_PASSWORD:-service}
export ADMIN_PASSWORD=${ADMIN_PASSWORD:-admin}
export DEMO_PASSWORD=${DEMO_PASSWORD:-demo}
export REGION=${REGION:-RegionOne}

case "$NEUTRON" in stub|ovn|none) ;; *) echo "NEUTRON must be stub, ovn or none" >&2; exit 2 ;; esac
case "$CINDER" in 0|1) ;; *) echo "CINDER must be 0 or 1" >&2; exit 2 ;; esac
P_KEYSTONE=$BASE
P_PLACEMENT=$((BASE + 1))
P_NOVA=$((BASE + 2))
P_GLANCE=$((BASE + 3))
P_MYSQL=$((BASE + 4))
P_AMQP=$((BASE + 5))
P_DIST=$((BASE + 6))
P_EPMD=$((BASE + 7))
P_NEUTRON=$((BASE + 8))
P_OVN_NB=$((BASE + 9))
P_OVN_SB=$((BASE + 10))
P_CINDER=$((BASE + 11))
AUTH_URL="http://127.0.0.1:$P_KEYSTONE/v3"
DB="mysql+pymysql://openstack:openstack@127.0.0.1:$P_MYSQL"
TRANSPORT="rabbit://guest:guest@127.0.0.1:$P_AMQP/"

mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
VENV=${NOVA_VENV:-$DIR/venv}
CINDER_VENV=${CINDER_VENV:-$DIR/cinder-venv}
T0=$(date +%s%N)
ts() {
  local ms=$(( ($(date +%s%N) - T0) / 1000000 ))
  printf '[nova-fake-up %3d.%03ds] %s\n' $((ms / 1000)) $((ms % 1000)) "$*"
}
die() { echo "nova-fake-up: $*" >&2; exit 1; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# wait_for WHAT SECONDS PIDFILE|"" COMMAND...   (polls every 0.5 s)
wait_for() {
  local what=$1 secs=$2 pidf=$3; shift 3
  local i
  for i in $(seq 1 $((secs * 2))); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    if [ -n "$pidf" ] && ! kill -0 "$(cat "$pidf")" 2>/dev/null; then
      die "$what: process died (see $DIR/logs)"
    fi
    sleep 0.5
  done
  die "$what: not ready after ${secs}s (see $DIR/logs)"
}

for p in $P_KEYSTONE $P_PLACEMENT $P_NOVA $P_GLANCE $P_MYSQL $P_AMQP $P_DIST \
         $P_EPMD $P_NEUTRON $P_OVN_NB $P_OVN_SB $([ "$CINDER" = 1 ] && echo "$P_CINDER"); do
  port_open "$p" && die "port $p on 127.0.0.1 is already in use"
done
mkdir -p "$DIR/pids"
for f in "$DIR"/pids/*.pid "$DIR/keystone/keystone.pid"; do
  [ -e "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null &&
    die "$f: process still running; run $DIR/stop.sh first"
done
rm -f "$DIR"/pids/*.pid
# fresh state on every run (the venv is kept)
rm -rf "$DIR/mysql" "$DIR/rabbitmq" "$DIR/placement" "$DIR/glance" "$DIR/nova" \
  "$DIR/neutron" "$DIR/ovn" "$DIR/cinder" "$DIR/logs" "$DIR/env"
mkdir -p "$DIR/logs"

# stop.sh is written first so that a failed start is cleaned up with it.
cat > "$DIR/stop.sh" <<'EOF'
#!/usr/bin/env bash
# Stops what nova-fake-up.sh started, by the PIDs it recorded: first the
# OpenStack services (all at once), then RabbitMQ, epmd and MariaDB.  Each
# gets SIGTERM, then SIGKILL after 20 s.  gunicorn/keystone PIDs are process
# group leaders (started with setsid) and are signalled as groups.
D=$(cd "$(dirname "$0")" && pwd)
alive() {  # a zombie counts as gone
  local st
  st=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
  case "$st" in Z*) return 1 ;; esac
  return 0
}
stop_set() {  # name=pidfile[:group] ...
  local item name f grp pid pids=() names=() t0=$SECONDS
  for item in "$@"; do
    name=${item%%=*}; f=${item#*=}; grp=
    case "$f" in *:group) grp=1; f=${f%:group} ;; esac
    [ -e "$f" ] || continue
    pid=$(cat "$f"); rm -f "$f"
    alive "$pid" || continue
    if [ -n "$grp" ]; then kill -TERM -- "-$pid" 2>/dev/null
    else kill -TERM "$pid" 2>/dev/null; fi
    pids+=("$pid"); names+=("$name${grp:+ (group)}")
  done
  [ ${#pids[@]} -gt 0 ] || return 0
  local i left
  for _ in $(seq 1 80); do
    left=0
    for pid in "${pids[@]}"; do alive "$pid" && left=1; done
    [ "$left" = 0 ] && break
    sleep 0.25
  done
  for i in "${!pids[@]}"; do
    if alive "${pids[$i]}"; then
      kill -KILL -- "-${pids[$i]}" 2>/dev/null || kill -KILL "${pids[$i]}" 2>/dev/null
      echo "killed ${names[$i]} (pid ${pids[$i]}) after 20s"
    else
      echo "stopped ${names[$i]} (pid ${pids[$i]})"
    fi
  done
  echo "  ($((SECONDS - t0))s)"
}
stop_set keystone-up="$D/pids/keystone-up.pid"
stop_set cinder-volume="$D/pids/cinder-volume.pid" \
         cinder-scheduler="$D/pids/cinder-scheduler.pid" \
         cinder-api="$D/pids/cinder-api.pid:group" \
         nova-compute="$D/pids/nova-compute.pid" \
         nova-scheduler="$D/pids/nova-scheduler.pid" \
         nova-conductor="$D/pids/nova-conductor.pid" \
         nova-api="$D/pids/nova-api.pid:group" \
         glance="$D/pids/glance.pid:group" \
         placement="$D/pids/placement.pid:group" \
         neutron-stub="$D/pids/neutron-stub.pid:group" \
         neutron-api="$D/pids/neutron-api.pid:group" \
         fake-ovn-controller="$D/pids/fake-ovn-controller.pid:group" \
         keystone="$D/keystone/keystone.pid:group"
stop_set ovn-northd="$D/pids/ovn-northd.pid"
stop_set ovsdb-nb="$D/pids/ovsdb-nb.pid" ovsdb-sb="$D/pids/ovsdb-sb.pid"
# beam.smp first; its launcher shell then exits by itself
stop_set rabbitmq="$D/pids/rabbitmq.pid"
stop_set rabbitmq-launcher="$D/pids/rabbitmq-launcher.pid" \
         epmd="$D/pids/epmd.pid" mariadb="$D/pids/mariadb.pid"
EOF
chmod +x "$DIR/stop.sh"
trap 'rc=$?; if [ $rc -ne 0 ]; then echo "start failed (rc $rc); stopping what was started" >&2; "$DIR/stop.sh" >&2; fi' EXIT

# ---------------------------------------------------------------- packages
if ! command -v mariadbd >/dev/null || ! command -v epmd >/dev/null ||
   [ ! -x /usr/lib/rabbitmq/bin/rabbitmq-server ]; then
  ts "apt-get install rabbitmq-server mariadb-server (system services are not started)"
  made_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    made_policy=1
  fi
  apt-get update -q > "$DIR/logs/apt.log" 2>&1
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    rabbitmq-server mariadb-server mariadb-client >> "$DIR/logs/apt.log" 2>&1
  [ "$made_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
fi
if [ "$NEUTRON" = ovn ] && { ! command -v ovn-northd >/dev/null ||
                              ! command -v ovsdb-server >/dev/null; }; then
  ts "apt-get install ovn-central (its system services are not started)"
  made_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    made_policy=1
  fi
  apt-get update -q >> "$DIR/logs/apt.log" 2>&1
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    ovn-central >> "$DIR/logs/apt.log" 2>&1
  [ "$made_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
fi

write_constraints() {
  cat > "$DIR/constraints.txt" <<'EOF'
alembic==1.19.1
amqp==5.3.1
aniso8601==10.0.1
attrs==26.1.0
automaton==3.4.0
autopage==0.6.0
bcrypt==5.0.0
blinker==1.9.0
cachetools==7.1.7
castellan==5.8.0
certifi==2026.10.19.post1
cffi==2.1.1
charset-normalizer==3.5.0
click==8.4.2
cliff==4.15.0
cmd2==4.2.0
cotyledon==2.2.0
cryptography==43.0.3
cursive==0.3.0
debtcollector==3.1.0
decorator==5.3.1
defusedxml==0.7.1
dnspython==2.8.0
dogpile.cache==1.5.0
elementpath==4.8.0
eventlet==0.41.2
fasteners==0.20
fixtures==4.3.2
Flask==3.1.3
Flask-RESTful==0.3.10
futurist==3.5.0
glance==33.0.0
glance_store==5.6.0
greenlet==3.5.5
gunicorn==26.0.0
httplib2==0.32.0
idna==3.18
importlib_metadata==9.0.0
invoke==3.0.3
iso8601==2.1.0
itsdangerous==2.2.0
Jinja2==3.1.6
jmespath==1.1.0
jsonpatch==1.33
jsonpointer==3.1.1
jsonschema==4.26.0
jsonschema-specifications==2025.9.1
jwcrypto==1.5.8
keystone==30.0.0
keystoneauth1==5.18.1
keystonemiddleware==13.0.0
kombu==5.6.2
lxml==6.1.1
Mako==1.4.1
markdown-it-py==4.2.0
MarkupSafe==3.0.3
mdurl==0.1.2
microversion_parse==2.1.0
msgpack==1.2.1
netaddr==1.3.0
networkx==3.6.1
nova==34.0.0
numpy==2.4.6
oauthlib==3.3.1
openstack-placement==16.0.0
openstacksdk==4.18.0
os-brick==7.1.0
os-resource-classes==1.1.0
os-service-types==1.9.0
os-traits==3.9.0
os_vif==5.2.0
osc-lib==4.7.0
oslo.cache==4.3.0
oslo.concurrency==7.6.1
oslo.config==10.7.0
oslo.context==6.5.0
oslo.db==18.1.0
oslo.i18n==6.9.0
oslo.limit==2.12.0
oslo.log==8.3.0
oslo.messaging==18.2.0
oslo.metrics==0.16.0
oslo.middleware==8.2.0
oslo.policy==6.0.0
oslo.privsep==3.12.0
oslo.reports==3.9.0
oslo.rootwrap==7.10.0
oslo.serialization==5.11.0
oslo.service==4.8.0
oslo.upgradecheck==2.8.0
oslo.utils==10.1.1
oslo.versionedobjects==3.12.0
osprofiler==4.4.0
ovs==3.7.1
ovsdbapp==2.19.0
packaging==26.3
paramiko==4.0.0
Paste==3.10.1
PasteDeploy==3.1.0
pbr==7.0.3
platformdirs==4.11.3
prettytable==3.18.0
prometheus_client==0.26.0
prompt_toolkit==3.0.53
psutil==7.2.2
pycadf==4.1.0
pycparser==3.0
pydot==4.0.1
Pygments==2.20.0
PyJWT==2.13.0
PyMySQL==1.2.0
PyNaCl==1.6.2
pyOpenSSL==24.2.1
pyparsing==3.3.2
pyperclip==1.11.0
pysaml2==7.5.4
python-barbicanclient==7.5.0
python-cinderclient==9.9.0
python-dateutil==2.9.0.post0
python-glanceclient==4.12.0
python-keystoneclient==5.8.0
python-manilaclient==6.2.0
python-neutronclient==13.0.0
python-openstackclient==10.2.1
pytz==2026.3.post1
PyYAML==6.0.3
redis==8.1.0
referencing==0.37.0
repoze-lru==0.8
requests==2.34.2
retrying==1.4.2
rfc3986==2.0.0
rich==15.0.0
rich-argparse==1.8.0
Routes==2.5.1
rpds-py==2026.6.3
setproctitle==1.3.7
simplegeneric==0.8.1
six==1.17.0
sortedcontainers==2.4.0
SQLAlchemy==2.0.52
statsd==4.0.1
stevedore==5.9.1
taskflow==6.3.0
tenacity==9.1.4
testresources==2.1.2
testscenarios==0.6.2
tooz==9.0.1
typing_extensions==4.16.0
tzdata==2026.3
urllib3==2.7.0
vine==5.1.0
voluptuous==0.16.0
warlock==2.1.0
wcwidth==0.8.2
WebOb==1.8.11
websockify==0.13.0
Werkzeug==3.1.8
wrapt==2.3.0
WSME==0.13.0
xmlschema==2.5.1
yappi==1.7.6
zipp==4.1.0
ncclient==0.7.1
neutron==29.0.0
neutron-lib==5.0.1
os-ken==4.2.2
pecan==1.8.0
pyroute2==0.8.1
python-designateclient==7.0.0
python-novaclient==18.13.1
distro==1.9.0
oslo.vmware==4.10.1
pyudev==0.24.5
rtslib-fb==2.2.4
suds-community==1.2.0
tabulate==0.10.0
zstd==1.5.7.2
cinder==29.0.0
EOF
}
if [ ! -x "$VENV/bin/nova-manage" ] || [ ! -x "$VENV/bin/gunicorn" ] ||
   [ ! -x "$VENV/bin/glance-manage" ] || [ ! -x "$VENV/bin/keystone-manage" ] ||
   [ ! -x "$VENV/bin/placement-manage" ] || [ ! -x "$VENV/bin/openstack" ]; then
  ts "creating venv $VENV and pip-installing nova 34.0.0 (2026.2 set)"
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
  # The exact set this recipe was verified with (pip freeze).  Servers of the
  # 2026.2 release: nova 34.0.0, placement 16.0.0, glance 33.0.0, keystone
  # 30.0.0; libraries from OpenStack's upper-constraints of August 2026
  # (oslo.versionedobjects raised to 3.12.0, which nova 34.0.0 requires).
  write_constraints
  "$VENV/bin/pip" install -q -c "$DIR/constraints.txt" \
    nova==34.0.0 openstack-placement==16.0.0 glance==33.0.0 keystone==30.0.0 \
    python-openstackclient gunicorn pymysql > "$DIR/logs/pip.log" 2>&1 ||
    die "pip install failed; see $DIR/logs/pip.log"
fi
if [ "$NEUTRON" = ovn ] && [ ! -x "$VENV/bin/neutron-db-manage" ]; then
  ts "pip-installing neutron 29.0.0 into $VENV"
  write_constraints
  "$VENV/bin/pip" install -q -c "$DIR/constraints.txt" neutron==29.0.0 pyroute2 \
    >> "$DIR/logs/pip.log" 2>&1 || die "pip install neutron failed; see $DIR/logs/pip.log"
fi
if [ "$CINDER" = 1 ] && [ ! -x "$CINDER_VENV/bin/cinder-manage" ]; then
  # its own venv: cinder pulls in packages the Nova set does not have
  # (rtslib-fb, oslo.vmware, zstd, ...); fixtures is needed by the fake back end
  ts "creating venv $CINDER_VENV and pip-installing cinder 29.0.0 (2026.2)"
  [ -x "$CINDER_VENV/bin/python" ] || "$PYTHON" -m venv "$CINDER_VENV"
  write_constraints
  "$CINDER_VENV/bin/pip" install -q -c "$DIR/constraints.txt" \
    cinder==29.0.0 fixtures gunicorn pymysql > "$DIR/logs/pip-cinder.log" 2>&1 ||
    die "pip install cinder failed; see $DIR/logs/pip-cinder.log"
fi
VETC=$("$VENV/bin/python" -c 'import sys; print(sys.prefix)')/etc
PY=$VENV/bin/python

# ---------------------------------------------------------------- Keystone (background)
ts "Keystone on 127.0.0.1:$P_KEYSTONE (keystone-up.sh, in the background)"
KEYSTONE_VENV=$VENV "$KEYSTONE_UP" "$DIR/keystone" "$P_KEYSTONE" ${TROVE_URL:+"$TROVE_URL"} \
  > "$DIR/logs/keystone-up.log" 2>&1 < /dev/null &
echo $! > "$DIR/pids/keystone-up.pid"

# ---------------------------------------------------------------- MariaDB
ts "MariaDB on 127.0.0.1:$P_MYSQL"
M=$DIR/mysql
mkdir -p "$M"
mariadb-install-db --no-defaults --datadir="$M/data" --user="$(id -un)" \
  --auth-root-authentication-method=socket --skip-test-db \
  > "$DIR/logs/mariadb-install.log" 2>&1
setsid mariadbd --no-defaults --datadir="$M/data" --socket="$M/mysqld.sock" \
  --port="$P_MYSQL" --bind-address=127.0.0.1 --pid-file="$M/mysqld.pid" \
  --user="$(id -un)" --skip-name-resolve --innodb-buffer-pool-size=64M \
  --innodb-log-file-size=64M --innodb-flush-log-at-trx-commit=0 \
  --innodb-doublewrite=0 --skip-log-bin --max-connections=1000 \
  --character-set-server=utf8mb4 --collation-server=utf8mb4_general_ci \
  --log-error="$DIR/logs/mariadb.log" > /dev/null 2>&1 < /dev/null &
echo $! > "$DIR/pids/mariadb.pid"
wait_for mariadb 60 "$DIR/pids/mariadb.pid" \
  mariadb --no-defaults -S "$M/mysqld.sock" -uroot -e 'select 1'
mariadb --no-defaults -S "$M/mysqld.sock" -uroot <<EOF
CREATE DATABASE nova_api; CREATE DATABASE nova_cell0; CREATE DATABASE nova;
CREATE DATABASE placement; CREATE DATABASE glance; CREATE DATABASE neutron;
CREATE DATABASE cinder;
CREATE USER 'openstack'@'127.0.0.1' IDENTIFIED BY 'openstack';
GRANT ALL PRIVILEGES ON *.* TO 'openstack'@'127.0.0.1';
EOF

# ---------------------------------------------------------------- RabbitMQ
ts "RabbitMQ on 127.0.0.1:$P_AMQP (private epmd on $P_EPMD)"
R=$DIR/rabbitmq
mkdir -p "$R/home" "$R/mnesia" "$R/log"
setsid epmd -port "$P_EPMD" -address 127.0.0.1 > "$DIR/logs/epmd.log" 2>&1 < /dev/null &
echo $! > "$DIR/pids/epmd.pid"
cat > "$R/rabbitmq.conf" <<EOF
listeners.tcp.default = 127.0.0.1:$P_AMQP
log.console = false
log.file.level = warning
vm_memory_high_watermark.absolute = 1GB
disk_free_limit.absolute = 100MB
EOF
echo '[].' > "$R/enabled_plugins"
: > "$R/rabbitmq-env.conf"
cat > "$R/env.sh" <<EOF
export HOME=$R/home
export RABBITMQ_NODENAME=rabbit-nova-$BASE@localhost
export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
export RABBITMQ_NODE_PORT=$P_AMQP
export RABBITMQ_DIST_PORT=$P_DIST
export ERL_EPMD_PORT=$P_EPMD
export ERL_EPMD_ADDRESS=127.0.0.1
export RABBITMQ_MNESIA_BASE=$R/mnesia
export RABBITMQ_LOG_BASE=$R/log
export RABBITMQ_CONFIG_FILE=$R/rabbitmq
export RABBITMQ_ENABLED_PLUGINS_FILE=$R/enabled_plugins
export RABBITMQ_CONF_ENV_FILE=$R/rabbitmq-env.conf
export RABBITMQ_PID_FILE=$R/rabbitmq.pid
export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
export RABBITMQ_CTL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
EOF
wait_for epmd 10 "$DIR/pids/epmd.pid" port_open "$P_EPMD"
( . "$R/env.sh"
  setsid /usr/lib/rabbitmq/bin/rabbitmq-server > "$DIR/logs/rabbitmq.log" 2>&1 < /dev/null &
  echo $! > "$DIR/pids/rabbitmq-launcher.pid" )
# (readiness is checked below, after the database migrations)

# ---------------------------------------------------------------- OVN (NEUTRON=ovn)
if [ "$NEUTRON" = ovn ]; then
  ts "OVN NB :$P_OVN_NB, SB :$P_OVN_SB, ovn-northd"
  O=$DIR/ovn
  mkdir -p "$O"
  ovsdb-tool create "$O/nb.db" /usr/share/ovn/ovn-nb.ovsschema
  ovsdb-tool create "$O/sb.db" /usr/share/ovn/ovn-sb.ovsschema
  for db in nb sb; do
    if [ $db = nb ]; then p=$P_OVN_NB; else p=$P_OVN_SB; fi
    setsid ovsdb-server --remote="punix:$O/$db.sock" --remote="ptcp:$p:127.0.0.1" \
      --pidfile="$O/$db.pid" --unixctl="$O/$db.ctl" --log-file="$DIR/logs/ovsdb-$db.log" \
      --no-chdir "$O/$db.db" > /dev/null 2>&1 < /dev/null &
    echo $! > "$DIR/pids/ovsdb-$db.pid"
  done
  wait_for ovsdb-nb 20 "$DIR/pids/ovsdb-nb.pid" test -S "$O/nb.sock"
  wait_for ovsdb-sb 20 "$DIR/pids/ovsdb-sb.pid" test -S "$O/sb.sock"
  setsid ovn-northd --ovnnb-db="unix:$O/nb.sock" --ovnsb-db="unix:$O/sb.sock" \
    --pidfile="$O/northd.pid" --unixctl="$O/northd.ctl" \
    --log-file="$DIR/logs/ovn-northd.log" --no-chdir > /dev/null 2>&1 < /dev/null &
  echo $! > "$DIR/pids/ovn-northd.pid"
  SBCTL=(ovn-sbctl --db="unix:$O/sb.sock")
  # the chassis that nova-compute's host name binds to
  "${SBCTL[@]}" chassis-add fake-compute-1 geneve 127.0.0.1
  "${SBCTL[@]}" set Chassis fake-compute-1 hostname=fake-compute-1
  "${SBCTL[@]}" create Chassis_Private name=fake-compute-1 \
    chassis="$("${SBCTL[@]}" --bare --columns=_uuid find Chassis name=fake-compute-1)" > /dev/null
  cat > "$O/fake-ovn-controller.sh" <<'EOF'
#!/usr/bin/env bash
# fake-ovn-controller.sh SB_SOCKET CHASSIS: reports the chassis alive the way
# ovn-controller does (Chassis_Private.nb_cfg follows SB_Global.nb_cfg), every
# 2 s, so that Neutron's OVN driver binds ports to it.  No datapath.
SB=(ovn-sbctl --db="unix:$1")
for _ in $(seq 1 200000); do
  cfg=$("${SB[@]}" get SB_Global . nb_cfg 2>/dev/null) || cfg=0
  "${SB[@]}" set Chassis_Private "$2" nb_cfg="$cfg" \
    nb_cfg_timestamp="$(date +%s%3N)" 2>/dev/null
  sleep 2
done
EOF
  chmod +x "$O/fake-ovn-controller.sh"
  setsid "$O/fake-ovn-controller.sh" "$O/sb.sock" fake-compute-1 \
    > "$DIR/logs/fake-ovn-controller.log" 2>&1 < /dev/null &
  echo $! > "$DIR/pids/fake-ovn-controller.pid"
fi

# ---------------------------------------------------------------- configs
authtoken() {  # section user
  cat <<EOF
[$1]
auth_type = password
auth_url = $AUTH_URL
www_authenticate_uri = $AUTH_URL
project_name = service
project_domain_name = Default
username = $2
user_domain_name = Default
password = $SERVICE_PASSWORD
region_name = $REGION
EOF
}

mkdir -p "$DIR/placement"
{ cat <<EOF
[DEFAULT]
debug = false
[placement_database]
connection = $DB/placement?charset=utf8
[api]
auth_strategy = keystone
EOF
  authtoken keystone_authtoken placement
} > "$DIR/placement/placement.conf"

G=$DIR/glance
mkdir -p "$G/images" "$G/staging" "$G/tasks" "$G/lock"
cp "$VETC/glance/glance-api-paste.ini" "$G/"
{ cat <<EOF
[DEFAULT]
debug = false
enabled_backends = fs:file
worker_self_reference_url = http://127.0.0.1:$P_GLANCE
[database]
connection = $DB/glance?charset=utf8
[glance_store]
default_backend = fs
[fs]
filesystem_store_datadir = $G/images
[os_glance_staging_store]
filesystem_store_datadir = $G/staging
[os_glance_tasks_store]
filesystem_store_datadir = $G/tasks
[paste_deploy]
flavor = keystone
config_file = $G/glance-api-paste.ini
[oslo_concurrency]
lock_path = $G/lock
EOF
  authtoken keystone_authtoken glance
} > "$G/glance-api.conf"

N=$DIR/nova
mkdir -p "$N/state/instances" "$N/state/lock"
cp "$VETC/nova/api-paste.ini" "$N/"
{ cat <<EOF
[DEFAULT]
debug = false
host = fake-compute-1
compute_driver = $COMPUTE_DRIVER
transport_url = $TRANSPORT
my_ip = 127.0.0.1
state_path = $N/state
instances_path = $N/state/instances
# one compute host: resize must be allowed to land on the same host
allow_resize_to_same_host = true
image_cache_manager_interval = -1
heal_instance_info_cache_interval = -1
# stop quickly (default: up to 60 s of draining)
graceful_shutdown_timeout = 5
# start periodic tasks (host discovery, resource updates) without the
# default random delay of up to 60 s
periodic_fuzzy_delay = 0
[wsgi]
api_paste_config = $N/api-paste.ini
[api]
auth_strategy = keystone
[api_database]
connection = $DB/nova_api?charset=utf8
[database]
connection = $DB/nova?charset=utf8
[oslo_concurrency]
lock_path = $N/state/lock
[oslo_messaging_notifications]
driver = noop
[conductor]
workers = 1
[scheduler]
workers = 1
discover_hosts_in_cells_interval = 5
[quota]
instances = 100
cores = 1000
ram = 1024000
[vnc]
enabled = false
[spice]
enabled = false
EOF
  # service tokens: Neutron's default policy lets only admin/service (or a
  # request carrying a service token) delete a port owned by compute:nova
  authtoken service_user nova
  echo "send_service_user_token = true"
  authtoken keystone_authtoken nova
  authtoken placement nova
  authtoken neutron nova
  authtoken glance nova
  authtoken cinder nova
  if [ "$CINDER" = 1 ]; then
    echo "os_region_name = $REGION"
    echo "catalog_info = volumev3::publicURL"
  fi
} > "$N/nova.conf"
cat > "$N/nova_api_wsgi.py" <<'EOF'
# oslo.config parses sys.argv; hide gunicorn's arguments from it.
import sys
sys.argv = sys.argv[:1]
from nova.wsgi.osapi_compute import application  # noqa: E402,F401
EOF

if [ "$NEUTRON" = ovn ]; then
  Q=$DIR/neutron
  mkdir -p "$Q/plugins/ml2" "$Q/lock" "$Q/state"
  cp "$VETC/neutron/api-paste.ini" "$Q/"
  { cat <<EOF
[DEFAULT]
debug = false
core_plugin = ml2
service_plugins = ovn-router
auth_strategy = keystone
transport_url = $TRANSPORT
api_paste_config = $Q/api-paste.ini
state_path = $Q/state
notify_nova_on_port_status_changes = false
notify_nova_on_port_data_changes = false
[database]
connection = $DB/neutron?charset=utf8
[oslo_concurrency]
lock_path = $Q/lock
[oslo_messaging_notifications]
driver = noop
EOF
    authtoken keystone_authtoken neutron
    authtoken nova neutron
  } > "$Q/neutron.conf"
  cat > "$Q/plugins/ml2/ml2_conf.ini" <<EOF
[ml2]
type_drivers = geneve,flat
tenant_network_types = geneve
mechanism_drivers = ovn
extension_drivers = port_security
overlay_ip_version = 4
[ml2_type_geneve]
vni_ranges = 1:65536
max_header_size = 38
[ml2_type_flat]
flat_networks = *
[ovn]
ovn_nb_connection = tcp:127.0.0.1:$P_OVN_NB
ovn_sb_connection = tcp:127.0.0.1:$P_OVN_SB
ovn_metadata_enabled = false
EOF
  cat > "$Q/neutron_api_wsgi.py" <<'EOF'
# oslo.config parses sys.argv; hide gunicorn's arguments from it.
import sys
sys.argv = sys.argv[:1]
from neutron.wsgi.api import application  # noqa: E402,F401
EOF
fi

if [ "$CINDER" = 1 ]; then
  C=$DIR/cinder
  mkdir -p "$C/state" "$C/lock" "$C/volumes"
  cp "$CINDER_VENV/etc/cinder/api-paste.ini" "$C/"
  { cat <<EOF
[DEFAULT]
debug = false
host = cinder-1
my_ip = 127.0.0.1
auth_strategy = keystone
transport_url = $TRANSPORT
state_path = $C/state
volumes_dir = $C/volumes
api_paste_config = $C/api-paste.ini
# the filters GET /volumes?name=... may use (the package's file, not /etc/cinder)
resource_query_filters_file = $CINDER_VENV/etc/cinder/resource_filters.json
glance_api_servers = http://127.0.0.1:$P_GLANCE
enabled_backends = fake
graceful_shutdown_timeout = 5
periodic_fuzzy_delay = 0
# report capabilities every 10 s instead of 60 s
backend_stats_polling_interval = 10
[database]
connection = $DB/cinder?charset=utf8
[oslo_concurrency]
lock_path = $C/lock
[oslo_messaging_notifications]
driver = noop
[fake]
volume_driver = cinder.tests.fake_driver.FakeLoggingVolumeDriver
volume_backend_name = fake
EOF
    authtoken keystone_authtoken cinder
    # the volume-extended event to Nova after an extend of an attached volume
    authtoken nova cinder
    echo "interface = public"
  } > "$C/cinder.conf"
  cat > "$C/cinder_api_wsgi.py" <<EOF
# oslo.config parses sys.argv; give it cinder.conf instead of gunicorn's arguments.
import sys
sys.argv = sys.argv[:1] + ["--config-file", "$C/cinder.conf"]
from cinder.wsgi.api import application  # noqa: E402,F401
EOF
fi

# ---------------------------------------------------------------- schemas
ts "schemas: placement, glance, neutron (background); nova api_db, cell0, cell1"
"$VENV/bin/placement-manage" --config-file "$DIR/placement/placement.conf" db sync \
  > "$DIR/logs/placement-manage.log" 2>&1 &
SYNC_PLACEMENT=$!
"$VENV/bin/glance-manage" --config-file "$G/glance-api.conf" db_sync \
  > "$DIR/logs/glance-manage.log" 2>&1 &
SYNC_GLANCE=$!
SYNC_NEUTRON=
if [ "$NEUTRON" = ovn ]; then
  "$VENV/bin/neutron-db-manage" --config-file "$Q/neutron.conf" \
    --config-file "$Q/plugins/ml2/ml2_conf.ini" upgrade heads \
    > "$DIR/logs/neutron-db-manage.log" 2>&1 &
  SYNC_NEUTRON=$!
fi
SYNC_CINDER=
if [ "$CINDER" = 1 ]; then
  "$CINDER_VENV/bin/cinder-manage" --config-file "$C/cinder.conf" db sync \
    > "$DIR/logs/cinder-manage.log" 2>&1 &
  SYNC_CINDER=$!
fi
NM=("$VENV/bin/nova-manage" --config-file "$N/nova.conf")
{ "${NM[@]}" api_db sync
  "${NM[@]}" cell_v2 map_cell0 --database_connection "$DB/nova_cell0?charset=utf8"
  "${NM[@]}" cell_v2 create_cell --name cell1
  "${NM[@]}" db sync
} > "$DIR/logs/nova-manage.log" 2>&1 || die "nova-manage failed; see $DIR/logs/nova-manage.log"
wait "$SYNC_PLACEMENT" || die "placement-manage db sync failed"
wait "$SYNC_GLANCE" || die "glance-manage db_sync failed"
if [ -n "$SYNC_NEUTRON" ]; then
  wait "$SYNC_NEUTRON" || die "neutron-db-manage failed; see $DIR/logs/neutron-db-manage.log"
fi
if [ -n "$SYNC_CINDER" ]; then
  wait "$SYNC_CINDER" || die "cinder-manage db sync failed; see $DIR/logs/cinder-manage.log"
fi

wait_for rabbitmq 90 "$DIR/pids/rabbitmq-launcher.pid" port_open "$P_AMQP"
wait_for rabbitmq-pid 30 "" test -s "$R/rabbitmq.pid"
cp "$R/rabbitmq.pid" "$DIR/pids/rabbitmq.pid"   # the Erlang VM itself

ts "waiting for keystone-up.sh"
running() {  # not a zombie
  local st
  st=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
  case "$st" in Z*) return 1 ;; esac
}
KUP=$(cat "$DIR/pids/keystone-up.pid")
for _ in $(seq 1 240); do running "$KUP" || break; sleep 0.5; done
running "$KUP" && die "keystone-up.sh still running after 120 s"
wait "$KUP" || die "keystone-up.sh failed; see $DIR/logs/keystone-up.log"
rm -f "$DIR/pids/keystone-up.pid"
[ -s "$DIR/keystone/keystone.pid" ] || die "no keystone.pid"

ts "service users, services and endpoints"
"$PY" - "$AUTH_URL" "$SERVICE_PASSWORD" "$BASE" "$NEUTRON" "$CINDER" <<'EOF'
import os, sys, requests
auth_url, pw, base, neutron, cinder = sys.argv[1:]
base, region = int(base), os.environ["REGION"]
body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
    "name": "admin", "domain": {"id": "default"},
    "password": os.environ["ADMIN_PASSWORD"]}}},
    "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}}
r = requests.post(auth_url + "/auth/tokens", json=body, timeout=30)
r.raise_for_status()
H = {"X-Auth-Token": r.headers["X-Subject-Token"]}
def call(method, path, obj=None):
    rr = requests.request(method, auth_url + path, json=obj, headers=H, timeout=30)
    if rr.status_code >= 400:
        sys.exit("%s %s -> %s %s" % (method, path, rr.status_code, rr.text))
    return rr.json() if rr.content else None
roles = {x["name"]: x["id"] for x in call("GET", "/roles")["roles"]}
svc_project = call("GET", "/projects?name=service")["projects"][0]["id"]
def user(name):
    u = call("POST", "/users", {"user": {"name": name, "domain_id": "default",
             "password": pw, "enabled": True}})["user"]["id"]
    for role in ("admin", "service"):
        call("PUT", "/projects/%s/users/%s/roles/%s" % (svc_project, u, roles[role]))
def service(name, stype, url):
    s = call("POST", "/services", {"service": {"name": name, "type": stype,
             "enabled": True}})["service"]["id"]
    for iface in ("public", "internal", "admin"):
        call("POST", "/endpoints", {"endpoint": {"service_id": s, "interface": iface,
             "region_id": region, "url": url, "enabled": True}})
services = [("nova", "compute", "http://127.0.0.1:%d/v2.1" % (base + 2)),
            ("placement", "placement", "http://127.0.0.1:%d" % (base + 1)),
            ("glance", "image", "http://127.0.0.1:%d" % (base + 3))]
if neutron in ("stub", "ovn"):
    services.append(("neutron", "network", "http://127.0.0.1:%d" % (base + 8)))
users = ["nova", "placement", "glance", "neutron"]
if cinder == "1":
    users.append("cinder")
    url = "http://127.0.0.1:%d/v3" % (base + 11)
    services += [("cinder", "block-storage", url), ("cinderv3", "volumev3", url)]
from concurrent.futures import ThreadPoolExecutor
with ThreadPoolExecutor(4) as ex:
    futs = [ex.submit(user, n) for n in users]
    futs += [ex.submit(service, *x) for x in services]
    for f in futs:
        f.result()
EOF

# ---------------------------------------------------------------- services
ts "starting nova-conductor, nova-scheduler, placement :$P_PLACEMENT, glance :$P_GLANCE, nova-api :$P_NOVA, then nova-compute ($COMPUTE_DRIVER)"
for s in conductor scheduler; do
  setsid "$VENV/bin/nova-$s" --config-file "$N/nova.conf" \
    > "$DIR/logs/nova-$s.log" 2>&1 < /dev/null &
  echo $! > "$DIR/pids/nova-$s.pid"
done
OS_PLACEMENT_CONFIG_DIR="$DIR/placement" setsid "$VENV/bin/gunicorn" \
  -b "127.0.0.1:$P_PLACEMENT" -w 1 -k gthread --threads 4 --timeout 120 \
  placement.wsgi.api:application > "$DIR/logs/placement.log" 2>&1 < /dev/null &
echo $! > "$DIR/pids/placement.pid"
OS_GLANCE_CONFIG_DIR="$G" setsid "$VENV/bin/gunicorn" \
  -b "127.0.0.1:$P_GLANCE" -w 1 -k gthread --threads 4 --timeout 300 \
  glance.wsgi.api:application > "$DIR/logs/glance.log" 2>&1 < /dev/null &
echo $! > "$DIR/pids/glance.pid"
if [ "$NEUTRON" = stub ]; then
  cat > "$DIR/neutron_stub.py" <<'EOF'
# Not Neutron.  Answers only the read-only calls nova makes for servers with
# networks "none": no ports, no networks, no extensions.  Anything else: 404.
import json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class H(BaseHTTPRequestHandler):
    def _send(self, code, obj):
        b = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(b)))
        self.end_headers()
        self.wfile.write(b)
    def do_GET(self):
        path = self.path.split("?")[0].rstrip("/")
        if path == "":
            self._send(200, {"versions": [{"id": "v2.0", "status": "CURRENT",
                "links": [{"rel": "self", "href": "http://%s/v2.0/" % self.headers["Host"]}]}]})
        elif path in ("/v2.0/ports", "/v2.0/networks", "/v2.0/extensions",
                      "/v2.0/floatingips", "/v2.0/security-groups"):
            self._send(200, {path.rsplit("/", 1)[1].replace("-", "_"): []})
        else:
            self._send(404, {"NeutronError": {"type": "NotFound", "message": path, "detail": ""}})
    def log_message(self, fmt, *args):
        sys.stderr.write("%s %s\n" % (self.command, self.path))
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
EOF
  setsid "$PY" "$DIR/neutron_stub.py" "$P_NEUTRON" \
    > "$DIR/logs/neutron-stub.log" 2>&1 < /dev/null &
  echo $! > "$DIR/pids/neutron-stub.pid"
fi
if [ "$NEUTRON" = ovn ]; then
  # ASGI_WORKERS: neutron asks uwsgi/mod_wsgi for its worker count (OVN hash
  # ring); under any other server it reads this variable
  ASGI_WORKERS=1 OS_NEUTRON_CONFIG_DIR="$Q" setsid "$VENV/bin/gunicorn" --chdir "$Q" \
    -b "127.0.0.1:$P_NEUTRON" -w 1 -k gthread --threads 4 --timeout 120 \
    --graceful-timeout 5 neutron_api_wsgi:application \
    > "$DIR/logs/neutron-api.log" 2>&1 < /dev/null &
  echo $! > "$DIR/pids/neutron-api.pid"
fi
if [ "$CINDER" = 1 ]; then
  for s in scheduler volume; do
    setsid "$CINDER_VENV/bin/cinder-$s" --config-file "$C/cinder.conf" \
      > "$DIR/logs/cinder-$s.log" 2>&1 < /dev/null &
    echo $! > "$DIR/pids/cinder-$s.pid"
  done
  setsid "$CINDER_VENV/bin/gunicorn" --chdir "$C" \
    -b "127.0.0.1:$P_CINDER" -w 1 -k gthread --threads 4 --timeout 120 \
    --graceful-timeout 5 cinder_api_wsgi:application \
    > "$DIR/logs/cinder-api.log" 2>&1 < /dev/null &
  echo $! > "$DIR/pids/cinder-api.pid"
fi
OS_NOVA_CONFIG_DIR="$N" setsid "$VENV/bin/gunicorn" --chdir "$N" \
  -b "127.0.0.1:$P_NOVA" -w 1 -k gthread --threads 8 --timeout 120 \
  nova_api_wsgi:application > "$DIR/logs/nova-api.log" 2>&1 < /dev/null &
echo $! > "$DIR/pids/nova-api.pid"

http_ok() {
  "$PY" -c 'import sys, urllib.request
urllib.request.urlopen(sys.argv[1], timeout=5).read()' "$1"
}
wait_for placement 90 "$DIR/pids/placement.pid" http_ok "http://127.0.0.1:$P_PLACEMENT/"
wait_for glance 90 "$DIR/pids/glance.pid" http_ok "http://127.0.0.1:$P_GLANCE/versions"
wait_for nova-api 90 "$DIR/pids/nova-api.pid" http_ok "http://127.0.0.1:$P_NOVA/"
if [ "$NEUTRON" = ovn ]; then
  wait_for neutron-api 90 "$DIR/pids/neutron-api.pid" http_ok "http://127.0.0.1:$P_NEUTRON/"
fi
if [ "$CINDER" = 1 ]; then
  wait_for cinder-api 90 "$DIR/pids/cinder-api.pid" http_ok "http://127.0.0.1:$P_CINDER/healthcheck"
fi
# nova-compute last: it blocks 10 s if nova-conductor does not answer yet
setsid "$VENV/bin/nova-compute" --config-file "$N/nova.conf" \
  > "$DIR/logs/nova-compute.log" 2>&1 < /dev/null &
echo $! > "$DIR/pids/nova-compute.pid"

# ---------------------------------------------------------------- compute host, flavors, image
ts "waiting for nova-compute: service up, host mapped, inventory in placement"
. "$DIR/keystone/admin-openrc"
export PYTHONWARNINGS=ignore
OSC=("$VENV/bin/openstack")
compute_up() {
  "${OSC[@]}" compute service list --service nova-compute -f value -c State |
    grep -qx up
}
wait_for nova-compute 120 "$DIR/pids/nova-compute.pid" compute_up
ts "nova-compute is up; waiting for its host mapping and placement inventory"
# nova-scheduler maps new compute hosts to cell1 every 5 s
# ([scheduler]discover_hosts_in_cells_interval); running "nova-manage cell_v2
# discover_hosts" at the same time can block on a row lock for 50 s.
host_mapped() {
  mariadb --no-defaults -S "$M/mysqld.sock" -uroot -N -e \
    "select count(*) from nova_api.host_mappings where host='fake-compute-1'" |
    grep -qx 1
}
wait_for host-mapping 60 "$DIR/pids/nova-compute.pid" host_mapped
rp_ready() {
  "$PY" - "$AUTH_URL" "$P_PLACEMENT" <<'EOF'
import os, sys
from keystoneauth1 import session
from keystoneauth1.identity import v3
s = session.Session(auth=v3.Password(auth_url=sys.argv[1], username="admin",
    password=os.environ["OS_PASSWORD"], project_name="admin",
    user_domain_id="default", project_domain_id="default"))
P = "http://127.0.0.1:%s" % sys.argv[2]
rps = s.get(P + "/resource_providers").json()["resource_providers"]
inv = s.get(P + "/resource_providers/%s/inventories" % rps[0]["uuid"]).json()
assert "VCPU" in inv["inventories"]
EOF
}
wait_for placement-inventory 60 "$DIR/pids/nova-compute.pid" rp_ready

ts "flavors 1 = m1.tiny (1 vCPU, 512 MB, 1 GB), 2 = m1.small (1 vCPU, 1024 MB, 2 GB); image"
"${OSC[@]}" flavor create --id 1 --vcpus 1 --ram 512 --disk 1 m1.tiny > /dev/null
"${OSC[@]}" flavor create --id 2 --vcpus 1 --ram 1024 --disk 2 m1.small > /dev/null
head -c 1048576 /dev/zero > "$DIR/fake-image.raw"
IMAGE_ID=$("${OSC[@]}" image create --disk-format raw --container-format bare \
  --public --file "$DIR/fake-image.raw" fake-image -f value -c id)

if [ "$CINDER" = 1 ]; then
  ts "waiting for cinder-volume (fake back end) to be up and to report its pool"
  # up in the service list, and its capabilities reached the scheduler (a pool
  # with capacity): before that, a volume create fails with "No valid backend"
  cinder_ready() {
    "$PY" - "$AUTH_URL" "$P_CINDER" <<'EOF'
import os, sys
from keystoneauth1 import session
from keystoneauth1.identity import v3
s = session.Session(auth=v3.Password(auth_url=sys.argv[1], username="admin",
    password=os.environ["OS_PASSWORD"], project_name="admin",
    user_domain_id="default", project_domain_id="default"))
C = "http://127.0.0.1:%s/v3" % sys.argv[2]
svcs = s.get(C + "/os-services?binary=cinder-volume").json()["services"]
assert any(x["state"] == "up" for x in svcs), svcs
pools = s.get(C + "/scheduler-stats/get_pools").json()["pools"]
assert pools, pools
EOF
  }
  wait_for cinder-volume 120 "$DIR/pids/cinder-volume.pid" cinder_ready
fi

NETWORK_ID=
if [ "$NEUTRON" = ovn ]; then
  ts "shared network shared-net 10.199.0.0/24"
  NETWORK_ID=$("${OSC[@]}" network create --share shared-net -f value -c id)
  "${OSC[@]}" subnet create --network shared-net --subnet-range 10.199.0.0/24 \
    shared-subnet > /dev/null
fi
VOLUME_URL=
[ "$CINDER" = 1 ] && VOLUME_URL=http://127.0.0.1:$P_CINDER/v3
cat > "$DIR/env" <<EOF
AUTH_URL=$AUTH_URL
COMPUTE_URL=http://127.0.0.1:$P_NOVA/v2.1
PLACEMENT_URL=http://127.0.0.1:$P_PLACEMENT
IMAGE_URL=http://127.0.0.1:$P_GLANCE
NETWORK_URL=http://127.0.0.1:$P_NEUTRON
NEUTRON=$NEUTRON
NETWORK_ID=$NETWORK_ID
CINDER=$CINDER
VOLUME_URL=$VOLUME_URL
MYSQL_PORT=$P_MYSQL
AMQP_URL=$TRANSPORT
FLAVOR_TINY_ID=1
FLAVOR_SMALL_ID=2
IMAGE_ID=$IMAGE_ID
COMPUTE_DRIVER=$COMPUTE_DRIVER
COMPUTE_HOST=fake-compute-1
VENV=$VENV
EOF
cat "$DIR/keystone/ids.env" >> "$DIR/env"
trap - EXIT
ts "ready: . $DIR/keystone/demo-openrc (or admin-openrc); stop: $DIR/stop.sh"
