//! Datastores, their versions, and what is bound to a version (api.md §10.8, §11).
//!
//! - [`show`]: `GET /datastores`, `GET /datastores/{id_or_name}`;
//! - [`versions`]: version lists and shows, by datastore or by version id;
//! - [`associations`]: flavors and volume types allowed for a version;
//! - [`params`]: configuration parameters of a version.

pub mod associations;
pub mod params;
pub mod show;
pub mod versions;

use trove_db::{Datastore, DatastoreVersion, DbError};

use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use crate::validation::is_uuid;

/// Loads a datastore by id, then by name (404 "Datastore 'x' cannot be found.").
pub async fn load_datastore(state: &AppState, id_or_name: &str) -> ApiResult<Datastore> {
    Ok(state.db().datastore_get(id_or_name).await?)
}

/// Loads a version of `ds` as api.md §11.4 says: a UUID-shaped value by id within the
/// datastore (404 when absent), otherwise by name (400 none, 400 several).
pub async fn load_version_of(
    state: &AppState,
    ds: &Datastore,
    id_or_name: &str,
) -> ApiResult<DatastoreVersion> {
    if is_uuid(id_or_name) {
        return match state.db().datastore_version_get(id_or_name).await {
            Ok(v) if v.datastore_id == ds.id => Ok(v),
            Ok(_) | Err(DbError::NotFound { .. }) => Err(ApiError::resource_not_found(id_or_name)),
            Err(e) => Err(e.into()),
        };
    }
    Ok(state
        .db()
        .datastore_version_find(&ds.id, id_or_name, None)
        .await?)
}

/// Loads a version by id alone (400 "Datastore version 'x' cannot be found." when unknown).
pub async fn load_version_by_id(state: &AppState, id: &str) -> ApiResult<DatastoreVersion> {
    Ok(state.db().datastore_version_get(id).await?)
}
