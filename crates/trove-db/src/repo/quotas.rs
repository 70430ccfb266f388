//! The quota engine: `quotas` (per-project limits), `quota_usages` (in use + reserved) and
//! `reservations` (the log of deltas).
//!
//! Semantics are Trove's (check, reserve, run, then commit or roll back), with one fix:
//! the check and the reservation happen under row locks (`SELECT ... FOR UPDATE` on MySQL
//! and PostgreSQL, a `BEGIN IMMEDIATE` write transaction on SQLite), so concurrent
//! requests can never together exceed a limit. Missing usage rows are created first with
//! an insert that ignores duplicates, so two first requests of a project cannot collide.
//! Usage rows are always locked in resource-name order; deadlocks are retried.

use std::collections::BTreeMap;
use std::future::Future;

use crate::db::{new_id, utc_now, Backend, Db};
use crate::error::DbError;
use crate::repo::begin_write;

/// Resources the engine knows, sorted.
pub const QUOTA_RESOURCES: &[&str] = &["backups", "instances", "ram", "volumes"];

/// Default limits (from `max_*_per_tenant`); `-1` means unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaDefaults {
    /// `max_instances_per_tenant` (10).
    pub instances: i32,
    /// `max_ram_per_tenant` in MB (-1).
    pub ram: i32,
    /// `max_backups_per_tenant` (50).
    pub backups: i32,
    /// `max_volumes_per_tenant` in GB (40).
    pub volumes: i32,
}

impl Default for QuotaDefaults {
    fn default() -> Self {
        QuotaDefaults {
            instances: 10,
            ram: -1,
            backups: 50,
            volumes: 40,
        }
    }
}

impl QuotaDefaults {
    /// The default limit of a resource; `None` for unknown resources.
    pub fn get(&self, resource: &str) -> Option<i32> {
        match resource {
            "instances" => Some(self.instances),
            "ram" => Some(self.ram),
            "backups" => Some(self.backups),
            "volumes" => Some(self.volumes),
            _ => None,
        }
    }
}

/// Usage of one resource by a project, with its effective limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaUsage {
    /// Resource name.
    pub resource: String,
    /// Committed usage.
    pub in_use: i32,
    /// Reserved, not yet committed.
    pub reserved: i32,
    /// Effective hard limit (-1 unlimited).
    pub limit: i32,
}

/// One reserved delta, to be committed or rolled back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    /// Reservation id.
    pub id: String,
    /// The `quota_usages` row.
    pub usage_id: String,
    /// Resource name.
    pub resource: String,
    /// Reserved amount (negative for releases).
    pub delta: i32,
}

/// Status values of `reservations.status`.
pub mod reservation_status {
    /// Reserved, not yet decided.
    pub const RESERVED: &str = "Reserved";
    /// Applied to `in_use`.
    pub const COMMITTED: &str = "Committed";
    /// Given back.
    pub const ROLLED_BACK: &str = "Rolled Back";
}

#[derive(sqlx::FromRow)]
struct UsageRow {
    id: String,
    in_use: Option<i32>,
    reserved: Option<i32>,
}

const MAX_ATTEMPTS: usize = 8;

fn check_resource(resource: &str) -> Result<(), DbError> {
    if QUOTA_RESOURCES.contains(&resource) {
        Ok(())
    } else {
        Err(DbError::NotFound {
            kind: "quota resource",
            id: resource.to_string(),
        })
    }
}

impl Db {
    fn for_update(&self) -> &'static str {
        if self.backend() == Backend::Sqlite {
            ""
        } else {
            " FOR UPDATE"
        }
    }

    /// Effective limits of a project: defaults overridden by its `quotas` rows.
    pub async fn quota_limits(
        &self,
        tenant_id: &str,
        defaults: &QuotaDefaults,
    ) -> Result<BTreeMap<String, i32>, DbError> {
        let mut limits: BTreeMap<String, i32> = QUOTA_RESOURCES
            .iter()
            .map(|r| (r.to_string(), defaults.get(r).unwrap_or(-1)))
            .collect();
        let sql = self.sql("SELECT resource, hard_limit FROM quotas WHERE tenant_id = ?");
        let rows: Vec<(String, Option<i32>)> =
            with_pool!(self, p => sqlx::query_as(&sql).bind(tenant_id).fetch_all(p).await?);
        for (r, l) in rows {
            if let (Some(slot), Some(l)) = (limits.get_mut(&r), l) {
                *slot = l;
            }
        }
        Ok(limits)
    }

    /// Sets a project's limit for a resource (`-1` unlimited). Unknown resource ->
    /// `NotFound`; a limit below -1 -> `Invalid`.
    pub async fn quota_set_limit(
        &self,
        tenant_id: &str,
        resource: &str,
        hard_limit: i32,
    ) -> Result<(), DbError> {
        check_resource(resource)?;
        if hard_limit < -1 {
            return Err(DbError::Invalid(format!(
                "Quota limit {hard_limit} for {resource} is not valid: must be -1 or more."
            )));
        }
        let now = utc_now();
        let (pre, suf) = self.insert_ignore();
        let ins = self.sql(&format!("{pre} quotas (id, created, updated, tenant_id, resource, hard_limit) VALUES (?, ?, ?, ?, ?, ?){suf}"));
        let upd = self.sql(
            "UPDATE quotas SET hard_limit = ?, updated = ? WHERE tenant_id = ? AND resource = ?",
        );
        with_pool!(self, p => {
            let n = sqlx::query(&ins).bind(new_id()).bind(now).bind(now).bind(tenant_id).bind(resource).bind(hard_limit)
                .execute(p).await?.rows_affected();
            if n == 0 {
                sqlx::query(&upd).bind(hard_limit).bind(now).bind(tenant_id).bind(resource).execute(p).await?;
            }
        });
        Ok(())
    }

    /// Usage and limit of every resource of a project (zeros where no row exists yet).
    pub async fn quota_usages(
        &self,
        tenant_id: &str,
        defaults: &QuotaDefaults,
    ) -> Result<Vec<QuotaUsage>, DbError> {
        let limits = self.quota_limits(tenant_id, defaults).await?;
        let sql =
            self.sql("SELECT resource, in_use, reserved FROM quota_usages WHERE tenant_id = ?");
        let rows: Vec<(String, Option<i32>, Option<i32>)> =
            with_pool!(self, p => sqlx::query_as(&sql).bind(tenant_id).fetch_all(p).await?);
        Ok(limits
            .into_iter()
            .map(|(resource, limit)| {
                let (in_use, reserved) = rows
                    .iter()
                    .find(|r| r.0 == resource)
                    .map(|r| (r.1.unwrap_or(0), r.2.unwrap_or(0)))
                    .unwrap_or((0, 0));
                QuotaUsage {
                    resource,
                    in_use,
                    reserved,
                    limit,
                }
            })
            .collect())
    }

    /// Checks the deltas against the project's limits and reserves them, atomically.
    ///
    /// * Unknown resource -> `NotFound { kind: "quota resource" }`.
    /// * A positive delta with `in_use + reserved + delta > limit` (limit >= 0) ->
    ///   [`DbError::QuotaExceeded`] with the sorted names; nothing is reserved.
    /// * Success: `reserved += delta` for each resource and one `Reserved` reservation
    ///   each; pass them to [`Db::quota_commit`] or [`Db::quota_rollback`].
    ///
    /// Preconditions: none (missing usage rows are created with zeros).
    /// State on success: the reservations are held and count against the limit.
    /// State on error: nothing is reserved (the usage rows may have been created empty).
    /// Cancellation: dropping the future before it finishes rolls the transaction back;
    /// nothing is reserved.
    pub async fn quota_reserve(
        &self,
        tenant_id: &str,
        deltas: &[(&str, i32)],
        defaults: &QuotaDefaults,
    ) -> Result<Vec<Reservation>, DbError> {
        let mut sorted: BTreeMap<String, i32> = BTreeMap::new();
        for (r, d) in deltas {
            check_resource(r)?;
            *sorted.entry(r.to_string()).or_insert(0) += d;
        }
        let limits = self.quota_limits(tenant_id, defaults).await?;
        let now = utc_now();
        // Make sure every usage row exists (outside the locking transaction).
        let (pre, suf) = self.insert_ignore();
        let ensure = self.sql(&format!(
            "{pre} quota_usages (id, created, updated, tenant_id, in_use, reserved, resource) VALUES (?, ?, ?, ?, 0, 0, ?){suf}"
        ));
        with_pool!(self, p => {
            for r in sorted.keys() {
                sqlx::query(&ensure).bind(new_id()).bind(now).bind(now).bind(tenant_id).bind(r).execute(p).await?;
            }
        });
        let sel = self.sql(&format!(
            "SELECT id, in_use, reserved FROM quota_usages WHERE tenant_id = ? AND resource = ?{}",
            self.for_update()
        ));
        let upd =
            self.sql("UPDATE quota_usages SET reserved = reserved + ?, updated = ? WHERE id = ?");
        let ins = self.sql("INSERT INTO reservations (created, updated, id, usage_id, delta, status) VALUES (?, ?, ?, ?, ?, 'Reserved')");
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result: Result<Vec<Reservation>, DbError> = with_pool!(self, p => {
                async {
                    let mut tx = begin_write!(self, p);
                    let mut rows = Vec::new();
                    for r in sorted.keys() {
                        let row: UsageRow = sqlx::query_as(&sel).bind(tenant_id).bind(r).fetch_one(&mut *tx).await?;
                        rows.push(row);
                    }
                    let mut overs = Vec::new();
                    for ((r, d), row) in sorted.iter().zip(&rows) {
                        let limit = limits.get(r).copied().unwrap_or(-1);
                        let used = row.in_use.unwrap_or(0) + row.reserved.unwrap_or(0);
                        if *d > 0 && limit >= 0 && used + d > limit {
                            overs.push(r.clone());
                        }
                    }
                    if !overs.is_empty() {
                        tx.rollback().await?;
                        return Err(DbError::QuotaExceeded { resources: overs });
                    }
                    let mut out = Vec::new();
                    for ((r, d), row) in sorted.iter().zip(&rows) {
                        sqlx::query(&upd).bind(*d).bind(now).bind(&row.id).execute(&mut *tx).await?;
                        let id = new_id();
                        sqlx::query(&ins).bind(now).bind(now).bind(&id).bind(&row.id).bind(*d).execute(&mut *tx).await?;
                        out.push(Reservation { id, usage_id: row.id.clone(), resource: r.clone(), delta: *d });
                    }
                    tx.commit().await?;
                    Ok(out)
                }
                .await
            });
            match result {
                Err(e) if e.is_retryable() && attempt < MAX_ATTEMPTS => {
                    tracing::debug!(error = %e, attempt, "retrying quota reservation");
                    continue;
                }
                other => return other,
            }
        }
    }

    /// Commits reservations: `in_use += delta` (never below 0), `reserved -= delta`, status
    /// `Committed`. Reservations no longer `Reserved` are skipped, so committing twice is
    /// harmless.
    ///
    /// State on error or cancellation: the transaction is rolled back and the reservations
    /// stay `Reserved`; calling again is safe.
    pub async fn quota_commit(&self, reservations: &[Reservation]) -> Result<(), DbError> {
        self.finish_reservations(reservations, true).await
    }

    /// Rolls reservations back: `reserved -= delta`, status `Rolled Back`.
    pub async fn quota_rollback(&self, reservations: &[Reservation]) -> Result<(), DbError> {
        self.finish_reservations(reservations, false).await
    }

    async fn finish_reservations(
        &self,
        reservations: &[Reservation],
        commit: bool,
    ) -> Result<(), DbError> {
        let mut sorted: Vec<&Reservation> = reservations.iter().collect();
        sorted.sort_by(|a, b| a.resource.cmp(&b.resource).then(a.id.cmp(&b.id)));
        let status = if commit {
            reservation_status::COMMITTED
        } else {
            reservation_status::ROLLED_BACK
        };
        let lock = self.sql(&format!(
            "SELECT id, in_use, reserved FROM quota_usages WHERE id = ?{}",
            self.for_update()
        ));
        let mark = self.sql(
            "UPDATE reservations SET status = ?, updated = ? WHERE id = ? AND status = 'Reserved'",
        );
        let upd =
            self.sql("UPDATE quota_usages SET in_use = ?, reserved = ?, updated = ? WHERE id = ?");
        let mut attempt = 0;
        loop {
            attempt += 1;
            let now = utc_now();
            let result: Result<(), DbError> = with_pool!(self, p => {
                async {
                    let mut tx = begin_write!(self, p);
                    for r in &sorted {
                        let row: Option<UsageRow> = sqlx::query_as(&lock).bind(&r.usage_id).fetch_optional(&mut *tx).await?;
                        let Some(row) = row else {
                            return Err(DbError::NotFound { kind: "quota usage", id: r.usage_id.clone() });
                        };
                        let n = sqlx::query(&mark).bind(status).bind(now).bind(&r.id).execute(&mut *tx).await?.rows_affected();
                        if n == 0 {
                            continue;
                        }
                        let in_use = row.in_use.unwrap_or(0);
                        let reserved = row.reserved.unwrap_or(0) - r.delta;
                        let in_use = if commit { (in_use + r.delta).max(0) } else { in_use };
                        sqlx::query(&upd).bind(in_use).bind(reserved).bind(now).bind(&row.id).execute(&mut *tx).await?;
                    }
                    tx.commit().await?;
                    Ok(())
                }
                .await
            });
            match result {
                Err(e) if e.is_retryable() && attempt < MAX_ATTEMPTS => continue,
                other => return other,
            }
        }
    }

    /// Trove's `run_with_quotas`: reserve `deltas`, run `f`, then commit on success or roll
    /// back on error (and return `f`'s error).
    ///
    /// Cancellation: if the returned future is dropped while `f` runs, the reservations stay
    /// `Reserved` (they count against the limit until released by hand), as in Trove when a
    /// process dies mid-request.
    pub async fn run_with_quotas<T, E, F, Fut>(
        &self,
        tenant_id: &str,
        deltas: &[(&str, i32)],
        defaults: &QuotaDefaults,
        f: F,
    ) -> Result<T, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: From<DbError>,
    {
        let reservations = self.quota_reserve(tenant_id, deltas, defaults).await?;
        match f().await {
            Ok(v) => {
                self.quota_commit(&reservations).await?;
                Ok(v)
            }
            Err(e) => {
                if let Err(re) = self.quota_rollback(&reservations).await {
                    tracing::error!(error = %re, "rolling back quota reservations failed");
                }
                Err(e)
            }
        }
    }

    /// Reservation statuses by id (for audits and tests).
    pub async fn reservation_status(&self, id: &str) -> Result<Option<String>, DbError> {
        let sql = self.sql("SELECT status FROM reservations WHERE id = ?");
        let r: Option<(Option<String>,)> =
            with_pool!(self, p => sqlx::query_as(&sql).bind(id).fetch_optional(p).await?);
        Ok(r.and_then(|r| r.0))
    }
}
