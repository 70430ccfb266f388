//! The datastore's service status as the guest reports it in heartbeats.
//!
//! The guest computes one of these from what it observes (is the server process alive, does a
//! query answer, did we stop it on purpose) and the heartbeat carries its
//! [`ServiceStatus::description`] to the conductor.
//!
//! ```text
//!   NEW ──prepare()──> BUILDING ──fails──> FAILED ("failed to spawn"; prepare may be retried)
//!                         │
//!                         │ server initialised, started, secured, answers
//!                         v
//!        ┌──────────> HEALTHY <──────── query answers again ───────┐
//!        │             │   │                                        │
//!        │             │   └── process alive, query fails ──>  RUNNING
//!        │             │                                   (starting, stopped, overloaded)
//!        │             ├── stop() ──────────────────────>  SHUTDOWN (pid file removed)
//!        │             ├── restart() ──> RESTARTING ──> HEALTHY
//!        │             └── process gone, pid file left ─>  CRASHED
//!        │                                                    │
//!        └──────────────── start() (from SHUTDOWN or CRASHED) ┘
//! ```
//!
//! Rules used by the managers' `status()`, from [`crate::process::ServerProcess::liveness`]
//! and a query:
//! * no prepare start marker -> [`ServiceStatus::New`];
//! * process alive and a query succeeds -> [`ServiceStatus::Healthy`];
//! * process alive, query fails -> [`ServiceStatus::Running`];
//! * no process and no pid file (stopped on purpose, or never started) ->
//!   [`ServiceStatus::Shutdown`];
//! * no process but the pid file is still there -> [`ServiceStatus::Crashed`].

use serde::{Deserialize, Serialize};

/// Service status of the datastore (Trove's `ServiceStatuses`; only what a guest reports).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceStatus {
    /// Nothing done yet.
    New,
    /// `prepare` is under way.
    Building,
    /// Process alive but not (yet) answering queries.
    Running,
    /// Process alive and answering queries.
    Healthy,
    /// Stopped on purpose (or never started).
    Shutdown,
    /// The process disappeared without being asked to stop.
    Crashed,
    /// `prepare` failed.
    Failed,
    /// A restart is under way.
    Restarting,
    /// A configuration change needs a restart to take effect.
    RestartRequired,
    /// The guest cannot tell.
    Unknown,
}

impl ServiceStatus {
    /// The description string Trove puts on the wire and in `service_statuses`.
    pub fn description(self) -> &'static str {
        match self {
            ServiceStatus::New => "new",
            ServiceStatus::Building => "building",
            ServiceStatus::Running => "running",
            ServiceStatus::Healthy => "healthy",
            ServiceStatus::Shutdown => "shutdown",
            ServiceStatus::Crashed => "crashed",
            ServiceStatus::Failed => "failed to spawn",
            ServiceStatus::Restarting => "restarting",
            ServiceStatus::RestartRequired => "restart required",
            ServiceStatus::Unknown => "unknown",
        }
    }

    /// True for the states in which the server process exists.
    pub fn is_up(self) -> bool {
        matches!(self, ServiceStatus::Running | ServiceStatus::Healthy)
    }
}

impl std::fmt::Display for ServiceStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.description())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_match_trove() {
        assert_eq!(ServiceStatus::Healthy.description(), "healthy");
        assert_eq!(ServiceStatus::Failed.description(), "failed to spawn");
        assert_eq!(ServiceStatus::Crashed.to_string(), "crashed");
    }
}
