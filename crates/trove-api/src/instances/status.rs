//! `status` and `operating_status` of an instance (api-statuses.md §2, §3) and the state
//! gates that refuse actions (§5), as pure functions of the stored states.
//!
//! Three stored states feed them: the task (`instances.task_id`), the compute server
//! status (`instances.server_status`, the last status the compute driver reported; forced
//! to `BUILD` while the task is BUILDING, `SHUTDOWN` when there is no server) and the guest
//! service status (`service_statuses`). Whether a backup of the instance is running is an
//! input too.
//!
//! Not here: loading rows, and writing transitions (the handlers and the taskmanager do).

use trove_db::{ServiceStatus, TaskStatus};

/// The compute server status the derivation uses (api-statuses.md §1).
pub fn effective_server_status(task: TaskStatus, stored: Option<&str>, has_server: bool) -> String {
    if task.action() == "BUILDING" && !task.is_error() {
        return "BUILD".into();
    }
    match stored.map(str::trim).filter(|s| !s.is_empty()) {
        Some(s) => s.to_ascii_uppercase(),
        None if has_server => "UNKNOWN".into(),
        None => "SHUTDOWN".into(),
    }
}

/// The user-facing `status` (api-statuses.md §2; the first matching rule wins).
pub fn instance_status(
    task: TaskStatus,
    server_status: &str,
    backup_running: bool,
) -> &'static str {
    if task.is_error() {
        return "ERROR";
    }
    match task.action() {
        "BUILDING" => {
            return if server_status == "ERROR" {
                "ERROR"
            } else {
                "BUILD"
            };
        }
        "REBOOTING" => return "REBOOT",
        "RESIZING" => return "RESIZE",
        "UPGRADING" => return "UPGRADE",
        "RESTART_REQUIRED" => return "RESTART_REQUIRED",
        "PROMOTING" => return "PROMOTE",
        "EJECTING" => return "EJECT",
        "LOGGING" => return "LOGGING",
        "DETACHING" => return "DETACH",
        "DELETING" => {
            return if matches!(server_status, "ACTIVE" | "SHUTDOWN" | "DELETED") {
                "SHUTDOWN"
            } else {
                "ERROR"
            };
        }
        _ => {}
    }
    if backup_running {
        return "BACKUP";
    }
    match server_status {
        "BUILD" => "BUILD",
        "ERROR" => "ERROR",
        "REBOOT" => "REBOOT",
        "RESIZE" | "VERIFY_RESIZE" => "RESIZE",
        "ACTIVE" => "ACTIVE",
        "SHUTDOWN" => "SHUTDOWN",
        _ => "UNKNOWN",
    }
}

/// The user-facing `operating_status` (api-statuses.md §3). `heartbeat_age_secs` is the
/// age of the service status' `updated_at`; a stale heartbeat shows `ERROR` without being
/// written back.
pub fn operating_status(
    task: TaskStatus,
    server_status: &str,
    service: Option<ServiceStatus>,
    heartbeat_age_secs: Option<i64>,
    heartbeat_expiry_secs: i64,
) -> String {
    if task != TaskStatus::None || server_status != "ACTIVE" {
        return String::new();
    }
    let Some(service) = service else {
        return ServiceStatus::Unknown.api_status().into();
    };
    let stale = heartbeat_age_secs.is_some_and(|age| age > heartbeat_expiry_secs);
    if service != ServiceStatus::RestartRequired && stale {
        return ServiceStatus::FailedTimeoutGuestagent.api_status().into();
    }
    service.api_status().into()
}

/// Gate A, "action allowed" (api-statuses.md §5): `Err(message)` answered with 422.
pub fn check_action_allowed(
    id: &str,
    task: TaskStatus,
    server_status: &str,
    service: Option<ServiceStatus>,
    backup_running: bool,
) -> Result<(), String> {
    let refuse = |kind: &str, value: &str| {
        Err(format!(
            "Instance {id} is not currently available for an action to be performed ({kind} status was {value})."
        ))
    };
    if !matches!(server_status, "ACTIVE" | "HEALTHY") {
        return refuse("instance", server_status);
    }
    if !matches!(task, TaskStatus::None | TaskStatus::RestartRequired) {
        return refuse("task", task.action());
    }
    if !service.is_some_and(ServiceStatus::is_action_allowed) {
        return refuse(
            "instance",
            instance_status(task, server_status, backup_running),
        );
    }
    if backup_running {
        return refuse("instance", "BACKUP");
    }
    Ok(())
}

/// Gate E, delete: refused while the status is BUILD (422).
pub fn check_deletable(id: &str, status: &str) -> Result<(), String> {
    if status == "BUILD" {
        Err(format!("Instance {id} is not ready. (Status is BUILD)."))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use TaskStatus as T;

    #[test]
    fn status_table() {
        let cases: &[(TaskStatus, &str, bool, &str)] = &[
            (T::BuildingErrorServer, "ACTIVE", false, "ERROR"),
            (T::BuildingErrorTimeoutGa, "ACTIVE", false, "ERROR"),
            (T::UpgradingError, "ACTIVE", false, "ERROR"),
            (T::Building, "BUILD", false, "BUILD"),
            (T::Building, "ERROR", false, "ERROR"),
            (T::Building, "ACTIVE", true, "BUILD"),
            (T::Rebooting, "ACTIVE", false, "REBOOT"),
            (T::Resizing, "ACTIVE", false, "RESIZE"),
            (T::Upgrading, "ACTIVE", false, "UPGRADE"),
            (T::RestartRequired, "ACTIVE", true, "RESTART_REQUIRED"),
            (T::Promoting, "ACTIVE", false, "PROMOTE"),
            (T::Ejecting, "ACTIVE", false, "EJECT"),
            (T::Logging, "ACTIVE", false, "LOGGING"),
            (T::Detaching, "ACTIVE", false, "DETACH"),
            (T::Deleting, "ACTIVE", false, "SHUTDOWN"),
            (T::Deleting, "SHUTDOWN", false, "SHUTDOWN"),
            (T::Deleting, "DELETED", false, "SHUTDOWN"),
            (T::Deleting, "ERROR", false, "ERROR"),
            (T::Deleting, "SHUTOFF", false, "ERROR"),
            (T::None, "ACTIVE", true, "BACKUP"),
            (T::None, "ACTIVE", false, "ACTIVE"),
            (T::None, "BUILD", false, "BUILD"),
            (T::None, "ERROR", false, "ERROR"),
            (T::None, "REBOOT", false, "REBOOT"),
            (T::None, "RESIZE", false, "RESIZE"),
            (T::None, "VERIFY_RESIZE", false, "RESIZE"),
            (T::None, "SHUTDOWN", false, "SHUTDOWN"),
            (T::None, "SHUTOFF", false, "UNKNOWN"),
            (T::None, "HARD_REBOOT", false, "UNKNOWN"),
            (T::Migrating, "MIGRATING", false, "UNKNOWN"),
            (T::Migrating, "ACTIVE", false, "ACTIVE"),
            (T::Updating, "ACTIVE", false, "ACTIVE"),
        ];
        for (task, server, backup, want) in cases {
            assert_eq!(
                instance_status(*task, server, *backup),
                *want,
                "{task:?} {server} backup={backup}"
            );
        }
    }

    #[test]
    fn server_status_used() {
        assert_eq!(
            effective_server_status(T::Building, Some("ACTIVE"), true),
            "BUILD"
        );
        assert_eq!(
            effective_server_status(T::BuildingErrorServer, Some("ERROR"), true),
            "ERROR"
        );
        assert_eq!(
            effective_server_status(T::None, Some("active"), true),
            "ACTIVE"
        );
        assert_eq!(effective_server_status(T::None, None, false), "SHUTDOWN");
        assert_eq!(effective_server_status(T::None, None, true), "UNKNOWN");
    }

    /// (task, server status, service status, heartbeat age, expected).
    type OperatingCase = (
        TaskStatus,
        &'static str,
        Option<ServiceStatus>,
        Option<i64>,
        &'static str,
    );

    #[test]
    fn operating_status_table() {
        use ServiceStatus as S;
        let cases: &[OperatingCase] = &[
            (T::Building, "BUILD", Some(S::New), Some(0), ""),
            (T::Rebooting, "ACTIVE", Some(S::Healthy), Some(0), ""),
            (T::None, "SHUTDOWN", Some(S::Healthy), Some(0), ""),
            (T::None, "ACTIVE", Some(S::Healthy), Some(10), "HEALTHY"),
            (T::None, "ACTIVE", Some(S::Running), Some(10), "ACTIVE"),
            (T::None, "ACTIVE", Some(S::Healthy), Some(91), "ERROR"),
            (
                T::None,
                "ACTIVE",
                Some(S::RestartRequired),
                Some(500),
                "RESTART_REQUIRED",
            ),
            (T::None, "ACTIVE", Some(S::Unknown), Some(0), "ERROR"),
            (T::None, "ACTIVE", Some(S::Shutdown), Some(0), "SHUTDOWN"),
            (T::None, "ACTIVE", None, None, "ERROR"),
        ];
        for (task, server, service, age, want) in cases {
            assert_eq!(
                operating_status(*task, server, *service, *age, 90),
                *want,
                "{task:?} {server} {service:?} {age:?}"
            );
        }
    }

    #[test]
    fn gate_a() {
        use ServiceStatus as S;
        let id = "i1";
        assert!(check_action_allowed(id, T::None, "ACTIVE", Some(S::Healthy), false).is_ok());
        assert!(check_action_allowed(
            id,
            T::RestartRequired,
            "ACTIVE",
            Some(S::RestartRequired),
            false
        )
        .is_ok());
        assert!(check_action_allowed(id, T::None, "ACTIVE", Some(S::Shutdown), false).is_ok());
        assert_eq!(
            check_action_allowed(id, T::Building, "BUILD", Some(S::New), false).unwrap_err(),
            "Instance i1 is not currently available for an action to be performed (instance status was BUILD)."
        );
        assert_eq!(
            check_action_allowed(id, T::Resizing, "ACTIVE", Some(S::Healthy), false).unwrap_err(),
            "Instance i1 is not currently available for an action to be performed (task status was RESIZING)."
        );
        assert_eq!(
            check_action_allowed(id, T::None, "ACTIVE", Some(S::Unknown), false).unwrap_err(),
            "Instance i1 is not currently available for an action to be performed (instance status was ACTIVE)."
        );
        assert_eq!(
            check_action_allowed(id, T::None, "ACTIVE", Some(S::Healthy), true).unwrap_err(),
            "Instance i1 is not currently available for an action to be performed (instance status was BACKUP)."
        );
        assert!(check_deletable(id, "ERROR").is_ok());
        assert_eq!(
            check_deletable(id, "BUILD").unwrap_err(),
            "Instance i1 is not ready. (Status is BUILD)."
        );
    }
}
