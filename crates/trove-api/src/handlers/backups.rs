//! Backups (api.md §9, internals-workflows.md §7.1 and §7.4):
//! - [`list`]: `GET /backups` (`instance_id`, `datastore`, `project_id`, `all_projects`,
//!   offset paging, most recently updated first);
//! - [`instance_backups`]: `GET /instances/{id}/backups`;
//! - [`show`]: `GET /backups/{id}`;
//! - [`create`]: `POST /backups` (state gate, one running backup per instance, parent
//!   resolution, quota `backups` +1, cast `create_backup` to the taskmanager);
//! - [`delete`]: `DELETE /backups/{id}` (children first, running backups refused until
//!   `running_backups_expires` days, quota `backups` -1, cast `delete_backup`);
//! - [`strategy_create`], [`strategy_list`], [`strategy_delete`]: `/backup_strategies`,
//!   the default container of a project's or an instance's backups.
//!
//! The API decides nothing about where backup data is stored: the taskmanager and the
//! guest agent receive the `backup_info` built here and report back through the
//! conductor (`update_backup`).

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use trove_db::{Backup, DbError, BACKUP_RUNNING_STATES};

use crate::app::AppState;
use crate::context::RequestContext;
use crate::error::{ApiError, ApiResult};
use crate::extract::JsonBody;
use crate::handlers::instances::{cast, load_visible, quota_defaults, states};
use crate::middleware::empty;
use crate::validation::{
    envelope, integer, non_empty_string, object, uuid, Errors, Path as JsonPath,
};
use crate::views;

/// Default page size of the backup lists (no cap applies, api.md §1.6).
const DEFAULT_PAGE: usize = 20;

/// Datastore name, version name and version id of a datastore version, for views.
#[derive(Debug, Clone)]
struct DatastoreRef {
    type_: String,
    version: String,
    version_id: String,
    datastore_id: String,
}

/// Caches datastore version lookups while rendering a page.
#[derive(Default)]
struct DatastoreCache(HashMap<String, Option<DatastoreRef>>);

impl DatastoreCache {
    async fn get(&mut self, state: &AppState, version_id: &str) -> ApiResult<Option<DatastoreRef>> {
        if let Some(r) = self.0.get(version_id) {
            return Ok(r.clone());
        }
        let db = state.db();
        let found = match db.datastore_version_get(version_id).await {
            Ok(v) => match db.datastore_get(&v.datastore_id).await {
                Ok(ds) => Some(DatastoreRef {
                    type_: ds.name,
                    version: v.name,
                    version_id: v.id,
                    datastore_id: ds.id,
                }),
                Err(DbError::NotFound { .. }) => None,
                Err(e) => return Err(e.into()),
            },
            Err(DbError::NotFound { .. }) => None,
            Err(e) => return Err(e.into()),
        };
        self.0.insert(version_id.to_string(), found.clone());
        Ok(found)
    }
}

/// The backup object of api.md §9.1; a FAILED or DELETE_FAILED backup with a recorded
/// reason also has `fault` (`message`, `created`), shaped like an instance's fault.
fn view(b: &Backup, ds: Option<&DatastoreRef>) -> Value {
    let mut v = json!({
        "id": b.id,
        "name": b.name,
        "description": b.description,
        "locationRef": b.location,
        "instance_id": b.instance_id,
        "created": b.created.as_ref().map(views::timestamp),
        "updated": b.updated.as_ref().map(views::timestamp),
        "size": b.size,
        "status": b.state,
        "parent_id": b.parent_id,
        "project_id": b.tenant_id,
    });
    if let Some(d) = ds {
        v["datastore"] = json!({"type": d.type_, "version": d.version, "version_id": d.version_id});
    }
    if let Some(message) = b.fault_message.as_deref().filter(|m| !m.is_empty()) {
        if matches!(b.state.as_str(), "FAILED" | "DELETE_FAILED") {
            v["fault"] = json!({
                "message": message,
                "created": b.updated.as_ref().map(views::timestamp),
            });
        }
    }
    v
}

async fn render(state: &AppState, cache: &mut DatastoreCache, b: &Backup) -> ApiResult<Value> {
    let ds = match &b.datastore_version_id {
        Some(vid) => cache.get(state, vid).await?,
        None => None,
    };
    Ok(view(b, ds.as_ref()))
}

/// Whether a backup counts as running: NEW, BUILDING or SAVING and updated less than
/// `running_backups_expires` days ago.
fn is_running(state: &AppState, b: &Backup) -> bool {
    if !BACKUP_RUNNING_STATES.contains(&b.state.as_str()) {
        return false;
    }
    let days = state.config().default.running_backups_expires;
    match b.updated.or(b.created) {
        Some(t) => trove_db::utc_now() - t < chrono::Duration::days(days),
        None => true,
    }
}

/// Loads a live backup the caller may see (404 for another project's, unless admin).
pub async fn load_visible_backup(
    state: &AppState,
    ctx: &RequestContext,
    id: &str,
) -> ApiResult<Backup> {
    let b = match state.db().backup_get(id).await {
        Ok(b) => b,
        Err(DbError::NotFound { .. }) => return Err(backup_not_found(id)),
        Err(e) => return Err(e.into()),
    };
    if b.tenant_id.as_deref() != Some(ctx.project_id()) && !ctx.is_admin() {
        return Err(backup_not_found(id));
    }
    Ok(b)
}

fn backup_not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("Backup {id} cannot be found."))
}

/// `limit` (default 20, not capped) and the integer offset `marker`.
fn paging(params: &HashMap<String, String>) -> ApiResult<(usize, usize)> {
    let limit = match params.get("limit").map(|l| l.trim()) {
        None | Some("") => DEFAULT_PAGE,
        Some(l) => match l.parse::<i64>() {
            Ok(n) if n > 0 => n as usize,
            _ => {
                return Err(ApiError::bad_request(format!(
                    "limit param must be an integer greater than zero, got '{l}'."
                )))
            }
        },
    };
    let offset = match params.get("marker").map(|m| m.trim()) {
        None | Some("") => 0,
        Some(m) => m.parse::<usize>().map_err(|_| {
            ApiError::bad_request(format!(
                "marker param must be an integer offset, got '{m}'."
            ))
        })?,
    };
    Ok((limit, offset))
}

fn truthy(v: &str) -> bool {
    matches!(
        v.trim().to_ascii_lowercase().as_str(),
        "true" | "1" | "yes" | "on" | "y" | "t"
    )
}

/// One page of `rows` under `key`, with a `next` link whenever the page is full.
async fn page_body(
    state: &AppState,
    ctx: &RequestContext,
    rows: &[Backup],
    limit: usize,
    offset: usize,
) -> ApiResult<Value> {
    let mut cache = DatastoreCache::default();
    let mut items = Vec::new();
    for b in rows.iter().skip(offset).take(limit) {
        items.push(render(state, &mut cache, b).await?);
    }
    let full = items.len() == limit;
    let mut body = json!({ "backups": items });
    if full {
        let next = offset.saturating_add(limit);
        body["links"] = json!([{"rel": "next", "href": ctx.next_href(&next.to_string())}]);
    }
    Ok(body)
}

/// `GET /backups`.
pub async fn list(
    State(state): State<AppState>,
    ctx: RequestContext,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let all_projects = params.get("all_projects").is_some_and(|v| truthy(v));
    let project = params
        .get("project_id")
        .map(String::as_str)
        .filter(|p| !p.is_empty());
    if all_projects || project.is_some() {
        ctx.authorize(&state, "backup:index:all_projects", ctx.project_id())?;
    } else {
        ctx.authorize(&state, "backup:index", ctx.project_id())?;
    }
    let (limit, offset) = paging(&params)?;
    let scope = if all_projects {
        None
    } else {
        Some(project.unwrap_or(ctx.project_id()))
    };
    let mut rows = state.db().backup_list_all(scope).await?;
    if let Some(i) = params.get("instance_id").filter(|i| !i.is_empty()) {
        rows.retain(|b| b.instance_id.as_deref() == Some(i.as_str()));
    }
    if let Some(ds_name) = params.get("datastore").filter(|d| !d.is_empty()) {
        let ds = state.db().datastore_get(ds_name).await?;
        let mut cache = DatastoreCache::default();
        let mut kept = Vec::with_capacity(rows.len());
        for b in rows {
            let matches = match &b.datastore_version_id {
                Some(vid) => cache
                    .get(&state, vid)
                    .await?
                    .is_some_and(|d| d.datastore_id == ds.id),
                None => false,
            };
            if matches {
                kept.push(b);
            }
        }
        rows = kept;
    }
    Ok(Json(page_body(&state, &ctx, &rows, limit, offset).await?))
}

/// `GET /instances/{id}/backups`: the caller's backups of the instance (every project's
/// for admins).
pub async fn instance_backups(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path((_project, id)): Path<(String, String)>,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let inst = load_visible(&state, &ctx, &id).await?;
    let owner = inst.tenant_id.clone().unwrap_or_default();
    ctx.authorize(&state, "instance:backups", &owner)?;
    let (limit, offset) = paging(&params)?;
    let scope = if ctx.is_admin() {
        None
    } else {
        Some(ctx.project_id())
    };
    let mut rows = state.db().backup_list_all(scope).await?;
    rows.retain(|b| b.instance_id.as_deref() == Some(id.as_str()));
    Ok(Json(page_body(&state, &ctx, &rows, limit, offset).await?))
}

/// `GET /backups/{id}`.
pub async fn show(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path((_project, id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let b = load_visible_backup(&state, &ctx, &id).await?;
    ctx.authorize(
        &state,
        "backup:show",
        b.tenant_id.as_deref().unwrap_or_default(),
    )?;
    let mut cache = DatastoreCache::default();
    Ok(Json(
        json!({ "backup": render(&state, &mut cache, &b).await? }),
    ))
}

/// A validated `POST /backups` body.
#[derive(Debug, Default)]
struct CreateRequest {
    name: String,
    instance: Option<String>,
    description: Option<String>,
    parent_id: Option<String>,
    incremental: bool,
    swift_container: Option<String>,
    storage_driver: Option<String>,
    restore_from: bool,
}

impl CreateRequest {
    fn parse(body: &Value) -> ApiResult<CreateRequest> {
        let b = envelope(body, "backup")?;
        let root = JsonPath::root("backup");
        let mut errs = Errors::new();
        let mut req = CreateRequest::default();
        match b.get("name") {
            None => errs.required(&root, "name"),
            Some(v) => {
                req.name = non_empty_string(&mut errs, &root.key("name"), v).unwrap_or_default()
            }
        }
        if let Some(v) = b.get("instance") {
            req.instance = uuid(&mut errs, &root.key("instance"), v);
        }
        if let Some(v) = b.get("description") {
            req.description = non_empty_string(&mut errs, &root.key("description"), v);
        }
        if let Some(v) = b.get("parent_id") {
            req.parent_id = uuid(&mut errs, &root.key("parent_id"), v);
        }
        if let Some(v) = b.get("incremental") {
            req.incremental =
                integer(&mut errs, &root.key("incremental"), v, Some(0), Some(1)) == Some(1);
        }
        if let Some(v) = b.get("swift_container") {
            req.swift_container = non_empty_string(&mut errs, &root.key("swift_container"), v);
        }
        if let Some(v) = b.get("restore_from") {
            req.restore_from = object(&mut errs, &root.key("restore_from"), v).is_some();
        }
        match b.get("storage_driver") {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) if !s.trim().is_empty() => req.storage_driver = Some(s.clone()),
            Some(other) => errs.wrong_type(&root.key("storage_driver"), other, &["string"]),
        }
        Ok(errs.finish(req)?)
    }
}

/// Whether a container name is one shell-safe word.
fn shell_safe(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// The backup a new incremental backup builds on, and its datastore reference.
async fn resolve_parent(
    state: &AppState,
    ctx: &RequestContext,
    req: &CreateRequest,
    instance_id: &str,
) -> ApiResult<Option<Backup>> {
    if let Some(pid) = &req.parent_id {
        let parent = load_visible_backup(state, ctx, pid).await?;
        if parent.instance_id.as_deref() != Some(instance_id) {
            return Err(ApiError::bad_request(format!(
                "Parent backup {pid} is not a backup of instance {instance_id}."
            )));
        }
        return Ok(Some(parent));
    }
    if !req.incremental {
        return Ok(None);
    }
    let mut rows = state.db().backup_list_all(Some(ctx.project_id())).await?;
    rows.retain(|b| b.instance_id.as_deref() == Some(instance_id) && b.state == "COMPLETED");
    Ok(rows
        .into_iter()
        .max_by(|a, b| a.created.cmp(&b.created).then_with(|| a.id.cmp(&b.id))))
}

/// Why an attempt to start a backup did not go through.
enum StartError {
    /// Refused or failed; answered as is.
    Api(ApiError),
    /// Another backup of the instance was inserted at the same time; try again.
    Contended,
}

impl From<DbError> for StartError {
    fn from(e: DbError) -> Self {
        StartError::Api(e.into())
    }
}

impl From<ApiError> for StartError {
    fn from(e: ApiError) -> Self {
        StartError::Api(e)
    }
}

/// Attempts at starting a backup when creates for one instance collide.
const START_ATTEMPTS: u32 = 6;

/// Per-instance locks: creates for one instance in this API process run one at a time.
/// Across API processes [`start_backup`] re-checks in the database after inserting.
static INSTANCE_LOCKS: std::sync::LazyLock<
    std::sync::Mutex<HashMap<String, std::sync::Arc<tokio::sync::Mutex<()>>>>,
> = std::sync::LazyLock::new(Default::default);

fn instance_lock(id: &str) -> std::sync::Arc<tokio::sync::Mutex<()>> {
    let mut map = INSTANCE_LOCKS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    map.retain(|_, l| std::sync::Arc::strong_count(l) > 1);
    map.entry(id.to_string()).or_default().clone()
}

fn backup_refused(instance_id: &str) -> ApiError {
    ApiError::unprocessable(format!(
        "Instance {instance_id} is not currently available for an action to be performed (instance status was BACKUP)."
    ))
}

/// Gate A on the instance as it is now (422 while a backup of it runs).
async fn check_instance(
    state: &AppState,
    ctx: &RequestContext,
    instance_id: &str,
) -> ApiResult<trove_db::Instance> {
    let inst = load_visible(state, ctx, instance_id).await?;
    if inst.compute_instance_id.is_none() {
        return Err(ApiError::unprocessable(format!(
            "Instance {instance_id} is not ready: it has no server."
        )));
    }
    states(state, &inst).await?.gate_a(instance_id)?;
    Ok(inst)
}

/// Reserves the quota, inserts the row, makes sure it is the only running backup of the
/// instance, and casts `create_backup`. Any failure removes the row and gives the quota
/// back.
async fn start_backup(
    state: &AppState,
    ctx: &RequestContext,
    row: &Backup,
    backup_info: &Value,
) -> Result<Backup, StartError> {
    let db = state.db().clone();
    let project = row.tenant_id.clone().unwrap_or_default();
    let instance_id = row.instance_id.clone().unwrap_or_default();
    db.run_with_quotas(
        &project,
        &[("backups", 1)],
        &quota_defaults(state),
        || async {
            let created = db.backup_create(row).await?;
            let outcome = async {
                let running = db.backup_running_ids(&instance_id).await?;
                if running.iter().any(|id| *id != created.id) {
                    return Err(StartError::Contended);
                }
                cast(
                    state,
                    ctx,
                    "create_backup",
                    json!({"backup_info": backup_info, "instance_id": instance_id}),
                )
                .await?;
                Ok(())
            }
            .await;
            if let Err(e) = outcome {
                // Nothing will take it: remove the row so the quota is given back too.
                if let Err(del) = db.backup_delete(&created.id).await {
                    tracing::error!(backup_id = %created.id, error = %del, "could not remove a backup that was not started");
                }
                return Err(e);
            }
            Ok(created)
        },
    )
    .await
}

/// `POST /backups`: 202 with the new backup (status NEW).
pub async fn create(
    State(state): State<AppState>,
    ctx: RequestContext,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let req = CreateRequest::parse(&body)?;
    let project = ctx.project_id().to_string();
    ctx.authorize(&state, "backup:create", &project)?;
    if req.restore_from {
        return Err(ApiError::not_implemented(
            "Importing a backup made elsewhere (restore_from) is not implemented yet.",
        ));
    }
    let Some(instance_id) = req.instance.clone() else {
        return Err(ApiError::bad_request(
            "The instance of the backup must be given.",
        ));
    };
    if let Some(c) = &req.swift_container {
        if !shell_safe(c) {
            return Err(ApiError::bad_request(format!(
                "Invalid swift_container '{c}': only letters, digits, '-', '_' and '.' are allowed."
            )));
        }
    }
    let lock = instance_lock(&instance_id);
    let _serialized = lock.lock().await;
    let inst = check_instance(&state, &ctx, &instance_id).await?;
    if inst.cluster_id.is_some() {
        return Err(ApiError::not_implemented(
            "Operation not supported for instances that are part of a cluster.",
        ));
    }
    let Some(version_id) = inst.datastore_version_id.clone() else {
        return Err(ApiError::unprocessable(format!(
            "Instance {instance_id} has no datastore version."
        )));
    };
    let version = state.db().datastore_version_get(&version_id).await?;
    let ds = state.db().datastore_get(&version.datastore_id).await?;
    let manager = version.manager.clone().unwrap_or_default();
    let supported = state
        .config()
        .datastore(&manager)
        .and_then(|o| o.backup_strategy.as_deref())
        .is_some_and(|s| !s.is_empty());
    if !supported {
        return Err(ApiError::not_implemented(format!(
            "The 'create_backup' operation is not supported for the '{}' datastore.",
            ds.name
        )));
    }
    let parent = resolve_parent(&state, &ctx, &req, &instance_id).await?;
    let swift_container = match &req.swift_container {
        Some(c) => Some(c.clone()),
        None => strategy_container(&state, &project, &instance_id).await?,
    };
    let storage_driver = req
        .storage_driver
        .clone()
        .unwrap_or_else(|| state.config().default.storage_strategy.clone());
    let backup_type = if parent.is_some() {
        "incremental"
    } else {
        "full"
    };
    let mut attempt = 0;
    let created = loop {
        attempt += 1;
        let row = Backup {
            id: trove_db::new_id(),
            name: req.name.clone(),
            description: req.description.clone(),
            backup_type: Some(backup_type.into()),
            tenant_id: Some(project.clone()),
            state: "NEW".into(),
            instance_id: Some(instance_id.clone()),
            parent_id: parent.as_ref().map(|p| p.id.clone()),
            datastore_version_id: Some(version.id.clone()),
            storage_driver: Some(storage_driver.clone()),
            ..Backup::default()
        };
        let backup_info = json!({
            "id": row.id,
            "name": row.name,
            "description": row.description,
            "instance_id": instance_id,
            "backup_type": backup_type,
            "checksum": null,
            "parent": parent.as_ref().map(|p| json!({"location": p.location, "checksum": p.checksum})),
            "datastore": ds.name,
            "datastore_version": version.name,
            "storage_driver": storage_driver,
            "swift_container": swift_container,
        });
        match start_backup(&state, &ctx, &row, &backup_info).await {
            Ok(b) => break b,
            Err(StartError::Api(e)) => return Err(e),
            Err(StartError::Contended) if attempt < START_ATTEMPTS => {
                // Another API process inserted a backup of the instance at the same
                // time; both stepped back. Wait a random moment and look again: the gate
                // refuses if the other one went through.
                let jitter = u64::from(row.id.as_bytes()[0] % 16) * 10 + 10;
                tokio::time::sleep(std::time::Duration::from_millis(jitter << attempt.min(4)))
                    .await;
                check_instance(&state, &ctx, &instance_id).await?;
            }
            Err(StartError::Contended) => return Err(backup_refused(&instance_id)),
        }
    };
    tracing::info!(backup_id = %created.id, instance_id = %instance_id, backup_type, "backup requested");
    let mut cache = DatastoreCache::default();
    let body = json!({ "backup": render(&state, &mut cache, &created).await? });
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}

/// The backups of `root`'s subtree (incremental children, recursively), children before
/// their parents.
fn subtree_post_order(root: &Backup, all: &[Backup]) -> Vec<Backup> {
    let mut children: HashMap<&str, Vec<&Backup>> = HashMap::new();
    for b in all {
        if let Some(p) = &b.parent_id {
            children.entry(p.as_str()).or_default().push(b);
        }
    }
    let mut out = Vec::new();
    // Iterative post-order: (backup, children visited?).
    let mut stack: Vec<(&Backup, bool)> = vec![(root, false)];
    let mut seen = std::collections::HashSet::new();
    while let Some((b, visited)) = stack.pop() {
        if visited {
            out.push(b.clone());
            continue;
        }
        if !seen.insert(b.id.clone()) {
            continue;
        }
        stack.push((b, true));
        for c in children.get(b.id.as_str()).into_iter().flatten() {
            stack.push((c, false));
        }
    }
    out
}

/// `DELETE /backups/{id}`: 202, empty.
pub async fn delete(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path((_project, id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let b = load_visible_backup(&state, &ctx, &id).await?;
    let owner = b.tenant_id.clone().unwrap_or_default();
    ctx.authorize(&state, "backup:delete", &owner)?;
    let all = state.db().backup_list_all(Some(&owner)).await?;
    let order = subtree_post_order(&b, &all);
    // Refuse before anything is deleted when any backup of the subtree runs.
    for x in &order {
        if is_running(&state, x) {
            return Err(ApiError::unprocessable(format!(
                "Backup {} cannot be deleted because it is running.",
                x.id
            )));
        }
    }
    let db = state.db().clone();
    for x in &order {
        let tenant = x.tenant_id.clone().unwrap_or_else(|| owner.clone());
        db.run_with_quotas(
            &tenant,
            &[("backups", -1)],
            &quota_defaults(&state),
            || async { cast(&state, &ctx, "delete_backup", json!({ "backup_id": x.id })).await },
        )
        .await?;
        tracing::info!(backup_id = %x.id, "backup delete requested");
    }
    Ok(empty(StatusCode::ACCEPTED))
}

/// The backup strategy object of api.md §9.6.
fn strategy_view(s: &trove_db::backups::BackupStrategy) -> Value {
    json!({
        "project_id": s.tenant_id,
        "instance_id": s.instance_id,
        "backend": s.backend,
        "swift_container": s.swift_container,
    })
}

/// The project a strategy call is about: `project_id` of the query, else the caller's;
/// another project needs an admin (403 otherwise).
fn strategy_project(ctx: &RequestContext, params: &HashMap<String, String>) -> ApiResult<String> {
    let project = params
        .get("project_id")
        .map(String::as_str)
        .filter(|p| !p.is_empty())
        .unwrap_or(ctx.project_id());
    if project != ctx.project_id() && !ctx.is_admin() {
        return Err(ApiError::forbidden(format!(
            "Operation not allowed for tenant {project}."
        )));
    }
    Ok(project.to_string())
}

/// The container of the strategy of an instance, else of its project.
async fn strategy_container(
    state: &AppState,
    project: &str,
    instance_id: &str,
) -> ApiResult<Option<String>> {
    for key in [instance_id, ""] {
        let rows = state.db().backup_strategy_list(project, Some(key)).await?;
        if let Some(c) = rows.into_iter().find_map(|s| s.swift_container) {
            return Ok(Some(c));
        }
    }
    Ok(None)
}

/// `POST /backup_strategies`: creates or replaces; 202 with the strategy.
pub async fn strategy_create(
    State(state): State<AppState>,
    ctx: RequestContext,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let b = envelope(&body, "backup_strategy")?;
    let root = JsonPath::root("backup_strategy");
    let mut errs = Errors::new();
    crate::validation::no_additional(&mut errs, &root, b, &["instance_id", "swift_container"]);
    let instance_id = b
        .get("instance_id")
        .and_then(|v| uuid(&mut errs, &root.key("instance_id"), v));
    let container = match b.get("swift_container") {
        None => {
            errs.required(&root, "swift_container");
            None
        }
        Some(v) => non_empty_string(&mut errs, &root.key("swift_container"), v),
    };
    errs.finish(())?;
    let project = ctx.project_id().to_string();
    ctx.authorize(&state, "backup_strategy:create", &project)?;
    let container = container.unwrap_or_default();
    if !shell_safe(&container) {
        return Err(ApiError::bad_request(format!(
            "Invalid swift_container '{container}': only letters, digits, '-', '_' and '.' are allowed."
        )));
    }
    if let Some(i) = &instance_id {
        load_visible(&state, &ctx, i).await?;
    }
    let s = state
        .db()
        .backup_strategy_set(
            &project,
            instance_id.as_deref().unwrap_or(""),
            "swift",
            &container,
        )
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "backup_strategy": strategy_view(&s) })),
    )
        .into_response())
}

/// `GET /backup_strategies?instance_id=&project_id=`.
pub async fn strategy_list(
    State(state): State<AppState>,
    ctx: RequestContext,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    ctx.authorize(&state, "backup_strategy:index", ctx.project_id())?;
    let project = strategy_project(&ctx, &params)?;
    let instance = params
        .get("instance_id")
        .map(String::as_str)
        .filter(|i| !i.is_empty());
    let rows = state.db().backup_strategy_list(&project, instance).await?;
    let items: Vec<Value> = rows.iter().map(strategy_view).collect();
    Ok(Json(json!({ "backup_strategies": items })))
}

/// `DELETE /backup_strategies?instance_id=&project_id=`: 202, empty; a missing strategy
/// is not an error.
pub async fn strategy_delete(
    State(state): State<AppState>,
    ctx: RequestContext,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    ctx.authorize(&state, "backup_strategy:delete", ctx.project_id())?;
    let project = strategy_project(&ctx, &params)?;
    let instance = params.get("instance_id").map(String::as_str).unwrap_or("");
    state
        .db()
        .backup_strategy_delete(&project, instance)
        .await?;
    Ok(empty(StatusCode::ACCEPTED))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(id: &str, parent: Option<&str>) -> Backup {
        Backup {
            id: id.into(),
            parent_id: parent.map(String::from),
            ..Backup::default()
        }
    }

    #[test]
    fn children_come_before_their_parents() {
        let all = vec![
            b("a", None),
            b("b", Some("a")),
            b("c", Some("b")),
            b("d", Some("a")),
            b("e", None),
        ];
        let order: Vec<String> = subtree_post_order(&all[0], &all)
            .into_iter()
            .map(|x| x.id)
            .collect();
        assert_eq!(order.len(), 4);
        let pos = |s: &str| order.iter().position(|x| x == s).unwrap();
        assert!(pos("c") < pos("b"));
        assert!(pos("b") < pos("a"));
        assert!(pos("d") < pos("a"));
        assert_eq!(order.last().map(String::as_str), Some("a"));
    }

    #[test]
    fn container_names_must_be_one_safe_word() {
        assert!(shell_safe("my-backups_1.x"));
        assert!(!shell_safe("a b"));
        assert!(!shell_safe("a;rm"));
        assert!(!shell_safe(""));
    }

    #[test]
    fn truthy_flags() {
        for v in ["true", "TRUE", "1", "yes", "On"] {
            assert!(truthy(v), "{v}");
        }
        for v in ["false", "0", "no", ""] {
            assert!(!truthy(v), "{v}");
        }
    }

    #[test]
    fn the_view_has_the_datastore_only_when_known() {
        let mut x = b("a", None);
        x.name = "n".into();
        x.state = "NEW".into();
        let v = view(&x, None);
        assert!(v.get("datastore").is_none());
        assert_eq!(v["status"], "NEW");
        assert_eq!(v["locationRef"], Value::Null);
        let d = DatastoreRef {
            type_: "mariadb".into(),
            version: "10.11".into(),
            version_id: "v".into(),
            datastore_id: "d".into(),
        };
        assert_eq!(
            view(&x, Some(&d))["datastore"],
            json!({"type": "mariadb", "version": "10.11", "version_id": "v"})
        );
    }

    #[test]
    fn the_view_has_a_fault_only_when_failed_with_a_reason() {
        let mut x = b("a", None);
        x.updated =
            chrono::NaiveDate::from_ymd_opt(2026, 11, 26).and_then(|d| d.and_hms_opt(23, 5, 7));
        x.state = "FAILED".into();
        assert!(view(&x, None).get("fault").is_none(), "no reason recorded");
        x.fault_message = Some("The backup failed: disk full.".into());
        assert_eq!(
            view(&x, None)["fault"],
            json!({"message": "The backup failed: disk full.", "created": "2026-11-26T23:05:07"})
        );
        x.state = "DELETE_FAILED".into();
        assert!(view(&x, None).get("fault").is_some());
        for state in ["NEW", "BUILDING", "COMPLETED"] {
            x.state = state.into();
            assert!(view(&x, None).get("fault").is_none(), "{state}");
        }
    }
}
