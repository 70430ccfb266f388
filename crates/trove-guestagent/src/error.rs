//! Errors of the datastore layer.
//!
//! One enum so the RPC layer can tell "the request was wrong" (bad or reserved names, duplicates,
//! missing users) from "the guest failed" (I/O, SQL, process supervision). The messages follow
//! the wording Trove's API shows to tenants where one exists.

/// Result alias of this crate.
pub type Result<T, E = GuestError> = std::result::Result<T, E>;

/// What went wrong in a datastore operation.
#[derive(Debug, thiserror::Error)]
pub enum GuestError {
    /// A name, host, password or option failed validation; nothing was changed.
    #[error("{0}")]
    InvalidValue(String),
    /// The name is on the datastore's reserved list; nothing was changed.
    #[error("{0} is a reserved name.")]
    Reserved(String),
    /// The database or user exists already.
    #[error("{0}")]
    AlreadyExists(String),
    /// The database or user does not exist.
    #[error("{0}")]
    NotFound(String),
    /// `prepare` was already completed on this instance (the end marker exists).
    #[error("the instance is already prepared (marker {0} exists); refusing to prepare again")]
    AlreadyPrepared(String),
    /// The operation needs a running server and there is none.
    #[error("the database server is not running")]
    NotRunning,
    /// The server did not reach the wanted state in time.
    #[error("timed out after {secs} s waiting for the database server to become {wanted}")]
    Timeout {
        /// What we waited for.
        wanted: &'static str,
        /// How long.
        secs: u64,
    },
    /// A helper program failed (initialisation, user creation).
    #[error("{program} failed: {detail}")]
    Command {
        /// The program that ran.
        program: String,
        /// Exit status and output.
        detail: String,
    },
    /// The data volume cannot be used as asked (missing device, not a block device, mounted
    /// elsewhere...).
    #[error("{0}")]
    Volume(String),
    /// The operation is not available for this datastore.
    #[error("operation not supported: {0}")]
    NotSupported(String),
    /// File system error, with the path involved.
    #[error("{context}: {source}")]
    Io {
        /// What we were doing.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The server answered a query with an error.
    #[error("database error: {0}")]
    Sql(#[from] sqlx::Error),
    /// Backup storage refused or failed (missing or tampered object, I/O).
    #[error("backup storage: {0}")]
    Backup(#[from] trove_backup::BackupError),
}

impl GuestError {
    /// Builds an [`GuestError::Io`] from an error and what we were doing.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        GuestError::Io {
            context: context.into(),
            source,
        }
    }

    /// True when the error is the caller's fault (a bad request), not the guest's.
    pub fn is_client_error(&self) -> bool {
        matches!(
            self,
            GuestError::InvalidValue(_)
                | GuestError::Reserved(_)
                | GuestError::AlreadyExists(_)
                | GuestError::NotFound(_)
                | GuestError::AlreadyPrepared(_)
        )
    }
}
