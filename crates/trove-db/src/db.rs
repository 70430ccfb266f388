//! Connecting to the control database and running one SQL text on any backend.
//!
//! [`Db::connect`] takes the `[database] connection` URL as operators write it for oslo.db /
//! SQLAlchemy (`sqlite://`, `mysql+pymysql://...`, `postgresql+psycopg2://...`) and builds
//! a pool for the matching sqlx driver. Repositories write SQL once with `?` placeholders
//! and backtick-quoted identifiers; [`rewrite_sql`] rewrites that text for PostgreSQL (`$1..`
//! and double quotes), and the `with_pool!` macro runs the same body against whichever
//! concrete pool is behind the `Db`. This keeps one copy of every query without going
//! through sqlx's `Any` driver (which lacks chrono support).

use std::borrow::Cow;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

use crate::error::DbError;

/// Which SQL server family a [`Db`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// SQLite (embedded default; `sqlite://` is in-memory).
    Sqlite,
    /// MariaDB or MySQL (production).
    MySql,
    /// PostgreSQL.
    Postgres,
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Backend::Sqlite => "sqlite",
            Backend::MySql => "mysql",
            Backend::Postgres => "postgresql",
        })
    }
}

/// The concrete sqlx pool behind a [`Db`].
#[derive(Debug, Clone)]
pub(crate) enum Pool {
    Sqlite(SqlitePool),
    MySql(MySqlPool),
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to the concrete pool of `$db` (one arm per backend, so
/// generic sqlx calls inside the body are monomorphised for each driver).
macro_rules! with_pool {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db.pool() {
            $crate::db::Pool::Sqlite($pool) => $body,
            $crate::db::Pool::MySql($pool) => $body,
            $crate::db::Pool::Postgres($pool) => $body,
        }
    };
}
pub(crate) use with_pool;

/// Handle on the control database: a connection pool plus the backend it speaks.
///
/// Cheap to clone (an `Arc`); share one per process.
#[derive(Clone)]
pub struct Db {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("backend", &self.inner.backend)
            .field("url", &self.inner.redacted_url)
            .finish()
    }
}

#[derive(Debug)]
struct Inner {
    pool: Pool,
    backend: Backend,
    /// The URL with the password masked, for logs and errors.
    redacted_url: String,
}

/// What a connection URL asks for, before connecting.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    SqliteMemory,
    SqliteFile(String),
    MySql(MySqlConnectOptions),
    Postgres(PgConnectOptions),
}

/// Masks the password of a URL (`user:***@host`) so it can be logged.
pub fn redact_url(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        let auth_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let authority = &rest[..auth_end];
        if let Some(at) = authority.rfind('@') {
            let userinfo = &authority[..at];
            if let Some((user, _)) = userinfo.split_once(':') {
                return format!("{scheme}://{user}:***@{}", &rest[at + 1..]);
            }
        }
    }
    url.to_string()
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// Parses an oslo.db / SQLAlchemy URL into connect options.
pub(crate) fn parse_url(url: &str) -> Result<Target, DbError> {
    let (scheme, rest) = url.split_once("://").ok_or_else(|| {
        DbError::Invalid(format!(
            "invalid database URL '{}': expected <scheme>://...",
            redact_url(url)
        ))
    })?;
    let scheme_lc = scheme.to_ascii_lowercase();
    let family = scheme_lc.split('+').next().unwrap_or("");
    match family {
        "sqlite" => {
            let path = rest.split('?').next().unwrap_or("");
            let path = path.strip_prefix('/').unwrap_or(path);
            if path.is_empty() || path == ":memory:" {
                Ok(Target::SqliteMemory)
            } else {
                Ok(Target::SqliteFile(decode(path)))
            }
        }
        "mysql" | "mariadb" | "postgresql" | "postgres" => {
            let parsed = url::Url::parse(&format!("generic://{rest}")).map_err(|e| {
                DbError::Invalid(format!(
                    "invalid database URL '{}': {e}",
                    redact_url(url)
                ))
            })?;
            let user = decode(parsed.username());
            let password = parsed.password().map(decode);
            let host = parsed
                .host_str()
                .map(|h| h.trim_start_matches('[').trim_end_matches(']').to_string())
                .filter(|h| !h.is_empty());
            let database = decode(parsed.path().trim_start_matches('/'));
            let query: Vec<(String, String)> = parsed
                .query_pairs()
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            if family.starts_with("postgres") {
                let mut o = PgConnectOptions::new_without_pgpass()
                    .host(host.as_deref().unwrap_or("localhost"))
                    .port(parsed.port().unwrap_or(5432));
                if !user.is_empty() {
                    o = o.username(&user);
                }
                if let Some(p) = &password {
                    o = o.password(p);
                }
                if !database.is_empty() {
                    o = o.database(&database);
                }
                for (k, v) in &query {
                    if k == "host" {
                        o = o.socket(v);
                    }
                }
                Ok(Target::Postgres(o))
            } else {
                let mut o = MySqlConnectOptions::new()
                    .host(host.as_deref().unwrap_or("localhost"))
                    .port(parsed.port().unwrap_or(3306))
                    .charset("utf8mb4");
                if !user.is_empty() {
                    o = o.username(&user);
                }
                if let Some(p) = &password {
                    o = o.password(p);
                }
                if !database.is_empty() {
                    o = o.database(&database);
                }
                for (k, v) in &query {
                    // `charset` is always utf8mb4 here; other driver options are ignored.
                    if k == "unix_socket" {
                        o = o.socket(v);
                    }
                }
                Ok(Target::MySql(o))
            }
        }
        _ => Err(DbError::Invalid(format!(
            "unsupported database URL scheme '{scheme}' (expected sqlite, mysql[+driver] or postgresql[+driver])"
        ))),
    }
}

impl Db {
    /// Connects to the database named by an oslo.db / SQLAlchemy URL.
    ///
    /// Accepted forms: `sqlite://` (in-memory, one shared connection), `sqlite:///rel.db`,
    /// `sqlite:////abs/path.db`, `mysql://`, `mysql+<driver>://user:pw@host[:port]/db?charset=utf8`
    /// (driver suffix and charset ignored; always utf8mb4), `postgresql://`,
    /// `postgresql+<driver>://`, `postgres://`. User and password are percent-decoded.
    /// The schema is not touched: call [`Db::migrate`] (what `db_sync` does).
    pub async fn connect(url: &str) -> Result<Db, DbError> {
        Self::connect_with(url, 10).await
    }

    /// Like [`Db::connect`] with a maximum pool size (ignored for in-memory SQLite).
    pub async fn connect_with(url: &str, max_connections: u32) -> Result<Db, DbError> {
        let redacted_url = redact_url(url);
        let target = parse_url(url)?;
        let (pool, backend) = match target {
            Target::SqliteMemory => {
                let opts = SqliteConnectOptions::from_str("sqlite::memory:")?.foreign_keys(true);
                // One connection that never expires: each in-memory connection is its own DB.
                let pool = SqlitePoolOptions::new()
                    .max_connections(1)
                    .min_connections(1)
                    .idle_timeout(None)
                    .max_lifetime(None)
                    .connect_with(opts)
                    .await?;
                (Pool::Sqlite(pool), Backend::Sqlite)
            }
            Target::SqliteFile(path) => {
                let opts = SqliteConnectOptions::new()
                    .filename(&path)
                    .create_if_missing(true)
                    .foreign_keys(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .busy_timeout(Duration::from_secs(60));
                let pool = SqlitePoolOptions::new()
                    .max_connections(max_connections.max(1))
                    .connect_with(opts)
                    .await?;
                (Pool::Sqlite(pool), Backend::Sqlite)
            }
            Target::MySql(opts) => {
                let pool = MySqlPoolOptions::new()
                    .max_connections(max_connections.max(1))
                    .acquire_timeout(Duration::from_secs(60))
                    .connect_with(opts)
                    .await?;
                (Pool::MySql(pool), Backend::MySql)
            }
            Target::Postgres(opts) => {
                let pool = PgPoolOptions::new()
                    .max_connections(max_connections.max(1))
                    .acquire_timeout(Duration::from_secs(60))
                    .connect_with(opts)
                    .await?;
                (Pool::Postgres(pool), Backend::Postgres)
            }
        };
        tracing::debug!(db.url = %redacted_url, "connected to control database");
        Ok(Db {
            inner: Arc::new(Inner {
                pool,
                backend,
                redacted_url,
            }),
        })
    }

    /// The backend family of this database.
    pub fn backend(&self) -> Backend {
        self.inner.backend
    }

    /// The connection URL with its password masked.
    pub fn redacted_url(&self) -> &str {
        &self.inner.redacted_url
    }

    /// Checks that the database answers (`SELECT 1`), for health checks.
    pub async fn ping(&self) -> Result<(), DbError> {
        with_pool!(self, p => {
            sqlx::query("SELECT 1").execute(p).await?;
        });
        Ok(())
    }

    /// Closes every pooled connection (waits for checked-out ones to come back).
    pub async fn close(&self) {
        with_pool!(self, p => p.close().await)
    }

    pub(crate) fn pool(&self) -> &Pool {
        &self.inner.pool
    }

    /// Rewrites portable SQL for this backend (see [`rewrite_sql`]).
    pub(crate) fn sql(&self, sql: &str) -> String {
        rewrite_sql(self.inner.backend, sql).into_owned()
    }

    /// `INSERT` prefix that ignores a duplicate key, with its matching suffix.
    pub(crate) fn insert_ignore(&self) -> (&'static str, &'static str) {
        match self.inner.backend {
            Backend::MySql => ("INSERT IGNORE INTO", ""),
            Backend::Sqlite | Backend::Postgres => ("INSERT INTO", " ON CONFLICT DO NOTHING"),
        }
    }
}

/// Rewrites SQL written with `?` placeholders and backtick-quoted identifiers for a backend.
///
/// PostgreSQL gets `$1, $2, ...` and double quotes; MySQL and SQLite take the text as is.
/// Characters inside single-quoted string literals are left alone.
pub fn rewrite_sql(backend: Backend, sql: &str) -> Cow<'_, str> {
    if backend != Backend::Postgres {
        return Cow::Borrowed(sql);
    }
    let mut out = String::with_capacity(sql.len() + 16);
    let mut in_str = false;
    let mut n = 0;
    for c in sql.chars() {
        match c {
            '\'' => {
                in_str = !in_str;
                out.push(c);
            }
            '?' if !in_str => {
                n += 1;
                out.push('$');
                out.push_str(&n.to_string());
            }
            '`' if !in_str => out.push('"'),
            _ => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Current UTC time as stored in the database: naive, truncated to whole seconds so that
/// every backend (MySQL `DATETIME` keeps no fraction) reads back the value written.
pub fn utc_now() -> chrono::NaiveDateTime {
    use chrono::Timelike;
    let now = chrono::Utc::now().naive_utc();
    now.with_nanosecond(0).unwrap_or(now)
}

/// A new UUID4 string, the id format of every Trove table.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_placeholders_for_postgres() {
        assert_eq!(
            rewrite_sql(
                Backend::Postgres,
                "SELECT `key` FROM t WHERE a = ? AND b = '?' AND c = ?"
            ),
            "SELECT \"key\" FROM t WHERE a = $1 AND b = '?' AND c = $2"
        );
        assert_eq!(rewrite_sql(Backend::MySql, "a = ?"), "a = ?");
    }

    #[test]
    fn parses_operator_urls() {
        assert!(matches!(
            parse_url("sqlite://").unwrap(),
            Target::SqliteMemory
        ));
        match parse_url("sqlite:///trove.db").unwrap() {
            Target::SqliteFile(p) => assert_eq!(p, "trove.db"),
            t => panic!("{t:?}"),
        }
        match parse_url("sqlite:////var/lib/trove/trove.db").unwrap() {
            Target::SqliteFile(p) => assert_eq!(p, "/var/lib/trove/trove.db"),
            t => panic!("{t:?}"),
        }
        match parse_url("mysql+pymysql://trove:p%40ss@10.0.0.1/trove?charset=utf8").unwrap() {
            Target::MySql(o) => {
                assert_eq!(o.get_host(), "10.0.0.1");
                assert_eq!(o.get_port(), 3306);
                assert_eq!(o.get_username(), "trove");
                assert_eq!(o.get_database(), Some("trove"));
                assert_eq!(o.get_charset(), "utf8mb4");
            }
            t => panic!("{t:?}"),
        }
        assert!(
            matches!(parse_url("mysql://root@127.0.0.1:3307").unwrap(), Target::MySql(o) if o.get_port() == 3307)
        );
        for u in [
            "postgresql://u:pw@h/trove",
            "postgresql+psycopg2://u:pw@h:5433/trove",
            "postgres://u@h/trove",
        ] {
            assert!(matches!(parse_url(u).unwrap(), Target::Postgres(_)), "{u}");
        }
    }

    #[test]
    fn unknown_scheme_is_named_and_password_hidden() {
        let e = parse_url("oracle://scott:tiger@h/db")
            .unwrap_err()
            .to_string();
        assert!(e.contains("'oracle'"), "{e}");
        assert!(!e.contains("tiger"), "{e}");
        assert_eq!(
            redact_url("mysql+pymysql://u:secret@h/db"),
            "mysql+pymysql://u:***@h/db"
        );
        let e = parse_url("mysql://u:secret@h:notaport/db")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("secret"), "{e}");
    }
}
