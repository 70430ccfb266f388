//! `GET /limits` (api.md §13): the ABSOLUTE entry first, then the rate limits.

use serde_json::{json, Map, Value};

use crate::ratelimit::LimitState;

/// The limits document; `absolute` holds `(resource, limit)` pairs.
pub fn limits(absolute: &[(String, i64)], rates: &[LimitState]) -> Value {
    let mut abs = Map::new();
    abs.insert("verb".into(), "ABSOLUTE".into());
    for (resource, limit) in absolute {
        abs.insert(format!("max_{resource}"), (*limit).into());
    }
    let mut items = vec![Value::Object(abs)];
    for r in rates {
        items.push(json!({
            "verb": r.limit.verb,
            "uri": r.limit.uri,
            "regex": r.limit.regex,
            "value": r.limit.value,
            "unit": r.limit.unit.name(),
            "remaining": r.remaining,
            "nextAvailable": r.next_available.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        }));
    }
    json!({"limits": items})
}
