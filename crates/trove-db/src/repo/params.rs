//! `datastore_configuration_parameters`: the validation rules of a datastore version.
//!
//! Rows are hard-deleted (the table has no `deleted` column). Bounds are decimal text
//! because they can exceed 64 bits (`18446744073709551615`).

use crate::db::{new_id, Db};
use crate::error::DbError;
use crate::repo::begin_write;

/// A row of `datastore_configuration_parameters`.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ConfigParam {
    /// UUID.
    pub id: String,
    /// Parameter name as written in the database's config file.
    pub name: String,
    /// Owning datastore version.
    pub datastore_version_id: String,
    /// A change needs a database restart.
    pub restart_required: bool,
    /// Inclusive upper bound, decimal text.
    pub max_size: Option<String>,
    /// Inclusive lower bound, decimal text.
    pub min_size: Option<String>,
    /// `integer`, `string`, `float`, `boolean` (or `list`).
    pub data_type: String,
}

/// One rule to store (from a validation-rules file or the management API).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigParamRule {
    /// Parameter name.
    pub name: String,
    /// A change needs a restart.
    pub restart_required: bool,
    /// Data type name.
    pub data_type: String,
    /// Lower bound as decimal text.
    pub min: Option<String>,
    /// Upper bound as decimal text.
    pub max: Option<String>,
}

const COLS: &str =
    "id, name, datastore_version_id, restart_required, max_size, min_size, data_type";

impl Db {
    /// Inserts or updates (by name) the rules of a version, all in one transaction.
    /// Returns how many rules were written. The version must exist.
    pub async fn config_params_upsert(
        &self,
        version_id: &str,
        rules: &[ConfigParamRule],
    ) -> Result<usize, DbError> {
        self.datastore_version_get(version_id).await?;
        let sel = self.sql("SELECT id FROM datastore_configuration_parameters WHERE datastore_version_id = ? AND name = ?");
        let upd = self.sql("UPDATE datastore_configuration_parameters SET restart_required = ?, max_size = ?, min_size = ?, data_type = ? WHERE id = ? AND datastore_version_id = ? AND name = ?");
        let ins = self.sql(&format!(
            "INSERT INTO datastore_configuration_parameters ({COLS}) VALUES (?, ?, ?, ?, ?, ?, ?)"
        ));
        with_pool!(self, p => {
            let mut tx = begin_write!(self, p);
            for r in rules {
                let existing: Option<(String,)> = sqlx::query_as(&sel).bind(version_id).bind(&r.name).fetch_optional(&mut *tx).await?;
                match existing {
                    Some((id,)) => {
                        sqlx::query(&upd).bind(r.restart_required).bind(&r.max).bind(&r.min).bind(&r.data_type)
                            .bind(&id).bind(version_id).bind(&r.name).execute(&mut *tx).await?;
                    }
                    None => {
                        sqlx::query(&ins).bind(new_id()).bind(&r.name).bind(version_id).bind(r.restart_required)
                            .bind(&r.max).bind(&r.min).bind(&r.data_type).execute(&mut *tx).await?;
                    }
                }
            }
            tx.commit().await?;
        });
        Ok(rules.len())
    }

    /// All rules of a version, by name.
    pub async fn config_params_list(&self, version_id: &str) -> Result<Vec<ConfigParam>, DbError> {
        let sql = self.sql(&format!(
            "SELECT {COLS} FROM datastore_configuration_parameters WHERE datastore_version_id = ? ORDER BY name"
        ));
        Ok(with_pool!(self, p => sqlx::query_as(&sql).bind(version_id).fetch_all(p).await?))
    }

    /// One rule of a version by parameter name.
    pub async fn config_param_get(
        &self,
        version_id: &str,
        name: &str,
    ) -> Result<ConfigParam, DbError> {
        let sql = self.sql(&format!(
            "SELECT {COLS} FROM datastore_configuration_parameters WHERE datastore_version_id = ? AND name = ?"
        ));
        let r: Option<ConfigParam> = with_pool!(self, p => sqlx::query_as(&sql).bind(version_id).bind(name).fetch_optional(p).await?);
        r.ok_or_else(|| DbError::NotFound {
            kind: "configuration parameter",
            id: name.to_string(),
        })
    }

    /// Deletes one rule; missing -> [`DbError::NotFound`].
    pub async fn config_param_delete(&self, version_id: &str, name: &str) -> Result<(), DbError> {
        let sql = self.sql("DELETE FROM datastore_configuration_parameters WHERE datastore_version_id = ? AND name = ?");
        let n = with_pool!(self, p => sqlx::query(&sql).bind(version_id).bind(name).execute(p).await?.rows_affected());
        if n == 0 {
            return Err(DbError::NotFound {
                kind: "configuration parameter",
                id: name.to_string(),
            });
        }
        Ok(())
    }

    /// Deletes every rule of a version; returns how many were deleted.
    pub async fn config_params_delete_all(&self, version_id: &str) -> Result<u64, DbError> {
        let sql = self
            .sql("DELETE FROM datastore_configuration_parameters WHERE datastore_version_id = ?");
        Ok(
            with_pool!(self, p => sqlx::query(&sql).bind(version_id).execute(p).await?.rows_affected()),
        )
    }
}
