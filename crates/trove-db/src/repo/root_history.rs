//! `root_enabled_history`: whether root was ever enabled on an instance (id = instance id).
//! A row is live when `deleted_at` is NULL or older than `created`.

use chrono::NaiveDateTime;

use crate::db::{utc_now, Db};
use crate::error::DbError;
use crate::repo::begin_write;

/// A row of `root_enabled_history`.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct RootHistory {
    /// The instance id.
    pub id: String,
    /// User id that enabled root.
    pub user: Option<String>,
    /// When root was enabled (UTC).
    pub created: Option<NaiveDateTime>,
    /// When root was disabled (UTC).
    pub deleted_at: Option<NaiveDateTime>,
}

impl RootHistory {
    /// True while root counts as enabled.
    pub fn is_live(&self) -> bool {
        match (self.deleted_at, self.created) {
            (None, _) => true,
            (Some(d), Some(c)) => d < c,
            (Some(_), None) => false,
        }
    }
}

const COLS: &str = "id, `user`, created, deleted_at";

impl Db {
    /// The history row of an instance (live or not), if any.
    pub async fn root_history_get(
        &self,
        instance_id: &str,
    ) -> Result<Option<RootHistory>, DbError> {
        let sql = self.sql(&format!(
            "SELECT {COLS} FROM root_enabled_history WHERE id = ?"
        ));
        Ok(with_pool!(self, p => sqlx::query_as(&sql).bind(instance_id).fetch_optional(p).await?))
    }

    /// Records that `user` enabled root, unless a live row exists (then it is returned as is).
    pub async fn root_history_record(
        &self,
        instance_id: &str,
        user: &str,
    ) -> Result<RootHistory, DbError> {
        let sel = self.sql(&format!(
            "SELECT {COLS} FROM root_enabled_history WHERE id = ?"
        ));
        let ins = self.sql(&format!(
            "INSERT INTO root_enabled_history ({COLS}) VALUES (?, ?, ?, NULL)"
        ));
        let upd = self.sql("UPDATE root_enabled_history SET `user` = ?, created = ?, deleted_at = NULL WHERE id = ?");
        let now = utc_now();
        let row = with_pool!(self, p => {
            let mut tx = begin_write!(self, p);
            let existing: Option<RootHistory> = sqlx::query_as(&sel).bind(instance_id).fetch_optional(&mut *tx).await?;
            let row = match existing {
                Some(r) if r.is_live() => r,
                Some(_) => {
                    sqlx::query(&upd).bind(user).bind(now).bind(instance_id).execute(&mut *tx).await?;
                    RootHistory { id: instance_id.to_string(), user: Some(user.to_string()), created: Some(now), deleted_at: None }
                }
                None => {
                    sqlx::query(&ins).bind(instance_id).bind(user).bind(now).execute(&mut *tx).await?;
                    RootHistory { id: instance_id.to_string(), user: Some(user.to_string()), created: Some(now), deleted_at: None }
                }
            };
            tx.commit().await?;
            row
        });
        Ok(row)
    }

    /// Marks root as disabled (sets `deleted_at`); no row -> `NotFound`.
    pub async fn root_history_disable(&self, instance_id: &str) -> Result<(), DbError> {
        let sql = self.sql("UPDATE root_enabled_history SET deleted_at = ? WHERE id = ?");
        let n = with_pool!(self, p => sqlx::query(&sql).bind(utc_now()).bind(instance_id).execute(p).await?.rows_affected());
        if n == 0 {
            return Err(DbError::NotFound {
                kind: "root history",
                id: instance_id.to_string(),
            });
        }
        Ok(())
    }
}
