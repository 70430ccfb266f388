//! Request bodies of configuration group calls (api.md §10.4-§10.6), checked as Trove's
//! schemas do (400 `Validation error: ...`). Values are only checked to be an object
//! here; [`super::values`] checks them against the version's rules.

use serde_json::{Map, Value};

use crate::instances::request::DatastoreRequest;
use crate::validation::{
    envelope, non_empty_string, object, py_repr, Errors, Path, ValidationError,
};

/// Longest name the `configurations` table holds.
pub const NAME_MAX: usize = 64;

/// A validated `POST /configurations` body.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CreateRequest {
    /// Name.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// Requested datastore and version.
    pub datastore: DatastoreRequest,
    /// Values as given.
    pub values: Map<String, Value>,
}

/// A validated `PUT /configurations/{id}` body.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UpdateRequest {
    /// New name.
    pub name: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// New values (all of them).
    pub values: Option<Map<String, Value>>,
}

/// A validated `PATCH /configurations/{id}` body.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EditRequest {
    /// Values to add or change.
    pub values: Option<Map<String, Value>>,
}

fn opt_nes(errs: &mut Errors, path: &Path, obj: &Map<String, Value>, key: &str) -> Option<String> {
    obj.get(key)
        .and_then(|v| non_empty_string(errs, &path.key(key), v))
}

fn name(errs: &mut Errors, path: &Path, obj: &Map<String, Value>) -> Option<String> {
    let n = opt_nes(errs, path, obj, "name")?;
    if n.chars().count() > NAME_MAX {
        errs.add(
            &path.key("name"),
            format!("{} is too long", py_repr(&Value::String(n))),
        );
        return None;
    }
    Some(n)
}

fn values(errs: &mut Errors, path: &Path, obj: &Map<String, Value>) -> Option<Map<String, Value>> {
    obj.get("values")
        .and_then(|v| object(errs, &path.key("values"), v))
        .cloned()
}

impl CreateRequest {
    /// Parses a create body.
    pub fn parse(body: &Value) -> Result<CreateRequest, ValidationError> {
        let cfg = envelope(body, "configuration")?;
        let root = Path::root("configuration");
        let mut errs = Errors::new();
        for key in ["values", "name"] {
            if !cfg.contains_key(key) {
                errs.required(&root, key);
            }
        }
        let mut req = CreateRequest {
            description: opt_nes(&mut errs, &root, cfg, "description"),
            values: values(&mut errs, &root, cfg).unwrap_or_default(),
            name: name(&mut errs, &root, cfg).unwrap_or_default(),
            ..CreateRequest::default()
        };
        if let Some(v) = cfg.get("datastore") {
            let p = root.key("datastore");
            if let Some(ds) = object(&mut errs, &p, v) {
                req.datastore = DatastoreRequest {
                    type_: opt_nes(&mut errs, &p, ds, "type"),
                    version: opt_nes(&mut errs, &p, ds, "version"),
                    version_number: opt_nes(&mut errs, &p, ds, "version_number"),
                };
            }
        }
        errs.finish(req)
    }
}

impl UpdateRequest {
    /// Parses a replace body (every inner key optional).
    pub fn parse(body: &Value) -> Result<UpdateRequest, ValidationError> {
        let cfg = envelope(body, "configuration")?;
        let root = Path::root("configuration");
        let mut errs = Errors::new();
        let req = UpdateRequest {
            description: opt_nes(&mut errs, &root, cfg, "description"),
            values: values(&mut errs, &root, cfg),
            name: name(&mut errs, &root, cfg),
        };
        errs.finish(req)
    }
}

impl EditRequest {
    /// Parses an edit body.
    pub fn parse(body: &Value) -> Result<EditRequest, ValidationError> {
        let cfg = envelope(body, "configuration")?;
        let root = Path::root("configuration");
        let mut errs = Errors::new();
        let req = EditRequest {
            values: values(&mut errs, &root, cfg),
        };
        errs.finish(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn create_schema() {
        let e = CreateRequest::parse(&json!({"configuration": {}}))
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "Validation error: configuration 'values' is a required property; \
             configuration 'name' is a required property"
        );
        let e = CreateRequest::parse(&json!({"configuration": {
            "name": "", "values": [], "description": 5, "datastore": {"type": 1}}}))
        .unwrap_err()
        .to_string();
        assert_eq!(
            e,
            "Validation error: configuration['description'] 5 is not of type 'string'; \
             configuration['values'] [] is not of type 'object'; \
             configuration['name'] '' is too short; \
             configuration['datastore']['type'] 1 is not of type 'string'"
        );
        let ok = CreateRequest::parse(&json!({"configuration": {
            "name": "g", "values": {"a": 1}, "datastore": {"type": "mariadb", "version": "10.11"}}}))
        .unwrap();
        assert_eq!(ok.name, "g");
        assert_eq!(ok.datastore.version.as_deref(), Some("10.11"));
        assert!(CreateRequest::parse(&json!({"configuration": {
            "name": "x".repeat(65), "values": {}}}))
        .is_err());
    }

    #[test]
    fn update_and_edit_schemas() {
        assert_eq!(
            UpdateRequest::parse(&json!({"configuration": {}})).unwrap(),
            UpdateRequest::default()
        );
        assert!(UpdateRequest::parse(&json!({"configuration": {"values": 1}})).is_err());
        assert!(UpdateRequest::parse(&json!({})).is_err());
        assert_eq!(
            EditRequest::parse(&json!({"configuration": {"values": {"a": 1}}}))
                .unwrap()
                .values
                .unwrap()["a"],
            1
        );
    }
}
