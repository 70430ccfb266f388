//! The error type of every repository call.
//!
//! Variants are the cases a caller acts on differently (a missing row is a 404, a lost
//! compare-and-set a 409, an exceeded quota a 413); everything else from the driver is
//! `Backend` and carries the driver error as its source. Messages never contain passwords.

/// Errors returned by [`crate::Db`] and its repositories.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DbError {
    /// No live row of `kind` has that id (or name).
    #[error("{} '{id}' cannot be found.", capitalize(kind))]
    NotFound {
        /// What was looked up, e.g. `datastore`, `instance`.
        kind: &'static str,
        /// The id or name that was asked for.
        id: String,
    },
    /// A row with the same unique key already exists.
    #[error("{} '{id}' already exists.", capitalize(kind))]
    AlreadyExists {
        /// What was being created.
        kind: &'static str,
        /// The conflicting key.
        id: String,
    },
    /// A name matches several rows where exactly one was expected (Trove's "no unique match").
    #[error("Multiple {kind}s found for '{name}'.")]
    NoUniqueMatch {
        /// What was looked up, e.g. `datastore version`.
        kind: &'static str,
        /// The ambiguous name.
        name: String,
    },
    /// A compare-and-set lost: the row changed since it was read.
    #[error("conflict: {0}")]
    Conflict(String),
    /// A reservation would exceed the project's limit for these resources (sorted names).
    #[error("Quota exceeded for resources: {}.", python_list(resources))]
    QuotaExceeded {
        /// Sorted names of the resources over their limit.
        resources: Vec<String>,
    },
    /// The input is not acceptable (bad URL, bad value, unknown quota resource...).
    #[error("{0}")]
    Invalid(String),
    /// A schema migration failed; the schema was left at the previous version.
    #[error("migration {version} ({name}) failed: {source}")]
    Migration {
        /// Version number of the failed migration.
        version: i64,
        /// Its name.
        name: &'static str,
        /// The statement's error.
        #[source]
        source: sqlx::Error,
    },
    /// Any other error from the database driver.
    #[error("database error: {0}")]
    Backend(#[source] sqlx::Error),
}

impl From<sqlx::Error> for DbError {
    fn from(e: sqlx::Error) -> Self {
        DbError::Backend(e)
    }
}

impl DbError {
    /// True for a unique-constraint violation reported by the driver.
    pub fn is_unique_violation(&self) -> bool {
        match self {
            DbError::Backend(e) => is_unique_violation(e),
            DbError::AlreadyExists { .. } => true,
            _ => false,
        }
    }

    /// True when the database could not be reached (pool timeout or closed, I/O, TLS):
    /// the API answers 503 for these.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            DbError::Backend(
                sqlx::Error::PoolTimedOut
                    | sqlx::Error::PoolClosed
                    | sqlx::Error::Io(_)
                    | sqlx::Error::Tls(_)
                    | sqlx::Error::WorkerCrashed
            )
        )
    }

    /// True for transient lock errors worth retrying (deadlock, serialization failure, busy).
    pub fn is_retryable(&self) -> bool {
        match self {
            DbError::Backend(sqlx::Error::Database(d)) => {
                let code = d.code().map(|c| c.to_string()).unwrap_or_default();
                // MySQL deadlock / lock wait timeout, PostgreSQL deadlock / serialization
                // failure, SQLite busy / locked.
                matches!(
                    code.as_str(),
                    "1213" | "1205" | "40001" | "40P01" | "5" | "6" | "517" | "261"
                ) || d.message().contains("Deadlock")
                    || d.message().contains("database is locked")
            }
            _ => false,
        }
    }
}

pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .map(|d| d.is_unique_violation())
        .unwrap_or(false)
}

/// Turns a unique violation into `AlreadyExists`, anything else into `Backend`.
pub(crate) fn map_unique<'a>(
    kind: &'static str,
    id: &'a str,
) -> impl FnOnce(sqlx::Error) -> DbError + 'a {
    move |e| {
        if is_unique_violation(&e) {
            DbError::AlreadyExists {
                kind,
                id: id.to_string(),
            }
        } else {
            DbError::Backend(e)
        }
    }
}

/// `datastore version` -> `Datastore version`, as Trove's messages start.
fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// Python's repr of a list of strings: `['instances', 'ram']`, as Trove's messages show it.
pub fn python_list(items: &[String]) -> String {
    let inner: Vec<String> = items.iter().map(|s| format!("'{s}'")).collect();
    format!("[{}]", inner.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_message_matches_trove() {
        let e = DbError::NotFound {
            kind: "datastore version",
            id: "5.7".into(),
        };
        assert_eq!(e.to_string(), "Datastore version '5.7' cannot be found.");
    }

    #[test]
    fn quota_message_matches_trove() {
        let e = DbError::QuotaExceeded {
            resources: vec!["instances".into(), "ram".into()],
        };
        assert_eq!(
            e.to_string(),
            "Quota exceeded for resources: ['instances', 'ram']."
        );
    }
}
