//! The options the workflows read, turned into durations once.

use std::time::Duration;

use trove_config::Config;
use trove_rpc::api::guest::{guest_version_cap, GuestTimeouts};
use trove_rpc::Version;

/// Timeouts and intervals of the workflows (spec: internals-workflows §11).
#[derive(Debug, Clone)]
pub struct Settings {
    /// `usage_timeout`: how long a create waits for the guest.
    pub usage_timeout: Duration,
    /// `restore_usage_timeout`.
    pub restore_usage_timeout: Duration,
    /// `usage_sleep_time`: the longest pause between two looks at the service status.
    pub usage_sleep_time: Duration,
    /// `update_status_on_fail`.
    pub update_status_on_fail: bool,
    /// Guest call timeouts.
    pub guest_timeouts: GuestTimeouts,
    /// `[upgrade_levels] guestagent`.
    pub guest_version_cap: Version,
    /// `volume_time_out`.
    pub volume_time_out: Duration,
    /// `server_delete_time_out`.
    pub server_delete_time_out: Duration,
    /// `reboot_time_out`.
    pub reboot_time_out: Duration,
    /// `resize_time_out`.
    pub resize_time_out: Duration,
    /// `state_change_wait_time`: how long a restart may take to come back healthy.
    pub state_change_wait_time: Duration,
    /// `agent_heartbeat_expiry`.
    pub agent_heartbeat_expiry: Duration,
}

fn secs(v: i64) -> Duration {
    Duration::from_secs(u64::try_from(v).unwrap_or(0))
}

impl Settings {
    /// The settings of `config`.
    pub fn from_config(config: &Config) -> Self {
        let d = &config.default;
        Settings {
            usage_timeout: secs(d.usage_timeout),
            restore_usage_timeout: secs(d.restore_usage_timeout),
            usage_sleep_time: secs(d.usage_sleep_time).max(Duration::from_millis(100)),
            update_status_on_fail: d.update_status_on_fail,
            guest_timeouts: GuestTimeouts::from_secs(
                d.agent_call_low_timeout,
                d.agent_call_high_timeout,
                d.agent_replication_snapshot_timeout,
            ),
            guest_version_cap: guest_version_cap(&config.upgrade_levels.guestagent),
            volume_time_out: secs(d.volume_time_out),
            server_delete_time_out: secs(d.server_delete_time_out),
            reboot_time_out: secs(d.reboot_time_out),
            resize_time_out: secs(d.resize_time_out),
            state_change_wait_time: secs(d.state_change_wait_time),
            agent_heartbeat_expiry: secs(d.agent_heartbeat_expiry),
        }
    }
}
