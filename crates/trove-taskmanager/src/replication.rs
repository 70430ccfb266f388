//! Replication workflows (spec: internals-workflows §8).
//!
//! * Create replicas (`create_instance` with `slave_of_id`): the source takes a
//!   replication snapshot (`get_replication_snapshot`: it becomes a source if it is not
//!   one, makes the replication account and takes a full backup, recorded as a backup row
//!   while it exists); each replica is then built like any instance restored from that
//!   backup, with the snapshot passed to `prepare` so that it starts as a replica. The
//!   snapshot backup is deleted at the end, whatever happened. A failed snapshot leaves
//!   the fault on the source and the replicas in BUILDING_ERROR_REPLICA.
//! * Detach: the replica stops following its source and becomes a standalone instance.
//! * Promote (switchover): the old source stops taking writes, the candidate catches up
//!   to its last transaction, leaves replication and becomes the source; the other
//!   replicas and the old source follow it.
//! * Eject (failover, the source is gone): the replica that has applied the most of the
//!   source's transactions becomes the source and the others follow it.
//!
//! Every member's task goes back to NONE; a member that failed gets PROMOTION_ERROR or
//! EJECTION_ERROR and a fault that says what failed.

use std::sync::Arc;

use serde_json::{json, Value};
use trove_db::{Instance, ServiceStatus, TaskStatus};
use trove_rpc::api::{CreateInstanceArgs, GuestRequest};
use trove_rpc::RpcContext;

use crate::create::{nth_str, CreateRunning, OneCreate};
use crate::error::{Result, TaskError};
use crate::manager::{step, TaskManager};

/// Addresses a source cannot be reached at from another machine.
fn unspecified(host: &str) -> bool {
    host.is_empty()
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_unspecified())
}

impl TaskManager {
    /// Sends `req` to the guest of `inst` and logs the step.
    async fn ask(
        &self,
        ctx: &RpcContext,
        inst: &Instance,
        name: &'static str,
        req: GuestRequest,
    ) -> Result<Value> {
        let guest = self.guest(inst)?;
        step(&inst.id, name, async {
            guest.send(ctx, req).await.map_err(TaskError::from)
        })
        .await
    }

    /// A replica context (or snapshot) whose `master.host` a replica can reach: a source
    /// that listens on every address reports none, so the one the instance was given is
    /// used.
    async fn reachable(&self, source: &Instance, mut context: Value) -> Result<Value> {
        let host = context
            .pointer("/master/host")
            .and_then(Value::as_str)
            .unwrap_or("");
        if unspecified(host) {
            let addresses = self.db.instance_addresses(&source.id).await?;
            let Some(a) = addresses.first() else {
                return Err(TaskError::Invalid(format!(
                    "the replication source {} has no address replicas can reach",
                    source.id
                )));
            };
            context["master"]["host"] = Value::String(a.address.clone());
        }
        Ok(context)
    }

    /// Builds the replicas `ids` of `args.slave_of_id` (see the module doc).
    pub(crate) async fn create_replicas(
        self: &Arc<Self>,
        ctx: &RpcContext,
        args: &CreateInstanceArgs,
        ids: Vec<String>,
    ) {
        let Some(source_id) = args.slave_of_id.clone() else {
            return;
        };
        let Some(first) = ids.first().cloned() else {
            return;
        };
        // The recovery of a restarted taskmanager leaves these alone while the source's
        // snapshot runs.
        let running: Vec<CreateRunning<'_>> =
            ids.iter().map(|id| CreateRunning::new(self, id)).collect();
        let snapshot = self.replication_snapshot(ctx, &source_id, &first).await;
        drop(running);
        let (backup_id, snapshot) = match snapshot {
            Ok(s) => s,
            Err((backup_id, e)) => {
                tracing::error!(instance.id = %source_id, error = %e, "replication snapshot failed");
                let text = format!("Creating a replication snapshot failed: {e}");
                self.record_fault(&source_id, &text, &format!("{e:?}"))
                    .await;
                for id in &ids {
                    self.fail_replica(id, &text).await;
                }
                if let Some(b) = backup_id {
                    self.delete_backup(ctx.clone(), &b).await;
                }
                return;
            }
        };
        for (i, id) in ids.iter().enumerate() {
            let one = OneCreate {
                name: nth_str(&args.name, i).unwrap_or_default(),
                root_password: None,
                id: id.clone(),
                args,
                backup_id: Some(backup_id.clone()),
                snapshot: Some(snapshot.clone()),
            };
            self.create_one(ctx, one).await;
        }
        // The snapshot served its purpose: its objects and row go.
        self.delete_backup(ctx.clone(), &backup_id).await;
    }

    /// Marks a replica whose source could not be snapshotted BUILDING_ERROR_REPLICA.
    async fn fail_replica(&self, id: &str, text: &str) {
        match self
            .db
            .instance_update_task(
                id,
                Some(TaskStatus::Building),
                TaskStatus::BuildingErrorReplica,
            )
            .await
        {
            Ok(()) => {}
            Err(trove_db::DbError::Conflict(_)) | Err(trove_db::DbError::NotFound { .. }) => return,
            Err(e) => tracing::error!(instance.id = id, error = %e, "cannot set the error task"),
        }
        if self.settings.update_status_on_fail {
            if let Err(e) = self
                .db
                .service_status_update(id, ServiceStatus::Failed)
                .await
            {
                tracing::warn!(instance.id = id, error = %e, "cannot set the service status");
            }
        }
        self.record_fault(id, text, "").await;
    }

    /// Asks the source for a replication snapshot; returns the snapshot's backup id and
    /// the snapshot (with a reachable `master.host`). On error, the backup row made for
    /// it (if any) is returned with the error, for the caller to delete.
    async fn replication_snapshot(
        &self,
        ctx: &RpcContext,
        source_id: &str,
        first_replica: &str,
    ) -> std::result::Result<(String, Value), (Option<String>, TaskError)> {
        let source = match self.live_instance(source_id).await {
            Ok(Some(s)) => s,
            Ok(None) => {
                return Err((
                    None,
                    TaskError::Invalid(format!("the source instance {source_id} is gone")),
                ))
            }
            Err(e) => return Err((None, e)),
        };
        let (ds_name, version_name) = match self.version_names(&source).await {
            Ok(v) => v,
            Err(e) => return Err((None, e)),
        };
        let row = trove_db::Backup {
            id: trove_db::new_id(),
            name: format!("Replication snapshot for {first_replica}"),
            description: Some("Backup image used to initialize replication slave".into()),
            backup_type: Some("full".into()),
            tenant_id: source.tenant_id.clone(),
            state: "NEW".into(),
            instance_id: Some(source.id.clone()),
            datastore_version_id: source.datastore_version_id.clone(),
            storage_driver: Some("swift".into()),
            ..trove_db::Backup::default()
        };
        if let Err(e) = self.db.backup_create(&row).await {
            return Err((None, e.into()));
        }
        let info = json!({
            "id": row.id,
            "name": row.name,
            "description": row.description,
            "instance_id": source.id,
            "backup_type": "full",
            "checksum": null,
            "parent": null,
            "datastore": ds_name,
            "datastore_version": version_name,
            "storage_driver": "swift",
            "swift_container": null,
            "swift_url": self.backup_store_url(ctx),
        });
        let snapshot = self
            .ask(
                ctx,
                &source,
                "replication snapshot",
                GuestRequest::GetReplicationSnapshot {
                    snapshot_info: info,
                    replica_source_config: None,
                },
            )
            .await;
        let snapshot = match snapshot {
            Ok(s) => self.reachable(&source, s).await,
            Err(e) => Err(e),
        };
        match snapshot {
            Ok(s) => Ok((row.id, s)),
            Err(e) => Err((Some(row.id), e)),
        }
    }

    /// Datastore name and version name of an instance (the backup metadata).
    async fn version_names(&self, inst: &Instance) -> Result<(String, String)> {
        let Some(vid) = &inst.datastore_version_id else {
            return Err(TaskError::Invalid(format!(
                "instance {} has no datastore version",
                inst.id
            )));
        };
        let v = self.db.datastore_version_get(vid).await?;
        let ds = self.db.datastore_get(&v.datastore_id).await?;
        Ok((ds.name, v.name))
    }

    /// `detach_replica(instance_id)`.
    pub(crate) async fn detach_replica(&self, ctx: RpcContext, id: &str) {
        let inst = match self.live_instance(id).await {
            Ok(Some(i)) => i,
            Ok(None) => return,
            Err(e) => {
                tracing::error!(instance.id = id, error = %e, "cannot read the replica");
                return;
            }
        };
        let r: Result<()> = async {
            self.ask(
                &ctx,
                &inst,
                "detach replica",
                GuestRequest::DetachReplica {
                    for_failover: false,
                },
            )
            .await?;
            self.db.instance_update_slave_of(id, None).await?;
            Ok(())
        }
        .await;
        match r {
            Ok(()) => tracing::info!(instance.id = id, "replica detached"),
            Err(e) => {
                tracing::error!(instance.id = id, error = %e, "detaching the replica failed");
                self.record_fault(
                    id,
                    &format!("Detaching the replica failed: {e}"),
                    &format!("{e:?}"),
                )
                .await;
            }
        }
        self.finish_task(id, TaskStatus::Detaching).await;
    }

    /// Makes `candidate` the source and points `followers` at it. Returns the followers
    /// that could not be attached, with why.
    async fn take_over(
        &self,
        ctx: &RpcContext,
        candidate: &Instance,
        followers: &[Instance],
    ) -> Result<Vec<(String, TaskError)>> {
        self.ask(
            ctx,
            candidate,
            "detach candidate",
            GuestRequest::DetachReplica { for_failover: true },
        )
        .await?;
        self.ask(
            ctx,
            candidate,
            "enable as source",
            GuestRequest::EnableAsMaster {
                replica_source_config: None,
            },
        )
        .await?;
        self.ask(
            ctx,
            candidate,
            "writable",
            GuestRequest::MakeReadOnly { read_only: false },
        )
        .await?;
        self.db
            .instance_update_slave_of(&candidate.id, None)
            .await?;
        let context = self
            .ask(
                ctx,
                candidate,
                "replica context",
                GuestRequest::GetReplicaContext {},
            )
            .await?;
        let context = self.reachable(candidate, context).await?;
        let mut failed = Vec::new();
        for f in followers {
            let r: Result<()> = async {
                self.ask(
                    ctx,
                    f,
                    "detach replica",
                    GuestRequest::DetachReplica { for_failover: true },
                )
                .await?;
                self.follow(ctx, f, candidate, context.clone(), true).await
            }
            .await;
            if let Err(e) = r {
                failed.push((f.id.clone(), e));
            }
        }
        Ok(failed)
    }

    /// Attaches `member` to `source` (whose replica context is `context`) and records it.
    async fn follow(
        &self,
        ctx: &RpcContext,
        member: &Instance,
        source: &Instance,
        context: Value,
        restart: bool,
    ) -> Result<()> {
        self.ask(
            ctx,
            member,
            "attach to the new source",
            GuestRequest::AttachReplica {
                replica_info: context,
                slave_config: None,
                restart,
            },
        )
        .await?;
        self.db
            .instance_update_slave_of(&member.id, Some(&source.id))
            .await?;
        Ok(())
    }

    /// `promote_to_replica_source(instance_id)`: switchover to replica `id`.
    pub(crate) async fn promote_to_replica_source(&self, ctx: RpcContext, id: &str) {
        let members = match self.replication_set(id).await {
            Ok(Some(m)) => m,
            Ok(None) => return,
            Err(e) => {
                tracing::error!(instance.id = id, error = %e, "cannot read the replication set");
                self.finish_task(id, TaskStatus::Promoting).await;
                return;
            }
        };
        let (source, candidate, others) = members;
        let mut source_read_only = false;
        let r: Result<Vec<(String, TaskError)>> = async {
            self.ask(
                &ctx,
                &source,
                "source read-only",
                GuestRequest::MakeReadOnly { read_only: true },
            )
            .await?;
            source_read_only = true;
            let txn = self
                .ask(
                    &ctx,
                    &source,
                    "latest transaction",
                    GuestRequest::GetLatestTxnId {},
                )
                .await?;
            self.ask(
                &ctx,
                &candidate,
                "catch up",
                GuestRequest::WaitForTxn { txn },
            )
            .await?;
            let mut failed = self.take_over(&ctx, &candidate, &others).await?;
            source_read_only = false;
            let old: Result<()> = async {
                self.ask(
                    &ctx,
                    &source,
                    "demote old source",
                    GuestRequest::DemoteReplicationMaster {},
                )
                .await?;
                let context = self
                    .ask(
                        &ctx,
                        &candidate,
                        "replica context",
                        GuestRequest::GetReplicaContext {},
                    )
                    .await?;
                let context = self.reachable(&candidate, context).await?;
                self.follow(&ctx, &source, &candidate, context, false).await
            }
            .await;
            if let Err(e) = old {
                failed.push((source.id.clone(), e));
            }
            Ok(failed)
        }
        .await;
        let all: Vec<&Instance> = std::iter::once(&source)
            .chain(std::iter::once(&candidate))
            .chain(others.iter())
            .collect();
        match r {
            Ok(failed) => {
                self.end_members(
                    &all,
                    &failed,
                    TaskStatus::Promoting,
                    TaskStatus::PromotionError,
                    "Promoting the replica failed",
                )
                .await;
                tracing::info!(instance.id = id, failed = failed.len(), "promotion done");
            }
            Err(e) => {
                tracing::error!(instance.id = id, error = %e, "promotion failed");
                if source_read_only {
                    // The switch did not happen: the source takes writes again.
                    if let Err(undo) = self
                        .ask(
                            &ctx,
                            &source,
                            "source writable",
                            GuestRequest::MakeReadOnly { read_only: false },
                        )
                        .await
                    {
                        tracing::error!(instance.id = %source.id, error = %undo, "cannot make the source writable again");
                    }
                }
                let failed: Vec<(String, TaskError)> = all
                    .iter()
                    .map(|m| (m.id.clone(), TaskError::Service(e.to_string())))
                    .collect();
                self.end_members(
                    &all,
                    &failed,
                    TaskStatus::Promoting,
                    TaskStatus::PromotionError,
                    "Promoting the replica failed",
                )
                .await;
            }
        }
    }

    /// `eject_replica_source(instance_id)`: failover away from source `id`.
    pub(crate) async fn eject_replica_source(&self, ctx: RpcContext, id: &str) {
        let Ok(Some(source)) = self.live_instance(id).await else {
            return;
        };
        let replicas = match self.db.instance_replicas(id).await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(instance.id = id, error = %e, "cannot read the replicas");
                self.finish_task(id, TaskStatus::Ejecting).await;
                return;
            }
        };
        let all: Vec<&Instance> = std::iter::once(&source).chain(replicas.iter()).collect();
        let r: Result<Vec<(String, TaskError)>> = async {
            let mut best: Option<(usize, i64)> = None;
            let mut origin: Option<String> = None;
            let mut failed = Vec::new();
            for (i, r) in replicas.iter().enumerate() {
                let last = match self
                    .ask(&ctx, r, "last transaction", GuestRequest::GetLastTxn {})
                    .await
                {
                    Ok(v) => v,
                    Err(e) => {
                        failed.push((r.id.clone(), e));
                        continue;
                    }
                };
                let uuid = last.get(0).map(|u| match u {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                });
                let txn = last.get(1).and_then(Value::as_i64).unwrap_or(-1);
                match (&origin, uuid) {
                    (None, Some(u)) => origin = Some(u),
                    (Some(o), Some(u)) if *o == u => {}
                    (Some(o), u) => {
                        return Err(TaskError::Service(format!(
                        "the replicas follow different sources ({o} and {}); nothing was changed",
                        u.unwrap_or_default()
                    )))
                    }
                    (None, None) => {}
                }
                if best.is_none_or(|(_, t)| txn > t) {
                    best = Some((i, txn));
                }
            }
            let Some((ci, _)) = best else {
                return Err(TaskError::Service(
                    "no replica could say how far it got; nothing was changed".into(),
                ));
            };
            let candidate = &replicas[ci];
            let followers: Vec<Instance> = replicas
                .iter()
                .enumerate()
                .filter(|(i, r)| *i != ci && !failed.iter().any(|(f, _)| *f == r.id))
                .map(|(_, r)| r.clone())
                .collect();
            let mut more = self.take_over(&ctx, candidate, &followers).await?;
            failed.append(&mut more);
            tracing::info!(instance.id = id, new_source = %candidate.id, "replica source ejected");
            Ok(failed)
        }
        .await;
        let failed = match r {
            Ok(f) => f,
            Err(e) => {
                tracing::error!(instance.id = id, error = %e, "ejection failed");
                all.iter()
                    .map(|m| (m.id.clone(), TaskError::Service(e.to_string())))
                    .collect()
            }
        };
        self.end_members(
            &all,
            &failed,
            TaskStatus::Ejecting,
            TaskStatus::EjectionError,
            "Ejecting the replica source failed",
        )
        .await;
    }

    /// Source, candidate and the candidate's siblings of replica `id`.
    async fn replication_set(
        &self,
        id: &str,
    ) -> Result<Option<(Instance, Instance, Vec<Instance>)>> {
        let Some(candidate) = self.live_instance(id).await? else {
            return Ok(None);
        };
        let Some(source_id) = candidate.slave_of_id.clone() else {
            return Err(TaskError::Invalid(format!(
                "instance {id} is not a replica"
            )));
        };
        let Some(source) = self.live_instance(&source_id).await? else {
            return Err(TaskError::Invalid(format!(
                "the source {source_id} of replica {id} is gone"
            )));
        };
        let others = self
            .db
            .instance_replicas(&source_id)
            .await?
            .into_iter()
            .filter(|r| r.id != id)
            .collect();
        Ok(Some((source, candidate, others)))
    }

    /// Ends a replication workflow: members in `failed` get `error` and a fault, the
    /// others their task back to NONE.
    async fn end_members(
        &self,
        members: &[&Instance],
        failed: &[(String, TaskError)],
        running: TaskStatus,
        error: TaskStatus,
        what: &str,
    ) {
        for m in members {
            match failed.iter().find(|(id, _)| *id == m.id) {
                Some((_, e)) => {
                    tracing::error!(instance.id = %m.id, error = %e, "{what}");
                    if let Err(db) = self
                        .db
                        .instance_update_task(&m.id, Some(running), error)
                        .await
                    {
                        tracing::warn!(instance.id = %m.id, error = %db, "cannot set the error task");
                    }
                    self.record_fault(&m.id, &format!("{what}: {e}"), &format!("{e:?}"))
                        .await;
                }
                None => self.finish_task(&m.id, running).await,
            }
        }
    }
}
