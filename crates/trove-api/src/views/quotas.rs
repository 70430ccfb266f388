//! Quotas (api.md §14): a list in show, a dict in update.

use serde_json::{json, Map, Value};

/// One resource's quota as shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaLine {
    /// `instances`, `ram`, `backups`, `volumes`.
    pub resource: String,
    /// Current usage.
    pub in_use: i64,
    /// Reserved by requests in flight.
    pub reserved: i64,
    /// Limit (-1 unlimited).
    pub limit: i64,
}

/// `{"quotas": [{"resource", "in_use", "reserved", "limit"}, ...]}`.
pub fn show(lines: &[QuotaLine]) -> Value {
    json!({"quotas": lines.iter().map(|l| json!({
        "resource": l.resource,
        "in_use": l.in_use,
        "reserved": l.reserved,
        "limit": l.limit,
    })).collect::<Vec<_>>()})
}

/// `{"quotas": {"<resource>": limit, ...}}` with the updated limits only.
pub fn updated(limits: &[(String, i64)]) -> Value {
    let m: Map<String, Value> = limits
        .iter()
        .map(|(k, v)| (k.clone(), (*v).into()))
        .collect();
    json!({"quotas": m})
}
