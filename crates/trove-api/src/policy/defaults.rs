//! Trove's default policy rules, and the sample policy file made from them.
//!
//! Every rule Trove registers in code is listed here with its default check
//! string, a description and the API calls it guards. Rule names and check
//! strings must stay exactly Trove's: operators' existing `policy.yaml` files
//! refer to them by name. The table drives both enforcement (rules absent from
//! the policy file take these defaults) and [`sample_policy_yaml`].

use std::fmt::Write as _;

/// One registered rule with its default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleDefault {
    /// Rule name, e.g. `instance:create`.
    pub name: &'static str,
    /// Default check string.
    pub check_str: &'static str,
    /// What the rule decides, for operators reading the sample file.
    pub description: &'static str,
    /// `(method, path)` of the API calls checked against this rule; paths are
    /// written the way Trove's sample policy writes them.
    pub operations: &'static [(&'static str, &'static str)],
}

const OWNER: &str = "rule:admin_or_owner";
const ADMIN: &str = "rule:admin";
const ANYONE: &str = "";

macro_rules! rule {
    ($name:expr, $check:expr, $desc:expr $(, ($m:expr, $p:expr))* $(,)?) => {
        RuleDefault { name: $name, check_str: $check, description: $desc, operations: &[$(($m, $p)),*] }
    };
}

/// Every rule registered by Trove, base rules first, in the order of
/// Trove's sample policy file.
pub static DEFAULT_RULES: &[RuleDefault] = &[
    // Base rules.
    rule!("admin", "role:admin or is_admin:True", "Passes for administrators: the admin role or an admin request context."),
    rule!("admin_or_owner", "rule:admin or project_id:%(tenant)s", "Passes for administrators and for members of the project that owns the target."),
    rule!("default", "rule:admin_or_owner", "Used for any rule that is neither registered nor set in the policy file."),
    rule!("context_is_admin", "role:admin", "Decides whether a request runs with administrator rights (is_admin)."),
    // Instances.
    rule!("instance:create", OWNER, "Create a database instance.", ("POST", "/v1.0/{account_id}/instances")),
    rule!("instance:delete", OWNER, "Delete a database instance.", ("DELETE", "/v1.0/{account_id}/instances/{instance_id}")),
    rule!("instance:force_delete", OWNER, "Forcibly delete a database instance (reset_status with force_delete).", ("POST", "/v1.0/{account_id}/instances/{instance_id}/action")),
    rule!("instance:index", OWNER, "List database instances.", ("GET", "/v1.0/{account_id}/instances")),
    rule!("instance:detail", OWNER, "List database instances with details.", ("GET", "/v1.0/{account_id}/instances/detail")),
    rule!("instance:show", OWNER, "Show one database instance.", ("GET", "/v1.0/{account_id}/instances/{instance_id}")),
    rule!("instance:update", OWNER, "Update a database instance: attach or detach a configuration group, rename, upgrade, manage replication.", ("PUT", "/v1.0/{account_id}/instances/{instance_id}"), ("PATCH", "/v1.0/{account_id}/instances/{instance_id}")),
    rule!("instance:edit", OWNER, "Edit a database instance (registered for PATCH; PATCH is checked against instance:update).", ("PATCH", "/v1.0/{account_id}/instances/{instance_id}")),
    rule!("instance:restart", OWNER, "Restart the database service of an instance.", ("POST", "/v1.0/{account_id}/instances/{instance_id}/action (restart)")),
    rule!("instance:resize_volume", OWNER, "Grow the data volume of an instance.", ("POST", "/v1.0/{account_id}/instances/{instance_id}/action (resize)")),
    rule!("instance:resize_flavor", OWNER, "Move an instance to another flavor.", ("POST", "/v1.0/{account_id}/instances/{instance_id}/action (resize)")),
    rule!("instance:reset_status", ADMIN, "Reset the task and service status of an instance.", ("POST", "/v1.0/{account_id}/instances/{instance_id}/action (reset_status)")),
    rule!("instance:promote_to_replica_source", OWNER, "Promote a replica to be the new replication source.", ("POST", "/v1.0/{account_id}/instances/{instance_id}/action (promote_to_replica_source)")),
    rule!("instance:eject_replica_source", OWNER, "Eject the current replication source and elect a new one.", ("POST", "/v1.0/{account_id}/instances/{instance_id}/action (eject_replica_source)")),
    rule!("instance:configuration", OWNER, "Show the effective configuration values of an instance.", ("GET", "/v1.0/{account_id}/instances/{instance_id}/configuration")),
    rule!("instance:guest_log_list", OWNER, "List the guest logs of an instance.", ("GET", "/v1.0/{account_id}/instances/{instance_id}/log")),
    rule!("instance:backups", OWNER, "List the backups of an instance.", ("GET", "/v1.0/{account_id}/instances/{instance_id}/backups")),
    rule!("instance:module_list", OWNER, "List the modules applied to an instance.", ("GET", "/v1.0/{account_id}/instances/{instance_id}/modules")),
    rule!("instance:module_apply", OWNER, "Apply modules to an instance.", ("POST", "/v1.0/{account_id}/instances/{instance_id}/modules")),
    rule!("instance:module_remove", OWNER, "Remove a module from an instance.", ("DELETE", "/v1.0/{account_id}/instances/{instance_id}/modules/{module_id}")),
    // Databases.
    rule!("instance:extension:database:create", OWNER, "Create databases on an instance.", ("POST", "/v1.0/{account_id}/instances/{instance_id}/databases")),
    rule!("instance:extension:database:delete", OWNER, "Drop a database on an instance.", ("DELETE", "/v1.0/{account_id}/instances/{instance_id}/databases/{database}")),
    rule!("instance:extension:database:index", OWNER, "List the databases of an instance.", ("GET", "/v1.0/{account_id}/instances/{instance_id}/databases")),
    rule!("instance:extension:database:show", OWNER, "Show one database of an instance.", ("GET", "/v1.0/{account_id}/instances/{instance_id}/databases/{database}")),
    // Users and their access.
    rule!("instance:extension:user:create", OWNER, "Create database users on an instance.", ("POST", "/v1.0/{account_id}/instances/{instance_id}/users")),
    rule!("instance:extension:user:delete", OWNER, "Drop a database user on an instance.", ("DELETE", "/v1.0/{account_id}/instances/{instance_id}/users/{user}")),
    rule!("instance:extension:user:index", OWNER, "List the database users of an instance.", ("GET", "/v1.0/{account_id}/instances/{instance_id}/users")),
    rule!("instance:extension:user:show", OWNER, "Show one database user of an instance.", ("GET", "/v1.0/{account_id}/instances/{instance_id}/users/{user}")),
    rule!("instance:extension:user:update", OWNER, "Change the name, host or password of a database user.", ("PUT", "/v1.0/{account_id}/instances/{instance_id}/users/{user}")),
    rule!("instance:extension:user:update_all", OWNER, "Change the passwords of several database users.", ("PUT", "/v1.0/{account_id}/instances/{instance_id}/users")),
    rule!("instance:extension:user_access:update", OWNER, "Grant a database user access to databases.", ("PUT", "/v1.0/{account_id}/instances/{instance_id}/users/{user}/databases")),
    rule!("instance:extension:user_access:delete", OWNER, "Revoke a database user's access to a database.", ("DELETE", "/v1.0/{account_id}/instances/{instance_id}/users/{user}/databases/{database}")),
    rule!("instance:extension:user_access:index", OWNER, "List the databases a database user can access.", ("GET", "/v1.0/{account_id}/instances/{instance_id}/users/{user}/databases")),
    // Root.
    rule!("instance:extension:root:create", OWNER, "Enable the root user of an instance.", ("POST", "/v1.0/{account_id}/instances/{instance_id}/root")),
    rule!("instance:extension:root:delete", OWNER, "Disable the root user of an instance.", ("DELETE", "/v1.0/{account_id}/instances/{instance_id}/root")),
    rule!("instance:extension:root:index", OWNER, "Show whether root was ever enabled on an instance.", ("GET", "/v1.0/{account_id}/instances/{instance_id}/root")),
    rule!("cluster:extension:root:create", OWNER, "Enable the root user of a cluster.", ("POST", "/v1.0/{account_id}/clusters/{cluster}/root")),
    rule!("cluster:extension:root:delete", OWNER, "Disable the root user of a cluster.", ("DELETE", "/v1.0/{account_id}/clusters/{cluster}/root")),
    rule!("cluster:extension:root:index", OWNER, "Show whether root was ever enabled on a cluster.", ("GET", "/v1.0/{account_id}/clusters/{cluster}/root")),
    // Backups.
    rule!("backup:create", OWNER, "Create a backup of an instance.", ("POST", "/v1.0/{account_id}/backups")),
    rule!("backup:delete", OWNER, "Delete a backup.", ("DELETE", "/v1.0/{account_id}/backups/{backup}")),
    rule!("backup:index", OWNER, "List backups.", ("GET", "/v1.0/{account_id}/backups")),
    rule!("backup:index:all_projects", "role:admin", "List backups of all projects, or of another project.", ("GET", "/v1.0/{account_id}/backups?all_projects")),
    rule!("backup:show", OWNER, "Show one backup.", ("GET", "/v1.0/{account_id}/backups/{backup}")),
    // Backup strategies.
    rule!("backup_strategy:create", OWNER, "Create a backup strategy.", ("POST", "/v1.0/{account_id}/backup_strategies")),
    rule!("backup_strategy:index", OWNER, "List backup strategies.", ("GET", "/v1.0/{account_id}/backup_strategies")),
    rule!("backup_strategy:delete", OWNER, "Delete backup strategies.", ("DELETE", "/v1.0/{account_id}/backup_strategies")),
    // Configuration groups.
    rule!("configuration:create", OWNER, "Create a configuration group.", ("POST", "/v1.0/{account_id}/configurations")),
    rule!("configuration:delete", OWNER, "Delete a configuration group.", ("DELETE", "/v1.0/{account_id}/configurations/{config}")),
    rule!("configuration:index", OWNER, "List configuration groups.", ("GET", "/v1.0/{account_id}/configurations")),
    rule!("configuration:show", OWNER, "Show one configuration group.", ("GET", "/v1.0/{account_id}/configurations/{config}")),
    rule!("configuration:instances", OWNER, "List the instances that use a configuration group.", ("GET", "/v1.0/{account_id}/configurations/{config}/instances")),
    rule!("configuration:update", OWNER, "Replace the values of a configuration group.", ("PUT", "/v1.0/{account_id}/configurations/{config}")),
    rule!("configuration:edit", OWNER, "Change some values of a configuration group.", ("PATCH", "/v1.0/{account_id}/configurations/{config}")),
    // Configuration parameters.
    rule!("configuration-parameter:index", OWNER, "List the configuration parameters of a datastore version.", ("GET", "/v1.0/{account_id}/datastores/{datastore}/versions/{version}/parameters")),
    rule!("configuration-parameter:show", OWNER, "Show one configuration parameter of a datastore version.", ("GET", "/v1.0/{account_id}/datastores/{datastore}/versions/{version}/parameters/{param}")),
    rule!("configuration-parameter:index_by_version", OWNER, "List the configuration parameters of a datastore version given by id.", ("GET", "/v1.0/{account_id}/datastores/versions/{version}/parameters")),
    rule!("configuration-parameter:show_by_version", OWNER, "Show one configuration parameter of a datastore version given by id.", ("GET", "/v1.0/{account_id}/datastores/versions/{version}/parameters/{param}")),
    // Datastores.
    rule!("datastore:index", ANYONE, "List datastores.", ("GET", "/v1.0/{account_id}/datastores")),
    rule!("datastore:show", ANYONE, "Show one datastore.", ("GET", "/v1.0/{account_id}/datastores/{datastore}")),
    rule!("datastore:delete", ADMIN, "Delete a datastore.", ("DELETE", "/v1.0/{account_id}/datastores/{datastore}")),
    rule!("datastore:version_show", ANYONE, "Show one version of a datastore.", ("GET", "/v1.0/{account_id}/datastores/{datastore}/versions/{version}")),
    rule!("datastore:version_show_by_uuid", ANYONE, "Show one datastore version given by id.", ("GET", "/v1.0/{account_id}/datastores/versions/{version}")),
    rule!("datastore:version_index", ANYONE, "List the versions of a datastore.", ("GET", "/v1.0/{account_id}/datastores/{datastore}/versions")),
    rule!("datastore:list_associated_flavors", ANYONE, "List the flavors allowed for a datastore version.", ("GET", "/v1.0/{account_id}/datastores/{datastore}/versions/{version}/flavors")),
    rule!("datastore:list_associated_volume_types", ANYONE, "List the volume types allowed for a datastore version.", ("GET", "/v1.0/{account_id}/datastores/{datastore}/versions/{version}/volume-types")),
    // Flavors and limits.
    rule!("flavor:index", ANYONE, "List flavors.", ("GET", "/v1.0/{account_id}/flavors")),
    rule!("flavor:show", ANYONE, "Show one flavor.", ("GET", "/v1.0/{account_id}/flavors/{flavor}")),
    rule!("limits:index", OWNER, "Show the absolute and rate limits of the project.", ("GET", "/v1.0/{account_id}/limits")),
    // Modules.
    rule!("module:create", OWNER, "Create a module.", ("POST", "/v1.0/{account_id}/modules")),
    rule!("module:delete", OWNER, "Delete a module.", ("DELETE", "/v1.0/{account_id}/modules/{module}")),
    rule!("module:index", OWNER, "List modules.", ("GET", "/v1.0/{account_id}/modules")),
    rule!("module:show", OWNER, "Show one module.", ("GET", "/v1.0/{account_id}/modules/{module}")),
    rule!("module:instances", OWNER, "List the instances a module is applied to.", ("GET", "/v1.0/{account_id}/modules/{module}/instances")),
    rule!("module:update", OWNER, "Update a module.", ("PUT", "/v1.0/{account_id}/modules/{module}")),
    rule!("module:reapply", OWNER, "Apply a module again to the instances that have it.", ("PUT", "/v1.0/{account_id}/modules/{module}/instances")),
    // Clusters.
    rule!("cluster:create", OWNER, "Create a cluster.", ("POST", "/v1.0/{account_id}/clusters")),
    rule!("cluster:delete", OWNER, "Delete a cluster.", ("DELETE", "/v1.0/{account_id}/clusters/{cluster}")),
    rule!("cluster:force_delete", OWNER, "Forcibly delete a cluster (reset-status with force).", ("POST", "/v1.0/{account_id}/clusters/{cluster}")),
    rule!("cluster:index", OWNER, "List clusters.", ("GET", "/v1.0/{account_id}/clusters")),
    rule!("cluster:show", OWNER, "Show one cluster.", ("GET", "/v1.0/{account_id}/clusters/{cluster}")),
    rule!("cluster:show_instance", OWNER, "Show one instance of a cluster.", ("GET", "/v1.0/{account_id}/clusters/{cluster}/instances/{instance}")),
    rule!("cluster:action", OWNER, "Run an action on a cluster: grow, shrink, upgrade, restart...", ("POST", "/v1.0/{account_id}/clusters/{cluster}")),
    rule!("cluster:reset-status", ADMIN, "Reset the task status of a cluster and its instances.", ("POST", "/v1.0/{account_id}/clusters/{cluster} (reset-status)")),
];

/// The registered default for `name`, if Trove registers that rule.
pub fn find_default(name: &str) -> Option<&'static RuleDefault> {
    DEFAULT_RULES.iter().find(|r| r.name == name)
}

/// Quotes `s` as a YAML double-quoted scalar (JSON string syntax is valid
/// YAML).
fn yaml_quote(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

/// Wraps `text` at about 70 columns.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// A sample `policy.yaml` listing every rule with its default, all
/// commented out, in the layout of oslo's policy generator: description,
/// the API calls, then `#"name": "check string"`. Loading it unchanged
/// gives the defaults; uncommenting a line makes it an override.
pub fn sample_policy_yaml() -> String {
    let mut out = String::new();
    for rule in DEFAULT_RULES {
        for line in wrap(rule.description, 70) {
            let _ = writeln!(out, "# {line}");
        }
        for (method, path) in rule.operations {
            let _ = writeln!(out, "# {method:<7} {path}");
        }
        let _ = writeln!(
            out,
            "#{}: {}",
            yaml_quote(rule.name),
            yaml_quote(rule.check_str)
        );
        out.push('\n');
    }
    out
}
