//! The taskmanager's error type.

use trove_db::TaskStatus;

/// Why a workflow step failed. The message is what a tenant reads in the instance's
/// fault, so it says what failed in words, without internals such as keys.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TaskError {
    /// A driver call failed; `task` is the build error status Trove sets for that step.
    #[error("{step} failed: {source}")]
    Driver {
        /// The step (`volume`, `server`, `network`).
        step: &'static str,
        /// Error task status for the instance.
        task: TaskStatus,
        /// The driver's error.
        #[source]
        source: trove_compute::DriverError,
    },
    /// The guest agent refused or did not answer.
    #[error("guest agent: {0}")]
    Guest(#[from] trove_rpc::api::GuestError),
    /// The guest reported a failed state or never became ready.
    #[error("{0}")]
    Service(String),
    /// The control database failed.
    #[error("control database: {0}")]
    Db(#[from] trove_db::DbError),
    /// Something in the request or configuration cannot be used.
    #[error("{0}")]
    Invalid(String),
    /// The taskmanager is stopping; the workflow was left where it was.
    #[error("interrupted: the taskmanager is stopping")]
    Interrupted,
    /// The message broker failed.
    #[error("messaging: {0}")]
    Rpc(#[from] trove_rpc::RpcError),
}

impl TaskError {
    /// The build error task status for this failure during create.
    pub fn build_task(&self) -> TaskStatus {
        match self {
            TaskError::Driver { task, .. } => *task,
            TaskError::Service(_) | TaskError::Guest(_) => TaskStatus::BuildingErrorTimeoutGa,
            _ => TaskStatus::BuildingErrorServer,
        }
    }
}

/// Result of a workflow step.
pub type Result<T, E = TaskError> = std::result::Result<T, E>;
