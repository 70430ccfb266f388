//! `instance_faults`: the last failure of an instance (at most one live row, updated in
//! place), shown in the instance view (details to admins only).

use chrono::NaiveDateTime;

use crate::db::{new_id, utc_now, Db};
use crate::error::DbError;
use crate::repo::begin_write;

/// A row of `instance_faults`.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct InstanceFault {
    /// UUID.
    pub id: String,
    /// The instance.
    pub instance_id: String,
    /// Message, at most 255 characters.
    pub message: String,
    /// Details (traceback).
    pub details: String,
    /// First recorded (UTC).
    pub created: NaiveDateTime,
    /// Last recorded (UTC).
    pub updated: NaiveDateTime,
    /// Soft-deleted.
    pub deleted: bool,
    /// Deletion time.
    pub deleted_at: Option<NaiveDateTime>,
}

const COLS: &str = "id, instance_id, message, details, created, updated, deleted, deleted_at";

fn truncate(s: &str, max_chars: usize) -> String {
    s.chars().take(max_chars).collect()
}

impl Db {
    /// Records a fault: updates the live fault of the instance or inserts one.
    /// The message is truncated to 255 characters.
    pub async fn instance_fault_upsert(
        &self,
        instance_id: &str,
        message: &str,
        details: &str,
    ) -> Result<InstanceFault, DbError> {
        let now = utc_now();
        let message = truncate(message, 255);
        let sel = self.sql(&format!(
            "SELECT {COLS} FROM instance_faults WHERE instance_id = ? AND deleted = FALSE"
        ));
        let upd = self
            .sql("UPDATE instance_faults SET message = ?, details = ?, updated = ? WHERE id = ?");
        let ins = self.sql(&format!(
            "INSERT INTO instance_faults ({COLS}) VALUES (?, ?, ?, ?, ?, ?, FALSE, NULL)"
        ));
        let fault = with_pool!(self, p => {
            let mut tx = begin_write!(self, p);
            let existing: Option<InstanceFault> = sqlx::query_as(&sel).bind(instance_id).fetch_optional(&mut *tx).await?;
            let f = match existing {
                Some(mut f) => {
                    sqlx::query(&upd).bind(&message).bind(details).bind(now).bind(&f.id).execute(&mut *tx).await?;
                    f.message = message;
                    f.details = details.to_string();
                    f.updated = now;
                    f
                }
                None => {
                    let f = InstanceFault {
                        id: new_id(),
                        instance_id: instance_id.to_string(),
                        message,
                        details: details.to_string(),
                        created: now,
                        updated: now,
                        deleted: false,
                        deleted_at: None,
                    };
                    sqlx::query(&ins).bind(&f.id).bind(&f.instance_id).bind(&f.message).bind(&f.details)
                        .bind(f.created).bind(f.updated).execute(&mut *tx).await?;
                    f
                }
            };
            tx.commit().await?;
            f
        });
        Ok(fault)
    }

    /// The live fault of an instance, if any.
    pub async fn instance_fault_get(
        &self,
        instance_id: &str,
    ) -> Result<Option<InstanceFault>, DbError> {
        let sql = self.sql(&format!("SELECT {COLS} FROM instance_faults WHERE instance_id = ? AND deleted = FALSE ORDER BY updated DESC"));
        Ok(with_pool!(self, p => sqlx::query_as(&sql).bind(instance_id).fetch_optional(p).await?))
    }

    /// Soft-deletes the live fault of an instance (no error when there is none).
    pub async fn instance_fault_clear(&self, instance_id: &str) -> Result<(), DbError> {
        let now = utc_now();
        let sql = self.sql("UPDATE instance_faults SET deleted = TRUE, deleted_at = ?, updated = ? WHERE instance_id = ? AND deleted = FALSE");
        with_pool!(self, p => { sqlx::query(&sql).bind(now).bind(now).bind(instance_id).execute(p).await?; });
        Ok(())
    }
}
