//! `create_instance` (spec: internals-workflows §2.2).
//!
//! ```text
//!  claim (task_start_time) ─ network.allocate ─ volume ─ broker user ─ injected files
//!    ─ compute.create_server ─ addresses ─ guest prepare (cast) ─ root history
//!    ─ wait for the service status: RUNNING/HEALTHY -> task NONE
//!                                  FAILED/SHUTDOWN/..., server ERROR, timeout -> error
//! ```
//! Unlike Trove, a failed create does not leave its server, volume, address and broker user
//! behind: they are removed at once, and the instance stays in its error task with a fault
//! that says what failed (the tenant deletes it; its quota is held until then, as in Trove).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use trove_compute::{FlavorSpec, NetworkRequest, Server, ServerRequest, VolumeRequest};
use trove_db::{Instance, InstanceAddress, ServiceStatus, TaskStatus};
use trove_rpc::api::{CreateInstanceArgs, PrepareArgs};
use trove_rpc::RpcContext;

use crate::error::{Result, TaskError};
use crate::files::{injected_files, render_config, GuestInfo, TemplateContext};
use crate::manager::{step, TaskManager};

/// One instance's part of a `create_instance` request.
pub(crate) struct OneCreate<'a> {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) root_password: Option<String>,
    pub(crate) args: &'a CreateInstanceArgs,
    /// The backup to restore (the request's, or a replica's source snapshot).
    pub(crate) backup_id: Option<String>,
    /// A replica's `snapshot` for `prepare`.
    pub(crate) snapshot: Option<Value>,
}

pub(crate) fn nth_str(v: &Value, i: usize) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Array(a) => a.get(i).and_then(Value::as_str).map(str::to_owned),
        _ => None,
    }
}

/// The flavor dict of a request as the compute driver needs it.
pub(crate) fn flavor_spec(v: &Value) -> FlavorSpec {
    let int = |k: &str| v.get(k).and_then(Value::as_i64).unwrap_or(0);
    FlavorSpec {
        id: match v.get("id") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => String::new(),
        },
        name: v
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned(),
        ram_mb: int("ram"),
        vcpus: int("vcpus"),
        disk_gb: int("disk"),
        ephemeral_gb: v
            .get("OS-FLV-EXT-DATA:ephemeral")
            .or_else(|| v.get("ephemeral"))
            .and_then(Value::as_i64)
            .unwrap_or(0),
    }
}

/// The TCP ports a datastore serves, from its configuration group.
pub(crate) fn datastore_ports(config: &trove_config::Config, manager: &str) -> Vec<u16> {
    let Some(ds) = config.datastore(manager) else {
        return Vec::new();
    };
    if manager == "postgresql" {
        return vec![ds.postgresql_port.unwrap_or(5432)];
    }
    ds.tcp_ports.iter().map(|r| r.start).collect()
}

/// Marks a create as running in this taskmanager while it lives (see
/// [`TaskManager::is_creating`]).
pub(crate) struct CreateRunning<'a> {
    tm: &'a TaskManager,
    id: String,
}

impl<'a> CreateRunning<'a> {
    pub(crate) fn new(tm: &'a TaskManager, id: &str) -> Self {
        tm.creating
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.to_owned());
        CreateRunning {
            tm,
            id: id.to_owned(),
        }
    }
}

impl Drop for CreateRunning<'_> {
    fn drop(&mut self) {
        self.tm
            .creating
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.id);
    }
}

impl TaskManager {
    /// Builds every instance of the request (several only for replicas).
    pub(crate) async fn create_instance(
        self: &Arc<Self>,
        ctx: RpcContext,
        args: CreateInstanceArgs,
    ) {
        let ids: Vec<String> = match &args.instance_id {
            Value::Array(a) => a
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            Value::String(s) => vec![s.clone()],
            other => {
                tracing::error!(instance_id = %other, "create_instance without a usable instance_id");
                return;
            }
        };
        if args.slave_of_id.is_some() {
            return self.create_replicas(&ctx, &args, ids).await;
        }
        for (i, id) in ids.into_iter().enumerate() {
            let one = OneCreate {
                name: nth_str(&args.name, i).unwrap_or_default(),
                root_password: nth_str(&args.root_password, i),
                id,
                args: &args,
                backup_id: args.backup_id.clone(),
                snapshot: None,
            };
            self.create_one(&ctx, one).await;
        }
    }

    pub(crate) async fn create_one(&self, ctx: &RpcContext, one: OneCreate<'_>) {
        let id = one.id.clone();
        match self.db.instance_claim_task_start(&id).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::info!(instance.id = %id, "create already taken by another taskmanager, or the instance is gone");
                return;
            }
            Err(e) => {
                tracing::error!(instance.id = %id, error = %e, "cannot claim the create");
                return;
            }
        }
        let _running = CreateRunning::new(self, &id);
        let started = Instant::now();
        tracing::info!(instance.id = %id, name = %one.name, datastore = %one.args.datastore_manager, "create started");
        match self.build(ctx, &one).await {
            Ok(Some(())) => {
                tracing::info!(instance.id = %id, duration_ms = started.elapsed().as_millis() as u64, "instance ACTIVE")
            }
            Ok(None) => {
                tracing::info!(instance.id = %id, "instance deleted while building; create stopped")
            }
            Err(TaskError::Interrupted) => {
                tracing::warn!(instance.id = %id, "taskmanager stopping: create left BUILDING; a taskmanager recovers it after usage_timeout")
            }
            Err(e) => {
                tracing::error!(instance.id = %id, error = %e, duration_ms = started.elapsed().as_millis() as u64, "create failed");
                self.fail_build(&id, &e).await;
            }
        }
    }

    /// Marks a create failed: error task, service status, fault; then removes the
    /// resources made for it.
    pub(crate) async fn fail_build(&self, id: &str, e: &TaskError) {
        let task = e.build_task();
        match self
            .db
            .instance_update_task(id, Some(TaskStatus::Building), task)
            .await
        {
            Ok(()) => {}
            Err(trove_db::DbError::Conflict(_)) | Err(trove_db::DbError::NotFound { .. }) => {
                // Deleted meanwhile: the delete cleans up.
                return;
            }
            Err(db) => tracing::error!(instance.id = id, error = %db, "cannot set the error task"),
        }
        if self.settings.update_status_on_fail {
            let failed = if task == TaskStatus::BuildingErrorTimeoutGa {
                ServiceStatus::FailedTimeoutGuestagent
            } else {
                ServiceStatus::Failed
            };
            if let Err(db) = self.db.service_status_update(id, failed).await {
                tracing::warn!(instance.id = id, error = %db, "cannot set the service status");
            }
        }
        if !self.has_recent_fault(id).await {
            self.record_fault(id, &e.to_string(), &format!("{e:?}"))
                .await;
        }
        self.release_resources(id, None).await;
    }

    /// Whether the instance has a fault younger than `usage_sleep_time` + 1 s: the guest's
    /// own report of why it failed (recorded by the conductor), which says more than "Service
    /// not active" and is kept, as Trove does.
    async fn has_recent_fault(&self, id: &str) -> bool {
        match self.db.instance_fault_get(id).await {
            Ok(Some(f)) => {
                let age = trove_db::utc_now() - f.updated;
                let fresh = chrono::Duration::from_std(self.settings.usage_sleep_time)
                    .unwrap_or(chrono::Duration::MAX)
                    + chrono::Duration::seconds(1);
                age < fresh
            }
            Ok(None) => false,
            Err(e) => {
                tracing::warn!(instance.id = id, error = %e, "cannot read the instance's fault");
                false
            }
        }
    }

    /// The create itself. `Ok(None)`: the instance was deleted meanwhile.
    async fn build(&self, ctx: &RpcContext, one: &OneCreate<'_>) -> Result<Option<()>> {
        let id = one.id.as_str();
        let args = one.args;
        let Some(inst) = self.live_instance(id).await? else {
            return Ok(None);
        };
        let manager = args.datastore_manager.as_str();
        let version = self.version_of(&inst).await?;
        let ds_version = args
            .ds_version
            .clone()
            .or_else(|| version.as_ref().map(|v| v.1.clone()))
            .unwrap_or_default();
        let ds_name = version
            .as_ref()
            .map(|v| v.0.clone())
            .unwrap_or_else(|| manager.to_owned());
        let flavor = flavor_spec(&args.flavor);
        let guest = self.guest(&inst)?;
        let rpc_key = match inst.encrypted_key.as_deref().filter(|k| !k.is_empty()) {
            Some(k) => Some(
                trove_common::crypto::decrypt_instance_key(
                    k,
                    self.config.default.inst_rpc_key_encr_key.expose_secret(),
                )
                .map_err(|e| TaskError::Invalid(format!("instance key: {e}")))?,
            ),
            None => None,
        };

        // 0. Image: the request's id, else the version's id or tags, resolved before
        // anything is made (no image, no server).
        let row_version = match &inst.datastore_version_id {
            Some(vid) => Some(self.db.datastore_version_get(vid).await?),
            None => None,
        };
        let image_tags: Vec<String> = row_version
            .as_ref()
            .and_then(|v| v.image_tags.as_deref())
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect();
        let wanted_image = Some(args.image_id.as_str())
            .filter(|i| !i.is_empty())
            .or_else(|| row_version.as_ref().and_then(|v| v.image_id.as_deref()))
            .filter(|i| !i.is_empty());
        let image_id = step(id, "image", async {
            self.drivers
                .compute
                .resolve_image(wanted_image, &image_tags)
                .await
                .map_err(|source| TaskError::Driver {
                    step: "image",
                    task: TaskStatus::BuildingErrorServer,
                    source,
                })
        })
        .await?;

        // 1. Network.
        let ports = step(id, "network", async {
            self.drivers
                .network
                .allocate(&NetworkRequest {
                    instance_id: id.to_owned(),
                    project_id: inst.tenant_id.clone().unwrap_or_default(),
                    nics: args.nics.clone(),
                    access: args.access.clone(),
                    tcp_ports: datastore_ports(&self.config, manager),
                    udp_ports: Vec::new(),
                })
                .await
                .map_err(|source| TaskError::Driver {
                    step: "network",
                    task: TaskStatus::BuildingErrorPort,
                    source,
                })
        })
        .await?;

        // 2. Volume.
        let uses_volume = self
            .config
            .datastore(manager)
            .map(|d| d.volume_support)
            .unwrap_or(true);
        let volume = match args.volume_size.filter(|_| uses_volume) {
            Some(size) => {
                let v = step(id, "volume", async {
                    self.drivers
                        .volumes
                        .create_volume(&VolumeRequest {
                            instance_id: id.to_owned(),
                            size_gb: size,
                            volume_type: args.volume_type.clone(),
                            availability_zone: args.availability_zone.clone(),
                        })
                        .await
                        .map_err(|source| TaskError::Driver {
                            step: "volume",
                            task: TaskStatus::BuildingErrorVolume,
                            source,
                        })
                })
                .await?;
                let mut row = self.db.instance_get(id).await?;
                row.volume_id = Some(v.id.clone());
                self.db.instance_save(&row).await?;
                Some(v)
            }
            None => None,
        };

        // 3. The guest's own broker user, and its files.
        let transport_url = self.guest_transport_url(id).await;
        let files = injected_files(
            &self.config,
            &GuestInfo {
                instance_id: id,
                datastore_manager: manager,
                datastore_version: &ds_version,
                tenant_id: inst.tenant_id.as_deref().unwrap_or(""),
                rpc_key: rpc_key.as_deref(),
                transport_url,
            },
        )?;

        // 4. Server.
        let mut metadata = BTreeMap::new();
        metadata.insert("trove_instance_id".to_owned(), id.to_owned());
        metadata.insert(
            "trove_project_id".to_owned(),
            inst.tenant_id.clone().unwrap_or_default(),
        );
        if let Some(u) = &ctx.user {
            metadata.insert("trove_user_id".to_owned(), u.clone());
        }
        let server: Server = step(id, "server", async {
            self.drivers
                .compute
                .create_server(&ServerRequest {
                    instance_id: id.to_owned(),
                    project_id: inst.tenant_id.clone().unwrap_or_default(),
                    name: one.name.clone(),
                    datastore_manager: manager.to_owned(),
                    image_id: image_id.clone(),
                    flavor: flavor.clone(),
                    ports: ports.clone(),
                    volume: volume.clone(),
                    files,
                    availability_zone: args.availability_zone.clone(),
                    metadata,
                })
                .await
                .map_err(|source| TaskError::Driver {
                    step: "server",
                    task: TaskStatus::BuildingErrorServer,
                    source,
                })
        })
        .await?;
        let mut row = self.db.instance_get(id).await?;
        row.compute_instance_id = Some(server.id.clone());
        row.server_status = Some(server.status.as_str().to_owned());
        self.db.instance_save(&row).await?;
        // A cloud's server boots for a while (a local one is up at once): the guest is
        // prepared once its server is ACTIVE, and the instance shows the server's status.
        let server = if server.status == trove_compute::ServerStatus::Active {
            server
        } else {
            let Some(active) =
                step(id, "server active", self.wait_server_active(id, &server.id)).await?
            else {
                return Ok(None);
            };
            let mut row = self.db.instance_get(id).await?;
            row.server_status = Some(active.status.as_str().to_owned());
            self.db.instance_save(&row).await?;
            active
        };
        // What the tenant reaches the instance at: the addresses of the ports made for it
        // (with their network ids, and the floating IP of a public instance), else what the
        // server reports; never those on the management networks (api.md 3.3).
        let mut addresses: Vec<_> = ports.iter().flat_map(|p| p.addresses.clone()).collect();
        if addresses.is_empty() {
            addresses = server.addresses.clone();
        }
        let management = &self.config.default.management_networks;
        addresses.retain(|a| !management.contains(&a.network));
        let rows: Vec<InstanceAddress> = addresses
            .iter()
            .map(|a| InstanceAddress {
                instance_id: id.to_owned(),
                address: a.address.clone(),
                kind: a.kind.clone(),
                network: Some(a.network.clone()).filter(|n| !n.is_empty()),
            })
            .collect();
        self.db.instance_addresses_set(id, &rows).await?;

        // 5. Prepare (from a backup when restoring).
        let backup_info = match &one.backup_id {
            Some(bid) => {
                let b = self.db.backup_get(bid).await?;
                let location = b.location.clone().ok_or_else(|| {
                    TaskError::Invalid(format!("backup {bid} has no stored location"))
                })?;
                Some(serde_json::json!({
                    "id": b.id, "instance_id": b.instance_id, "location": location,
                    "type": b.backup_type, "checksum": b.checksum,
                    "storage_driver": b.storage_driver,
                }))
            }
            None => None,
        };
        let config_contents = render_config(
            &self.config,
            &TemplateContext {
                datastore_name: &ds_name,
                manager,
                version: &ds_version,
                flavor_id: &flavor.id,
                flavor_name: &flavor.name,
                ram_mb: flavor.ram_mb,
                instance_id: id,
            },
        )?;
        let (device_path, mount_point) = match &server.volume {
            Some(v) => (Some(v.device_path.clone()), Some(v.mount_point.clone())),
            // No block device: the guest keeps its data where its own configuration says.
            None => (None, None),
        };
        let prepare = PrepareArgs {
            packages: args
                .packages
                .as_ref()
                .map(|p| p.split_whitespace().map(str::to_owned).collect()),
            databases: args.databases.clone(),
            memory_mb: flavor.ram_mb,
            users: args.users.clone(),
            device_path,
            mount_point,
            backup_info: backup_info.clone(),
            config_contents: Some(config_contents),
            root_password: one.root_password.clone(),
            overrides: Some(Value::Object(args.overrides.clone())),
            cluster_config: None,
            snapshot: one.snapshot.clone(),
            modules: Some(args.modules.clone()),
            ds_version: Some(ds_version.clone()),
        };
        step(id, "prepare", async {
            guest.prepare(ctx, prepare).await.map_err(TaskError::from)
        })
        .await?;
        if one.root_password.is_some() {
            if let Err(e) = self
                .db
                .root_history_record(id, ctx.user.as_deref().unwrap_or("root"))
                .await
            {
                tracing::warn!(instance.id = id, error = %e, "cannot record root enabled on create");
            }
        }

        // 6. Wait for the guest.
        let ready = step(
            id,
            "wait for guest",
            self.wait_for_guest(id, &server.id, backup_info.is_some()),
        )
        .await?;
        if !ready {
            return Ok(None);
        }
        match self
            .db
            .instance_update_task(id, Some(TaskStatus::Building), TaskStatus::None)
            .await
        {
            Ok(()) => Ok(Some(())),
            Err(trove_db::DbError::Conflict(_)) | Err(trove_db::DbError::NotFound { .. }) => {
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Datastore name and version number of the instance's version.
    async fn version_of(&self, inst: &Instance) -> Result<Option<(String, String)>> {
        let Some(vid) = &inst.datastore_version_id else {
            return Ok(None);
        };
        let v = self.db.datastore_version_get(vid).await?;
        let ds = self.db.datastore_get(&v.datastore_id).await?;
        Ok(Some((ds.name, v.version.clone().unwrap_or(v.name))))
    }

    /// The guest's `transport_url`: its own RabbitMQ user when the broker's management API
    /// is reachable, else the shared URL of this taskmanager's configuration.
    async fn guest_transport_url(&self, id: &str) -> Option<String> {
        let base = self.config.default.transport_url.expose_secret().to_owned();
        let Some(broker) = &self.broker else {
            return Some(base).filter(|u| u != "rabbit://");
        };
        match broker.guest_access(id).await {
            trove_rpc::admin::GuestBrokerAccess::Dedicated(creds) => {
                match trove_rpc::TransportUrl::parse(&base) {
                    Ok(url) => Some(creds.transport_url(&url).to_url_string()),
                    Err(e) => {
                        tracing::warn!(error = %e, "transport_url cannot be parsed; the guest gets it unchanged");
                        Some(base)
                    }
                }
            }
            trove_rpc::admin::GuestBrokerAccess::Shared => Some(base),
        }
    }

    /// Polls the new server until it is ACTIVE (`None`: the instance was deleted or taken
    /// over meanwhile); ERROR, or no ACTIVE within `usage_timeout`, fails the create with
    /// the server's fault.
    async fn wait_server_active(&self, id: &str, server_id: &str) -> Result<Option<Server>> {
        let timeout = self.settings.usage_timeout;
        let deadline = Instant::now() + timeout;
        let started = Instant::now();
        loop {
            let Some(inst) = self.live_instance(id).await? else {
                return Ok(None);
            };
            if inst.task_status() != Some(TaskStatus::Building) {
                return Ok(None);
            }
            match self.drivers.compute.get_server(server_id).await {
                Ok(Some(s)) if s.status == trove_compute::ServerStatus::Active => {
                    return Ok(Some(s))
                }
                Ok(Some(s)) if s.status == trove_compute::ServerStatus::Error => {
                    return Err(TaskError::Service(format!(
                        "Server not active, status: {}, fault message: {}",
                        s.status,
                        s.fault.unwrap_or_default()
                    )))
                }
                Ok(Some(_)) => {}
                Ok(None) => {
                    return Err(TaskError::Service(format!(
                        "Server {server_id} of the instance is gone"
                    )))
                }
                Err(e) => {
                    tracing::warn!(instance.id = id, error = %e, "cannot read the server")
                }
            }
            if Instant::now() >= deadline {
                return Err(TaskError::Service(format!(
                    "Timeout waiting for the server to become ACTIVE within usage_timeout ({} s)",
                    timeout.as_secs()
                )));
            }
            // Every second for the first minute (a server boots in seconds to minutes),
            // then every usage_sleep_time.
            let pause = if started.elapsed() < Duration::from_secs(60) {
                Duration::from_secs(1).min(self.settings.usage_sleep_time)
            } else {
                self.settings.usage_sleep_time
            };
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = self.cancel.cancelled() => return Err(TaskError::Interrupted),
            }
        }
    }

    /// Polls the service status until the guest is up (`true`), the instance is gone
    /// (`false`), or an error: a failed guest, a server in ERROR, or `usage_timeout`.
    pub(crate) async fn wait_for_guest(
        &self,
        id: &str,
        server_id: &str,
        restoring: bool,
    ) -> Result<bool> {
        // Restoring a backup may take longer: `restore_usage_timeout`.
        let timeout = if restoring {
            self.settings.restore_usage_timeout
        } else {
            self.settings.usage_timeout
        };
        let deadline = Instant::now() + timeout;
        // Look often during the first minute (a server on this host is up in a second or
        // two, and each look is one indexed read), then every usage_sleep_time.
        let started = Instant::now();
        let fast = Duration::from_millis(250).min(self.settings.usage_sleep_time);
        loop {
            let Some(inst) = self.live_instance(id).await? else {
                return Ok(false);
            };
            if inst.task_status() != Some(TaskStatus::Building) {
                return Ok(false);
            }
            let status = match self.db.service_status_get(id).await {
                Ok(r) => r.status(),
                Err(trove_db::DbError::NotFound { .. }) => None,
                Err(e) => return Err(e.into()),
            };
            match status {
                Some(ServiceStatus::Running)
                | Some(ServiceStatus::Healthy)
                | Some(ServiceStatus::InstanceReady) => return Ok(true),
                None
                | Some(ServiceStatus::New)
                | Some(ServiceStatus::Building)
                | Some(ServiceStatus::Unknown)
                | Some(ServiceStatus::Deleted) => {
                    match self.drivers.compute.get_server(server_id).await {
                        Ok(Some(s)) if s.status == trove_compute::ServerStatus::Error => {
                            return Err(TaskError::Service(format!(
                                "Server not active, status: {}, fault message: {}",
                                s.status,
                                s.fault.unwrap_or_default()
                            )))
                        }
                        Ok(Some(_)) => {}
                        Ok(None) => {
                            return Err(TaskError::Service(format!(
                                "Server {server_id} of the instance is gone"
                            )))
                        }
                        Err(e) => {
                            tracing::warn!(instance.id = id, error = %e, "cannot read the server")
                        }
                    }
                }
                Some(other) => {
                    return Err(TaskError::Service(format!(
                        "Service not active, status: {}",
                        other.description()
                    )))
                }
            }
            if Instant::now() >= deadline {
                return Err(TaskError::Service(format!(
                    "Timeout waiting for the guest agent: the database was not ready within {} ({} s)",
                    if restoring { "restore_usage_timeout" } else { "usage_timeout" },
                    timeout.as_secs()
                )));
            }
            tokio::select! {
                _ = tokio::time::sleep(if started.elapsed() < Duration::from_secs(60) { fast } else { self.settings.usage_sleep_time }) => {}
                _ = self.cancel.cancelled() => return Err(TaskError::Interrupted),
            }
        }
    }
}
