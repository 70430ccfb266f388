//! `flavors`: our table of flavors served by the local compute driver (Nova keeps them in
//! production). Soft-deleted; a name is unique among live flavors.

use chrono::NaiveDateTime;

use crate::db::{new_id, utc_now, Db};
use crate::error::{map_unique, DbError};
use crate::repo::begin_write;

/// A row of `flavors`.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Flavor {
    /// Flavor id (any string; UUID when not given).
    pub id: String,
    /// Name, unique among live flavors.
    pub name: String,
    /// Memory in MB.
    pub ram: i32,
    /// Virtual CPUs.
    pub vcpus: i32,
    /// Root disk in GB.
    pub disk: i32,
    /// Ephemeral disk in GB.
    pub ephemeral: i32,
    /// Creation time (UTC).
    pub created: Option<NaiveDateTime>,
    /// Last update (UTC).
    pub updated: Option<NaiveDateTime>,
    /// Soft-deleted.
    pub deleted: bool,
    /// Deletion time.
    pub deleted_at: Option<NaiveDateTime>,
}

/// Input of [`Db::flavor_create`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewFlavor {
    /// Explicit id, or `None` for a new UUID.
    pub id: Option<String>,
    /// Name.
    pub name: String,
    /// Memory in MB (> 0).
    pub ram: i32,
    /// Virtual CPUs (> 0).
    pub vcpus: i32,
    /// Root disk in GB (>= 0).
    pub disk: i32,
    /// Ephemeral disk in GB (>= 0).
    pub ephemeral: i32,
}

const COLS: &str = "id, name, ram, vcpus, disk, ephemeral, created, updated, deleted, deleted_at";

impl Db {
    /// Creates a flavor. Bad sizes -> [`DbError::Invalid`]; a live flavor with that name or
    /// any flavor with that id -> [`DbError::AlreadyExists`].
    pub async fn flavor_create(&self, new: &NewFlavor) -> Result<Flavor, DbError> {
        if new.name.trim().is_empty() {
            return Err(DbError::Invalid("flavor name must not be empty".into()));
        }
        if new.id.as_deref().is_some_and(|i| i.trim().is_empty()) {
            return Err(DbError::Invalid("flavor id must not be empty".into()));
        }
        if new.ram <= 0 {
            return Err(DbError::Invalid(format!(
                "flavor ram must be a positive number of MB, got {}",
                new.ram
            )));
        }
        if new.vcpus <= 0 {
            return Err(DbError::Invalid(format!(
                "flavor vcpus must be positive, got {}",
                new.vcpus
            )));
        }
        if new.disk < 0 || new.ephemeral < 0 {
            return Err(DbError::Invalid(
                "flavor disk and ephemeral sizes must not be negative".into(),
            ));
        }
        let now = utc_now();
        let f = Flavor {
            id: new.id.clone().unwrap_or_else(new_id),
            name: new.name.clone(),
            ram: new.ram,
            vcpus: new.vcpus,
            disk: new.disk,
            ephemeral: new.ephemeral,
            created: Some(now),
            updated: Some(now),
            deleted: false,
            deleted_at: None,
        };
        let by_name = self.sql("SELECT id FROM flavors WHERE name = ? AND deleted = FALSE");
        let by_id = self.sql("SELECT id FROM flavors WHERE id = ?");
        let ins = self.sql(&format!(
            "INSERT INTO flavors ({COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, FALSE, NULL)"
        ));
        with_pool!(self, p => {
            let mut tx = begin_write!(self, p);
            let dup: Option<(String,)> = sqlx::query_as(&by_name).bind(&f.name).fetch_optional(&mut *tx).await?;
            if dup.is_some() {
                return Err(DbError::AlreadyExists { kind: "flavor", id: f.name.clone() });
            }
            let dup: Option<(String,)> = sqlx::query_as(&by_id).bind(&f.id).fetch_optional(&mut *tx).await?;
            if dup.is_some() {
                return Err(DbError::AlreadyExists { kind: "flavor", id: f.id.clone() });
            }
            sqlx::query(&ins).bind(&f.id).bind(&f.name).bind(f.ram).bind(f.vcpus).bind(f.disk).bind(f.ephemeral)
                .bind(f.created).bind(f.updated).execute(&mut *tx).await.map_err(map_unique("flavor", &f.id))?;
            tx.commit().await?;
        });
        Ok(f)
    }

    /// A live flavor by id.
    pub async fn flavor_get(&self, id: &str) -> Result<Flavor, DbError> {
        let sql = self.sql(&format!(
            "SELECT {COLS} FROM flavors WHERE id = ? AND deleted = FALSE"
        ));
        let r: Option<Flavor> =
            with_pool!(self, p => sqlx::query_as(&sql).bind(id).fetch_optional(p).await?);
        r.ok_or_else(|| DbError::NotFound {
            kind: "flavor",
            id: id.to_string(),
        })
    }

    /// Live flavors, smallest first (by ram, then id).
    pub async fn flavor_list(&self) -> Result<Vec<Flavor>, DbError> {
        let sql = format!("SELECT {COLS} FROM flavors WHERE deleted = FALSE ORDER BY ram, id");
        Ok(with_pool!(self, p => sqlx::query_as(&sql).fetch_all(p).await?))
    }

    /// Soft-deletes a live flavor; missing -> [`DbError::NotFound`].
    pub async fn flavor_delete(&self, id: &str) -> Result<(), DbError> {
        let sql = self.sql("UPDATE flavors SET deleted = TRUE, deleted_at = ?, updated = ? WHERE id = ? AND deleted = FALSE");
        let now = utc_now();
        let n = with_pool!(self, p => sqlx::query(&sql).bind(now).bind(now).bind(id).execute(p).await?.rows_affected());
        if n == 0 {
            return Err(DbError::NotFound {
                kind: "flavor",
                id: id.to_string(),
            });
        }
        Ok(())
    }
}
