//! `instances`: one row per Trove instance (soft-deleted), plus the writes that go with an
//! instance's lifecycle (task compare-and-set, soft delete with its status, fault and
//! addresses) and the taskmanager's claim on a create (`task_start_time`).

use chrono::NaiveDateTime;

use crate::db::{utc_now, Db};
use crate::error::{map_unique, DbError};
use crate::repo::{begin_write, Page};
use crate::status::{ServiceStatus, TaskStatus};

/// A row of `instances` (every column, Trove's names).
#[derive(Debug, Clone, PartialEq, Default, sqlx::FromRow)]
pub struct Instance {
    /// Instance id (also the guest id and RPC topic suffix).
    pub id: String,
    /// Creation time (UTC).
    pub created: Option<NaiveDateTime>,
    /// Last save (UTC).
    pub updated: Option<NaiveDateTime>,
    /// User-given name.
    pub name: Option<String>,
    /// DNS name.
    pub hostname: Option<String>,
    /// Compute server id, once created.
    pub compute_instance_id: Option<String>,
    /// Task code ([`TaskStatus::code`]).
    pub task_id: Option<i32>,
    /// Task text ([`TaskStatus::db_text`]).
    pub task_description: Option<String>,
    /// When a taskmanager began the current create ([`Db::instance_claim_task_start`]);
    /// Python Trove never writes this column.
    pub task_start_time: Option<NaiveDateTime>,
    /// Data volume id.
    pub volume_id: Option<String>,
    /// Flavor id.
    pub flavor_id: Option<String>,
    /// Volume size in GB.
    pub volume_size: Option<i32>,
    /// Owning project.
    pub tenant_id: Option<String>,
    /// Last compute server status seen.
    pub server_status: Option<String>,
    /// Soft-deleted.
    pub deleted: bool,
    /// Deletion time.
    pub deleted_at: Option<NaiveDateTime>,
    /// Datastore version.
    pub datastore_version_id: Option<String>,
    /// Attached configuration group.
    pub configuration_id: Option<String>,
    /// Replication source.
    pub slave_of_id: Option<String>,
    /// Cluster.
    pub cluster_id: Option<String>,
    /// Cluster shard.
    pub shard_id: Option<String>,
    /// Cluster member type (column `type`).
    #[sqlx(rename = "type")]
    pub instance_type: Option<String>,
    /// Region name.
    pub region_id: Option<String>,
    /// Per-instance RPC key, encrypted with `inst_rpc_key_encr_key` (base64).
    pub encrypted_key: Option<String>,
    /// JSON `{"is_public": bool, "allowed_cidrs": [...]}`.
    pub access: Option<String>,
    /// TLS mode.
    pub ssl_mode: Option<String>,
    /// Certificate secret reference.
    pub ssl_ref: Option<String>,
}

impl Instance {
    /// The task status, if the code is known.
    pub fn task_status(&self) -> Option<TaskStatus> {
        self.task_id.and_then(TaskStatus::from_code)
    }

    /// Sets task code and text together.
    pub fn set_task_status(&mut self, t: TaskStatus) {
        self.task_id = Some(t.code());
        self.task_description = Some(t.db_text().to_string());
    }

    /// The parsed `access` JSON, if any.
    pub fn access_json(&self) -> Option<serde_json::Value> {
        self.access
            .as_deref()
            .and_then(|a| serde_json::from_str(a).ok())
    }
}

const COLS: &str = "id, created, updated, name, hostname, compute_instance_id, task_id, task_description, \
    task_start_time, volume_id, flavor_id, volume_size, tenant_id, server_status, deleted, deleted_at, \
    datastore_version_id, configuration_id, slave_of_id, cluster_id, shard_id, `type`, region_id, \
    encrypted_key, access, ssl_mode, ssl_ref";

/// Binds every column of an instance after `$q`, in the order of `COLS` minus `id`.
macro_rules! bind_instance_fields {
    ($q:expr, $i:expr) => {
        $q.bind(&$i.created)
            .bind(&$i.updated)
            .bind(&$i.name)
            .bind(&$i.hostname)
            .bind(&$i.compute_instance_id)
            .bind($i.task_id)
            .bind(&$i.task_description)
            .bind(&$i.task_start_time)
            .bind(&$i.volume_id)
            .bind(&$i.flavor_id)
            .bind($i.volume_size)
            .bind(&$i.tenant_id)
            .bind(&$i.server_status)
            .bind($i.deleted)
            .bind(&$i.deleted_at)
            .bind(&$i.datastore_version_id)
            .bind(&$i.configuration_id)
            .bind(&$i.slave_of_id)
            .bind(&$i.cluster_id)
            .bind(&$i.shard_id)
            .bind(&$i.instance_type)
            .bind(&$i.region_id)
            .bind(&$i.encrypted_key)
            .bind(&$i.access)
            .bind(&$i.ssl_mode)
            .bind(&$i.ssl_ref)
    };
}

impl Db {
    /// Inserts an instance row as given (`created`/`updated` default to now when unset).
    /// Duplicate id -> [`DbError::AlreadyExists`].
    pub async fn instance_create(&self, inst: &Instance) -> Result<Instance, DbError> {
        let mut i = inst.clone();
        let now = utc_now();
        i.created.get_or_insert(now);
        i.updated.get_or_insert(now);
        let placeholders = vec!["?"; 27].join(", ");
        let sql = self.sql(&format!(
            "INSERT INTO instances ({COLS}) VALUES ({placeholders})"
        ));
        with_pool!(self, p => {
            let q = sqlx::query(&sql).bind(&i.id);
            bind_instance_fields!(q, i).execute(p).await.map_err(map_unique("instance", &i.id))?;
        });
        Ok(i)
    }

    /// A live (not deleted) instance.
    pub async fn instance_get(&self, id: &str) -> Result<Instance, DbError> {
        let sql = self.sql(&format!(
            "SELECT {COLS} FROM instances WHERE id = ? AND deleted = FALSE"
        ));
        let r: Option<Instance> =
            with_pool!(self, p => sqlx::query_as(&sql).bind(id).fetch_optional(p).await?);
        r.ok_or_else(|| DbError::NotFound {
            kind: "instance",
            id: id.to_string(),
        })
    }

    /// An instance whether deleted or not (for late messages about deleted instances).
    pub async fn instance_get_any(&self, id: &str) -> Result<Instance, DbError> {
        let sql = self.sql(&format!("SELECT {COLS} FROM instances WHERE id = ?"));
        let r: Option<Instance> =
            with_pool!(self, p => sqlx::query_as(&sql).bind(id).fetch_optional(p).await?);
        r.ok_or_else(|| DbError::NotFound {
            kind: "instance",
            id: id.to_string(),
        })
    }

    /// A project's live instances ordered by id, at most `limit`, after `marker` (an id).
    pub async fn instance_list(
        &self,
        tenant_id: &str,
        limit: usize,
        marker: Option<&str>,
    ) -> Result<Page<Instance>, DbError> {
        let fetch = limit.saturating_add(1).min(i32::MAX as usize) as i32;
        let sql = self.sql(&format!(
            "SELECT {COLS} FROM instances WHERE tenant_id = ? AND deleted = FALSE AND id > ? ORDER BY id LIMIT ?"
        ));
        let rows: Vec<Instance> = with_pool!(self, p => sqlx::query_as(&sql).bind(tenant_id).bind(marker.unwrap_or("")).bind(fetch).fetch_all(p).await?);
        Ok(Page::from_rows(rows, limit, |i| i.id.clone()))
    }

    /// Every live instance of every project, ordered by id (management and periodic tasks).
    pub async fn instance_list_all(&self, limit: usize) -> Result<Vec<Instance>, DbError> {
        let lim = limit.min(i32::MAX as usize) as i32;
        let sql = self.sql(&format!(
            "SELECT {COLS} FROM instances WHERE deleted = FALSE ORDER BY id LIMIT ?"
        ));
        Ok(with_pool!(self, p => sqlx::query_as(&sql).bind(lim).fetch_all(p).await?))
    }

    /// Saves every column of a live instance (stamps `updated`); returns the saved row.
    pub async fn instance_save(&self, inst: &Instance) -> Result<Instance, DbError> {
        let mut i = inst.clone();
        i.updated = Some(utc_now());
        let sets: Vec<String> = COLS
            .split(", ")
            .skip(1)
            .map(|c| format!("{} = ?", c.trim()))
            .collect();
        let sql = self.sql(&format!(
            "UPDATE instances SET {} WHERE id = ?",
            sets.join(", ")
        ));
        let n = with_pool!(self, p => {
            let q = sqlx::query(&sql);
            bind_instance_fields!(q, i).bind(&i.id).execute(p).await?.rows_affected()
        });
        if n == 0 {
            return Err(DbError::NotFound {
                kind: "instance",
                id: i.id,
            });
        }
        Ok(i)
    }

    /// Renames a live instance.
    pub async fn instance_update_name(&self, id: &str, name: &str) -> Result<(), DbError> {
        let sql =
            self.sql("UPDATE instances SET name = ?, updated = ? WHERE id = ? AND deleted = FALSE");
        let n = with_pool!(self, p => sqlx::query(&sql).bind(name).bind(utc_now()).bind(id).execute(p).await?.rows_affected());
        if n == 0 {
            return Err(DbError::NotFound {
                kind: "instance",
                id: id.to_string(),
            });
        }
        Ok(())
    }

    /// The live replicas of `id` (instances whose `slave_of_id` is `id`), ordered by
    /// creation.
    pub async fn instance_replicas(&self, id: &str) -> Result<Vec<Instance>, DbError> {
        let sql = self.sql(&format!(
            "SELECT {COLS} FROM instances WHERE slave_of_id = ? AND deleted = FALSE ORDER BY created, id"
        ));
        Ok(with_pool!(self, p => sqlx::query_as(&sql).bind(id).fetch_all(p).await?))
    }

    /// Sets (or with `None` clears) the replication source of a live instance.
    pub async fn instance_update_slave_of(
        &self,
        id: &str,
        source: Option<&str>,
    ) -> Result<(), DbError> {
        let sql = self.sql(
            "UPDATE instances SET slave_of_id = ?, updated = ? WHERE id = ? AND deleted = FALSE",
        );
        let n = with_pool!(self, p => sqlx::query(&sql).bind(source).bind(utc_now()).bind(id).execute(p).await?.rows_affected());
        if n == 0 {
            return Err(DbError::NotFound {
                kind: "instance",
                id: id.to_string(),
            });
        }
        Ok(())
    }

    /// Sets the task of a live instance, only if its current task is `expected` (when given).
    ///
    /// Lost compare-and-set -> [`DbError::Conflict`]; no such instance -> `NotFound`.
    pub async fn instance_update_task(
        &self,
        id: &str,
        expected: Option<TaskStatus>,
        new: TaskStatus,
    ) -> Result<(), DbError> {
        let (cond, code) = match expected {
            Some(e) => (" AND task_id = ?", e.code()),
            None => ("", 0),
        };
        let sql = self.sql(&format!(
            "UPDATE instances SET task_id = ?, task_description = ?, updated = ? WHERE id = ? AND deleted = FALSE{cond}"
        ));
        let n = with_pool!(self, p => {
            let mut q = sqlx::query(&sql).bind(new.code()).bind(new.db_text()).bind(utc_now()).bind(id);
            if expected.is_some() {
                q = q.bind(code);
            }
            q.execute(p).await?.rows_affected()
        });
        if n == 0 {
            let cur = self.instance_get(id).await?;
            return Err(DbError::Conflict(format!(
                "instance {id}: task is {}, expected {}",
                cur.task_status().map(|t| t.name()).unwrap_or("unknown"),
                expected.map(|t| t.name()).unwrap_or("any")
            )));
        }
        Ok(())
    }

    /// Claims the create of a live instance for this taskmanager: sets `task_start_time`
    /// to now if it is not set yet. True when this call set it; false when another claim
    /// came first, or the instance is missing or deleted. One row update, so of any number
    /// of concurrent claims exactly one wins.
    pub async fn instance_claim_task_start(&self, id: &str) -> Result<bool, DbError> {
        let sql = self.sql("UPDATE instances SET task_start_time = ? WHERE id = ? AND deleted = FALSE AND task_start_time IS NULL");
        let n = with_pool!(self, p => sqlx::query(&sql).bind(utc_now()).bind(id).execute(p).await?.rows_affected());
        Ok(n == 1)
    }

    /// Clears `task_start_time` (the work it claimed is over), deleted or not; no error
    /// when the instance does not exist.
    pub async fn instance_clear_task_start(&self, id: &str) -> Result<(), DbError> {
        let sql = self.sql("UPDATE instances SET task_start_time = NULL WHERE id = ?");
        with_pool!(self, p => { sqlx::query(&sql).bind(id).execute(p).await?; });
        Ok(())
    }

    /// Live instances whose task is `task` and whose work began before `started_before`
    /// (`task_start_time`, or `created` when unclaimed), ordered by id: the creates a
    /// taskmanager that stopped left behind.
    pub async fn instances_in_task(
        &self,
        task: TaskStatus,
        started_before: NaiveDateTime,
    ) -> Result<Vec<Instance>, DbError> {
        let sql = self.sql(&format!(
            "SELECT {COLS} FROM instances WHERE deleted = FALSE AND task_id = ? AND COALESCE(task_start_time, created) < ? ORDER BY id"
        ));
        Ok(
            with_pool!(self, p => sqlx::query_as(&sql).bind(task.code()).bind(started_before).fetch_all(p).await?),
        )
    }

    /// Soft-deletes an instance, marks its service status DELETED, soft-deletes its
    /// fault and removes its stored addresses, in one transaction. Already deleted or
    /// missing -> `NotFound`.
    pub async fn instance_soft_delete(&self, id: &str) -> Result<(), DbError> {
        let now = utc_now();
        let del = self.sql("UPDATE instances SET deleted = TRUE, deleted_at = ?, updated = ? WHERE id = ? AND deleted = FALSE");
        let st = self.sql("UPDATE service_statuses SET status_id = ?, status_description = ?, updated_at = ? WHERE instance_id = ?");
        let fault = self.sql("UPDATE instance_faults SET deleted = TRUE, deleted_at = ?, updated = ? WHERE instance_id = ? AND deleted = FALSE");
        let addresses = self.sql("DELETE FROM instance_addresses WHERE instance_id = ?");
        with_pool!(self, p => {
            let mut tx = begin_write!(self, p);
            let n = sqlx::query(&del).bind(now).bind(now).bind(id).execute(&mut *tx).await?.rows_affected();
            if n == 0 {
                return Err(DbError::NotFound { kind: "instance", id: id.to_string() });
            }
            sqlx::query(&st).bind(ServiceStatus::Deleted.code()).bind(ServiceStatus::Deleted.description()).bind(now).bind(id).execute(&mut *tx).await?;
            sqlx::query(&fault).bind(now).bind(now).bind(id).execute(&mut *tx).await?;
            sqlx::query(&addresses).bind(id).execute(&mut *tx).await?;
            tx.commit().await?;
        });
        Ok(())
    }
    /// One page of the management instance list (api.md §19.1): every project, or only
    /// `project`; live and deleted instances (`deleted: None`), or only deleted
    /// (`Some(true)`) or live (`Some(false)`) ones; cluster members only when
    /// `include_clustered`. Ordered by `updated` (most recent first, never-updated rows
    /// last), then id; `offset` rows skipped. `next_marker` is the offset of the next page
    /// when more rows follow.
    pub async fn instance_list_admin(
        &self,
        deleted: Option<bool>,
        project: Option<&str>,
        include_clustered: bool,
        limit: usize,
        offset: usize,
    ) -> Result<Page<Instance>, DbError> {
        let mut filters = vec!["1 = 1".to_string()];
        if deleted.is_some() {
            filters.push("deleted = ?".into());
        }
        if project.is_some() {
            filters.push("tenant_id = ?".into());
        }
        if !include_clustered {
            filters.push("cluster_id IS NULL".into());
        }
        let fetch = limit.saturating_add(1).min(i32::MAX as usize) as i64;
        let skip = offset.min(i64::MAX as usize) as i64;
        let sql = self.sql(&format!(
            "SELECT {COLS} FROM instances WHERE {} \
             ORDER BY CASE WHEN updated IS NULL THEN 1 ELSE 0 END, updated DESC, id LIMIT ? OFFSET ?",
            filters.join(" AND ")
        ));
        let rows: Vec<Instance> = with_pool!(self, p => {
            let mut q = sqlx::query_as(&sql);
            if let Some(d) = deleted {
                q = q.bind(d);
            }
            if let Some(t) = project {
                q = q.bind(t);
            }
            q.bind(fetch).bind(skip).fetch_all(p).await?
        });
        let next = offset.saturating_add(limit).to_string();
        Ok(Page::from_rows(rows, limit, |_| next.clone()))
    }
}
