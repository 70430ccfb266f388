//! Databases, users, user access and root of an instance (api.md §6-§8), served by the
//! instance's guest agent over RPC:
//! - [`databases`]: `GET`/`POST /instances/{id}/databases`, `DELETE .../{name}`;
//! - [`users`]: users, passwords and grants under `/instances/{id}/users`;
//! - [`root`]: `GET`/`POST`/`DELETE /instances/{id}/root`.
//!
//! Shared here, in the order every call applies it: load the instance the caller may see
//! (404), check the policy rule on its project (403), and, once the request is known to be
//! valid, the "database service ready" gate (api-statuses.md Gate C, 422): a datastore
//! manager with users and databases (`mysql`, `mariadb`, `postgresql`) and a guest that
//! reports running or healthy. Then a [`GuestApi`] for the instance, keyed with its
//! decrypted per-instance key.
//!
//! Name rules (the MySQL model rules Trove's API applies to every datastore) live in
//! [`rules`].

pub mod databases;
pub mod root;
pub mod rules;
pub mod users;

use std::collections::HashMap;

use trove_db::{DbError, Instance, ServiceStatus};
use trove_rpc::api::GuestApi;
use trove_rpc::RpcContext;

use crate::app::AppState;
use crate::context::RequestContext;
use crate::error::{ApiError, ApiResult};
use crate::handlers::instances::load_visible;

/// Datastore managers whose instances have databases, users and root.
pub const SUPPORTED_MANAGERS: &[&str] = &["mysql", "mariadb", "postgresql"];

/// An instance loaded for one of these calls.
#[derive(Debug, Clone)]
pub struct Target {
    /// The instance row.
    pub inst: Instance,
    /// Its datastore manager (empty when the version is unknown).
    pub manager: String,
}

/// Loads the instance (404 for unknown, deleted or other projects' ids) and checks
/// `rule` on its project (403).
pub async fn load(
    state: &AppState,
    ctx: &RequestContext,
    id: &str,
    rule: &str,
) -> ApiResult<Target> {
    let inst = load_visible(state, ctx, id).await?;
    ctx.authorize(state, rule, inst.tenant_id.as_deref().unwrap_or_default())?;
    let manager = match &inst.datastore_version_id {
        Some(vid) => match state.db().datastore_version_get(vid).await {
            Ok(v) => v.manager.unwrap_or_default(),
            Err(DbError::NotFound { .. }) => String::new(),
            Err(e) => return Err(e.into()),
        },
        None => String::new(),
    };
    Ok(Target { inst, manager })
}

impl Target {
    /// The instance id.
    pub fn id(&self) -> &str {
        &self.inst.id
    }

    /// Gate C (422): a supported datastore ("Operation not supported for datastore X.")
    /// whose guest reports running or healthy ("Instance X is not ready, status: Y.").
    pub async fn verify_ready(&self, state: &AppState) -> ApiResult<()> {
        if !SUPPORTED_MANAGERS.contains(&self.manager.as_str()) {
            return Err(ApiError::unprocessable(format!(
                "Operation not supported for datastore {}.",
                self.manager
            )));
        }
        let status = match state.db().service_status_get(&self.inst.id).await {
            Ok(row) => row.status(),
            Err(DbError::NotFound { .. }) => None,
            Err(e) => return Err(e.into()),
        };
        match status {
            Some(ServiceStatus::Running | ServiceStatus::Healthy) => Ok(()),
            other => Err(ApiError::unprocessable(format!(
                "Instance {} is not ready, status: {}.",
                self.inst.id,
                other.unwrap_or(ServiceStatus::Unknown).description()
            ))),
        }
    }

    /// A client of the instance's guest (503 when this API has no guest clients).
    pub fn guest(&self, state: &AppState) -> ApiResult<GuestApi> {
        let Some(factory) = state.guests() else {
            return Err(ApiError::unavailable("no guest agent client configured"));
        };
        let key = crate::guest::instance_key(state.config(), self.inst.encrypted_key.as_deref())
            .map_err(|e| {
                ApiError::internal(format!(
                    "the RPC key of instance {} does not decrypt: {e}",
                    self.inst.id
                ))
            })?;
        Ok(factory.client(&self.inst.id, key))
    }

    /// The names hidden from and refused by these calls: `[<manager>] ignore_users`
    /// (MySQL's list when the manager has no group).
    pub fn ignored_users(&self, state: &AppState) -> Vec<String> {
        let cfg = state.config();
        cfg.datastore(&self.manager)
            .unwrap_or(&cfg.mysql)
            .ignore_users
            .clone()
    }

    /// `[<manager>] ignore_dbs` (MySQL's list when the manager has no group).
    pub fn ignored_dbs(&self, state: &AppState) -> Vec<String> {
        let cfg = state.config();
        cfg.datastore(&self.manager)
            .unwrap_or(&cfg.mysql)
            .ignore_dbs
            .clone()
    }
}

/// The RPC context of a guest call made for this request.
pub fn rpc_context(ctx: &RequestContext) -> RpcContext {
    crate::taskmanager::rpc_context(&ctx.cast_context())
}

/// `limit` (capped at `cap`, 400 when not a positive integer) and `marker` of a list.
pub fn paging(params: &HashMap<String, String>, cap: i64) -> ApiResult<(i64, Option<String>)> {
    let limit = crate::handlers::instances::list::page_size(params, cap)?;
    let marker = params.get("marker").filter(|m| !m.is_empty()).cloned();
    Ok((i64::try_from(limit).unwrap_or(i64::MAX), marker))
}

/// A path segment as the handlers use it: a literal `.json` format suffix removed, and
/// percent-decoded once more (the router decoded it once; Trove decodes twice).
pub fn segment(raw: &str) -> String {
    let raw = raw.strip_suffix(".json").unwrap_or(raw);
    percent_encoding::percent_decode_str(raw)
        .decode_utf8_lossy()
        .into_owned()
}

/// Splits a `{user}` path segment (api.md §7.1) into name and host: at the last `@`;
/// no `@` or nothing after it means host `%`.
pub fn user_and_host(raw: &str) -> (String, String) {
    let s = segment(raw);
    match s.rfind('@') {
        None => (s, "%".into()),
        Some(i) if i + 1 == s.len() => (s[..i].to_string(), "%".into()),
        Some(i) => (s[..i].to_string(), s[i + 1..].to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_segments() {
        assert_eq!(user_and_host("app"), ("app".into(), "%".into()));
        assert_eq!(
            user_and_host("bob@10.0.0.1"),
            ("bob".into(), "10.0.0.1".into())
        );
        assert_eq!(user_and_host("a@b@%"), ("a@b".into(), "%".into()));
        assert_eq!(user_and_host("bob@"), ("bob".into(), "%".into()));
        assert_eq!(
            user_and_host("bob@10.0.0.%25"),
            ("bob".into(), "10.0.0.%".into())
        );
        assert_eq!(user_and_host("bob.json"), ("bob".into(), "%".into()));
        assert_eq!(user_and_host("bob.xyz"), ("bob.xyz".into(), "%".into()));
    }
}
