//! Glance v2 images: the image a datastore version boots from.
//!
//! A datastore version names its image by id, or by tags: then the image is the newest
//! `active` image (by `created_at`) that carries every one of the tags, as Glance lists it
//! for the service project (`GET /v2/images?tag=a&tag=b&status=active&sort=created_at:desc`).

use reqwest::Method;
use serde_json::Value;
use trove_compute::{DriverError, Result};

use crate::{OpenStackDriver, Svc};

impl OpenStackDriver {
    /// Whether Glance has the image `image_id` (any status).
    pub async fn image_exists(&self, image_id: &str) -> Result<bool> {
        match self
            .call(
                Svc::Image,
                Method::GET,
                &["images", image_id],
                &[],
                None,
                None,
            )
            .await
        {
            Ok(v) => Ok(v.get("id").and_then(Value::as_str) == Some(image_id)),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e.into_driver(&format!("Glance lookup of image {image_id}"))),
        }
    }

    /// The id of the newest active image carrying all of `tags`; [`DriverError::Invalid`]
    /// (with the tags in its message) when there is none.
    pub async fn image_id_by_tags(&self, tags: &[String]) -> Result<String> {
        if tags.is_empty() {
            return Err(DriverError::Invalid(
                "no image tags given to look an image up by".into(),
            ));
        }
        let mut query: Vec<(&str, String)> = tags.iter().map(|t| ("tag", t.clone())).collect();
        query.push(("status", "active".into()));
        query.push(("sort", "created_at:desc".into()));
        query.push(("limit", "1".into()));
        let v = self
            .call(Svc::Image, Method::GET, &["images"], &query, None, None)
            .await
            .map_err(|e| e.into_driver("Glance image list"))?;
        v.get("images")
            .and_then(Value::as_array)
            .and_then(|a| a.first())
            .and_then(|i| i.get("id"))
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| {
                DriverError::Invalid(format!(
                    "No active image found in Glance with the tags {}.",
                    tags.join(", ")
                ))
            })
    }

    /// The image of a datastore version: `image_id` when given (it must exist in Glance),
    /// else the newest active image with all of `image_tags`.
    pub async fn image_for_version(
        &self,
        image_id: Option<&str>,
        image_tags: &[String],
    ) -> Result<String> {
        match image_id.map(str::trim).filter(|i| !i.is_empty()) {
            Some(id) => {
                if self.image_exists(id).await? {
                    Ok(id.to_owned())
                } else {
                    Err(DriverError::Invalid(format!(
                        "Image {id} cannot be found in Glance."
                    )))
                }
            }
            None if image_tags.is_empty() => Err(DriverError::Invalid(
                "The datastore version has neither an image id nor image tags.".into(),
            )),
            None => self.image_id_by_tags(image_tags).await,
        }
    }
}
