//! MariaDB manager: runs `mariadbd` for one instance and administers it over its unix socket.
//!
//! On-disk layout under the instance's mount point (`<mount>`):
//!
//! ```text
//! <mount>/                         owned by the service user (the server must traverse it)
//! ├── data/                        datadir (mariadb-install-db), service user
//! ├── etc/
//! │   ├── my.cnf                   base configuration: `config_contents` from the controller,
//! │   │                            or rendered from the flavor's RAM; ends with
//! │   │                            `!includedir <mount>/etc/conf.d`
//! │   ├── replication-source.json  the source a replica follows (address, server id)
//! │   └── conf.d/
//! │       ├── 20-user-overrides.cnf  configuration group values (`update_overrides`)
//! │       └── 50-system-replication.cnf  server_id, binary log, GTID strict mode, read_only
//! ├── conf.d/                      agent credentials, root only (0700)
//! │   ├── os_admin.cnf             [client] user/password/socket of the agent's account (0600)
//! │   ├── replication.cnf          [client] the replication account of a source (0600)
//! │   └── root.cnf                 [client] password of root@localhost (0600)
//! ├── run/
//! │   ├── mysqld.sock              the agent's way in (os_admin@localhost)
//! │   ├── mysqld.pid               written by the server
//! │   └── server.pid               written by the agent on start, removed on stop
//! ├── log/server.log               server output (error log)
//! ├── tmp/                         the server's temporary files (not the shared /tmp)
//! └── .guestagent/                 prepare markers (start, end)
//! ```
//!
//! When the agent runs as root, `mariadb-install-db --user=<service user>` owns the datadir to
//! the service account and the server itself is started with that uid/gid (so `--user` is not
//! needed). The listening address, port, socket, datadir and pid file are given on the command
//! line so
//! configuration overrides cannot move them. `--skip-name-resolve` is forced, so a TCP client
//! is known by its IP address and never matches a `localhost` account.
//!
//! Backups and restores: `create_backup` streams `mariadb-backup --backup` as `os_admin` over
//! the socket into the backup store; `prepare` with `backup_info` fills the datadir from the
//! backup (chain) instead of `mariadb-install-db`, first starts the server with an init file
//! resetting `root@localhost`, then secures it as a new instance (see [`crate::backup`]).
//!
//! Replication (`MariaDBGTIDReplication`, see [`replication`]): every instance runs with a
//! binary log and its own `server_id`; a replica is prepared from its source's snapshot
//! (`prepare` with `snapshot`), follows it read-only by GTID and refuses changes of databases
//! and accounts while it does; the module also has the steps of switchover and failover.
//!
//! Accounts: `root@localhost` gets a random password (saved in `root.cnf`); `os_admin@localhost`
//! gets a random 36-character password and all privileges with grant option; anonymous users
//! and non-local root accounts are dropped. "Enable root" creates `root@'%'`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use sqlx::mysql::{MySqlConnectOptions, MySqlConnection, MySqlPool, MySqlPoolOptions};
use sqlx::{ConnectOptions, Connection, Row};

use crate::error::{GuestError, Result};
use crate::lifecycle::{Lifecycle, ServerSteps};
use crate::manager::{
    check_overrides, filesystem_stats, generate_password, mkdir, paginate, write_file,
    DatastoreManager, FilesystemStats, ManagerConfig, Overrides, Page, PrepareRequest,
    ReplicaContext,
};
use crate::models::{
    validate_databases, validate_users, Database, Flavor, User, UserAttributes, UserPassword,
    DEFAULT_HOST,
};
use crate::process::{run_checked, Liveness, ServerProcess};
use crate::sql::{mysql_account, mysql_ident, mysql_literal, MysqlEscaping};
use crate::status::ServiceStatus;

#[path = "mariadb_replication.rs"]
pub mod replication;

const FLAVOR: Flavor = Flavor::Mysql;
/// The agent's administrative account.
pub const ADMIN_USER: &str = "os_admin";
/// Trove's default character set for new databases when the request names none.
pub const DEFAULT_CHARACTER_SET: &str = "utf8";
/// Trove's default collation for new databases when the request names none.
pub const DEFAULT_COLLATION: &str = "utf8_general_ci";

/// Paths of the MariaDB programs.
#[derive(Debug, Clone)]
pub struct MariaDbBinaries {
    /// The server (`/usr/sbin/mariadbd`).
    pub mariadbd: PathBuf,
    /// The data directory initialiser (`/usr/bin/mariadb-install-db`).
    pub install_db: PathBuf,
}

impl Default for MariaDbBinaries {
    fn default() -> Self {
        MariaDbBinaries {
            mariadbd: "/usr/sbin/mariadbd".into(),
            install_db: "/usr/bin/mariadb-install-db".into(),
        }
    }
}

/// The files of one instance (see the module doc).
#[derive(Debug, Clone)]
pub struct MariaDbLayout {
    /// `<mount>`.
    pub mount: PathBuf,
    /// `<mount>/data`.
    pub data_dir: PathBuf,
    /// `<mount>/etc`.
    pub etc_dir: PathBuf,
    /// `<mount>/etc/my.cnf`.
    pub my_cnf: PathBuf,
    /// `<mount>/etc/conf.d`.
    pub overrides_dir: PathBuf,
    /// `<mount>/conf.d`.
    pub credentials_dir: PathBuf,
    /// `<mount>/run`.
    pub run_dir: PathBuf,
    /// `<mount>/run/mysqld.sock`.
    pub socket: PathBuf,
    /// `<mount>/log`.
    pub log_dir: PathBuf,
    /// `<mount>/tmp`: the server's private temporary directory.
    pub tmp_dir: PathBuf,
}

impl MariaDbLayout {
    /// The layout under `mount`.
    pub fn new(mount: &Path) -> Self {
        MariaDbLayout {
            mount: mount.to_path_buf(),
            data_dir: mount.join("data"),
            etc_dir: mount.join("etc"),
            my_cnf: mount.join("etc/my.cnf"),
            overrides_dir: mount.join("etc/conf.d"),
            credentials_dir: mount.join("conf.d"),
            run_dir: mount.join("run"),
            socket: mount.join("run/mysqld.sock"),
            log_dir: mount.join("log"),
            tmp_dir: mount.join("tmp"),
        }
    }

    /// `<mount>/conf.d/os_admin.cnf`.
    pub fn os_admin_cnf(&self) -> PathBuf {
        self.credentials_dir.join("os_admin.cnf")
    }

    /// `<mount>/conf.d/root.cnf`.
    pub fn root_cnf(&self) -> PathBuf {
        self.credentials_dir.join("root.cnf")
    }

    /// `<mount>/etc/conf.d/20-user-overrides.cnf`.
    pub fn user_overrides(&self) -> PathBuf {
        self.overrides_dir.join("20-user-overrides.cnf")
    }
}

/// Renders the base `my.cnf` sized for `memory_mb` of RAM.
pub fn render_my_cnf(memory_mb: u64, overrides_dir: &Path) -> String {
    let ram = memory_mb.max(128);
    format!(
        "# Rendered by trove-guestagent for a flavor with {ram} MB of RAM.\n\
         [mysqld]\n\
         skip-name-resolve\n\
         performance_schema = OFF\n\
         innodb_buffer_pool_size = {pool}M\n\
         innodb_log_file_size = {log}M\n\
         key_buffer_size = {key}M\n\
         max_connections = {conns}\n\
         table_open_cache = {tables}\n\
         tmp_table_size = {tmp}M\n\
         max_heap_table_size = {tmp}M\n\
         thread_cache_size = {threads}\n\
         max_allowed_packet = 16M\n\
         local-infile = 0\n\
         \n!includedir {dir}\n",
        pool = (ram / 2).max(16),
        log = (ram / 8).clamp(16, 512),
        key = (ram / 16).max(8),
        conns = ((ram / 512).max(1) * 100).min(2000),
        tables = (ram / 2).clamp(256, 4096),
        tmp = (ram / 16).clamp(16, 256),
        threads = (ram / 128).clamp(4, 64),
        dir = overrides_dir.display(),
    )
}

fn override_value_cnf(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Bool(true) => "ON".into(),
        serde_json::Value::Bool(false) => "OFF".into(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Renders the user overrides file (`[mysqld]` section).
pub fn render_overrides(overrides: &Overrides) -> Result<String> {
    check_overrides(overrides)?;
    let mut out = String::from("[mysqld]\n");
    for (k, v) in overrides {
        out.push_str(&format!("{k} = {}\n", override_value_cnf(v)));
    }
    Ok(out)
}

/// Quotes a database name for `GRANT`/`REVOKE ... ON <db>.*`, where `_` and `%` are
/// wildcards and must be escaped to mean themselves.
pub fn grant_db(name: &str) -> Result<String> {
    mysql_ident(
        &name
            .replace('\\', "\\\\")
            .replace('_', "\\_")
            .replace('%', "\\%"),
    )
}

fn unescape_grant_db(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len());
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Statements creating `user` and granting its databases.
pub fn plan_create_user(user: &User, esc: MysqlEscaping) -> Result<Vec<String>> {
    let account = mysql_account(&user.name, user.host(), esc)?;
    let password = mysql_literal(user.password.as_deref().unwrap_or_default(), esc)?;
    let mut stmts = vec![format!("CREATE USER {account} IDENTIFIED BY {password}")];
    for db in &user.databases {
        stmts.push(format!(
            "GRANT ALL PRIVILEGES ON {}.* TO {account}",
            grant_db(&db.name)?
        ));
    }
    Ok(stmts)
}

/// Statement creating a database with Trove's defaults for character set and collation.
pub fn plan_create_database(db: &Database) -> Result<String> {
    let (cs, co) = match (&db.character_set, &db.collate) {
        (None, None) => (Some(DEFAULT_CHARACTER_SET), Some(DEFAULT_COLLATION)),
        (cs, co) => (cs.as_deref(), co.as_deref()),
    };
    let mut s = format!("CREATE DATABASE IF NOT EXISTS {}", mysql_ident(&db.name)?);
    if let Some(cs) = cs {
        s.push_str(&format!(" CHARACTER SET = {}", mysql_ident(cs)?));
    }
    if let Some(co) = co {
        s.push_str(&format!(" COLLATE = {}", mysql_ident(co)?));
    }
    Ok(s)
}

/// The MariaDB [`DatastoreManager`].
pub struct MariaDbManager {
    config: ManagerConfig,
    binaries: MariaDbBinaries,
    layout: MariaDbLayout,
    process: ServerProcess,
    pool: tokio::sync::Mutex<Option<MySqlPool>>,
    lifecycle: Lifecycle,
}

impl std::fmt::Debug for MariaDbManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MariaDbManager")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl MariaDbManager {
    /// A manager for the instance described by `config`, with the Debian binaries.
    pub fn new(config: ManagerConfig) -> Self {
        Self::with_binaries(config, MariaDbBinaries::default())
    }

    /// A manager using other binaries.
    pub fn with_binaries(config: ManagerConfig, binaries: MariaDbBinaries) -> Self {
        let layout = MariaDbLayout::new(&config.mount_point);
        let process = ServerProcess::new(
            layout.run_dir.join("server.pid"),
            layout.log_dir.join("server.log"),
        )
        .with_program(&binaries.mariadbd);
        MariaDbManager {
            config,
            binaries,
            layout,
            process,
            pool: tokio::sync::Mutex::new(None),
            lifecycle: Lifecycle::default(),
        }
    }

    /// The instance's files.
    pub fn layout(&self) -> &MariaDbLayout {
        &self.layout
    }

    /// The server's supervisor (pid file).
    pub fn process(&self) -> &ServerProcess {
        &self.process
    }

    fn socket_options(&self, user: &str, password: Option<&str>) -> MySqlConnectOptions {
        let mut o = MySqlConnectOptions::new()
            .socket(&self.layout.socket)
            .username(user)
            .charset("utf8mb4")
            .disable_statement_logging();
        if let Some(p) = password {
            o = o.password(p);
        }
        o
    }

    /// Options of the agent's account, from `os_admin.cnf`; root without password before
    /// `prepare` has secured the server.
    fn admin_options(&self) -> MySqlConnectOptions {
        match read_cnf_password(&self.layout.os_admin_cnf()) {
            Some(pw) => self.socket_options(ADMIN_USER, Some(&pw)),
            None => self.socket_options("root", None),
        }
    }

    async fn pool(&self) -> Result<MySqlPool> {
        let mut guard = self.pool.lock().await;
        if let Some(p) = guard.as_ref() {
            return Ok(p.clone());
        }
        // Every admin session runs without NO_BACKSLASH_ESCAPES, whatever the global
        // sql_mode (a tenant with root may change it), so the escaping rule is the same on
        // every connection of the pool; `admin` still checks it.
        let p = MySqlPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(15))
            .idle_timeout(Duration::from_secs(60))
            .after_connect(normalise_sql_mode)
            .connect_lazy_with(self.admin_options());
        *guard = Some(p.clone());
        Ok(p)
    }

    async fn drop_pool(&self) {
        if let Some(p) = self.pool.lock().await.take() {
            p.close().await;
        }
    }

    /// One admin connection and the escaping rule its session uses.
    /// An admin pool and the escaping rule of its sessions. Every connection of the pool
    /// normalises its `sql_mode` when it connects (see `pool`), so one look decides the
    /// escaping for all.
    async fn admin(&self) -> Result<(MySqlPool, MysqlEscaping)> {
        if !matches!(self.process.liveness(), Liveness::Alive(_)) {
            return Err(GuestError::NotRunning);
        }
        let pool = self.pool().await?;
        let mode: String = sqlx::query_scalar("SELECT CAST(@@SESSION.sql_mode AS CHAR)")
            .fetch_one(&pool)
            .await?;
        Ok((pool, MysqlEscaping::from_sql_mode(&mode)))
    }

    /// [`MariaDbManager::admin`] for a change of databases or accounts, refused while the
    /// server follows a replication source: its databases and users come from the source,
    /// and a local change would make it diverge (its GTID strict mode then stops
    /// replication).
    async fn admin_writable(&self) -> Result<(MySqlPool, MysqlEscaping)> {
        let (pool, esc) = self.admin().await?;
        if self.slave_status(&pool).await?.is_some() {
            return Err(GuestError::InvalidValue(
                "This instance is a replica: its databases and users come from its replication source.".into(),
            ));
        }
        Ok((pool, esc))
    }

    async fn ping(&self, opts: &MySqlConnectOptions) -> bool {
        let attempt = async {
            let mut c = MySqlConnection::connect_with(opts).await?;
            c.ping().await?;
            c.close().await
        };
        matches!(
            tokio::time::timeout(Duration::from_secs(5), attempt).await,
            Ok(Ok(()))
        )
    }

    async fn wait_healthy(&self, opts: &MySqlConnectOptions) -> Result<()> {
        self.process
            .wait_healthy("mariadbd", self.config.state_change_wait_time, || {
                self.ping(opts)
            })
            .await
    }

    fn spawn_server(&self) -> Result<i32> {
        self.spawn_server_with(&[])
    }

    /// Starts the server with extra arguments (`--init-file` after a restore).
    fn spawn_server_with(&self, extra: &[String]) -> Result<i32> {
        let l = &self.layout;
        let mut cmd = tokio::process::Command::new(&self.binaries.mariadbd);
        cmd.arg(format!("--defaults-file={}", l.my_cnf.display()))
            .arg(format!("--datadir={}", l.data_dir.display()))
            .arg(format!("--socket={}", l.socket.display()))
            .arg(format!(
                "--pid-file={}",
                l.run_dir.join("mysqld.pid").display()
            ))
            .arg(format!("--bind-address={}", self.config.bind_address))
            .arg(format!("--port={}", self.config.port))
            .arg(format!("--tmpdir={}", l.tmp_dir.display()))
            .arg("--skip-name-resolve")
            .arg("--skip-networking=0")
            .args(extra)
            .current_dir(&l.mount);
        self.config.service_user.apply(&mut cmd);
        self.process.spawn(cmd)
    }

    async fn start_locked(&self) -> Result<()> {
        match self.process.liveness() {
            Liveness::Alive(_) => return self.wait_healthy(&self.admin_options()).await,
            Liveness::Vanished(_) => self.process.clear_leftovers().await,
            Liveness::Stopped => {}
        }
        self.process.forget()?;
        // Instances configured before replication settings existed get them now.
        self.ensure_replication_config(None)?;
        let pid = self.spawn_server()?;
        tracing::info!(pid, address = %self.config.bind_address, port = self.config.port, "mariadbd started");
        self.wait_healthy(&self.admin_options()).await
    }

    async fn stop_locked(&self) -> Result<()> {
        self.drop_pool().await;
        self.process
            .terminate(self.config.state_change_wait_time)
            .await
    }

    fn make_dirs(&self) -> Result<()> {
        let l = &self.layout;
        let su = &self.config.service_user;
        mkdir(&l.mount)?;
        su.chown(&l.mount)?;
        for d in [
            &l.data_dir,
            &l.etc_dir,
            &l.overrides_dir,
            &l.run_dir,
            &l.log_dir,
            &l.tmp_dir,
        ] {
            mkdir(d)?;
            su.chown(d)?;
        }
        mkdir(&l.credentials_dir)?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&l.credentials_dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| GuestError::io("securing the credentials directory", e))?;
        Ok(())
    }

    async fn install_db(&self) -> Result<()> {
        if self.layout.data_dir.join("mysql").exists() {
            tracing::info!("data directory already initialised");
            return Ok(());
        }
        let mut cmd = tokio::process::Command::new(&self.binaries.install_db);
        cmd.arg("--no-defaults")
            .arg(format!("--datadir={}", self.layout.data_dir.display()))
            .arg("--auth-root-authentication-method=normal")
            .arg("--skip-test-db")
            .arg("--skip-name-resolve")
            // Passed on to the bootstrap server: a shared /tmp lets concurrent
            // initialisations trip over each other's temporary tables.
            .arg(format!("--tmpdir={}", self.layout.tmp_dir.display()))
            .current_dir(&self.layout.mount);
        if self.config.service_user.needs_switch() {
            cmd.arg(format!("--user={}", self.config.service_user.name));
        }
        run_checked(cmd, "mariadb-install-db").await
    }

    /// Root password, `os_admin`, no anonymous users, no remote root. A replica keeps the
    /// accounts it got from its source (it must stay identical to it, or later changes the
    /// source replicates, such as dropping remote root, would fail there).
    async fn secure(&self, replica: bool) -> Result<()> {
        let root_opts = self.socket_options("root", None);
        let conn = MySqlPoolOptions::new()
            .max_connections(1)
            .connect_with(root_opts)
            .await?;
        let mode: String = sqlx::query_scalar("SELECT CAST(@@SESSION.sql_mode AS CHAR)")
            .fetch_one(&conn)
            .await?;
        let esc = MysqlEscaping::from_sql_mode(&mode);
        let rows = if replica {
            Vec::new()
        } else {
            sqlx::query("SELECT CAST(User AS CHAR), CAST(Host AS CHAR) FROM mysql.user WHERE User = '' OR (User = 'root' AND Host <> 'localhost')")
                .fetch_all(&conn)
                .await?
        };
        let root_pw = generate_password(self.config.password_length);
        let admin_pw = generate_password(self.config.password_length);
        let mut stmts = Vec::new();
        for r in rows {
            let (u, h): (String, String) = (r.get(0), r.get(1));
            stmts.push(format!("DROP USER {}", mysql_account(&u, &h, esc)?));
        }
        let admin = mysql_account(ADMIN_USER, "localhost", esc)?;
        stmts.push(format!(
            "CREATE OR REPLACE USER {admin} IDENTIFIED BY {}",
            mysql_literal(&admin_pw, esc)?
        ));
        stmts.push(format!(
            "GRANT ALL PRIVILEGES ON *.* TO {admin} WITH GRANT OPTION"
        ));
        stmts.push(format!(
            "ALTER USER {} IDENTIFIED BY {}",
            mysql_account("root", "localhost", esc)?,
            mysql_literal(&root_pw, esc)?
        ));
        stmts.push("FLUSH PRIVILEGES".into());
        exec_all(&conn, &stmts).await?;
        conn.close().await;
        let socket = self.layout.socket.display();
        write_file(
            &self.layout.os_admin_cnf(),
            format!("[client]\nuser={ADMIN_USER}\npassword={admin_pw}\nhost=localhost\nsocket={socket}\n").as_bytes(),
            0o600,
        )?;
        write_file(
            &self.layout.root_cnf(),
            format!("[client]\nuser=root\npassword={root_pw}\nhost=localhost\nsocket={socket}\n")
                .as_bytes(),
            0o600,
        )?;
        Ok(())
    }

    async fn do_prepare(&self, req: &PrepareRequest) -> Result<()> {
        validate_databases(FLAVOR, &req.databases)?;
        validate_users(FLAVOR, &req.users)?;
        for u in &req.users {
            not_replication_user(&u.name)?;
        }
        check_overrides(&req.overrides)?;
        if let Some(p) = &req.root_password {
            FLAVOR.check_password(p)?;
        }
        if let Some(snapshot) = &req.snapshot {
            Self::check_snapshot(snapshot)?;
            if req.backup_info.is_none() {
                return Err(GuestError::InvalidValue(
                    "a replica is prepared from its source's snapshot (backup_info).".into(),
                ));
            }
        }
        // A server left by an earlier failed attempt is stopped first.
        self.stop_locked().await?;
        self.make_dirs()?;
        let l = &self.layout;
        self.write_base_config(req.config_contents.as_deref(), req.memory_mb)?;
        // A replica is read-only from its first start (the restore's own start included).
        self.ensure_replication_config(req.snapshot.as_ref().map(|_| true))?;
        if !req.overrides.is_empty() {
            write_file(
                &l.user_overrides(),
                render_overrides(&req.overrides)?.as_bytes(),
                0o644,
            )?;
        }
        let mut extra = Vec::new();
        let mut snapshot_gtid = None;
        let init_file = l.tmp_dir.join("restore-init.sql");
        if let Some(restore) = &req.backup_info {
            crate::backup::mariadb_restore(
                &self.backup_paths(),
                restore,
                &self.config.service_user,
            )
            .await?;
            self.forget_restored_replica_state()?;
            if req.snapshot.is_some() {
                snapshot_gtid = Some(self.snapshot_position()?);
            }
            // The restored grant tables hold the source's passwords: root@localhost is reset
            // on the first start, then secured below like a new instance (new root and
            // os_admin passwords; the source's remote root accounts are dropped).
            for f in [l.os_admin_cnf(), l.root_cnf()] {
                if f.exists() {
                    std::fs::remove_file(&f)
                        .map_err(|e| GuestError::io(format!("removing {}", f.display()), e))?;
                }
            }
            write_file(
                &init_file,
                b"ALTER USER 'root'@'localhost' IDENTIFIED BY '';\nFLUSH PRIVILEGES;\n",
                0o600,
            )?;
            self.config.service_user.chown(&init_file)?;
            extra.push(format!("--init-file={}", init_file.display()));
        }
        self.install_db().await?;
        self.process.forget()?;
        self.spawn_server_with(&extra)?;
        if read_cnf_password(&l.os_admin_cnf()).is_none() {
            self.wait_healthy(&self.socket_options("root", None))
                .await?;
            self.secure(req.snapshot.is_some()).await?;
        }
        if !extra.is_empty() {
            std::fs::remove_file(&init_file)
                .map_err(|e| GuestError::io(format!("removing {}", init_file.display()), e))?;
        }
        self.wait_healthy(&self.admin_options()).await?;
        if let (Some(snapshot), Some(gtid)) = (&req.snapshot, &snapshot_gtid) {
            self.start_replication(&snapshot.context(), Some(gtid))
                .await?;
        }
        Ok(())
    }

    /// The files a backup or a restore of this instance uses.
    fn backup_paths(&self) -> crate::backup::MariaDbPaths {
        crate::backup::MariaDbPaths {
            data_dir: self.layout.data_dir.clone(),
            tmp_dir: self.layout.tmp_dir.clone(),
            os_admin_cnf: self.layout.os_admin_cnf(),
        }
    }

    /// `my.cnf`: the given contents (or sizing for `memory_mb`) and the overrides directory.
    fn write_base_config(&self, contents: Option<&str>, memory_mb: u64) -> Result<()> {
        let l = &self.layout;
        let base = match contents {
            Some(c) => format!("{c}\n\n!includedir {}\n", l.overrides_dir.display()),
            None => render_my_cnf(memory_mb, &l.overrides_dir),
        };
        write_file(&l.my_cnf, base.as_bytes(), 0o644)
    }

    async fn existing_databases(&self, pool: &MySqlPool) -> Result<Vec<Database>> {
        let rows = sqlx::query(
            "SELECT CAST(SCHEMA_NAME AS CHAR), CAST(DEFAULT_CHARACTER_SET_NAME AS CHAR), CAST(DEFAULT_COLLATION_NAME AS CHAR) FROM information_schema.SCHEMATA",
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

    async fn user_exists(&self, pool: &MySqlPool, name: &str, host: &str) -> Result<bool> {
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM mysql.user WHERE User = ? AND Host = ?")
                .bind(name)
                .bind(host)
                .fetch_one(pool)
                .await?;
        Ok(n > 0)
    }

    async fn require_user(&self, pool: &MySqlPool, name: &str, host: &str) -> Result<()> {
        if self.user_exists(pool, name, host).await? {
            Ok(())
        } else {
            Err(GuestError::NotFound(format!(
                "User {name}@{host} cannot be found on the instance."
            )))
        }
    }

    /// Databases each account may access: `(user, host) -> names`, limited to existing ones.
    async fn access_map(&self, pool: &MySqlPool) -> Result<Vec<(String, String, String)>> {
        let existing: std::collections::HashSet<String> = self
            .existing_databases(pool)
            .await?
            .into_iter()
            .map(|d| d.name)
            .collect();
        let rows = sqlx::query(
            "SELECT CAST(User AS CHAR), CAST(Host AS CHAR), CAST(Db AS CHAR) FROM mysql.db",
        )
        .fetch_all(pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| {
                (
                    r.get::<String, _>(0),
                    r.get::<String, _>(1),
                    unescape_grant_db(&r.get::<String, _>(2)),
                )
            })
            .filter(|(_, _, db)| existing.contains(db) && !FLAVOR.is_reserved_db(db))
            .collect())
    }

    async fn access_of(&self, pool: &MySqlPool, name: &str, host: &str) -> Result<Vec<Database>> {
        let mut dbs: Vec<Database> = self
            .access_map(pool)
            .await?
            .into_iter()
            .filter(|(u, h, _)| u == name && h == host)
            .map(|(_, _, d)| Database::new(d))
            .collect();
        dbs.sort_by(|a, b| a.name.cmp(&b.name));
        dbs.dedup();
        Ok(dbs)
    }
}

type ConnectHook<'c> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), sqlx::Error>> + Send + 'c>>;

/// Removes `NO_BACKSLASH_ESCAPES` from a new admin session's `sql_mode`.
fn normalise_sql_mode<'c>(
    conn: &'c mut MySqlConnection,
    _meta: sqlx::pool::PoolConnectionMetadata,
) -> ConnectHook<'c> {
    Box::pin(async move {
        sqlx::query(
            "SET SESSION sql_mode = TRIM(BOTH ',' FROM REPLACE(CONCAT(',', @@SESSION.sql_mode, ','), ',NO_BACKSLASH_ESCAPES,', ','))",
        )
        .execute(conn)
        .await?;
        Ok(())
    })
}

/// Refuses the names of the agent's replication accounts in tenant user requests.
fn not_replication_user(name: &str) -> Result<()> {
    if replication::is_replication_user(name) {
        return Err(GuestError::Reserved(format!("User {name}")));
    }
    Ok(())
}

fn read_cnf_password(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines().find_map(|l| {
        l.trim()
            .strip_prefix("password=")
            .map(|p| p.trim().to_string())
    })
}

async fn exec_all(pool: &MySqlPool, stmts: &[String]) -> Result<()> {
    for s in stmts {
        sqlx::raw_sql(s).execute(pool).await?;
    }
    Ok(())
}

#[async_trait]
impl ServerSteps for MariaDbManager {
    fn lifecycle(&self) -> &Lifecycle {
        &self.lifecycle
    }

    fn instance_config(&self) -> &ManagerConfig {
        &self.config
    }

    fn label(&self) -> &'static str {
        "MariaDB"
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
        let opts = self.admin_options();
        self.process.observe(self.ping(&opts)).await
    }
}

#[async_trait]
impl DatastoreManager for MariaDbManager {
    fn name(&self) -> &'static str {
        "mariadb"
    }

    fn is_prepared(&self) -> bool {
        self.config.prepare_end_marker().exists()
    }

    async fn prepare(&self, request: PrepareRequest) -> Result<()> {
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
        crate::backup::mariadb_backup(&self.backup_paths(), job).await
    }

    fn replication_strategy(&self) -> Option<&'static str> {
        Some(replication::STRATEGY)
    }

    async fn replica_context(&self) -> Result<ReplicaContext> {
        self.replication_context().await
    }

    /// The replica settings apply to the running server (and are persisted), so `restart`
    /// is not needed and the server keeps running.
    async fn attach_replica(&self, context: &ReplicaContext, restart: bool) -> Result<()> {
        let _ = restart;
        self.start_replication(context, None).await
    }

    async fn detach_replica(&self, for_failover: bool) -> Result<serde_json::Value> {
        self.stop_replication(for_failover).await
    }

    async fn make_read_only(&self, read_only: bool) -> Result<()> {
        self.set_read_only(read_only).await
    }

    async fn enable_as_master(&self) -> Result<()> {
        self.become_source().await
    }

    async fn demote_replication_master(&self) -> Result<()> {
        self.set_read_only(true).await
    }

    async fn get_last_txn(&self) -> Result<(String, i64)> {
        self.last_txn().await
    }

    async fn get_latest_txn_id(&self) -> Result<String> {
        self.latest_txn_id().await
    }

    async fn wait_for_txn(&self, txn: &str) -> Result<()> {
        self.wait_txn(txn).await
    }

    async fn create_databases(&self, databases: Vec<Database>) -> Result<()> {
        validate_databases(FLAVOR, &databases)?;
        let stmts = databases
            .iter()
            .map(plan_create_database)
            .collect::<Result<Vec<_>>>()?;
        let (pool, _) = self.admin_writable().await?;
        exec_all(&pool, &stmts).await
    }

    async fn list_databases(
        &self,
        limit: Option<usize>,
        marker: Option<String>,
        include_marker: bool,
    ) -> Result<Page<Database>> {
        let (pool, _) = self.admin().await?;
        let dbs: Vec<Database> = self
            .existing_databases(&pool)
            .await?
            .into_iter()
            .filter(|d| !FLAVOR.is_reserved_db(&d.name) && !d.name.starts_with("#mysql50#"))
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
        let (pool, _) = self.admin_writable().await?;
        let exists = self
            .existing_databases(&pool)
            .await?
            .iter()
            .any(|d| d.name == database.name);
        if !exists {
            return Err(GuestError::NotFound(format!(
                "Database {} cannot be found on the instance.",
                database.name
            )));
        }
        exec_all(
            &pool,
            &[format!("DROP DATABASE {}", mysql_ident(&database.name)?)],
        )
        .await
    }

    async fn create_users(&self, users: Vec<User>) -> Result<()> {
        validate_users(FLAVOR, &users)?;
        for u in &users {
            not_replication_user(&u.name)?;
        }
        let (pool, esc) = self.admin_writable().await?;
        for u in &users {
            if self.user_exists(&pool, &u.name, u.host()).await? {
                return Err(GuestError::AlreadyExists(format!(
                    "A user with the name \"{}\" already exists.",
                    u.name
                )));
            }
        }
        let mut plan = Vec::new();
        for u in &users {
            plan.extend(plan_create_user(u, esc)?);
        }
        exec_all(&pool, &plan).await
    }

    async fn list_users(
        &self,
        limit: Option<usize>,
        marker: Option<String>,
        include_marker: bool,
    ) -> Result<Page<User>> {
        let (pool, _) = self.admin().await?;
        let rows = sqlx::query(
            "SELECT CAST(User AS CHAR), CAST(Host AS CHAR) FROM mysql.user WHERE is_role = 'N'",
        )
        .fetch_all(&pool)
        .await?;
        let access = self.access_map(&pool).await?;
        let users: Vec<User> = rows
            .into_iter()
            .map(|r| (r.get::<String, _>(0), r.get::<String, _>(1)))
            .filter(|(u, h)| {
                !u.is_empty()
                    && h != "localhost"
                    && !FLAVOR.is_reserved_user(u)
                    && !replication::is_replication_user(u)
            })
            .map(|(name, host)| {
                let mut databases: Vec<Database> = access
                    .iter()
                    .filter(|(u, h, _)| *u == name && *h == host)
                    .map(|(_, _, d)| Database::new(d.clone()))
                    .collect();
                databases.sort_by(|a, b| a.name.cmp(&b.name));
                databases.dedup();
                User {
                    name,
                    password: None,
                    host: Some(host),
                    databases,
                    is_root: false,
                }
            })
            .collect();
        Ok(paginate(
            users,
            User::key,
            limit,
            marker.as_deref(),
            include_marker,
        ))
    }

    async fn get_user(&self, username: &str, hostname: Option<&str>) -> Result<Option<User>> {
        let host = hostname.unwrap_or(DEFAULT_HOST);
        FLAVOR.validate_user_ref(username, host)?;
        not_replication_user(username)?;
        let (pool, _) = self.admin().await?;
        if !self.user_exists(&pool, username, host).await? {
            return Ok(None);
        }
        let databases = self.access_of(&pool, username, host).await?;
        Ok(Some(User {
            name: username.into(),
            password: None,
            host: Some(host.into()),
            databases,
            is_root: false,
        }))
    }

    async fn delete_user(&self, user: User) -> Result<()> {
        FLAVOR.validate_user_ref(&user.name, user.host())?;
        not_replication_user(&user.name)?;
        let (pool, esc) = self.admin_writable().await?;
        self.require_user(&pool, &user.name, user.host()).await?;
        exec_all(
            &pool,
            &[format!(
                "DROP USER {}",
                mysql_account(&user.name, user.host(), esc)?
            )],
        )
        .await
    }

    async fn change_passwords(&self, users: Vec<UserPassword>) -> Result<()> {
        for u in &users {
            FLAVOR.validate_user_ref(&u.name, u.host.as_deref().unwrap_or(DEFAULT_HOST))?;
            not_replication_user(&u.name)?;
            FLAVOR.check_password(&u.password)?;
        }
        let (pool, esc) = self.admin_writable().await?;
        let mut plan = Vec::new();
        for u in &users {
            let host = u.host.as_deref().unwrap_or(DEFAULT_HOST);
            self.require_user(&pool, &u.name, host).await?;
            plan.push(format!(
                "ALTER USER {} IDENTIFIED BY {}",
                mysql_account(&u.name, host, esc)?,
                mysql_literal(&u.password, esc)?
            ));
        }
        exec_all(&pool, &plan).await
    }

    async fn update_attributes(
        &self,
        username: &str,
        hostname: Option<&str>,
        attrs: UserAttributes,
    ) -> Result<()> {
        let host = hostname.unwrap_or(DEFAULT_HOST);
        FLAVOR.validate_user_ref(username, host)?;
        not_replication_user(username)?;
        let new_name = attrs.name.as_deref().unwrap_or(username);
        let new_host = attrs.host.as_deref().unwrap_or(host);
        FLAVOR.validate_user_ref(new_name, new_host)?;
        not_replication_user(new_name)?;
        if let Some(p) = &attrs.password {
            FLAVOR.check_password(p)?;
        }
        let (pool, esc) = self.admin_writable().await?;
        self.require_user(&pool, username, host).await?;
        let mut plan = Vec::new();
        if (new_name, new_host) != (username, host) {
            if self.user_exists(&pool, new_name, new_host).await? {
                return Err(GuestError::AlreadyExists(format!(
                    "A user with the name \"{new_name}\" already exists."
                )));
            }
            plan.push(format!(
                "RENAME USER {} TO {}",
                mysql_account(username, host, esc)?,
                mysql_account(new_name, new_host, esc)?
            ));
        }
        if let Some(p) = &attrs.password {
            plan.push(format!(
                "ALTER USER {} IDENTIFIED BY {}",
                mysql_account(new_name, new_host, esc)?,
                mysql_literal(p, esc)?
            ));
        }
        exec_all(&pool, &plan).await
    }

    async fn grant_access(
        &self,
        username: &str,
        hostname: Option<&str>,
        databases: Vec<String>,
    ) -> Result<()> {
        let host = hostname.unwrap_or(DEFAULT_HOST);
        FLAVOR.validate_user_ref(username, host)?;
        not_replication_user(username)?;
        let dbs: Vec<Database> = databases.into_iter().map(Database::new).collect();
        validate_databases(FLAVOR, &dbs)?;
        let (pool, esc) = self.admin_writable().await?;
        self.require_user(&pool, username, host).await?;
        let existing: Vec<String> = self
            .existing_databases(&pool)
            .await?
            .into_iter()
            .map(|d| d.name)
            .collect();
        let account = mysql_account(username, host, esc)?;
        let mut plan = Vec::new();
        for d in &dbs {
            if !existing.contains(&d.name) {
                return Err(GuestError::NotFound(format!(
                    "Database {} cannot be found on the instance.",
                    d.name
                )));
            }
            plan.push(format!(
                "GRANT ALL PRIVILEGES ON {}.* TO {account}",
                grant_db(&d.name)?
            ));
        }
        exec_all(&pool, &plan).await
    }

    async fn revoke_access(
        &self,
        username: &str,
        hostname: Option<&str>,
        database: &str,
    ) -> Result<()> {
        let host = hostname.unwrap_or(DEFAULT_HOST);
        FLAVOR.validate_user_ref(username, host)?;
        not_replication_user(username)?;
        FLAVOR.validate_database(&Database::new(database))?;
        let (pool, esc) = self.admin_writable().await?;
        self.require_user(&pool, username, host).await?;
        if !self
            .access_of(&pool, username, host)
            .await?
            .iter()
            .any(|d| d.name == database)
        {
            return Err(GuestError::NotFound(format!(
                "Database {database} cannot be found on the instance."
            )));
        }
        exec_all(
            &pool,
            &[format!(
                "REVOKE ALL PRIVILEGES ON {}.* FROM {}",
                grant_db(database)?,
                mysql_account(username, host, esc)?
            )],
        )
        .await
    }

    async fn list_access(&self, username: &str, hostname: Option<&str>) -> Result<Vec<Database>> {
        let host = hostname.unwrap_or(DEFAULT_HOST);
        FLAVOR.validate_user_ref(username, host)?;
        not_replication_user(username)?;
        let (pool, _) = self.admin().await?;
        self.require_user(&pool, username, host).await?;
        self.access_of(&pool, username, host).await
    }

    async fn enable_root(&self, password: Option<String>) -> Result<User> {
        let password = password.unwrap_or_else(|| generate_password(self.config.password_length));
        FLAVOR.check_password(&password)?;
        let (pool, esc) = self.admin_writable().await?;
        let account = mysql_account("root", "%", esc)?;
        let verb = if self.user_exists(&pool, "root", "%").await? {
            "ALTER"
        } else {
            "CREATE"
        };
        exec_all(
            &pool,
            &[
                format!(
                    "{verb} USER {account} IDENTIFIED BY {}",
                    mysql_literal(&password, esc)?
                ),
                format!("GRANT ALL PRIVILEGES ON *.* TO {account} WITH GRANT OPTION"),
            ],
        )
        .await?;
        Ok(User {
            name: "root".into(),
            password: Some(password),
            host: Some("%".into()),
            databases: Vec::new(),
            is_root: true,
        })
    }

    async fn disable_root(&self) -> Result<()> {
        let (pool, esc) = self.admin_writable().await?;
        let rows = sqlx::query(
            "SELECT CAST(Host AS CHAR) FROM mysql.user WHERE User = 'root' AND Host <> 'localhost'",
        )
        .fetch_all(&pool)
        .await?;
        let mut plan = Vec::new();
        for r in rows {
            plan.push(format!(
                "DROP USER {}",
                mysql_account("root", &r.get::<String, _>(0), esc)?
            ));
        }
        exec_all(&pool, &plan).await
    }

    async fn is_root_enabled(&self) -> Result<bool> {
        let (pool, _) = self.admin().await?;
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM mysql.user WHERE User = 'root' AND Host <> 'localhost'",
        )
        .fetch_one(&pool)
        .await?;
        Ok(n > 0)
    }

    async fn get_filesystem_stats(&self, path: Option<&Path>) -> Result<FilesystemStats> {
        filesystem_stats(path.unwrap_or(&self.config.mount_point))
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
        check_overrides(&overrides)?;
        let (pool, esc) = self.admin().await?;
        let mut plan = Vec::new();
        for (k, v) in &overrides {
            let name = k.replace('-', "_");
            if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(GuestError::InvalidValue(format!(
                    "'{k}' cannot be set at run time."
                )));
            }
            let value = match v {
                serde_json::Value::String(s) => mysql_literal(s, esc)?,
                other => override_value_cnf(other),
            };
            plan.push(format!("SET GLOBAL {name} = {value}"));
        }
        exec_all(&pool, &plan).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_user_plan_quotes_everything() {
        let mut u = User::new("app", "p'w\\; DROP USER x;--");
        u.databases.push(Database::new("my_db"));
        let plan = plan_create_user(&u, MysqlEscaping::Backslash).unwrap();
        assert_eq!(
            plan[0],
            "CREATE USER 'app'@'%' IDENTIFIED BY 'p''w\\\\; DROP USER x;--'"
        );
        assert_eq!(plan[1], "GRANT ALL PRIVILEGES ON `my\\_db`.* TO 'app'@'%'");
    }

    #[test]
    fn create_database_defaults() {
        assert_eq!(
            plan_create_database(&Database::new("a`b")).unwrap(),
            "CREATE DATABASE IF NOT EXISTS `a``b` CHARACTER SET = `utf8` COLLATE = `utf8_general_ci`"
        );
    }

    #[test]
    fn grant_patterns_round_trip() {
        assert_eq!(unescape_grant_db("my\\_db\\%"), "my_db%");
    }

    #[test]
    fn my_cnf_sized_by_ram() {
        let cnf = render_my_cnf(2048, Path::new("/m/etc/conf.d"));
        assert!(cnf.contains("innodb_buffer_pool_size = 1024M"));
        assert!(cnf.contains("max_connections = 400"));
        assert!(cnf.ends_with("!includedir /m/etc/conf.d\n"));
    }
}
