//! The service token refused mid-workflow: Keystone revokes the driver's token (as it does
//! when the service user's password changes or its keys rotate) before it expires; the
//! next Nova call is refused with 401, and the driver logs in again and carries on. Runs
//! against the real Keystone and Nova of `scripts/nova-test-stack.sh`.

mod common;

use std::collections::HashMap;

use serde_json::json;
use trove_compute::ComputeDriver;
use trove_config::Config;
use trove_openstack::OpenStackDriver;

/// The token the driver's session holds now (what it would send with its next request).
async fn token_of(d: &OpenStackDriver) -> String {
    let session = d.session();
    let client = session.client();
    let req = client
        .auth_type()
        .authenticate(client.inner(), client.inner().get("http://127.0.0.1/"))
        .await
        .expect("the session has a token")
        .build()
        .unwrap();
    req.headers()["x-auth-token"].to_str().unwrap().to_owned()
}

/// A token of the stack's admin (to revoke other tokens).
async fn admin_token(env: &HashMap<String, String>) -> String {
    let login = json!({"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": "admin", "domain": {"name": "Default"}, "password": "admin"}}},
        "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}}}});
    let resp = reqwest::Client::new()
        .post(format!("{}/auth/tokens", env["AUTH_URL"]))
        .json(&login)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "admin login: {}", resp.status());
    resp.headers()["x-subject-token"]
        .to_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_service_token_is_replaced_by_a_new_login() {
    let env = common::nova_stack();
    let text = format!(
        "[service_credentials]\nauth_url = {}\nusername = trove\npassword = trove\n\
         project_name = service\nregion_name = RegionOne\n",
        env["AUTH_URL"]
    );
    let conf = Config::from_ini_str("t.conf", &text).unwrap().config;
    let d = OpenStackDriver::from_config(&conf).await.expect("logs in");
    // The login's token, not yet shown to Nova (so no service has it cached as valid).
    let first = token_of(&d).await;

    let http = reqwest::Client::new();
    let admin = admin_token(&env).await;
    let revoke = http
        .delete(format!("{}/auth/tokens", env["AUTH_URL"]))
        .header("X-Auth-Token", &admin)
        .header("X-Subject-Token", &first)
        .send()
        .await
        .unwrap();
    assert_eq!(revoke.status().as_u16(), 204, "revoking the driver's token");
    // Nova itself refuses the revoked token.
    let refused = http
        .get(format!("{}/flavors", env["COMPUTE_URL"]))
        .header("X-Auth-Token", &first)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 401);

    // The driver's next calls succeed: it logged in again.
    let flavors = d
        .flavors()
        .await
        .expect("flavors after the token was revoked");
    assert!(
        flavors.iter().any(|f| f.id == env["FLAVOR_TINY_ID"]),
        "{flavors:?}"
    );
    assert_ne!(token_of(&d).await, first, "a new token");
    assert!(d.get_server("no-such-server").await.unwrap().is_none());
}
