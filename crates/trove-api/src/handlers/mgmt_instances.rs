//! `GET /mgmt/instances` and `GET /mgmt/instances/{id}` (api.md §19.1): admins only
//! (401 otherwise), every project, offset paging, most recently updated first.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::Json;
use serde_json::{json, Value};
use trove_db::{DbError, Instance, InstanceAddress, ServiceStatus, TaskStatus};

use crate::app::AppState;
use crate::context::RequestContext;
use crate::error::{ApiError, ApiResult};
use crate::handlers::instances::list::page_size;
use crate::handlers::instances::{states, view_with_addresses};
use crate::views;
use crate::views::instances::Detail;
use crate::views::mgmt_instances::{mgmt_instance, MgmtExtras};

/// `true`/`false` (any case) of a query flag; anything else is "not given".
fn flag(params: &HashMap<String, String>, key: &str) -> Option<bool> {
    match params.get(key).map(|v| v.trim().to_ascii_lowercase()) {
        Some(v) if v == "true" => Some(true),
        Some(v) if v == "false" => Some(false),
        _ => None,
    }
}

/// The integer offset of `marker` (0 when absent; 400 when not a number).
fn offset(params: &HashMap<String, String>) -> ApiResult<usize> {
    match params.get("marker").map(|m| m.trim()) {
        None | Some("") => Ok(0),
        Some(m) => m.parse::<usize>().map_err(|_| {
            ApiError::bad_request(format!(
                "marker param must be an integer offset, got '{m}'."
            ))
        }),
    }
}

async fn render(
    state: &AppState,
    ctx: &RequestContext,
    inst: &Instance,
    addresses: &[InstanceAddress],
    detail: Detail,
) -> ApiResult<Value> {
    let st = states(state, inst).await?;
    let mut view = view_with_addresses(state, inst, &st, addresses).await?;
    if let Some(cid) = &inst.configuration_id {
        if let Ok(group) = state.db().configuration_get(cid).await {
            view.configuration = Some((group.id, group.name));
        }
    }
    let service = st.service.unwrap_or(ServiceStatus::Unknown);
    let extras = MgmtExtras {
        server_status: st.server_status.clone(),
        service_status: service.api_status().to_string(),
        deleted: inst.deleted,
        deleted_at: inst.deleted_at.as_ref().map(views::timestamp),
        task_description: inst
            .task_description
            .clone()
            .unwrap_or_else(|| TaskStatus::None.db_text().to_string()),
        guest_state: service.description().to_string(),
    };
    Ok(mgmt_instance(ctx, &view, &extras, detail))
}

/// `GET /mgmt/instances`: query `project_id`, `deleted`, `include_clustered`, `limit`,
/// `marker` (an offset). Deleted instances are not kept in the listing this repository
/// layer offers, so `deleted=true` answers an empty page.
pub async fn list(
    State(state): State<AppState>,
    ctx: RequestContext,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    ctx.require_admin()?;
    let limit = page_size(&params, state.config().default.instances_page_size)?;
    let start = offset(&params)?;
    let deleted = flag(&params, "deleted");
    let include_clustered = flag(&params, "include_clustered") == Some(true);
    let project = params
        .get("project_id")
        .map(String::as_str)
        .filter(|p| !p.is_empty());
    let mut rows: Vec<Instance> = if deleted == Some(true) {
        Vec::new()
    } else {
        state.db().instance_list_all(usize::MAX).await?
    };
    rows.retain(|i| {
        (include_clustered || i.cluster_id.is_none())
            && project.is_none_or(|p| i.tenant_id.as_deref() == Some(p))
    });
    rows.sort_by(|a, b| b.updated.cmp(&a.updated).then_with(|| a.id.cmp(&b.id)));
    let total = rows.len();
    let page: Vec<&Instance> = rows.iter().skip(start).take(limit).collect();
    let ids: Vec<&str> = page.iter().map(|i| i.id.as_str()).collect();
    let mut addresses = state.db().instance_addresses_for(&ids).await?;
    let mut items = Vec::with_capacity(page.len());
    for inst in page {
        let own = addresses.remove(&inst.id).unwrap_or_default();
        items.push(render(&state, &ctx, inst, &own, Detail::Detail).await?);
    }
    let mut body = json!({ "instances": items });
    let next = start.saturating_add(limit);
    if next < total {
        body["links"] = json!([{"rel": "next", "href": ctx.next_href(&next.to_string())}]);
    }
    Ok(Json(body))
}

/// `GET /mgmt/instances/{id}`: any project; `?deleted=true` also finds deleted ones.
pub async fn show(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path((_project, id)): Path<(String, String)>,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    ctx.require_admin()?;
    tracing::Span::current().record("instance_id", id.as_str());
    let found = if flag(&params, "deleted") == Some(true) {
        state.db().instance_get_any(&id).await
    } else {
        state.db().instance_get(&id).await
    };
    let inst = match found {
        Ok(i) => i,
        Err(DbError::NotFound { .. }) => return Err(ApiError::resource_not_found(&id)),
        Err(e) => return Err(e.into()),
    };
    let addresses = state.db().instance_addresses(&inst.id).await?;
    Ok(Json(
        json!({ "instance": render(&state, &ctx, &inst, &addresses, Detail::Show).await? }),
    ))
}
