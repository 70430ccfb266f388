//! Instances (api.md §3, §4.0): list, detail, show and create views.
//!
//! The view takes an [`InstanceView`], the facts a handler gathered (row, derived
//! statuses, datastore names, fault), so that it does no I/O and does not depend on the
//! column layout of the instances table.

use serde_json::{json, Map, Value};

use crate::context::RequestContext;
use crate::views::flavors::flavor_ref;

/// Which columns of api.md §4.0 to render.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detail {
    /// `GET /instances`.
    List,
    /// `GET /instances/detail`.
    Detail,
    /// `GET /instances/{id}` and the create answer.
    Show,
}

/// A recorded fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultView {
    /// Message shown to users.
    pub message: String,
    /// Time of the fault (`YYYY-MM-DDTHH:MM:SS`).
    pub created: String,
    /// Details (admins only).
    pub details: Option<String>,
}

/// What the instance views render.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InstanceView {
    /// Instance id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Derived `status`.
    pub status: String,
    /// Derived `operating_status`.
    pub operating_status: String,
    /// Flavor id.
    pub flavor_id: String,
    /// Datastore name (`None` when the version is gone).
    pub datastore_type: Option<String>,
    /// Datastore version name.
    pub datastore_version: Option<String>,
    /// Datastore version number.
    pub datastore_version_number: Option<String>,
    /// Region.
    pub region: String,
    /// Access as stored.
    pub access: Option<Value>,
    /// Volume size (when the datastore uses volumes).
    pub volume_size: Option<i64>,
    /// Space used on the data volume or local storage in GB, as the guest reported it
    /// (show only, when the guest answered).
    pub storage_used: Option<f64>,
    /// `used` as a percentage of the volume's total (show only).
    pub storage_used_percent: Option<f64>,
    /// Addresses (`{"address", "type", "network"?}`).
    pub addresses: Vec<Value>,
    /// DNS name, replacing the addresses.
    pub hostname: Option<String>,
    /// Primary of a replica.
    pub replica_of: Option<String>,
    /// Replicas of a primary.
    pub replicas: Vec<String>,
    /// `created` timestamp.
    pub created: Option<String>,
    /// `updated` timestamp.
    pub updated: Option<String>,
    /// Last heartbeat.
    pub service_status_updated: Option<String>,
    /// Recorded fault.
    pub fault: Option<FaultView>,
    /// Attached configuration group `(id, name)`.
    pub configuration: Option<(String, String)>,
    /// Cluster membership `(cluster_id, shard_id)`.
    pub cluster: Option<(String, Option<String>)>,
    /// Server group policy (show/create).
    pub locality: Option<String>,
    /// Generated root password (create with root_on_create).
    pub password: Option<String>,
    /// Owner project (admins).
    pub tenant_id: String,
    /// Compute server id (admins).
    pub server_id: Option<String>,
    /// Volume id (admins).
    pub volume_id: Option<String>,
    /// Whether the instance has its own RPC key (admins).
    pub encrypted_rpc_messaging: bool,
}

fn access_of(v: &InstanceView) -> Value {
    match &v.access {
        Some(a) if a.is_object() => a.clone(),
        _ if v.addresses.is_empty() => json!({}),
        _ => {
            let public = v.addresses.iter().any(|a| a["type"] == "public");
            json!({ "is_public": public })
        }
    }
}

fn id_links(ctx: &RequestContext, id: &str) -> Value {
    json!({"id": id, "links": ctx.links("instances", id)})
}

/// One instance in the requested detail; `admin` adds the admin-only keys.
pub fn instance(ctx: &RequestContext, v: &InstanceView, detail: Detail, admin: bool) -> Value {
    let mut m = Map::new();
    m.insert("id".into(), v.id.clone().into());
    m.insert("name".into(), v.name.clone().into());
    m.insert("status".into(), v.status.clone().into());
    m.insert("operating_status".into(), v.operating_status.clone().into());
    m.insert("links".into(), ctx.links("instances", &v.id));
    m.insert("flavor".into(), flavor_ref(ctx, &v.flavor_id));
    let mut ds = Map::new();
    ds.insert("type".into(), json!(v.datastore_type));
    ds.insert("version".into(), json!(v.datastore_version));
    if detail != Detail::List && v.datastore_type.is_some() {
        ds.insert("version_number".into(), json!(v.datastore_version_number));
    }
    m.insert("datastore".into(), Value::Object(ds));
    m.insert("region".into(), v.region.clone().into());
    m.insert("access".into(), access_of(v));
    if let Some(size) = v.volume_size {
        let mut vol = json!({ "size": size });
        if detail == Detail::Show {
            if let Some(used) = v.storage_used {
                vol["used"] = json!(used);
                if let Some(p) = v.storage_used_percent {
                    vol["used_percent"] = json!(p);
                }
            }
        }
        m.insert("volume".into(), vol);
    } else if let (Detail::Show, Some(used)) = (detail, v.storage_used) {
        m.insert("local_storage".into(), json!({ "used": used }));
    }
    if let Some(h) = &v.hostname {
        m.insert("hostname".into(), h.clone().into());
    } else if !v.addresses.is_empty() {
        let ips: Vec<Value> = v.addresses.iter().map(|a| a["address"].clone()).collect();
        m.insert("addresses".into(), Value::Array(v.addresses.clone()));
        m.insert("ip".into(), Value::Array(ips));
    }
    if let Some(p) = &v.replica_of {
        m.insert("replica_of".into(), id_links(ctx, p));
    }
    if !v.replicas.is_empty() {
        m.insert(
            "replicas".into(),
            Value::Array(v.replicas.iter().map(|r| id_links(ctx, r)).collect()),
        );
    }
    if admin {
        m.insert("tenant_id".into(), v.tenant_id.clone().into());
    }
    if detail == Detail::List {
        return Value::Object(m);
    }
    m.insert("created".into(), json!(v.created));
    m.insert("updated".into(), json!(v.updated));
    m.insert(
        "service_status_updated".into(),
        json!(v.service_status_updated),
    );
    if let Some(f) = &v.fault {
        m.insert(
            "fault".into(),
            json!({
                "message": f.message,
                "created": f.created,
                "details": if admin { json!(f.details) } else { Value::Null },
            }),
        );
    }
    if let Some((id, name)) = &v.configuration {
        m.insert(
            "configuration".into(),
            json!({"id": id, "name": name, "links": ctx.links("configurations", id)}),
        );
    }
    if let Some((cluster_id, shard_id)) = &v.cluster {
        m.insert("cluster_id".into(), cluster_id.clone().into());
        if let Some(s) = shard_id {
            m.insert("shard_id".into(), s.clone().into());
        }
    }
    if admin {
        m.insert("server_id".into(), json!(v.server_id));
        m.insert("volume_id".into(), json!(v.volume_id));
        m.insert(
            "encrypted_rpc_messaging".into(),
            v.encrypted_rpc_messaging.into(),
        );
    }
    if detail == Detail::Show {
        if let Some(l) = &v.locality {
            m.insert("locality".into(), l.clone().into());
        }
        if let Some(p) = &v.password {
            m.insert("password".into(), p.clone().into());
        }
    }
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Credentials;

    fn ctx() -> RequestContext {
        RequestContext {
            request_id: "req-1".into(),
            creds: Credentials::new("p1", "u1", vec!["member".into()]),
            host: "db.example.org:8779".into(),
            uri: "/v1.0/p1/instances".parse().unwrap(),
            auth_token: None,
            service_catalog: None,
        }
    }

    fn sample() -> InstanceView {
        InstanceView {
            id: "i1".into(),
            name: "orders-db".into(),
            status: "ACTIVE".into(),
            operating_status: "HEALTHY".into(),
            flavor_id: "d2".into(),
            datastore_type: Some("mariadb".into()),
            datastore_version: Some("10.11".into()),
            datastore_version_number: Some("10.11.6".into()),
            region: "RegionOne".into(),
            volume_size: Some(5),
            addresses: vec![json!({"address": "10.0.0.12", "type": "private", "network": "n1"})],
            created: Some("2025-11-02T09:41:07".into()),
            updated: Some("2025-11-02T09:44:51".into()),
            service_status_updated: Some("2025-11-02T10:02:13".into()),
            fault: Some(FaultView {
                message: "boom".into(),
                created: "2025-11-02T09:42:00".into(),
                details: Some("traceback".into()),
            }),
            tenant_id: "p1".into(),
            server_id: Some("s1".into()),
            volume_id: Some("v1".into()),
            locality: Some("anti-affinity".into()),
            ..InstanceView::default()
        }
    }

    #[test]
    fn list_view() {
        insta::assert_json_snapshot!(instance(&ctx(), &sample(), Detail::List, false), @r#"
        {
          "access": {
            "is_public": false
          },
          "addresses": [
            {
              "address": "10.0.0.12",
              "network": "n1",
              "type": "private"
            }
          ],
          "datastore": {
            "type": "mariadb",
            "version": "10.11"
          },
          "flavor": {
            "id": "d2",
            "links": [
              {
                "href": "https://db.example.org:8779/v1.0/p1/flavors/d2",
                "rel": "self"
              },
              {
                "href": "https://db.example.org:8779/flavors/d2",
                "rel": "bookmark"
              }
            ]
          },
          "id": "i1",
          "ip": [
            "10.0.0.12"
          ],
          "links": [
            {
              "href": "https://db.example.org:8779/v1.0/p1/instances/i1",
              "rel": "self"
            },
            {
              "href": "https://db.example.org:8779/instances/i1",
              "rel": "bookmark"
            }
          ],
          "name": "orders-db",
          "operating_status": "HEALTHY",
          "region": "RegionOne",
          "status": "ACTIVE",
          "volume": {
            "size": 5
          }
        }
        "#);
    }

    #[test]
    fn show_view_member_and_admin() {
        let member = instance(&ctx(), &sample(), Detail::Show, false);
        assert_eq!(member["fault"]["details"], Value::Null);
        assert!(member.get("server_id").is_none());
        assert!(member.get("tenant_id").is_none());
        assert_eq!(member["locality"], "anti-affinity");
        assert_eq!(member["datastore"]["version_number"], "10.11.6");
        let admin = instance(&ctx(), &sample(), Detail::Show, true);
        assert_eq!(admin["fault"]["details"], "traceback");
        assert_eq!(admin["server_id"], "s1");
        assert_eq!(admin["volume_id"], "v1");
        assert_eq!(admin["tenant_id"], "p1");
        assert_eq!(admin["encrypted_rpc_messaging"], false);
        let detail = instance(&ctx(), &sample(), Detail::Detail, false);
        assert!(detail.get("locality").is_none());
        assert_eq!(detail["service_status_updated"], "2025-11-02T10:02:13");
    }
}
