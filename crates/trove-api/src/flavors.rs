//! Where the API's flavors come from: the control database's `flavors` table (the local
//! compute driver, managed with `trove-manage flavor_create`) or the cloud's compute service
//! (Nova, with the OpenStack driver), behind [`FlavorSource`]. `GET /flavors`, the flavor
//! checks of create and resize, the quota of delete and the flavors of a datastore version
//! all read through it, so a tenant sees and uses the flavors the servers will really get.

use std::fmt::Debug;

use async_trait::async_trait;
use trove_db::{Db, DbError, Flavor};

use crate::error::ApiResult;

/// A catalog of flavors.
#[async_trait]
pub trait FlavorSource: Send + Sync + Debug {
    /// Every flavor a tenant may use.
    async fn list(&self) -> ApiResult<Vec<Flavor>>;

    /// The flavor `id`, or `None` when there is none of that id.
    async fn get(&self, id: &str) -> ApiResult<Option<Flavor>>;
}

/// The control database's flavors (the default).
#[derive(Debug, Clone)]
pub struct DbFlavors(pub Db);

#[async_trait]
impl FlavorSource for DbFlavors {
    async fn list(&self) -> ApiResult<Vec<Flavor>> {
        Ok(self.0.flavor_list().await?)
    }

    async fn get(&self, id: &str) -> ApiResult<Option<Flavor>> {
        match self.0.flavor_get(id).await {
            Ok(f) => Ok(Some(f)),
            Err(DbError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}
