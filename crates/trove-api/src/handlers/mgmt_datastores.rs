//! Management of datastore versions and their configuration parameters (api.md §19.4,
//! §19.6), admins only (401 otherwise):
//! - `GET`/`POST /mgmt/datastore-versions`, `GET`/`PATCH`/`DELETE
//!   /mgmt/datastore-versions/{id}`; `PATCH` renames with `name` (the version number is
//!   kept; a clash with another version of the datastore answers 400), `DELETE` answers 400
//!   while a live instance, backup or configuration group (or any cluster) uses the version,
//!   and otherwise removes it with its parameters and metadata and clears the datastore's
//!   default, in one transaction;
//! - `/mgmt/datastores/versions/{version}/parameters[/{name}]`: list, create, show,
//!   update and delete the validation rules of a version.
//!
//! The image: where the API runs with an image service (an [`ImageCheck`] in the router's
//! extensions, as the OpenStack compute driver sets up: Glance), `image` must name an
//! existing image and, without `image`, `image_tags` must select an active one (400
//! otherwise), on create and on an update that changes them. Without one (the local driver,
//! which boots no image) neither is checked: any value is stored as given.

use std::collections::HashSet;
use std::fmt::Debug;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::{Extension, Json};
use serde_json::{json, Map, Value};
use trove_db::{ConfigParam, ConfigParamRule, DatastoreVersion, DatastoreVersionSpec, DbError};

use crate::app::AppState;
use crate::context::RequestContext;
use crate::error::{ApiError, ApiResult};
use crate::extract::JsonBody;
use crate::handlers::datastores::load_version_by_id;
use crate::middleware::empty;
use crate::validation::{
    boolean, envelope, no_additional, non_empty_string, Errors, Path as JsonPath,
};

/// Splits a stored comma-separated list; `[""]` when empty, as Trove shows it.
fn stored_list(text: Option<&str>) -> Vec<String> {
    let items: Vec<String> = text
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect();
    if items.is_empty() {
        vec![String::new()]
    } else {
        items
    }
}

/// The admin view of a version (api.md §19.4).
pub fn version_view(v: &DatastoreVersion, ds_name: &str, is_default: bool) -> Value {
    json!({
        "id": v.id,
        "name": v.name,
        "version": v.version.clone().unwrap_or_else(|| v.name.clone()),
        "datastore_id": v.datastore_id,
        "datastore_name": ds_name,
        "datastore_manager": v.manager,
        "image": v.image_id.clone().filter(|i| !i.is_empty()),
        "image_tags": stored_list(v.image_tags.as_deref()),
        "packages": stored_list(v.packages.as_deref()),
        "active": v.active,
        "registry_ext": v.registry_ext,
        "repl_strategy": v.repl_strategy,
        "default": is_default,
    })
}

async fn render(state: &AppState, v: &DatastoreVersion) -> ApiResult<Value> {
    let ds = state.db().datastore_get(&v.datastore_id).await?;
    let is_default = ds.default_version_id.as_deref() == Some(v.id.as_str());
    Ok(version_view(v, &ds.name, is_default))
}

/// A list of unique strings (`max_items`, and each item `1..=max_len` chars when given).
fn string_list(
    errs: &mut Errors,
    path: &JsonPath,
    v: &Value,
    max_items: Option<usize>,
    max_len: Option<usize>,
) -> Option<Vec<String>> {
    let Some(items) = v.as_array() else {
        errs.wrong_type(path, v, &["array"]);
        return None;
    };
    if let Some(max) = max_items {
        if items.len() > max {
            errs.add(path, format!("is too long (at most {max} items)"));
        }
    }
    let mut out = Vec::with_capacity(items.len());
    let mut seen = HashSet::new();
    for (i, item) in items.iter().enumerate() {
        let p = path.index(i);
        let Some(s) = item.as_str() else {
            errs.wrong_type(&p, item, &["string"]);
            continue;
        };
        if let Some(max) = max_len {
            let n = s.chars().count();
            if n == 0 || n > max {
                errs.add(&p, format!("must be 1 to {max} characters long"));
            }
        }
        if s.contains(',') {
            errs.add(&p, "must not contain ','");
        }
        if !seen.insert(s.to_string()) {
            errs.add(path, "has non-unique elements");
        }
        out.push(s.to_string());
    }
    Some(out)
}

/// The image service's view of a version's image (see the module's notes).
#[async_trait::async_trait]
pub trait ImageCheck: Send + Sync + Debug {
    /// `Ok` when `image` (if given) exists, else when an active image carries all of
    /// `tags`; a 400 with the reason otherwise (or the error of an unreachable service).
    async fn check(&self, image: Option<&str>, tags: &[String]) -> ApiResult<()>;
}

/// What the handlers extract: the router's image check, if any.
type Images = Option<Extension<Arc<dyn ImageCheck>>>;

async fn check_image(images: &Images, image: &str, tags: &[String]) -> ApiResult<()> {
    match images {
        Some(Extension(check)) => {
            check
                .check(Some(image).filter(|i| !i.is_empty()), tags)
                .await
        }
        None => Ok(()),
    }
}

/// The optional fields shared by create and update.
#[derive(Debug, Default, Clone, PartialEq)]
struct VersionFields {
    name: Option<String>,
    manager: Option<String>,
    image: Option<String>,
    image_tags: Option<Vec<String>>,
    packages: Option<Vec<String>>,
    registry_ext: Option<String>,
    repl_strategy: Option<String>,
    active: Option<bool>,
    default: Option<bool>,
    version: Option<String>,
    datastore_name: Option<String>,
}

fn version_fields(errs: &mut Errors, root: &JsonPath, obj: &Map<String, Value>) -> VersionFields {
    let text = |errs: &mut Errors, key: &str| match obj.get(key) {
        None | Some(Value::Null) => None,
        Some(v) => non_empty_string(errs, &root.key(key), v),
    };
    VersionFields {
        name: text(errs, "name"),
        manager: text(errs, "datastore_manager"),
        image: match obj.get("image") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.trim().to_string()),
            Some(v) => {
                errs.wrong_type(&root.key("image"), v, &["string", "null"]);
                None
            }
        },
        image_tags: obj
            .get("image_tags")
            .and_then(|v| string_list(errs, &root.key("image_tags"), v, Some(5), Some(20))),
        packages: obj
            .get("packages")
            .and_then(|v| string_list(errs, &root.key("packages"), v, None, None)),
        registry_ext: text(errs, "registry_ext"),
        repl_strategy: text(errs, "repl_strategy"),
        active: obj
            .get("active")
            .and_then(|v| boolean(errs, &root.key("active"), v)),
        default: obj
            .get("default")
            .and_then(|v| boolean(errs, &root.key("default"), v)),
        version: text(errs, "version"),
        datastore_name: text(errs, "datastore_name"),
    }
}

const CREATE_KEYS: [&str; 11] = [
    "name",
    "datastore_name",
    "datastore_manager",
    "image",
    "image_tags",
    "packages",
    "active",
    "default",
    "version",
    "registry_ext",
    "repl_strategy",
];

const UPDATE_KEYS: [&str; 9] = [
    "name",
    "datastore_manager",
    "image",
    "image_tags",
    "packages",
    "registry_ext",
    "repl_strategy",
    "active",
    "default",
];

fn parse_create(body: &Value) -> ApiResult<VersionFields> {
    let obj = envelope(body, "version")?;
    let root = JsonPath::root("version");
    let mut errs = Errors::new();
    no_additional(&mut errs, &root, obj, &CREATE_KEYS);
    for key in ["name", "datastore_name", "datastore_manager", "active"] {
        if !obj.contains_key(key) {
            errs.required(&root, key);
        }
    }
    let f = version_fields(&mut errs, &root, obj);
    Ok(errs.finish(f)?)
}

fn parse_update(body: &Value) -> ApiResult<VersionFields> {
    let Some(obj) = body.as_object() else {
        return Err(ApiError::bad_request("Invalid request body."));
    };
    let root = JsonPath::root("");
    let mut errs = Errors::new();
    no_additional(&mut errs, &root, obj, &UPDATE_KEYS);
    let f = version_fields(&mut errs, &root, obj);
    Ok(errs.finish(f)?)
}

/// `GET /mgmt/datastore-versions`: every version, active or not.
pub async fn list(State(state): State<AppState>, ctx: RequestContext) -> ApiResult<Json<Value>> {
    ctx.require_admin()?;
    let db = state.db();
    let datastores = db.datastore_list().await?;
    let mut items = Vec::new();
    for v in db.datastore_version_list_all().await? {
        let ds = datastores.iter().find(|d| d.id == v.datastore_id);
        let name = ds.map(|d| d.name.as_str()).unwrap_or_default();
        let is_default = ds.and_then(|d| d.default_version_id.as_deref()) == Some(v.id.as_str());
        items.push(version_view(&v, name, is_default));
    }
    Ok(Json(json!({ "versions": items })))
}

/// `GET /mgmt/datastore-versions/{id}` (unknown: 400).
pub async fn show(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path((_project, id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    ctx.require_admin()?;
    let v = load_version_by_id(&state, &id).await?;
    Ok(Json(json!({ "version": render(&state, &v).await? })))
}

/// `POST /mgmt/datastore-versions`: 202, empty. Creates the datastore when missing.
pub async fn create(
    State(state): State<AppState>,
    ctx: RequestContext,
    images: Images,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    ctx.require_admin()?;
    let f = parse_create(&body)?;
    let image = f.image.clone().unwrap_or_default();
    let tags = f.image_tags.clone().unwrap_or_default();
    if image.is_empty() && tags.is_empty() {
        return Err(ApiError::bad_request(
            "Image ID or image tags must be specified.",
        ));
    }
    check_image(&images, &image, &tags).await?;
    let (name, ds_name, manager) = (
        f.name.clone().unwrap_or_default(),
        f.datastore_name.clone().unwrap_or_default(),
        f.manager.clone().unwrap_or_default(),
    );
    let number = f.version.clone().unwrap_or_else(|| name.clone());
    let db = state.db();
    let ds = match db.datastore_get(&ds_name).await {
        Ok(ds) if ds.name == ds_name => ds,
        Ok(_) | Err(DbError::NotFound { .. }) => db.datastore_update(&ds_name, None).await?,
        Err(e) => return Err(e.into()),
    };
    let exists = db
        .datastore_version_list(&ds.id, false)
        .await?
        .into_iter()
        .any(|v| v.name == name && v.version.as_deref().unwrap_or(&v.name) == number);
    if exists {
        return Err(ApiError::bad_request(format!(
            "A datastore version with the name '{name}' and version '{number}' already exists."
        )));
    }
    let v = db
        .datastore_version_upsert(&DatastoreVersionSpec {
            datastore: ds.id.clone(),
            name,
            manager,
            image_id: image,
            packages: f.packages.clone().unwrap_or_default().join(","),
            active: f.active.unwrap_or(false),
            image_tags: Some(tags.join(",")),
            version: Some(number),
            registry_ext: f.registry_ext.clone(),
            repl_strategy: f.repl_strategy.clone(),
        })
        .await?;
    if f.default == Some(true) {
        db.datastore_set_default_version(&ds.id, Some(&v.id))
            .await?;
    }
    tracing::info!(version_id = %v.id, datastore = %ds.name, "datastore version created");
    Ok(empty(StatusCode::ACCEPTED))
}

/// `PATCH /mgmt/datastore-versions/{id}` (flat body): 202, empty.
pub async fn update(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path((_project, id)): Path<(String, String)>,
    images: Images,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    ctx.require_admin()?;
    let f = parse_update(&body)?;
    let v = load_version_by_id(&state, &id).await?;
    let db = state.db();
    let image = f
        .image
        .clone()
        .unwrap_or_else(|| v.image_id.clone().unwrap_or_default());
    let tags = match &f.image_tags {
        Some(t) => t.join(","),
        None => v.image_tags.clone().unwrap_or_default(),
    };
    if image.is_empty() && tags.is_empty() {
        return Err(ApiError::bad_request(
            "Image ID or image tags must be specified.",
        ));
    }
    if f.image.is_some() || f.image_tags.is_some() {
        let tag_list: Vec<String> = tags
            .split(',')
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect();
        check_image(&images, &image, &tag_list).await?;
    }
    let manager = f
        .manager
        .clone()
        .or_else(|| v.manager.clone())
        .unwrap_or_default();
    // The rename comes first: a clash with another version refuses the whole request
    // before anything is changed.
    let name = match f.name.as_deref().filter(|n| *n != v.name) {
        Some(new_name) => {
            db.datastore_version_rename(&v.id, new_name)
                .await
                .map_err(|e| match e {
                    DbError::AlreadyExists { .. } => ApiError::bad_request(format!(
                        "A datastore version with the name '{new_name}' and version '{}' \
                         already exists.",
                        v.version.as_deref().unwrap_or(&v.name)
                    )),
                    other => other.into(),
                })?;
            new_name.to_string()
        }
        None => v.name.clone(),
    };
    db.datastore_version_upsert(&DatastoreVersionSpec {
        datastore: v.datastore_id.clone(),
        name,
        manager,
        image_id: image,
        packages: match &f.packages {
            Some(p) => p.join(","),
            None => v.packages.clone().unwrap_or_default(),
        },
        active: f.active.unwrap_or(v.active),
        image_tags: Some(tags),
        version: Some(v.version.clone().unwrap_or_else(|| v.name.clone())),
        registry_ext: Some(f.registry_ext.clone().unwrap_or(v.registry_ext.clone())),
        repl_strategy: Some(f.repl_strategy.clone().unwrap_or(v.repl_strategy.clone())),
    })
    .await?;
    match f.default {
        Some(true) => {
            db.datastore_set_default_version(&v.datastore_id, Some(&v.id))
                .await?
        }
        Some(false) => {
            let ds = db.datastore_get(&v.datastore_id).await?;
            if ds.default_version_id.as_deref() == Some(v.id.as_str()) {
                db.datastore_set_default_version(&v.datastore_id, None)
                    .await?;
            }
        }
        None => {}
    }
    tracing::info!(version_id = %v.id, "datastore version updated");
    Ok(empty(StatusCode::ACCEPTED))
}

/// `DELETE /mgmt/datastore-versions/{id}`: 202, empty. Unknown version 400; a version in
/// use 400 with what uses it (nothing is changed). Its configuration parameters and
/// metadata go with it, and a datastore whose default it was has no default afterwards.
pub async fn delete(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path((_project, id)): Path<(String, String)>,
) -> ApiResult<Response> {
    ctx.require_admin()?;
    let v = load_version_by_id(&state, &id).await?;
    state
        .db()
        .datastore_version_delete(&v.id)
        .await
        .map_err(|e| match e {
            DbError::Conflict(msg) => ApiError::bad_request(msg),
            other => other.into(),
        })?;
    tracing::info!(version_id = %v.id, "datastore version deleted");
    Ok(empty(StatusCode::ACCEPTED))
}

// ---------------------------------------------------------------------------------------
// Configuration parameters (api.md §19.6).

/// The admin view of one parameter (`max_size`/`min_size` as stored).
pub fn param_view(p: &ConfigParam) -> Value {
    let mut m = Map::new();
    m.insert("name".into(), p.name.clone().into());
    m.insert(
        "datastore_version_id".into(),
        p.datastore_version_id.clone().into(),
    );
    m.insert("restart_required".into(), p.restart_required.into());
    m.insert("type".into(), p.data_type.clone().into());
    if let Some(max) = p.max_size.clone().filter(|s| !s.is_empty()) {
        m.insert("max_size".into(), max.into());
    }
    if let Some(min) = p.min_size.clone().filter(|s| !s.is_empty()) {
        m.insert("min_size".into(), min.into());
    }
    Value::Object(m)
}

/// Compares two digit strings as numbers.
fn cmp_digits(a: &str, b: &str) -> std::cmp::Ordering {
    let a = a.trim_start_matches('0');
    let b = b.trim_start_matches('0');
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

fn size(errs: &mut Errors, path: &JsonPath, v: &Value) -> Option<String> {
    match v {
        Value::String(s)
            if !s.is_empty() && s.len() <= 40 && s.bytes().all(|b| b.is_ascii_digit()) =>
        {
            Some(s.clone())
        }
        Value::String(s) => {
            errs.add(path, format!("'{s}' is not a string of 1 to 40 digits"));
            None
        }
        other => {
            errs.wrong_type(path, other, &["string"]);
            None
        }
    }
}

/// Validates a `{"configuration-parameter": {...}}` body into a rule.
fn parse_param(body: &Value) -> ApiResult<ConfigParamRule> {
    let obj = envelope(body, "configuration-parameter")?;
    let root = JsonPath::root("configuration-parameter");
    let mut errs = Errors::new();
    no_additional(
        &mut errs,
        &root,
        obj,
        &[
            "name",
            "data_type",
            "restart_required",
            "min_size",
            "max_size",
        ],
    );
    let name = match obj.get("name") {
        None => {
            errs.required(&root, "name");
            None
        }
        Some(Value::String(s)) if s.is_empty() || s.chars().count() > 128 => {
            errs.add(&root.key("name"), "must be 1 to 128 characters long");
            None
        }
        Some(Value::String(s)) => Some(s.clone()),
        Some(v) => {
            errs.wrong_type(&root.key("name"), v, &["string"]);
            None
        }
    };
    let data_type = match obj.get("data_type") {
        None => {
            errs.required(&root, "data_type");
            None
        }
        Some(Value::String(s)) if s.contains("integer") || s.contains("string") => Some(s.clone()),
        Some(Value::String(s)) => {
            errs.add(
                &root.key("data_type"),
                format!("'{s}' is not a supported data type (integer or string)"),
            );
            None
        }
        Some(v) => {
            errs.wrong_type(&root.key("data_type"), v, &["string"]);
            None
        }
    };
    let restart_required = match obj.get("restart_required") {
        None => {
            errs.required(&root, "restart_required");
            None
        }
        Some(v) => match v.as_i64().filter(|_| !v.is_f64()) {
            Some(0) => Some(false),
            Some(1) => Some(true),
            _ => {
                errs.add(
                    &root.key("restart_required"),
                    format!("{} is not one of [0, 1]", crate::validation::py_repr(v)),
                );
                None
            }
        },
    };
    let min = obj
        .get("min_size")
        .and_then(|v| size(&mut errs, &root.key("min_size"), v));
    let max = obj
        .get("max_size")
        .and_then(|v| size(&mut errs, &root.key("max_size"), v));
    let rule = errs.finish(ConfigParamRule {
        name: name.unwrap_or_default(),
        restart_required: restart_required.unwrap_or_default(),
        data_type: data_type.unwrap_or_default(),
        min,
        max,
    })?;
    if rule.data_type.contains("integer") {
        match (&rule.min, &rule.max) {
            (Some(min), Some(max)) => {
                if cmp_digits(max, min) == std::cmp::Ordering::Less {
                    return Err(ApiError::bad_request(format!(
                        "max_size ({max}) must be greater than or equal to min_size ({min})."
                    )));
                }
            }
            _ => {
                return Err(ApiError::bad_request(
                    "min_size and max_size are required for integer parameters.",
                ))
            }
        }
    }
    Ok(rule)
}

/// `GET /mgmt/datastores/versions/{version}/parameters`.
pub async fn params_list(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path((_project, version)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    ctx.require_admin()?;
    let v = load_version_by_id(&state, &version).await?;
    let items: Vec<Value> = state
        .db()
        .config_params_list(&v.id)
        .await?
        .iter()
        .map(param_view)
        .collect();
    Ok(Json(json!({ "configuration-parameters": items })))
}

/// `GET /mgmt/datastores/versions/{version}/parameters/{name}`: bare object; 404 unknown.
pub async fn params_show(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path((_project, version, name)): Path<(String, String, String)>,
) -> ApiResult<Json<Value>> {
    ctx.require_admin()?;
    let v = load_version_by_id(&state, &version).await?;
    let p = state.db().config_param_get(&v.id, &name).await?;
    Ok(Json(param_view(&p)))
}

/// `POST /mgmt/datastores/versions/{version}/parameters`: 200 bare object; existing 400.
pub async fn params_create(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path((_project, version)): Path<(String, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    ctx.require_admin()?;
    let v = load_version_by_id(&state, &version).await?;
    let rule = parse_param(&body)?;
    let db = state.db();
    match db.config_param_get(&v.id, &rule.name).await {
        Ok(_) => {
            return Err(ApiError::bad_request(format!(
                "Configuration parameter '{}' already exists for datastore version {}.",
                rule.name, v.id
            )))
        }
        Err(DbError::NotFound { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    db.config_params_upsert(&v.id, std::slice::from_ref(&rule))
        .await?;
    Ok(Json(param_view(
        &db.config_param_get(&v.id, &rule.name).await?,
    )))
}

/// `PUT /mgmt/datastores/versions/{version}/parameters/{name}`: 200 bare object; the
/// parameter must exist (404).
pub async fn params_update(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path((_project, version, name)): Path<(String, String, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    ctx.require_admin()?;
    let v = load_version_by_id(&state, &version).await?;
    let mut rule = parse_param(&body)?;
    let db = state.db();
    db.config_param_get(&v.id, &name).await?;
    rule.name = name;
    db.config_params_upsert(&v.id, std::slice::from_ref(&rule))
        .await?;
    Ok(Json(param_view(
        &db.config_param_get(&v.id, &rule.name).await?,
    )))
}

/// `DELETE /mgmt/datastores/versions/{version}/parameters/{name}`: 204; unknown 400.
pub async fn params_delete(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path((_project, version, name)): Path<(String, String, String)>,
) -> ApiResult<Response> {
    ctx.require_admin()?;
    let v = load_version_by_id(&state, &version).await?;
    match state.db().config_param_delete(&v.id, &name).await {
        Ok(()) => Ok(empty(StatusCode::NO_CONTENT)),
        Err(DbError::NotFound { .. }) => Err(ApiError::bad_request(format!(
            "Configuration parameter '{name}' of datastore version {} cannot be found.",
            v.id
        ))),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digit_comparison() {
        use std::cmp::Ordering::*;
        assert_eq!(cmp_digits("10", "9"), Greater);
        assert_eq!(cmp_digits("0010", "10"), Equal);
        assert_eq!(
            cmp_digits("18446744073709551615", "18446744073709551616"),
            Less
        );
    }

    #[test]
    fn param_bodies() {
        let ok = parse_param(&json!({"configuration-parameter": {
            "name": "max_connections", "data_type": "integer", "restart_required": 0,
            "min_size": "1", "max_size": "100000"}}))
        .unwrap();
        assert_eq!(ok.min.as_deref(), Some("1"));
        assert!(!ok.restart_required);
        for bad in [
            json!({"configuration-parameter": {"name": "x", "data_type": "integer", "restart_required": 0, "min_size": "5", "max_size": "4"}}),
            json!({"configuration-parameter": {"name": "x", "data_type": "integer", "restart_required": 0}}),
            json!({"configuration-parameter": {"name": "x", "data_type": "float", "restart_required": 0}}),
            json!({"configuration-parameter": {"name": "x", "data_type": "string", "restart_required": 2}}),
            json!({"configuration-parameter": {"name": "x", "data_type": "string", "restart_required": true}}),
            json!({"configuration-parameter": {"name": "x", "data_type": "string"}}),
            json!({"configuration-parameter": {"name": "", "data_type": "string", "restart_required": 1}}),
            json!({"configuration-parameter": {"name": "x", "data_type": "integer", "restart_required": 1, "min_size": 1, "max_size": "2"}}),
            json!({"configuration-parameter": {"name": "x", "data_type": "string", "restart_required": 1, "extra": 1}}),
            json!({"parameter": {}}),
        ] {
            let e = parse_param(&bad).unwrap_err();
            assert_eq!(e.status().as_u16(), 400, "{bad}");
        }
    }

    #[test]
    fn version_bodies() {
        let f = parse_create(
            &json!({"version": {"name": "10.11", "datastore_name": "mariadb",
            "datastore_manager": "mariadb", "image_tags": ["trove"], "active": true}}),
        )
        .unwrap();
        assert_eq!(f.image_tags, Some(vec!["trove".to_string()]));
        for bad in [
            json!({"version": {"name": "10.11", "datastore_name": "mariadb", "datastore_manager": "mariadb"}}),
            json!({"version": {"name": "10.11", "datastore_name": "mariadb", "datastore_manager": "mariadb", "active": "yes"}}),
            json!({"version": {"name": "10.11", "datastore_name": "mariadb", "datastore_manager": "mariadb", "active": true, "color": "red"}}),
            json!({"version": {"name": "10.11", "datastore_name": "mariadb", "datastore_manager": "mariadb", "active": true, "image_tags": ["a","b","c","d","e","f"]}}),
            json!({"version": {"name": "10.11", "datastore_name": "mariadb", "datastore_manager": "mariadb", "active": true, "image_tags": ["a","a"]}}),
            json!({"version": {"name": "10.11", "datastore_name": "mariadb", "datastore_manager": "mariadb", "active": true, "image_tags": ["123456789012345678901"]}}),
            json!({"version": {"name": "10.11", "datastore_name": "mariadb", "datastore_manager": "mariadb", "active": true, "packages": ["p", "p"]}}),
        ] {
            assert_eq!(
                parse_create(&bad).unwrap_err().status().as_u16(),
                400,
                "{bad}"
            );
        }
        assert!(parse_update(&json!({"active": false, "default": true})).is_ok());
        assert_eq!(
            parse_update(&json!({"datastore_name": "x"}))
                .unwrap_err()
                .status()
                .as_u16(),
            400
        );
        assert_eq!(stored_list(None), vec![String::new()]);
        assert_eq!(
            stored_list(Some("a, b")),
            vec!["a".to_string(), "b".to_string()]
        );
    }
}
