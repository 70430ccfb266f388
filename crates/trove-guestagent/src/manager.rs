//! The [`DatastoreManager`] trait: everything the guest's RPC methods need from a datastore,
//! plus the types shared by the implementations.
//!
//! The RPC layer (not in this module) decodes a guest method's arguments (see the method table
//! of the guest API), calls the matching trait method and encodes the result: for example
//! `list_databases` returns a [`Page`], which serializes as Trove's `[[schema dicts],
//! next_marker]`. A periodic task calls [`DatastoreManager::status`] once
//! [`DatastoreManager::is_prepared`] says so, and sends the description as the heartbeat.
//!
//! Every implementation follows the same pattern: validate the whole request first (so a
//! refused request changes nothing), plan the SQL statements as text with every name quoted by
//! [`crate::sql`], then apply them in order.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use rand::Rng;
use serde::{Deserialize, Serialize};
use trove_backup::StoredObject;

use crate::backup::{BackupJob, RestoreInfo};
use crate::error::{GuestError, Result};
use crate::models::{Database, User, UserAttributes, UserPassword};
use crate::process::ServiceUser;
use crate::status::ServiceStatus;
use crate::volume::{VolumeConfig, VolumeManager};

/// Configuration overrides (`configuration group` values): option name to JSON value.
pub type Overrides = serde_json::Map<String, serde_json::Value>;

/// Arguments of the `prepare` call that a datastore manager uses.
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct PrepareRequest {
    /// Flavor RAM in MB; sizes buffers in the rendered configuration.
    pub memory_mb: u64,
    /// Databases to create once the server is up.
    #[serde(default, deserialize_with = "null_as_default")]
    pub databases: Vec<Database>,
    /// Users to create (with their grants) once the server is up.
    #[serde(default, deserialize_with = "null_as_default")]
    pub users: Vec<User>,
    /// If set, root is enabled with this password at the end.
    #[serde(default)]
    pub root_password: Option<String>,
    /// User overrides from the instance's configuration group.
    #[serde(default, deserialize_with = "null_as_default")]
    pub overrides: Overrides,
    /// Rendered configuration file from the controller; a default from `memory_mb` if `None`.
    #[serde(default)]
    pub config_contents: Option<String>,
    /// Mount point named by the controller; informative: the volume is mounted at the
    /// manager's [`ManagerConfig::mount_point`], where the instance's layout and prepare
    /// markers are (a different value is logged).
    #[serde(default)]
    pub mount_point: Option<String>,
    /// Block device of the data volume (`/dev/vdb`, `/dev/loop7`). When set (and not empty),
    /// `prepare` formats it if it has no file system and mounts it at the mount point before
    /// anything is written there; `None` or empty uses the mount point as a plain directory.
    #[serde(default)]
    pub device_path: Option<String>,
    /// The backup to restore into the new instance (`backup_info` of `prepare`): the server
    /// starts from its data instead of an empty data directory.
    #[serde(default)]
    pub backup_info: Option<RestoreInfo>,
    /// Set when the new instance is a replica (`snapshot` of `prepare`): after the restore
    /// of `backup_info` (the source's replication snapshot) the server starts as a read-only
    /// replica of `snapshot.master` ([`DatastoreManager::attach_replica`]).
    #[serde(default)]
    pub snapshot: Option<ReplicaSnapshot>,
}

impl std::fmt::Debug for PrepareRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrepareRequest")
            .field("memory_mb", &self.memory_mb)
            .field("databases", &self.databases)
            .field("users", &self.users)
            .field(
                "root_password",
                &self.root_password.as_ref().map(|_| "<redacted>"),
            )
            .field("overrides", &self.overrides)
            .field(
                "config_contents",
                &self.config_contents.as_ref().map(|c| c.len()),
            )
            .field("mount_point", &self.mount_point)
            .field("device_path", &self.device_path)
            .field("backup_info", &self.backup_info)
            .field("snapshot", &self.snapshot.as_ref().map(|s| &s.master))
            .finish()
    }
}

/// Reads JSON `null` as the type's default (Trove sends `null` for absent lists and objects).
fn null_as_default<'de, D, T>(d: D) -> std::result::Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// Address of a replication source (`master` of Trove's replica context).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaSourceAddress {
    /// Host name or address replicas connect to.
    pub host: String,
    /// Port of the database server.
    pub port: u16,
}

/// Account replicas log in with to stream changes.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicationUser {
    /// User name (MariaDB: `slave_<8 hex>`; PostgreSQL: `replicator`).
    pub name: String,
    /// Its password.
    pub password: String,
}

impl std::fmt::Debug for ReplicationUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicationUser")
            .field("name", &self.name)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// `replica_conf` of a replica context.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ReplicaConf {
    /// Where replication starts (datastore-specific; `{}` when the replica reads it from
    /// the restored snapshot itself).
    #[serde(default)]
    pub log_position: serde_json::Value,
    /// The replication account.
    #[serde(default)]
    pub replication_user: Option<ReplicationUser>,
}

/// How a replica reaches and follows its source (`get_replica_context`, and the `master` and
/// `replica_conf` of a replication snapshot).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplicaContext {
    /// The source's address.
    pub master: ReplicaSourceAddress,
    /// Credentials and position.
    #[serde(default)]
    pub replica_conf: ReplicaConf,
}

/// The replication snapshot a source returns from `get_replication_snapshot` and a new
/// replica receives as `snapshot` in `prepare`. Unknown keys (`config`, `cert_container`,
/// `ssl_mode`, ...) are ignored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplicaSnapshot {
    /// `{"datastore_manager", "dataset_size", "volume_size", "snapshot_id"}`.
    #[serde(default)]
    pub dataset: serde_json::Value,
    /// Strategy name (`MariaDBGTIDReplication`, `PostgresqlReplicationStreaming`).
    #[serde(default)]
    pub replication_strategy: Option<String>,
    /// The source's address.
    pub master: ReplicaSourceAddress,
    /// Credentials and position.
    #[serde(default)]
    pub replica_conf: ReplicaConf,
}

impl ReplicaSnapshot {
    /// The context part of the snapshot.
    pub fn context(&self) -> ReplicaContext {
        ReplicaContext {
            master: self.master.clone(),
            replica_conf: self.replica_conf.clone(),
        }
    }
}

/// Where and how the instance's server runs. Fixed for the life of the agent.
#[derive(Debug, Clone)]
pub struct ManagerConfig {
    /// The instance's volume; everything of the server lives under it.
    pub mount_point: PathBuf,
    /// Directory of the prepare markers (Trove: `/opt/trove-guestagent`).
    pub state_dir: PathBuf,
    /// Address the server listens on for tenants.
    pub bind_address: IpAddr,
    /// TCP port for tenants (3306, 5432).
    pub port: u16,
    /// OS account the server runs as.
    pub service_user: ServiceUser,
    /// How long start and stop may take (`state_change_wait_time`).
    pub state_change_wait_time: Duration,
    /// Length of generated passwords (`default_password_length`).
    pub password_length: usize,
    /// How the data volume is formatted and mounted when `prepare` names a device.
    pub volume: VolumeConfig,
}

impl ManagerConfig {
    /// A configuration with Trove's defaults: markers in `<mount>/.guestagent`, 600 s state
    /// change wait, 36-character passwords.
    pub fn new(
        mount_point: impl Into<PathBuf>,
        bind_address: IpAddr,
        port: u16,
        service_user: ServiceUser,
    ) -> Self {
        let mount_point = mount_point.into();
        ManagerConfig {
            state_dir: mount_point.join(".guestagent"),
            mount_point,
            bind_address,
            port,
            service_user,
            state_change_wait_time: Duration::from_secs(600),
            password_length: 36,
            volume: VolumeConfig::default(),
        }
    }

    /// The block device `prepare` names, if it names one (`None` and `""` mean none).
    pub fn requested_device(request: &PrepareRequest) -> Option<&Path> {
        request
            .device_path
            .as_deref()
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .map(Path::new)
    }

    /// Formats (if needed) and mounts the data volume `prepare` names at
    /// [`ManagerConfig::mount_point`]; nothing when it names none. A `mount_point` in the
    /// request that differs is logged and not used: the manager's layout is fixed there.
    pub async fn mount_requested_volume(&self, request: &PrepareRequest) -> Result<()> {
        let Some(device) = Self::requested_device(request) else {
            return Ok(());
        };
        if let Some(asked) = request.mount_point.as_deref().filter(|m| !m.is_empty()) {
            if Path::new(asked) != self.mount_point {
                tracing::warn!(
                    requested = asked,
                    mount_point = %self.mount_point.display(),
                    "prepare names another mount point; mounting at the configured one, where the instance's files are"
                );
            }
        }
        VolumeManager::new(self.volume.clone())
            .prepare_volume(device, &self.mount_point)
            .await
    }

    /// Start marker path.
    pub fn prepare_start_marker(&self) -> PathBuf {
        self.state_dir.join(".guestagent.prepare.start")
    }

    /// End marker path: present once `prepare` has finished.
    pub fn prepare_end_marker(&self) -> PathBuf {
        self.state_dir.join(".guestagent.prepare.end")
    }

    /// Refuses when `prepare` already completed; otherwise writes the start marker.
    pub fn begin_install(&self) -> Result<()> {
        let end = self.prepare_end_marker();
        if end.exists() {
            return Err(GuestError::AlreadyPrepared(end.display().to_string()));
        }
        mkdir(&self.state_dir)?;
        write_file(
            &self.prepare_start_marker(),
            chrono::Utc::now().to_rfc3339().as_bytes(),
            0o600,
        )
    }

    /// Writes the end marker.
    pub fn end_install(&self) -> Result<()> {
        write_file(
            &self.prepare_end_marker(),
            chrono::Utc::now().to_rfc3339().as_bytes(),
            0o600,
        )
    }
}

/// One page of a listing; serializes as Trove's `[items, next_marker]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    /// The items of this page.
    pub items: Vec<T>,
    /// Marker for the next page, `None` on the last page.
    pub next_marker: Option<String>,
}

impl<T: Serialize> Serialize for Page<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        (&self.items, &self.next_marker).serialize(s)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Page<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let (items, next_marker) = <(Vec<T>, Option<String>)>::deserialize(d)?;
        Ok(Page { items, next_marker })
    }
}

/// Pages `items` by `key` as Trove's guest does: sort ascending by key; with a marker keep
/// the items after it (or from it, with `include_marker`); cut at `limit`; the next marker
/// is the key of the page's last item when more items follow.
pub fn paginate<T>(
    mut items: Vec<T>,
    key: impl Fn(&T) -> String,
    limit: Option<usize>,
    marker: Option<&str>,
    include_marker: bool,
) -> Page<T> {
    items.sort_by_key(|a| key(a));
    if let Some(m) = marker {
        items.retain(|i| {
            let k = key(i);
            if include_marker {
                k.as_str() >= m
            } else {
                k.as_str() > m
            }
        });
    }
    let next_marker = match limit {
        Some(l) if items.len() > l => {
            items.truncate(l);
            items.last().map(&key)
        }
        _ => None,
    };
    Page { items, next_marker }
}

/// Volume statistics in Trove's `get_filesystem_stats` shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FilesystemStats {
    /// Block size (bytes, `f_bsize`).
    pub block_size: u64,
    /// Blocks in the file system.
    pub total_blocks: u64,
    /// Free blocks.
    pub free_blocks: u64,
    /// Blocks available to unprivileged users.
    pub avail_blocks: u64,
    /// Size in GB, two decimals, at least 0.01 for a non-empty file system.
    pub total: f64,
    /// Free space in **bytes** (as Trove sends it).
    pub free: u64,
    /// Used space in GB, two decimals.
    pub used: f64,
    /// Datastore specific extras (`{}` for MariaDB; WAL sizes for PostgreSQL).
    pub mgr_extra_info: serde_json::Value,
}

/// Bytes to GB with two decimals; 0 stays 0, anything else is at least 0.01.
pub fn to_gb(bytes: u64) -> f64 {
    if bytes == 0 {
        return 0.0;
    }
    let gb = ((bytes as f64 / 1024f64.powi(3)) * 100.0).round() / 100.0;
    if gb == 0.0 {
        0.01
    } else {
        gb
    }
}

/// `statvfs` of `path` in Trove's shape (extras left empty).
pub fn filesystem_stats(path: &Path) -> Result<FilesystemStats> {
    let st = rustix::fs::statvfs(path)
        .map_err(|e| GuestError::io(format!("statvfs {}", path.display()), e.into()))?;
    let total_bytes = st.f_blocks * st.f_bsize;
    let free_bytes = st.f_bfree * st.f_bsize;
    Ok(FilesystemStats {
        block_size: st.f_bsize,
        total_blocks: st.f_blocks,
        free_blocks: st.f_bfree,
        avail_blocks: st.f_bavail,
        total: to_gb(total_bytes),
        free: free_bytes,
        used: to_gb(total_bytes.saturating_sub(free_bytes)),
        mgr_extra_info: serde_json::json!({}),
    })
}

/// A random password of `len` characters from `[A-Za-z0-9]`.
pub fn generate_password(len: usize) -> String {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    (0..len)
        .map(|_| CHARS[rng.gen_range(0..CHARS.len())] as char)
        .collect()
}

/// Creates a directory (and parents).
pub fn mkdir(path: &Path) -> Result<()> {
    std::fs::create_dir_all(path)
        .map_err(|e| GuestError::io(format!("creating {}", path.display()), e))
}

/// Writes a file with the given mode (set before any content is written).
pub fn write_file(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let ctx = || format!("writing {}", path.display());
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .map_err(|e| GuestError::io(ctx(), e))?;
    f.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(|e| GuestError::io(ctx(), e))?;
    f.write_all(contents).map_err(|e| GuestError::io(ctx(), e))
}

/// Checks override names and values before they reach a configuration file or `SET`:
/// names are `[A-Za-z0-9_.-]`, values are numbers, booleans or strings without line breaks.
pub fn check_overrides(overrides: &Overrides) -> Result<()> {
    for (k, v) in overrides {
        if k.is_empty()
            || !k
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        {
            return Err(GuestError::InvalidValue(format!(
                "'{k}' is not a valid configuration option name."
            )));
        }
        match v {
            serde_json::Value::Number(_) | serde_json::Value::Bool(_) => {}
            serde_json::Value::String(s) if !s.contains(['\n', '\r', '\0']) => {}
            _ => {
                return Err(GuestError::InvalidValue(format!(
                    "The value of '{k}' must be a number, a boolean or a single-line string."
                )))
            }
        }
    }
    Ok(())
}

/// What a datastore manager offers the guest's RPC layer. Object safe: the agent holds a
/// `Box<dyn DatastoreManager>` picked from the `datastore_manager` setting.
///
/// Names and hosts are validated by the implementation before anything is changed; reserved
/// names give [`GuestError::Reserved`].
#[async_trait]
pub trait DatastoreManager: Send + Sync {
    /// The manager's name as in `datastore_manager` (`mariadb`, `postgresql`).
    fn name(&self) -> &'static str;

    /// True once `prepare` has completed (the end marker exists).
    fn is_prepared(&self) -> bool;

    /// Initialises, configures and starts the server, secures it, writes the end marker, then
    /// creates the requested databases, users and root. Refused with
    /// [`GuestError::AlreadyPrepared`] (leaving the server untouched) once a previous
    /// `prepare` finished. A failure before the end marker leaves the status FAILED and may be
    /// retried; a failure in the steps after it is returned but the instance stays prepared
    /// (Trove only logs those).
    async fn prepare(&self, request: PrepareRequest) -> Result<()>;

    /// Starts the server if it is not running and waits until it answers queries.
    async fn start(&self) -> Result<()>;

    /// Stops the server on purpose (status becomes SHUTDOWN).
    async fn stop(&self) -> Result<()>;

    /// Stops then starts the server.
    async fn restart(&self) -> Result<()>;

    /// Observes the server (see [`crate::status`]).
    async fn status(&self) -> ServiceStatus;

    /// Creates databases (existing ones are left as they are).
    async fn create_databases(&self, databases: Vec<Database>) -> Result<()>;

    /// Lists tenant databases, sorted by name, paged.
    async fn list_databases(
        &self,
        limit: Option<usize>,
        marker: Option<String>,
        include_marker: bool,
    ) -> Result<Page<Database>>;

    /// Drops a database.
    async fn delete_database(&self, database: Database) -> Result<()>;

    /// Creates users and grants them their databases; fails without changes if one exists.
    async fn create_users(&self, users: Vec<User>) -> Result<()>;

    /// Lists tenant users with their databases, sorted by `name@host`, paged.
    async fn list_users(
        &self,
        limit: Option<usize>,
        marker: Option<String>,
        include_marker: bool,
    ) -> Result<Page<User>>;

    /// One user with its databases, `None` if missing.
    async fn get_user(&self, username: &str, hostname: Option<&str>) -> Result<Option<User>>;

    /// Drops a user.
    async fn delete_user(&self, user: User) -> Result<()>;

    /// Sets new passwords.
    async fn change_passwords(&self, users: Vec<UserPassword>) -> Result<()>;

    /// Renames a user, moves it to another host and/or sets its password.
    async fn update_attributes(
        &self,
        username: &str,
        hostname: Option<&str>,
        attrs: UserAttributes,
    ) -> Result<()>;

    /// Grants the user all privileges on each database.
    async fn grant_access(
        &self,
        username: &str,
        hostname: Option<&str>,
        databases: Vec<String>,
    ) -> Result<()>;

    /// Revokes the user's privileges on one database ([`GuestError::NotFound`] if it had none).
    async fn revoke_access(
        &self,
        username: &str,
        hostname: Option<&str>,
        database: &str,
    ) -> Result<()>;

    /// Databases the user has access to.
    async fn list_access(&self, username: &str, hostname: Option<&str>) -> Result<Vec<Database>>;

    /// Enables remote root with the given or a generated password; returns the root user.
    async fn enable_root(&self, password: Option<String>) -> Result<User>;

    /// Disables remote root.
    async fn disable_root(&self) -> Result<()>;

    /// True when remote root is enabled.
    async fn is_root_enabled(&self) -> Result<bool>;

    /// Statistics of the file system holding `path` (the mount point when `None`).
    async fn get_filesystem_stats(&self, path: Option<&Path>) -> Result<FilesystemStats>;

    /// Writes (or with `remove`, deletes) the user overrides file; takes effect on restart
    /// or through [`DatastoreManager::apply_overrides`].
    async fn update_overrides(&self, overrides: Overrides, remove: bool) -> Result<()>;

    /// Applies overrides to the running server where it allows it.
    async fn apply_overrides(&self, overrides: Overrides) -> Result<()>;

    /// Replaces the base configuration file with `config_contents` (`reset_configuration`);
    /// the instance's fixed settings (address, port, paths) still apply. Takes effect on the
    /// next start.
    async fn reset_configuration(&self, config_contents: String) -> Result<()>;

    /// Takes a hot backup of the running server into `job`'s store (see [`crate::backup`]).
    /// A failure leaves no object behind.
    async fn create_backup(&self, job: &BackupJob) -> Result<StoredObject> {
        let _ = job;
        Err(GuestError::NotSupported(format!(
            "backups of {} on this guest agent",
            self.name()
        )))
    }

    /// Name of the replication strategy (`replication_strategy` of a snapshot), `None` when
    /// this datastore cannot replicate.
    fn replication_strategy(&self) -> Option<&'static str> {
        None
    }

    /// Makes the running server a replication source if it is not one yet (binary logs /
    /// WAL senders, a replication account, network rules) and returns how a replica reaches
    /// and follows it (`get_replica_context`; `get_replication_snapshot` before its backup).
    /// Calling it again returns the same account.
    async fn replica_context(&self) -> Result<ReplicaContext> {
        Err(self.no_replication())
    }

    /// Makes this server a read-only replica of `context.master` (`attach_replica`). When
    /// the server was restored from the source's snapshot, replication starts where the
    /// snapshot ends; otherwise (re-pointing an existing replica to a new source after a
    /// promotion) from the position both share. With `restart`, the server restarts to take
    /// the replica settings. Returns once the replica is connected and streaming.
    async fn attach_replica(&self, context: &ReplicaContext, restart: bool) -> Result<()> {
        let _ = (context, restart);
        Err(self.no_replication())
    }

    /// Stops replicating and makes the server a writable standalone one (`detach_replica`).
    /// Returns `{"replication_user": name-or-null}` (the account the source may drop).
    async fn detach_replica(&self, for_failover: bool) -> Result<serde_json::Value> {
        let _ = for_failover;
        Err(self.no_replication())
    }

    /// Refuses (or again allows) writes by tenants (`make_read_only`).
    async fn make_read_only(&self, read_only: bool) -> Result<()> {
        let _ = read_only;
        Err(self.no_replication())
    }

    /// Turns a former replica into a source replicas can follow (`enable_as_master`).
    async fn enable_as_master(&self) -> Result<()> {
        Err(self.no_replication())
    }

    /// Prepares a former source to become a replica of another one
    /// (`demote_replication_master`).
    async fn demote_replication_master(&self) -> Result<()> {
        Err(self.no_replication())
    }

    /// `[source uuid, last transaction number]` of a replica (`get_last_txn`): the replica
    /// with the highest number has the most of the source's changes.
    async fn get_last_txn(&self) -> Result<(String, i64)> {
        Err(self.no_replication())
    }

    /// The newest transaction position of the server (`get_latest_txn_id`): a GTID
    /// position (MariaDB) or an LSN (PostgreSQL).
    async fn get_latest_txn_id(&self) -> Result<String> {
        Err(self.no_replication())
    }

    /// Waits until this replica has applied everything up to `txn` (`wait_for_txn`).
    async fn wait_for_txn(&self, txn: &str) -> Result<()> {
        let _ = txn;
        Err(self.no_replication())
    }

    /// The error of a replication method this datastore does not support.
    fn no_replication(&self) -> GuestError {
        GuestError::NotSupported(format!("replication of {}", self.name()))
    }

    /// Replaces the base configuration and starts the server, restarting it if it runs
    /// (`start_db_with_conf_changes`).
    async fn start_with_conf_changes(&self, config_contents: String) -> Result<()> {
        self.reset_configuration(config_contents).await?;
        if self.status().await.is_up() {
            self.restart().await
        } else {
            self.start().await
        }
    }
}

/// The manager for a `datastore_manager` name, as the agent's start-up picks it: `mariadb`
/// (and `mysql`, served by the same code against a MariaDB server) or `postgresql`.
pub fn manager_for(
    datastore_manager: &str,
    config: ManagerConfig,
) -> Result<Box<dyn DatastoreManager>> {
    match datastore_manager {
        "mariadb" | "mysql" => Ok(Box::new(crate::mariadb::MariaDbManager::new(config))),
        "postgresql" => Ok(Box::new(crate::postgres::PostgresManager::new(config))),
        other => Err(GuestError::NotSupported(format!(
            "datastore manager {other}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn managers_are_shareable_trait_objects() {
        fn assert_shareable<T: Send + Sync + 'static>() {}
        assert_shareable::<Box<dyn DatastoreManager>>();
        assert_shareable::<std::sync::Arc<dyn DatastoreManager>>();
        let user = crate::process::ServiceUser::current();
        let cfg = ManagerConfig::new("/nonexistent", "127.0.0.2".parse().unwrap(), 3306, user);
        assert_eq!(
            manager_for("mariadb", cfg.clone()).unwrap().name(),
            "mariadb"
        );
        assert_eq!(
            manager_for("postgresql", cfg.clone()).unwrap().name(),
            "postgresql"
        );
        assert!(manager_for("redis", cfg).is_err());
    }

    #[test]
    fn prepare_arguments_from_the_wire() {
        // The argument dict of a `prepare` cast as the taskmanager sends it.
        let args = serde_json::json!({
            "packages": ["mariadb"], "memory_mb": 2048, "device_path": "/dev/vdb",
            "mount_point": "/var/lib/mysql", "backup_info": null,
            "config_contents": "[mysqld]\nport = 3306\n", "root_password": null,
            "overrides": null, "cluster_config": null, "snapshot": null, "modules": null,
            "ds_version": "10.11",
            "databases": [{"_name": "orders", "_character_set": "utf8mb4", "_collate": "utf8mb4_general_ci"}],
            "users": [{"_name": "app", "_password": "pw", "_host": "%", "_databases": [{"_name": "orders"}]}]
        });
        let req: PrepareRequest = serde_json::from_value(args).unwrap();
        assert_eq!(req.memory_mb, 2048);
        assert_eq!(req.databases[0].character_set.as_deref(), Some("utf8mb4"));
        assert_eq!(req.users[0].databases[0].name, "orders");
        assert!(req.overrides.is_empty());
        assert_eq!(req.mount_point.as_deref(), Some("/var/lib/mysql"));
        assert!(!format!("{req:?}").contains("\"pw\""));
        let none: PrepareRequest =
            serde_json::from_value(serde_json::json!({"memory_mb": 1, "users": null})).unwrap();
        assert!(none.users.is_empty());
        let page: Page<Database> =
            serde_json::from_value(serde_json::json!([[{"_name": "a"}], "a"])).unwrap();
        assert_eq!(page.next_marker.as_deref(), Some("a"));
    }

    #[test]
    fn paging() {
        let items = vec!["c", "a", "b", "d"];
        let p = paginate(items.clone(), |s| s.to_string(), Some(2), None, false);
        assert_eq!(p.items, vec!["a", "b"]);
        assert_eq!(p.next_marker.as_deref(), Some("b"));
        let p = paginate(items.clone(), |s| s.to_string(), Some(2), Some("b"), false);
        assert_eq!(p.items, vec!["c", "d"]);
        assert_eq!(p.next_marker, None);
        let p = paginate(items, |s| s.to_string(), Some(2), Some("b"), true);
        assert_eq!(p.items, vec!["b", "c"]);
        assert_eq!(p.next_marker.as_deref(), Some("c"));
        assert_eq!(serde_json::to_string(&p).unwrap(), r#"[["b","c"],"c"]"#);
    }

    #[test]
    fn gb_rounding() {
        assert_eq!(to_gb(0), 0.0);
        assert_eq!(to_gb(1), 0.01);
        assert_eq!(to_gb(1024 * 1024 * 1024 * 3 / 2), 1.5);
    }

    #[test]
    fn overrides_checked() {
        let mut o = Overrides::new();
        o.insert("max_connections".into(), 200.into());
        assert!(check_overrides(&o).is_ok());
        o.insert("x\ny".into(), 1.into());
        assert!(check_overrides(&o).is_err());
        let mut o = Overrides::new();
        o.insert("a".into(), "1\n[client]".into());
        assert!(check_overrides(&o).is_err());
    }

    #[test]
    fn passwords() {
        let p = generate_password(36);
        assert_eq!(p.len(), 36);
        assert!(p.chars().all(|c| c.is_ascii_alphanumeric()));
    }
}
