//! Schema migrations: an ordered list, applied by our own runner.
//!
//! Why not sqlx's migrator: MySQL commits every DDL statement implicitly, so a migration
//! that fails halfway would leave a half-built schema. Here every MySQL step carries the
//! statement that undoes it; when a step fails, the steps already applied are undone in
//! reverse order and the version is not recorded. SQLite and PostgreSQL run each migration
//! inside one transaction (their DDL is transactional).
//!
//! The applied versions are rows of `trove_schema_version(version, name, applied_at)`.
//! `db_sync` ([`Db::migrate`]) is idempotent and serialised between processes: MySQL takes
//! `GET_LOCK('trove_db_sync.<database>')`, PostgreSQL `pg_advisory_lock`, SQLite runs each
//! migration under `BEGIN IMMEDIATE` and re-checks the version inside it.
//!
//! Version 1 is Trove's schema at alembic head `95418fe2a1c8` (it also records that
//! revision in `alembic_version`); version 2 adds `flavors` for the local compute driver;
//! version 3 adds `instance_addresses` (the addresses the taskmanager learned); version 4
//! adds the nullable `backups.fault_message` (why a backup failed, for the tenant).

use sqlx::Connection;

use crate::db::{utc_now, Backend, Db};
use crate::error::DbError;
use crate::schema;

/// SQL taking the cross-process db_sync lock on one connection (none on SQLite).
fn lock_sql(b: Backend) -> Option<&'static str> {
    match b {
        Backend::Sqlite => None,
        Backend::MySql => Some(
            "SELECT CAST(COALESCE(GET_LOCK(CONCAT('trove_db_sync.', COALESCE(DATABASE(), '')), 600), 0) AS SIGNED)",
        ),
        Backend::Postgres => {
            Some("SELECT CAST(1 AS BIGINT) FROM (SELECT pg_advisory_lock(7428135090)) AS l")
        }
    }
}

/// SQL releasing the lock of [`lock_sql`].
fn unlock_sql(b: Backend) -> Option<&'static str> {
    match b {
        Backend::Sqlite => None,
        Backend::MySql => {
            Some("DO RELEASE_LOCK(CONCAT('trove_db_sync.', COALESCE(DATABASE(), '')))")
        }
        Backend::Postgres => Some("SELECT CAST(pg_advisory_unlock(7428135090) AS INTEGER)"),
    }
}

/// Takes the db_sync lock on `$conn` (a `&mut` connection of the pool in scope).
macro_rules! take_lock {
    ($b:expr, $conn:expr) => {
        if let Some(sql) = lock_sql($b) {
            let (got,): (i64,) = sqlx::query_as(sql).fetch_one($conn).await?;
            if got != 1 {
                return Err(DbError::Invalid(
                    "timed out waiting for another db_sync to finish".into(),
                ));
            }
        }
    };
}

/// Releases the db_sync lock on `$conn`; evaluates to a `Result`.
macro_rules! release_lock {
    ($b:expr, $conn:expr) => {
        match unlock_sql($b) {
            Some(sql) => sqlx::query(sql).execute($conn).await.map(|_| ()),
            None => Ok(()),
        }
    };
}

/// Trove's alembic head revision that version 1 of our schema corresponds to.
pub const ALEMBIC_HEAD: &str = "95418fe2a1c8";

/// One DDL statement of a migration and, for MySQL, the statement that undoes it.
#[derive(Debug, Clone)]
pub struct Step {
    /// Statement to apply.
    pub up: String,
    /// Statement undoing `up` (used on MySQL when a later step of the same migration fails).
    pub down: Option<String>,
}

impl Step {
    /// A step with its undo statement.
    pub fn new(up: impl Into<String>, down: Option<String>) -> Step {
        Step {
            up: up.into(),
            down,
        }
    }
}

/// One schema version.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// Strictly increasing version number.
    pub version: i64,
    /// Short description, recorded with the version.
    pub name: &'static str,
    /// The statements for a backend.
    pub steps: fn(Backend) -> Vec<Step>,
}

fn v1_steps(b: Backend) -> Vec<Step> {
    let mut steps: Vec<Step> = schema::trove_tables()
        .iter()
        .flat_map(|t| t.create(b))
        .collect();
    steps.push(Step::new(
        format!("INSERT INTO alembic_version (version_num) VALUES ('{ALEMBIC_HEAD}')"),
        Some("DELETE FROM alembic_version".to_string()),
    ));
    steps
}

fn v2_steps(b: Backend) -> Vec<Step> {
    schema::flavors_table().create(b)
}

fn v3_steps(b: Backend) -> Vec<Step> {
    schema::instance_addresses_table().create(b)
}

fn v4_steps(b: Backend) -> Vec<Step> {
    vec![schema::backup_fault_message_column().add_to(b, "backups")]
}

/// The migrations of this release, in order.
pub fn migrations() -> Vec<Migration> {
    vec![
        Migration {
            version: 1,
            name: "trove schema (alembic 95418fe2a1c8)",
            steps: v1_steps,
        },
        Migration {
            version: 2,
            name: "flavors for the local compute driver",
            steps: v2_steps,
        },
        Migration {
            version: 3,
            name: "instance addresses",
            steps: v3_steps,
        },
        Migration {
            version: 4,
            name: "backup fault message",
            steps: v4_steps,
        },
    ]
}

const VERSION_TABLE_SQL: &str = "CREATE TABLE IF NOT EXISTS trove_schema_version (\
    version INTEGER NOT NULL PRIMARY KEY, name VARCHAR(255) NOT NULL, applied_at {DT})";

fn version_table_sql(b: Backend) -> String {
    let dt = if b == Backend::Postgres {
        "TIMESTAMP WITHOUT TIME ZONE"
    } else {
        "DATETIME"
    };
    VERSION_TABLE_SQL.replace("{DT}", dt)
}

impl Db {
    /// Brings the schema to the newest version (`trove-manage db_sync`).
    ///
    /// Idempotent; safe when several processes call it at once. Returns the versions it
    /// applied (empty when the schema was already current). A schema created by Python
    /// Trove at alembic head is adopted: version 1 is recorded without running it.
    ///
    /// On error the failing migration has been undone: the schema and the recorded version
    /// are those of the last migration that succeeded.
    pub async fn migrate(&self) -> Result<Vec<i64>, DbError> {
        self.migrate_to(&migrations(), None).await
    }

    /// Applies `list` up to and including version `target` (all when `None`).
    ///
    /// Meant for `db_upgrade --version` and for tests that inject extra migrations.
    pub async fn migrate_to(
        &self,
        list: &[Migration],
        target: Option<i64>,
    ) -> Result<Vec<i64>, DbError> {
        let b = self.backend();
        let mut applied = Vec::new();
        let wanted: Vec<&Migration> = list
            .iter()
            .filter(|m| target.is_none_or(|t| m.version <= t))
            .collect();
        with_pool!(self, pool => {
            let mut conn = pool.acquire().await?;
            take_lock!(b, &mut *conn);
            let result: Result<(), DbError> = async {
                sqlx::query(&version_table_sql(b)).execute(&mut *conn).await?;
                for m in &wanted {
                    if m.version == 1 {
                        // A schema created by Python Trove: adopt it when it is at the alembic
                        // revision our version 1 corresponds to, refuse otherwise.
                        let done: Option<(i32,)> = sqlx::query_as(&self.sql("SELECT version FROM trove_schema_version WHERE version = ?"))
                            .bind(1i32)
                            .fetch_optional(&mut *conn)
                            .await?;
                        if done.is_none() {
                            if let Ok(revs) = sqlx::query_as::<_, (String,)>("SELECT version_num FROM alembic_version")
                                .fetch_all(&mut *conn)
                                .await
                            {
                                if revs.iter().any(|r| r.0 == ALEMBIC_HEAD) {
                                    sqlx::query(&self.sql("INSERT INTO trove_schema_version (version, name, applied_at) VALUES (?, ?, ?)"))
                                        .bind(1i32)
                                        .bind(m.name)
                                        .bind(utc_now())
                                        .execute(&mut *conn)
                                        .await?;
                                    tracing::info!(alembic.revision = ALEMBIC_HEAD, "adopted schema created by Trove");
                                    applied.push(1);
                                    continue;
                                }
                                let found: Vec<String> = revs.into_iter().map(|r| r.0).collect();
                                return Err(DbError::Invalid(format!(
                                    "the database has Trove alembic revision(s) {found:?}; upgrade it with Trove to {ALEMBIC_HEAD} first"
                                )));
                            }
                        }
                    }
                    let check = self.sql("SELECT version FROM trove_schema_version WHERE version = ?");
                    let record = self.sql(
                        "INSERT INTO trove_schema_version (version, name, applied_at) VALUES (?, ?, ?)",
                    );
                    let steps = (m.steps)(b);
                    let fail = |e: sqlx::Error| DbError::Migration { version: m.version, name: m.name, source: e };
                    if b == Backend::MySql {
                        let done: Option<(i32,)> = sqlx::query_as(&check)
                            .bind(m.version as i32)
                            .fetch_optional(&mut *conn)
                            .await?;
                        if done.is_some() {
                            continue;
                        }
                        let mut undo: Vec<String> = Vec::new();
                        let mut failure = None;
                        for s in &steps {
                            match sqlx::query(&s.up).execute(&mut *conn).await {
                                Ok(_) => undo.extend(s.down.clone()),
                                Err(e) => {
                                    failure = Some(e);
                                    break;
                                }
                            }
                        }
                        if failure.is_none() {
                            if let Err(e) = sqlx::query(&record)
                                .bind(m.version as i32)
                                .bind(m.name)
                                .bind(utc_now())
                                .execute(&mut *conn)
                                .await
                            {
                                failure = Some(e);
                            }
                        }
                        if let Some(e) = failure {
                            tracing::error!(migration.version = m.version, error = %e, "migration failed; undoing its applied steps");
                            for d in undo.iter().rev() {
                                if let Err(ue) = sqlx::query(d).execute(&mut *conn).await {
                                    tracing::error!(statement = %d, error = %ue, "undo statement failed");
                                }
                            }
                            return Err(fail(e));
                        }
                    } else {
                        let mut tx = if b == Backend::Sqlite {
                            conn.begin_with("BEGIN IMMEDIATE").await?
                        } else {
                            conn.begin().await?
                        };
                        let done: Option<(i32,)> = sqlx::query_as(&check)
                            .bind(m.version as i32)
                            .fetch_optional(&mut *tx)
                            .await?;
                        if done.is_some() {
                            tx.rollback().await?;
                            continue;
                        }
                        for s in &steps {
                            if let Err(e) = sqlx::query(&s.up).execute(&mut *tx).await {
                                tracing::error!(migration.version = m.version, error = %e, "migration failed; rolling back");
                                tx.rollback().await?;
                                return Err(fail(e));
                            }
                        }
                        sqlx::query(&record)
                            .bind(m.version as i32)
                            .bind(m.name)
                            .bind(utc_now())
                            .execute(&mut *tx)
                            .await
                            .map_err(fail)?;
                        tx.commit().await.map_err(fail)?;
                    }
                    tracing::info!(migration.version = m.version, migration.name = m.name, "applied migration");
                    applied.push(m.version);
                }
                Ok(())
            }
            .await;
            let unlocked = release_lock!(b, &mut *conn);
            result?;
            unlocked?;
        });
        Ok(applied)
    }

    /// The newest applied schema version, `None` on an empty database.
    pub async fn schema_version(&self) -> Result<Option<i64>, DbError> {
        let exists = self.table_exists("trove_schema_version").await?;
        if !exists {
            return Ok(None);
        }
        let sql = "SELECT MAX(version) FROM trove_schema_version";
        let v: Option<i32> = with_pool!(self, p => {
            let row: (Option<i32>,) = sqlx::query_as(sql).fetch_one(p).await?;
            row.0
        });
        Ok(v.map(i64::from))
    }

    /// True if a table of that name exists in the connected database.
    pub async fn table_exists(&self, table: &str) -> Result<bool, DbError> {
        let sql = match self.backend() {
            Backend::Sqlite => "SELECT name FROM sqlite_master WHERE type = 'table' AND name = ?",
            Backend::MySql => {
                "SELECT CAST(table_name AS CHAR) FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = ?"
            }
            Backend::Postgres => {
                "SELECT CAST(table_name AS TEXT) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = ?"
            }
        };
        let sql = self.sql(sql);
        let found = with_pool!(self, p => {
            let r: Option<(String,)> = sqlx::query_as(&sql).bind(table).fetch_optional(p).await?;
            r.is_some()
        });
        Ok(found)
    }

    /// Drops every table this crate manages (`trove-manage db_recreate` then migrates).
    pub async fn drop_all_tables(&self) -> Result<(), DbError> {
        let b = self.backend();
        let mut names = schema::all_table_names();
        names.push("trove_schema_version");
        names.reverse();
        with_pool!(self, pool => {
            let mut conn = pool.acquire().await?;
            take_lock!(b, &mut *conn);
            let r: Result<(), DbError> = async {
                if b == Backend::MySql {
                    sqlx::query("SET FOREIGN_KEY_CHECKS = 0").execute(&mut *conn).await?;
                }
                for t in &names {
                    let sql = match b {
                        Backend::Postgres => format!("DROP TABLE IF EXISTS \"{t}\" CASCADE"),
                        Backend::MySql => format!("DROP TABLE IF EXISTS `{t}`"),
                        Backend::Sqlite => format!("DROP TABLE IF EXISTS \"{t}\""),
                    };
                    sqlx::query(&sql).execute(&mut *conn).await?;
                }
                if b == Backend::MySql {
                    sqlx::query("SET FOREIGN_KEY_CHECKS = 1").execute(&mut *conn).await?;
                }
                Ok(())
            }
            .await;
            let u = release_lock!(b, &mut *conn);
            r?;
            u?;
        });
        Ok(())
    }
}
