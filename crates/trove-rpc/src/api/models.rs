//! Serialized Python models as they travel in RPC arguments: the private attribute
//! dicts of Trove's schema and user models (hence the leading underscores).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A database (schema) model: `{"_name", "_character_set", "_collate"}`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct DatabaseModel {
    /// Database name.
    #[serde(rename = "_name")]
    pub name: String,
    /// Character set, if given.
    #[serde(rename = "_character_set", default)]
    pub character_set: Option<String>,
    /// Collation, if given.
    #[serde(rename = "_collate", default)]
    pub collate: Option<String>,
    /// Other keys, kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A user model: `{"_name", "_password", "_host", "_databases", "_is_root"}`.
#[derive(Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct UserModel {
    /// User name.
    #[serde(rename = "_name")]
    pub name: String,
    /// Password (secret; not printed by `Debug`).
    #[serde(rename = "_password", default)]
    pub password: Option<String>,
    /// Host pattern (default `%`).
    #[serde(rename = "_host", default)]
    pub host: Option<String>,
    /// Databases the user may access.
    #[serde(rename = "_databases", default)]
    pub databases: Vec<DatabaseModel>,
    /// Whether this is the root user.
    #[serde(rename = "_is_root", default)]
    pub is_root: bool,
    /// Other keys, kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl std::fmt::Debug for UserModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserModel")
            .field("name", &self.name)
            .field("host", &self.host)
            .field("databases", &self.databases)
            .field("is_root", &self.is_root)
            .finish_non_exhaustive()
    }
}
