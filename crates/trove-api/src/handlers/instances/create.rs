//! `POST /instances` (api.md §4.4): validate, resolve datastore/version (§11.7) and
//! flavor, check the volume, reserve quota, write the instance and its service status,
//! cast `create_instance`, answer 200 with the new instance.

use std::collections::HashSet;

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};
use trove_db::{Datastore, DatastoreVersion, DbError, Flavor, Instance, ServiceStatus, TaskStatus};

use super::{cast, flavor_dict, quota_defaults, states, uses_volume, view_of};
use crate::app::AppState;
use crate::context::RequestContext;
use crate::error::{ApiError, ApiResult};
use crate::extract::JsonBody;
use crate::handlers::datastores::load_version_of;
use crate::instances::request::{CreateRequest, DatastoreRequest};
use crate::views::instances::{instance, Detail};

const LOCALITIES: [&str; 4] = [
    "affinity",
    "soft-affinity",
    "anti-affinity",
    "soft-anti-affinity",
];

/// Resolves the datastore and version of a create request (api.md §11.7).
pub async fn resolve_datastore(
    state: &AppState,
    req: &DatastoreRequest,
    require_active: bool,
) -> ApiResult<(Datastore, DatastoreVersion)> {
    let ds_name = match &req.type_ {
        Some(t) => t.clone(),
        None => match &state.config().default.default_datastore {
            Some(d) if !d.is_empty() => d.clone(),
            _ => {
                return Err(ApiError::bad_request(
                    "Please specify datastore. No default datastore is defined.",
                ))
            }
        },
    };
    let ds = match state.db().datastore_get(&ds_name).await {
        Ok(d) => d,
        Err(DbError::NotFound { .. }) if req.type_.is_none() => {
            return Err(ApiError::bad_request(format!(
                "Default datastore '{ds_name}' cannot be found."
            )))
        }
        Err(e) => return Err(e.into()),
    };
    let version = match (&req.version, &req.version_number) {
        (Some(v), Some(number)) => state
            .db()
            .datastore_version_find(&ds.id, v, Some(number))
            .await
            .map_err(|e| match e {
                DbError::NotFound { .. } => ApiError::bad_request(format!(
                    "Datastore version '{v}' with version number '{number}' cannot be found."
                )),
                other => other.into(),
            })?,
        (Some(v), None) => load_version_of(state, &ds, v).await?,
        (None, _) => match &ds.default_version_id {
            Some(id) => state.db().datastore_version_get(id).await?,
            None => {
                return Err(ApiError::bad_request(format!(
                    "Default version for datastore '{}' not found.",
                    ds.name
                )))
            }
        },
    };
    if require_active && !version.active {
        return Err(ApiError::bad_request(format!(
            "Datastore version '{}' is not active.",
            version.name
        )));
    }
    Ok((ds, version))
}

/// Loads the requested flavor (400 when missing or unknown) and checks it is allowed for
/// the version.
async fn resolve_flavor(
    state: &AppState,
    flavor_ref: Option<&str>,
    ds: &Datastore,
    version: &DatastoreVersion,
) -> ApiResult<Flavor> {
    let Some(id) = flavor_ref else {
        return Err(ApiError::bad_request("Resource None cannot be found."));
    };
    let Some(flavor) = state.flavors().get(id).await? else {
        return Err(ApiError::bad_request(format!(
            "Resource {id} cannot be found."
        )));
    };
    let bound = state
        .db()
        .datastore_version_metadata_list(&version.id, trove_db::METADATA_FLAVOR)
        .await?;
    if !bound.is_empty() && !bound.contains(&flavor.id) {
        return Err(ApiError::bad_request(format!(
            "Flavor {} is not supported for datastore {} version {}",
            flavor.id, ds.name, version.name
        )));
    }
    Ok(flavor)
}

fn check_databases_and_users(
    req: &CreateRequest,
    ignore_dbs: &[String],
    ignore_users: &[String],
) -> ApiResult<()> {
    let mut names = HashSet::new();
    for d in &req.databases {
        if !names.insert(d.name.as_str()) {
            return Err(ApiError::bad_request(format!(
                "Database '{}' is listed more than once.",
                d.name
            )));
        }
        if ignore_dbs.contains(&d.name) {
            return Err(ApiError::bad_request(format!(
                "The database name '{}' is reserved.",
                d.name
            )));
        }
    }
    let mut users = HashSet::new();
    for u in &req.users {
        if !users.insert((u.name.as_str(), u.host.as_str())) {
            return Err(ApiError::bad_request(format!(
                "User '{}'@'{}' is listed more than once.",
                u.name, u.host
            )));
        }
        if ignore_users.contains(&u.name) {
            return Err(ApiError::bad_request(format!(
                "The user name '{}' is reserved.",
                u.name
            )));
        }
        for db in &u.databases {
            if !names.contains(db.as_str()) {
                return Err(ApiError::bad_request(format!(
                    "Database '{db}' of user '{}' is not in the list of databases to create.",
                    u.name
                )));
            }
        }
    }
    Ok(())
}

/// Trove's checks of `restorePoint.backupRef` (internals-workflows §7.3): the backup
/// exists and is visible (404), is COMPLETED or RESTORED (409), fits in the new volume
/// (or the flavor's disk without volumes; 403) and comes from the same datastore (400).
/// Whether its objects are still stored is checked where the storage is reached (the
/// guest verifies each object against its checksum while restoring).
async fn check_restore(
    state: &AppState,
    ctx: &RequestContext,
    backup_id: &str,
    ds: &Datastore,
    volume_size: Option<i64>,
    flavor: &Flavor,
) -> ApiResult<trove_db::Backup> {
    let backup = crate::handlers::backups::load_visible_backup(state, ctx, backup_id).await?;
    if !matches!(backup.state.as_str(), "COMPLETED" | "RESTORED") {
        return Err(ApiError::new(
            crate::error::Fault::Conflict,
            format!(
                "Unable to create instance because backup {backup_id} is not completed. Actual state: {}.",
                backup.state
            ),
        ));
    }
    let available = volume_size.unwrap_or(i64::from(flavor.disk));
    if let Some(size) = backup.size {
        if size > available as f64 {
            return Err(ApiError::forbidden(format!(
                "Backup is too large for given flavor or volume. Backup size: {size} GBs. Available size: {available} GBs."
            )));
        }
    }
    let source = match &backup.datastore_version_id {
        Some(vid) => match state.db().datastore_version_get(vid).await {
            Ok(v) => Some(state.db().datastore_get(&v.datastore_id).await?),
            Err(DbError::NotFound { .. }) => None,
            Err(e) => return Err(e.into()),
        },
        None => None,
    };
    if let Some(src) = source {
        if src.id != ds.id {
            return Err(ApiError::bad_request(format!(
                "The datastore from which the backup was taken, {}, does not match the destination datastore of {}.",
                src.name, ds.name
            )));
        }
    }
    Ok(backup)
}

/// The configuration group of a create (`configuration`: an id, or an href whose last
/// segment is the id): it must be visible (404) and made for the instance's datastore
/// version (400). Returns the group and its values typed for the guest.
pub async fn configuration_for_create(
    state: &AppState,
    ctx: &RequestContext,
    reference: &Value,
    version: &DatastoreVersion,
) -> ApiResult<(trove_db::Configuration, serde_json::Map<String, Value>)> {
    let id = match reference {
        Value::String(s) => s
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or(s)
            .to_owned(),
        other => other.to_string(),
    };
    let group = crate::handlers::configurations::load_visible(state, ctx, &id).await?;
    if group.datastore_version_id != version.id {
        return Err(ApiError::bad_request(format!(
            "Datastore Version on Configuration {id} does not match the Datastore Version \
             of the instance to create ({}).",
            version.name
        )));
    }
    let (overrides, _) = super::configuration::overrides_of(state, &group).await?;
    Ok((group, overrides))
}

/// The `nics` of `create_instance`: the keys each NIC of the request has.
pub fn nic_args(nics: &[crate::instances::request::NicRequest]) -> Vec<Value> {
    nics.iter()
        .map(|n| {
            let mut m = serde_json::Map::new();
            for (k, v) in [
                ("network_id", &n.network_id),
                ("subnet_id", &n.subnet_id),
                ("ip_address", &n.ip_address),
            ] {
                if let Some(v) = v {
                    m.insert(k.into(), v.clone().into());
                }
            }
            Value::Object(m)
        })
        .collect()
}

/// Creates an instance; answers 200 with its show view (status BUILD).
pub async fn create(
    State(state): State<AppState>,
    ctx: RequestContext,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let req = CreateRequest::parse(&body)?;
    let project = ctx.project_id().to_string();
    ctx.authorize(&state, "instance:create", &project)?;
    if req.configuration.is_some() {
        ctx.authorize(&state, "instance:update", &project)?;
    }
    if !req.modules.is_empty() {
        ctx.authorize(&state, "instance:module_apply", &project)?;
    }
    if !req.users.is_empty() {
        ctx.authorize(&state, "instance:extension:user:create", &project)?;
    }
    if !req.databases.is_empty() {
        ctx.authorize(&state, "instance:extension:database:create", &project)?;
    }
    if let Some(source) = &req.replica_of {
        return super::replicas::create(&state, &ctx, &req, source).await;
    }
    if req.replica_count.is_some_and(|n| n > 1) {
        return Err(ApiError::bad_request(
            "Replica count only valid when creating replicas.",
        ));
    }
    if !req.modules.is_empty() {
        return Err(ApiError::not_implemented(
            "Modules are not implemented yet.",
        ));
    }
    let locality = req
        .locality
        .clone()
        .or_else(|| state.config().default.default_locality.clone());
    if let Some(l) = &locality {
        if !LOCALITIES.contains(&l.as_str()) {
            return Err(ApiError::bad_request(format!(
                "Locality '{l}' is not supported. Valid values are: {}.",
                LOCALITIES.join(", ")
            )));
        }
    }
    for nic in &req.nics {
        if nic.network_id.is_none() && nic.subnet_id.is_none() {
            return Err(ApiError::bad_request(
                "Network or subnet must be specified for a NIC.",
            ));
        }
        if nic.ip_address.is_some() && nic.subnet_id.is_none() {
            return Err(ApiError::bad_request(
                "Subnet must be specified when an IP address is given.",
            ));
        }
    }
    let (ds, version) = resolve_datastore(&state, &req.datastore, true).await?;
    let flavor = resolve_flavor(&state, req.flavor_ref.as_deref(), &ds, &version).await?;
    let manager = version.manager.clone().unwrap_or_default();
    let ds_opts = state.config().datastore(&manager);
    let volume_support = uses_volume(&state, Some(&manager));
    let volume_size = if volume_support {
        let Some(size) = req.volume_size else {
            return Err(ApiError::bad_request("Volume size was not specified."));
        };
        super::check_volume_size(&state, size)?;
        Some(size)
    } else {
        if req.volume_size.is_some() {
            return Err(ApiError::not_implemented("Volume support is not enabled."));
        }
        None
    };
    if volume_support {
        let bound = state
            .db()
            .datastore_version_metadata_list(&version.id, trove_db::METADATA_VOLUME_TYPE)
            .await?;
        match &req.volume_type {
            None if !bound.is_empty() => {
                return Err(ApiError::bad_request(format!(
                    "A volume type is required for datastore {} version {}.",
                    ds.name, version.name
                )))
            }
            Some(vt) if !bound.is_empty() && !bound.contains(vt) => {
                return Err(ApiError::bad_request(format!(
                    "Volume type {vt} is not supported for datastore {} version {}.",
                    ds.name, version.name
                )))
            }
            _ => {}
        }
    }
    let group = match &req.configuration {
        Some(c) => Some(configuration_for_create(&state, &ctx, c, &version).await?),
        None => None,
    };
    let restore = match &req.backup_ref {
        Some(bid) => Some(check_restore(&state, &ctx, bid, &ds, volume_size, &flavor).await?),
        None => None,
    };
    let (ignore_dbs, ignore_users) = ds_opts
        .map(|o| (o.ignore_dbs.clone(), o.ignore_users.clone()))
        .unwrap_or_default();
    check_databases_and_users(&req, &ignore_dbs, &ignore_users)?;

    let cfg = state.config();
    let id = trove_db::new_id();
    tracing::Span::current().record("instance_id", id.as_str());
    let encrypted_key = trove_common::crypto::new_encrypted_instance_key(
        cfg.default.enable_secure_rpc_messaging,
        cfg.default.inst_rpc_key_encr_key.expose_secret(),
    );
    let mut row = Instance {
        id: id.clone(),
        name: Some(req.name.clone()),
        flavor_id: Some(flavor.id.clone()),
        volume_size: volume_size.map(|s| i32::try_from(s).unwrap_or(i32::MAX)),
        tenant_id: Some(project.clone()),
        datastore_version_id: Some(version.id.clone()),
        region_id: Some(
            req.region_name
                .clone()
                .unwrap_or_else(|| cfg.default.region.clone()),
        ),
        encrypted_key,
        access: req.access.as_ref().map(|a| a.to_string()),
        configuration_id: group.as_ref().map(|(g, _)| g.id.clone()),
        ..Instance::default()
    };
    row.set_task_status(TaskStatus::Building);
    // No root password is generated for a restore (the backup brings its own users).
    let root_password = if restore.is_none() && ds_opts.is_some_and(|o| o.root_on_create) {
        Some(trove_common::crypto::generate_random_key())
    } else {
        None
    };
    let args = json!({
        "instance_id": id,
        "name": req.name,
        "flavor": flavor_dict(&flavor),
        "image_id": version.image_id.clone().unwrap_or_default(),
        "databases": req.databases.iter().map(|d| json!({
            "_name": d.name, "_character_set": d.character_set, "_collate": d.collate,
        })).collect::<Vec<_>>(),
        "users": req.users.iter().map(|u| json!({
            "_name": u.name, "_password": u.password, "_host": u.host,
            "_databases": u.databases.iter().map(|d| json!({"_name": d})).collect::<Vec<_>>(),
            "_is_root": false,
        })).collect::<Vec<_>>(),
        "datastore_manager": manager,
        "packages": version.packages.clone().filter(|p| !p.is_empty()),
        "volume_size": volume_size,
        "backup_id": restore.as_ref().map(|b| b.id.clone()),
        "availability_zone": req.availability_zone,
        "root_password": root_password,
        "nics": nic_args(&req.nics),
        "overrides": group.as_ref().map(|(_, o)| Value::Object(o.clone())).unwrap_or_else(|| json!({})),
        "slave_of_id": null,
        "cluster_config": null,
        "volume_type": req.volume_type,
        "modules": [],
        "locality": locality,
        "access": req.access,
        "ds_version": version.version.clone().unwrap_or_else(|| version.name.clone()),
    });
    let deltas = [
        ("instances", 1),
        ("ram", flavor.ram),
        ("volumes", volume_size.map(|s| s as i32).unwrap_or(0)),
    ];
    let defaults = quota_defaults(&state);
    let db = state.db().clone();
    let created = db
        .run_with_quotas(&project, &deltas, &defaults, || async {
            let created = db.instance_create(&row).await?;
            db.service_status_create(&id, ServiceStatus::New).await?;
            if let Err(e) = cast(&state, &ctx, "create_instance", args).await {
                // Nothing will build it: remove the row so the quota is given back too.
                if let Err(del) = db.instance_soft_delete(&id).await {
                    tracing::error!(instance_id = %id, error = %del, "could not remove an instance whose create cast failed");
                }
                return Err(e);
            }
            Ok::<Instance, ApiError>(created)
        })
        .await?;
    tracing::info!(instance_id = %id, datastore = %ds.name, datastore.version = %version.name, "instance create requested");
    let st = states(&state, &created).await?;
    let mut view = view_of(&state, &created, &st).await?;
    view.locality = locality;
    view.password = root_password;
    Ok(Json(
        json!({ "instance": instance(&ctx, &view, Detail::Show, ctx.is_admin()) }),
    ))
}
