//! Servers of local instances: an instance directory and a guest agent.

use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{check_id, host, read_json, write_json, LocalDriver};
use crate::{
    ComputeDriver, DriverError, FlavorSpec, GuestVolume, InjectedFile, Result, Server,
    ServerRequest, ServerStatus,
};

/// Where the guest agent reads its configuration files from in a guest.
const GUEST_CONF_DIR: &str = "/etc/trove/conf.d";

/// How long database processes get to stop on SIGTERM.
const PROCESS_GRACE: Duration = Duration::from_secs(15);

/// `server.json`: everything about a local server, so that it survives a restart.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ServerRecord {
    /// The server as last reported. Its status is the recorded one: `BUILD` until the
    /// create finished, then `ACTIVE` (shown as `SHUTOFF` while the agent does not run),
    /// `VERIFY_RESIZE` or `ERROR`.
    pub server: Server,
    /// The flavor it runs with.
    pub flavor: FlavorSpec,
    /// The flavor before a resize waiting for confirmation.
    #[serde(default)]
    pub old_flavor: Option<FlavorSpec>,
    /// Its data volume.
    #[serde(default)]
    pub volume_id: Option<String>,
    /// The loop device the volume is attached to.
    #[serde(default)]
    pub loop_device: Option<String>,
    /// The instance's address.
    pub address: String,
    /// The datastore manager.
    pub datastore_manager: String,
    /// Project.
    #[serde(default)]
    pub project_id: String,
    /// Instance name.
    #[serde(default)]
    pub name: String,
}

/// Paths of an instance directory.
struct InstancePaths {
    root: PathBuf,
}

impl InstancePaths {
    fn record(&self) -> PathBuf {
        self.root.join("server.json")
    }
    fn conf_d(&self) -> PathBuf {
        self.root.join("conf.d")
    }
    fn host_d(&self) -> PathBuf {
        self.root.join("host.d")
    }
    fn guest_root(&self) -> PathBuf {
        self.root.join("root")
    }
    fn data(&self) -> PathBuf {
        self.root.join("data")
    }
    fn log(&self) -> PathBuf {
        self.root.join("guestagent.log")
    }
    fn config_dirs(&self) -> [PathBuf; 2] {
        [self.conf_d(), self.host_d()]
    }
}

/// Where an injected file goes in the instance directory: files of `/etc/trove/conf.d/`
/// into `conf.d/`, any other absolute path under `root/`.
fn injected_file_target(paths: &InstancePaths, file: &InjectedFile) -> Result<PathBuf> {
    let path = Path::new(&file.path);
    let plain = path.is_absolute()
        && path
            .components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
    let name = path.file_name();
    if !plain || name.is_none() {
        return Err(DriverError::Invalid(format!(
            "injected file path {:?} is not a plain absolute file path",
            file.path
        )));
    }
    if let (Ok(_), Some(name)) = (path.strip_prefix(GUEST_CONF_DIR), name) {
        return Ok(paths.conf_d().join(name));
    }
    let relative = path.strip_prefix("/").unwrap_or(path);
    Ok(paths.guest_root().join(relative))
}

/// `host.d/local.conf`: the per-host settings of the guest.
fn host_conf(address: &str, manager: &str, data: &Path) -> String {
    format!(
        "[DEFAULT]\nbind_host = {address}\n\n[{manager}]\nmount_point = {}\n",
        data.display()
    )
}

async fn write_secret_file(path: &Path, content: &str) -> Result<()> {
    use tokio::io::AsyncWriteExt;
    if let Some(parent) = path.parent() {
        tokio::fs::create_dir_all(parent)
            .await
            .map_err(|e| DriverError::host(format!("creating {}", parent.display()), e))?;
    }
    let write = async {
        let mut file = tokio::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)
            .await?;
        file.write_all(content.as_bytes()).await?;
        file.sync_all().await
    };
    write
        .await
        .map_err(|e| DriverError::host(format!("writing {}", path.display()), e))
}

async fn create_dir_mode(path: &Path, mode: u32) -> Result<()> {
    tokio::fs::create_dir_all(path)
        .await
        .map_err(|e| DriverError::host(format!("creating {}", path.display()), e))?;
    tokio::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .await
        .map_err(|e| DriverError::host(format!("setting the mode of {}", path.display()), e))
}

impl LocalDriver {
    fn paths(&self, instance_id: &str) -> InstancePaths {
        InstancePaths {
            root: self.instance_dir(instance_id),
        }
    }

    async fn server_record(&self, server_id: &str) -> Result<Option<ServerRecord>> {
        check_id("server", server_id)?;
        read_json(&self.paths(server_id).record()).await
    }

    async fn existing_record(&self, server_id: &str) -> Result<ServerRecord> {
        self.server_record(server_id)
            .await?
            .ok_or_else(|| DriverError::NotFound {
                kind: "server",
                id: server_id.to_string(),
            })
    }

    async fn save_record(&self, record: &ServerRecord) -> Result<()> {
        write_json(&self.paths(&record.server.id).record(), record).await
    }

    /// The steps of `create_server` that can fail; `attached` receives the loop device as
    /// soon as there is one, for the undo.
    async fn build_server(
        &self,
        req: &ServerRequest,
        paths: &InstancePaths,
        attached: &mut Option<String>,
    ) -> Result<Server> {
        let id = &req.instance_id;
        let address = req
            .ports
            .first()
            .and_then(|p| p.addresses.first())
            .map(|a| a.address.clone())
            .ok_or_else(|| {
                DriverError::Invalid(format!(
                    "server of instance {id} needs a port with an address"
                ))
            })?;
        // Recorded at once (BUILD) so that a create that dies half-way is found and cleaned.
        let mut record = ServerRecord {
            server: Server {
                id: id.clone(),
                status: ServerStatus::Build,
                addresses: req
                    .ports
                    .iter()
                    .flat_map(|p| p.addresses.iter().cloned())
                    .collect(),
                flavor_id: req.flavor.id.clone(),
                volume: None,
                fault: None,
            },
            flavor: req.flavor.clone(),
            old_flavor: None,
            volume_id: req.volume.as_ref().map(|v| v.id.clone()),
            loop_device: None,
            address: address.clone(),
            datastore_manager: req.datastore_manager.clone(),
            project_id: req.project_id.clone(),
            name: req.name.clone(),
        };
        self.save_record(&record).await?;
        for file in &req.files {
            let target = injected_file_target(paths, file)?;
            write_secret_file(&target, &file.content).await?;
            tracing::debug!(instance.id = %id, path = %file.path, target = %target.display(), "injected file written");
        }
        create_dir_mode(&paths.conf_d(), 0o700).await?;
        create_dir_mode(&paths.host_d(), 0o700).await?;
        write_secret_file(
            &paths.host_d().join("local.conf"),
            &host_conf(&address, &req.datastore_manager, &paths.data()),
        )
        .await?;
        create_dir_mode(&paths.data(), 0o755).await?;

        let mut guest_volume = None;
        if let Some(volume) = &req.volume {
            check_id("volume", &volume.id)?;
            let image = self.volume_image(&volume.id);
            if !image.exists() {
                return Err(DriverError::NotFound {
                    kind: "volume",
                    id: volume.id.clone(),
                });
            }
            if self.loop_volumes {
                let device = host::loop_attach(&image).await?;
                tracing::info!(instance.id = %id, volume.id = %volume.id, device = %device, "volume attached to a loop device");
                *attached = Some(device.clone());
                guest_volume = Some(GuestVolume {
                    device_path: device,
                    mount_point: paths.data().display().to_string(),
                });
            } else if !self.warned_no_loop.swap(true, Ordering::Relaxed) {
                tracing::warn!(instance.id = %id, volume.id = %volume.id, "loop devices are not available: instance data is kept in a plain directory and volume sizes are not enforced");
            }
        }

        record.server.volume = guest_volume;
        record.loop_device = attached.clone();
        self.save_record(&record).await?;
        self.launcher
            .launch(id, &paths.config_dirs(), &paths.log())
            .await?;
        record.server.status = ServerStatus::Active;
        self.save_record(&record).await?;
        Ok(record.server)
    }
    /// Detaches `device` if it is still attached to the image of `volume_id` (a loop device
    /// number freed earlier may since belong to something else).
    async fn detach_if_ours(
        &self,
        instance_id: &str,
        volume_id: Option<&str>,
        device: &str,
    ) -> Result<()> {
        let Some(volume_id) = volume_id else {
            return Ok(());
        };
        let image = self.volume_image(volume_id);
        if host::loop_devices_of(&image)
            .await?
            .iter()
            .any(|d| d == device)
        {
            tracing::info!(instance.id = %instance_id, device = %device, "detaching loop device");
            host::loop_detach(device).await?;
        }
        Ok(())
    }

    /// Stops the agent and every process still using the instance directory.
    async fn stop_everything(&self, instance_id: &str, paths: &InstancePaths) -> Result<()> {
        self.launcher.stop(instance_id).await?;
        host::stop_processes_using(&paths.root, PROCESS_GRACE, instance_id).await
    }
}

#[async_trait]
impl ComputeDriver for LocalDriver {
    async fn create_server(&self, req: &ServerRequest) -> Result<Server> {
        let id = &req.instance_id;
        check_id("instance", id)?;
        let manager = &req.datastore_manager;
        if manager.is_empty()
            || !manager
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(DriverError::Invalid(format!(
                "invalid datastore manager {manager:?}"
            )));
        }
        let paths = self.paths(id);
        match tokio::fs::create_dir(&paths.root).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(DriverError::Invalid(format!(
                    "a server for instance {id} already exists"
                )))
            }
            Err(e) => {
                return Err(DriverError::host(
                    format!("creating {}", paths.root.display()),
                    e,
                ))
            }
        }
        tracing::info!(instance.id = %id, dir = %paths.root.display(), "creating local server");
        let mut attached = None;
        match self.build_server(req, &paths, &mut attached).await {
            Ok(server) => {
                tracing::info!(instance.id = %id, "local server created");
                Ok(server)
            }
            Err(e) => {
                tracing::warn!(instance.id = %id, error = %e, "creating the local server failed; undoing");
                if let Err(undo) = self.launcher.stop(id).await {
                    tracing::warn!(instance.id = %id, error = %undo, "stopping the guest agent failed");
                }
                if let Some(device) = &attached {
                    let volume_id = req.volume.as_ref().map(|v| v.id.as_str());
                    if let Err(undo) = self.detach_if_ours(id, volume_id, device).await {
                        tracing::warn!(instance.id = %id, error = %undo, "detaching the loop device failed");
                    }
                }
                if let Err(undo) = tokio::fs::remove_dir_all(&paths.root).await {
                    tracing::warn!(instance.id = %id, error = %undo, "removing the instance directory failed");
                }
                Err(e)
            }
        }
    }

    async fn get_server(&self, server_id: &str) -> Result<Option<Server>> {
        let Some(record) = self.server_record(server_id).await? else {
            // A directory without a record: a create that died before writing it.
            if self.paths(server_id).root.is_dir() {
                return Ok(Some(Server {
                    id: server_id.to_string(),
                    status: ServerStatus::Error,
                    addresses: Vec::new(),
                    flavor_id: String::new(),
                    volume: None,
                    fault: Some("the server's create did not finish".into()),
                }));
            }
            return Ok(None);
        };
        let mut server = record.server;
        server.status = match server.status {
            ServerStatus::Build | ServerStatus::VerifyResize | ServerStatus::Error => server.status,
            _ if self.launcher.is_running(server_id).await => ServerStatus::Active,
            _ => ServerStatus::Shutoff,
        };
        Ok(Some(server))
    }

    async fn delete_server(&self, server_id: &str) -> Result<()> {
        check_id("server", server_id)?;
        let paths = self.paths(server_id);
        // The agent's pid file lives outside the directory: stop it even if the directory
        // is gone.
        self.launcher.stop(server_id).await?;
        if !paths.root.exists() {
            tracing::info!(instance.id = %server_id, "local server already gone");
            return Ok(());
        }
        tracing::info!(instance.id = %server_id, "deleting local server");
        // A create that died early may have left no (or an unreadable) record.
        let record = match self.server_record(server_id).await {
            Ok(record) => record,
            Err(e) => {
                tracing::warn!(instance.id = %server_id, error = %e, "unreadable server record; cleaning up without it");
                None
            }
        };
        host::stop_processes_using(&paths.root, PROCESS_GRACE, server_id).await?;
        for mount in host::mounts_under(&paths.root)? {
            host::unmount(&mount, server_id).await?;
        }
        if let Some(record) = &record {
            if let Some(device) = &record.loop_device {
                self.detach_if_ours(server_id, record.volume_id.as_deref(), device)
                    .await?;
            }
        }
        match tokio::fs::remove_dir_all(&paths.root).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(DriverError::host(
                    format!("removing {}", paths.root.display()),
                    e,
                ))
            }
        }
        tracing::info!(instance.id = %server_id, "local server deleted");
        Ok(())
    }

    async fn find_server(&self, instance_id: &str) -> Result<Option<Server>> {
        self.get_server(instance_id).await
    }

    async fn reboot_server(&self, server_id: &str) -> Result<()> {
        self.existing_record(server_id).await?;
        let paths = self.paths(server_id);
        tracing::info!(instance.id = %server_id, "rebooting local server");
        self.stop_everything(server_id, &paths).await?;
        self.launcher
            .launch(server_id, &paths.config_dirs(), &paths.log())
            .await?;
        tracing::info!(instance.id = %server_id, "local server rebooted");
        Ok(())
    }

    async fn resize_server(&self, server_id: &str, flavor: &FlavorSpec) -> Result<()> {
        let mut record = self.existing_record(server_id).await?;
        if record.server.status == ServerStatus::VerifyResize {
            return Err(DriverError::Invalid(format!(
                "server {server_id} has a resize waiting for confirmation"
            )));
        }
        let old = std::mem::replace(&mut record.flavor, flavor.clone());
        tracing::info!(instance.id = %server_id, from = %old.id, to = %flavor.id, "resizing local server (memory and CPUs are not enforced)");
        record.old_flavor = Some(old);
        record.server.flavor_id = flavor.id.clone();
        record.server.status = ServerStatus::VerifyResize;
        self.save_record(&record).await
    }

    async fn confirm_resize(&self, server_id: &str) -> Result<()> {
        let mut record = self.existing_record(server_id).await?;
        if record.server.status != ServerStatus::VerifyResize {
            return Err(DriverError::Invalid(format!(
                "server {server_id} has no resize to confirm"
            )));
        }
        record.old_flavor = None;
        record.server.status = ServerStatus::Active;
        tracing::info!(instance.id = %server_id, flavor = %record.flavor.id, "resize confirmed");
        self.save_record(&record).await
    }

    async fn revert_resize(&self, server_id: &str) -> Result<()> {
        let mut record = self.existing_record(server_id).await?;
        let (ServerStatus::VerifyResize, Some(old)) =
            (record.server.status, record.old_flavor.take())
        else {
            return Err(DriverError::Invalid(format!(
                "server {server_id} has no resize to revert"
            )));
        };
        tracing::info!(instance.id = %server_id, flavor = %old.id, "resize reverted");
        record.server.flavor_id = old.id.clone();
        record.flavor = old;
        record.server.status = ServerStatus::Active;
        self.save_record(&record).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str) -> InjectedFile {
        InjectedFile {
            path: path.into(),
            content: String::new(),
        }
    }

    #[test]
    fn injected_files_land_in_conf_d_or_root() {
        let paths = InstancePaths {
            root: PathBuf::from("/s/instances/i1"),
        };
        assert_eq!(
            injected_file_target(&paths, &file("/etc/trove/conf.d/guest_info.conf")).ok(),
            Some(PathBuf::from("/s/instances/i1/conf.d/guest_info.conf"))
        );
        assert_eq!(
            injected_file_target(&paths, &file("/etc/ssl/ca.pem")).ok(),
            Some(PathBuf::from("/s/instances/i1/root/etc/ssl/ca.pem"))
        );
        for bad in ["relative.conf", "/etc/../../x", "/", ""] {
            assert!(
                injected_file_target(&paths, &file(bad)).is_err(),
                "{bad:?} accepted"
            );
        }
    }

    #[test]
    fn host_conf_has_bind_host_and_mount_point() {
        assert_eq!(
            host_conf("127.1.0.3", "postgresql", Path::new("/s/instances/i1/data")),
            "[DEFAULT]\nbind_host = 127.1.0.3\n\n[postgresql]\nmount_point = /s/instances/i1/data\n"
        );
    }
}
