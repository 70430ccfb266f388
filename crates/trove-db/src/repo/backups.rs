//! `backups`: backup records (soft-deleted). The conductor updates them from guest
//! reports; the API lists and deletes them.

use chrono::NaiveDateTime;

use crate::db::{utc_now, Db};
use crate::error::{map_unique, DbError};
use crate::repo::Page;

/// Backup states that mean "in progress".
pub const BACKUP_RUNNING_STATES: &[&str] = &["NEW", "BUILDING", "SAVING"];

/// A row of `backups`.
#[derive(Debug, Clone, PartialEq, Default, sqlx::FromRow)]
pub struct Backup {
    /// UUID (also the object name).
    pub id: String,
    /// Name.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// Storage location URL.
    pub location: Option<String>,
    /// `full` or `incremental`.
    pub backup_type: Option<String>,
    /// Size in GB.
    pub size: Option<f64>,
    /// Owning project.
    pub tenant_id: Option<String>,
    /// NEW, BUILDING, SAVING, COMPLETED, FAILED, RESTORED, DELETE_FAILED.
    pub state: String,
    /// Source instance.
    pub instance_id: Option<String>,
    /// MD5 hex.
    pub checksum: Option<String>,
    /// Unused by Trove.
    pub backup_timestamp: Option<NaiveDateTime>,
    /// Soft-deleted.
    pub deleted: bool,
    /// Creation time (UTC).
    pub created: Option<NaiveDateTime>,
    /// Last update (UTC).
    pub updated: Option<NaiveDateTime>,
    /// Deletion time.
    pub deleted_at: Option<NaiveDateTime>,
    /// Parent backup of an incremental.
    pub parent_id: Option<String>,
    /// Datastore version of the source.
    pub datastore_version_id: Option<String>,
    /// `swift` or `cinder`.
    pub storage_driver: Option<String>,
    /// Why the backup failed, in words a tenant can read (our column; `None` when no
    /// reason was recorded).
    pub fault_message: Option<String>,
}

const COLS: &str = "id, name, description, location, backup_type, size, tenant_id, state, instance_id, checksum, \
    backup_timestamp, deleted, created, updated, deleted_at, parent_id, datastore_version_id, storage_driver, \
    fault_message";

macro_rules! bind_backup_fields {
    ($q:expr, $b:expr) => {
        $q.bind(&$b.name)
            .bind(&$b.description)
            .bind(&$b.location)
            .bind(&$b.backup_type)
            .bind($b.size)
            .bind(&$b.tenant_id)
            .bind(&$b.state)
            .bind(&$b.instance_id)
            .bind(&$b.checksum)
            .bind($b.backup_timestamp)
            .bind($b.deleted)
            .bind($b.created)
            .bind($b.updated)
            .bind($b.deleted_at)
            .bind(&$b.parent_id)
            .bind(&$b.datastore_version_id)
            .bind(&$b.storage_driver)
            .bind(&$b.fault_message)
    };
}

impl Db {
    /// Inserts a backup row (timestamps default to now).
    pub async fn backup_create(&self, backup: &Backup) -> Result<Backup, DbError> {
        let mut b = backup.clone();
        let now = utc_now();
        b.created.get_or_insert(now);
        b.updated.get_or_insert(now);
        let sql = self.sql(&format!(
            "INSERT INTO backups ({COLS}) VALUES ({})",
            vec!["?"; 19].join(", ")
        ));
        with_pool!(self, p => {
            let q = sqlx::query(&sql).bind(&b.id);
            bind_backup_fields!(q, b).execute(p).await.map_err(map_unique("backup", &b.id))?;
        });
        Ok(b)
    }

    /// A live backup.
    pub async fn backup_get(&self, id: &str) -> Result<Backup, DbError> {
        let sql = self.sql(&format!(
            "SELECT {COLS} FROM backups WHERE id = ? AND deleted = FALSE"
        ));
        let r: Option<Backup> =
            with_pool!(self, p => sqlx::query_as(&sql).bind(id).fetch_optional(p).await?);
        r.ok_or_else(|| DbError::NotFound {
            kind: "backup",
            id: id.to_string(),
        })
    }

    /// A backup, deleted or not (audits, tests).
    pub async fn backup_get_any(&self, id: &str) -> Result<Backup, DbError> {
        let sql = self.sql(&format!("SELECT {COLS} FROM backups WHERE id = ?"));
        let r: Option<Backup> =
            with_pool!(self, p => sqlx::query_as(&sql).bind(id).fetch_optional(p).await?);
        r.ok_or_else(|| DbError::NotFound {
            kind: "backup",
            id: id.to_string(),
        })
    }

    /// A project's live backups (optionally of one instance), by id, paged by marker.
    pub async fn backup_list(
        &self,
        tenant_id: &str,
        instance_id: Option<&str>,
        limit: usize,
        marker: Option<&str>,
    ) -> Result<Page<Backup>, DbError> {
        let fetch = limit.saturating_add(1).min(i32::MAX as usize) as i32;
        let filter = if instance_id.is_some() {
            " AND instance_id = ?"
        } else {
            ""
        };
        let sql = self.sql(&format!(
            "SELECT {COLS} FROM backups WHERE tenant_id = ? AND deleted = FALSE AND id > ?{filter} ORDER BY id LIMIT ?"
        ));
        let rows: Vec<Backup> = with_pool!(self, p => {
            let mut q = sqlx::query_as(&sql).bind(tenant_id).bind(marker.unwrap_or(""));
            if let Some(i) = instance_id {
                q = q.bind(i);
            }
            q.bind(fetch).fetch_all(p).await?
        });
        Ok(Page::from_rows(rows, limit, |b| b.id.clone()))
    }

    /// Every live backup, of one project or (`None`) of all projects, most recently
    /// updated first (ties by id). Lists with offset markers page over this in memory.
    pub async fn backup_list_all(&self, tenant_id: Option<&str>) -> Result<Vec<Backup>, DbError> {
        let filter = if tenant_id.is_some() {
            " AND tenant_id = ?"
        } else {
            ""
        };
        let sql = self.sql(&format!(
            "SELECT {COLS} FROM backups WHERE deleted = FALSE{filter} ORDER BY updated DESC, id"
        ));
        let rows: Vec<Backup> = with_pool!(self, p => {
            let mut q = sqlx::query_as(&sql);
            if let Some(t) = tenant_id {
                q = q.bind(t);
            }
            q.fetch_all(p).await?
        });
        Ok(rows)
    }

    /// True when a live backup of the instance is NEW, BUILDING or SAVING.
    pub async fn backup_running_for_instance(&self, instance_id: &str) -> Result<bool, DbError> {
        Ok(!self.backup_running_ids(instance_id).await?.is_empty())
    }

    /// Ids of the live backups of the instance in NEW, BUILDING or SAVING.
    pub async fn backup_running_ids(&self, instance_id: &str) -> Result<Vec<String>, DbError> {
        let sql = self.sql("SELECT id FROM backups WHERE instance_id = ? AND deleted = FALSE AND state IN ('NEW', 'BUILDING', 'SAVING')");
        let r: Vec<(String,)> =
            with_pool!(self, p => sqlx::query_as(&sql).bind(instance_id).fetch_all(p).await?);
        Ok(r.into_iter().map(|(id,)| id).collect())
    }

    /// Every live backup in NEW, BUILDING or SAVING, oldest first.
    pub async fn backups_running(&self) -> Result<Vec<Backup>, DbError> {
        let sql = self.sql(&format!(
            "SELECT {COLS} FROM backups WHERE deleted = FALSE AND state IN ('NEW', 'BUILDING', 'SAVING') ORDER BY created"
        ));
        Ok(with_pool!(self, p => sqlx::query_as(&sql).fetch_all(p).await?))
    }

    /// Sets a live backup to FAILED, with `fault_message` as the reason shown to the
    /// tenant, if it is still NEW, BUILDING or SAVING (a report that finished it meanwhile
    /// wins). Returns whether it was changed.
    pub async fn backup_fail_if_running(
        &self,
        id: &str,
        fault_message: &str,
    ) -> Result<bool, DbError> {
        let sql = self.sql(
            "UPDATE backups SET state = 'FAILED', fault_message = ?, updated = ? WHERE id = ? \
             AND deleted = FALSE AND state IN ('NEW', 'BUILDING', 'SAVING')",
        );
        let n = with_pool!(self, p => sqlx::query(&sql)
            .bind(fault_message)
            .bind(utc_now())
            .bind(id)
            .execute(p)
            .await?
            .rows_affected());
        Ok(n == 1)
    }

    /// Saves every column of a live backup (stamps `updated`).
    pub async fn backup_save(&self, backup: &Backup) -> Result<Backup, DbError> {
        let mut b = backup.clone();
        b.updated = Some(utc_now());
        let sets: Vec<String> = COLS
            .split(',')
            .skip(1)
            .map(|c| format!("{} = ?", c.trim()))
            .collect();
        let sql = self.sql(&format!(
            "UPDATE backups SET {} WHERE id = ? AND deleted = FALSE",
            sets.join(", ")
        ));
        let n = with_pool!(self, p => {
            let q = sqlx::query(&sql);
            bind_backup_fields!(q, b).bind(&b.id).execute(p).await?.rows_affected()
        });
        if n == 0 {
            return Err(DbError::NotFound {
                kind: "backup",
                id: b.id,
            });
        }
        Ok(b)
    }

    /// Soft-deletes a live backup.
    pub async fn backup_delete(&self, id: &str) -> Result<(), DbError> {
        let now = utc_now();
        let sql = self.sql("UPDATE backups SET deleted = TRUE, deleted_at = ?, updated = ? WHERE id = ? AND deleted = FALSE");
        let n = with_pool!(self, p => sqlx::query(&sql).bind(now).bind(now).bind(id).execute(p).await?.rows_affected());
        if n == 0 {
            return Err(DbError::NotFound {
                kind: "backup",
                id: id.to_string(),
            });
        }
        Ok(())
    }
}

/// A row of `backup_strategy`: the default container of a project's (or one instance's)
/// backups.
#[derive(Debug, Clone, PartialEq, Default, sqlx::FromRow)]
pub struct BackupStrategy {
    /// UUID.
    pub id: String,
    /// Owning project.
    pub tenant_id: String,
    /// The instance, or `""` for the project-wide default.
    pub instance_id: String,
    /// Storage backend (`swift`).
    pub backend: String,
    /// Container to use.
    pub swift_container: Option<String>,
    /// Creation time (UTC).
    pub created: Option<NaiveDateTime>,
}

const STRATEGY_COLS: &str = "id, tenant_id, instance_id, backend, swift_container, created";

impl Db {
    /// Creates or replaces the strategy of (`tenant_id`, `instance_id`; `""` = project-wide).
    pub async fn backup_strategy_set(
        &self,
        tenant_id: &str,
        instance_id: &str,
        backend: &str,
        swift_container: &str,
    ) -> Result<BackupStrategy, DbError> {
        let upd = self.sql(
            "UPDATE backup_strategy SET backend = ?, swift_container = ? WHERE tenant_id = ? AND instance_id = ?",
        );
        let ins = self.sql(&format!(
            "INSERT INTO backup_strategy ({STRATEGY_COLS}) VALUES (?, ?, ?, ?, ?, ?)"
        ));
        // A concurrent create of the same pair makes the insert fail: update then.
        for _ in 0..3 {
            let n = with_pool!(self, p => sqlx::query(&upd).bind(backend).bind(swift_container).bind(tenant_id).bind(instance_id).execute(p).await?.rows_affected());
            if n == 0 {
                let row = BackupStrategy {
                    id: crate::db::new_id(),
                    tenant_id: tenant_id.into(),
                    instance_id: instance_id.into(),
                    backend: backend.into(),
                    swift_container: Some(swift_container.into()),
                    created: Some(utc_now()),
                };
                let r = with_pool!(self, p => sqlx::query(&ins)
                    .bind(&row.id).bind(&row.tenant_id).bind(&row.instance_id).bind(&row.backend)
                    .bind(&row.swift_container).bind(row.created)
                    .execute(p).await.map(|_| ()).map_err(map_unique("backup strategy", &row.id)));
                match r {
                    Ok(_) => return Ok(row),
                    Err(DbError::AlreadyExists { .. }) => continue,
                    Err(e) => return Err(e),
                }
            }
            if let Some(s) = self
                .backup_strategy_list(tenant_id, Some(instance_id))
                .await?
                .into_iter()
                .next()
            {
                return Ok(s);
            }
        }
        Err(DbError::Conflict(format!(
            "backup strategy of project {tenant_id} instance '{instance_id}' changed concurrently"
        )))
    }

    /// A project's strategies, of one instance (`Some("")` = the project-wide one) or all.
    pub async fn backup_strategy_list(
        &self,
        tenant_id: &str,
        instance_id: Option<&str>,
    ) -> Result<Vec<BackupStrategy>, DbError> {
        let filter = if instance_id.is_some() {
            " AND instance_id = ?"
        } else {
            ""
        };
        let sql = self.sql(&format!(
            "SELECT {STRATEGY_COLS} FROM backup_strategy WHERE tenant_id = ?{filter} ORDER BY instance_id"
        ));
        let rows: Vec<BackupStrategy> = with_pool!(self, p => {
            let mut q = sqlx::query_as(&sql).bind(tenant_id);
            if let Some(i) = instance_id {
                q = q.bind(i);
            }
            q.fetch_all(p).await?
        });
        Ok(rows)
    }

    /// Deletes the strategy of (`tenant_id`, `instance_id`); a missing one is not an error.
    pub async fn backup_strategy_delete(
        &self,
        tenant_id: &str,
        instance_id: &str,
    ) -> Result<(), DbError> {
        let sql = self.sql("DELETE FROM backup_strategy WHERE tenant_id = ? AND instance_id = ?");
        with_pool!(self, p => {
            sqlx::query(&sql).bind(tenant_id).bind(instance_id).execute(p).await?;
        });
        Ok(())
    }
}
