//! `datastore_version_update datastore version_name manager image_id packages active
//! [--image-tags T1,T2] [--version NUMBER] [--registry-ext CLASS] [--repl-strategy CLASS]`.

use trove_db::{DatastoreVersionSpec, Db};

use crate::ManageError;

/// The command's arguments, as given.
pub(crate) struct Args {
    pub datastore: String,
    pub version_name: String,
    pub manager: String,
    pub image_id: String,
    pub packages: String,
    pub active: String,
    pub image_tags: Option<String>,
    pub version: Option<String>,
    pub registry_ext: Option<String>,
    pub repl_strategy: Option<String>,
}

pub(crate) async fn run(db: &Db, a: Args) -> Result<String, ManageError> {
    let active = match a.active.trim() {
        "1" => true,
        "0" => false,
        other => {
            return Err(ManageError::Invalid(format!(
                "active must be 1 or 0, got '{other}'"
            )))
        }
    };
    if a.version_name.trim().is_empty() {
        return Err(ManageError::Invalid(
            "version name must not be empty".into(),
        ));
    }
    if a.manager.trim().is_empty() {
        return Err(ManageError::Invalid("manager must not be empty".into()));
    }
    let image_tags = a.image_tags.map(|t| {
        t.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(",")
    });
    if a.image_id.is_empty() && image_tags.as_deref().is_none_or(str::is_empty) {
        tracing::warn!(
            "neither an image id nor image tags given for datastore version {}",
            a.version_name
        );
    }
    let spec = DatastoreVersionSpec {
        datastore: a.datastore.clone(),
        name: a.version_name.clone(),
        manager: a.manager,
        image_id: a.image_id,
        packages: a.packages,
        active,
        image_tags,
        version: a.version.filter(|v| !v.is_empty()),
        registry_ext: a.registry_ext,
        repl_strategy: a.repl_strategy,
    };
    let v = db.datastore_version_upsert(&spec).await?;
    Ok(format!(
        "Datastore version '{}' (version {}) of datastore '{}' updated.",
        v.name,
        v.version.as_deref().unwrap_or(""),
        a.datastore
    ))
}
