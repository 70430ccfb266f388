//! `DELETE /instances/{id}` (api.md §4.6): gate E, task DELETING, cast
//! `delete_instance`, quota released; 202 with an empty body.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;
use trove_db::TaskStatus;

use super::{cast, load_visible, quota_defaults, states};
use crate::app::AppState;
use crate::context::RequestContext;
use crate::error::{ApiError, ApiResult};
use crate::instances::status::check_deletable;
use crate::middleware::empty;

/// Deletes an instance.
pub async fn delete(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path((_project, id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let inst = load_visible(&state, &ctx, &id).await?;
    let owner = inst.tenant_id.clone().unwrap_or_default();
    ctx.authorize(&state, "instance:delete", &owner)?;
    let st = states(&state, &inst).await?;
    check_deletable(&id, &st.status).map_err(ApiError::unprocessable)?;
    if inst.cluster_id.is_some() {
        return Err(ApiError::not_implemented(
            "Cluster members must be deleted through their cluster.",
        ));
    }
    if !state.db().instance_replicas(&id).await?.is_empty() {
        return Err(ApiError::forbidden(
            "Detach replicas before deleting replica source.",
        ));
    }
    let ram = match &inst.flavor_id {
        Some(f) => state.flavors().get(f).await?.map_or(0, |fl| fl.ram),
        None => 0,
    };
    let deltas = [
        ("instances", -1),
        ("ram", -ram),
        ("volumes", -inst.volume_size.unwrap_or(0)),
    ];
    let db = state.db().clone();
    db.run_with_quotas(&owner, &deltas, &quota_defaults(&state), || async {
        db.instance_update_task(&id, None, TaskStatus::Deleting)
            .await?;
        cast(
            &state,
            &ctx,
            "delete_instance",
            json!({ "instance_id": id }),
        )
        .await?;
        Ok::<(), ApiError>(())
    })
    .await?;
    tracing::info!(instance_id = %id, "instance delete requested");
    Ok(empty(StatusCode::ACCEPTED))
}
