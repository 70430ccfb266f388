//! `datastore_update datastore_name default_version`: create the datastore if missing and
//! set (or with `""` clear) its default version.

use trove_db::Db;

use crate::ManageError;

pub(crate) async fn run(db: &Db, name: &str, default_version: &str) -> Result<String, ManageError> {
    if name.trim().is_empty() {
        return Err(ManageError::Invalid(
            "datastore name must not be empty".into(),
        ));
    }
    let default = Some(default_version).filter(|v| !v.is_empty());
    db.datastore_update(name, default).await?;
    Ok(format!("Datastore '{name}' updated."))
}
