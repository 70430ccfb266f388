//! Instance task and service (datastore) status codes, as stored in
//! `instances.task_id`/`task_description` and `service_statuses.status_id`/`status_description`.
//!
//! Codes and texts are Trove's. One quirk is kept on purpose: Trove gave UPGRADING and
//! RESTARTING the same code 0x22 and reads it back as RESTARTING; we read 0x22 as
//! [`ServiceStatus::Restarting`] too (existing rows stay meaningful) and write UPGRADING
//! with its own code 0x23.

macro_rules! task_statuses {
    ($( $variant:ident = $code:expr, $name:expr, $action:expr, $text:expr, $err:expr; )*) => {
        /// Instance task status (what the control plane is doing to the instance).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum TaskStatus {
            $(
                #[doc = $text]
                $variant,
            )*
        }

        impl TaskStatus {
            /// Every task status.
            pub const ALL: &'static [TaskStatus] = &[$(TaskStatus::$variant),*];

            /// The code stored in `instances.task_id`.
            pub fn code(self) -> i32 {
                match self { $(TaskStatus::$variant => $code),* }
            }
            /// Trove's name, e.g. `BUILDING_ERROR_SERVER`.
            pub fn name(self) -> &'static str {
                match self { $(TaskStatus::$variant => $name),* }
            }
            /// The action group, e.g. `BUILDING` for every build error.
            pub fn action(self) -> &'static str {
                match self { $(TaskStatus::$variant => $action),* }
            }
            /// The text stored in `instances.task_description`.
            pub fn db_text(self) -> &'static str {
                match self { $(TaskStatus::$variant => $text),* }
            }
            /// True for error states (the API shows `ERROR`).
            pub fn is_error(self) -> bool {
                match self { $(TaskStatus::$variant => $err),* }
            }
            /// Looks a status up by its stored code.
            pub fn from_code(code: i32) -> Option<TaskStatus> {
                match code { $(c if c == $code => Some(TaskStatus::$variant),)* _ => None }
            }
        }
    };
}

task_statuses! {
    None = 0x01, "NONE", "NONE", "No tasks for the instance.", false;
    Deleting = 0x02, "DELETING", "DELETING", "Deleting the instance.", false;
    Rebooting = 0x03, "REBOOTING", "REBOOTING", "Rebooting the instance.", false;
    Resizing = 0x04, "RESIZING", "RESIZING", "Resizing the instance.", false;
    Building = 0x05, "BUILDING", "BUILDING", "The instance is building.", false;
    Migrating = 0x06, "MIGRATING", "MIGRATING", "Migrating the instance.", false;
    RestartRequired = 0x07, "RESTART_REQUIRED", "RESTART_REQUIRED", "Instance requires a restart.", false;
    Promoting = 0x08, "PROMOTING", "PROMOTING", "Promoting the instance to replica source.", false;
    Ejecting = 0x09, "EJECTING", "EJECTING", "Ejecting the replica source.", false;
    Logging = 0x0a, "LOGGING", "LOGGING", "Transferring guest logs.", false;
    Detaching = 0x0b, "DETACHING", "DETACHING", "Detaching the instance from replica source.", false;
    Updating = 0x0c, "UPDATING", "UPDATING", "Updating the instance.", false;
    BuildingErrorDns = 0x50, "BUILDING_ERROR_DNS", "BUILDING", "Build error: DNS.", true;
    BuildingErrorServer = 0x51, "BUILDING_ERROR_SERVER", "BUILDING", "Build error: Server.", true;
    BuildingErrorVolume = 0x52, "BUILDING_ERROR_VOLUME", "BUILDING", "Build error: Volume.", true;
    BuildingErrorSecGroup = 0x53, "BUILDING_ERROR_SEC_GROUP", "BUILDING", "Build error: Secgroup or rule.", true;
    BuildingErrorReplica = 0x54, "BUILDING_ERROR_REPLICA", "BUILDING", "Build error: Replica.", true;
    PromotionError = 0x55, "PROMOTION_ERROR", "PROMOTING", "Replica Promotion Error.", true;
    EjectionError = 0x56, "EJECTION_ERROR", "EJECTING", "Replica Source Ejection Error.", true;
    GrowingError = 0x57, "GROWING_ERROR", "GROWING", "Growing Cluster Error.", true;
    ShrinkingError = 0x58, "SHRINKING_ERROR", "SHRINKING", "Shrinking Cluster Error.", true;
    Upgrading = 0x59, "UPGRADING", "UPGRADING", "Upgrading the instance.", false;
    UpgradingError = 0x5a, "UPGRADING_ERROR", "UPGRADING", "Upgrading Cluster Error.", true;
    BuildingErrorTimeoutGa = 0x5b, "BUILDING_ERROR_TIMEOUT_GA", "ERROR", "Build error: guestagent timeout.", true;
    BuildingErrorPort = 0x5c, "BUILDING_ERROR_PORT", "BUILDING", "Build error: Port.", true;
    UpdatingErrorAccess = 0x5d, "UPDATING_ERROR_ACCESS", "UPDATING", "Update error: Access.", true;
}

macro_rules! service_statuses {
    ($( $variant:ident = $code:expr, $name:expr, $desc:expr, $api:expr; )*) => {
        /// Service (datastore) status reported by the guest agent.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ServiceStatus {
            $(
                #[doc = $desc]
                $variant,
            )*
        }

        impl ServiceStatus {
            /// Every service status.
            pub const ALL: &'static [ServiceStatus] = &[$(ServiceStatus::$variant),*];

            /// The code written to `service_statuses.status_id`.
            pub fn code(self) -> i32 {
                match self { $(ServiceStatus::$variant => $code),* }
            }
            /// Trove's name, e.g. `FAILED_TIMEOUT_GUESTAGENT`.
            pub fn name(self) -> &'static str {
                match self { $(ServiceStatus::$variant => $name),* }
            }
            /// The description: what the guest sends and what `status_description` stores.
            pub fn description(self) -> &'static str {
                match self { $(ServiceStatus::$variant => $desc),* }
            }
            /// The value the API shows as `operating_status`.
            pub fn api_status(self) -> &'static str {
                match self { $(ServiceStatus::$variant => $api),* }
            }
            /// Looks a status up by its description (as sent by guests).
            pub fn from_description(desc: &str) -> Option<ServiceStatus> {
                match desc { $($desc => Some(ServiceStatus::$variant),)* _ => None }
            }
        }
    };
}

service_statuses! {
    Running = 0x01, "RUNNING", "running", "ACTIVE";
    Blocked = 0x02, "BLOCKED", "blocked", "BLOCKED";
    Paused = 0x03, "PAUSED", "paused", "SHUTDOWN";
    Shutdown = 0x04, "SHUTDOWN", "shutdown", "SHUTDOWN";
    Deleted = 0x05, "DELETED", "deleted", "DELETED";
    Crashed = 0x06, "CRASHED", "crashed", "SHUTDOWN";
    Failed = 0x08, "FAILED", "failed to spawn", "FAILED";
    Building = 0x09, "BUILDING", "building", "BUILD";
    Promoting = 0x10, "PROMOTING", "promoting replica", "PROMOTE";
    Ejecting = 0x11, "EJECTING", "ejecting replica source", "EJECT";
    Logging = 0x12, "LOGGING", "transferring guest logs", "LOGGING";
    Unknown = 0x16, "UNKNOWN", "unknown", "ERROR";
    New = 0x17, "NEW", "new", "NEW";
    FailedTimeoutGuestagent = 0x18, "FAILED_TIMEOUT_GUESTAGENT", "guestagent error", "ERROR";
    InstanceReady = 0x19, "INSTANCE_READY", "instance ready", "BUILD";
    RestartRequired = 0x20, "RESTART_REQUIRED", "restart required", "RESTART_REQUIRED";
    Healthy = 0x21, "HEALTHY", "healthy", "HEALTHY";
    Restarting = 0x22, "RESTARTING", "restarting", "RESTARTING";
    Upgrading = 0x23, "UPGRADING", "upgrading", "UPGRADING";
}

impl ServiceStatus {
    /// Looks a status up by its stored code. 0x22 reads as RESTARTING (Trove's shared code).
    pub fn from_code(code: i32) -> Option<ServiceStatus> {
        ServiceStatus::ALL
            .iter()
            .copied()
            .find(|s| s.code() == code)
    }

    /// Statuses in which most instance actions are allowed.
    pub fn is_action_allowed(self) -> bool {
        matches!(
            self,
            ServiceStatus::Running
                | ServiceStatus::Shutdown
                | ServiceStatus::Crashed
                | ServiceStatus::Blocked
                | ServiceStatus::Healthy
                | ServiceStatus::RestartRequired
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn codes_are_unique_and_round_trip() {
        let mut seen = HashSet::new();
        for t in TaskStatus::ALL {
            assert!(seen.insert(t.code()));
            assert_eq!(TaskStatus::from_code(t.code()), Some(*t));
        }
        let mut seen = HashSet::new();
        for s in ServiceStatus::ALL {
            assert!(seen.insert(s.code()), "{s:?}");
            assert_eq!(ServiceStatus::from_code(s.code()), Some(*s));
            assert_eq!(ServiceStatus::from_description(s.description()), Some(*s));
        }
    }

    #[test]
    fn trove_quirks() {
        assert_eq!(
            ServiceStatus::from_code(0x22),
            Some(ServiceStatus::Restarting)
        );
        assert_eq!(ServiceStatus::Upgrading.code(), 0x23);
        assert_eq!(TaskStatus::BuildingErrorTimeoutGa.action(), "ERROR");
        assert_eq!(
            TaskStatus::from_code(0x5b),
            Some(TaskStatus::BuildingErrorTimeoutGa)
        );
        assert_eq!(ServiceStatus::Failed.description(), "failed to spawn");
    }
}
