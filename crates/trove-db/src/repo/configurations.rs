//! `configurations` and `configuration_parameters`: user configuration groups.
//! Groups are soft-deleted; a group's parameters are replaced or merged in one transaction.

use chrono::NaiveDateTime;

use crate::db::{utc_now, Db};
use crate::error::{map_unique, DbError};
use crate::repo::begin_write;

/// A row of `configurations`.
#[derive(Debug, Clone, PartialEq, Eq, Default, sqlx::FromRow)]
pub struct Configuration {
    /// UUID.
    pub id: String,
    /// Name (at most 64 characters).
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// Owning project.
    pub tenant_id: String,
    /// Datastore version the values are for.
    pub datastore_version_id: String,
    /// Soft-deleted.
    pub deleted: bool,
    /// Deletion time.
    pub deleted_at: Option<NaiveDateTime>,
    /// Creation time (UTC).
    pub created: Option<NaiveDateTime>,
    /// Last update (UTC).
    pub updated: Option<NaiveDateTime>,
}

/// A row of `configuration_parameters`.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ConfigurationParameter {
    /// The group.
    pub configuration_id: String,
    /// Parameter name.
    pub configuration_key: String,
    /// Value as text (booleans as `0`/`1`).
    pub configuration_value: Option<String>,
    /// Soft-deleted.
    pub deleted: bool,
    /// Deletion time.
    pub deleted_at: Option<NaiveDateTime>,
}

const COLS: &str =
    "id, name, description, tenant_id, datastore_version_id, deleted, deleted_at, created, updated";
const PCOLS: &str = "configuration_id, configuration_key, configuration_value, deleted, deleted_at";

impl Db {
    /// Creates a group with its parameters in one transaction (timestamps default to now).
    pub async fn configuration_create(
        &self,
        config: &Configuration,
        params: &[(String, String)],
    ) -> Result<Configuration, DbError> {
        let mut c = config.clone();
        let now = utc_now();
        c.created.get_or_insert(now);
        c.updated.get_or_insert(now);
        c.deleted = false;
        let ins = self.sql(&format!(
            "INSERT INTO configurations ({COLS}) VALUES (?, ?, ?, ?, ?, FALSE, NULL, ?, ?)"
        ));
        let pins = self.sql(&format!(
            "INSERT INTO configuration_parameters ({PCOLS}) VALUES (?, ?, ?, FALSE, NULL)"
        ));
        with_pool!(self, p => {
            let mut tx = begin_write!(self, p);
            sqlx::query(&ins).bind(&c.id).bind(&c.name).bind(&c.description).bind(&c.tenant_id)
                .bind(&c.datastore_version_id).bind(c.created).bind(c.updated)
                .execute(&mut *tx).await.map_err(map_unique("configuration", &c.id))?;
            for (k, v) in params {
                sqlx::query(&pins).bind(&c.id).bind(k).bind(v).execute(&mut *tx).await
                    .map_err(map_unique("configuration parameter", k))?;
            }
            tx.commit().await?;
        });
        Ok(c)
    }

    /// A live group.
    pub async fn configuration_get(&self, id: &str) -> Result<Configuration, DbError> {
        let sql = self.sql(&format!(
            "SELECT {COLS} FROM configurations WHERE id = ? AND deleted = FALSE"
        ));
        let r: Option<Configuration> =
            with_pool!(self, p => sqlx::query_as(&sql).bind(id).fetch_optional(p).await?);
        r.ok_or_else(|| DbError::NotFound {
            kind: "configuration",
            id: id.to_string(),
        })
    }

    /// A project's live groups, by id.
    pub async fn configuration_list(&self, tenant_id: &str) -> Result<Vec<Configuration>, DbError> {
        let sql = self.sql(&format!(
            "SELECT {COLS} FROM configurations WHERE tenant_id = ? AND deleted = FALSE ORDER BY id"
        ));
        Ok(with_pool!(self, p => sqlx::query_as(&sql).bind(tenant_id).fetch_all(p).await?))
    }

    /// Changes name and description of a live group.
    pub async fn configuration_update(
        &self,
        id: &str,
        name: &str,
        description: Option<&str>,
    ) -> Result<(), DbError> {
        let sql = self.sql("UPDATE configurations SET name = ?, description = ?, updated = ? WHERE id = ? AND deleted = FALSE");
        let n = with_pool!(self, p => sqlx::query(&sql).bind(name).bind(description).bind(utc_now()).bind(id).execute(p).await?.rows_affected());
        if n == 0 {
            return Err(DbError::NotFound {
                kind: "configuration",
                id: id.to_string(),
            });
        }
        Ok(())
    }

    /// Soft-deletes a group and its parameters in one transaction.
    pub async fn configuration_delete(&self, id: &str) -> Result<(), DbError> {
        let now = utc_now();
        let del = self.sql("UPDATE configurations SET deleted = TRUE, deleted_at = ?, updated = ? WHERE id = ? AND deleted = FALSE");
        let pdel = self.sql("UPDATE configuration_parameters SET deleted = TRUE, deleted_at = ? WHERE configuration_id = ? AND deleted = FALSE");
        with_pool!(self, p => {
            let mut tx = begin_write!(self, p);
            let n = sqlx::query(&del).bind(now).bind(now).bind(id).execute(&mut *tx).await?.rows_affected();
            if n == 0 {
                return Err(DbError::NotFound { kind: "configuration", id: id.to_string() });
            }
            sqlx::query(&pdel).bind(now).bind(id).execute(&mut *tx).await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Live parameters of a group, by key.
    pub async fn configuration_parameters(
        &self,
        id: &str,
    ) -> Result<Vec<ConfigurationParameter>, DbError> {
        let sql = self.sql(&format!("SELECT {PCOLS} FROM configuration_parameters WHERE configuration_id = ? AND deleted = FALSE ORDER BY configuration_key"));
        Ok(with_pool!(self, p => sqlx::query_as(&sql).bind(id).fetch_all(p).await?))
    }

    /// Replaces all parameters of a live group (PUT semantics), in one transaction.
    pub async fn configuration_set_parameters(
        &self,
        id: &str,
        params: &[(String, String)],
    ) -> Result<(), DbError> {
        self.write_parameters(id, params, true).await
    }

    /// Adds or changes some parameters of a live group (PATCH semantics), in one transaction.
    pub async fn configuration_update_parameters(
        &self,
        id: &str,
        params: &[(String, String)],
    ) -> Result<(), DbError> {
        self.write_parameters(id, params, false).await
    }

    async fn write_parameters(
        &self,
        id: &str,
        params: &[(String, String)],
        replace: bool,
    ) -> Result<(), DbError> {
        let check = self.sql("SELECT id FROM configurations WHERE id = ? AND deleted = FALSE");
        let del_all = self.sql("DELETE FROM configuration_parameters WHERE configuration_id = ?");
        let del_one = self.sql("DELETE FROM configuration_parameters WHERE configuration_id = ? AND configuration_key = ?");
        let ins = self.sql(&format!(
            "INSERT INTO configuration_parameters ({PCOLS}) VALUES (?, ?, ?, FALSE, NULL)"
        ));
        let touch = self.sql("UPDATE configurations SET updated = ? WHERE id = ?");
        with_pool!(self, p => {
            let mut tx = begin_write!(self, p);
            let found: Option<(String,)> = sqlx::query_as(&check).bind(id).fetch_optional(&mut *tx).await?;
            if found.is_none() {
                return Err(DbError::NotFound { kind: "configuration", id: id.to_string() });
            }
            if replace {
                sqlx::query(&del_all).bind(id).execute(&mut *tx).await?;
            }
            for (k, v) in params {
                if !replace {
                    sqlx::query(&del_one).bind(id).bind(k).execute(&mut *tx).await?;
                }
                sqlx::query(&ins).bind(id).bind(k).bind(v).execute(&mut *tx).await
                    .map_err(map_unique("configuration parameter", k))?;
            }
            sqlx::query(&touch).bind(utc_now()).bind(id).execute(&mut *tx).await?;
            tx.commit().await?;
        });
        Ok(())
    }
}
