//! Databases of an instance (api.md §6.1) and a user's access list (§7.7): each database
//! is shown by name only.

use serde_json::{json, Value};
use trove_rpc::api::DatabaseModel;

/// One database: `{"name": ...}`.
pub fn database(db: &DatabaseModel) -> Value {
    json!({ "name": db.name })
}

/// `{"databases": [...]}`, plus the `links` of the next page when there is one.
pub fn databases(dbs: &[DatabaseModel], next_href: Option<String>) -> Value {
    let mut body = json!({ "databases": dbs.iter().map(database).collect::<Vec<_>>() });
    if let Some(href) = next_href {
        body["links"] = json!([{"rel": "next", "href": href}]);
    }
    body
}
