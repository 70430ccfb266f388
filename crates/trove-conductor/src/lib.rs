//! trove-conductor: takes guest heartbeats, backup and root reports and failure notices off
//! the `trove-conductor` topic and writes them to the control database.
//!
//! Map of the crate:
//! * [`manager`]: [`Conductor`], the method table (heartbeat, update_backup, report_root,
//!   notify_end, notify_exc_info), Trove's stale-message rule and the trust checks;
//! * [`service`]: [`ConductorServer`], [`start`] and [`run`]: the RPC server on
//!   `conductor_queue` with per-instance decryption;
//! * [`keys`]: [`DbKeyLookup`], per-instance RPC keys from `instances.encrypted_key`;
//! * [`error`]: [`ConductorError`], why a message was not applied.
//!
//! Why a separate service: guests never touch the control database; they cast observations
//! here, and this is the one place that turns them into rows (`service_statuses`,
//! `backups`, `root_enabled_history`, `instance_faults`, `conductor_lastseen`). Several
//! conductors may run at once on one topic.
//!
//! What it does not do: decide what a missing heartbeat means (readers compare
//! `service_statuses.updated_at` with `agent_heartbeat_expiry`), send anything back to
//! guests, or emit oslo notifications.

pub mod error;
pub mod keys;
pub mod manager;
pub mod service;

pub use error::ConductorError;
pub use keys::DbKeyLookup;
pub use manager::{Conductor, ConductorStats, Outcome};
pub use service::{run, start, target, ConductorServer};
