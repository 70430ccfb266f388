//! MariaDB GTID replication (`MariaDBGTIDReplication`): the replication methods of
//! [`MariaDbManager`].
//!
//! Every instance runs ready to be a source or a replica (`<mount>/etc/conf.d/
//! 50-system-replication.cnf`, read after the user overrides so a configuration group cannot
//! take it away):
//!
//! * `server_id`: chosen at random (1..=2^32-1) the first time the instance is configured and
//!   kept in that file for the life of the instance, so it never changes on restarts and two
//!   instances (even one restored from the other's backup) do not share it;
//! * `log_bin`, `log_slave_updates`: every server writes a binary log that includes what it
//!   applied as a replica, so any replica can be promoted and the others (and the old source)
//!   find in its log the transactions they still need;
//! * `binlog_format = ROW`: row images replicate non-deterministic statements (`UUID()`,
//!   `LIMIT` without `ORDER BY`, triggers...) exactly, at the cost of bigger logs; MariaDB's
//!   default `MIXED` still decides per statement and can diverge in edge cases;
//! * `gtid_strict_mode = ON`: a replica that received a transaction its source does not have
//!   (a diverged old source, a local write) stops with an error instead of silently skipping
//!   or duplicating transactions;
//! * `read_only`: ON while the instance follows a source; persisted here so a replica stays
//!   read-only over restarts.
//!
//! ```text
//!  source                                   new replica (prepare with snapshot)
//!  replica_context: slave_<8 hex> user,     restore the snapshot backup ──> read_only ON
//!    credentials in <mount>/conf.d/           ──> start, secure ──> RESET MASTER,
//!    replication.cnf (0600)                   gtid_binlog_state = gtid_slave_pos = the
//!  backup (mariadb-backup records the         backup's GTID (mariadb_backup_binlog_info)
//!    GTID position of the copy)               ──> CHANGE MASTER ... MASTER_USE_GTID=slave_pos
//!                                             ──> START SLAVE ──> wait IO and SQL running
//! ```
//!
//! An existing server re-pointed to another source (`attach_replica` after a promotion)
//! uses `MASTER_USE_GTID=current_pos`: a former replica continues from what it applied, a
//! former source from what it wrote itself. The source's identity in `get_last_txn` is its
//! `server_id` (`Master_Server_Id`, remembered in `<mount>/etc/replication-source.json` once
//! connected, so it is known even when the source is gone); the transaction number is the
//! highest sequence number of `gtid_slave_pos`.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use rand::Rng;
use serde::{Deserialize, Serialize};
use sqlx::mysql::{MySqlPool, MySqlRow};
use sqlx::Row;

use super::{exec_all, read_cnf_password, MariaDbManager};
use crate::error::{GuestError, Result};
use crate::lifecycle::ServerSteps;
use crate::manager::{
    generate_password, write_file, ReplicaConf, ReplicaContext, ReplicaSnapshot,
    ReplicaSourceAddress, ReplicationUser,
};
use crate::sql::{mysql_account, mysql_literal, MysqlEscaping};

/// Trove's name of this replication strategy.
pub const STRATEGY: &str = "MariaDBGTIDReplication";
/// Prefix of replication accounts (`slave_<8 hex>`).
pub const REPLICATION_USER_PREFIX: &str = "slave_";
/// Length of a replication account's password.
pub const REPLICATION_PASSWORD_LENGTH: usize = 16;
/// Seconds between a replica's attempts to reach its source (`MASTER_CONNECT_RETRY`).
pub const CONNECT_RETRY_SECS: u32 = 15;
/// How long attaching may take until the replica streams (inside the 180 s of a call).
pub const ATTACH_TIMEOUT: Duration = Duration::from_secs(170);
/// How long `wait_for_txn` waits for the replica to catch up (inside the 180 s of a call).
pub const TXN_WAIT_TIMEOUT: Duration = Duration::from_secs(170);
/// Files in which `mariadb-backup` records the binary log position of a backup.
pub const BINLOG_INFO_FILES: &[&str] = &["mariadb_backup_binlog_info", "xtrabackup_binlog_info"];
/// Replication state files of a restored data directory that belong to the backed-up server.
const SOURCE_REPLICA_FILES: &[&str] = &["master.info", "relay-log.info", "multi-master.info"];

/// True for the names of replication accounts (`slave_` and 8 lowercase hex digits): they
/// are the agent's, hidden from and refused to tenants.
pub fn is_replication_user(name: &str) -> bool {
    name.strip_prefix(REPLICATION_USER_PREFIX)
        .is_some_and(|h| h.len() == 8 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
}

/// A new replication account: `slave_<8 hex>` and a random 16-character password.
pub fn new_replication_user() -> ReplicationUser {
    let n: u32 = rand::thread_rng().gen();
    ReplicationUser {
        name: format!("{REPLICATION_USER_PREFIX}{n:08x}"),
        password: generate_password(REPLICATION_PASSWORD_LENGTH),
    }
}

/// The replication settings of one instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicationSettings {
    /// `server_id`.
    pub server_id: u32,
    /// `read_only`.
    pub read_only: bool,
}

impl ReplicationSettings {
    /// Renders `50-system-replication.cnf`.
    pub fn render(&self) -> String {
        format!(
            "# Written by trove-guestagent: replication settings of this instance.\n\
             [mysqld]\n\
             server_id = {id}\n\
             log_bin = mariadb-bin\n\
             log_bin_index = mariadb-bin.index\n\
             relay_log = mariadb-relay\n\
             relay_log_index = mariadb-relay.index\n\
             log_slave_updates = ON\n\
             binlog_format = ROW\n\
             gtid_strict_mode = ON\n\
             expire_logs_days = 7\n\
             read_only = {ro}\n",
            id = self.server_id,
            ro = if self.read_only { "ON" } else { "OFF" },
        )
    }

    /// Reads the settings back from a rendered file; `None` when it has no valid
    /// `server_id`.
    pub fn parse(text: &str) -> Option<Self> {
        let mut server_id = None;
        let mut read_only = false;
        for line in text.lines() {
            let Some((k, v)) = line.split_once('=') else {
                continue;
            };
            match k.trim() {
                "server_id" => server_id = v.trim().parse::<u32>().ok().filter(|&n| n > 0),
                "read_only" => {
                    read_only = matches!(v.trim().to_ascii_uppercase().as_str(), "ON" | "1")
                }
                _ => {}
            }
        }
        Some(ReplicationSettings {
            server_id: server_id?,
            read_only,
        })
    }
}

/// The GTID position of a backup from the contents of `mariadb_backup_binlog_info`
/// (`<binlog file>\t<offset>\t<gtid list>`); empty when the source had written no GTID.
pub fn parse_binlog_info(text: &str) -> Result<String> {
    let line = text.lines().map(str::trim).find(|l| !l.is_empty());
    let Some(line) = line else {
        return Ok(String::new());
    };
    let gtid = line.split('\t').nth(2).unwrap_or_default().trim();
    let gtid = gtid.trim_matches('\'');
    if !gtid.is_empty() {
        parse_gtid_list(gtid)?;
    }
    Ok(gtid.to_owned())
}

/// Parses a GTID list (`0-1-42,1-7-3`) into `(domain, server_id, seq_no)`.
pub fn parse_gtid_list(list: &str) -> Result<Vec<(u32, u32, u64)>> {
    list.split(',')
        .map(str::trim)
        .filter(|g| !g.is_empty())
        .map(|g| {
            let bad = || GuestError::InvalidValue(format!("'{g}' is not a MariaDB GTID."));
            let mut it = g.split('-');
            let (Some(d), Some(s), Some(n), None) = (it.next(), it.next(), it.next(), it.next())
            else {
                return Err(bad());
            };
            Ok((
                d.parse().map_err(|_| bad())?,
                s.parse().map_err(|_| bad())?,
                n.parse().map_err(|_| bad())?,
            ))
        })
        .collect()
}

/// The highest sequence number of a GTID list (0 when empty).
pub fn highest_seq_no(list: &str) -> Result<u64> {
    Ok(parse_gtid_list(list)?
        .into_iter()
        .map(|(_, _, n)| n)
        .max()
        .unwrap_or(0))
}

/// The source a replica follows, remembered once it connected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct SourceIdentity {
    host: String,
    port: u16,
    server_id: u64,
}

/// What `SHOW SLAVE STATUS` says about the replication threads.
#[derive(Debug, Clone, Default)]
pub(super) struct SlaveStatus {
    io_running: String,
    sql_running: String,
    last_io_errno: u64,
    last_io_error: String,
    last_sql_errno: u64,
    last_sql_error: String,
    master_server_id: u64,
    master_user: String,
}

impl SlaveStatus {
    fn from_row(row: &MySqlRow) -> Self {
        SlaveStatus {
            io_running: text(row, "Slave_IO_Running"),
            sql_running: text(row, "Slave_SQL_Running"),
            last_io_errno: number(row, "Last_IO_Errno"),
            last_io_error: text(row, "Last_IO_Error"),
            last_sql_errno: number(row, "Last_SQL_Errno"),
            last_sql_error: text(row, "Last_SQL_Error"),
            master_server_id: number(row, "Master_Server_Id"),
            master_user: text(row, "Master_User"),
        }
    }

    fn streaming(&self) -> bool {
        self.io_running == "Yes" && self.sql_running == "Yes"
    }

    fn errors(&self) -> String {
        format!(
            "Slave_IO_Running={}, Slave_SQL_Running={}, Last_IO_Error: {}, Last_SQL_Error: {}",
            self.io_running,
            self.sql_running,
            if self.last_io_error.is_empty() {
                "none"
            } else {
                &self.last_io_error
            },
            if self.last_sql_error.is_empty() {
                "none"
            } else {
                &self.last_sql_error
            },
        )
    }

    /// A stopped thread with an error will not recover by waiting.
    fn failed(&self) -> bool {
        (self.sql_running == "No" && self.last_sql_errno != 0)
            || (self.io_running == "No" && self.last_io_errno != 0)
    }
}

/// A column of a `SHOW` result as text, whatever its declared type.
fn text(row: &MySqlRow, col: &str) -> String {
    if let Ok(Some(s)) = row.try_get::<Option<String>, _>(col) {
        return s;
    }
    if let Ok(Some(b)) = row.try_get::<Option<Vec<u8>>, _>(col) {
        return String::from_utf8_lossy(&b).into_owned();
    }
    number_opt(row, col)
        .map(|n| n.to_string())
        .unwrap_or_default()
}

fn number_opt(row: &MySqlRow, col: &str) -> Option<u64> {
    if let Ok(Some(n)) = row.try_get::<Option<u64>, _>(col) {
        return Some(n);
    }
    if let Ok(Some(n)) = row.try_get::<Option<i64>, _>(col) {
        return u64::try_from(n).ok();
    }
    if let Ok(Some(n)) = row.try_get::<Option<u32>, _>(col) {
        return Some(n.into());
    }
    if let Ok(Some(s)) = row.try_get::<Option<String>, _>(col) {
        return s.trim().parse().ok();
    }
    None
}

/// A numeric column of a `SHOW` result (0 when missing or NULL).
fn number(row: &MySqlRow, col: &str) -> u64 {
    number_opt(row, col).unwrap_or(0)
}

fn replication_error(detail: String) -> GuestError {
    GuestError::Command {
        program: "MariaDB replication".into(),
        detail,
    }
}

impl MariaDbManager {
    /// `<mount>/etc/conf.d/50-system-replication.cnf`.
    fn replication_cnf(&self) -> PathBuf {
        self.layout.overrides_dir.join("50-system-replication.cnf")
    }

    /// `<mount>/conf.d/replication.cnf`: the replication account of this source (0600).
    fn replication_user_cnf(&self) -> PathBuf {
        self.layout.credentials_dir.join("replication.cnf")
    }

    /// `<mount>/etc/replication-source.json`: the source this replica follows.
    fn replication_source_file(&self) -> PathBuf {
        self.layout.etc_dir.join("replication-source.json")
    }

    /// The instance's replication settings, if written.
    pub(super) fn replication_settings(&self) -> Option<ReplicationSettings> {
        ReplicationSettings::parse(&std::fs::read_to_string(self.replication_cnf()).ok()?)
    }

    /// Writes the replication settings (a new `server_id` the first time), with `read_only`
    /// when given, else as they were (OFF at first).
    pub(super) fn ensure_replication_config(&self, read_only: Option<bool>) -> Result<()> {
        let current = self.replication_settings();
        let settings = ReplicationSettings {
            server_id: current
                .map(|s| s.server_id)
                .unwrap_or_else(|| rand::thread_rng().gen_range(1..=u32::MAX)),
            read_only: read_only.unwrap_or(current.is_some_and(|s| s.read_only)),
        };
        if current == Some(settings) {
            return Ok(());
        }
        write_file(&self.replication_cnf(), settings.render().as_bytes(), 0o644)
    }

    fn saved_replication_user(&self) -> Option<ReplicationUser> {
        let file = self.replication_user_cnf();
        let text = std::fs::read_to_string(&file).ok()?;
        let name = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("user=").map(|u| u.trim().to_owned()))?;
        let password = read_cnf_password(&file)?;
        Some(ReplicationUser { name, password })
    }

    pub(super) async fn slave_status(&self, pool: &MySqlPool) -> Result<Option<SlaveStatus>> {
        let rows = sqlx::raw_sql("SHOW SLAVE STATUS").fetch_all(pool).await?;
        Ok(rows.first().map(SlaveStatus::from_row))
    }

    async fn global_text(&self, pool: &MySqlPool, var: &str) -> Result<String> {
        let v: Option<String> = sqlx::query_scalar(&format!("SELECT CAST(@@GLOBAL.{var} AS CHAR)"))
            .fetch_one(pool)
            .await?;
        Ok(v.unwrap_or_default())
    }

    async fn binlog_on(&self, pool: &MySqlPool) -> Result<bool> {
        let v: i64 = sqlx::query_scalar("SELECT @@GLOBAL.log_bin + 0")
            .fetch_one(pool)
            .await?;
        Ok(v == 1)
    }

    /// Restarts the server when it runs without a binary log (started before its replication
    /// settings were written).
    async fn require_binlog(&self) -> Result<()> {
        let (pool, _) = self.admin().await?;
        if self.binlog_on(&pool).await? {
            return Ok(());
        }
        tracing::info!("binary log off; restarting the server with the replication settings");
        self.ensure_replication_config(None)?;
        self.restart_sequence().await?;
        let (pool, _) = self.admin().await?;
        if !self.binlog_on(&pool).await? {
            return Err(replication_error(
                "the server still runs without a binary log after a restart".into(),
            ));
        }
        Ok(())
    }

    /// `replica_context` / `get_replica_context`.
    pub(super) async fn replication_context(&self) -> Result<ReplicaContext> {
        self.require_binlog().await?;
        let (pool, esc) = self.admin().await?;
        // Creating the account on a server that follows a source would write a transaction
        // of its own into its binary log and make it diverge.
        if self.slave_status(&pool).await?.is_some() {
            return Err(GuestError::InvalidValue(
                "This instance is a replica; a replica cannot be the source of other replicas."
                    .into(),
            ));
        }
        let user = match self.saved_replication_user() {
            Some(u) => u,
            None => {
                let u = new_replication_user();
                // Saved before it exists on the server: a second call reuses it.
                let socket = self.layout.socket.display();
                write_file(
                    &self.replication_user_cnf(),
                    format!(
                        "[client]\nuser={}\npassword={}\nhost=localhost\nsocket={socket}\n",
                        u.name, u.password
                    )
                    .as_bytes(),
                    0o600,
                )?;
                tracing::info!(user = %u.name, "replication account chosen");
                u
            }
        };
        let account = mysql_account(&user.name, "%", esc)?;
        let password = mysql_literal(&user.password, esc)?;
        exec_all(
            &pool,
            &[
                format!("CREATE USER IF NOT EXISTS {account} IDENTIFIED BY {password}"),
                format!("ALTER USER {account} IDENTIFIED BY {password}"),
                format!("GRANT REPLICATION SLAVE ON *.* TO {account}"),
            ],
        )
        .await?;
        Ok(ReplicaContext {
            master: ReplicaSourceAddress {
                host: source_host(self.config.bind_address)?,
                port: self.config.port,
            },
            replica_conf: ReplicaConf {
                log_position: serde_json::json!({}),
                replication_user: Some(user),
            },
        })
    }

    /// `make_read_only`: live and persisted.
    pub(super) async fn set_read_only(&self, read_only: bool) -> Result<()> {
        let (pool, _) = self.admin().await?;
        self.ensure_replication_config(Some(read_only))?;
        exec_all(
            &pool,
            &[format!(
                "SET GLOBAL read_only = {}",
                if read_only { "ON" } else { "OFF" }
            )],
        )
        .await
    }

    /// Checks a snapshot before anything is changed by `prepare`.
    pub(super) fn check_snapshot(snapshot: &ReplicaSnapshot) -> Result<()> {
        if let Some(s) = snapshot.replication_strategy.as_deref() {
            if s != STRATEGY {
                return Err(GuestError::InvalidValue(format!(
                    "replication strategy {s} cannot be followed by a MariaDB replica ({STRATEGY})."
                )));
            }
        }
        check_context(&snapshot.context())
    }

    /// After any restore: the backed-up server's own replica state (which source it followed
    /// and how far) is removed, so the new instance never starts following that source.
    pub(super) fn forget_restored_replica_state(&self) -> Result<()> {
        let data = &self.layout.data_dir;
        for f in SOURCE_REPLICA_FILES {
            let p = data.join(f);
            if p.exists() {
                std::fs::remove_file(&p)
                    .map_err(|e| GuestError::io(format!("removing {}", p.display()), e))?;
            }
        }
        Ok(())
    }

    /// After the restore of a snapshot: its GTID position, as `mariadb-backup` recorded it.
    pub(super) fn snapshot_position(&self) -> Result<String> {
        let data = &self.layout.data_dir;
        for f in BINLOG_INFO_FILES {
            let p = data.join(f);
            if let Ok(text) = std::fs::read_to_string(&p) {
                return parse_binlog_info(&text);
            }
        }
        Err(GuestError::InvalidValue(format!(
            "the snapshot has no binary log position ({} missing): was the source's binary log on?",
            BINLOG_INFO_FILES.join(", ")
        )))
    }

    /// Makes the running server a read-only replica of `ctx.master`. With `start_gtid`
    /// (a server just restored from the source's snapshot) replication starts after that
    /// position; without, from the server's own current position.
    pub(super) async fn start_replication(
        &self,
        ctx: &ReplicaContext,
        start_gtid: Option<&str>,
    ) -> Result<()> {
        check_context(ctx)?;
        let user = ctx.replica_conf.replication_user.as_ref().ok_or_else(|| {
            GuestError::InvalidValue("the replica context names no replication user.".into())
        })?;
        self.require_binlog().await?;
        self.set_read_only(true).await?;
        let (pool, esc) = self.admin().await?;
        let mut plan = vec!["STOP SLAVE".to_owned()];
        let use_gtid = match start_gtid {
            Some(gtid) => {
                parse_gtid_list(gtid)?;
                let g = mysql_literal(gtid, esc)?;
                // The replica's binary log starts where the snapshot ends, so replicas of
                // this one (after a promotion) can continue from there too.
                plan.push("RESET MASTER".into());
                if !gtid.is_empty() {
                    plan.push(format!("SET GLOBAL gtid_binlog_state = {g}"));
                }
                plan.push(format!("SET GLOBAL gtid_slave_pos = {g}"));
                "slave_pos"
            }
            None => "current_pos",
        };
        plan.push(format!(
            "CHANGE MASTER TO MASTER_HOST = {}, MASTER_PORT = {}, MASTER_USER = {}, \
             MASTER_PASSWORD = {}, MASTER_USE_GTID = {use_gtid}, MASTER_CONNECT_RETRY = {CONNECT_RETRY_SECS}",
            mysql_literal(&ctx.master.host, esc)?,
            ctx.master.port,
            mysql_literal(&user.name, esc)?,
            mysql_literal(&user.password, esc)?,
        ));
        plan.push("START SLAVE".into());
        tracing::info!(
            source = %ctx.master.host, port = ctx.master.port, user = %user.name,
            use_gtid, start = start_gtid.unwrap_or("current"),
            "attaching as a replica"
        );
        exec_all(&pool, &plan).await?;
        let status = self.wait_streaming(&pool, ATTACH_TIMEOUT).await?;
        let identity = SourceIdentity {
            host: ctx.master.host.clone(),
            port: ctx.master.port,
            server_id: status.master_server_id,
        };
        write_file(
            &self.replication_source_file(),
            serde_json::to_vec(&identity)
                .map_err(|e| replication_error(e.to_string()))?
                .as_slice(),
            0o644,
        )?;
        tracing::info!(
            source_server_id = status.master_server_id,
            "replica streaming"
        );
        Ok(())
    }

    /// Waits until both replication threads run.
    async fn wait_streaming(&self, pool: &MySqlPool, within: Duration) -> Result<SlaveStatus> {
        let deadline = Instant::now() + within;
        loop {
            let status = self.slave_status(pool).await?.ok_or_else(|| {
                replication_error("no replication configured after START SLAVE".into())
            })?;
            if status.streaming() && status.master_server_id != 0 {
                return Ok(status);
            }
            if status.failed() {
                return Err(replication_error(format!(
                    "replication stopped: {}",
                    status.errors()
                )));
            }
            if Instant::now() >= deadline {
                return Err(replication_error(format!(
                    "the replica did not connect to its source within {} s: {}",
                    within.as_secs(),
                    status.errors()
                )));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// `detach_replica`.
    pub(super) async fn stop_replication(&self, for_failover: bool) -> Result<serde_json::Value> {
        let (pool, esc) = self.admin().await?;
        let status = self.slave_status(&pool).await?;
        let user = status
            .as_ref()
            .map(|s| s.master_user.clone())
            .filter(|u| !u.is_empty());
        if status.is_some() {
            exec_all(&pool, &["STOP SLAVE".into(), "RESET SLAVE ALL".into()]).await?;
        }
        if let Some(s) = self.slave_status(&pool).await? {
            return Err(replication_error(format!(
                "replication still configured after RESET SLAVE ALL: {}",
                s.errors()
            )));
        }
        let source_file = self.replication_source_file();
        if source_file.exists() {
            std::fs::remove_file(&source_file)
                .map_err(|e| GuestError::io(format!("removing {}", source_file.display()), e))?;
        }
        self.set_read_only(false).await?;
        // Detached for good: the former source's replication account has no use here.
        if !for_failover {
            if let Some(u) = user.as_deref().filter(|u| is_replication_user(u)) {
                let own = self.saved_replication_user().is_some_and(|o| o.name == u);
                if !own {
                    exec_all(
                        &pool,
                        &[format!(
                            "DROP USER IF EXISTS {}",
                            mysql_account(u, "%", esc)?
                        )],
                    )
                    .await?;
                }
            }
        }
        tracing::info!(for_failover, "replication detached");
        Ok(serde_json::json!({ "replication_user": user }))
    }

    /// `enable_as_master`: writable, binary log on, replication account ready.
    pub(super) async fn become_source(&self) -> Result<()> {
        let (pool, _) = self.admin().await?;
        if self.slave_status(&pool).await?.is_some() {
            self.stop_replication(true).await?;
        }
        self.set_read_only(false).await?;
        self.replication_context().await?;
        Ok(())
    }

    /// `get_last_txn`.
    pub(super) async fn last_txn(&self) -> Result<(String, i64)> {
        let (pool, _) = self.admin().await?;
        let status = self.slave_status(&pool).await?;
        let remembered: Option<SourceIdentity> = std::fs::read(self.replication_source_file())
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        let server_id = status
            .as_ref()
            .map(|s| s.master_server_id)
            .filter(|&id| id != 0)
            .or(remembered.map(|r| r.server_id).filter(|&id| id != 0))
            .ok_or_else(|| {
                GuestError::InvalidValue("this instance is not a replica of a known source.".into())
            })?;
        let pos = self.global_text(&pool, "gtid_slave_pos").await?;
        let seq = highest_seq_no(&pos)?;
        Ok((
            server_id.to_string(),
            i64::try_from(seq)
                .map_err(|_| replication_error(format!("sequence number {seq} out of range")))?,
        ))
    }

    /// `get_latest_txn_id`: the binary log's GTID position.
    pub(super) async fn latest_txn_id(&self) -> Result<String> {
        let (pool, _) = self.admin().await?;
        self.global_text(&pool, "gtid_binlog_pos").await
    }

    /// `wait_for_txn`.
    pub(super) async fn wait_txn(&self, txn: &str) -> Result<()> {
        let txn = txn.trim().trim_matches('"');
        parse_gtid_list(txn)?;
        let (pool, _) = self.admin().await?;
        let r: Option<i64> = sqlx::query_scalar("SELECT MASTER_GTID_WAIT(?, ?)")
            .bind(txn)
            .bind(TXN_WAIT_TIMEOUT.as_secs() as i64)
            .fetch_one(&pool)
            .await?;
        match r {
            Some(0) => Ok(()),
            _ => {
                let pos = self.global_text(&pool, "gtid_slave_pos").await?;
                Err(replication_error(format!(
                    "the replica did not reach GTID position {txn} within {} s (at {pos})",
                    TXN_WAIT_TIMEOUT.as_secs()
                )))
            }
        }
    }
}

/// The address replicas reach this server at: the address it listens on, or, when it listens
/// on every address, the one the host sends from on its default route (no packet is sent).
pub fn source_host(bind: IpAddr) -> Result<String> {
    if !bind.is_unspecified() {
        return Ok(bind.to_string());
    }
    let (local, remote) = if bind.is_ipv4() {
        ("0.0.0.0:0", "192.0.2.1:9")
    } else {
        ("[::]:0", "[2001:db8::1]:9")
    };
    let probe = || -> std::io::Result<IpAddr> {
        let s = std::net::UdpSocket::bind(local)?;
        s.connect(remote)?;
        Ok(s.local_addr()?.ip())
    };
    probe()
        .map(|ip| ip.to_string())
        .map_err(|e| GuestError::io("finding the address replicas reach this server at", e))
}

fn check_context(ctx: &ReplicaContext) -> Result<()> {
    let host = ctx.master.host.trim();
    if host.is_empty() || host.contains(['\0', '\n', '\r']) {
        return Err(GuestError::InvalidValue(
            "the replica context names no valid source host.".into(),
        ));
    }
    if ctx.master.port == 0 {
        return Err(GuestError::InvalidValue(
            "the replica context names no valid source port.".into(),
        ));
    }
    let Some(u) = &ctx.replica_conf.replication_user else {
        return Err(GuestError::InvalidValue(
            "the replica context names no replication user.".into(),
        ));
    };
    if u.name.is_empty() {
        return Err(GuestError::InvalidValue(
            "the replica context names no replication user.".into(),
        ));
    }
    // The escaping rule is checked per session; NUL bytes are refused for any rule.
    mysql_literal(&u.name, MysqlEscaping::Backslash)?;
    mysql_literal(&u.password, MysqlEscaping::Backslash)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replication_user_names() {
        let u = new_replication_user();
        assert!(is_replication_user(&u.name), "{}", u.name);
        assert_eq!(u.password.len(), 16);
        assert!(!is_replication_user("slave_1234567"));
        assert!(!is_replication_user("slave_1234567G"));
        assert!(!is_replication_user("slave_ABCDEF12"));
        assert!(!is_replication_user("app"));
        assert!(!format!("{u:?}").contains(&u.password));
    }

    #[test]
    fn source_address() {
        assert_eq!(
            source_host("10.1.2.3".parse().unwrap()).unwrap(),
            "10.1.2.3"
        );
        // Listening everywhere: the host's own address on its default route, if it has one.
        if let Ok(h) = source_host("0.0.0.0".parse().unwrap()) {
            let ip: IpAddr = h.parse().unwrap();
            assert!(!ip.is_unspecified(), "{h}");
        }
    }

    #[test]
    fn settings_round_trip() {
        let s = ReplicationSettings {
            server_id: 4_000_000_001,
            read_only: true,
        };
        let text = s.render();
        assert!(text.contains("log_bin = mariadb-bin\n"));
        assert!(text.contains("binlog_format = ROW\n"));
        assert_eq!(ReplicationSettings::parse(&text), Some(s));
        let off = ReplicationSettings {
            read_only: false,
            ..s
        };
        assert_eq!(ReplicationSettings::parse(&off.render()), Some(off));
        assert_eq!(
            ReplicationSettings::parse("[mysqld]\nserver_id = 0\n"),
            None
        );
    }

    #[test]
    fn binlog_info_and_gtids() {
        assert_eq!(
            parse_binlog_info("mariadb-bin.000002\t1234\t0-3-42\n").unwrap(),
            "0-3-42"
        );
        assert_eq!(
            parse_binlog_info("mariadb-bin.000002\t1234\t0-3-42,1-5-7").unwrap(),
            "0-3-42,1-5-7"
        );
        assert_eq!(parse_binlog_info("mariadb-bin.000001\t328\t").unwrap(), "");
        assert_eq!(parse_binlog_info("").unwrap(), "");
        assert!(parse_binlog_info("f\t1\t0-1-x'; DROP").is_err());
        assert_eq!(highest_seq_no("0-3-42,1-5-7").unwrap(), 42);
        assert_eq!(highest_seq_no("").unwrap(), 0);
        assert!(parse_gtid_list("0-1").is_err());
    }
}
