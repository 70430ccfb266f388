//! The request context of every `/v1.0` call: authentication, the URL project check,
//! `is_admin`, rate limiting, and what handlers need to build links.
//!
//! [`authenticate`] runs before routing for paths under `/v1.0`: it asks the configured
//! [`crate::auth::Authenticator`] who is calling (401 when it cannot tell), checks that the
//! first path segment after `/v1.0` is the caller's project (403 otherwise, admins
//! included, api.md §1.2), decides `is_admin` with the policy rule `context_is_admin`,
//! counts the request against the project's rate limits (413), and stores a
//! [`RequestContext`] that handlers extract.
//!
//! Not here: policy checks of individual calls (handlers call
//! [`RequestContext::authorize`]) and row visibility (handlers load rows and answer 404 for
//! other projects' rows).

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crate::app::AppState;
use crate::auth::AuthRequest;
use crate::error::ApiError;
use crate::middleware::RequestId;
use crate::policy::{Credentials, Target};
use crate::taskmanager::CastContext;

/// Characters escaped in a query value (everything but RFC 3986 unreserved ones).
const QUERY_VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// The URL version prefix of the API.
pub const URL_VERSION: &str = "v1.0";

/// Who is calling and how to build links back; one per `/v1.0` request.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// `req-<uuid>`.
    pub request_id: String,
    /// Caller's credentials (project = the URL project), with `is_admin`.
    pub creds: Credentials,
    /// `Host` header of the request, for links.
    pub host: String,
    /// Path and query of the request, for `next` links.
    pub uri: Uri,
    /// The caller's Keystone token, passed on with casts (`None` without Keystone).
    pub auth_token: Option<crate::auth::UserToken>,
    /// The caller's service catalog, passed on with casts (`None` without Keystone).
    pub service_catalog: Option<Value>,
}

impl RequestContext {
    /// The caller's (and URL's) project.
    pub fn project_id(&self) -> &str {
        &self.creds.project_id
    }

    /// Whether the caller is an administrator.
    pub fn is_admin(&self) -> bool {
        self.creds.is_admin
    }

    /// 401 "User does not have admin privileges." unless the caller is an admin (mgmt).
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(ApiError::not_admin())
        }
    }

    /// Checks policy `rule` against the resource owner `target_project` (use
    /// [`RequestContext::project_id`] for list and create calls).
    pub fn authorize(
        &self,
        state: &AppState,
        rule: &str,
        target_project: &str,
    ) -> Result<(), ApiError> {
        state
            .enforcer()
            .authorize(rule, &self.creds, &Target::tenant(target_project))
            .map_err(ApiError::from)
    }

    /// `https://<Host>/v1.0/<project>/<collection>/<id>`.
    pub fn self_href(&self, collection: &str, id: &str) -> String {
        format!(
            "https://{}/{URL_VERSION}/{}/{collection}/{id}",
            self.host,
            self.project_id()
        )
    }

    /// `https://<Host>/<collection>/<id>`.
    pub fn bookmark_href(&self, collection: &str, id: &str) -> String {
        format!("https://{}/{collection}/{id}", self.host)
    }

    /// The `links` array of a resource (self and bookmark, api.md §1.7).
    pub fn links(&self, collection: &str, id: &str) -> Value {
        json!([
            {"href": self.self_href(collection, id), "rel": "self"},
            {"href": self.bookmark_href(collection, id), "rel": "bookmark"},
        ])
    }

    /// The request URL with `marker` replaced (or added) and `https`, for `next` links.
    pub fn next_href(&self, marker: &str) -> String {
        let path = self.uri.path();
        let mut pairs: Vec<String> = self
            .uri
            .query()
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty())
            .filter(|p| p.split('=').next() != Some("marker"))
            .map(str::to_string)
            .collect();
        let encoded: String =
            percent_encoding::utf8_percent_encode(marker, QUERY_VALUE).to_string();
        pairs.push(format!("marker={encoded}"));
        format!("https://{}{}?{}", self.host, path, pairs.join("&"))
    }

    /// The context of a taskmanager cast made for this request.
    pub fn cast_context(&self) -> CastContext {
        CastContext {
            request_id: self.request_id.clone(),
            project_id: self.creds.project_id.clone(),
            user_id: self.creds.user_id.clone(),
            roles: self.creds.roles.clone(),
            is_admin: self.creds.is_admin,
            auth_token: self.auth_token.clone(),
            service_catalog: self.service_catalog.clone(),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RequestContext {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<RequestContext>()
            .cloned()
            .ok_or_else(|| ApiError::internal("request context missing on a /v1.0 route"))
    }
}

/// Splits `/v1.0/<project>/<rest>` into (project, `/<rest>`); `None` outside `/v1.0`.
pub fn split_v1_path(path: &str) -> Option<(Option<&str>, &str)> {
    let rest = path.strip_prefix("/v1.0")?;
    if !(rest.is_empty() || rest.starts_with('/')) {
        return None;
    }
    let rest = rest.strip_prefix('/').unwrap_or(rest);
    if rest.is_empty() {
        return Some((None, ""));
    }
    match rest.find('/') {
        Some(i) => Some((Some(&rest[..i]), &rest[i..])),
        None => Some((Some(rest), "")),
    }
}

/// Middleware: authentication, project check, `is_admin`, rate limits; see the module doc.
pub async fn authenticate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let Some((url_project, rel_path)) = split_v1_path(&path) else {
        return next.run(req).await;
    };
    if let Err(e) = state.enforcer().reload_if_changed() {
        tracing::error!(error = %e, "policy file could not be reloaded; keeping the previous rules");
    }
    let auth = {
        let request = AuthRequest {
            headers: req.headers(),
            url_project,
        };
        state.authenticator().authenticate(request).await
    };
    let auth = match auth {
        Ok(a) => a,
        Err(e) => {
            tracing::info!(error = %e, "authentication failed");
            return ApiError::from(e).into_response();
        }
    };
    tracing::Span::current().record("project_id", auth.project_id.as_str());
    if url_project != Some(auth.project_id.as_str()) || auth.project_id.is_empty() {
        return ApiError::forbidden(format!(
            "User with tenant id {} cannot access this resource.",
            auth.project_id
        ))
        .into_response();
    }
    let auth_token = auth.token;
    let service_catalog = auth.service_catalog;
    let creds = state
        .enforcer()
        .credentials(auth.project_id, auth.user_id, auth.roles);
    if let Err(limited) = state
        .limiter()
        .check(&creds.project_id, req.method().as_str(), rel_path)
    {
        return ApiError::rate_limited(limited.details, limited.retry_after).into_response();
    }
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| req.uri().authority().map(|a| a.to_string()))
        .unwrap_or_else(|| "localhost".to_string());
    let request_id = req
        .extensions()
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_default();
    let ctx = RequestContext {
        request_id,
        creds,
        host,
        uri: req.uri().clone(),
        auth_token,
        service_catalog,
    };
    req.extensions_mut().insert(ctx);
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_paths() {
        assert_eq!(split_v1_path("/"), None);
        assert_eq!(split_v1_path("/v1.0"), Some((None, "")));
        assert_eq!(split_v1_path("/v1.0/"), Some((None, "")));
        assert_eq!(split_v1_path("/v1.0/p1"), Some((Some("p1"), "")));
        assert_eq!(
            split_v1_path("/v1.0/p1/mgmt/quotas/p1"),
            Some((Some("p1"), "/mgmt/quotas/p1"))
        );
        assert_eq!(split_v1_path("/v1.01/p"), None);
    }
}
