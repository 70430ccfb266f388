//! The route table of the API (api.md §1.9). Paths under `/v1.0/{project}`; handlers live
//! in [`crate::handlers`]. Routes whose feature is not built yet answer 501.

use axum::routing::{get, MethodRouter};
use axum::Router;

use crate::app::AppState;
use crate::handlers::datastores::{associations, params, show as datastores, versions};
use crate::handlers::not_implemented::not_implemented as ni;
use crate::handlers::{flavors, instances, limits, quotas, versions as api_versions};
use crate::middleware;

fn v1(path: &str) -> String {
    format!("/v1.0/{{project}}{path}")
}

/// Every route, for `/v1.0/{project}` paths relative to the project.
fn v1_routes() -> Vec<(&'static str, MethodRouter<AppState>)> {
    vec![
        // Instances (api.md §4, §5).
        (
            "/instances",
            get(instances::list::list).post(instances::create::create),
        ),
        ("/instances/detail", get(instances::list::detail)),
        (
            "/instances/{id}",
            get(instances::show::show)
                .put(instances::update::put)
                .patch(instances::update::patch)
                .delete(instances::delete::delete),
        ),
        (
            "/instances/{id}/action",
            axum::routing::post(instances::action::action),
        ),
        ("/instances/{id}/backups", get(ni)),
        ("/instances/{id}/configuration", get(ni)),
        ("/instances/{id}/log", get(ni).post(ni)),
        ("/instances/{id}/ssl", get(ni).post(ni)),
        ("/instances/{id}/modules", get(ni).post(ni)),
        (
            "/instances/{id}/modules/{module_id}",
            axum::routing::delete(ni),
        ),
        ("/instances/{id}/databases", get(ni).post(ni)),
        ("/instances/{id}/databases/{name}", get(ni).delete(ni)),
        ("/instances/{id}/users", get(ni).post(ni).put(ni)),
        ("/instances/{id}/users/{user}", get(ni).put(ni).delete(ni)),
        ("/instances/{id}/users/{user}/databases", get(ni).put(ni)),
        (
            "/instances/{id}/users/{user}/databases/{db}",
            axum::routing::delete(ni),
        ),
        ("/instances/{id}/root", get(ni).post(ni).delete(ni)),
        // Backups, configuration groups (api.md §9, §10).
        ("/backups", get(ni).post(ni)),
        ("/backups/{id}", get(ni).delete(ni)),
        ("/backup_strategies", get(ni).post(ni).delete(ni)),
        ("/configurations", get(ni).post(ni)),
        ("/configurations/{id}", get(ni).put(ni).patch(ni).delete(ni)),
        ("/configurations/{id}/instances", get(ni)),
        // Datastores (api.md §10.8, §11).
        ("/datastores", get(datastores::list)),
        ("/datastores/{ds}", get(datastores::show).delete(ni)),
        ("/datastores/{ds}/versions", get(versions::list)),
        ("/datastores/{ds}/versions/{version}", get(versions::show)),
        (
            "/datastores/versions/{version}",
            get(versions::show_by_uuid),
        ),
        (
            "/datastores/{ds}/versions/{version}/flavors",
            get(associations::flavors),
        ),
        (
            "/datastores/{ds}/versions/{version}/volume-types",
            get(associations::volume_types),
        ),
        (
            "/datastores/{ds}/versions/{version}/parameters",
            get(params::list),
        ),
        (
            "/datastores/{ds}/versions/{version}/parameters/{name}",
            get(params::show),
        ),
        (
            "/datastores/versions/{version}/parameters",
            get(params::list_by_version),
        ),
        (
            "/datastores/versions/{version}/parameters/{name}",
            get(params::show_by_version),
        ),
        // Flavors, limits, quotas (api.md §12-§14).
        ("/flavors", get(flavors::list)),
        ("/flavors/{id}", get(flavors::show)),
        ("/limits", get(limits::index)),
        (
            "/mgmt/quotas/{target}",
            get(quotas::show).put(quotas::update),
        ),
        // Management (api.md §19).
        ("/mgmt/instances", get(ni)),
        ("/mgmt/instances/{id}", get(ni)),
        ("/mgmt/instances/{id}/action", axum::routing::post(ni)),
        ("/mgmt/instances/{id}/root", get(ni)),
        ("/mgmt/instances/{id}/diagnostics", get(ni)),
        ("/mgmt/instances/{id}/hwinfo", get(ni)),
        ("/mgmt/instances/{id}/rpc_ping", get(ni)),
        ("/mgmt/datastore-versions", get(ni).post(ni)),
        (
            "/mgmt/datastore-versions/{id}",
            get(ni).patch(ni).delete(ni),
        ),
        (
            "/mgmt/datastores/versions/{version}/parameters",
            get(ni).post(ni),
        ),
        (
            "/mgmt/datastores/versions/{version}/parameters/{name}",
            get(ni).put(ni).delete(ni),
        ),
        ("/mgmt/clusters", get(ni)),
        ("/mgmt/clusters/{id}", get(ni)),
        ("/mgmt/clusters/{id}/action", axum::routing::post(ni)),
        // Modules, clusters (api.md §17, §18).
        ("/modules", get(ni).post(ni)),
        ("/modules/{id}", get(ni).put(ni).delete(ni)),
        ("/modules/{id}/instances", get(ni).put(ni)),
        ("/clusters", get(ni).post(ni)),
        ("/clusters/{id}", get(ni).post(ni).delete(ni)),
        ("/clusters/{id}/instances/{instance_id}", get(ni)),
        ("/clusters/{id}/root", get(ni).post(ni)),
    ]
}

/// The router without middleware (see [`crate::ApiAppBuilder::build`]).
pub fn router(state: AppState) -> Router {
    let mut r: Router<AppState> = Router::new()
        .route("/", get(api_versions::index))
        .route("/healthcheck", get(api_versions::healthcheck));
    for (path, method_router) in v1_routes() {
        r = r.route(&v1(path), method_router);
    }
    r.fallback(middleware::not_found)
        .method_not_allowed_fallback(middleware::not_found)
        .with_state(state)
}

/// `(method, path)` of every v1 route, for documentation and tests.
pub fn route_table() -> Vec<&'static str> {
    v1_routes().into_iter().map(|(p, _)| p).collect()
}
