//! The OpenStack driver against a real Nova (Keystone, Placement, Glance, nova-api,
//! -conductor, -scheduler and -compute with Nova's fake virt driver, and the Neutron
//! stand-in), brought up once per test run by `scripts/nova-test-stack.sh` under target/.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde_json::{json, Value};
use trove_compute::{
    ComputeDriver, DriverError, FlavorSpec, InjectedFile, NetworkDriver, NetworkRequest,
    ServerRequest, ServerStatus,
};
use trove_config::Config;
use trove_openstack::OpenStackDriver;

/// trove.conf for the service user `trove` (project `service`) of the stack.
fn config(env: &HashMap<String, String>, extra_default: &str) -> Config {
    let text = format!(
        "[DEFAULT]\ntrove_security_groups_support = false\n{extra_default}\n\
         [service_credentials]\nauth_url = {}\nusername = trove\npassword = trove\n\
         project_name = service\nregion_name = RegionOne\n",
        env["AUTH_URL"]
    );
    Config::from_ini_str("test.conf", &text).unwrap().config
}

async fn driver(env: &HashMap<String, String>) -> OpenStackDriver {
    OpenStackDriver::from_config(&config(env, ""))
        .await
        .expect("driver logs in")
}

fn flavor(id: &str) -> FlavorSpec {
    FlavorSpec {
        id: id.into(),
        name: format!("flavor-{id}"),
        ram_mb: 512,
        vcpus: 1,
        disk_gb: 1,
        ephemeral_gb: 0,
    }
}

fn request(env: &HashMap<String, String>, instance_id: &str, flavor_id: &str) -> ServerRequest {
    let mut metadata = BTreeMap::new();
    metadata.insert("trove_user_id".to_owned(), "user-1".to_owned());
    ServerRequest {
        instance_id: instance_id.into(),
        project_id: "tenant-1".into(),
        name: format!("db-{instance_id}"),
        datastore_manager: "mariadb".into(),
        image_id: Some(env["IMAGE_ID"].clone()),
        flavor: flavor(flavor_id),
        ports: Vec::new(),
        volume: None,
        files: vec![
            InjectedFile {
                path: "/etc/trove/conf.d/guest_info.conf".into(),
                content: format!(
                    "[DEFAULT]\nguest_id = {instance_id}\ndatastore_manager = mariadb\n\
                     instance_rpc_encr_key = k3y/with+chars=\n"
                ),
            },
            InjectedFile {
                path: "/etc/trove/conf.d/trove-guestagent.conf".into(),
                content: "[DEFAULT]\ntransport_url = rabbit://guest:guest@127.0.0.1:29505/\n\
                          # quotes \" and 'colons': {yaml: [like]}\n"
                    .into(),
            },
        ],
        availability_zone: None,
        metadata,
    }
}

/// Polls the server until `done` says so (or fails after `secs`).
async fn wait_for(
    d: &OpenStackDriver,
    id: &str,
    secs: u64,
    what: &str,
    done: impl Fn(&Option<trove_compute::Server>) -> bool,
) -> Option<trove_compute::Server> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let s = d.get_server(id).await.expect("get_server");
        if done(&s) {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "server {id}: not {what} after {secs}s: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn wait_status(d: &OpenStackDriver, id: &str, wanted: ServerStatus) -> trove_compute::Server {
    wait_for(d, id, 120, wanted.as_str(), |s| {
        let st = s.as_ref().map(|s| s.status);
        assert!(
            st != Some(ServerStatus::Error) || wanted == ServerStatus::Error,
            "server {id} went to ERROR: {s:?}"
        );
        st == Some(wanted)
    })
    .await
    .expect("server exists")
}

/// A raw admin GET of the server at `microversion`: (HTTP status, JSON).
async fn raw_server(d: &OpenStackDriver, id: &str, microversion: &str) -> (u16, Value) {
    let resp = d
        .session()
        .get(osauth::services::COMPUTE, &["servers", id])
        .header("X-OpenStack-Nova-API-Version", microversion)
        .send_unchecked()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let body = resp.json().await.unwrap_or(Value::Null);
    (status, body)
}

/// The server's allocations in Placement (resource class -> amount, over all providers).
/// Plain HTTP with a token of the service user: Placement's version document has an empty
/// self link, which endpoint discovery cannot follow.
async fn placement_usage(env: &HashMap<String, String>, server_id: &str) -> BTreeMap<String, i64> {
    let http = reqwest::Client::new();
    let login = json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": "trove", "password": "trove", "domain": {"name": "Default"}}}},
        "scope": {"project": {"name": "service", "domain": {"name": "Default"}}}}});
    let resp = http
        .post(format!("{}/auth/tokens", env["AUTH_URL"]))
        .json(&login)
        .send()
        .await
        .unwrap();
    let token = resp.headers()["x-subject-token"]
        .to_str()
        .unwrap()
        .to_owned();
    let v: Value = http
        .get(format!("{}/allocations/{server_id}", env["PLACEMENT_URL"]))
        .header("X-Auth-Token", token)
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut usage = BTreeMap::new();
    for alloc in v["allocations"].as_object().expect("allocations").values() {
        for (class, amount) in alloc["resources"].as_object().unwrap() {
            *usage.entry(class.clone()).or_insert(0) += amount.as_i64().unwrap();
        }
    }
    usage
}

fn unique_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_lifecycle_on_real_nova() {
    let env = common::nova_stack();
    let d = driver(&env).await;
    let instance_id = unique_id();

    // No management network and no tenant NIC: no ports, so the server boots with
    // networks "none"; release finds nothing to remove (and says so without error).
    let ports = d
        .allocate(&NetworkRequest {
            instance_id: instance_id.clone(),
            project_id: "tenant-1".into(),
            tcp_ports: vec![3306],
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(ports.is_empty());

    let req = request(&env, &instance_id, &env["FLAVOR_TINY_ID"]);
    let made = d.create_server(&req).await.expect("create_server");
    assert_eq!(made.status, ServerStatus::Build);
    let server = wait_status(&d, &made.id, ServerStatus::Active).await;
    assert_eq!(server.flavor_id, env["FLAVOR_TINY_ID"]);
    assert_eq!(server.fault, None);
    assert_eq!(server.volume, None);
    let usage = placement_usage(&env, &made.id).await;
    assert_eq!(usage.get("MEMORY_MB"), Some(&512), "{usage:?}");

    // The user data as Nova keeps it (admin attribute, microversion >= 2.3): cloud-config
    // whose write_files decode to exactly the injected files.
    let (status, raw) = raw_server(&d, &made.id, "2.57").await;
    assert_eq!(status, 200, "{raw}");
    let s = &raw["server"];
    let user_data = s["OS-EXT-SRV-ATTR:user_data"].as_str().expect("user_data");
    let user_data = String::from_utf8(B64.decode(user_data).unwrap()).unwrap();
    assert!(user_data.starts_with("#cloud-config\n"), "{user_data}");
    let doc: serde_yaml::Value = serde_yaml::from_str(&user_data).unwrap();
    let entries = doc["write_files"].as_sequence().expect("write_files");
    assert_eq!(entries.len(), req.files.len());
    for (entry, file) in entries.iter().zip(&req.files) {
        assert_eq!(entry["path"].as_str(), Some(file.path.as_str()));
        assert_eq!(entry["encoding"].as_str(), Some("b64"));
        assert_eq!(entry["owner"].as_str(), Some("ubuntu:root"));
        let content = B64.decode(entry["content"].as_str().unwrap()).unwrap();
        assert_eq!(String::from_utf8(content).unwrap(), file.content);
    }
    assert_eq!(s["metadata"]["trove_instance_id"], json!(instance_id));
    assert_eq!(s["metadata"]["trove_project_id"], json!("tenant-1"));
    assert_eq!(s["metadata"]["trove_user_id"], json!("user-1"));
    let tags: Vec<&str> = s["tags"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for tag in [
        "trove_instance",
        "trove_mariadb",
        "trove_project_id_tenant-1",
        "trove_user_id_user-1",
    ] {
        assert!(tags.contains(&tag), "{tags:?}");
    }
    assert!(tags.contains(&format!("trove_instance_id_{instance_id}").as_str()));
    assert_eq!(s["config_drive"], json!(""), "config drive off by default");

    // Found again by the instance id alone.
    let found = d.find_server(&instance_id).await.unwrap().expect("found");
    assert_eq!(found.id, made.id);
    assert!(d.find_server(&unique_id()).await.unwrap().is_none());

    // Soft reboot, back to ACTIVE.
    d.reboot_server(&made.id).await.expect("reboot");
    wait_status(&d, &made.id, ServerStatus::Active).await;

    // Resize: VERIFY_RESIZE, confirm, ACTIVE with the new flavor.
    d.resize_server(&made.id, &flavor(&env["FLAVOR_SMALL_ID"]))
        .await
        .expect("resize");
    let s = wait_status(&d, &made.id, ServerStatus::VerifyResize).await;
    assert_eq!(s.flavor_id, env["FLAVOR_SMALL_ID"]);
    d.confirm_resize(&made.id).await.expect("confirm");
    let s = wait_status(&d, &made.id, ServerStatus::Active).await;
    assert_eq!(s.flavor_id, env["FLAVOR_SMALL_ID"]);
    let usage = placement_usage(&env, &made.id).await;
    assert_eq!(usage.get("MEMORY_MB"), Some(&1024), "{usage:?}");

    // Resize again and revert: ACTIVE with the small flavor kept.
    d.resize_server(&made.id, &flavor(&env["FLAVOR_TINY_ID"]))
        .await
        .expect("resize");
    wait_status(&d, &made.id, ServerStatus::VerifyResize).await;
    d.revert_resize(&made.id).await.expect("revert");
    let s = wait_status(&d, &made.id, ServerStatus::Active).await;
    assert_eq!(s.flavor_id, env["FLAVOR_SMALL_ID"]);

    // An action on a server in the wrong state is refused with Nova's reason.
    match d.confirm_resize(&made.id).await {
        Err(DriverError::Invalid(msg)) => assert!(msg.contains("confirmResize"), "{msg}"),
        other => panic!("confirm of an ACTIVE server: {other:?}"),
    }

    // Delete: gone (404), and deleting again is fine.
    d.delete_server(&made.id).await.expect("delete");
    wait_for(&d, &made.id, 120, "deleted", Option::is_none).await;
    let (status, _) = raw_server(&d, &made.id, "2.1").await;
    assert_eq!(status, 404);
    let usage = placement_usage(&env, &made.id).await;
    assert!(usage.is_empty(), "Placement still holds {usage:?}");
    d.delete_server(&made.id).await.expect("second delete");
    assert!(d.find_server(&instance_id).await.unwrap().is_none());
    d.release(&instance_id).await.expect("release");
    match d.reboot_server(&made.id).await {
        Err(DriverError::NotFound { kind: "server", .. }) => {}
        other => panic!("reboot of a deleted server: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flavor_too_big_ends_in_error_with_nova_fault() {
    let env = common::nova_stack();
    let d = driver(&env).await;
    // Bigger than the fake host's 800000 MB (and within the default RAM quota of
    // 1024000 MB, so Nova accepts the request): the scheduler finds no host.
    let flavor_id = unique_id();
    let body = json!({"flavor": {"name": format!("huge-{flavor_id}"), "id": flavor_id,
        "ram": 900_000, "vcpus": 1, "disk": 1}});
    d.session()
        .post(osauth::services::COMPUTE, &["flavors"])
        .json(&body)
        .send()
        .await
        .expect("create the flavor");

    let instance_id = unique_id();
    let made = d
        .create_server(&request(&env, &instance_id, &flavor_id))
        .await
        .expect("create_server is accepted");
    let s = wait_status(&d, &made.id, ServerStatus::Error).await;
    let fault = s.fault.expect("fault");
    assert!(fault.contains("No valid host was found"), "{fault}");

    d.delete_server(&made.id).await.expect("delete");
    wait_for(&d, &made.id, 120, "deleted", Option::is_none).await;
    d.session()
        .delete(osauth::services::COMPUTE, &["flavors", &flavor_id])
        .send()
        .await
        .expect("delete the flavor");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_credentials_and_unreachable_nova_are_clear_errors() {
    let env = common::nova_stack();
    let text = format!(
        "[service_credentials]\nauth_url = {}\nusername = trove\npassword = wrong\n\
         project_name = service\n",
        env["AUTH_URL"]
    );
    let conf = Config::from_ini_str("bad.conf", &text).unwrap().config;
    let err = OpenStackDriver::from_config(&conf).await.unwrap_err();
    assert!(
        err.to_string().contains("cannot authenticate to Keystone"),
        "{err}"
    );

    // Nova at a port nothing listens on (the stack's unused BASE+10).
    let base: u16 = env["AUTH_URL"]
        .trim_start_matches("http://127.0.0.1:")
        .trim_end_matches("/v3")
        .parse()
        .unwrap();
    let conf = config(
        &env,
        &format!("nova_compute_url = http://127.0.0.1:{}/v2.1", base + 10),
    );
    let d = OpenStackDriver::from_config(&conf).await.expect("logs in");
    match d.get_server(&unique_id()).await {
        Err(DriverError::Api(msg)) => assert!(msg.contains("Nova show of server"), "{msg}"),
        other => panic!("get_server with Nova unreachable: {other:?}"),
    }
}
