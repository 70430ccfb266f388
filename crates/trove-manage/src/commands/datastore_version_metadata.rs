//! `datastore_version_flavor_add/delete` and `datastore_version_volume_type_add/delete/list`:
//! the flavors and volume types a datastore version is restricted to.

use trove_db::{Db, METADATA_FLAVOR};

use crate::commands::find_version;
use crate::ManageError;

fn noun(key: &str) -> &'static str {
    if key == METADATA_FLAVOR {
        "flavor"
    } else {
        "volume type"
    }
}

pub(crate) async fn add(
    db: &Db,
    key: &str,
    datastore: &str,
    version_name: &str,
    values: &str,
    version: Option<&str>,
) -> Result<String, ManageError> {
    let values: Vec<String> = values
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    if values.is_empty() {
        return Err(ManageError::Invalid(format!("no {} given", noun(key))));
    }
    let (_, v) = find_version(db, datastore, version_name, version).await?;
    db.datastore_version_metadata_add(&v.id, key, &values)
        .await?;
    Ok(format!(
        "Added {} association(s) {} to datastore '{datastore}' version '{version_name}'.",
        noun(key),
        values.join(", ")
    ))
}

pub(crate) async fn delete(
    db: &Db,
    key: &str,
    datastore: &str,
    version_name: &str,
    value: &str,
    version: Option<&str>,
) -> Result<String, ManageError> {
    let (_, v) = find_version(db, datastore, version_name, version).await?;
    db.datastore_version_metadata_delete(&v.id, key, value)
        .await?;
    Ok(format!(
        "Deleted {} association {value} from datastore '{datastore}' version '{version_name}'.",
        noun(key)
    ))
}

pub(crate) async fn list(
    db: &Db,
    key: &str,
    datastore: &str,
    version_name: &str,
    version: Option<&str>,
) -> Result<String, ManageError> {
    let (_, v) = find_version(db, datastore, version_name, version).await?;
    let values = db.datastore_version_metadata_list(&v.id, key).await?;
    if values.is_empty() {
        return Ok(format!(
            "Datastore '{datastore}' version '{version_name}' has no {} associations.",
            noun(key)
        ));
    }
    Ok(format!(
        "{} associations of datastore '{datastore}' version '{version_name}':\n{}",
        if key == METADATA_FLAVOR {
            "Flavor"
        } else {
            "Volume type"
        },
        values.join("\n")
    ))
}
