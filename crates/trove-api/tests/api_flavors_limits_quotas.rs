//! Flavors (api.md §12), limits (§13) and quotas (§14).

mod common;

use common::{redact, send, TestApp, PROJECT};
use reqwest::Method;

#[tokio::test]
async fn flavor_list_and_show() {
    let app = TestApp::start().await;
    app.seed().await;
    let list = app.get("/flavors").await;
    assert_eq!(list.status, 200);
    insta::assert_json_snapshot!("flavors_list", redact(&list.json()));
    let two = app.get("/flavors/2").await.json();
    assert_eq!(two["flavor"]["id"], 2);
    assert_eq!(two["flavor"]["str_id"], "2");
    assert_eq!(two["flavor"]["local_storage"], 0);
    let odd = app.get("/flavors/0042").await.json();
    assert_eq!(odd["flavor"]["id"], serde_json::Value::Null);
    assert_eq!(odd["flavor"]["str_id"], "0042");
    // Names are not ids: 404 so that clients fall back to listing.
    let r = app.get("/flavors/m1.small").await;
    assert_eq!(
        r.fault(404, "itemNotFound"),
        "Resource m1.small cannot be found."
    );
}

#[tokio::test]
async fn flavors_without_local_storage_when_volume_support_is_on() {
    let mut config = trove_config::Config::default();
    config.default.trove_volume_support = true;
    let app = TestApp::start_with(common::Options {
        config,
        ..Default::default()
    })
    .await;
    app.seed().await;
    let two = app.get("/flavors/2").await.json();
    assert!(two["flavor"].get("local_storage").is_none());
}

#[tokio::test]
async fn limits_absolute_first_then_rates() {
    let app = TestApp::start().await;
    let r = app.get("/limits").await;
    assert_eq!(r.status, 200);
    let v = r.json();
    let items = v["limits"].as_array().unwrap();
    assert_eq!(items[0]["verb"], "ABSOLUTE");
    // This request itself was counted.
    assert_eq!(items[4]["verb"], "GET");
    assert_eq!(items[4]["remaining"], 199);
    insta::assert_json_snapshot!("limits", redact(&v));
}

#[tokio::test]
async fn quota_show_own_project_or_admin() {
    let app = TestApp::start().await;
    let own = app.get(&format!("/mgmt/quotas/{PROJECT}")).await;
    assert_eq!(own.status, 200);
    insta::assert_json_snapshot!("quotas_show", own.json());
    let other = app.get("/mgmt/quotas/someoneelse").await;
    assert_eq!(
        other.fault(403, "forbidden"),
        format!("Operation not allowed for tenant {PROJECT}.")
    );
    let admin = app.get_admin("/mgmt/quotas/someoneelse").await;
    assert_eq!(admin.status, 200);
}

#[tokio::test]
async fn quota_update_is_admin_only_and_validated() {
    let app = TestApp::start().await;
    let path = format!("/mgmt/quotas/{PROJECT}");
    let put = |admin: bool, body: &str| {
        let rb = if admin {
            app.v1_admin(Method::PUT, &path)
        } else {
            app.v1(Method::PUT, &path)
        };
        rb.header("content-type", "application/json")
            .body(body.to_string())
    };
    let r = send(put(false, r#"{"quotas": {"instances": 20}}"#)).await;
    assert_eq!(
        r.fault(401, "unauthorized"),
        "User does not have admin privileges."
    );
    let r = send(put(true, r#"{}"#)).await;
    assert_eq!(
        r.fault(400, "badRequest"),
        "Validation error: 'quotas' is a required property"
    );
    let r = send(put(true, r#"{"quotas": "all"}"#)).await;
    assert_eq!(
        r.fault(400, "badRequest"),
        "Validation error: quotas 'all' is not of type 'object'"
    );
    let r = send(put(true, r#"{"quotas": {"instances": "many"}}"#)).await;
    assert_eq!(
        r.fault(400, "badRequest"),
        "Validation error: quotas['instances'] 'many' is not of type 'integer'"
    );
    let r = send(put(true, r#"{"quotas": {"instances": -2}}"#)).await;
    assert_eq!(
        r.fault(400, "badRequest"),
        "Quota limit '-2' for 'instances' must be greater than or equal to -1."
    );
    let r = send(put(true, r#"{"quotas": {"cpus": 2, "gpus": 1}}"#)).await;
    assert_eq!(
        r.fault(404, "itemNotFound"),
        "Unknown quota resources ['cpus', 'gpus']."
    );
}
