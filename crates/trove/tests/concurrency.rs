//! Concurrency end to end, in the all-in-one mode (`trove::aio::Aio` in this process, real
//! loop-mounted volumes, loopback addresses and database servers): 20 creates at once
//! across two projects with `max_instances_per_tenant = 10`. Quotas are exact (the two
//! creates over the limit get Trove's 413 `overLimit`), every accepted instance reaches
//! ACTIVE (or a clear ERROR with a fault) on an address of its own, and after deleting them
//! all at once nothing is left: no quota in use, processes, mounts, loop devices, leases,
//! volume files or instance directories.
//!
//! The creates are raw `POST /v1.0/<project>/instances` requests (not the CLI), so that
//! they really arrive together. Needs root (loop devices, mounts).

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{quota_in_use, Tenant};
use serde_json::{json, Value};
use trove::aio::{apply_defaults, Aio};
use trove_config::Config;

const PROJECT_A: &str = "conc-a";
const PROJECT_B: &str = "conc-b";

struct Running {
    base: String,
    aio: Option<Aio>,
    server: tokio::task::JoinHandle<()>,
    stop: tokio::sync::oneshot::Sender<()>,
    local_state: PathBuf,
    _cleanup: common::HostCleanup,
    _dir: tempfile::TempDir,
}

async fn start(first_address: &str) -> Running {
    trove::init_logging(false);
    let dir = tempfile::Builder::new()
        .prefix("trove-concurrency")
        .tempdir()
        .unwrap();
    let state = dir.path().canonicalize().unwrap();
    let cleanup = common::HostCleanup(state.clone());
    let mut config = Config::default();
    apply_defaults(&mut config, &state);
    config.local_driver.first_address = first_address.to_owned();
    config.default.report_interval = 5;
    config.default.usage_timeout = 300;
    config.default.max_instances_per_tenant = 10;
    config.default.control_exchange = "trove".into();
    let config = Arc::new(config);
    let aio = Aio::start(config.clone(), &state)
        .await
        .expect("aio starts");
    let router = aio.router(config.clone()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        trove_api::serve(listener, router, async {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    Running {
        base,
        aio: Some(aio),
        server,
        stop,
        local_state: state.join("local"),
        _cleanup: cleanup,
        _dir: dir,
    }
}

impl Running {
    async fn shutdown(mut self) {
        let _ = self.stop.send(());
        let _ = self.server.await;
        if let Some(a) = self.aio.take() {
            a.stop().await;
        }
    }
}

/// One create request as the API answered it.
struct Answer {
    project: &'static str,
    datastore: &'static str,
    status: u16,
    body: Value,
}

/// The entries of a directory of the local state (empty when it does not exist).
fn entries(dir: PathBuf) -> Vec<String> {
    std::fs::read_dir(&dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.path().display().to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_creates_at_once_across_two_projects() {
    if !common::is_root() {
        eprintln!("skipped: needs root for loop devices and mounts");
        return;
    }
    let run = start("127.3.6.1").await;
    let a = Tenant::new(&run.base, PROJECT_A);
    let b = Tenant::new(&run.base, PROJECT_B);
    let mut versions = std::collections::HashMap::new();
    for ds in ["mariadb", "postgresql"] {
        let (s, body) = a.get(&format!("datastores/{ds}")).await;
        assert_eq!(s, 200, "{body}");
        let v = body["datastore"]["versions"][0]["name"]
            .as_str()
            .unwrap_or_else(|| panic!("no version of {ds}: {body}"))
            .to_owned();
        versions.insert(ds, v);
    }

    // 12 creates in A, 8 in B, mariadb and postgresql alternating, all sent at once.
    let http = reqwest::Client::new();
    let go = Arc::new(tokio::sync::Barrier::new(20));
    let started = Instant::now();
    let mut handles = Vec::new();
    for i in 0..20usize {
        let project = if i < 12 { PROJECT_A } else { PROJECT_B };
        let datastore = if i % 2 == 0 { "mariadb" } else { "postgresql" };
        let body = json!({"instance": {
            "name": format!("c{i}"),
            "flavorRef": "1",
            "volume": {"size": 1},
            "datastore": {"type": datastore, "version": versions[datastore]},
            "databases": [{"name": "app"}],
            "users": [{"name": "app", "password": "Secret123", "databases": [{"name": "app"}]}],
        }});
        let url = format!("{}/v1.0/{project}/instances", run.base);
        let http = http.clone();
        let go = go.clone();
        handles.push(tokio::spawn(async move {
            go.wait().await;
            let r = http.post(url).json(&body).send().await.expect("POST");
            let status = r.status().as_u16();
            Answer {
                project,
                datastore,
                status,
                body: r.json().await.unwrap_or(Value::Null),
            }
        }));
    }
    let mut answers = Vec::new();
    for h in handles {
        answers.push(h.await.unwrap());
    }
    eprintln!("20 POSTs answered in {:?}", started.elapsed());

    let accepted = |p: &str| {
        answers
            .iter()
            .filter(|x| x.project == p && x.status == 200)
            .count()
    };
    for x in answers.iter().filter(|x| x.status != 200) {
        assert_eq!(x.status, 413, "{} {}: {}", x.project, x.datastore, x.body);
        assert_eq!(x.project, PROJECT_A, "{}", x.body);
        assert_eq!(x.body["overLimit"]["code"], 413, "{}", x.body);
        assert_eq!(
            x.body["overLimit"]["message"], "Quota exceeded for resources: ['instances'].",
            "{}",
            x.body
        );
    }
    assert_eq!(accepted(PROJECT_A), 10, "exactly the quota in A");
    assert_eq!(accepted(PROJECT_B), 8, "all of B");
    assert_eq!(quota_in_use(&a, PROJECT_A, "instances").await, 10);
    assert_eq!(quota_in_use(&b, PROJECT_B, "instances").await, 8);

    // Every accepted instance leaves BUILD: ACTIVE, or ERROR with a fault.
    let created: Vec<(&'static str, &'static str, String)> = answers
        .iter()
        .filter(|x| x.status == 200)
        .map(|x| {
            (
                x.project,
                x.datastore,
                x.body["instance"]["id"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{}", x.body))
                    .to_owned(),
            )
        })
        .collect();
    let mut done: Vec<Option<(Value, Duration)>> = vec![None; created.len()];
    let deadline = Instant::now() + Duration::from_secs(300);
    while done.iter().any(Option::is_none) {
        for (i, (project, _, id)) in created.iter().enumerate() {
            if done[i].is_some() {
                continue;
            }
            let t = if *project == PROJECT_A { &a } else { &b };
            let inst = t.instance(id).await.expect("instance exists");
            if inst["status"] != "BUILD" {
                done[i] = Some((inst, started.elapsed()));
            }
        }
        assert!(
            Instant::now() < deadline,
            "still BUILD after 5 minutes: {:?}",
            created
                .iter()
                .zip(&done)
                .filter(|(_, d)| d.is_none())
                .map(|(c, _)| &c.2)
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let mut addresses = std::collections::BTreeSet::new();
    let mut active = 0;
    for ((project, datastore, id), d) in created.iter().zip(&done) {
        let (inst, took) = d.as_ref().unwrap();
        eprintln!(
            "{project} {datastore} {id}: {} after {took:?}",
            inst["status"]
        );
        match inst["status"].as_str() {
            Some("ACTIVE") => {
                active += 1;
                let ip = common::ip_of(inst);
                assert!(ip.starts_with("127.3.6."), "{inst}");
                assert!(addresses.insert(ip.clone()), "address {ip} given twice");
            }
            Some("ERROR") => {
                let msg = inst["fault"]["message"].as_str().unwrap_or_default();
                assert!(!msg.is_empty(), "ERROR without a fault: {inst}");
            }
            other => panic!("unexpected status {other:?}: {inst}"),
        }
    }
    let slowest = done
        .iter()
        .map(|d| d.as_ref().unwrap().1)
        .max()
        .unwrap_or_default();
    eprintln!(
        "{active} of {} ACTIVE; the last left BUILD {slowest:?} after the POSTs",
        created.len()
    );
    assert_eq!(
        active,
        created.len(),
        "every instance should be ACTIVE here"
    );

    // Each one is a real server on its own address and its own mounted volume.
    let state = &run.local_state;
    assert_eq!(common::mounts_under(state).len(), created.len());
    assert_eq!(common::loops_under(state).len(), created.len());
    for ((_, datastore, id), d) in created.iter().zip(&done) {
        let ip = common::ip_of(&d.as_ref().unwrap().0);
        let got = if *datastore == "mariadb" {
            common::mariadb(&ip, "app", "Secret123", "app", "SELECT 40 + 2").await
        } else {
            common::psql(&ip, "app", "Secret123", "app", "SELECT 40 + 2").await
        };
        assert_eq!(
            got.unwrap_or_else(|e| panic!("{datastore} {id} at {ip}: {e}"))
                .trim(),
            "42"
        );
    }

    // Delete them all at once.
    let deleting = Instant::now();
    let mut handles = Vec::new();
    for (project, _, id) in &created {
        let url = format!("{}/v1.0/{project}/instances/{id}", run.base);
        let http = http.clone();
        handles.push(tokio::spawn(async move {
            let r = http.delete(url).send().await.expect("DELETE");
            r.status().as_u16()
        }));
    }
    for h in handles {
        assert_eq!(h.await.unwrap(), 202);
    }
    for (project, _, id) in &created {
        let t = if *project == PROJECT_A { &a } else { &b };
        t.wait_gone(id, Duration::from_secs(180)).await;
    }
    eprintln!("all deleted in {:?}", deleting.elapsed());
    for (p, t) in [(PROJECT_A, &a), (PROJECT_B, &b)] {
        assert_eq!(quota_in_use(t, p, "instances").await, 0, "{p}");
        assert_eq!(quota_in_use(t, p, "volumes").await, 0, "{p}");
    }
    for (_, _, id) in &created {
        common::assert_no_trace(state, id);
    }
    let dir = state.display().to_string();
    assert!(
        common::processes_mentioning(&dir).is_empty(),
        "{:?}",
        common::processes_mentioning(&dir)
    );
    assert!(
        common::mounts_under(state).is_empty(),
        "{:?}",
        common::mounts_under(state)
    );
    assert!(
        common::loops_under(state).is_empty(),
        "{:?}",
        common::loops_under(state)
    );
    for sub in ["addresses", "volumes", "instances"] {
        let left = entries(state.join(sub));
        assert!(left.is_empty(), "{sub} left: {left:?}");
    }
    run.shutdown().await;
}
