//! Instances (api.md §4, §5):
//! - [`list`]: `GET /instances`, `GET /instances/detail`;
//! - [`show`]: `GET /instances/{id}`;
//! - [`create`]: `POST /instances`;
//! - [`update`]: `PUT`/`PATCH /instances/{id}`, with [`configuration`] attach/detach;
//! - [`delete`]: `DELETE /instances/{id}`;
//! - [`action`]: `POST /instances/{id}/action`.
//!
//! Shared here: loading an instance the caller may see (other projects' instances are
//! 404 unless the caller is an admin) and gathering what the views render, including the
//! addresses the taskmanager stored for the instance (list handlers read those of a whole
//! page in one query and pass them to [`view_with_addresses`]).

pub mod action;
pub mod configuration;
pub mod create;
pub mod delete;
pub mod list;
pub mod replicas;
pub mod show;
pub mod update;

use serde_json::{json, Value};
use trove_db::{DbError, Instance, InstanceAddress, ServiceStatus, TaskStatus, ADDRESS_PUBLIC};
use trove_rpc::api::GuestApi;

use crate::app::AppState;
use crate::context::RequestContext;
use crate::error::{ApiError, ApiResult};
use crate::instances::status::{effective_server_status, instance_status, operating_status};
use crate::views;
use crate::views::instances::{FaultView, InstanceView};

/// Loads a live instance the caller may see: 404 "Resource <id> cannot be found." when
/// it does not exist, is deleted, or belongs to another project (unless admin).
pub async fn load_visible(state: &AppState, ctx: &RequestContext, id: &str) -> ApiResult<Instance> {
    tracing::Span::current().record("instance_id", id);
    let inst = match state.db().instance_get(id).await {
        Ok(i) => i,
        Err(DbError::NotFound { .. }) => return Err(ApiError::resource_not_found(id)),
        Err(e) => return Err(e.into()),
    };
    if inst.tenant_id.as_deref() != Some(ctx.project_id()) && !ctx.is_admin() {
        return Err(ApiError::resource_not_found(id));
    }
    Ok(inst)
}

/// The derived states of an instance.
#[derive(Debug, Clone)]
pub struct States {
    /// Stored task (NONE when unknown).
    pub task: TaskStatus,
    /// Effective compute server status.
    pub server_status: String,
    /// Stored guest service status.
    pub service: Option<ServiceStatus>,
    /// Whether a backup of the instance is running.
    pub backup_running: bool,
    /// `status`.
    pub status: String,
    /// `operating_status`.
    pub operating_status: String,
    /// Last heartbeat, rendered.
    pub service_status_updated: Option<String>,
}

impl States {
    /// Gate A (api-statuses.md §5): 422 unless instance `id` may take an action now.
    pub fn gate_a(&self, id: &str) -> ApiResult<()> {
        crate::instances::status::check_action_allowed(
            id,
            self.task,
            &self.server_status,
            self.service,
            self.backup_running,
        )
        .map_err(ApiError::unprocessable)
    }
}

/// Reads the service status and running backups and derives `status`/`operating_status`.
pub async fn states(state: &AppState, inst: &Instance) -> ApiResult<States> {
    let task = inst.task_status().unwrap_or(TaskStatus::None);
    let server_status = effective_server_status(
        task,
        inst.server_status.as_deref(),
        inst.compute_instance_id.is_some(),
    );
    let row = match state.db().service_status_get(&inst.id).await {
        Ok(r) => Some(r),
        Err(DbError::NotFound { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    let service = row.as_ref().and_then(|r| r.status());
    let updated = row.as_ref().and_then(|r| r.updated_at);
    let age = updated.map(|u| (trove_db::utc_now() - u).num_seconds());
    let backup_running = state.db().backup_running_for_instance(&inst.id).await?;
    let status = instance_status(task, &server_status, backup_running).to_string();
    let operating = operating_status(
        task,
        &server_status,
        service,
        age,
        state.config().default.agent_heartbeat_expiry,
    );
    Ok(States {
        task,
        server_status,
        service,
        backup_running,
        status,
        operating_status: operating,
        service_status_updated: updated.as_ref().map(views::timestamp),
    })
}

/// Trove's `VolumeQuotaExceeded` (413) when `size` is above `[DEFAULT]
/// max_accepted_volume_size`, for create and resize alike.
pub fn check_volume_size(state: &AppState, size: i64) -> ApiResult<()> {
    let max = state.config().default.max_accepted_volume_size;
    if size > max {
        return Err(crate::error::ApiError::over_limit(format!(
            "Volume 'size' cannot exceed maximum of {max} GB, {size} cannot be accepted."
        )));
    }
    Ok(())
}

/// Whether instances of a datastore manager have a volume (`[<manager>] volume_support`).
pub fn uses_volume(state: &AppState, manager: Option<&str>) -> bool {
    manager
        .and_then(|m| state.config().datastore(m))
        .map(|d| d.volume_support)
        .unwrap_or(true)
}

/// The `addresses` entries of api.md §3.3 for stored addresses: fixed IPs first, then
/// floating ones, each group in stored order; `network` only when known.
pub fn address_views(rows: &[InstanceAddress]) -> Vec<Value> {
    let (public, private): (Vec<&InstanceAddress>, Vec<&InstanceAddress>) =
        rows.iter().partition(|a| a.kind == ADDRESS_PUBLIC);
    private
        .into_iter()
        .chain(public)
        .map(|a| {
            let mut v = json!({"address": a.address, "type": a.kind});
            if let Some(n) = &a.network {
                v["network"] = json!(n);
            }
            v
        })
        .collect()
}

/// Gathers everything the views render for `inst`, reading its stored addresses.
pub async fn view_of(state: &AppState, inst: &Instance, st: &States) -> ApiResult<InstanceView> {
    let addresses = state.db().instance_addresses(&inst.id).await?;
    view_with_addresses(state, inst, st, &addresses).await
}

/// Like [`view_of`] with the instance's addresses already read (list pages read them for
/// every instance of the page in one query).
pub async fn view_with_addresses(
    state: &AppState,
    inst: &Instance,
    st: &States,
    addresses: &[InstanceAddress],
) -> ApiResult<InstanceView> {
    let db = state.db();
    let (mut ds_type, mut ds_version, mut ds_number, mut manager) = (None, None, None, None);
    if let Some(vid) = &inst.datastore_version_id {
        match db.datastore_version_get(vid).await {
            Ok(v) => {
                if let Ok(ds) = db.datastore_get(&v.datastore_id).await {
                    ds_type = Some(ds.name);
                }
                ds_number = Some(v.version.clone().unwrap_or_else(|| v.name.clone()));
                ds_version = Some(v.name);
                manager = v.manager;
            }
            Err(DbError::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let fault = db.instance_fault_get(&inst.id).await?.map(|f| FaultView {
        message: f.message,
        created: views::timestamp(&f.created),
        details: Some(f.details),
    });
    // The attached group (a group deleted meanwhile is not shown).
    let configuration = match &inst.configuration_id {
        Some(cid) => match db.configuration_get(cid).await {
            Ok(g) => Some((g.id, g.name)),
            Err(DbError::NotFound { .. }) => None,
            Err(e) => return Err(e.into()),
        },
        None => None,
    };
    let volume_size = if uses_volume(state, manager.as_deref()) {
        inst.volume_size.map(i64::from)
    } else {
        None
    };
    Ok(InstanceView {
        id: inst.id.clone(),
        name: inst.name.clone().unwrap_or_default(),
        status: st.status.clone(),
        operating_status: st.operating_status.clone(),
        flavor_id: inst.flavor_id.clone().unwrap_or_default(),
        datastore_type: ds_type,
        datastore_version: ds_version,
        datastore_version_number: ds_number,
        region: inst
            .region_id
            .clone()
            .unwrap_or_else(|| state.config().default.region.clone()),
        access: inst.access_json(),
        volume_size,
        addresses: address_views(addresses),
        hostname: inst.hostname.clone().filter(|h| !h.is_empty()),
        configuration,
        replica_of: inst.slave_of_id.clone(),
        replicas: db
            .instance_replicas(&inst.id)
            .await?
            .into_iter()
            .map(|r| r.id)
            .collect(),
        created: inst.created.as_ref().map(views::timestamp),
        updated: inst.updated.as_ref().map(views::timestamp),
        service_status_updated: st.service_status_updated.clone(),
        fault,
        cluster: inst.cluster_id.clone().map(|c| (c, inst.shard_id.clone())),
        tenant_id: inst.tenant_id.clone().unwrap_or_default(),
        server_id: inst.compute_instance_id.clone(),
        volume_id: inst.volume_id.clone(),
        encrypted_rpc_messaging: inst.encrypted_key.is_some(),
        ..InstanceView::default()
    })
}

/// A client of the guest of `inst` (503 when this API has no guest clients).
pub fn guest_of(state: &AppState, inst: &Instance) -> ApiResult<GuestApi> {
    let Some(factory) = state.guests() else {
        return Err(ApiError::unavailable("no guest agent client configured"));
    };
    let key =
        crate::guest::instance_key(state.config(), inst.encrypted_key.as_deref()).map_err(|e| {
            ApiError::internal(format!(
                "the RPC key of instance {} does not decrypt: {e}",
                inst.id
            ))
        })?;
    Ok(factory.client(&inst.id, key))
}

/// Sends a cast to the taskmanager (503 when this API has none).
pub async fn cast(
    state: &AppState,
    ctx: &RequestContext,
    method: &str,
    args: serde_json::Value,
) -> ApiResult<()> {
    let Some(tm) = state.taskmanager() else {
        return Err(ApiError::unavailable("no taskmanager client configured"));
    };
    tm.cast(&ctx.cast_context(), method, args).await?;
    Ok(())
}

/// The quota defaults of trove.conf, for the quota engine.
pub fn quota_defaults(state: &AppState) -> trove_db::QuotaDefaults {
    crate::quota::defaults(state.config())
}

/// A flavor as the taskmanager receives it (Nova's flavor attributes).
pub fn flavor_dict(f: &trove_db::Flavor) -> serde_json::Value {
    serde_json::json!({
        "id": f.id, "name": f.name, "ram": f.ram, "vcpus": f.vcpus, "disk": f.disk,
        "ephemeral": f.ephemeral, "OS-FLV-EXT-DATA:ephemeral": f.ephemeral,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_render_fixed_before_floating_and_omit_unknown_networks() {
        let rows = [
            InstanceAddress::private("i1", "10.0.0.12", Some("net-1")),
            InstanceAddress::public("i1", "192.0.2.40"),
            InstanceAddress::private("i1", "10.0.1.3", None),
        ];
        assert_eq!(
            address_views(&rows),
            [
                json!({"address": "10.0.0.12", "type": "private", "network": "net-1"}),
                json!({"address": "10.0.1.3", "type": "private"}),
                json!({"address": "192.0.2.40", "type": "public"}),
            ]
        );
        assert!(address_views(&[]).is_empty());
    }
}
