//! The network driver against a real Neutron (ML2/OVN) beside a real Nova: security group
//! and rules, management and tenant ports, a server booted on them, and release leaving
//! nothing. The stack (NEUTRON=ovn, ports 29600-29610, target/nova-stack-ovn) is brought up
//! once per test run by `scripts/nova-test-stack.sh`.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use trove_compute::{
    resource_name, ComputeDriver, FlavorSpec, InjectedFile, NetworkDriver, NetworkRequest,
    ServerRequest, ServerStatus,
};
use trove_config::Config;
use trove_openstack::OpenStackDriver;

async fn driver(env: &HashMap<String, String>) -> OpenStackDriver {
    let text = format!(
        "[DEFAULT]\nmanagement_networks = {}\n\
         [service_credentials]\nauth_url = {}\nusername = trove\npassword = trove\n\
         project_name = service\n",
        env["NETWORK_ID"], env["AUTH_URL"]
    );
    let config = Config::from_ini_str("test.conf", &text).unwrap().config;
    OpenStackDriver::from_config(&config)
        .await
        .expect("driver logs in")
}

/// `GET /v2.0/<collection>?name=<name>` entries.
async fn named(d: &OpenStackDriver, collection: &str, name: &str) -> Vec<Value> {
    let v: Value = d
        .session()
        .get(osauth::services::NETWORK, &[collection])
        .query(&[("name", name)])
        .fetch()
        .await
        .unwrap();
    v[collection.replace('-', "_")].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ports_and_security_group_on_real_neutron() {
    let env = common::ovn_stack();
    let d = driver(&env).await;
    let instance_id = uuid::Uuid::new_v4().to_string();
    let req = NetworkRequest {
        instance_id: instance_id.clone(),
        project_id: "tenant-1".into(),
        nics: vec![json!({"network_id": env["NETWORK_ID"]})],
        access: Some(json!({"allowed_cidrs": ["10.0.0.0/8", "192.168.0.0/16"]})),
        tcp_ports: vec![3306, 4444],
        udp_ports: vec![],
    };
    let ports = d.allocate(&req).await.expect("allocate");
    assert_eq!(
        ports.len(),
        2,
        "tenant port, then management port: {ports:?}"
    );
    for p in &ports {
        assert_eq!(p.addresses.len(), 1, "{p:?}");
        assert!(p.addresses[0].address.starts_with("10.199.0."), "{p:?}");
    }

    // The instance's security group with one rule per port and CIDR, on both ports.
    let groups = named(&d, "security-groups", &format!("trove_sg-{instance_id}")).await;
    assert_eq!(groups.len(), 1);
    let mut rules: Vec<(String, i64, String)> = groups[0]["security_group_rules"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["direction"] == "ingress" && r["protocol"] == "tcp")
        .map(|r| {
            (
                r["protocol"].as_str().unwrap().to_owned(),
                r["port_range_min"].as_i64().unwrap(),
                r["remote_ip_prefix"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    rules.sort();
    assert_eq!(rules.len(), 4, "{rules:?}");
    assert_eq!(rules[0], ("tcp".into(), 3306, "10.0.0.0/8".into()));
    let made_ports = named(&d, "ports", &resource_name(&instance_id)).await;
    assert_eq!(made_ports.len(), 2);
    for p in &made_ports {
        assert_eq!(p["security_groups"], json!([groups[0]["id"]]), "{p}");
    }

    // A server booted on those ports shows their addresses.
    let server = d
        .create_server(&ServerRequest {
            instance_id: instance_id.clone(),
            project_id: "tenant-1".into(),
            name: format!("db-{instance_id}"),
            datastore_manager: "mysql".into(),
            image_id: Some(env["IMAGE_ID"].clone()),
            flavor: FlavorSpec {
                id: env["FLAVOR_TINY_ID"].clone(),
                name: "m1.tiny".into(),
                ram_mb: 512,
                vcpus: 1,
                disk_gb: 1,
                ephemeral_gb: 0,
            },
            ports: ports.clone(),
            volume: None,
            files: vec![InjectedFile {
                path: "/etc/trove/conf.d/guest_info.conf".into(),
                content: "[DEFAULT]\n".into(),
            }],
            availability_zone: None,
            metadata: BTreeMap::new(),
        })
        .await
        .expect("create_server");
    let deadline = Instant::now() + Duration::from_secs(120);
    let active = loop {
        let s = d.get_server(&server.id).await.unwrap().expect("server");
        assert_ne!(s.status, ServerStatus::Error, "{s:?}");
        if s.status == ServerStatus::Active && s.addresses.len() == 2 {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "not ACTIVE with 2 addresses: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let mut got: Vec<&str> = active
        .addresses
        .iter()
        .map(|a| a.address.as_str())
        .collect();
    let mut want: Vec<&str> = ports
        .iter()
        .map(|p| p.addresses[0].address.as_str())
        .collect();
    got.sort();
    want.sort();
    assert_eq!(got, want);
    assert!(active.addresses.iter().all(|a| a.network == "shared-net"));

    // Delete the server, then release: no port, no group left.
    d.delete_server(&server.id).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while d.get_server(&server.id).await.unwrap().is_some() {
        assert!(Instant::now() < deadline, "server not gone");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    d.release(&instance_id).await.expect("release");
    assert!(named(&d, "ports", &resource_name(&instance_id))
        .await
        .is_empty());
    assert!(
        named(&d, "security-groups", &format!("trove_sg-{instance_id}"))
            .await
            .is_empty()
    );
    d.release(&instance_id).await.expect("second release");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_allocation_leaves_nothing() {
    let mut env = common::ovn_stack();
    // A management network that does not exist: the port fails after the group was made.
    env.insert("NETWORK_ID".into(), uuid::Uuid::new_v4().to_string());
    let d = driver(&env).await;
    let instance_id = uuid::Uuid::new_v4().to_string();
    let err = d
        .allocate(&NetworkRequest {
            instance_id: instance_id.clone(),
            project_id: "tenant-1".into(),
            tcp_ports: vec![5432],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(err.to_string().contains("management port"), "{err}");
    assert!(named(&d, "ports", &resource_name(&instance_id))
        .await
        .is_empty());
    assert!(
        named(&d, "security-groups", &format!("trove_sg-{instance_id}"))
            .await
            .is_empty()
    );
}
