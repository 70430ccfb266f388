//! Users of an instance (api.md §7): list (paged by `name@host`, reserved names hidden),
//! create, show, update (name/host/password), change passwords, delete, and the user's
//! database access (list, grant, revoke). Reads are guest calls; changes are casts
//! answered 202.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use serde_json::{json, Value};
use trove_rpc::api::{DatabaseModel, GuestApi, GuestRequest, UserModel};
use trove_rpc::RpcContext;

use super::rules::{
    check_host, check_password, check_reserved_user, check_schema_name, check_user_name,
    parse_database_refs, parse_user_attrs, parse_users,
};
use super::{load, paging, rpc_context, segment, user_and_host, Target};
use crate::app::AppState;
use crate::context::RequestContext;
use crate::error::{ApiError, ApiResult};
use crate::extract::JsonBody;
use crate::middleware::empty;
use crate::views::databases::databases;
use crate::views::users::{user_show, users};

fn not_found(name: &str, host: &str) -> ApiError {
    ApiError::not_found(format!(
        "User {name}@{host} cannot be found on the instance."
    ))
}

/// Checks a (name, host) pair with the model rules; `prefix` names the failing call.
fn check_identity(state: &AppState, prefix: &str, name: &str, host: &str) -> ApiResult<()> {
    let require_ip = state.config().default.hostname_require_valid_ip;
    check_user_name(name)
        .and_then(|()| check_host(host, require_ip))
        .map_err(|e| ApiError::bad_request(format!("{prefix}: {e}")))
}

/// The user `name@host` as the guest has it (`None` when absent).
async fn get_user(
    guest: &GuestApi,
    rpc: &RpcContext,
    name: &str,
    host: &str,
) -> ApiResult<Option<UserModel>> {
    let v = guest
        .send(
            rpc,
            GuestRequest::GetUser {
                username: name.into(),
                hostname: Some(host.into()),
            },
        )
        .await?;
    if v.is_null() {
        return Ok(None);
    }
    serde_json::from_value(v)
        .map(Some)
        .map_err(|e| ApiError::internal(format!("unreadable user from the guest: {e}")))
}

/// Whether `name@host` exists (a one-item page of `list_users` starting at it).
async fn user_exists(
    guest: &GuestApi,
    rpc: &RpcContext,
    name: &str,
    host: &str,
) -> ApiResult<bool> {
    let (page, _) = guest
        .list_users(rpc, Some(1), Some(format!("{name}@{host}")), true)
        .await?;
    Ok(page
        .first()
        .is_some_and(|u| u.name == name && u.host.as_deref().unwrap_or("%") == host))
}

/// Loads the instance, applies the gate, and finds `{user}` (404 when absent).
async fn found_user(
    state: &AppState,
    ctx: &RequestContext,
    id: &str,
    rule: &str,
    raw_user: &str,
    prefix: &str,
) -> ApiResult<(Target, GuestApi, UserModel)> {
    let t = load(state, ctx, id, rule).await?;
    let (name, host) = user_and_host(raw_user);
    check_identity(state, prefix, &name, &host)?;
    t.verify_ready(state).await?;
    let guest = t.guest(state)?;
    match get_user(&guest, &rpc_context(ctx), &name, &host).await? {
        Some(u) => Ok((t, guest, u)),
        None => Err(not_found(&name, &host)),
    }
}

/// `GET /instances/{id}/users`.
pub async fn list(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path((_project, id)): Path<(String, String)>,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let t = load(&state, &ctx, &id, "instance:extension:user:index").await?;
    let (limit, marker) = paging(&params, state.config().default.users_page_size)?;
    t.verify_ready(&state).await?;
    let guest = t.guest(&state)?;
    let (page, next) = guest
        .list_users(&rpc_context(&ctx), Some(limit), marker, false)
        .await?;
    let ignored = t.ignored_users(&state);
    let shown: Vec<UserModel> = page
        .into_iter()
        .filter(|u| !ignored.contains(&u.name))
        .collect();
    Ok(Json(users(&shown, next.map(|m| ctx.next_href(&m)))))
}

/// `POST /instances/{id}/users`: 202, empty; the listed databases are granted.
pub async fn create(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path((_project, id)): Path<(String, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let requested = parse_users(&body)?;
    let t = load(&state, &ctx, &id, "instance:extension:user:create").await?;
    let reserved = t.ignored_users(&state);
    let bad = |e: String| ApiError::bad_request(format!("User create error: {e}"));
    let mut models: Vec<UserModel> = Vec::with_capacity(requested.len());
    for u in requested {
        let host = u.host.clone().unwrap_or_else(|| "%".into());
        check_identity(&state, "User create error", &u.name, &host)?;
        check_password(&u.password).map_err(bad)?;
        for db in &u.databases {
            check_schema_name(db).map_err(bad)?;
        }
        check_reserved_user(&u.name, &reserved)
            .map_err(|e| bad(format!("Cannot create user: {e}")))?;
        if models
            .iter()
            .any(|m| m.name == u.name && m.host.as_deref() == Some(host.as_str()))
        {
            return Err(ApiError::bad_request(
                "Two or more users share the same name and host in the initial users list. \
                 Please correct the names or remove the duplicate entries.",
            ));
        }
        models.push(UserModel {
            name: u.name,
            password: Some(u.password),
            host: Some(host),
            databases: u
                .databases
                .into_iter()
                .map(|name| DatabaseModel {
                    name,
                    ..DatabaseModel::default()
                })
                .collect(),
            ..UserModel::default()
        });
    }
    t.verify_ready(&state).await?;
    let guest = t.guest(&state)?;
    let rpc = rpc_context(&ctx);
    for m in &models {
        let host = m.host.as_deref().unwrap_or("%");
        if user_exists(&guest, &rpc, &m.name, host).await? {
            return Err(ApiError::bad_request(format!(
                "A user with the name \"{}\" already exists.",
                m.name
            )));
        }
    }
    guest.create_user(&rpc, &models).await?;
    tracing::info!(instance_id = %id, count = models.len(), "users create requested");
    Ok(empty(StatusCode::ACCEPTED))
}

/// `GET /instances/{id}/users/{user}`.
pub async fn show(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path((_project, id, user)): Path<(String, String, String)>,
) -> ApiResult<Json<Value>> {
    let (_, _, u) = found_user(
        &state,
        &ctx,
        &id,
        "instance:extension:user:show",
        &user,
        "User show error",
    )
    .await?;
    Ok(Json(user_show(&u)))
}

/// `PUT /instances/{id}/users/{user}`: new name, host and/or password; 202, empty.
pub async fn update(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path((_project, id, user)): Path<(String, String, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let attrs = parse_user_attrs(&body)?;
    let (t, guest, found) = found_user(
        &state,
        &ctx,
        &id,
        "instance:extension:user:update",
        &user,
        "Error loading user",
    )
    .await?;
    let old_host = found.host.clone().unwrap_or_else(|| "%".into());
    let new_name = attrs.name.clone().unwrap_or_else(|| found.name.clone());
    let new_host = attrs.host.clone().unwrap_or_else(|| old_host.clone());
    check_identity(&state, "User update error", &new_name, &new_host)?;
    let bad = |e: String| ApiError::bad_request(format!("User update error: {e}"));
    if let Some(p) = &attrs.password {
        check_password(p).map_err(bad)?;
    }
    if attrs.name.is_some() {
        check_reserved_user(&new_name, &t.ignored_users(&state))
            .map_err(|e| bad(format!("Cannot update user: {e}")))?;
    }
    let rpc = rpc_context(&ctx);
    let moved = (attrs.name.is_some() || attrs.host.is_some())
        && (new_name != found.name || new_host != old_host);
    if moved && user_exists(&guest, &rpc, &new_name, &new_host).await? {
        return Err(ApiError::bad_request(format!(
            "A user with the name \"{new_name}\" already exists."
        )));
    }
    let mut user_attrs = serde_json::Map::new();
    for (k, v) in [
        ("name", &attrs.name),
        ("host", &attrs.host),
        ("password", &attrs.password),
    ] {
        if let Some(v) = v {
            user_attrs.insert(k.into(), json!(v));
        }
    }
    guest
        .send(
            &rpc,
            GuestRequest::UpdateAttributes {
                username: found.name.clone(),
                hostname: Some(old_host),
                user_attrs: Value::Object(user_attrs),
            },
        )
        .await?;
    tracing::info!(instance_id = %id, "user update requested");
    Ok(empty(StatusCode::ACCEPTED))
}

/// `PUT /instances/{id}/users`: change passwords; 202, empty (404 if any user is absent).
pub async fn update_all(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path((_project, id)): Path<(String, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let requested = parse_users(&body)?;
    let t = load(&state, &ctx, &id, "instance:extension:user:update_all").await?;
    for u in &requested {
        let host = u.host.as_deref().unwrap_or("%");
        check_identity(&state, "Error loading user", &u.name, host)?;
        check_password(&u.password)
            .map_err(|e| ApiError::bad_request(format!("Error loading user: {e}")))?;
    }
    t.verify_ready(&state).await?;
    let guest = t.guest(&state)?;
    let rpc = rpc_context(&ctx);
    let mut changes = Vec::with_capacity(requested.len());
    for u in &requested {
        let host = u.host.as_deref().unwrap_or("%");
        if get_user(&guest, &rpc, &u.name, host).await?.is_none() {
            let who = match &u.host {
                Some(h) => format!("{}@{h}", u.name),
                None => u.name.clone(),
            };
            return Err(ApiError::not_found(format!(
                "User {who} cannot be found on the instance."
            )));
        }
        changes.push(json!({"name": u.name, "host": host, "password": u.password}));
    }
    guest
        .send(&rpc, GuestRequest::ChangePasswords { users: changes })
        .await?;
    tracing::info!(instance_id = %id, count = requested.len(), "password change requested");
    Ok(empty(StatusCode::ACCEPTED))
}

/// `DELETE /instances/{id}/users/{user}`: 202, empty.
pub async fn delete(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path((_project, id, user)): Path<(String, String, String)>,
) -> ApiResult<Response> {
    let t = load(&state, &ctx, &id, "instance:extension:user:delete").await?;
    let (name, host) = user_and_host(&user);
    check_identity(&state, "User delete error", &name, &host)?;
    check_reserved_user(&name, &t.ignored_users(&state)).map_err(|e| {
        ApiError::bad_request(format!("User delete error: Cannot delete user: {e}"))
    })?;
    t.verify_ready(&state).await?;
    let guest = t.guest(&state)?;
    let rpc = rpc_context(&ctx);
    let Some(found) = get_user(&guest, &rpc, &name, &host).await? else {
        return Err(not_found(&name, &host));
    };
    let model = UserModel {
        name: found.name,
        host: Some(host),
        ..UserModel::default()
    };
    guest.delete_user(&rpc, &model).await?;
    tracing::info!(instance_id = %id, "user delete requested");
    Ok(empty(StatusCode::ACCEPTED))
}

async fn access_list(
    guest: &GuestApi,
    rpc: &RpcContext,
    name: &str,
    host: &str,
) -> ApiResult<Vec<DatabaseModel>> {
    let v = guest
        .send(
            rpc,
            GuestRequest::ListAccess {
                username: name.into(),
                hostname: Some(host.into()),
            },
        )
        .await?;
    if v.is_null() {
        return Ok(Vec::new());
    }
    serde_json::from_value(v)
        .map_err(|e| ApiError::internal(format!("unreadable access list from the guest: {e}")))
}

/// `GET /instances/{id}/users/{user}/databases`.
pub async fn access(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path((_project, id, user)): Path<(String, String, String)>,
) -> ApiResult<Json<Value>> {
    let (_, guest, found) = found_user(
        &state,
        &ctx,
        &id,
        "instance:extension:user_access:index",
        &user,
        "Error loading user",
    )
    .await?;
    let host = found.host.as_deref().unwrap_or("%");
    let dbs = access_list(&guest, &rpc_context(&ctx), &found.name, host).await?;
    Ok(Json(databases(&dbs, None)))
}

/// `PUT /instances/{id}/users/{user}/databases`: grant access; 202, empty.
pub async fn grant(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path((_project, id, user)): Path<(String, String, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let names = parse_database_refs(&body)?;
    let (_, guest, found) = found_user(
        &state,
        &ctx,
        &id,
        "instance:extension:user_access:update",
        &user,
        "Error loading user",
    )
    .await?;
    let host = found.host.clone().unwrap_or_else(|| "%".into());
    guest
        .grant_access(&rpc_context(&ctx), &found.name, Some(&host), names)
        .await?;
    tracing::info!(instance_id = %id, "access grant requested");
    Ok(empty(StatusCode::ACCEPTED))
}

/// `DELETE /instances/{id}/users/{user}/databases/{db}`: revoke access; 202, empty
/// (404 when the user has no access to `{db}`).
pub async fn revoke(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path((_project, id, user, db)): Path<(String, String, String, String)>,
) -> ApiResult<Response> {
    let (_, guest, found) = found_user(
        &state,
        &ctx,
        &id,
        "instance:extension:user_access:delete",
        &user,
        "Error loading user",
    )
    .await?;
    let db = segment(&db);
    let host = found.host.clone().unwrap_or_else(|| "%".into());
    let rpc = rpc_context(&ctx);
    let current = access_list(&guest, &rpc, &found.name, &host).await?;
    if !current.iter().any(|d| d.name == db) {
        return Err(ApiError::not_found(format!(
            "Database {db} cannot be found on the instance."
        )));
    }
    guest
        .send(
            &rpc,
            GuestRequest::RevokeAccess {
                username: found.name.clone(),
                hostname: Some(host),
                database: db,
            },
        )
        .await?;
    tracing::info!(instance_id = %id, "access revoke requested");
    Ok(empty(StatusCode::ACCEPTED))
}
