//! The API's view of the taskmanager: fire-and-forget casts with Trove's method and
//! argument names (`create_instance`, `delete_instance`, `restart`, `resize_flavor`,
//! `resize_volume`), behind a small trait so that the RPC transport (trove-rpc's
//! `TaskManagerApi` over AMQP or in-memory) and test fakes plug in the same way.
//!
//! Not here: message encryption, envelopes and topics (the RPC crate's job).

use futures::future::BoxFuture;

/// The request context sent with a cast (oslo.messaging's `_context_*` keys).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CastContext {
    /// `req-<uuid>` of the API request.
    pub request_id: String,
    /// Caller's project.
    pub project_id: String,
    /// Caller's user.
    pub user_id: String,
    /// Caller's roles.
    pub roles: Vec<String>,
    /// Whether the caller is an administrator.
    pub is_admin: bool,
    /// The caller's Keystone token (`_context_auth_token`), if any.
    pub auth_token: Option<crate::auth::UserToken>,
    /// The caller's service catalog (`_context_service_catalog`), if any.
    pub service_catalog: Option<serde_json::Value>,
}

/// Why a cast could not be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TaskManagerError {
    /// The broker cannot be reached (503).
    #[error("taskmanager unreachable: {0}")]
    Unavailable(String),
    /// Any other failure to send (500).
    #[error("taskmanager cast failed: {0}")]
    Failed(String),
}

/// Sends casts to the taskmanager (`Arc<dyn TaskManagerClient>`).
pub trait TaskManagerClient: Send + Sync + std::fmt::Debug + 'static {
    /// Casts `method` with keyword arguments `args` (a JSON object); returns once the
    /// message is handed to the transport.
    fn cast<'a>(
        &'a self,
        context: &'a CastContext,
        method: &'a str,
        args: serde_json::Value,
    ) -> BoxFuture<'a, Result<(), TaskManagerError>>;
}

/// A taskmanager client that records casts in memory, for tests and dry runs.
#[derive(Debug, Default)]
pub struct RecordingTaskManager {
    casts: std::sync::Mutex<Vec<(CastContext, String, serde_json::Value)>>,
}

impl RecordingTaskManager {
    /// A recorder with nothing recorded.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every cast so far: (context, method, args).
    pub fn casts(&self) -> Vec<(CastContext, String, serde_json::Value)> {
        self.casts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

impl TaskManagerClient for RecordingTaskManager {
    fn cast<'a>(
        &'a self,
        context: &'a CastContext,
        method: &'a str,
        args: serde_json::Value,
    ) -> BoxFuture<'a, Result<(), TaskManagerError>> {
        Box::pin(async move {
            self.casts
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push((context.clone(), method.to_string(), args));
            Ok(())
        })
    }
}

/// The taskmanager over trove-rpc: casts go through its typed [`TaskManagerApi`]
/// (topic `taskmanager_queue`, encrypted with `taskmanager_rpc_encr_key` when secure RPC
/// messaging is on).
///
/// [`TaskManagerApi`]: trove_rpc::api::taskmanager::TaskManagerApi
#[derive(Debug, Clone)]
pub struct RpcTaskManager {
    api: trove_rpc::api::taskmanager::TaskManagerApi,
}

impl RpcTaskManager {
    /// Wraps a typed taskmanager client.
    pub fn new(api: trove_rpc::api::taskmanager::TaskManagerApi) -> Self {
        Self { api }
    }
}

/// The RPC context of a cast, with the caller's identity and the request id.
pub fn rpc_context(c: &CastContext) -> trove_rpc::RpcContext {
    trove_rpc::RpcContext {
        user: Some(c.user_id.clone()),
        project_id: Some(c.project_id.clone()),
        project: Some(c.project_id.clone()),
        is_admin: c.is_admin,
        roles: c.roles.clone(),
        request_id: Some(c.request_id.clone()),
        global_request_id: Some(c.request_id.clone()),
        auth_token: c.auth_token.as_ref().map(|t| t.0.clone()),
        service_catalog: c.service_catalog.clone(),
        ..trove_rpc::RpcContext::default()
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
            let serde_json::Value::Object(map) = args else {
                return Err(TaskManagerError::Failed(format!(
                    "arguments of {method} are not an object"
                )));
            };
            let request = trove_rpc::api::taskmanager::TaskManagerRequest::decode(method, map)
                .map_err(|e| TaskManagerError::Failed(e.to_string()))?;
            self.api
                .cast(&rpc_context(context), &request)
                .await
                .map_err(|e| match e {
                    trove_rpc::RpcError::Unavailable(_)
                    | trove_rpc::RpcError::Shutdown
                    | trove_rpc::RpcError::NotAccepted(_)
                    | trove_rpc::RpcError::Timeout { .. } => {
                        TaskManagerError::Unavailable(e.to_string())
                    }
                    other => TaskManagerError::Failed(other.to_string()),
                })
        })
    }
}
