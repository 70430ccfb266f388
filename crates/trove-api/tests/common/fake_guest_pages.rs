//! Paging and error helpers shared by the fake guest agents of the API tests: listings in the
//! guest's wire shape `[[items], next_marker]`, as a real guest answers `list_databases` and
//! `list_users`. Included with `#[path]` by the test files that run a fake guest.

use std::collections::BTreeMap;

use serde_json::{json, Value};
use trove_rpc::RemoteError;

/// A guest-side refusal, as the real guest raises it.
pub fn remote(msg: impl Into<String>) -> RemoteError {
    RemoteError::trove("BadRequest", msg)
}

/// One page of `items` (sorted by key) after `marker`, at most `limit` long.
pub fn page<T: serde::Serialize>(
    items: &BTreeMap<String, T>,
    limit: Option<i64>,
    marker: Option<String>,
    include_marker: bool,
) -> Value {
    let rest: Vec<(&String, &T)> = items
        .iter()
        .filter(|(k, _)| match &marker {
            None => true,
            Some(m) if include_marker => k.as_str() >= m.as_str(),
            Some(m) => k.as_str() > m.as_str(),
        })
        .collect();
    let n = limit.map_or(rest.len(), |l| usize::try_from(l).unwrap_or(0));
    let shown: Vec<Value> = rest
        .iter()
        .take(n)
        .map(|(_, v)| serde_json::to_value(v).unwrap())
        .collect();
    let next = (rest.len() > n && n > 0).then(|| rest[n - 1].0.clone());
    json!([shown, next])
}
