//! Attaching and detaching a configuration group on an instance (api.md §4.5,
//! internals-workflows.md §6, api-statuses.md gate B), and pushing a group's values to
//! the instances using it.
//!
//! The guest is told first (`update_overrides`); the row then records the group and
//! task RESTART_REQUIRED; when no parameter involved needs a restart the guest applies
//! the values live (`apply_overrides`) and the task goes back to NONE.
//!
//! Not done here: replicas following their primary's group, and applying the
//! template defaults live on detach (the API does not render templates), so a detach
//! of a group with values leaves the instance RESTART_REQUIRED.

use serde_json::{Map, Value};
use trove_db::{Configuration, Instance, TaskStatus};
use trove_rpc::api::GuestRequest;

use super::{guest_of, states};
use crate::app::AppState;
use crate::context::RequestContext;
use crate::error::{ApiError, ApiResult};
use crate::handlers::configurations::{self, values};
use crate::handlers::extensions::rpc_context;

/// A group's values typed by their rules, and whether any of them needs a restart.
pub async fn overrides_of(
    state: &AppState,
    group: &Configuration,
) -> ApiResult<(Map<String, Value>, bool)> {
    let rules = state
        .db()
        .config_params_list(&group.datastore_version_id)
        .await?;
    let mut out = Map::new();
    let mut restart = false;
    for p in state.db().configuration_parameters(&group.id).await? {
        let rule = values::find_rule(&rules, &p.configuration_key);
        restart |= rule.is_some_and(|r| r.restart_required);
        let typed = values::typed_value(
            rule.map(|r| r.data_type.as_str()),
            p.configuration_value.as_deref().unwrap_or(""),
        );
        out.insert(p.configuration_key, typed);
    }
    Ok((out, restart))
}

/// Gate B (400): server ACTIVE and no task.
async fn check_assignable(state: &AppState, inst: &Instance) -> ApiResult<()> {
    let st = states(state, inst).await?;
    let shown = if st.server_status != "ACTIVE" {
        st.server_status.clone()
    } else if st.task != TaskStatus::None {
        st.task.action().to_string()
    } else {
        return Ok(());
    };
    Err(ApiError::bad_request(format!(
        "The operation you have requested cannot be executed because the instance status \
         is currently: {shown}."
    )))
}

/// Records `configuration_id` and task RESTART_REQUIRED on the row.
async fn record(state: &AppState, id: &str, configuration_id: Option<String>) -> ApiResult<()> {
    let mut row = state.db().instance_get(id).await?;
    row.configuration_id = configuration_id;
    row.set_task_status(TaskStatus::RestartRequired);
    state.db().instance_save(&row).await?;
    Ok(())
}

/// Sends `overrides` to the guest of `inst` and, when no restart is needed, applies
/// them and clears the RESTART_REQUIRED task set by `record_first`.
async fn push(
    state: &AppState,
    ctx: &RequestContext,
    inst: &Instance,
    overrides: Map<String, Value>,
    remove: bool,
    restart: bool,
    record_first: Option<Option<String>>,
) -> ApiResult<()> {
    let guest = guest_of(state, inst)?;
    let rctx = rpc_context(ctx);
    guest
        .send(
            &rctx,
            GuestRequest::UpdateOverrides {
                overrides: Value::Object(overrides.clone()),
                remove,
            },
        )
        .await?;
    match record_first {
        Some(cid) => record(state, &inst.id, cid).await?,
        None => {
            state
                .db()
                .instance_update_task(&inst.id, None, TaskStatus::RestartRequired)
                .await?
        }
    }
    if !restart {
        guest
            .send(
                &rctx,
                GuestRequest::ApplyOverrides {
                    overrides: Value::Object(overrides),
                },
            )
            .await?;
        state
            .db()
            .instance_update_task(
                &inst.id,
                Some(TaskStatus::RestartRequired),
                TaskStatus::None,
            )
            .await?;
    }
    Ok(())
}

/// Attaches group `configuration_id` to `inst`: 404 unknown group, 400 other datastore
/// version, 400 a group already attached, 400 gate B.
pub async fn attach(
    state: &AppState,
    ctx: &RequestContext,
    inst: &Instance,
    configuration_id: &str,
) -> ApiResult<()> {
    let group = configurations::load_visible(state, ctx, configuration_id).await?;
    if inst.datastore_version_id.as_deref() != Some(group.datastore_version_id.as_str()) {
        return Err(ApiError::bad_request(format!(
            "Datastore Version on Configuration {configuration_id} does not match the \
             Datastore Version on Instance {}.",
            inst.id
        )));
    }
    if let Some(current) = &inst.configuration_id {
        return Err(ApiError::bad_request(format!(
            "Instance {} already has a Configuration Group attached: {current}.",
            inst.id
        )));
    }
    check_assignable(state, inst).await?;
    let (overrides, restart) = overrides_of(state, &group).await?;
    push(
        state,
        ctx,
        inst,
        overrides,
        false,
        restart,
        Some(Some(group.id.clone())),
    )
    .await?;
    tracing::info!(instance_id = %inst.id, configuration_id = %group.id, "configuration group attached");
    Ok(())
}

/// Detaches the group of `inst` (nothing to do without one); 400 gate B.
pub async fn detach(state: &AppState, ctx: &RequestContext, inst: &Instance) -> ApiResult<()> {
    let Some(current) = inst.configuration_id.clone() else {
        return Ok(());
    };
    check_assignable(state, inst).await?;
    let had_values = match state.db().configuration_get(&current).await {
        Ok(group) => !overrides_of(state, &group).await?.0.is_empty(),
        Err(trove_db::DbError::NotFound { .. }) => false,
        Err(e) => return Err(e.into()),
    };
    push(state, ctx, inst, Map::new(), true, had_values, Some(None)).await?;
    tracing::info!(instance_id = %inst.id, configuration_id = %current, "configuration group detached");
    Ok(())
}

/// Pushes the current values of `group` to `inst`, which uses it.
pub async fn refresh(
    state: &AppState,
    ctx: &RequestContext,
    inst: &Instance,
    group: &Configuration,
) -> ApiResult<()> {
    let (overrides, restart) = overrides_of(state, group).await?;
    push(state, ctx, inst, overrides, false, restart, None).await
}
