//! `GET /instances` and `GET /instances/detail` (api.md §4.1, §4.2, §1.6): the caller's
//! project only, paged by id with `limit`/`marker`, each page shown newest first.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::Json;
use serde_json::{json, Value};

use super::{states, view_with_addresses};
use crate::app::AppState;
use crate::context::RequestContext;
use crate::error::{ApiError, ApiResult};
use crate::views::instances::{instance, Detail};

/// The page size: `limit` capped at `instances_page_size` (400 when not a number).
pub fn page_size(params: &HashMap<String, String>, cap: i64) -> ApiResult<usize> {
    let cap = cap.max(1) as usize;
    match params.get("limit").map(|l| l.trim()) {
        None | Some("") => Ok(cap),
        Some(l) => match l.parse::<i64>() {
            Ok(n) if n > 0 => Ok((n as usize).min(cap)),
            _ => Err(ApiError::bad_request(format!(
                "limit param must be an integer greater than zero, got '{l}'."
            ))),
        },
    }
}

async fn list_impl(
    state: AppState,
    ctx: RequestContext,
    params: HashMap<String, String>,
    detail: Detail,
) -> ApiResult<Json<Value>> {
    let rule = if detail == Detail::List {
        "instance:index"
    } else {
        "instance:detail"
    };
    ctx.authorize(&state, rule, ctx.project_id())?;
    let limit = page_size(&params, state.config().default.instances_page_size)?;
    let marker = params
        .get("marker")
        .map(String::as_str)
        .filter(|m| !m.is_empty());
    let include_clustered = params
        .get("include_clustered")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let page = state
        .db()
        .instance_list(ctx.project_id(), limit, marker)
        .await?;
    let mut rows: Vec<_> = page
        .items
        .into_iter()
        .filter(|i| include_clustered || i.cluster_id.is_none())
        .collect();
    rows.sort_by_key(|i| std::cmp::Reverse(i.created));
    let ids: Vec<&str> = rows.iter().map(|i| i.id.as_str()).collect();
    let mut addresses = state.db().instance_addresses_for(&ids).await?;
    let mut items = Vec::with_capacity(rows.len());
    for inst in &rows {
        let st = states(&state, inst).await?;
        let own = addresses.remove(&inst.id).unwrap_or_default();
        let view = view_with_addresses(&state, inst, &st, &own).await?;
        items.push(instance(&ctx, &view, detail, ctx.is_admin()));
    }
    let mut body = json!({ "instances": items });
    if let Some(next) = page.next_marker {
        body["links"] = json!([{"rel": "next", "href": ctx.next_href(&next)}]);
    }
    Ok(Json(body))
}

/// `GET /instances`.
pub async fn list(
    State(state): State<AppState>,
    ctx: RequestContext,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    list_impl(state, ctx, params, Detail::List).await
}

/// `GET /instances/detail`.
pub async fn detail(
    State(state): State<AppState>,
    ctx: RequestContext,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    list_impl(state, ctx, params, Detail::Detail).await
}
