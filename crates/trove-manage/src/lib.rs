//! trove-manage: the operator's commands for the control database.
//!
//! Subcommand names and positional arguments are Trove's (`db_sync`,
//! `datastore_update mysql ""`, `datastore_version_update mysql 5.7.29 mysql $imageid "" 1`,
//! `db_load_datastore_config_parameters mysql 5.7.29 validation-rules.json`, ...), so the
//! commands of Trove's operator guide run verbatim; `flavor_create`/`flavor_delete`/
//! `flavor_list` are ours, for the flavors of the local compute driver.
//!
//! This crate is the library: [`Command`] (a clap subcommand enum) and [`run`]. The binary
//! (config loading, `--config-file`, connecting the [`Db`]) lives in the `trove` crate. Each
//! subcommand has its own file under `commands/`. Every command that writes does so in one
//! transaction, so bad input leaves the database unchanged.

pub mod commands;
pub mod rules;

use clap::{Parser, Subcommand};
use trove_db::{Db, DbError};

pub use commands::run;

/// Errors of trove-manage commands; the message names the problem.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManageError {
    /// The database refused or could not find something.
    #[error(transparent)]
    Db(#[from] DbError),
    /// A command argument or input file is invalid.
    #[error("{0}")]
    Invalid(String),
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The command is not supported any more.
    #[error("{0}")]
    Unsupported(String),
}

/// trove-manage subcommands with Trove's names and arguments.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
#[non_exhaustive]
pub enum Command {
    /// Create or upgrade the control database schema to the newest version.
    #[command(name = "db_sync")]
    DbSync {
        /// Ignored (kept for compatibility with Trove).
        #[arg(long = "repo_path")]
        repo_path: Option<String>,
    },
    /// Upgrade the schema to a revision (`head` by default).
    #[command(name = "db_upgrade")]
    DbUpgrade {
        /// Target revision: `head` or Trove's alembic head revision.
        #[arg(long = "version")]
        version: Option<String>,
        /// Ignored (kept for compatibility with Trove).
        #[arg(long = "repo_path")]
        repo_path: Option<String>,
    },
    /// Not supported: always fails.
    #[command(name = "db_downgrade")]
    DbDowngrade {
        /// Target version (ignored).
        version: String,
        /// Ignored.
        #[arg(long = "repo_path")]
        repo_path: Option<String>,
    },
    /// Drop every table and create the schema again (all data is lost).
    #[command(name = "db_recreate")]
    DbRecreate {
        /// Ignored (kept for compatibility with Trove).
        #[arg(long = "repo_path")]
        repo_path: Option<String>,
    },
    /// Create a datastore if missing and set its default version (`""` for none).
    #[command(name = "datastore_update")]
    DatastoreUpdate {
        /// Datastore name.
        datastore_name: String,
        /// Name or id of an active version, or `""` to clear.
        default_version: String,
    },
    /// Create or update a datastore version.
    #[command(name = "datastore_version_update")]
    DatastoreVersionUpdate {
        /// Datastore name.
        datastore: String,
        /// Version name.
        version_name: String,
        /// Guest manager (`mysql`, `mariadb`, `postgresql`).
        manager: String,
        /// Image id, or `""` when --image-tags is used.
        image_id: String,
        /// Packages (often `""`).
        packages: String,
        /// 1 (active) or 0 (inactive).
        active: String,
        /// Comma separated image tags.
        #[arg(long = "image-tags")]
        image_tags: Option<String>,
        /// Version number (image tag); defaults to the version name.
        #[arg(long = "version", visible_alias = "version-number")]
        version: Option<String>,
        /// Guest manager class (default from the manager).
        #[arg(long = "registry-ext")]
        registry_ext: Option<String>,
        /// Replication strategy class (default from the manager).
        #[arg(long = "repl-strategy")]
        repl_strategy: Option<String>,
    },
    /// Load validation rules for a datastore version from a JSON file.
    #[command(name = "db_load_datastore_config_parameters")]
    DbLoadDatastoreConfigParameters {
        /// Datastore name.
        datastore: String,
        /// Version name.
        datastore_version_name: String,
        /// Path of the validation-rules JSON file.
        config_file_location: String,
        /// Version number, when several versions share the name.
        #[arg(long = "version")]
        version: Option<String>,
    },
    /// Delete every validation rule of a datastore version.
    #[command(name = "db_remove_datastore_config_parameters")]
    DbRemoveDatastoreConfigParameters {
        /// Datastore name.
        datastore: String,
        /// Version name.
        datastore_version_name: String,
        /// Version number, when several versions share the name.
        #[arg(long = "version")]
        version: Option<String>,
    },
    /// Restrict a datastore version to flavors (comma separated ids).
    #[command(name = "datastore_version_flavor_add")]
    DatastoreVersionFlavorAdd {
        /// Datastore name.
        datastore_name: String,
        /// Version name.
        datastore_version_name: String,
        /// Comma separated flavor ids.
        flavor_ids: String,
        /// Version number, when several versions share the name.
        #[arg(long = "version")]
        version: Option<String>,
    },
    /// Remove one flavor association of a datastore version.
    #[command(name = "datastore_version_flavor_delete")]
    DatastoreVersionFlavorDelete {
        /// Datastore name.
        datastore_name: String,
        /// Version name.
        datastore_version_name: String,
        /// Flavor id.
        flavor_id: String,
        /// Version number, when several versions share the name.
        #[arg(long = "version")]
        version: Option<String>,
    },
    /// Restrict a datastore version to volume types (comma separated).
    #[command(name = "datastore_version_volume_type_add")]
    DatastoreVersionVolumeTypeAdd {
        /// Datastore name.
        datastore_name: String,
        /// Version name.
        datastore_version_name: String,
        /// Comma separated volume type names or ids.
        volume_type_ids: String,
        /// Version number, when several versions share the name.
        #[arg(long = "version")]
        version: Option<String>,
    },
    /// Remove one volume type association of a datastore version.
    #[command(name = "datastore_version_volume_type_delete")]
    DatastoreVersionVolumeTypeDelete {
        /// Datastore name.
        datastore_name: String,
        /// Version name.
        datastore_version_name: String,
        /// Volume type.
        volume_type_id: String,
        /// Version number, when several versions share the name.
        #[arg(long = "version")]
        version: Option<String>,
    },
    /// List the volume types associated with a datastore version.
    #[command(name = "datastore_version_volume_type_list")]
    DatastoreVersionVolumeTypeList {
        /// Datastore name.
        datastore_name: String,
        /// Version name.
        datastore_version_name: String,
        /// Version number, when several versions share the name.
        #[arg(long = "version")]
        version: Option<String>,
    },
    /// Define a flavor for the local compute driver.
    #[command(name = "flavor_create")]
    FlavorCreate {
        /// Flavor name.
        name: String,
        /// Memory in MB.
        ram: i32,
        /// Virtual CPUs.
        vcpus: i32,
        /// Root disk in GB.
        disk: i32,
        /// Flavor id (default: a new UUID).
        #[arg(long = "id")]
        id: Option<String>,
        /// Ephemeral disk in GB.
        #[arg(long = "ephemeral", default_value_t = 0)]
        ephemeral: i32,
    },
    /// Delete a flavor of the local compute driver.
    #[command(name = "flavor_delete")]
    FlavorDelete {
        /// Flavor id.
        id: String,
    },
    /// List the flavors of the local compute driver.
    #[command(name = "flavor_list")]
    FlavorList,
}

#[derive(Debug, Parser)]
#[command(name = "trove-manage")]
struct Args {
    #[command(subcommand)]
    command: Command,
}

/// Parses a full argument vector (`["trove-manage", "db_sync"]`) into a [`Command`].
///
/// The real binary embeds [`Command`] in its own parser; this is for tests and tools.
pub fn parse_args<I, T>(args: I) -> Result<Command, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    Args::try_parse_from(args).map(|a| a.command)
}

/// Convenience: parse then [`run`].
pub async fn run_args<I, T>(db: &Db, args: I) -> Result<String, ManageError>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cmd = parse_args(args).map_err(|e| ManageError::Invalid(e.to_string()))?;
    run(db, cmd).await
}
