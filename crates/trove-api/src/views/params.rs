//! Configuration parameters of a datastore version (api.md §10.8).

use std::str::FromStr;

use serde_json::{Map, Number, Value};
use trove_db::ConfigParam;

fn bound(text: &Option<String>) -> Option<Value> {
    let t = text.as_deref()?.trim();
    if t.is_empty() {
        return None;
    }
    Number::from_str(t).ok().map(Value::Number)
}

/// One parameter (the show call returns it bare, without an envelope).
pub fn param(p: &ConfigParam) -> Value {
    let mut m = Map::new();
    m.insert("name".into(), p.name.clone().into());
    m.insert(
        "datastore_version_id".into(),
        p.datastore_version_id.clone().into(),
    );
    m.insert("restart_required".into(), p.restart_required.into());
    m.insert("type".into(), p.data_type.clone().into());
    if let Some(min) = bound(&p.min_size) {
        m.insert("min".into(), min);
    }
    if let Some(max) = bound(&p.max_size) {
        m.insert("max".into(), max);
    }
    Value::Object(m)
}
