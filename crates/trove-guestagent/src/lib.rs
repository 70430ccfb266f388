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
//! * [`mariadb`] and [`postgres`]: the two implementations, each with its on-disk layout; the
//!   start/stop/restart/prepare sequence they share is in the private `lifecycle` module.
//! * [`volume`]: the instance's data volume: format, mount, unmount and grow the file system
//!   of its block device ([`volume::VolumeManager`]); `prepare` mounts it before anything is
//!   written under the mount point.
//! * [`error`]: the crate's error type, [`error::GuestError`].
//! * [`agent`]: the serving loop: [`agent::Agent`] (RPC server of `guestagent.<guest_id>`
//!   dispatching to the manager), [`agent::AgentSettings`] from the configuration, and
//!   [`agent::run`], the entry point of the `trove-guestagent` binary.
//! * [`backup`]: `create_backup` (hot, streamed MariaDB backups into a
//!   [`trove_backup::BackupStore`]) and the restore `prepare` does when given `backup_info`.
//! * [`pgbackup`]: the same for PostgreSQL (`pg_basebackup` base backups, archived WAL as
//!   incrementals, restore by archive recovery).
//! * [`heartbeat`]: the periodic status task (heartbeats to the conductor, automatic restart
//!   of a crashed server with back-off).
//!
//! Memory benchmark of the agent process (root, `mariadbd`, RabbitMQ):
//! `cargo bench -p trove-guestagent --bench agent_memory`.

pub mod agent;
pub mod backup;
pub mod error;
pub mod heartbeat;
mod lifecycle;
pub mod manager;
pub mod mariadb;
pub mod models;
mod pg_replication;
pub mod pgbackup;
pub mod postgres;
pub mod process;
pub mod sql;
pub mod status;
pub mod volume;

pub use agent::{run, serve, Agent, AgentError, AgentSettings, AgentStats};
pub use error::{GuestError, Result};
pub use manager::{
    manager_for, DatastoreManager, FilesystemStats, ManagerConfig, Page, PrepareRequest,
};
pub use mariadb::MariaDbManager;
pub use models::{Database, User};
pub use postgres::PostgresManager;
pub use status::ServiceStatus;
pub use volume::{VolumeConfig, VolumeManager};
