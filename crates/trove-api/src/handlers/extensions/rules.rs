//! Request bodies and name rules of the databases and users calls.
//!
//! Two layers, as in Trove:
//! - the JSON schemas of the bodies (api.md §6.2, §7.3-§7.7), answered with
//!   `Validation error: ...` before anything else happens;
//! - the model rules of database and user names, hosts and passwords (MySQL's rules, which
//!   Trove's API applies whatever the datastore), answered with Trove's `ValueError`
//!   texts, and the reserved names of the instance's datastore.

use serde_json::{Map, Value};

use crate::validation::{
    array, no_additional, non_empty_string, object, py_repr, Errors, Path, ValidationError,
};

/// Pattern of Trove's `host_string`, as jsonschema prints it.
pub const HOST_PATTERN_REPR: &str = r"'^[%]?[\\w(-).]*[%]?$'";
/// Longest database name (MySQL).
pub const MAX_SCHEMA_NAME: usize = 64;
/// Longest user name (Trove's MySQL model).
pub const MAX_USER_NAME: usize = 16;

/// A database of a create request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDatabase {
    /// Name.
    pub name: String,
    /// Character set, if given.
    pub character_set: Option<String>,
    /// Collation, if given.
    pub collate: Option<String>,
}

/// A user of a create or password-change request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUser {
    /// Name.
    pub name: String,
    /// Password.
    pub password: String,
    /// Host, if given.
    pub host: Option<String>,
    /// Databases to grant.
    pub databases: Vec<String>,
}

/// Attributes of a user update (at least one).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserAttrs {
    /// New name.
    pub name: Option<String>,
    /// New password.
    pub password: Option<String>,
    /// New host.
    pub host: Option<String>,
}

fn top<'a>(body: &'a Value, key: &str) -> Result<&'a Value, ValidationError> {
    let Some(obj) = body.as_object() else {
        return Err(ValidationError::single(
            "",
            format!("{} is not of type 'object'", py_repr(body)),
        ));
    };
    obj.get(key)
        .ok_or_else(|| ValidationError::single("", format!("'{key}' is a required property")))
}

/// Trove's `name_string`: a string of one character at least, with an ASCII letter or
/// digit.
fn name_string(errs: &mut Errors, path: &Path, v: &Value) -> Option<String> {
    match v {
        Value::String(s) if s.is_empty() => {
            errs.add(path, format!("{} is too short", py_repr(v)));
            None
        }
        Value::String(s) if !s.chars().any(|c| c.is_ascii_alphanumeric()) => {
            errs.add(
                path,
                format!("{} does not match '^.*[0-9a-zA-Z]+.*$'", py_repr(v)),
            );
            None
        }
        Value::String(s) => Some(s.clone()),
        other => {
            errs.wrong_type(path, other, &["string"]);
            None
        }
    }
}

/// Whether `s` matches Trove's `host_string` pattern `^[%]?[\w(-).]*[%]?$`.
pub fn host_pattern_ok(s: &str) -> bool {
    let s = s.strip_prefix('%').unwrap_or(s);
    let s = s.strip_suffix('%').unwrap_or(s);
    s.chars()
        .all(|c| c.is_alphanumeric() || matches!(c, '_' | '(' | ')' | '.'))
}

fn host_string(errs: &mut Errors, path: &Path, v: &Value) -> Option<String> {
    match v {
        Value::String(s) if host_pattern_ok(s) => Some(s.clone()),
        Value::String(_) => {
            errs.add(
                path,
                format!("{} does not match {HOST_PATTERN_REPR}", py_repr(v)),
            );
            None
        }
        other => {
            errs.wrong_type(path, other, &["string"]);
            None
        }
    }
}

/// `databases_ref_list`: objects with a `name`, no duplicates.
fn database_refs(errs: &mut Errors, path: &Path, v: &Value) -> Vec<String> {
    let Some(items) = array(errs, path, v, None) else {
        return Vec::new();
    };
    for (i, a) in items.iter().enumerate() {
        if items[..i].contains(a) {
            errs.add(path, format!("{} has non-unique elements", py_repr(v)));
            break;
        }
    }
    let mut names = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let p = path.index(i);
        let Some(obj) = object(errs, &p, item) else {
            continue;
        };
        match obj.get("name") {
            None => errs.required(&p, "name"),
            Some(n) => {
                if let Some(n) = non_empty_string(errs, &p.key("name"), n) {
                    names.push(n);
                }
            }
        }
    }
    names
}

/// `POST /instances/{id}/databases`: `{"databases": [{"name", "character_set"?,
/// "collate"?}]}`.
pub fn parse_databases(body: &Value) -> Result<Vec<NewDatabase>, ValidationError> {
    let v = top(body, "databases")?;
    let path = Path::root("databases");
    let mut errs = Errors::new();
    let mut out = Vec::new();
    if let Some(items) = array(&mut errs, &path, v, None) {
        for (i, item) in items.iter().enumerate() {
            let p = path.index(i);
            let Some(obj) = object(&mut errs, &p, item) else {
                continue;
            };
            let name = match obj.get("name") {
                None => {
                    errs.required(&p, "name");
                    None
                }
                Some(n) => non_empty_string(&mut errs, &p.key("name"), n),
            };
            let mut opt = |key: &str| {
                obj.get(key)
                    .and_then(|x| non_empty_string(&mut errs, &p.key(key), x))
            };
            let character_set = opt("character_set");
            let collate = opt("collate");
            if let Some(name) = name {
                out.push(NewDatabase {
                    name,
                    character_set,
                    collate,
                });
            }
        }
    }
    errs.finish(out)
}

fn user_items(errs: &mut Errors, path: &Path, v: &Value) -> Vec<NewUser> {
    let mut out = Vec::new();
    let Some(items) = array(errs, path, v, None) else {
        return out;
    };
    for (i, item) in items.iter().enumerate() {
        let p = path.index(i);
        let Some(obj) = object(errs, &p, item) else {
            continue;
        };
        let name = match obj.get("name") {
            None => {
                errs.required(&p, "name");
                None
            }
            Some(n) => name_string(errs, &p.key("name"), n),
        };
        let password = match obj.get("password") {
            None => {
                errs.required(&p, "password");
                None
            }
            Some(n) => non_empty_string(errs, &p.key("password"), n),
        };
        let host = obj
            .get("host")
            .and_then(|h| host_string(errs, &p.key("host"), h));
        let databases = obj
            .get("databases")
            .map(|d| database_refs(errs, &p.key("databases"), d))
            .unwrap_or_default();
        if let (Some(name), Some(password)) = (name, password) {
            out.push(NewUser {
                name,
                password,
                host,
                databases,
            });
        }
    }
    out
}

/// `POST /instances/{id}/users` and `PUT /instances/{id}/users`: `{"users": [{"name",
/// "password", "host"?, "databases"?}]}`.
pub fn parse_users(body: &Value) -> Result<Vec<NewUser>, ValidationError> {
    let v = top(body, "users")?;
    let mut errs = Errors::new();
    let out = user_items(&mut errs, &Path::root("users"), v);
    errs.finish(out)
}

/// `PUT /instances/{id}/users/{user}`: `{"user": {"name"?, "password"?, "host"?}}` with
/// one attribute at least.
pub fn parse_user_attrs(body: &Value) -> Result<UserAttrs, ValidationError> {
    let v = top(body, "user")?;
    let path = Path::root("user");
    let mut errs = Errors::new();
    let mut attrs = UserAttrs::default();
    if let Some(obj) = object(&mut errs, &path, v) {
        if obj.is_empty() {
            errs.add(&path, "{} does not have enough properties");
        }
        if let Some(n) = obj.get("name") {
            attrs.name = name_string(&mut errs, &path.key("name"), n);
        }
        if let Some(n) = obj.get("password") {
            attrs.password = non_empty_string(&mut errs, &path.key("password"), n);
        }
        if let Some(n) = obj.get("host") {
            attrs.host = host_string(&mut errs, &path.key("host"), n);
        }
    }
    errs.finish(attrs)
}

/// `PUT /instances/{id}/users/{user}/databases`: `{"databases": [{"name"}]}`.
pub fn parse_database_refs(body: &Value) -> Result<Vec<String>, ValidationError> {
    let v = top(body, "databases")?;
    let mut errs = Errors::new();
    let names = database_refs(&mut errs, &Path::root("databases"), v);
    errs.finish(names)
}

/// The optional body of `POST /instances/{id}/root`: `{"password": "..."}`; an empty
/// password counts as none.
pub fn parse_root_password(body: Option<&Value>) -> Result<Option<String>, ValidationError> {
    let Some(body) = body else {
        return Ok(None);
    };
    let Some(obj): Option<&Map<String, Value>> = body.as_object() else {
        return Err(ValidationError::single(
            "",
            format!("{} is not of type 'object'", py_repr(body)),
        ));
    };
    let mut errs = Errors::new();
    no_additional(&mut errs, &Path::default(), obj, &["password"]);
    let password = match obj.get("password") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()).filter(|s| !s.is_empty()),
        Some(other) => {
            errs.wrong_type(&Path::root("password"), other, &["string"]);
            None
        }
    };
    errs.finish(password)
}

/// Python's repr of a list of names (`['os_admin', 'root']`), as Trove prints the reserved
/// lists.
pub fn py_list(names: &[String]) -> String {
    py_repr(&Value::Array(
        names.iter().map(|n| Value::String(n.clone())).collect(),
    ))
}

fn has_backslash_repr(s: &str) -> bool {
    // Python's `%r` escapes backslashes and control characters; Trove refuses any name
    // whose repr contains one.
    s.chars().any(|c| c == '\\' || c.is_control())
}

/// MySQL's database name rule: `Err` with Trove's message.
pub fn check_schema_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("Schema name empty.".into());
    }
    if name.chars().count() > MAX_SCHEMA_NAME {
        return Err(format!(
            "Schema name '{name}' is too long. Max length = {MAX_SCHEMA_NAME}."
        ));
    }
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    let chars: Vec<char> = name.chars().collect();
    let valid = chars.len() >= 2 && word(chars[0]) && word(chars[chars.len() - 1]) && {
        // ^[A-Za-z0-9_-]+[\s?#@]*[A-Za-z0-9_-]+$
        let start = chars.iter().position(|c| !word(*c)).unwrap_or(chars.len());
        let end = chars.iter().rposition(|c| !word(*c)).map_or(0, |i| i + 1);
        start >= chars.len()
            || chars[start..end]
                .iter()
                .all(|c| c.is_whitespace() || matches!(c, '?' | '#' | '@'))
    };
    if !valid || has_backslash_repr(name) {
        return Err(format!("'{name}' is not a valid schema name."));
    }
    Ok(())
}

fn valid_mysql_string(s: &str) -> bool {
    !(s.is_empty()
        || s.starts_with(char::is_whitespace)
        || s.ends_with(char::is_whitespace)
        || s.chars()
            .any(|c| matches!(c, '\'' | '"' | ';' | '`' | ',' | '/'))
        || has_backslash_repr(s))
}

/// MySQL's user name rule.
pub fn check_user_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("User name empty.".into());
    }
    if name.chars().count() > MAX_USER_NAME {
        return Err(format!(
            "User name '{name}' is too long. Max length = {MAX_USER_NAME}."
        ));
    }
    if !valid_mysql_string(name) {
        return Err(format!("'{name}' is not a valid user name."));
    }
    Ok(())
}

/// MySQL's password rule.
pub fn check_password(password: &str) -> Result<(), String> {
    if valid_mysql_string(password) {
        Ok(())
    } else {
        Err(format!("'{password}' is not a valid password."))
    }
}

/// MySQL's host rule with `hostname_require_valid_ip`: `%`, or an IP address or network
/// once each `%` is read as `1`.
pub fn check_host(host: &str, require_valid_ip: bool) -> Result<(), String> {
    if host == "%" || !require_valid_ip {
        return Ok(());
    }
    let probe = host.replace('%', "1");
    let ok = match probe.split_once('/') {
        None => probe.parse::<std::net::IpAddr>().is_ok(),
        Some((addr, bits)) => {
            addr.parse::<std::net::IpAddr>().is_ok() && bits.parse::<u8>().is_ok_and(|b| b <= 128)
        }
    };
    if ok {
        Ok(())
    } else {
        Err(format!("'{host}' is not a valid hostname."))
    }
}

/// `Database name "X" is on the reserved list: [...].` when reserved.
pub fn check_reserved_db(name: &str, reserved: &[String]) -> Result<(), String> {
    if reserved.iter().any(|r| r == name) {
        Err(format!(
            "Database name \"{name}\" is on the reserved list: {}.",
            py_list(reserved)
        ))
    } else {
        Ok(())
    }
}

/// `User name "X" is on the reserved list: [...].` when reserved.
pub fn check_reserved_user(name: &str, reserved: &[String]) -> Result<(), String> {
    if reserved.iter().any(|r| r == name) {
        Err(format!(
            "User name \"{name}\" is on the reserved list: {}.",
            py_list(reserved)
        ))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn schema_names() {
        assert!(check_schema_name("orders").is_ok());
        assert!(check_schema_name("my db").is_ok());
        assert!(check_schema_name("a-b_c").is_ok());
        assert_eq!(
            check_schema_name("x").unwrap_err(),
            "'x' is not a valid schema name."
        );
        assert_eq!(
            check_schema_name("bad;name").unwrap_err(),
            "'bad;name' is not a valid schema name."
        );
        assert!(check_schema_name(&"a".repeat(65))
            .unwrap_err()
            .ends_with("is too long. Max length = 64."));
    }

    #[test]
    fn users_and_hosts() {
        assert!(check_user_name("app").is_ok());
        assert_eq!(
            check_user_name("a'b").unwrap_err(),
            "'a'b' is not a valid user name."
        );
        assert!(check_user_name(&"u".repeat(17)).is_err());
        assert!(check_host("10.0.0.%", true).is_ok());
        assert!(check_host("192.168.0.0/24", true).is_ok());
        assert_eq!(
            check_host("example.com", true).unwrap_err(),
            "'example.com' is not a valid hostname."
        );
        assert!(check_host("example.com", false).is_ok());
        assert!(host_pattern_ok("%"));
        assert!(host_pattern_ok("10.0.0.%"));
        assert!(!host_pattern_ok("a-b"));
    }

    #[test]
    fn bodies() {
        assert_eq!(
            parse_databases(&json!({})).unwrap_err().to_string(),
            "Validation error: 'databases' is a required property"
        );
        assert_eq!(
            parse_users(&json!({"users": [{"name": "a"}]}))
                .unwrap_err()
                .to_string(),
            "Validation error: users[0] 'password' is a required property"
        );
        assert_eq!(
            parse_user_attrs(&json!({"user": {}}))
                .unwrap_err()
                .to_string(),
            "Validation error: user {} does not have enough properties"
        );
        assert_eq!(
            parse_database_refs(&json!({"databases": [{"name": "a"}, {"name": "a"}]}))
                .unwrap_err()
                .to_string(),
            "Validation error: databases [{'name': 'a'}, {'name': 'a'}] has non-unique elements"
        );
        assert_eq!(
            parse_root_password(Some(&json!({"password": "pw"}))).unwrap(),
            Some("pw".into())
        );
        assert_eq!(parse_root_password(None).unwrap(), None);
    }
}
