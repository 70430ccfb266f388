//! The agent's periodic status task: heartbeats to the conductor and the supervision of the
//! database server.
//!
//! Every `report_interval` seconds (the first tick right after start-up, so a restarted agent
//! reports at once) the task does nothing until `prepare` has finished (end marker present, no
//! prepare running); then it observes the server with
//! [`crate::manager::DatastoreManager::status`] and casts
//! `heartbeat(instance_id, {"service_status": <description>}, sent)` to the conductor.
//!
//! Beyond Trove, the task also restarts a server that died on its own:
//!
//! ```text
//!   tick ──> status() ──> heartbeat(status)
//!                │
//!                ├─ HEALTHY ───────> (back-off forgotten once healthy for `max` after a restart)
//!                └─ CRASHED ─┬─ auto-restart off (stop_db) ──> nothing; report again next tick
//!                            └─ on ──> wait back-off (1 s, 2 s, 4 s ... `max`) ──> still CRASHED
//!                                      and still on? ──> start() ──> heartbeat(status)
//! ```
//!
//! Each restart is logged and counted ([`crate::agent::AgentStats::restarts`]). A `stop_db`
//! turns the restarts off until the next `start`/`restart` request.
//!
//! Not here: deciding what a missing heartbeat means (the controller compares
//! `service_statuses.updated_at` with `agent_heartbeat_expiry`).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::agent::Inner;
use crate::status::ServiceStatus;

/// Delays between automatic restarts of a crashed server: `initial`, doubled after every
/// restart, at most `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartBackoff {
    /// Delay before the first restart after a crash.
    pub initial: Duration,
    /// Longest delay; also how long the server must stay healthy after a restart before the
    /// back-off starts again from `initial`.
    pub max: Duration,
}

impl Default for RestartBackoff {
    /// 1 s, 2 s, 4 s ... capped at 60 s.
    fn default() -> Self {
        RestartBackoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
        }
    }
}

impl RestartBackoff {
    /// The delay before restart number `attempt` (0-based) of a series.
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.min(31));
        self.initial.saturating_mul(factor).min(self.max)
    }
}

/// Where the current series of automatic restarts stands.
#[derive(Debug, Default)]
struct RestartSeries {
    /// Restarts in the current series (since the server was last stable).
    attempts: u32,
    /// When the last automatic restart happened.
    last: Option<Instant>,
}

/// Runs until the agent's cancellation token fires. See the module doc.
pub(crate) async fn status_loop(inner: Arc<Inner>) {
    let interval = inner.report_interval;
    let mut series = RestartSeries::default();
    let mut next = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = inner.cancel.cancelled() => break,
            _ = tokio::time::sleep_until(next) => {}
        }
        next = tokio::time::Instant::now() + interval;
        if inner.preparing.load(Ordering::SeqCst) || !inner.manager.is_prepared() {
            tracing::debug!("not prepared yet; no heartbeat");
            continue;
        }
        let status = inner.observe_and_report().await;
        match status {
            ServiceStatus::Healthy
                if series
                    .last
                    .is_some_and(|t| t.elapsed() >= inner.restart_backoff.max) =>
            {
                series = RestartSeries::default();
            }
            ServiceStatus::Crashed if inner.auto_restart.load(Ordering::SeqCst) => {
                let delay = inner.restart_backoff.delay(series.attempts);
                tracing::warn!(
                    delay_ms = delay.as_millis() as u64,
                    attempt = series.attempts + 1,
                    "the database server died unexpectedly; restarting it"
                );
                tokio::select! {
                    _ = inner.cancel.cancelled() => break,
                    _ = tokio::time::sleep(delay) => {}
                }
                if !inner.auto_restart.load(Ordering::SeqCst)
                    || inner.manager.status().await != ServiceStatus::Crashed
                {
                    tracing::info!("restart no longer needed");
                    continue;
                }
                series.attempts = series.attempts.saturating_add(1);
                series.last = Some(Instant::now());
                let total = inner.stats.restarts.fetch_add(1, Ordering::SeqCst) + 1;
                let started = Instant::now();
                match inner.manager.start().await {
                    Ok(()) => tracing::info!(
                        restarts = total,
                        duration_ms = started.elapsed().as_millis() as u64,
                        "database server restarted after a crash"
                    ),
                    Err(e) => tracing::error!(
                        restarts = total,
                        error = %e,
                        "restarting the crashed database server failed"
                    ),
                }
                inner.observe_and_report().await;
                next = tokio::time::Instant::now() + interval;
            }
            _ => {}
        }
    }
    tracing::debug!("status task stopped");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let b = RestartBackoff::default();
        let secs: Vec<u64> = (0..9).map(|a| b.delay(a).as_secs()).collect();
        assert_eq!(secs, vec![1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(b.delay(u32::MAX), Duration::from_secs(60));
    }
}
