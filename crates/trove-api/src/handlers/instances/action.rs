//! `POST /instances/{id}/action` (api.md §5): restart, resize (flavor or volume) and
//! reset_status, and the replication actions (see [`super::replicas`]). 202, empty.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;
use trove_db::{DbError, ServiceStatus, TaskStatus};

use super::{cast, flavor_dict, load_visible, quota_defaults, states};
use crate::app::AppState;
use crate::context::RequestContext;
use crate::error::{ApiError, ApiResult};
use crate::extract::JsonBody;
use crate::instances::request::Action;
use crate::middleware::empty;

/// Marks the running backups (NEW, BUILDING, SAVING) of an instance FAILED, as
/// reset_status does.
async fn fail_running_backups(state: &AppState, owner: &str, id: &str) -> ApiResult<()> {
    let db = state.db();
    if !db.backup_running_for_instance(id).await? {
        return Ok(());
    }
    let mut marker: Option<String> = None;
    loop {
        let page = db
            .backup_list(owner, Some(id), 500, marker.as_deref())
            .await?;
        for mut b in page.items {
            if trove_db::BACKUP_RUNNING_STATES.contains(&b.state.as_str()) {
                b.state = "FAILED".into();
                db.backup_save(&b).await?;
            }
        }
        match page.next_marker {
            Some(m) => marker = Some(m),
            None => return Ok(()),
        }
    }
}

/// Runs one instance action.
pub async fn action(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path((_project, id)): Path<(String, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let action = Action::parse(&body)?;
    let inst = load_visible(&state, &ctx, &id).await?;
    let owner = inst.tenant_id.clone().unwrap_or_default();
    let db = state.db().clone();
    match action {
        Action::Restart => {
            ctx.authorize(&state, "instance:restart", &owner)?;
            let st = states(&state, &inst).await?;
            st.gate_a(&id)?;
            if inst.cluster_id.is_some() && !ctx.is_admin() {
                return Err(ApiError::not_implemented(
                    "Operation not supported for cluster members.",
                ));
            }
            db.instance_update_task(&id, Some(st.task), TaskStatus::Rebooting)
                .await?;
            db.service_status_update(&id, ServiceStatus::Restarting)
                .await?;
            cast(&state, &ctx, "restart", json!({ "instance_id": id })).await?;
        }
        Action::ResizeFlavor(new_id) => {
            ctx.authorize(&state, "instance:resize_flavor", &owner)?;
            let st = states(&state, &inst).await?;
            st.gate_a(&id)?;
            if inst.cluster_id.is_some() {
                return Err(ApiError::not_implemented(
                    "Operation not supported for cluster members.",
                ));
            }
            let old_id = inst.flavor_id.clone().unwrap_or_default();
            if new_id == old_id {
                return Err(ApiError::bad_request(format!(
                    "The new flavor id must be different than the current flavor id of '{old_id}'."
                )));
            }
            let Some(new) = state.flavors().get(&new_id).await? else {
                return Err(ApiError::bad_request(format!(
                    "Resource {new_id} cannot be found."
                )));
            };
            let old = state.flavors().get(&old_id).await.ok().flatten();
            let old_ram = old.as_ref().map(|f| f.ram).unwrap_or(0);
            let old_dict = old
                .as_ref()
                .map(flavor_dict)
                .unwrap_or_else(|| json!({"id": old_id}));
            db.run_with_quotas(
                &owner,
                &[("ram", new.ram - old_ram)],
                &quota_defaults(&state),
                || async {
                    db.instance_update_task(&id, Some(st.task), TaskStatus::Resizing)
                        .await?;
                    cast(&state, &ctx, "resize_flavor", json!({
                    "instance_id": id, "old_flavor": old_dict, "new_flavor": flavor_dict(&new),
                }))
                .await?;
                    Ok::<(), ApiError>(())
                },
            )
            .await?;
        }
        Action::ResizeVolume(size) => {
            ctx.authorize(&state, "instance:resize_volume", &owner)?;
            if inst.cluster_id.is_some() {
                return Err(ApiError::not_implemented(
                    "Operation not supported for cluster members.",
                ));
            }
            let Some(current) = inst.volume_size.map(i64::from) else {
                return Err(ApiError::bad_request(format!(
                    "Instance {id} has no volume to resize."
                )));
            };
            if size <= current {
                return Err(ApiError::bad_request(format!(
                    "The new volume 'size' must be larger than the current volume size of '{current}'."
                )));
            }
            super::check_volume_size(&state, size)?;
            // The instance and each of its replicas (they keep the same size), each
            // through gate A, in one quota reservation.
            let mut members = vec![(inst.clone(), states(&state, &inst).await?)];
            for r in db.instance_replicas(&id).await? {
                let st = states(&state, &r).await?;
                members.push((r, st));
            }
            let mut delta = 0i32;
            for (m, st) in &members {
                st.gate_a(&m.id)?;
                let from = m.volume_size.map(i64::from).unwrap_or(current);
                delta = delta.saturating_add(i32::try_from(size - from).unwrap_or(i32::MAX).max(0));
            }
            db.run_with_quotas(
                &owner,
                &[("volumes", delta)],
                &quota_defaults(&state),
                || async {
                    for (m, st) in &members {
                        db.instance_update_task(&m.id, Some(st.task), TaskStatus::Resizing)
                            .await?;
                    }
                    for (m, _) in &members {
                        cast(
                            &state,
                            &ctx,
                            "resize_volume",
                            json!({ "instance_id": m.id, "new_size": size }),
                        )
                        .await?;
                    }
                    Ok::<(), ApiError>(())
                },
            )
            .await?;
        }
        Action::ResetStatus { force_delete } => {
            let rule = if force_delete {
                "instance:force_delete"
            } else {
                "instance:reset_status"
            };
            ctx.authorize(&state, rule, &owner)?;
            db.instance_update_task(&id, None, TaskStatus::None).await?;
            match db.service_status_update(&id, ServiceStatus::Unknown).await {
                Ok(()) | Err(DbError::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
            fail_running_backups(&state, &owner, &id).await?;
        }
        Action::PromoteToReplicaSource | Action::EjectReplicaSource => {
            let rule = if action == Action::PromoteToReplicaSource {
                "instance:promote_to_replica_source"
            } else {
                "instance:eject_replica_source"
            };
            ctx.authorize(&state, rule, &owner)?;
            if action == Action::PromoteToReplicaSource {
                super::replicas::promote(&state, &ctx, &inst).await?;
            } else {
                super::replicas::eject(&state, &ctx, &inst).await?;
            }
        }
    }
    tracing::info!(instance_id = %id, "instance action requested");
    Ok(empty(StatusCode::ACCEPTED))
}
