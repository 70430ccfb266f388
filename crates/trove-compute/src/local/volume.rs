//! Data volumes of local instances: sparse image files, attached to loop devices.

use std::path::Path;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{check_id, host, read_json, remove_file_if_exists, write_json, LocalDriver};
use crate::{DriverError, Result, Volume, VolumeDriver, VolumeRequest, VolumeStatus};

/// Bytes in a GiB.
const GIB: u64 = 1 << 30;

/// `<volume id>.json`: a volume's metadata.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct VolumeRecord {
    /// Volume id.
    pub id: String,
    /// The instance it was made for.
    pub instance_id: String,
    /// Size in GiB.
    pub size_gb: i64,
    /// Recorded status (`available`; `in-use` is found from the loop devices).
    pub status: VolumeStatus,
    /// Volume type of the request, if any.
    #[serde(default)]
    pub volume_type: Option<String>,
}

/// Bytes of a volume of `size_gb` GiB; `Invalid` unless positive and representable.
fn size_bytes(size_gb: i64) -> Result<u64> {
    u64::try_from(size_gb)
        .ok()
        .filter(|&s| s > 0)
        .and_then(|s| s.checked_mul(GIB))
        .ok_or_else(|| DriverError::Invalid(format!("invalid volume size {size_gb} GB")))
}

/// Sets the length of the image file at `path` (sparse: no blocks are written).
async fn set_image_len(path: &Path, len: u64, create: bool) -> std::io::Result<()> {
    let file = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(create)
        .mode(0o600)
        .open(path)
        .await?;
    file.set_len(len).await?;
    file.sync_all().await
}

impl LocalDriver {
    /// The metadata of a volume, `None` when it does not exist.
    pub(crate) async fn volume_record(&self, volume_id: &str) -> Result<Option<VolumeRecord>> {
        check_id("volume", volume_id)?;
        read_json(&self.volume_meta(volume_id)).await
    }

    /// The loop devices a volume's image is attached to (none without loop devices).
    pub(crate) async fn volume_devices(&self, volume_id: &str) -> Result<Vec<String>> {
        if !self.loop_volumes {
            return Ok(Vec::new());
        }
        host::loop_devices_of(&self.volume_image(volume_id)).await
    }

    async fn volume_of(&self, record: VolumeRecord) -> Result<Volume> {
        let status = if self.volume_devices(&record.id).await?.is_empty() {
            record.status
        } else {
            VolumeStatus::InUse
        };
        Ok(Volume {
            id: record.id,
            size_gb: record.size_gb,
            status,
        })
    }
}

#[async_trait]
impl VolumeDriver for LocalDriver {
    async fn create_volume(&self, req: &VolumeRequest) -> Result<Volume> {
        check_id("instance", &req.instance_id)?;
        let len = size_bytes(req.size_gb)?;
        let id = uuid::Uuid::new_v4().to_string();
        let image = self.volume_image(&id);
        let record = VolumeRecord {
            id: id.clone(),
            instance_id: req.instance_id.clone(),
            size_gb: req.size_gb,
            status: VolumeStatus::Available,
            volume_type: req.volume_type.clone(),
        };
        let made = async {
            set_image_len(&image, len, true)
                .await
                .map_err(|e| DriverError::host(format!("creating {}", image.display()), e))?;
            write_json(&self.volume_meta(&id), &record).await
        }
        .await;
        if let Err(e) = made {
            let _ = remove_file_if_exists(&image).await;
            let _ = remove_file_if_exists(&self.volume_meta(&id)).await;
            return Err(e);
        }
        tracing::info!(instance.id = %req.instance_id, volume.id = %id, size_gb = req.size_gb, "volume created");
        Ok(Volume {
            id,
            size_gb: req.size_gb,
            status: VolumeStatus::Available,
        })
    }

    async fn get_volume(&self, volume_id: &str) -> Result<Option<Volume>> {
        match self.volume_record(volume_id).await? {
            Some(record) => self.volume_of(record).await.map(Some),
            None => Ok(None),
        }
    }

    async fn extend_volume(&self, volume_id: &str, new_size_gb: i64) -> Result<()> {
        let mut record =
            self.volume_record(volume_id)
                .await?
                .ok_or_else(|| DriverError::NotFound {
                    kind: "volume",
                    id: volume_id.to_string(),
                })?;
        let len = size_bytes(new_size_gb)?;
        if new_size_gb < record.size_gb {
            return Err(DriverError::Invalid(format!(
                "volume {volume_id} cannot shrink from {} GB to {new_size_gb} GB",
                record.size_gb
            )));
        }
        let image = self.volume_image(volume_id);
        set_image_len(&image, len, false)
            .await
            .map_err(|e| DriverError::host(format!("growing {}", image.display()), e))?;
        let old = record.size_gb;
        record.size_gb = new_size_gb;
        write_json(&self.volume_meta(volume_id), &record).await?;
        for device in self.volume_devices(volume_id).await? {
            host::loop_refresh(&device).await?;
            tracing::info!(instance.id = %record.instance_id, volume.id = %volume_id, device = %device, "loop device size refreshed");
        }
        tracing::info!(instance.id = %record.instance_id, volume.id = %volume_id, from_gb = old, to_gb = new_size_gb, "volume extended");
        Ok(())
    }

    async fn delete_volume(&self, volume_id: &str) -> Result<()> {
        check_id("volume", volume_id)?;
        let image = self.volume_image(volume_id);
        let instance_id = self
            .volume_record(volume_id)
            .await
            .ok()
            .flatten()
            .map(|r| r.instance_id)
            .unwrap_or_default();
        if self.loop_volumes {
            for device in host::loop_devices_of(&image).await? {
                tracing::info!(instance.id = %instance_id, volume.id = %volume_id, device = %device, "detaching loop device");
                host::loop_detach(&device).await?;
            }
        }
        remove_file_if_exists(&image).await?;
        remove_file_if_exists(&self.volume_meta(volume_id)).await?;
        tracing::info!(instance.id = %instance_id, volume.id = %volume_id, "volume deleted");
        Ok(())
    }

    async fn find_volumes(&self, instance_id: &str) -> Result<Vec<Volume>> {
        check_id("instance", instance_id)?;
        let dir = self.state_dir.join("volumes");
        let mut entries = match tokio::fs::read_dir(&dir).await {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(DriverError::host(format!("reading {}", dir.display()), e)),
        };
        let mut records = Vec::new();
        while let Some(entry) = entries
            .next_entry()
            .await
            .map_err(|e| DriverError::host(format!("reading {}", dir.display()), e))?
        {
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            if let Some(record) = read_json::<VolumeRecord>(&path).await? {
                if record.instance_id == instance_id {
                    records.push(record);
                }
            }
        }
        records.sort_by(|a, b| a.id.cmp(&b.id));
        let mut volumes = Vec::with_capacity(records.len());
        for record in records {
            volumes.push(self.volume_of(record).await?);
        }
        Ok(volumes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_whole_positive_gib() {
        assert_eq!(size_bytes(1).ok(), Some(GIB));
        assert_eq!(size_bytes(10).ok(), Some(10 * GIB));
        assert!(size_bytes(0).is_err());
        assert!(size_bytes(-1).is_err());
        assert!(size_bytes(i64::MAX).is_err());
    }
}
