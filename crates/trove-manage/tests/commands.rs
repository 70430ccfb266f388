//! Every trove-manage command on SQLite, MariaDB and PostgreSQL (each test in its own
//! database), including the operator's-guide commands verbatim and bad input that must
//! leave the database unchanged.

use std::path::PathBuf;

use trove_db::testing::{backends, TestDb};
use trove_db::{Backend, Db};
use trove_manage::{parse_args, run_args, Command};

const RULES: &str = r#"{
  "configuration-parameters": [
    {"name": "max_connections", "restart_required": false, "type": "integer", "min": 10, "max": 100000},
    {"name": "innodb_buffer_pool_size", "restart_required": true, "type": "integer", "min": 2097152, "max": 18446744073709551615},
    {"name": "long_query_time", "restart_required": false, "type": "float", "min": 0, "max": 31536000},
    {"name": "character_set_server", "restart_required": false, "type": "string"},
    {"name": "local_infile", "restart_required": false, "type": "boolean"}
  ]
}"#;

async fn ok(db: &Db, args: &[&str]) -> String {
    let mut v = vec!["trove-manage"];
    v.extend_from_slice(args);
    run_args(db, v)
        .await
        .unwrap_or_else(|e| panic!("{} {args:?}: {e}", db.backend()))
}

async fn err(db: &Db, args: &[&str]) -> String {
    let mut v = vec!["trove-manage"];
    v.extend_from_slice(args);
    match run_args(db, v).await {
        Ok(out) => panic!("{} {args:?} should fail, printed {out}", db.backend()),
        Err(e) => e.to_string(),
    }
}

/// Everything the commands can write, as text, to compare before and after.
async fn snapshot(db: &Db) -> String {
    let mut s = format!("{:?}\n", db.datastore_list().await.unwrap());
    let versions = db.datastore_version_list_all().await.unwrap();
    s += &format!("{versions:?}\n");
    for v in &versions {
        s += &format!("{:?}\n", db.config_params_list(&v.id).await.unwrap());
        for key in ["flavor", "volume_type"] {
            s += &format!(
                "{:?}\n",
                db.datastore_version_metadata_list(&v.id, key)
                    .await
                    .unwrap()
            );
        }
    }
    s += &format!("{:?}\n", db.flavor_list().await.unwrap());
    s
}

fn write_file(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let p = dir.path().join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

fn shipped(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../etc/validation-rules")
        .join(name)
}

#[tokio::test]
async fn operator_guide_commands_run_verbatim() {
    for b in backends() {
        let t = TestDb::new(b).await;
        let db = t.db();
        let dir = tempfile::tempdir().unwrap();
        let rules = write_file(&dir, "validation-rules.json", RULES);
        let imageid = "8b1c5d2e-7d3a-4b55-9a4e-1f2f1c0d9e11";
        ok(db, &["datastore_update", "mysql", ""]).await;
        ok(
            db,
            &[
                "datastore_version_update",
                "mysql",
                "5.7.29",
                "mysql",
                imageid,
                "",
                "1",
            ],
        )
        .await;
        ok(db, &["datastore_update", "mysql", "5.7.29"]).await;
        let out = ok(
            db,
            &[
                "db_load_datastore_config_parameters",
                "mysql",
                "5.7.29",
                &rules,
            ],
        )
        .await;
        assert!(out.contains("Loaded 5"), "{out}");

        let ds = db.datastore_get("mysql").await.unwrap();
        let v = db
            .datastore_version_find(&ds.id, "5.7.29", None)
            .await
            .unwrap();
        assert_eq!(ds.default_version_id.as_deref(), Some(v.id.as_str()), "{b}");
        assert_eq!(v.image_id.as_deref(), Some(imageid));
        assert_eq!(v.version.as_deref(), Some("5.7.29"));
        assert_eq!(v.manager.as_deref(), Some("mysql"));
        assert!(v.active);
        assert_eq!(
            v.registry_ext,
            "trove.guestagent.datastore.mysql.manager.Manager"
        );
        assert_eq!(
            v.repl_strategy,
            "trove.guestagent.strategies.replication.mysql_gtid.MysqlGTIDReplication"
        );
        let params = db.config_params_list(&v.id).await.unwrap();
        assert_eq!(params.len(), 5);
        let pool = db
            .config_param_get(&v.id, "innodb_buffer_pool_size")
            .await
            .unwrap();
        assert_eq!(
            pool.max_size.as_deref(),
            Some("18446744073709551615"),
            "{b}"
        );
        assert_eq!(pool.min_size.as_deref(), Some("2097152"));
        assert!(pool.restart_required);
        assert_eq!(pool.data_type, "integer");

        // Loading again updates in place (no duplicates).
        let changed = RULES.replace("\"min\": 10, \"max\": 100000", "\"min\": 1, \"max\": 5000");
        let rules2 = write_file(&dir, "rules2.json", &changed);
        ok(
            db,
            &[
                "db_load_datastore_config_parameters",
                "mysql",
                "5.7.29",
                &rules2,
            ],
        )
        .await;
        let params = db.config_params_list(&v.id).await.unwrap();
        assert_eq!(params.len(), 5);
        let mc = db.config_param_get(&v.id, "max_connections").await.unwrap();
        assert_eq!(
            (mc.min_size.as_deref(), mc.max_size.as_deref()),
            (Some("1"), Some("5000"))
        );

        // Clearing the default version.
        ok(db, &["datastore_update", "mysql", ""]).await;
        assert_eq!(
            db.datastore_get("mysql").await.unwrap().default_version_id,
            None
        );
    }
}

#[tokio::test]
async fn datastore_version_update_options() {
    for b in backends() {
        let t = TestDb::new(b).await;
        let db = t.db();
        ok(db, &["datastore_update", "mariadb", ""]).await;
        ok(
            db,
            &[
                "datastore_version_update",
                "mariadb",
                "10.11",
                "mariadb",
                "",
                "",
                "1",
                "--image-tags",
                "trove, mariadb",
                "--version",
                "10.11.6",
            ],
        )
        .await;
        ok(
            db,
            &[
                "datastore_version_update",
                "mariadb",
                "10.11",
                "mariadb",
                "",
                "",
                "0",
                "--image-tags",
                "trove,mariadb",
                "--version-number",
                "10.11.7",
                "--registry-ext",
                "my.Manager",
                "--repl-strategy",
                "my.Repl",
            ],
        )
        .await;
        let ds = db.datastore_get("mariadb").await.unwrap();
        let versions = db.datastore_version_list(&ds.id, false).await.unwrap();
        assert_eq!(versions.len(), 2, "{b}");
        assert_eq!(versions[0].image_tags.as_deref(), Some("trove,mariadb"));
        assert_eq!(
            versions[0].registry_ext,
            "trove.guestagent.datastore.mariadb.manager.Manager"
        );
        assert_eq!(versions[1].version.as_deref(), Some("10.11.7"));
        assert_eq!(versions[1].registry_ext, "my.Manager");
        assert_eq!(versions[1].repl_strategy, "my.Repl");
        assert!(!versions[1].active);

        // Same name, two numbers: lookups by name alone are ambiguous.
        let dir = tempfile::tempdir().unwrap();
        let rules = write_file(&dir, "r.json", RULES);
        let e = err(
            db,
            &[
                "db_load_datastore_config_parameters",
                "mariadb",
                "10.11",
                &rules,
            ],
        )
        .await;
        assert!(
            e.contains("Multiple datastore versions found for '10.11'"),
            "{e}"
        );
        // Inactive versions accept rules.
        ok(
            db,
            &[
                "db_load_datastore_config_parameters",
                "mariadb",
                "10.11",
                &rules,
                "--version",
                "10.11.7",
            ],
        )
        .await;
        assert_eq!(
            db.config_params_list(&versions[1].id).await.unwrap().len(),
            5
        );
        assert!(db
            .config_params_list(&versions[0].id)
            .await
            .unwrap()
            .is_empty());
        // The inactive version cannot become the default.
        let e = err(
            db,
            &["datastore_update", "mariadb", versions[1].id.as_str()],
        )
        .await;
        assert!(e.contains("not active"), "{e}");
        // Updating an existing version in place.
        ok(
            db,
            &[
                "datastore_version_update",
                "mariadb",
                "10.11",
                "mariadb",
                "img-2",
                "pkg",
                "1",
                "--version",
                "10.11.6",
            ],
        )
        .await;
        let v = db.datastore_version_get(&versions[0].id).await.unwrap();
        assert_eq!(v.image_id.as_deref(), Some("img-2"));
        assert_eq!(v.packages.as_deref(), Some("pkg"));
        ok(db, &["datastore_update", "mariadb", &v.id]).await;

        // Removing rules.
        let out = ok(
            db,
            &[
                "db_remove_datastore_config_parameters",
                "mariadb",
                "10.11",
                "--version",
                "10.11.7",
            ],
        )
        .await;
        assert!(out.contains("Removed 5"), "{out}");
        assert!(db
            .config_params_list(&versions[1].id)
            .await
            .unwrap()
            .is_empty());
    }
}

#[tokio::test]
async fn bad_input_fails_and_writes_nothing() {
    for b in backends() {
        let t = TestDb::new(b).await;
        let db = t.db();
        ok(db, &["datastore_update", "mysql", ""]).await;
        ok(
            db,
            &[
                "datastore_version_update",
                "mysql",
                "5.7.29",
                "mysql",
                "img",
                "",
                "1",
            ],
        )
        .await;
        ok(
            db,
            &[
                "datastore_version_update",
                "mysql",
                "8.0",
                "mysql",
                "img",
                "",
                "0",
            ],
        )
        .await;
        ok(
            db,
            &["datastore_version_flavor_add", "mysql", "5.7.29", "f1"],
        )
        .await;
        ok(
            db,
            &["flavor_create", "small", "2048", "1", "10", "--id", "f1"],
        )
        .await;
        let dir = tempfile::tempdir().unwrap();
        let good = write_file(&dir, "good.json", RULES);
        ok(
            db,
            &[
                "db_load_datastore_config_parameters",
                "mysql",
                "5.7.29",
                &good,
            ],
        )
        .await;
        let before = snapshot(db).await;

        let bad_json = write_file(&dir, "bad.json", "{\"configuration-parameters\": [");
        let min_gt_max = write_file(&dir, "minmax.json", &RULES.replace(
            "{\"name\": \"local_infile\", \"restart_required\": false, \"type\": \"boolean\"}",
            "{\"name\": \"sort_buffer_size\", \"restart_required\": false, \"type\": \"integer\", \"min\": 5000, \"max\": 10}",
        ));
        let wrong_type = write_file(
            &dir,
            "type.json",
            &RULES.replace("\"type\": \"boolean\"", "\"type\": \"bool\""),
        );
        let not_bool = write_file(
            &dir,
            "nb.json",
            &RULES.replace(
                "\"restart_required\": true",
                "\"restart_required\": \"yes\"",
            ),
        );
        let changed_then_bad = write_file(
            &dir,
            "cb.json",
            &RULES
                .replace("\"min\": 10, \"max\": 100000", "\"min\": 1, \"max\": 7")
                .replace(
                    "\"type\": \"boolean\"",
                    "\"type\": \"integer\", \"min\": \"x\"",
                ),
        );
        let cases: Vec<(Vec<&str>, &str)> = vec![
            (
                vec!["datastore_update", "newds", "nope"],
                "'nope' cannot be found",
            ),
            (vec!["datastore_update", "mysql", "8.0"], "not active"),
            (
                vec!["datastore_update", "mysql", "9.9"],
                "'9.9' cannot be found",
            ),
            (
                vec![
                    "datastore_version_update",
                    "nosuch",
                    "1.0",
                    "mysql",
                    "img",
                    "",
                    "1",
                ],
                "Datastore 'nosuch' cannot be found",
            ),
            (
                vec![
                    "datastore_version_update",
                    "mysql",
                    "5.7.30",
                    "mysql",
                    "img",
                    "",
                    "2",
                ],
                "active must be 1 or 0",
            ),
            (
                vec![
                    "datastore_version_update",
                    "mysql",
                    "5.7.30",
                    "mysql",
                    "img",
                    "",
                    "yes",
                ],
                "active must be 1 or 0",
            ),
            (
                vec![
                    "db_load_datastore_config_parameters",
                    "nosuch",
                    "5.7.29",
                    &good,
                ],
                "Datastore 'nosuch' cannot be found",
            ),
            (
                vec!["db_load_datastore_config_parameters", "mysql", "1.0", &good],
                "Datastore version '1.0' cannot be found",
            ),
            (
                vec![
                    "db_load_datastore_config_parameters",
                    "mysql",
                    "5.7.29",
                    &bad_json,
                ],
                "malformed validation rules JSON",
            ),
            (
                vec![
                    "db_load_datastore_config_parameters",
                    "mysql",
                    "5.7.29",
                    &min_gt_max,
                ],
                "min 5000 is greater than max 10",
            ),
            (
                vec![
                    "db_load_datastore_config_parameters",
                    "mysql",
                    "5.7.29",
                    &wrong_type,
                ],
                "unknown type 'bool'",
            ),
            (
                vec![
                    "db_load_datastore_config_parameters",
                    "mysql",
                    "5.7.29",
                    &not_bool,
                ],
                "restart_required",
            ),
            (
                vec![
                    "db_load_datastore_config_parameters",
                    "mysql",
                    "5.7.29",
                    &changed_then_bad,
                ],
                "'min' must be a number",
            ),
            (
                vec![
                    "db_load_datastore_config_parameters",
                    "mysql",
                    "5.7.29",
                    "/nonexistent/rules.json",
                ],
                "cannot read /nonexistent/rules.json",
            ),
            (
                vec!["db_remove_datastore_config_parameters", "mysql", "4.0"],
                "'4.0' cannot be found",
            ),
            (
                vec!["datastore_version_flavor_add", "mysql", "5.7.29", "f2,f1"],
                "Flavor association 'f1' already exists",
            ),
            (
                vec!["datastore_version_flavor_delete", "mysql", "5.7.29", "f9"],
                "Flavor association 'f9' cannot be found",
            ),
            (
                vec![
                    "datastore_version_volume_type_delete",
                    "mysql",
                    "5.7.29",
                    "ssd",
                ],
                "Volume type association 'ssd' cannot be found",
            ),
            (
                vec!["flavor_create", "small", "1024", "1", "5"],
                "Flavor 'small' already exists",
            ),
            (
                vec!["flavor_create", "other", "1024", "1", "5", "--id", "f1"],
                "Flavor 'f1' already exists",
            ),
            (
                vec!["flavor_create", "tiny", "0", "1", "5"],
                "ram must be a positive",
            ),
            (
                vec!["flavor_create", "tiny", "512", "0", "5"],
                "vcpus must be positive",
            ),
            (
                vec!["flavor_delete", "nope"],
                "Flavor 'nope' cannot be found",
            ),
            (
                vec!["db_downgrade", "48"],
                "Database downgrade is no longer supported.",
            ),
            (vec!["db_upgrade", "--version", "49"], "no longer supported"),
            (
                vec!["db_upgrade", "--version", "abc"],
                "Unknown revision 'abc'",
            ),
        ];
        for (args, want) in cases {
            let e = err(db, &args).await;
            assert!(e.contains(want), "{b} {args:?}: {e}");
            assert_eq!(
                snapshot(db).await,
                before,
                "{b} {args:?} changed the database"
            );
        }
        assert!(db.datastore_get("newds").await.is_err());
    }
}

#[tokio::test]
async fn schema_commands() {
    for b in backends() {
        let t = TestDb::empty(b).await;
        let db = t.db();
        let out = ok(db, &["db_sync"]).await;
        assert!(out.contains("Applied migrations 1, 2, 3, 4"), "{out}");
        let out = ok(db, &["db_sync", "--repo_path", "/ignored"]).await;
        assert!(out.contains("up to date at version 4"), "{out}");
        ok(db, &["db_upgrade"]).await;
        ok(db, &["db_upgrade", "--version", "head"]).await;
        ok(db, &["flavor_create", "small", "2048", "1", "10"]).await;
        let out = ok(db, &["db_recreate"]).await;
        assert!(out.contains("Applied migrations 1, 2, 3, 4"), "{out}");
        assert!(db.flavor_list().await.unwrap().is_empty(), "{b}");
    }
    // db_upgrade to the alembic head revision stops at version 1.
    let t = TestDb::empty(Backend::Sqlite).await;
    ok(t.db(), &["db_upgrade", "--version", "95418fe2a1c8"]).await;
    assert_eq!(t.db().schema_version().await.unwrap(), Some(1));
}

#[tokio::test]
async fn flavor_and_volume_type_associations() {
    for b in backends() {
        let t = TestDb::new(b).await;
        let db = t.db();
        ok(db, &["datastore_update", "postgresql", ""]).await;
        ok(
            db,
            &[
                "datastore_version_update",
                "postgresql",
                "15",
                "postgresql",
                "",
                "",
                "1",
                "--image-tags",
                "trove",
            ],
        )
        .await;
        ok(
            db,
            &[
                "datastore_version_flavor_add",
                "postgresql",
                "15",
                "f1,f2, f3",
            ],
        )
        .await;
        ok(
            db,
            &["datastore_version_flavor_delete", "postgresql", "15", "f2"],
        )
        .await;
        ok(
            db,
            &["datastore_version_flavor_add", "postgresql", "15", "f2"],
        )
        .await; // revived
        ok(
            db,
            &[
                "datastore_version_volume_type_add",
                "postgresql",
                "15",
                "ssd,hdd",
            ],
        )
        .await;
        ok(
            db,
            &[
                "datastore_version_volume_type_delete",
                "postgresql",
                "15",
                "hdd",
            ],
        )
        .await;
        let out = ok(
            db,
            &["datastore_version_volume_type_list", "postgresql", "15"],
        )
        .await;
        assert!(out.contains("ssd") && !out.contains("hdd"), "{out}");
        let ds = db.datastore_get("postgresql").await.unwrap();
        let v = db.datastore_version_find(&ds.id, "15", None).await.unwrap();
        assert_eq!(
            v.repl_strategy,
            "trove.guestagent.strategies.replication.postgresql.PostgresqlReplicationStreaming"
        );
        assert_eq!(
            db.datastore_version_metadata_list(&v.id, "flavor")
                .await
                .unwrap(),
            ["f1", "f2", "f3"],
            "{b}"
        );
        ok(
            db,
            &[
                "datastore_version_volume_type_delete",
                "postgresql",
                "15",
                "ssd",
            ],
        )
        .await;
        let out = ok(
            db,
            &["datastore_version_volume_type_list", "postgresql", "15"],
        )
        .await;
        assert!(out.contains("no volume type associations"), "{out}");
    }
}

#[tokio::test]
async fn flavor_commands() {
    for b in backends() {
        let t = TestDb::new(b).await;
        let db = t.db();
        let out = ok(
            db,
            &["flavor_create", "m1.small", "2048", "1", "20", "--id", "2"],
        )
        .await;
        assert!(out.contains("with id 2"), "{out}");
        let out = ok(
            db,
            &[
                "flavor_create",
                "m1.tiny",
                "512",
                "1",
                "5",
                "--ephemeral",
                "1",
            ],
        )
        .await;
        let tiny_id = out
            .rsplit("with id ")
            .next()
            .unwrap()
            .trim_end_matches('.')
            .to_string();
        let list = ok(db, &["flavor_list"]).await;
        let lines: Vec<&str> = list.lines().collect();
        assert_eq!(lines.len(), 3, "{list}");
        assert!(lines[0].starts_with("ID"));
        assert!(
            lines[1].contains("m1.tiny") && lines[2].contains("m1.small"),
            "{list}"
        );
        let tiny = db.flavor_get(&tiny_id).await.unwrap();
        assert_eq!(
            (tiny.ram, tiny.vcpus, tiny.disk, tiny.ephemeral),
            (512, 1, 5, 1),
            "{b}"
        );
        ok(db, &["flavor_delete", "2"]).await;
        assert!(db.flavor_get("2").await.is_err());
        // The name is free again once the flavor is deleted.
        ok(db, &["flavor_create", "m1.small", "4096", "2", "20"]).await;
        assert_eq!(db.flavor_list().await.unwrap().len(), 2);
    }
}

#[tokio::test]
async fn shipped_validation_rules_load() {
    for b in backends() {
        let t = TestDb::new(b).await;
        let db = t.db();
        ok(db, &["datastore_update", "mariadb", ""]).await;
        ok(
            db,
            &[
                "datastore_version_update",
                "mariadb",
                "10.11",
                "mariadb",
                "",
                "",
                "1",
                "--image-tags",
                "trove",
            ],
        )
        .await;
        ok(db, &["datastore_update", "postgresql", ""]).await;
        ok(
            db,
            &[
                "datastore_version_update",
                "postgresql",
                "15",
                "postgresql",
                "",
                "",
                "1",
                "--image-tags",
                "trove",
            ],
        )
        .await;
        for (ds, ver, file) in [
            ("mariadb", "10.11", "mariadb.json"),
            ("postgresql", "15", "postgresql.json"),
        ] {
            let path = shipped(file).display().to_string();
            let out = ok(db, &["db_load_datastore_config_parameters", ds, ver, &path]).await;
            let n: usize = out.split_whitespace().nth(1).unwrap().parse().unwrap();
            assert!((30..=60).contains(&n), "{file}: {n}");
            let d = db.datastore_get(ds).await.unwrap();
            let v = db.datastore_version_find(&d.id, ver, None).await.unwrap();
            assert_eq!(
                db.config_params_list(&v.id).await.unwrap().len(),
                n,
                "{b} {file}"
            );
        }
        let d = db.datastore_get("postgresql").await.unwrap();
        let v = db.datastore_version_find(&d.id, "15", None).await.unwrap();
        let p = db.config_param_get(&v.id, "shared_buffers").await.unwrap();
        assert!(p.restart_required);
        assert_eq!(
            (p.min_size.as_deref(), p.max_size.as_deref()),
            (Some("16"), Some("1073741823"))
        );
    }
}

#[test]
fn argument_parsing_matches_trove() {
    let c = parse_args(["trove-manage", "datastore_update", "mysql", ""]).unwrap();
    assert_eq!(
        c,
        Command::DatastoreUpdate {
            datastore_name: "mysql".into(),
            default_version: "".into()
        }
    );
    assert!(parse_args(["trove-manage", "datastore_update", "mysql"]).is_err());
    assert!(parse_args(["trove-manage", "datastore-update", "mysql", ""]).is_err());
    let c = parse_args([
        "trove-manage",
        "datastore_version_update",
        "mysql",
        "8.0",
        "mysql",
        "",
        "",
        "1",
        "--image-tags",
        "trove,mysql",
        "--version",
        "8.0.36",
    ])
    .unwrap();
    match c {
        Command::DatastoreVersionUpdate {
            version,
            image_tags,
            image_id,
            ..
        } => {
            assert_eq!(version.as_deref(), Some("8.0.36"));
            assert_eq!(image_tags.as_deref(), Some("trove,mysql"));
            assert_eq!(image_id, "");
        }
        other => panic!("{other:?}"),
    }
    assert!(parse_args(["trove-manage", "flavor_create", "x", "lots", "1", "1"]).is_err());
}
