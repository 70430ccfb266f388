//! Taskmanager RPC API (spec §2): version 1.0 only, every method is a cast, topic
//! `taskmanager`, encrypted with `taskmanager_rpc_encr_key` when
//! `enable_secure_rpc_messaging` is on.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::message::{Target, Version};
use crate::serializer::SecureSerializer;
use crate::transport::{RpcClient, Transport};
use crate::{RemoteError, RpcContext, RpcError};

/// Default taskmanager topic (`taskmanager_queue`).
pub const TASKMANAGER_TOPIC: &str = "taskmanager";
/// The taskmanager API version.
pub const TASKMANAGER_VERSION: Version = Version::new(1, 0);

/// Arguments of `create_instance`. `instance_id`, `name` and `root_password` may be
/// lists (several replicas at once), hence `Value`.
#[derive(Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CreateInstanceArgs {
    /// Instance id, or list of ids.
    pub instance_id: Value,
    /// Name, or list of names.
    pub name: Value,
    /// Nova flavor attribute dict (`id`, `name`, `ram`, ...).
    pub flavor: Value,
    /// Glance image id.
    pub image_id: String,
    /// Serialized schema models.
    #[serde(default)]
    pub databases: Vec<Value>,
    /// Serialized user models.
    #[serde(default)]
    pub users: Vec<Value>,
    /// Datastore manager, e.g. `mysql`.
    pub datastore_manager: String,
    /// Space separated packages, or null.
    #[serde(default)]
    pub packages: Option<String>,
    /// Volume size in GB, or null.
    #[serde(default)]
    pub volume_size: Option<i64>,
    /// Backup to restore, or null.
    #[serde(default)]
    pub backup_id: Option<String>,
    /// Availability zone, or null.
    #[serde(default)]
    pub availability_zone: Option<String>,
    /// Root password (string, null or list parallel to `instance_id`).
    #[serde(default)]
    pub root_password: Value,
    /// NICs: `{"network_id", "subnet_id", "ip_address"}`.
    #[serde(default)]
    pub nics: Vec<Value>,
    /// Configuration overrides.
    #[serde(default)]
    pub overrides: Map<String, Value>,
    /// Replication source, or null.
    #[serde(default)]
    pub slave_of_id: Option<String>,
    /// Cluster config, or null.
    #[serde(default)]
    pub cluster_config: Option<Value>,
    /// Volume type, or null.
    #[serde(default)]
    pub volume_type: Option<String>,
    /// Modules to apply.
    #[serde(default)]
    pub modules: Vec<Value>,
    /// Server group locality, or null.
    #[serde(default)]
    pub locality: Option<String>,
    /// `{"is_public", "allowed_cidrs"}`, or null.
    #[serde(default)]
    pub access: Option<Value>,
    /// Datastore version number, e.g. `8.0.36`.
    #[serde(default)]
    pub ds_version: Option<String>,
}

impl std::fmt::Debug for CreateInstanceArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreateInstanceArgs")
            .field("instance_id", &self.instance_id)
            .field("name", &self.name)
            .field("datastore_manager", &self.datastore_manager)
            .field("ds_version", &self.ds_version)
            .finish_non_exhaustive()
    }
}

/// Every taskmanager method with its wire arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", content = "args", rename_all = "snake_case")]
#[non_exhaustive]
pub enum TaskManagerRequest {
    /// Create one instance or several replicas.
    CreateInstance(Box<CreateInstanceArgs>),
    /// Delete an instance.
    DeleteInstance {
        /** Instance id. */
        instance_id: String,
    },
    /// Resize the volume.
    ResizeVolume {
        /** New size in GB. */
        new_size: i64,
        /** Instance id. */
        instance_id: String,
    },
    /// Resize the flavor.
    ResizeFlavor {
        /** Instance id. */
        instance_id: String,
        /** Old flavor dict. */
        old_flavor: Value,
        /** New flavor dict. */
        new_flavor: Value,
    },
    /// Reboot the VM.
    Reboot {
        /** Instance id. */
        instance_id: String,
    },
    /// Restart the database service.
    Restart {
        /** Instance id. */
        instance_id: String,
    },
    /// Make a replica standalone.
    DetachReplica {
        /** Instance id. */
        instance_id: String,
    },
    /// Switchover.
    PromoteToReplicaSource {
        /** Instance id. */
        instance_id: String,
    },
    /// Failover.
    EjectReplicaSource {
        /** Instance id. */
        instance_id: String,
    },
    /// Cold migration.
    Migrate {
        /** Instance id. */
        instance_id: String,
        /** Target host or null. */
        #[serde(default)]
        host: Option<String>,
    },
    /// Rebuild onto a new guest image.
    Rebuild {
        /** Instance id. */
        instance_id: String,
        /** Image id. */
        image_id: String,
    },
    /// Datastore version upgrade.
    Upgrade {
        /** Instance id. */
        instance_id: String,
        /** New datastore version id. */
        datastore_version_id: String,
    },
    /// Change public access / allowed CIDRs.
    UpdateAccess {
        /** Instance id. */
        instance_id: String,
        /** Access dict. */
        access: Value,
    },
    /// Take a backup.
    CreateBackup {
        /** Backup info dict. */
        backup_info: Value,
        /** Instance id. */
        instance_id: String,
    },
    /// Delete a backup.
    DeleteBackup {
        /** Backup id. */
        backup_id: String,
    },
    /// Create a cluster.
    CreateCluster {
        /** Cluster id. */
        cluster_id: String,
    },
    /// Grow a cluster.
    GrowCluster {
        /** Cluster id. */
        cluster_id: String,
        /** New instances. */
        new_instance_ids: Vec<String>,
    },
    /// Shrink a cluster.
    ShrinkCluster {
        /** Cluster id. */
        cluster_id: String,
        /** Instances to remove. */
        instance_ids: Vec<String>,
    },
    /// Delete a cluster.
    DeleteCluster {
        /** Cluster id. */
        cluster_id: String,
    },
    /// Restart a cluster.
    RestartCluster {
        /** Cluster id. */
        cluster_id: String,
    },
    /// Upgrade a cluster.
    UpgradeCluster {
        /** Cluster id. */
        cluster_id: String,
        /** New datastore version id. */
        datastore_version_id: String,
    },
    /// Re-push a module to instances.
    ReapplyModule {
        /** Module id. */
        module_id: String,
        /** Module md5. */
        md5: String,
        /** Include clustered instances. */
        include_clustered: bool,
        /** Batch size. */
        batch_size: i64,
        /** Delay between batches (s). */
        batch_delay: i64,
        /** Force. */
        force: bool,
    },
}

impl TaskManagerRequest {
    /// Decodes a received request (see [`crate::api`]). Cluster-strategy methods
    /// (`<manager>_<action>`) come back as `NoSuchMethod`; dispatch them before decoding.
    pub fn decode(method: &str, args: Map<String, Value>) -> Result<Self, RemoteError> {
        super::decode(method, args)
    }

    /// The wire method name.
    pub fn method(&self) -> String {
        super::split(self).map(|(m, _)| m).unwrap_or_default()
    }
}

/// Client of the taskmanager (used by trove-api).
#[derive(Clone, Debug)]
pub struct TaskManagerApi {
    client: RpcClient,
}

impl TaskManagerApi {
    /// A client on `topic` (normally [`TASKMANAGER_TOPIC`]); `key` is
    /// `taskmanager_rpc_encr_key` when `enable_secure_rpc_messaging` is on, else `None`.
    pub fn new(transport: Arc<dyn Transport>, topic: &str, key: Option<String>) -> Self {
        let client = RpcClient::new(
            transport,
            Target::topic(topic),
            Some(TASKMANAGER_VERSION),
            Arc::new(SecureSerializer::new(key)),
        );
        Self { client }
    }

    /// Casts any taskmanager request.
    pub async fn cast(&self, ctx: &RpcContext, req: &TaskManagerRequest) -> Result<(), RpcError> {
        let (method, args) = super::split(req)?;
        self.client.cast(ctx, &method, args).await
    }

    /// `create_instance`.
    pub async fn create_instance(
        &self,
        ctx: &RpcContext,
        args: CreateInstanceArgs,
    ) -> Result<(), RpcError> {
        self.cast(ctx, &TaskManagerRequest::CreateInstance(Box::new(args)))
            .await
    }

    /// `delete_instance`.
    pub async fn delete_instance(
        &self,
        ctx: &RpcContext,
        instance_id: &str,
    ) -> Result<(), RpcError> {
        self.cast(
            ctx,
            &TaskManagerRequest::DeleteInstance {
                instance_id: instance_id.into(),
            },
        )
        .await
    }

    /// `restart` (database service).
    pub async fn restart(&self, ctx: &RpcContext, instance_id: &str) -> Result<(), RpcError> {
        self.cast(
            ctx,
            &TaskManagerRequest::Restart {
                instance_id: instance_id.into(),
            },
        )
        .await
    }

    /// `reboot` (the VM).
    pub async fn reboot(&self, ctx: &RpcContext, instance_id: &str) -> Result<(), RpcError> {
        self.cast(
            ctx,
            &TaskManagerRequest::Reboot {
                instance_id: instance_id.into(),
            },
        )
        .await
    }

    /// `resize_flavor`.
    pub async fn resize_flavor(
        &self,
        ctx: &RpcContext,
        instance_id: &str,
        old_flavor: Value,
        new_flavor: Value,
    ) -> Result<(), RpcError> {
        self.cast(
            ctx,
            &TaskManagerRequest::ResizeFlavor {
                instance_id: instance_id.into(),
                old_flavor,
                new_flavor,
            },
        )
        .await
    }

    /// `resize_volume`.
    pub async fn resize_volume(
        &self,
        ctx: &RpcContext,
        instance_id: &str,
        new_size: i64,
    ) -> Result<(), RpcError> {
        self.cast(
            ctx,
            &TaskManagerRequest::ResizeVolume {
                new_size,
                instance_id: instance_id.into(),
            },
        )
        .await
    }

    /// `create_backup`.
    pub async fn create_backup(
        &self,
        ctx: &RpcContext,
        backup_info: Value,
        instance_id: &str,
    ) -> Result<(), RpcError> {
        self.cast(
            ctx,
            &TaskManagerRequest::CreateBackup {
                backup_info,
                instance_id: instance_id.into(),
            },
        )
        .await
    }

    /// `delete_backup`.
    pub async fn delete_backup(&self, ctx: &RpcContext, backup_id: &str) -> Result<(), RpcError> {
        self.cast(
            ctx,
            &TaskManagerRequest::DeleteBackup {
                backup_id: backup_id.into(),
            },
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn wire_names_and_round_trip() {
        let r = TaskManagerRequest::ResizeVolume {
            new_size: 5,
            instance_id: "i".into(),
        };
        let (m, a) = crate::api::split(&r).unwrap();
        assert_eq!(m, "resize_volume");
        assert_eq!(
            Value::Object(a.clone()),
            json!({"new_size": 5, "instance_id": "i"})
        );
        assert_eq!(TaskManagerRequest::decode(&m, a).unwrap(), r);
        assert_eq!(
            TaskManagerRequest::PromoteToReplicaSource {
                instance_id: "i".into()
            }
            .method(),
            "promote_to_replica_source"
        );
        assert_eq!(
            TaskManagerRequest::decode("mongodb_add_shard_cluster", Map::new())
                .unwrap_err()
                .class,
            "NoSuchMethod"
        );
        assert_eq!(
            TaskManagerRequest::decode("restart", Map::new())
                .unwrap_err()
                .class,
            "TypeError"
        );
        let ci = CreateInstanceArgs {
            instance_id: json!(["a", "b"]),
            image_id: "img".into(),
            ..Default::default()
        };
        let (m, a) = crate::api::split(&TaskManagerRequest::CreateInstance(Box::new(ci))).unwrap();
        assert_eq!(m, "create_instance");
        assert_eq!(a["instance_id"], json!(["a", "b"]));
        assert!(a.contains_key("ds_version") && a.contains_key("slave_of_id"));
    }
}
