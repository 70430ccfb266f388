//! Errors of backup storage.

/// Result alias of this crate.
pub type Result<T, E = BackupError> = std::result::Result<T, E>;

/// What went wrong storing or reading a backup object.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackupError {
    /// A container or object name that cannot be used.
    #[error("{0}")]
    InvalidName(String),
    /// A location this store cannot serve (other scheme, outside its root, malformed).
    #[error("invalid backup location '{location}': {reason}")]
    InvalidLocation {
        /// The location.
        location: String,
        /// Why.
        reason: String,
    },
    /// No backup object at that location.
    #[error("backup object {0} does not exist")]
    NotFound(String),
    /// An object of that name exists already.
    #[error("backup object {0} already exists")]
    AlreadyExists(String),
    /// A segment's bytes or size differ from what the manifest records (tampered or damaged).
    #[error("backup object {location} is corrupt: {detail}")]
    Corrupt {
        /// The object.
        location: String,
        /// What differs.
        detail: String,
    },
    /// The object's checksum is not the one expected.
    #[error("backup object {location} has checksum {actual}, expected {expected}")]
    ChecksumMismatch {
        /// The object.
        location: String,
        /// The checksum asked for.
        expected: String,
        /// The checksum found.
        actual: String,
    },
    /// A feature the object needs that this build does not have (e.g. encryption).
    #[error("{0}")]
    Unsupported(String),
    /// Object metadata the store cannot keep (Swift's limits on keys, values and size).
    #[error("{0}")]
    InvalidMetadata(String),
    /// A Swift store was asked for without the user's token.
    #[error("backup storage at {0} is Swift, which is reached with the user's auth token, and the request carried none; only a local directory (file://) store works without one")]
    NoToken(String),
    /// Swift refused the token (expired, revoked or not valid for that account).
    #[error("{detail} ({url})")]
    Unauthorized {
        /// The URL asked for.
        url: String,
        /// What was being done.
        detail: String,
    },
    /// The object store could not be reached or refused a request.
    #[error("{context}: {detail}")]
    Remote {
        /// What was being done.
        context: String,
        /// The HTTP status, when there was an answer.
        status: Option<u16>,
        /// What happened.
        detail: String,
    },
    /// File system or stream error, with what was being done.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl BackupError {
    /// Builds an [`BackupError::Io`].
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        BackupError::Io {
            context: context.into(),
            source,
        }
    }

    /// The HTTP status of a refusal by the object store, if that is what happened.
    pub fn http_status(&self) -> Option<u16> {
        match self {
            BackupError::Remote { status, .. } => *status,
            BackupError::Unauthorized { .. } => Some(401),
            _ => None,
        }
    }

    /// True when the object was refused because its contents are not what was stored.
    pub fn is_integrity_error(&self) -> bool {
        matches!(
            self,
            BackupError::Corrupt { .. } | BackupError::ChecksumMismatch { .. }
        )
    }
}
