//! The route table of the API (api.md §1.9): one list of (method, path, summary,
//! handler), from which both the router and the OpenAPI document ([`crate::openapi`])
//! are built. Paths are relative to `/v1.0/{project}`; handlers live in
//! [`crate::handlers`]. Routes whose feature is not built yet answer 501.

use std::collections::BTreeMap;

use axum::handler::Handler;
use axum::routing::{get, on, MethodFilter, MethodRouter};
use axum::Router;

use crate::app::AppState;
use crate::handlers::backups;
use crate::handlers::configurations;
use crate::handlers::datastores::{associations, params, show as datastores, versions};
use crate::handlers::not_implemented::not_implemented as ni;
use crate::handlers::{
    flavors, instances, limits, mgmt_datastores, mgmt_instances, quotas, versions as api_versions,
};
use crate::middleware;

/// One route of the v1 API.
#[derive(Debug)]
pub struct Route {
    /// HTTP method (`GET`, `POST`, ...).
    pub method: &'static str,
    /// Path relative to `/v1.0/{project}`.
    pub path: &'static str,
    /// What the call does.
    pub summary: &'static str,
    /// Whether it is served (false: 501 `notImplemented`).
    pub implemented: bool,
    handler: MethodRouter<AppState>,
}

fn filter(method: &str) -> MethodFilter {
    match method {
        "GET" => MethodFilter::GET,
        "POST" => MethodFilter::POST,
        "PUT" => MethodFilter::PUT,
        "PATCH" => MethodFilter::PATCH,
        _ => MethodFilter::DELETE,
    }
}

fn r<H, T>(method: &'static str, path: &'static str, summary: &'static str, h: H) -> Route
where
    H: Handler<T, AppState>,
    T: 'static,
{
    Route {
        method,
        path,
        summary,
        implemented: true,
        handler: on(filter(method), h),
    }
}

fn todo(method: &'static str, path: &'static str, summary: &'static str) -> Route {
    Route {
        method,
        path,
        summary,
        implemented: false,
        handler: on(filter(method), ni),
    }
}

/// Every v1 route.
pub fn v1_routes() -> Vec<Route> {
    use crate::handlers::extensions as x;
    use instances as i;
    vec![
        // Instances (api.md §4, §5).
        r("GET", "/instances", "List instances", i::list::list),
        r(
            "POST",
            "/instances",
            "Create an instance",
            i::create::create,
        ),
        r(
            "GET",
            "/instances/detail",
            "List instances with details",
            i::list::detail,
        ),
        r("GET", "/instances/{id}", "Show an instance", i::show::show),
        r(
            "PUT",
            "/instances/{id}",
            "Update an instance",
            i::update::put,
        ),
        r(
            "PATCH",
            "/instances/{id}",
            "Update an instance (strict)",
            i::update::patch,
        ),
        r(
            "DELETE",
            "/instances/{id}",
            "Delete an instance",
            i::delete::delete,
        ),
        r(
            "POST",
            "/instances/{id}/action",
            "Run an instance action",
            i::action::action,
        ),
        r(
            "GET",
            "/instances/{id}/backups",
            "List backups of an instance",
            backups::instance_backups,
        ),
        todo(
            "GET",
            "/instances/{id}/configuration",
            "Show default configuration",
        ),
        todo("GET", "/instances/{id}/log", "List guest logs"),
        todo("POST", "/instances/{id}/log", "Guest log action"),
        todo("GET", "/instances/{id}/ssl", "Show SSL state"),
        todo("POST", "/instances/{id}/ssl", "SSL action"),
        todo("GET", "/instances/{id}/modules", "List instance modules"),
        todo("POST", "/instances/{id}/modules", "Apply modules"),
        todo(
            "DELETE",
            "/instances/{id}/modules/{module_id}",
            "Remove a module",
        ),
        r(
            "GET",
            "/instances/{id}/databases",
            "List databases",
            x::databases::list,
        ),
        r(
            "POST",
            "/instances/{id}/databases",
            "Create databases",
            x::databases::create,
        ),
        r(
            "GET",
            "/instances/{id}/databases/{name}",
            "Show a database",
            x::databases::show,
        ),
        r(
            "DELETE",
            "/instances/{id}/databases/{name}",
            "Drop a database",
            x::databases::delete,
        ),
        r("GET", "/instances/{id}/users", "List users", x::users::list),
        r(
            "POST",
            "/instances/{id}/users",
            "Create users",
            x::users::create,
        ),
        r(
            "PUT",
            "/instances/{id}/users",
            "Change user passwords",
            x::users::update_all,
        ),
        r(
            "GET",
            "/instances/{id}/users/{user}",
            "Show a user",
            x::users::show,
        ),
        r(
            "PUT",
            "/instances/{id}/users/{user}",
            "Update a user",
            x::users::update,
        ),
        r(
            "DELETE",
            "/instances/{id}/users/{user}",
            "Delete a user",
            x::users::delete,
        ),
        r(
            "GET",
            "/instances/{id}/users/{user}/databases",
            "List user access",
            x::users::access,
        ),
        r(
            "PUT",
            "/instances/{id}/users/{user}/databases",
            "Grant access",
            x::users::grant,
        ),
        r(
            "DELETE",
            "/instances/{id}/users/{user}/databases/{db}",
            "Revoke access",
            x::users::revoke,
        ),
        r(
            "GET",
            "/instances/{id}/root",
            "Show whether root is enabled",
            x::root::show,
        ),
        r(
            "POST",
            "/instances/{id}/root",
            "Enable root",
            x::root::enable,
        ),
        r(
            "DELETE",
            "/instances/{id}/root",
            "Disable root",
            x::root::disable,
        ),
        // Backups, configuration groups (api.md §9, §10).
        r("GET", "/backups", "List backups", backups::list),
        r("POST", "/backups", "Create a backup", backups::create),
        r("GET", "/backups/{id}", "Show a backup", backups::show),
        r(
            "DELETE",
            "/backups/{id}",
            "Delete a backup",
            backups::delete,
        ),
        r(
            "GET",
            "/backup_strategies",
            "List backup strategies",
            backups::strategy_list,
        ),
        r(
            "POST",
            "/backup_strategies",
            "Create a backup strategy",
            backups::strategy_create,
        ),
        r(
            "DELETE",
            "/backup_strategies",
            "Delete backup strategies",
            backups::strategy_delete,
        ),
        r(
            "GET",
            "/configurations",
            "List configuration groups",
            configurations::list,
        ),
        r(
            "POST",
            "/configurations",
            "Create a configuration group",
            configurations::create,
        ),
        r(
            "GET",
            "/configurations/{id}",
            "Show a configuration group",
            configurations::show,
        ),
        r(
            "PUT",
            "/configurations/{id}",
            "Replace configuration values",
            configurations::update,
        ),
        r(
            "PATCH",
            "/configurations/{id}",
            "Edit configuration values",
            configurations::edit,
        ),
        r(
            "DELETE",
            "/configurations/{id}",
            "Delete a configuration group",
            configurations::delete,
        ),
        r(
            "GET",
            "/configurations/{id}/instances",
            "Instances using a group",
            configurations::instances,
        ),
        // Datastores (api.md §10.8, §11).
        r("GET", "/datastores", "List datastores", datastores::list),
        r(
            "GET",
            "/datastores/{ds}",
            "Show a datastore",
            datastores::show,
        ),
        todo("DELETE", "/datastores/{ds}", "Delete a datastore"),
        r(
            "GET",
            "/datastores/{ds}/versions",
            "List versions",
            versions::list,
        ),
        r(
            "GET",
            "/datastores/{ds}/versions/{version}",
            "Show a version",
            versions::show,
        ),
        r(
            "GET",
            "/datastores/versions/{version}",
            "Show a version by id",
            versions::show_by_uuid,
        ),
        r(
            "GET",
            "/datastores/{ds}/versions/{version}/flavors",
            "Flavors allowed for a version",
            associations::flavors,
        ),
        r(
            "GET",
            "/datastores/{ds}/versions/{version}/volume-types",
            "Volume types allowed for a version",
            associations::volume_types,
        ),
        r(
            "GET",
            "/datastores/{ds}/versions/{version}/parameters",
            "List configuration parameters",
            params::list,
        ),
        r(
            "GET",
            "/datastores/{ds}/versions/{version}/parameters/{name}",
            "Show a configuration parameter",
            params::show,
        ),
        r(
            "GET",
            "/datastores/versions/{version}/parameters",
            "List configuration parameters by version id",
            params::list_by_version,
        ),
        r(
            "GET",
            "/datastores/versions/{version}/parameters/{name}",
            "Show a configuration parameter by version id",
            params::show_by_version,
        ),
        // Flavors, limits, quotas (api.md §12-§14).
        r("GET", "/flavors", "List flavors", flavors::list),
        r("GET", "/flavors/{id}", "Show a flavor", flavors::show),
        r("GET", "/limits", "Show limits", limits::index),
        r("GET", "/mgmt/quotas/{target}", "Show quotas", quotas::show),
        r(
            "PUT",
            "/mgmt/quotas/{target}",
            "Update quotas (admin)",
            quotas::update,
        ),
        // Management (api.md §19).
        r(
            "GET",
            "/mgmt/instances",
            "List all instances (admin)",
            mgmt_instances::list,
        ),
        r(
            "GET",
            "/mgmt/instances/{id}",
            "Show an instance (admin)",
            mgmt_instances::show,
        ),
        r(
            "POST",
            "/mgmt/instances/{id}/action",
            "Admin instance action",
            mgmt_instances::action,
        ),
        r(
            "GET",
            "/mgmt/instances/{id}/root",
            "Root history (admin)",
            mgmt_instances::root,
        ),
        r(
            "GET",
            "/mgmt/instances/{id}/diagnostics",
            "Diagnostics (admin)",
            mgmt_instances::diagnostics,
        ),
        r(
            "GET",
            "/mgmt/instances/{id}/hwinfo",
            "Hardware info (admin)",
            mgmt_instances::hwinfo,
        ),
        r(
            "GET",
            "/mgmt/instances/{id}/rpc_ping",
            "Ping the guest (admin)",
            mgmt_instances::rpc_ping,
        ),
        r(
            "GET",
            "/mgmt/datastore-versions",
            "List versions (admin)",
            mgmt_datastores::list,
        ),
        r(
            "POST",
            "/mgmt/datastore-versions",
            "Create a version (admin)",
            mgmt_datastores::create,
        ),
        r(
            "GET",
            "/mgmt/datastore-versions/{id}",
            "Show a version (admin)",
            mgmt_datastores::show,
        ),
        r(
            "PATCH",
            "/mgmt/datastore-versions/{id}",
            "Edit a version (admin)",
            mgmt_datastores::update,
        ),
        r(
            "DELETE",
            "/mgmt/datastore-versions/{id}",
            "Delete a version (admin)",
            mgmt_datastores::delete,
        ),
        r(
            "GET",
            "/mgmt/datastores/versions/{version}/parameters",
            "List parameters (admin)",
            mgmt_datastores::params_list,
        ),
        r(
            "POST",
            "/mgmt/datastores/versions/{version}/parameters",
            "Create a parameter (admin)",
            mgmt_datastores::params_create,
        ),
        r(
            "GET",
            "/mgmt/datastores/versions/{version}/parameters/{name}",
            "Show a parameter (admin)",
            mgmt_datastores::params_show,
        ),
        r(
            "PUT",
            "/mgmt/datastores/versions/{version}/parameters/{name}",
            "Update a parameter (admin)",
            mgmt_datastores::params_update,
        ),
        r(
            "DELETE",
            "/mgmt/datastores/versions/{version}/parameters/{name}",
            "Delete a parameter (admin)",
            mgmt_datastores::params_delete,
        ),
        todo("GET", "/mgmt/clusters", "List clusters (admin)"),
        todo("GET", "/mgmt/clusters/{id}", "Show a cluster (admin)"),
        todo("POST", "/mgmt/clusters/{id}/action", "Admin cluster action"),
        // Modules, clusters (api.md §17, §18).
        todo("GET", "/modules", "List modules"),
        todo("POST", "/modules", "Create a module"),
        todo("GET", "/modules/{id}", "Show a module"),
        todo("PUT", "/modules/{id}", "Update a module"),
        todo("DELETE", "/modules/{id}", "Delete a module"),
        todo("GET", "/modules/{id}/instances", "Instances with a module"),
        todo("PUT", "/modules/{id}/instances", "Reapply a module"),
        todo("GET", "/clusters", "List clusters"),
        todo("POST", "/clusters", "Create a cluster"),
        todo("GET", "/clusters/{id}", "Show a cluster"),
        todo("POST", "/clusters/{id}", "Cluster action"),
        todo("DELETE", "/clusters/{id}", "Delete a cluster"),
        todo(
            "GET",
            "/clusters/{id}/instances/{instance_id}",
            "Show a cluster member",
        ),
        todo(
            "GET",
            "/clusters/{id}/root",
            "Show whether cluster root is enabled",
        ),
        todo("POST", "/clusters/{id}/root", "Enable cluster root"),
    ]
}

/// The router without middleware (see [`crate::ApiAppBuilder::build`]).
pub fn router(state: AppState) -> Router {
    let mut by_path: BTreeMap<&'static str, MethodRouter<AppState>> = BTreeMap::new();
    for route in v1_routes() {
        let merged = match by_path.remove(route.path) {
            Some(existing) => existing.merge(route.handler),
            None => route.handler,
        };
        by_path.insert(route.path, merged);
    }
    let mut r: Router<AppState> = Router::new()
        .route("/", get(api_versions::index))
        .route("/healthcheck", get(api_versions::healthcheck))
        .route("/openapi.json", get(crate::openapi::document));
    for (path, method_router) in by_path {
        r = r.route(&format!("/v1.0/{{project}}{path}"), method_router);
    }
    r.fallback(middleware::not_found)
        .method_not_allowed_fallback(middleware::not_found)
        .with_state(state)
}
