//! OpenStack drivers of trove-taskmanager: instances as Nova servers, data volumes as Cinder
//! volumes, ports and security groups in Neutron, all in the **service project** of
//! `[service_credentials]` (tenants see only the Trove instance).
//!
//! [`OpenStackDriver`] implements [`ComputeDriver`](trove_compute::ComputeDriver),
//! [`VolumeDriver`](trove_compute::VolumeDriver) and
//! [`NetworkDriver`](trove_compute::NetworkDriver); build it with
//! [`OpenStackDriver::from_config`] and hand the same value (it is cheap to clone) to the
//! taskmanager as all three drivers.
//!
//! # Dependencies
//!
//! Authentication and endpoints come from [`osauth`] 0.5 (the session library under
//! rust-openstack): Keystone v3 password authentication with a cached token that is renewed
//! before it expires, endpoint lookup in the catalog by service type, region and interface,
//! endpoint overrides, and API version discovery. It is built on reqwest 0.12 with rustls,
//! which the workspace already uses, so it adds little to the build. The resource calls
//! themselves are plain JSON requests through the osauth session: the higher-level
//! `openstack` crate (rust-openstack 0.6) has no server tags, resize/confirm/revert or
//! admin-only attributes, and `openstack_sdk` needs a newer Rust and brings a much larger
//! dependency tree (generated bindings for a dozen services) for the handful of calls made
//! here.
//!
//! # What is created for an instance `<id>`
//!
//! * Neutron security group `<trove_security_group_name_prefix>-<id>` (when
//!   `trove_security_groups_support`) with ingress rules for the datastore's TCP and UDP
//!   ports from `access.allowed_cidrs` or `trove_security_group_rule_cidr`;
//! * ports named `trove-<id>`: one per tenant NIC (with a floating IP from `[network]
//!   public_network_id`, else the first external network, when `access.is_public`), then
//!   the management port on the last `management_networks` entry with
//!   `management_security_groups` (or the instance's group);
//! * Cinder volume `trove-<id>` (when the datastore uses volumes);
//! * the Nova server, booted from the datastore version's image (its id, checked in Glance,
//!   or the newest active Glance image carrying all its tags:
//!   [`OpenStackDriver::image_for_version`]) with the volume as a BDMv2 entry, `key_name =
//!   nova_keypair`, the guest's files as `#cloud-config` user data, `config_drive =
//!   use_nova_server_config_drive`, metadata `trove_project_id`, `trove_user_id`,
//!   `trove_instance_id` and tags `trove_instance`, `trove_<manager>`,
//!   `trove_project_id_<p>`, `trove_user_id_<u>`, `trove_instance_id_<id>`.
//!
//! Deletes find everything again by those names, and treat "already gone" (404, or a server
//! in `DELETED`) as done.
//!
//! # What is tested, and against what
//!
//! `cargo test -p trove-openstack` runs the unit tests (cloud-config rendering read back
//! with a YAML parser and base64, status mapping, security group rules, options from
//! trove.conf) and two integration suites against real OpenStack services on loopback,
//! each brought up once per test run by `scripts/nova-test-stack.sh` (`scripts/nova-up.sh`:
//! Keystone, Placement, Glance, Nova 34 with the fake virt driver, private MariaDB and
//! RabbitMQ) and reused while it runs; `--stop` stops one. The first bring-up takes 2-3
//! minutes per stack (about 2 more when its virtualenv is built).
//!
//! * `tests/nova.rs` (Neutron stand-in; `target/nova-stack`, ports 29500-29510): login as
//!   the service user, create with user data / metadata / tags (the user data is read back
//!   through Nova's admin API and the files decode exactly), ACTIVE, Placement allocations,
//!   find by instance id, soft reboot, resize with confirm and with revert, refusal of an
//!   action in the wrong state, delete to 404 with nothing left in Placement, idempotent
//!   delete, a flavor too big for the host ending in ERROR with "No valid host was found",
//!   wrong credentials and an unreachable Nova.
//! * `tests/glance.rs` (the same stack's Glance): images uploaded with unique tags per
//!   test and deleted after; the newest active image carrying every tag wins over older
//!   ones, ones missing a tag and a newer queued one; no match and an unknown image id are
//!   refused with a readable error.
//! * `tests/neutron.rs` (real Neutron 29 with ML2/OVN; `target/nova-stack-ovn`, ports
//!   29600-29610): security group `trove_sg-<id>` with its rules, tenant and management
//!   ports `trove-<id>` in that group, a server booted on them showing their addresses,
//!   release leaving no port and no group, and a failed allocation cleaning up after itself.
//! * `tests/cinder.rs` (the OVN stack's real Cinder 29 with the fake back end shipped in
//!   Cinder; port 29611): volume of a type, boot with it as BDMv2, extend while attached,
//!   delete leaving nothing, a create over the project's quota failing clearly.
//! * `tests/token.rs`: the driver's token revoked in Keystone before its expiry; the next
//!   calls log in again.
//! * `crates/trove/tests/openstack_e2e.rs`: the whole product on the OVN stack with the test
//!   playing the VM (floating IP of a public instance, restart, reboot, resize, delete,
//!   "No valid host").
//!
//! **Not tested against real services:** `management_security_groups`, data written
//! through a real block device (Cinder's back end here keeps no data).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use osauth::common::IdOrName;
use osauth::identity::Password;
use osauth::services::{GenericService, VersionSelector};
use osauth::{ErrorKind, InterfaceType, Session};
use reqwest::Method;
use serde_json::Value;
use trove_compute::DriverError;
use trove_config::Config;

mod cloudinit;
mod compute;
mod glance;
mod network;
mod volume;

pub use cloudinit::render_user_data;
pub use compute::map_server_status;

/// How long one API request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// How often the first Keystone login is tried when Keystone fails transiently.
const LOGIN_ATTEMPTS: u32 = 4;

/// Whether a failed login may succeed when tried again: Keystone's 5xx, a broken connection
/// or a timeout; never a refused password or a bad request.
fn login_error_is_transient(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::InternalServerError | ErrorKind::ProtocolError | ErrorKind::OperationTimedOut
    )
}

/// `[service_credentials]`: the Trove service user, whose project holds every resource.
#[derive(Clone)]
pub struct Credentials {
    /// Keystone v3 URL (`.../v3`).
    pub auth_url: String,
    /// User name.
    pub username: String,
    /// Password.
    pub password: String,
    /// User's domain name.
    pub user_domain_name: String,
    /// Project id; used instead of the name when set.
    pub project_id: Option<String>,
    /// Project name.
    pub project_name: String,
    /// Project's domain name.
    pub project_domain_name: String,
    /// Region of the endpoints.
    pub region_name: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("auth_url", &self.auth_url)
            .field("username", &self.username)
            .field("user_domain_name", &self.user_domain_name)
            .field("project_id", &self.project_id)
            .field("project_name", &self.project_name)
            .field("project_domain_name", &self.project_domain_name)
            .field("region_name", &self.region_name)
            .finish_non_exhaustive()
    }
}

/// Where a service is found: its catalog type and an optional fixed URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceEndpoint {
    /// Service type in the catalog (`compute`, `network`, `volumev3`).
    pub service_type: String,
    /// URL used instead of the catalog's.
    pub url: Option<String>,
}

/// Everything the drivers take from trove.conf.
#[derive(Debug, Clone)]
pub struct OpenStackOptions {
    /// The service user.
    pub credentials: Credentials,
    /// Endpoint interface (`public`, `internal`, `admin`), from `nova_compute_endpoint_type`.
    pub interface: String,
    /// Nova (`nova_compute_service_type`, `nova_compute_url`).
    pub compute: ServiceEndpoint,
    /// Neutron (`neutron_service_type`, `neutron_url`).
    pub network: ServiceEndpoint,
    /// Cinder (`cinder_service_type`, `cinder_url`).
    pub volume: ServiceEndpoint,
    /// Glance (`glance_service_type`, `glance_url`).
    pub image: ServiceEndpoint,
    /// Nova microversion of every compute request (`nova_client_version`, at least 2.52 for
    /// tags at create).
    pub nova_microversion: String,
    /// `nova_keypair`.
    pub keypair: Option<String>,
    /// `use_nova_server_config_drive`.
    pub config_drive: bool,
    /// `<injected_config_owner>:<injected_config_group>`.
    pub injected_files_owner: String,
    /// `cloudinit_location`: directory of `<manager>.cloudinit` snippets.
    pub cloudinit_location: String,
    /// `block_device_mapping`: device name of the data volume (`vdb`).
    pub block_device_name: String,
    /// `[<manager>] device_path` and `mount_point` per datastore manager.
    pub guest_volumes: BTreeMap<String, (String, String)>,
    /// `management_networks`: only the last entry is used.
    pub management_networks: Vec<String>,
    /// `management_security_groups`.
    pub management_security_groups: Vec<String>,
    /// `trove_security_groups_support`.
    pub security_groups: bool,
    /// `trove_security_group_name_prefix`.
    pub security_group_prefix: String,
    /// `trove_security_group_rule_cidr`.
    pub security_group_rule_cidr: String,
    /// `[network] public_network_id`: where floating IPs of public instances come from
    /// (default: the first external network).
    pub public_network_id: Option<String>,
}

impl OpenStackOptions {
    /// The options as trove.conf sets them.
    pub fn from_config(config: &Config) -> Self {
        let d = &config.default;
        let sc = &config.service_credentials;
        let guest_volumes = Config::DATASTORE_MANAGERS
            .iter()
            .filter_map(|m| {
                config.datastore(m).map(|ds| {
                    (
                        m.to_string(),
                        (ds.device_path.clone(), ds.mount_point.clone()),
                    )
                })
            })
            .collect();
        OpenStackOptions {
            credentials: Credentials {
                auth_url: sc.auth_url.clone(),
                username: sc.username.clone(),
                password: sc.password.expose_secret().to_owned(),
                user_domain_name: sc.user_domain_name.clone(),
                project_id: Some(sc.project_id.clone()).filter(|p| !p.is_empty()),
                project_name: sc.project_name.clone(),
                project_domain_name: sc.project_domain_name.clone(),
                region_name: sc.region_name.clone(),
            },
            interface: d.nova_compute_endpoint_type.clone(),
            compute: ServiceEndpoint {
                service_type: d.nova_compute_service_type.clone(),
                url: d.nova_compute_url.as_ref().map(|u| u.to_string()),
            },
            network: ServiceEndpoint {
                service_type: d.neutron_service_type.clone(),
                url: d.neutron_url.as_ref().map(|u| u.to_string()),
            },
            volume: ServiceEndpoint {
                service_type: d.cinder_service_type.clone(),
                url: d.cinder_url.as_ref().map(|u| u.to_string()),
            },
            image: ServiceEndpoint {
                service_type: d.glance_service_type.clone(),
                url: d.glance_url.as_ref().map(|u| u.to_string()),
            },
            nova_microversion: d.nova_client_version.clone(),
            keypair: d.nova_keypair.clone().filter(|k| !k.is_empty()),
            config_drive: d.use_nova_server_config_drive,
            injected_files_owner: format!(
                "{}:{}",
                d.injected_config_owner, d.injected_config_group
            ),
            cloudinit_location: d.cloudinit_location.clone(),
            block_device_name: d.block_device_mapping.clone(),
            guest_volumes,
            management_networks: d.management_networks.clone(),
            management_security_groups: d.management_security_groups.clone(),
            security_groups: d.trove_security_groups_support,
            security_group_prefix: d.trove_security_group_name_prefix.clone(),
            security_group_rule_cidr: d.trove_security_group_rule_cidr.clone(),
            public_network_id: config
                .network
                .public_network_id
                .clone()
                .filter(|n| !n.trim().is_empty()),
        }
    }
}

/// Nova, Cinder and Neutron through one authenticated session of the service user.
#[derive(Clone)]
pub struct OpenStackDriver {
    inner: Arc<Inner>,
}

struct Inner {
    /// The session; replaced by a fresh login when a service refuses its token.
    session: std::sync::RwLock<Session>,
    compute: GenericService,
    network: GenericService,
    volume: GenericService,
    image: GenericService,
    opts: OpenStackOptions,
    /// `(major, minor)` of `opts.nova_microversion`.
    nova_version: (u16, u16),
}

impl fmt::Debug for OpenStackDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenStackDriver")
            .field("opts", &self.inner.opts)
            .finish_non_exhaustive()
    }
}

/// A catalog type as the `&'static str` osauth wants: the usual ones without allocating,
/// others leaked once per driver (a driver lives as long as the process).
fn static_type(t: &str) -> &'static str {
    match t {
        "compute" => "compute",
        "network" => "network",
        "volumev3" => "volumev3",
        "block-storage" => "block-storage",
        "volume" => "volume",
        "image" => "image",
        other => Box::leak(other.to_owned().into_boxed_str()),
    }
}

fn parse_microversion(v: &str) -> Result<(u16, u16), DriverError> {
    let bad = || DriverError::Invalid(format!("nova_client_version {v:?} is not MAJOR.MINOR"));
    let (a, b) = v.trim().split_once('.').ok_or_else(bad)?;
    Ok((a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?))
}

fn interface_type(s: &str) -> Result<InterfaceType, DriverError> {
    match s.trim().trim_end_matches("URL") {
        "public" => Ok(InterfaceType::Public),
        "internal" => Ok(InterfaceType::Internal),
        "admin" => Ok(InterfaceType::Admin),
        other => Err(DriverError::Invalid(format!(
            "unknown endpoint interface {other:?} (public, internal or admin)"
        ))),
    }
}

impl OpenStackDriver {
    /// Logs in as `[service_credentials]` and builds the drivers from trove.conf.
    pub async fn from_config(config: &Config) -> Result<Self, DriverError> {
        Self::new(OpenStackOptions::from_config(config)).await
    }

    /// Logs in with `opts.credentials` (Keystone v3 password, project-scoped) and keeps the
    /// session; the token is renewed when it expires.
    pub async fn new(opts: OpenStackOptions) -> Result<Self, DriverError> {
        let c = &opts.credentials;
        let nova_version = parse_microversion(&opts.nova_microversion)?;
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| DriverError::Api(format!("cannot build the HTTP client: {e}")))?;
        // Keystone behind a load balancer (or merely busy) answers 5xx or drops a connection
        // now and then; a service that gives up on its first login would not start. Such
        // errors are tried again a few times; a refused password is not.
        let mut attempt = 0;
        let mut session = loop {
            attempt += 1;
            let auth = password_auth(c)?;
            match Session::new_with_client(client.clone(), auth).await {
                Ok(session) => break session,
                Err(e) if attempt < LOGIN_ATTEMPTS && login_error_is_transient(e.kind()) => {
                    tracing::warn!(
                        auth_url = %c.auth_url, attempt, error = %e,
                        "Keystone login failed; trying again"
                    );
                    tokio::time::sleep(Duration::from_secs(1 << attempt)).await;
                }
                Err(e) => {
                    return Err(DriverError::Api(format!(
                        "cannot authenticate to Keystone at {} as {}: {e}",
                        c.auth_url, c.username
                    )))
                }
            }
        };
        session.set_region(c.region_name.clone());
        session.set_endpoint_interface(interface_type(&opts.interface)?);
        let compute = GenericService::new(
            static_type(&opts.compute.service_type),
            VersionSelector::Major(2),
        );
        let network = GenericService::new(
            static_type(&opts.network.service_type),
            VersionSelector::Major(2),
        );
        let volume = GenericService::new(
            static_type(&opts.volume.service_type),
            VersionSelector::Major(3),
        );
        let image = GenericService::new(
            static_type(&opts.image.service_type),
            VersionSelector::Major(2),
        );
        for (svc, ep) in [
            (compute, &opts.compute),
            (network, &opts.network),
            (volume, &opts.volume),
            (image, &opts.image),
        ] {
            if let Some(url) = &ep.url {
                let url = url.parse().map_err(|e| {
                    DriverError::Invalid(format!("endpoint URL {url:?} is invalid: {e}"))
                })?;
                session.set_endpoint_override(svc, url);
            }
        }
        Ok(OpenStackDriver {
            inner: Arc::new(Inner {
                session: std::sync::RwLock::new(session),
                compute,
                network,
                volume,
                image,
                opts,
                nova_version,
            }),
        })
    }

    /// The options the driver runs with.
    pub fn options(&self) -> &OpenStackOptions {
        &self.inner.opts
    }

    /// The authenticated session (for callers that need another OpenStack call).
    pub fn session(&self) -> Session {
        self.inner
            .session
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Logs in again (the next request fetches a new token): a service refused the
    /// session's token although it had not expired (revoked, or Keystone's keys rotated).
    fn relogin(&self) -> Result<(), DriverError> {
        let auth = password_auth(&self.inner.opts.credentials)?;
        let mut session = self.session();
        session.set_auth_type(auth);
        *self
            .inner
            .session
            .write()
            .unwrap_or_else(|e| e.into_inner()) = session;
        Ok(())
    }
}

/// The Keystone v3 password authentication of `c`, scoped to its project.
fn password_auth(c: &Credentials) -> Result<Password, DriverError> {
    let project = match &c.project_id {
        Some(id) => IdOrName::Id(id.clone()),
        None => IdOrName::Name(c.project_name.clone()),
    };
    Ok(Password::new(
        &c.auth_url,
        c.username.clone(),
        c.password.clone(),
        c.user_domain_name.clone(),
    )
    .map_err(|e| DriverError::Invalid(format!("[service_credentials]: {e}")))?
    .with_project_scope(project, IdOrName::Name(c.project_domain_name.clone())))
}

/// Which service a request goes to.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Svc {
    Compute,
    Network,
    Volume,
    Image,
}

/// A failed request: the osauth error and what was being done.
#[derive(Debug)]
pub(crate) struct CallError {
    pub kind: ErrorKind,
    pub message: String,
}

impl CallError {
    pub(crate) fn is_not_found(&self) -> bool {
        self.kind == ErrorKind::ResourceNotFound
    }

    /// As a driver error, `context` saying what was being done.
    pub(crate) fn into_driver(self, context: &str) -> DriverError {
        let msg = format!("{context}: {}", self.message);
        match self.kind {
            ErrorKind::InvalidInput | ErrorKind::Conflict => DriverError::Invalid(msg),
            ErrorKind::AccessDenied if self.message.to_lowercase().contains("quota") => {
                DriverError::Exhausted(msg)
            }
            _ => DriverError::Api(msg),
        }
    }
}

impl OpenStackDriver {
    /// One request; the JSON answer (`Value::Null` when the body is empty).
    pub(crate) async fn call(
        &self,
        svc: Svc,
        method: Method,
        path: &[&str],
        query: &[(&str, String)],
        body: Option<&Value>,
        microversion: Option<&str>,
    ) -> Result<Value, CallError> {
        let inner = &self.inner;
        let service = match svc {
            Svc::Compute => inner.compute,
            Svc::Network => inner.network,
            Svc::Volume => inner.volume,
            Svc::Image => inner.image,
        };
        let to_err = |e: osauth::Error| CallError {
            kind: e.kind(),
            message: e.to_string(),
        };
        let mut relogged = false;
        let resp = loop {
            let mut req = self.session().request(service, method.clone(), path);
            if !query.is_empty() {
                req = req.query(query);
            }
            if let Some(v) = microversion {
                req = match svc {
                    Svc::Compute => req
                        .header("OpenStack-API-Version", format!("compute {v}"))
                        .header("X-OpenStack-Nova-API-Version", v),
                    Svc::Volume => req.header("OpenStack-API-Version", format!("volume {v}")),
                    Svc::Network | Svc::Image => req,
                };
            }
            if let Some(b) = body {
                req = req.json(b);
            }
            match req.send().await {
                Ok(resp) => break resp,
                // The token was refused before its expiry: log in again, once.
                Err(e) if e.kind() == ErrorKind::AuthenticationFailed && !relogged => {
                    tracing::warn!(error = %e, "the cloud refused the service token; logging in again");
                    relogged = true;
                    self.relogin().map_err(|d| CallError {
                        kind: ErrorKind::InvalidConfig,
                        message: d.to_string(),
                    })?;
                }
                Err(e) => return Err(to_err(e)),
            }
        };
        let text = resp.text().await.map_err(|e| CallError {
            kind: ErrorKind::ProtocolError,
            message: e.to_string(),
        })?;
        if text.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text).map_err(|e| CallError {
            kind: ErrorKind::InvalidResponse,
            message: format!("answer is not JSON ({e}): {}", truncate(&text)),
        })
    }

    /// A Nova request at the configured microversion.
    pub(crate) async fn nova(
        &self,
        method: Method,
        path: &[&str],
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Value, CallError> {
        let v = self.inner.opts.nova_microversion.clone();
        self.call(Svc::Compute, method, path, query, body, Some(&v))
            .await
    }
}

fn truncate(s: &str) -> &str {
    match s.char_indices().nth(200) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn microversions_parse() {
        assert_eq!(parse_microversion("2.57").unwrap(), (2, 57));
        assert!(parse_microversion("2").is_err());
        assert!(parse_microversion("x.1").is_err());
    }

    #[test]
    fn interfaces_accept_trove_spellings() {
        assert!(matches!(
            interface_type("publicURL"),
            Ok(InterfaceType::Public)
        ));
        assert!(matches!(
            interface_type("internalURL"),
            Ok(InterfaceType::Internal)
        ));
        assert!(matches!(interface_type("admin"), Ok(InterfaceType::Admin)));
        assert!(interface_type("private").is_err());
    }

    #[test]
    fn options_come_from_trove_conf() {
        let loaded = Config::from_ini_str(
            "t.conf",
            "[DEFAULT]\nnova_keypair = ops\nmanagement_networks = a,b\n\
             injected_config_owner = trove\nuse_nova_server_config_drive = true\n\
             [service_credentials]\nauth_url = http://k/v3\nusername = trove\n\
             password = s3cret\nproject_name = service\n",
        )
        .unwrap();
        let o = OpenStackOptions::from_config(&loaded.config);
        assert_eq!(o.credentials.username, "trove");
        assert_eq!(o.credentials.password, "s3cret");
        assert_eq!(o.credentials.project_id, None);
        assert_eq!(o.keypair.as_deref(), Some("ops"));
        assert_eq!(o.management_networks, vec!["a", "b"]);
        assert_eq!(o.injected_files_owner, "trove:root");
        assert!(o.config_drive);
        assert_eq!(o.volume.service_type, "volumev3");
        assert_eq!(
            o.guest_volumes.get("postgresql").map(|v| v.1.as_str()),
            Some("/var/lib/postgresql")
        );
        assert!(!format!("{:?}", o).contains("s3cret"));
    }
}
