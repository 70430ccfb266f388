//! Root user of an instance (api.md §8): show (from the root history: enabled and not
//! disabled since), enable (guest call; the answer carries the password; the history
//! records who enabled it), disable (guest call, then the history row is closed; 204).
//! Datastores without a root controller answer 501.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use serde_json::Value;
use trove_rpc::api::{GuestRequest, UserModel};

use super::rules::parse_root_password;
use super::{load, rpc_context, Target};
use crate::app::AppState;
use crate::context::RequestContext;
use crate::error::{ApiError, ApiResult};
use crate::extract::OptionalJsonBody;
use crate::middleware::empty;
use crate::views::root::{root_created, root_enabled};

/// 501 unless the datastore has a root controller (`[<manager>] root_controller`).
fn require_root_controller(state: &AppState, t: &Target, operation: &str) -> ApiResult<()> {
    let has = state
        .config()
        .datastore(&t.manager)
        .is_some_and(|d| !d.root_controller.trim().is_empty());
    if has {
        Ok(())
    } else {
        Err(ApiError::not_implemented(format!(
            "The '{operation}' operation is not supported for the '{}' datastore.",
            t.manager
        )))
    }
}

/// Whether root counts as enabled on `id` (a live root history row).
async fn history_enabled(state: &AppState, id: &str) -> ApiResult<bool> {
    Ok(state
        .db()
        .root_history_get(id)
        .await?
        .is_some_and(|h| h.is_live()))
}

/// `GET /instances/{id}/root`: `{"rootEnabled": bool}`.
pub async fn show(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path((_project, id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let t = load(&state, &ctx, &id, "instance:extension:root:index").await?;
    require_root_controller(&state, &t, "show_root")?;
    t.verify_ready(&state).await?;
    Ok(Json(root_enabled(history_enabled(&state, t.id()).await?)))
}

/// `POST /instances/{id}/root`: 200 `{"user": {"name": "root", "password": ...}}`.
pub async fn enable(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path((_project, id)): Path<(String, String)>,
    OptionalJsonBody(body): OptionalJsonBody,
) -> ApiResult<Json<Value>> {
    let password = parse_root_password(body.as_ref())?;
    let t = load(&state, &ctx, &id, "instance:extension:root:create").await?;
    require_root_controller(&state, &t, "enable_root")?;
    t.verify_ready(&state).await?;
    let guest = t.guest(&state)?;
    let rpc = rpc_context(&ctx);
    let raw = match password {
        Some(p) => {
            guest
                .send(
                    &rpc,
                    GuestRequest::EnableRootWithPassword {
                        root_password: Some(p),
                    },
                )
                .await?
        }
        None => guest.send(&rpc, GuestRequest::EnableRoot {}).await?,
    };
    let root: UserModel = serde_json::from_value(raw)
        .map_err(|e| ApiError::internal(format!("unreadable root user from the guest: {e}")))?;
    state
        .db()
        .root_history_record(t.id(), &ctx.creds.user_id)
        .await?;
    tracing::info!(instance_id = %id, "root enabled");
    Ok(Json(root_created(&root.name, root.password.as_deref())))
}

/// `DELETE /instances/{id}/root`: 204, empty; 404 when root was never enabled.
pub async fn disable(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path((_project, id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let t = load(&state, &ctx, &id, "instance:extension:root:delete").await?;
    require_root_controller(&state, &t, "disable_root")?;
    t.verify_ready(&state).await?;
    if !history_enabled(&state, t.id()).await? {
        return Err(ApiError::not_found(
            "Root user has never been enabled on the instance.",
        ));
    }
    let guest = t.guest(&state)?;
    guest
        .send(&rpc_context(&ctx), GuestRequest::DisableRoot {})
        .await?;
    state.db().root_history_disable(t.id()).await?;
    tracing::info!(instance_id = %id, "root disabled");
    Ok(empty(StatusCode::NO_CONTENT))
}
