//! Backups of the instance's database and their restore in `prepare`.
//!
//! ```text
//!  create_backup(backup_info) (cast)
//!    │ update_backup(state=BUILDING, size=<used GB of the volume>, backup_type)
//!    │ store from backup_info.swift_url (file://<dir>: LocalStore; http(s)://: the user's
//!    │ Swift account, with the auth_token of the request's context)
//!    │ MariaDB: mariadb-backup --backup --stream=xbstream (os_admin over the instance's socket)
//!    │            stdout ──> zstd ──> BackupStore::put(<container>, <id>.xbstream.zst)
//!    │          (nothing staged on disk; the server keeps taking writes: the backup is hot)
//!    │          success needs exit 0 and "completed OK!" at the end of the tool's log;
//!    │          object metadata: datastore, datastore_version, compression, lsn
//!    ├─ ok:   update_backup(state=COMPLETED, location, checksum, size, backup_type,
//!    │        success=true); notify_end
//!    └─ fail: the partial object is deleted; update_backup(state=FAILED, success=false);
//!             notify_exc_info with the reason (the conductor records it as a fault)
//!
//!  prepare(backup_info={"id", "location", "checksum", "type"}) on MariaDB
//!    verify the object (every segment's MD5, the whole object's checksum against the one
//!    the backup row keeps) ──> empty datadir ──> get ──> zstd -d ──> mbstream -x -C datadir
//!    ──> mariadb-backup --prepare ──> datadir owned by the service user ──> first start
//!    with an init file resetting root@localhost, then the usual securing (new root and
//!    os_admin passwords; the source's remote root accounts are dropped)
//! ```
//!
//! Incremental backups: `backup_info.parent` names the parent's location and checksum; the
//! parent's `lsn` metadata becomes `--incremental-lsn`, and the object records
//! `parent_location` and `parent_checksum`, by which a restore finds the chain.
//! PostgreSQL backups are in [`crate::pgbackup`] (`pg_basebackup` and archived WAL).

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use trove_backup::compress::{zstd_compress, zstd_decompress, ZSTD};
use trove_backup::{
    check_name, open_store_for_location, open_store_for_url, AuthToken, BackupStore, Metadata,
    StoredObject, META_COMPRESSION,
};

use crate::error::{GuestError, Result};
use crate::process::ServiceUser;

/// Container used when `backup_info` names none (`backup_swift_container`'s default).
pub const DEFAULT_CONTAINER: &str = "database_backups";

/// Suffix of MariaDB backup objects: an xbstream compressed with zstd.
pub const MARIADB_SUFFIX: &str = "xbstream.zst";

/// Parent of an incremental backup, as `backup_info` carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParentInfo {
    /// The parent's location.
    pub location: String,
    /// The parent's checksum.
    #[serde(default)]
    pub checksum: Option<String>,
}

/// `backup_info` of `create_backup` (fields as Trove's API builds it, plus `swift_url` from
/// the taskmanager).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupInfo {
    /// Backup id (also the object name's stem).
    pub id: String,
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// Instance backed up.
    #[serde(default)]
    pub instance_id: Option<String>,
    /// `full` or `incremental` (missing or null: `full`).
    #[serde(default = "full", deserialize_with = "null_as_full")]
    pub backup_type: String,
    /// Always null on create.
    #[serde(default)]
    pub checksum: Option<String>,
    /// Parent of an incremental backup.
    #[serde(default)]
    pub parent: Option<ParentInfo>,
    /// Datastore name (object metadata).
    #[serde(default)]
    pub datastore: Option<String>,
    /// Datastore version name (object metadata).
    #[serde(default)]
    pub datastore_version: Option<String>,
    /// `swift` or `cinder`.
    #[serde(default)]
    pub storage_driver: Option<String>,
    /// Container; [`DEFAULT_CONTAINER`] when null.
    #[serde(default)]
    pub swift_container: Option<String>,
    /// Base URL of the store: the user's Swift endpoint, or `file://<dir>` for the local
    /// store of the all-in-one mode.
    #[serde(default)]
    pub swift_url: Option<String>,
}

fn full() -> String {
    "full".into()
}

fn null_as_full<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?.unwrap_or_else(full))
}

impl BackupInfo {
    /// The container the object goes to.
    pub fn container(&self) -> &str {
        self.swift_container
            .as_deref()
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .unwrap_or(DEFAULT_CONTAINER)
    }

    /// Checks what this agent can do before anything is reported BUILDING.
    pub fn check(&self) -> Result<()> {
        check_name("backup id", &self.id).map_err(|e| GuestError::InvalidValue(e.to_string()))?;
        check_name("container", self.container())
            .map_err(|e| GuestError::InvalidValue(e.to_string()))?;
        match (self.backup_type.as_str(), &self.parent) {
            ("full", None) | ("incremental", Some(_)) => {}
            ("incremental", None) => {
                return Err(GuestError::InvalidValue(
                    "an incremental backup needs its parent (backup_info.parent)".into(),
                ))
            }
            ("full", Some(_)) => {
                return Err(GuestError::InvalidValue(
                    "a full backup has no parent".into(),
                ))
            }
            (other, _) => {
                return Err(GuestError::InvalidValue(format!(
                    "backup_type '{other}' is neither full nor incremental"
                )))
            }
        }
        if self
            .storage_driver
            .as_deref()
            .is_some_and(|d| d == "cinder")
        {
            return Err(GuestError::NotSupported(
                "cinder snapshot backups in the guest agent".into(),
            ));
        }
        Ok(())
    }
}

/// `backup_info` of `prepare`: the backup to restore.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreInfo {
    /// Backup id.
    #[serde(default)]
    pub id: Option<String>,
    /// Where the object is.
    pub location: String,
    /// The checksum the backup row keeps; the object must match it.
    #[serde(default)]
    pub checksum: Option<String>,
    /// Backup strategy or type, informative.
    #[serde(default, rename = "type", alias = "backup_type")]
    pub kind: Option<String>,
}

impl RestoreInfo {
    /// Reads `prepare`'s `backup_info` and checks that this agent can reach its location.
    pub fn from_value(v: serde_json::Value) -> std::result::Result<Self, String> {
        let info: RestoreInfo = serde_json::from_value(v)
            .map_err(|e| format!("restoring a backup: invalid backup_info: {e}"))?;
        store_for_location(&info.location).map_err(|e| format!("restoring a backup: {e}"))?;
        Ok(info)
    }
}

tokio::task_local! {
    /// The user's token of the request being served (`RpcContext.auth_token` of
    /// `create_backup` or `prepare`): what the stores opened while serving it reach Swift
    /// with.
    static AUTH_TOKEN: Option<AuthToken>;
}

/// Runs `fut` with `token` (the request context's `auth_token`) as the user's token of the
/// backup stores it opens ([`store_for_url`], [`store_for_location`]).
pub async fn with_auth_token<F: std::future::Future>(token: Option<String>, fut: F) -> F::Output {
    AUTH_TOKEN.scope(token.map(AuthToken::new), fut).await
}

/// [`with_auth_token`] for synchronous code.
pub fn with_auth_token_sync<R>(token: Option<String>, f: impl FnOnce() -> R) -> R {
    AUTH_TOKEN.sync_scope(token.map(AuthToken::new), f)
}

/// The user's token set by [`with_auth_token`], if any.
fn auth_token() -> Option<AuthToken> {
    AUTH_TOKEN.try_with(Clone::clone).ok().flatten()
}

/// The store behind `url` (`backup_info.swift_url`): `file://<dir>` is a local directory,
/// `http(s)://` the user's Swift account, reached with the request's token
/// ([`with_auth_token`]).
pub fn store_for_url(url: Option<&str>) -> Result<Arc<dyn BackupStore>> {
    match url.map(str::trim).filter(|u| !u.is_empty()) {
        Some(u) => {
            let token = auth_token();
            Ok(open_store_for_url(
                u,
                token.as_ref().map(AuthToken::as_str),
            )?)
        }
        None => Err(GuestError::InvalidValue(
            "backup_info has no swift_url: the guest does not know where to store the backup"
                .into(),
        )),
    }
}

/// The store holding the object at `location` (`file://...` or a Swift object's URL, the
/// latter reached with the request's token, see [`with_auth_token`]).
pub fn store_for_location(location: &str) -> Result<Arc<dyn BackupStore>> {
    let token = auth_token();
    Ok(open_store_for_location(
        location,
        token.as_ref().map(AuthToken::as_str),
    )?)
}

/// One backup to take: where it goes and with which metadata.
#[derive(Debug, Clone)]
pub struct BackupJob {
    /// The backup id.
    pub id: String,
    /// The store.
    pub store: Arc<dyn BackupStore>,
    /// Container.
    pub container: String,
    /// Object metadata (`datastore`, `datastore_version`, ...).
    pub metadata: Metadata,
    /// The parent of an incremental backup.
    pub parent: Option<ParentInfo>,
}

impl BackupJob {
    /// The job `info` describes.
    pub fn from_info(info: &BackupInfo) -> Result<Self> {
        info.check()?;
        let store = store_for_url(info.swift_url.as_deref())?;
        let mut metadata = Metadata::new();
        if let Some(d) = &info.datastore {
            metadata.insert("datastore".into(), d.clone());
        }
        if let Some(v) = &info.datastore_version {
            metadata.insert("datastore_version".into(), v.clone());
        }
        Ok(BackupJob {
            id: info.id.clone(),
            store,
            container: info.container().to_owned(),
            metadata,
            parent: info.parent.clone(),
        })
    }
}

/// Finds `program` on `PATH`.
pub fn find_program(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/sbin")])
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

fn require_program(program: &str, package: &str, what: &str) -> Result<PathBuf> {
    find_program(program).ok_or_else(|| GuestError::Command {
        program: program.into(),
        detail: format!(
            "{program} is not installed on this guest (package {package}); {what} is not possible"
        ),
    })
}

/// The last lines of a tool's log, and what they tell.
#[derive(Debug, Default)]
struct ToolLog {
    tail: VecDeque<String>,
    errors: Vec<String>,
    lsn: Option<String>,
}

impl ToolLog {
    fn completed_ok(&self) -> bool {
        self.tail
            .back()
            .is_some_and(|l| l.trim_end().ends_with("completed OK!"))
    }

    fn reason(&self) -> String {
        let lines: Vec<&str> = if self.errors.is_empty() {
            self.tail
                .iter()
                .rev()
                .take(3)
                .rev()
                .map(String::as_str)
                .collect()
        } else {
            self.errors
                .iter()
                .rev()
                .take(3)
                .rev()
                .map(String::as_str)
                .collect()
        };
        lines.join(" | ")
    }
}

/// A tool's log line without its `[00] 2024-01-01 12:00:00 ` prefix.
fn strip_log_prefix(line: &str) -> &str {
    let rest = match line.strip_prefix('[') {
        Some(r) => r.split_once("] ").map_or(line, |(_, r)| r),
        None => line,
    };
    let mut parts = rest.splitn(3, ' ');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(d), Some(t), Some(msg))
            if d.len() == 10
                && d.as_bytes()[4] == b'-'
                && t.len() == 8
                && t.as_bytes()[2] == b':' =>
        {
            msg
        }
        _ => rest,
    }
}

async fn collect_log(stderr: tokio::process::ChildStderr) -> ToolLog {
    let mut log = ToolLog::default();
    let mut lines = tokio::io::BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(rest) = line
            .split("The latest check point (for incremental): '")
            .nth(1)
        {
            log.lsn = rest.split('\'').next().map(str::to_owned);
        }
        let lower = line.to_ascii_lowercase();
        if ["error", "failed", "fatal", "denied", "cannot", "can't"]
            .iter()
            .any(|w| lower.contains(w))
        {
            if log.errors.len() == 20 {
                log.errors.remove(0);
            }
            log.errors.push(strip_log_prefix(&line).to_owned());
        }
        if log.tail.len() == 20 {
            log.tail.pop_front();
        }
        log.tail.push_back(line);
    }
    log
}

/// Where a MariaDB instance's files are, for backup and restore.
#[derive(Debug, Clone)]
pub struct MariaDbPaths {
    /// The datadir.
    pub data_dir: PathBuf,
    /// The server's temporary directory (used by the tool for its own temporary files).
    pub tmp_dir: PathBuf,
    /// `os_admin.cnf`: `[client]` user, password and socket of the agent's account.
    pub os_admin_cnf: PathBuf,
}

/// Streams a hot backup of the running MariaDB server into `job`'s store: `mariadb-backup
/// --backup --stream=xbstream` as `os_admin` over the instance's socket, compressed with
/// zstd on the way, nothing staged on disk. A failure leaves no object behind.
pub async fn mariadb_backup(paths: &MariaDbPaths, job: &BackupJob) -> Result<StoredObject> {
    let tool = require_program("mariadb-backup", "mariadb-backup", "a backup")?;
    let object = format!("{}.{MARIADB_SUFFIX}", job.id);
    let mut metadata = job.metadata.clone();
    metadata.insert(META_COMPRESSION.into(), ZSTD.into());
    let incremental_lsn = match &job.parent {
        Some(parent) => {
            let lsn = parent_lsn(parent).await?;
            metadata.insert("parent_location".into(), parent.location.clone());
            if let Some(c) = &parent.checksum {
                metadata.insert("parent_checksum".into(), c.clone());
            }
            Some(lsn)
        }
        None => None,
    };
    let mut cmd = tokio::process::Command::new(&tool);
    cmd.arg(format!("--defaults-file={}", paths.os_admin_cnf.display()))
        .arg("--backup")
        .arg("--stream=xbstream")
        .arg(format!("--datadir={}", paths.data_dir.display()))
        .arg(format!("--tmpdir={}", paths.tmp_dir.display()))
        .arg(format!("--target-dir={}", paths.tmp_dir.display()));
    if let Some(lsn) = &incremental_lsn {
        cmd.arg(format!("--incremental-lsn={lsn}"));
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .map_err(|e| GuestError::io("starting mariadb-backup", e))?;
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(GuestError::Command {
            program: "mariadb-backup".into(),
            detail: "its output could not be captured".into(),
        });
    };
    let log_task = tokio::spawn(collect_log(stderr));
    let mut compressed = zstd_compress(stdout);
    let put = job
        .store
        .put(&job.container, &object, &mut compressed, &metadata)
        .await;
    drop(compressed);
    if put.is_err() {
        let _ = child.start_kill();
    }
    let status = child
        .wait()
        .await
        .map_err(|e| GuestError::io("waiting for mariadb-backup", e))?;
    let log = log_task.await.unwrap_or_default();
    let tool_ok = status.success() && log.completed_ok();
    match put {
        Ok(stored) if tool_ok => {
            if let Some(lsn) = &log.lsn {
                metadata.insert("lsn".into(), lsn.clone());
                job.store.set_metadata(&stored.location, &metadata).await?;
            }
            Ok(stored)
        }
        Ok(stored) => {
            if let Err(e) = job.store.delete(&stored.location).await {
                tracing::warn!(error = %e, location = %stored.location, "removing the object of a failed backup failed");
            }
            Err(GuestError::Command {
                program: "mariadb-backup".into(),
                detail: format!("{status}: {}", log.reason()),
            })
        }
        Err(e) if !tool_ok && !status.success() => Err(GuestError::Command {
            program: "mariadb-backup".into(),
            detail: format!("{status}: {} (storing: {e})", log.reason()),
        }),
        Err(e) => Err(e.into()),
    }
}

/// The LSN an incremental backup starts from: the `lsn` its parent recorded. The parent must
/// exist and carry the checksum `backup_info` names.
async fn parent_lsn(parent: &ParentInfo) -> Result<String> {
    let store = store_for_location(&parent.location)?;
    let head = store.head(&parent.location).await?;
    if let Some(expected) = parent.checksum.as_deref().filter(|c| !c.is_empty()) {
        if !expected
            .trim_matches('"')
            .eq_ignore_ascii_case(&head.checksum)
        {
            return Err(trove_backup::BackupError::ChecksumMismatch {
                location: parent.location.clone(),
                expected: expected.into(),
                actual: head.checksum,
            }
            .into());
        }
    }
    match head.metadata.get("lsn") {
        Some(lsn) if !lsn.is_empty() && lsn.chars().all(|c| c.is_ascii_digit()) => Ok(lsn.clone()),
        _ => Err(GuestError::InvalidValue(format!(
            "the parent backup {} records no log sequence number; take a full backup",
            parent.location
        ))),
    }
}

/// Restores the backup at `info.location` into `paths.data_dir` (which is emptied first).
/// An incremental backup (metadata `parent_location`) is restored with its chain, parents
/// first: the full backup is extracted and prepared, then each incremental is extracted
/// beside it and applied with `--incremental-dir`. Every object is verified against its
/// checksum (the one the backup row keeps for the requested backup, the one its child
/// records for a parent) before its bytes are used. Ownership goes to `owner` at the end.
/// The server must be stopped.
pub async fn mariadb_restore(
    paths: &MariaDbPaths,
    info: &RestoreInfo,
    owner: &ServiceUser,
) -> Result<()> {
    let mbstream = require_program("mbstream", "mariadb-backup", "a restore")?;
    let tool = require_program("mariadb-backup", "mariadb-backup", "a restore")?;
    let chain = restore_chain(info, None).await?;
    tracing::info!(location = %info.location, objects = chain.len(), "restoring backup");
    empty_dir(&paths.data_dir)?;
    let inc_dir = paths.tmp_dir.join("restore-incremental");
    for (i, link) in chain.iter().enumerate() {
        if i == 0 {
            extract(&mbstream, link, &paths.data_dir).await?;
            prepare(&tool, &paths.data_dir, None).await?;
        } else {
            if inc_dir.exists() {
                std::fs::remove_dir_all(&inc_dir)
                    .map_err(|e| GuestError::io(format!("removing {}", inc_dir.display()), e))?;
            }
            crate::manager::mkdir(&inc_dir)?;
            extract(&mbstream, link, &inc_dir).await?;
            prepare(&tool, &paths.data_dir, Some(&inc_dir)).await?;
            std::fs::remove_dir_all(&inc_dir)
                .map_err(|e| GuestError::io(format!("removing {}", inc_dir.display()), e))?;
        }
    }
    chown_tree(&paths.data_dir, owner)?;
    tracing::info!(location = %info.location, "backup restored into the data directory");
    Ok(())
}

/// One object of a restore chain, checked against the checksum recorded for it.
pub(crate) struct ChainLink {
    pub(crate) store: Arc<dyn BackupStore>,
    pub(crate) location: String,
    pub(crate) checksum: String,
    pub(crate) metadata: Metadata,
}

/// Refuses an object whose checksum is not the one recorded for it (when one is).
pub(crate) fn check_checksum(location: &str, expected: Option<&str>, actual: &str) -> Result<()> {
    if let Some(expected) = expected.filter(|c| !c.is_empty()) {
        if !expected.trim_matches('"').eq_ignore_ascii_case(actual) {
            return Err(trove_backup::BackupError::ChecksumMismatch {
                location: location.into(),
                expected: expected.into(),
                actual: actual.into(),
            }
            .into());
        }
    }
    Ok(())
}

/// The objects to apply, full backup first, each checked against the checksum recorded for
/// it, compressed with zstd and, when `datastore` is given, of that datastore (objects
/// without the metadata pass).
pub(crate) async fn restore_chain(
    info: &RestoreInfo,
    datastore: Option<&str>,
) -> Result<Vec<ChainLink>> {
    let mut chain = Vec::new();
    let mut next = Some((info.location.clone(), info.checksum.clone()));
    while let Some((location, checksum)) = next.take() {
        if chain.len() >= MAX_CHAIN {
            return Err(GuestError::InvalidValue(format!(
                "backup {} has a chain of more than {MAX_CHAIN} parents",
                info.location
            )));
        }
        let store = store_for_location(&location)?;
        let head = store.head(&location).await?;
        check_checksum(&location, checksum.as_deref(), &head.checksum)?;
        if let Some(c) = head.metadata.get(META_COMPRESSION).filter(|c| *c != ZSTD) {
            return Err(GuestError::NotSupported(format!(
                "backup compression {c} (of {location})"
            )));
        }
        if let (Some(want), Some(d)) = (
            datastore,
            head.metadata.get("datastore").filter(|d| !d.is_empty()),
        ) {
            if d != want {
                return Err(GuestError::InvalidValue(format!(
                    "backup {location} is of datastore {d}, not {want}"
                )));
            }
        }
        next = head
            .metadata
            .get("parent_location")
            .map(|p| (p.clone(), head.metadata.get("parent_checksum").cloned()));
        chain.push(ChainLink {
            store,
            location,
            checksum: head.checksum,
            metadata: head.metadata,
        });
    }
    chain.reverse();
    Ok(chain)
}

/// Longest restore chain accepted.
const MAX_CHAIN: usize = 100;

/// Streams one verified object through zstd into `mbstream -x -C <dir>`.
async fn extract(mbstream: &Path, link: &ChainLink, dir: &Path) -> Result<()> {
    let reader = link.store.get(&link.location, Some(&link.checksum)).await?;
    let mut cmd = tokio::process::Command::new(mbstream);
    cmd.arg("-x").arg("-C").arg(dir);
    feed_command(cmd, "mbstream", zstd_decompress(reader), &link.location).await
}

/// Runs `cmd` (named `program` in errors) with `input` on its standard input, until both
/// the copy and the program end; a failure of either (or a program that exits non-zero)
/// is an error naming backup `location`, and the program is killed if the input fails.
pub(crate) async fn feed_command(
    mut cmd: tokio::process::Command,
    program: &str,
    mut input: impl tokio::io::AsyncRead + Unpin,
    location: &str,
) -> Result<()> {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .map_err(|e| GuestError::io(format!("starting {program}"), e))?;
    let (Some(mut stdin), Some(stderr)) = (child.stdin.take(), child.stderr.take()) else {
        return Err(GuestError::Command {
            program: program.into(),
            detail: "its input could not be connected".into(),
        });
    };
    let log_task = tokio::spawn(collect_log(stderr));
    let copied = async {
        tokio::io::copy(&mut input, &mut stdin).await?;
        stdin.shutdown().await
    }
    .await;
    drop(stdin);
    if copied.is_err() {
        let _ = child.start_kill();
    }
    let status = child
        .wait()
        .await
        .map_err(|e| GuestError::io(format!("waiting for {program}"), e))?;
    let log = log_task.await.unwrap_or_default();
    if let Err(e) = copied {
        return Err(GuestError::io(
            format!("reading backup {location} into {program}"),
            e,
        ));
    }
    if !status.success() {
        return Err(GuestError::Command {
            program: program.into(),
            detail: format!("{status}: {}", log.reason()),
        });
    }
    Ok(())
}

/// `mariadb-backup --prepare` of `target`, applying `incremental` if given.
async fn prepare(tool: &Path, target: &Path, incremental: Option<&Path>) -> Result<()> {
    let mut cmd = tokio::process::Command::new(tool);
    cmd.arg("--prepare")
        .arg(format!("--target-dir={}", target.display()));
    if let Some(inc) = incremental {
        cmd.arg(format!("--incremental-dir={}", inc.display()));
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .map_err(|e| GuestError::io("starting mariadb-backup --prepare", e))?;
    let log = match child.stderr.take() {
        Some(s) => collect_log(s).await,
        None => ToolLog::default(),
    };
    let status = child
        .wait()
        .await
        .map_err(|e| GuestError::io("waiting for mariadb-backup --prepare", e))?;
    if !status.success() || !log.completed_ok() {
        return Err(GuestError::Command {
            program: "mariadb-backup --prepare".into(),
            detail: format!("{status}: {}", log.reason()),
        });
    }
    Ok(())
}

/// Removes everything inside `dir` (not `dir` itself).
fn empty_dir(dir: &Path) -> Result<()> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| GuestError::io(format!("reading {}", dir.display()), e))?;
    for entry in entries {
        let entry = entry.map_err(|e| GuestError::io(format!("reading {}", dir.display()), e))?;
        let path = entry.path();
        let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
        let r = if is_dir {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        r.map_err(|e| GuestError::io(format!("removing {}", path.display()), e))?;
    }
    Ok(())
}

/// `chown -R` to `owner` (when running as root), without following symbolic links.
fn chown_tree(dir: &Path, owner: &ServiceUser) -> Result<()> {
    if !owner.needs_switch() {
        return Ok(());
    }
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        let meta = std::fs::symlink_metadata(&p)
            .map_err(|e| GuestError::io(format!("reading {}", p.display()), e))?;
        if meta.file_type().is_symlink() {
            continue;
        }
        owner.chown(&p)?;
        if meta.is_dir() {
            for entry in std::fs::read_dir(&p)
                .map_err(|e| GuestError::io(format!("reading {}", p.display()), e))?
            {
                let entry =
                    entry.map_err(|e| GuestError::io(format!("reading {}", p.display()), e))?;
                stack.push(entry.path());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn backup_info_from_the_wire() {
        let v = json!({"id": "b1", "name": "nightly", "description": null, "instance_id": "i1",
            "backup_type": "full", "checksum": null, "parent": null, "datastore": "mariadb",
            "datastore_version": "10.11", "storage_driver": "swift", "swift_container": null,
            "swift_url": "file:///var/lib/trove/backups"});
        let info: BackupInfo = serde_json::from_value(v).unwrap();
        assert_eq!(info.container(), DEFAULT_CONTAINER);
        info.check().unwrap();
        let job = BackupJob::from_info(&info).unwrap();
        assert_eq!(job.metadata["datastore_version"], "10.11");
        let mut inc = info.clone();
        inc.backup_type = "incremental".into();
        inc.parent = Some(ParentInfo {
            location: "file:///x/c/p".into(),
            checksum: None,
        });
        inc.check().unwrap();
        assert_eq!(
            BackupJob::from_info(&inc).unwrap().parent.unwrap().location,
            "file:///x/c/p"
        );
        inc.parent = None;
        assert!(inc.check().unwrap_err().to_string().contains("parent"));
        let mut odd = info.clone();
        odd.backup_type = "differential".into();
        assert!(odd.check().is_err());
        let mut swift = info.clone();
        swift.swift_url = Some("https://swift.example/v1/AUTH_t".into());
        let e = BackupJob::from_info(&swift).unwrap_err();
        assert!(e.to_string().contains("token"), "{e}");
        let job = with_auth_token_sync(Some("tok".into()), || BackupJob::from_info(&swift));
        assert!(format!("{:?}", job.unwrap().store).contains("SwiftStore"));
        let null_type: BackupInfo =
            serde_json::from_value(json!({"id": "b2", "backup_type": null})).unwrap();
        assert_eq!(null_type.backup_type, "full");
        let mut bad = info;
        bad.id = "../x".into();
        assert!(bad.check().is_err());
    }

    #[test]
    fn restore_info_from_the_wire() {
        let r = RestoreInfo::from_value(
            json!({"id": "b1", "location": "file:///srv/b/c/b1.xbstream.zst",
            "type": "mariabackup", "checksum": "abc"}),
        )
        .unwrap();
        assert_eq!(r.checksum.as_deref(), Some("abc"));
        let e = RestoreInfo::from_value(json!({"id": "b1", "location": "swift://x"})).unwrap_err();
        assert!(e.starts_with("restoring a backup"), "{e}");
        let swift = json!({"id": "b1", "location": "https://s/v1/AUTH_p/c/b1.xbstream.zst"});
        let e = RestoreInfo::from_value(swift.clone()).unwrap_err();
        assert!(e.contains("token"), "{e}");
        with_auth_token_sync(Some("tok".into()), || RestoreInfo::from_value(swift)).unwrap();
    }

    #[test]
    fn tool_log_outcome() {
        let mut log = ToolLog::default();
        log.tail.push_back("[00] 2024-01-01 completed OK!".into());
        assert!(log.completed_ok());
        log.tail
            .push_back("[ERROR] mariadb-backup: failed to connect".into());
        log.errors
            .push("[ERROR] mariadb-backup: failed to connect".into());
        assert!(!log.completed_ok());
        assert!(log.reason().contains("failed to connect"));
        assert_eq!(
            strip_log_prefix("[00] 2026-11-26 17:59:43 Failed to connect: Access denied"),
            "Failed to connect: Access denied"
        );
        assert_eq!(strip_log_prefix("plain line"), "plain line");
    }
}
