//! Instance addresses and the taskmanager's queries on `instances` (claiming a create,
//! finding creates left in BUILDING), on SQLite, MariaDB and PostgreSQL.

use std::collections::HashMap;

use chrono::Duration;
use trove_db::testing::{backends, TestDb};
use trove_db::{utc_now, Db, DbError, Instance, InstanceAddress, TaskStatus};

fn instance(id: &str) -> Instance {
    let mut i = Instance {
        id: id.into(),
        name: Some(format!("db-{id}")),
        tenant_id: Some("t1".into()),
        ..Default::default()
    };
    i.set_task_status(TaskStatus::Building);
    i
}

async fn create(db: &Db, id: &str) {
    db.instance_create(&instance(id)).await.unwrap();
}

fn addrs(rows: &[InstanceAddress]) -> Vec<(&str, &str, Option<&str>)> {
    rows.iter()
        .map(|a| (a.address.as_str(), a.kind.as_str(), a.network.as_deref()))
        .collect()
}

#[tokio::test]
async fn set_replace_get_and_delete_addresses() {
    for b in backends() {
        let t = TestDb::new(b).await;
        let db = t.db();
        create(db, "i-1").await;
        create(db, "i-2").await;
        assert!(db.instance_addresses("i-1").await.unwrap().is_empty());

        db.instance_addresses_set(
            "i-1",
            &[
                InstanceAddress::public("i-1", "203.0.113.40"),
                InstanceAddress::private("i-1", "10.0.0.12", Some("net-a")),
                InstanceAddress::private("i-1", "10.0.0.9", Some("net-b")),
            ],
        )
        .await
        .unwrap();
        // Ordered by address (as strings).
        assert_eq!(
            addrs(&db.instance_addresses("i-1").await.unwrap()),
            [
                ("10.0.0.12", "private", Some("net-a")),
                ("10.0.0.9", "private", Some("net-b")),
                ("203.0.113.40", "public", None),
            ],
            "{b}"
        );
        let rows = db.instance_addresses("i-1").await.unwrap();
        assert!(rows.iter().all(|a| a.instance_id == "i-1"), "{b}");

        // Replacing drops the old rows and keeps the other instance's.
        db.instance_addresses_set(
            "i-2",
            &[InstanceAddress::private("i-2", "10.0.1.5", Some("net-a"))],
        )
        .await
        .unwrap();
        db.instance_addresses_set(
            "i-1",
            &[
                InstanceAddress::private("i-1", "10.0.0.12", Some("net-c")),
                InstanceAddress::private("i-1", "fd00::5", Some("net-c")),
            ],
        )
        .await
        .unwrap();
        assert_eq!(
            addrs(&db.instance_addresses("i-1").await.unwrap()),
            [
                ("10.0.0.12", "private", Some("net-c")),
                ("fd00::5", "private", Some("net-c")),
            ],
            "{b}"
        );
        assert_eq!(db.instance_addresses("i-2").await.unwrap().len(), 1, "{b}");

        // Bad input changes nothing.
        let err = db
            .instance_addresses_set("i-1", &[InstanceAddress::public("i-2", "192.0.2.1")])
            .await
            .unwrap_err();
        assert!(matches!(err, DbError::Invalid(_)), "{b}: {err}");
        let err = db
            .instance_addresses_set(
                "i-1",
                &[
                    InstanceAddress::public("i-1", "192.0.2.1"),
                    InstanceAddress::private("i-1", "192.0.2.1", None),
                ],
            )
            .await
            .unwrap_err();
        assert!(err.to_string().contains("given twice"), "{b}: {err}");
        assert_eq!(db.instance_addresses("i-1").await.unwrap().len(), 2, "{b}");

        // Unknown and deleted instances get no addresses.
        let err = db
            .instance_addresses_set("nope", &[InstanceAddress::public("nope", "192.0.2.1")])
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                DbError::NotFound {
                    kind: "instance",
                    ..
                }
            ),
            "{b}: {err}"
        );
        assert!(db.instance_addresses("nope").await.unwrap().is_empty());

        // An empty set removes them all; delete reports what it removed.
        db.instance_addresses_set("i-1", &[]).await.unwrap();
        assert!(
            db.instance_addresses("i-1").await.unwrap().is_empty(),
            "{b}"
        );
        assert_eq!(db.instance_addresses_delete("i-2").await.unwrap(), 1, "{b}");
        assert_eq!(db.instance_addresses_delete("i-2").await.unwrap(), 0, "{b}");
        assert!(
            db.instance_addresses("i-2").await.unwrap().is_empty(),
            "{b}"
        );
    }
}

#[tokio::test]
async fn addresses_of_many_instances() {
    for b in backends() {
        let t = TestDb::new(b).await;
        let db = t.db();
        for id in ["a", "b", "c"] {
            create(db, id).await;
        }
        db.instance_addresses_set(
            "a",
            &[
                InstanceAddress::private("a", "10.0.0.3", Some("n")),
                InstanceAddress::private("a", "10.0.0.2", Some("n")),
            ],
        )
        .await
        .unwrap();
        db.instance_addresses_set("b", &[InstanceAddress::public("b", "203.0.113.7")])
            .await
            .unwrap();

        let none: &[&str] = &[];
        assert!(db.instance_addresses_for(none).await.unwrap().is_empty());

        let by_str = db
            .instance_addresses_for(&["a", "b", "c", "missing"])
            .await
            .unwrap();
        assert_eq!(
            by_str.len(),
            2,
            "{b}: instances without addresses have no entry"
        );
        assert_eq!(
            addrs(&by_str["a"]),
            [
                ("10.0.0.2", "private", Some("n")),
                ("10.0.0.3", "private", Some("n"))
            ],
            "{b}"
        );
        assert_eq!(
            addrs(&by_str["b"]),
            [("203.0.113.7", "public", None)],
            "{b}"
        );
        assert_eq!(
            db.instance_addresses_for(&["a".to_string(), "b".to_string()])
                .await
                .unwrap(),
            by_str,
            "{b}"
        );

        // More ids than one query takes (and the same id in two chunks) give the same map.
        let mut many: Vec<String> = (0..2500).map(|n| format!("other-{n}")).collect();
        many[10] = "a".into();
        many[1999] = "a".into();
        many[2400] = "b".into();
        let big: HashMap<String, Vec<InstanceAddress>> =
            db.instance_addresses_for(&many).await.unwrap();
        assert_eq!(big, by_str, "{b}");
    }
}

#[tokio::test]
async fn soft_delete_removes_addresses() {
    for b in backends() {
        let t = TestDb::new(b).await;
        let db = t.db();
        create(db, "gone").await;
        create(db, "kept").await;
        for id in ["gone", "kept"] {
            db.instance_addresses_set(id, &[InstanceAddress::private(id, "10.0.0.2", None)])
                .await
                .unwrap();
        }
        db.instance_soft_delete("gone").await.unwrap();
        assert!(
            db.instance_addresses("gone").await.unwrap().is_empty(),
            "{b}"
        );
        assert_eq!(db.instance_addresses("kept").await.unwrap().len(), 1, "{b}");
        // A deleted instance cannot get addresses back.
        let err = db
            .instance_addresses_set("gone", &[InstanceAddress::public("gone", "192.0.2.9")])
            .await
            .unwrap_err();
        assert!(matches!(err, DbError::NotFound { .. }), "{b}: {err}");
        assert!(
            db.instance_addresses("gone").await.unwrap().is_empty(),
            "{b}"
        );
    }
}

#[tokio::test]
async fn claiming_a_create_succeeds_once() {
    for b in backends() {
        let t = TestDb::new(b).await;
        let db = t.db();
        create(db, "i-1").await;
        assert_eq!(db.instance_get("i-1").await.unwrap().task_start_time, None);
        let before = utc_now();
        assert!(db.instance_claim_task_start("i-1").await.unwrap(), "{b}");
        let started = db.instance_get("i-1").await.unwrap().task_start_time;
        let started = started.expect("task_start_time set by the claim");
        assert!(started >= before && started <= utc_now(), "{b}: {started}");
        assert!(!db.instance_claim_task_start("i-1").await.unwrap(), "{b}");
        assert_eq!(
            db.instance_get("i-1").await.unwrap().task_start_time,
            Some(started),
            "{b}: a lost claim changes nothing"
        );

        // Cleared, it can be claimed again.
        db.instance_clear_task_start("i-1").await.unwrap();
        assert_eq!(db.instance_get("i-1").await.unwrap().task_start_time, None);
        assert!(db.instance_claim_task_start("i-1").await.unwrap(), "{b}");

        // Missing and deleted instances cannot be claimed.
        assert!(!db.instance_claim_task_start("nope").await.unwrap(), "{b}");
        db.instance_clear_task_start("nope").await.unwrap();
        create(db, "i-2").await;
        db.instance_soft_delete("i-2").await.unwrap();
        assert!(!db.instance_claim_task_start("i-2").await.unwrap(), "{b}");
    }
}

#[tokio::test]
async fn concurrent_claims_have_one_winner() {
    for b in backends() {
        let t = TestDb::new(b).await;
        create(t.db(), "race").await;
        let mut hs = Vec::new();
        for _ in 0..10 {
            let db = t.db().clone();
            hs.push(tokio::spawn(async move {
                db.instance_claim_task_start("race").await.unwrap()
            }));
        }
        let mut won = 0;
        for h in hs {
            won += h.await.unwrap() as usize;
        }
        assert_eq!(won, 1, "{b}: exactly one claim wins");
    }
}

#[tokio::test]
async fn instances_in_task_finds_old_creates_only() {
    for b in backends() {
        let t = TestDb::new(b).await;
        let db = t.db();
        let now = utc_now();
        let old = now - Duration::hours(2);
        let cutoff = now - Duration::hours(1);
        let mk = |id: &str, created, start, task: TaskStatus| {
            let mut i = instance(id);
            i.created = Some(created);
            i.task_start_time = start;
            i.set_task_status(task);
            i
        };
        for i in [
            // Created long ago, never claimed: left behind.
            mk("a-old-unclaimed", old, None, TaskStatus::Building),
            // Claimed long ago: left behind.
            mk("b-old-claimed", old, Some(old), TaskStatus::Building),
            // Created long ago but claimed recently: still being worked on.
            mk("c-old-reclaimed", old, Some(now), TaskStatus::Building),
            // New.
            mk("d-new", now, None, TaskStatus::Building),
            // Other task.
            mk("e-old-active", old, Some(old), TaskStatus::None),
            mk("f-old-rebooting", old, None, TaskStatus::Rebooting),
            // Deleted.
            mk("g-old-deleted", old, None, TaskStatus::Building),
        ] {
            db.instance_create(&i).await.unwrap();
        }
        db.instance_soft_delete("g-old-deleted").await.unwrap();

        let found: Vec<String> = db
            .instances_in_task(TaskStatus::Building, cutoff)
            .await
            .unwrap()
            .into_iter()
            .map(|i| i.id)
            .collect();
        assert_eq!(found, ["a-old-unclaimed", "b-old-claimed"], "{b}");
        let rebooting = db
            .instances_in_task(TaskStatus::Rebooting, cutoff)
            .await
            .unwrap();
        assert_eq!(rebooting.len(), 1, "{b}");
        assert_eq!(rebooting[0].task_status(), Some(TaskStatus::Rebooting));
        // A later cutoff also finds the recent ones.
        let all = db
            .instances_in_task(TaskStatus::Building, now + Duration::minutes(1))
            .await
            .unwrap();
        assert_eq!(all.len(), 4, "{b}");
    }
}
