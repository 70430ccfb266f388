//! `delete_instance` (spec: internals-workflows §3) and the clean-up shared with failed
//! creates and recovery.

use trove_db::DbError;
use trove_rpc::api::GuestApi;
use trove_rpc::RpcContext;

use crate::manager::TaskManager;

impl TaskManager {
    /// Stops the database, removes server, addresses, volumes, the guest's broker user and
    /// queues, then marks the instance deleted. Every step is tried even when an earlier
    /// one failed; failures are logged with the instance id.
    pub(crate) async fn delete_instance(&self, ctx: RpcContext, id: &str) {
        let started = std::time::Instant::now();
        let inst = match self.db.instance_get_any(id).await {
            Ok(i) => Some(i),
            Err(DbError::NotFound { .. }) => None,
            Err(e) => {
                tracing::error!(instance.id = id, error = %e, "cannot read the instance to delete");
                return;
            }
        };
        if let Some(inst) = inst.as_ref().filter(|i| !i.deleted) {
            let server_up = match &inst.compute_instance_id {
                Some(sid) => matches!(
                    self.drivers.compute.get_server(sid).await,
                    Ok(Some(s)) if s.status == trove_compute::ServerStatus::Active
                ),
                None => false,
            };
            if server_up {
                match self.guest(inst) {
                    Ok(g) => {
                        if let Err(e) = g.stop_db(&ctx).await {
                            tracing::warn!(instance.id = id, error = %e, "stop_db before delete failed; the server is removed anyway");
                        }
                    }
                    Err(e) => tracing::warn!(instance.id = id, error = %e, "no guest client"),
                }
            }
        }
        let clean = self.release_resources(id, inst.as_ref()).await;
        match self.db.instance_soft_delete(id).await {
            Ok(()) | Err(DbError::NotFound { .. }) => {}
            Err(e) => {
                tracing::error!(instance.id = id, error = %e, "cannot mark the instance deleted");
                return;
            }
        }
        tracing::info!(
            instance.id = id,
            duration_ms = started.elapsed().as_millis() as u64,
            complete = clean,
            "instance deleted"
        );
    }

    /// Removes everything made for instance `id`: server (found by the stored id or by the
    /// instance id), ports and addresses, volumes, the guest's broker user and queues.
    /// Idempotent. Returns whether every step succeeded.
    pub(crate) async fn release_resources(
        &self,
        id: &str,
        inst: Option<&trove_db::Instance>,
    ) -> bool {
        let mut ok = true;
        let mut fail = |what: &str, e: &dyn std::fmt::Display| {
            ok = false;
            tracing::error!(instance.id = id, error = %e, "cannot remove the instance's {what}");
        };
        let stored = inst.and_then(|i| i.compute_instance_id.clone());
        let server_id = match stored {
            Some(s) => Some(s),
            None => match self.drivers.compute.find_server(id).await {
                Ok(s) => s.map(|s| s.id),
                Err(e) => {
                    fail("server", &e);
                    None
                }
            },
        };
        if let Some(sid) = server_id {
            if let Err(e) = self.drivers.compute.delete_server(&sid).await {
                fail("server", &e);
            }
        }
        if let Err(e) = self.drivers.network.release(id).await {
            fail("ports", &e);
        }
        let mut volume_ids: Vec<String> =
            inst.and_then(|i| i.volume_id.clone()).into_iter().collect();
        match self.drivers.volumes.find_volumes(id).await {
            Ok(vs) => volume_ids.extend(vs.into_iter().map(|v| v.id)),
            Err(e) => fail("volumes", &e),
        }
        volume_ids.sort();
        volume_ids.dedup();
        for v in volume_ids {
            if let Err(e) = self.drivers.volumes.delete_volume(&v).await {
                fail("volume", &e);
            }
        }
        if let Some(b) = &self.broker {
            if let Err(e) = b.delete_guest_user(id).await {
                fail("broker user", &e);
            }
        }
        let queues = GuestApi::new(
            self.transport.clone(),
            id,
            None,
            self.settings.guest_timeouts,
            self.settings.guest_version_cap,
        );
        if let Err(e) = queues.delete_queues().await {
            fail("guest queues", &e);
        }
        if let Err(e) = self.db.instance_addresses_delete(id).await {
            fail("addresses", &e);
        }
        ok
    }
}
