//! Backups (api.md §9, internals-workflows.md §7.1, §7.4): create, list, show and delete
//! shapes and codes, the `create_backup`/`delete_backup` casts and their `backup_info`,
//! the instance's BACKUP status and the refusal of a second running backup, incremental
//! parents, children deleted first, quota `backups` exact under concurrent creates,
//! cross-project 404, `all_projects`, paging by offset and policy denials.

mod common;

use common::{send, TestApp, PROJECT};
use reqwest::Method;
use serde_json::{json, Value};
use trove_db::{ServiceStatus, TaskStatus};

const OTHER: &str = "0a1b2c3d4e5f60718293a4b5c6d7e8f9";

async fn create_instance(app: &TestApp, project: &str, name: &str) -> String {
    let r = send(
        app.request(Method::POST, &format!("/v1.0/{project}/instances"))
            .json(&json!({"instance": {
                "name": name, "flavorRef": 2, "volume": {"size": 1},
                "datastore": {"type": "mariadb", "version": "10.11"}
            }})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let id = r.json()["instance"]["id"].as_str().unwrap().to_string();
    let db = app.db();
    let mut inst = db.instance_get(&id).await.unwrap();
    inst.set_task_status(TaskStatus::None);
    inst.server_status = Some("ACTIVE".into());
    inst.compute_instance_id = Some(format!("server-{name}"));
    inst.volume_id = Some(format!("volume-{name}"));
    db.instance_save(&inst).await.unwrap();
    db.service_status_update(&id, ServiceStatus::Healthy)
        .await
        .unwrap();
    id
}

async fn post_backup(app: &TestApp, project: &str, body: Value) -> common::Resp {
    send(
        app.request(Method::POST, &format!("/v1.0/{project}/backups"))
            .json(&body),
    )
    .await
}

async fn backup_of(app: &TestApp, instance: &str, name: &str) -> String {
    let r = post_backup(
        app,
        PROJECT,
        json!({"backup": {"name": name, "instance": instance}}),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.text);
    r.json()["backup"]["id"].as_str().unwrap().to_string()
}

/// Marks a backup COMPLETED with a location and checksum, as the conductor would.
async fn complete(app: &TestApp, id: &str) {
    let db = app.db();
    let mut b = db.backup_get(id).await.unwrap();
    b.state = "COMPLETED".into();
    b.location = Some(format!("file:///var/lib/trove/backups/{id}.xbstream.zst"));
    b.checksum = Some(id.replace('-', "")[..32].to_string());
    b.size = Some(0.5);
    db.backup_save(&b).await.unwrap();
}

async fn quota_line(app: &TestApp, project: &str, resource: &str) -> (i64, i64) {
    let r = app.get_admin(&format!("/mgmt/quotas/{project}")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let v = r.json();
    let line = v["quotas"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["resource"] == resource)
        .unwrap()
        .clone();
    (
        line["in_use"].as_i64().unwrap(),
        line["reserved"].as_i64().unwrap(),
    )
}

fn casts_of(app: &TestApp, method: &str) -> Vec<Value> {
    app.taskmanager
        .casts()
        .into_iter()
        .filter(|(_, m, _)| m == method)
        .map(|(_, _, a)| a)
        .collect()
}

fn ids(v: &Value) -> Vec<String> {
    v["backups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn create_show_list_delete_on_every_backend() {
    for backend in trove_db::testing::backends() {
        let app = TestApp::start_on(backend).await;
        let seeded = app.seed().await;
        let inst = create_instance(&app, PROJECT, "a").await;

        let r = post_backup(
            &app,
            PROJECT,
            json!({"backup": {"name": "nightly", "instance": inst, "description": "before upgrade"}}),
        )
        .await;
        assert_eq!(r.status, 202, "{backend}: {}", r.text);
        let b = r.json()["backup"].clone();
        let id = b["id"].as_str().unwrap().to_string();
        assert_eq!(b["name"], "nightly");
        assert_eq!(b["description"], "before upgrade");
        assert_eq!(b["status"], "NEW");
        assert_eq!(b["instance_id"], inst.as_str());
        assert_eq!(b["size"], Value::Null);
        assert_eq!(b["locationRef"], Value::Null);
        assert_eq!(b["parent_id"], Value::Null);
        assert_eq!(b["project_id"], PROJECT);
        assert_eq!(
            b["datastore"],
            json!({"type": "mariadb", "version": "10.11", "version_id": seeded.v1011}),
            "{backend}"
        );
        assert!(b["created"].is_string() && b["updated"].is_string());

        let casts = casts_of(&app, "create_backup");
        assert_eq!(casts.len(), 1, "{backend}");
        assert_eq!(casts[0]["instance_id"], inst.as_str());
        assert_eq!(
            casts[0]["backup_info"],
            json!({
                "id": id, "name": "nightly", "description": "before upgrade",
                "instance_id": inst, "backup_type": "full", "checksum": null, "parent": null,
                "datastore": "mariadb", "datastore_version": "10.11",
                "storage_driver": "swift", "swift_container": null,
            }),
            "{backend}"
        );
        assert_eq!(quota_line(&app, PROJECT, "backups").await, (1, 0));

        // The instance shows BACKUP, and a second backup is refused as Trove refuses it.
        let shown = app.get(&format!("/instances/{inst}")).await.json();
        assert_eq!(shown["instance"]["status"], "BACKUP", "{backend}");
        let r = post_backup(
            &app,
            PROJECT,
            json!({"backup": {"name": "again", "instance": inst}}),
        )
        .await;
        assert_eq!(
            r.fault(422, "unprocessableEntity"),
            format!("Instance {inst} is not currently available for an action to be performed (instance status was BACKUP).")
        );
        assert_eq!(quota_line(&app, PROJECT, "backups").await, (1, 0));

        let r = app.get(&format!("/backups/{id}")).await;
        assert_eq!(r.status, 200, "{backend}: {}", r.text);
        assert_eq!(r.json()["backup"], b);
        let r = app.get("/backups").await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json(), json!({"backups": [b]}));
        let r = app.get(&format!("/instances/{inst}/backups")).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(ids(&r.json()), vec![id.clone()]);

        // Running: refused.
        let r = send(app.v1(Method::DELETE, &format!("/backups/{id}"))).await;
        assert_eq!(
            r.fault(422, "unprocessableEntity"),
            format!("Backup {id} cannot be deleted because it is running.")
        );
        complete(&app, &id).await;
        let shown = app.get(&format!("/instances/{inst}")).await.json();
        assert_eq!(shown["instance"]["status"], "ACTIVE", "{backend}");
        let r = app.get(&format!("/backups/{id}")).await.json();
        assert_eq!(r["backup"]["status"], "COMPLETED");
        assert_eq!(r["backup"]["size"], 0.5);
        assert!(r["backup"]["locationRef"]
            .as_str()
            .unwrap()
            .starts_with("file:///"));

        let r = send(app.v1(Method::DELETE, &format!("/backups/{id}"))).await;
        assert_eq!(r.status, 202, "{backend}: {}", r.text);
        assert_eq!(r.text, "");
        assert_eq!(
            casts_of(&app, "delete_backup"),
            vec![json!({"backup_id": id})]
        );
        assert_eq!(quota_line(&app, PROJECT, "backups").await, (0, 0));

        let r = app
            .get("/backups/7c1b2f3e-0000-4000-8000-000000000000")
            .await;
        r.fault(404, "itemNotFound");
    }
}

#[tokio::test]
async fn request_validation_and_instance_checks() {
    let app = TestApp::start().await;
    app.seed().await;
    let inst = create_instance(&app, PROJECT, "a").await;

    let r = post_backup(&app, PROJECT, json!({"backup": {"instance": inst}})).await;
    let msg = r.fault(400, "badRequest");
    assert!(msg.contains("'name' is a required property"), "{msg}");
    let r = post_backup(&app, PROJECT, json!({"backup": {"name": "x"}})).await;
    r.fault(400, "badRequest");
    let r = post_backup(
        &app,
        PROJECT,
        json!({"backup": {"name": "x", "instance": "not-a-uuid"}}),
    )
    .await;
    r.fault(400, "badRequest");
    let r = post_backup(
        &app,
        PROJECT,
        json!({"backup": {"name": "x", "instance": inst, "incremental": 2}}),
    )
    .await;
    r.fault(400, "badRequest");
    let r = post_backup(
        &app,
        PROJECT,
        json!({"backup": {"name": "x", "instance": inst, "swift_container": "a; rm -rf /"}}),
    )
    .await;
    r.fault(400, "badRequest");
    let unknown = "7c1b2f3e-0000-4000-8000-000000000000";
    let r = post_backup(
        &app,
        PROJECT,
        json!({"backup": {"name": "x", "instance": unknown}}),
    )
    .await;
    assert_eq!(
        r.fault(404, "itemNotFound"),
        format!("Resource {unknown} cannot be found.")
    );
    let r = post_backup(
        &app,
        PROJECT,
        json!({"backup": {"name": "x", "instance": inst, "parent_id": unknown}}),
    )
    .await;
    assert_eq!(
        r.fault(404, "itemNotFound"),
        format!("Backup {unknown} cannot be found.")
    );

    // An instance still building is not available.
    let r = send(
        app.v1(Method::POST, "/instances")
            .json(&json!({"instance": {
                "name": "b", "flavorRef": 2, "volume": {"size": 1},
                "datastore": {"type": "mariadb", "version": "10.11"}
            }})),
    )
    .await;
    let building = r.json()["instance"]["id"].as_str().unwrap().to_string();
    let r = post_backup(
        &app,
        PROJECT,
        json!({"backup": {"name": "x", "instance": building}}),
    )
    .await;
    r.fault(422, "unprocessableEntity");

    // Nothing was created or kept reserved by the refusals.
    assert!(casts_of(&app, "create_backup").is_empty());
    assert_eq!(quota_line(&app, PROJECT, "backups").await, (0, 0));
    assert!(ids(&app.get("/backups").await.json()).is_empty());
}

#[tokio::test]
async fn incremental_backups_and_children_deleted_first() {
    let app = TestApp::start().await;
    app.seed().await;
    let inst = create_instance(&app, PROJECT, "a").await;
    let full = backup_of(&app, &inst, "full").await;
    complete(&app, &full).await;

    // `incremental: 1` picks the latest COMPLETED backup as parent.
    let r = post_backup(
        &app,
        PROJECT,
        json!({"backup": {"name": "inc1", "instance": inst, "incremental": 1, "swift_container": "my-backups"}}),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.text);
    let inc1 = r.json()["backup"]["id"].as_str().unwrap().to_string();
    assert_eq!(r.json()["backup"]["parent_id"], full.as_str());
    let info = casts_of(&app, "create_backup")[1]["backup_info"].clone();
    assert_eq!(info["backup_type"], "incremental");
    assert_eq!(info["swift_container"], "my-backups");
    assert_eq!(
        info["parent"],
        json!({
            "location": format!("file:///var/lib/trove/backups/{full}.xbstream.zst"),
            "checksum": full.replace('-', "")[..32].to_string(),
        })
    );
    complete(&app, &inc1).await;

    // An explicit parent.
    let r = post_backup(
        &app,
        PROJECT,
        json!({"backup": {"name": "inc2", "instance": inst, "parent_id": inc1}}),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.text);
    let inc2 = r.json()["backup"]["id"].as_str().unwrap().to_string();
    assert_eq!(r.json()["backup"]["parent_id"], inc1.as_str());

    // A parent of another instance is refused.
    let other_inst = create_instance(&app, PROJECT, "b").await;
    let r = post_backup(
        &app,
        PROJECT,
        json!({"backup": {"name": "x", "instance": other_inst, "parent_id": full}}),
    )
    .await;
    r.fault(400, "badRequest");

    // The running grandchild blocks deleting the chain; nothing is cast.
    let r = send(app.v1(Method::DELETE, &format!("/backups/{full}"))).await;
    assert_eq!(
        r.fault(422, "unprocessableEntity"),
        format!("Backup {inc2} cannot be deleted because it is running.")
    );
    assert!(casts_of(&app, "delete_backup").is_empty());
    assert_eq!(quota_line(&app, PROJECT, "backups").await, (3, 0));

    complete(&app, &inc2).await;
    let r = send(app.v1(Method::DELETE, &format!("/backups/{full}"))).await;
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(
        casts_of(&app, "delete_backup"),
        vec![
            json!({"backup_id": inc2}),
            json!({"backup_id": inc1}),
            json!({"backup_id": full}),
        ]
    );
    assert_eq!(quota_line(&app, PROJECT, "backups").await, (0, 0));
}

#[tokio::test]
async fn concurrent_creates_keep_the_quota_exact_on_every_backend() {
    for backend in trove_db::testing::backends() {
        let app = TestApp::start_on(backend).await;
        app.seed().await;
        let r = send(
            app.v1_admin(Method::PUT, &format!("/mgmt/quotas/{PROJECT}"))
                .json(&json!({"quotas": {"instances": 30, "backups": 5}})),
        )
        .await;
        assert_eq!(r.status, 200, "{backend}: {}", r.text);
        let mut instances = Vec::new();
        for n in 0..20 {
            instances.push(create_instance(&app, PROJECT, &format!("i{n}")).await);
        }
        let requests: Vec<_> = instances
            .iter()
            .map(|i| {
                post_backup(
                    &app,
                    PROJECT,
                    json!({"backup": {"name": "b", "instance": i}}),
                )
            })
            .collect();
        let answers = futures::future::join_all(requests).await;
        let ok = answers.iter().filter(|r| r.status == 202).count();
        for r in answers.iter().filter(|r| r.status != 202) {
            assert_eq!(
                r.fault(413, "overLimit"),
                "Quota exceeded for resources: ['backups'].",
                "{backend}"
            );
        }
        assert_eq!(ok, 5, "{backend}");
        assert_eq!(
            quota_line(&app, PROJECT, "backups").await,
            (5, 0),
            "{backend}"
        );
        assert_eq!(ids(&app.get("/backups").await.json()).len(), 5, "{backend}");
        assert_eq!(casts_of(&app, "create_backup").len(), 5, "{backend}");
    }
}

#[tokio::test]
async fn concurrent_creates_for_one_instance_start_one_backup_on_every_backend() {
    for backend in trove_db::testing::backends() {
        let app = TestApp::start_on(backend).await;
        app.seed().await;
        let inst = create_instance(&app, PROJECT, "a").await;
        let requests: Vec<_> = (0..10)
            .map(|n| {
                post_backup(
                    &app,
                    PROJECT,
                    json!({"backup": {"name": format!("b{n}"), "instance": inst}}),
                )
            })
            .collect();
        let answers = futures::future::join_all(requests).await;
        let ok = answers.iter().filter(|r| r.status == 202).count();
        for r in answers.iter().filter(|r| r.status != 202) {
            let msg = r.fault(422, "unprocessableEntity");
            assert!(msg.contains("BACKUP"), "{backend}: {msg}");
        }
        assert_eq!(ok, 1, "{backend}");
        assert_eq!(
            quota_line(&app, PROJECT, "backups").await,
            (1, 0),
            "{backend}"
        );
        assert_eq!(ids(&app.get("/backups").await.json()).len(), 1, "{backend}");
        assert_eq!(casts_of(&app, "create_backup").len(), 1, "{backend}");
    }
}

#[tokio::test]
async fn other_projects_see_404_and_admins_list_all_projects() {
    let app = TestApp::start().await;
    app.seed().await;
    let mine = create_instance(&app, PROJECT, "a").await;
    let theirs = create_instance(&app, OTHER, "b").await;
    let my_backup = backup_of(&app, &mine, "mine").await;
    let r = post_backup(
        &app,
        OTHER,
        json!({"backup": {"name": "theirs", "instance": theirs}}),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.text);
    let their_backup = r.json()["backup"]["id"].as_str().unwrap().to_string();

    // Another project's backup and instance are 404 for members.
    let r = app.get(&format!("/backups/{their_backup}")).await;
    assert_eq!(
        r.fault(404, "itemNotFound"),
        format!("Backup {their_backup} cannot be found.")
    );
    let r = send(app.v1(Method::DELETE, &format!("/backups/{their_backup}"))).await;
    r.fault(404, "itemNotFound");
    let r = app.get(&format!("/instances/{theirs}/backups")).await;
    r.fault(404, "itemNotFound");
    let r = post_backup(
        &app,
        PROJECT,
        json!({"backup": {"name": "x", "instance": theirs}}),
    )
    .await;
    r.fault(404, "itemNotFound");
    assert_eq!(
        ids(&app.get("/backups").await.json()),
        vec![my_backup.clone()]
    );

    // all_projects / project_id are for admins.
    let r = app.get("/backups?all_projects=true").await;
    assert_eq!(
        r.fault(403, "forbidden"),
        "Policy doesn't allow backup:index:all_projects to be performed."
    );
    app.get(&format!("/backups?project_id={OTHER}"))
        .await
        .fault(403, "forbidden");
    let mut all = ids(&app.get_admin("/backups?all_projects=Yes").await.json());
    all.sort();
    let mut want = vec![my_backup.clone(), their_backup.clone()];
    want.sort();
    assert_eq!(all, want);
    assert_eq!(
        ids(&app
            .get_admin(&format!("/backups?project_id={OTHER}"))
            .await
            .json()),
        vec![their_backup.clone()]
    );
    assert_eq!(
        ids(&app.get_admin("/backups").await.json()),
        vec![my_backup.clone()],
        "an admin's plain list is their own project"
    );
    // Admins reach other projects' backups by id.
    let r = app.get_admin(&format!("/backups/{their_backup}")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["backup"]["project_id"], OTHER);
    let r = app.get_admin(&format!("/instances/{theirs}/backups")).await;
    assert_eq!(ids(&r.json()), vec![their_backup]);
}

#[tokio::test]
async fn lists_filter_and_page_by_offset() {
    let app = TestApp::start().await;
    app.seed().await;
    let a = create_instance(&app, PROJECT, "a").await;
    let b = create_instance(&app, PROJECT, "b").await;
    let c = create_instance(&app, PROJECT, "c").await;
    let ba = backup_of(&app, &a, "ba").await;
    complete(&app, &ba).await;
    let bb = backup_of(&app, &b, "bb").await;
    complete(&app, &bb).await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let bc = backup_of(&app, &c, "bc").await;

    let all = ids(&app.get("/backups").await.json());
    assert_eq!(all.len(), 3);
    assert_eq!(all[0], bc, "most recently updated first");

    let page1 = app.get("/backups?limit=2").await.json();
    assert_eq!(ids(&page1).len(), 2);
    assert_eq!(page1["links"][0]["rel"], "next");
    let next = page1["links"][0]["href"].as_str().unwrap();
    assert!(
        next.contains("marker=2") && next.starts_with("https://"),
        "{next}"
    );
    let page2 = app.get("/backups?limit=2&marker=2").await.json();
    assert_eq!(ids(&page2).len(), 1);
    assert!(page2.get("links").is_none());
    let mut seen: Vec<String> = ids(&page1).into_iter().chain(ids(&page2)).collect();
    seen.sort();
    let mut want = vec![ba.clone(), bb.clone(), bc.clone()];
    want.sort();
    assert_eq!(seen, want);
    // A full page always links to a next one, even when it is empty.
    let page = app.get("/backups?limit=3").await.json();
    assert!(page["links"][0]["href"]
        .as_str()
        .unwrap()
        .contains("marker=3"));
    let empty = app.get("/backups?limit=3&marker=3").await.json();
    assert_eq!(empty, json!({"backups": []}));
    app.get("/backups?marker=x").await.fault(400, "badRequest");
    app.get("/backups?limit=0").await.fault(400, "badRequest");

    assert_eq!(
        ids(&app.get(&format!("/backups?instance_id={b}")).await.json()),
        vec![bb.clone()]
    );
    assert_eq!(
        ids(&app.get("/backups?datastore=mariadb").await.json()).len(),
        3
    );
    assert!(ids(&app.get("/backups?datastore=postgresql").await.json()).is_empty());
    app.get("/backups?datastore=nosuch")
        .await
        .fault(404, "itemNotFound");

    let r = app
        .get(&format!("/instances/{a}/backups?limit=1"))
        .await
        .json();
    assert_eq!(ids(&r), vec![ba]);
    assert!(r["links"][0]["href"].as_str().unwrap().contains("marker=1"));
}

#[tokio::test]
async fn policy_denials_are_403() {
    let enforcer = trove_api::policy::Enforcer::with_overrides([
        ("backup:create", "!"),
        ("backup:show", "!"),
        ("backup:delete", "!"),
        ("backup:index", "!"),
        ("instance:backups", "!"),
    ])
    .unwrap();
    let app = TestApp::start_with(common::Options {
        enforcer: Some(std::sync::Arc::new(enforcer)),
        ..common::Options::default()
    })
    .await;
    app.seed().await;
    let inst = create_instance(&app, PROJECT, "a").await;
    let r = post_backup(
        &app,
        PROJECT,
        json!({"backup": {"name": "x", "instance": inst}}),
    )
    .await;
    assert_eq!(
        r.fault(403, "forbidden"),
        "Policy doesn't allow backup:create to be performed."
    );
    assert!(casts_of(&app, "create_backup").is_empty());
    assert_eq!(
        app.get("/backups").await.fault(403, "forbidden"),
        "Policy doesn't allow backup:index to be performed."
    );
    assert_eq!(
        app.get(&format!("/instances/{inst}/backups"))
            .await
            .fault(403, "forbidden"),
        "Policy doesn't allow instance:backups to be performed."
    );
    // A backup made behind the API: show and delete are denied by policy.
    let id = trove_db::new_id();
    app.db()
        .backup_create(&trove_db::Backup {
            id: id.clone(),
            name: "x".into(),
            tenant_id: Some(PROJECT.into()),
            state: "COMPLETED".into(),
            instance_id: Some(inst.clone()),
            ..trove_db::Backup::default()
        })
        .await
        .unwrap();
    assert_eq!(
        app.get(&format!("/backups/{id}"))
            .await
            .fault(403, "forbidden"),
        "Policy doesn't allow backup:show to be performed."
    );
    let r = send(app.v1(Method::DELETE, &format!("/backups/{id}"))).await;
    assert_eq!(
        r.fault(403, "forbidden"),
        "Policy doesn't allow backup:delete to be performed."
    );
}

#[tokio::test]
async fn restore_point_checks() {
    let app = TestApp::start().await;
    let seeded = app.seed().await;
    let inst = create_instance(&app, PROJECT, "a").await;
    let id = backup_of(&app, &inst, "full").await;
    let create = |backup: String, size: i64| {
        send(
            app.v1(Method::POST, "/instances")
                .json(&json!({"instance": {
                    "name": "restored", "flavorRef": 2, "volume": {"size": size},
                    "datastore": {"type": "mariadb", "version": "10.11"},
                    "restorePoint": {"backupRef": backup}
                }})),
        )
    };
    let unknown = "7c1b2f3e-0000-4000-8000-000000000000".to_string();
    assert_eq!(
        create(unknown.clone(), 1).await.fault(404, "itemNotFound"),
        format!("Backup {unknown} cannot be found.")
    );
    // Still running.
    assert_eq!(
        create(id.clone(), 1).await.fault(409, "conflict"),
        format!(
            "Unable to create instance because backup {id} is not completed. Actual state: NEW."
        )
    );
    complete(&app, &id).await;
    let mut b = app.db().backup_get(&id).await.unwrap();
    b.size = Some(2.5);
    app.db().backup_save(&b).await.unwrap();
    assert_eq!(
        create(id.clone(), 2).await.fault(403, "forbidden"),
        "Backup is too large for given flavor or volume. Backup size: 2.5 GBs. Available size: 2 GBs."
    );
    // A backup of another datastore.
    let pg = trove_db::new_id();
    app.db()
        .backup_create(&trove_db::Backup {
            id: pg.clone(),
            name: "pg".into(),
            tenant_id: Some(PROJECT.into()),
            state: "COMPLETED".into(),
            size: Some(0.1),
            datastore_version_id: Some(seeded.pg15.clone()),
            ..trove_db::Backup::default()
        })
        .await
        .unwrap();
    assert_eq!(
        create(pg, 1).await.fault(400, "badRequest"),
        "The datastore from which the backup was taken, postgresql, does not match the destination datastore of mariadb."
    );
    // Another project's backup is not visible.
    let theirs = create_instance(&app, OTHER, "b").await;
    let r = post_backup(
        &app,
        OTHER,
        json!({"backup": {"name": "theirs", "instance": theirs}}),
    )
    .await;
    let their_backup = r.json()["backup"]["id"].as_str().unwrap().to_string();
    complete(&app, &their_backup).await;
    create(their_backup, 1).await.fault(404, "itemNotFound");
    // Every check passes: the instance is created and the taskmanager is asked to build
    // it from the backup.
    let r = create(id.clone(), 3).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let casts = app.taskmanager.casts();
    let (_, method, args) = casts.last().unwrap();
    assert_eq!(method, "create_instance");
    assert_eq!(args["backup_id"], id.as_str());
}

#[tokio::test]
async fn backup_strategies_set_the_default_container_on_every_backend() {
    for backend in trove_db::testing::backends() {
        let app = TestApp::start_on(backend).await;
        app.seed().await;
        strategies(&app).await;
    }
}

async fn strategies(app: &TestApp) {
    let inst = create_instance(app, PROJECT, "a").await;
    let other = create_instance(app, PROJECT, "b").await;
    let post = |body: Value| send(app.v1(Method::POST, "/backup_strategies").json(&body));

    let r = post(json!({"backup_strategy": {"swift_container": "project-c"}})).await;
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(
        r.json(),
        json!({"backup_strategy": {"project_id": PROJECT, "instance_id": "", "backend": "swift", "swift_container": "project-c"}})
    );
    let r = post(json!({"backup_strategy": {"instance_id": inst, "swift_container": "old"}})).await;
    assert_eq!(r.status, 202, "{}", r.text);
    // Creating again replaces.
    let r =
        post(json!({"backup_strategy": {"instance_id": inst, "swift_container": "inst-c"}})).await;
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(r.json()["backup_strategy"]["instance_id"], inst.as_str());

    post(json!({"backup_strategy": {}}))
        .await
        .fault(400, "badRequest");
    post(json!({"backup_strategy": {"swift_container": "c", "backend": "x"}}))
        .await
        .fault(400, "badRequest");
    post(json!({"backup_strategy": {"swift_container": "a b"}}))
        .await
        .fault(400, "badRequest");
    post(json!({"backup_strategy": {"instance_id": "7c1b2f3e-0000-4000-8000-000000000000", "swift_container": "c"}}))
        .await
        .fault(404, "itemNotFound");

    let list = app.get("/backup_strategies").await;
    assert_eq!(list.status, 200, "{}", list.text);
    let all = list.json()["backup_strategies"].as_array().unwrap().clone();
    assert_eq!(all.len(), 2);
    let only = app
        .get(&format!("/backup_strategies?instance_id={inst}"))
        .await
        .json();
    assert_eq!(
        only["backup_strategies"],
        json!([{"project_id": PROJECT, "instance_id": inst, "backend": "swift", "swift_container": "inst-c"}])
    );
    app.get(&format!("/backup_strategies?project_id={OTHER}"))
        .await
        .fault(403, "forbidden");
    let r = app
        .get_admin(&format!("/backup_strategies?project_id={OTHER}"))
        .await;
    assert_eq!(r.json(), json!({"backup_strategies": []}));

    // Backups take the instance's container, else the project's; the request wins.
    backup_of(app, &inst, "x").await;
    backup_of(app, &other, "y").await;
    let casts = casts_of(app, "create_backup");
    assert_eq!(casts[0]["backup_info"]["swift_container"], "inst-c");
    assert_eq!(casts[1]["backup_info"]["swift_container"], "project-c");

    let r = send(app.v1(
        Method::DELETE,
        &format!("/backup_strategies?instance_id={inst}"),
    ))
    .await;
    assert_eq!(r.status, 202, "{}", r.text);
    // Deleting what is not there is fine.
    let r = send(app.v1(
        Method::DELETE,
        &format!("/backup_strategies?instance_id={inst}"),
    ))
    .await;
    assert_eq!(r.status, 202, "{}", r.text);
    send(app.v1(
        Method::DELETE,
        &format!("/backup_strategies?project_id={OTHER}"),
    ))
    .await
    .fault(403, "forbidden");
    let left = app.get("/backup_strategies").await.json();
    assert_eq!(left["backup_strategies"][0]["instance_id"], "");
    assert_eq!(left["backup_strategies"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_failed_backup_shows_why_on_every_backend() {
    for backend in trove_db::testing::backends() {
        let app = TestApp::start_on(backend).await;
        app.seed().await;
        let inst = create_instance(&app, PROJECT, "a").await;
        let id = backup_of(&app, &inst, "nightly").await;
        let r = app.get(&format!("/backups/{id}")).await.json();
        assert!(r["backup"].get("fault").is_none(), "{backend}: {r}");

        // What the conductor stores when the guest reports the failure.
        let reason = "The backup failed: mariadb-backup exited with status 1: \
                      InnoDB: Error: log file ./ib_logfile0 is of different size.";
        let db = app.db();
        let mut b = db.backup_get(&id).await.unwrap();
        b.state = "FAILED".into();
        b.fault_message = Some(reason.into());
        let saved = db.backup_save(&b).await.unwrap();
        let updated = saved
            .updated
            .unwrap()
            .format("%Y-%m-%dT%H:%M:%S")
            .to_string();

        let r = app.get(&format!("/backups/{id}")).await;
        assert_eq!(r.status, 200, "{backend}: {}", r.text);
        let shown = r.json()["backup"].clone();
        assert_eq!(shown["status"], "FAILED");
        assert_eq!(
            shown["fault"],
            json!({"message": reason, "created": updated}),
            "{backend}"
        );
        assert_eq!(shown["updated"], updated.as_str(), "{backend}");
        // The lists carry the same object.
        let listed = app.get("/backups").await.json();
        assert_eq!(listed["backups"][0], shown, "{backend}");
        let listed = app.get(&format!("/instances/{inst}/backups")).await.json();
        assert_eq!(listed["backups"][0], shown, "{backend}");
    }
}
