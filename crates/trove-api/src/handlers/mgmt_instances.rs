//! Management of instances (api.md §19.1-§19.3), admins only (401 otherwise):
//! - [`list`] and [`show`]: `GET /mgmt/instances[/{id}]`, every project, offset paging,
//!   most recently updated first;
//! - [`action`]: `POST /mgmt/instances/{id}/action` (`stop`, `reboot`,
//!   `reset-task-status`; `migrate` and `rebuild` are validated and then refused with 501,
//!   since the local compute driver can neither migrate nor rebuild a server);
//! - [`root`]: the root history; [`diagnostics`], [`hwinfo`] and [`rpc_ping`]: calls to
//!   the instance's guest agent.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use serde_json::{json, Map, Value};
use trove_db::{DbError, Instance, InstanceAddress, ServiceStatus, TaskStatus};
use trove_rpc::api::GuestRequest;

use crate::app::AppState;
use crate::context::RequestContext;
use crate::error::{ApiError, ApiResult};
use crate::extract::JsonBody;
use crate::handlers::instances::{cast, guest_of, states, view_with_addresses};
use crate::middleware::empty;
use crate::validation::{is_uuid, non_empty_string, Errors, Path as JsonPath};
use crate::views;
use crate::views::instances::Detail;
use crate::views::mgmt_instances::{self as mgmt_views, mgmt_instance, MgmtExtras};

/// `true`/`false` (any case) of a query flag; anything else is "not given".
fn flag(params: &HashMap<String, String>, key: &str) -> Option<bool> {
    match params.get(key).map(|v| v.trim().to_ascii_lowercase()) {
        Some(v) if v == "true" => Some(true),
        Some(v) if v == "false" => Some(false),
        _ => None,
    }
}

/// The page size of the management list: `limit` as given (this list does not cap it, as
/// Trove does not), else `default` (400 when not a positive integer).
fn mgmt_page_size(params: &HashMap<String, String>, default: i64) -> ApiResult<usize> {
    match params.get("limit").map(|l| l.trim()) {
        None | Some("") => Ok(default.max(1) as usize),
        Some(l) => match l.parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(ApiError::bad_request(format!(
                "limit param must be an integer greater than zero, got '{l}'."
            ))),
        },
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
    let view = view_with_addresses(state, inst, &st, addresses).await?;
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

/// `GET /mgmt/instances`: query `project_id`, `deleted` (`true`: only deleted instances;
/// `false` or absent: only live ones), `include_clustered`, `limit` (not capped), `marker`
/// (an offset).
pub async fn list(
    State(state): State<AppState>,
    ctx: RequestContext,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    ctx.require_admin()?;
    let limit = mgmt_page_size(&params, state.config().default.instances_page_size)?;
    let start = offset(&params)?;
    let deleted = flag(&params, "deleted").unwrap_or(false);
    let include_clustered = flag(&params, "include_clustered") == Some(true);
    let project = params
        .get("project_id")
        .map(String::as_str)
        .filter(|p| !p.is_empty());
    let page = state
        .db()
        .instance_list_admin(Some(deleted), project, include_clustered, limit, start)
        .await?;
    let ids: Vec<&str> = page.items.iter().map(|i| i.id.as_str()).collect();
    let mut addresses = state.db().instance_addresses_for(&ids).await?;
    let mut items = Vec::with_capacity(page.items.len());
    for inst in &page.items {
        let own = addresses.remove(&inst.id).unwrap_or_default();
        items.push(render(&state, &ctx, inst, &own, Detail::Detail).await?);
    }
    let mut body = json!({ "instances": items });
    if let Some(next) = &page.next_marker {
        body["links"] = json!([{"rel": "next", "href": ctx.next_href(next)}]);
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

/// One management action (api.md §19.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MgmtAction {
    /// `{"stop": {}}`: stop the database process (guest `stop_db`).
    Stop,
    /// `{"reboot": {}}`: reboot the server (taskmanager `reboot`).
    Reboot,
    /// `{"reset-task-status": {}}`: clear the task and fail running backups.
    ResetTaskStatus,
    /// `{"migrate": {"host"?: ...}}`: move the server to another host.
    Migrate {
        /// The target host, when named.
        host: Option<String>,
    },
    /// `{"rebuild": {"image_id": ...}}`: rebuild the server from an image.
    Rebuild {
        /// The image to rebuild from.
        image_id: String,
    },
}

impl MgmtAction {
    /// Parses an action body: one known key (several keys, an unknown key or an empty
    /// body: 400 `badRequest`), then the action's own arguments (400 in the validation
    /// format).
    pub fn parse(body: &Value) -> ApiResult<MgmtAction> {
        const KNOWN: [&str; 5] = ["stop", "reboot", "reset-task-status", "migrate", "rebuild"];
        let Some(obj) = body.as_object() else {
            return Err(ApiError::bad_request("Invalid request body."));
        };
        if let Some(unknown) = obj.keys().find(|k| !KNOWN.contains(&k.as_str())) {
            return Err(ApiError::bad_request(format!(
                "Invalid instance action: {unknown}"
            )));
        }
        let mut keys = obj.iter();
        let Some((key, value)) = keys.next() else {
            return Err(ApiError::bad_request("Invalid request body."));
        };
        if keys.next().is_some() {
            return Err(ApiError::bad_request(
                "Only one action can be specified per request.",
            ));
        }
        let mut errs = Errors::new();
        let p = JsonPath::root(key);
        let empty_args = Map::new();
        let inner = match value {
            Value::Object(o) => o,
            // Trove's actions take `{}`, but an absent argument object is tolerated.
            Value::Null => &empty_args,
            other => {
                errs.wrong_type(&p, other, &["object"]);
                return Err(errs.finish(()).unwrap_err().into());
            }
        };
        let action = match key.as_str() {
            "stop" => MgmtAction::Stop,
            "reboot" => MgmtAction::Reboot,
            "reset-task-status" => MgmtAction::ResetTaskStatus,
            "migrate" => {
                crate::validation::no_additional(&mut errs, &p, inner, &["host"]);
                let host = match inner.get("host") {
                    None | Some(Value::Null) => None,
                    Some(h) => non_empty_string(&mut errs, &p.key("host"), h),
                };
                MgmtAction::Migrate { host }
            }
            _ => {
                crate::validation::no_additional(&mut errs, &p, inner, &["image_id"]);
                let image_id = match inner.get("image_id") {
                    None => {
                        errs.required(&p, "image_id");
                        String::new()
                    }
                    Some(v) => {
                        let s = non_empty_string(&mut errs, &p.key("image_id"), v);
                        match s {
                            Some(s) if is_uuid(&s) => s,
                            Some(s) => {
                                errs.add(
                                    &p.key("image_id"),
                                    format!("'{s}' does not match the uuid format"),
                                );
                                s
                            }
                            None => String::new(),
                        }
                    }
                };
                MgmtAction::Rebuild { image_id }
            }
        };
        Ok(errs.finish(action)?)
    }
}

/// A live instance of any project (404 "Resource <id> cannot be found." otherwise).
async fn load_any_project(state: &AppState, id: &str) -> ApiResult<Instance> {
    tracing::Span::current().record("instance_id", id);
    match state.db().instance_get(id).await {
        Ok(i) => Ok(i),
        Err(DbError::NotFound { .. }) => Err(ApiError::resource_not_found(id)),
        Err(e) => Err(e.into()),
    }
}

/// The state gate of instance actions (422 when the instance is busy or broken).
async fn gate(state: &AppState, inst: &Instance) -> ApiResult<TaskStatus> {
    let st = states(state, inst).await?;
    st.gate_a(&inst.id)?;
    Ok(st.task)
}

/// Marks every running backup (NEW, BUILDING, SAVING) of an instance FAILED, as resetting
/// an instance's status does (internals-workflows.md §10).
async fn fail_running_backups(state: &AppState, inst: &Instance) -> ApiResult<()> {
    let db = state.db();
    if !db.backup_running_for_instance(&inst.id).await? {
        return Ok(());
    }
    let owner = inst.tenant_id.clone().unwrap_or_default();
    let mut marker: Option<String> = None;
    loop {
        let page = db
            .backup_list(&owner, Some(&inst.id), 500, marker.as_deref())
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

/// `POST /mgmt/instances/{id}/action`: 202, empty.
pub async fn action(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path((_project, id)): Path<(String, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    ctx.require_admin()?;
    let action = MgmtAction::parse(&body)?;
    let inst = load_any_project(&state, &id).await?;
    let db = state.db();
    match &action {
        MgmtAction::Stop => {
            let guest = guest_of(&state, &inst)?;
            guest
                .stop_db(&crate::handlers::extensions::rpc_context(&ctx))
                .await?;
        }
        MgmtAction::Reboot => {
            let task = gate(&state, &inst).await?;
            db.instance_update_task(&id, Some(task), TaskStatus::Rebooting)
                .await?;
            match db
                .service_status_update(&id, ServiceStatus::Restarting)
                .await
            {
                Ok(()) | Err(DbError::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
            cast(&state, &ctx, "reboot", json!({ "instance_id": id })).await?;
        }
        MgmtAction::ResetTaskStatus => {
            db.instance_update_task(&id, None, TaskStatus::None).await?;
            fail_running_backups(&state, &inst).await?;
        }
        MgmtAction::Migrate { .. } => {
            gate(&state, &inst).await?;
            return Err(ApiError::not_implemented(
                "The compute driver of this deployment (local) cannot migrate servers.",
            ));
        }
        MgmtAction::Rebuild { .. } => {
            return Err(ApiError::not_implemented(
                "The compute driver of this deployment (local) cannot rebuild servers.",
            ));
        }
    }
    tracing::info!(instance_id = %id, action = ?action, "management action requested");
    Ok(empty(StatusCode::ACCEPTED))
}

/// `GET /mgmt/instances/{id}/root`: when and by whom root was enabled.
pub async fn root(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path((_project, id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    ctx.require_admin()?;
    let inst = load_any_project(&state, &id).await?;
    let enabled = state.db().root_history_get(&inst.id).await?.map(|h| {
        (
            h.created
                .as_ref()
                .map(views::timestamp)
                .unwrap_or_else(|| "Unknown".into()),
            h.user.unwrap_or_else(|| "Nobody".into()),
        )
    });
    Ok(Json(mgmt_views::root_history(&inst.id, enabled)))
}

/// Sends one request to the instance's guest and returns its answer.
async fn ask_guest(
    state: &AppState,
    ctx: &RequestContext,
    id: &str,
    req: GuestRequest,
) -> ApiResult<Value> {
    let inst = load_any_project(state, id).await?;
    let guest = guest_of(state, &inst)?;
    Ok(guest
        .send(&crate::handlers::extensions::rpc_context(ctx), req)
        .await?)
}

/// `GET /mgmt/instances/{id}/diagnostics`: the guest agent process's figures.
pub async fn diagnostics(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path((_project, id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    ctx.require_admin()?;
    let answer = ask_guest(&state, &ctx, &id, GuestRequest::GetDiagnostics {}).await?;
    Ok(Json(mgmt_views::diagnostics(&answer)))
}

/// `GET /mgmt/instances/{id}/hwinfo`: the guest host's memory and CPUs.
pub async fn hwinfo(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path((_project, id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    ctx.require_admin()?;
    let answer = ask_guest(&state, &ctx, &id, GuestRequest::GetHwinfo {}).await?;
    Ok(Json(mgmt_views::hwinfo(&answer)))
}

/// `GET /mgmt/instances/{id}/rpc_ping`: 204 when the guest answers.
pub async fn rpc_ping(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path((_project, id)): Path<(String, String)>,
) -> ApiResult<Response> {
    ctx.require_admin()?;
    ask_guest(&state, &ctx, &id, GuestRequest::RpcPing {}).await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(body: Value) -> (u16, String) {
        let e = MgmtAction::parse(&body).unwrap_err();
        (e.status().as_u16(), e.message().to_string())
    }

    #[test]
    fn action_bodies() {
        assert_eq!(
            MgmtAction::parse(&json!({"stop": {}})).unwrap(),
            MgmtAction::Stop
        );
        assert_eq!(
            MgmtAction::parse(&json!({"reboot": {}})).unwrap(),
            MgmtAction::Reboot
        );
        assert_eq!(
            MgmtAction::parse(&json!({"reset-task-status": {}})).unwrap(),
            MgmtAction::ResetTaskStatus
        );
        assert_eq!(
            MgmtAction::parse(&json!({"migrate": {}})).unwrap(),
            MgmtAction::Migrate { host: None }
        );
        assert_eq!(
            MgmtAction::parse(&json!({"migrate": {"host": "compute-2"}})).unwrap(),
            MgmtAction::Migrate {
                host: Some("compute-2".into())
            }
        );
        let image = "8d8a3f2e-1b7c-4b8e-9b59-0c6f3f1a2b3c";
        assert_eq!(
            MgmtAction::parse(&json!({"rebuild": {"image_id": image}})).unwrap(),
            MgmtAction::Rebuild {
                image_id: image.into()
            }
        );
        assert_eq!(
            msg(json!({"stop": {}, "reboot": {}})),
            (400, "Only one action can be specified per request.".into())
        );
        assert_eq!(
            msg(json!({"explode": {}})),
            (400, "Invalid instance action: explode".into())
        );
        assert_eq!(msg(json!({})), (400, "Invalid request body.".into()));
        assert_eq!(msg(json!([1])), (400, "Invalid request body.".into()));
        for bad in [
            json!({"rebuild": {}}),
            json!({"rebuild": {"image_id": "not-a-uuid"}}),
            json!({"rebuild": {"image_id": image, "flavor": "2"}}),
            json!({"migrate": {"host": ""}}),
            json!({"migrate": {"hots": "x"}}),
            json!({"reboot": "now"}),
        ] {
            let (status, m) = msg(bad.clone());
            assert_eq!(status, 400, "{bad}");
            assert!(m.starts_with("Validation error"), "{bad}: {m}");
        }
    }
}
