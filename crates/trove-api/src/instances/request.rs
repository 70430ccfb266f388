//! Validated instance requests: the bodies of create (api.md §4.4), update (§4.5) and
//! actions (§5), parsed from JSON with Trove's schema messages (see [`crate::validation`]).
//!
//! Only the schema is checked here; rules that need the database or configuration
//! (flavor exists, volume size limit, datastore resolution, quotas) are the handler's.

use std::net::Ipv4Addr;

use serde_json::{Map, Value};

use crate::validation::{
    array, boolean, envelope, integer, non_empty_string, non_empty_string_reason, object, uuid,
    Errors, Path, ValidationError,
};

/// `datastore` of a create request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DatastoreRequest {
    /// Datastore name or id.
    pub type_: Option<String>,
    /// Version name or id.
    pub version: Option<String>,
    /// Version number.
    pub version_number: Option<String>,
}

/// A database of a create request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseRequest {
    /// Name.
    pub name: String,
    /// Character set.
    pub character_set: Option<String>,
    /// Collation.
    pub collate: Option<String>,
}

/// A user of a create request (the password is kept out of `Debug`).
#[derive(Clone, PartialEq, Eq)]
pub struct UserRequest {
    /// Name.
    pub name: String,
    /// Password.
    pub password: String,
    /// Host (default `%`).
    pub host: String,
    /// Databases the user gets access to.
    pub databases: Vec<String>,
}

impl std::fmt::Debug for UserRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserRequest")
            .field("name", &self.name)
            .field("host", &self.host)
            .field("databases", &self.databases)
            .finish_non_exhaustive()
    }
}

/// A NIC of a create request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NicRequest {
    /// Network id (`network_id` or legacy `net-id`).
    pub network_id: Option<String>,
    /// Subnet id.
    pub subnet_id: Option<String>,
    /// Fixed IPv4 address.
    pub ip_address: Option<String>,
}

/// A validated `POST /instances` body.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CreateRequest {
    /// Instance name.
    pub name: String,
    /// Flavor id (the last segment of an href), if given.
    pub flavor_ref: Option<String>,
    /// Volume size in GB.
    pub volume_size: Option<i64>,
    /// Volume type.
    pub volume_type: Option<String>,
    /// Datastore selection.
    pub datastore: DatastoreRequest,
    /// Databases to create.
    pub databases: Vec<DatabaseRequest>,
    /// Users to create.
    pub users: Vec<UserRequest>,
    /// Backup to restore.
    pub backup_ref: Option<String>,
    /// Availability zone.
    pub availability_zone: Option<String>,
    /// NICs (at most one).
    pub nics: Vec<NicRequest>,
    /// Configuration group id or href (any JSON value in Trove's schema).
    pub configuration: Option<Value>,
    /// Primary to replicate.
    pub replica_of: Option<String>,
    /// Number of replicas.
    pub replica_count: Option<i64>,
    /// Server group policy.
    pub locality: Option<String>,
    /// Region.
    pub region_name: Option<String>,
    /// Module ids.
    pub modules: Vec<String>,
    /// Access as sent (stored and echoed back).
    pub access: Option<Value>,
}

/// The id in a flavor reference: the value itself or the last path segment of an href.
pub fn flavor_id_of(reference: &str) -> String {
    let trimmed = reference.trim_end_matches('/');
    trimmed.rsplit('/').next().unwrap_or(trimmed).to_string()
}

/// A `flavorRef`: non_empty_string or integer (`oneOf`).
fn flavor_ref(errs: &mut Errors, path: &Path, v: &Value) -> Option<String> {
    match v {
        Value::String(s) if non_empty_string_reason(s).is_none() => Some(flavor_id_of(s)),
        Value::Number(n) if n.is_i64() || n.is_u64() => Some(n.to_string()),
        other => {
            errs.no_schema(path, other);
            None
        }
    }
}

/// A volume size: integer >= 1 or a digit string not starting with 0 (`oneOf`).
pub fn volume_size(errs: &mut Errors, path: &Path, v: &Value) -> Option<i64> {
    let ok = match v {
        Value::Number(n) => n.as_i64().filter(|n| *n >= 1),
        Value::String(s)
            if !s.is_empty() && !s.starts_with('0') && s.bytes().all(|b| b.is_ascii_digit()) =>
        {
            s.parse::<i64>().ok()
        }
        _ => None,
    };
    if ok.is_none() {
        errs.no_schema(path, v);
    }
    ok
}

fn opt_nes(errs: &mut Errors, path: &Path, obj: &Map<String, Value>, key: &str) -> Option<String> {
    obj.get(key)
        .and_then(|v| non_empty_string(errs, &path.key(key), v))
}

fn is_ipv4(s: &str) -> bool {
    s.parse::<Ipv4Addr>().is_ok()
}

fn is_ipv4_cidr(s: &str) -> bool {
    match s.split_once('/') {
        None => is_ipv4(s),
        Some((ip, bits)) => {
            is_ipv4(ip)
                && !bits.is_empty()
                && bits.bytes().all(|b| b.is_ascii_digit())
                && bits.parse::<u8>().is_ok_and(|b| b <= 32)
        }
    }
}

/// Parses `access` (`is_public`, `allowed_cidrs`; no other keys).
pub fn access(errs: &mut Errors, path: &Path, v: &Value) -> Option<Value> {
    let obj = object(errs, path, v)?;
    crate::validation::no_additional(errs, path, obj, &["is_public", "allowed_cidrs"]);
    if let Some(p) = obj.get("is_public") {
        boolean(errs, &path.key("is_public"), p);
    }
    if let Some(c) = obj.get("allowed_cidrs") {
        let cpath = path.key("allowed_cidrs");
        if let Some(items) = array(errs, &cpath, c, None) {
            let mut seen = Vec::new();
            for (i, item) in items.iter().enumerate() {
                match item.as_str() {
                    Some(s) if is_ipv4_cidr(s) => {}
                    Some(s) => errs.add(
                        &cpath.index(i),
                        format!(
                            "'{s}' does not match '^([0-9]{{1,3}}\\.){{3}}[0-9]{{1,3}}(\\/([0-9]|[1-2][0-9]|3[0-2]))?$'"
                        ),
                    ),
                    None => errs.wrong_type(&cpath.index(i), item, &["string"]),
                }
                if seen.contains(&item) {
                    errs.add(
                        &cpath,
                        format!("{} has non-unique elements", crate::validation::py_repr(c)),
                    );
                    break;
                }
                seen.push(item);
            }
        }
    }
    Some(v.clone())
}

impl CreateRequest {
    /// Parses and validates a create body.
    pub fn parse(body: &Value) -> Result<CreateRequest, ValidationError> {
        let inst = envelope(body, "instance")?;
        let root = Path::root("instance");
        let mut errs = Errors::new();
        let mut req = CreateRequest::default();
        match inst.get("name") {
            None => errs.required(&root, "name"),
            Some(v) => {
                req.name = non_empty_string(&mut errs, &root.key("name"), v).unwrap_or_default()
            }
        }
        if let Some(v) = inst.get("flavorRef") {
            req.flavor_ref = flavor_ref(&mut errs, &root.key("flavorRef"), v);
        }
        if let Some(v) = inst.get("volume") {
            let p = root.key("volume");
            if let Some(vol) = object(&mut errs, &p, v) {
                match vol.get("size") {
                    None => errs.required(&p, "size"),
                    Some(s) => req.volume_size = volume_size(&mut errs, &p.key("size"), s),
                }
                match vol.get("type") {
                    None | Some(Value::Null) => {}
                    Some(t) => req.volume_type = non_empty_string(&mut errs, &p.key("type"), t),
                }
            }
        }
        if let Some(v) = inst.get("datastore") {
            let p = root.key("datastore");
            if let Some(ds) = object(&mut errs, &p, v) {
                req.datastore = DatastoreRequest {
                    type_: opt_nes(&mut errs, &p, ds, "type"),
                    version: opt_nes(&mut errs, &p, ds, "version"),
                    version_number: opt_nes(&mut errs, &p, ds, "version_number"),
                };
            }
        }
        if let Some(v) = inst.get("databases") {
            let p = root.key("databases");
            for (i, item) in array(&mut errs, &p, v, None)
                .into_iter()
                .flatten()
                .enumerate()
            {
                let ip = p.index(i);
                let Some(db) = object(&mut errs, &ip, item) else {
                    continue;
                };
                let Some(name) = db.get("name") else {
                    errs.required(&ip, "name");
                    continue;
                };
                let name = non_empty_string(&mut errs, &ip.key("name"), name);
                let character_set = opt_nes(&mut errs, &ip, db, "character_set");
                let collate = opt_nes(&mut errs, &ip, db, "collate");
                if let Some(name) = name {
                    req.databases.push(DatabaseRequest {
                        name,
                        character_set,
                        collate,
                    });
                }
            }
        }
        if let Some(v) = inst.get("users") {
            let p = root.key("users");
            for (i, item) in array(&mut errs, &p, v, None)
                .into_iter()
                .flatten()
                .enumerate()
            {
                let ip = p.index(i);
                let Some(u) = object(&mut errs, &ip, item) else {
                    continue;
                };
                for key in ["name", "password"] {
                    if !u.contains_key(key) {
                        errs.required(&ip, key);
                    }
                }
                let name = opt_nes(&mut errs, &ip, u, "name");
                let password = opt_nes(&mut errs, &ip, u, "password");
                let host = opt_nes(&mut errs, &ip, u, "host").unwrap_or_else(|| "%".into());
                let mut databases = Vec::new();
                if let Some(dbs) = u.get("databases") {
                    let dp = ip.key("databases");
                    for (j, d) in array(&mut errs, &dp, dbs, None)
                        .into_iter()
                        .flatten()
                        .enumerate()
                    {
                        let jp = dp.index(j);
                        let Some(d) = object(&mut errs, &jp, d) else {
                            continue;
                        };
                        match d.get("name") {
                            None => errs.required(&jp, "name"),
                            Some(n) => {
                                if let Some(n) = non_empty_string(&mut errs, &jp.key("name"), n) {
                                    databases.push(n);
                                }
                            }
                        }
                    }
                }
                if let (Some(name), Some(password)) = (name, password) {
                    req.users.push(UserRequest {
                        name,
                        password,
                        host,
                        databases,
                    });
                }
            }
        }
        if let Some(v) = inst.get("restorePoint") {
            let p = root.key("restorePoint");
            if let Some(rp) = object(&mut errs, &p, v) {
                match rp.get("backupRef") {
                    None => errs.required(&p, "backupRef"),
                    Some(b) => req.backup_ref = uuid(&mut errs, &p.key("backupRef"), b),
                }
            }
        }
        req.availability_zone = opt_nes(&mut errs, &root, inst, "availability_zone");
        if let Some(v) = inst.get("nics") {
            let p = root.key("nics");
            for (i, item) in array(&mut errs, &p, v, Some(1))
                .into_iter()
                .flatten()
                .enumerate()
            {
                let ip = p.index(i);
                let Some(n) = object(&mut errs, &ip, item) else {
                    continue;
                };
                crate::validation::no_additional(
                    &mut errs,
                    &ip,
                    n,
                    &["net-id", "network_id", "subnet_id", "ip_address"],
                );
                let mut nic = NicRequest::default();
                for key in ["net-id", "network_id"] {
                    if let Some(id) = n.get(key) {
                        nic.network_id = uuid(&mut errs, &ip.key(key), id);
                    }
                }
                if let Some(id) = n.get("subnet_id") {
                    nic.subnet_id = uuid(&mut errs, &ip.key("subnet_id"), id);
                }
                if let Some(a) = n.get("ip_address") {
                    match a.as_str() {
                        Some(s) if is_ipv4(s) => nic.ip_address = Some(s.to_string()),
                        Some(s) => {
                            errs.add(&ip.key("ip_address"), format!("'{s}' is not a 'ipv4'"))
                        }
                        None => errs.wrong_type(&ip.key("ip_address"), a, &["string"]),
                    }
                }
                req.nics.push(nic);
            }
        }
        req.configuration = inst.get("configuration").filter(|c| !c.is_null()).cloned();
        if let Some(v) = inst.get("configuration_id").filter(|v| !v.is_null()) {
            uuid(&mut errs, &root.key("configuration_id"), v);
        }
        if let Some(v) = inst.get("replica_of") {
            req.replica_of = uuid(&mut errs, &root.key("replica_of"), v);
        }
        if let Some(v) = inst.get("replica_count") {
            req.replica_count = integer(&mut errs, &root.key("replica_count"), v, Some(1), Some(3));
        }
        req.locality = opt_nes(&mut errs, &root, inst, "locality");
        req.region_name = opt_nes(&mut errs, &root, inst, "region_name");
        if let Some(v) = inst.get("modules") {
            let p = root.key("modules");
            for (i, item) in array(&mut errs, &p, v, None)
                .into_iter()
                .flatten()
                .enumerate()
            {
                let ip = p.index(i);
                let Some(m) = object(&mut errs, &ip, item) else {
                    continue;
                };
                match m.get("id") {
                    None => errs.required(&ip, "id"),
                    Some(id) => {
                        if let Some(id) = uuid(&mut errs, &ip.key("id"), id) {
                            req.modules.push(id);
                        }
                    }
                }
            }
        }
        if let Some(v) = inst.get("access") {
            req.access = access(&mut errs, &root.key("access"), v);
        }
        errs.finish(req)
    }
}

/// A validated `PUT`/`PATCH /instances/{id}` body.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UpdateRequest {
    /// New name.
    pub name: Option<String>,
    /// Attributes besides `name` that were present (`configuration`, `replica_of`, ...).
    pub others: Vec<String>,
    /// `configuration` value if present (`null` detaches).
    pub configuration: Option<Value>,
    /// `access` if present (PUT only).
    pub access: Option<Value>,
    /// `datastore_version` if present.
    pub datastore_version: Option<String>,
}

impl UpdateRequest {
    /// Parses an update body; `patch` selects PATCH's stricter schema (no `access`).
    pub fn parse(body: &Value, patch: bool) -> Result<UpdateRequest, ValidationError> {
        let inst = envelope(body, "instance")?;
        let root = Path::root("instance");
        let mut errs = Errors::new();
        let allowed: &[&str] = if patch {
            &[
                "name",
                "replica_of",
                "slave_of",
                "configuration",
                "datastore_version",
            ]
        } else {
            &[
                "name",
                "replica_of",
                "configuration",
                "datastore_version",
                "access",
            ]
        };
        crate::validation::no_additional(&mut errs, &root, inst, allowed);
        let mut req = UpdateRequest {
            name: opt_nes(&mut errs, &root, inst, "name"),
            datastore_version: opt_nes(&mut errs, &root, inst, "datastore_version"),
            ..UpdateRequest::default()
        };
        if let Some(c) = inst.get("configuration") {
            if !c.is_null() {
                uuid(&mut errs, &root.key("configuration"), c);
            }
            req.configuration = Some(c.clone());
        }
        if let Some(a) = inst.get("access") {
            req.access = access(&mut errs, &root.key("access"), a);
        }
        req.others = inst
            .keys()
            .filter(|k| k.as_str() != "name" && allowed.contains(&k.as_str()))
            .cloned()
            .collect();
        errs.finish(req)
    }
}

/// A validated instance action (`POST /instances/{id}/action`).
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// `{"restart": {}}`.
    Restart,
    /// `{"resize": {"flavorRef": ...}}`.
    ResizeFlavor(String),
    /// `{"resize": {"volume": {"size": N}}}` (wins when both are given).
    ResizeVolume(i64),
    /// `{"reset_status": {...}}`; `true` when the inner object has `force_delete`.
    ResetStatus {
        /// Whether `force_delete` was present.
        force_delete: bool,
    },
    /// `{"promote_to_replica_source": {}}`.
    PromoteToReplicaSource,
    /// `{"eject_replica_source": {}}`.
    EjectReplicaSource,
}

impl Action {
    /// Parses an action body: exactly one known key whose value is an object.
    pub fn parse(body: &Value) -> Result<Action, ValidationError> {
        let Some(obj) = body.as_object().filter(|o| !o.is_empty()) else {
            return Err(ValidationError::single("", "Invalid request body."));
        };
        let known = [
            "restart",
            "resize",
            "reset_status",
            "promote_to_replica_source",
            "eject_replica_source",
        ];
        let Some((key, value)) = obj.iter().find(|(k, _)| known.contains(&k.as_str())) else {
            let keys: Vec<&str> = obj.keys().map(String::as_str).collect();
            return Err(ValidationError::single(
                "",
                format!("Invalid instance action: {}", keys.join(", ")),
            ));
        };
        let mut errs = Errors::new();
        let p = Path::root(key);
        let Some(inner) = object(&mut errs, &p, value) else {
            return Err(errs.finish(()).unwrap_err());
        };
        let action = match key.as_str() {
            "restart" => Action::Restart,
            "promote_to_replica_source" => Action::PromoteToReplicaSource,
            "eject_replica_source" => Action::EjectReplicaSource,
            "reset_status" => Action::ResetStatus {
                force_delete: inner.contains_key("force_delete"),
            },
            _ => {
                if let Some(vol) = inner.get("volume") {
                    let vp = p.key("volume");
                    let size = object(&mut errs, &vp, vol).and_then(|v| match v.get("size") {
                        None => {
                            errs.required(&vp, "size");
                            None
                        }
                        Some(s) => volume_size(&mut errs, &vp.key("size"), s),
                    });
                    Action::ResizeVolume(size.unwrap_or_default())
                } else if let Some(f) = inner.get("flavorRef") {
                    Action::ResizeFlavor(
                        flavor_ref(&mut errs, &p.key("flavorRef"), f).unwrap_or_default(),
                    )
                } else {
                    errs.no_schema(&p, value);
                    Action::Restart
                }
            }
        };
        errs.finish(action)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn err(body: Value) -> String {
        CreateRequest::parse(&body).unwrap_err().to_string()
    }

    #[test]
    fn create_minimal_and_full() {
        let r = CreateRequest::parse(&json!({"instance": {
            "name": "db1", "flavorRef": 2, "volume": {"size": "5", "type": null},
            "datastore": {"type": "mariadb", "version": "10.11"},
            "databases": [{"name": "orders"}],
            "users": [{"name": "app", "password": "pw", "databases": [{"name": "orders"}]}],
            "nics": [{"net-id": "9b2d4c6e-0a1b-4c2d-8e3f-5a6b7c8d9e0f"}],
            "access": {"is_public": false, "allowed_cidrs": ["192.0.2.0/24", "10.0.0.1"]},
            "unknown_key": 1
        }}))
        .unwrap();
        assert_eq!(r.name, "db1");
        assert_eq!(r.flavor_ref.as_deref(), Some("2"));
        assert_eq!(r.volume_size, Some(5));
        assert_eq!(r.users[0].host, "%");
        assert_eq!(
            r.nics[0].network_id.as_deref(),
            Some("9b2d4c6e-0a1b-4c2d-8e3f-5a6b7c8d9e0f")
        );
        let r = CreateRequest::parse(
            &json!({"instance": {"name": "x", "flavorRef": "https://h/v1.0/p/flavors/d2"}}),
        )
        .unwrap();
        assert_eq!(r.flavor_ref.as_deref(), Some("d2"));
    }

    #[test]
    fn create_messages() {
        assert_eq!(
            err(json!({})),
            "Validation error: 'instance' is a required property"
        );
        assert_eq!(
            err(json!({"instance": {}})),
            "Validation error: instance 'name' is a required property"
        );
        assert_eq!(
            err(json!({"instance": {"name": "a", "volume": {"size": 0}}})),
            "Validation error: instance['volume']['size'] 0 is not valid under any of the given schemas"
        );
        assert_eq!(
            err(json!({"instance": {"name": "a", "volume": {"size": "05"}}})),
            "Validation error: instance['volume']['size'] '05' is not valid under any of the given schemas"
        );
        assert_eq!(
            err(json!({"instance": {"name": "a", "volume": {}}})),
            "Validation error: instance['volume'] 'size' is a required property"
        );
        assert_eq!(
            err(json!({"instance": {"name": "a", "flavorRef": true}})),
            "Validation error: instance['flavorRef'] True is not valid under any of the given schemas"
        );
        assert_eq!(
            err(json!({"instance": {"name": "a", "users": [{"name": "u"}]}})),
            "Validation error: instance['users'][0] 'password' is a required property"
        );
        assert_eq!(
            err(json!({"instance": {"name": "a", "replica_count": 4}})),
            "Validation error: instance['replica_count'] 4 is greater than the maximum of 3"
        );
        assert_eq!(
            err(json!({"instance": {"name": "a", "restorePoint": {"backupRef": "b1"}}})),
            "Validation error: instance['restorePoint']['backupRef'] 'b1' does not match '^([0-9a-fA-F]){8}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){12}$'"
        );
        assert_eq!(
            err(json!({"instance": {"name": "a", "access": {"is_public": "yes"}}})),
            "Validation error: instance['access']['is_public'] 'yes' is not of type 'boolean'"
        );
        assert!(err(json!({"instance": {"name": "a", "nics": [{}, {}]}})).contains("is too long"));
        assert_eq!(
            err(json!({"instance": {"name": 5, "volume": {"size": -1}}})),
            "Validation error: instance['name'] 5 is not of type 'string'; instance['volume']['size'] -1 is not valid under any of the given schemas"
        );
    }

    #[test]
    fn update_and_actions() {
        let u = UpdateRequest::parse(&json!({"instance": {"name": "n"}}), false).unwrap();
        assert_eq!(u.name.as_deref(), Some("n"));
        assert!(u.others.is_empty());
        let e = UpdateRequest::parse(&json!({"instance": {"access": {}}}), true).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Validation error: instance Additional properties are not allowed ('access' was unexpected)"
        );
        assert_eq!(
            Action::parse(&json!({"restart": {}})).unwrap(),
            Action::Restart
        );
        assert_eq!(
            Action::parse(&json!({"resize": {"flavorRef": "d3", "volume": {"size": 9}}})).unwrap(),
            Action::ResizeVolume(9)
        );
        assert_eq!(
            Action::parse(&json!({"resize": {"flavorRef": 3}})).unwrap(),
            Action::ResizeFlavor("3".into())
        );
        assert_eq!(
            Action::parse(&json!({"reset_status": {"force_delete": true}})).unwrap(),
            Action::ResetStatus { force_delete: true }
        );
        assert!(Action::parse(&json!({})).is_err());
        assert!(Action::parse(&json!({"resize": {}})).is_err());
        assert!(Action::parse(&json!({"reboot_now": {}})).is_err());
        assert!(Action::parse(&json!({"restart": 1})).is_err());
    }
}
