//! Control database of Trove-rs: schema migrations for SQLite, MariaDB/MySQL and
//! PostgreSQL, the repositories every service uses, the quota engine and the status codes.
//!
//! Map of the crate:
//! * [`db`]: [`Db`], connecting from an oslo.db URL, one SQL text for all backends.
//! * [`migrate`]: ordered migrations and the runner behind `trove-manage db_sync`.
//! * `schema` (private): the tables, described once and rendered per backend.
//! * [`status`]: task and service status codes as Trove stores them.
//! * [`repo`]: repositories (async methods on [`Db`]) and their row types.
//! * [`testing`]: [`testing::TestDb`], a fresh migrated database per test on any backend.
//!
//! What we store and why is in `internals-data.md`; the schema keeps Trove's table and
//! column names so a database written by Python Trove can be read here and vice versa.
//! This crate does not talk to compute, RPC or HTTP.

#[macro_use]
pub mod db;
pub mod error;
pub mod migrate;
pub mod repo;
mod schema;
pub mod status;
pub mod testing;

pub use db::{new_id, utc_now, Backend, Db};
pub use error::DbError;
pub use repo::*;
pub use status::{ServiceStatus, TaskStatus};
