//! Trove's quota resources and their limits as the API shows them (api.md §14), over
//! trove-db's quota engine (per-project overrides of the `max_*_per_tenant` defaults,
//! usage and reservations).

use trove_config::Config;
use trove_db::{Db, QuotaDefaults, QuotaUsage};

use crate::error::ApiResult;

/// The quota resources, in Trove's display order.
pub const RESOURCES: [&str; 4] = ["instances", "ram", "backups", "volumes"];

/// The defaults of trove.conf, for the quota engine.
pub fn defaults(cfg: &Config) -> QuotaDefaults {
    let d = &cfg.default;
    let c = |v: i64| i32::try_from(v).unwrap_or(i32::MAX);
    QuotaDefaults {
        instances: c(d.max_instances_per_tenant),
        ram: c(d.max_ram_per_tenant),
        backups: c(d.max_backups_per_tenant),
        volumes: c(d.max_volumes_per_tenant),
    }
}

/// Usage and limit of every resource of a project, in display order.
pub async fn usages(db: &Db, cfg: &Config, project: &str) -> ApiResult<Vec<QuotaUsage>> {
    let mut all = db.quota_usages(project, &defaults(cfg)).await?;
    all.sort_by_key(|u| {
        RESOURCES
            .iter()
            .position(|r| *r == u.resource)
            .unwrap_or(99)
    });
    Ok(all)
}

/// `(resource, limit)` of every resource of a project, in display order.
pub async fn limits(db: &Db, cfg: &Config, project: &str) -> ApiResult<Vec<(String, i64)>> {
    Ok(usages(db, cfg, project)
        .await?
        .into_iter()
        .map(|u| (u.resource, i64::from(u.limit)))
        .collect())
}
