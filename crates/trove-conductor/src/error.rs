//! [`ConductorError`]: why the conductor did not apply a message, or could not start.
//!
//! Every conductor method is a cast, so these errors never travel back to a guest: the RPC
//! server logs them (once, as "cast failed") and counts them in [`crate::ConductorStats`].
//! Messages dropped on purpose (stale, RESTART_REQUIRED, a backup of another instance) are
//! not errors; they are [`crate::Outcome`]s.

use trove_db::DbError;
use trove_rpc::{RemoteError, RpcError};

/// Class name of the remote error for a message the conductor refused to trust (it counts
/// as rejected, like a message that does not decrypt).
pub const REJECTED_CLASS: &str = "MessageRejected";

/// Errors of the conductor.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConductorError {
    /// The message is not authenticated for the instance it is about: it was encrypted by
    /// another instance, or sent in clear about an instance that has an RPC key.
    #[error("rejected {method} about instance {instance_id}: {reason}")]
    Rejected {
        /// The RPC method.
        method: String,
        /// The instance the message claims to be about.
        instance_id: String,
        /// Why (never contains message content).
        reason: String,
    },
    /// A heartbeat carried a service status description that maps to no status.
    #[error("instance {instance_id} reported an unknown service status {description:?}; nothing was written")]
    UnknownStatus {
        /// The instance.
        instance_id: String,
        /// The description as received (truncated to 64 characters).
        description: String,
    },
    /// Arguments missing or of the wrong type, or an unknown method.
    #[error("{0}")]
    Request(RemoteError),
    /// A database call failed (including rows that do not exist).
    #[error("{context}: {source}")]
    Db {
        /// What the conductor was doing, naming the instance.
        context: String,
        /// The repository error.
        #[source]
        source: DbError,
    },
    /// The RPC key of an instance could not be looked up (database unreachable).
    #[error("looking up the RPC key of instance {instance_id}: {source}")]
    KeyLookup {
        /// The instance.
        instance_id: String,
        /// The lookup error.
        #[source]
        source: RpcError,
    },
    /// The transport failed (starting the RPC server).
    #[error(transparent)]
    Rpc(#[from] RpcError),
}

impl ConductorError {
    /// Builds a [`ConductorError::Db`] with a context naming what was being done.
    pub fn db(context: impl Into<String>) -> impl FnOnce(DbError) -> ConductorError {
        let context = context.into();
        move |source| ConductorError::Db { context, source }
    }

    /// True for [`ConductorError::Rejected`].
    pub fn is_rejected(&self) -> bool {
        matches!(self, ConductorError::Rejected { .. })
    }

    /// The remote error a cast handler returns for this error (logged by the RPC server).
    pub fn to_remote(&self) -> RemoteError {
        match self {
            ConductorError::Rejected { .. } => RemoteError::trove(REJECTED_CLASS, self.to_string()),
            ConductorError::UnknownStatus { .. } => {
                RemoteError::new("ValueError", "builtins", self.to_string())
            }
            ConductorError::Request(r) => r.clone(),
            ConductorError::Db {
                source: DbError::NotFound { .. },
                ..
            } => RemoteError::trove("ModelNotFoundError", self.to_string()),
            ConductorError::Db { .. } => RemoteError::trove("DBError", self.to_string()),
            ConductorError::KeyLookup { .. } | ConductorError::Rpc(_) => {
                RemoteError::trove("TroveError", self.to_string())
            }
        }
    }
}
