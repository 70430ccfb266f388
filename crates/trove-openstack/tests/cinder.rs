//! The volume driver against a real Cinder 29 (fake back end) beside a real Nova: a volume
//! of a size and type, a server booted with it (BDMv2), extend of the attached volume,
//! delete leaving nothing; and a create over the project's Cinder quota ending in a clear
//! error with nothing left. The stack (NEUTRON=ovn with Cinder, target/nova-stack-ovn,
//! ports 29600-29611) is brought up once per test run by `scripts/nova-test-stack.sh`;
//! `TROVE_OVN_STACK_DIR` and `TROVE_OVN_STACK_BASE` point the test at another one.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use trove_compute::{
    resource_name, ComputeDriver, FlavorSpec, InjectedFile, ServerRequest, ServerStatus,
    VolumeDriver, VolumeRequest, VolumeStatus,
};
use trove_config::Config;
use trove_openstack::OpenStackDriver;

fn cinder_stack() -> HashMap<String, String> {
    let env = common::ovn_stack();
    assert_eq!(env.get("CINDER").map(String::as_str), Some("1"), "{env:?}");
    env
}

async fn driver(env: &HashMap<String, String>, project: &str) -> OpenStackDriver {
    let text = format!(
        "[DEFAULT]\n[service_credentials]\nauth_url = {}\nusername = trove\npassword = trove\n\
         project_name = {project}\n",
        env["AUTH_URL"]
    );
    let config = Config::from_ini_str("test.conf", &text).unwrap().config;
    OpenStackDriver::from_config(&config)
        .await
        .expect("driver logs in")
}

/// Keystone's admin (project admin) for what the driver never does itself: volume types,
/// quotas, projects, and looking at every project's volumes.
struct Admin {
    http: reqwest::Client,
    token: String,
    auth_url: String,
    volume_url: String,
}

impl Admin {
    async fn login(env: &HashMap<String, String>) -> Admin {
        let http = reqwest::Client::new();
        let auth_url = env["AUTH_URL"].clone();
        let body = json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": "admin", "domain": {"id": "default"}, "password": "admin"}}},
            "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}});
        let r = http
            .post(format!("{auth_url}/auth/tokens"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "admin login: {}", r.status());
        let token = r.headers()["x-subject-token"].to_str().unwrap().to_owned();
        Admin {
            http,
            token,
            auth_url,
            volume_url: env["VOLUME_URL"].clone(),
        }
    }

    async fn call(&self, method: reqwest::Method, url: String, body: Option<Value>) -> Value {
        let mut r = self
            .http
            .request(method.clone(), &url)
            .header("X-Auth-Token", &self.token)
            .header("OpenStack-API-Version", "volume 3.42");
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        assert!(status.is_success(), "{method} {url}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    fn cinder(&self, path: &str) -> String {
        format!("{}/{path}", self.volume_url)
    }

    fn keystone(&self, path: &str) -> String {
        format!("{}/{path}", self.auth_url)
    }

    /// Volumes of every project named `name` (deleted ones are not listed).
    async fn volumes_named(&self, name: &str) -> Vec<Value> {
        let v = self
            .call(
                reqwest::Method::GET,
                self.cinder(&format!("volumes/detail?all_tenants=1&name={name}")),
                None,
            )
            .await;
        v["volumes"].as_array().unwrap().clone()
    }
}

fn tiny(env: &HashMap<String, String>) -> FlavorSpec {
    FlavorSpec {
        id: env["FLAVOR_TINY_ID"].clone(),
        name: "m1.tiny".into(),
        ram_mb: 512,
        vcpus: 1,
        disk_gb: 1,
        ephemeral_gb: 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn volume_attached_at_boot_extended_and_deleted_on_real_cinder() {
    let env = cinder_stack();
    let admin = Admin::login(&env).await;
    let d = driver(&env, "service").await;
    let instance_id = uuid::Uuid::new_v4().to_string();
    let name = resource_name(&instance_id);

    // A volume type on the fake back end, as an operator's cinder_volume_type.
    let type_name = format!("trove-test-{}", &instance_id[..8]);
    let vt = admin
        .call(
            reqwest::Method::POST,
            admin.cinder("types"),
            Some(json!({"volume_type": {"name": type_name,
                "extra_specs": {"volume_backend_name": "fake"}}})),
        )
        .await;
    let type_id = vt["volume_type"]["id"].as_str().unwrap().to_owned();

    let vol = d
        .create_volume(&VolumeRequest {
            instance_id: instance_id.clone(),
            size_gb: 1,
            volume_type: Some(type_name.clone()),
            availability_zone: None,
        })
        .await
        .expect("create_volume");
    let deadline = Instant::now() + Duration::from_secs(120);
    let vol = loop {
        let v = d.get_volume(&vol.id).await.unwrap().expect("volume");
        assert_ne!(v.status, VolumeStatus::Error, "{v:?}");
        if v.status == VolumeStatus::Available {
            break v;
        }
        assert!(Instant::now() < deadline, "volume not available: {v:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(vol.size_gb, 1);
    let shown = admin.volumes_named(&name).await;
    assert_eq!(shown.len(), 1, "{shown:?}");
    assert_eq!(shown[0]["volume_type"], json!(type_name), "{}", shown[0]);
    assert_eq!(
        d.find_volumes(&instance_id).await.unwrap(),
        vec![vol.clone()]
    );

    // Boot with the volume as a BDMv2 entry: Nova attaches it through Cinder.
    let server = d
        .create_server(&ServerRequest {
            instance_id: instance_id.clone(),
            project_id: "tenant-1".into(),
            name: format!("db-{instance_id}"),
            datastore_manager: "mysql".into(),
            image_id: Some(env["IMAGE_ID"].clone()),
            flavor: tiny(&env),
            ports: vec![],
            volume: Some(vol.clone()),
            files: vec![InjectedFile {
                path: "/etc/trove/conf.d/guest_info.conf".into(),
                content: "[DEFAULT]\n".into(),
            }],
            availability_zone: None,
            metadata: BTreeMap::new(),
        })
        .await
        .expect("create_server");
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let s = d.get_server(&server.id).await.unwrap().expect("server");
        assert_ne!(s.status, ServerStatus::Error, "{s:?}");
        if s.status == ServerStatus::Active {
            break;
        }
        assert!(Instant::now() < deadline, "server not ACTIVE: {s:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let v = admin
        .call(
            reqwest::Method::GET,
            admin.cinder(&format!("volumes/{}", vol.id)),
            None,
        )
        .await;
    assert_eq!(v["volume"]["status"], "in-use", "{v}");
    assert_eq!(
        v["volume"]["attachments"][0]["server_id"],
        json!(server.id),
        "{v}"
    );
    assert_eq!(
        d.get_volume(&vol.id).await.unwrap().unwrap().status,
        VolumeStatus::InUse
    );

    // Extend the attached volume (microversion 3.42): Cinder shows the new size, in-use.
    d.extend_volume(&vol.id, 2).await.expect("extend_volume");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let v = d.get_volume(&vol.id).await.unwrap().expect("volume");
        assert_ne!(v.status, VolumeStatus::Error, "{v:?}");
        if v.size_gb == 2 && v.status == VolumeStatus::InUse {
            break;
        }
        assert!(Instant::now() < deadline, "not extended: {v:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Delete the server, then the volume: Cinder has nothing of the instance left.
    d.delete_server(&server.id).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while d.get_server(&server.id).await.unwrap().is_some() {
        assert!(Instant::now() < deadline, "server not gone");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    d.delete_volume(&vol.id).await.expect("delete_volume");
    let deadline = Instant::now() + Duration::from_secs(120);
    while d.get_volume(&vol.id).await.unwrap().is_some() {
        assert!(Instant::now() < deadline, "volume not gone");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(d.find_volumes(&instance_id).await.unwrap().is_empty());
    assert!(admin.volumes_named(&name).await.is_empty());
    d.delete_volume(&vol.id).await.expect("second delete");
    admin
        .call(
            reqwest::Method::DELETE,
            admin.cinder(&format!("types/{type_id}")),
            None,
        )
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn volume_over_quota_fails_clearly_and_leaves_nothing() {
    let env = cinder_stack();
    let admin = Admin::login(&env).await;
    let instance_id = uuid::Uuid::new_v4().to_string();

    // A project of its own with a 1 GB Cinder quota, where the service user is admin.
    let project_name = format!("cinder-quota-{}", &instance_id[..8]);
    let p = admin
        .call(
            reqwest::Method::POST,
            admin.keystone("projects"),
            Some(json!({"project": {"name": project_name, "domain_id": "default"}})),
        )
        .await;
    let project_id = p["project"]["id"].as_str().unwrap().to_owned();
    let users = admin
        .call(
            reqwest::Method::GET,
            admin.keystone("users?name=trove"),
            None,
        )
        .await;
    let user_id = users["users"][0]["id"].as_str().unwrap().to_owned();
    let roles = admin
        .call(
            reqwest::Method::GET,
            admin.keystone("roles?name=admin"),
            None,
        )
        .await;
    let role_id = roles["roles"][0]["id"].as_str().unwrap().to_owned();
    admin
        .call(
            reqwest::Method::PUT,
            admin.keystone(&format!(
                "projects/{project_id}/users/{user_id}/roles/{role_id}"
            )),
            None,
        )
        .await;
    admin
        .call(
            reqwest::Method::PUT,
            admin.cinder(&format!("os-quota-sets/{project_id}")),
            Some(json!({"quota_set": {"gigabytes": 1}})),
        )
        .await;

    let d = driver(&env, &project_name).await;
    let err = d
        .create_volume(&VolumeRequest {
            instance_id: instance_id.clone(),
            size_gb: 2,
            volume_type: None,
            availability_zone: None,
        })
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("Cinder create of a 2 GB volume"), "{msg}");
    assert!(msg.to_lowercase().contains("quota"), "{msg}");
    assert!(d.find_volumes(&instance_id).await.unwrap().is_empty());
    assert!(admin
        .volumes_named(&resource_name(&instance_id))
        .await
        .is_empty());
    let usage = admin
        .call(
            reqwest::Method::GET,
            admin.cinder(&format!("os-quota-sets/{project_id}?usage=true")),
            None,
        )
        .await;
    assert_eq!(usage["quota_set"]["gigabytes"]["in_use"], 0, "{usage}");
    assert_eq!(usage["quota_set"]["gigabytes"]["reserved"], 0, "{usage}");

    admin
        .call(
            reqwest::Method::DELETE,
            admin.cinder(&format!("os-quota-sets/{project_id}")),
            None,
        )
        .await;
    admin
        .call(
            reqwest::Method::DELETE,
            admin.keystone(&format!("projects/{project_id}")),
            None,
        )
        .await;
}
