//! Cinder v3 volumes.

use std::time::Duration;

use async_trait::async_trait;
use reqwest::Method;
use serde_json::{json, Value};
use trove_compute::{
    resource_name, DriverError, Result, Volume, VolumeDriver, VolumeRequest, VolumeStatus,
};

use crate::{OpenStackDriver, Svc};

/// Cinder microversion of extend: 3.42 extends attached (`in-use`) volumes.
const EXTEND_MICROVERSION: &str = "3.42";

/// How long a detach before delete may take.
const DETACH_TIMEOUT: Duration = Duration::from_secs(60);

/// Cinder's volume status as a [`VolumeStatus`]; the transitional ones Trove has no name
/// for map to the nearest (`attaching`/`detaching`/`reserved` to in-use, `error_*` to error).
pub(crate) fn map_volume_status(status: &str) -> VolumeStatus {
    match status {
        "creating" | "downloading" => VolumeStatus::Creating,
        "available" => VolumeStatus::Available,
        "in-use" | "attaching" | "detaching" | "reserved" => VolumeStatus::InUse,
        "extending" => VolumeStatus::Extending,
        "deleting" => VolumeStatus::Deleting,
        _ => VolumeStatus::Error,
    }
}

fn volume_of(v: &Value) -> Result<Volume> {
    let id = v
        .get("id")
        .and_then(Value::as_str)
        .ok_or_else(|| DriverError::Api("Cinder answered a volume without an id".into()))?;
    Ok(Volume {
        id: id.to_owned(),
        size_gb: v.get("size").and_then(Value::as_i64).unwrap_or_default(),
        status: map_volume_status(v.get("status").and_then(Value::as_str).unwrap_or("")),
    })
}

impl OpenStackDriver {
    async fn volume_json(&self, volume_id: &str) -> Result<Option<Value>> {
        match self
            .call(
                Svc::Volume,
                Method::GET,
                &["volumes", volume_id],
                &[],
                None,
                None,
            )
            .await
        {
            Ok(v) => Ok(v.get("volume").cloned()),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e.into_driver(&format!("Cinder show of volume {volume_id}"))),
        }
    }

    /// Detaches the volume from every server (through Nova) and waits until it is
    /// available.
    async fn detach_all(&self, volume_id: &str, v: &Value) -> Result<()> {
        for server in v
            .get("attachments")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|a| a.get("server_id").and_then(Value::as_str))
        {
            match self
                .nova(
                    Method::DELETE,
                    &["servers", server, "os-volume_attachments", volume_id],
                    &[],
                    None,
                )
                .await
            {
                Ok(_) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => {
                    return Err(e.into_driver(&format!(
                        "Nova detach of volume {volume_id} from server {server}"
                    )))
                }
            }
        }
        let deadline = tokio::time::Instant::now() + DETACH_TIMEOUT;
        loop {
            match self.volume_json(volume_id).await? {
                None => return Ok(()),
                Some(v) if v.get("status").and_then(Value::as_str) == Some("available") => {
                    return Ok(())
                }
                Some(v) if tokio::time::Instant::now() >= deadline => {
                    return Err(DriverError::Api(format!(
                        "volume {volume_id} still {} after detaching for {}s",
                        v.get("status").and_then(Value::as_str).unwrap_or("?"),
                        DETACH_TIMEOUT.as_secs()
                    )))
                }
                Some(_) => tokio::time::sleep(Duration::from_secs(2)).await,
            }
        }
    }
}

#[async_trait]
impl VolumeDriver for OpenStackDriver {
    async fn create_volume(&self, req: &VolumeRequest) -> Result<Volume> {
        let mut volume = json!({
            "name": resource_name(&req.instance_id),
            "description": format!("datastore volume for {}", req.instance_id),
            "size": req.size_gb,
        });
        if let Some(t) = req.volume_type.as_deref().filter(|t| !t.is_empty()) {
            volume["volume_type"] = json!(t);
        }
        if let Some(az) = req.availability_zone.as_deref().filter(|a| !a.is_empty()) {
            volume["availability_zone"] = json!(az);
        }
        let v = self
            .call(
                Svc::Volume,
                Method::POST,
                &["volumes"],
                &[],
                Some(&json!({ "volume": volume })),
                None,
            )
            .await
            .map_err(|e| {
                e.into_driver(&format!(
                    "Cinder create of a {} GB volume for instance {}",
                    req.size_gb, req.instance_id
                ))
            })?;
        volume_of(v.get("volume").unwrap_or(&Value::Null))
    }

    async fn get_volume(&self, volume_id: &str) -> Result<Option<Volume>> {
        self.volume_json(volume_id)
            .await?
            .map(|v| volume_of(&v))
            .transpose()
    }

    async fn extend_volume(&self, volume_id: &str, new_size_gb: i64) -> Result<()> {
        let body = json!({"os-extend": {"new_size": new_size_gb}});
        self.call(
            Svc::Volume,
            Method::POST,
            &["volumes", volume_id, "action"],
            &[],
            Some(&body),
            Some(EXTEND_MICROVERSION),
        )
        .await
        .map(|_| ())
        .map_err(|e| {
            if e.is_not_found() {
                DriverError::NotFound {
                    kind: "volume",
                    id: volume_id.to_owned(),
                }
            } else {
                e.into_driver(&format!("Cinder extend of volume {volume_id}"))
            }
        })
    }

    async fn delete_volume(&self, volume_id: &str) -> Result<()> {
        let Some(v) = self.volume_json(volume_id).await? else {
            return Ok(());
        };
        if v.get("attachments")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty())
        {
            self.detach_all(volume_id, &v).await?;
        }
        match self
            .call(
                Svc::Volume,
                Method::DELETE,
                &["volumes", volume_id],
                &[],
                None,
                None,
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e.into_driver(&format!("Cinder delete of volume {volume_id}"))),
        }
    }

    async fn find_volumes(&self, instance_id: &str) -> Result<Vec<Volume>> {
        let name = resource_name(instance_id);
        let v = match self
            .call(
                Svc::Volume,
                Method::GET,
                &["volumes", "detail"],
                &[("name", name.clone())],
                None,
                None,
            )
            .await
        {
            Ok(v) => v,
            // A cloud without a block storage service holds no volumes of anybody.
            Err(e) if e.kind == osauth::ErrorKind::EndpointNotFound => return Ok(Vec::new()),
            Err(e) => return Err(e.into_driver(&format!("listing Cinder volumes {name}"))),
        };
        v.get("volumes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|v| v.get("name").and_then(Value::as_str) == Some(name.as_str()))
            .map(volume_of)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cinder_statuses_map() {
        assert_eq!(map_volume_status("available"), VolumeStatus::Available);
        assert_eq!(map_volume_status("in-use"), VolumeStatus::InUse);
        assert_eq!(map_volume_status("extending"), VolumeStatus::Extending);
        assert_eq!(map_volume_status("error_extending"), VolumeStatus::Error);
        assert_eq!(map_volume_status("creating"), VolumeStatus::Creating);
        assert_eq!(map_volume_status("deleting"), VolumeStatus::Deleting);
    }

    #[test]
    fn volumes_parse() {
        let v = volume_of(&json!({"id": "v1", "size": 5, "status": "available"})).unwrap();
        assert_eq!(v.size_gb, 5);
        assert_eq!(v.status, VolumeStatus::Available);
        assert!(volume_of(&json!({"size": 1})).is_err());
    }
}
