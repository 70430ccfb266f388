//! trove-taskmanager: serves the `taskmanager` topic and runs Trove's instance workflows
//! through the compute, volume and network drivers ([`trove_compute`]) and the guest agents.
//!
//! Map of the crate:
//! * [`manager`]: [`TaskManager`] (drivers, control DB, guest clients), the dispatcher
//!   that starts each cast as a background workflow, and per-step timing logs.
//! * `create`: `create_instance` (network, volume, broker user, injected files, server,
//!   addresses, prepare, wait for the guest); a failure ends in an error task with a fault
//!   and removes what was made.
//! * `delete`: `delete_instance` and the idempotent clean-up shared with failed creates.
//! * `actions`: restart, reboot, resize volume, resize flavor.
//! * `backup`: `create_backup` (hand the backup to the guest) and `delete_backup` (remove
//!   the stored objects, then the row).
//! * `recovery`: creates a stopped taskmanager left BUILDING past `usage_timeout` are
//!   failed and cleaned; unfinished deletes run again.
//! * [`files`]: the guest's injected files and the datastore configuration templates.
//! * [`service`]: [`TaskManagerServer`] and [`run`].
//!
//! Several taskmanagers may serve one topic: each cast goes to one of them, and a create
//! is claimed in the database (`instances.task_start_time`) so a redelivered message is
//! not built twice.

mod actions;
mod backup;
mod create;
mod delete;
pub mod error;
pub mod files;
pub mod manager;
mod recovery;
mod replication;
pub mod service;
pub mod settings;

pub use error::TaskError;
pub use manager::{Drivers, TaskManager};
pub use service::{recovery_period, run, target, taskmanager_key, TaskManagerServer};
pub use settings::Settings;
