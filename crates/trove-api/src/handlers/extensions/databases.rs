//! Databases of an instance (api.md §6): list (paged by name, reserved names hidden),
//! create (cast, 202), drop (cast, 202); show is always 501.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use serde_json::Value;
use trove_rpc::api::{DatabaseModel, GuestApi};
use trove_rpc::RpcContext;

use super::rules::{check_reserved_db, check_schema_name, parse_databases};
use super::{load, paging, rpc_context, segment};
use crate::app::AppState;
use crate::context::RequestContext;
use crate::error::{ApiError, ApiResult};
use crate::extract::JsonBody;
use crate::middleware::empty;
use crate::views::databases::databases;

/// Whether database `name` exists on the guest (a one-item page starting at it).
pub async fn exists(guest: &GuestApi, rpc: &RpcContext, name: &str) -> ApiResult<bool> {
    let (page, _) = guest
        .list_databases(rpc, Some(1), Some(name.to_string()), true)
        .await?;
    Ok(page.first().is_some_and(|d| d.name == name))
}

/// `GET /instances/{id}/databases`.
pub async fn list(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path((_project, id)): Path<(String, String)>,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let t = load(&state, &ctx, &id, "instance:extension:database:index").await?;
    let (limit, marker) = paging(&params, state.config().default.databases_page_size)?;
    t.verify_ready(&state).await?;
    let guest = t.guest(&state)?;
    let (page, next) = guest
        .list_databases(&rpc_context(&ctx), Some(limit), marker, false)
        .await?;
    let ignored = t.ignored_dbs(&state);
    let shown: Vec<DatabaseModel> = page
        .into_iter()
        .filter(|d| !ignored.contains(&d.name))
        .collect();
    Ok(Json(databases(&shown, next.map(|m| ctx.next_href(&m)))))
}

/// `POST /instances/{id}/databases`: 202, empty.
pub async fn create(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path((_project, id)): Path<(String, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let requested = parse_databases(&body)?;
    let t = load(&state, &ctx, &id, "instance:extension:database:create").await?;
    let reserved = t.ignored_dbs(&state);
    let mut models: Vec<DatabaseModel> = Vec::with_capacity(requested.len());
    for db in requested {
        check_schema_name(&db.name).map_err(ApiError::bad_request)?;
        check_reserved_db(&db.name, &reserved)
            .map_err(|e| ApiError::bad_request(format!("Cannot create database: {e}")))?;
        if models.iter().any(|m| m.name == db.name) {
            return Err(ApiError::bad_request(
                "Two or more databases share the same name in the initial databases list. \
                 Please correct the names or remove the duplicate entries.",
            ));
        }
        models.push(DatabaseModel {
            name: db.name,
            character_set: db.character_set,
            collate: db.collate,
            ..DatabaseModel::default()
        });
    }
    t.verify_ready(&state).await?;
    let guest = t.guest(&state)?;
    let rpc = rpc_context(&ctx);
    for m in &models {
        if exists(&guest, &rpc, &m.name).await? {
            return Err(ApiError::bad_request(format!(
                "A database with the name \"{}\" already exists.",
                m.name
            )));
        }
    }
    guest.create_database(&rpc, &models).await?;
    tracing::info!(instance_id = %id, count = models.len(), "databases create requested");
    Ok(empty(StatusCode::ACCEPTED))
}

/// `DELETE /instances/{id}/databases/{name}`: 202, empty.
pub async fn delete(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path((_project, id, name)): Path<(String, String, String)>,
) -> ApiResult<Response> {
    let t = load(&state, &ctx, &id, "instance:extension:database:delete").await?;
    let name = segment(&name);
    let bad = |e: String| ApiError::bad_request(format!("Database delete error: {e}"));
    check_schema_name(&name).map_err(bad)?;
    check_reserved_db(&name, &t.ignored_dbs(&state))
        .map_err(|e| bad(format!("Cannot delete database: {e}")))?;
    t.verify_ready(&state).await?;
    let guest = t.guest(&state)?;
    let rpc = rpc_context(&ctx);
    if !exists(&guest, &rpc, &name).await? {
        return Err(ApiError::not_found(format!(
            "Database {name} cannot be found on the instance."
        )));
    }
    let model = DatabaseModel {
        name,
        ..DatabaseModel::default()
    };
    guest.delete_database(&rpc, &model).await?;
    tracing::info!(instance_id = %id, "database delete requested");
    Ok(empty(StatusCode::ACCEPTED))
}

/// `GET /instances/{id}/databases/{name}`: the policy is checked, then 501 as in Trove.
pub async fn show(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path((_project, id, _name)): Path<(String, String, String)>,
) -> ApiResult<Response> {
    load(&state, &ctx, &id, "instance:extension:database:show").await?;
    Err(ApiError::not_implemented(
        "This operation is not implemented.",
    ))
}
