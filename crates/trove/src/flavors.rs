//! The API's flavor catalog for the configured compute driver: the control database's
//! `flavors` table with the local driver, Nova's flavors with the OpenStack driver (the
//! flavors the servers are really built with, as in Trove, where `flavorRef` is a Nova
//! flavor).

use std::sync::Arc;

use anyhow::Context;
use async_trait::async_trait;
use trove_api::error::{ApiError, ApiResult};
use trove_api::flavors::{DbFlavors, FlavorSource};
use trove_compute::FlavorSpec;
use trove_config::Config;
use trove_db::{Db, Flavor};
use trove_openstack::OpenStackDriver;

/// Nova's flavors, read with the service credentials on every request (Nova is the source
/// of truth: a flavor an operator adds or removes there shows at once).
#[derive(Debug, Clone)]
pub struct NovaFlavors(pub OpenStackDriver);

fn to_flavor(f: FlavorSpec) -> Flavor {
    let int = |v: i64| i32::try_from(v).unwrap_or(i32::MAX);
    Flavor {
        id: f.id,
        name: f.name,
        ram: int(f.ram_mb),
        vcpus: int(f.vcpus),
        disk: int(f.disk_gb),
        ephemeral: int(f.ephemeral_gb),
        created: None,
        updated: None,
        deleted: false,
        deleted_at: None,
    }
}

#[async_trait]
impl FlavorSource for NovaFlavors {
    async fn list(&self) -> ApiResult<Vec<Flavor>> {
        let mut all: Vec<Flavor> = self
            .0
            .flavors()
            .await
            .map_err(|e| ApiError::unavailable(e.to_string()))?
            .into_iter()
            .map(to_flavor)
            .collect();
        all.sort_by(|a, b| a.ram.cmp(&b.ram).then_with(|| a.id.cmp(&b.id)));
        Ok(all)
    }

    async fn get(&self, id: &str) -> ApiResult<Option<Flavor>> {
        Ok(self
            .0
            .flavor(id)
            .await
            .map_err(|e| ApiError::unavailable(e.to_string()))?
            .map(to_flavor))
    }
}

/// The flavor catalog `[local_driver] compute_driver` calls for; with `openstack` this logs
/// in to Keystone with `[service_credentials]`.
pub async fn flavor_source(config: &Config, db: &Db) -> anyhow::Result<Arc<dyn FlavorSource>> {
    match config.local_driver.compute_driver.trim() {
        "openstack" => {
            let driver = OpenStackDriver::from_config(config)
                .await
                .context("connecting to the cloud for its flavors ([service_credentials])")?;
            Ok(Arc::new(NovaFlavors(driver)))
        }
        _ => Ok(Arc::new(DbFlavors(db.clone()))),
    }
}
