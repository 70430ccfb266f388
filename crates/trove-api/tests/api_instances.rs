//! Instances (api.md §4, §5): create, list/detail with paging, show, update, delete and
//! actions, with the state gates of api-statuses.md, quotas and cross-tenant 404s.

mod common;

use common::{redact, send, TestApp, PROJECT};
use reqwest::Method;
use serde_json::{json, Value};
use trove_db::{ServiceStatus, TaskStatus};

async fn create(app: &TestApp, body: Value) -> common::Resp {
    send(app.v1(Method::POST, "/instances").json(&body)).await
}

fn minimal(name: &str) -> Value {
    json!({"instance": {
        "name": name, "flavorRef": 2, "volume": {"size": 1},
        "datastore": {"type": "mariadb", "version": "10.11"}
    }})
}

async fn create_ok(app: &TestApp, name: &str) -> String {
    let r = create(app, minimal(name)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json()["instance"]["id"].as_str().unwrap().to_string()
}

async fn action(app: &TestApp, id: &str, body: Value) -> common::Resp {
    send(
        app.v1(Method::POST, &format!("/instances/{id}/action"))
            .json(&body),
    )
    .await
}

#[tokio::test]
async fn create_answers_200_with_the_build_view_and_casts() {
    let app = TestApp::start().await;
    app.seed().await;
    let body = json!({"instance": {
        "name": "orders-db", "flavorRef": "d2", "volume": {"size": "2", "type": null},
        "datastore": {"type": "mariadb", "version": "10.11"},
        "databases": [{"name": "orders"}],
        "users": [{"name": "app", "password": "s3cret", "databases": [{"name": "orders"}]}],
        "nics": [{"network_id": "9b2d4c6e-0a1b-4c2d-8e3f-5a6b7c8d9e0f"}],
        "access": {"is_public": false, "allowed_cidrs": ["192.0.2.0/24"]},
        "locality": "anti-affinity"
    }});
    let r = create(&app, body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let v = r.json();
    assert_eq!(v["instance"]["status"], "BUILD");
    assert_eq!(v["instance"]["operating_status"], "");
    insta::assert_json_snapshot!("instance_create", redact(&v));
    let id = v["instance"]["id"].as_str().unwrap().to_string();

    // The row: task BUILDING, service NEW, an encrypted per-instance key.
    let row = app.db().instance_get(&id).await.unwrap();
    assert_eq!(row.task_status(), Some(TaskStatus::Building));
    assert_eq!(row.tenant_id.as_deref(), Some(PROJECT));
    let key = row.encrypted_key.clone().expect("per-instance key");
    let cfg = trove_config::Config::default();
    let plain = trove_common::crypto::decrypt_instance_key(
        &key,
        cfg.default.inst_rpc_key_encr_key.expose_secret(),
    )
    .unwrap();
    assert_eq!(plain.len(), 32);
    let ss = app.db().service_status_get(&id).await.unwrap();
    assert_eq!(ss.status(), Some(ServiceStatus::New));

    // The cast, with Trove's argument names.
    let casts = app.taskmanager.casts();
    assert_eq!(casts.len(), 1);
    let (ctx, method, args) = &casts[0];
    assert_eq!(method, "create_instance");
    assert_eq!(ctx.project_id, PROJECT);
    assert!(ctx.request_id.starts_with("req-"));
    assert_eq!(args["instance_id"], id.as_str());
    assert_eq!(args["flavor"]["id"], "d2");
    assert_eq!(args["datastore_manager"], "mariadb");
    assert_eq!(args["ds_version"], "10.11.6");
    assert_eq!(args["volume_size"], 2);
    assert_eq!(args["databases"][0]["_name"], "orders");
    assert_eq!(args["users"][0]["_host"], "%");
    assert_eq!(args["users"][0]["_databases"][0]["_name"], "orders");
    assert_eq!(
        args["nics"][0]["network_id"],
        "9b2d4c6e-0a1b-4c2d-8e3f-5a6b7c8d9e0f"
    );
    assert_eq!(args["locality"], "anti-affinity");
    // A trove-rpc TaskManagerRequest can be decoded from it.
    let map = args.as_object().unwrap().clone();
    trove_rpc::api::taskmanager::TaskManagerRequest::decode("create_instance", map).unwrap();

    // Quota usage counted.
    let q = app.get(&format!("/mgmt/quotas/{PROJECT}")).await.json();
    let instances = q["quotas"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["resource"] == "instances")
        .unwrap();
    assert_eq!(instances["in_use"], 1);
}

#[tokio::test]
async fn create_errors() {
    let app = TestApp::start().await;
    app.seed().await;
    let cases: Vec<(Value, u16, &str, &str)> = vec![
        (json!({}), 400, "badRequest", "Validation error: 'instance' is a required property"),
        (
            json!({"instance": {"flavorRef": 2}}),
            400,
            "badRequest",
            "Validation error: instance 'name' is a required property",
        ),
        (
            json!({"instance": {"name": "a", "volume": {"size": 0}, "flavorRef": 2}}),
            400,
            "badRequest",
            "Validation error: instance['volume']['size'] 0 is not valid under any of the given schemas",
        ),
        (
            json!({"instance": {"name": "a", "volume": {"size": 1}, "datastore": {"type": "mariadb"}}}),
            400,
            "badRequest",
            "Resource None cannot be found.",
        ),
        (
            json!({"instance": {"name": "a", "flavorRef": "nope", "volume": {"size": 1}, "datastore": {"type": "mariadb"}}}),
            400,
            "badRequest",
            "Resource nope cannot be found.",
        ),
        (
            json!({"instance": {"name": "a", "flavorRef": 2, "datastore": {"type": "mariadb"}}}),
            400,
            "badRequest",
            "Volume size was not specified.",
        ),
        (
            json!({"instance": {"name": "a", "flavorRef": 2, "volume": {"size": 11}, "datastore": {"type": "mariadb"}}}),
            413,
            "overLimit",
            "Volume 'size' cannot exceed maximum of 10 GB, 11 cannot be accepted.",
        ),
        (
            json!({"instance": {"name": "a", "flavorRef": 2, "volume": {"size": 1}, "datastore": {"type": "nosql"}}}),
            404,
            "itemNotFound",
            "Datastore 'nosql' cannot be found.",
        ),
        (
            json!({"instance": {"name": "a", "flavorRef": 2, "volume": {"size": 1}}}),
            400,
            "badRequest",
            "Please specify datastore. No default datastore is defined.",
        ),
        (
            json!({"instance": {"name": "a", "flavorRef": 2, "volume": {"size": 1}, "datastore": {"type": "mariadb", "version": "10.6"}}}),
            400,
            "badRequest",
            "Datastore version '10.6' is not active.",
        ),
        (
            json!({"instance": {"name": "a", "flavorRef": 2, "volume": {"size": 1}, "datastore": {"type": "postgresql"}}}),
            400,
            "badRequest",
            "Default version for datastore 'postgresql' not found.",
        ),
        (
            json!({"instance": {"name": "a", "flavorRef": 2, "volume": {"size": 1}, "datastore": {"type": "mariadb", "version": "9"}}}),
            400,
            "badRequest",
            "Datastore version '9' cannot be found.",
        ),
        (
            json!({"instance": {"name": "a", "flavorRef": 2, "volume": {"size": 1}, "datastore": {"type": "mariadb"}, "locality": "near"}}),
            400,
            "badRequest",
            "Locality 'near' is not supported. Valid values are: affinity, soft-affinity, anti-affinity, soft-anti-affinity.",
        ),
        (
            json!({"instance": {"name": "a", "flavorRef": 2, "volume": {"size": 1}, "datastore": {"type": "mariadb"}, "users": [{"name": "u", "password": "p", "databases": [{"name": "x"}]}]}}),
            400,
            "badRequest",
            "Database 'x' of user 'u' is not in the list of databases to create.",
        ),
        (
            json!({"instance": {"name": "a", "flavorRef": 2, "volume": {"size": 1}, "datastore": {"type": "mariadb"}, "databases": [{"name": "mysql"}]}}),
            400,
            "badRequest",
            "The database name 'mysql' is reserved.",
        ),
    ];
    for (body, status, key, message) in cases {
        let r = create(&app, body.clone()).await;
        assert_eq!(r.fault(status, key), message, "{body}");
    }
    // Wrong types and malformed JSON never give 500.
    for raw in [
        "{",
        "[]",
        "null",
        "\"x\"",
        "{\"instance\": []}",
        "{\"instance\": {\"name\": {\"a\": 1}}}",
    ] {
        let r = send(
            app.v1(Method::POST, "/instances")
                .header("content-type", "application/json")
                .body(raw),
        )
        .await;
        r.fault(400, "badRequest");
    }
    assert!(app.taskmanager.casts().is_empty());
}

#[tokio::test]
async fn quota_exceeded_is_413() {
    let app = TestApp::start().await;
    app.seed().await;
    let r = send(
        app.v1_admin(Method::PUT, &format!("/mgmt/quotas/{PROJECT}"))
            .json(&json!({"quotas": {"instances": 1, "ram": null}})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json(), json!({"quotas": {"instances": 1}}));
    create_ok(&app, "first").await;
    let r = create(&app, minimal("second")).await;
    assert_eq!(
        r.fault(413, "overLimit"),
        "Quota exceeded for resources: ['instances']."
    );
    // Nothing was written for the refused request.
    let list = app.get("/instances").await.json();
    assert_eq!(list["instances"].as_array().unwrap().len(), 1);
    assert_eq!(app.taskmanager.casts().len(), 1);
}

#[tokio::test]
async fn list_pages_by_marker() {
    let app = TestApp::start().await;
    app.seed().await;
    let mut ids = Vec::new();
    for n in ["a", "b", "c"] {
        ids.push(create_ok(&app, n).await);
    }
    ids.sort();
    let first = app.get("/instances?limit=2").await;
    assert_eq!(first.status, 200);
    let v = first.json();
    assert_eq!(v["instances"].as_array().unwrap().len(), 2);
    let next = v["links"][0]["href"].as_str().unwrap();
    assert_eq!(v["links"][0]["rel"], "next");
    assert!(
        next.starts_with(&format!(
            "https://db.example.org:8779/v1.0/{PROJECT}/instances?limit=2&marker="
        )),
        "{next}"
    );
    assert!(next.ends_with(&ids[1]), "{next}");
    let second = app
        .get(&format!("/instances?limit=2&marker={}", ids[1]))
        .await
        .json();
    assert_eq!(second["instances"].as_array().unwrap().len(), 1);
    assert_eq!(second["instances"][0]["id"], ids[2].as_str());
    assert!(second.get("links").is_none());
    // The list view has no timestamps; the detail view has them.
    let list = app.get("/instances").await.json();
    assert!(list["instances"][0].get("created").is_none());
    let item_a = list["instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "a")
        .unwrap();
    insta::assert_json_snapshot!("instance_list_item", redact(item_a));
    let detail = app.get("/instances/detail").await.json();
    assert!(detail["instances"][0].get("created").is_some());
    let bad = app.get("/instances?limit=abc").await;
    bad.fault(400, "badRequest");
}

#[tokio::test]
async fn other_projects_get_404_and_admins_see_more() {
    let app = TestApp::start().await;
    app.seed().await;
    let id = create_ok(&app, "mine").await;
    let other = |m: Method, p: &str| app.request(m, &format!("/v1.0/otherproject{p}"));
    let r = send(other(Method::GET, &format!("/instances/{id}"))).await;
    assert_eq!(
        r.fault(404, "itemNotFound"),
        format!("Resource {id} cannot be found.")
    );
    send(other(Method::DELETE, &format!("/instances/{id}")))
        .await
        .fault(404, "itemNotFound");
    send(other(Method::POST, &format!("/instances/{id}/action")).json(&json!({"restart": {}})))
        .await
        .fault(404, "itemNotFound");
    send(other(Method::PUT, &format!("/instances/{id}")).json(&json!({"instance": {"name": "x"}})))
        .await
        .fault(404, "itemNotFound");
    let list = send(other(Method::GET, "/instances")).await.json();
    assert_eq!(list["instances"], json!([]));
    // Members do not see service-tenant ids.
    let member = app.get(&format!("/instances/{id}")).await.json();
    for key in [
        "server_id",
        "volume_id",
        "tenant_id",
        "encrypted_rpc_messaging",
    ] {
        assert!(member["instance"].get(key).is_none(), "{key}");
    }
    // An admin of another project can read it by id.
    let admin =
        send(other(Method::GET, &format!("/instances/{id}")).header("x-roles", "admin")).await;
    assert_eq!(admin.status, 200);
    let v = admin.json();
    assert_eq!(v["instance"]["tenant_id"], PROJECT);
    assert_eq!(v["instance"]["encrypted_rpc_messaging"], true);
    assert!(v["instance"].get("server_id").is_some());
    // Unknown ids and names are 404.
    app.get("/instances/orders-db")
        .await
        .fault(404, "itemNotFound");
}

#[tokio::test]
async fn delete_is_refused_in_build_then_allowed_after_reset() {
    let app = TestApp::start().await;
    app.seed().await;
    let id = create_ok(&app, "gone").await;
    let r = send(app.v1(Method::DELETE, &format!("/instances/{id}"))).await;
    assert_eq!(
        r.fault(422, "unprocessableEntity"),
        format!("Instance {id} is not ready. (Status is BUILD).")
    );
    // reset_status is admin-only by default.
    let r = action(&app, &id, json!({"reset_status": {}})).await;
    assert_eq!(
        r.fault(403, "forbidden"),
        "Policy doesn't allow instance:reset_status to be performed."
    );
    let r = send(
        app.v1_admin(Method::POST, &format!("/instances/{id}/action"))
            .json(&json!({"reset_status": {}})),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.text);
    assert!(r.text.is_empty());
    let shown = app.get(&format!("/instances/{id}")).await.json();
    assert_eq!(shown["instance"]["status"], "SHUTDOWN");
    let r = send(app.v1(Method::DELETE, &format!("/instances/{id}"))).await;
    assert_eq!(r.status, 202, "{}", r.text);
    assert!(r.text.is_empty());
    assert_eq!(r.header("content-type"), "application/json");
    let (_, method, args) = app.taskmanager.casts().pop().unwrap();
    assert_eq!(method, "delete_instance");
    assert_eq!(args, json!({"instance_id": id}));
    let row = app.db().instance_get(&id).await.unwrap();
    assert_eq!(row.task_status(), Some(TaskStatus::Deleting));
    let q = app.get(&format!("/mgmt/quotas/{PROJECT}")).await.json();
    let inst = q["quotas"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["resource"] == "instances")
        .unwrap();
    assert_eq!(inst["in_use"], 0);
}

#[tokio::test]
async fn restart_and_resize_follow_the_action_gate() {
    let app = TestApp::start().await;
    app.seed().await;
    let id = create_ok(&app, "busy").await;
    let r = action(&app, &id, json!({"restart": {}})).await;
    assert_eq!(
        r.fault(422, "unprocessableEntity"),
        format!("Instance {id} is not currently available for an action to be performed (instance status was BUILD).")
    );
    app.make_active(&id).await;
    let shown = app.get(&format!("/instances/{id}")).await.json();
    assert_eq!(shown["instance"]["status"], "ACTIVE");
    assert_eq!(shown["instance"]["operating_status"], "HEALTHY");

    // Resize checks before the gate-passing action.
    let r = action(&app, &id, json!({"resize": {"flavorRef": "2"}})).await;
    assert_eq!(
        r.fault(400, "badRequest"),
        "The new flavor id must be different than the current flavor id of '2'."
    );
    let r = action(&app, &id, json!({"resize": {"flavorRef": "nope"}})).await;
    assert_eq!(r.fault(400, "badRequest"), "Resource nope cannot be found.");
    let r = action(&app, &id, json!({"resize": {"volume": {"size": 1}}})).await;
    assert_eq!(
        r.fault(400, "badRequest"),
        "The new volume 'size' must be larger than the current volume size of '1'."
    );
    let r = action(&app, &id, json!({"resize": {"volume": {"size": 50}}})).await;
    r.fault(413, "overLimit");

    let r = action(&app, &id, json!({"restart": {}})).await;
    assert_eq!(r.status, 202, "{}", r.text);
    let shown = app.get(&format!("/instances/{id}")).await.json();
    assert_eq!(shown["instance"]["status"], "REBOOT");
    let r = action(&app, &id, json!({"resize": {"flavorRef": "d2"}})).await;
    assert_eq!(
        r.fault(422, "unprocessableEntity"),
        format!("Instance {id} is not currently available for an action to be performed (task status was REBOOTING).")
    );
    app.make_active(&id).await;
    let r = action(&app, &id, json!({"resize": {"flavorRef": "d2"}})).await;
    assert_eq!(r.status, 202, "{}", r.text);
    app.make_active(&id).await;
    let r = action(&app, &id, json!({"resize": {"volume": {"size": "3"}}})).await;
    assert_eq!(r.status, 202, "{}", r.text);
    let methods: Vec<String> = app.taskmanager.casts().into_iter().map(|c| c.1).collect();
    assert_eq!(
        methods,
        [
            "create_instance",
            "restart",
            "resize_flavor",
            "resize_volume"
        ]
    );
    let args = app.taskmanager.casts()[3].2.clone();
    assert_eq!(args, json!({"instance_id": id, "new_size": 3}));

    // Malformed actions are 400, never 500.
    for body in [
        json!({}),
        json!({"resize": {}}),
        json!({"fly": {}}),
        json!({"restart": 1}),
        json!([]),
    ] {
        action(&app, &id, body).await.fault(400, "badRequest");
    }
    assert_eq!(
        action(&app, &id, json!({"promote_to_replica_source": {}}))
            .await
            .fault(400, "badRequest"),
        format!("Instance {id} is not a replica.")
    );
}

#[tokio::test]
async fn rename_and_update_rules() {
    let app = TestApp::start().await;
    app.seed().await;
    let id = create_ok(&app, "old").await;
    let path = format!("/instances/{id}");
    let r = send(
        app.v1(Method::PUT, &path)
            .json(&json!({"instance": {"name": "new"}})),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.text);
    assert!(r.text.is_empty());
    assert_eq!(app.get(&path).await.json()["instance"]["name"], "new");
    let r = send(
        app.v1(Method::PUT, &path)
            .json(&json!({"instance": {"configuration": null, "replica_of": null}})),
    )
    .await;
    assert_eq!(
        r.fault(400, "badRequest"),
        "Only one attribute (except 'name') is allowed to update."
    );
    let r = send(
        app.v1(Method::PATCH, &path)
            .json(&json!({"instance": {"access": {}}})),
    )
    .await;
    assert_eq!(
        r.fault(400, "badRequest"),
        "Validation error: instance Additional properties are not allowed ('access' was unexpected)"
    );
    // Detaching when nothing is attached is a no-op (legacy `{"instance": {}}` too).
    for body in [
        json!({"instance": {"configuration": null}}),
        json!({"instance": {}}),
    ] {
        let r = send(app.v1(Method::PUT, &path).json(&body)).await;
        assert_eq!(r.status, 202, "{}", r.text);
    }
    let r = send(
        app.v1(Method::PUT, &path)
            .json(&json!({"instance": {"replica_of": null}})),
    )
    .await;
    assert_eq!(
        r.fault(400, "badRequest"),
        format!("Instance {id} is not a replica.")
    );
}

/// Create, list, show and delete on every backend of `TROVE_TEST_BACKENDS`.
#[tokio::test]
async fn instance_lifecycle_on_every_backend() {
    for backend in trove_db::testing::backends() {
        let app = TestApp::start_on(backend).await;
        app.seed().await;
        let id = create_ok(&app, "x").await;
        let list = app.get("/instances/detail").await;
        assert_eq!(list.status, 200, "{backend}: {}", list.text);
        assert_eq!(list.json()["instances"][0]["id"], id.as_str());
        app.make_active(&id).await;
        assert_eq!(
            action(&app, &id, json!({"restart": {}})).await.status,
            202,
            "{backend}"
        );
        let r = send(app.v1(Method::DELETE, &format!("/instances/{id}"))).await;
        assert_eq!(r.status, 202, "{backend}: {}", r.text);
        let r = send(
            app.v1_admin(Method::PUT, &format!("/mgmt/quotas/{PROJECT}"))
                .json(&json!({"quotas": {"instances": 0}})),
        )
        .await;
        assert_eq!(r.status, 200, "{backend}");
        let r = create(&app, minimal("y")).await;
        assert_eq!(
            r.fault(413, "overLimit"),
            "Quota exceeded for resources: ['instances']."
        );
    }
}

#[tokio::test]
async fn without_a_taskmanager_create_is_503_and_leaves_nothing() {
    let app = TestApp::start_with(common::Options {
        without_taskmanager: true,
        ..Default::default()
    })
    .await;
    app.seed().await;
    let r = create(&app, minimal("x")).await;
    r.fault(503, "serviceUnavailable");
    let list = app.get("/instances").await.json();
    assert_eq!(list["instances"], json!([]));
    let q = app.get(&format!("/mgmt/quotas/{PROJECT}")).await.json();
    for line in q["quotas"].as_array().unwrap() {
        assert_eq!(line["in_use"], 0, "{line}");
        assert_eq!(line["reserved"], 0, "{line}");
    }
}

#[tokio::test]
async fn policy_overrides_are_enforced() {
    let enforcer = trove_api::policy::Enforcer::with_overrides([
        ("instance:create", "rule:admin"),
        ("instance:show", "rule:admin"),
    ])
    .unwrap();
    let app = TestApp::start_with(common::Options {
        enforcer: Some(std::sync::Arc::new(enforcer)),
        ..Default::default()
    })
    .await;
    app.seed().await;
    let r = create(&app, minimal("x")).await;
    assert_eq!(
        r.fault(403, "forbidden"),
        "Policy doesn't allow instance:create to be performed."
    );
    let r = send(app.v1_admin(Method::POST, "/instances").json(&minimal("x"))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let id = r.json()["instance"]["id"].as_str().unwrap().to_string();
    // Visibility comes first: another project's member gets 404, the owner 403.
    let other = send(app.request(Method::GET, &format!("/v1.0/someone/instances/{id}"))).await;
    other.fault(404, "itemNotFound");
    app.get(&format!("/instances/{id}"))
        .await
        .fault(403, "forbidden");
}

#[tokio::test]
async fn show_views_for_members_and_admins() {
    let app = TestApp::start().await;
    app.seed().await;
    let id = create_ok(&app, "shown").await;
    app.make_active(&id).await;
    app.db()
        .instance_fault_upsert(&id, "Resize failed.", "Traceback: ...")
        .await
        .unwrap();
    let member = app.get(&format!("/instances/{id}")).await;
    assert_eq!(member.status, 200);
    insta::assert_json_snapshot!("instance_show_member", redact(&member.json()));
    let admin = app.get_admin(&format!("/instances/{id}")).await;
    insta::assert_json_snapshot!("instance_show_admin", redact(&admin.json()));
    let detail = app.get_admin("/instances/detail").await.json();
    assert_eq!(detail["instances"][0]["fault"]["details"], "Traceback: ...");
    assert_eq!(detail["instances"][0]["tenant_id"], PROJECT);
}

#[tokio::test]
async fn bound_flavors_and_volume_types_restrict_create() {
    let app = TestApp::start().await;
    let s = app.seed().await;
    let db = app.db();
    db.datastore_version_metadata_add(&s.v1011, trove_db::METADATA_FLAVOR, &["d2".into()])
        .await
        .unwrap();
    db.datastore_version_metadata_add(&s.v1011, trove_db::METADATA_VOLUME_TYPE, &["ssd".into()])
        .await
        .unwrap();
    let r = create(&app, minimal("a")).await;
    assert_eq!(
        r.fault(400, "badRequest"),
        "Flavor 2 is not supported for datastore mariadb version 10.11"
    );
    let mut body = minimal("a");
    body["instance"]["flavorRef"] = json!("d2");
    let r = create(&app, body.clone()).await;
    assert_eq!(
        r.fault(400, "badRequest"),
        "A volume type is required for datastore mariadb version 10.11."
    );
    body["instance"]["volume"]["type"] = json!("hdd");
    let r = create(&app, body.clone()).await;
    assert_eq!(
        r.fault(400, "badRequest"),
        "Volume type hdd is not supported for datastore mariadb version 10.11."
    );
    body["instance"]["volume"]["type"] = json!("ssd");
    let r = create(&app, body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(app.taskmanager.casts()[0].2["volume_type"], "ssd");
}

#[tokio::test]
async fn running_backups_show_backup_and_reset_status_fails_them() {
    let app = TestApp::start().await;
    app.seed().await;
    let id = create_ok(&app, "b").await;
    app.make_active(&id).await;
    let backup = app
        .db()
        .backup_create(&trove_db::Backup {
            id: trove_db::new_id(),
            name: "nightly".into(),
            tenant_id: Some(PROJECT.into()),
            state: "BUILDING".into(),
            instance_id: Some(id.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    let shown = app.get(&format!("/instances/{id}")).await.json();
    assert_eq!(shown["instance"]["status"], "BACKUP");
    let r = action(&app, &id, json!({"restart": {}})).await;
    assert_eq!(
        r.fault(422, "unprocessableEntity"),
        format!("Instance {id} is not currently available for an action to be performed (instance status was BACKUP).")
    );
    let r = send(
        app.v1_admin(Method::POST, &format!("/instances/{id}/action"))
            .json(&json!({"reset_status": {}})),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(
        app.db().backup_get(&backup.id).await.unwrap().state,
        "FAILED"
    );
    let shown = app.get(&format!("/instances/{id}")).await.json();
    assert_eq!(shown["instance"]["status"], "ACTIVE");
    assert_eq!(shown["instance"]["operating_status"], "ERROR");
}

/// A configuration group given at create: its values go to the taskmanager (for the
/// guest's prepare), the row and the view name the group; a group of another version is
/// 400, an unknown one 404.
#[tokio::test]
async fn create_with_a_configuration_group() {
    let app = TestApp::start().await;
    let seeded = app.seed().await;
    let group = |version: &str| trove_db::Configuration {
        id: trove_db::new_id(),
        name: "tuned".into(),
        tenant_id: PROJECT.into(),
        datastore_version_id: version.into(),
        ..trove_db::Configuration::default()
    };
    let cid = app
        .db()
        .configuration_create(
            &group(&seeded.v1011),
            &[("max_connections".into(), "200".into())],
        )
        .await
        .unwrap()
        .id;
    let mut body = minimal("tuned-db");
    body["instance"]["configuration"] =
        json!(format!("http://x/v1.0/{PROJECT}/configurations/{cid}"));
    let r = create(&app, body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let v = r.json();
    assert_eq!(v["instance"]["configuration"]["id"], cid.as_str(), "{v}");
    let id = v["instance"]["id"].as_str().unwrap();
    assert_eq!(
        app.db()
            .instance_get(id)
            .await
            .unwrap()
            .configuration_id
            .as_deref(),
        Some(cid.as_str())
    );
    let (_, method, args) = app.taskmanager.casts().last().unwrap().clone();
    assert_eq!(method, "create_instance");
    assert!(
        args["overrides"]["max_connections"] == json!(200)
            || args["overrides"]["max_connections"] == json!("200"),
        "{args}"
    );

    let other = app
        .db()
        .configuration_create(&group(&seeded.pg15), &[])
        .await
        .unwrap()
        .id;
    let mut body = minimal("wrong");
    body["instance"]["configuration"] = json!(other);
    let r = create(&app, body).await;
    assert!(
        r.fault(400, "badRequest").starts_with(&format!(
            "Datastore Version on Configuration {other} does not match"
        )),
        "{}",
        r.text
    );
    let mut body = minimal("missing");
    body["instance"]["configuration"] = json!("6f1c3b2a-1111-4222-8333-944455556666");
    let r = create(&app, body).await;
    r.fault(404, "itemNotFound");
    // Nothing was made for the refused ones.
    assert_eq!(app.taskmanager.casts().len(), 1);
}
