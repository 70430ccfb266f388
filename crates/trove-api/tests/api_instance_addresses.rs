//! Instance addresses (api.md §3.3, §3.4, §19.1): the addresses the taskmanager stored in
//! the control database appear as `addresses` and `ip` in show, list, detail and the
//! management views, are omitted when there are none, give way to `hostname`, and decide
//! `access.is_public` when no access was stored.

mod common;

use common::{send, TestApp};
use reqwest::Method;
use serde_json::{json, Value};
use trove_db::InstanceAddress;

async fn create_ok(app: &TestApp, name: &str, access: Option<Value>) -> String {
    let mut body = json!({"instance": {
        "name": name, "flavorRef": 2, "volume": {"size": 1},
        "datastore": {"type": "mariadb", "version": "10.11"}
    }});
    if let Some(a) = access {
        body["instance"]["access"] = a;
    }
    let r = send(app.v1(Method::POST, "/instances").json(&body)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let v = r.json();
    assert!(v["instance"].get("ip").is_none(), "create: {v}");
    assert!(v["instance"].get("addresses").is_none(), "create: {v}");
    v["instance"]["id"].as_str().unwrap().to_string()
}

fn by_id<'a>(list: &'a Value, id: &str) -> &'a Value {
    list["instances"]
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .find(|i| i["id"] == id)
        .unwrap_or_else(|| panic!("{id} not in {list}"))
}

fn expected_addresses() -> Value {
    json!([
        {"address": "10.0.0.12", "type": "private", "network": "9b2d4c6e-0a1b-4c2d-8e3f-5a6b7c8d9e0f"},
        {"address": "203.0.113.40", "type": "public"}
    ])
}

async fn set_addresses(app: &TestApp, id: &str) {
    app.db()
        .instance_addresses_set(
            id,
            &[
                InstanceAddress::public(id, "203.0.113.40"),
                InstanceAddress::private(
                    id,
                    "10.0.0.12",
                    Some("9b2d4c6e-0a1b-4c2d-8e3f-5a6b7c8d9e0f"),
                ),
            ],
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn show_list_and_detail_render_stored_addresses() {
    for backend in trove_db::testing::backends() {
        let app = TestApp::start_on(backend).await;
        app.seed().await;
        let with = create_ok(&app, "with-addresses", None).await;
        let without = create_ok(&app, "without-addresses", None).await;

        // Nothing stored yet: no keys, access {}.
        let v = app.get(&format!("/instances/{with}")).await.json();
        assert!(v["instance"].get("ip").is_none(), "{backend}: {v}");
        assert!(v["instance"].get("addresses").is_none(), "{backend}: {v}");
        assert_eq!(v["instance"]["access"], json!({}), "{backend}");

        set_addresses(&app, &with).await;
        let r = app.get(&format!("/instances/{with}")).await;
        assert_eq!(r.status, 200, "{backend}: {}", r.text);
        let i = r.json()["instance"].clone();
        assert_eq!(i["addresses"], expected_addresses(), "{backend}");
        assert_eq!(i["ip"], json!(["10.0.0.12", "203.0.113.40"]), "{backend}");
        assert_eq!(i["access"], json!({"is_public": true}), "{backend}");

        for path in ["/instances", "/instances/detail"] {
            let r = app.get(path).await;
            assert_eq!(r.status, 200, "{backend} {path}: {}", r.text);
            let list = r.json();
            let i = by_id(&list, &with);
            assert_eq!(i["addresses"], expected_addresses(), "{backend} {path}");
            assert_eq!(i["ip"], json!(["10.0.0.12", "203.0.113.40"]), "{backend}");
            assert_eq!(i["access"], json!({"is_public": true}), "{backend} {path}");
            let o = by_id(&list, &without);
            assert!(o.get("ip").is_none(), "{backend} {path}: {o}");
            assert!(o.get("addresses").is_none(), "{backend} {path}: {o}");
            assert_eq!(o["access"], json!({}), "{backend} {path}");
        }

        // Only fixed IPs: not public. Replacing the stored set shows the new one.
        app.db()
            .instance_addresses_set(&with, &[InstanceAddress::private(&with, "10.0.0.13", None)])
            .await
            .unwrap();
        let i = app.get(&format!("/instances/{with}")).await.json()["instance"].clone();
        assert_eq!(
            i["addresses"],
            json!([{"address": "10.0.0.13", "type": "private"}]),
            "{backend}: no network key when none is known"
        );
        assert_eq!(i["ip"], json!(["10.0.0.13"]), "{backend}");
        assert_eq!(i["access"], json!({"is_public": false}), "{backend}");
    }
}

#[tokio::test]
async fn stored_access_wins_and_hostname_replaces_addresses() {
    let app = TestApp::start().await;
    app.seed().await;
    let access = json!({"is_public": false, "allowed_cidrs": ["192.0.2.0/24"]});
    let id = create_ok(&app, "orders-db", Some(access.clone())).await;
    set_addresses(&app, &id).await;
    let i = app.get(&format!("/instances/{id}")).await.json()["instance"].clone();
    assert_eq!(i["access"], access);
    assert_eq!(i["ip"], json!(["10.0.0.12", "203.0.113.40"]));

    let mut row = app.db().instance_get(&id).await.unwrap();
    row.hostname = Some("orders-db.example.org".into());
    app.db().instance_save(&row).await.unwrap();
    for path in [format!("/instances/{id}"), "/instances".to_string()] {
        let v = app.get(&path).await.json();
        let i = if v.get("instance").is_some() {
            v["instance"].clone()
        } else {
            by_id(&v, &id).clone()
        };
        assert_eq!(i["hostname"], "orders-db.example.org", "{path}");
        assert!(i.get("ip").is_none(), "{path}: {i}");
        assert!(i.get("addresses").is_none(), "{path}: {i}");
    }
}

#[tokio::test]
async fn a_page_of_instances_each_gets_its_own_addresses() {
    let app = TestApp::start().await;
    app.seed().await;
    let mut ids = Vec::new();
    for n in 0..6u32 {
        let id = create_ok(&app, &format!("db-{n}"), None).await;
        if n.is_multiple_of(2) {
            app.db()
                .instance_addresses_set(
                    &id,
                    &[InstanceAddress::private(
                        &id,
                        &format!("10.0.0.{n}"),
                        Some("net"),
                    )],
                )
                .await
                .unwrap();
        }
        ids.push(id);
    }
    // Two pages of three: every instance shows its own addresses only.
    let first = app.get("/instances?limit=3").await.json();
    let marker = first["links"][0]["href"]
        .as_str()
        .and_then(|h| h.split("marker=").nth(1))
        .expect("next link")
        .to_string();
    let second = app
        .get(&format!("/instances?limit=3&marker={marker}"))
        .await
        .json();
    let mut seen = 0;
    for page in [&first, &second] {
        for i in page["instances"].as_array().unwrap() {
            let n: usize = i["name"].as_str().unwrap()[3..].parse().unwrap();
            if n.is_multiple_of(2) {
                assert_eq!(i["ip"], json!([format!("10.0.0.{n}")]), "{i}");
            } else {
                assert!(i.get("ip").is_none(), "{i}");
            }
            seen += 1;
        }
    }
    assert_eq!(seen, 6);
}

#[tokio::test]
async fn management_views_show_addresses() {
    for backend in trove_db::testing::backends() {
        let app = TestApp::start_on(backend).await;
        app.seed().await;
        let id = create_ok(&app, "orders-db", None).await;
        let mut row = app.db().instance_get(&id).await.unwrap();
        row.compute_instance_id = Some("server-1".into());
        app.db().instance_save(&row).await.unwrap();
        set_addresses(&app, &id).await;

        let r = app.get_admin("/mgmt/instances").await;
        assert_eq!(r.status, 200, "{backend}: {}", r.text);
        let list = r.json();
        let i = by_id(&list, &id);
        assert_eq!(i["addresses"], expected_addresses(), "{backend}");
        assert_eq!(i["ip"], json!(["10.0.0.12", "203.0.113.40"]), "{backend}");

        let r = app.get_admin(&format!("/mgmt/instances/{id}")).await;
        assert_eq!(r.status, 200, "{backend}: {}", r.text);
        let i = r.json()["instance"].clone();
        assert_eq!(i["addresses"], expected_addresses(), "{backend}");
        assert_eq!(
            i["server"]["addresses"],
            json!({"9b2d4c6e-0a1b-4c2d-8e3f-5a6b7c8d9e0f": [
                {"addr": "10.0.0.12", "version": 4, "OS-EXT-IPS:type": "fixed"},
                {"addr": "203.0.113.40", "version": 4, "OS-EXT-IPS:type": "floating"}
            ]}),
            "{backend}"
        );

        // Deleting the instance removes its addresses.
        app.db().instance_soft_delete(&id).await.unwrap();
        let r = app
            .get_admin(&format!("/mgmt/instances/{id}?deleted=true"))
            .await;
        assert_eq!(r.status, 200, "{backend}: {}", r.text);
        let i = r.json()["instance"].clone();
        assert!(i.get("addresses").is_none(), "{backend}: {i}");
        assert_eq!(i["server"]["addresses"], json!({}), "{backend}");
        assert!(app.db().instance_addresses(&id).await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn other_projects_see_no_addresses_of_hidden_instances() {
    let app = TestApp::start().await;
    app.seed().await;
    let id = create_ok(&app, "orders-db", None).await;
    set_addresses(&app, &id).await;
    let other = "0a1b2c3d4e5f60718293a4b5c6d7e8f9";
    let r = send(app.request(Method::GET, &format!("/v1.0/{other}/instances"))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["instances"], json!([]));
    let r = send(app.request(Method::GET, &format!("/v1.0/{other}/instances/{id}"))).await;
    r.fault(404, "itemNotFound");
    // The owner still sees them.
    let i = app.get(&format!("/instances/{id}")).await.json()["instance"].clone();
    assert_eq!(i["ip"], json!(["10.0.0.12", "203.0.113.40"]));
}
