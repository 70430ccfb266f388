//! `service_statuses`: the datastore status each guest reports, one row per instance.
//! `updated_at` is stamped on every save and is the liveness signal of the guest.

use chrono::NaiveDateTime;

use crate::db::{new_id, utc_now, Db};
use crate::error::DbError;
use crate::status::ServiceStatus;

/// A row of `service_statuses`.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ServiceStatusRow {
    /// UUID.
    pub id: String,
    /// The instance.
    pub instance_id: String,
    /// Status code ([`ServiceStatus::code`]).
    pub status_id: i32,
    /// Status description.
    pub status_description: String,
    /// Last save = last heartbeat (UTC).
    pub updated_at: Option<NaiveDateTime>,
}

impl ServiceStatusRow {
    /// The status, if the code is known (0x22 reads as RESTARTING).
    pub fn status(&self) -> Option<ServiceStatus> {
        ServiceStatus::from_code(self.status_id)
    }
}

const COLS: &str = "id, instance_id, status_id, status_description, updated_at";

impl Db {
    /// Creates the status row of an instance.
    pub async fn service_status_create(
        &self,
        instance_id: &str,
        status: ServiceStatus,
    ) -> Result<ServiceStatusRow, DbError> {
        let row = ServiceStatusRow {
            id: new_id(),
            instance_id: instance_id.to_string(),
            status_id: status.code(),
            status_description: status.description().to_string(),
            updated_at: Some(utc_now()),
        };
        let sql = self.sql(&format!(
            "INSERT INTO service_statuses ({COLS}) VALUES (?, ?, ?, ?, ?)"
        ));
        with_pool!(self, p => {
            sqlx::query(&sql).bind(&row.id).bind(&row.instance_id).bind(row.status_id)
                .bind(&row.status_description).bind(row.updated_at).execute(p).await?;
        });
        Ok(row)
    }

    /// The status row of an instance.
    pub async fn service_status_get(&self, instance_id: &str) -> Result<ServiceStatusRow, DbError> {
        let sql = self.sql(&format!(
            "SELECT {COLS} FROM service_statuses WHERE instance_id = ? ORDER BY updated_at DESC"
        ));
        let r: Option<ServiceStatusRow> =
            with_pool!(self, p => sqlx::query_as(&sql).bind(instance_id).fetch_optional(p).await?);
        r.ok_or_else(|| DbError::NotFound {
            kind: "service status",
            id: instance_id.to_string(),
        })
    }

    /// Status rows of several instances at once (list views), keyed by instance id.
    pub async fn service_statuses_for(
        &self,
        instance_ids: &[String],
    ) -> Result<std::collections::HashMap<String, ServiceStatusRow>, DbError> {
        let mut out = std::collections::HashMap::new();
        for chunk in instance_ids.chunks(500) {
            let marks = vec!["?"; chunk.len()].join(", ");
            let sql = self.sql(&format!(
                "SELECT {COLS} FROM service_statuses WHERE instance_id IN ({marks})"
            ));
            let rows: Vec<ServiceStatusRow> = with_pool!(self, p => {
                let mut q = sqlx::query_as(&sql);
                for id in chunk {
                    q = q.bind(id);
                }
                q.fetch_all(p).await?
            });
            for r in rows {
                out.insert(r.instance_id.clone(), r);
            }
        }
        Ok(out)
    }

    /// Sets status and description and stamps `updated_at` with now.
    pub async fn service_status_update(
        &self,
        instance_id: &str,
        status: ServiceStatus,
    ) -> Result<(), DbError> {
        let sql = self.sql("UPDATE service_statuses SET status_id = ?, status_description = ?, updated_at = ? WHERE instance_id = ?");
        let n = with_pool!(self, p => sqlx::query(&sql).bind(status.code()).bind(status.description()).bind(utc_now()).bind(instance_id).execute(p).await?.rows_affected());
        if n == 0 {
            return Err(DbError::NotFound {
                kind: "service status",
                id: instance_id.to_string(),
            });
        }
        Ok(())
    }

    /// Stamps `updated_at` only (a heartbeat whose status is ignored still counts).
    pub async fn service_status_touch(&self, instance_id: &str) -> Result<(), DbError> {
        let sql = self.sql("UPDATE service_statuses SET updated_at = ? WHERE instance_id = ?");
        let n = with_pool!(self, p => sqlx::query(&sql).bind(utc_now()).bind(instance_id).execute(p).await?.rows_affected());
        if n == 0 {
            return Err(DbError::NotFound {
                kind: "service status",
                id: instance_id.to_string(),
            });
        }
        Ok(())
    }
}
