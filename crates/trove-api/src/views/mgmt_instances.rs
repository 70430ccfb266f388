//! Management instance views (api.md §19.1): the admin detail view of §4.0 plus the
//! compute server, guest service status, owner, deletion state and task description.

use serde_json::{json, Map, Value};

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

/// `server.addresses` in the shape of Nova's address map, from the stored addresses
/// (`{"address", "type", "network"?}`): keyed by network id, each entry `{"addr",
/// "version", "OS-EXT-IPS:type": "fixed"|"floating"}`. A floating IP is listed under the
/// network of the first fixed IP (Nova lists it with the port it is associated with);
/// addresses with no network to go with are keyed `private` or `public` by their type.
pub fn nova_addresses(addresses: &[Value]) -> Value {
    let first_network = addresses
        .iter()
        .find(|a| a["type"] != "public")
        .and_then(|a| a["network"].as_str());
    let mut map = Map::new();
    for a in addresses {
        let Some(addr) = a["address"].as_str() else {
            continue;
        };
        let floating = a["type"] == "public";
        let key = match a["network"].as_str() {
            Some(n) => n,
            None if floating => first_network.unwrap_or("public"),
            None => "private",
        };
        let version = match addr.parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V6(_)) => 6,
            _ => 4,
        };
        let entry = json!({
            "addr": addr,
            "version": version,
            "OS-EXT-IPS:type": if floating { "floating" } else { "fixed" },
        });
        match map.entry(key.to_string()).or_insert_with(|| json!([])) {
            Value::Array(list) => list.push(entry),
            other => *other = json!([entry]),
        }
    }
    Value::Object(map)
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
                s["addresses"] = nova_addresses(&v.addresses);
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

/// `{"root_history": ...}` of api.md §19.3: when and by whom root was first enabled, or
/// `"Never"` / `"Nobody"`.
pub fn root_history(instance_id: &str, enabled: Option<(String, String)>) -> Value {
    let (when, user) = enabled.unwrap_or_else(|| ("Never".into(), "Nobody".into()));
    json!({"root_history": {"id": instance_id, "enabled": when, "user": user}})
}

/// `{"diagnostics": ...}` of api.md §19.3 from the guest's `get_diagnostics` answer
/// (`version`, `threads`, `fd_size`, `vm_size`, `vm_peak`, `vm_rss`, `vm_hwm`).
pub fn diagnostics(guest: &Value) -> Value {
    let field = |k: &str| guest.get(k).cloned().unwrap_or(Value::Null);
    json!({"diagnostics": {
        "version": field("version"),
        "threads": field("threads"),
        "fdSize": field("fd_size"),
        "vmSize": field("vm_size"),
        "vmPeak": field("vm_peak"),
        "vmRss": field("vm_rss"),
        "vmHwm": field("vm_hwm"),
    }})
}

/// `{"hwinfo": ...}` of api.md §19.3 from the guest's `get_hwinfo` answer.
pub fn hwinfo(guest: &Value) -> Value {
    let field = |k: &str| guest.get(k).cloned().unwrap_or(Value::Null);
    json!({"hwinfo": {"mem_total": field("mem_total"), "num_cpus": field("num_cpus")}})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nova_address_map_from_stored_addresses() {
        let stored = [
            json!({"address": "10.0.0.12", "type": "private", "network": "net-1"}),
            json!({"address": "fd00::12", "type": "private", "network": "net-1"}),
            json!({"address": "10.1.0.4", "type": "private", "network": "net-2"}),
            json!({"address": "203.0.113.40", "type": "public"}),
        ];
        assert_eq!(
            nova_addresses(&stored),
            json!({
                "net-1": [
                    {"addr": "10.0.0.12", "version": 4, "OS-EXT-IPS:type": "fixed"},
                    {"addr": "fd00::12", "version": 6, "OS-EXT-IPS:type": "fixed"},
                    {"addr": "203.0.113.40", "version": 4, "OS-EXT-IPS:type": "floating"},
                ],
                "net-2": [{"addr": "10.1.0.4", "version": 4, "OS-EXT-IPS:type": "fixed"}],
            })
        );
        assert_eq!(
            nova_addresses(&[json!({"address": "203.0.113.40", "type": "public"})]),
            json!({"public": [{"addr": "203.0.113.40", "version": 4, "OS-EXT-IPS:type": "floating"}]})
        );
        assert_eq!(nova_addresses(&[]), json!({}));
    }

    #[test]
    fn diagnostics_root_history_and_hwinfo_views() {
        assert_eq!(
            root_history("i1", None),
            json!({"root_history": {"id": "i1", "enabled": "Never", "user": "Nobody"}})
        );
        assert_eq!(
            root_history("i1", Some(("2026-01-02T03:04:05".into(), "u9".into()))),
            json!({"root_history": {"id": "i1", "enabled": "2026-01-02T03:04:05", "user": "u9"}})
        );
        let g = json!({"version": "1.0.0", "threads": 7, "fd_size": 64, "vm_size": 100,
                       "vm_peak": 120, "vm_rss": 30, "vm_hwm": 31});
        assert_eq!(
            diagnostics(&g),
            json!({"diagnostics": {"version": "1.0.0", "threads": 7, "fdSize": 64,
                   "vmSize": 100, "vmPeak": 120, "vmRss": 30, "vmHwm": 31}})
        );
        assert_eq!(
            hwinfo(&json!({"mem_total": 2048, "num_cpus": 2})),
            json!({"hwinfo": {"mem_total": 2048, "num_cpus": 2}})
        );
    }
}
