//! Backups (spec: internals-workflows §7.1, §7.4; internals-rpc §2).
//!
//! * `create_backup`: the API has written the backup row (NEW) and reserved the quota;
//!   the taskmanager adds the user's object-store endpoint (`swift_url`, from the request's
//!   service catalog) for the swift driver and casts `create_backup(backup_info)` to the
//!   instance's guest. The guest reports BUILDING, then COMPLETED or FAILED, through the
//!   conductor's `update_backup`. When the backup cannot be handed to the guest it is set
//!   FAILED here, so the instance does not show BACKUP forever.
//! * `delete_backup`: unless the backup was imported (RESTORED), its stored objects are
//!   removed through a [`BackupObjects`] store chosen by the location's scheme (`file://`:
//!   trove-backup's local directory store, segments and metadata included; `http(s)://`:
//!   the user's Swift account, with the request's user token, segments included); a failure
//!   sets the state DELETE_FAILED (logged). In all cases the row is then marked deleted
//!   with its datastore version cleared, as Trove does.

use std::time::Instant;

use async_trait::async_trait;
use serde_json::Value;
use trove_db::{DbError, BACKUP_RUNNING_STATES};
use trove_rpc::RpcContext;

use crate::error::{Result, TaskError};
use crate::manager::TaskManager;

/// Where the objects of a backup are stored, as far as deleting them goes.
#[async_trait]
pub trait BackupObjects: Send + Sync {
    /// Removes every object stored at `location` (the backup's `location` column). An
    /// object that is already gone is not an error.
    async fn delete(&self, location: &str) -> Result<()>;
}

/// A [`trove_backup::BackupStore`] seen as [`BackupObjects`]: deleting removes the object,
/// its segments and its metadata; an object already gone is not an error.
#[derive(Debug)]
struct StoreObjects(std::sync::Arc<dyn trove_backup::BackupStore>);

#[async_trait]
impl BackupObjects for StoreObjects {
    async fn delete(&self, location: &str) -> Result<()> {
        match self.0.delete(location).await {
            Ok(()) => Ok(()),
            Err(trove_backup::BackupError::NotFound(what)) => {
                tracing::info!(location, what = %what, "backup object already absent");
                Ok(())
            }
            Err(e) => Err(TaskError::Service(format!(
                "cannot delete the backup object at {location}: {e}"
            ))),
        }
    }
}

/// The store that can delete objects at `location`, by its scheme: `file://` locations
/// are objects of a local directory store (the all-in-one mode), `http(s)://` locations
/// objects in the user's Swift account, deleted with the user's `token` (a Static Large
/// Object with its segments, `?multipart-manifest=delete`).
pub(crate) fn objects_for(location: &str, token: Option<&str>) -> Result<Box<dyn BackupObjects>> {
    let store = trove_backup::open_store_for_location(location, token)
        .map_err(|e| TaskError::Invalid(format!("backup location '{location}': {e}")))?;
    Ok(Box::new(StoreObjects(store)))
}

/// The public object-store endpoint of a Keystone service catalog (v3 `endpoints` with
/// `interface`/`url`, or v2 `publicURL`), preferring `region`.
pub(crate) fn swift_url(catalog: Option<&Value>, region: &str) -> Option<String> {
    let services = catalog?.as_array()?;
    let mut found: Vec<(bool, String)> = Vec::new();
    for s in services {
        if s.get("type").and_then(Value::as_str) != Some("object-store") {
            continue;
        }
        for e in s
            .get("endpoints")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let in_region = e
                .get("region")
                .or_else(|| e.get("region_id"))
                .and_then(Value::as_str)
                == Some(region);
            if let Some(u) = e.get("publicURL").and_then(Value::as_str) {
                found.push((in_region, u.to_string()));
            } else if e.get("interface").and_then(Value::as_str) == Some("public") {
                if let Some(u) = e.get("url").and_then(Value::as_str) {
                    found.push((in_region, u.to_string()));
                }
            }
        }
    }
    found
        .iter()
        .find(|(r, _)| *r)
        .or(found.first())
        .map(|(_, u)| u.clone())
}

/// Logs the outcome and duration of one step of a backup workflow.
async fn backup_step<T>(
    backup_id: &str,
    name: &'static str,
    fut: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    let started = Instant::now();
    let out = fut.await;
    let ms = started.elapsed().as_millis() as u64;
    match &out {
        Ok(_) => tracing::info!(
            backup.id = backup_id,
            step = name,
            duration_ms = ms,
            "step done"
        ),
        Err(e) => {
            tracing::warn!(backup.id = backup_id, step = name, duration_ms = ms, error = %e, "step failed")
        }
    }
    out
}

impl TaskManager {
    /// Where the guest stores a backup for the user of `ctx`: the user's object store,
    /// or without one in the catalog (noauth, all-in-one) the local backup directory.
    pub(crate) fn backup_store_url(&self, ctx: &RpcContext) -> String {
        swift_url(ctx.service_catalog.as_ref(), &self.config.default.region).unwrap_or_else(|| {
            format!(
                "file://{}",
                self.config.local_driver.backup_path.trim_end_matches('/')
            )
        })
    }

    /// `create_backup(backup_info, instance_id)`: hands the backup to the guest.
    pub(crate) async fn create_backup(
        &self,
        ctx: RpcContext,
        backup_info: Value,
        instance_id: &str,
    ) {
        let Some(backup_id) = backup_info
            .get("id")
            .and_then(Value::as_str)
            .map(str::to_string)
        else {
            tracing::error!(
                instance.id = instance_id,
                "create_backup without a backup id; request dropped"
            );
            return;
        };
        let r: Result<()> = async {
            let inst = self.live_instance(instance_id).await?.ok_or_else(|| {
                TaskError::Invalid(format!("instance {instance_id} no longer exists"))
            })?;
            let driver = backup_info
                .get("storage_driver")
                .and_then(Value::as_str)
                .unwrap_or("swift");
            if driver == "cinder" {
                return Err(TaskError::Invalid(
                    "volume snapshot (cinder) backups are not supported".into(),
                ));
            }
            let mut info = backup_info.clone();
            if driver == "swift" {
                let url = self.backup_store_url(&ctx);
                if let Some(m) = info.as_object_mut() {
                    m.insert("swift_url".into(), Value::String(url));
                }
            }
            let guest = self.guest(&inst)?;
            backup_step(&backup_id, "cast create_backup", async {
                guest
                    .create_backup(&ctx, info)
                    .await
                    .map_err(TaskError::from)
            })
            .await
        }
        .await;
        if let Err(e) = r {
            tracing::error!(backup.id = %backup_id, instance.id = instance_id, error = %e, "backup could not be started");
            self.fail_backup(&backup_id, &format!("The backup could not be started: {e}"))
                .await;
        }
    }

    /// Sets a backup that is still NEW, BUILDING or SAVING to FAILED, with why.
    async fn fail_backup(&self, backup_id: &str, why: &str) {
        match self.db.backup_get(backup_id).await {
            Ok(mut b) if BACKUP_RUNNING_STATES.contains(&b.state.as_str()) => {
                b.state = "FAILED".into();
                b.fault_message = Some(why.to_owned());
                if let Err(e) = self.db.backup_save(&b).await {
                    tracing::error!(backup.id = backup_id, error = %e, "cannot mark the backup FAILED");
                }
            }
            Ok(_) | Err(DbError::NotFound { .. }) => {}
            Err(e) => {
                tracing::error!(backup.id = backup_id, error = %e, "cannot read the backup")
            }
        }
    }

    /// `delete_backup(backup_id)`: removes the stored objects, then the row.
    pub(crate) async fn delete_backup(&self, ctx: RpcContext, backup_id: &str) {
        let mut b = match self.db.backup_get(backup_id).await {
            Ok(b) => b,
            Err(DbError::NotFound { .. }) => {
                tracing::info!(
                    backup.id = backup_id,
                    "backup no longer exists; nothing to do"
                );
                return;
            }
            Err(e) => {
                tracing::error!(backup.id = backup_id, error = %e, "cannot read the backup to delete");
                return;
            }
        };
        let location = b.location.clone().filter(|l| !l.is_empty());
        let r = match location {
            Some(loc) if b.state != "RESTORED" => {
                backup_step(backup_id, "delete backup objects", async {
                    objects_for(&loc, ctx.auth_token.as_deref())?
                        .delete(&loc)
                        .await
                })
                .await
            }
            _ => Ok(()),
        };
        if let Err(e) = &r {
            tracing::error!(backup.id = backup_id, error = %e, "deleting the backup's objects failed");
            b.state = "DELETE_FAILED".into();
            b.fault_message = Some(format!("Deleting the backup's objects failed: {e}"));
        }
        b.datastore_version_id = None;
        let saved = match self.db.backup_save(&b).await {
            Ok(_) | Err(DbError::NotFound { .. }) => self.db.backup_delete(backup_id).await,
            Err(e) => Err(e),
        };
        match saved {
            Ok(()) | Err(DbError::NotFound { .. }) => {
                tracing::info!(
                    backup.id = backup_id,
                    objects_deleted = r.is_ok(),
                    "backup deleted"
                )
            }
            Err(e) => {
                tracing::error!(backup.id = backup_id, error = %e, "cannot mark the backup deleted")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn stores_are_chosen_by_scheme() {
        assert!(objects_for("file:///var/lib/trove/backups/c/b1.xbstream.zst", None).is_ok());
        assert!(objects_for("file://relative/c/b1", None).is_err());
        assert!(objects_for("file:///var/../etc/c/b1", None).is_err());
        let swift = "https://swift.example.org/v1/AUTH_p/c/b1";
        assert!(objects_for(swift, Some("user-token")).is_ok());
        let e = objects_for(swift, None).err().unwrap();
        assert!(e.to_string().contains("token"), "{e}");
        let e = objects_for("ftp://x/c/b1", Some("t")).err().unwrap();
        assert!(e.to_string().contains("'ftp'"), "{e}");
    }

    #[test]
    fn swift_url_comes_from_the_public_object_store_endpoint() {
        let v3 = json!([
            {"type": "identity", "endpoints": [{"interface": "public", "url": "https://k"}]},
            {"type": "object-store", "endpoints": [
                {"interface": "internal", "region": "RegionOne", "url": "http://internal"},
                {"interface": "public", "region": "Other", "url": "https://other/v1/AUTH_p"},
                {"interface": "public", "region": "RegionOne", "url": "https://swift/v1/AUTH_p"},
            ]},
        ]);
        assert_eq!(
            swift_url(Some(&v3), "RegionOne").as_deref(),
            Some("https://swift/v1/AUTH_p")
        );
        assert_eq!(
            swift_url(Some(&v3), "Nowhere").as_deref(),
            Some("https://other/v1/AUTH_p")
        );
        let v2 =
            json!([{"type": "object-store", "endpoints": [{"publicURL": "https://s2/v1/AUTH_p"}]}]);
        assert_eq!(
            swift_url(Some(&v2), "RegionOne").as_deref(),
            Some("https://s2/v1/AUTH_p")
        );
        assert_eq!(swift_url(None, "RegionOne"), None);
        assert_eq!(swift_url(Some(&json!([])), "RegionOne"), None);
    }
}
