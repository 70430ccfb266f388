//! The API behind real Keystone tokens: `KeystoneAuth` in front of the routes, the URL
//! project check, roles from the token (`admin` makes an administrator), 401 for missing
//! and bad tokens.
//!
//! Keystone comes from `scripts/keystone-up.sh` (shared state directory, serialised), or
//! from `TROVE_TEST_KEYSTONE_URL` with the `TROVE_TEST_KEYSTONE_*_PASSWORD` variables.

mod common;

use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use common::{send, Options, TestApp};
use reqwest::Method;
use secrecy::SecretString;
use serde_json::{json, Value};
use trove_api::auth::keystone::{KeystoneAuthConfig, KeystoneValidator};
use trove_api::auth::KeystoneAuth;

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

fn auth_url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        if let Ok(url) = std::env::var("TROVE_TEST_KEYSTONE_URL") {
            if !url.is_empty() {
                return url.trim_end_matches('/').to_owned();
            }
        }
        let repo = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("keystone");
        let output = Command::new("bash")
            .arg(format!("{repo}/scripts/keystone-up.sh"))
            .arg("--dir")
            .arg(&dir)
            .args(["--port", "auto"])
            .output()
            .expect("cannot run bash scripts/keystone-up.sh");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "scripts/keystone-up.sh failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
            .lines()
            .find_map(|l| l.strip_prefix("OS_AUTH_URL="))
            .expect("OS_AUTH_URL in the output of keystone-up.sh")
            .trim_end_matches('/')
            .to_owned()
    })
}

/// A token and the id of the project it is scoped to.
async fn login(user: &str, password: &str, project: &str) -> (String, String) {
    let body = json!({"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": user, "domain": {"id": "default"}, "password": password}}},
        "scope": {"project": {"name": project, "domain": {"id": "default"}}}}});
    let response = reqwest::Client::new()
        .post(format!("{}/auth/tokens", auth_url()))
        .json(&body)
        .send()
        .await
        .expect("POST /v3/auth/tokens");
    assert_eq!(response.status(), 201, "login of {user} failed");
    let token = response.headers()["X-Subject-Token"]
        .to_str()
        .unwrap()
        .to_owned();
    let doc: Value = response.json().await.unwrap();
    let project_id = doc["token"]["project"]["id"].as_str().unwrap().to_owned();
    (token, project_id)
}

async fn app() -> TestApp {
    let mut config = KeystoneAuthConfig::new(
        auth_url(),
        "trove",
        SecretString::from(env_or("TROVE_TEST_KEYSTONE_SERVICE_PASSWORD", "trove")),
        "service",
    );
    config.http_timeout = Duration::from_secs(60);
    let validator = Arc::new(KeystoneValidator::new(config).expect("validator"));
    let app = TestApp::start_with(Options {
        authenticator: Some(Arc::new(KeystoneAuth::new(validator))),
        ..Options::default()
    })
    .await;
    app.seed().await;
    app
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keystone_tokens_drive_project_and_admin() {
    let app = app().await;
    let (demo, demo_project) = login(
        "demo",
        &env_or("TROVE_TEST_KEYSTONE_DEMO_PASSWORD", "demo"),
        "demo",
    )
    .await;
    let (admin, admin_project) = login(
        "admin",
        &env_or("TROVE_TEST_KEYSTONE_ADMIN_PASSWORD", "admin"),
        "admin",
    )
    .await;
    let get = |token: Option<&str>, project: &str, path: &str| {
        let rb = app.request(Method::GET, &format!("/v1.0/{project}{path}"));
        match token {
            Some(t) => rb.header("x-auth-token", t.to_string()),
            None => rb,
        }
    };

    let ok = send(get(Some(&demo), &demo_project, "/flavors")).await;
    assert_eq!(ok.status, 200, "{}", ok.text);

    let none = send(get(None, &demo_project, "/flavors")).await;
    assert_eq!(none.status, 401);
    assert!(none.header("www-authenticate").starts_with("Keystone uri="));
    assert_eq!(none.json()["error"]["code"], 401);

    let bad = send(get(Some("not-a-token"), &demo_project, "/flavors")).await;
    assert_eq!(bad.status, 401);

    let other = send(get(Some(&demo), &admin_project, "/flavors")).await;
    other.fault(403, "forbidden");

    // The member cannot read another project's quotas; the admin can.
    let q = send(get(
        Some(&demo),
        &demo_project,
        &format!("/mgmt/quotas/{admin_project}"),
    ))
    .await;
    q.fault(403, "forbidden");
    let q = send(get(
        Some(&admin),
        &admin_project,
        &format!("/mgmt/quotas/{demo_project}"),
    ))
    .await;
    assert_eq!(q.status, 200, "{}", q.text);

    // Admin-only writes: 401 for the member, 200 for the admin.
    let put = |token: &str, project: &str| {
        app.request(
            Method::PUT,
            &format!("/v1.0/{project}/mgmt/quotas/{demo_project}"),
        )
        .header("x-auth-token", token.to_string())
        .json(&json!({"quotas": {"backups": 7}}))
    };
    let r = send(put(&demo, &demo_project)).await;
    assert_eq!(
        r.fault(401, "unauthorized"),
        "User does not have admin privileges."
    );
    let r = send(put(&admin, &admin_project)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json(), json!({"quotas": {"backups": 7}}));
}
