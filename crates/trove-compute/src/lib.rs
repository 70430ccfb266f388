//! Compute, volume and network drivers of trove-taskmanager.
//!
//! The taskmanager's workflows (create, delete, restart, resize) speak only to these three
//! traits; a driver turns them into resources of one kind of cloud:
//!
//! ```text
//!              trove-taskmanager workflows
//!        │                 │                    │
//!  NetworkDriver      VolumeDriver         ComputeDriver
//!  allocate/release   create/extend/       create/get/delete/reboot/
//!  (ports, sec.       delete volumes       resize servers, with the
//!  groups, addresses)                      guest's injected files
//!        │                 │                    │
//!   local: loopback    local: ext4 image    local: a trove-guestagent process
//!   127.x.y.z with     on a loop device     (or an in-process agent in trove-aio)
//!   the datastore's                         reading the injected files
//!   port free
//!   openstack: Neutron  openstack: Cinder   openstack: Nova (+ Glance image)
//! ```
//!
//! Every resource is named after the instance (`trove-<instance id>`) so that deleting an
//! instance can find and remove whatever a crashed create left behind, with or without the
//! ids stored in the control database. Deletes are idempotent: deleting what is gone succeeds.
//!
//! [`local`] is the driver for one host (all-in-one and single-host deployments).

use std::collections::BTreeMap;
use std::fmt;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub mod local;

/// What a driver call failed with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DriverError {
    /// The resource does not exist.
    #[error("{kind} {id} not found")]
    NotFound {
        /// `server`, `volume`, `port`.
        kind: &'static str,
        /// Its id.
        id: String,
    },
    /// The request cannot be met (no free address, no such flavor, size too small...).
    /// The message is shown to the tenant in the instance's fault.
    #[error("{0}")]
    Invalid(String),
    /// The cloud (or this host) ran out of something.
    #[error("{0}")]
    Exhausted(String),
    /// A host operation failed (a command, a file, a process).
    #[error("{context}: {message}")]
    Host {
        /// What was being done.
        context: String,
        /// Why it failed.
        message: String,
    },
    /// The cloud's API answered with an error or could not be reached.
    #[error("{0}")]
    Api(String),
}

impl DriverError {
    /// A [`DriverError::Host`] error.
    pub fn host(context: impl Into<String>, message: impl fmt::Display) -> Self {
        DriverError::Host {
            context: context.into(),
            message: message.to_string(),
        }
    }
}

/// Result of a driver call.
pub type Result<T, E = DriverError> = std::result::Result<T, E>;

/// The name every resource of an instance carries: `trove-<instance id>`.
pub fn resource_name(instance_id: &str) -> String {
    format!("trove-{instance_id}")
}

/// A flavor as the compute driver needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlavorSpec {
    /// Flavor id (Nova id, or the id in our `flavors` table).
    pub id: String,
    /// Name.
    pub name: String,
    /// Memory in MB.
    pub ram_mb: i64,
    /// Virtual CPUs.
    pub vcpus: i64,
    /// Root disk in GB.
    pub disk_gb: i64,
    /// Ephemeral disk in GB.
    pub ephemeral_gb: i64,
}

/// A file for the guest, at the path the guest agent reads it from (e.g.
/// `/etc/trove/conf.d/guest_info.conf`).
#[derive(Clone, PartialEq, Eq)]
pub struct InjectedFile {
    /// Absolute path inside the guest.
    pub path: String,
    /// Contents (may hold secrets: never logged).
    pub content: String,
}

impl fmt::Debug for InjectedFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InjectedFile")
            .field("path", &self.path)
            .field("bytes", &self.content.len())
            .finish()
    }
}

/// An address of a server or port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    /// IPv4 or IPv6 address.
    pub address: String,
    /// `private` or `public`, as Trove's API shows it.
    #[serde(rename = "type")]
    pub kind: String,
    /// Network name.
    pub network: String,
}

/// What the network driver is asked for at create.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NetworkRequest {
    /// The instance.
    pub instance_id: String,
    /// Its project.
    pub project_id: String,
    /// The tenant's NICs from the create request (`network_id`, `subnet_id`, `ip_address`).
    pub nics: Vec<serde_json::Value>,
    /// `{"is_public", "allowed_cidrs"}`, if given.
    pub access: Option<serde_json::Value>,
    /// TCP ports the datastore serves (`[<manager>] tcp_ports`, PostgreSQL's port).
    pub tcp_ports: Vec<u16>,
    /// UDP ports (`[<manager>] udp_ports`).
    pub udp_ports: Vec<u16>,
}

/// A port (network attachment) made for an instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Port {
    /// Port id (Neutron id; the address for the local driver).
    pub id: String,
    /// Its addresses.
    pub addresses: Vec<Address>,
}

/// Status of a volume (Cinder's values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VolumeStatus {
    /// Being made.
    Creating,
    /// Ready, not attached.
    Available,
    /// Attached to a server.
    InUse,
    /// Growing.
    Extending,
    /// Failed.
    Error,
    /// Being removed.
    Deleting,
}

/// What the volume driver is asked for at create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeRequest {
    /// The instance.
    pub instance_id: String,
    /// Size in GB.
    pub size_gb: i64,
    /// Volume type, if any.
    pub volume_type: Option<String>,
    /// Availability zone, if any.
    pub availability_zone: Option<String>,
}

/// A data volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    /// Volume id.
    pub id: String,
    /// Size in GB.
    pub size_gb: i64,
    /// Status.
    pub status: VolumeStatus,
}

/// Status of a server (Nova's values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ServerStatus {
    /// Being built.
    Build,
    /// Running.
    Active,
    /// Stopped.
    Shutoff,
    /// Rebooting.
    Reboot,
    /// Being resized.
    Resize,
    /// Resized, waiting for confirmation.
    VerifyResize,
    /// Failed.
    Error,
    /// Gone.
    Deleted,
}

impl ServerStatus {
    /// Nova's spelling (`ACTIVE`, `VERIFY_RESIZE`...), as stored in `instances.server_status`.
    pub fn as_str(self) -> &'static str {
        match self {
            ServerStatus::Build => "BUILD",
            ServerStatus::Active => "ACTIVE",
            ServerStatus::Shutoff => "SHUTOFF",
            ServerStatus::Reboot => "REBOOT",
            ServerStatus::Resize => "RESIZE",
            ServerStatus::VerifyResize => "VERIFY_RESIZE",
            ServerStatus::Error => "ERROR",
            ServerStatus::Deleted => "DELETED",
        }
    }
}

impl fmt::Display for ServerStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where the guest finds its data volume: the `device_path` and `mount_point` of `prepare`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestVolume {
    /// Block device as the guest sees it (`/dev/vdb`, `/dev/loop7`).
    pub device_path: String,
    /// Where the guest mounts it.
    pub mount_point: String,
}

/// What the compute driver is asked for at create.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerRequest {
    /// The instance.
    pub instance_id: String,
    /// Its project.
    pub project_id: String,
    /// The instance's name.
    pub name: String,
    /// The datastore manager (`mariadb`, `postgresql`).
    pub datastore_manager: String,
    /// Guest image (Glance id), if the driver uses images.
    pub image_id: Option<String>,
    /// Flavor.
    pub flavor: FlavorSpec,
    /// Ports from [`NetworkDriver::allocate`], user ports first.
    pub ports: Vec<Port>,
    /// Data volume from [`VolumeDriver::create_volume`], attached at boot.
    pub volume: Option<Volume>,
    /// Files for the guest (its configuration).
    pub files: Vec<InjectedFile>,
    /// Availability zone.
    pub availability_zone: Option<String>,
    /// Server metadata (`trove_project_id`, `trove_instance_id`...).
    pub metadata: BTreeMap<String, String>,
}

/// A server (the machine, real or not, that runs one guest agent and its database).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Server {
    /// Server id.
    pub id: String,
    /// Status.
    pub status: ServerStatus,
    /// Its addresses (the database's, as tenants reach it).
    pub addresses: Vec<Address>,
    /// The flavor it runs with.
    pub flavor_id: String,
    /// Where its data volume is, when it has one.
    pub volume: Option<GuestVolume>,
    /// Why it is in ERROR, if it is.
    pub fault: Option<String>,
}

/// Servers: the machines guests run on.
#[async_trait]
pub trait ComputeDriver: Send + Sync + fmt::Debug {
    /// The image a server of a datastore version boots from, resolved before anything is
    /// made for an instance: `image_id` when set, else what `image_tags` select. Drivers
    /// that boot no image (the local one) take whatever the version names, as it is (the
    /// default). A driver with an image service fails with [`DriverError::Invalid`] when
    /// the image does not exist or no image carries the tags.
    async fn resolve_image(
        &self,
        image_id: Option<&str>,
        image_tags: &[String],
    ) -> Result<Option<String>> {
        let _ = image_tags;
        Ok(image_id.map(str::to_owned).filter(|i| !i.is_empty()))
    }

    /// Creates a server for `req` and starts it; returns once it has an id (it may still
    /// be [`ServerStatus::Build`]). On error nothing of the server is left.
    async fn create_server(&self, req: &ServerRequest) -> Result<Server>;

    /// The server, or `None` when it does not exist (any more).
    async fn get_server(&self, server_id: &str) -> Result<Option<Server>>;

    /// Deletes the server and everything running on it. Idempotent.
    async fn delete_server(&self, server_id: &str) -> Result<()>;

    /// The server of an instance, found by the instance id alone (for clean-up after a
    /// create that died before the server id was stored).
    async fn find_server(&self, instance_id: &str) -> Result<Option<Server>>;

    /// Reboots the server (the guest agent and its database restart).
    async fn reboot_server(&self, server_id: &str) -> Result<()>;

    /// Moves the server to `flavor`; afterwards it is [`ServerStatus::VerifyResize`] (or
    /// [`ServerStatus::Active`] for drivers that need no confirmation).
    async fn resize_server(&self, server_id: &str, flavor: &FlavorSpec) -> Result<()>;

    /// Confirms a resize in VERIFY_RESIZE.
    async fn confirm_resize(&self, server_id: &str) -> Result<()>;

    /// Reverts a resize in VERIFY_RESIZE to the old flavor.
    async fn revert_resize(&self, server_id: &str) -> Result<()>;
}

/// Data volumes.
#[async_trait]
pub trait VolumeDriver: Send + Sync + fmt::Debug {
    /// Creates an empty volume of the requested size; it is [`VolumeStatus::Available`]
    /// (or creating) when this returns. On error nothing is left.
    async fn create_volume(&self, req: &VolumeRequest) -> Result<Volume>;

    /// The volume, or `None` when it does not exist.
    async fn get_volume(&self, volume_id: &str) -> Result<Option<Volume>>;

    /// Grows the volume to `new_size_gb` (the guest grows its filesystem afterwards).
    async fn extend_volume(&self, volume_id: &str, new_size_gb: i64) -> Result<()>;

    /// Deletes the volume and its data (detaching it first if needed). Idempotent.
    async fn delete_volume(&self, volume_id: &str) -> Result<()>;

    /// The volumes of an instance, found by the instance id alone.
    async fn find_volumes(&self, instance_id: &str) -> Result<Vec<Volume>>;
}

/// Addresses, ports and security groups.
#[async_trait]
pub trait NetworkDriver: Send + Sync + fmt::Debug {
    /// Makes the instance's ports (and security groups); user ports first.
    async fn allocate(&self, req: &NetworkRequest) -> Result<Vec<Port>>;

    /// Removes every port, address and security group of the instance. Idempotent.
    async fn release(&self, instance_id: &str) -> Result<()>;
}
