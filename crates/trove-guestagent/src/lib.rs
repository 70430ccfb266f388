//! trove-guestagent: the per-instance agent that runs and administers a real database server
//! (MariaDB, PostgreSQL) for its instance.
//!
//! Map of the crate:
//! * [`models`]: the guest's wire types ([`models::Database`], [`models::User`]) in Trove's
//!   `_name`/`_password`/... dict shape, with the datastore's naming rules ([`models::Flavor`]).
//! * [`sql`]: identifier quoting and string literal escaping for MariaDB and PostgreSQL; the only
//!   place where names and passwords become SQL text.
//! * [`status`]: [`status::ServiceStatus`] and the status state machine.
//! * [`process`]: pid files, liveness, signals: supervision of the server process.
//! * [`manager`]: the [`manager::DatastoreManager`] trait the RPC layer will dispatch to, its
//!   request/response types, paging and filesystem statistics.
//! * [`mariadb`] and [`postgres`]: the two implementations, each with its on-disk layout.
//! * [`error`]: the crate's error type, [`error::GuestError`].

pub mod error;
pub mod manager;
pub mod mariadb;
pub mod models;
pub mod postgres;
pub mod process;
pub mod sql;
pub mod status;

pub use error::{GuestError, Result};
pub use manager::{
    manager_for, DatastoreManager, FilesystemStats, ManagerConfig, Page, PrepareRequest,
};
pub use mariadb::MariaDbManager;
pub use models::{Database, User};
pub use postgres::PostgresManager;
pub use status::ServiceStatus;
