//! Restart, reboot and the two resizes (spec: internals-workflows §4, §5).

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use trove_compute::{GuestVolume, ServerStatus};
use trove_db::{Instance, TaskStatus};
use trove_rpc::api::GuestRequest;
use trove_rpc::RpcContext;

use crate::create::flavor_spec;
use crate::error::{Result, TaskError};
use crate::files::{render_config, TemplateContext};
use crate::manager::{step, TaskManager};

impl TaskManager {
    /// `restart`: the guest restarts its database (high timeout); a guest error is logged
    /// and recorded as the instance's fault; the task goes back to NONE.
    pub(crate) async fn restart(&self, ctx: RpcContext, id: &str) {
        let Ok(Some(inst)) = self.live_instance(id).await else {
            return;
        };
        let r = step(id, "restart", async {
            self.guest(&inst)?
                .restart(&ctx)
                .await
                .map_err(TaskError::from)
        })
        .await;
        if let Err(e) = r {
            self.record_fault(id, &format!("Restart failed: {e}"), &format!("{e:?}"))
                .await;
        }
        self.finish_task(id, TaskStatus::Rebooting).await;
    }

    /// `reboot` (admin): stop the database, reboot the server, wait for it, restart the
    /// database. Errors are logged; the task goes back to NONE.
    pub(crate) async fn reboot(&self, ctx: RpcContext, id: &str) {
        let Ok(Some(inst)) = self.live_instance(id).await else {
            return;
        };
        let r: Result<()> = async {
            let guest = self.guest(&inst)?;
            if let Err(e) = guest.stop_db(&ctx).await {
                tracing::warn!(instance.id = id, error = %e, "stop_db before reboot failed");
            }
            let sid = server_id(&inst)?;
            step(id, "reboot server", async {
                self.drivers
                    .compute
                    .reboot_server(&sid)
                    .await
                    .map_err(|source| driver("reboot", source))
            })
            .await?;
            self.wait_server(&sid, &[ServerStatus::Active], self.settings.reboot_time_out)
                .await?;
            step(id, "restart", async {
                guest.restart(&ctx).await.map_err(TaskError::from)
            })
            .await
        }
        .await;
        if let Err(e) = r {
            tracing::error!(instance.id = id, error = %e, "reboot failed");
        }
        self.finish_task(id, TaskStatus::Rebooting).await;
    }

    /// `resize_volume`: grow the volume, then the guest grows its filesystem online.
    pub(crate) async fn resize_volume(&self, ctx: RpcContext, id: &str, new_size: i64) {
        let Ok(Some(inst)) = self.live_instance(id).await else {
            return;
        };
        let r: Result<()> = async {
            let vid = inst
                .volume_id
                .clone()
                .ok_or_else(|| TaskError::Invalid("the instance has no volume".into()))?;
            let sid = server_id(&inst)?;
            step(id, "extend volume", async {
                self.drivers
                    .volumes
                    .extend_volume(&vid, new_size)
                    .await
                    .map_err(|source| driver("volume extend", source))
            })
            .await?;
            let deadline =
                Instant::now() + self.settings.volume_time_out.max(Duration::from_secs(1));
            loop {
                match self.drivers.volumes.get_volume(&vid).await {
                    Ok(Some(v)) if v.size_gb == new_size => break,
                    Ok(_) | Err(_) if Instant::now() >= deadline => {
                        return Err(TaskError::Service(format!(
                            "volume {vid} did not reach {new_size} GB within volume_time_out"
                        )))
                    }
                    _ => tokio::time::sleep(Duration::from_millis(500)).await,
                }
            }
            let mut row = self.db.instance_get(id).await?;
            row.volume_size = i32::try_from(new_size).ok();
            self.db.instance_save(&row).await?;
            let gv = self.guest_volume(&sid, &inst).await?;
            let guest = self.guest(&inst)?;
            let device_path = Some(gv.device_path.clone()).filter(|d| !d.is_empty());
            let mount_point = Some(gv.mount_point.clone());
            let resize = |online: bool| GuestRequest::ResizeFs {
                device_path: device_path.clone(),
                mount_point: mount_point.clone(),
                online: Some(online),
            };
            if self.config.default.online_volume_resize {
                let online = step(id, "resize filesystem online", async {
                    guest
                        .send(&ctx, resize(true))
                        .await
                        .map_err(TaskError::from)
                })
                .await;
                match online {
                    Ok(_) => return Ok(()),
                    Err(e) => tracing::warn!(
                        instance.id = id,
                        error = %e,
                        "online filesystem resize refused; resizing with the database stopped"
                    ),
                }
            }
            // Offline: stop the database, unmount, check and grow, mount, start again.
            step(id, "resize filesystem offline", async {
                guest.stop_db(&ctx).await?;
                let r: Result<()> = async {
                    guest
                        .send(
                            &ctx,
                            GuestRequest::UnmountVolume {
                                device_path: device_path.clone(),
                                mount_point: mount_point.clone(),
                            },
                        )
                        .await?;
                    let grown = guest.send(&ctx, resize(false)).await.map(|_| ());
                    guest
                        .send(
                            &ctx,
                            GuestRequest::MountVolume {
                                device_path: device_path.clone(),
                                mount_point: mount_point.clone(),
                            },
                        )
                        .await?;
                    grown.map_err(TaskError::from)
                }
                .await;
                let restarted = guest.restart(&ctx).await;
                r?;
                restarted.map_err(TaskError::from)
            })
            .await
        }
        .await;
        if let Err(e) = r {
            tracing::error!(instance.id = id, error = %e, "volume resize failed");
            self.record_fault(id, &format!("Volume resize failed: {e}"), &format!("{e:?}"))
                .await;
        }
        self.finish_task(id, TaskStatus::Resizing).await;
    }

    /// `resize_flavor`: stop the database, move the server to the new flavor, start the
    /// database with the configuration rendered for it, confirm. After the server moved, a
    /// failure puts the old configuration back and reverts the server.
    pub(crate) async fn resize_flavor(
        &self,
        ctx: RpcContext,
        id: &str,
        old_flavor: Value,
        new_flavor: Value,
    ) {
        let Ok(Some(inst)) = self.live_instance(id).await else {
            return;
        };
        let old = flavor_spec(&old_flavor);
        let new = flavor_spec(&new_flavor);
        let r: Result<()> = async {
            let guest = self.guest(&inst)?;
            let sid = server_id(&inst)?;
            let new_config = self.render_for(&inst, &new).await?;
            let old_config = self.render_for(&inst, &old).await?;
            step(id, "stop database", async { guest.stop_db(&ctx).await.map_err(TaskError::from) })
                .await?;
            let moved = step(id, "resize server", async {
                self.drivers
                    .compute
                    .resize_server(&sid, &new)
                    .await
                    .map_err(|source| driver("resize", source))?;
                self.wait_server(
                    &sid,
                    &[ServerStatus::VerifyResize, ServerStatus::Active],
                    self.settings.resize_time_out,
                )
                .await
            })
            .await;
            if let Err(e) = moved {
                // Not moved: start the database again as it was.
                if let Err(re) = guest.restart(&ctx).await {
                    tracing::error!(instance.id = id, error = %re, "restart after a failed resize failed");
                }
                return Err(e);
            }
            let applied: Result<()> = async {
                step(id, "start with new configuration", async {
                    guest
                        .send(
                            &ctx,
                            GuestRequest::StartDbWithConfChanges {
                                config_contents: new_config,
                                ds_version: None,
                            },
                        )
                        .await
                        .map(|_| ())
                        .map_err(TaskError::from)
                })
                .await?;
                if let Ok(Some(s)) = self.drivers.compute.get_server(&sid).await {
                    if s.status == ServerStatus::VerifyResize {
                        self.drivers
                            .compute
                            .confirm_resize(&sid)
                            .await
                            .map_err(|source| driver("confirm resize", source))?;
                        // A cloud confirms in the background: the resize is done once the
                        // server is ACTIVE again.
                        step(id, "confirm resize", async {
                            self.wait_server(&sid, &[ServerStatus::Active], self.settings.resize_time_out)
                                .await
                        })
                        .await?;
                    }
                }
                Ok(())
            }
            .await;
            if let Err(e) = applied {
                tracing::warn!(instance.id = id, error = %e, "resize failed after the server moved; reverting");
                let _ = guest
                    .send(
                        &ctx,
                        GuestRequest::ResetConfiguration {
                            configuration: json!({ "config_contents": old_config }),
                        },
                    )
                    .await;
                if let Err(re) = self.drivers.compute.revert_resize(&sid).await {
                    tracing::error!(instance.id = id, error = %re, "revert resize failed");
                }
                if let Err(re) = guest.restart(&ctx).await {
                    tracing::error!(instance.id = id, error = %re, "restart after revert failed");
                }
                return Err(e);
            }
            let mut row = self.db.instance_get(id).await?;
            row.flavor_id = Some(new.id.clone());
            self.db.instance_save(&row).await?;
            Ok(())
        }
        .await;
        if let Err(e) = r {
            tracing::error!(instance.id = id, error = %e, "flavor resize failed");
            self.record_fault(id, &format!("Resize failed: {e}"), &format!("{e:?}"))
                .await;
        }
        self.finish_task(id, TaskStatus::Resizing).await;
    }

    /// The base configuration of `inst` for `flavor`.
    async fn render_for(
        &self,
        inst: &Instance,
        flavor: &trove_compute::FlavorSpec,
    ) -> Result<String> {
        let vid = inst
            .datastore_version_id
            .clone()
            .ok_or_else(|| TaskError::Invalid("the instance has no datastore version".into()))?;
        let v = self.db.datastore_version_get(&vid).await?;
        let ds = self.db.datastore_get(&v.datastore_id).await?;
        let manager = v.manager.clone().unwrap_or_else(|| ds.name.clone());
        let version = v.version.clone().unwrap_or_else(|| v.name.clone());
        render_config(
            &self.config,
            &TemplateContext {
                datastore_name: &ds.name,
                manager: &manager,
                version: &version,
                flavor_id: &flavor.id,
                flavor_name: &flavor.name,
                ram_mb: flavor.ram_mb,
                instance_id: &inst.id,
            },
        )
    }

    /// Where the guest of `inst` has its volume.
    async fn guest_volume(&self, server_id: &str, inst: &Instance) -> Result<GuestVolume> {
        let server = self
            .drivers
            .compute
            .get_server(server_id)
            .await
            .map_err(|source| driver("server", source))?;
        if let Some(v) = server.and_then(|s| s.volume) {
            return Ok(v);
        }
        let manager = match &inst.datastore_version_id {
            Some(vid) => self.db.datastore_version_get(vid).await?.manager,
            None => None,
        };
        let ds = manager.as_deref().and_then(|m| self.config.datastore(m));
        Ok(GuestVolume {
            device_path: ds.map(|d| d.device_path.clone()).unwrap_or_default(),
            mount_point: ds.map(|d| d.mount_point.clone()).unwrap_or_default(),
        })
    }

    /// Waits until the server is in one of `wanted` (ERROR fails at once).
    async fn wait_server(
        &self,
        sid: &str,
        wanted: &[ServerStatus],
        timeout: Duration,
    ) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.drivers.compute.get_server(sid).await {
                Ok(Some(s)) if wanted.contains(&s.status) => return Ok(()),
                Ok(Some(s)) if s.status == ServerStatus::Error => {
                    return Err(TaskError::Service(format!(
                        "Server {sid} went to ERROR: {}",
                        s.fault.unwrap_or_default()
                    )))
                }
                Ok(None) => return Err(TaskError::Service(format!("Server {sid} is gone"))),
                Ok(Some(_)) => {}
                Err(e) => tracing::warn!(server.id = sid, error = %e, "cannot read the server"),
            }
            if Instant::now() >= deadline {
                return Err(TaskError::Service(format!(
                    "Server {sid} did not reach {wanted:?} within {} s",
                    timeout.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

fn server_id(inst: &Instance) -> Result<String> {
    inst.compute_instance_id
        .clone()
        .ok_or_else(|| TaskError::Invalid("the instance has no server".into()))
}

fn driver(step: &'static str, source: trove_compute::DriverError) -> TaskError {
    TaskError::Driver {
        step,
        task: TaskStatus::None,
        source,
    }
}
