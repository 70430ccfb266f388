//! PostgreSQL backups (full and incremental) and their restore in `prepare`.
//!
//! ```text
//!  full:        pg_basebackup -D - -Ft -X fetch -c fast --label=<id> (postgres over the socket)
//!                 stdout (a tar of PGDATA with the WAL from the backup's start to its end,
//!                 and pg_basebackup's backup_manifest) ──> zstd ──> put(<id>.tar.zst)
//!               a temporary replication slot keeps the WAL the backup fetches at its end
//!  incremental: pg_backup_start(<id>, fast) + pg_backup_stop(wait for archive), then
//!               tar of the archived WAL segments from the parent's stop segment to this
//!               stop segment (checked contiguous) ──> zstd ──> put(<id>.tar.zst)
//!  metadata:    datastore, datastore_version, compression, label, start_segment,
//!               start_wal_file, stop_segment, stop_wal_file, checkpoint_location, timeline,
//!               system_identifier; incrementals parent_location and parent_checksum
//! ```
//!
//! WAL archiving: the instance's configuration has `archive_mode = on` with an
//! `archive_command` copying each finished segment into `<mount>/data/wal_archive` (see
//! [`archive_command`]). An incremental backup is the WAL its parent's restore needs to reach
//! the incremental's stop point.
//!
//! Archive clean-up (see [`clean_wal_archive`]): when a full backup completes, the archive
//! drops every segment (and backup history file) before that backup's start segment, as
//! `pg_archivecleanup` would, and records the clean-up point. The archive thus holds the WAL
//! since the newest full backup: that backup, and incrementals on it or on later backups,
//! need nothing older (a full backup carries its own WAL). An incremental whose parent
//! ended before the clean-up point is refused with an error naming the full backup to build
//! on instead.
//!
//! Restore (server stopped): the chain is read parent-first from the objects' metadata and
//! every object's checksum is checked against the one its child (or the backup row) records
//! before any byte is used. The full backup is extracted into an empty PGDATA and checked
//! with `pg_verifybackup` against its manifest; each incremental's WAL goes into
//! `<mount>/data/restore_wal`. The server then starts in archive recovery (`recovery.signal`,
//! `restore_command` reading that directory), replays everything and promotes itself; the
//! restore succeeds only if the replay reached the last backup's stop position (a missing
//! segment would otherwise end the recovery early without a word).

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Connection};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use trove_backup::compress::{zstd_compress, zstd_decompress, ZSTD};
use trove_backup::{Metadata, StoredObject, META_COMPRESSION};

use crate::backup::{
    check_checksum, find_program, restore_chain, store_for_location, BackupJob, ChainLink,
    ParentInfo, RestoreInfo,
};
use crate::error::{GuestError, Result};
use crate::process::ServiceUser;

/// Suffix of PostgreSQL backup objects: a tar compressed with zstd.
pub const PG_SUFFIX: &str = "tar.zst";

/// The superuser the tools connect as.
const SUPERUSER: &str = "postgres";

/// How long an incremental backup waits for the archiver to take its WAL.
const ARCHIVE_WAIT: Duration = Duration::from_secs(600);

/// How long the WAL archive may take to receive a backup's history file.
const HISTORY_WAIT: Duration = Duration::from_secs(60);

/// Where a PostgreSQL instance's files are, for backup and restore.
#[derive(Debug, Clone)]
pub struct PgBackupPaths {
    /// Directory with `pg_basebackup`, `pg_verifybackup`.
    pub bin_dir: PathBuf,
    /// PGDATA.
    pub pgdata: PathBuf,
    /// The WAL archive (`archive_command` copies segments there).
    pub wal_archive: PathBuf,
    /// Where a restore puts the WAL of incremental backups for `restore_command`.
    pub restore_wal: PathBuf,
    /// Configuration file holding the restore's recovery settings (in the include dir).
    pub restore_conf: PathBuf,
    /// The server's unix socket directory.
    pub socket_dir: PathBuf,
    /// The server's port.
    pub port: u16,
    /// The service account owning the files.
    pub owner: ServiceUser,
}

impl PgBackupPaths {
    fn options(&self) -> PgConnectOptions {
        PgConnectOptions::new()
            .host(&self.socket_dir.to_string_lossy())
            .port(self.port)
            .username(SUPERUSER)
            .database(SUPERUSER)
            .disable_statement_logging()
    }

    async fn connect(&self) -> Result<PgConnection> {
        Ok(PgConnection::connect_with(&self.options()).await?)
    }

    fn tool(&self, name: &str) -> Result<PathBuf> {
        let p = self.bin_dir.join(name);
        if p.is_file() {
            return Ok(p);
        }
        find_program(name).ok_or_else(|| GuestError::Command {
            program: name.into(),
            detail: format!("{name} is not installed on this guest (package postgresql)"),
        })
    }
}

/// The `archive_command` copying a finished WAL segment into `dir`: copied under a temporary
/// name, flushed, then renamed, so the archive never holds a partial segment; a segment
/// already there (archived before a crash) is accepted only when identical.
pub fn archive_command(dir: &Path) -> String {
    let d = dir.to_string_lossy().replace('\'', "'\\''");
    format!(
        "f='{d}/%f'; if [ -f \"$f\" ]; then cmp -s '%p' \"$f\"; \
         else cp '%p' \"$f.tmp\" && sync \"$f.tmp\" && mv \"$f.tmp\" \"$f\"; fi"
    )
}

/// The `pg_hba.conf` line the backup tool needs (replication over the socket).
pub const HBA_REPLICATION: &str = "local   replication   postgres        trust";

/// Streams a hot backup of the running server into `job`'s store: a base backup, or with a
/// parent the WAL since the parent. A failure leaves no object behind.
pub async fn pg_backup(paths: &PgBackupPaths, job: &BackupJob) -> Result<StoredObject> {
    let mut conn = paths.connect().await?;
    let mut metadata = job.metadata.clone();
    metadata.insert(META_COMPRESSION.into(), ZSTD.into());
    let sysid: i64 = sqlx::query_scalar("SELECT system_identifier FROM pg_control_system()")
        .fetch_one(&mut conn)
        .await?;
    metadata.insert("system_identifier".into(), sysid.to_string());
    let archive_mode: String = sqlx::query_scalar("SELECT current_setting('archive_mode')")
        .fetch_one(&mut conn)
        .await?;
    let archiving = archive_mode == "on" || archive_mode == "always";
    let r = match &job.parent {
        None => {
            let r = full_backup(paths, job, &mut conn, archiving, metadata).await;
            if let Ok((_, points)) = &r {
                if let Some(start) = points.start_wal_file.as_deref() {
                    match clean_wal_archive(&paths.wal_archive, start, &job.id) {
                        Ok(n) => tracing::info!(
                            removed = n,
                            keep_from = start,
                            "WAL archive cleaned up to the new full backup's start"
                        ),
                        // The backup itself is fine; the archive is cleaned next time.
                        Err(e) => tracing::warn!(error = %e, "cleaning up the WAL archive failed"),
                    }
                }
            }
            r.map(|(stored, _)| stored)
        }
        Some(parent) => {
            if !archiving {
                Err(GuestError::InvalidValue(
                    "WAL archiving is off on this instance (archive_mode); an incremental backup needs it: take a full backup".into(),
                ))
            } else {
                incremental_backup(paths, job, parent, &mut conn, sysid, metadata).await
            }
        }
    };
    let _ = conn.close().await;
    r
}

/// What a backup history file (`<wal>.<offset>.backup`) or `pg_basebackup -v` tells.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BackupPoints {
    /// START WAL LOCATION.
    pub start_lsn: Option<String>,
    /// Its segment file.
    pub start_wal_file: Option<String>,
    /// STOP WAL LOCATION.
    pub stop_lsn: Option<String>,
    /// Its segment file.
    pub stop_wal_file: Option<String>,
    /// CHECKPOINT LOCATION.
    pub checkpoint: Option<String>,
    /// LABEL.
    pub label: Option<String>,
    /// START TIMELINE.
    pub timeline: Option<String>,
}

impl BackupPoints {
    /// Parses a backup history file.
    pub fn parse_history(text: &str) -> Self {
        let mut p = BackupPoints::default();
        let loc = |rest: &str| -> (Option<String>, Option<String>) {
            let mut it = rest.splitn(2, " (file ");
            let lsn = it.next().map(|s| s.trim().to_owned());
            let file = it.next().map(|s| s.trim_end_matches(')').trim().to_owned());
            (lsn, file)
        };
        for line in text.lines() {
            if let Some(r) = line.strip_prefix("START WAL LOCATION: ") {
                (p.start_lsn, p.start_wal_file) = loc(r);
            } else if let Some(r) = line.strip_prefix("STOP WAL LOCATION: ") {
                (p.stop_lsn, p.stop_wal_file) = loc(r);
            } else if let Some(r) = line.strip_prefix("CHECKPOINT LOCATION: ") {
                p.checkpoint = Some(r.trim().to_owned());
            } else if let Some(r) = line.strip_prefix("LABEL: ") {
                p.label = Some(r.trim().to_owned());
            } else if let Some(r) = line.strip_prefix("START TIMELINE: ") {
                p.timeline = Some(r.trim().to_owned());
            }
        }
        p
    }

    fn record(&self, metadata: &mut Metadata) {
        for (k, v) in [
            ("start_segment", &self.start_lsn),
            ("start_wal_file", &self.start_wal_file),
            ("stop_segment", &self.stop_lsn),
            ("stop_wal_file", &self.stop_wal_file),
            ("checkpoint_location", &self.checkpoint),
            ("label", &self.label),
            ("timeline", &self.timeline),
        ] {
            if let Some(v) = v.as_ref().filter(|v| !v.is_empty()) {
                metadata.insert(k.into(), v.clone());
            }
        }
    }
}

/// Parses a `pg_lsn` text (`X/Y`).
pub fn parse_lsn(s: &str) -> Option<u64> {
    let (hi, lo) = s.trim().split_once('/')?;
    Some((u64::from_str_radix(hi, 16).ok()? << 32) | u64::from_str_radix(lo, 16).ok()?)
}

/// The backup history file of the backup labelled `label` in the archive, once there.
async fn wait_history(archive: &Path, label: &str, within: Duration) -> Option<BackupPoints> {
    let deadline = Instant::now() + within;
    loop {
        if let Ok(rd) = std::fs::read_dir(archive) {
            let mut names: Vec<String> = rd
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".backup") && is_segment_name(&n[..n.len().min(24)]))
                .collect();
            names.sort_unstable_by(|a, b| b.cmp(a));
            for n in names {
                if let Ok(text) = std::fs::read_to_string(archive.join(&n)) {
                    let p = BackupPoints::parse_history(&text);
                    if p.label.as_deref() == Some(label) {
                        return Some(p);
                    }
                }
            }
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The last lines of a tool's output, and what they tell.
#[derive(Debug, Default)]
struct ToolLog {
    tail: VecDeque<String>,
    errors: Vec<String>,
    start_lsn: Option<String>,
    timeline: Option<String>,
    end_lsn: Option<String>,
}

impl ToolLog {
    fn reason(&self) -> String {
        let src: Vec<&str> = if self.errors.is_empty() {
            self.tail.iter().map(String::as_str).collect()
        } else {
            self.errors.iter().map(String::as_str).collect()
        };
        let n = src.len();
        src[n.saturating_sub(3)..].join(" | ")
    }
}

async fn collect_log(stderr: impl tokio::io::AsyncRead + Unpin) -> ToolLog {
    let mut log = ToolLog::default();
    let mut lines = tokio::io::BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(rest) = line.split("write-ahead log start point: ").nth(1) {
            let mut it = rest.split(" on timeline ");
            log.start_lsn = it.next().map(|s| s.trim().to_owned());
            log.timeline = it.next().map(|s| s.trim().to_owned());
        }
        if let Some(rest) = line.split("write-ahead log end point: ").nth(1) {
            log.end_lsn = Some(rest.trim().to_owned());
        }
        let lower = line.to_ascii_lowercase();
        if ["error", "fatal", "failed", "denied", "could not"]
            .iter()
            .any(|w| lower.contains(w))
        {
            if log.errors.len() == 20 {
                log.errors.remove(0);
            }
            log.errors.push(line.clone());
        }
        if log.tail.len() == 20 {
            log.tail.pop_front();
        }
        log.tail.push_back(line);
    }
    log
}

/// Streams `child`'s stdout through zstd into the store as `object`, then checks the
/// child's exit. A failure removes whatever was stored.
async fn stream_into_store(
    program: &str,
    mut child: tokio::process::Child,
    job: &BackupJob,
    object: &str,
    metadata: &Metadata,
) -> Result<(StoredObject, ToolLog)> {
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(GuestError::Command {
            program: program.into(),
            detail: "its output could not be captured".into(),
        });
    };
    let log_task = tokio::spawn(collect_log(stderr));
    let mut compressed = zstd_compress(stdout);
    let put = job
        .store
        .put(&job.container, object, &mut compressed, metadata)
        .await;
    drop(compressed);
    if put.is_err() {
        let _ = child.start_kill();
    }
    let status = child
        .wait()
        .await
        .map_err(|e| GuestError::io(format!("waiting for {program}"), e))?;
    let log = log_task.await.unwrap_or_default();
    match put {
        Ok(stored) if status.success() => Ok((stored, log)),
        Ok(stored) => {
            remove_quietly(job, &stored.location).await;
            Err(GuestError::Command {
                program: program.into(),
                detail: format!("{status}: {}", log.reason()),
            })
        }
        Err(e) if !status.success() => Err(GuestError::Command {
            program: program.into(),
            detail: format!("{status}: {} (storing: {e})", log.reason()),
        }),
        Err(e) => Err(e.into()),
    }
}

async fn remove_quietly(job: &BackupJob, location: &str) {
    if let Err(e) = job.store.delete(location).await {
        tracing::warn!(error = %e, location, "removing the object of a failed backup failed");
    }
}

/// A name for the temporary replication slot of backup `id`.
fn slot_name(id: &str) -> String {
    let tail: String = id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .take(40)
        .collect();
    format!("trove_backup_{tail}")
}

async fn full_backup(
    paths: &PgBackupPaths,
    job: &BackupJob,
    conn: &mut PgConnection,
    archiving: bool,
    mut metadata: Metadata,
) -> Result<(StoredObject, BackupPoints)> {
    let tool = paths.tool("pg_basebackup")?;
    let object = format!("{}.{PG_SUFFIX}", job.id);
    // The WAL of the backup is fetched at its end: a temporary slot (gone with this
    // session) keeps the server from recycling it meanwhile, however long the copy takes.
    if let Err(e) = sqlx::query("SELECT pg_create_physical_replication_slot($1, true, true)")
        .bind(slot_name(&job.id))
        .execute(&mut *conn)
        .await
    {
        tracing::warn!(error = %e, "no replication slot for the backup; the WAL it needs is kept only by the server's own rules");
    }
    let mut cmd = tokio::process::Command::new(&tool);
    cmd.arg("-h")
        .arg(&paths.socket_dir)
        .arg("-p")
        .arg(paths.port.to_string())
        .args(["-U", SUPERUSER, "-w", "-D", "-", "-Ft", "-X", "fetch"])
        .args(["-c", "fast", "-v"])
        .arg(format!("--label={}", job.id))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    paths.owner.apply(&mut cmd);
    let child = cmd
        .spawn()
        .map_err(|e| GuestError::io("starting pg_basebackup", e))?;
    let (stored, log) = stream_into_store("pg_basebackup", child, job, &object, &metadata).await?;
    // Positions: the history file the archive receives holds them all; without archiving,
    // what the tool printed.
    let points = if archiving {
        wait_history(&paths.wal_archive, &job.id, HISTORY_WAIT).await
    } else {
        None
    };
    let points = match points {
        Some(p) => p,
        None => {
            let mut p = BackupPoints {
                start_lsn: log.start_lsn.clone(),
                stop_lsn: log.end_lsn.clone(),
                timeline: log.timeline.clone(),
                label: Some(job.id.clone()),
                ..Default::default()
            };
            for (lsn, file) in [
                (&p.start_lsn, &mut p.start_wal_file),
                (&p.stop_lsn, &mut p.stop_wal_file),
            ] {
                if let Some(l) = lsn {
                    *file = sqlx::query_scalar("SELECT pg_walfile_name($1::text::pg_lsn)")
                        .bind(l)
                        .fetch_one(&mut *conn)
                        .await
                        .ok();
                }
            }
            p
        }
    };
    if points.stop_lsn.is_none() || points.start_lsn.is_none() {
        remove_quietly(job, &stored.location).await;
        return Err(GuestError::Command {
            program: "pg_basebackup".into(),
            detail: format!("the backup's WAL positions are unknown: {}", log.reason()),
        });
    }
    points.record(&mut metadata);
    if let Err(e) = job.store.set_metadata(&stored.location, &metadata).await {
        remove_quietly(job, &stored.location).await;
        return Err(e.into());
    }
    Ok((stored, points))
}

/// The file in the WAL archive recording its last clean-up: `<start segment> <backup id>`
/// of the full backup the archive was cleaned up for.
pub const CLEANUP_MARK: &str = "trove_cleanup_point";

/// Whether `name` is an archived WAL file a clean-up may remove: a segment, a partial
/// segment or a backup history file (`<segment>.<offset>.backup`). Timeline history files
/// (`<tli>.history`) and anything else stay.
fn cleanable(name: &str) -> Option<&str> {
    let seg = name.get(..24).filter(|s| is_segment_name(s))?;
    let rest = &name[24..];
    let history = rest
        .strip_prefix('.')
        .and_then(|r| r.strip_suffix(".backup"))
        .is_some_and(|off| off.len() == 8 && off.bytes().all(|b| b.is_ascii_hexdigit()));
    (rest.is_empty() || rest == ".partial" || history).then_some(seg)
}

/// Removes from `archive` every WAL segment, partial segment and backup history file
/// logically before segment `keep_from` (the start segment of full backup `backup_id`,
/// just completed), whatever its timeline, as `pg_archivecleanup` does; then records the
/// point in [`CLEANUP_MARK`]. Returns how many files were removed. Nothing at or after
/// `keep_from` is touched, nor files being archived (`.tmp`).
pub fn clean_wal_archive(archive: &Path, keep_from: &str, backup_id: &str) -> Result<usize> {
    if !is_segment_name(keep_from) {
        return Err(GuestError::InvalidValue(format!(
            "'{keep_from}' is not a WAL segment name"
        )));
    }
    let entries = match std::fs::read_dir(archive) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(GuestError::io(format!("reading {}", archive.display()), e)),
    };
    let mut removed = 0;
    for entry in entries {
        let entry =
            entry.map_err(|e| GuestError::io(format!("reading {}", archive.display()), e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        // The timeline (the first 8 digits) does not order segments; the position does.
        if cleanable(&name).is_some_and(|seg| seg[8..] < keep_from[8..]) {
            match std::fs::remove_file(entry.path()) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(GuestError::io(
                        format!("removing {}", entry.path().display()),
                        e,
                    ))
                }
            }
        }
    }
    let mark = archive.join(CLEANUP_MARK);
    let tmp = archive.join(format!("{CLEANUP_MARK}.tmp"));
    std::fs::write(&tmp, format!("{keep_from} {backup_id}\n"))
        .and_then(|()| std::fs::rename(&tmp, &mark))
        .map_err(|e| GuestError::io(format!("writing {}", mark.display()), e))?;
    Ok(removed)
}

/// The last clean-up point of `archive`: `(start segment, full backup id)`.
pub fn cleanup_point(archive: &Path) -> Option<(String, String)> {
    let text = std::fs::read_to_string(archive.join(CLEANUP_MARK)).ok()?;
    let mut it = text.split_whitespace();
    let seg = it.next().filter(|s| is_segment_name(s))?.to_owned();
    Some((seg, it.next().unwrap_or_default().to_owned()))
}

/// Refuses an incremental backup whose parent ended (`parent_stop`) before the archive's
/// clean-up point: the WAL since that parent left the archive when a newer full backup
/// completed.
fn check_parent_after_cleanup(archive: &Path, parent_stop: &str, parent: &str) -> Result<()> {
    match cleanup_point(archive) {
        Some((keep_from, full)) if parent_stop[8..] < keep_from[8..] => {
            Err(GuestError::InvalidValue(format!(
                "the parent backup {parent} is older than the newest full backup {full}: the WAL \
                 since the parent (from segment {parent_stop}) was removed from the archive when \
                 that full backup completed; take the incremental backup on backup {full} or a \
                 later one, or take a full backup"
            )))
        }
        _ => Ok(()),
    }
}

/// A WAL segment file name: 24 upper-case hex digits.
pub fn is_segment_name(name: &str) -> bool {
    name.len() == 24
        && name
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
}

/// `(timeline, segment number)` of a segment file name, for `segment_size`-byte segments.
pub fn segment_number(name: &str, segment_size: u64) -> Option<(u32, u64)> {
    if !is_segment_name(name) || segment_size == 0 {
        return None;
    }
    let tli = u32::from_str_radix(&name[0..8], 16).ok()?;
    let log = u64::from_str_radix(&name[8..16], 16).ok()?;
    let seg = u64::from_str_radix(&name[16..24], 16).ok()?;
    let per_log = 0x1_0000_0000u64 / segment_size;
    Some((tli, log * per_log + seg))
}

/// The archived segments from `first` to `last` (inclusive), in order; an error names the
/// first one missing.
pub fn wal_range(
    archive: &Path,
    first: &str,
    last: &str,
    segment_size: u64,
) -> Result<Vec<String>> {
    let bad = |n: &str| GuestError::InvalidValue(format!("'{n}' is not a WAL segment name"));
    let (tli_a, a) = segment_number(first, segment_size).ok_or_else(|| bad(first))?;
    let (tli_b, b) = segment_number(last, segment_size).ok_or_else(|| bad(last))?;
    if tli_a != tli_b {
        return Err(GuestError::InvalidValue(format!(
            "the server changed timeline since the parent backup ({first} -> {last}): take a full backup"
        )));
    }
    if b < a {
        return Err(GuestError::InvalidValue(format!(
            "the parent backup ends at {first}, after this backup's end {last}: it is not this server's parent"
        )));
    }
    let per_log = 0x1_0000_0000u64 / segment_size;
    let mut out = Vec::with_capacity((b - a + 1) as usize);
    for n in a..=b {
        let name = format!("{tli_a:08X}{:08X}{:08X}", n / per_log, n % per_log);
        if !archive.join(&name).is_file() {
            return Err(GuestError::InvalidValue(format!(
                "WAL segment {name} since the parent backup is not in the archive any more: take a full backup"
            )));
        }
        out.push(name);
    }
    Ok(out)
}

/// The parent's metadata; the parent must exist and carry the checksum `backup_info` names.
async fn parent_head(parent: &ParentInfo) -> Result<Metadata> {
    let store = store_for_location(&parent.location)?;
    let head = store.head(&parent.location).await?;
    check_checksum(&parent.location, parent.checksum.as_deref(), &head.checksum)?;
    Ok(head.metadata)
}

async fn incremental_backup(
    paths: &PgBackupPaths,
    job: &BackupJob,
    parent: &ParentInfo,
    conn: &mut PgConnection,
    sysid: i64,
    mut metadata: Metadata,
) -> Result<StoredObject> {
    let tar = find_program("tar").ok_or_else(|| GuestError::Command {
        program: "tar".into(),
        detail: "tar is not installed on this guest".into(),
    })?;
    let parent_meta = parent_head(parent).await?;
    if let Some(p) = parent_meta.get("system_identifier") {
        if *p != sysid.to_string() {
            return Err(GuestError::InvalidValue(format!(
                "the parent backup {} is of another database cluster (system identifier {p}, this one {sysid})",
                parent.location
            )));
        }
    }
    let Some(parent_stop) = parent_meta
        .get("stop_wal_file")
        .filter(|f| is_segment_name(f))
        .cloned()
    else {
        return Err(GuestError::InvalidValue(format!(
            "the parent backup {} records no stop WAL file; take a full backup",
            parent.location
        )));
    };
    check_parent_after_cleanup(&paths.wal_archive, &parent_stop, &parent.location)?;
    metadata.insert("parent_location".into(), parent.location.clone());
    if let Some(c) = &parent.checksum {
        metadata.insert("parent_checksum".into(), c.clone());
    }
    let segment_size: i64 = sqlx::query_scalar(
        "SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size'",
    )
    .fetch_one(&mut *conn)
    .await?;
    // A stop point whose WAL is archived: pg_backup_stop waits for the archiver, and the
    // history file it writes names the positions.
    sqlx::query("SELECT pg_backup_start($1, true)")
        .bind(&job.id)
        .execute(&mut *conn)
        .await?;
    // pg_backup_stop waits for the archiver as long as it takes; a failing archive_command
    // must end the backup, not hold it BUILDING for ever.
    sqlx::query(&format!(
        "SET statement_timeout = {}",
        ARCHIVE_WAIT.as_millis()
    ))
    .execute(&mut *conn)
    .await?;
    let stopped: std::result::Result<String, sqlx::Error> =
        sqlx::query_scalar("SELECT lsn::text FROM pg_backup_stop(true)")
            .fetch_one(&mut *conn)
            .await;
    let stop_lsn = stopped.map_err(|e| GuestError::Command {
        program: "pg_backup_stop".into(),
        detail: format!(
            "the WAL was not archived within {} s (archive_command failing?): {e}",
            ARCHIVE_WAIT.as_secs()
        ),
    })?;
    sqlx::query("RESET statement_timeout")
        .execute(&mut *conn)
        .await?;
    let points = wait_history(&paths.wal_archive, &job.id, HISTORY_WAIT)
        .await
        .ok_or_else(|| GuestError::Command {
            program: "pg_backup_stop".into(),
            detail: format!(
                "the backup history file of {} did not reach the WAL archive {}",
                job.id,
                paths.wal_archive.display()
            ),
        })?;
    let stop_file = points
        .stop_wal_file
        .clone()
        .filter(|f| is_segment_name(f))
        .ok_or_else(|| {
            GuestError::InvalidValue("the backup history file names no stop WAL file".into())
        })?;
    let segments = wal_range(
        &paths.wal_archive,
        &parent_stop,
        &stop_file,
        segment_size as u64,
    )?;
    tracing::info!(
        segments = segments.len(),
        from = %parent_stop,
        to = %stop_file,
        stop_lsn = %stop_lsn,
        "archiving the WAL since the parent backup"
    );
    points.record(&mut metadata);
    let object = format!("{}.{PG_SUFFIX}", job.id);
    let mut cmd = tokio::process::Command::new(&tar);
    cmd.arg("-c")
        .arg("-f")
        .arg("-")
        .arg("-C")
        .arg(&paths.wal_archive)
        .arg("--null")
        .arg("-T")
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|e| GuestError::io("starting tar", e))?;
    let Some(mut stdin) = child.stdin.take() else {
        return Err(GuestError::Command {
            program: "tar".into(),
            detail: "its input could not be connected".into(),
        });
    };
    let mut list = Vec::new();
    for s in &segments {
        list.extend_from_slice(s.as_bytes());
        list.push(0);
    }
    let feed = tokio::spawn(async move {
        let r = stdin.write_all(&list).await;
        let _ = stdin.shutdown().await;
        r
    });
    let r = stream_into_store("tar", child, job, &object, &metadata).await;
    if let Ok(Err(e)) = feed.await {
        if let Ok((stored, _)) = &r {
            remove_quietly(job, &stored.location).await;
        }
        return Err(GuestError::io("listing the WAL segments for tar", e));
    }
    Ok(r?.0)
}

/// Restores the backup (chain) `info` names into `paths.pgdata` and prepares archive
/// recovery; the server must be stopped. Returns the position the recovery must reach,
/// which [`finish_recovery`] checks once the server runs.
pub async fn pg_restore(paths: &PgBackupPaths, info: &RestoreInfo) -> Result<Option<u64>> {
    let tar = find_program("tar").ok_or_else(|| GuestError::Command {
        program: "tar".into(),
        detail: "tar is not installed on this guest".into(),
    })?;
    let verify = paths.tool("pg_verifybackup")?;
    let chain = restore_chain(info, Some("postgresql")).await?;
    tracing::info!(location = %info.location, objects = chain.len(), "restoring backup");
    if chain
        .first()
        .is_some_and(|c| c.metadata.contains_key("parent_location"))
    {
        return Err(GuestError::InvalidValue(
            "the restore chain does not start with a full backup".into(),
        ));
    }
    for dir in [&paths.pgdata, &paths.wal_archive, &paths.restore_wal] {
        fresh_dir(dir, &paths.owner)?;
    }
    for (i, link) in chain.iter().enumerate() {
        let into = if i == 0 {
            &paths.pgdata
        } else {
            &paths.restore_wal
        };
        extract(&tar, link, into, &paths.owner).await?;
        if i == 0 {
            if !paths.pgdata.join("PG_VERSION").is_file()
                || !paths.pgdata.join("backup_label").is_file()
            {
                return Err(GuestError::InvalidValue(format!(
                    "backup {} is not a PostgreSQL base backup (no PG_VERSION or backup_label)",
                    link.location
                )));
            }
            let mut cmd = tokio::process::Command::new(&verify);
            cmd.arg(&paths.pgdata).kill_on_drop(true);
            paths.owner.apply(&mut cmd);
            crate::process::run_checked(cmd, "pg_verifybackup").await?;
        }
    }
    let target = chain
        .last()
        .and_then(|l| l.metadata.get("stop_segment"))
        .and_then(|s| parse_lsn(s));
    // Archive recovery: replay the base backup's WAL, then every incremental's, then
    // promote (a new timeline: the new instance's WAL never mixes with the source's).
    let signal = paths.pgdata.join("recovery.signal");
    crate::manager::write_file(&signal, b"", 0o600)?;
    paths.owner.chown(&signal)?;
    let restore_dir = paths.restore_wal.to_string_lossy().replace('\'', "'\\''");
    let command = format!("cp '{restore_dir}/%f' '%p'");
    let conf = format!(
        "# Recovery of a restored backup (removed once the recovery ends).\n\
         restore_command = '{}'\n\
         recovery_target_timeline = 'latest'\n",
        command.replace('\'', "''")
    );
    crate::manager::write_file(&paths.restore_conf, conf.as_bytes(), 0o644)?;
    Ok(target)
}

/// Waits until the started server has finished the recovery of a restore and checks it
/// reached `target` (the last backup's stop position); then removes the recovery settings.
pub async fn finish_recovery(
    paths: &PgBackupPaths,
    target: Option<u64>,
    within: Duration,
) -> Result<()> {
    let deadline = Instant::now() + within;
    let mut conn = paths.connect().await?;
    loop {
        let in_recovery: bool = sqlx::query_scalar("SELECT pg_is_in_recovery()")
            .fetch_one(&mut conn)
            .await?;
        if !in_recovery {
            break;
        }
        if Instant::now() >= deadline {
            return Err(GuestError::Timeout {
                wanted: "done recovering the restored backup",
                secs: within.as_secs(),
            });
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let replayed: Option<String> = sqlx::query_scalar("SELECT pg_last_wal_replay_lsn()::text")
        .fetch_one(&mut conn)
        .await?;
    if let (Some(target), Some(r)) = (target, replayed.as_deref().and_then(parse_lsn)) {
        if r < target {
            let _ = conn.close().await;
            return Err(GuestError::InvalidValue(format!(
                "the restored backup's WAL ends at {}, before the backup's stop position {:X}/{:X}: WAL is missing",
                replayed.unwrap_or_default(),
                target >> 32,
                target & 0xffff_ffff
            )));
        }
    }
    match std::fs::remove_file(&paths.restore_conf) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(GuestError::io("removing the recovery settings", e))
        }
        _ => {}
    }
    sqlx::query("SELECT pg_reload_conf()")
        .execute(&mut conn)
        .await?;
    let _ = conn.close().await;
    if paths.restore_wal.exists() {
        std::fs::remove_dir_all(&paths.restore_wal)
            .map_err(|e| GuestError::io(format!("removing {}", paths.restore_wal.display()), e))?;
    }
    tracing::info!(replayed = ?replayed, "restored backup recovered");
    Ok(())
}

/// Makes `dir` an empty directory (0700) owned by `owner`.
fn fresh_dir(dir: &Path, owner: &ServiceUser) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if dir.exists() {
        std::fs::remove_dir_all(dir)
            .map_err(|e| GuestError::io(format!("removing {}", dir.display()), e))?;
    }
    crate::manager::mkdir(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| GuestError::io(format!("securing {}", dir.display()), e))?;
    owner.chown(dir)
}

/// Streams one verified object through zstd into `tar -x` (as the service account) in `dir`.
async fn extract(tar: &Path, link: &ChainLink, dir: &Path, owner: &ServiceUser) -> Result<()> {
    let reader = link.store.get(&link.location, Some(&link.checksum)).await?;
    let mut cmd = tokio::process::Command::new(tar);
    cmd.arg("-x")
        .arg("-f")
        .arg("-")
        .arg("--no-same-owner")
        .arg("-C")
        .arg(dir);
    owner.apply(&mut cmd);
    crate::backup::feed_command(cmd, "tar", zstd_decompress(reader), &link.location).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_file_parsed() {
        let text = "START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\n\
            STOP WAL LOCATION: 0/2000100 (file 000000010000000000000002)\n\
            CHECKPOINT LOCATION: 0/2000060\nBACKUP METHOD: streamed\nBACKUP FROM: primary\n\
            START TIME: 2026-11-26 20:34:03 UTC\nLABEL: lab1\nSTART TIMELINE: 1\n";
        let p = BackupPoints::parse_history(text);
        assert_eq!(p.start_lsn.as_deref(), Some("0/2000028"));
        assert_eq!(p.stop_wal_file.as_deref(), Some("000000010000000000000002"));
        assert_eq!(p.checkpoint.as_deref(), Some("0/2000060"));
        assert_eq!(p.label.as_deref(), Some("lab1"));
        assert_eq!(p.timeline.as_deref(), Some("1"));
        let mut m = Metadata::new();
        p.record(&mut m);
        assert_eq!(m["stop_segment"], "0/2000100");
        assert_eq!(parse_lsn("1/2000100"), Some(0x1_0200_0100));
        assert_eq!(parse_lsn("x"), None);
    }

    #[test]
    fn wal_ranges_are_contiguous() {
        let dir = tempfile::tempdir().unwrap();
        let seg = 16 * 1024 * 1024;
        for n in [
            "0000000100000000000000FE",
            "0000000100000000000000FF",
            "000000010000000100000000",
        ] {
            std::fs::write(dir.path().join(n), b"").unwrap();
        }
        let r = wal_range(
            dir.path(),
            "0000000100000000000000FE",
            "000000010000000100000000",
            seg,
        )
        .unwrap();
        assert_eq!(r.len(), 3);
        let e = wal_range(
            dir.path(),
            "0000000100000000000000FE",
            "000000010000000100000001",
            seg,
        )
        .unwrap_err();
        assert!(e.to_string().contains("000000010000000100000001"), "{e}");
        assert!(wal_range(
            dir.path(),
            "000000020000000000000001",
            "000000010000000000000002",
            seg
        )
        .is_err());
        assert!(!is_segment_name("00000001000000000000000g"));
        assert!(archive_command(Path::new("/a b")).contains("f='/a b/%f'"));
    }

    #[test]
    fn archive_cleanup_keeps_the_newest_full_backup_and_after() {
        let dir = tempfile::tempdir().unwrap();
        let names = [
            "000000010000000000000003",
            "000000010000000000000004.00000028.backup",
            "000000010000000000000004",
            "000000020000000000000004.partial",
            "000000020000000000000005",
            "000000020000000000000006.00000060.backup",
            "000000020000000000000006",
            "000000010000000000000007",
            "000000020000000000000003.tmp",
            "00000002.history",
        ];
        for n in names {
            std::fs::write(dir.path().join(n), b"").unwrap();
        }
        assert_eq!(cleanup_point(dir.path()), None);
        let n = clean_wal_archive(dir.path(), "000000020000000000000006", "full-2").unwrap();
        assert_eq!(n, 5);
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "000000010000000000000007",
                "00000002.history",
                "000000020000000000000003.tmp",
                "000000020000000000000006",
                "000000020000000000000006.00000060.backup",
                CLEANUP_MARK,
            ]
        );
        assert_eq!(
            cleanup_point(dir.path()),
            Some(("000000020000000000000006".into(), "full-2".into()))
        );
        // Parents ending before the point are refused by name; others pass.
        let e = check_parent_after_cleanup(dir.path(), "000000020000000000000005", "file:///p")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("file:///p") && e.contains("full-2") && e.contains("take a full backup"),
            "{e}"
        );
        check_parent_after_cleanup(dir.path(), "000000020000000000000006", "p").unwrap();
        assert!(clean_wal_archive(dir.path(), "nonsense", "x").is_err());
        assert_eq!(
            clean_wal_archive(&dir.path().join("absent"), "000000020000000000000006", "x").unwrap(),
            0
        );
    }
}
