//! Configuration groups (api.md §10): list, show, create, replace and edit values,
//! delete, and the instances using a group.
//!
//! - [`values`]: validation of values against a version's rules, stored text, typed
//!   values shown back;
//! - [`request`]: the request bodies.
//!
//! Groups of other projects are 404 ("Configuration group with ID X could not be
//! found.") unless the caller is an admin. Instance counts and the instance list are
//! limited to the caller's project unless the caller is an admin.
//!
//! `PUT`/`PATCH` of a group push the new values to the non-deleted instances using it
//! (see [`crate::handlers::instances::configuration`], which also attaches and detaches
//! groups).

pub mod request;
pub mod values;

use std::collections::{BTreeSet, HashMap};

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use serde_json::{json, Map, Value};
use trove_db::{Configuration, DbError, Instance};

use crate::app::AppState;
use crate::context::RequestContext;
use crate::error::{ApiError, ApiResult};
use crate::extract::JsonBody;
use crate::handlers::instances::create::resolve_datastore;
use crate::handlers::instances::list::page_size;
use crate::middleware::empty;
use crate::views::configurations::{self as view, VersionNames};
use request::{CreateRequest, EditRequest, UpdateRequest};

/// 404 for a group that does not exist or may not be seen.
pub fn group_not_found(id: &str) -> ApiError {
    ApiError::not_found(format!(
        "Configuration group with ID {id} could not be found."
    ))
}

/// Loads a live group the caller may see (other projects' groups are 404 unless admin).
pub async fn load_visible(
    state: &AppState,
    ctx: &RequestContext,
    id: &str,
) -> ApiResult<Configuration> {
    let c = match state.db().configuration_get(id).await {
        Ok(c) => c,
        Err(DbError::NotFound { .. }) => return Err(group_not_found(id)),
        Err(e) => return Err(e.into()),
    };
    if c.tenant_id != ctx.project_id() && !ctx.is_admin() {
        return Err(group_not_found(id));
    }
    Ok(c)
}

/// Datastore and version names of a version id (all `None` when the version is gone).
async fn names_of(state: &AppState, version_id: &str) -> ApiResult<VersionNames> {
    let v = match state.db().datastore_version_get(version_id).await {
        Ok(v) => v,
        Err(DbError::NotFound { .. }) => return Ok(VersionNames::default()),
        Err(e) => return Err(e.into()),
    };
    let ds = match state.db().datastore_get(&v.datastore_id).await {
        Ok(d) => Some(d.name),
        Err(DbError::NotFound { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    Ok(VersionNames {
        datastore_name: ds,
        version_number: Some(v.version.clone().unwrap_or_else(|| v.name.clone())),
        version_name: Some(v.name),
    })
}

/// Non-deleted instances using group `id`, by id: the caller's project's, or every
/// project's for admins when `all_projects`.
async fn instances_using(
    state: &AppState,
    ctx: &RequestContext,
    id: &str,
    all_projects: bool,
) -> ApiResult<Vec<Instance>> {
    let mut rows: Vec<Instance> = state
        .db()
        .instance_list_all(i32::MAX as usize)
        .await?
        .into_iter()
        .filter(|i| i.configuration_id.as_deref() == Some(id))
        .filter(|i| all_projects || i.tenant_id.as_deref() == Some(ctx.project_id()))
        .collect();
    rows.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(rows)
}

/// The groups a listing shows: the caller's project's, or for admins every project's.
///
/// The control database offers groups per project only, so the admin listing covers
/// the caller's project and every project that owns a non-deleted instance.
async fn visible_groups(state: &AppState, ctx: &RequestContext) -> ApiResult<Vec<Configuration>> {
    let mut projects = BTreeSet::from([ctx.project_id().to_string()]);
    if ctx.is_admin() {
        projects.extend(
            state
                .db()
                .instance_list_all(i32::MAX as usize)
                .await?
                .into_iter()
                .filter_map(|i| i.tenant_id),
        );
    }
    let mut all = Vec::new();
    for p in &projects {
        all.extend(state.db().configuration_list(p).await?);
    }
    all.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(all)
}

/// One page of `rows` (sorted by id) after `marker`, and the next marker when more follow.
fn page_of<T>(
    rows: Vec<T>,
    id: impl Fn(&T) -> &str,
    limit: usize,
    marker: Option<&str>,
) -> (Vec<T>, Option<String>) {
    let mut rest: Vec<T> = rows
        .into_iter()
        .filter(|r| marker.is_none_or(|m| id(r) > m))
        .collect();
    let more = rest.len() > limit;
    rest.truncate(limit);
    let next = if more {
        rest.last().map(|r| id(r).to_string())
    } else {
        None
    };
    (rest, next)
}

fn marker(params: &HashMap<String, String>) -> Option<&str> {
    params
        .get("marker")
        .map(String::as_str)
        .filter(|m| !m.is_empty())
}

fn with_next(ctx: &RequestContext, mut body: Value, next: Option<String>) -> Value {
    if let Some(next) = next {
        body["links"] = json!([{"rel": "next", "href": ctx.next_href(&next)}]);
    }
    body
}

/// The stored values of a group, typed back with the version's rules.
async fn shown_values(state: &AppState, c: &Configuration) -> ApiResult<Map<String, Value>> {
    let rules = state
        .db()
        .config_params_list(&c.datastore_version_id)
        .await?;
    Ok(state
        .db()
        .configuration_parameters(&c.id)
        .await?
        .into_iter()
        .map(|p| {
            let t = values::find_rule(&rules, &p.configuration_key).map(|r| r.data_type.as_str());
            let v = values::typed_value(t, p.configuration_value.as_deref().unwrap_or(""));
            (p.configuration_key, v)
        })
        .collect())
}

/// `GET /configurations`: paged by id, at most `configurations_page_size` a page.
pub async fn list(
    State(state): State<AppState>,
    ctx: RequestContext,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    ctx.authorize(&state, "configuration:index", ctx.project_id())?;
    let limit = page_size(&params, state.config().default.configurations_page_size)?;
    let rows = visible_groups(&state, &ctx).await?;
    let (rows, next) = page_of(rows, |c| &c.id, limit, marker(&params));
    let mut names: HashMap<String, VersionNames> = HashMap::new();
    let mut items = Vec::with_capacity(rows.len());
    for c in &rows {
        if !names.contains_key(&c.datastore_version_id) {
            let n = names_of(&state, &c.datastore_version_id).await?;
            names.insert(c.datastore_version_id.clone(), n);
        }
        items.push(view::list_item(c, &names[&c.datastore_version_id]));
    }
    Ok(Json(with_next(
        &ctx,
        json!({ "configurations": items }),
        next,
    )))
}

/// `GET /configurations/{id}`: the detailed view.
pub async fn show(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path((_project, id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let c = load_visible(&state, &ctx, &id).await?;
    ctx.authorize(&state, "configuration:show", &c.tenant_id)?;
    let names = names_of(&state, &c.datastore_version_id).await?;
    let values = shown_values(&state, &c).await?;
    let count = instances_using(&state, &ctx, &c.id, ctx.is_admin())
        .await?
        .len();
    Ok(Json(
        json!({ "configuration": view::detailed(&c, &names, values, count) }),
    ))
}

/// `POST /configurations`: 200 with the detailed view, values as given.
pub async fn create(
    State(state): State<AppState>,
    ctx: RequestContext,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let req = CreateRequest::parse(&body)?;
    ctx.authorize(&state, "configuration:create", ctx.project_id())?;
    let (ds, version) = resolve_datastore(&state, &req.datastore, false).await?;
    let rules = state.db().config_params_list(&version.id).await?;
    let items = values::validate(&req.values, &rules, &ds.name, &version.name)?;
    let row = Configuration {
        id: trove_db::new_id(),
        name: req.name,
        description: req.description,
        tenant_id: ctx.project_id().to_string(),
        datastore_version_id: version.id.clone(),
        ..Configuration::default()
    };
    let c = state.db().configuration_create(&row, &items).await?;
    tracing::info!(configuration_id = %c.id, "configuration group created");
    let names = VersionNames {
        datastore_name: Some(ds.name),
        version_number: Some(
            version
                .version
                .clone()
                .unwrap_or_else(|| version.name.clone()),
        ),
        version_name: Some(version.name),
    };
    Ok(Json(
        json!({ "configuration": view::detailed(&c, &names, req.values, 0) }),
    ))
}

/// Validates new values of group `c` against its version's rules.
async fn validated(
    state: &AppState,
    c: &Configuration,
    new_values: &Map<String, Value>,
) -> ApiResult<Vec<(String, String)>> {
    let names = names_of(state, &c.datastore_version_id).await?;
    let rules = state
        .db()
        .config_params_list(&c.datastore_version_id)
        .await?;
    values::validate(
        new_values,
        &rules,
        names.datastore_name.as_deref().unwrap_or_default(),
        names.version_name.as_deref().unwrap_or_default(),
    )
}

/// 503 before anything changes when instances use group `id` and this API cannot reach
/// guest agents.
async fn check_guests_if_in_use(state: &AppState, ctx: &RequestContext, id: &str) -> ApiResult<()> {
    if state.guests().is_none() && !instances_using(state, ctx, id, true).await?.is_empty() {
        return Err(ApiError::unavailable("no guest agent client configured"));
    }
    Ok(())
}

/// Pushes the stored values of group `id` to every non-deleted instance using it
/// (guest `update_overrides`, then `apply_overrides` unless a restart is needed).
async fn push_to_instances(state: &AppState, ctx: &RequestContext, id: &str) -> ApiResult<()> {
    let group = state.db().configuration_get(id).await?;
    for inst in instances_using(state, ctx, id, true).await? {
        crate::handlers::instances::configuration::refresh(state, ctx, &inst, &group).await?;
    }
    Ok(())
}

/// `PUT /configurations/{id}`: replaces all values (none when `values` is absent),
/// optionally renames. 202, empty.
pub async fn update(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path((_project, id)): Path<(String, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let req = UpdateRequest::parse(&body)?;
    let c = load_visible(&state, &ctx, &id).await?;
    ctx.authorize(&state, "configuration:update", &c.tenant_id)?;
    let items = validated(&state, &c, &req.values.clone().unwrap_or_default()).await?;
    check_guests_if_in_use(&state, &ctx, &id).await?;
    if req.name.is_some() || req.description.is_some() {
        let name = req.name.as_deref().unwrap_or(&c.name);
        let description = req.description.as_deref().or(c.description.as_deref());
        state
            .db()
            .configuration_update(&id, name, description)
            .await?;
    }
    state.db().configuration_set_parameters(&id, &items).await?;
    tracing::info!(configuration_id = %id, "configuration group values replaced");
    push_to_instances(&state, &ctx, &id).await?;
    Ok(empty(StatusCode::ACCEPTED))
}

/// `PATCH /configurations/{id}`: merges the given values into the group. 200, empty.
pub async fn edit(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path((_project, id)): Path<(String, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let req = EditRequest::parse(&body)?;
    let c = load_visible(&state, &ctx, &id).await?;
    ctx.authorize(&state, "configuration:edit", &c.tenant_id)?;
    let items = validated(&state, &c, &req.values.unwrap_or_default()).await?;
    check_guests_if_in_use(&state, &ctx, &id).await?;
    state
        .db()
        .configuration_update_parameters(&id, &items)
        .await?;
    tracing::info!(configuration_id = %id, "configuration group values edited");
    push_to_instances(&state, &ctx, &id).await?;
    Ok(empty(StatusCode::OK))
}

/// `DELETE /configurations/{id}`: 400 while non-deleted instances of the caller's
/// project use it; 202, empty.
pub async fn delete(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path((_project, id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let c = load_visible(&state, &ctx, &id).await?;
    ctx.authorize(&state, "configuration:delete", &c.tenant_id)?;
    if !instances_using(&state, &ctx, &id, false).await?.is_empty() {
        return Err(ApiError::bad_request(
            "A configuration group cannot be deleted if it is associated with one or more \
             non-terminated instances. Detach the configuration group from all \
             non-terminated instances and please try again.",
        ));
    }
    state.db().configuration_delete(&id).await?;
    tracing::info!(configuration_id = %id, "configuration group deleted");
    Ok(empty(StatusCode::ACCEPTED))
}

/// `GET /configurations/{id}/instances`: `{"instances": [{"id", "name"}]}`, paged by id.
pub async fn instances(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path((_project, id)): Path<(String, String)>,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let c = load_visible(&state, &ctx, &id).await?;
    ctx.authorize(&state, "configuration:instances", &c.tenant_id)?;
    let limit = page_size(&params, state.config().default.instances_page_size)?;
    let rows = instances_using(&state, &ctx, &c.id, ctx.is_admin()).await?;
    let (rows, next) = page_of(rows, |i| &i.id, limit, marker(&params));
    let items: Vec<Value> = rows.iter().map(view::instance_item).collect();
    Ok(Json(with_next(&ctx, json!({ "instances": items }), next)))
}
