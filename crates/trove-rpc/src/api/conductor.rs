//! Conductor RPC API (spec §4): version 1.0, every method a cast, topic
//! `trove-conductor`. Guests encrypt with [`crate::ConductorGuestSerializer`]; the
//! conductor decrypts with [`crate::ConductorHostSerializer`].

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::message::{Target, Version};
use crate::serializer::ConductorGuestSerializer;
use crate::transport::{RpcClient, Transport};
use crate::{RemoteError, RpcContext, RpcError};

/// Default conductor topic (`conductor_queue`).
pub const CONDUCTOR_TOPIC: &str = "trove-conductor";
/// The conductor API version.
pub const CONDUCTOR_VERSION: Version = Version::new(1, 0);

/// Optional fields of `update_backup`; only present keys are sent.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct UpdateBackupFields {
    /// Size in GB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<f64>,
    /// Backup state (e.g. `COMPLETED`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Backup type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_type: Option<String>,
    /// Checksum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
    /// Storage location.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Success flag (not a column; ignored by the conductor).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success: Option<bool>,
}

/// Every conductor method with its wire arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", content = "args", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ConductorRequest {
    /// Liveness and service status.
    Heartbeat {
        /** Instance id. */
        instance_id: String,
        /** `{"service_status": "<description>"}`. */
        payload: Value,
        /** UTC epoch seconds when sent. */
        #[serde(default)]
        sent: Option<f64>,
    },
    /// Backup progress.
    UpdateBackup {
        /** Instance id. */
        instance_id: String,
        /** Backup id. */
        backup_id: String,
        /** UTC epoch seconds when sent. */
        #[serde(default)]
        sent: Option<f64>,
        /** Changed fields. */
        #[serde(flatten)]
        fields: UpdateBackupFields,
    },
    /// Root was enabled.
    ReportRoot {
        /** Instance id. */
        instance_id: String,
        /** Legacy, ignored. */
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user: Option<String>,
    },
    /// Emit the end notification of an action.
    NotifyEnd {
        /** Notification payload with `notification_classname`. */
        serialized_notification: Value,
        /** Extra arguments. */
        notification_args: Value,
    },
    /// Emit an error notification (stored as an instance fault).
    NotifyExcInfo {
        /** Notification payload. */
        serialized_notification: Value,
        /** Error message. */
        message: String,
        /** Traceback lines. */
        exception: Value,
    },
}

impl ConductorRequest {
    /// Decodes a received request (see [`crate::api`]).
    pub fn decode(method: &str, args: Map<String, Value>) -> Result<Self, RemoteError> {
        super::decode(method, args)
    }
}

/// Client of the conductor (used by guest agents, and by the taskmanager in clear).
#[derive(Clone, Debug)]
pub struct ConductorApi {
    client: RpcClient,
}

impl ConductorApi {
    /// A client on `topic` (normally [`CONDUCTOR_TOPIC`]) for guest `instance_id` with its
    /// key (`instance_rpc_encr_key`; `None` sends in clear).
    pub fn new(
        transport: Arc<dyn Transport>,
        topic: &str,
        instance_id: &str,
        key: Option<String>,
    ) -> Self {
        let ser = ConductorGuestSerializer::new(key, instance_id);
        Self {
            client: RpcClient::new(
                transport,
                Target::topic(topic),
                Some(CONDUCTOR_VERSION),
                Arc::new(ser),
            ),
        }
    }

    /// Casts any conductor request.
    pub async fn cast(&self, ctx: &RpcContext, req: &ConductorRequest) -> Result<(), RpcError> {
        let (method, args) = super::split(req)?;
        self.client.cast(ctx, &method, args).await
    }

    /// `heartbeat` with `{"service_status": status}` stamped now.
    pub async fn heartbeat(
        &self,
        ctx: &RpcContext,
        instance_id: &str,
        service_status: &str,
    ) -> Result<(), RpcError> {
        let req = ConductorRequest::Heartbeat {
            instance_id: instance_id.into(),
            payload: serde_json::json!({"service_status": service_status}),
            sent: Some(super::epoch_now()),
        };
        self.cast(ctx, &req).await
    }

    /// `update_backup` stamped now.
    pub async fn update_backup(
        &self,
        ctx: &RpcContext,
        instance_id: &str,
        backup_id: &str,
        fields: UpdateBackupFields,
    ) -> Result<(), RpcError> {
        let req = ConductorRequest::UpdateBackup {
            instance_id: instance_id.into(),
            backup_id: backup_id.into(),
            sent: Some(super::epoch_now()),
            fields,
        };
        self.cast(ctx, &req).await
    }

    /// `report_root`.
    pub async fn report_root(&self, ctx: &RpcContext, instance_id: &str) -> Result<(), RpcError> {
        self.cast(
            ctx,
            &ConductorRequest::ReportRoot {
                instance_id: instance_id.into(),
                user: None,
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
    fn update_backup_sends_only_present_fields() {
        let r = ConductorRequest::UpdateBackup {
            instance_id: "i".into(),
            backup_id: "b".into(),
            sent: Some(1.5),
            fields: UpdateBackupFields {
                state: Some("COMPLETED".into()),
                size: Some(0.2),
                ..Default::default()
            },
        };
        let (m, a) = crate::api::split(&r).unwrap();
        assert_eq!(m, "update_backup");
        assert_eq!(
            Value::Object(a.clone()),
            json!({"instance_id": "i", "backup_id": "b", "sent": 1.5, "state": "COMPLETED", "size": 0.2})
        );
        assert_eq!(ConductorRequest::decode(&m, a).unwrap(), r);
    }
}
