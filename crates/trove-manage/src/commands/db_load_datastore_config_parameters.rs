//! `db_load_datastore_config_parameters datastore datastore_version_name config_file_location
//! [--version N]`: load a validation-rules file for a version (inactive versions too).
//! The file is checked completely first; the rules are then written in one transaction.

use trove_db::Db;

use crate::commands::find_version;
use crate::rules::parse_rules;
use crate::ManageError;

pub(crate) async fn run(
    db: &Db,
    datastore: &str,
    version_name: &str,
    path: &str,
    version: Option<&str>,
) -> Result<String, ManageError> {
    let (_, v) = find_version(db, datastore, version_name, version).await?;
    let text = std::fs::read_to_string(path).map_err(|source| ManageError::Io {
        path: path.to_string(),
        source,
    })?;
    let rules = parse_rules(&text).map_err(|e| match e {
        ManageError::Invalid(m) => ManageError::Invalid(format!("{path}: {m}")),
        other => other,
    })?;
    let n = db.config_params_upsert(&v.id, &rules).await?;
    Ok(format!(
        "Loaded {n} configuration parameters for datastore '{datastore}' version '{version_name}'."
    ))
}
