//! The policy override file: YAML and JSON, path resolution, errors that
//! name the file and the rule, and reloading when the file changes.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use trove_api::policy::{Credentials, Enforcer, PolicyError, RuleSource, Target};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn admin() -> Credentials {
    Enforcer::with_defaults().credentials("admin-project", "root", vec!["admin".into()])
}

fn member(project: &str) -> Credentials {
    Credentials::new(project, "alice", vec!["member".into()])
}

/// Writes `text` to `path` and moves its modification time to `secs` after
/// the epoch, so that a change is seen whatever the file system's timestamp
/// resolution.
fn write_at(path: &Path, text: &str, secs: u64) {
    std::fs::write(path, text).unwrap();
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
        .unwrap();
}

#[test]
fn yaml_override_makes_delete_admin_only() {
    let e = Enforcer::load(&fixture("policy-admin-delete.yaml"), None).unwrap();
    let t = Target::tenant("p1");
    let err = e
        .authorize("instance:delete", &member("p1"), &t)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "Policy doesn't allow instance:delete to be performed."
    );
    assert!(e.authorize("instance:delete", &admin(), &t).is_ok());
    // Rules the file does not mention keep their defaults.
    assert!(e.authorize("instance:show", &member("p1"), &t).is_ok());
    assert_eq!(
        e.rules().rule("instance:show").unwrap().1,
        RuleSource::Default
    );
    assert_eq!(
        e.rules().rule("instance:delete").unwrap().1,
        RuleSource::Override
    );
    // A role-and-project rule.
    let dba = Credentials::new("p1", "carol", vec!["DBAdmin".into()]);
    assert!(e.check("backup:create", &dba, &t));
    assert!(!e.check("backup:create", &member("p1"), &t));
    assert!(!e.check("backup:create", &dba, &Target::tenant("p2")));
    // Unquoted YAML works too: flavor:index now needs the project.
    assert!(!e.check("flavor:index", &member("p2"), &t));
    assert!(
        e.check_references().is_empty(),
        "{:?}",
        e.check_references()
    );
}

#[test]
fn json_override_with_list_form() {
    let e = Enforcer::load(&fixture("policy-admin-delete.json"), None).unwrap();
    let t = Target::tenant("p1");
    assert!(!e.check("instance:delete", &member("p1"), &t));
    assert!(e.check("instance:delete", &admin(), &t));
    assert!(
        !e.check("datastore:index", &admin(), &t),
        "\"!\" denies everyone"
    );
    // [["role:operator", "project_id:%(tenant)s"], ["rule:admin"]]
    let op = Credentials::new("p1", "dave", vec!["operator".into()]);
    assert!(e.check("instance:restart", &op, &t));
    assert!(!e.check("instance:restart", &op, &Target::tenant("p2")));
    assert!(!e.check("instance:restart", &member("p1"), &t));
    assert!(e.check("instance:restart", &admin(), &Target::tenant("p2")));
}

#[test]
fn either_syntax_under_either_name() {
    let dir = tempfile::tempdir().unwrap();
    let yaml_named = dir.path().join("policy.yaml");
    std::fs::write(&yaml_named, r#"{"instance:delete": "rule:admin"}"#).unwrap();
    let json_named = dir.path().join("policy.json");
    std::fs::write(&json_named, "instance:delete: rule:admin\n").unwrap();
    for path in [yaml_named, json_named] {
        let e = Enforcer::load(&path, None).unwrap();
        assert!(
            !e.check("instance:delete", &member("p1"), &Target::tenant("p1")),
            "{}",
            path.display()
        );
    }
}

#[test]
fn relative_path_is_taken_from_the_config_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("trove")).unwrap();
    std::fs::write(
        dir.path().join("trove/policy.yaml"),
        "\"instance:show\": \"!\"\n",
    )
    .unwrap();
    let conf_dir = dir.path().join("trove");
    let e = Enforcer::load(Path::new("policy.yaml"), Some(&conf_dir)).unwrap();
    assert_eq!(
        e.policy_path(),
        Some(conf_dir.join("policy.yaml").as_path())
    );
    assert!(!e.check("instance:show", &admin(), &Target::tenant("p1")));
    // An absolute path ignores the base directory.
    let abs = conf_dir.join("policy.yaml");
    let e = Enforcer::load(&abs, Some(Path::new("/nonexistent"))).unwrap();
    assert_eq!(e.policy_path(), Some(abs.as_path()));
}

#[test]
fn missing_or_empty_file_means_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let e = Enforcer::load(Path::new("policy.yaml"), Some(dir.path())).unwrap();
    assert!(e.check("instance:delete", &member("p1"), &Target::tenant("p1")));
    assert!(!e.check(
        "instance:reset_status",
        &member("p1"),
        &Target::tenant("p1")
    ));
    for text in ["", "# only comments\n", "---\n", "{}"] {
        let path = dir.path().join("empty.yaml");
        std::fs::write(&path, text).unwrap();
        let e = Enforcer::load(&path, None).unwrap();
        assert!(
            e.rules()
                .names()
                .all(|n| e.rules().rule(n).unwrap().1 == RuleSource::Default),
            "{text:?}"
        );
    }
}

#[test]
fn bad_check_string_names_file_and_rule() {
    let path = fixture("policy-bad-rule.yaml");
    let err = Enforcer::load(&path, None).unwrap_err();
    let PolicyError::Rule { path: p, source } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(p, &path);
    assert_eq!(source.rule, "instance:show");
    assert_eq!(source.column, 15);
    let text = err.to_string();
    assert!(text.contains("policy-bad-rule.yaml"), "{text}");
    assert!(text.contains("instance:show"), "{text}");
}

#[test]
fn malformed_file_names_the_file() {
    let path = fixture("policy-bad-syntax.json");
    let err = Enforcer::load(&path, None).unwrap_err();
    assert!(matches!(err, PolicyError::Format { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("policy-bad-syntax.json") && text.contains("not valid JSON"),
        "{text}"
    );

    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("list.yaml", "- a\n- b\n", "expected a mapping"),
        (
            "bool.yaml",
            "\"instance:show\": true\n",
            "rule \"instance:show\": expected a check string",
        ),
        (
            "nested.json",
            r#"{"instance:show": {"a": "b"}}"#,
            "found a mapping",
        ),
        (
            "listnum.json",
            r#"{"instance:show": [[1]]}"#,
            "list items must be strings",
        ),
        (
            "broken.yaml",
            "\"instance:show\": [unclosed\n",
            "not valid YAML",
        ),
        (
            "http.yaml",
            "\"instance:show\": \"http://example.com/check\"\n",
            "http",
        ),
    ];
    for (name, text, want) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let err = Enforcer::load(&path, None).unwrap_err().to_string();
        assert!(err.contains(name) && err.contains(want), "{name}: {err}");
    }
}

#[test]
fn null_value_allows_like_oslo() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.yaml");
    std::fs::write(&path, "\"instance:reset_status\":\n").unwrap();
    let e = Enforcer::load(&path, None).unwrap();
    assert!(e.check(
        "instance:reset_status",
        &member("p2"),
        &Target::tenant("p1")
    ));
}

#[test]
fn reloads_when_the_file_changes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.yaml");
    let t = Target::tenant("p1");
    write_at(
        &path,
        "\"instance:delete\": \"rule:admin_or_owner\"\n",
        1_000,
    );
    let e = Enforcer::load(&path, None).unwrap();
    assert!(e.check("instance:delete", &member("p1"), &t));
    assert!(
        !e.reload_if_changed().unwrap(),
        "unchanged file is not re-read"
    );

    write_at(&path, "\"instance:delete\": \"rule:admin\"\n", 2_000);
    assert!(e.reload_if_changed().unwrap());
    assert!(!e.check("instance:delete", &member("p1"), &t));
    assert!(e.check("instance:delete", &admin(), &t));
    assert!(!e.reload_if_changed().unwrap());

    // A broken edit is reported and the rules in force stay.
    write_at(&path, "\"instance:delete\": \"rule:admin or\"\n", 3_000);
    let err = e.reload_if_changed().unwrap_err();
    assert!(err.to_string().contains("instance:delete"), "{err}");
    assert!(!e.check("instance:delete", &member("p1"), &t));
    assert!(e.check("instance:delete", &admin(), &t));
    // ...until it is fixed.
    write_at(&path, "\"instance:delete\": \"@\"\n", 4_000);
    assert!(e.reload_if_changed().unwrap());
    assert!(e.check("instance:delete", &member("p2"), &t));

    // Removing the file goes back to the defaults; creating it again is
    // picked up.
    std::fs::remove_file(&path).unwrap();
    assert!(e.reload_if_changed().unwrap());
    assert!(!e.check("instance:delete", &member("p2"), &t));
    assert!(e.check("instance:delete", &member("p1"), &t));
    write_at(&path, "\"instance:delete\": \"!\"\n", 5_000);
    assert!(e.reload_if_changed().unwrap());
    assert!(!e.check("instance:delete", &admin(), &t));
}

#[test]
fn change_with_same_mtime_but_new_size_is_seen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.json");
    write_at(&path, r#"{"instance:show": "!"}"#, 7_000);
    let e = Enforcer::load(&path, None).unwrap();
    assert!(!e.check("instance:show", &admin(), &Target::tenant("p1")));
    write_at(&path, r#"{"instance:show": "rule:admin"}"#, 7_000);
    assert!(e.reload_if_changed().unwrap());
    assert!(e.check("instance:show", &admin(), &Target::tenant("p1")));
}

#[test]
fn shared_enforcer_reloads_under_concurrent_checks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.yaml");
    write_at(
        &path,
        "\"instance:delete\": \"rule:admin_or_owner\"\n",
        1_000,
    );
    let e = std::sync::Arc::new(Enforcer::load(&path, None).unwrap());
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let e = e.clone();
            std::thread::spawn(move || {
                for _ in 0..2_000 {
                    let _ = e.reload_if_changed();
                    // Admins pass under both versions of the file.
                    assert!(e.check("instance:delete", &admin(), &Target::tenant("p1")));
                }
            })
        })
        .collect();
    write_at(&path, "\"instance:delete\": \"rule:admin\"\n", 2_000);
    for w in workers {
        w.join().unwrap();
    }
    let _ = e.reload_if_changed();
    assert!(!e.check("instance:delete", &member("p1"), &Target::tenant("p1")));
}
