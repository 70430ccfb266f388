//! The management instance list (`instance_list_admin`): deleted filter, project filter,
//! cluster members, `updated` order and offset paging, on SQLite, MariaDB and PostgreSQL.

use trove_db::testing::{backends, TestDb};
use trove_db::{Db, Instance, TaskStatus};

async fn create(db: &Db, id: &str, project: &str, cluster: Option<&str>) {
    let mut i = Instance {
        id: id.into(),
        name: Some(format!("db-{id}")),
        tenant_id: Some(project.into()),
        cluster_id: cluster.map(str::to_string),
        ..Default::default()
    };
    i.set_task_status(TaskStatus::None);
    db.instance_create(&i).await.unwrap();
}

fn ids(page: &trove_db::Page<Instance>) -> Vec<&str> {
    page.items.iter().map(|i| i.id.as_str()).collect()
}

#[tokio::test]
async fn filters_order_and_pages() {
    for b in backends() {
        let t = TestDb::new(b).await;
        let db = t.db();
        // A cluster row for the cluster member (instances.cluster_id is a foreign key).
        db.datastore_update("mariadb", None).await.unwrap();
        let v = db
            .datastore_version_upsert(&trove_db::DatastoreVersionSpec {
                datastore: "mariadb".into(),
                name: "10.11".into(),
                manager: "mariadb".into(),
                image_id: "img".into(),
                packages: String::new(),
                active: true,
                image_tags: None,
                version: None,
                registry_ext: None,
                repl_strategy: None,
            })
            .await
            .unwrap();
        trove_db::testing::execute(
            db,
            &format!(
                "INSERT INTO clusters (id, created, updated, name, task_id, tenant_id, \
                 datastore_version_id, deleted) VALUES ('cluster-1', '2026-01-01 00:00:00', \
                 '2026-01-01 00:00:00', 'c1', 1, 'p1', '{}', FALSE)",
                v.id
            ),
        )
        .await;
        create(db, "i-a", "p1", None).await;
        create(db, "i-b", "p2", None).await;
        create(db, "i-c", "p1", Some("cluster-1")).await;
        create(db, "i-d", "p1", None).await;
        // Make the order by `updated` differ from the id order: i-b newest, i-a oldest.
        let stamp = |secs: i64| {
            chrono::NaiveDate::from_ymd_opt(2026, 1, 1)
                .unwrap()
                .and_hms_opt(0, 0, 0)
                .unwrap()
                + chrono::Duration::seconds(secs)
        };
        for (id, secs) in [("i-a", 10), ("i-b", 40), ("i-c", 30), ("i-d", 20)] {
            trove_db::testing::execute(
                db,
                &format!(
                    "UPDATE instances SET updated = '{}' WHERE id = '{id}'",
                    stamp(secs).format("%Y-%m-%d %H:%M:%S")
                ),
            )
            .await;
        }
        db.instance_soft_delete("i-d").await.unwrap();
        // Soft delete stamps `updated` with now: i-d is now the most recent.

        let all = db
            .instance_list_admin(None, None, false, 10, 0)
            .await
            .unwrap();
        assert_eq!(ids(&all), ["i-d", "i-b", "i-a"], "{b}");
        assert_eq!(all.next_marker, None, "{b}");
        let with_clusters = db
            .instance_list_admin(None, None, true, 10, 0)
            .await
            .unwrap();
        assert_eq!(ids(&with_clusters), ["i-d", "i-b", "i-c", "i-a"], "{b}");
        let live = db
            .instance_list_admin(Some(false), None, true, 10, 0)
            .await
            .unwrap();
        assert_eq!(ids(&live), ["i-b", "i-c", "i-a"], "{b}");
        let deleted = db
            .instance_list_admin(Some(true), None, true, 10, 0)
            .await
            .unwrap();
        assert_eq!(ids(&deleted), ["i-d"], "{b}");
        assert!(deleted.items[0].deleted && deleted.items[0].deleted_at.is_some());
        let p1 = db
            .instance_list_admin(Some(false), Some("p1"), true, 10, 0)
            .await
            .unwrap();
        assert_eq!(ids(&p1), ["i-c", "i-a"], "{b}");
        let none = db
            .instance_list_admin(Some(true), Some("p2"), true, 10, 0)
            .await
            .unwrap();
        assert!(none.items.is_empty(), "{b}");

        // Offset paging.
        let first = db
            .instance_list_admin(None, None, true, 2, 0)
            .await
            .unwrap();
        assert_eq!(ids(&first), ["i-d", "i-b"], "{b}");
        assert_eq!(first.next_marker.as_deref(), Some("2"), "{b}");
        let second = db
            .instance_list_admin(None, None, true, 2, 2)
            .await
            .unwrap();
        assert_eq!(ids(&second), ["i-c", "i-a"], "{b}");
        assert_eq!(second.next_marker, None, "{b}");
        let past = db
            .instance_list_admin(None, None, true, 2, 10)
            .await
            .unwrap();
        assert!(past.items.is_empty(), "{b}");
    }
}
