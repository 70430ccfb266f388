//! Request validation in the style of Trove's JSON schemas (`trove/common/apischema.py`),
//! written as Rust parsing of a `serde_json::Value` into validated request types.
//!
//! Messages are jsonschema's (Draft 4) as Trove shows them:
//! `Validation error: <path> <reason>[; <path> <reason>...]`, the path written as
//! `instance['volume']['size']` and values in Python's repr (`'abc'`, `True`, `None`).
//! Parsers collect every failure of a body (as jsonschema's `iter_errors` does) in an
//! [`Errors`] and turn it into a [`ValidationError`] at the end.
//!
//! Not here: rules that need the database or configuration (flavor exists, volume size
//! limit...), which handlers check after the body parsed.

use serde_json::{Map, Value};

/// Pattern of Trove's `non_empty_string`.
pub const NON_EMPTY_STRING_PATTERN: &str = "^.*[0-9a-zA-Z]+.*$";
/// Pattern of Trove's `uuid`.
pub const UUID_PATTERN: &str =
    "^([0-9a-fA-F]){8}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){12}$";

/// A body that failed validation: 400 `Validation error: ...`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Validation error: {}", render(.0))]
pub struct ValidationError(pub Vec<(String, String)>);

fn render(items: &[(String, String)]) -> String {
    items
        .iter()
        .map(|(path, reason)| {
            if path.is_empty() {
                reason.clone()
            } else {
                format!("{path} {reason}")
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

impl ValidationError {
    /// One failure at `path`.
    pub fn single(path: impl Into<String>, reason: impl Into<String>) -> Self {
        Self(vec![(path.into(), reason.into())])
    }
}

/// Python's repr of a JSON value, as jsonschema messages print it.
pub fn py_repr(v: &Value) -> String {
    match v {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => py_str(s),
        Value::Array(a) => format!("[{}]", a.iter().map(py_repr).collect::<Vec<_>>().join(", ")),
        Value::Object(o) => format!(
            "{{{}}}",
            o.iter()
                .map(|(k, v)| format!("{}: {}", py_str(k), py_repr(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn py_str(s: &str) -> String {
    if s.contains('\'') && !s.contains('"') {
        format!("\"{s}\"")
    } else {
        format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
    }
}

/// A path inside a body, rendered as `root['key'][0]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Path(String);

impl Path {
    /// The path of the top-level key `root` (`instance`).
    pub fn root(root: &str) -> Self {
        Path(root.to_string())
    }

    /// The path of `key` inside this object.
    pub fn key(&self, key: &str) -> Path {
        if self.0.is_empty() {
            Path(key.to_string())
        } else {
            Path(format!("{}['{}']", self.0, key))
        }
    }

    /// The path of item `i` of this array.
    pub fn index(&self, i: usize) -> Path {
        Path(format!("{}[{i}]", self.0))
    }

    /// The rendered path.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Failures collected while parsing one body.
#[derive(Debug, Default)]
pub struct Errors(Vec<(String, String)>);

impl Errors {
    /// No failures yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a failure at `path`.
    pub fn add(&mut self, path: &Path, reason: impl Into<String>) {
        self.0.push((path.0.clone(), reason.into()));
    }

    /// Whether nothing failed.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok(value)` when nothing failed, else the collected [`ValidationError`].
    pub fn finish<T>(self, value: T) -> Result<T, ValidationError> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(ValidationError(self.0))
        }
    }

    /// `not of type` failure (`5 is not of type 'string'`).
    pub fn wrong_type(&mut self, path: &Path, v: &Value, types: &[&str]) {
        let list = types
            .iter()
            .map(|t| format!("'{t}'"))
            .collect::<Vec<_>>()
            .join(", ");
        self.add(path, format!("{} is not of type {list}", py_repr(v)));
    }

    /// `is a required property` failure on the object at `path`.
    pub fn required(&mut self, path: &Path, key: &str) {
        self.add(path, format!("'{key}' is a required property"));
    }

    /// `is not valid under any of the given schemas` (a failed `oneOf`/`anyOf`).
    pub fn no_schema(&mut self, path: &Path, v: &Value) {
        self.add(
            path,
            format!("{} is not valid under any of the given schemas", py_repr(v)),
        );
    }
}

/// The object under the top-level key `key` of a body (`{"instance": {...}}`); a
/// missing envelope is a 400 too (Trove answers 500 there).
pub fn envelope<'a>(body: &'a Value, key: &str) -> Result<&'a Map<String, Value>, ValidationError> {
    let Some(obj) = body.as_object() else {
        return Err(ValidationError::single(
            "",
            format!("{} is not of type 'object'", py_repr(body)),
        ));
    };
    match obj.get(key) {
        None => Err(ValidationError::single(
            "",
            format!("'{key}' is a required property"),
        )),
        Some(Value::Object(m)) => Ok(m),
        Some(other) => Err(ValidationError::single(
            key,
            format!("{} is not of type 'object'", py_repr(other)),
        )),
    }
}

/// Whether `s` is a Trove `non_empty_string` (1..255 characters, one ASCII letter or
/// digit at least); the reason when it is not.
pub fn non_empty_string_reason(s: &str) -> Option<String> {
    let repr = py_str(s);
    if s.is_empty() {
        Some(format!("{repr} is too short"))
    } else if s.chars().count() > 255 {
        Some(format!("{repr} is too long"))
    } else if !s.chars().any(|c| c.is_ascii_alphanumeric()) || s.contains('\n') {
        Some(format!(
            "{repr} does not match '{NON_EMPTY_STRING_PATTERN}'"
        ))
    } else {
        None
    }
}

/// Checks a `non_empty_string` value at `path`.
pub fn non_empty_string(errs: &mut Errors, path: &Path, v: &Value) -> Option<String> {
    match v {
        Value::String(s) => match non_empty_string_reason(s) {
            None => Some(s.clone()),
            Some(r) => {
                errs.add(path, r);
                None
            }
        },
        other => {
            errs.wrong_type(path, other, &["string"]);
            None
        }
    }
}

/// Whether `s` matches Trove's UUID pattern.
pub fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// Checks a `uuid` value at `path`.
pub fn uuid(errs: &mut Errors, path: &Path, v: &Value) -> Option<String> {
    match v {
        Value::String(s) if is_uuid(s) => Some(s.clone()),
        Value::String(s) => {
            errs.add(
                path,
                format!("{} does not match '{UUID_PATTERN}'", py_str(s)),
            );
            None
        }
        other => {
            errs.wrong_type(path, other, &["string"]);
            None
        }
    }
}

/// Checks a boolean at `path`.
pub fn boolean(errs: &mut Errors, path: &Path, v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        other => {
            errs.wrong_type(path, other, &["boolean"]);
            None
        }
    }
}

/// Checks an integer (no fraction) at `path`, with optional inclusive bounds.
pub fn integer(
    errs: &mut Errors,
    path: &Path,
    v: &Value,
    min: Option<i64>,
    max: Option<i64>,
) -> Option<i64> {
    let Some(n) = v.as_i64().filter(|_| !v.is_f64()) else {
        errs.wrong_type(path, v, &["integer"]);
        return None;
    };
    if let Some(m) = min.filter(|m| n < *m) {
        errs.add(path, format!("{n} is less than the minimum of {m}"));
        return None;
    }
    if let Some(m) = max.filter(|m| n > *m) {
        errs.add(path, format!("{n} is greater than the maximum of {m}"));
        return None;
    }
    Some(n)
}

/// Checks an object at `path`.
pub fn object<'a>(errs: &mut Errors, path: &Path, v: &'a Value) -> Option<&'a Map<String, Value>> {
    match v {
        Value::Object(m) => Some(m),
        other => {
            errs.wrong_type(path, other, &["object"]);
            None
        }
    }
}

/// Checks an array at `path`, with an optional maximum length.
pub fn array<'a>(
    errs: &mut Errors,
    path: &Path,
    v: &'a Value,
    max_items: Option<usize>,
) -> Option<&'a Vec<Value>> {
    match v {
        Value::Array(a) => {
            if let Some(m) = max_items.filter(|m| a.len() > *m) {
                let _ = m;
                errs.add(path, format!("{} is too long", py_repr(v)));
                return None;
            }
            Some(a)
        }
        other => {
            errs.wrong_type(path, other, &["array"]);
            None
        }
    }
}

/// Reports `additionalProperties: false` failures for keys of `obj` not in `allowed`.
pub fn no_additional(errs: &mut Errors, path: &Path, obj: &Map<String, Value>, allowed: &[&str]) {
    let extra: Vec<String> = obj
        .keys()
        .filter(|k| !allowed.contains(&k.as_str()))
        .map(|k| py_str(k))
        .collect();
    match extra.len() {
        0 => {}
        1 => errs.add(
            path,
            format!(
                "Additional properties are not allowed ({} was unexpected)",
                extra[0]
            ),
        ),
        _ => errs.add(
            path,
            format!(
                "Additional properties are not allowed ({} were unexpected)",
                extra.join(", ")
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn messages_look_like_trove() {
        let body = json!({"instance": {"volume": {"size": 0}}});
        let inst = envelope(&body, "instance").unwrap();
        let mut errs = Errors::new();
        let p = Path::root("instance");
        if !inst.contains_key("name") {
            errs.required(&p, "name");
        }
        errs.no_schema(&p.key("volume").key("size"), &inst["volume"]["size"]);
        let e = errs.finish(()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Validation error: instance 'name' is a required property; instance['volume']['size'] 0 is not valid under any of the given schemas"
        );
        assert_eq!(
            envelope(&json!({}), "instance").unwrap_err().to_string(),
            "Validation error: 'instance' is a required property"
        );
        assert_eq!(
            envelope(&json!([1]), "instance").unwrap_err().to_string(),
            "Validation error: [1] is not of type 'object'"
        );
        assert_eq!(
            Path::root("users").index(0).key("password").as_str(),
            "users[0]['password']"
        );
    }

    #[test]
    fn python_reprs() {
        assert_eq!(
            py_repr(&json!({"a": [true, null, 1.5, "x"]})),
            "{'a': [True, None, 1.5, 'x']}"
        );
        assert_eq!(py_repr(&json!("it's")), "\"it's\"");
    }

    #[test]
    fn scalar_checks() {
        let mut errs = Errors::new();
        let p = Path::root("instance").key("name");
        assert_eq!(
            non_empty_string(&mut errs, &p, &json!("db1")),
            Some("db1".into())
        );
        assert_eq!(non_empty_string(&mut errs, &p, &json!("")), None);
        assert_eq!(non_empty_string(&mut errs, &p, &json!("--")), None);
        assert_eq!(non_empty_string(&mut errs, &p, &json!(5)), None);
        assert_eq!(integer(&mut errs, &p, &json!(4), Some(1), Some(3)), None);
        assert_eq!(integer(&mut errs, &p, &json!(1.5), None, None), None);
        assert!(is_uuid("0f3c1c3e-5d5a-4c4b-9a0e-2b6f8d1e7a90"));
        assert!(!is_uuid("0f3c1c3e5d5a4c4b9a0e2b6f8d1e7a90"));
        let e = errs.finish(()).unwrap_err().to_string();
        assert_eq!(
            e,
            "Validation error: instance['name'] '' is too short; \
             instance['name'] '--' does not match '^.*[0-9a-zA-Z]+.*$'; \
             instance['name'] 5 is not of type 'string'; \
             instance['name'] 4 is greater than the maximum of 3; \
             instance['name'] 1.5 is not of type 'integer'"
        );
    }
}
