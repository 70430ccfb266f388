//! Guest agent RPC API (spec §3): topic `guestagent.<instance id>`, versions 1.0-1.3,
//! calls with `agent_call_low_timeout` / `agent_call_high_timeout` /
//! `agent_replication_snapshot_timeout`, per-instance key.
//!
//! Client-side error mapping is Trove's: a remote exception becomes
//! [`GuestError::Remote`] ("An error occurred communicating with the guest: `<message>`."),
//! a reply timeout [`GuestError::Timeout`] ("Timeout trying to connect to the Guest Agent."),
//! anything else [`GuestError::Other`].

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::models::{DatabaseModel, UserModel};
use crate::message::{Target, Version};
use crate::serializer::SecureSerializer;
use crate::transport::{RpcClient, Transport};
use crate::{RemoteError, RpcContext, RpcError};

/// The newest guest API version (`API_LATEST_VERSION`).
pub const GUEST_LATEST_VERSION: Version = Version::new(1, 3);

/// Topic of a guest: `guestagent.<instance id>`.
pub fn guest_topic(instance_id: &str) -> String {
    format!("guestagent.{instance_id}")
}

/// Call timeouts of the guest API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestTimeouts {
    /// `agent_call_low_timeout` (default 15 s).
    pub low: Duration,
    /// `agent_call_high_timeout` (default 180 s).
    pub high: Duration,
    /// `agent_replication_snapshot_timeout` (default 1800 s).
    pub snapshot: Duration,
}

impl Default for GuestTimeouts {
    fn default() -> Self {
        Self {
            low: Duration::from_secs(15),
            high: Duration::from_secs(180),
            snapshot: Duration::from_secs(1800),
        }
    }
}

impl GuestTimeouts {
    /// Timeouts from `agent_call_low_timeout`, `agent_call_high_timeout` and
    /// `agent_replication_snapshot_timeout` in seconds (at least 1 s each).
    pub fn from_secs(low: i64, high: i64, snapshot: i64) -> Self {
        let s = |v: i64| Duration::from_secs(u64::try_from(v).unwrap_or(0).max(1));
        Self {
            low: s(low),
            high: s(high),
            snapshot: s(snapshot),
        }
    }
}

/// The guest API version cap of `[upgrade_levels] guestagent`: a release alias or a
/// version; anything unreadable means the latest.
pub fn guest_version_cap(level: &str) -> Version {
    match level.trim().to_ascii_lowercase().as_str() {
        "icehouse" | "juno" | "kilo" | "liberty" | "mitaka" | "newton" | "ussuri" => {
            Version::new(1, 0)
        }
        "victoria" => Version::new(1, 1),
        "epoxy" => Version::new(1, 2),
        "hibiscus" | "latest" | "" => GUEST_LATEST_VERSION,
        other => Version::parse(other).unwrap_or(GUEST_LATEST_VERSION),
    }
}

/// How a method is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallKind {
    /// Call with the low timeout.
    Low,
    /// Call with the high timeout.
    High,
    /// Call with the replication snapshot timeout.
    Snapshot,
    /// Cast (no reply).
    Cast,
}

/// Arguments of `prepare` (API 1.1; `ds_version` is dropped for 1.0 peers).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct PrepareArgs {
    /// Packages to install (the client splits the space-separated string).
    #[serde(default)]
    pub packages: Option<Vec<String>>,
    /// Serialized schema models to create.
    #[serde(default)]
    pub databases: Vec<Value>,
    /// Flavor RAM in MB.
    #[serde(default)]
    pub memory_mb: i64,
    /// Serialized user models to create.
    #[serde(default)]
    pub users: Vec<Value>,
    /// Volume device (default `/dev/vdb`).
    #[serde(default)]
    pub device_path: Option<String>,
    /// Mount point of the data volume.
    #[serde(default)]
    pub mount_point: Option<String>,
    /// Backup to restore, if any.
    #[serde(default)]
    pub backup_info: Option<Value>,
    /// Rendered configuration file.
    #[serde(default)]
    pub config_contents: Option<String>,
    /// Root password, if any.
    #[serde(default)]
    pub root_password: Option<String>,
    /// Configuration overrides.
    #[serde(default)]
    pub overrides: Option<Value>,
    /// Cluster config, if any.
    #[serde(default)]
    pub cluster_config: Option<Value>,
    /// Replication snapshot, if any.
    #[serde(default)]
    pub snapshot: Option<Value>,
    /// Modules to apply.
    #[serde(default)]
    pub modules: Option<Vec<Value>>,
    /// Datastore version (API 1.1+).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ds_version: Option<String>,
}

/// Every guest method with its wire arguments (latest version's argument list).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", content = "args", rename_all = "snake_case")]
#[non_exhaustive]
#[allow(
    missing_docs,
    reason = "variants and fields are named after the wire method and argument names of spec section 3.2"
)]
pub enum GuestRequest {
    Prepare(Box<PrepareArgs>),
    Restart {},
    StopDb {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        do_not_start_on_reboot: Option<bool>,
    },
    StartDbWithConfChanges {
        config_contents: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ds_version: Option<String>,
    },
    ResetConfiguration {
        configuration: Value,
    },
    UpdateOverrides {
        overrides: Value,
        #[serde(default)]
        remove: bool,
    },
    ApplyOverrides {
        overrides: Value,
    },
    GetFilesystemStats {
        #[serde(default)]
        fs_path: Option<String>,
    },
    MountVolume {
        device_path: Option<String>,
        mount_point: Option<String>,
    },
    UnmountVolume {
        device_path: Option<String>,
        mount_point: Option<String>,
    },
    ResizeFs {
        device_path: Option<String>,
        mount_point: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        online: Option<bool>,
    },
    CreateDatabase {
        databases: Vec<Value>,
    },
    ListDatabases {
        #[serde(default)]
        limit: Option<i64>,
        #[serde(default)]
        marker: Option<String>,
        #[serde(default)]
        include_marker: bool,
    },
    DeleteDatabase {
        database: Value,
    },
    CreateUser {
        users: Vec<Value>,
    },
    ListUsers {
        #[serde(default)]
        limit: Option<i64>,
        #[serde(default)]
        marker: Option<String>,
        #[serde(default)]
        include_marker: bool,
    },
    GetUser {
        username: String,
        hostname: Option<String>,
    },
    DeleteUser {
        user: Value,
    },
    ChangePasswords {
        users: Vec<Value>,
    },
    UpdateAttributes {
        username: String,
        hostname: Option<String>,
        user_attrs: Value,
    },
    GrantAccess {
        username: String,
        hostname: Option<String>,
        databases: Vec<String>,
    },
    RevokeAccess {
        username: String,
        hostname: Option<String>,
        database: String,
    },
    ListAccess {
        username: String,
        hostname: Option<String>,
    },
    EnableRoot {},
    EnableRootWithPassword {
        root_password: Option<String>,
    },
    DisableRoot {},
    IsRootEnabled {},
    GetRootPassword {},
    RpcPing {},
    GetHwinfo {},
    GetDiagnostics {},
    UpdateGuest {},
    CreateBackup {
        backup_info: Value,
    },
    PreCreateBackup {},
    PostCreateBackup {},
    BackupRequiredForReplication {},
    GetReplicationSnapshot {
        snapshot_info: Value,
        replica_source_config: Option<String>,
    },
    AttachReplica {
        replica_info: Value,
        slave_config: Option<String>,
        #[serde(default)]
        restart: bool,
    },
    AttachReplicationSlave {
        snapshot: Value,
        slave_config: Option<String>,
    },
    DetachReplica {
        #[serde(default)]
        for_failover: bool,
    },
    GetReplicaContext {},
    MakeReadOnly {
        read_only: bool,
    },
    EnableAsMaster {
        replica_source_config: Option<String>,
    },
    DemoteReplicationMaster {},
    GetLastTxn {},
    GetLatestTxnId {},
    WaitForTxn {
        txn: Value,
    },
    GetTxnCount {},
    CleanupSourceOnReplicaDetach {
        replica_info: Value,
    },
    GuestLogList {},
    GuestLogAction {
        log_name: String,
        enable: bool,
        disable: bool,
        publish: bool,
        discard: bool,
    },
    ModuleList {
        #[serde(default)]
        include_contents: bool,
    },
    ModuleApply {
        modules: Vec<Value>,
    },
    ModuleRemove {
        module: Value,
    },
    Upgrade {
        upgrade_info: Value,
    },
    PreUpgrade {},
    PostUpgrade {
        upgrade_info: Value,
    },
    Rebuild {
        ds_version: Option<String>,
        config_contents: Option<String>,
        config_overrides: Option<Value>,
    },
    SslShow {},
    SslAction {
        mode: Option<String>,
        container: Option<String>,
        enable: Option<bool>,
        disable: Option<bool>,
    },
    SslRollback {},
}

impl GuestRequest {
    /// Decodes a received request (see [`crate::api`]).
    pub fn decode(method: &str, args: Map<String, Value>) -> Result<Self, RemoteError> {
        super::decode(method, args)
    }

    /// How Trove's client sends this method.
    pub fn kind(&self) -> CallKind {
        use GuestRequest::*;
        match self {
            Prepare { .. }
            | CreateDatabase { .. }
            | DeleteDatabase { .. }
            | CreateUser { .. }
            | DeleteUser { .. }
            | ChangePasswords { .. }
            | UpdateAttributes { .. }
            | CreateBackup { .. }
            | AttachReplicationSlave { .. }
            | Upgrade { .. }
            | Rebuild { .. } => CallKind::Cast,
            StopDb { .. }
            | GetFilesystemStats { .. }
            | MountVolume { .. }
            | UnmountVolume { .. }
            | ListDatabases { .. }
            | GetUser { .. }
            | GrantAccess { .. }
            | RevokeAccess { .. }
            | ListAccess { .. }
            | DisableRoot {}
            | IsRootEnabled {}
            | RpcPing {}
            | GetHwinfo {}
            | GetDiagnostics {}
            | BackupRequiredForReplication {} => CallKind::Low,
            GetReplicationSnapshot { .. } => CallKind::Snapshot,
            _ => CallKind::High,
        }
    }

    /// The lowest API version able to carry this method (1.0 unless it was added later).
    pub fn min_version(&self) -> Version {
        use GuestRequest::*;
        match self {
            PreCreateBackup {} | PostCreateBackup {} => Version::new(1, 2),
            SslShow {} | SslAction { .. } | SslRollback {} => Version::new(1, 3),
            _ => Version::new(1, 0),
        }
    }

    /// Adapts the request to a peer capped at `cap`, as Trove's client does: at 1.1+ the
    /// newer signatures are used (message version 1.1); below, `ds_version` and `online`
    /// are dropped and `stop_db` gets `do_not_start_on_reboot` (message version 1.0).
    pub fn for_version_cap(mut self, cap: Version) -> Result<(Self, Version), RpcError> {
        use GuestRequest::*;
        let min = self.min_version();
        if !cap.accepts(&min) {
            return Err(RpcError::Config(format!(
                "guest API version cap {cap} is too low for this method (needs {min})"
            )));
        }
        let new_sig = cap.accepts(&Version::new(1, 1));
        let mut version = min;
        match &mut self {
            Prepare(p) => {
                if new_sig {
                    version = Version::new(1, 1);
                } else {
                    p.ds_version = None;
                }
            }
            StartDbWithConfChanges { ds_version, .. } => {
                if new_sig {
                    version = Version::new(1, 1);
                } else {
                    *ds_version = None;
                }
            }
            StopDb {
                do_not_start_on_reboot,
            } => {
                if new_sig {
                    version = Version::new(1, 1);
                    *do_not_start_on_reboot = None;
                } else {
                    *do_not_start_on_reboot = Some(do_not_start_on_reboot.unwrap_or(false));
                }
            }
            ResizeFs { online, .. } => {
                if new_sig {
                    version = Version::new(1, 1);
                    *online = Some(online.unwrap_or(false));
                } else {
                    *online = None;
                }
            }
            _ => {}
        }
        Ok((self, version))
    }
}

/// Errors of guest calls, with Trove's messages.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum GuestError {
    /// The guest raised an error.
    #[error("An error occurred communicating with the guest: {}.", .0.message)]
    Remote(RemoteError),
    /// No reply within the call's timeout.
    #[error("Timeout trying to connect to the Guest Agent.")]
    Timeout(#[source] RpcError),
    /// Anything else (broker unavailable, decryption, serialization...).
    #[error("An error occurred communicating with the guest: {0}.")]
    Other(#[source] RpcError),
}

impl From<RpcError> for GuestError {
    fn from(e: RpcError) -> Self {
        match e {
            RpcError::Remote(r) => GuestError::Remote(r),
            e @ RpcError::Timeout { .. } => GuestError::Timeout(e),
            e => GuestError::Other(e),
        }
    }
}

/// Client of one guest agent (used by trove-api and trove-taskmanager).
#[derive(Clone, Debug)]
pub struct GuestApi {
    client: RpcClient,
    instance_id: String,
    timeouts: GuestTimeouts,
    version_cap: Version,
}

impl GuestApi {
    /// A client of guest `instance_id`. `key` is the per-instance key (decrypted from
    /// `instances.encrypted_key`; `None` when the column is NULL). `version_cap` is the
    /// `[upgrade_levels] guestagent` version (normally [`GUEST_LATEST_VERSION`]).
    pub fn new(
        transport: Arc<dyn Transport>,
        instance_id: &str,
        key: Option<String>,
        timeouts: GuestTimeouts,
        version_cap: Version,
    ) -> Self {
        let client = RpcClient::new(
            transport,
            Target::topic(guest_topic(instance_id)),
            Some(Version::new(1, 0)),
            Arc::new(SecureSerializer::new(key)),
        );
        Self {
            client,
            instance_id: instance_id.into(),
            timeouts,
            version_cap,
        }
    }

    /// Sends any request the way Trove does (call with its timeout, or cast).
    /// Casts return `Value::Null`.
    pub async fn send(&self, ctx: &RpcContext, req: GuestRequest) -> Result<Value, GuestError> {
        let (req, version) = req.for_version_cap(self.version_cap)?;
        let kind = req.kind();
        if matches!(req, GuestRequest::Prepare(_) | GuestRequest::Rebuild { .. }) {
            // First contact: make sure the guest's queues exist so the message waits
            // for an agent that has not booted yet.
            self.client
                .transport()
                .declare_topic_queues(&guest_topic(&self.instance_id), Some(&self.instance_id))
                .await?;
        }
        let (method, args) = super::split(&req)?;
        let client = self.client.with_version(version);
        let timeout = match kind {
            CallKind::Cast => {
                return Ok(client.cast(ctx, &method, args).await.map(|_| Value::Null)?)
            }
            CallKind::Low => self.timeouts.low,
            CallKind::High => self.timeouts.high,
            CallKind::Snapshot => self.timeouts.snapshot,
        };
        Ok(client.call(ctx, &method, args, timeout).await?)
    }

    fn typed<T: serde::de::DeserializeOwned>(v: Value) -> Result<T, GuestError> {
        serde_json::from_value(v)
            .map_err(|e| GuestError::Other(RpcError::Serialization(e.to_string())))
    }

    /// Deletes the guest's queues (when its instance is deleted).
    pub async fn delete_queues(&self) -> Result<(), RpcError> {
        self.client
            .transport()
            .delete_topic_queues(&guest_topic(&self.instance_id), Some(&self.instance_id))
            .await
    }

    /// `prepare` (cast, after declaring the guest's queues).
    pub async fn prepare(&self, ctx: &RpcContext, args: PrepareArgs) -> Result<(), GuestError> {
        self.send(ctx, GuestRequest::Prepare(Box::new(args)))
            .await
            .map(|_| ())
    }

    /// `restart` (high timeout).
    pub async fn restart(&self, ctx: &RpcContext) -> Result<(), GuestError> {
        self.send(ctx, GuestRequest::Restart {}).await.map(|_| ())
    }

    /// `stop_db` (low timeout).
    pub async fn stop_db(&self, ctx: &RpcContext) -> Result<(), GuestError> {
        self.send(
            ctx,
            GuestRequest::StopDb {
                do_not_start_on_reboot: None,
            },
        )
        .await
        .map(|_| ())
    }

    /// `create_database` (cast).
    pub async fn create_database(
        &self,
        ctx: &RpcContext,
        databases: &[DatabaseModel],
    ) -> Result<(), GuestError> {
        let databases = databases
            .iter()
            .map(serde_json::to_value)
            .collect::<Result<_, _>>()
            .map_err(RpcError::from)?;
        self.send(ctx, GuestRequest::CreateDatabase { databases })
            .await
            .map(|_| ())
    }

    /// `list_databases` (low timeout): a page of databases and the next marker.
    pub async fn list_databases(
        &self,
        ctx: &RpcContext,
        limit: Option<i64>,
        marker: Option<String>,
        include_marker: bool,
    ) -> Result<(Vec<DatabaseModel>, Option<String>), GuestError> {
        Self::typed(
            self.send(
                ctx,
                GuestRequest::ListDatabases {
                    limit,
                    marker,
                    include_marker,
                },
            )
            .await?,
        )
    }

    /// `delete_database` (cast).
    pub async fn delete_database(
        &self,
        ctx: &RpcContext,
        database: &DatabaseModel,
    ) -> Result<(), GuestError> {
        let database = serde_json::to_value(database).map_err(RpcError::from)?;
        self.send(ctx, GuestRequest::DeleteDatabase { database })
            .await
            .map(|_| ())
    }

    /// `create_user` (cast).
    pub async fn create_user(
        &self,
        ctx: &RpcContext,
        users: &[UserModel],
    ) -> Result<(), GuestError> {
        let users = users
            .iter()
            .map(serde_json::to_value)
            .collect::<Result<_, _>>()
            .map_err(RpcError::from)?;
        self.send(ctx, GuestRequest::CreateUser { users })
            .await
            .map(|_| ())
    }

    /// `list_users` (high timeout, as in Trove).
    pub async fn list_users(
        &self,
        ctx: &RpcContext,
        limit: Option<i64>,
        marker: Option<String>,
        include_marker: bool,
    ) -> Result<(Vec<UserModel>, Option<String>), GuestError> {
        Self::typed(
            self.send(
                ctx,
                GuestRequest::ListUsers {
                    limit,
                    marker,
                    include_marker,
                },
            )
            .await?,
        )
    }

    /// `delete_user` (cast).
    pub async fn delete_user(&self, ctx: &RpcContext, user: &UserModel) -> Result<(), GuestError> {
        let user = serde_json::to_value(user).map_err(RpcError::from)?;
        self.send(ctx, GuestRequest::DeleteUser { user })
            .await
            .map(|_| ())
    }

    /// `grant_access` (low timeout).
    pub async fn grant_access(
        &self,
        ctx: &RpcContext,
        username: &str,
        hostname: Option<&str>,
        databases: Vec<String>,
    ) -> Result<(), GuestError> {
        let req = GuestRequest::GrantAccess {
            username: username.into(),
            hostname: hostname.map(Into::into),
            databases,
        };
        self.send(ctx, req).await.map(|_| ())
    }

    /// `enable_root` (high timeout): the root user with its generated password.
    pub async fn enable_root(&self, ctx: &RpcContext) -> Result<UserModel, GuestError> {
        Self::typed(self.send(ctx, GuestRequest::EnableRoot {}).await?)
    }

    /// `is_root_enabled` (low timeout).
    pub async fn is_root_enabled(&self, ctx: &RpcContext) -> Result<bool, GuestError> {
        Self::typed(self.send(ctx, GuestRequest::IsRootEnabled {}).await?)
    }

    /// `get_filesystem_stats` (Trove's client function `get_volume_info`; low timeout).
    pub async fn get_filesystem_stats(&self, ctx: &RpcContext) -> Result<Value, GuestError> {
        self.send(ctx, GuestRequest::GetFilesystemStats { fs_path: None })
            .await
    }

    /// `create_backup` (cast).
    pub async fn create_backup(
        &self,
        ctx: &RpcContext,
        backup_info: Value,
    ) -> Result<(), GuestError> {
        self.send(ctx, GuestRequest::CreateBackup { backup_info })
            .await
            .map(|_| ())
    }

    /// `rpc_ping` (low timeout).
    pub async fn rpc_ping(&self, ctx: &RpcContext) -> Result<bool, GuestError> {
        Self::typed(self.send(ctx, GuestRequest::RpcPing {}).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn kinds_versions_and_names() {
        assert_eq!(
            GuestRequest::ListUsers {
                limit: None,
                marker: None,
                include_marker: false
            }
            .kind(),
            CallKind::High
        );
        assert_eq!(
            GuestRequest::ListDatabases {
                limit: None,
                marker: None,
                include_marker: false
            }
            .kind(),
            CallKind::Low
        );
        assert_eq!(
            GuestRequest::CreateUser { users: vec![] }.kind(),
            CallKind::Cast
        );
        assert_eq!(
            GuestRequest::GetReplicationSnapshot {
                snapshot_info: json!({}),
                replica_source_config: None
            }
            .kind(),
            CallKind::Snapshot
        );
        let (m, a) =
            crate::api::split(&GuestRequest::GetFilesystemStats { fs_path: None }).unwrap();
        assert_eq!(
            (m.as_str(), Value::Object(a)),
            ("get_filesystem_stats", json!({"fs_path": null}))
        );
        let (m, a) = crate::api::split(&GuestRequest::Restart {}).unwrap();
        assert_eq!((m.as_str(), Value::Object(a)), ("restart", json!({})));
    }

    #[test]
    fn version_cap_fallbacks() {
        let stop = GuestRequest::StopDb {
            do_not_start_on_reboot: None,
        };
        let (r, v) = stop.clone().for_version_cap(Version::new(1, 3)).unwrap();
        assert_eq!(v, Version::new(1, 1));
        assert_eq!(Value::Object(crate::api::split(&r).unwrap().1), json!({}));
        let (r, v) = stop.for_version_cap(Version::new(1, 0)).unwrap();
        assert_eq!(v, Version::new(1, 0));
        assert_eq!(
            Value::Object(crate::api::split(&r).unwrap().1),
            json!({"do_not_start_on_reboot": false})
        );

        let s = GuestRequest::StartDbWithConfChanges {
            config_contents: "c".into(),
            ds_version: Some("8.0".into()),
        };
        let (r, _) = s.for_version_cap(Version::new(1, 0)).unwrap();
        assert_eq!(
            Value::Object(crate::api::split(&r).unwrap().1),
            json!({"config_contents": "c"})
        );
        assert!(GuestRequest::SslShow {}
            .for_version_cap(Version::new(1, 2))
            .is_err());
        assert_eq!(
            GuestRequest::SslShow {}
                .for_version_cap(Version::new(1, 3))
                .unwrap()
                .1,
            Version::new(1, 3)
        );
    }

    #[test]
    fn error_messages_are_trove_s() {
        let e: GuestError = RpcError::Remote(RemoteError::trove("BadRequest", "boom")).into();
        assert_eq!(
            e.to_string(),
            "An error occurred communicating with the guest: boom."
        );
        let e: GuestError = RpcError::Timeout {
            topic: "t".into(),
            method: "m".into(),
            seconds: 1.0,
        }
        .into();
        assert_eq!(
            e.to_string(),
            "Timeout trying to connect to the Guest Agent."
        );
    }
}
