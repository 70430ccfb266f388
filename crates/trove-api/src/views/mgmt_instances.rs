//! Management instance views (api.md §19.1): the admin detail view of §4.0 plus the
//! compute server, guest service status, owner, deletion state and task description.

use serde_json::{json, Value};

use crate::context::RequestContext;
use crate::views::instances::{instance, Detail, InstanceView};

/// The management-only facts about an instance.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MgmtExtras {
    /// Compute server status (used for `server.status`).
    pub server_status: String,
    /// Operating status of the guest, even when the instance's `operating_status` is `""`.
    pub service_status: String,
    /// Whether the instance is deleted.
    pub deleted: bool,
    /// Deletion time (`YYYY-MM-DDTHH:MM:SS`).
    pub deleted_at: Option<String>,
    /// Stored task description.
    pub task_description: String,
    /// The guest's own description of its state (`guest_status.state_description`).
    pub guest_state: String,
}

/// One instance of `GET /mgmt/instances` (`detail` = [`Detail::Detail`]) or
/// `GET /mgmt/instances/{id}` ([`Detail::Show`]).
pub fn mgmt_instance(
    ctx: &RequestContext,
    v: &InstanceView,
    extras: &MgmtExtras,
    detail: Detail,
) -> Value {
    let mut out = instance(ctx, v, detail, true);
    let m = out.as_object_mut().expect("instance view is an object");
    let server = match &v.server_id {
        Some(sid) => {
            let mut s = json!({
                "id": sid,
                "name": v.name,
                "status": extras.server_status,
                "tenant_id": Value::Null,
                "host": Value::Null,
            });
            if detail == Detail::Show {
                s["addresses"] = json!({});
            }
            s
        }
        None => Value::Null,
    };
    m.insert("server".into(), server);
    m.insert(
        "service_status".into(),
        extras.service_status.clone().into(),
    );
    m.insert("tenant_id".into(), v.tenant_id.clone().into());
    m.insert("deleted".into(), extras.deleted.into());
    m.insert("deleted_at".into(), json!(extras.deleted_at));
    m.insert(
        "task_description".into(),
        extras.task_description.clone().into(),
    );
    if detail == Detail::Show {
        let volume = match (&v.volume_id, v.volume_size) {
            (Some(id), Some(size)) => json!({"id": id, "size": size}),
            (Some(id), None) => json!({ "id": id }),
            _ => Value::Null,
        };
        m.insert("volume".into(), volume);
        m.insert(
            "guest_status".into(),
            json!({ "state_description": extras.guest_state }),
        );
    }
    out
}
