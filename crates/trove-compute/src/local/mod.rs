//! The local driver: every Trove instance runs on this host.
//!
//! One [`LocalDriver`] implements [`ComputeDriver`], [`VolumeDriver`] and [`NetworkDriver`]
//! (share it as an `Arc<LocalDriver>`, see [`LocalDriver::into_drivers`]). All its state is
//! under [`LocalConfig::state_dir`], so a restarted taskmanager finds every instance again:
//!
//! ```text
//! <state_dir>/addresses/<ip>                  address lease (content: the instance id)
//! <state_dir>/volumes/<volume id>.img         data volume: a sparse file of size_gb GiB
//! <state_dir>/volumes/<volume id>.json        its metadata (id, instance_id, size_gb, status)
//! <state_dir>/instances/<instance id>/
//!     server.json       the server: status, flavor(s), volume, loop device, address
//!     conf.d/           injected files of /etc/trove/conf.d/ (guest_info.conf...), mode 0600
//!     root/<path>       any other injected file, at its path in the guest, mode 0600
//!     host.d/local.conf per-host settings: [DEFAULT] bind_host, [<manager>] mount_point
//!     data/             the mount point of the data volume
//!     guestagent.log    the guest agent's output
//! ```
//!
//! * **Network.** Each instance gets a loopback address of its own, `127.x.y.z` from
//!   [`LocalConfig::first_address`] upward (never `127.0.0.1`, where this host's own
//!   databases listen), on which the datastore's ports are free. Leases are files created
//!   with `O_EXCL`, so concurrent allocations, even from several processes, never share an
//!   address. The port id is the address.
//! * **Volumes.** A volume is a sparse image file, left unformatted: the guest agent makes
//!   its filesystem and mounts it, as Trove's guest does with a Cinder volume. With loop
//!   devices ([`LocalConfig::loop_volumes`]) the image is attached to a loop device at
//!   server create and the guest gets `/dev/loopN` as its `device_path`; growing a volume
//!   grows the file and makes the kernel re-read the loop device's size. Without loop
//!   devices (not root, or no `/dev/loop-control`) the server has no volume
//!   (`Server::volume` is `None`): the guest keeps its data in the plain directory
//!   `<instance>/data`, and the volume's size is not enforced (a warning is logged once).
//! * **Compute.** The server id is the instance id. A server is a guest agent started by a
//!   [`GuestLauncher`] (a `trove-guestagent` process with [`ProcessLauncher`]) reading
//!   `--config-dir <instance>/conf.d --config-dir <instance>/host.d`; the agent runs the
//!   database with its data under `<instance>/data`. A server is `BUILD` until its create
//!   finished, then `ACTIVE` while its agent runs and `SHUTOFF` otherwise; an instance
//!   directory without `server.json` (a create that died early) is an `ERROR` server, so
//!   that clean-up finds and deletes it. Deleting a server stops the agent and every process still
//!   using the instance's directory (found through `/proc/<pid>/cmdline` and cwd), unmounts
//!   the data volume, detaches the loop device and removes the directory. Flavors are only
//!   recorded: memory and CPUs are not enforced on this host; a resize records the new
//!   flavor and waits in `VERIFY_RESIZE` for confirmation or revert.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::{ComputeDriver, DriverError, NetworkDriver, Result, VolumeDriver};

mod host;
mod launcher;
mod network;
mod server;
mod volume;

pub use launcher::{GuestLauncher, ProcessLauncher, GUEST_AGENT_PROGRAM};

/// Configuration of a [`LocalDriver`].
#[derive(Debug, Clone)]
pub struct LocalConfig {
    /// Where leases, volume images and instance directories are kept.
    pub state_dir: PathBuf,
    /// Starts and stops guest agents.
    pub launcher: Arc<dyn GuestLauncher>,
    /// The first loopback address handed out (default [`LocalConfig::DEFAULT_FIRST_ADDRESS`]).
    pub first_address: Ipv4Addr,
    /// Whether volumes are attached to loop devices (default
    /// [`LocalConfig::default_loop_volumes`]).
    pub loop_volumes: bool,
}

impl LocalConfig {
    /// The default first loopback address: 127.1.0.1.
    pub const DEFAULT_FIRST_ADDRESS: Ipv4Addr = Ipv4Addr::new(127, 1, 0, 1);

    /// A configuration with the default address range and loop device use.
    pub fn new(state_dir: impl Into<PathBuf>, launcher: Arc<dyn GuestLauncher>) -> Self {
        LocalConfig {
            state_dir: state_dir.into(),
            launcher,
            first_address: Self::DEFAULT_FIRST_ADDRESS,
            loop_volumes: Self::default_loop_volumes(),
        }
    }

    /// Whether loop devices can be used: running as root and `/dev/loop-control` exists.
    pub fn default_loop_volumes() -> bool {
        rustix::process::geteuid().is_root() && Path::new("/dev/loop-control").exists()
    }
}

/// The driver running instances on this host (see the [module documentation](self)).
#[derive(Debug)]
pub struct LocalDriver {
    state_dir: PathBuf,
    launcher: Arc<dyn GuestLauncher>,
    first_address: Ipv4Addr,
    loop_volumes: bool,
    /// Whether the "volumes are plain directories" warning was logged.
    warned_no_loop: AtomicBool,
}

impl LocalDriver {
    /// A driver for `config`; creates the state directory.
    ///
    /// Fails when `first_address` is not a loopback address or is 127.0.0.1.
    pub fn new(config: LocalConfig) -> Result<Self> {
        let first = config.first_address;
        if !first.is_loopback() || first == Ipv4Addr::LOCALHOST {
            return Err(DriverError::Invalid(format!(
                "the first local instance address must be a loopback address other than \
                 127.0.0.1, not {first}"
            )));
        }
        for sub in ["addresses", "volumes", "instances"] {
            let dir = config.state_dir.join(sub);
            std::fs::create_dir_all(&dir)
                .map_err(|e| DriverError::host(format!("creating {}", dir.display()), e))?;
        }
        // Absolute and free of symlinks, as /proc shows it in command lines and mounts.
        let state_dir = config.state_dir.canonicalize().map_err(|e| {
            DriverError::host(format!("resolving {}", config.state_dir.display()), e)
        })?;
        if !config.loop_volumes {
            tracing::info!(state_dir = %state_dir.display(), "local driver without loop devices: volumes are plain directories");
        }
        Ok(LocalDriver {
            state_dir,
            launcher: config.launcher,
            first_address: first,
            loop_volumes: config.loop_volumes,
            warned_no_loop: AtomicBool::new(false),
        })
    }

    /// The driver as the three trait objects the taskmanager uses.
    pub fn into_drivers(
        self: Arc<Self>,
    ) -> (
        Arc<dyn ComputeDriver>,
        Arc<dyn VolumeDriver>,
        Arc<dyn NetworkDriver>,
    ) {
        (self.clone(), self.clone(), self)
    }

    /// The (canonical) state directory.
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// Whether volumes are attached to loop devices.
    pub fn loop_volumes(&self) -> bool {
        self.loop_volumes
    }

    /// The directory of an instance: `<state_dir>/instances/<instance id>`.
    pub fn instance_dir(&self, instance_id: &str) -> PathBuf {
        self.state_dir.join("instances").join(instance_id)
    }

    /// The image file of a volume: `<state_dir>/volumes/<volume id>.img`.
    pub fn volume_image(&self, volume_id: &str) -> PathBuf {
        self.state_dir
            .join("volumes")
            .join(format!("{volume_id}.img"))
    }

    fn volume_meta(&self, volume_id: &str) -> PathBuf {
        self.state_dir
            .join("volumes")
            .join(format!("{volume_id}.json"))
    }

    fn addresses_dir(&self) -> PathBuf {
        self.state_dir.join("addresses")
    }
}

/// Checks that an id can name a file: not empty, only ASCII letters, digits, `-`, `_` and
/// `.`, not starting with `.`.
fn check_id(kind: &str, id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 200
        && !id.starts_with('.')
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(DriverError::Invalid(format!("invalid {kind} id {id:?}")))
    }
}

/// Reads a JSON file; `None` when it does not exist.
async fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    match tokio::fs::read(path).await {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| DriverError::host(format!("reading {}", path.display()), e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(DriverError::host(format!("reading {}", path.display()), e)),
    }
}

/// Writes a JSON file atomically (a temporary file renamed over it).
async fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(value)
        .map_err(|e| DriverError::host(format!("encoding {}", path.display()), e))?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp-{}", uuid::Uuid::new_v4().simple()));
    let tmp = PathBuf::from(tmp);
    let result = async {
        tokio::fs::write(&tmp, &bytes).await?;
        tokio::fs::rename(&tmp, path).await
    }
    .await;
    if let Err(e) = result {
        let _ = tokio::fs::remove_file(&tmp).await;
        return Err(DriverError::host(format!("writing {}", path.display()), e));
    }
    Ok(())
}

/// Removes a file; a missing file is not an error.
async fn remove_file_if_exists(path: &Path) -> Result<()> {
    match tokio::fs::remove_file(path).await {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(DriverError::host(format!("removing {}", path.display()), e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_must_be_plain_file_names() {
        assert!(check_id("instance", "0b9f7a4e-1c2d-4e5f-8a9b-0c1d2e3f4a5b").is_ok());
        for bad in ["", ".", "..", "../x", "a/b", ".hidden", "a b", "a\nb"] {
            assert!(check_id("instance", bad).is_err(), "{bad:?} accepted");
        }
    }
}
