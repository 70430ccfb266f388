//! The quota engine: limits, reserve/commit/rollback, run_with_quotas, and atomicity
//! under concurrency on SQLite, MariaDB and PostgreSQL.

use trove_db::testing::{backends, TestDb};
use trove_db::{DbError, QuotaDefaults};

fn usage(us: &[trove_db::QuotaUsage], r: &str) -> (i32, i32, i32) {
    let u = us.iter().find(|u| u.resource == r).unwrap();
    (u.in_use, u.reserved, u.limit)
}

#[tokio::test]
async fn limits_reserve_commit_rollback() {
    let defaults = QuotaDefaults::default();
    for b in backends() {
        let t = TestDb::new(b).await;
        let db = t.db();
        let limits = db.quota_limits("p1", &defaults).await.unwrap();
        assert_eq!(limits["instances"], 10);
        assert_eq!(limits["ram"], -1);
        assert_eq!(limits["backups"], 50);
        assert_eq!(limits["volumes"], 40);
        db.quota_set_limit("p1", "instances", 3).await.unwrap();
        db.quota_set_limit("p1", "instances", 2).await.unwrap();
        assert_eq!(
            db.quota_limits("p1", &defaults).await.unwrap()["instances"],
            2,
            "{b}"
        );
        assert_eq!(
            db.quota_limits("p2", &defaults).await.unwrap()["instances"],
            10
        );
        assert!(matches!(
            db.quota_set_limit("p1", "cores", 1).await,
            Err(DbError::NotFound { .. })
        ));
        assert!(matches!(
            db.quota_set_limit("p1", "ram", -2).await,
            Err(DbError::Invalid(_))
        ));

        let r1 = db
            .quota_reserve(
                "p1",
                &[("instances", 1), ("ram", 2048), ("volumes", 5)],
                &defaults,
            )
            .await
            .unwrap();
        assert_eq!(r1.len(), 3);
        let us = db.quota_usages("p1", &defaults).await.unwrap();
        assert_eq!(usage(&us, "instances"), (0, 1, 2), "{b}");
        db.quota_commit(&r1).await.unwrap();
        db.quota_commit(&r1).await.unwrap(); // second commit is a no-op
        let us = db.quota_usages("p1", &defaults).await.unwrap();
        assert_eq!(usage(&us, "instances"), (1, 0, 2));
        assert_eq!(usage(&us, "ram"), (2048, 0, -1));
        assert_eq!(
            db.reservation_status(&r1[0].id).await.unwrap().as_deref(),
            Some("Committed")
        );

        let r2 = db
            .quota_reserve("p1", &[("instances", 1), ("volumes", 30)], &defaults)
            .await
            .unwrap();
        // Both instances and volumes are now full: the error lists both, sorted.
        let e = db
            .quota_reserve(
                "p1",
                &[("volumes", 10), ("instances", 1), ("ram", 1)],
                &defaults,
            )
            .await
            .unwrap_err();
        match &e {
            DbError::QuotaExceeded { resources } => {
                assert_eq!(resources, &["instances", "volumes"], "{b}")
            }
            other => panic!("{other}"),
        }
        assert_eq!(
            e.to_string(),
            "Quota exceeded for resources: ['instances', 'volumes']."
        );
        db.quota_rollback(&r2).await.unwrap();
        assert_eq!(
            db.reservation_status(&r2[0].id).await.unwrap().as_deref(),
            Some("Rolled Back")
        );
        let us = db.quota_usages("p1", &defaults).await.unwrap();
        assert_eq!(usage(&us, "instances"), (1, 0, 2));
        assert_eq!(usage(&us, "volumes"), (5, 0, 40));
        // Negative deltas are never refused, and in_use never drops below zero.
        let r3 = db
            .quota_reserve("p1", &[("instances", -5)], &defaults)
            .await
            .unwrap();
        db.quota_commit(&r3).await.unwrap();
        assert_eq!(
            usage(
                &db.quota_usages("p1", &defaults).await.unwrap(),
                "instances"
            ),
            (0, 0, 2)
        );
        assert!(matches!(
            db.quota_reserve("p1", &[("cores", 1)], &defaults).await,
            Err(DbError::NotFound { .. })
        ));
    }
}

#[derive(Debug)]
enum AppError {
    Db(DbError),
    Failed,
}

impl From<DbError> for AppError {
    fn from(e: DbError) -> Self {
        AppError::Db(e)
    }
}

#[tokio::test]
async fn run_with_quotas_commits_or_rolls_back() {
    let defaults = QuotaDefaults {
        instances: 1,
        ..Default::default()
    };
    for b in backends() {
        let t = TestDb::new(b).await;
        let db = t.db();
        let r: Result<u32, AppError> = db
            .run_with_quotas("p", &[("instances", 1)], &defaults, || async {
                Err(AppError::Failed)
            })
            .await;
        assert!(matches!(r, Err(AppError::Failed)));
        assert_eq!(
            usage(&db.quota_usages("p", &defaults).await.unwrap(), "instances"),
            (0, 0, 1),
            "{b}"
        );
        let r: Result<u32, AppError> = db
            .run_with_quotas("p", &[("instances", 1)], &defaults, || async { Ok(7) })
            .await;
        assert_eq!(r.unwrap(), 7);
        assert_eq!(
            usage(&db.quota_usages("p", &defaults).await.unwrap(), "instances"),
            (1, 0, 1)
        );
        let r: Result<u32, AppError> = db
            .run_with_quotas("p", &[("instances", 1)], &defaults, || async { Ok(8) })
            .await;
        match r {
            Err(AppError::Db(DbError::QuotaExceeded { resources })) => {
                assert_eq!(resources, ["instances"])
            }
            other => panic!("{b}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn concurrent_reservations_never_exceed_the_limit() {
    let defaults = QuotaDefaults::default(); // instances: 10
    for b in backends() {
        let t = TestDb::new(b).await;
        // Fresh project: the usage rows do not exist yet when the 20 requests start.
        let mut hs = Vec::new();
        for _ in 0..20 {
            let db = t.db().clone();
            hs.push(tokio::spawn(async move {
                match db
                    .quota_reserve("fresh", &[("instances", 1), ("ram", 512)], &defaults)
                    .await
                {
                    Ok(r) => {
                        db.quota_commit(&r).await.unwrap();
                        true
                    }
                    Err(DbError::QuotaExceeded { resources }) => {
                        assert_eq!(resources, ["instances"]);
                        false
                    }
                    Err(e) => panic!("{e}"),
                }
            }));
        }
        let mut ok = 0;
        for h in hs {
            ok += h.await.unwrap() as usize;
        }
        assert_eq!(ok, 10, "{b}: exactly the limit succeeds");
        let us = t.db().quota_usages("fresh", &defaults).await.unwrap();
        assert_eq!(usage(&us, "instances"), (10, 0, 10), "{b}");
        assert_eq!(usage(&us, "ram"), (5120, 0, -1), "{b}");

        // Reservations held (not committed) count too.
        let mut hs = Vec::new();
        for _ in 0..20 {
            let db = t.db().clone();
            hs.push(tokio::spawn(async move {
                db.quota_reserve("held", &[("backups", 5)], &defaults)
                    .await
                    .is_ok()
            }));
        }
        let mut ok = 0;
        for h in hs {
            ok += h.await.unwrap() as usize;
        }
        assert_eq!(ok, 10, "{b}");
        assert_eq!(
            usage(
                &t.db().quota_usages("held", &defaults).await.unwrap(),
                "backups"
            ),
            (0, 50, 50)
        );
    }
}
