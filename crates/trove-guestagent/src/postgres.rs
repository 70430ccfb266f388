//! PostgreSQL manager: runs `postgres` as the unprivileged service account for one instance
//! and administers it over its unix socket as the `postgres` superuser.
//!
//! On-disk layout under the instance's mount point (`<mount>`):
//!
//! ```text
//! <mount>/                          owned by the service user
//! ├── data/
//! │   ├── pgdata/                   PGDATA (initdb, 0700, service user)
//! │   ├── wal_archive/              WAL archive (`archive_mode = on`; `archive_command`
//! │   │                             copies every finished segment here; incremental
//! │   │                             backups are made of it)
//! │   └── restore_wal/              during a restore only: the WAL of incremental backups
//! ├── etc/
//! │   ├── postgresql.conf           base configuration (`config_contents` or rendered from the
//! │   │                             flavor's RAM) + the instance's fixed settings +
//! │   │                             `include_dir = '<mount>/etc/conf.d'`
//! │   ├── pg_hba.conf               access rules (below)
//! │   └── conf.d/
//! │       ├── 05-restore.conf            during a restore only: recovery settings
//! │       ├── 10-replication.conf        WAL settings for replicas and pg_rewind
//! │       ├── 12-read-only.conf          a demoted replication source: no new writes
//! │       ├── 15-standby.conf            a replica: primary_conninfo (0600, service user)
//! │       ├── 20-user-overrides.conf     configuration group values (`update_overrides`)
//! │       └── 30-runtime-overrides.conf  values applied live (`apply_overrides` + reload)
//! ├── run/                          unix socket directory (0700, service user only) and
//! │                                 server.pid (written by the agent, removed on stop)
//! ├── log/server.log                server output
//! └── .guestagent/                  prepare markers (start, end), replication_user.json (0600)
//! ```
//!
//! Access (`pg_hba.conf`): over the socket `postgres` is trusted (only root and the service
//! account can reach the socket directory) and everyone else uses `scram-sha-256`; over TCP
//! `postgres` is rejected and everyone else uses `scram-sha-256`; the internal `replicator`
//! role (hidden from tenants) may open replication connections from any address with
//! `scram-sha-256`. There is no `os_admin` account: as in Trove, the agent is `postgres`
//! over the socket. "Root" is a role named `root` with SUPERUSER CREATEDB CREATEROLE INHERIT
//! REPLICATION BYPASSRLS LOGIN; disabling it takes those away and removes its password (it
//! may own objects, so it is not dropped).
//!
//! The address, port and socket directory are also given on the command line so overrides
//! cannot move them. Stopping sends SIGINT (fast shutdown).
//!
//! Backups (`pg_basebackup` over the socket, with `local replication postgres trust`) and
//! restores (archive recovery in `prepare`) are in [`crate::pgbackup`]. Streaming
//! replication (a replica's `prepare` with `snapshot`, attach, detach, switchover and
//! failover) is described in the `pg_replication` module.

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use rustix::process::Signal;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, Row};

use crate::error::{GuestError, Result};
use crate::lifecycle::{Lifecycle, ServerSteps};
use crate::manager::{
    check_overrides, filesystem_stats, generate_password, mkdir, paginate, write_file,
    DatastoreManager, FilesystemStats, ManagerConfig, Overrides, Page, PrepareRequest, ReplicaConf,
    ReplicaContext, ReplicaSourceAddress, ReplicationUser,
};
use crate::models::{
    validate_databases, validate_users, Database, Flavor, User, UserAttributes, UserPassword,
    DEFAULT_HOST,
};
use crate::pg_replication::{self as repl, ReplicationFiles, Rewind, REPLICATION_USER};
use crate::process::{run_checked, Liveness, ServerProcess};
use crate::sql::{pg_ident, pg_literal};
use crate::status::ServiceStatus;

const FLAVOR: Flavor = Flavor::Postgres;

/// [`Flavor::validate_user_ref`] for PostgreSQL, which also keeps tenants off the internal
/// replication account.
fn validate_user_ref(name: &str, host: &str) -> Result<()> {
    FLAVOR.validate_user_ref(name, host)?;
    refuse_internal(name)
}

/// Refuses the internal replication account as a tenant user.
fn refuse_internal(name: &str) -> Result<()> {
    if name.eq_ignore_ascii_case(REPLICATION_USER) {
        return Err(GuestError::Reserved(name.to_string()));
    }
    Ok(())
}

/// The superuser the agent connects as.
pub const SUPERUSER: &str = "postgres";
/// The role "enable root" manages.
pub const ROOT_ROLE: &str = "root";
const ROOT_ATTRS: &str = "SUPERUSER CREATEDB CREATEROLE INHERIT REPLICATION BYPASSRLS LOGIN";
/// `12-read-only.conf`: a source that takes no new writes (`make_read_only`, demotion).
const READ_ONLY_CONF: &str =
    "# Replication source being replaced (trove-guestagent): no new writes.\n\
     default_transaction_read_only = on\n";
/// `status, sender_host, sender_port` of `pg_stat_wal_receiver`.
type ReceiverRow = (Option<String>, Option<String>, Option<i32>);
/// Least time given to the recovery of a restored backup.
const RECOVERY_WAIT: Duration = Duration::from_secs(3600);

/// The files of one instance (see the module doc).
#[derive(Debug, Clone)]
pub struct PgLayout {
    /// `<mount>`.
    pub mount: PathBuf,
    /// `<mount>/data`.
    pub data_root: PathBuf,
    /// `<mount>/data/pgdata`.
    pub pgdata: PathBuf,
    /// `<mount>/data/wal_archive`.
    pub wal_archive: PathBuf,
    /// `<mount>/etc`.
    pub etc_dir: PathBuf,
    /// `<mount>/etc/postgresql.conf`.
    pub conf: PathBuf,
    /// `<mount>/etc/pg_hba.conf`.
    pub hba: PathBuf,
    /// `<mount>/etc/conf.d`.
    pub overrides_dir: PathBuf,
    /// `<mount>/run` (socket directory).
    pub run_dir: PathBuf,
    /// `<mount>/log`.
    pub log_dir: PathBuf,
}

impl PgLayout {
    /// The layout under `mount`.
    pub fn new(mount: &Path) -> Self {
        PgLayout {
            mount: mount.to_path_buf(),
            data_root: mount.join("data"),
            pgdata: mount.join("data/pgdata"),
            wal_archive: mount.join("data/wal_archive"),
            etc_dir: mount.join("etc"),
            conf: mount.join("etc/postgresql.conf"),
            hba: mount.join("etc/pg_hba.conf"),
            overrides_dir: mount.join("etc/conf.d"),
            run_dir: mount.join("run"),
            log_dir: mount.join("log"),
        }
    }

    /// `<mount>/etc/conf.d/20-user-overrides.conf`.
    pub fn user_overrides(&self) -> PathBuf {
        self.overrides_dir.join("20-user-overrides.conf")
    }

    /// `<mount>/etc/conf.d/30-runtime-overrides.conf`.
    pub fn runtime_overrides(&self) -> PathBuf {
        self.overrides_dir.join("30-runtime-overrides.conf")
    }
}

fn conf_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Renders the RAM-dependent part of `postgresql.conf`.
pub fn render_sizing(memory_mb: u64) -> String {
    let ram = memory_mb.max(128);
    format!(
        "# Rendered by trove-guestagent for a flavor with {ram} MB of RAM.\n\
         max_connections = 100\n\
         shared_buffers = {sb}MB\n\
         effective_cache_size = {ec}MB\n\
         maintenance_work_mem = {mw}MB\n\
         work_mem = 4MB\n\
         max_wal_size = 1GB\n",
        sb = (ram / 4).max(16),
        ec = (ram * 3 / 4).max(64),
        mw = (ram / 16).clamp(16, 2048),
    )
}

/// Renders `pg_hba.conf` (see the module doc).
pub fn render_hba() -> String {
    "# Written by trove-guestagent.\n\
     local   all   postgres                trust\n\
     local   replication   postgres        trust\n\
     local   all   all                     scram-sha-256\n\
     host    all   postgres   0.0.0.0/0    reject\n\
     host    all   postgres   ::/0         reject\n\
     host    replication   replicator   0.0.0.0/0    scram-sha-256\n\
     host    replication   replicator   ::/0         scram-sha-256\n\
     host    all   all        0.0.0.0/0    scram-sha-256\n\
     host    all   all        ::/0         scram-sha-256\n"
        .to_string()
}

fn override_value_conf(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Bool(true) => "on".into(),
        serde_json::Value::Bool(false) => "off".into(),
        serde_json::Value::String(s) => conf_quote(s),
        other => other.to_string(),
    }
}

/// Renders an overrides file (`name = value` lines).
pub fn render_overrides(overrides: &Overrides) -> Result<String> {
    check_overrides(overrides)?;
    let mut out = String::new();
    for (k, v) in overrides {
        out.push_str(&format!("{k} = {}\n", override_value_conf(v)));
    }
    Ok(out)
}

/// Statements creating a role for `user` (its grants need per-database connections and are
/// planned by [`plan_grant`]).
pub fn plan_create_role(user: &User) -> Result<String> {
    Ok(format!(
        "CREATE ROLE {} WITH LOGIN PASSWORD {}",
        pg_ident(&user.name)?,
        pg_literal(user.password.as_deref().unwrap_or_default())?
    ))
}

/// Statements granting `role` everything on `db`: `(database to run in, statement)`.
pub fn plan_grant(role: &str, db: &str) -> Result<Vec<(Option<String>, String)>> {
    Ok(vec![
        (
            None,
            format!(
                "GRANT ALL PRIVILEGES ON DATABASE {} TO {}",
                pg_ident(db)?,
                pg_ident(role)?
            ),
        ),
        (
            Some(db.to_string()),
            format!("GRANT ALL ON SCHEMA public TO {}", pg_ident(role)?),
        ),
    ])
}

/// Statement creating a database.
pub fn plan_create_database(db: &Database) -> Result<String> {
    let mut s = format!("CREATE DATABASE {}", pg_ident(&db.name)?);
    if let Some(cs) = &db.character_set {
        s.push_str(&format!(" ENCODING {}", pg_literal(cs)?));
    }
    if let Some(co) = &db.collate {
        s.push_str(&format!(
            " LC_COLLATE {} LC_CTYPE {}",
            pg_literal(co)?,
            pg_literal(co)?
        ));
    }
    if db.character_set.is_some() || db.collate.is_some() {
        s.push_str(" TEMPLATE template0");
    }
    Ok(s)
}

/// Paths of the PostgreSQL programs.
#[derive(Debug, Clone)]
pub struct PgBinaries {
    /// Directory with `initdb` and `postgres`.
    pub bin_dir: PathBuf,
}

impl Default for PgBinaries {
    fn default() -> Self {
        PgBinaries {
            bin_dir: "/usr/lib/postgresql/15/bin".into(),
        }
    }
}

/// The PostgreSQL [`DatastoreManager`].
pub struct PostgresManager {
    config: ManagerConfig,
    binaries: PgBinaries,
    layout: PgLayout,
    process: ServerProcess,
    pool: tokio::sync::Mutex<Option<PgPool>>,
    lifecycle: Lifecycle,
    /// One replication change (attach, detach, promote, demote) at a time.
    replication: tokio::sync::Mutex<()>,
    repl_files: ReplicationFiles,
}

impl std::fmt::Debug for PostgresManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresManager")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl PostgresManager {
    /// A manager for the instance described by `config`, with Debian's PostgreSQL 15.
    pub fn new(config: ManagerConfig) -> Self {
        Self::with_binaries(config, PgBinaries::default())
    }

    /// A manager using other binaries.
    pub fn with_binaries(config: ManagerConfig, binaries: PgBinaries) -> Self {
        let layout = PgLayout::new(&config.mount_point);
        let process = ServerProcess::new(
            layout.run_dir.join("server.pid"),
            layout.log_dir.join("server.log"),
        )
        .with_stop_signal(Signal::INT)
        .with_program(&binaries.bin_dir.join("postgres"));
        let repl_files =
            ReplicationFiles::new(&layout.overrides_dir, &config.state_dir, &layout.pgdata);
        PostgresManager {
            config,
            binaries,
            layout,
            process,
            pool: tokio::sync::Mutex::new(None),
            lifecycle: Lifecycle::default(),
            replication: tokio::sync::Mutex::new(()),
            repl_files,
        }
    }

    /// The instance's files.
    pub fn layout(&self) -> &PgLayout {
        &self.layout
    }

    fn options(&self, database: &str) -> PgConnectOptions {
        PgConnectOptions::new()
            .host(&self.layout.run_dir.to_string_lossy())
            .port(self.config.port)
            .username(SUPERUSER)
            .database(database)
            .options([("standard_conforming_strings", "on")])
            .disable_statement_logging()
    }

    async fn pool(&self) -> Result<PgPool> {
        let mut guard = self.pool.lock().await;
        if let Some(p) = guard.as_ref() {
            return Ok(p.clone());
        }
        let p = PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(15))
            .idle_timeout(Duration::from_secs(60))
            .connect_lazy_with(self.options(SUPERUSER));
        *guard = Some(p.clone());
        Ok(p)
    }

    async fn drop_pool(&self) {
        if let Some(p) = self.pool.lock().await.take() {
            p.close().await;
        }
    }

    async fn admin(&self) -> Result<PgPool> {
        if !matches!(self.process.liveness(), Liveness::Alive(_)) {
            return Err(GuestError::NotRunning);
        }
        self.pool().await
    }

    /// Runs statements, each in the admin database or in the named one.
    async fn apply(&self, pool: &PgPool, plan: &[(Option<String>, String)]) -> Result<()> {
        for (db, stmt) in plan {
            match db {
                None => {
                    sqlx::raw_sql(stmt).execute(pool).await?;
                }
                Some(db) => {
                    let one = PgPoolOptions::new()
                        .max_connections(1)
                        .connect_with(self.options(db))
                        .await?;
                    let r = sqlx::raw_sql(stmt).execute(&one).await;
                    one.close().await;
                    r?;
                }
            }
        }
        Ok(())
    }

    async fn ping(&self) -> bool {
        let attempt = async {
            let mut c = PgConnection::connect_with(&self.options(SUPERUSER)).await?;
            c.ping().await?;
            c.close().await
        };
        matches!(
            tokio::time::timeout(Duration::from_secs(5), attempt).await,
            Ok(Ok(()))
        )
    }

    async fn wait_healthy(&self) -> Result<()> {
        self.process
            .wait_healthy("postgres", self.config.state_change_wait_time, || {
                self.ping()
            })
            .await
    }

    fn spawn_server(&self) -> Result<i32> {
        let l = &self.layout;
        let mut cmd = tokio::process::Command::new(self.binaries.bin_dir.join("postgres"));
        cmd.arg("-D")
            .arg(&l.pgdata)
            .arg("-c")
            .arg(format!("config_file={}", l.conf.display()))
            .arg("-c")
            .arg(format!("listen_addresses={}", self.config.bind_address))
            .arg("-c")
            .arg(format!("port={}", self.config.port))
            .arg("-c")
            .arg(format!("unix_socket_directories={}", l.run_dir.display()))
            .current_dir(&l.mount);
        self.config.service_user.apply(&mut cmd);
        self.process.spawn(cmd)
    }

    async fn start_locked(&self) -> Result<()> {
        match self.process.liveness() {
            Liveness::Alive(_) => return self.wait_healthy().await,
            Liveness::Vanished(_) => self.process.clear_leftovers().await,
            Liveness::Stopped => {}
        }
        self.process.forget()?;
        let pid = self.spawn_server()?;
        tracing::info!(pid, address = %self.config.bind_address, port = self.config.port, "postgres started");
        self.wait_healthy().await
    }

    async fn stop_locked(&self) -> Result<()> {
        self.drop_pool().await;
        self.process
            .terminate(self.config.state_change_wait_time)
            .await
    }

    fn make_dirs(&self) -> Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let l = &self.layout;
        let su = &self.config.service_user;
        mkdir(&l.mount)?;
        su.chown(&l.mount)?;
        for d in [
            &l.data_root,
            &l.wal_archive,
            &l.etc_dir,
            &l.overrides_dir,
            &l.run_dir,
            &l.log_dir,
        ] {
            mkdir(d)?;
            su.chown(d)?;
        }
        std::fs::set_permissions(&l.run_dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| GuestError::io("securing the socket directory", e))?;
        Ok(())
    }

    /// Size of the file system holding the instance's data, if it can be read.
    fn volume_bytes(&self) -> Option<u64> {
        let st = rustix::fs::statvfs(&self.config.mount_point).ok()?;
        Some(st.f_blocks * st.f_bsize)
    }

    fn write_config(&self, req: &PrepareRequest) -> Result<()> {
        self.write_base_config(req.config_contents.as_deref(), req.memory_mb)?;
        let l = &self.layout;
        write_file(&l.hba, render_hba().as_bytes(), 0o644)?;
        write_file(
            &self.repl_files.source_conf,
            repl::render_source_conf(self.volume_bytes()).as_bytes(),
            0o644,
        )?;
        if !req.overrides.is_empty() {
            write_file(
                &l.user_overrides(),
                render_overrides(&req.overrides)?.as_bytes(),
                0o644,
            )?;
        }
        Ok(())
    }

    /// `postgresql.conf`: the given contents (or sizing for `memory_mb`), then the instance's
    /// fixed settings, which therefore win.
    fn write_base_config(&self, contents: Option<&str>, memory_mb: u64) -> Result<()> {
        let l = &self.layout;
        let mut conf = match contents {
            Some(c) => format!("{c}\n"),
            None => render_sizing(memory_mb),
        };
        conf.push_str(&format!(
            "\n# Instance settings (trove-guestagent).\n\
             data_directory = {}\n\
             hba_file = {}\n\
             ident_file = {}\n\
             listen_addresses = {}\n\
             port = {}\n\
             unix_socket_directories = {}\n\
             unix_socket_permissions = 0700\n\
             password_encryption = 'scram-sha-256'\n\
             logging_collector = off\n\
             archive_mode = on\n\
             archive_command = {}\n\
             include_dir = {}\n",
            conf_quote(&l.pgdata.to_string_lossy()),
            conf_quote(&l.hba.to_string_lossy()),
            conf_quote(&l.pgdata.join("pg_ident.conf").to_string_lossy()),
            conf_quote(&self.config.bind_address.to_string()),
            self.config.port,
            conf_quote(&l.run_dir.to_string_lossy()),
            conf_quote(&crate::pgbackup::archive_command(&l.wal_archive)),
            conf_quote(&l.overrides_dir.to_string_lossy()),
        ));
        write_file(&l.conf, conf.as_bytes(), 0o644)
    }

    async fn initdb(&self) -> Result<()> {
        if self.layout.pgdata.join("PG_VERSION").exists() {
            tracing::info!("PGDATA already initialised");
            return Ok(());
        }
        let mut cmd = tokio::process::Command::new(self.binaries.bin_dir.join("initdb"));
        cmd.arg("-D")
            .arg(&self.layout.pgdata)
            .args([
                "-U",
                SUPERUSER,
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
            ])
            .args(["--encoding=UTF8", "--no-locale", "--no-instructions"])
            .current_dir(&self.layout.mount);
        self.config.service_user.apply(&mut cmd);
        run_checked(cmd, "initdb").await
    }

    async fn do_prepare(&self, req: &PrepareRequest) -> Result<()> {
        validate_databases(FLAVOR, &req.databases)?;
        validate_users(FLAVOR, &req.users)?;
        check_overrides(&req.overrides)?;
        if let Some(p) = &req.root_password {
            FLAVOR.check_password(p)?;
        }
        let replica_of = match &req.snapshot {
            Some(snap) => Some(self.check_snapshot(snap, req.backup_info.is_some())?),
            None => None,
        };
        self.stop_locked().await?;
        self.make_dirs()?;
        self.write_config(req)?;
        let paths = self.backup_paths();
        let target = match &req.backup_info {
            Some(info) => match crate::pgbackup::pg_restore(&paths, info).await {
                Ok(t) => Some(t),
                Err(e) => {
                    self.discard_restore(&paths);
                    return Err(e);
                }
            },
            None => {
                self.initdb().await?;
                None
            }
        };
        if let Some(ctx) = &replica_of {
            // A hot standby of the source from its first start: the restored snapshot's WAL
            // (and that of an incremental chain, through restore_command), then streaming.
            if let Err(e) = self.configure_standby(ctx) {
                self.discard_restore(&paths);
                let _ = self.clear_standby();
                return Err(e);
            }
        }
        self.process.forget()?;
        self.spawn_server()?;
        self.wait_healthy().await?;
        if let Some(ctx) = &replica_of {
            if let Err(e) = self.wait_streaming(ctx).await {
                let _ = self.stop_locked().await;
                self.discard_restore(&paths);
                let _ = self.clear_standby();
                return Err(e);
            }
            self.end_standby_restore(&paths).await?;
        } else if let Some(target) = target {
            let within = self.config.state_change_wait_time.max(RECOVERY_WAIT);
            if let Err(e) = crate::pgbackup::finish_recovery(&paths, target, within).await {
                let _ = self.stop_locked().await;
                self.discard_restore(&paths);
                return Err(e);
            }
        }
        Ok(())
    }

    /// The files a backup or a restore of this instance uses.
    fn backup_paths(&self) -> crate::pgbackup::PgBackupPaths {
        let l = &self.layout;
        crate::pgbackup::PgBackupPaths {
            bin_dir: self.binaries.bin_dir.clone(),
            pgdata: l.pgdata.clone(),
            wal_archive: l.wal_archive.clone(),
            restore_wal: l.data_root.join("restore_wal"),
            restore_conf: l.overrides_dir.join("05-restore.conf"),
            socket_dir: l.run_dir.clone(),
            port: self.config.port,
            owner: self.config.service_user.clone(),
        }
    }

    /// Removes what a failed restore left (the data directory's contents, the restored WAL,
    /// the recovery settings): nothing half-made is ever started later.
    fn discard_restore(&self, paths: &crate::pgbackup::PgBackupPaths) {
        for d in [&paths.pgdata, &paths.restore_wal] {
            if d.exists() {
                if let Err(e) = std::fs::remove_dir_all(d) {
                    tracing::warn!(error = %e, dir = %d.display(), "removing a failed restore's files failed");
                }
            }
        }
        let _ = std::fs::remove_file(&paths.restore_conf);
    }

    /// Adds the replication rule the backup tool needs to an instance's `pg_hba.conf` written
    /// before the rule existed, and reloads.
    async fn ensure_replication_rule(&self) -> Result<()> {
        let hba = std::fs::read_to_string(&self.layout.hba).unwrap_or_default();
        if hba.lines().any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() >= 3 && f[0] == "local" && f[1] == "replication"
        }) {
            return Ok(());
        }
        write_file(&self.layout.hba, render_hba().as_bytes(), 0o644)?;
        let pool = self.admin().await?;
        sqlx::query("SELECT pg_reload_conf()")
            .execute(&pool)
            .await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        Ok(())
    }

    /// Checks the `snapshot` of a replica's prepare; its replica context.
    fn check_snapshot(
        &self,
        snap: &crate::manager::ReplicaSnapshot,
        has_backup: bool,
    ) -> Result<ReplicaContext> {
        if let Some(s) = snap.replication_strategy.as_deref() {
            if s != repl::STRATEGY {
                return Err(GuestError::InvalidValue(format!(
                    "replication strategy {s} is not supported by PostgreSQL (expected {})",
                    repl::STRATEGY
                )));
            }
        }
        if !has_backup {
            return Err(GuestError::InvalidValue(
                "a replica's prepare needs the source's snapshot as backup_info".into(),
            ));
        }
        let ctx = snap.context();
        repl::check_context(&ctx)?;
        self.refuse_self_source(&ctx)?;
        Ok(ctx)
    }

    fn refuse_self_source(&self, ctx: &ReplicaContext) -> Result<()> {
        if ctx.master.host.trim() == self.config.bind_address.to_string()
            && ctx.master.port == self.config.port
        {
            return Err(GuestError::InvalidValue(
                "an instance cannot be a replica of itself".into(),
            ));
        }
        Ok(())
    }

    /// The `application_name` this instance streams under.
    fn application_name(&self) -> String {
        repl::application_name(&format!(
            "trove_{}_{}",
            self.config.bind_address, self.config.port
        ))
    }

    /// This instance's replica context, for `user`.
    fn context_of(&self, user: ReplicationUser) -> ReplicaContext {
        ReplicaContext {
            master: ReplicaSourceAddress {
                host: self.config.bind_address.to_string(),
                port: self.config.port,
            },
            replica_conf: ReplicaConf {
                log_position: serde_json::json!({}),
                replication_user: Some(user),
            },
        }
    }

    /// Writes the standby settings for `ctx` (taking effect at the next start, or for
    /// `primary_conninfo` at a reload) and keeps its account (a promoted replica serves
    /// replicas with the same one).
    fn configure_standby(&self, ctx: &ReplicaContext) -> Result<()> {
        let user = repl::check_context(ctx)?;
        let f = &self.repl_files;
        let owner = &self.config.service_user;
        repl::remove_if_exists(&f.recovery_signal)?;
        repl::remove_if_exists(&f.read_only_conf)?;
        let conf = repl::render_standby_conf(ctx, &self.application_name())?;
        repl::write_private(&f.standby_conf, conf.as_bytes(), owner)?;
        if self.layout.pgdata.is_dir() {
            repl::write_private(&f.standby_signal, b"", owner)?;
        }
        repl::save_user(&f.user_file, user)
    }

    /// Removes the standby settings: the next start is a writable server.
    fn clear_standby(&self) -> Result<()> {
        repl::remove_if_exists(&self.repl_files.standby_conf)?;
        repl::remove_if_exists(&self.repl_files.standby_signal)?;
        Ok(())
    }

    /// Once a restored replica streams: the restore's recovery settings and WAL go away.
    async fn end_standby_restore(&self, paths: &crate::pgbackup::PgBackupPaths) -> Result<()> {
        repl::remove_if_exists(&paths.restore_conf)?;
        let pool = self.admin().await?;
        self.reload(&pool).await?;
        if paths.restore_wal.exists() {
            std::fs::remove_dir_all(&paths.restore_wal).map_err(|e| {
                GuestError::io(format!("removing {}", paths.restore_wal.display()), e)
            })?;
        }
        Ok(())
    }

    async fn reload(&self, pool: &PgPool) -> Result<()> {
        sqlx::query("SELECT pg_reload_conf()").execute(pool).await?;
        Ok(())
    }

    async fn in_recovery(&self, pool: &PgPool) -> Result<bool> {
        Ok(sqlx::query_scalar("SELECT pg_is_in_recovery()")
            .fetch_one(pool)
            .await?)
    }

    /// Waits until the WAL receiver streams from the source of `ctx`.
    async fn wait_streaming(&self, ctx: &ReplicaContext) -> Result<()> {
        let within = repl::STREAMING_WAIT.min(self.config.state_change_wait_time);
        let deadline = std::time::Instant::now() + within;
        let (host, port) = (ctx.master.host.trim(), ctx.master.port);
        let log = self.layout.log_dir.join("server.log");
        let mut last = String::from("no WAL receiver");
        loop {
            if !matches!(self.process.liveness(), Liveness::Alive(_)) {
                return Err(GuestError::Command {
                    program: "postgres".into(),
                    detail: format!(
                        "the replica of {host}:{port} stopped: {}",
                        crate::process::log_tail(&log)
                    ),
                });
            }
            let row: std::result::Result<Option<ReceiverRow>, _> = match self.pool().await {
                Ok(pool) => {
                    sqlx::query_as(
                        "SELECT status, sender_host, sender_port FROM pg_stat_wal_receiver",
                    )
                    .fetch_optional(&pool)
                    .await
                }
                Err(e) => {
                    last = e.to_string();
                    Ok(None)
                }
            };
            match row {
                Ok(Some((status, sender_host, sender_port))) => {
                    let status = status.unwrap_or_default();
                    if status == "streaming"
                        && sender_port == Some(i32::from(port))
                        && sender_host.as_deref() == Some(host)
                    {
                        tracing::info!(source = %host, port, "replica streaming");
                        return Ok(());
                    }
                    last = format!(
                        "receiver {status} from {}:{}",
                        sender_host.unwrap_or_default(),
                        sender_port.unwrap_or_default()
                    );
                }
                Ok(None) => {}
                Err(e) => last = e.to_string(),
            }
            if std::time::Instant::now() >= deadline {
                return Err(GuestError::Command {
                    program: "streaming replication".into(),
                    detail: format!(
                        "not streaming from {host}:{port} after {} s ({last}); server log: {}",
                        within.as_secs(),
                        crate::process::log_tail(&log)
                    ),
                });
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// Makes the running primary able to serve replicas: settings, access rule, account.
    /// Restarts it only when its running WAL settings cannot stream.
    async fn ensure_source(&self) -> Result<ReplicationUser> {
        let f = &self.repl_files;
        let conf = repl::render_source_conf(self.volume_bytes());
        if std::fs::read_to_string(&f.source_conf).ok().as_deref() != Some(conf.as_str()) {
            write_file(&f.source_conf, conf.as_bytes(), 0o644)?;
        }
        let hba = std::fs::read_to_string(&self.layout.hba).unwrap_or_default();
        let hba_changed = !repl::hba_allows_replicas(&hba);
        if hba_changed {
            write_file(&self.layout.hba, render_hba().as_bytes(), 0o644)?;
        }
        let mut pool = self.admin().await?;
        self.reload(&pool).await?;
        if hba_changed {
            // The postmaster reloads asynchronously.
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let mut restarted = false;
        loop {
            let (level, senders): (String, String) = sqlx::query_as(
                "SELECT current_setting('wal_level'), current_setting('max_wal_senders')",
            )
            .fetch_one(&pool)
            .await?;
            if level != "minimal" && senders != "0" {
                break;
            }
            if restarted {
                return Err(GuestError::InvalidValue(format!(
                    "the server cannot serve replicas with wal_level = {level} and max_wal_senders = {senders} (set by a configuration override?)"
                )));
            }
            tracing::info!(
                level,
                senders,
                "restarting so the server can serve replicas"
            );
            self.restart().await?;
            pool = self.admin().await?;
            restarted = true;
        }
        let user = match repl::load_user(&f.user_file)? {
            Some(u) if u.name == REPLICATION_USER && !u.password.is_empty() => u,
            _ => {
                let u = ReplicationUser {
                    name: REPLICATION_USER.into(),
                    password: generate_password(self.config.password_length.max(16)),
                };
                repl::save_user(&f.user_file, &u)?;
                u
            }
        };
        let role = pg_ident(&user.name)?;
        let verb = if self.role_exists(&pool, &user.name).await? {
            "ALTER"
        } else {
            "CREATE"
        };
        let mut plan = vec![(
            None,
            format!(
                "{verb} ROLE {role} WITH REPLICATION LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD {}",
                pg_literal(&user.password)?
            ),
        )];
        for func in repl::REWIND_FUNCTIONS {
            plan.push((None, format!("GRANT EXECUTE ON FUNCTION {func} TO {role}")));
        }
        self.apply(&pool, &plan).await?;
        Ok(user)
    }

    /// Promotes a replica (nothing on a writable server) and removes its standby settings.
    async fn promote(&self, pool: &PgPool) -> Result<()> {
        if self.in_recovery(pool).await? {
            tracing::info!("promoting the replica");
            let wait = repl::PROMOTE_WAIT;
            let promoted: bool = sqlx::query_scalar("SELECT pg_promote(true, $1)")
                .bind(wait.as_secs() as i32)
                .fetch_one(pool)
                .await?;
            let deadline = std::time::Instant::now() + wait;
            while !promoted && self.in_recovery(pool).await? {
                if std::time::Instant::now() >= deadline {
                    return Err(GuestError::Timeout {
                        wanted: "a writable server (promotion of the replica)",
                        secs: wait.as_secs(),
                    });
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            // The checkpoint writes the new timeline into pg_control, where pg_rewind of a
            // former source against this server reads it.
            sqlx::query("CHECKPOINT").execute(pool).await?;
        }
        self.clear_standby()?;
        self.reload(pool).await
    }

    /// Waits until a reload made `default_transaction_read_only` what was asked (the
    /// postmaster reloads asynchronously).
    async fn wait_read_only(&self, on: bool) -> Result<()> {
        let want = if on { "on" } else { "off" };
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            // A fresh session: it starts with what the reloaded configuration says.
            let mut c = PgConnection::connect_with(&self.options(SUPERUSER)).await?;
            let now: std::result::Result<String, sqlx::Error> =
                sqlx::query_scalar("SELECT current_setting('default_transaction_read_only')")
                    .fetch_one(&mut c)
                    .await;
            let _ = c.close().await;
            if now? == want {
                return Ok(());
            }
            if std::time::Instant::now() >= deadline {
                return Err(GuestError::Timeout {
                    wanted: "read-only as asked (default_transaction_read_only)",
                    secs: 10,
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The newest WAL position: replayed on a replica, written on a primary.
    async fn wal_position(&self, pool: &PgPool) -> Result<(String, u64)> {
        let lsn: Option<String> = sqlx::query_scalar(
            "SELECT (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END)::text",
        )
        .fetch_one(pool)
        .await?;
        let lsn = lsn.ok_or_else(|| {
            GuestError::InvalidValue("the replica has not replayed any WAL yet".into())
        })?;
        let n = crate::pgbackup::parse_lsn(&lsn).ok_or_else(|| {
            GuestError::InvalidValue(format!("the server reports an unreadable LSN {lsn}"))
        })?;
        Ok((lsn, n))
    }

    async fn existing_databases(&self, pool: &PgPool) -> Result<Vec<Database>> {
        let rows = sqlx::query(
            "SELECT datname::text, pg_encoding_to_char(encoding)::text, datcollate::text FROM pg_database WHERE NOT datistemplate",
        )
        .fetch_all(pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| Database {
                name: r.get(0),
                character_set: r.get(1),
                collate: r.get(2),
            })
            .collect())
    }

    async fn role_exists(&self, pool: &PgPool, name: &str) -> Result<bool> {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_roles WHERE rolname = $1")
            .bind(name)
            .fetch_one(pool)
            .await?;
        Ok(n > 0)
    }

    async fn require_role(&self, pool: &PgPool, name: &str) -> Result<()> {
        if self.role_exists(pool, name).await? {
            Ok(())
        } else {
            Err(GuestError::NotFound(format!(
                "User {name}@% cannot be found on the instance."
            )))
        }
    }

    async fn access_of(&self, pool: &PgPool, name: &str) -> Result<Vec<Database>> {
        let names: Vec<String> = sqlx::query_scalar(
            "SELECT datname::text FROM pg_database WHERE NOT datistemplate AND has_database_privilege($1, oid, 'CREATE') ORDER BY datname",
        )
        .bind(name)
        .fetch_all(pool)
        .await?;
        Ok(names
            .into_iter()
            .filter(|d| !FLAVOR.is_reserved_db(d))
            .map(Database::new)
            .collect())
    }

    async fn require_database(&self, pool: &PgPool, name: &str) -> Result<()> {
        if self
            .existing_databases(pool)
            .await?
            .iter()
            .any(|d| d.name == name)
        {
            Ok(())
        } else {
            Err(GuestError::NotFound(format!(
                "Database {name} cannot be found on the instance."
            )))
        }
    }

    fn host_of(hostname: Option<&str>) -> Result<&str> {
        let host = hostname.unwrap_or(DEFAULT_HOST);
        FLAVOR.check_host(host)?;
        Ok(host)
    }

    fn dir_size(path: &Path) -> u64 {
        let mut total = 0;
        if let Ok(rd) = std::fs::read_dir(path) {
            for e in rd.flatten() {
                match e.metadata() {
                    Ok(m) if m.is_dir() => total += Self::dir_size(&e.path()),
                    Ok(m) => total += m.len(),
                    Err(_) => {}
                }
            }
        }
        total
    }
}

#[async_trait]
impl ServerSteps for PostgresManager {
    fn lifecycle(&self) -> &Lifecycle {
        &self.lifecycle
    }

    fn instance_config(&self) -> &ManagerConfig {
        &self.config
    }

    fn label(&self) -> &'static str {
        "PostgreSQL"
    }

    async fn install(&self, request: &PrepareRequest) -> Result<()> {
        self.do_prepare(request).await
    }

    async fn start_server(&self) -> Result<()> {
        self.start_locked().await
    }

    async fn stop_server(&self) -> Result<()> {
        self.stop_locked().await
    }

    async fn observe_server(&self) -> ServiceStatus {
        self.process.observe(self.ping()).await
    }
}

#[async_trait]
impl DatastoreManager for PostgresManager {
    fn name(&self) -> &'static str {
        "postgresql"
    }

    fn is_prepared(&self) -> bool {
        self.config.prepare_end_marker().exists()
    }

    async fn prepare(&self, mut request: PrepareRequest) -> Result<()> {
        if request.snapshot.is_some()
            && (!request.databases.is_empty()
                || !request.users.is_empty()
                || request.root_password.is_some())
        {
            // A replica has the source's databases and users; it takes no writes of its own.
            tracing::warn!("prepare of a replica names databases, users or root; ignored");
            request.databases.clear();
            request.users.clear();
            request.root_password = None;
        }
        self.prepare_sequence(request).await
    }

    async fn start(&self) -> Result<()> {
        self.start_sequence().await
    }

    async fn stop(&self) -> Result<()> {
        self.stop_sequence().await
    }

    async fn restart(&self) -> Result<()> {
        self.restart_sequence().await
    }

    async fn status(&self) -> ServiceStatus {
        self.status_sequence().await
    }

    async fn create_backup(
        &self,
        job: &crate::backup::BackupJob,
    ) -> Result<trove_backup::StoredObject> {
        if !matches!(self.process.liveness(), Liveness::Alive(_)) {
            return Err(GuestError::NotRunning);
        }
        self.ensure_replication_rule().await?;
        crate::pgbackup::pg_backup(&self.backup_paths(), job).await
    }

    async fn create_databases(&self, databases: Vec<Database>) -> Result<()> {
        validate_databases(FLAVOR, &databases)?;
        let pool = self.admin().await?;
        let existing: Vec<String> = self
            .existing_databases(&pool)
            .await?
            .into_iter()
            .map(|d| d.name)
            .collect();
        let mut plan = Vec::new();
        for db in databases.iter().filter(|d| !existing.contains(&d.name)) {
            plan.push((None, plan_create_database(db)?));
        }
        self.apply(&pool, &plan).await
    }

    async fn list_databases(
        &self,
        limit: Option<usize>,
        marker: Option<String>,
        include_marker: bool,
    ) -> Result<Page<Database>> {
        let pool = self.admin().await?;
        let dbs: Vec<Database> = self
            .existing_databases(&pool)
            .await?
            .into_iter()
            .filter(|d| !FLAVOR.is_reserved_db(&d.name))
            .collect();
        Ok(paginate(
            dbs,
            |d| d.name.clone(),
            limit,
            marker.as_deref(),
            include_marker,
        ))
    }

    async fn delete_database(&self, database: Database) -> Result<()> {
        FLAVOR.validate_database(&database)?;
        let pool = self.admin().await?;
        self.require_database(&pool, &database.name).await?;
        self.apply(
            &pool,
            &[(None, format!("DROP DATABASE {}", pg_ident(&database.name)?))],
        )
        .await
    }

    async fn create_users(&self, users: Vec<User>) -> Result<()> {
        validate_users(FLAVOR, &users)?;
        for u in &users {
            refuse_internal(&u.name)?;
        }
        let pool = self.admin().await?;
        let existing: Vec<String> = self
            .existing_databases(&pool)
            .await?
            .into_iter()
            .map(|d| d.name)
            .collect();
        let mut plan = Vec::new();
        for u in &users {
            if self.role_exists(&pool, &u.name).await? {
                return Err(GuestError::AlreadyExists(format!(
                    "A user with the name \"{}\" already exists.",
                    u.name
                )));
            }
            plan.push((None, plan_create_role(u)?));
            for db in &u.databases {
                if !existing.contains(&db.name) {
                    return Err(GuestError::NotFound(format!(
                        "Database {} cannot be found on the instance.",
                        db.name
                    )));
                }
                plan.extend(plan_grant(&u.name, &db.name)?);
            }
        }
        self.apply(&pool, &plan).await
    }

    async fn list_users(
        &self,
        limit: Option<usize>,
        marker: Option<String>,
        include_marker: bool,
    ) -> Result<Page<User>> {
        let pool = self.admin().await?;
        let names: Vec<String> =
            sqlx::query_scalar("SELECT rolname::text FROM pg_roles WHERE rolcanlogin")
                .fetch_all(&pool)
                .await?;
        let mut users = Vec::new();
        for name in names.into_iter().filter(|n| {
            !FLAVOR.is_reserved_user(n) && !n.starts_with("pg_") && n != REPLICATION_USER
        }) {
            let databases = self.access_of(&pool, &name).await?;
            users.push(User {
                name,
                password: None,
                host: Some(DEFAULT_HOST.into()),
                databases,
                is_root: false,
            });
        }
        Ok(paginate(
            users,
            User::key,
            limit,
            marker.as_deref(),
            include_marker,
        ))
    }

    async fn get_user(&self, username: &str, hostname: Option<&str>) -> Result<Option<User>> {
        let host = Self::host_of(hostname)?;
        validate_user_ref(username, host)?;
        let pool = self.admin().await?;
        if !self.role_exists(&pool, username).await? {
            return Ok(None);
        }
        let databases = self.access_of(&pool, username).await?;
        Ok(Some(User {
            name: username.into(),
            password: None,
            host: Some(host.into()),
            databases,
            is_root: false,
        }))
    }

    async fn delete_user(&self, user: User) -> Result<()> {
        validate_user_ref(&user.name, user.host())?;
        let pool = self.admin().await?;
        self.require_role(&pool, &user.name).await?;
        let role = pg_ident(&user.name)?;
        let mut plan = Vec::new();
        // Objects it owns go to postgres, its privileges go away, in every database.
        for db in self.existing_databases(&pool).await? {
            plan.push((
                Some(db.name.clone()),
                format!("REASSIGN OWNED BY {role} TO {SUPERUSER}"),
            ));
            plan.push((Some(db.name), format!("DROP OWNED BY {role}")));
        }
        plan.push((None, format!("DROP ROLE {role}")));
        self.apply(&pool, &plan).await
    }

    async fn change_passwords(&self, users: Vec<UserPassword>) -> Result<()> {
        for u in &users {
            validate_user_ref(&u.name, Self::host_of(u.host.as_deref())?)?;
            FLAVOR.check_password(&u.password)?;
        }
        let pool = self.admin().await?;
        let mut plan = Vec::new();
        for u in &users {
            self.require_role(&pool, &u.name).await?;
            plan.push((
                None,
                format!(
                    "ALTER ROLE {} WITH PASSWORD {}",
                    pg_ident(&u.name)?,
                    pg_literal(&u.password)?
                ),
            ));
        }
        self.apply(&pool, &plan).await
    }

    async fn update_attributes(
        &self,
        username: &str,
        hostname: Option<&str>,
        attrs: UserAttributes,
    ) -> Result<()> {
        let host = Self::host_of(hostname)?;
        validate_user_ref(username, host)?;
        if let Some(h) = &attrs.host {
            FLAVOR.check_host(h)?;
        }
        let new_name = attrs.name.as_deref().unwrap_or(username);
        validate_user_ref(new_name, DEFAULT_HOST)?;
        if let Some(p) = &attrs.password {
            FLAVOR.check_password(p)?;
        }
        let pool = self.admin().await?;
        self.require_role(&pool, username).await?;
        let mut plan = Vec::new();
        if new_name != username {
            if self.role_exists(&pool, new_name).await? {
                return Err(GuestError::AlreadyExists(format!(
                    "A user with the name \"{new_name}\" already exists."
                )));
            }
            plan.push((
                None,
                format!(
                    "ALTER ROLE {} RENAME TO {}",
                    pg_ident(username)?,
                    pg_ident(new_name)?
                ),
            ));
        }
        if let Some(p) = &attrs.password {
            plan.push((
                None,
                format!(
                    "ALTER ROLE {} WITH PASSWORD {}",
                    pg_ident(new_name)?,
                    pg_literal(p)?
                ),
            ));
        }
        self.apply(&pool, &plan).await
    }

    async fn grant_access(
        &self,
        username: &str,
        hostname: Option<&str>,
        databases: Vec<String>,
    ) -> Result<()> {
        validate_user_ref(username, Self::host_of(hostname)?)?;
        let dbs: Vec<Database> = databases.into_iter().map(Database::new).collect();
        validate_databases(FLAVOR, &dbs)?;
        let pool = self.admin().await?;
        self.require_role(&pool, username).await?;
        let mut plan = Vec::new();
        for d in &dbs {
            self.require_database(&pool, &d.name).await?;
            plan.extend(plan_grant(username, &d.name)?);
        }
        self.apply(&pool, &plan).await
    }

    async fn revoke_access(
        &self,
        username: &str,
        hostname: Option<&str>,
        database: &str,
    ) -> Result<()> {
        validate_user_ref(username, Self::host_of(hostname)?)?;
        FLAVOR.validate_database(&Database::new(database))?;
        let pool = self.admin().await?;
        self.require_role(&pool, username).await?;
        if !self
            .access_of(&pool, username)
            .await?
            .iter()
            .any(|d| d.name == database)
        {
            return Err(GuestError::NotFound(format!(
                "Database {database} cannot be found on the instance."
            )));
        }
        let (role, db) = (pg_ident(username)?, pg_ident(database)?);
        self.apply(
            &pool,
            &[
                (
                    None,
                    format!("REVOKE ALL PRIVILEGES ON DATABASE {db} FROM {role}"),
                ),
                (
                    Some(database.to_string()),
                    format!("REVOKE ALL ON SCHEMA public FROM {role}"),
                ),
            ],
        )
        .await
    }

    async fn list_access(&self, username: &str, hostname: Option<&str>) -> Result<Vec<Database>> {
        validate_user_ref(username, Self::host_of(hostname)?)?;
        let pool = self.admin().await?;
        self.require_role(&pool, username).await?;
        self.access_of(&pool, username).await
    }

    async fn enable_root(&self, password: Option<String>) -> Result<User> {
        let password = password.unwrap_or_else(|| generate_password(self.config.password_length));
        FLAVOR.check_password(&password)?;
        let pool = self.admin().await?;
        let verb = if self.role_exists(&pool, ROOT_ROLE).await? {
            "ALTER"
        } else {
            "CREATE"
        };
        let stmt = format!(
            "{verb} ROLE {} WITH {ROOT_ATTRS} PASSWORD {}",
            pg_ident(ROOT_ROLE)?,
            pg_literal(&password)?
        );
        self.apply(&pool, &[(None, stmt)]).await?;
        Ok(User {
            name: ROOT_ROLE.into(),
            password: Some(password),
            host: Some(DEFAULT_HOST.into()),
            databases: Vec::new(),
            is_root: true,
        })
    }

    async fn disable_root(&self) -> Result<()> {
        let pool = self.admin().await?;
        if !self.role_exists(&pool, ROOT_ROLE).await? {
            return Ok(());
        }
        let stmt = format!(
            "ALTER ROLE {} WITH NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS NOLOGIN PASSWORD NULL",
            pg_ident(ROOT_ROLE)?
        );
        self.apply(&pool, &[(None, stmt)]).await
    }

    async fn is_root_enabled(&self) -> Result<bool> {
        let pool = self.admin().await?;
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_roles WHERE rolname = $1 AND rolsuper AND rolcanlogin",
        )
        .bind(ROOT_ROLE)
        .fetch_one(&pool)
        .await?;
        Ok(n > 0)
    }

    async fn get_filesystem_stats(&self, path: Option<&Path>) -> Result<FilesystemStats> {
        let mut st = filesystem_stats(path.unwrap_or(&self.config.mount_point))?;
        st.mgr_extra_info = serde_json::json!({
            "wal_size": Self::dir_size(&self.layout.pgdata.join("pg_wal")),
            "wal_archive_size": Self::dir_size(&self.layout.wal_archive),
        });
        Ok(st)
    }

    async fn update_overrides(&self, overrides: Overrides, remove: bool) -> Result<()> {
        let file = self.layout.user_overrides();
        if remove {
            return match std::fs::remove_file(&file) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(GuestError::io("removing overrides", e))
                }
                _ => Ok(()),
            };
        }
        write_file(&file, render_overrides(&overrides)?.as_bytes(), 0o644)
    }

    async fn reset_configuration(&self, config_contents: String) -> Result<()> {
        self.write_base_config(Some(&config_contents), 0)
    }

    async fn apply_overrides(&self, overrides: Overrides) -> Result<()> {
        write_file(
            &self.layout.runtime_overrides(),
            render_overrides(&overrides)?.as_bytes(),
            0o644,
        )?;
        let pool = self.admin().await?;
        sqlx::query("SELECT pg_reload_conf()")
            .execute(&pool)
            .await?;
        Ok(())
    }
    fn replication_strategy(&self) -> Option<&'static str> {
        Some(repl::STRATEGY)
    }

    async fn replica_context(&self) -> Result<ReplicaContext> {
        let _g = self.replication.lock().await;
        let pool = self.admin().await?;
        if self.in_recovery(&pool).await? {
            return Err(GuestError::InvalidValue(
                "this instance is a replica; only a replication source hands out a replica context"
                    .into(),
            ));
        }
        let user = self.ensure_source().await?;
        Ok(self.context_of(user))
    }

    async fn attach_replica(&self, context: &ReplicaContext, restart: bool) -> Result<()> {
        let _g = self.replication.lock().await;
        repl::check_context(context)?;
        self.refuse_self_source(context)?;
        let running = matches!(self.process.liveness(), Liveness::Alive(_));
        let in_recovery = if running {
            self.in_recovery(&self.admin().await?).await?
        } else {
            false
        };
        // Whether the server may have written WAL of its own on its current timeline.
        let was_writable = if running {
            !in_recovery
        } else {
            !self.repl_files.standby_signal.exists()
        } || self.repl_files.attach_writable.exists();
        if was_writable {
            write_file(&self.repl_files.attach_writable, b"", 0o600)?;
        }
        self.configure_standby(context)?;
        if running && in_recovery && !restart && !was_writable {
            // A replica follows another source after a reload (primary_conninfo).
            self.reload(&self.admin().await?).await?;
            return self.wait_streaming(context).await;
        }
        if running && !in_recovery && !restart {
            tracing::info!("a writable server becomes a replica only through a restart");
        }
        self.stop().await?;
        // pg_rewind's crash recovery of a server that did not stop cleanly runs without them.
        repl::remove_if_exists(&self.repl_files.standby_signal)?;
        repl::remove_if_exists(&self.repl_files.recovery_signal)?;
        let bin = &self.binaries.bin_dir;
        let (pgdata, owner) = (&self.layout.pgdata, &self.config.service_user);
        let reseed_because = match repl::pg_rewind(
            bin,
            pgdata,
            &self.layout.conf,
            &self.layout.mount,
            context,
            owner,
        )
        .await?
        {
            Rewind::NotNeeded {
                same_timeline: true,
            } if was_writable => {
                Some("this server was writable on a timeline numbered as the source's".to_string())
            }
            Rewind::NotNeeded { .. } => {
                tracing::info!("data directory on the source's timeline");
                None
            }
            Rewind::Done => {
                tracing::info!("data directory rewound onto the source's timeline");
                None
            }
            Rewind::Unsupported(reason) => Some(reason),
        };
        if let Some(reason) = reseed_because {
            tracing::warn!(%reason, "pg_rewind cannot be used; re-seeding from the source");
            repl::reseed(bin, pgdata, &self.layout.mount, context, owner).await?;
        }
        // What the rewind or re-seed copied from the source may include signal files.
        self.configure_standby(context)?;
        self.start().await?;
        self.wait_streaming(context).await?;
        repl::remove_if_exists(&self.repl_files.attach_writable)?;
        Ok(())
    }

    async fn detach_replica(&self, for_failover: bool) -> Result<serde_json::Value> {
        let _g = self.replication.lock().await;
        let pool = self.admin().await?;
        if for_failover && self.in_recovery(&pool).await? {
            // Part of a promotion: the candidate is promoted by enable_as_master, the others
            // are re-pointed by attach_replica (see the pg_replication module).
            tracing::info!(
                "detached for a promotion; still following until promoted or re-pointed"
            );
        } else {
            self.promote(&pool).await?;
        }
        Ok(serde_json::json!({ "replication_user": null }))
    }

    async fn make_read_only(&self, read_only: bool) -> Result<()> {
        // Trove does nothing here on PostgreSQL; this guest stops new writes on a source
        // (default_transaction_read_only, the same file demote_replication_master writes),
        // so that nothing is written between the switchover's last position and the
        // promotion. A replica refuses writes by itself.
        let _g = self.replication.lock().await;
        let pool = self.admin().await?;
        if read_only {
            if self.in_recovery(&pool).await? {
                return Ok(());
            }
            write_file(
                &self.repl_files.read_only_conf,
                READ_ONLY_CONF.as_bytes(),
                0o644,
            )?;
        } else if !repl::remove_if_exists(&self.repl_files.read_only_conf)? {
            return Ok(());
        }
        self.reload(&pool).await?;
        self.wait_read_only(read_only).await
    }

    async fn enable_as_master(&self) -> Result<()> {
        let _g = self.replication.lock().await;
        let pool = self.admin().await?;
        self.promote(&pool).await?;
        repl::remove_if_exists(&self.repl_files.read_only_conf)?;
        self.ensure_source().await?;
        Ok(())
    }

    async fn demote_replication_master(&self) -> Result<()> {
        let _g = self.replication.lock().await;
        if !matches!(self.process.liveness(), Liveness::Alive(_)) {
            // A stopped former source is rewound when it is attached.
            return Ok(());
        }
        let pool = self.admin().await?;
        if self.in_recovery(&pool).await? {
            return Ok(());
        }
        write_file(
            &self.repl_files.read_only_conf,
            READ_ONLY_CONF.as_bytes(),
            0o644,
        )?;
        self.reload(&pool).await?;
        self.wait_read_only(true).await?;
        sqlx::query("CHECKPOINT").execute(&pool).await?;
        Ok(())
    }

    async fn get_last_txn(&self) -> Result<(String, i64)> {
        let pool = self.admin().await?;
        let sysid: i64 = sqlx::query_scalar("SELECT system_identifier FROM pg_control_system()")
            .fetch_one(&pool)
            .await?;
        let (_, lsn) = self.wal_position(&pool).await?;
        Ok((sysid.to_string(), lsn as i64))
    }

    async fn get_latest_txn_id(&self) -> Result<String> {
        let pool = self.admin().await?;
        Ok(self.wal_position(&pool).await?.0)
    }

    async fn wait_for_txn(&self, txn: &str) -> Result<()> {
        let wanted = crate::pgbackup::parse_lsn(txn).ok_or_else(|| {
            GuestError::InvalidValue(format!("{txn:?} is not a PostgreSQL WAL position (X/Y)"))
        })?;
        let within = self.config.state_change_wait_time;
        let deadline = std::time::Instant::now() + within;
        loop {
            let pool = self.admin().await?;
            let (at, n) = self.wal_position(&pool).await?;
            if n >= wanted {
                return Ok(());
            }
            if std::time::Instant::now() >= deadline {
                return Err(GuestError::Command {
                    program: "wait_for_txn".into(),
                    detail: format!(
                        "the replica replayed up to {at}, not yet {txn}, after {} s",
                        within.as_secs()
                    ),
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_and_grant_plans_quote() {
        let u = User::new("we\"ird", "it's");
        assert_eq!(
            plan_create_role(&u).unwrap(),
            "CREATE ROLE \"we\"\"ird\" WITH LOGIN PASSWORD 'it''s'"
        );
        let g = plan_grant("a", "d;b").unwrap();
        assert_eq!(g[0].1, "GRANT ALL PRIVILEGES ON DATABASE \"d;b\" TO \"a\"");
        assert_eq!(g[1].0.as_deref(), Some("d;b"));
    }

    #[test]
    fn database_plan() {
        let db = Database {
            name: "x".into(),
            character_set: Some("UTF8".into()),
            collate: Some("C".into()),
        };
        assert_eq!(
            plan_create_database(&db).unwrap(),
            "CREATE DATABASE \"x\" ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0"
        );
    }

    #[test]
    fn overrides_quoted() {
        let mut o = Overrides::new();
        o.insert("work_mem".into(), "8MB".into());
        o.insert("jit".into(), false.into());
        assert_eq!(
            render_overrides(&o).unwrap(),
            "jit = off\nwork_mem = '8MB'\n"
        );
    }
}
