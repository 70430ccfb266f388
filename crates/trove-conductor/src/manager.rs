//! [`Conductor`]: what each conductor method does to the control database.
//!
//! | Method | Effect |
//! |---|---|
//! | `heartbeat` | stale filter; a stored RESTART_REQUIRED is kept (the whole message is ignored, `updated_at` included, as in Trove); description -> status code; `updated_at = now` (also without a status) |
//! | `update_backup` | stale filter; only the named backup of the named instance; known columns copied, `fault_message` (ours) capped to its last 1000 characters |
//! | `report_root` | a `root_enabled_history` row unless a live one exists |
//! | `notify_end` | logged (Trove-rs emits no oslo notifications) |
//! | `notify_exc_info` | the instance's fault row is recorded or refreshed |
//!
//! **Ordering.** `heartbeat` and `update_backup` follow Trove's stale rule through
//! `conductor_lastseen` (per instance and method): a message whose `sent` is not newer than
//! the newest accepted one is dropped, so out-of-order and replayed messages change
//! nothing. The check-and-store is one atomic statement in the database, so several
//! conductors never both accept the same message. Within one process, messages about one
//! instance are also serialized from the check to the write (a striped lock), so a newer
//! heartbeat's status can never be overwritten by an older one handled at the same time.
//! Across processes the window between the two statements remains (as in Trove); the next
//! heartbeat repairs a status overtaken there.
//!
//! **Trust.** A message tagged with `csz-instance-id` was decrypted with that instance's key
//! before it gets here; this module also requires the tag to be the instance the message
//! is about, so a guest cannot report for another instance with its own key. An untagged
//! (clear) message is accepted only about an instance that has no RPC key. Both checks are
//! stricter than Trove, which trusts the `instance_id` argument.
//!
//! Not here: transport, decryption (see [`crate::service`]), notifications to oslo
//! listeners, and the "no heartbeat for N seconds" judgement, which readers derive from
//! `updated_at`.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{Map, Value};
use trove_db::{Backup, Db, DbError, ServiceStatus};
use trove_rpc::api::ConductorRequest;
use trove_rpc::{Dispatcher, InstanceKeyLookup, RemoteError, RpcContext, RpcError};

use crate::error::ConductorError;

/// `conductor_lastseen.method_name` of heartbeats.
pub const HEARTBEAT: &str = "heartbeat";
/// `conductor_lastseen.method_name` of backup updates.
pub const UPDATE_BACKUP: &str = "update_backup";

/// Number of per-instance lock stripes.
const STRIPES: usize = 64;

/// What happened to a message that was handled without error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Processed: the database was written (for `notify_end`: the event was logged).
    Applied,
    /// Dropped by the stale rule: `sent` was not newer than the newest accepted message
    /// of that instance and method.
    Stale,
    /// Deliberately not applied: the stored status is RESTART_REQUIRED, the backup belongs
    /// to another instance, root was already recorded, or the instance is gone.
    Ignored,
}

/// Counters of handled messages since the conductor was built.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConductorStats {
    /// Every message that reached this conductor's handler and finished, whatever the result.
    pub received: u64,
    /// [`Outcome::Applied`].
    pub applied: u64,
    /// [`Outcome::Stale`].
    pub stale: u64,
    /// [`Outcome::Ignored`].
    pub ignored: u64,
    /// Not trusted: did not decrypt, unknown `csz-instance-id`, or not authenticated for
    /// the instance it is about.
    pub rejected: u64,
    /// Any other failure (bad arguments, unknown status, database errors).
    pub failed: u64,
}

#[derive(Debug, Default)]
struct Counters {
    received: AtomicU64,
    applied: AtomicU64,
    stale: AtomicU64,
    ignored: AtomicU64,
    rejected: AtomicU64,
    failed: AtomicU64,
}

/// The conductor's manager: applies decrypted conductor requests to the control database.
///
/// Implements trove-rpc's [`Dispatcher`]; [`crate::ConductorServer`] puts it behind an
/// endpoint that decrypts per instance. Cheap to share (`Arc`); all methods take `&self`.
pub struct Conductor {
    db: Db,
    /// Per-instance RPC keys, shared with the decrypting serializer; used here to refuse
    /// clear-text messages about instances that have a key.
    keys: Arc<dyn InstanceKeyLookup>,
    /// Serializes check-then-write for messages about one instance in this process
    /// (handlers run concurrently); striped so memory stays bounded.
    stripes: Box<[tokio::sync::Mutex<()>]>,
    /// Outcome counters, read through [`Conductor::stats`].
    counters: Counters,
}

impl std::fmt::Debug for Conductor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conductor")
            .field("db", &self.db.redacted_url())
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Conductor {
    /// A conductor writing to `db` and finding instance keys through `keys` (normally a
    /// [`trove_rpc::CachingKeyLookup`] over [`crate::DbKeyLookup`]).
    pub fn new(db: Db, keys: Arc<dyn InstanceKeyLookup>) -> Self {
        Self {
            db,
            keys,
            stripes: (0..STRIPES).map(|_| tokio::sync::Mutex::new(())).collect(),
            counters: Counters::default(),
        }
    }

    /// The control database.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The key lookup (also used by the serializer that decrypts messages).
    pub fn keys(&self) -> &Arc<dyn InstanceKeyLookup> {
        &self.keys
    }

    /// A snapshot of the message counters.
    pub fn stats(&self) -> ConductorStats {
        let c = &self.counters;
        ConductorStats {
            received: c.received.load(Ordering::SeqCst),
            applied: c.applied.load(Ordering::SeqCst),
            stale: c.stale.load(Ordering::SeqCst),
            ignored: c.ignored.load(Ordering::SeqCst),
            rejected: c.rejected.load(Ordering::SeqCst),
            failed: c.failed.load(Ordering::SeqCst),
        }
    }

    /// Counts a message that finished with `result`, classified by the remote error class
    /// for failures. Called once per message by the server's handler.
    pub(crate) fn count_finished(&self, result: &Result<Value, RemoteError>) {
        let c = &self.counters;
        if let Err(e) = result {
            if e.class == "DecryptionError" || e.class == crate::error::REJECTED_CLASS {
                c.rejected.fetch_add(1, Ordering::SeqCst);
            } else {
                c.failed.fetch_add(1, Ordering::SeqCst);
            }
        }
        // Last, so whoever waits for `received` sees the other counters up to date.
        c.received.fetch_add(1, Ordering::SeqCst);
    }

    fn count(&self, outcome: Outcome) {
        let c = match outcome {
            Outcome::Applied => &self.counters.applied,
            Outcome::Stale => &self.counters.stale,
            Outcome::Ignored => &self.counters.ignored,
        };
        c.fetch_add(1, Ordering::SeqCst);
    }

    fn stripe(&self, instance_id: &str) -> &tokio::sync::Mutex<()> {
        let mut h = DefaultHasher::new();
        instance_id.hash(&mut h);
        &self.stripes[(h.finish() as usize) % self.stripes.len()]
    }

    /// Handles one decrypted request (`method`, `args`) sent with `ctx`.
    ///
    /// Preconditions: `ctx.instance_id` is set only when the message was tagged with
    /// `csz-instance-id` and decrypted with that instance's key (the server's serializer
    /// guarantees it). On success the database holds the effect described in the module
    /// table, or nothing for [`Outcome::Stale`] / [`Outcome::Ignored`]. On error nothing
    /// was written, except that an accepted `sent` stays recorded when the write after it
    /// failed (as in Trove). Cancelling between the stale check and the write has the
    /// same effect.
    pub async fn apply(
        &self,
        ctx: &RpcContext,
        method: &str,
        args: Map<String, Value>,
    ) -> Result<Outcome, ConductorError> {
        let raw = args.clone();
        let request = ConductorRequest::decode(method, args).map_err(ConductorError::Request)?;
        match request {
            ConductorRequest::Heartbeat {
                instance_id,
                payload,
                sent,
            } => self.heartbeat(ctx, &instance_id, &payload, sent).await,
            ConductorRequest::UpdateBackup {
                instance_id,
                backup_id,
                sent,
                ..
            } => {
                self.update_backup(ctx, &instance_id, &backup_id, sent, &raw)
                    .await
            }
            ConductorRequest::ReportRoot { instance_id, .. } => {
                self.report_root(ctx, &instance_id).await
            }
            ConductorRequest::NotifyEnd {
                serialized_notification,
                ..
            } => Ok(self.notify_end(ctx, &serialized_notification)),
            ConductorRequest::NotifyExcInfo {
                serialized_notification,
                message,
                exception,
            } => {
                self.notify_exc_info(ctx, &serialized_notification, &message, &exception)
                    .await
            }
            _ => Err(ConductorError::Request(RemoteError::no_such_method(method))),
        }
    }

    /// Refuses a message that is not authenticated for `instance_id` (see the module doc).
    async fn authorize(
        &self,
        ctx: &RpcContext,
        method: &str,
        instance_id: &str,
    ) -> Result<(), ConductorError> {
        let rejected = |reason: String| ConductorError::Rejected {
            method: method.to_owned(),
            instance_id: instance_id.to_owned(),
            reason,
        };
        match ctx.instance_id.as_deref() {
            Some(tag) if tag == instance_id => Ok(()),
            Some(tag) => Err(rejected(format!(
                "the message was encrypted by instance {tag}"
            ))),
            None => match self.keys.instance_key(instance_id).await {
                Ok(None) => Ok(()),
                Ok(Some(_)) => Err(rejected(
                    "the message is in clear text but the instance has an RPC key".into(),
                )),
                Err(RpcError::Decrypt(why)) => Err(rejected(why)),
                Err(source) => Err(ConductorError::KeyLookup {
                    instance_id: instance_id.to_owned(),
                    source,
                }),
            },
        }
    }

    async fn heartbeat(
        &self,
        ctx: &RpcContext,
        instance_id: &str,
        payload: &Value,
        sent: Option<f64>,
    ) -> Result<Outcome, ConductorError> {
        self.authorize(ctx, HEARTBEAT, instance_id).await?;
        // A known description is resolved before anything is written.
        let wanted = match payload.get("service_status") {
            None | Some(Value::Null) => None,
            Some(Value::String(d)) => {
                Some(ServiceStatus::from_description(d).ok_or_else(|| {
                    ConductorError::UnknownStatus {
                        instance_id: instance_id.to_owned(),
                        description: d.chars().take(64).collect(),
                    }
                })?)
            }
            Some(_) => {
                return Err(ConductorError::Request(RemoteError::type_error(
                    "heartbeat() payload service_status is not a string",
                )))
            }
        };
        let _serial = self.stripe(instance_id).lock().await;
        let row = self
            .db
            .service_status_get(instance_id)
            .await
            .map_err(ConductorError::db(format!(
                "heartbeat of instance {instance_id}"
            )))?;
        if !self
            .db
            .conductor_check_and_store(instance_id, HEARTBEAT, sent)
            .await
            .map_err(ConductorError::db(format!(
                "stale check of a heartbeat of instance {instance_id}"
            )))?
        {
            tracing::debug!(instance.id = %instance_id, sent, "dropping a heartbeat not newer than the last one seen");
            return Ok(Outcome::Stale);
        }
        let current = row.status();
        if current == Some(ServiceStatus::RestartRequired) {
            tracing::debug!(instance.id = %instance_id, "service status is RESTART_REQUIRED; heartbeat ignored");
            return Ok(Outcome::Ignored);
        }
        let ctx_db = || {
            ConductorError::db(format!(
                "saving the service status of instance {instance_id}"
            ))
        };
        match wanted {
            None => self
                .db
                .service_status_touch(instance_id)
                .await
                .map_err(ctx_db())?,
            Some(new) => {
                self.db
                    .service_status_update(instance_id, new)
                    .await
                    .map_err(ctx_db())?;
                if row.status_id != new.code() {
                    tracing::info!(
                        instance.id = %instance_id,
                        status.old = %row.status_description,
                        status.new = new.description(),
                        "instance {instance_id}: service status {} -> {}",
                        row.status_description,
                        new.description()
                    );
                }
            }
        }
        Ok(Outcome::Applied)
    }

    async fn update_backup(
        &self,
        ctx: &RpcContext,
        instance_id: &str,
        backup_id: &str,
        sent: Option<f64>,
        raw: &Map<String, Value>,
    ) -> Result<Outcome, ConductorError> {
        self.authorize(ctx, UPDATE_BACKUP, instance_id).await?;
        let _serial = self.stripe(instance_id).lock().await;
        let mut backup = self
            .db
            .backup_get(backup_id)
            .await
            .map_err(ConductorError::db(format!(
                "update of backup {backup_id} from instance {instance_id}"
            )))?;
        if !self
            .db
            .conductor_check_and_store(instance_id, UPDATE_BACKUP, sent)
            .await
            .map_err(ConductorError::db(format!(
                "stale check of a backup update from instance {instance_id}"
            )))?
        {
            tracing::debug!(instance.id = %instance_id, backup.id = %backup_id, sent, "dropping a backup update not newer than the last one seen");
            return Ok(Outcome::Stale);
        }
        if backup.id != backup_id || backup.instance_id.as_deref() != Some(instance_id) {
            tracing::warn!(
                instance.id = %instance_id,
                backup.id = %backup_id,
                "instance {instance_id} reported on backup {backup_id}, which belongs to {}; ignored",
                backup.instance_id.as_deref().unwrap_or("no instance")
            );
            return Ok(Outcome::Ignored);
        }
        let old_state = backup.state.clone();
        let skipped = apply_backup_fields(&mut backup, raw);
        if !skipped.is_empty() {
            tracing::debug!(backup.id = %backup_id, fields = ?skipped, "backup update fields not applied");
        }
        self.db
            .backup_save(&backup)
            .await
            .map_err(ConductorError::db(format!("saving backup {backup_id}")))?;
        if backup.state != old_state {
            tracing::info!(
                instance.id = %instance_id,
                backup.id = %backup_id,
                "backup {backup_id} of instance {instance_id}: state {old_state} -> {}",
                backup.state
            );
        }
        Ok(Outcome::Applied)
    }

    async fn report_root(
        &self,
        ctx: &RpcContext,
        instance_id: &str,
    ) -> Result<Outcome, ConductorError> {
        self.authorize(ctx, "report_root", instance_id).await?;
        let context = || format!("recording root enabled on instance {instance_id}");
        match self.db.root_history_get(instance_id).await {
            Ok(Some(r)) if r.is_live() => return Ok(Outcome::Ignored),
            Ok(_) => {}
            Err(e) => return Err(ConductorError::db(context())(e)),
        }
        let user = ctx.user.as_deref().unwrap_or_default();
        match self.db.root_history_record(instance_id, user).await {
            Ok(_) => {
                tracing::info!(instance.id = %instance_id, "instance {instance_id}: root enabled");
                Ok(Outcome::Applied)
            }
            // Another conductor recorded it between our read and our insert.
            Err(e) if e.is_unique_violation() => Ok(Outcome::Ignored),
            Err(e) => Err(ConductorError::db(context())(e)),
        }
    }

    fn notify_end(&self, ctx: &RpcContext, notification: &Value) -> Outcome {
        let class = notification
            .get("notification_classname")
            .and_then(Value::as_str)
            .unwrap_or("unknown notification");
        let instance_id = notification
            .get("instance_id")
            .and_then(Value::as_str)
            .unwrap_or("");
        tracing::info!(
            instance.id = instance_id,
            request_id = ctx.request_id.as_deref().unwrap_or(""),
            notification = class,
            "guest finished {class}"
        );
        Outcome::Applied
    }

    async fn notify_exc_info(
        &self,
        ctx: &RpcContext,
        notification: &Value,
        message: &str,
        exception: &Value,
    ) -> Result<Outcome, ConductorError> {
        let Some(instance_id) = notification.get("instance_id").and_then(Value::as_str) else {
            return Err(ConductorError::Request(RemoteError::type_error(
                "notify_exc_info() serialized_notification has no instance_id",
            )));
        };
        self.authorize(ctx, "notify_exc_info", instance_id).await?;
        let context = || format!("recording a fault of instance {instance_id}");
        match self.db.instance_get(instance_id).await {
            Ok(_) => {}
            Err(DbError::NotFound { .. }) => {
                tracing::debug!(instance.id = %instance_id, "fault reported for an instance that no longer exists; ignored");
                return Ok(Outcome::Ignored);
            }
            Err(e) => return Err(ConductorError::db(context())(e)),
        }
        let details = exception_details(exception);
        self.db
            .instance_fault_upsert(instance_id, message, &details)
            .await
            .map_err(ConductorError::db(context()))?;
        let class = notification
            .get("notification_classname")
            .and_then(Value::as_str)
            .unwrap_or("unknown notification");
        tracing::warn!(
            instance.id = %instance_id,
            request_id = ctx.request_id.as_deref().unwrap_or(""),
            notification = class,
            "instance {instance_id}: guest reported a failure: {}",
            message.chars().take(255).collect::<String>()
        );
        Ok(Outcome::Applied)
    }
}

#[async_trait]
impl Dispatcher for Conductor {
    async fn dispatch(
        &self,
        ctx: RpcContext,
        method: &str,
        args: Map<String, Value>,
    ) -> Result<Value, RemoteError> {
        match self.apply(&ctx, method, args).await {
            Ok(outcome) => {
                self.count(outcome);
                Ok(Value::Null)
            }
            Err(e) => Err(e.to_remote()),
        }
    }
}

/// Backup columns an `update_backup` may set, as Trove copies every argument that names
/// a column. Identity and bookkeeping columns (`id`, `instance_id`, `tenant_id`,
/// `deleted`, timestamps, `datastore_version_id`) are left alone.
pub const UPDATABLE_BACKUP_FIELDS: &[&str] = &[
    "name",
    "description",
    "location",
    "backup_type",
    "size",
    "state",
    "checksum",
    "parent_id",
    "storage_driver",
    "fault_message",
];

/// The longest failure reason stored (characters); a longer one keeps its end, where
/// the cause usually is.
pub const MAX_FAULT_MESSAGE_CHARS: usize = 1000;

/// `message` cut to [`MAX_FAULT_MESSAGE_CHARS`], keeping its end behind an ellipsis.
fn bounded_fault_message(message: String) -> String {
    let n = message.chars().count();
    if n <= MAX_FAULT_MESSAGE_CHARS {
        return message;
    }
    let tail: String = message
        .chars()
        .skip(n - (MAX_FAULT_MESSAGE_CHARS - 1))
        .collect();
    format!("…{tail}")
}

/// Copies the updatable fields present in `args` onto `backup`; returns the names of the
/// other arguments (not columns, not updatable, or of the wrong type), which are skipped.
pub fn apply_backup_fields(backup: &mut Backup, args: &Map<String, Value>) -> Vec<String> {
    let mut skipped = Vec::new();
    for (k, v) in args {
        let text = match v {
            Value::Null => Some(None),
            Value::String(s) => Some(Some(s.clone())),
            _ => None,
        };
        let ok = match (k.as_str(), text) {
            ("instance_id" | "backup_id" | "sent", _) => true,
            ("size", _) => match v {
                Value::Null => {
                    backup.size = None;
                    true
                }
                Value::Number(n) => {
                    backup.size = n.as_f64();
                    true
                }
                _ => false,
            },
            ("state", Some(Some(s))) => {
                backup.state = s;
                true
            }
            ("name", Some(Some(s))) => {
                backup.name = s;
                true
            }
            ("description", Some(t)) => {
                backup.description = t;
                true
            }
            ("location", Some(t)) => {
                backup.location = t;
                true
            }
            ("backup_type", Some(t)) => {
                backup.backup_type = t;
                true
            }
            ("checksum", Some(t)) => {
                backup.checksum = t;
                true
            }
            ("parent_id", Some(t)) => {
                backup.parent_id = t;
                true
            }
            ("storage_driver", Some(t)) => {
                backup.storage_driver = t;
                true
            }
            ("fault_message", Some(t)) => {
                backup.fault_message = t.map(bounded_fault_message);
                true
            }
            _ => false,
        };
        if !ok {
            skipped.push(k.clone());
        }
    }
    skipped
}

/// The `details` of a fault from `notify_exc_info`'s `exception` (traceback lines).
pub fn exception_details(exception: &Value) -> String {
    match exception {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(lines) => lines
            .iter()
            .map(|l| match l {
                Value::String(s) => s.trim_end_matches('\n').to_owned(),
                other => other.to_string(),
            })
            .collect::<Vec<_>>()
            .join("\n"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn backup_fields_copy_known_columns_only() {
        let mut b = Backup {
            id: "b".into(),
            state: "NEW".into(),
            ..Default::default()
        };
        let args = json!({"instance_id": "i", "backup_id": "b", "sent": 1.0, "size": 2,
            "state": "COMPLETED", "checksum": "abc", "location": "http://x/c/o", "success": true,
            "backup_type": null, "tenant_id": "evil", "deleted": true});
        let mut skipped = apply_backup_fields(&mut b, args.as_object().unwrap());
        skipped.sort();
        assert_eq!(skipped, ["deleted", "success", "tenant_id"]);
        assert_eq!(b.size, Some(2.0));
        assert_eq!(b.state, "COMPLETED");
        assert_eq!(b.checksum.as_deref(), Some("abc"));
        assert_eq!(b.location.as_deref(), Some("http://x/c/o"));
        assert_eq!(b.tenant_id, None);
        assert!(!b.deleted);
        // A NOT NULL column is never set to NULL.
        let skipped = apply_backup_fields(&mut b, json!({"state": null}).as_object().unwrap());
        assert_eq!(skipped, ["state"]);
        assert_eq!(b.state, "COMPLETED");
    }

    #[test]
    fn fault_message_is_stored_and_bounded() {
        let mut b = Backup::default();
        let args = json!({"state": "FAILED", "fault_message": "The backup tool failed."});
        assert!(apply_backup_fields(&mut b, args.as_object().unwrap()).is_empty());
        assert_eq!(b.fault_message.as_deref(), Some("The backup tool failed."));
        // A report without one leaves it; a wrong type is skipped.
        let skipped = apply_backup_fields(&mut b, json!({"fault_message": 5}).as_object().unwrap());
        assert_eq!(skipped, ["fault_message"]);
        assert!(apply_backup_fields(&mut b, json!({"size": 1.0}).as_object().unwrap()).is_empty());
        assert_eq!(b.fault_message.as_deref(), Some("The backup tool failed."));
        // An overlong one keeps its end.
        let long = format!("{}the cause", "é".repeat(5000));
        let args = json!({ "fault_message": long });
        apply_backup_fields(&mut b, args.as_object().unwrap());
        let kept = b.fault_message.unwrap();
        assert_eq!(kept.chars().count(), MAX_FAULT_MESSAGE_CHARS);
        assert!(
            kept.starts_with('…') && kept.ends_with("éthe cause"),
            "{kept}"
        );
    }

    #[test]
    fn exception_lines_become_details() {
        assert_eq!(
            exception_details(&json!(["Traceback:\n", "  line\n", "Error: x\n"])),
            "Traceback:\n  line\nError: x"
        );
        assert_eq!(exception_details(&json!("one")), "one");
        assert_eq!(exception_details(&Value::Null), "");
    }
}
