//! Every repository function on SQLite, MariaDB and PostgreSQL (each test in its own
//! database).

use trove_db::testing::{backends, TestDb};
use trove_db::{
    Backup, ConfigParamRule, Configuration, DatastoreVersion, DatastoreVersionSpec, Db, DbError,
    Instance, NewFlavor, ServiceStatus, TaskStatus,
};

fn spec(ds: &str, name: &str, version: Option<&str>, active: bool) -> DatastoreVersionSpec {
    DatastoreVersionSpec {
        datastore: ds.into(),
        name: name.into(),
        manager: ds.into(),
        image_id: "img".into(),
        packages: "".into(),
        active,
        image_tags: None,
        version: version.map(String::from),
        registry_ext: None,
        repl_strategy: None,
    }
}

async fn version(db: &Db) -> DatastoreVersion {
    db.datastore_update("mariadb", None).await.unwrap();
    db.datastore_version_upsert(&spec("mariadb", "10.11", None, true))
        .await
        .unwrap()
}

fn instance(id: &str, tenant: &str, dv: &str) -> Instance {
    let mut i = Instance {
        id: id.into(),
        name: Some(format!("db-{id}")),
        tenant_id: Some(tenant.into()),
        datastore_version_id: Some(dv.into()),
        flavor_id: Some("2".into()),
        volume_size: Some(5),
        server_status: Some("BUILD".into()),
        encrypted_key: Some("c2VjcmV0LWtleS1iYXNlNjQ=".into()),
        access: Some(r#"{"is_public": false, "allowed_cidrs": ["10.0.0.0/8"]}"#.into()),
        region_id: Some("RegionOne".into()),
        instance_type: Some("member".into()),
        ssl_mode: Some("basic".into()),
        ..Default::default()
    };
    i.set_task_status(TaskStatus::Building);
    i
}

#[tokio::test]
async fn datastores_and_versions() {
    for b in backends() {
        let t = TestDb::new(b).await;
        let db = t.db();
        let ds = db.datastore_update("mysql", None).await.unwrap();
        assert_eq!(db.datastore_get("mysql").await.unwrap(), ds);
        assert_eq!(db.datastore_get(&ds.id).await.unwrap(), ds);
        assert!(matches!(
            db.datastore_get("nope").await,
            Err(DbError::NotFound {
                kind: "datastore",
                ..
            })
        ));
        // Updating an existing datastore keeps its id.
        assert_eq!(db.datastore_update("mysql", None).await.unwrap().id, ds.id);
        db.datastore_update("postgresql", None).await.unwrap();
        let names: Vec<String> = db
            .datastore_list()
            .await
            .unwrap()
            .into_iter()
            .map(|d| d.name)
            .collect();
        assert_eq!(names, ["mysql", "postgresql"], "{b}");

        let v57 = db
            .datastore_version_upsert(&spec("mysql", "5.7", None, true))
            .await
            .unwrap();
        assert_eq!(v57.version.as_deref(), Some("5.7"));
        assert_eq!(db.datastore_version_get(&v57.id).await.unwrap(), v57);
        let v80a = db
            .datastore_version_upsert(&spec("mysql", "8.0", Some("8.0.35"), true))
            .await
            .unwrap();
        let v80b = db
            .datastore_version_upsert(&spec("mysql", "8.0", Some("8.0.36"), false))
            .await
            .unwrap();
        assert!(matches!(
            db.datastore_version_find(&ds.id, "8.0", None).await,
            Err(DbError::NoUniqueMatch { .. })
        ));
        assert_eq!(
            db.datastore_version_find(&ds.id, "8.0", Some("8.0.36"))
                .await
                .unwrap()
                .id,
            v80b.id
        );
        assert_eq!(
            db.datastore_version_find(&ds.id, &v80a.id, None)
                .await
                .unwrap()
                .id,
            v80a.id
        );
        assert_eq!(
            db.datastore_version_list(&ds.id, false)
                .await
                .unwrap()
                .len(),
            3
        );
        assert_eq!(
            db.datastore_version_list(&ds.id, true).await.unwrap().len(),
            2
        );
        db.datastore_version_set_active(&v80b.id, true)
            .await
            .unwrap();
        db.datastore_version_set_active(&v80b.id, true)
            .await
            .unwrap();
        assert!(db.datastore_version_get(&v80b.id).await.unwrap().active);
        assert!(db.datastore_version_set_active("nope", true).await.is_err());
        assert!(matches!(
            db.datastore_version_upsert(&spec("nosuch", "1", None, true))
                .await,
            Err(DbError::NotFound {
                kind: "datastore",
                ..
            })
        ));

        // Default version: set by name, by id, cleared.
        let d = db.datastore_update("mysql", Some("5.7")).await.unwrap();
        assert_eq!(d.default_version_id.as_deref(), Some(v57.id.as_str()));
        db.datastore_set_default_version(&ds.id, Some(&v80a.id))
            .await
            .unwrap();
        assert_eq!(
            db.datastore_get("mysql").await.unwrap().default_version_id,
            Some(v80a.id.clone())
        );
        db.datastore_set_default_version(&ds.id, None)
            .await
            .unwrap();
        assert_eq!(
            db.datastore_get("mysql").await.unwrap().default_version_id,
            None
        );

        // Metadata.
        db.datastore_version_metadata_add(&v57.id, "flavor", &["1".into(), "2".into()])
            .await
            .unwrap();
        assert!(matches!(
            db.datastore_version_metadata_add(&v57.id, "flavor", &["3".into(), "2".into()])
                .await,
            Err(DbError::AlreadyExists { .. })
        ));
        assert_eq!(
            db.datastore_version_metadata_list(&v57.id, "flavor")
                .await
                .unwrap(),
            ["1", "2"],
            "{b}"
        );
        db.datastore_version_metadata_delete(&v57.id, "flavor", "1")
            .await
            .unwrap();
        assert!(db
            .datastore_version_metadata_delete(&v57.id, "flavor", "1")
            .await
            .is_err());
        db.datastore_version_metadata_add(&v57.id, "flavor", &["1".into()])
            .await
            .unwrap();
        db.datastore_version_metadata_add(&v57.id, "volume_type", &["ssd".into()])
            .await
            .unwrap();
        assert_eq!(
            db.datastore_version_metadata_list(&v57.id, "flavor")
                .await
                .unwrap(),
            ["1", "2"]
        );
        assert_eq!(
            db.datastore_version_metadata_list(&v57.id, "volume_type")
                .await
                .unwrap(),
            ["ssd"]
        );
    }
}

#[tokio::test]
async fn configuration_parameter_rules() {
    for b in backends() {
        let t = TestDb::new(b).await;
        let db = t.db();
        let v = version(db).await;
        let rule = |name: &str, min: Option<&str>, max: Option<&str>| ConfigParamRule {
            name: name.into(),
            restart_required: name.starts_with("innodb"),
            data_type: "integer".into(),
            min: min.map(String::from),
            max: max.map(String::from),
        };
        db.config_params_upsert(
            &v.id,
            &[
                rule("max_connections", Some("10"), Some("100000")),
                rule(
                    "innodb_buffer_pool_size",
                    Some("2097152"),
                    Some("18446744073709551615"),
                ),
            ],
        )
        .await
        .unwrap();
        db.config_params_upsert(&v.id, &[rule("max_connections", Some("1"), None)])
            .await
            .unwrap();
        let all = db.config_params_list(&v.id).await.unwrap();
        assert_eq!(all.len(), 2, "{b}");
        let mc = db.config_param_get(&v.id, "max_connections").await.unwrap();
        assert_eq!(
            (mc.min_size.as_deref(), mc.max_size.as_deref()),
            (Some("1"), None)
        );
        let bp = db
            .config_param_get(&v.id, "innodb_buffer_pool_size")
            .await
            .unwrap();
        assert!(bp.restart_required);
        assert_eq!(bp.max_size.as_deref(), Some("18446744073709551615"));
        assert!(db
            .config_params_upsert("nope", &[rule("x", None, None)])
            .await
            .is_err());
        db.config_param_delete(&v.id, "max_connections")
            .await
            .unwrap();
        assert!(db.config_param_get(&v.id, "max_connections").await.is_err());
        assert!(db
            .config_param_delete(&v.id, "max_connections")
            .await
            .is_err());
        assert_eq!(db.config_params_delete_all(&v.id).await.unwrap(), 1);
        assert!(db.config_params_list(&v.id).await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn flavors() {
    for b in backends() {
        let t = TestDb::new(b).await;
        let db = t.db();
        let f = db
            .flavor_create(&NewFlavor {
                id: None,
                name: "m1.small".into(),
                ram: 2048,
                vcpus: 1,
                disk: 20,
                ephemeral: 0,
            })
            .await
            .unwrap();
        assert_eq!(f.id.len(), 36);
        assert_eq!(db.flavor_get(&f.id).await.unwrap(), f, "{b}");
        db.flavor_create(&NewFlavor {
            id: Some("7".into()),
            name: "m1.tiny".into(),
            ram: 512,
            vcpus: 1,
            disk: 1,
            ephemeral: 2,
        })
        .await
        .unwrap();
        let list = db.flavor_list().await.unwrap();
        assert_eq!(
            list.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(),
            ["m1.tiny", "m1.small"]
        );
        assert!(matches!(
            db.flavor_create(&NewFlavor {
                id: None,
                name: "m1.tiny".into(),
                ram: 1,
                vcpus: 1,
                disk: 1,
                ephemeral: 0
            })
            .await,
            Err(DbError::AlreadyExists { .. })
        ));
        db.flavor_delete("7").await.unwrap();
        assert!(matches!(
            db.flavor_get("7").await,
            Err(DbError::NotFound { .. })
        ));
        assert!(db.flavor_delete("7").await.is_err());
    }
}

#[tokio::test]
async fn instances_statuses_and_faults() {
    for b in backends() {
        let t = TestDb::new(b).await;
        let db = t.db();
        let v = version(db).await;
        let i = db
            .instance_create(&instance("id-03", "t1", &v.id))
            .await
            .unwrap();
        assert!(i.created.is_some());
        let got = db.instance_get("id-03").await.unwrap();
        assert_eq!(got, i, "{b}");
        assert_eq!(
            got.encrypted_key.as_deref(),
            Some("c2VjcmV0LWtleS1iYXNlNjQ=")
        );
        assert_eq!(got.access_json().unwrap()["allowed_cidrs"][0], "10.0.0.0/8");
        assert_eq!(got.task_status(), Some(TaskStatus::Building));
        assert!(matches!(
            db.instance_create(&instance("id-03", "t1", &v.id)).await,
            Err(DbError::AlreadyExists { .. })
        ));
        for id in ["id-01", "id-05", "id-02", "id-04"] {
            db.instance_create(&instance(id, "t1", &v.id))
                .await
                .unwrap();
        }
        db.instance_create(&instance("id-00", "t2", &v.id))
            .await
            .unwrap();

        // Paging by id with a marker.
        let p1 = db.instance_list("t1", 2, None).await.unwrap();
        assert_eq!(
            p1.items.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(),
            ["id-01", "id-02"],
            "{b}"
        );
        assert_eq!(p1.next_marker.as_deref(), Some("id-02"));
        let p2 = db
            .instance_list("t1", 2, p1.next_marker.as_deref())
            .await
            .unwrap();
        assert_eq!(
            p2.items.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(),
            ["id-03", "id-04"]
        );
        let p3 = db
            .instance_list("t1", 2, p2.next_marker.as_deref())
            .await
            .unwrap();
        assert_eq!(p3.items.len(), 1);
        assert_eq!(p3.next_marker, None);
        assert_eq!(db.instance_list_all(100).await.unwrap().len(), 6);

        // Name, task compare-and-set, save.
        db.instance_update_name("id-03", "renamed").await.unwrap();
        assert_eq!(
            db.instance_get("id-03").await.unwrap().name.as_deref(),
            Some("renamed")
        );
        db.instance_update_task("id-03", Some(TaskStatus::Building), TaskStatus::None)
            .await
            .unwrap();
        let e = db
            .instance_update_task("id-03", Some(TaskStatus::Building), TaskStatus::Deleting)
            .await
            .unwrap_err();
        assert!(matches!(e, DbError::Conflict(_)), "{b}: {e}");
        db.instance_update_task("id-03", None, TaskStatus::Resizing)
            .await
            .unwrap();
        let cur = db.instance_get("id-03").await.unwrap();
        assert_eq!(cur.task_status(), Some(TaskStatus::Resizing));
        assert_eq!(
            cur.task_description.as_deref(),
            Some("Resizing the instance.")
        );
        assert!(matches!(
            db.instance_update_task("nope", None, TaskStatus::None)
                .await,
            Err(DbError::NotFound { .. })
        ));
        let mut changed = cur.clone();
        changed.compute_instance_id = Some("server-1".into());
        changed.volume_id = Some("vol-1".into());
        changed.server_status = Some("ACTIVE".into());
        let saved = db.instance_save(&changed).await.unwrap();
        assert_eq!(db.instance_get("id-03").await.unwrap(), saved);

        // Service status.
        let st = db
            .service_status_create("id-03", ServiceStatus::New)
            .await
            .unwrap();
        assert_eq!(db.service_status_get("id-03").await.unwrap(), st);
        db.service_status_update("id-03", ServiceStatus::Healthy)
            .await
            .unwrap();
        let st = db.service_status_get("id-03").await.unwrap();
        assert_eq!(
            (st.status(), st.status_description.as_str()),
            (Some(ServiceStatus::Healthy), "healthy")
        );
        db.service_status_update("id-03", ServiceStatus::Upgrading)
            .await
            .unwrap();
        assert_eq!(
            db.service_status_get("id-03").await.unwrap().status(),
            Some(ServiceStatus::Upgrading)
        );
        db.service_status_touch("id-03").await.unwrap();
        db.service_status_create("id-01", ServiceStatus::Running)
            .await
            .unwrap();
        let many = db
            .service_statuses_for(&["id-01".into(), "id-03".into(), "id-99".into()])
            .await
            .unwrap();
        assert_eq!(many.len(), 2, "{b}");
        assert_eq!(many["id-01"].status(), Some(ServiceStatus::Running));
        assert!(db.service_statuses_for(&[]).await.unwrap().is_empty());
        assert!(db
            .service_status_update("nope", ServiceStatus::Healthy)
            .await
            .is_err());

        // Faults: one live row per instance, updated in place.
        assert_eq!(db.instance_fault_get("id-03").await.unwrap(), None);
        let f1 = db
            .instance_fault_upsert("id-03", &"x".repeat(300), "trace 1")
            .await
            .unwrap();
        assert_eq!(f1.message.chars().count(), 255);
        let f2 = db
            .instance_fault_upsert("id-03", "second", "trace 2")
            .await
            .unwrap();
        assert_eq!(f2.id, f1.id);
        let live = db.instance_fault_get("id-03").await.unwrap().unwrap();
        assert_eq!(
            (live.message.as_str(), live.details.as_str()),
            ("second", "trace 2"),
            "{b}"
        );

        // Soft delete: instance gone, status DELETED, fault cleared.
        db.instance_soft_delete("id-03").await.unwrap();
        assert!(matches!(
            db.instance_get("id-03").await,
            Err(DbError::NotFound { .. })
        ));
        assert!(db.instance_get_any("id-03").await.unwrap().deleted);
        assert_eq!(
            db.service_status_get("id-03").await.unwrap().status(),
            Some(ServiceStatus::Deleted)
        );
        assert_eq!(db.instance_fault_get("id-03").await.unwrap(), None);
        assert!(db.instance_soft_delete("id-03").await.is_err());
        assert_eq!(
            db.instance_list("t1", 10, None).await.unwrap().items.len(),
            4
        );
        db.instance_fault_clear("id-01").await.unwrap();
    }
}

#[tokio::test]
async fn replicas_and_their_source() {
    for b in backends() {
        let t = TestDb::new(b).await;
        let db = t.db();
        let dv = version(db).await;
        for id in ["src", "r1", "r2"] {
            let mut i = instance(id, "p", &dv.id);
            if id != "src" {
                i.slave_of_id = Some("src".into());
            }
            db.instance_create(&i).await.unwrap();
        }
        let ids = |v: Vec<Instance>| v.into_iter().map(|i| i.id).collect::<Vec<_>>();
        let mut got = ids(db.instance_replicas("src").await.unwrap());
        got.sort();
        assert_eq!(got, ["r1", "r2"], "{b:?}");
        assert!(db.instance_replicas("r1").await.unwrap().is_empty());
        // r1 becomes the source of the others.
        db.instance_update_slave_of("r1", None).await.unwrap();
        db.instance_update_slave_of("src", Some("r1"))
            .await
            .unwrap();
        db.instance_update_slave_of("r2", Some("r1")).await.unwrap();
        let mut got = ids(db.instance_replicas("r1").await.unwrap());
        got.sort();
        assert_eq!(got, ["r2", "src"], "{b:?}");
        assert!(db.instance_replicas("src").await.unwrap().is_empty());
        assert_eq!(
            db.instance_get("src").await.unwrap().slave_of_id.as_deref(),
            Some("r1")
        );
        // Deleted replicas are not listed; unknown instances are NotFound.
        db.instance_soft_delete("r2").await.unwrap();
        assert_eq!(ids(db.instance_replicas("r1").await.unwrap()), ["src"]);
        assert!(matches!(
            db.instance_update_slave_of("r2", None).await,
            Err(DbError::NotFound { .. })
        ));
    }
}

#[tokio::test]
async fn conductor_stale_rule() {
    for b in backends() {
        let t = TestDb::new(b).await;
        let db = t.db();
        let (i, hb) = ("inst-1", "heartbeat");
        assert!(db.conductor_check_and_store(i, hb, None).await.unwrap());
        assert_eq!(db.conductor_last_seen(i, hb).await.unwrap(), None);
        assert!(db
            .conductor_check_and_store(i, hb, Some(1_700_000_000.123456))
            .await
            .unwrap());
        assert!(
            !db.conductor_check_and_store(i, hb, Some(1_700_000_000.123456))
                .await
                .unwrap(),
            "{b}: equal is stale"
        );
        assert!(
            !db.conductor_check_and_store(i, hb, Some(1_699_999_999.0))
                .await
                .unwrap(),
            "{b}: older is stale"
        );
        assert!(
            db.conductor_check_and_store(i, hb, Some(1_700_000_000.123457))
                .await
                .unwrap(),
            "{b}: microsecond newer"
        );
        assert_eq!(
            db.conductor_last_seen(i, hb).await.unwrap(),
            Some(1_700_000_000.123457)
        );
        // Clocks are per method.
        assert!(db
            .conductor_check_and_store(i, "update_backup", Some(1.0))
            .await
            .unwrap());
        // Concurrent deliveries of the same message: exactly one wins.
        let mut hs = Vec::new();
        for _ in 0..10 {
            let db = db.clone();
            hs.push(tokio::spawn(async move {
                db.conductor_check_and_store("inst-2", "heartbeat", Some(5.5))
                    .await
                    .unwrap()
            }));
        }
        let mut wins = 0;
        for h in hs {
            wins += h.await.unwrap() as usize;
        }
        assert_eq!(wins, 1, "{b}");
    }
}

#[tokio::test]
async fn root_enabled_history() {
    for b in backends() {
        let t = TestDb::new(b).await;
        let db = t.db();
        assert_eq!(db.root_history_get("i1").await.unwrap(), None);
        let r = db.root_history_record("i1", "alice").await.unwrap();
        assert!(r.is_live());
        assert_eq!(db.root_history_get("i1").await.unwrap().unwrap(), r, "{b}");
        // A live row is kept as is.
        assert_eq!(
            db.root_history_record("i1", "bob")
                .await
                .unwrap()
                .user
                .as_deref(),
            Some("alice")
        );
        db.root_history_disable("i1").await.unwrap();
        assert!(!db.root_history_get("i1").await.unwrap().unwrap().is_live());
        let r = db.root_history_record("i1", "bob").await.unwrap();
        assert!(r.is_live());
        assert_eq!(
            db.root_history_get("i1")
                .await
                .unwrap()
                .unwrap()
                .user
                .as_deref(),
            Some("bob")
        );
        assert!(db.root_history_disable("nope").await.is_err());
    }
}

#[tokio::test]
async fn configuration_groups() {
    for b in backends() {
        let t = TestDb::new(b).await;
        let db = t.db();
        let v = version(db).await;
        let c = Configuration {
            id: "cfg-1".into(),
            name: "tuned".into(),
            description: Some("for tests".into()),
            tenant_id: "t1".into(),
            datastore_version_id: v.id.clone(),
            ..Default::default()
        };
        let p = |k: &str, v: &str| (k.to_string(), v.to_string());
        let c = db
            .configuration_create(&c, &[p("max_connections", "200"), p("autocommit", "1")])
            .await
            .unwrap();
        assert_eq!(db.configuration_get("cfg-1").await.unwrap(), c, "{b}");
        assert_eq!(db.configuration_list("t1").await.unwrap().len(), 1);
        assert!(db.configuration_list("t2").await.unwrap().is_empty());
        db.configuration_update("cfg-1", "renamed", None)
            .await
            .unwrap();
        let got = db.configuration_get("cfg-1").await.unwrap();
        assert_eq!((got.name.as_str(), got.description), ("renamed", None));
        let keys = |ps: Vec<trove_db::ConfigurationParameter>| {
            ps.into_iter()
                .map(|p| (p.configuration_key, p.configuration_value.unwrap()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            keys(db.configuration_parameters("cfg-1").await.unwrap()),
            [p("autocommit", "1"), p("max_connections", "200")]
        );
        db.configuration_update_parameters(
            "cfg-1",
            &[p("max_connections", "300"), p("wait_timeout", "60")],
        )
        .await
        .unwrap();
        assert_eq!(
            keys(db.configuration_parameters("cfg-1").await.unwrap()),
            [
                p("autocommit", "1"),
                p("max_connections", "300"),
                p("wait_timeout", "60")
            ]
        );
        db.configuration_set_parameters("cfg-1", &[p("wait_timeout", "30")])
            .await
            .unwrap();
        assert_eq!(
            keys(db.configuration_parameters("cfg-1").await.unwrap()),
            [p("wait_timeout", "30")]
        );
        db.configuration_delete("cfg-1").await.unwrap();
        assert!(matches!(
            db.configuration_get("cfg-1").await,
            Err(DbError::NotFound { .. })
        ));
        assert!(db
            .configuration_parameters("cfg-1")
            .await
            .unwrap()
            .is_empty());
        assert!(db.configuration_set_parameters("cfg-1", &[]).await.is_err());
        assert!(db.configuration_delete("cfg-1").await.is_err());
    }
}

#[tokio::test]
async fn backups() {
    for b in backends() {
        let t = TestDb::new(b).await;
        let db = t.db();
        let v = version(db).await;
        let mk = |id: &str, inst: &str, state: &str| Backup {
            id: id.into(),
            name: format!("backup {id}"),
            tenant_id: Some("t1".into()),
            instance_id: Some(inst.into()),
            state: state.into(),
            backup_type: Some("full".into()),
            datastore_version_id: Some(v.id.clone()),
            storage_driver: Some("swift".into()),
            ..Default::default()
        };
        let b1 = db.backup_create(&mk("b1", "i1", "NEW")).await.unwrap();
        db.backup_create(&mk("b2", "i1", "COMPLETED"))
            .await
            .unwrap();
        db.backup_create(&mk("b3", "i2", "COMPLETED"))
            .await
            .unwrap();
        assert_eq!(db.backup_get("b1").await.unwrap(), b1, "{b}");
        assert!(db.backup_running_for_instance("i1").await.unwrap());
        assert!(!db.backup_running_for_instance("i2").await.unwrap());
        let page = db.backup_list("t1", None, 2, None).await.unwrap();
        assert_eq!(page.items.len(), 2);
        assert_eq!(page.next_marker.as_deref(), Some("b2"));
        assert_eq!(
            db.backup_list("t1", None, 2, Some("b2"))
                .await
                .unwrap()
                .items
                .len(),
            1
        );
        assert_eq!(
            db.backup_list("t1", Some("i1"), 10, None)
                .await
                .unwrap()
                .items
                .len(),
            2
        );
        let mut done = b1.clone();
        done.state = "COMPLETED".into();
        done.size = Some(0.123456789);
        done.checksum = Some("d41d8cd98f00b204e9800998ecf8427e".into());
        done.location = Some("http://swift/v1/c/b1.xbstream.gz.enc".into());
        let saved = db.backup_save(&done).await.unwrap();
        assert_eq!(db.backup_get("b1").await.unwrap(), saved, "{b}");
        assert!(!db.backup_running_for_instance("i1").await.unwrap());
        db.backup_delete("b1").await.unwrap();
        assert!(db.backup_get("b1").await.is_err());
        assert!(db.backup_delete("b1").await.is_err());
        assert!(db.backup_save(&done).await.is_err());
    }
}
