//! `datastores`, `datastore_versions` and `datastore_version_metadata`.
//!
//! A datastore (e.g. `mysql`) has versions (`5.7.29`); a version is identified by
//! (datastore, name, version number) and names the guest manager, image and replication
//! strategy. Metadata rows restrict the flavors and volume types a version may use.

use crate::db::{new_id, utc_now, Db};
use crate::error::{map_unique, DbError};
use crate::repo::begin_write;

/// Metadata key restricting the flavors of a datastore version.
pub const METADATA_FLAVOR: &str = "flavor";
/// Metadata key restricting the volume types of a datastore version.
pub const METADATA_VOLUME_TYPE: &str = "volume_type";

/// A row of `datastores`.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Datastore {
    /// UUID.
    pub id: String,
    /// Unique name, e.g. `mysql`.
    pub name: String,
    /// Id of the default (active) version, if any.
    pub default_version_id: Option<String>,
}

/// A row of `datastore_versions`.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DatastoreVersion {
    /// UUID.
    pub id: String,
    /// Owning datastore.
    pub datastore_id: String,
    /// Version name shown to users.
    pub name: String,
    /// Image id (empty or `None` when image tags are used).
    pub image_id: Option<String>,
    /// Space separated packages (legacy).
    pub packages: Option<String>,
    /// Whether users may create instances of this version.
    pub active: bool,
    /// Guest manager name (`mysql`, `mariadb`, `postgresql`).
    pub manager: Option<String>,
    /// Comma separated image tags.
    pub image_tags: Option<String>,
    /// Version number (image tag), defaults to the name.
    pub version: Option<String>,
    /// Guest manager class path.
    pub registry_ext: String,
    /// Replication strategy class path.
    pub repl_strategy: String,
}

/// What `datastore_version_update` creates or updates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatastoreVersionSpec {
    /// Name of an existing datastore.
    pub datastore: String,
    /// Version name.
    pub name: String,
    /// Guest manager.
    pub manager: String,
    /// Image id (`""` for none).
    pub image_id: String,
    /// Packages (`""` for none).
    pub packages: String,
    /// Active flag.
    pub active: bool,
    /// Image tags, comma separated (`None` for none).
    pub image_tags: Option<String>,
    /// Version number; `None` means "same as the name".
    pub version: Option<String>,
    /// Guest manager class (default from the manager, see [`default_registry_ext`]).
    pub registry_ext: Option<String>,
    /// Replication strategy class (default from the manager, see [`default_repl_strategy`]).
    pub repl_strategy: Option<String>,
}

/// Trove's default guest manager class for a manager name (`''` for unknown ones).
pub fn default_registry_ext(manager: &str) -> &'static str {
    match manager {
        "mysql" => "trove.guestagent.datastore.mysql.manager.Manager",
        "mariadb" => "trove.guestagent.datastore.mariadb.manager.Manager",
        "postgresql" => "trove.guestagent.datastore.postgres.manager.PostgresManager",
        _ => "",
    }
}

/// Trove's default replication strategy (`<namespace>.<class>`) for a manager name.
pub fn default_repl_strategy(manager: &str) -> &'static str {
    match manager {
        "mysql" | "percona" | "pxc" => {
            "trove.guestagent.strategies.replication.mysql_gtid.MysqlGTIDReplication"
        }
        "mariadb" => "trove.guestagent.strategies.replication.mariadb_gtid.MariaDBGTIDReplication",
        "postgresql" => {
            "trove.guestagent.strategies.replication.postgresql.PostgresqlReplicationStreaming"
        }
        "redis" => {
            "trove.guestagent.strategies.replication.experimental.redis_sync.RedisSyncReplication"
        }
        "mongodb" => "trove.guestagent.strategies.replication.experimental.mongo_impl.Replication",
        _ => ".",
    }
}

const DS_COLS: &str = "id, name, default_version_id";
const DV_COLS: &str = "id, datastore_id, name, image_id, packages, active, manager, image_tags, version, registry_ext, repl_strategy";

/// Picks the one version among `rows` matching `id_or_name`: an id match wins, then a name
/// match (that must be unique).
fn pick_version(
    rows: Vec<DatastoreVersion>,
    id_or_name: &str,
) -> Result<DatastoreVersion, DbError> {
    if let Some(v) = rows.iter().find(|v| v.id == id_or_name) {
        return Ok(v.clone());
    }
    let mut named: Vec<DatastoreVersion> =
        rows.into_iter().filter(|v| v.name == id_or_name).collect();
    match named.len() {
        0 => Err(DbError::NotFound {
            kind: "datastore version",
            id: id_or_name.to_string(),
        }),
        1 => Ok(named.remove(0)),
        _ => Err(DbError::NoUniqueMatch {
            kind: "datastore version",
            name: id_or_name.to_string(),
        }),
    }
}

impl Db {
    /// Loads a datastore by id, else by name.
    pub async fn datastore_get(&self, id_or_name: &str) -> Result<Datastore, DbError> {
        let sql = self.sql(&format!(
            "SELECT {DS_COLS} FROM datastores WHERE id = ? OR name = ?"
        ));
        let rows: Vec<Datastore> = with_pool!(self, p => sqlx::query_as(&sql).bind(id_or_name).bind(id_or_name).fetch_all(p).await?);
        rows.iter()
            .find(|d| d.id == id_or_name)
            .or_else(|| rows.first())
            .cloned()
            .ok_or_else(|| DbError::NotFound {
                kind: "datastore",
                id: id_or_name.to_string(),
            })
    }

    /// All datastores, by name.
    pub async fn datastore_list(&self) -> Result<Vec<Datastore>, DbError> {
        let sql = format!("SELECT {DS_COLS} FROM datastores ORDER BY name");
        Ok(with_pool!(self, p => sqlx::query_as(&sql).fetch_all(p).await?))
    }

    /// Creates the datastore `name` if missing and sets its default version
    /// (`trove-manage datastore_update`), in one transaction.
    ///
    /// `default_version` is the id or name of an **active** version of that datastore, or
    /// `None` to clear it. On error nothing is written.
    pub async fn datastore_update(
        &self,
        name: &str,
        default_version: Option<&str>,
    ) -> Result<Datastore, DbError> {
        let sel = self.sql(&format!("SELECT {DS_COLS} FROM datastores WHERE name = ?"));
        let ins =
            self.sql("INSERT INTO datastores (id, name, default_version_id) VALUES (?, ?, NULL)");
        let vsel = self.sql(&format!(
            "SELECT {DV_COLS} FROM datastore_versions WHERE datastore_id = ?"
        ));
        let upd = self.sql("UPDATE datastores SET default_version_id = ? WHERE id = ?");
        let ds = with_pool!(self, p => {
            let mut tx = begin_write!(self, p);
            let existing: Option<Datastore> = sqlx::query_as(&sel).bind(name).fetch_optional(&mut *tx).await?;
            let mut ds = match existing {
                Some(d) => d,
                None => {
                    let id = new_id();
                    sqlx::query(&ins).bind(&id).bind(name).execute(&mut *tx).await.map_err(map_unique("datastore", name))?;
                    Datastore { id, name: name.to_string(), default_version_id: None }
                }
            };
            let version_id = match default_version {
                None => None,
                Some(v) => {
                    let rows: Vec<DatastoreVersion> = sqlx::query_as(&vsel).bind(&ds.id).fetch_all(&mut *tx).await?;
                    let ver = pick_version(rows, v)?;
                    if !ver.active {
                        return Err(DbError::Invalid(format!(
                            "Datastore version '{v}' of datastore '{name}' is not active."
                        )));
                    }
                    Some(ver.id)
                }
            };
            sqlx::query(&upd).bind(&version_id).bind(&ds.id).execute(&mut *tx).await?;
            tx.commit().await?;
            ds.default_version_id = version_id;
            ds
        });
        Ok(ds)
    }

    /// Sets (or clears) the default version of a datastore by ids, without checks.
    pub async fn datastore_set_default_version(
        &self,
        datastore_id: &str,
        version_id: Option<&str>,
    ) -> Result<(), DbError> {
        let sql = self.sql("UPDATE datastores SET default_version_id = ? WHERE id = ?");
        let n = with_pool!(self, p => sqlx::query(&sql).bind(version_id).bind(datastore_id).execute(p).await?.rows_affected());
        if n == 0 {
            return Err(DbError::NotFound {
                kind: "datastore",
                id: datastore_id.to_string(),
            });
        }
        Ok(())
    }

    /// Loads a datastore version by id.
    pub async fn datastore_version_get(&self, id: &str) -> Result<DatastoreVersion, DbError> {
        let sql = self.sql(&format!(
            "SELECT {DV_COLS} FROM datastore_versions WHERE id = ?"
        ));
        let r: Option<DatastoreVersion> =
            with_pool!(self, p => sqlx::query_as(&sql).bind(id).fetch_optional(p).await?);
        r.ok_or_else(|| DbError::NotFound {
            kind: "datastore version",
            id: id.to_string(),
        })
    }

    /// Finds a version of a datastore by id or name, optionally narrowed by version number.
    ///
    /// Several versions sharing the name (different numbers) and no `version` given ->
    /// [`DbError::NoUniqueMatch`], as Trove does.
    pub async fn datastore_version_find(
        &self,
        datastore_id: &str,
        id_or_name: &str,
        version: Option<&str>,
    ) -> Result<DatastoreVersion, DbError> {
        let mut rows = self.datastore_version_list(datastore_id, false).await?;
        if let Some(num) = version {
            rows.retain(|v| v.id == id_or_name || v.version.as_deref() == Some(num));
        }
        pick_version(rows, id_or_name)
    }

    /// Versions of a datastore (only active ones when `only_active`), by name then number.
    pub async fn datastore_version_list(
        &self,
        datastore_id: &str,
        only_active: bool,
    ) -> Result<Vec<DatastoreVersion>, DbError> {
        let filter = if only_active {
            " AND active = TRUE"
        } else {
            ""
        };
        let sql = self.sql(&format!(
            "SELECT {DV_COLS} FROM datastore_versions WHERE datastore_id = ?{filter} ORDER BY name, version, id"
        ));
        Ok(with_pool!(self, p => sqlx::query_as(&sql).bind(datastore_id).fetch_all(p).await?))
    }

    /// Every datastore version of every datastore.
    pub async fn datastore_version_list_all(&self) -> Result<Vec<DatastoreVersion>, DbError> {
        let sql = format!(
            "SELECT {DV_COLS} FROM datastore_versions ORDER BY datastore_id, name, version, id"
        );
        Ok(with_pool!(self, p => sqlx::query_as(&sql).fetch_all(p).await?))
    }

    /// Creates or updates the version identified by (datastore, name, version number)
    /// (`trove-manage datastore_version_update`). The datastore must exist.
    pub async fn datastore_version_upsert(
        &self,
        spec: &DatastoreVersionSpec,
    ) -> Result<DatastoreVersion, DbError> {
        let ds = self.datastore_get(&spec.datastore).await?;
        let number = spec.version.clone().unwrap_or_else(|| spec.name.clone());
        let mut row = DatastoreVersion {
            id: new_id(),
            datastore_id: ds.id.clone(),
            name: spec.name.clone(),
            image_id: Some(spec.image_id.clone()),
            packages: Some(spec.packages.clone()),
            active: spec.active,
            manager: Some(spec.manager.clone()),
            image_tags: spec.image_tags.clone().filter(|t| !t.is_empty()),
            version: Some(number.clone()),
            registry_ext: spec
                .registry_ext
                .clone()
                .unwrap_or_else(|| default_registry_ext(&spec.manager).to_string()),
            repl_strategy: spec
                .repl_strategy
                .clone()
                .unwrap_or_else(|| default_repl_strategy(&spec.manager).to_string()),
        };
        let sel = self.sql(
            "SELECT id FROM datastore_versions WHERE datastore_id = ? AND name = ? AND version = ?",
        );
        let ins = self.sql(&format!(
            "INSERT INTO datastore_versions ({DV_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        ));
        let upd = self.sql(
            "UPDATE datastore_versions SET image_id = ?, packages = ?, active = ?, manager = ?, \
             image_tags = ?, registry_ext = ?, repl_strategy = ? WHERE id = ?",
        );
        with_pool!(self, p => {
            let mut tx = begin_write!(self, p);
            let existing: Option<(String,)> = sqlx::query_as(&sel)
                .bind(&ds.id).bind(&spec.name).bind(&number)
                .fetch_optional(&mut *tx).await?;
            match existing {
                Some((id,)) => {
                    row.id = id;
                    sqlx::query(&upd)
                        .bind(&row.image_id).bind(&row.packages).bind(row.active).bind(&row.manager)
                        .bind(&row.image_tags).bind(&row.registry_ext).bind(&row.repl_strategy).bind(&row.id)
                        .execute(&mut *tx).await?;
                }
                None => {
                    sqlx::query(&ins)
                        .bind(&row.id).bind(&row.datastore_id).bind(&row.name).bind(&row.image_id)
                        .bind(&row.packages).bind(row.active).bind(&row.manager).bind(&row.image_tags)
                        .bind(&row.version).bind(&row.registry_ext).bind(&row.repl_strategy)
                        .execute(&mut *tx).await
                        .map_err(map_unique("datastore version", &spec.name))?;
                }
            }
            tx.commit().await?;
        });
        Ok(row)
    }

    /// Sets the active flag of a version.
    pub async fn datastore_version_set_active(
        &self,
        id: &str,
        active: bool,
    ) -> Result<(), DbError> {
        let sql = self.sql("UPDATE datastore_versions SET active = ? WHERE id = ?");
        let n = with_pool!(self, p => sqlx::query(&sql).bind(active).bind(id).execute(p).await?.rows_affected());
        if n == 0 {
            // MySQL reports 0 changed rows when the value was already set; check existence.
            self.datastore_version_get(id).await?;
        }
        Ok(())
    }

    /// Associates values (flavor ids or volume type names) with a version under `key`
    /// ([`METADATA_FLAVOR`] or [`METADATA_VOLUME_TYPE`]), in one transaction.
    ///
    /// A soft-deleted association is revived; a live one -> [`DbError::AlreadyExists`].
    pub async fn datastore_version_metadata_add(
        &self,
        version_id: &str,
        key: &str,
        values: &[String],
    ) -> Result<(), DbError> {
        self.datastore_version_get(version_id).await?;
        let kind = metadata_kind(key);
        let sel = self.sql("SELECT id, deleted FROM datastore_version_metadata WHERE datastore_version_id = ? AND `key` = ? AND value = ?");
        let revive = self.sql("UPDATE datastore_version_metadata SET deleted = FALSE, deleted_at = NULL, updated_at = ? WHERE id = ?");
        let ins = self.sql("INSERT INTO datastore_version_metadata (id, datastore_version_id, `key`, value, created, deleted, updated_at) VALUES (?, ?, ?, ?, ?, FALSE, ?)");
        let now = utc_now();
        with_pool!(self, p => {
            let mut tx = begin_write!(self, p);
            for v in values {
                let existing: Option<(String, bool)> = sqlx::query_as(&sel)
                    .bind(version_id).bind(key).bind(v).fetch_optional(&mut *tx).await?;
                match existing {
                    Some((_, false)) => {
                        return Err(DbError::AlreadyExists { kind, id: v.clone() });
                    }
                    Some((id, true)) => {
                        sqlx::query(&revive).bind(now).bind(&id).execute(&mut *tx).await?;
                    }
                    None => {
                        sqlx::query(&ins).bind(new_id()).bind(version_id).bind(key).bind(v).bind(now).bind(now)
                            .execute(&mut *tx).await.map_err(map_unique(kind, v))?;
                    }
                }
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Soft-deletes one live association; none -> [`DbError::NotFound`].
    pub async fn datastore_version_metadata_delete(
        &self,
        version_id: &str,
        key: &str,
        value: &str,
    ) -> Result<(), DbError> {
        let sql = self.sql("UPDATE datastore_version_metadata SET deleted = TRUE, deleted_at = ?, updated_at = ? WHERE datastore_version_id = ? AND `key` = ? AND value = ? AND deleted = FALSE");
        let now = utc_now();
        let n = with_pool!(self, p => sqlx::query(&sql).bind(now).bind(now).bind(version_id).bind(key).bind(value).execute(p).await?.rows_affected());
        if n == 0 {
            return Err(DbError::NotFound {
                kind: metadata_kind(key),
                id: value.to_string(),
            });
        }
        Ok(())
    }

    /// Live associated values of a version under `key`, sorted.
    pub async fn datastore_version_metadata_list(
        &self,
        version_id: &str,
        key: &str,
    ) -> Result<Vec<String>, DbError> {
        let sql = self.sql("SELECT value FROM datastore_version_metadata WHERE datastore_version_id = ? AND `key` = ? AND deleted = FALSE ORDER BY value");
        let rows: Vec<(Option<String>,)> = with_pool!(self, p => sqlx::query_as(&sql).bind(version_id).bind(key).fetch_all(p).await?);
        Ok(rows.into_iter().filter_map(|r| r.0).collect())
    }
}

fn metadata_kind(key: &str) -> &'static str {
    match key {
        METADATA_FLAVOR => "flavor association",
        METADATA_VOLUME_TYPE => "volume type association",
        _ => "datastore version metadata",
    }
}

/// What still uses a datastore version that an admin wants to delete.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct VersionUsers {
    /// Instances not deleted.
    instances: i64,
    /// Backups not deleted.
    backups: i64,
    /// Configuration groups not deleted.
    configurations: i64,
    /// Clusters (deleted or not: their rows cannot lose the version).
    clusters: i64,
}

impl VersionUsers {
    /// Whether nothing uses the version.
    fn is_empty(&self) -> bool {
        *self == VersionUsers::default()
    }
}

impl Db {
    /// Deletes a datastore version (`DELETE /mgmt/datastore-versions/{id}`), in one
    /// transaction: refused with [`DbError::Conflict`] (nothing changed) while a live
    /// instance, backup, configuration group or any cluster uses it; otherwise its
    /// configuration parameters, metadata and capability overrides go with it, deleted
    /// instances and backups keep their rows without the version, and the datastore loses
    /// it as its default. Unknown id -> [`DbError::NotFound`].
    pub async fn datastore_version_delete(&self, id: &str) -> Result<(), DbError> {
        let sel = self.sql("SELECT datastore_id FROM datastore_versions WHERE id = ?");
        let counts = [
            self.sql("SELECT COUNT(*) FROM instances WHERE datastore_version_id = ? AND (deleted IS NULL OR deleted = FALSE)"),
            self.sql("SELECT COUNT(*) FROM backups WHERE datastore_version_id = ? AND (deleted IS NULL OR deleted = FALSE)"),
            self.sql("SELECT COUNT(*) FROM configurations WHERE datastore_version_id = ? AND deleted = FALSE"),
            self.sql("SELECT COUNT(*) FROM clusters WHERE datastore_version_id = ?"),
        ];
        let cleanup = [
            self.sql(
                "UPDATE instances SET datastore_version_id = NULL WHERE datastore_version_id = ?",
            ),
            self.sql(
                "UPDATE backups SET datastore_version_id = NULL WHERE datastore_version_id = ?",
            ),
            self.sql(
                "DELETE FROM datastore_configuration_parameters WHERE datastore_version_id = ?",
            ),
            self.sql("DELETE FROM datastore_version_metadata WHERE datastore_version_id = ?"),
            self.sql("DELETE FROM capability_overrides WHERE datastore_version_id = ?"),
            self.sql(
                "UPDATE datastores SET default_version_id = NULL WHERE default_version_id = ?",
            ),
            self.sql("DELETE FROM datastore_versions WHERE id = ?"),
        ];
        with_pool!(self, p => {
            let mut tx = begin_write!(self, p);
            let found: Option<(Option<String>,)> =
                sqlx::query_as(&sel).bind(id).fetch_optional(&mut *tx).await?;
            if found.is_none() {
                return Err(DbError::NotFound { kind: "datastore version", id: id.to_string() });
            }
            let mut n = [0i64; 4];
            for (slot, sql) in n.iter_mut().zip(&counts) {
                let (c,): (i64,) = sqlx::query_as(sql).bind(id).fetch_one(&mut *tx).await?;
                *slot = c;
            }
            let users = VersionUsers {
                instances: n[0],
                backups: n[1],
                configurations: n[2],
                clusters: n[3],
            };
            if !users.is_empty() {
                return Err(DbError::Conflict(version_in_use_message(id, &users)));
            }
            for sql in &cleanup {
                sqlx::query(sql).bind(id).execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Renames a datastore version, in one transaction: another version of the same
    /// datastore with the new name and the same version number -> [`DbError::AlreadyExists`]
    /// (nothing changed). Unknown id -> [`DbError::NotFound`].
    pub async fn datastore_version_rename(&self, id: &str, name: &str) -> Result<(), DbError> {
        let sel = self.sql(&format!(
            "SELECT {DV_COLS} FROM datastore_versions WHERE id = ?"
        ));
        let clash = self.sql(
            "SELECT COUNT(*) FROM datastore_versions WHERE datastore_id = ? AND name = ? AND version = ? AND id <> ?",
        );
        let upd = self.sql("UPDATE datastore_versions SET name = ?, version = ? WHERE id = ?");
        with_pool!(self, p => {
            let mut tx = begin_write!(self, p);
            let row: Option<DatastoreVersion> =
                sqlx::query_as(&sel).bind(id).fetch_optional(&mut *tx).await?;
            let Some(row) = row else {
                return Err(DbError::NotFound { kind: "datastore version", id: id.to_string() });
            };
            // A version stored without a number is numbered by its name: keep the number.
            let number = row.version.clone().unwrap_or_else(|| row.name.clone());
            let (c,): (i64,) = sqlx::query_as(&clash)
                .bind(&row.datastore_id).bind(name).bind(&number).bind(id)
                .fetch_one(&mut *tx).await?;
            if c > 0 {
                return Err(DbError::AlreadyExists { kind: "datastore version", id: name.to_string() });
            }
            sqlx::query(&upd).bind(name).bind(&number).bind(id).execute(&mut *tx).await
                .map_err(map_unique("datastore version", name))?;
            tx.commit().await?;
        });
        Ok(())
    }
}

/// Why a version cannot be deleted, naming what uses it.
fn version_in_use_message(id: &str, u: &VersionUsers) -> String {
    let parts: Vec<String> = [
        (u.instances, "instance(s)"),
        (u.backups, "backup(s)"),
        (u.configurations, "configuration group(s)"),
        (u.clusters, "cluster(s)"),
    ]
    .iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, what)| format!("{n} {what}"))
    .collect();
    format!(
        "Datastore version {id} is in use by {} and cannot be deleted.",
        parts.join(", ")
    )
}
