//! Replication through the API (api.md §4.4 `replica_of`, §4.5 detach, §5.4 promote,
//! §5.5 eject, §4.6 delete of a source): the checks, the tasks set, the casts sent, the
//! quota, and the views (`replica_of` on replicas, `replicas` on their source).

mod common;

use common::{send, TestApp, PROJECT};
use reqwest::Method;
use serde_json::{json, Value};
use trove_db::TaskStatus;

async fn create(app: &TestApp, body: Value) -> common::Resp {
    send(app.v1(Method::POST, "/instances").json(&body)).await
}

async fn source(app: &TestApp) -> String {
    let r = create(
        app,
        json!({"instance": {
            "name": "src", "flavorRef": 2, "volume": {"size": 2},
            "datastore": {"type": "mariadb", "version": "10.11"}
        }}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let id = r.json()["instance"]["id"].as_str().unwrap().to_string();
    app.make_active(&id).await;
    id
}

async fn action(app: &TestApp, id: &str, body: Value) -> common::Resp {
    send(
        app.v1(Method::POST, &format!("/instances/{id}/action"))
            .json(&body),
    )
    .await
}

fn in_use(q: &Value, resource: &str) -> i64 {
    q["quotas"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["resource"] == resource)
        .unwrap()["in_use"]
        .as_i64()
        .unwrap()
}

#[tokio::test]
async fn replicas_copy_their_source_and_count_in_the_quota() {
    let app = TestApp::start().await;
    app.seed().await;
    let src = source(&app).await;
    let r = create(
        &app,
        json!({"instance": {"name": "rep", "replica_of": src, "replica_count": 2,
            "access": {"is_public": false}}}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let v = r.json();
    assert_eq!(v["instance"]["name"], "rep-1");
    assert_eq!(v["instance"]["status"], "BUILD");
    assert_eq!(v["instance"]["replica_of"]["id"], src.as_str());
    assert_eq!(v["instance"]["flavor"]["id"], "2");
    assert_eq!(v["instance"]["volume"]["size"], 2);
    assert_eq!(v["instance"]["datastore"]["version"], "10.11");

    // One cast for both, with Trove's arguments: ids and names as lists, the source.
    let casts = app.taskmanager.casts();
    let (_, method, args) = casts.last().unwrap();
    assert_eq!(method, "create_instance");
    assert_eq!(args["slave_of_id"], src.as_str());
    assert_eq!(args["name"], json!(["rep-1", "rep-2"]));
    let ids: Vec<String> = args["instance_id"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 2);
    assert_eq!(args["volume_size"], 2);
    assert_eq!(args["flavor"]["id"], "2");
    assert_eq!(args["users"], json!([]));
    let map = args.as_object().unwrap().clone();
    trove_rpc::api::taskmanager::TaskManagerRequest::decode("create_instance", map).unwrap();

    // Each replica is counted: 3 instances, 3 volumes of 2 GB.
    let q = app.get(&format!("/mgmt/quotas/{PROJECT}")).await.json();
    assert_eq!(in_use(&q, "instances"), 3, "{q}");
    assert_eq!(in_use(&q, "volumes"), 6, "{q}");

    // The source lists its replicas; each replica names its source.
    let s = app.get(&format!("/instances/{src}")).await.json();
    let listed: Vec<&str> = s["instance"]["replicas"]
        .as_array()
        .unwrap_or_else(|| panic!("{s}"))
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed.len(), 2);
    for id in &ids {
        assert!(listed.contains(&id.as_str()), "{s}");
        let r = app.get(&format!("/instances/{id}")).await.json();
        assert_eq!(r["instance"]["replica_of"]["id"], src.as_str());
        assert!(r["instance"].get("replicas").is_none(), "{r}");
    }

    // A source with replicas cannot be deleted.
    let r = send(app.v1(Method::DELETE, &format!("/instances/{src}"))).await;
    assert_eq!(
        r.fault(403, "forbidden"),
        "Detach replicas before deleting replica source."
    );
}

#[tokio::test]
async fn replica_create_refusals() {
    let app = TestApp::start().await;
    app.seed().await;
    let src = source(&app).await;
    let missing = "6f1c3b2a-1111-4222-8333-944455556666";
    let r = create(
        &app,
        json!({"instance": {"name": "r", "replica_of": missing}}),
    )
    .await;
    assert_eq!(
        r.fault(404, "itemNotFound"),
        format!("Resource {missing} cannot be found.")
    );
    for (extra, msg) in [
        (
            json!({"users": [{"name": "u", "password": "p"}]}),
            "Cannot create a replica with users or databases.",
        ),
        (
            json!({"databases": [{"name": "d"}]}),
            "Cannot create a replica with users or databases.",
        ),
        (
            json!({"flavorRef": 2}),
            "Cannot specify 'flavorRef' when creating replicas: replicas take it from their source.",
        ),
        (
            json!({"volume": {"size": 1}}),
            "Cannot specify 'volume' when creating replicas: replicas take it from their source.",
        ),
        (
            json!({"datastore": {"type": "mariadb"}}),
            "Cannot specify 'datastore' when creating replicas: replicas take it from their source.",
        ),
    ] {
        let mut body = json!({"instance": {"name": "r", "replica_of": src}});
        for (k, v) in extra.as_object().unwrap() {
            body["instance"][k] = v.clone();
        }
        let r = create(&app, body).await;
        assert_eq!(r.fault(400, "badRequest"), msg);
    }
    // Replica count without a source.
    let r = create(
        &app,
        json!({"instance": {"name": "r", "flavorRef": 2, "volume": {"size": 1},
            "replica_count": 2}}),
    )
    .await;
    assert_eq!(
        r.fault(400, "badRequest"),
        "Replica count only valid when creating replicas."
    );
    // A source that is busy: gate A (422).
    app.db()
        .instance_update_task(&src, None, TaskStatus::Resizing)
        .await
        .unwrap();
    let r = create(&app, json!({"instance": {"name": "r", "replica_of": src}})).await;
    assert_eq!(r.status, 422, "{}", r.text);
    app.make_active(&src).await;
    // A replica of a replica: 401 (Trove's plain Forbidden class).
    let r = create(&app, json!({"instance": {"name": "r", "replica_of": src}})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let rep = r.json()["instance"]["id"].as_str().unwrap().to_owned();
    app.make_active(&rep).await;
    let r = create(&app, json!({"instance": {"name": "r2", "replica_of": rep}})).await;
    assert_eq!(
        r.fault(401, "unauthorized"),
        format!("Cannot create a replica of a replica {rep}.")
    );
    // Another project's instance is not found.
    let other = send(
        app.request(Method::POST, "/v1.0/other-project/instances")
            .json(&json!({"instance": {"name": "r", "replica_of": src}})),
    )
    .await;
    assert_eq!(other.status, 404, "{}", other.text);
}

#[tokio::test]
async fn replication_not_supported_by_the_datastore() {
    let mut config = trove_config::Config::default();
    config.mariadb.replication_strategy = None;
    let app = TestApp::start_with(common::Options {
        config,
        ..common::Options::default()
    })
    .await;
    app.seed().await;
    let src = source(&app).await;
    let r = create(&app, json!({"instance": {"name": "r", "replica_of": src}})).await;
    assert_eq!(
        r.fault(400, "badRequest"),
        "Replication is not supported for the 'mariadb' datastore."
    );
}

#[tokio::test]
async fn detach_promote_and_eject_set_tasks_and_cast() {
    let app = TestApp::start().await;
    app.seed().await;
    let src = source(&app).await;
    let r = create(
        &app,
        json!({"instance": {"name": "rep", "replica_of": src, "replica_count": 2}}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let ids: Vec<String> = app.taskmanager.casts().last().unwrap().2["instance_id"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_str().unwrap().to_owned())
        .collect();
    for id in &ids {
        app.make_active(id).await;
    }

    // Eject while the source's guest is alive: refused (gate F).
    let r = action(&app, &src, json!({"eject_replica_source": {}})).await;
    assert_eq!(
        r.fault(400, "badRequest"),
        format!("Replica Source {src} cannot be ejected as it has a current heartbeat")
    );
    // Eject on a replica (no replicas of its own): refused.
    let r = action(&app, &ids[0], json!({"eject_replica_source": {}})).await;
    assert_eq!(
        r.fault(400, "badRequest"),
        format!("Instance {} is not a replica source.", ids[0])
    );

    // Promote: every member PROMOTING (status PROMOTE), one cast.
    let r = action(&app, &ids[0], json!({"promote_to_replica_source": {}})).await;
    assert_eq!(r.status, 202, "{}", r.text);
    for id in [&src, &ids[0], &ids[1]] {
        let v = app.get(&format!("/instances/{id}")).await.json();
        assert_eq!(v["instance"]["status"], "PROMOTE", "{v}");
    }
    let (_, method, args) = app.taskmanager.casts().last().unwrap().clone();
    assert_eq!(method, "promote_to_replica_source");
    assert_eq!(args, json!({"instance_id": ids[0]}));
    // While promoting, another promote is refused by the state gate.
    let r = action(&app, &ids[1], json!({"promote_to_replica_source": {}})).await;
    assert_eq!(r.status, 422, "{}", r.text);
    for id in [&src, &ids[0], &ids[1]] {
        app.make_active(id).await;
    }

    // Eject once the source's heartbeat is old: every member EJECTING.
    trove_db::testing::execute(
        app.db(),
        &format!("UPDATE service_statuses SET updated_at = '2001-01-01 00:00:00' WHERE instance_id = '{src}'"),
    )
    .await;
    let r = action(&app, &src, json!({"eject_replica_source": {}})).await;
    assert_eq!(r.status, 202, "{}", r.text);
    for id in [&src, &ids[0], &ids[1]] {
        let v = app.get(&format!("/instances/{id}")).await.json();
        assert_eq!(v["instance"]["status"], "EJECT", "{v}");
    }
    assert_eq!(
        app.taskmanager.casts().last().unwrap().1,
        "eject_replica_source"
    );
    for id in [&src, &ids[0], &ids[1]] {
        app.make_active(id).await;
    }

    // Detach: task DETACHING (status DETACH), cast.
    let r = send(
        app.v1(Method::PATCH, &format!("/instances/{}", ids[1]))
            .json(&json!({"instance": {"replica_of": null}})),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.text);
    let v = app.get(&format!("/instances/{}", ids[1])).await.json();
    assert_eq!(v["instance"]["status"], "DETACH", "{v}");
    let (_, method, args) = app.taskmanager.casts().last().unwrap().clone();
    assert_eq!(method, "detach_replica");
    assert_eq!(args, json!({"instance_id": ids[1]}));
    // Promote of the source itself: not a replica.
    let r = action(&app, &src, json!({"promote_to_replica_source": {}})).await;
    assert_eq!(
        r.fault(400, "badRequest"),
        format!("Instance {src} is not a replica.")
    );
}

#[tokio::test]
async fn resizing_a_source_volume_resizes_its_replicas() {
    let app = TestApp::start().await;
    app.seed().await;
    let src = source(&app).await;
    let r = create(
        &app,
        json!({"instance": {"name": "rep", "replica_of": src}}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let rep = r.json()["instance"]["id"].as_str().unwrap().to_owned();
    // Gate A on the replica too: it is still building.
    let r = action(&app, &src, json!({"resize": {"volume": {"size": 3}}})).await;
    assert_eq!(r.status, 422, "{}", r.text);
    app.make_active(&rep).await;
    let r = action(&app, &src, json!({"resize": {"volume": {"size": 3}}})).await;
    assert_eq!(r.status, 202, "{}", r.text);
    let casts: Vec<Value> = app
        .taskmanager
        .casts()
        .into_iter()
        .filter(|(_, m, _)| m == "resize_volume")
        .map(|(_, _, a)| a)
        .collect();
    assert_eq!(
        casts,
        [
            json!({"instance_id": src, "new_size": 3}),
            json!({"instance_id": rep, "new_size": 3})
        ]
    );
    for id in [&src, &rep] {
        let v = app.get(&format!("/instances/{id}")).await.json();
        assert_eq!(v["instance"]["status"], "RESIZE", "{v}");
    }
    // 2 GB more each, on top of 2 x 2 GB.
    let q = app.get(&format!("/mgmt/quotas/{PROJECT}")).await.json();
    assert_eq!(in_use(&q, "volumes"), 6, "{q}");
}
