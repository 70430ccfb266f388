//! One file per subcommand; [`run`] dispatches a parsed [`Command`].

mod datastore_update;
mod datastore_version_metadata;
mod datastore_version_update;
mod db_load_datastore_config_parameters;
mod db_remove_datastore_config_parameters;
mod db_sync;
mod flavors;

use trove_db::{Datastore, DatastoreVersion, Db};

use crate::{Command, ManageError};

/// Runs one command against the control database; returns the text to print.
///
/// Errors carry a message naming the problem; the caller prints it and exits non-zero.
/// Commands that write do so in one transaction: on error nothing was written.
pub async fn run(db: &Db, cmd: Command) -> Result<String, ManageError> {
    match cmd {
        Command::DbSync { .. } => db_sync::db_sync(db).await,
        Command::DbUpgrade { version, .. } => db_sync::db_upgrade(db, version.as_deref()).await,
        Command::DbDowngrade { .. } => Err(ManageError::Unsupported(
            "Database downgrade is no longer supported.".into(),
        )),
        Command::DbRecreate { .. } => db_sync::db_recreate(db).await,
        Command::DatastoreUpdate {
            datastore_name,
            default_version,
        } => datastore_update::run(db, &datastore_name, &default_version).await,
        Command::DatastoreVersionUpdate {
            datastore,
            version_name,
            manager,
            image_id,
            packages,
            active,
            image_tags,
            version,
            registry_ext,
            repl_strategy,
        } => {
            datastore_version_update::run(
                db,
                datastore_version_update::Args {
                    datastore,
                    version_name,
                    manager,
                    image_id,
                    packages,
                    active,
                    image_tags,
                    version,
                    registry_ext,
                    repl_strategy,
                },
            )
            .await
        }
        Command::DbLoadDatastoreConfigParameters {
            datastore,
            datastore_version_name,
            config_file_location,
            version,
        } => {
            db_load_datastore_config_parameters::run(
                db,
                &datastore,
                &datastore_version_name,
                &config_file_location,
                version.as_deref(),
            )
            .await
        }
        Command::DbRemoveDatastoreConfigParameters {
            datastore,
            datastore_version_name,
            version,
        } => {
            db_remove_datastore_config_parameters::run(
                db,
                &datastore,
                &datastore_version_name,
                version.as_deref(),
            )
            .await
        }
        Command::DatastoreVersionFlavorAdd {
            datastore_name,
            datastore_version_name,
            flavor_ids,
            version,
        } => {
            datastore_version_metadata::add(
                db,
                trove_db::METADATA_FLAVOR,
                &datastore_name,
                &datastore_version_name,
                &flavor_ids,
                version.as_deref(),
            )
            .await
        }
        Command::DatastoreVersionFlavorDelete {
            datastore_name,
            datastore_version_name,
            flavor_id,
            version,
        } => {
            datastore_version_metadata::delete(
                db,
                trove_db::METADATA_FLAVOR,
                &datastore_name,
                &datastore_version_name,
                &flavor_id,
                version.as_deref(),
            )
            .await
        }
        Command::DatastoreVersionVolumeTypeAdd {
            datastore_name,
            datastore_version_name,
            volume_type_ids,
            version,
        } => {
            datastore_version_metadata::add(
                db,
                trove_db::METADATA_VOLUME_TYPE,
                &datastore_name,
                &datastore_version_name,
                &volume_type_ids,
                version.as_deref(),
            )
            .await
        }
        Command::DatastoreVersionVolumeTypeDelete {
            datastore_name,
            datastore_version_name,
            volume_type_id,
            version,
        } => {
            datastore_version_metadata::delete(
                db,
                trove_db::METADATA_VOLUME_TYPE,
                &datastore_name,
                &datastore_version_name,
                &volume_type_id,
                version.as_deref(),
            )
            .await
        }
        Command::DatastoreVersionVolumeTypeList {
            datastore_name,
            datastore_version_name,
            version,
        } => {
            datastore_version_metadata::list(
                db,
                trove_db::METADATA_VOLUME_TYPE,
                &datastore_name,
                &datastore_version_name,
                version.as_deref(),
            )
            .await
        }
        Command::FlavorCreate {
            name,
            ram,
            vcpus,
            disk,
            id,
            ephemeral,
        } => flavors::create(db, name, ram, vcpus, disk, id, ephemeral).await,
        Command::FlavorDelete { id } => flavors::delete(db, &id).await,
        Command::FlavorList => flavors::list(db).await,
    }
}

/// Looks up a datastore by name (or id) and one of its versions by name (or id),
/// narrowed by version number when given.
pub(crate) async fn find_version(
    db: &Db,
    datastore: &str,
    version_name: &str,
    version: Option<&str>,
) -> Result<(Datastore, DatastoreVersion), ManageError> {
    let ds = db.datastore_get(datastore).await?;
    let v = db
        .datastore_version_find(&ds.id, version_name, version)
        .await?;
    Ok((ds, v))
}
