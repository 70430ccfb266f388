//! Datastores and datastore versions (api.md §11).

use serde_json::{json, Map, Value};
use trove_db::{Datastore, DatastoreVersion};

use crate::context::RequestContext;

/// One version. `with_datastore` adds the `datastore` key (version lists and shows, not
/// the entries inside a datastore); `admin` adds the admin-only keys.
pub fn version(
    ctx: &RequestContext,
    v: &DatastoreVersion,
    with_datastore: bool,
    admin: bool,
) -> Value {
    let mut m = Map::new();
    m.insert("id".into(), v.id.clone().into());
    m.insert("name".into(), v.name.clone().into());
    m.insert(
        "version".into(),
        v.version.clone().unwrap_or_else(|| v.name.clone()).into(),
    );
    if with_datastore {
        m.insert("datastore".into(), v.datastore_id.clone().into());
    }
    m.insert("links".into(), ctx.links("datastores/versions", &v.id));
    if admin {
        m.insert("active".into(), v.active.into());
        m.insert("packages".into(), json!(v.packages));
        m.insert(
            "image".into(),
            json!(v.image_id.clone().filter(|i| !i.is_empty())),
        );
        m.insert("registry_ext".into(), v.registry_ext.clone().into());
        m.insert("repl_strategy".into(), v.repl_strategy.clone().into());
        let tags: Vec<String> = v
            .image_tags
            .as_deref()
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect();
        m.insert("image_tags".into(), json!(tags));
    }
    Value::Object(m)
}

/// One datastore with the given versions. `default_version` is shown only when it is
/// one of them (clients map it to a listed version and crash otherwise).
pub fn datastore(
    ctx: &RequestContext,
    ds: &Datastore,
    versions: &[DatastoreVersion],
    admin: bool,
) -> Value {
    let mut m = Map::new();
    m.insert("id".into(), ds.id.clone().into());
    m.insert("name".into(), ds.name.clone().into());
    m.insert("links".into(), ctx.links("datastores", &ds.id));
    if let Some(d) = ds
        .default_version_id
        .as_ref()
        .filter(|d| versions.iter().any(|v| &v.id == *d))
    {
        m.insert("default_version".into(), d.clone().into());
    }
    m.insert(
        "versions".into(),
        Value::Array(
            versions
                .iter()
                .map(|v| version(ctx, v, false, admin))
                .collect(),
        ),
    );
    Value::Object(m)
}
