//! Resident memory of the `trove-guestagent` process, idle and under a stream of RPC calls.
//!
//! Run with `cargo bench -p trove-guestagent --bench agent_memory` (needs root, `mariadbd`
//! and RabbitMQ at `TROVE_TEST_RABBIT_URL`, default `rabbit://guest:guest@127.0.0.1:5672/`).
//!
//! The benchmark builds the release binary, starts it as its own process with a temporary
//! configuration file (own exchange and conductor topic, no RPC key), prepares a MariaDB
//! instance through `GuestApi`, then samples `VmRSS` and `VmHWM` of the agent from
//! `/proc/<pid>/status`: while idle, and while clients send `list_databases` and `rpc_ping`
//! calls. At the end it stops the database and the agent and deletes its queues. The target
//! is an agent under 15 MiB resident.

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use trove_rpc::api::guest::GUEST_LATEST_VERSION;
use trove_rpc::api::{GuestApi, GuestRequest, GuestTimeouts, PrepareArgs};
use trove_rpc::{AmqpOptions, AmqpTransport, RpcContext, Transport};

/// Calls of each kind sent under load.
const CALLS: usize = 2000;
/// Clients sending at the same time.
const CONCURRENCY: usize = 8;
/// How long the idle agent is sampled.
const IDLE: Duration = Duration::from_secs(5);

fn rabbit_url() -> String {
    std::env::var("TROVE_TEST_RABBIT_URL")
        .unwrap_or_else(|_| "rabbit://guest:guest@127.0.0.1:5672/".into())
}

fn unique(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}

/// Builds the release `trove-guestagent` (package `trove`) and returns its path (next to this benchmark's
/// `deps` directory, i.e. in the same profile directory).
fn agent_binary() -> PathBuf {
    let status = Command::new(env!("CARGO"))
        .args([
            "build",
            "--release",
            "-p",
            "trove",
            "--bin",
            "trove-guestagent",
        ])
        .status()
        .expect("run cargo build");
    assert!(status.success(), "cargo build of trove-guestagent failed");
    let exe = std::env::current_exe().expect("current exe");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("profile directory");
    let bin = profile_dir.join("trove-guestagent");
    assert!(bin.exists(), "{} not found", bin.display());
    bin
}

/// `VmRSS` and `VmHWM` of `pid` in KiB.
fn memory_kib(pid: u32) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// Samples the RSS of `pid` every 20 ms until stopped; returns (min, max, last) RSS in KiB.
struct Sampler {
    stop: Arc<AtomicBool>,
    min: Arc<AtomicU64>,
    max: Arc<AtomicU64>,
    thread: std::thread::JoinHandle<()>,
}

impl Sampler {
    fn start(pid: u32) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let min = Arc::new(AtomicU64::new(u64::MAX));
        let max = Arc::new(AtomicU64::new(0));
        let (s, lo, hi) = (stop.clone(), min.clone(), max.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                if let Some((rss, _)) = memory_kib(pid) {
                    lo.fetch_min(rss, Ordering::SeqCst);
                    hi.fetch_max(rss, Ordering::SeqCst);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        Sampler {
            stop,
            min,
            max,
            thread,
        }
    }

    fn finish(self) -> (u64, u64) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.thread.join();
        (
            self.min.load(Ordering::SeqCst),
            self.max.load(Ordering::SeqCst),
        )
    }
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn prepare_args() -> PrepareArgs {
    serde_json::from_value(json!({
        "packages": null,
        "databases": [{"_name": "orders", "_character_set": null, "_collate": null}],
        "memory_mb": 512,
        "users": [{"_name": "app", "_password": "s3cret-Pass", "_host": "%",
                   "_databases": [{"_name": "orders"}]}],
        "device_path": null,
        "mount_point": "/var/lib/mysql",
        "backup_info": null,
        "config_contents": null,
        "root_password": null,
        "overrides": null,
        "cluster_config": null,
        "snapshot": null,
        "modules": null,
        "ds_version": "10.11"
    }))
    .expect("prepare args")
}

/// Stops the agent with SIGTERM (as an init system would), SIGKILL after 30 s.
fn stop_agent(child: &mut Child) {
    if let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32) {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn main() {
    let bin = agent_binary();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("runtime");
    let _lock = trove_rpc::testing::broker_lock_shared().expect("broker lock");
    let inst = common::Instance::new(3306);
    let exchange = unique("trove_guestagent_bench");
    let conductor_topic = unique("trove-conductor-bench");
    let guest_id = uuid::Uuid::new_v4().to_string();
    let conf_dir = tempfile::tempdir().expect("tempdir");
    let conf = conf_dir.path().join("guest_info.conf");
    std::fs::write(
        &conf,
        format!(
            "[DEFAULT]\n\
             guest_id = {guest_id}\n\
             datastore_manager = mariadb\n\
             transport_url = {url}\n\
             control_exchange = {exchange}\n\
             conductor_queue = {conductor_topic}\n\
             report_interval = 1\n\
             state_change_wait_time = 60\n\
             bind_host = {addr}\n\
             [mariadb]\n\
             mount_point = {mount}\n",
            url = rabbit_url(),
            addr = inst.addr,
            mount = inst.mount().display(),
        ),
    )
    .expect("write config");

    let transport = rt.block_on(async {
        AmqpTransport::connect_url(&rabbit_url(), AmqpOptions::with_exchange(exchange.clone()))
            .await
            .expect("connect to RabbitMQ")
    });
    let guest = GuestApi::new(
        Arc::new(transport.clone()),
        &guest_id,
        None,
        GuestTimeouts {
            low: Duration::from_secs(30),
            high: Duration::from_secs(120),
            snapshot: Duration::from_secs(120),
        },
        GUEST_LATEST_VERSION,
    );
    let mut child = Command::new(&bin)
        .arg("--config-file")
        .arg(&conf)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start trove-guestagent");
    let pid = child.id();
    let ctx = RpcContext::new_internal;

    let result = rt.block_on(async {
        // Started and serving: answers a ping.
        let t0 = Instant::now();
        loop {
            if let Ok(Some(st)) = child.try_wait() {
                return Err(format!("the agent exited: {st}"));
            }
            let ping = tokio::time::timeout(
                Duration::from_secs(2),
                guest.send(&ctx(), GuestRequest::RpcPing {}),
            )
            .await;
            if matches!(ping, Ok(Ok(_))) {
                break;
            }
            if t0.elapsed() > Duration::from_secs(30) {
                return Err("the agent did not answer rpc_ping within 30 s".into());
            }
        }
        let started = memory_kib(pid).unwrap_or_default();
        guest
            .prepare(&ctx(), prepare_args())
            .await
            .map_err(|e| e.to_string())?;
        // Finished: end marker written and the requested database listed. No request is
        // sent before the end marker exists (the API waits for ACTIVE as well).
        let t1 = Instant::now();
        let end_marker = inst.config.prepare_end_marker();
        loop {
            if end_marker.exists() {
                if let Ok((dbs, _)) = guest.list_databases(&ctx(), None, None, false).await {
                    if dbs.iter().any(|d| d.name == "orders") {
                        break;
                    }
                }
            }
            if t1.elapsed() > Duration::from_secs(180) {
                return Err("prepare did not finish within 180 s".into());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let prepared_in = t1.elapsed();

        let idle = Sampler::start(pid);
        tokio::time::sleep(IDLE).await;
        let (idle_min, idle_max) = idle.finish();

        let mut rows = Vec::new();
        for kind in ["list_databases", "rpc_ping"] {
            let sampler = Sampler::start(pid);
            let t = Instant::now();
            let mut tasks = Vec::new();
            for w in 0..CONCURRENCY {
                let g = guest.clone();
                tasks.push(tokio::spawn(async move {
                    let mut i = w;
                    while i < CALLS {
                        let r = match kind {
                            "list_databases" => g
                                .list_databases(&ctx(), None, None, false)
                                .await
                                .map(|_| ()),
                            _ => g.send(&ctx(), GuestRequest::RpcPing {}).await.map(|_| ()),
                        };
                        r.map_err(|e| e.to_string())?;
                        i += CONCURRENCY;
                    }
                    Ok::<(), String>(())
                }));
            }
            for task in tasks {
                task.await.map_err(|e| e.to_string())??;
            }
            let elapsed = t.elapsed();
            let (_, peak) = sampler.finish();
            rows.push((kind, elapsed, peak));
        }
        let after = memory_kib(pid).unwrap_or_default();
        Ok((started, prepared_in, idle_min, idle_max, rows, after))
    });

    // Clean up whatever happened: database, agent, queues.
    rt.block_on(async {
        let _ = tokio::time::timeout(Duration::from_secs(60), guest.stop_db(&ctx())).await;
    });
    stop_agent(&mut child);
    rt.block_on(async {
        let _ = guest.delete_queues().await;
        let _ = transport
            .delete_topic_queues(&conductor_topic, Some("0.0.0.0"))
            .await;
        transport.shutdown().await;
    });
    drop(inst);

    match result {
        Ok((started, prepared_in, idle_min, idle_max, rows, after)) => {
            println!();
            println!(
                "trove-guestagent resident memory (MariaDB, {CONCURRENCY} concurrent clients)"
            );
            println!("{:<34} {:>12}", "measure", "value");
            println!("{:<34} {:>12}", "RSS after start-up", mib(started.0));
            println!(
                "{:<34} {:>12.1?}",
                "prepare (until orders is listed)", prepared_in
            );
            println!(
                "{:<34} {:>12}",
                format!("idle RSS ({} s, min)", IDLE.as_secs()),
                mib(idle_min)
            );
            println!(
                "{:<34} {:>12}",
                format!("idle RSS ({} s, max)", IDLE.as_secs()),
                mib(idle_max)
            );
            for (kind, elapsed, peak) in &rows {
                println!(
                    "{:<34} {:>12}",
                    format!("{kind} x{CALLS}: calls/s"),
                    format!("{:.0}", CALLS as f64 / elapsed.as_secs_f64())
                );
                println!(
                    "{:<34} {:>12}",
                    format!("{kind} x{CALLS}: peak RSS"),
                    mib(*peak)
                );
            }
            println!("{:<34} {:>12}", "RSS after the calls", mib(after.0));
            println!("{:<34} {:>12}", "VmHWM (peak of the process)", mib(after.1));
        }
        Err(e) => {
            eprintln!("agent_memory: {e}");
            std::process::exit(1);
        }
    }
}
