//! Policy: who may call which API, as Trove decides it with oslo.policy.
//!
//! - [`parser`]: the check string language (`rule:`, `role:`,
//!   `project_id:%(tenant)s`, `is_admin:True`, `@`, `!`, `and`, `or`, `not`,
//!   parentheses).
//! - [`defaults`]: every rule Trove registers, with its default, and the
//!   sample `policy.yaml`.
//! - [`file`]: the operator's override file (`[oslo_policy] policy_file`,
//!   YAML or JSON).
//! - [`engine`]: the compiled rule set and its evaluation.
//!
//! The API builds one [`Enforcer`] at startup, calls
//! [`Enforcer::reload_if_changed`] once per request (one `stat` of the policy
//! file; the file is re-read only when its modification time or size
//! changed, as oslo.policy does), builds [`Credentials`] with
//! [`Enforcer::credentials`] (which decides `is_admin` through rule
//! `context_is_admin`), then calls [`Enforcer::authorize`] with a
//! [`Target`]: the caller's project for list/create calls, the owner's
//! project for calls on an existing resource. A denial is a
//! [`PolicyDenied`], which carries Trove's 403 fault body.
//!
//! Not here: the URL project check and the per-project row filter (they are
//! not policy in Trove either), scope types, which Trove does not use, and
//! `[oslo_policy] policy_dirs` (extra `policy.d` files), which is not read.

pub mod defaults;
pub mod engine;
pub mod file;
pub mod parser;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::SystemTime;

pub use defaults::{sample_policy_yaml, RuleDefault, DEFAULT_RULES};
pub use engine::{PolicyWarning, RuleSet, RuleSource};
pub use file::{resolve_policy_path, PolicyError};
pub use parser::{parse_check_str, Check, ParseError};

/// The default of `[oslo_policy] policy_file`.
pub const DEFAULT_POLICY_FILE: &str = "policy.yaml";

/// The caller, as policy checks see it (oslo's "credentials").
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    /// The token's project; also answers the `tenant` field.
    pub project_id: String,
    /// The token's user; also answers the `user` field.
    pub user_id: String,
    /// The token's role names.
    pub roles: Vec<String>,
    /// Whether the request runs with administrator rights (rule
    /// `context_is_admin`, see [`Enforcer::credentials`]).
    pub is_admin: bool,
}

impl Credentials {
    /// Credentials without administrator rights.
    pub fn new(
        project_id: impl Into<String>,
        user_id: impl Into<String>,
        roles: Vec<String>,
    ) -> Self {
        Self {
            project_id: project_id.into(),
            user_id: user_id.into(),
            roles,
            is_admin: false,
        }
    }
}

/// What a check is about (oslo's "target"): a few string keys that check
/// strings reach with `%(key)s`. Trove only ever sets `tenant`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Target<'a> {
    entries: Vec<(&'a str, &'a str)>,
}

impl<'a> Target<'a> {
    /// A target owned by `project_id` (`{"tenant": project_id}`).
    pub fn tenant(project_id: &'a str) -> Self {
        Self {
            entries: vec![("tenant", project_id)],
        }
    }

    /// Adds (or replaces) a key; keys may be dotted (`target.owner`).
    pub fn with(mut self, key: &'a str, value: &'a str) -> Self {
        match self.entries.iter_mut().find(|(k, _)| *k == key) {
            Some(entry) => entry.1 = value,
            None => self.entries.push((key, value)),
        }
        self
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&'a str> {
        self.entries
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| *v)
    }
}

/// A failed policy check: Trove's `PolicyNotAuthorized`, answered with 403.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Policy doesn't allow {rule} to be performed.")]
pub struct PolicyDenied {
    /// The rule that denied.
    pub rule: String,
}

impl PolicyDenied {
    /// The HTTP status of a denial.
    pub const STATUS: u16 = 403;

    /// Trove's fault body:
    /// `{"forbidden": {"code": 403, "message": "Policy doesn't allow <rule> to be performed."}}`.
    pub fn fault_body(&self) -> serde_json::Value {
        serde_json::json!({
            "forbidden": { "code": Self::STATUS, "message": self.to_string() }
        })
    }
}

/// Identifies one version of the policy file, to notice changes cheaply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
}

#[derive(Debug)]
struct PolicyFile {
    path: PathBuf,
    /// Stamp of the file the current rules came from (`None`: file absent).
    /// The mutex also makes concurrent reloads take turns.
    stamp: Mutex<Option<FileStamp>>,
}

/// Evaluates Trove's policy rules: the registered defaults, overridden by the
/// policy file.
///
/// Cheap to share (`Arc<Enforcer>`): checks read the current rule set through
/// a read lock held only long enough to clone an `Arc`.
///
/// ```
/// use trove_api::policy::{Enforcer, Target};
///
/// let enforcer = Enforcer::with_overrides([("instance:delete", "rule:admin")]).unwrap();
/// let member = enforcer.credentials("p1", "alice", vec!["member".into()]);
/// let denied = enforcer
///     .authorize("instance:delete", &member, &Target::tenant("p1"))
///     .unwrap_err();
/// assert_eq!(denied.to_string(), "Policy doesn't allow instance:delete to be performed.");
/// assert!(enforcer.authorize("instance:show", &member, &Target::tenant("p1")).is_ok());
/// ```
#[derive(Debug)]
pub struct Enforcer {
    /// The current rules; replaced whole on reload.
    rules: RwLock<Arc<RuleSet>>,
    file: Option<PolicyFile>,
    /// Deprecated `[DEFAULT] admin_roles`: when not empty, replaces rule
    /// `context_is_admin` in [`Enforcer::credentials`].
    admin_roles: Vec<String>,
}

fn stamp_of(path: &Path) -> std::io::Result<Option<FileStamp>> {
    match std::fs::metadata(path) {
        Ok(m) => Ok(Some(FileStamp {
            modified: m.modified().ok(),
            len: m.len(),
        })),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn log_warnings(rules: &RuleSet) {
    for w in rules.check_references() {
        tracing::warn!("{w}");
    }
}

impl Enforcer {
    /// Trove's defaults only, no policy file.
    pub fn with_defaults() -> Self {
        Self::from_rule_set(RuleSet::build(Vec::new()), None)
    }

    /// Defaults overridden by `(rule name, check string)` pairs given in
    /// code; an error names the first rule that does not parse.
    pub fn with_overrides<I, K, V>(overrides: I) -> Result<Self, PolicyError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: AsRef<str>,
    {
        let mut parsed = Vec::new();
        for (name, text) in overrides {
            let name = name.into();
            let check = parse_check_str(&name, text.as_ref())?;
            parsed.push((name, check));
        }
        let rules = RuleSet::build(parsed);
        log_warnings(&rules);
        Ok(Self::from_rule_set(rules, None))
    }

    /// Loads the defaults and the policy file `policy_file`
    /// (`[oslo_policy] policy_file`), a relative path being taken from
    /// `base_dir`, the directory of the configuration file. A missing file
    /// means defaults only (it is picked up once it appears, on
    /// [`Enforcer::reload_if_changed`]); an unreadable or malformed file, or
    /// a check string that does not parse, is an error naming the file and
    /// the rule. Undefined references and cycles are logged as warnings.
    pub fn load(policy_file: &Path, base_dir: Option<&Path>) -> Result<Self, PolicyError> {
        let path = resolve_policy_path(policy_file, base_dir);
        let stamp = stamp_of(&path).map_err(|source| PolicyError::Read {
            path: path.clone(),
            source,
        })?;
        let overrides = file::read_policy_file(&path)?;
        if overrides.is_none() {
            tracing::debug!(path = %path.display(), "policy file not found, using default rules");
        }
        let rules = RuleSet::build(overrides.unwrap_or_default());
        log_warnings(&rules);
        let file = PolicyFile {
            path,
            stamp: Mutex::new(stamp),
        };
        Ok(Self::from_rule_set(rules, Some(file)))
    }

    fn from_rule_set(rules: RuleSet, file: Option<PolicyFile>) -> Self {
        Self {
            rules: RwLock::new(Arc::new(rules)),
            file,
            admin_roles: Vec::new(),
        }
    }

    /// Sets the deprecated `admin_roles` option: when not empty, a caller is
    /// an administrator when holding any of these roles (case-insensitive),
    /// instead of when rule `context_is_admin` passes.
    pub fn with_admin_roles(mut self, admin_roles: Vec<String>) -> Self {
        self.admin_roles = admin_roles;
        self
    }

    /// The policy file this enforcer follows, if any.
    pub fn policy_path(&self) -> Option<&Path> {
        self.file.as_ref().map(|f| f.path.as_path())
    }

    /// The current rule set.
    pub fn rules(&self) -> Arc<RuleSet> {
        Arc::clone(&self.rules.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Re-reads the policy file when its modification time or size changed
    /// since it was last read (or it appeared or disappeared). Returns
    /// whether the rules were replaced.
    ///
    /// On error the previous rules stay in force, so a half-written or broken
    /// file never opens or closes the API; the caller should log the error.
    pub fn reload_if_changed(&self) -> Result<bool, PolicyError> {
        let Some(file) = &self.file else {
            return Ok(false);
        };
        let mut current = file.stamp.lock().unwrap_or_else(PoisonError::into_inner);
        let now = stamp_of(&file.path).map_err(|source| PolicyError::Read {
            path: file.path.clone(),
            source,
        })?;
        if now == *current {
            return Ok(false);
        }
        let overrides = file::read_policy_file(&file.path)?;
        let rules = RuleSet::build(overrides.unwrap_or_default());
        log_warnings(&rules);
        *self.rules.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(rules);
        *current = now;
        tracing::info!(path = %file.path.display(), "policy file reloaded");
        Ok(true)
    }

    /// Whether `rule` allows the call. A rule that is neither registered
    /// nor in the policy file is evaluated as rule `default`.
    pub fn check(&self, rule: &str, creds: &Credentials, target: &Target<'_>) -> bool {
        self.rules().check(rule, creds, target)
    }

    /// Checks `rule`; a denial carries Trove's 403 message and body.
    pub fn authorize(
        &self,
        rule: &str,
        creds: &Credentials,
        target: &Target<'_>,
    ) -> Result<(), PolicyDenied> {
        if self.check(rule, creds, target) {
            Ok(())
        } else {
            tracing::debug!(rule, project_id = %creds.project_id, "policy denied");
            Err(PolicyDenied {
                rule: rule.to_owned(),
            })
        }
    }

    /// Whether a caller with these roles is an administrator: rule
    /// `context_is_admin` (default `role:admin`), or the `admin_roles`
    /// option when set.
    pub fn is_admin(&self, project_id: &str, user_id: &str, roles: &[String]) -> bool {
        self.decide_is_admin(&Credentials::new(project_id, user_id, roles.to_vec()))
    }

    /// Credentials of a request, with `is_admin` decided by
    /// [`Enforcer::is_admin`].
    pub fn credentials(
        &self,
        project_id: impl Into<String>,
        user_id: impl Into<String>,
        roles: Vec<String>,
    ) -> Credentials {
        let mut creds = Credentials::new(project_id, user_id, roles);
        creds.is_admin = self.decide_is_admin(&creds);
        creds
    }

    /// `is_admin` for `creds` (whose own `is_admin` is ignored by the
    /// default rule, which only looks at roles).
    fn decide_is_admin(&self, creds: &Credentials) -> bool {
        if !self.admin_roles.is_empty() {
            return creds.roles.iter().any(|r| {
                self.admin_roles
                    .iter()
                    .any(|a| a.eq_ignore_ascii_case(r) || a.to_lowercase() == r.to_lowercase())
            });
        }
        let target = Target::tenant(&creds.project_id)
            .with("project_id", &creds.project_id)
            .with("user_id", &creds.user_id);
        self.check("context_is_admin", creds, &target)
    }

    /// Undefined `rule:` references, reference cycles and overrides of
    /// unregistered rules in the current rules (also logged on each load).
    pub fn check_references(&self) -> Vec<PolicyWarning> {
        self.rules().check_references()
    }
}
