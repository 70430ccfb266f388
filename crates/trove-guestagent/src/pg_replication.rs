//! PostgreSQL streaming replication: the files, accounts and tools behind the replication
//! methods of [`crate::postgres::PostgresManager`].
//!
//! ```text
//!  source:   role `replicator` (REPLICATION LOGIN, random password kept 0600 in
//!            <mount>/.guestagent/replication_user.json; the role and its password reach the
//!            replicas through the WAL, so every member of a replication set knows the same
//!            account and a promoted replica serves the existing ones unchanged)
//!            pg_hba: `host replication replicator 0.0.0.0/0 + ::/0 scram-sha-256`
//!            conf.d/10-replication.conf: wal_level = replica, max_wal_senders, wal_keep_size,
//!            wal_log_hints = on (pg_rewind), hot_standby = on
//!  replica:  PGDATA/standby.signal + conf.d/15-standby.conf (0600, service account):
//!            primary_conninfo (host, port, user, password, application_name),
//!            recovery_target_timeline = 'latest'
//!  demoted:  conf.d/12-read-only.conf: default_transaction_read_only = on, until the server
//!            restarts as a replica of the new source
//! ```
//!
//! WAL retention: `wal_keep_size` (an eighth of the volume, 32 MB to 1 GB) rather than a replication slot per replica. A slot
//! would need a name per replica (the manager does not know the replica's id when it hands
//! out the context) and a slot of a replica that was deleted without being detached keeps
//! WAL for ever until the volume is full, stopping the source; `wal_keep_size` bounds the
//! cost. A replica that falls further behind than that fails to stream with a clear error
//! and must be re-created.
//!
//! Re-pointing a server that was a source (switchover) or that replayed WAL the new source
//! never had: the server is stopped cleanly and `pg_rewind` (as `replicator`, which is
//! granted the four file functions pg_rewind needs) brings its data directory back to the
//! new source's timeline; it is a no-op when nothing diverged. A data directory pg_rewind
//! cannot handle is re-seeded with `pg_basebackup` from the new source instead: one written
//! without `wal_log_hints` nor data checksums, and one of a server that was writable on a
//! timeline with the same number as the source's (two replicas promoted from the same
//! source both start timeline N+1; pg_rewind then reports "no rewind required" although
//! their histories differ).
//!
//! Promotion in a switchover or failover: `detach_replica(for_failover = true)` leaves a
//! replica a replica; the candidate is promoted by `enable_as_master`, and the others are
//! re-pointed by `attach_replica` without ever having taken writes of their own. (The task
//! manager detaches every replica "for failover" before re-attaching it; promoting them all
//! would put each on its own timeline N+1 and require re-seeding all but the candidate.)
//! A plain `detach_replica` promotes at once.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{GuestError, Result};
use crate::manager::{write_file, ReplicaContext, ReplicationUser};
use crate::process::ServiceUser;

/// The strategy name replicas and the task manager see.
pub const STRATEGY: &str = "PostgresqlReplicationStreaming";
/// The replication account.
pub const REPLICATION_USER: &str = "replicator";
/// The most WAL a source keeps for replicas that start late or fall behind.
pub const WAL_KEEP_MAX_MB: u64 = 1024;
/// The least (on a small volume).
pub const WAL_KEEP_MIN_MB: u64 = 32;

/// `wal_keep_size` in MB for a volume of `volume_bytes`: an eighth of it, between
/// [`WAL_KEEP_MIN_MB`] and [`WAL_KEEP_MAX_MB`], so that kept WAL never fills a small
/// volume (the server would stop); unknown size: the minimum.
pub fn wal_keep_mb(volume_bytes: Option<u64>) -> u64 {
    volume_bytes
        .map(|b| b / 8 / (1024 * 1024))
        .unwrap_or(0)
        .clamp(WAL_KEEP_MIN_MB, WAL_KEEP_MAX_MB)
}
/// How long a replica may take to connect and stream (at most the instance's
/// `state_change_wait_time`).
pub const STREAMING_WAIT: Duration = Duration::from_secs(180);
/// How long a promotion may take.
pub const PROMOTE_WAIT: Duration = Duration::from_secs(60);

/// The functions `pg_rewind` calls on its source; `replicator` gets them so a demoted source
/// can be rewound against the new one without a superuser login over the network.
pub const REWIND_FUNCTIONS: &[&str] = &[
    "pg_catalog.pg_ls_dir(text, boolean, boolean)",
    "pg_catalog.pg_stat_file(text, boolean)",
    "pg_catalog.pg_read_binary_file(text)",
    "pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean)",
];

/// Where the replication state of one instance lives.
#[derive(Debug, Clone)]
pub struct ReplicationFiles {
    /// `<mount>/etc/conf.d/10-replication.conf`.
    pub source_conf: PathBuf,
    /// `<mount>/etc/conf.d/12-read-only.conf`.
    pub read_only_conf: PathBuf,
    /// `<mount>/etc/conf.d/15-standby.conf`.
    pub standby_conf: PathBuf,
    /// `<state_dir>/replication_user.json`.
    pub user_file: PathBuf,
    /// `<state_dir>/replication_attach_writable`: present from the start of an attach of a
    /// server that was writable until that attach succeeds (a retry after a failure still
    /// knows the server wrote WAL of its own).
    pub attach_writable: PathBuf,
    /// `PGDATA/standby.signal`.
    pub standby_signal: PathBuf,
    /// `PGDATA/recovery.signal`.
    pub recovery_signal: PathBuf,
}

impl ReplicationFiles {
    /// The files of an instance with this configuration directory, state directory and
    /// PGDATA.
    pub fn new(conf_dir: &Path, state_dir: &Path, pgdata: &Path) -> Self {
        ReplicationFiles {
            source_conf: conf_dir.join("10-replication.conf"),
            read_only_conf: conf_dir.join("12-read-only.conf"),
            standby_conf: conf_dir.join("15-standby.conf"),
            user_file: state_dir.join("replication_user.json"),
            attach_writable: state_dir.join("replication_attach_writable"),
            standby_signal: pgdata.join("standby.signal"),
            recovery_signal: pgdata.join("recovery.signal"),
        }
    }
}

fn conf_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// A libpq connection-string value, quoted.
pub fn conninfo_quote(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// The settings every instance has so it can serve replicas (and be rewound), for a
/// volume of `volume_bytes`.
pub fn render_source_conf(volume_bytes: Option<u64>) -> String {
    format!(
        "# Replication source and standby settings (trove-guestagent).\n\
         wal_level = replica\n\
         max_wal_senders = 10\n\
         max_replication_slots = 10\n\
         wal_keep_size = {}\n\
         wal_log_hints = on\n\
         hot_standby = on\n",
        conf_quote(&format!("{}MB", wal_keep_mb(volume_bytes)))
    )
}

/// Checks what a replica context names before any of it is written anywhere.
pub fn check_context(ctx: &ReplicaContext) -> Result<&ReplicationUser> {
    let bad = |what: &str| Err(GuestError::InvalidValue(format!("replica context: {what}")));
    let host = ctx.master.host.trim();
    if host.is_empty()
        || host
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || c == '\'' || c == '\\')
    {
        return bad("the source host is missing or not a host name or address");
    }
    if ctx.master.port == 0 {
        return bad("the source port is 0");
    }
    let Some(user) = ctx.replica_conf.replication_user.as_ref() else {
        return bad("no replication_user");
    };
    if user.name.is_empty() || user.name.contains(['\0', '\n', '\r']) {
        return bad("the replication user name is empty or malformed");
    }
    if user.password.contains(['\0', '\n', '\r']) {
        return bad("the replication password contains a line break or NUL");
    }
    Ok(user)
}

/// The libpq connection string to the source of `ctx`; the password only `with_password`
/// (tools get it through `PGPASSWORD` instead).
pub fn conninfo(
    ctx: &ReplicaContext,
    database: Option<&str>,
    application_name: Option<&str>,
    with_password: bool,
) -> Result<String> {
    let user = check_context(ctx)?;
    let mut s = format!(
        "host={} port={} user={}",
        conninfo_quote(ctx.master.host.trim()),
        ctx.master.port,
        conninfo_quote(&user.name)
    );
    if with_password {
        s.push_str(&format!(" password={}", conninfo_quote(&user.password)));
    }
    if let Some(db) = database {
        s.push_str(&format!(" dbname={}", conninfo_quote(db)));
    }
    if let Some(a) = application_name {
        s.push_str(&format!(" application_name={}", conninfo_quote(a)));
    }
    s.push_str(" connect_timeout=10");
    Ok(s)
}

/// `15-standby.conf` for a replica of `ctx`.
pub fn render_standby_conf(ctx: &ReplicaContext, application_name: &str) -> Result<String> {
    let ci = conninfo(ctx, None, Some(application_name), true)?;
    Ok(format!(
        "# Replica of {}:{} (trove-guestagent; removed when the replica is detached).\n\
         primary_conninfo = {}\n\
         recovery_target_timeline = 'latest'\n",
        ctx.master.host.trim(),
        ctx.master.port,
        conf_quote(&ci)
    ))
}

/// A name replicas report as `application_name` (`pg_stat_replication`): only
/// `[a-z0-9_]`, at most 63 characters.
pub fn application_name(raw: &str) -> String {
    let s: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .take(63)
        .collect();
    s
}

/// True when `pg_hba.conf` text lets `replicator` stream over TCP.
pub fn hba_allows_replicas(text: &str) -> bool {
    text.lines().any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.len() >= 5 && f[0] == "host" && f[1] == "replication" && f[2] == REPLICATION_USER
    })
}

/// The replication account this instance knows, if any.
pub fn load_user(path: &Path) -> Result<Option<ReplicationUser>> {
    match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b).map(Some).map_err(|e| {
            GuestError::InvalidValue(format!("{} is not readable: {e}", path.display()))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(GuestError::io(format!("reading {}", path.display()), e)),
    }
}

/// Keeps the replication account (mode 0600, root's: only the agent reads it).
pub fn save_user(path: &Path, user: &ReplicationUser) -> Result<()> {
    if let Some(dir) = path.parent() {
        crate::manager::mkdir(dir)?;
    }
    let text = serde_json::to_vec(user)
        .map_err(|e| GuestError::InvalidValue(format!("replication user: {e}")))?;
    let tmp = path.with_extension("json.tmp");
    write_file(&tmp, &text, 0o600)?;
    std::fs::rename(&tmp, path)
        .map_err(|e| GuestError::io(format!("writing {}", path.display()), e))
}

/// Writes a file only the service account (and root) can read.
pub fn write_private(path: &Path, contents: &[u8], owner: &ServiceUser) -> Result<()> {
    write_file(path, contents, 0o600)?;
    owner.chown(path)
}

/// Removes a file; a missing one is fine.
pub fn remove_if_exists(path: &Path) -> Result<bool> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(GuestError::io(format!("removing {}", path.display()), e)),
    }
}

/// What `pg_rewind` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rewind {
    /// pg_rewind found nothing to do. `same_timeline`: because the target's timeline has the
    /// source's number, which pg_rewind takes as proof of a shared history without comparing
    /// them; that holds only for a target that never wrote on that timeline (a replica).
    NotNeeded {
        /// The target and the source are on timelines with the same number.
        same_timeline: bool,
    },
    /// It was rewound onto the source's timeline.
    Done,
    /// pg_rewind cannot work on this data directory (no `wal_log_hints`, no checksums).
    Unsupported(String),
}

/// Runs `pg_rewind` on the stopped server's `pgdata` against the source of `ctx`. A data
/// directory that was not shut down cleanly is first recovered by pg_rewind itself (in
/// single-user mode, which refuses a `standby.signal`: the caller removes it first).
pub async fn pg_rewind(
    bin_dir: &Path,
    pgdata: &Path,
    config_file: &Path,
    cwd: &Path,
    ctx: &ReplicaContext,
    owner: &ServiceUser,
) -> Result<Rewind> {
    let user = check_context(ctx)?;
    let mut cmd = tokio::process::Command::new(bin_dir.join("pg_rewind"));
    // The instance's configuration (wal_log_hints among it) also for pg_rewind's crash
    // recovery, which otherwise reads PGDATA's own postgresql.conf.
    cmd.arg("--target-pgdata")
        .arg(pgdata)
        .arg(format!("--config-file={}", config_file.display()))
        .arg("--source-server")
        .arg(conninfo(ctx, Some("postgres"), None, false)?)
        .env("PGPASSWORD", &user.password)
        .stdin(std::process::Stdio::null())
        .current_dir(cwd)
        .kill_on_drop(true);
    owner.apply(&mut cmd);
    let out = cmd
        .output()
        .await
        .map_err(|e| GuestError::io("running pg_rewind", e))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    if out.status.success() {
        let same_timeline = text.contains("on the same timeline");
        if same_timeline && text.contains("crash recovery") {
            // The target was not shut down cleanly: pg_rewind's own crash recovery ended it
            // with a checkpoint of its own on the source's timeline number.
            return Ok(Rewind::Unsupported(
                "the data directory needed crash recovery on a timeline numbered as the source's"
                    .into(),
            ));
        }
        if text.contains("no rewind required") {
            return Ok(Rewind::NotNeeded { same_timeline });
        }
        return Ok(Rewind::Done);
    }
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let reason = lines[lines.len().saturating_sub(4)..].join(" | ");
    if text.contains("wal_log_hints") {
        return Ok(Rewind::Unsupported(reason));
    }
    Err(GuestError::Command {
        program: "pg_rewind".into(),
        detail: format!("{}: {reason}", out.status),
    })
}

/// Replaces `pgdata` with a fresh base backup of the source of `ctx` (streamed over the
/// replication connection into a sibling directory first, so a failure keeps the old data).
pub async fn reseed(
    bin_dir: &Path,
    pgdata: &Path,
    cwd: &Path,
    ctx: &ReplicaContext,
    owner: &ServiceUser,
) -> Result<()> {
    let user = check_context(ctx)?;
    let fresh = pgdata.with_file_name("pgdata.reseed");
    if fresh.exists() {
        std::fs::remove_dir_all(&fresh)
            .map_err(|e| GuestError::io(format!("removing {}", fresh.display()), e))?;
    }
    let mut cmd = tokio::process::Command::new(bin_dir.join("pg_basebackup"));
    cmd.arg("-D")
        .arg(&fresh)
        .args(["-X", "stream", "-c", "fast", "--no-password", "-d"])
        .arg(conninfo(ctx, None, None, false)?)
        .env("PGPASSWORD", &user.password)
        .current_dir(cwd)
        .kill_on_drop(true);
    owner.apply(&mut cmd);
    if let Err(e) = crate::process::run_checked(cmd, "pg_basebackup").await {
        let _ = std::fs::remove_dir_all(&fresh);
        return Err(e);
    }
    std::fs::remove_dir_all(pgdata)
        .map_err(|e| GuestError::io(format!("removing {}", pgdata.display()), e))?;
    std::fs::rename(&fresh, pgdata)
        .map_err(|e| GuestError::io(format!("moving {} into place", fresh.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manager::{ReplicaConf, ReplicaSourceAddress};

    fn ctx(password: &str) -> ReplicaContext {
        ReplicaContext {
            master: ReplicaSourceAddress {
                host: "10.0.0.5".into(),
                port: 5432,
            },
            replica_conf: ReplicaConf {
                log_position: serde_json::json!({}),
                replication_user: Some(ReplicationUser {
                    name: REPLICATION_USER.into(),
                    password: password.into(),
                }),
            },
        }
    }

    #[test]
    fn standby_settings_quote_the_password_twice() {
        let conf = render_standby_conf(&ctx("a'b\\c"), "trove_x").unwrap();
        // libpq quoting ('a\'b\\c'), then postgresql.conf quoting ('' for ').
        assert!(
            conf.contains(
                "primary_conninfo = 'host=''10.0.0.5'' port=5432 user=''replicator'' password=''a\\''b\\\\c'' application_name=''trove_x'' connect_timeout=10'"
            ),
            "{conf}"
        );
        assert!(conf.contains("recovery_target_timeline = 'latest'"));
        let tool = conninfo(&ctx("pw"), Some("postgres"), None, false).unwrap();
        assert!(!tool.contains("pw"), "{tool}");
    }

    #[test]
    fn contexts_are_checked() {
        let mut c = ctx("pw");
        c.master.host = "h' x".into();
        assert!(check_context(&c).is_err());
        let mut c = ctx("pw");
        c.replica_conf.replication_user = None;
        assert!(check_context(&c).is_err());
        assert!(check_context(&ctx("p\nw")).is_err());
        assert!(check_context(&ctx("ok")).is_ok());
    }

    #[test]
    fn names_and_rules() {
        assert_eq!(application_name("127.2.12.5:5432"), "127_2_12_5_5432");
        assert!(hba_allows_replicas(
            "host    replication   replicator   0.0.0.0/0    scram-sha-256\n"
        ));
        assert!(!hba_allows_replicas(
            "local   replication   postgres   trust\n"
        ));
        assert!(render_source_conf(None).contains("wal_log_hints = on"));
        assert!(render_source_conf(None).contains("wal_keep_size = '32MB'"));
        let gib = 1024 * 1024 * 1024;
        assert_eq!(wal_keep_mb(Some(gib)), 128);
        assert_eq!(wal_keep_mb(Some(100 * gib)), 1024);
        assert_eq!(wal_keep_mb(Some(gib / 8)), 32);
    }

    #[test]
    fn user_kept_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state/replication_user.json");
        assert_eq!(load_user(&p).unwrap(), None);
        let u = ReplicationUser {
            name: REPLICATION_USER.into(),
            password: "secret".into(),
        };
        save_user(&p, &u).unwrap();
        assert_eq!(load_user(&p).unwrap(), Some(u));
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}
