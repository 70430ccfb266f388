//! Replication (api.md §4.4 `replica_of`, §4.5 detach, §5.4 promote, §5.5 eject;
//! internals-workflows §8): the API side checks, sets the tasks and casts; the
//! taskmanager runs the workflows against the guests.
//!
//! Unlike Trove, the quota of a request for N replicas counts N times the instance, its
//! RAM and its volume (Trove counts the volume and RAM once per request).

use axum::Json;
use serde_json::{json, Value};
use trove_db::{DbError, Instance, ServiceStatus, TaskStatus};

use super::{cast, flavor_dict, quota_defaults, states, uses_volume, view_of};
use crate::app::AppState;
use crate::context::RequestContext;
use crate::error::{ApiError, ApiResult, Fault};
use crate::instances::request::CreateRequest;
use crate::views::instances::{instance, Detail};

/// Gate A (422) on `inst`.
async fn gate_a(state: &AppState, inst: &Instance) -> ApiResult<()> {
    states(state, inst).await?.gate_a(&inst.id)
}

/// The replication strategy of the instance's datastore, or 400 `ReplicationNotSupported`.
async fn check_replication_supported(state: &AppState, inst: &Instance) -> ApiResult<String> {
    let Some(vid) = &inst.datastore_version_id else {
        return Err(ApiError::bad_request(
            "Replication is not supported for this instance: it has no datastore version.",
        ));
    };
    let version = state.db().datastore_version_get(vid).await?;
    let manager = version.manager.clone().unwrap_or_default();
    let supported = state
        .config()
        .datastore(&manager)
        .and_then(|o| o.replication_strategy.clone())
        .is_some_and(|s| !s.is_empty());
    if !supported {
        let ds = state.db().datastore_get(&version.datastore_id).await?;
        return Err(ApiError::bad_request(format!(
            "Replication is not supported for the '{}' datastore.",
            ds.name
        )));
    }
    Ok(manager)
}

/// `POST /instances` with `replica_of`: `replica_count` (default 1) replicas of the
/// source, with its flavor, datastore version, volume size and type; answers 200 with the
/// first of them.
pub async fn create(
    state: &AppState,
    ctx: &RequestContext,
    req: &CreateRequest,
    source_id: &str,
) -> ApiResult<Json<Value>> {
    if !req.databases.is_empty() || !req.users.is_empty() {
        return Err(ApiError::bad_request(
            "Cannot create a replica with users or databases.",
        ));
    }
    let refused = [
        ("flavorRef", req.flavor_ref.is_some()),
        (
            "volume",
            req.volume_size.is_some() || req.volume_type.is_some(),
        ),
        (
            "datastore",
            req.datastore.type_.is_some()
                || req.datastore.version.is_some()
                || req.datastore.version_number.is_some(),
        ),
        ("locality", req.locality.is_some()),
        ("restorePoint", req.backup_ref.is_some()),
    ];
    if let Some((name, _)) = refused.iter().find(|(_, given)| *given) {
        return Err(ApiError::bad_request(format!(
            "Cannot specify '{name}' when creating replicas: replicas take it from their source."
        )));
    }
    if req.nics.iter().any(|n| n.ip_address.is_some()) {
        return Err(ApiError::bad_request(
            "Cannot specify a fixed IP address when creating replicas.",
        ));
    }
    let project = ctx.project_id().to_string();
    let source = match state.db().instance_get(source_id).await {
        Ok(i) if i.tenant_id.as_deref() == Some(project.as_str()) => i,
        Ok(_) | Err(DbError::NotFound { .. }) => {
            return Err(ApiError::resource_not_found(source_id))
        }
        Err(e) => return Err(e.into()),
    };
    if source.slave_of_id.is_some() {
        return Err(ApiError::new(
            Fault::Unauthorized,
            format!("Cannot create a replica of a replica {source_id}."),
        ));
    }
    if source.cluster_id.is_some() {
        return Err(ApiError::bad_request(format!(
            "Cannot create a replica of cluster member {source_id}."
        )));
    }
    let manager = check_replication_supported(state, &source).await?;
    gate_a(state, &source).await?;
    let version_id = source.datastore_version_id.clone().unwrap_or_default();
    let version = state.db().datastore_version_get(&version_id).await?;
    if !version.active {
        return Err(ApiError::bad_request(format!(
            "Datastore version '{}' is not active.",
            version.name
        )));
    }
    let flavor_id = source.flavor_id.clone().unwrap_or_default();
    let Some(flavor) = state.flavors().get(&flavor_id).await? else {
        return Err(ApiError::bad_request(format!(
            "Resource {flavor_id} cannot be found."
        )));
    };
    // A replica gets the group asked for, else its source's.
    let group = match (&req.configuration, &source.configuration_id) {
        (Some(c), _) => {
            Some(super::create::configuration_for_create(state, ctx, c, &version).await?)
        }
        (None, Some(cid)) => {
            let g = state.db().configuration_get(cid).await?;
            let (o, _) = super::configuration::overrides_of(state, &g).await?;
            Some((g, o))
        }
        (None, None) => None,
    };
    let volume_size = if uses_volume(state, Some(&manager)) {
        source.volume_size.map(i64::from)
    } else {
        None
    };
    let count = usize::try_from(req.replica_count.unwrap_or(1).clamp(1, 3)).unwrap_or(1);
    let names: Vec<String> = if count == 1 {
        vec![req.name.clone()]
    } else {
        (1..=count).map(|i| format!("{}-{i}", req.name)).collect()
    };
    let cfg = state.config();
    let mut rows = Vec::with_capacity(count);
    for name in &names {
        let encrypted_key = trove_common::crypto::new_encrypted_instance_key(
            cfg.default.enable_secure_rpc_messaging,
            cfg.default.inst_rpc_key_encr_key.expose_secret(),
        );
        let mut row = Instance {
            id: trove_db::new_id(),
            name: Some(name.clone()),
            flavor_id: Some(flavor.id.clone()),
            volume_size: source.volume_size.filter(|_| volume_size.is_some()),
            tenant_id: Some(project.clone()),
            datastore_version_id: Some(version_id.clone()),
            region_id: source.region_id.clone(),
            encrypted_key,
            access: req
                .access
                .as_ref()
                .map(|a| a.to_string())
                .or(source.access.clone()),
            slave_of_id: Some(source.id.clone()),
            configuration_id: group.as_ref().map(|(g, _)| g.id.clone()),
            ..Instance::default()
        };
        row.set_task_status(TaskStatus::Building);
        rows.push(row);
    }
    let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
    tracing::Span::current().record("instance_id", ids[0].as_str());
    let access = req.access.clone().or_else(|| source.access_json());
    let args = json!({
        "instance_id": ids,
        "name": names,
        "flavor": flavor_dict(&flavor),
        "image_id": version.image_id.clone().unwrap_or_default(),
        "databases": [],
        "users": [],
        "datastore_manager": manager,
        "packages": version.packages.clone().filter(|p| !p.is_empty()),
        "volume_size": volume_size,
        "backup_id": null,
        "availability_zone": req.availability_zone,
        "root_password": null,
        "nics": super::create::nic_args(&req.nics),
        "overrides": group.as_ref().map(|(_, o)| Value::Object(o.clone())).unwrap_or_else(|| json!({})),
        "slave_of_id": source.id,
        "cluster_config": null,
        "volume_type": null,
        "modules": [],
        "locality": null,
        "access": access,
        "ds_version": version.version.clone().unwrap_or_else(|| version.name.clone()),
    });
    let n = i32::try_from(count).unwrap_or(1);
    let deltas = [
        ("instances", n),
        ("ram", flavor.ram * n),
        ("volumes", volume_size.map(|s| s as i32).unwrap_or(0) * n),
    ];
    let db = state.db().clone();
    let created = db
        .run_with_quotas(&project, &deltas, &quota_defaults(state), || async {
            let mut created = Vec::with_capacity(rows.len());
            for row in &rows {
                created.push(db.instance_create(row).await?);
                db.service_status_create(&row.id, ServiceStatus::New)
                    .await?;
            }
            if let Err(e) = cast(state, ctx, "create_instance", args).await {
                for row in &rows {
                    if let Err(del) = db.instance_soft_delete(&row.id).await {
                        tracing::error!(instance_id = %row.id, error = %del, "could not remove a replica whose create cast failed");
                    }
                }
                return Err(e);
            }
            Ok::<Vec<Instance>, ApiError>(created)
        })
        .await?;
    tracing::info!(source = %source.id, replicas = ?ids, "replica create requested");
    let first = &created[0];
    let st = states(state, first).await?;
    let view = view_of(state, first, &st).await?;
    Ok(Json(
        json!({ "instance": instance(ctx, &view, Detail::Show, ctx.is_admin()) }),
    ))
}

/// `PATCH`/`PUT /instances/{id}` with `replica_of` (or `slave_of`): detach a replica from
/// its source (400 when it is not a replica; gate A).
pub async fn detach(state: &AppState, ctx: &RequestContext, inst: &Instance) -> ApiResult<()> {
    if inst.slave_of_id.is_none() {
        return Err(ApiError::bad_request(format!(
            "Instance {} is not a replica.",
            inst.id
        )));
    }
    gate_a(state, inst).await?;
    let members = std::slice::from_ref(inst);
    set_all(state, members, TaskStatus::Detaching).await?;
    cast_or_restore(
        state,
        ctx,
        "detach_replica",
        &inst.id,
        members,
        TaskStatus::Detaching,
    )
    .await
}

/// Casts `method` for `id`; when the cast fails the members' tasks are put back.
async fn cast_or_restore(
    state: &AppState,
    ctx: &RequestContext,
    method: &str,
    id: &str,
    members: &[Instance],
    task: TaskStatus,
) -> ApiResult<()> {
    let r = cast(state, ctx, method, json!({ "instance_id": id })).await;
    if r.is_err() {
        restore_tasks(state, members, task).await;
    }
    r
}

/// Puts back the task each member had before `task` was set.
async fn restore_tasks(state: &AppState, members: &[Instance], task: TaskStatus) {
    for m in members {
        let back = m.task_status().unwrap_or(TaskStatus::None);
        if let Err(e) = state
            .db()
            .instance_update_task(&m.id, Some(task), back)
            .await
        {
            tracing::error!(instance_id = %m.id, error = %e, "cannot put the task back");
        }
    }
}

/// Sets the task from its current value (NONE or RESTART_REQUIRED, which gate A let
/// through); a concurrent change answers 422 like the gate.
async fn set_task_or_conflict(
    state: &AppState,
    inst: &Instance,
    task: TaskStatus,
) -> ApiResult<()> {
    let from = inst.task_status().unwrap_or(TaskStatus::None);
    match state
        .db()
        .instance_update_task(&inst.id, Some(from), task)
        .await
    {
        Ok(()) => Ok(()),
        Err(DbError::Conflict(_)) => Err(ApiError::unprocessable(format!(
            "Instance {} is not currently available for an action to be performed (task status was changed concurrently).",
            inst.id
        ))),
        Err(e) => Err(e.into()),
    }
}

/// `promote_to_replica_source` on a replica: gate A on it, its source and every replica;
/// all of them get PROMOTING.
pub async fn promote(state: &AppState, ctx: &RequestContext, inst: &Instance) -> ApiResult<()> {
    let Some(source_id) = &inst.slave_of_id else {
        return Err(ApiError::bad_request(format!(
            "Instance {} is not a replica.",
            inst.id
        )));
    };
    let source = state.db().instance_get(source_id).await?;
    let siblings = state.db().instance_replicas(source_id).await?;
    gate_a(state, inst).await?;
    gate_a(state, &source).await?;
    for r in &siblings {
        gate_a(state, r).await?;
    }
    let mut members = vec![source.clone()];
    members.extend(siblings);
    set_all(state, &members, TaskStatus::Promoting).await?;
    cast_or_restore(
        state,
        ctx,
        "promote_to_replica_source",
        &inst.id,
        &members,
        TaskStatus::Promoting,
    )
    .await
}

/// `eject_replica_source` on a source believed dead: 400 without replicas or while its
/// guest's heartbeat is fresh (gate F); it and its replicas get EJECTING.
pub async fn eject(state: &AppState, ctx: &RequestContext, inst: &Instance) -> ApiResult<()> {
    let replicas = state.db().instance_replicas(&inst.id).await?;
    if replicas.is_empty() {
        return Err(ApiError::bad_request(format!(
            "Instance {} is not a replica source.",
            inst.id
        )));
    }
    let expiry = state.config().default.agent_heartbeat_expiry;
    let fresh = match state.db().service_status_get(&inst.id).await {
        Ok(row) => row
            .updated_at
            .is_some_and(|u| (trove_db::utc_now() - u).num_seconds() < expiry),
        Err(DbError::NotFound { .. }) => false,
        Err(e) => return Err(e.into()),
    };
    if fresh {
        return Err(ApiError::bad_request(format!(
            "Replica Source {} cannot be ejected as it has a current heartbeat",
            inst.id
        )));
    }
    let mut members = vec![inst.clone()];
    members.extend(replicas);
    set_all(state, &members, TaskStatus::Ejecting).await?;
    cast_or_restore(
        state,
        ctx,
        "eject_replica_source",
        &inst.id,
        &members,
        TaskStatus::Ejecting,
    )
    .await
}

/// Sets `task` on every member whose task is still what was read (a member that changed
/// meanwhile makes the request fail with 422 and the members already set are put back).
async fn set_all(state: &AppState, members: &[Instance], task: TaskStatus) -> ApiResult<()> {
    for (i, m) in members.iter().enumerate() {
        if let Err(e) = set_task_or_conflict(state, m, task).await {
            restore_tasks(state, &members[..i], task).await;
            return Err(e);
        }
    }
    Ok(())
}
