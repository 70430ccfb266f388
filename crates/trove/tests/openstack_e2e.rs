//! End to end on a real cloud: `trove-api`, `trove-taskmanager` and `trove-conductor` as
//! processes with `[local_driver] compute_driver = openstack`, against a real Keystone,
//! Nova 34 (fake virt driver), Placement, Glance and Neutron (ML2/OVN), brought up once per
//! test run by `scripts/nova-test-stack.sh` (target/nova-stack-ovn, ports 29600-29610).
//!
//! Nova's fake driver boots no guest, so the test plays the virtual machine: it reads the
//! server's user data back through Nova's admin API, writes the files cloud-init would
//! write, and starts the real `trove-guestagent` with exactly that configuration (plus what
//! the machine itself knows: the address its database listens on and where its data
//! lives). The instance then goes through the real Nova path: ACTIVE/HEALTHY, restart,
//! resize to another Nova flavor through VERIFY_RESIZE and confirm, delete; afterwards
//! Nova, Placement and Neutron hold nothing of it.
//!
//! Needs root (the guest runs `mariadbd` as the local driver's guests do), RabbitMQ with the
//! management plugin, MariaDB on 127.0.0.1:3306 and the client virtualenv; the project's
//! test command provides all of them.

mod common;
#[path = "../../trove-openstack/tests/common/mod.rs"]
mod stacks;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use common::cluster::{Cluster, Options};
use common::{mariadb, Tenant};
use serde_json::{json, Value};

/// The cloud as its operator sees it: the service user `trove` (admin in the stack).
struct Cloud {
    env: HashMap<String, String>,
    http: reqwest::Client,
    token: String,
}

impl Cloud {
    async fn login(env: HashMap<String, String>) -> Self {
        let http = reqwest::Client::new();
        let login = json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": "trove", "domain": {"name": "Default"}, "password": "trove"}}},
            "scope": {"project": {"name": "service", "domain": {"name": "Default"}}}}});
        let resp = http
            .post(format!("{}/auth/tokens", env["AUTH_URL"]))
            .json(&login)
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "login: {}", resp.status());
        let token = resp.headers()["x-subject-token"]
            .to_str()
            .unwrap()
            .to_owned();
        Cloud { env, http, token }
    }

    /// `GET <service URL><path>`: (status, JSON or Null).
    async fn get(&self, url_key: &str, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.env[url_key]))
            .header("X-Auth-Token", &self.token)
            .header("X-OpenStack-Nova-API-Version", "2.3")
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// `<method> <service URL><path>` with a JSON body (none for `Null`): the status.
    async fn send(&self, method: reqwest::Method, url_key: &str, path: &str, body: Value) -> u16 {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.env[url_key]))
            .header("X-Auth-Token", &self.token);
        if !body.is_null() {
            req = req.json(&body);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        if status >= 400 {
            eprintln!("{path}: {status} {}", r.text().await.unwrap_or_default());
        }
        status
    }

    /// `POST <service URL><path>` (or PUT) as admin; the JSON answer (asserted 2xx).
    async fn create(
        &self,
        method: reqwest::Method,
        url_key: &str,
        path: &str,
        body: Value,
    ) -> Value {
        let r = self
            .http
            .request(method, format!("{}{path}", self.env[url_key]))
            .header("X-Auth-Token", &self.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{path}: {status} {v}");
        v
    }

    /// A tenant network behind a router to an external network of its own, as a cloud
    /// offers them: the instance's user port goes on `tenant`, floating IPs come from
    /// `external`.
    async fn networks(&self) -> Networks {
        let tag = &common::cluster::uuid_like()[..8];
        let post = reqwest::Method::POST;
        let net = |name: String, external: bool| json!({"network": {"name": name, "router:external": external}});
        let external = self
            .create(
                post.clone(),
                "NETWORK_URL",
                "/v2.0/networks",
                net(format!("ext-{tag}"), true),
            )
            .await["network"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        self.create(
            post.clone(),
            "NETWORK_URL",
            "/v2.0/subnets",
            json!({"subnet": {"network_id": external, "cidr": "203.0.113.0/24", "ip_version": 4,
                              "name": format!("ext-{tag}")}}),
        )
        .await;
        let tenant = self
            .create(
                post.clone(),
                "NETWORK_URL",
                "/v2.0/networks",
                net(format!("tenant-{tag}"), false),
            )
            .await["network"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let subnet = self
            .create(
                post.clone(),
                "NETWORK_URL",
                "/v2.0/subnets",
                json!({"subnet": {"network_id": tenant, "cidr": "10.197.0.0/24", "ip_version": 4,
                                  "name": format!("tenant-{tag}")}}),
            )
            .await["subnet"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let router = self
            .create(
                post,
                "NETWORK_URL",
                "/v2.0/routers",
                json!({"router": {"name": format!("r-{tag}"),
                                  "external_gateway_info": {"network_id": external}}}),
            )
            .await["router"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        self.create(
            reqwest::Method::PUT,
            "NETWORK_URL",
            &format!("/v2.0/routers/{router}/add_router_interface"),
            json!({"subnet_id": subnet}),
        )
        .await;
        Networks {
            external,
            tenant,
            subnet,
            router,
        }
    }

    /// Removes what [`Cloud::networks`] made.
    async fn remove_networks(&self, n: &Networks) {
        self.create(
            reqwest::Method::PUT,
            "NETWORK_URL",
            &format!("/v2.0/routers/{}/remove_router_interface", n.router),
            json!({"subnet_id": n.subnet}),
        )
        .await;
        for path in [
            format!("/v2.0/routers/{}", n.router),
            format!("/v2.0/networks/{}", n.tenant),
            format!("/v2.0/networks/{}", n.external),
        ] {
            let status = self
                .send(reqwest::Method::DELETE, "NETWORK_URL", &path, Value::Null)
                .await;
            assert_eq!(status, 204, "DELETE {path}");
        }
    }

    /// Floating IPs on network `external`.
    async fn floating_ips(&self, external: &str) -> Vec<Value> {
        let (status, v) = self
            .get(
                "NETWORK_URL",
                &format!("/v2.0/floatingips?floating_network_id={external}"),
            )
            .await;
        assert_eq!(status, 200, "{v}");
        v["floatingips"].as_array().cloned().unwrap_or_default()
    }

    /// Ports, security groups or servers still naming instance `id` (or on its server).
    async fn leftovers(&self, id: &str, server_id: &str) -> Vec<String> {
        let mut left = Vec::new();
        let (status, _) = self
            .get("COMPUTE_URL", &format!("/servers/{server_id}"))
            .await;
        if status != 404 {
            left.push(format!("Nova server {server_id} ({status})"));
        }
        let (status, alloc) = self
            .get("PLACEMENT_URL", &format!("/allocations/{server_id}"))
            .await;
        assert_eq!(status, 200, "Placement: {alloc}");
        if alloc["allocations"]
            .as_object()
            .is_some_and(|a| !a.is_empty())
        {
            left.push(format!("Placement allocations {alloc}"));
        }
        for (collection, query) in [
            ("ports", format!("device_id={server_id}")),
            ("ports", format!("name=trove-{id}")),
            ("security-groups", format!("name=trove_sg-{id}")),
        ] {
            let (status, v) = self
                .get("NETWORK_URL", &format!("/v2.0/{collection}?{query}"))
                .await;
            assert_eq!(status, 200, "Neutron {collection}: {v}");
            for item in v[collection.replace('-', "_")]
                .as_array()
                .into_iter()
                .flatten()
            {
                left.push(format!("Neutron {collection} {}", item["id"]));
            }
        }
        left
    }
}

/// The networks of a test (see [`Cloud::networks`]).
struct Networks {
    external: String,
    tenant: String,
    subnet: String,
    router: String,
}

/// The virtual machine the test plays: the files of its user data and its guest agent.
struct Vm {
    root: PathBuf,
    agent: Option<Child>,
}

impl Vm {
    /// Writes the files of cloud-config `user_data` (base64, as Nova keeps it) under `root`
    /// as cloud-init would, and the machine's own settings in `host.d`.
    fn boot(root: &Path, user_data: &str, address: &str) -> Vm {
        let text = String::from_utf8(B64.decode(user_data).expect("base64 user data")).unwrap();
        assert!(text.starts_with("#cloud-config\n"), "{text}");
        let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        let files = doc["write_files"].as_sequence().expect("write_files");
        let mut paths = Vec::new();
        for f in files {
            let path = f["path"].as_str().expect("path");
            assert_eq!(f["encoding"].as_str(), Some("b64"), "{path}");
            let content = B64.decode(f["content"].as_str().unwrap()).unwrap();
            let target = root.join(path.trim_start_matches('/'));
            std::fs::create_dir_all(target.parent().unwrap()).unwrap();
            std::fs::write(&target, content).unwrap();
            paths.push(path.to_owned());
        }
        paths.sort();
        assert_eq!(
            paths,
            [
                "/etc/trove/conf.d/guest_info.conf",
                "/etc/trove/conf.d/trove-guestagent.conf"
            ],
            "the guest's files"
        );
        let data = root.join("var/lib/mysql");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::create_dir_all(root.join("host.d")).unwrap();
        std::fs::write(
            root.join("host.d/machine.conf"),
            format!(
                "[DEFAULT]\nbind_host = {address}\n\n[mariadb]\nmount_point = {}\n",
                data.display()
            ),
        )
        .unwrap();
        Vm {
            root: root.to_path_buf(),
            agent: None,
        }
    }

    /// Starts the guest agent as the image's service would: `--config-dir
    /// /etc/trove/conf.d` (and the machine's own settings).
    fn start_agent(&mut self) {
        let log = std::fs::File::create(self.root.join("guestagent.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_trove-guestagent"))
            .arg("--config-dir")
            .arg(self.root.join("etc/trove/conf.d"))
            .arg("--config-dir")
            .arg(self.root.join("host.d"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start trove-guestagent");
        self.agent = Some(child);
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.root.join("guestagent.log")).unwrap_or_default()
    }

    /// Powers the machine off: the agent stops (and with it the database server).
    fn power_off(&mut self) {
        if let Some(mut c) = self.agent.take() {
            let _ = Command::new("kill").arg(c.id().to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(30);
            while c.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        self.power_off();
    }
}

/// Waits until the control database knows the instance's Nova server; returns its id.
async fn server_of(cluster: &Cluster, id: &str, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let sid = cluster.sql(&format!(
            "SELECT IFNULL(compute_instance_id, '') FROM instances WHERE id = '{id}'"
        ));
        if !sid.is_empty() {
            return sid;
        }
        assert!(
            Instant::now() < deadline,
            "instance {id} has no server after {timeout:?}\n{}",
            cluster.log("taskmanager")
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// The services with the OpenStack driver against the stack in `env`, the datastore
/// versions pointing at the stack's Glance image, and the cloud's operator view.
async fn start_on_the_cloud(env: HashMap<String, String>) -> (Cluster, Tenant, Cloud, Networks) {
    let cloud = Cloud::login(env.clone()).await;
    let networks = cloud.networks().await;
    let mut opts = Options::new("127.2.9.1");
    opts.extra_conf = format!(
        "[DEFAULT]\nmanagement_networks = {net}\nusage_timeout = 300\n\
         [mariadb]\nvolume_support = false\n\
         [local_driver]\ncompute_driver = openstack\n\
         [service_credentials]\nauth_url = {auth}\nusername = trove\npassword = trove\n\
         project_name = service\nregion_name = RegionOne\n\
         [network]\npublic_network_id = {public}\n",
        net = env["NETWORK_ID"],
        auth = env["AUTH_URL"],
        public = networks.external,
    );
    let (cluster, t) = Cluster::start(&opts).await;
    // The operator points the datastore versions at the guest image in Glance.
    cluster.sql(&format!(
        "UPDATE datastore_versions SET image_id = '{}'",
        env["IMAGE_ID"]
    ));
    (cluster, t, cloud, networks)
}

/// The name of the stack's MariaDB datastore version.
async fn mariadb_version(t: &Tenant) -> String {
    let (_, ds) = t.get("datastores/mariadb").await;
    ds["datastore"]["versions"][0]["name"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Waits for ACTIVE after `what`; on ERROR or after 300 s panics with every log.
async fn wait_active(t: &Tenant, cluster: &Cluster, vm: &Vm, id: &str, what: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let inst = t.instance(id).await.expect("instance exists");
        if inst["status"] == "ACTIVE" {
            return inst;
        }
        if inst["status"] == "ERROR" || Instant::now() > deadline {
            panic!(
                "{what}: instance {id} not ACTIVE: {inst}\n{}\n--- vm guest\n{}",
                cluster.logs(id),
                vm.log()
            );
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_instance_on_real_nova_with_the_test_playing_the_vm() {
    if !common::is_root() {
        eprintln!("skipped: needs root to run the guest's database server");
        return;
    }
    let env = stacks::ovn_stack();
    let _broker = trove_rpc::testing::broker_lock_shared().unwrap();
    let (cluster, t, cloud, networks) = start_on_the_cloud(env).await;

    // Flavors are Nova's (the stack's m1.tiny = 1 and m1.small = 2), not the control DB's.
    let flavors = t.osc_json(&["database", "flavor", "list"]).await;
    let names: Vec<&str> = flavors
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["Name"].as_str())
        .collect();
    assert!(
        names.contains(&"m1.tiny") && names.contains(&"m1.small"),
        "{flavors}"
    );
    let (status, body) = t.get("flavors/2").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["flavor"]["ram"], 1024, "{body}");

    let version = mariadb_version(&t).await;
    let created = t
        .osc_json(&[
            "database",
            "instance",
            "create",
            "onnova",
            "--flavor",
            "1",
            "--datastore",
            "mariadb",
            "--datastore-version",
            &version,
            "--nic",
            &format!("net-id={}", networks.tenant),
            "--is-public",
            "--databases",
            "app",
            "--users",
            "app:Secret123",
        ])
        .await;
    let id = created["id"].as_str().unwrap().to_owned();

    // The server in Nova, in the service project, with the guest's files as user data.
    let server_id = server_of(&cluster, &id, Duration::from_secs(120)).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    let server = loop {
        let (status, v) = cloud
            .get("COMPUTE_URL", &format!("/servers/{server_id}"))
            .await;
        assert_eq!(status, 200, "{v}");
        if v["server"]["status"] == "ACTIVE" {
            break v["server"].clone();
        }
        assert_ne!(v["server"]["status"], "ERROR", "{v}");
        assert!(Instant::now() < deadline, "server not ACTIVE: {v}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(server["metadata"]["trove_instance_id"], json!(id));
    assert_eq!(server["flavor"]["id"], "1", "{server}");
    let user_data = server["OS-EXT-SRV-ATTR:user_data"]
        .as_str()
        .expect("user data (admin, microversion 2.3)");

    // The VM boots and its guest agent starts with exactly the injected configuration.
    let address = "127.2.9.10";
    let mut vm = Vm::boot(&cluster.dir.path().join("vm"), user_data, address);
    let guest_info =
        std::fs::read_to_string(vm.root.join("etc/trove/conf.d/guest_info.conf")).unwrap();
    assert!(
        guest_info.contains(&format!("guest_id = {id}")),
        "{guest_info}"
    );
    assert!(guest_info.contains("instance_rpc_encr_key"), "{guest_info}");
    vm.start_agent();

    let inst = wait_active(&t, &cluster, &vm, &id, "create").await;
    assert_eq!(inst["operating_status"], "HEALTHY", "{inst}");
    // The tenant sees the address of its own network and the floating IP of a public
    // instance, not the management network's; no server, port or volume id of the
    // service project.
    let kinds: Vec<(String, String)> = inst["addresses"]
        .as_array()
        .expect("addresses")
        .iter()
        .map(|a| {
            (
                a["type"].as_str().unwrap().to_owned(),
                a["address"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(kinds.len(), 2, "{inst}");
    assert_eq!(kinds[0].0, "private", "{inst}");
    assert!(kinds[0].1.starts_with("10.197.0."), "{inst}");
    assert_eq!(kinds[1].0, "public", "{inst}");
    assert!(kinds[1].1.starts_with("203.0.113."), "{inst}");
    assert_eq!(inst["access"]["is_public"], true, "{inst}");
    assert_eq!(cloud.floating_ips(&networks.external).await.len(), 1);
    let shown = inst.to_string();
    assert!(!shown.contains(&server_id), "{shown}");
    mariadb(
        address,
        "app",
        "Secret123",
        "app",
        "CREATE TABLE t (x INT); INSERT INTO t VALUES (1)",
    )
    .await
    .unwrap_or_else(|e| panic!("app writes: {e}\n{}", vm.log()));

    // Restart: the guest restarts its database server.
    t.osc_ok(&["database", "instance", "restart", &id]).await;
    wait_active(&t, &cluster, &vm, &id, "restart").await;
    let rows = mariadb(address, "app", "Secret123", "app", "SELECT COUNT(*) FROM t")
        .await
        .unwrap();
    assert_eq!(rows.trim(), "1");

    // Reboot (an admin's action): Nova reboots the server, the guest restarts the database.
    let r = reqwest::Client::new()
        .post(format!(
            "{}/v1.0/{}/mgmt/instances/{id}/action",
            t.base, t.project
        ))
        .header("X-Roles", "admin")
        .json(&json!({"reboot": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    wait_active(&t, &cluster, &vm, &id, "reboot").await;
    let (_, actions) = cloud
        .get(
            "COMPUTE_URL",
            &format!("/servers/{server_id}/os-instance-actions"),
        )
        .await;
    let names: Vec<&str> = actions["instanceActions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a["action"].as_str())
        .collect();
    assert!(names.contains(&"reboot"), "Nova's actions: {actions}");
    let rows = mariadb(address, "app", "Secret123", "app", "SELECT COUNT(*) FROM t")
        .await
        .unwrap();
    assert_eq!(rows.trim(), "1");

    // Resize to m1.small: Nova resizes through VERIFY_RESIZE, the taskmanager confirms.
    t.osc_ok(&["database", "instance", "resize", "flavor", &id, "2"])
        .await;
    let inst = wait_active(&t, &cluster, &vm, &id, "resize").await;
    assert_eq!(inst["flavor"]["id"], "2", "{inst}");
    let (_, v) = cloud
        .get("COMPUTE_URL", &format!("/servers/{server_id}"))
        .await;
    assert_eq!(v["server"]["flavor"]["id"], "2", "{v}");
    assert_eq!(v["server"]["status"], "ACTIVE", "{v}");
    let rows = mariadb(address, "app", "Secret123", "app", "SELECT COUNT(*) FROM t")
        .await
        .unwrap();
    assert_eq!(rows.trim(), "1");

    // Delete: server, ports and security group go; the machine is gone with its server.
    let before = cloud.leftovers(&id, &server_id).await;
    for kind in [
        "Nova server",
        "Placement",
        "Neutron ports",
        "Neutron security-groups",
    ] {
        assert!(
            before.iter().any(|l| l.starts_with(kind)),
            "{kind} of the live instance not found: {before:?}"
        );
    }
    t.osc_ok(&["database", "instance", "delete", &id]).await;
    t.wait_gone(&id, Duration::from_secs(120)).await;
    vm.power_off();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let left = cloud.leftovers(&id, &server_id).await;
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "left in the cloud: {left:?}\n{}\n--- vm guest\n{}",
            cluster.logs(&id),
            vm.log()
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert_eq!(
        cloud.floating_ips(&networks.external).await,
        Vec::<Value>::new()
    );
    cloud.remove_networks(&networks).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flavor_no_host_can_take_ends_in_error_with_nova_s_fault_and_nothing_left() {
    let env = stacks::ovn_stack();
    let _broker = trove_rpc::testing::broker_lock_shared().unwrap();
    let (cluster, t, cloud, networks) = start_on_the_cloud(env).await;
    // A flavor of 900 GB of memory (within the project's quota): Nova's scheduler finds no
    // host for it.
    let flavor_id = format!("huge-{}", &common::cluster::uuid_like()[..8]);
    let status = cloud
        .send(
            reqwest::Method::POST,
            "COMPUTE_URL",
            "/flavors",
            json!({"flavor": {"name": flavor_id, "id": flavor_id, "ram": 900_000,
                              "vcpus": 1, "disk": 1}}),
        )
        .await;
    assert_eq!(status, 200, "creating the flavor");

    let version = mariadb_version(&t).await;
    let created = t
        .osc_json(&[
            "database",
            "instance",
            "create",
            "nohost",
            "--flavor",
            &flavor_id,
            "--datastore",
            "mariadb",
            "--datastore-version",
            &version,
        ])
        .await;
    let id = created["id"].as_str().unwrap().to_owned();
    let server_id = server_of(&cluster, &id, Duration::from_secs(120)).await;
    let inst = t.wait_status(&id, "ERROR", Duration::from_secs(180)).await;
    let shown = t.osc_json(&["database", "instance", "show", &id]).await;
    // The tenant reads Nova's reason, in the API and in the CLI.
    let fault = inst["fault"]["message"].as_str().unwrap_or_default();
    assert!(
        fault.contains("No valid host"),
        "fault: {inst}\n{}",
        cluster.logs(&id)
    );
    assert!(
        shown["fault"]
            .as_str()
            .unwrap_or_default()
            .contains("No valid host"),
        "{shown}"
    );
    // What the create made is gone although the instance stays (in ERROR) for the tenant.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let left = cloud.leftovers(&id, &server_id).await;
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "left in the cloud: {left:?}\n{}",
            cluster.logs(&id)
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    t.osc_ok(&["database", "instance", "delete", &id]).await;
    t.wait_gone(&id, Duration::from_secs(120)).await;
    let status = cloud
        .send(
            reqwest::Method::DELETE,
            "COMPUTE_URL",
            &format!("/flavors/{flavor_id}"),
            Value::Null,
        )
        .await;
    assert_eq!(status, 202, "deleting the flavor");
    cloud.remove_networks(&networks).await;
}
