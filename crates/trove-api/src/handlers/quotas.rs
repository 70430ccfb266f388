//! `GET` and `PUT /mgmt/quotas/{project}` (api.md §14).

use axum::extract::{Path, State};
use axum::Json;
use serde_json::Value;

use crate::app::AppState;
use crate::context::RequestContext;
use crate::error::{ApiError, ApiResult};
use crate::extract::OptionalJsonBody;
use crate::validation::{envelope, Errors, Path as VPath};
use crate::views::quotas::QuotaLine;
use crate::{quota, views};

/// Shows a project's quotas: own project, or any project for admins (403 otherwise).
pub async fn show(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path((_project, target)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    if target != ctx.project_id() && !ctx.is_admin() {
        return Err(ApiError::forbidden(format!(
            "Operation not allowed for tenant {}.",
            ctx.project_id()
        )));
    }
    let lines: Vec<QuotaLine> = quota::usages(state.db(), state.config(), &target)
        .await?
        .into_iter()
        .map(|u| QuotaLine {
            resource: u.resource,
            in_use: i64::from(u.in_use),
            reserved: i64::from(u.reserved),
            limit: i64::from(u.limit),
        })
        .collect();
    Ok(Json(views::quotas::show(&lines)))
}

/// The validated body of a quota update: `(resource, new limit)` pairs.
pub fn parse_update(body: Option<&Value>) -> Result<Vec<(String, i64)>, ApiError> {
    let Some(body) = body else {
        return Err(ApiError::bad_request("Invalid request body."));
    };
    let quotas = envelope(body, "quotas")?;
    if quotas.is_empty() {
        return Err(ApiError::bad_request("Invalid request body."));
    }
    let mut errs = Errors::new();
    let root = VPath::root("quotas");
    let mut out = Vec::new();
    let mut unknown = Vec::new();
    for (resource, value) in quotas {
        if value.is_null() {
            continue;
        }
        let Some(limit) =
            crate::validation::integer(&mut errs, &root.key(resource), value, None, None)
        else {
            continue;
        };
        if !quota::RESOURCES.contains(&resource.as_str()) {
            unknown.push(resource.clone());
            continue;
        }
        if limit < -1 {
            return Err(ApiError::bad_request(format!(
                "Quota limit '{limit}' for '{resource}' must be greater than or equal to -1."
            )));
        }
        out.push((resource.clone(), limit));
    }
    errs.finish(())?;
    if !unknown.is_empty() {
        return Err(ApiError::not_found(format!(
            "Unknown quota resources {}.",
            trove_db::error::python_list(&unknown)
        )));
    }
    Ok(out)
}

/// Updates a project's quota limits (admins only: 401 otherwise).
pub async fn update(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path((_project, target)): Path<(String, String)>,
    OptionalJsonBody(body): OptionalJsonBody,
) -> ApiResult<Json<Value>> {
    ctx.require_admin()?;
    let changes = parse_update(body.as_ref())?;
    for (resource, limit) in &changes {
        let limit = i32::try_from(*limit).unwrap_or(i32::MAX);
        state.db().quota_set_limit(&target, resource, limit).await?;
    }
    tracing::info!(quota.project = %target, "quota limits updated");
    Ok(Json(views::quotas::updated(&changes)))
}
