#!/usr/bin/env bash
# Makes sure the services the tests talk to are installed and running on this host:
# RabbitMQ (with the management plugin), MariaDB and PostgreSQL, plus the tools the
# tests call. Idempotent: it installs only what is missing and starts only what is down.
set -euo pipefail

log() { printf '[ensure-services] %s\n' "$*"; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_updated=0
need_pkg() { # need_pkg COMMAND PACKAGE...
    local cmd=$1; shift
    if ! command -v "$cmd" >/dev/null 2>&1 && [ ! -x "$cmd" ]; then
        if [ "$apt_updated" = 0 ]; then
            log "apt-get update"
            as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
            apt_updated=1
        fi
        log "installing $*"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
    fi
}

wait_for() { # wait_for SECONDS DESCRIPTION COMMAND...
    local secs=$1 what=$2; shift 2
    for _ in $(seq 1 "$secs"); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 1
    done
    log "$what did not come up within ${secs}s"; return 1
}

need_pkg rabbitmq-server rabbitmq-server
need_pkg /usr/sbin/mariadbd mariadb-server mariadb-client
need_pkg pg_ctlcluster postgresql postgresql-contrib
need_pkg curl curl
# What the instances' guest agents run: volumes (losetup, mkfs.ext4, resize2fs, blkid) and
# hot MariaDB backups.
need_pkg losetup mount
need_pkg mkfs.ext4 e2fsprogs
need_pkg mariadb-backup mariadb-backup
need_pkg python3 python3 python3-venv

# --- RabbitMQ -------------------------------------------------------------------
if ! rabbitmqctl -q status >/dev/null 2>&1; then
    log "starting RabbitMQ"
    as_root rabbitmq-server -detached || true
fi
wait_for 90 "RabbitMQ" rabbitmqctl -q await_startup
if ! rabbitmq-plugins -q is_enabled rabbitmq_management >/dev/null 2>&1; then
    log "enabling rabbitmq_management"
    rabbitmq-plugins -q enable rabbitmq_management >/dev/null
fi
wait_for 60 "RabbitMQ management API" curl -fsS -u guest:guest http://127.0.0.1:15672/api/overview

# --- MariaDB --------------------------------------------------------------------
mariadb_ok() { mariadb -h 127.0.0.1 -P 3306 -u root -e 'SELECT 1'; }
if ! mariadb_ok >/dev/null 2>&1; then
    if ! mariadb -u root -e 'SELECT 1' >/dev/null 2>&1; then
        log "starting MariaDB"
        as_root start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
        wait_for 60 "MariaDB" mariadb -u root -e 'SELECT 1'
    fi
    if ! mariadb_ok >/dev/null 2>&1; then
        # A fresh Debian install authenticates root by unix socket only; the tests log in
        # over TCP as root without a password, as on the development machines.
        log "allowing root over TCP without a password (test host only)"
        mariadb -u root -e "ALTER USER 'root'@'localhost' IDENTIFIED VIA mysql_native_password USING PASSWORD('') OR unix_socket; FLUSH PRIVILEGES;"
    fi
fi
wait_for 30 "MariaDB over TCP" mariadb_ok

# --- PostgreSQL -----------------------------------------------------------------
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
    log "starting PostgreSQL"
    ver=$(ls /etc/postgresql | sort -V | tail -n1)
    as_root pg_ctlcluster --skip-systemctl-redirect "$ver" main start || true
fi
wait_for 60 "PostgreSQL" pg_isready -q -h 127.0.0.1 -p 5432
if ! psql -h 127.0.0.1 -U postgres -d postgres -Atc 'SELECT 1' >/dev/null 2>&1; then
    log "PostgreSQL does not accept user postgres over TCP without a password;"
    log "the tests need 'host all all 127.0.0.1/32 trust' in pg_hba.conf"
    exit 1
fi

log "RabbitMQ, MariaDB and PostgreSQL are up"
