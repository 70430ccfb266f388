//! Recovery of work a stopped taskmanager left: creates still BUILDING after
//! `usage_timeout` (and not running in this taskmanager, whose own wait for the guest
//! times out and says so) are completed when their guest is up, else fail with a fault and
//! their resources are removed; deletes still
//! DELETING after a while are run again (every delete step is idempotent).

use std::sync::Arc;
use std::time::Duration;

use trove_db::TaskStatus;
use trove_rpc::RpcContext;

use crate::error::TaskError;
use crate::manager::TaskManager;

/// How long a delete may take before another taskmanager runs it again.
const DELETE_GRACE: Duration = Duration::from_secs(600);

/// The reason a tenant reads on a backup failed because its guest went silent.
const GUEST_SILENT_DURING_BACKUP: &str = "The guest agent stopped responding during the backup.";

impl TaskManager {
    /// One recovery pass. Returns how many instances it handled.
    pub async fn recover(self: &Arc<Self>) -> usize {
        let mut handled = 0;
        let now = trove_db::utc_now();
        let cutoff = now
            - chrono::Duration::from_std(self.settings.usage_timeout)
                .unwrap_or(chrono::Duration::MAX);
        match self
            .db
            .instances_in_task(TaskStatus::Building, cutoff)
            .await
        {
            Ok(stale) => {
                for inst in stale {
                    if self.is_creating(&inst.id) {
                        // Still waiting for its guest here: it times out by itself.
                        continue;
                    }
                    if self.guest_is_up(&inst.id).await {
                        // The guest finished; only the taskmanager that waited for it died.
                        if self
                            .db
                            .instance_update_task(
                                &inst.id,
                                Some(TaskStatus::Building),
                                TaskStatus::None,
                            )
                            .await
                            .is_ok()
                        {
                            tracing::info!(instance.id = %inst.id, "create left by a stopped taskmanager: the guest is up; instance ACTIVE");
                            handled += 1;
                        }
                        continue;
                    }
                    tracing::warn!(instance.id = %inst.id, "create did not finish within usage_timeout; marking it failed");
                    let e = TaskError::Service(format!(
                        "The instance did not become ready within usage_timeout ({} s); the create was interrupted",
                        self.settings.usage_timeout.as_secs()
                    ));
                    self.fail_build(&inst.id, &e).await;
                    handled += 1;
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot look for stale creates"),
        }
        let cutoff =
            now - chrono::Duration::from_std(DELETE_GRACE).unwrap_or(chrono::Duration::MAX);
        match self
            .db
            .instances_in_task(TaskStatus::Deleting, cutoff)
            .await
        {
            Ok(stale) => {
                for inst in stale {
                    if inst.updated.is_some_and(|u| u > cutoff) {
                        continue;
                    }
                    tracing::warn!(instance.id = %inst.id, "delete did not finish; running it again");
                    self.delete_instance(RpcContext::new_internal(), &inst.id)
                        .await;
                    handled += 1;
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot look for stale deletes"),
        }
        handled += self.fail_orphaned_backups(now).await;
        handled
    }

    /// Backups still running whose guest stopped reporting (no heartbeat for
    /// `agent_heartbeat_expiry`): the guest died with the backup, which ends FAILED rather
    /// than BUILDING forever. A guest that reports again later finds its backup FAILED.
    async fn fail_orphaned_backups(&self, now: chrono::NaiveDateTime) -> usize {
        let expiry = chrono::Duration::from_std(self.settings.agent_heartbeat_expiry)
            .unwrap_or(chrono::Duration::MAX);
        let silent_since = now - expiry;
        let running = match self.db.backups_running().await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "cannot look for orphaned backups");
                return 0;
            }
        };
        let mut handled = 0;
        for b in running {
            let Some(instance_id) = &b.instance_id else {
                continue;
            };
            // Give a backup that just started the same grace as its guest.
            if b.created.is_some_and(|c| c > silent_since) {
                continue;
            }
            let silent = match self.db.service_status_get(instance_id).await {
                Ok(s) => s.updated_at.is_none_or(|u| u < silent_since),
                Err(trove_db::DbError::NotFound { .. }) => true,
                Err(e) => {
                    tracing::warn!(backup.id = %b.id, error = %e, "cannot read the guest's status");
                    continue;
                }
            };
            if !silent {
                continue;
            }
            match self
                .db
                .backup_fail_if_running(&b.id, GUEST_SILENT_DURING_BACKUP)
                .await
            {
                Ok(true) => {
                    tracing::warn!(
                        backup.id = %b.id, instance.id = %instance_id,
                        "the guest stopped reporting during the backup; backup FAILED"
                    );
                    handled += 1;
                }
                Ok(false) => {}
                Err(e) => tracing::error!(backup.id = %b.id, error = %e, "cannot fail the backup"),
            }
        }
        handled
    }

    /// Whether the guest of `id` reports a running database (RUNNING or HEALTHY).
    async fn guest_is_up(&self, id: &str) -> bool {
        matches!(
            self.db.service_status_get(id).await.map(|r| r.status()),
            Ok(Some(
                trove_db::ServiceStatus::Running | trove_db::ServiceStatus::Healthy
            ))
        )
    }

    /// Runs [`TaskManager::recover`] now and then every `period` until shutdown.
    pub(crate) async fn recovery_loop(self: Arc<Self>, period: Duration) {
        loop {
            self.recover().await;
            tokio::select! {
                _ = tokio::time::sleep(period) => {}
                _ = self.cancel.cancelled() => return,
            }
        }
    }
}
