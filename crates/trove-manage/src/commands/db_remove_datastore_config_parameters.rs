//! `db_remove_datastore_config_parameters datastore datastore_version_name [--version N]`:
//! delete every validation rule of a version.

use trove_db::Db;

use crate::commands::find_version;
use crate::ManageError;

pub(crate) async fn run(
    db: &Db,
    datastore: &str,
    version_name: &str,
    version: Option<&str>,
) -> Result<String, ManageError> {
    let (_, v) = find_version(db, datastore, version_name, version).await?;
    let n = db.config_params_delete_all(&v.id).await?;
    Ok(format!(
        "Removed {n} configuration parameters of datastore '{datastore}' version '{version_name}'."
    ))
}
