//! Migrations: fresh databases reach the newest version, db_sync is idempotent and safe
//! when run concurrently, and a failing migration leaves schema and version unchanged.

use trove_db::migrate::{migrations, Migration, Step};
use trove_db::testing::{backends, TestDb};
use trove_db::{Backend, Db};

fn newest() -> i64 {
    migrations().last().unwrap().version
}

#[tokio::test]
async fn fresh_database_migrates_and_sync_is_idempotent() {
    for b in backends() {
        let t = TestDb::empty(b).await;
        let db = t.db();
        assert_eq!(db.schema_version().await.unwrap(), None, "{b}");
        let applied = db.migrate().await.unwrap();
        assert_eq!(
            applied,
            migrations().iter().map(|m| m.version).collect::<Vec<_>>()
        );
        assert_eq!(db.schema_version().await.unwrap(), Some(newest()));
        for table in [
            "instances",
            "service_statuses",
            "instance_faults",
            "root_enabled_history",
            "conductor_lastseen",
            "datastores",
            "datastore_versions",
            "datastore_version_metadata",
            "datastore_configuration_parameters",
            "configurations",
            "configuration_parameters",
            "backups",
            "backup_strategy",
            "quotas",
            "quota_usages",
            "reservations",
            "flavors",
            "alembic_version",
            "clusters",
            "modules",
            "instance_modules",
            "instance_addresses",
        ] {
            assert!(db.table_exists(table).await.unwrap(), "{b}: {table}");
        }
        // Second and third run: nothing to do.
        assert!(db.migrate().await.unwrap().is_empty(), "{b}");
        assert!(db.migrate().await.unwrap().is_empty(), "{b}");
        assert_eq!(db.schema_version().await.unwrap(), Some(newest()));
    }
}

#[tokio::test]
async fn concurrent_db_sync_is_safe() {
    for b in backends() {
        let t = TestDb::empty(b).await;
        let mut handles = Vec::new();
        for _ in 0..4 {
            let url = t.url().to_string();
            handles.push(tokio::spawn(async move {
                let db = Db::connect(&url).await.unwrap();
                let r = db.migrate().await;
                db.close().await;
                r
            }));
        }
        let mut total = 0;
        for h in handles {
            total += h
                .await
                .unwrap()
                .unwrap_or_else(|e| panic!("{b}: {e}"))
                .len();
        }
        assert_eq!(
            total,
            migrations().len(),
            "{b}: each migration applied exactly once"
        );
        assert_eq!(t.db().schema_version().await.unwrap(), Some(newest()));
    }
}

fn failing_steps(b: Backend) -> Vec<Step> {
    let q = |s: &str| match b {
        Backend::MySql => format!("`{s}`"),
        _ => format!("\"{s}\""),
    };
    vec![
        Step::new(
            format!(
                "CREATE TABLE {} (id VARCHAR(36) NOT NULL PRIMARY KEY)",
                q("doomed_one")
            ),
            Some(format!("DROP TABLE {}", q("doomed_one"))),
        ),
        Step::new(
            format!("ALTER TABLE {} ADD COLUMN extra INTEGER", q("instances")),
            Some(format!("ALTER TABLE {} DROP COLUMN extra", q("instances"))),
        ),
        Step::new("CREATE TABLE this is not valid sql", None),
    ]
}

#[tokio::test]
async fn failing_migration_leaves_previous_version() {
    for b in backends() {
        let t = TestDb::new(b).await;
        let db = t.db();
        let mut list = migrations();
        list.push(Migration {
            version: 1000,
            name: "deliberately failing",
            steps: failing_steps,
        });
        let err = db.migrate_to(&list, None).await.unwrap_err();
        assert!(err.to_string().contains("migration 1000"), "{b}: {err}");
        assert_eq!(db.schema_version().await.unwrap(), Some(newest()), "{b}");
        assert!(
            !db.table_exists("doomed_one").await.unwrap(),
            "{b}: table left behind"
        );
        // The added column was undone too: adding it again works.
        let retry = vec![Migration {
            version: 1001,
            name: "add extra",
            steps: |b| failing_steps(b)[1..2].to_vec(),
        }];
        db.migrate_to(&retry, None)
            .await
            .unwrap_or_else(|e| panic!("{b}: {e}"));
        // And the schema still works for a real migration run afterwards.
        assert!(db.migrate().await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn recreate_drops_and_rebuilds() {
    for b in backends() {
        let t = TestDb::new(b).await;
        let db = t.db();
        db.datastore_update("mysql", None).await.unwrap();
        db.drop_all_tables().await.unwrap();
        assert!(!db.table_exists("datastores").await.unwrap(), "{b}");
        assert_eq!(db.schema_version().await.unwrap(), None);
        db.migrate().await.unwrap();
        assert!(db.datastore_list().await.unwrap().is_empty(), "{b}");
        // Our own tables are dropped too.
        db.drop_all_tables().await.unwrap();
        for table in ["flavors", "instance_addresses", "trove_schema_version"] {
            assert!(!db.table_exists(table).await.unwrap(), "{b}: {table}");
        }
    }
}

#[tokio::test]
async fn version_3_adds_instance_addresses_to_a_version_2_schema() {
    assert!(newest() >= 3);
    for b in backends() {
        let t = TestDb::empty(b).await;
        let db = t.db();
        assert_eq!(db.migrate_to(&migrations(), Some(2)).await.unwrap(), [1, 2]);
        assert_eq!(db.schema_version().await.unwrap(), Some(2), "{b}");
        assert!(!db.table_exists("instance_addresses").await.unwrap(), "{b}");

        // A failing version 3 (its real steps, then a broken one) is undone completely,
        // including the index on MySQL where DDL is not transactional.
        let mut broken = migrations();
        broken[2].steps = |b| {
            let mut steps = (migrations()[2].steps)(b);
            steps.push(Step::new("CREATE TABLE this is not valid sql", None));
            steps
        };
        let err = db.migrate_to(&broken, None).await.unwrap_err();
        assert!(err.to_string().contains("migration 3"), "{b}: {err}");
        assert_eq!(db.schema_version().await.unwrap(), Some(2), "{b}");
        assert!(!db.table_exists("instance_addresses").await.unwrap(), "{b}");

        // The real one then applies (same table and index names) and the table works.
        assert_eq!(
            db.migrate_to(&migrations(), Some(3)).await.unwrap(),
            [3],
            "{b}"
        );
        assert_eq!(db.schema_version().await.unwrap(), Some(3), "{b}");
        trove_db::testing::execute(
            db,
            "INSERT INTO instance_addresses (instance_id, address) VALUES ('i1', '10.0.0.2')",
        )
        .await;
        let rows = db.instance_addresses("i1").await.unwrap();
        assert_eq!(rows.len(), 1, "{b}");
        assert_eq!(rows[0].kind, "private", "{b}: column default");
        assert_eq!(rows[0].network, None, "{b}");
    }
}

#[tokio::test]
async fn version_4_adds_backup_fault_message_to_existing_rows() {
    assert!(newest() >= 4);
    for b in backends() {
        let t = TestDb::empty(b).await;
        let db = t.db();
        assert_eq!(
            db.migrate_to(&migrations(), Some(3)).await.unwrap(),
            [1, 2, 3]
        );
        // A backup written before the column existed.
        trove_db::testing::execute(
            db,
            "INSERT INTO backups (id, name, state, deleted) VALUES ('b-old', 'old', 'FAILED', FALSE)",
        )
        .await;

        // A failing version 4 (its real step, then a broken one) leaves no column behind,
        // also on MySQL where DDL is not transactional.
        let mut broken = migrations();
        broken[3].steps = |b| {
            let mut steps = (migrations()[3].steps)(b);
            steps.push(Step::new("ALTER TABLE nowhere ADD COLUMN x INTEGER", None));
            steps
        };
        let err = db.migrate_to(&broken, Some(4)).await.unwrap_err();
        assert!(err.to_string().contains("migration 4"), "{b}: {err}");
        assert_eq!(db.schema_version().await.unwrap(), Some(3), "{b}");

        assert_eq!(
            db.migrate_to(&migrations(), Some(4)).await.unwrap(),
            [4],
            "{b}"
        );
        let old = db.backup_get("b-old").await.unwrap();
        assert_eq!(
            old.fault_message, None,
            "{b}: existing rows have no message"
        );
        assert!(db
            .backup_fail_if_running("b-old", "not running")
            .await
            .is_ok_and(|changed| !changed));
        let mut new = trove_db::Backup {
            id: "b-new".into(),
            name: "new".into(),
            state: "BUILDING".into(),
            ..Default::default()
        };
        db.backup_create(&new).await.unwrap();
        assert!(db
            .backup_fail_if_running("b-new", "The guest agent stopped responding.")
            .await
            .unwrap());
        new = db.backup_get("b-new").await.unwrap();
        assert_eq!(new.state, "FAILED", "{b}");
        assert_eq!(
            new.fault_message.as_deref(),
            Some("The guest agent stopped responding."),
            "{b}"
        );
        // Long messages fit (TEXT on every backend).
        new.fault_message = Some("x".repeat(5000));
        db.backup_save(&new).await.unwrap();
        assert_eq!(
            db.backup_get("b-new")
                .await
                .unwrap()
                .fault_message
                .map(|m| m.len()),
            Some(5000),
            "{b}"
        );
    }
}

#[tokio::test]
async fn adopts_schema_created_by_trove() {
    for b in backends() {
        let t = TestDb::new(b).await;
        let db = t.db();
        db.datastore_update("mysql", None).await.unwrap();
        // Simulate Trove's own tables at alembic head with no record of ours.
        trove_db::testing::execute(db, "DELETE FROM trove_schema_version WHERE version = 1").await;
        assert_eq!(db.migrate().await.unwrap(), [1], "{b}");
        assert_eq!(db.schema_version().await.unwrap(), Some(newest()));
        assert_eq!(db.datastore_list().await.unwrap().len(), 1);
        // An older Trove revision is refused with a clear message.
        trove_db::testing::execute(db, "DELETE FROM trove_schema_version WHERE version = 1").await;
        trove_db::testing::execute(
            db,
            "UPDATE alembic_version SET version_num = '7ee6154548a6'",
        )
        .await;
        let e = db.migrate().await.unwrap_err().to_string();
        assert!(e.contains("7ee6154548a6"), "{b}: {e}");
    }
}

#[tokio::test]
async fn operator_url_forms_connect() {
    for b in backends() {
        let t = TestDb::new(b).await;
        t.db().datastore_update("mysql", None).await.unwrap();
        let forms: Vec<String> = match b {
            Backend::MySql => {
                let rest = t.url().split_once("://").unwrap().1.to_string();
                vec![
                    format!("mysql+pymysql://{rest}?charset=utf8"),
                    format!("mysql://{rest}"),
                    format!("mysql+mysqldb://{rest}"),
                ]
            }
            Backend::Postgres => {
                let rest = t.url().split_once("://").unwrap().1.to_string();
                vec![
                    format!("postgresql+psycopg2://{rest}"),
                    format!("postgres://{rest}"),
                    format!("postgresql://{rest}"),
                ]
            }
            Backend::Sqlite => {
                let path = t.url().trim_start_matches("sqlite:///").to_string();
                vec![format!("sqlite:///{path}")]
            }
        };
        for url in forms {
            let db = Db::connect(&url)
                .await
                .unwrap_or_else(|e| panic!("{url}: {e}"));
            assert_eq!(db.backend(), b);
            assert_eq!(db.datastore_list().await.unwrap().len(), 1, "{url}");
            db.close().await;
        }
    }
    // In-memory SQLite keeps its data across calls (one shared connection).
    let db = Db::connect("sqlite://").await.unwrap();
    db.ping().await.unwrap();
    db.migrate().await.unwrap();
    db.datastore_update("mysql", None).await.unwrap();
    assert_eq!(db.datastore_list().await.unwrap().len(), 1);
    // A wrong password is reported without the password.
    if backends().contains(&Backend::Postgres) {
        let e = Db::connect("postgresql://nosuchuser:hunter2@127.0.0.1:5432/x")
            .await
            .unwrap_err()
            .to_string();
        assert!(!e.contains("hunter2"), "{e}");
    }
}
