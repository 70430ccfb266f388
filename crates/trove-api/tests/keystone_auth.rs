//! Token validation against a real Keystone.
//!
//! With `TROVE_TEST_KEYSTONE_URL` set (e.g. `http://127.0.0.1:5000/v3`) the tests use
//! that Keystone, which must have the accounts `scripts/keystone-up.sh` creates
//! (passwords from `TROVE_TEST_KEYSTONE_{ADMIN,DEMO,SERVICE}_PASSWORD`, defaulting to
//! the script's). Otherwise every test process runs
//! `scripts/keystone-up.sh --dir target/tmp/keystone --port auto`: the script locks the
//! directory, so the first process (of `cargo test` or of `cargo nextest run`, where
//! each test is its own process) starts Keystone and the others reuse it. It keeps
//! running afterwards so the next run starts in well under a second; stop it with
//! `scripts/keystone-up.sh --dir target/tmp/keystone --stop`.
//!
//! These tests never skip: without Python and PyPI they fail.

use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};
use trove_api::auth::keystone::{AuthError, KeystoneAuthConfig, KeystoneValidator};

/// Where the Keystone under test is and how to log in to it.
struct Keystone {
    /// Identity URL ending in `/v3`.
    auth_url: String,
    admin_password: String,
    demo_password: String,
    service_password: String,
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

/// The Keystone for this test process, started by the project's script when needed.
fn keystone() -> &'static Keystone {
    static KEYSTONE: OnceLock<Keystone> = OnceLock::new();
    KEYSTONE.get_or_init(|| {
        let auth_url = match std::env::var("TROVE_TEST_KEYSTONE_URL") {
            Ok(url) if !url.is_empty() => url,
            _ => start_keystone(),
        };
        Keystone {
            auth_url: auth_url.trim_end_matches('/').to_owned(),
            admin_password: env_or("TROVE_TEST_KEYSTONE_ADMIN_PASSWORD", "admin"),
            demo_password: env_or("TROVE_TEST_KEYSTONE_DEMO_PASSWORD", "demo"),
            service_password: env_or("TROVE_TEST_KEYSTONE_SERVICE_PASSWORD", "trove"),
        }
    })
}

/// Runs scripts/keystone-up.sh on a shared directory and returns `OS_AUTH_URL`.
fn start_keystone() -> String {
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
        "scripts/keystone-up.sh failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("OS_AUTH_URL="))
        .unwrap_or_else(|| panic!("no OS_AUTH_URL in the output of keystone-up.sh:\n{stdout}"))
        .to_owned()
}

/// A freshly issued token and the document Keystone returned with it.
struct Issued {
    token: String,
    body: Value,
}

/// Password login, scoped to a project of the Default domain.
async fn login(user: &str, password: &str, project: &str) -> Issued {
    let ks = keystone();
    let body = json!({"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": user, "domain": {"id": "default"}, "password": password}}},
        "scope": {"project": {"name": project, "domain": {"id": "default"}}}}});
    let response = reqwest::Client::new()
        .post(format!("{}/auth/tokens", ks.auth_url))
        .json(&body)
        .send()
        .await
        .expect("POST /v3/auth/tokens");
    assert_eq!(response.status(), 201, "login of {user} failed");
    let token = response.headers()["X-Subject-Token"]
        .to_str()
        .unwrap()
        .to_owned();
    Issued {
        token,
        body: response.json().await.unwrap(),
    }
}

async fn demo_token() -> Issued {
    login("demo", &keystone().demo_password, "demo").await
}

async fn admin_token() -> Issued {
    login("admin", &keystone().admin_password, "admin").await
}

fn config() -> KeystoneAuthConfig {
    let ks = keystone();
    let mut config = KeystoneAuthConfig::new(
        ks.auth_url.clone(),
        "trove",
        SecretString::from(ks.service_password.as_str()),
        "service",
    );
    config.www_authenticate_uri = Some(ks.auth_url.trim_end_matches("/v3").to_owned());
    // A Keystone with two workers serving a dozen test processes can be slow to answer.
    config.http_timeout = Duration::from_secs(60);
    config
}

fn validator(config: KeystoneAuthConfig) -> Arc<KeystoneValidator> {
    Arc::new(KeystoneValidator::new(config).expect("validator"))
}

/// Request to Keystone's REST API with an admin token.
async fn admin_call(
    admin: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> Value {
    let mut request = reqwest::Client::new()
        .request(method.clone(), format!("{}{path}", keystone().auth_url))
        .header("X-Auth-Token", admin);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    assert!(
        response.status().is_success(),
        "{method} {path}: {}",
        response.status()
    );
    response.json().await.unwrap_or(Value::Null)
}

#[tokio::test]
async fn demo_token_validates_with_project_and_roles() {
    let issued = demo_token().await;
    let v = validator(config());
    let ctx = v
        .validate(&issued.token)
        .await
        .expect("demo token is valid");
    let doc = &issued.body["token"];
    assert_eq!(ctx.user_name, "demo");
    assert_eq!(ctx.user_id, doc["user"]["id"]);
    assert_eq!(ctx.project_name, "demo");
    assert_eq!(ctx.project_id, doc["project"]["id"]);
    assert!(ctx.has_role("member"), "roles: {:?}", ctx.roles);
    assert!(ctx.has_role("reader"), "roles: {:?}", ctx.roles);
    assert!(!ctx.has_role("admin"), "roles: {:?}", ctx.roles);
    assert!(ctx.expires_at > chrono::Utc::now());
    assert_eq!(ctx.token.expose_secret(), issued.token);
    // The catalog carries the database endpoint with the project filled in.
    let catalog = ctx.service_catalog.as_array().expect("catalog is a list");
    let database = catalog
        .iter()
        .find(|s| s["type"] == "database")
        .expect("database service in the catalog");
    let url = database["endpoints"][0]["url"].as_str().unwrap();
    assert!(
        url.ends_with(&format!("/v1.0/{}", ctx.project_id)),
        "database endpoint {url}"
    );
    assert_eq!(v.validation_requests(), 1);
    assert_eq!(v.service_logins(), 1);
}

#[tokio::test]
async fn admin_token_has_admin_role() {
    let issued = admin_token().await;
    let ctx = validator(config()).validate(&issued.token).await.unwrap();
    assert_eq!(ctx.user_name, "admin");
    assert_eq!(ctx.project_name, "admin");
    assert!(ctx.has_role("admin"), "roles: {:?}", ctx.roles);
}

#[tokio::test]
async fn catalog_is_left_out_when_not_wanted() {
    let issued = demo_token().await;
    let mut config = config();
    config.include_service_catalog = false;
    let ctx = validator(config).validate(&issued.token).await.unwrap();
    assert!(ctx.service_catalog.is_null());
    assert_eq!(ctx.project_name, "demo");
}

#[tokio::test]
async fn garbage_tokens_are_invalid_and_cached_briefly() {
    let v = validator(config());
    let garbage = "gAAAAABnot-a-real-fernet-token-0123456789";
    let err = v.validate(garbage).await.unwrap_err();
    assert!(matches!(err, AuthError::Invalid { .. }), "{err:?}");
    assert_eq!(err.http_status(), 401);
    assert_eq!(err.body()["error"]["code"], 401);
    let uri = v.config().www_authenticate_uri().to_owned();
    assert_eq!(
        err.www_authenticate(&uri),
        Some(format!("Keystone uri=\"{uri}\""))
    );
    assert_eq!(v.www_authenticate(), format!("Keystone uri=\"{uri}\""));
    assert_eq!(v.validation_requests(), 1);
    // The rejection is cached: asking again costs no Keystone call.
    let again = v.validate(garbage).await.unwrap_err();
    assert!(matches!(again, AuthError::Invalid { .. }));
    assert_eq!(v.validation_requests(), 1);
    // Empty and unprintable tokens never reach Keystone.
    for bad in ["", "   ", "bad\ntoken"] {
        let err = v.validate(bad).await.unwrap_err();
        assert!(matches!(err, AuthError::Invalid { .. }), "{bad:?}: {err:?}");
    }
    assert_eq!(v.validation_requests(), 1);
}

#[tokio::test]
async fn cache_hit_makes_no_keystone_call() {
    let issued = demo_token().await;
    let v = validator(config());
    let first = v.validate(&issued.token).await.unwrap();
    assert_eq!(v.validation_requests(), 1);
    for _ in 0..5 {
        let again = v.validate(&issued.token).await.unwrap();
        assert_eq!(again.user_id, first.user_id);
    }
    assert_eq!(v.validation_requests(), 1);
    v.clear_cache();
    v.validate(&issued.token).await.unwrap();
    assert_eq!(v.validation_requests(), 2);
    assert_eq!(v.service_logins(), 1, "the service token is reused");
}

#[tokio::test]
async fn concurrent_requests_for_one_token_make_one_call() {
    let issued = demo_token().await;
    let v = validator(config());
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let v = v.clone();
            let token = issued.token.clone();
            tokio::spawn(async move { v.validate(&token).await.map(|c| c.user_name.clone()) })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap(), "demo");
    }
    assert_eq!(v.validation_requests(), 1);
    assert_eq!(v.service_logins(), 1);
}

#[tokio::test]
async fn revoked_token_is_invalid_once_the_cache_entry_expires() {
    let issued = demo_token().await;
    let cache_time = Duration::from_secs(2);
    let mut config = config();
    config.token_cache_time = cache_time;
    let v = validator(config);
    v.validate(&issued.token).await.unwrap();
    let cached_at = tokio::time::Instant::now();
    v.validate(&issued.token).await.unwrap();
    assert_eq!(v.validation_requests(), 1, "second look is a cache hit");

    // The user revokes its own token.
    let response = reqwest::Client::new()
        .delete(format!("{}/auth/tokens", keystone().auth_url))
        .header("X-Auth-Token", &issued.token)
        .header("X-Subject-Token", &issued.token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);

    // Until the cache entry expires the validator keeps trusting its earlier answer
    // (as keystonemiddleware does); then Keystone is asked again and says no.
    tokio::time::sleep_until(cached_at + cache_time + Duration::from_millis(100)).await;
    let err = v.validate(&issued.token).await.unwrap_err();
    assert!(matches!(err, AuthError::Invalid { .. }), "{err:?}");
    assert_eq!(v.validation_requests(), 2);
}

#[tokio::test]
async fn zero_cache_time_asks_keystone_every_time() {
    let issued = demo_token().await;
    let mut config = config();
    config.token_cache_time = Duration::ZERO;
    let v = validator(config);
    v.validate(&issued.token).await.unwrap();
    v.validate(&issued.token).await.unwrap();
    assert_eq!(v.validation_requests(), 2);
}

#[tokio::test]
async fn refused_service_token_is_renewed_once() {
    // A service user of its own, so that revoking its tokens disturbs no other test.
    let name = format!("trove-renew-{}", std::process::id());
    let password = "renew-secret";
    let admin = admin_token().await.token;
    let projects = admin_call(&admin, reqwest::Method::GET, "/projects?name=service", None).await;
    let service_project = projects["projects"][0]["id"].as_str().unwrap().to_owned();
    let roles = admin_call(&admin, reqwest::Method::GET, "/roles?name=service", None).await;
    let service_role = roles["roles"][0]["id"].as_str().unwrap().to_owned();
    let existing = admin_call(
        &admin,
        reqwest::Method::GET,
        &format!("/users?name={name}"),
        None,
    )
    .await;
    if let Some(old) = existing["users"][0]["id"].as_str() {
        admin_call(
            &admin,
            reqwest::Method::DELETE,
            &format!("/users/{old}"),
            None,
        )
        .await;
    }
    let user = admin_call(
        &admin,
        reqwest::Method::POST,
        "/users",
        Some(json!({"user": {"name": name, "password": password, "domain_id": "default"}})),
    )
    .await;
    let user_id = user["user"]["id"].as_str().unwrap().to_owned();
    admin_call(
        &admin,
        reqwest::Method::PUT,
        &format!("/projects/{service_project}/users/{user_id}/roles/{service_role}"),
        None,
    )
    .await;

    let mut config = config();
    config.username = name.clone();
    config.password = SecretString::from(password);
    let v = validator(config);
    v.validate(&demo_token().await.token).await.unwrap();
    assert_eq!(v.service_logins(), 1);

    // Disabling the user revokes its tokens; enabling it again lets it log in anew.
    for enabled in [false, true] {
        admin_call(
            &admin,
            reqwest::Method::PATCH,
            &format!("/users/{user_id}"),
            Some(json!({"user": {"enabled": enabled}})),
        )
        .await;
    }
    // Keystone compares revocations at one-second precision.
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let ctx = v.validate(&demo_token().await.token).await.unwrap();
    assert_eq!(ctx.user_name, "demo");
    assert_eq!(v.service_logins(), 2);
    assert_eq!(v.validation_requests(), 3, "first try, refused try, retry");
    admin_call(
        &admin,
        reqwest::Method::DELETE,
        &format!("/users/{user_id}"),
        None,
    )
    .await;
}

#[tokio::test]
async fn wrong_service_password_gives_unavailable() {
    let issued = demo_token().await;
    let mut config = config();
    config.password = SecretString::from("not-the-password");
    let v = validator(config);
    let err = v.validate(&issued.token).await.unwrap_err();
    assert!(matches!(err, AuthError::Unavailable { .. }), "{err:?}");
    assert_eq!(err.http_status(), 503);
    assert_eq!(v.validation_requests(), 0);
}

#[tokio::test]
async fn unreachable_keystone_gives_unavailable() {
    // A port that was free a moment ago: connections are refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = KeystoneAuthConfig::new(
        format!("http://127.0.0.1:{port}/v3"),
        "trove",
        SecretString::from("trove"),
        "service",
    );
    let v = validator(config);
    let err = v.validate("some-token").await.unwrap_err();
    assert!(matches!(err, AuthError::Unavailable { .. }), "{err:?}");
    assert_eq!(err.http_status(), 503);
    assert_eq!(err.body()["error"]["code"], 503);
    assert!(err.www_authenticate("http://x").is_none());
    // Failures are not cached: the next request tries again.
    let err = v.validate("some-token").await.unwrap_err();
    assert!(matches!(err, AuthError::Unavailable { .. }));
    assert_eq!(v.service_logins(), 2);
}

#[tokio::test]
async fn plugs_in_as_the_api_authenticator() {
    use trove_api::auth::{AuthError as ApiAuthError, AuthRequest, Authenticator};
    let issued = demo_token().await;
    let v = validator(config());
    let mut headers = axum::http::HeaderMap::new();
    headers.insert("x-auth-token", issued.token.parse().unwrap());
    let request = AuthRequest {
        headers: &headers,
        url_project: None,
    };
    let ctx = v.authenticate(request).await.expect("demo token accepted");
    assert_eq!(ctx.project_id, issued.body["token"]["project"]["id"]);
    assert_eq!(ctx.user_id, issued.body["token"]["user"]["id"]);
    assert!(ctx.roles.iter().any(|r| r == "member"), "{:?}", ctx.roles);

    let no_headers = axum::http::HeaderMap::new();
    let request = AuthRequest {
        headers: &no_headers,
        url_project: None,
    };
    match v.authenticate(request).await {
        Err(ApiAuthError::Unauthorized {
            www_authenticate, ..
        }) => assert_eq!(www_authenticate, Some(v.www_authenticate())),
        other => panic!("expected Unauthorized, got {other:?}"),
    }
    assert_eq!(v.validation_requests(), 1, "no token, no Keystone call");
}
