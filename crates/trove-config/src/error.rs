//! Start-up errors and warnings of configuration loading.
//!
//! Errors are fatal: the service must not start. Each names the file, and where relevant the
//! line or the `[group] option`, so the operator can go straight to the culprit. Warnings
//! (unknown options and groups, deprecated names) never stop start-up; they are returned to
//! the caller and also logged with `tracing::warn!`.

use std::fmt;
use std::path::PathBuf;

/// A configuration that cannot be used; the service must not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A file named with `--config-file` does not exist.
    #[error("{}: config file not found", path.display())]
    FileNotFound {
        /// The file.
        path: PathBuf,
    },
    /// A file or directory exists but cannot be read (permissions, not UTF-8...).
    #[error("{}: cannot read: {source}", path.display())]
    Unreadable {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A directory named with `--config-dir` does not exist.
    #[error("{}: config directory not found", path.display())]
    DirNotFound {
        /// The directory.
        path: PathBuf,
    },
    /// A line that is not valid INI syntax.
    #[error("{file}:{line}: {message}")]
    Parse {
        /// The file (or in-memory source name).
        file: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A value that does not fit the option's type or constraints.
    #[error("{file}: [{group}] {option}: {reason}")]
    InvalidValue {
        /// The file that set the value (`built-in default` for defaults).
        file: String,
        /// The group, as written in the file.
        group: String,
        /// The option, as written in the file (possibly a deprecated name).
        option: String,
        /// Why the value is rejected, e.g. `invalid integer value "ten"`.
        reason: String,
    },
    /// A `$option` or `${group.option}` reference that cannot be substituted.
    #[error("{file}: [{group}] {option}: cannot substitute ${{{reference}}}: {reason}")]
    Interpolation {
        /// The file that set the value (`built-in default` for defaults).
        file: String,
        /// The group of the option holding the reference.
        group: String,
        /// The option holding the reference.
        option: String,
        /// The reference, e.g. `mysql.default_password_length`.
        reference: String,
        /// Why, e.g. `unknown option` or `circular reference`.
        reason: String,
    },
    /// An option without a default that no file sets.
    #[error("{files}: [{group}] {option}: required option is not set")]
    MissingRequired {
        /// The files that were read, comma separated (or `no config file`).
        files: String,
        /// The group.
        group: String,
        /// The option.
        option: String,
    },
}

/// What a [`ConfigWarning`] is about.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WarningKind {
    /// An option name the group does not have; the line is ignored.
    UnknownOption,
    /// A group that is not known; the whole section is ignored.
    UnknownGroup,
    /// A datastore group (e.g. `[percona]`) whose datastore is not supported; ignored.
    UnsupportedDatastore,
    /// A deprecated name was used; its value applies to the new option.
    DeprecatedName {
        /// Group of the option to use instead.
        group: String,
        /// Name of the option to use instead.
        option: String,
    },
    /// An option deprecated for removal was set.
    DeprecatedForRemoval,
}

/// A problem in a config file that does not prevent start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigWarning {
    /// The file (or in-memory source name).
    pub file: String,
    /// The group as written in the file.
    pub group: String,
    /// The option as written, `None` for group-level warnings.
    pub option: Option<String>,
    /// 1-based line of the first occurrence.
    pub line: usize,
    /// What the warning is about.
    pub kind: WarningKind,
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.option {
            Some(option) => write!(f, "{}: [{}] {}: ", self.file, self.group, option)?,
            None => write!(f, "{}: [{}]: ", self.file, self.group)?,
        }
        match &self.kind {
            WarningKind::UnknownOption => f.write_str("unknown option, ignored"),
            WarningKind::UnknownGroup => f.write_str("unknown group, ignored"),
            WarningKind::UnsupportedDatastore => {
                f.write_str("datastore not supported by Trove-rs, group ignored")
            }
            WarningKind::DeprecatedName { group, option } => {
                write!(f, "deprecated name, use [{group}] {option}")
            }
            WarningKind::DeprecatedForRemoval => f.write_str("option is deprecated for removal"),
        }
    }
}
