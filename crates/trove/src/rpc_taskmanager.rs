//! The API's taskmanager client over trove-rpc: each cast from the API (method name and
//! Trove's keyword arguments) becomes a typed `TaskManagerRequest` sent on the
//! `taskmanager` topic, encrypted with `taskmanager_rpc_encr_key` when
//! `enable_secure_rpc_messaging` is on.

use std::sync::Arc;

use futures::future::BoxFuture;
use trove_api::taskmanager::{CastContext, TaskManagerClient, TaskManagerError};
use trove_config::Config;
use trove_rpc::api::taskmanager::{TaskManagerApi, TaskManagerRequest};
use trove_rpc::{RpcContext, RpcError, Transport};

/// [`TaskManagerClient`] that casts through a [`Transport`].
pub struct RpcTaskManager {
    api: TaskManagerApi,
}

impl std::fmt::Debug for RpcTaskManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcTaskManager").finish_non_exhaustive()
    }
}

impl RpcTaskManager {
    /// A client for `[DEFAULT] taskmanager_queue`, keyed as the configuration says.
    pub fn new(transport: Arc<dyn Transport>, config: &Config) -> Self {
        let key = config.default.enable_secure_rpc_messaging.then(|| {
            config
                .default
                .taskmanager_rpc_encr_key
                .expose_secret()
                .to_string()
        });
        Self {
            api: TaskManagerApi::new(transport, &config.default.taskmanager_queue, key),
        }
    }
}

fn rpc_context(context: &CastContext) -> RpcContext {
    RpcContext {
        user: Some(context.user_id.clone()),
        project_id: Some(context.project_id.clone()),
        project: Some(context.project_id.clone()),
        is_admin: context.is_admin,
        request_id: Some(context.request_id.clone()),
        roles: context.roles.clone(),
        ..RpcContext::default()
    }
}

impl TaskManagerClient for RpcTaskManager {
    fn cast<'a>(
        &'a self,
        context: &'a CastContext,
        method: &'a str,
        args: serde_json::Value,
    ) -> BoxFuture<'a, Result<(), TaskManagerError>> {
        Box::pin(async move {
            let serde_json::Value::Object(args) = args else {
                return Err(TaskManagerError::Failed(format!(
                    "arguments of {method} are not a JSON object"
                )));
            };
            let request = TaskManagerRequest::decode(method, args)
                .map_err(|e| TaskManagerError::Failed(e.message))?;
            self.api
                .cast(&rpc_context(context), &request)
                .await
                .map_err(|e| match e {
                    RpcError::Unavailable(_) | RpcError::Timeout { .. } => {
                        TaskManagerError::Unavailable(e.to_string())
                    }
                    other => TaskManagerError::Failed(other.to_string()),
                })
        })
    }
}
