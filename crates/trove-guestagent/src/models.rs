//! The guest's wire types and the datastores' naming rules.
//!
//! Trove moves databases and users between API, taskmanager and guest as the attribute dicts of
//! its guest models: `{"_name": .., "_character_set": .., "_collate": ..}` for a database and
//! `{"_name": .., "_password": .., "_host": .., "_databases": [..], "_is_root": ..}` for a user.
//! [`Database`] and [`User`] serialize to exactly that and also accept the plain REST spellings
//! (`name`, `password`, ...) on input, so calls such as `change_passwords`
//! (`[{"name","host","password"}]`) use the same types.
//!
//! Validation depends on the datastore ([`Flavor`]): length and character rules of the server
//! and the reserved names of the `ignore_users`/`ignore_dbs` defaults. The checks run before any
//! SQL so a refused request changes nothing on the server.

use serde::{Deserialize, Serialize};

use crate::error::{GuestError, Result};

/// A database (Trove's `MySQLSchema` / `PostgreSQLSchema`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Database {
    /// Database name.
    #[serde(rename = "_name", alias = "name")]
    pub name: String,
    /// Character set (MariaDB) or encoding (PostgreSQL); `None` for the server default.
    #[serde(rename = "_character_set", alias = "character_set", default)]
    pub character_set: Option<String>,
    /// Collation; `None` for the server default.
    #[serde(rename = "_collate", alias = "collate", default)]
    pub collate: Option<String>,
}

impl Database {
    /// A database with the server's default character set and collation.
    pub fn new(name: impl Into<String>) -> Self {
        Database {
            name: name.into(),
            character_set: None,
            collate: None,
        }
    }
}

/// A database user (Trove's `MySQLUser` / `PostgreSQLUser`).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// User name.
    #[serde(rename = "_name", alias = "name")]
    pub name: String,
    /// Password; `None` in listings.
    #[serde(rename = "_password", alias = "password", default)]
    pub password: Option<String>,
    /// Host pattern the user may connect from (`%` = anywhere). PostgreSQL has no hosts in
    /// accounts and always reports `%`.
    #[serde(rename = "_host", alias = "host", default)]
    pub host: Option<String>,
    /// Databases the user has access to.
    #[serde(rename = "_databases", alias = "databases", default)]
    pub databases: Vec<Database>,
    /// True for the root account returned by `enable_root`.
    #[serde(rename = "_is_root", alias = "is_root", default)]
    pub is_root: bool,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("name", &self.name)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("host", &self.host)
            .field("databases", &self.databases)
            .field("is_root", &self.is_root)
            .finish()
    }
}

impl User {
    /// A user with a password, host `%` and no databases.
    pub fn new(name: impl Into<String>, password: impl Into<String>) -> Self {
        User {
            name: name.into(),
            password: Some(password.into()),
            host: None,
            databases: Vec::new(),
            is_root: false,
        }
    }

    /// The host, `%` when unset.
    pub fn host(&self) -> &str {
        self.host.as_deref().unwrap_or(DEFAULT_HOST)
    }

    /// `name@host`, the key users are sorted and paged by.
    pub fn key(&self) -> String {
        format!("{}@{}", self.name, self.host())
    }
}

/// The host of a user when none is given.
pub const DEFAULT_HOST: &str = "%";

/// New password for one user (`change_passwords`).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserPassword {
    /// User name.
    #[serde(alias = "_name")]
    pub name: String,
    /// Host (`%` when absent).
    #[serde(alias = "_host", default)]
    pub host: Option<String>,
    /// The new password.
    #[serde(alias = "_password")]
    pub password: String,
}

impl std::fmt::Debug for UserPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserPassword")
            .field("name", &self.name)
            .field("host", &self.host)
            .finish_non_exhaustive()
    }
}

/// Changes to a user (`update_attributes`): any of name, host, password.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserAttributes {
    /// New name.
    #[serde(default)]
    pub name: Option<String>,
    /// New host.
    #[serde(default)]
    pub host: Option<String>,
    /// New password.
    #[serde(default)]
    pub password: Option<String>,
}

impl std::fmt::Debug for UserAttributes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserAttributes")
            .field("name", &self.name)
            .field("host", &self.host)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// The datastore whose naming rules apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// MariaDB (and MySQL) rules.
    Mysql,
    /// PostgreSQL rules.
    Postgres,
}

/// MariaDB's reserved user names (`[mariadb] ignore_users`).
pub const MYSQL_IGNORE_USERS: &[&str] = &["os_admin", "root"];
/// MariaDB's reserved database names (`ignore_dbs`, with MySQL's `sys`).
pub const MYSQL_IGNORE_DBS: &[&str] = &["mysql", "information_schema", "performance_schema", "sys"];
/// PostgreSQL's reserved user names (`[postgresql] ignore_users`, plus `root`, which only the
/// root API manages).
pub const PG_IGNORE_USERS: &[&str] = &["os_admin", "postgres", "root"];
/// PostgreSQL's reserved database names (`ignore_dbs` plus the templates).
pub const PG_IGNORE_DBS: &[&str] = &["os_admin", "postgres", "template0", "template1"];

/// MariaDB's longest database name (characters).
pub const MYSQL_MAX_DB_NAME: usize = 64;
/// Trove's longest MySQL/MariaDB user name (characters).
pub const MYSQL_MAX_USER_NAME: usize = 16;
/// Longest host pattern accepted.
pub const MYSQL_MAX_HOST: usize = 255;
/// PostgreSQL's longest identifier (bytes, NAMEDATALEN - 1).
pub const PG_MAX_NAME: usize = 63;

/// Characters never accepted in MariaDB user names (quotes, separators, slashes).
const MYSQL_USER_FORBIDDEN: &[char] = &['\'', '"', ';', '`', ',', '/', '\\'];

impl Flavor {
    /// Reserved user names.
    pub fn ignore_users(self) -> &'static [&'static str] {
        match self {
            Flavor::Mysql => MYSQL_IGNORE_USERS,
            Flavor::Postgres => PG_IGNORE_USERS,
        }
    }

    /// Reserved database names.
    pub fn ignore_dbs(self) -> &'static [&'static str] {
        match self {
            Flavor::Mysql => MYSQL_IGNORE_DBS,
            Flavor::Postgres => PG_IGNORE_DBS,
        }
    }

    /// True when `name` is a reserved database name.
    pub fn is_reserved_db(self, name: &str) -> bool {
        self.ignore_dbs()
            .iter()
            .any(|r| r.eq_ignore_ascii_case(name))
    }

    /// True when `name` is a reserved user name.
    pub fn is_reserved_user(self, name: &str) -> bool {
        self.ignore_users()
            .iter()
            .any(|r| r.eq_ignore_ascii_case(name))
    }

    /// Checks a database name (format only, not the reserved list).
    pub fn check_db_name(self, name: &str) -> Result<()> {
        let bad = |why: &str| {
            Err(GuestError::InvalidValue(format!(
                "'{name}' is not a valid database name: {why}."
            )))
        };
        if name.is_empty() {
            return bad("it is empty");
        }
        match self {
            Flavor::Mysql => {
                if name.chars().count() > MYSQL_MAX_DB_NAME {
                    return bad("it is longer than 64 characters");
                }
                let edge = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
                let inner = |c: char| edge(c) || matches!(c, ' ' | '?' | '#' | '@');
                let first = name.chars().next().unwrap_or(' ');
                let last = name.chars().last().unwrap_or(' ');
                if !edge(first) || !edge(last) || !name.chars().all(inner) {
                    return bad(
                        "use letters, digits, '_' and '-' (spaces, '?', '#' and '@' only inside)",
                    );
                }
            }
            Flavor::Postgres => check_pg_name(name).or_else(|why| bad(&why))?,
        }
        Ok(())
    }

    /// Checks a user name (format only, not the reserved list).
    pub fn check_user_name(self, name: &str) -> Result<()> {
        let bad = |why: &str| {
            Err(GuestError::InvalidValue(format!(
                "'{name}' is not a valid user name: {why}."
            )))
        };
        if name.is_empty() {
            return bad("it is empty");
        }
        if !name.chars().any(|c| c.is_ascii_alphanumeric()) {
            return bad("it needs at least one letter or digit");
        }
        match self {
            Flavor::Mysql => {
                if name.chars().count() > MYSQL_MAX_USER_NAME {
                    return bad("it is longer than 16 characters");
                }
                if name.starts_with(char::is_whitespace) || name.ends_with(char::is_whitespace) {
                    return bad("it starts or ends with white space");
                }
                if name
                    .chars()
                    .any(|c| MYSQL_USER_FORBIDDEN.contains(&c) || c.is_control())
                {
                    return bad(
                        "quotes, ';', '`', ',', '/', '\\' and control characters are not allowed",
                    );
                }
            }
            Flavor::Postgres => check_pg_name(name).or_else(|why| bad(&why))?,
        }
        Ok(())
    }

    /// Checks a host pattern (MariaDB); PostgreSQL accepts only `%`.
    pub fn check_host(self, host: &str) -> Result<()> {
        let ok = match self {
            Flavor::Mysql => {
                !host.is_empty()
                    && host.len() <= MYSQL_MAX_HOST
                    && host.chars().all(|c| {
                        c.is_ascii_alphanumeric() || matches!(c, '.' | '%' | '_' | ':' | '-')
                    })
            }
            Flavor::Postgres => host == DEFAULT_HOST,
        };
        if ok {
            Ok(())
        } else {
            Err(GuestError::InvalidValue(format!(
                "'{host}' is not a valid host."
            )))
        }
    }

    /// Checks a password: not empty, no NUL.
    pub fn check_password(self, password: &str) -> Result<()> {
        if password.is_empty() || password.contains('\0') {
            return Err(GuestError::InvalidValue(
                "The password must be a non-empty string without NUL characters.".into(),
            ));
        }
        Ok(())
    }

    /// Checks a character set or collation name.
    pub fn check_charset_name(self, value: &str) -> Result<()> {
        if value.is_empty()
            || value.len() > 64
            || !value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        {
            return Err(GuestError::InvalidValue(format!(
                "'{value}' is not a valid character set or collation."
            )));
        }
        Ok(())
    }

    /// Full validation of a database to create or delete, reserved names included.
    pub fn validate_database(self, db: &Database) -> Result<()> {
        self.check_db_name(&db.name)?;
        if self.is_reserved_db(&db.name) {
            return Err(GuestError::Reserved(db.name.clone()));
        }
        if let Some(cs) = &db.character_set {
            self.check_charset_name(cs)?;
        }
        if let Some(co) = &db.collate {
            self.check_charset_name(co)?;
        }
        Ok(())
    }

    /// Full validation of a user name and host (reserved names included).
    pub fn validate_user_ref(self, name: &str, host: &str) -> Result<()> {
        self.check_user_name(name)?;
        if self.is_reserved_user(name) {
            return Err(GuestError::Reserved(name.to_string()));
        }
        self.check_host(host)
    }

    /// Full validation of a user to create: name, host, password and its databases.
    pub fn validate_new_user(self, user: &User) -> Result<()> {
        self.validate_user_ref(&user.name, user.host())?;
        match &user.password {
            Some(p) => self.check_password(p)?,
            None => {
                return Err(GuestError::InvalidValue(format!(
                    "User {} needs a password.",
                    user.name
                )))
            }
        }
        for db in &user.databases {
            self.validate_database(db)?;
        }
        Ok(())
    }
}

fn check_pg_name(name: &str) -> std::result::Result<(), String> {
    if name.len() > PG_MAX_NAME {
        return Err("it is longer than 63 bytes".into());
    }
    if name.chars().any(char::is_control) {
        return Err("control characters are not allowed".into());
    }
    if name.starts_with(char::is_whitespace) || name.ends_with(char::is_whitespace) {
        return Err("it starts or ends with white space".into());
    }
    Ok(())
}

/// Checks a whole batch before anything is executed: every item valid, no duplicates.
pub fn validate_databases(flavor: Flavor, dbs: &[Database]) -> Result<()> {
    let mut seen = std::collections::HashSet::new();
    for db in dbs {
        flavor.validate_database(db)?;
        if !seen.insert(db.name.as_str()) {
            return Err(GuestError::InvalidValue(format!(
                "The database {} appears more than once in the request.",
                db.name
            )));
        }
    }
    Ok(())
}

/// Checks a batch of users before anything is executed: every item valid, no duplicate
/// `(name, host)`.
pub fn validate_users(flavor: Flavor, users: &[User]) -> Result<()> {
    let mut seen = std::collections::HashSet::new();
    for u in users {
        flavor.validate_new_user(u)?;
        if !seen.insert((u.name.as_str(), u.host())) {
            return Err(GuestError::InvalidValue(format!(
                "The user {} appears more than once in the request.",
                u.key()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn database_wire_shape() {
        let db = Database {
            name: "orders".into(),
            character_set: Some("utf8mb4".into()),
            collate: None,
        };
        assert_eq!(
            serde_json::to_value(&db).unwrap(),
            json!({"_name": "orders", "_character_set": "utf8mb4", "_collate": null})
        );
        let plain: Database = serde_json::from_value(json!({"name": "x"})).unwrap();
        assert_eq!(plain, Database::new("x"));
    }

    #[test]
    fn user_wire_shape() {
        let u: User = serde_json::from_value(json!({
            "_name": "app", "_password": "pw", "_host": "%",
            "_databases": [{"_name": "orders", "_character_set": null, "_collate": null}]
        }))
        .unwrap();
        assert_eq!(u.databases, vec![Database::new("orders")]);
        let v = serde_json::to_value(&u).unwrap();
        assert_eq!(v["_name"], "app");
        assert_eq!(v["_password"], "pw");
        assert_eq!(v["_databases"][0]["_name"], "orders");
        assert_eq!(v["_is_root"], false);
        assert!(!format!("{u:?}").contains("pw\""));
    }

    #[test]
    fn mysql_rules() {
        let f = Flavor::Mysql;
        assert!(f.check_db_name("orders").is_ok());
        assert!(f.check_db_name("my db@x").is_ok());
        assert!(f.check_db_name("a;b").is_err());
        assert!(f.check_db_name(" a").is_err());
        assert!(f.check_db_name(&"a".repeat(65)).is_err());
        assert!(f.check_user_name("app").is_ok());
        assert!(f.check_user_name("a'b").is_err());
        assert!(f.check_user_name(&"a".repeat(17)).is_err());
        assert!(matches!(
            f.validate_database(&Database::new("mysql")),
            Err(GuestError::Reserved(_))
        ));
        assert!(matches!(
            f.validate_user_ref("root", "%"),
            Err(GuestError::Reserved(_))
        ));
        assert!(f.check_host("10.0.0.%").is_ok());
        assert!(f.check_host("a'b").is_err());
    }

    #[test]
    fn postgres_rules() {
        let f = Flavor::Postgres;
        assert!(f.check_db_name("we\"ird; db").is_ok());
        assert!(f.check_db_name(&"a".repeat(64)).is_err());
        assert!(matches!(
            f.validate_database(&Database::new("template1")),
            Err(GuestError::Reserved(_))
        ));
        assert!(matches!(
            f.validate_user_ref("postgres", "%"),
            Err(GuestError::Reserved(_))
        ));
        assert!(f.check_host("10.0.0.1").is_err());
    }

    #[test]
    fn batch_duplicates_refused() {
        let dbs = vec![Database::new("a"), Database::new("a")];
        assert!(validate_databases(Flavor::Mysql, &dbs).is_err());
    }
}
