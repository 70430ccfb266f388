//! Management instances (api.md §19.1): admin list across projects with `project_id`,
//! `deleted`, offset paging and `updated` order; admin show with the server, volume,
//! owner, task and guest status; 401 for non-admins.

mod common;

use common::{redact, send, TestApp, PROJECT};
use reqwest::Method;
use serde_json::{json, Value};
use trove_db::{ServiceStatus, TaskStatus};

const OTHER: &str = "0a1b2c3d4e5f60718293a4b5c6d7e8f9";

fn body(name: &str) -> Value {
    json!({"instance": {
        "name": name, "flavorRef": 2, "volume": {"size": 1},
        "datastore": {"type": "mariadb", "version": "10.11"}
    }})
}

async fn create_in(app: &TestApp, project: &str, name: &str) -> String {
    let r = send(
        app.request(Method::POST, &format!("/v1.0/{project}/instances"))
            .json(&body(name)),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json()["instance"]["id"].as_str().unwrap().to_string()
}

async fn make_active(app: &TestApp, id: &str) {
    let db = app.db();
    let mut inst = db.instance_get(id).await.unwrap();
    inst.set_task_status(TaskStatus::None);
    inst.server_status = Some("ACTIVE".into());
    inst.compute_instance_id = Some("server-1".into());
    inst.volume_id = Some("volume-1".into());
    db.instance_save(&inst).await.unwrap();
    db.service_status_update(id, ServiceStatus::Healthy)
        .await
        .unwrap();
}

fn ids(v: &Value) -> Vec<String> {
    v["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn non_admins_get_401_on_list_and_show() {
    let app = TestApp::start().await;
    app.seed().await;
    let id = create_in(&app, PROJECT, "a").await;
    let msg = app.get("/mgmt/instances").await.fault(401, "unauthorized");
    assert_eq!(msg, "User does not have admin privileges.");
    let r = app.get(&format!("/mgmt/instances/{id}")).await;
    assert_eq!(
        r.fault(401, "unauthorized"),
        "User does not have admin privileges."
    );
}

#[tokio::test]
async fn list_spans_projects_filters_and_pages_by_offset() {
    let app = TestApp::start().await;
    app.seed().await;
    let a = create_in(&app, PROJECT, "a").await;
    let b = create_in(&app, OTHER, "b").await;
    let c = create_in(&app, OTHER, "c").await;
    // `a` becomes the most recently updated.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    make_active(&app, &a).await;

    let all = app.get_admin("/mgmt/instances").await;
    assert_eq!(all.status, 200, "{}", all.text);
    let v = all.json();
    let got = ids(&v);
    assert_eq!(got.len(), 3);
    assert_eq!(got[0], a, "most recently updated first");
    assert!(got.contains(&b) && got.contains(&c));
    assert!(v.get("links").is_none());
    let first = &v["instances"][0];
    assert_eq!(first["tenant_id"], PROJECT);
    assert_eq!(first["service_status"], "HEALTHY");
    assert_eq!(first["server"]["id"], "server-1");
    assert_eq!(first["server"]["status"], "ACTIVE");
    assert_eq!(first["deleted"], false);
    assert_eq!(first["deleted_at"], Value::Null);
    assert_eq!(first["task_description"], "No tasks for the instance.");
    let building = &v["instances"][1];
    assert_eq!(building["server"], Value::Null);
    assert_eq!(building["tenant_id"], OTHER);

    let only = app
        .get_admin(&format!("/mgmt/instances?project_id={OTHER}&deleted=False"))
        .await
        .json();
    let mut got = ids(&only);
    got.sort();
    let mut want = vec![b.clone(), c.clone()];
    want.sort();
    assert_eq!(got, want);

    let page1 = app.get_admin("/mgmt/instances?limit=2").await.json();
    assert_eq!(ids(&page1).len(), 2);
    let next = page1["links"][0]["href"].as_str().unwrap();
    assert_eq!(page1["links"][0]["rel"], "next");
    assert!(next.contains("marker=2"), "{next}");
    assert!(next.contains("limit=2"), "{next}");
    let page2 = app
        .get_admin("/mgmt/instances?limit=2&marker=2")
        .await
        .json();
    let rest = ids(&page2);
    assert_eq!(rest.len(), 1);
    assert!(page2.get("links").is_none());
    let mut seen: Vec<String> = ids(&page1).into_iter().chain(rest).collect();
    seen.sort();
    let mut want = vec![a, b, c];
    want.sort();
    assert_eq!(seen, want);

    let r = app.get_admin("/mgmt/instances?marker=x").await;
    r.fault(400, "badRequest");
}

#[tokio::test]
async fn show_is_the_admin_view_and_finds_deleted_ones_on_request() {
    let app = TestApp::start().await;
    app.seed().await;
    let id = create_in(&app, OTHER, "orders-db").await;
    make_active(&app, &id).await;
    let r = app.get_admin(&format!("/mgmt/instances/{id}")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let v = r.json();
    let i = &v["instance"];
    assert_eq!(i["tenant_id"], OTHER);
    assert_eq!(i["server_id"], "server-1");
    assert_eq!(i["volume_id"], "volume-1");
    assert_eq!(i["volume"], json!({"id": "volume-1", "size": 1}));
    assert_eq!(i["guest_status"]["state_description"], "healthy");
    insta::assert_json_snapshot!("mgmt_instance_show", redact(&v));

    let r = send(app.request(Method::DELETE, &format!("/v1.0/{OTHER}/instances/{id}"))).await;
    assert_eq!(r.status, 202, "{}", r.text);
    app.db().instance_soft_delete(&id).await.unwrap();
    let r = app.get_admin(&format!("/mgmt/instances/{id}")).await;
    assert_eq!(
        r.fault(404, "itemNotFound"),
        format!("Resource {id} cannot be found.")
    );
    let r = app
        .get_admin(&format!("/mgmt/instances/{id}?deleted=true"))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let i = r.json()["instance"].clone();
    assert_eq!(i["deleted"], true);
    assert!(i["deleted_at"].is_string());
    let list = app.get_admin("/mgmt/instances").await.json();
    assert!(ids(&list).is_empty());
}

#[tokio::test]
async fn list_and_show_on_every_backend() {
    for backend in trove_db::testing::backends() {
        let app = TestApp::start_on(backend).await;
        app.seed().await;
        let a = create_in(&app, PROJECT, "a").await;
        let b = create_in(&app, OTHER, "b").await;
        let r = app.get_admin("/mgmt/instances").await;
        assert_eq!(r.status, 200, "{backend}: {}", r.text);
        let mut got = ids(&r.json());
        got.sort();
        let mut want = vec![a.clone(), b];
        want.sort();
        assert_eq!(got, want, "{backend}");
        let r = app.get_admin(&format!("/mgmt/instances/{a}")).await;
        assert_eq!(r.status, 200, "{backend}: {}", r.text);
        assert_eq!(r.json()["instance"]["tenant_id"], PROJECT, "{backend}");
    }
}
