//! Trove's quota resources and their limits as the API shows them (api.md §14).
//!
//! Limits are the `max_*_per_tenant` defaults of trove.conf. Per-project overrides, usage
//! and reservations live in trove-db's quota tables; until that repository is available
//! here, usage reads as 0 and updates are refused with 501.

use trove_config::Config;

/// The quota resources, in Trove's display order.
pub const RESOURCES: [&str; 4] = ["instances", "ram", "backups", "volumes"];

/// The default limit of `resource` (`None` for unknown names).
pub fn default_limit(cfg: &Config, resource: &str) -> Option<i64> {
    let d = &cfg.default;
    match resource {
        "instances" => Some(d.max_instances_per_tenant),
        "ram" => Some(d.max_ram_per_tenant),
        "backups" => Some(d.max_backups_per_tenant),
        "volumes" => Some(d.max_volumes_per_tenant),
        _ => None,
    }
}

/// `(resource, limit)` of every resource for a project.
pub fn limits(cfg: &Config, _project: &str) -> Vec<(String, i64)> {
    RESOURCES
        .iter()
        .map(|r| (r.to_string(), default_limit(cfg, r).unwrap_or(-1)))
        .collect()
}
