//! `PUT` and `PATCH /instances/{id}` (api.md §4.5): rename, attach or detach a
//! configuration group (an empty `instance` detaches); other attributes are refused until
//! their features exist. 202 with an empty body.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;

use super::{configuration, load_visible};
use crate::app::AppState;
use crate::context::RequestContext;
use crate::error::{ApiError, ApiResult};
use crate::extract::JsonBody;
use crate::instances::request::UpdateRequest;
use crate::middleware::empty;

async fn update_impl(
    state: AppState,
    ctx: RequestContext,
    id: String,
    body: serde_json::Value,
    patch: bool,
) -> ApiResult<Response> {
    let req = UpdateRequest::parse(&body, patch)?;
    let inst = load_visible(&state, &ctx, &id).await?;
    ctx.authorize(
        &state,
        "instance:update",
        inst.tenant_id.as_deref().unwrap_or_default(),
    )?;
    if req.others.len() > 1 {
        return Err(ApiError::bad_request(
            "Only one attribute (except 'name') is allowed to update.",
        ));
    }
    if let Some(name) = &req.name {
        state.db().instance_update_name(&id, name).await?;
    }
    match req.others.first().map(String::as_str) {
        None if req.name.is_none() => configuration::detach(&state, &ctx, &inst).await?,
        None => {}
        Some("configuration") => match req.configuration.as_ref().and_then(|c| c.as_str()) {
            Some(cid) => configuration::attach(&state, &ctx, &inst, cid).await?,
            None => configuration::detach(&state, &ctx, &inst).await?,
        },
        Some("replica_of" | "slave_of") => {
            super::replicas::detach(&state, &ctx, &inst).await?;
        }
        Some(other) => {
            return Err(ApiError::not_implemented(format!(
                "Updating '{other}' is not implemented yet."
            )))
        }
    }
    Ok(empty(StatusCode::ACCEPTED))
}

/// `PUT /instances/{id}`.
pub async fn put(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path((_project, id)): Path<(String, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    update_impl(state, ctx, id, body, false).await
}

/// `PATCH /instances/{id}`.
pub async fn patch(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path((_project, id)): Path<(String, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    update_impl(state, ctx, id, body, true).await
}
