//! The API's image check for datastore versions (`POST`/`PATCH /mgmt/datastore-versions`)
//! with the OpenStack driver: the image must exist in Glance, or its tags select an active
//! image, as the taskmanager resolves it at create. The local driver boots no image: there
//! is no check.

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::OnceCell;
use trove_api::error::{ApiError, ApiResult};
use trove_api::handlers::mgmt_datastores::ImageCheck;
use trove_compute::DriverError;
use trove_config::Config;
use trove_openstack::OpenStackDriver;

/// Glance, read with `[service_credentials]`; the login happens at the first check (the
/// API starts without waiting for Keystone).
#[derive(Debug)]
pub struct GlanceImages {
    config: Arc<Config>,
    driver: OnceCell<OpenStackDriver>,
}

#[async_trait]
impl ImageCheck for GlanceImages {
    async fn check(&self, image: Option<&str>, tags: &[String]) -> ApiResult<()> {
        let driver = self
            .driver
            .get_or_try_init(|| OpenStackDriver::from_config(&self.config))
            .await
            .map_err(|e| ApiError::unavailable(e.to_string()))?;
        match driver.image_for_version(image, tags).await {
            Ok(_) => Ok(()),
            Err(DriverError::Invalid(msg)) => Err(ApiError::bad_request(msg)),
            Err(e) => Err(ApiError::unavailable(e.to_string())),
        }
    }
}

/// The check `[local_driver] compute_driver` calls for: Glance with `openstack`, none
/// otherwise.
pub fn image_check(config: &Arc<Config>) -> Option<Arc<dyn ImageCheck>> {
    (config.local_driver.compute_driver.trim() == "openstack").then(|| {
        Arc::new(GlanceImages {
            config: config.clone(),
            driver: OnceCell::new(),
        }) as Arc<dyn ImageCheck>
    })
}
