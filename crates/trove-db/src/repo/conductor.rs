//! `conductor_lastseen`: the stale-message filter of the conductor.
//!
//! Trove's rule, per (instance, method): a message without `sent` is accepted; the first
//! message is stored and accepted; a later one is accepted (and stored) only if its `sent`
//! is strictly newer than the stored one; older or equal ones are dropped. Here the check
//! and the store are one atomic statement each (insert-if-absent, then a conditional
//! update), so two conductors can never both accept the same or an older message.

use crate::db::Db;
use crate::error::DbError;

impl Db {
    /// Applies the stale rule to a message sent at `sent` (UTC epoch seconds); returns
    /// `true` when the message is new and must be processed.
    pub async fn conductor_check_and_store(
        &self,
        instance_id: &str,
        method_name: &str,
        sent: Option<f64>,
    ) -> Result<bool, DbError> {
        let Some(sent) = sent else { return Ok(true) };
        let (ins_prefix, ins_suffix) = self.insert_ignore();
        let ins = self.sql(&format!(
            "{ins_prefix} conductor_lastseen (instance_id, method_name, sent) VALUES (?, ?, ?){ins_suffix}"
        ));
        let upd = self.sql(
            "UPDATE conductor_lastseen SET sent = ? WHERE instance_id = ? AND method_name = ? AND (sent IS NULL OR sent < ?)",
        );
        let accepted = with_pool!(self, p => {
            let n = sqlx::query(&ins).bind(instance_id).bind(method_name).bind(sent).execute(p).await?.rows_affected();
            if n == 1 {
                true
            } else {
                sqlx::query(&upd).bind(sent).bind(instance_id).bind(method_name).bind(sent).execute(p).await?.rows_affected() == 1
            }
        });
        Ok(accepted)
    }

    /// The stored `sent` of (instance, method), if any.
    pub async fn conductor_last_seen(
        &self,
        instance_id: &str,
        method_name: &str,
    ) -> Result<Option<f64>, DbError> {
        let sql = self
            .sql("SELECT sent FROM conductor_lastseen WHERE instance_id = ? AND method_name = ?");
        let r: Option<(Option<f64>,)> = with_pool!(self, p => sqlx::query_as(&sql).bind(instance_id).bind(method_name).fetch_optional(p).await?);
        Ok(r.and_then(|r| r.0))
    }
}
