//! Trove's default rules: the table itself, the base rules, a representative
//! set of resource rules for an admin, an owner and a member of another
//! project, the fallback to `default`, reference problems, the 403 fault
//! and the sample policy file.

use std::collections::BTreeMap;

use trove_api::policy::{
    parse_check_str, sample_policy_yaml, Credentials, Enforcer, PolicyDenied, PolicyWarning,
    RuleSource, Target, DEFAULT_RULES,
};

const OWNER: &str = "rule:admin_or_owner";

/// Every rule and default of api-policy.md, written out independently of the
/// table in the code.
fn expected_defaults() -> BTreeMap<&'static str, &'static str> {
    let owner = [
        "instance:create",
        "instance:delete",
        "instance:force_delete",
        "instance:index",
        "instance:detail",
        "instance:show",
        "instance:update",
        "instance:edit",
        "instance:restart",
        "instance:resize_volume",
        "instance:resize_flavor",
        "instance:promote_to_replica_source",
        "instance:eject_replica_source",
        "instance:configuration",
        "instance:guest_log_list",
        "instance:backups",
        "instance:module_list",
        "instance:module_apply",
        "instance:module_remove",
        "instance:extension:database:create",
        "instance:extension:database:delete",
        "instance:extension:database:index",
        "instance:extension:database:show",
        "instance:extension:user:create",
        "instance:extension:user:delete",
        "instance:extension:user:index",
        "instance:extension:user:show",
        "instance:extension:user:update",
        "instance:extension:user:update_all",
        "instance:extension:user_access:update",
        "instance:extension:user_access:delete",
        "instance:extension:user_access:index",
        "instance:extension:root:create",
        "instance:extension:root:delete",
        "instance:extension:root:index",
        "cluster:extension:root:create",
        "cluster:extension:root:delete",
        "cluster:extension:root:index",
        "backup:create",
        "backup:delete",
        "backup:index",
        "backup:show",
        "backup_strategy:create",
        "backup_strategy:index",
        "backup_strategy:delete",
        "configuration:create",
        "configuration:delete",
        "configuration:index",
        "configuration:show",
        "configuration:instances",
        "configuration:update",
        "configuration:edit",
        "configuration-parameter:index",
        "configuration-parameter:show",
        "configuration-parameter:index_by_version",
        "configuration-parameter:show_by_version",
        "limits:index",
        "module:create",
        "module:delete",
        "module:index",
        "module:show",
        "module:instances",
        "module:update",
        "module:reapply",
        "cluster:create",
        "cluster:delete",
        "cluster:force_delete",
        "cluster:index",
        "cluster:show",
        "cluster:show_instance",
        "cluster:action",
    ];
    let anyone = [
        "datastore:index",
        "datastore:show",
        "datastore:version_show",
        "datastore:version_show_by_uuid",
        "datastore:version_index",
        "datastore:list_associated_flavors",
        "datastore:list_associated_volume_types",
        "flavor:index",
        "flavor:show",
    ];
    let mut m: BTreeMap<&str, &str> = BTreeMap::new();
    m.extend(owner.iter().map(|n| (*n, OWNER)));
    m.extend(anyone.iter().map(|n| (*n, "")));
    m.extend([
        ("context_is_admin", "role:admin"),
        ("admin", "role:admin or is_admin:True"),
        ("admin_or_owner", "rule:admin or project_id:%(tenant)s"),
        ("default", "rule:admin_or_owner"),
        ("instance:reset_status", "rule:admin"),
        ("backup:index:all_projects", "role:admin"),
        ("datastore:delete", "rule:admin"),
        ("cluster:reset-status", "rule:admin"),
    ]);
    m
}

#[test]
fn default_table_matches_trove() {
    let actual: BTreeMap<&str, &str> = DEFAULT_RULES
        .iter()
        .map(|r| (r.name, r.check_str))
        .collect();
    assert_eq!(actual.len(), DEFAULT_RULES.len(), "duplicate rule names");
    assert_eq!(actual, expected_defaults());
    for r in DEFAULT_RULES {
        assert!(!r.description.is_empty(), "{} has no description", r.name);
        parse_check_str(r.name, r.check_str).unwrap();
    }
    let e = Enforcer::with_defaults();
    assert!(
        e.check_references().is_empty(),
        "{:?}",
        e.check_references()
    );
    let rules = e.rules();
    assert_eq!(
        rules.rule("instance:delete").unwrap().1,
        RuleSource::Default
    );
}

fn admin() -> Credentials {
    Enforcer::with_defaults().credentials("admin-project", "admin-user", vec!["admin".into()])
}

fn owner() -> Credentials {
    Enforcer::with_defaults().credentials("p1", "alice", vec!["member".into()])
}

fn stranger() -> Credentials {
    Enforcer::with_defaults().credentials("p2", "bob", vec!["member".into()])
}

#[test]
fn context_is_admin_decides_is_admin() {
    let e = Enforcer::with_defaults();
    assert!(admin().is_admin);
    assert!(!owner().is_admin);
    assert!(
        e.is_admin("p", "u", &["Admin".into()]),
        "role names ignore case"
    );
    assert!(!e.is_admin("p", "u", &[]));
    let target = Target::tenant("p");
    assert!(e.check("context_is_admin", &admin(), &target));
    assert!(!e.check("context_is_admin", &owner(), &target));
    // An override of context_is_admin changes who is an administrator.
    let e = Enforcer::with_overrides([("context_is_admin", "role:cloud_admin")]).unwrap();
    assert!(!e.credentials("p", "u", vec!["admin".into()]).is_admin);
    assert!(e.credentials("p", "u", vec!["cloud_admin".into()]).is_admin);
    // The deprecated admin_roles option replaces the rule.
    let e = Enforcer::with_defaults().with_admin_roles(vec!["DBA".into()]);
    assert!(e.credentials("p", "u", vec!["dba".into()]).is_admin);
    assert!(!e.credentials("p", "u", vec!["admin".into()]).is_admin);
}

#[test]
fn admin_rule() {
    let e = Enforcer::with_defaults();
    let t = Target::tenant("p1");
    assert!(e.check("admin", &admin(), &t));
    assert!(!e.check("admin", &owner(), &t));
    // An admin request context passes even without the role.
    let mut c = owner();
    c.is_admin = true;
    assert!(e.check("admin", &c, &t));
}

#[test]
fn admin_or_owner_and_default_rules() {
    let e = Enforcer::with_defaults();
    for rule in ["admin_or_owner", "default"] {
        assert!(e.check(rule, &owner(), &Target::tenant("p1")), "{rule}");
        assert!(!e.check(rule, &stranger(), &Target::tenant("p1")), "{rule}");
        assert!(e.check(rule, &admin(), &Target::tenant("p1")), "{rule}");
        // Without a tenant in the target, only an admin passes.
        assert!(!e.check(rule, &owner(), &Target::default()), "{rule}");
        assert!(e.check(rule, &admin(), &Target::default()), "{rule}");
    }
}

#[test]
fn representative_trove_rules() {
    let e = Enforcer::with_defaults();
    let on_p1 = Target::tenant("p1");
    // (rule, admin, owner, member of another project), checked against a
    // resource owned by p1.
    let cases = [
        ("instance:show", true, true, false),
        ("instance:delete", true, true, false),
        ("instance:restart", true, true, false),
        ("instance:reset_status", true, false, false),
        ("instance:extension:user:create", true, true, false),
        ("instance:extension:root:create", true, true, false),
        ("backup:delete", true, true, false),
        ("backup:index:all_projects", true, false, false),
        ("configuration:edit", true, true, false),
        ("module:update", true, true, false),
        ("cluster:action", true, true, false),
        ("cluster:reset-status", true, false, false),
        ("datastore:delete", true, false, false),
        ("datastore:index", true, true, true),
        ("datastore:version_show", true, true, true),
        ("flavor:show", true, true, true),
    ];
    for (rule, a, o, s) in cases {
        assert_eq!(e.check(rule, &admin(), &on_p1), a, "{rule} for an admin");
        assert_eq!(e.check(rule, &owner(), &on_p1), o, "{rule} for the owner");
        assert_eq!(
            e.check(rule, &stranger(), &on_p1),
            s,
            "{rule} for another project"
        );
    }
    // Tenant-level checks use the caller's own project: admin_or_owner
    // always passes for them.
    let c = stranger();
    for rule in [
        "instance:create",
        "instance:index",
        "backup:index",
        "limits:index",
    ] {
        assert!(
            e.authorize(rule, &c, &Target::tenant(&c.project_id))
                .is_ok(),
            "{rule}"
        );
    }
}

#[test]
fn unknown_rule_falls_back_to_default() {
    let e = Enforcer::with_defaults();
    assert!(e.check("instance:no_such_call", &owner(), &Target::tenant("p1")));
    assert!(!e.check("instance:no_such_call", &stranger(), &Target::tenant("p1")));
    // ...and follows an override of `default`.
    let e = Enforcer::with_overrides([("default", "!")]).unwrap();
    assert!(!e.check("instance:no_such_call", &admin(), &Target::tenant("p1")));
    assert!(
        e.check("instance:show", &owner(), &Target::tenant("p1")),
        "registered rules keep their defaults"
    );
}

#[test]
fn overrides_in_code() {
    let e = Enforcer::with_overrides([("instance:delete", "rule:admin"), ("instance:show", "@")])
        .unwrap();
    let t = Target::tenant("p1");
    assert!(e.check("instance:delete", &admin(), &t));
    assert!(!e.check("instance:delete", &owner(), &t));
    assert!(
        e.check("instance:show", &stranger(), &t),
        "@ allows everyone"
    );
    let e = Enforcer::with_overrides([("flavor:index", "!")]).unwrap();
    assert!(
        !e.check("flavor:index", &admin(), &t),
        "! denies even admins"
    );
    let bad = Enforcer::with_overrides([("instance:show", "role:a or")]).unwrap_err();
    assert!(bad.to_string().contains("instance:show"), "{bad}");
}

#[test]
fn undefined_references_and_cycles() {
    let e = Enforcer::with_overrides([
        ("instance:show", "rule:no_such_rule"),
        ("instance:delete", "rule:loop_a"),
        ("loop_a", "rule:loop_b"),
        ("loop_b", "not rule:loop_a"),
    ])
    .unwrap();
    let warnings = e.check_references();
    assert!(warnings.contains(&PolicyWarning::UndefinedReference {
        rule: "instance:show".into(),
        missing: "no_such_rule".into()
    }));
    assert!(warnings.contains(&PolicyWarning::Cycle {
        rule: "loop_a".into()
    }));
    assert!(warnings.contains(&PolicyWarning::Cycle {
        rule: "loop_b".into()
    }));
    assert!(warnings.contains(&PolicyWarning::UnregisteredOverride {
        rule: "loop_a".into()
    }));
    assert!(!warnings.contains(&PolicyWarning::Cycle {
        rule: "instance:delete".into()
    }));
    // As in oslo.policy's rule store, an undefined reference resolves to
    // `default`.
    assert!(e.check("instance:show", &owner(), &Target::tenant("p1")));
    assert!(!e.check("instance:show", &stranger(), &Target::tenant("p1")));
    // A cycle denies, even under `not`.
    assert!(!e.check("instance:delete", &admin(), &Target::tenant("p1")));
    assert!(!e.check("loop_b", &admin(), &Target::tenant("p1")));
}

#[test]
fn denial_is_trove_403_fault() {
    let e = Enforcer::with_defaults();
    let err = e
        .authorize("instance:reset_status", &owner(), &Target::tenant("p1"))
        .unwrap_err();
    assert_eq!(
        err,
        PolicyDenied {
            rule: "instance:reset_status".into()
        }
    );
    assert_eq!(
        err.to_string(),
        "Policy doesn't allow instance:reset_status to be performed."
    );
    assert_eq!(PolicyDenied::STATUS, 403);
    assert_eq!(
        err.fault_body(),
        serde_json::json!({"forbidden": {
            "code": 403,
            "message": "Policy doesn't allow instance:reset_status to be performed."
        }})
    );
    assert!(e
        .authorize("instance:reset_status", &admin(), &Target::tenant("p1"))
        .is_ok());
}

#[test]
fn sample_policy_file() {
    let sample = sample_policy_yaml();
    // Loaded as it is, everything is commented out: no overrides.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.yaml");
    std::fs::write(&path, &sample).unwrap();
    let e = Enforcer::load(&path, None).unwrap();
    assert!(e
        .rules()
        .names()
        .all(|n| e.rules().rule(n).unwrap().1 == RuleSource::Default));
    assert!(sample.contains("# Delete a database instance.\n# DELETE  /v1.0/{account_id}/instances/{instance_id}\n#\"instance:delete\": \"rule:admin_or_owner\"\n"), "{sample}");
    // Uncommented, it sets every rule to its default.
    let uncommented: String = sample
        .lines()
        .map(|l| {
            l.strip_prefix("#\"")
                .map_or(l.to_owned(), |rest| format!("\"{rest}"))
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&path, uncommented).unwrap();
    let e = Enforcer::load(&path, None).unwrap();
    let rules = e.rules();
    for d in DEFAULT_RULES {
        let (check, source) = rules.rule(d.name).unwrap();
        assert_eq!(source, RuleSource::Override, "{}", d.name);
        assert_eq!(
            *check,
            parse_check_str(d.name, d.check_str).unwrap(),
            "{}",
            d.name
        );
    }
    assert!(e.check_references().is_empty());
}
