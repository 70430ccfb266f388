//! Test support: a fresh, migrated control database per test, on any backend.
//!
//! Always compiled so other crates' tests can use it:
//! ```no_run
//! # async fn t() {
//! use trove_db::testing::{backends, TestDb};
//! for backend in backends() {
//!     let t = TestDb::new(backend).await;
//!     t.db().datastore_list().await.unwrap();
//! } // each database is dropped with its TestDb
//! # }
//! ```
//! MariaDB/MySQL and PostgreSQL databases get unique names (`trove_test_<uuid>`) on the
//! servers named by `TROVE_TEST_MYSQL_URL` (default `mysql://root@127.0.0.1:3306`) and
//! `TROVE_TEST_PG_URL` (default `postgresql://postgres@127.0.0.1:5432`); SQLite uses a file in
//! a temporary directory. `TROVE_TEST_BACKENDS` (e.g. `sqlite,mysql`) limits [`backends`].
//! The helper panics on setup failures: it is for tests only.

use crate::db::{Backend, Db};

/// Backends tests should run on: `TROVE_TEST_BACKENDS` (comma separated `sqlite`, `mysql`,
/// `postgresql`), default all three.
pub fn backends() -> Vec<Backend> {
    match std::env::var("TROVE_TEST_BACKENDS") {
        Ok(v) if !v.trim().is_empty() => v
            .split(',')
            .filter_map(|s| match s.trim().to_ascii_lowercase().as_str() {
                "sqlite" => Some(Backend::Sqlite),
                "mysql" | "mariadb" => Some(Backend::MySql),
                "postgresql" | "postgres" | "pg" => Some(Backend::Postgres),
                _ => None,
            })
            .collect(),
        _ => vec![Backend::Sqlite, Backend::MySql, Backend::Postgres],
    }
}

/// Server URL (without a database) for a backend's test databases.
pub fn server_url(backend: Backend) -> String {
    match backend {
        Backend::MySql => std::env::var("TROVE_TEST_MYSQL_URL")
            .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into()),
        Backend::Postgres => std::env::var("TROVE_TEST_PG_URL")
            .unwrap_or_else(|_| "postgresql://postgres@127.0.0.1:5432".into()),
        Backend::Sqlite => "sqlite://".into(),
    }
}

/// A uniquely named database that exists for the lifetime of this value.
#[derive(Debug)]
pub struct TestDb {
    db: Db,
    url: String,
    backend: Backend,
    name: String,
    /// Keeps the SQLite file's directory alive.
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    /// Creates a fresh database on `backend` and migrates it to the newest schema.
    pub async fn new(backend: Backend) -> TestDb {
        let t = Self::empty(backend).await;
        t.db.migrate().await.expect("migrating test database");
        t
    }

    /// Creates a fresh database without running migrations.
    pub async fn empty(backend: Backend) -> TestDb {
        let name = format!("trove_test_{}", uuid::Uuid::new_v4().simple());
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite:///{}", dir.path().join("trove.db").display());
                let db = Db::connect(&url).await.expect("open sqlite test db");
                TestDb {
                    db,
                    url,
                    backend,
                    name,
                    _dir: Some(dir),
                }
            }
            Backend::MySql | Backend::Postgres => {
                let base = server_url(backend);
                let admin = Db::connect_with(&base, 1)
                    .await
                    .unwrap_or_else(|e| panic!("connect to {}: {e}", crate::db::redact_url(&base)));
                let create = format!("CREATE DATABASE {name}");
                crate::db::with_pool!(admin, p => {
                    sqlx::query(&create).execute(p).await.expect("create test database");
                });
                admin.close().await;
                let url = format!("{}/{name}", base.trim_end_matches('/'));
                let db = Db::connect_with(&url, 30)
                    .await
                    .expect("connect test database");
                TestDb {
                    db,
                    url,
                    backend,
                    name,
                    _dir: None,
                }
            }
        }
    }

    /// The database handle.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// A URL other code (or another process) can connect to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The backend.
    pub fn backend(&self) -> Backend {
        self.backend
    }
}

/// Runs one SQL statement (written for the backend at hand) and panics on error; for tests
/// that need to set up states the repositories never produce.
pub async fn execute(db: &Db, sql: &str) {
    let sql = crate::db::rewrite_sql(db.backend(), sql).into_owned();
    crate::db::with_pool!(db, p => {
        sqlx::query(&sql).execute(p).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    });
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if self.backend == Backend::Sqlite {
            return;
        }
        let base = server_url(self.backend);
        let drop_sql = match self.backend {
            Backend::Postgres => format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            _ => format!("DROP DATABASE IF EXISTS {}", self.name),
        };
        let name = self.name.clone();
        // Drop cannot await; run the cleanup on a private runtime in its own thread.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime for test cleanup");
            rt.block_on(async move {
                if let Ok(admin) = Db::connect_with(&base, 1).await {
                    if let crate::db::Pool::MySql(p) = admin.pool() {
                        // Connections of the (blocked) test runtime may still hold locks:
                        // end them so DROP DATABASE does not wait for their metadata locks.
                        let ids: Vec<(u64,)> = sqlx::query_as(
                            "SELECT CAST(id AS UNSIGNED) FROM information_schema.processlist WHERE db = ?",
                        )
                        .bind(&name)
                        .fetch_all(p)
                        .await
                        .unwrap_or_default();
                        for (id,) in ids {
                            let _ = sqlx::query(&format!("KILL CONNECTION {id}")).execute(p).await;
                        }
                    }
                    crate::db::with_pool!(admin, p => {
                        if let Err(e) = sqlx::query(&drop_sql).execute(p).await {
                            eprintln!("dropping test database: {e}");
                        }
                    });
                    admin.close().await;
                }
            });
        })
        .join();
    }
}
