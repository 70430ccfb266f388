//! Users of an instance (api.md §7.2, §7.4): name, host and the databases the user may
//! access (by name). Passwords are never shown.

use serde_json::{json, Value};
use trove_rpc::api::UserModel;

/// One user: `{"name", "host", "databases": [{"name"}]}` (host `%` when the guest gave
/// none).
pub fn user(u: &UserModel) -> Value {
    json!({
        "name": u.name,
        "host": u.host.as_deref().unwrap_or("%"),
        "databases": u.databases.iter().map(super::databases::database).collect::<Vec<_>>(),
    })
}

/// `{"users": [...]}`, plus the `links` of the next page when there is one.
pub fn users(list: &[UserModel], next_href: Option<String>) -> Value {
    let mut body = json!({ "users": list.iter().map(user).collect::<Vec<_>>() });
    if let Some(href) = next_href {
        body["links"] = json!([{"rel": "next", "href": href}]);
    }
    body
}

/// `{"user": {...}}`.
pub fn user_show(u: &UserModel) -> Value {
    json!({ "user": user(u) })
}
