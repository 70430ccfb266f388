//! `GET /instances/{id}` (api.md §4.3).

use axum::extract::{Path, State};
use axum::Json;
use serde_json::{json, Value};

use super::{guest_of, load_visible, states, view_of};
use crate::app::AppState;
use crate::context::RequestContext;
use crate::error::ApiResult;
use crate::views::instances::{instance, Detail, InstanceView};

/// Shows one instance (404 for unknown, deleted, or other projects' ids).
pub async fn show(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path((_project, id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let inst = load_visible(&state, &ctx, &id).await?;
    ctx.authorize(
        &state,
        "instance:show",
        inst.tenant_id.as_deref().unwrap_or_default(),
    )?;
    let st = states(&state, &inst).await?;
    let mut view = view_of(&state, &inst, &st).await?;
    if st.status == "ACTIVE" && st.operating_status == "HEALTHY" {
        storage_usage(&state, &ctx, &inst, &mut view).await;
    }
    Ok(Json(
        json!({ "instance": instance(&ctx, &view, Detail::Show, ctx.is_admin()) }),
    ))
}

/// How long a show waits for the guest's filesystem statistics before answering without
/// them (Trove waits `agent_call_low_timeout`; a show should not hang on a slow guest).
const USAGE_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// Adds the guest's `get_filesystem_stats` (`used` in GB, and its share of the total) to the
/// view; any error or a slow guest just leaves them out, as Trove does.
async fn storage_usage(
    state: &AppState,
    ctx: &RequestContext,
    inst: &trove_db::Instance,
    view: &mut InstanceView,
) {
    let Ok(guest) = guest_of(state, inst) else {
        return;
    };
    let rpc = crate::handlers::extensions::rpc_context(ctx);
    let stats = match tokio::time::timeout(USAGE_WAIT, guest.get_filesystem_stats(&rpc)).await {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => {
            tracing::debug!(instance.id = %inst.id, error = %e, "no filesystem statistics from the guest");
            return;
        }
        Err(_) => return,
    };
    let Some(used) = stats.get("used").and_then(Value::as_f64) else {
        return;
    };
    view.storage_used = Some(used);
    view.storage_used_percent = stats
        .get("total")
        .and_then(Value::as_f64)
        .filter(|t| *t > 0.0)
        .map(|total| (used / total * 10_000.0).round() / 100.0);
}
