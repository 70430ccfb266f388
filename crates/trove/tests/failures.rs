//! End-to-end failure tests: what a tenant sees, and what is left on the host, when a
//! create cannot succeed or a service dies.
//!
//! * a datastore version whose server binaries are not installed (all-in-one services in
//!   this process; the guest looks for PostgreSQL under `/usr/lib/postgresql/<version>`);
//! * a guest agent that never reports (the distributed services, [`cluster`]);
//! * a guest agent killed after ACTIVE (stale heartbeat -> `operating_status` ERROR);
//! * the taskmanager killed in the middle of a create (a new one fails and cleans it);
//! * RabbitMQ restarted in the middle of a create.
//!
//! Every test has its own loopback range (127.3.x.*) and state directory and removes
//! everything it made, also when it fails. Needs root, RabbitMQ with the management plugin,
//! MariaDB on 127.0.0.1:3306 and the client virtualenv, like the other end-to-end tests.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use common::cluster::{agent_processes, rabbit_user_exists, Cluster, Options};
use common::{quota_in_use, Tenant, PROJECT};
use serde_json::Value;
use trove_compute::local::GuestLauncher;
use trove_config::{Config, ConfigSources};
use trove_guestagent::postgres::PgBinaries;
use trove_guestagent::{Agent, AgentSettings, PostgresManager};
use trove_rpc::Transport;

/// The fault message of an instance as the tenant reads it (`instance show`).
async fn fault_message(t: &Tenant, name_or_id: &str) -> String {
    let shown = t
        .osc_json(&["database", "instance", "show", name_or_id])
        .await;
    match &shown["fault"] {
        Value::Object(f) => f["message"].as_str().unwrap_or_default().to_owned(),
        Value::String(s) => s.clone(),
        other => panic!("no fault in `instance show`: {other} ({shown})"),
    }
}

// ---------------------------------------------------------------------------------------
// 1. A datastore version whose server is not installed.

/// Starts in-process guest agents; the PostgreSQL binaries are those of the datastore
/// version's major version (`/usr/lib/postgresql/<major>/bin`, Debian's layout), so a
/// version that is not installed has no server binaries.
struct VersionedLauncher {
    transport: Arc<dyn Transport>,
    agents: tokio::sync::Mutex<HashMap<String, Agent>>,
}

impl std::fmt::Debug for VersionedLauncher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VersionedLauncher").finish_non_exhaustive()
    }
}

#[async_trait]
impl GuestLauncher for VersionedLauncher {
    async fn launch(
        &self,
        instance_id: &str,
        config_dirs: &[PathBuf],
        _log_file: &Path,
    ) -> trove_compute::Result<()> {
        let sources = ConfigSources {
            files: Vec::new(),
            dirs: config_dirs.to_vec(),
        };
        let loaded = trove_config::load(&sources)
            .map_err(|e| trove_compute::DriverError::host("reading the guest config", e))?;
        let settings = AgentSettings::from_config(&loaded.config)
            .map_err(|e| trove_compute::DriverError::host("guest agent settings", e))?;
        let version = loaded
            .config
            .default
            .datastore_version
            .clone()
            .unwrap_or_default();
        let agent = if settings.datastore_manager == "postgresql" {
            let major = version.split('.').next().unwrap_or_default();
            let bin_dir = PathBuf::from(format!("/usr/lib/postgresql/{major}/bin"));
            let manager =
                PostgresManager::with_binaries(settings.manager.clone(), PgBinaries { bin_dir });
            Agent::with_manager(settings, Arc::new(manager), self.transport.clone()).await
        } else {
            Agent::start(settings, self.transport.clone()).await
        }
        .map_err(|e| trove_compute::DriverError::host("starting the guest agent", e))?;
        if let Some(old) = self
            .agents
            .lock()
            .await
            .insert(instance_id.to_owned(), agent)
        {
            old.stop().await;
        }
        Ok(())
    }

    async fn is_running(&self, instance_id: &str) -> bool {
        self.agents.lock().await.contains_key(instance_id)
    }

    async fn stop(&self, instance_id: &str) -> trove_compute::Result<()> {
        let agent = self.agents.lock().await.remove(instance_id);
        if let Some(a) = agent {
            a.stop().await;
        }
        Ok(())
    }
}

/// The all-in-one services with [`VersionedLauncher`], serving the API.
struct InProcess {
    tenant: Tenant,
    db: trove_db::Db,
    conductor: Option<trove_conductor::ConductorServer>,
    taskmanager: Option<trove_taskmanager::TaskManagerServer>,
    launcher: Arc<VersionedLauncher>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
    local_state: PathBuf,
    _cleanup: common::HostCleanup,
    _dir: tempfile::TempDir,
}

impl InProcess {
    async fn start(first_address: &str) -> InProcess {
        trove::init_logging(false);
        let dir = tempfile::Builder::new()
            .prefix("trove-failures")
            .tempdir()
            .unwrap();
        let state = dir.path().canonicalize().unwrap();
        let cleanup = common::HostCleanup(state.clone());
        let mut config = Config::default();
        trove::aio::apply_defaults(&mut config, &state);
        config.local_driver.first_address = first_address.to_owned();
        config.default.report_interval = 2;
        config.default.usage_timeout = 120;
        config.default.control_exchange = "trove".into();
        let config = Arc::new(config);
        let db = trove::connect_db(&config).await.unwrap();
        db.migrate().await.unwrap();
        trove::aio::bootstrap(&db, &state).await.unwrap();
        let transport: Arc<dyn Transport> = Arc::new(trove_rpc::InMemoryTransport::new());
        let conductor = trove_conductor::start(&config, db.clone(), transport.as_ref())
            .await
            .unwrap();
        let launcher = Arc::new(VersionedLauncher {
            transport: transport.clone(),
            agents: tokio::sync::Mutex::new(HashMap::new()),
        });
        let driver = trove::local::local_driver(&config, launcher.clone()).unwrap();
        let tm = trove_taskmanager::TaskManager::new(
            config.clone(),
            db.clone(),
            trove::local::drivers(driver),
            transport.clone(),
            None,
        );
        let taskmanager = trove_taskmanager::TaskManagerServer::start(
            tm.clone(),
            transport.as_ref(),
            trove_taskmanager::target(&config),
            trove_taskmanager::recovery_period(tm.settings()),
        )
        .await
        .unwrap();
        let flavors = Arc::new(trove_api::flavors::DbFlavors(db.clone()));
        let router =
            trove::api_router(config.clone(), db.clone(), transport.clone(), flavors, None)
                .unwrap();
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
        InProcess {
            tenant: Tenant::new(&base, PROJECT),
            db,
            conductor: Some(conductor),
            taskmanager: Some(taskmanager),
            launcher,
            stop: Some(stop),
            server: Some(server),
            local_state: state.join("local"),
            _cleanup: cleanup,
            _dir: dir,
        }
    }

    async fn shutdown(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(s) = self.server.take() {
            let _ = s.await;
        }
        if let Some(tm) = self.taskmanager.take() {
            tm.stop().await;
        }
        let agents: Vec<Agent> = self
            .launcher
            .agents
            .lock()
            .await
            .drain()
            .map(|(_, a)| a)
            .collect();
        for a in agents {
            a.stop().await;
        }
        if let Some(c) = self.conductor.take() {
            c.stop().await;
        }
        self.db.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn datastore_version_without_server_binaries_fails_cleanly() {
    if !common::is_root() {
        eprintln!("skipped: needs root for loop devices and mounts");
        return;
    }
    let missing = "99";
    assert!(
        !Path::new(&format!("/usr/lib/postgresql/{missing}")).exists(),
        "PostgreSQL {missing} is installed here; the test needs a version that is not"
    );
    let run = InProcess::start("127.3.1.1").await;
    let t = &run.tenant;
    // The operator registers a version whose server is not installed on the guests.
    trove_manage::run_args(
        &run.db,
        [
            "trove-manage",
            "datastore_version_update",
            "postgresql",
            missing,
            "postgresql",
            "",
            "",
            "1",
            "--version",
            "99.0",
        ],
    )
    .await
    .expect("register the version");

    let started = Instant::now();
    let created = t
        .osc_json(&[
            "database",
            "instance",
            "create",
            "nobin",
            "--flavor",
            "1",
            "--size",
            "1",
            "--datastore",
            "postgresql",
            "--datastore-version",
            missing,
        ])
        .await;
    let id = created["id"].as_str().unwrap().to_owned();
    let inst = t.wait_status(&id, "ERROR", Duration::from_secs(90)).await;
    eprintln!("ERROR after {:?}: {inst}", started.elapsed());
    let fault = fault_message(t, "nobin").await;
    eprintln!("fault: {fault}");
    assert!(
        fault.contains("initdb") && fault.contains("No such file"),
        "the fault says which server program is missing: {fault}"
    );
    // The failed create removed what it made: agent, mount, loop device, lease, volume.
    common::wait_no_trace(&run.local_state, &id, Duration::from_secs(30)).await;
    assert!(!run.launcher.is_running(&id).await, "agent still runs");
    assert_eq!(
        quota_in_use(t, PROJECT, "instances").await,
        1,
        "held until deleted"
    );

    t.osc_ok(&["database", "instance", "delete", "nobin"]).await;
    t.wait_gone(&id, Duration::from_secs(60)).await;
    common::assert_no_trace(&run.local_state, &id);
    assert_eq!(quota_in_use(t, PROJECT, "instances").await, 0);
    assert_eq!(quota_in_use(t, PROJECT, "volumes").await, 0);
    run.shutdown().await;
}

// ---------------------------------------------------------------------------------------
// 2. A guest agent that never reports.

/// A guest agent program that starts (keeping its `--config-dir` arguments, by which the
/// local driver recognises an instance's agent) and then never says anything. A program
/// that drops its arguments (`exec sleep 3600`) is not recognised as the instance's agent
/// by the local driver, which then cannot stop it: that process would be left running.
fn silent_agent(dir: &Path) -> PathBuf {
    let path = dir.join("silent-guestagent");
    std::fs::write(
        &path,
        "#!/bin/sh\n# never reports\nwhile :; do sleep 1; done\n",
    )
    .unwrap();
    let mut perms = std::fs::metadata(&path).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&path, perms).unwrap();
    path
}

/// Creates a MariaDB instance with the CLI; returns its id.
async fn create_mariadb(t: &Tenant, name: &str) -> String {
    let (_, ds) = t.get("datastores/mariadb").await;
    let version = ds["datastore"]["versions"][0]["name"]
        .as_str()
        .unwrap_or_else(|| panic!("no mariadb version: {ds}"))
        .to_owned();
    let created = t
        .osc_json(&[
            "database",
            "instance",
            "create",
            name,
            "--flavor",
            "1",
            "--size",
            "1",
            "--datastore",
            "mariadb",
            "--datastore-version",
            &version,
        ])
        .await;
    created["id"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn guest_that_never_reports_times_out_and_is_removed() {
    if !common::is_root() {
        eprintln!("skipped: needs root for loop devices and mounts");
        return;
    }
    let _broker = trove_rpc::testing::broker_lock_shared().unwrap();
    let scripts = tempfile::tempdir().unwrap();
    let mut opts = Options::new("127.3.2.1");
    opts.usage_timeout = 8;
    opts.guest_agent_program = Some(silent_agent(scripts.path()));
    let (cluster, t) = Cluster::start(&opts).await;
    let _scripts_cleanup = common::HostCleanup(scripts.path().to_path_buf());
    let state = cluster.state_dir();

    let started = Instant::now();
    let id = create_mariadb(&t, "silent").await;
    // The agent runs (and says nothing) while the taskmanager waits.
    let deadline = Instant::now() + Duration::from_secs(10);
    while common::processes_mentioning(&id).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the agent never started: {}",
            cluster.logs(&id)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let user = format!("guest-{id}");
    assert!(rabbit_user_exists(&user).await, "no broker user {user}");

    let inst = common::wait_not_building(&t, &id, Duration::from_secs(30)).await;
    let took = started.elapsed();
    eprintln!("left BUILD after {took:?}: {inst}");
    assert_eq!(inst["status"], "ERROR", "{inst}\n{}", cluster.logs(&id));
    assert!(
        took >= Duration::from_secs(8),
        "failed before usage_timeout: {took:?}"
    );
    let fault = fault_message(&t, "silent").await;
    eprintln!("fault: {fault}");
    assert!(
        fault.contains("usage_timeout") && fault.to_lowercase().contains("guest agent"),
        "the fault says the guest did not become ready in time: {fault}"
    );
    assert!(
        !fault.contains("interrupted"),
        "the create was not interrupted, the guest was silent: {fault}"
    );
    // The service status is an error (Trove: "guestagent error").
    let (_, body) = t.get(&format!("instances/{id}")).await;
    let shown = t
        .osc_json(&["database", "instance", "show", "silent"])
        .await;
    eprintln!("instance show: {shown}\nAPI: {body}");
    let status = cluster.sql(&format!(
        "SELECT status_description FROM service_statuses WHERE instance_id = '{id}'"
    ));
    assert_eq!(status, "guestagent error", "service status");

    // Nothing of it is left: the silent process, mount, loop device, lease, broker user.
    common::wait_no_trace(&state, &id, Duration::from_secs(30)).await;
    assert!(!rabbit_user_exists(&user).await, "broker user {user} left");

    t.osc_ok(&["database", "instance", "delete", "silent"])
        .await;
    t.wait_gone(&id, Duration::from_secs(60)).await;
    assert_eq!(quota_in_use(&t, PROJECT, "instances").await, 0);
}

// ---------------------------------------------------------------------------------------
// 3. A guest agent killed after ACTIVE.

/// The pid of a process line of [`common::processes_mentioning`].
fn pid_of(line: &str) -> String {
    line.split(':').next().unwrap_or_default().trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn guest_killed_after_active_shows_an_error_operating_status() {
    if !common::is_root() {
        eprintln!("skipped: needs root for loop devices and mounts");
        return;
    }
    let _broker = trove_rpc::testing::broker_lock_shared().unwrap();
    let mut opts = Options::new("127.3.3.1");
    opts.report_interval = 2;
    opts.extra_default = "agent_heartbeat_expiry = 6\n".into();
    let (cluster, t) = Cluster::start(&opts).await;
    let state = cluster.state_dir();

    let id = create_mariadb(&t, "killed").await;
    cluster.wait_active(&t, &id, Duration::from_secs(150)).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let inst = t.instance(&id).await.unwrap();
        if inst["operating_status"] == "HEALTHY" {
            break;
        }
        assert!(Instant::now() < deadline, "never HEALTHY: {inst}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    let agents = agent_processes(&id);
    assert_eq!(agents.len(), 1, "{agents:?}");
    let killed = Instant::now();
    let st = Command::new("kill")
        .args(["-9", &pid_of(&agents[0])])
        .status()
        .unwrap();
    assert!(st.success());
    // The database server of the instance keeps running without its agent.
    let servers: Vec<String> = common::processes_mentioning(&id)
        .into_iter()
        .filter(|p| !p.contains("trove-guestagent"))
        .collect();
    assert!(
        servers.iter().any(|p| p.contains("mariadbd")),
        "the instance's mariadbd should outlive its agent: {servers:?}"
    );

    // Within the heartbeat expiry (+ a report interval) the API shows the guest as
    // unreachable: operating_status ERROR, while status stays ACTIVE.
    let mut last;
    loop {
        let inst = t.instance(&id).await.unwrap();
        assert_eq!(
            inst["status"], "ACTIVE",
            "status changes with the agent's death: {inst}"
        );
        last = inst["operating_status"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if last == "ERROR" {
            break;
        }
        assert_eq!(last, "HEALTHY", "{inst}");
        assert!(
            killed.elapsed() < Duration::from_secs(20),
            "operating_status still {last} {:?} after the kill: {inst}",
            killed.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let took = killed.elapsed();
    eprintln!("operating_status ERROR {took:?} after the agent was killed");
    assert!(
        took >= Duration::from_secs(3),
        "ERROR came before the heartbeat could expire: {took:?}"
    );
    let shown = t
        .osc_json(&["database", "instance", "show", "killed"])
        .await;
    assert_eq!(shown["status"], "ACTIVE", "{shown}");
    assert_eq!(shown["operating_status"], "ERROR", "{shown}");

    // Delete removes everything, the orphaned mariadbd included.
    let user = format!("guest-{id}");
    t.osc_ok(&["database", "instance", "delete", "killed"])
        .await;
    t.wait_gone(&id, Duration::from_secs(60)).await;
    common::wait_no_trace(&state, &id, Duration::from_secs(10)).await;
    assert!(!rabbit_user_exists(&user).await, "broker user {user} left");
    assert_eq!(quota_in_use(&t, PROJECT, "instances").await, 0);
}

// ---------------------------------------------------------------------------------------
// 4. The taskmanager killed in the middle of a create.

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn taskmanager_killed_mid_create_is_recovered_by_the_next_one() {
    if !common::is_root() {
        eprintln!("skipped: needs root for loop devices and mounts");
        return;
    }
    let _broker = trove_rpc::testing::broker_lock_shared().unwrap();
    let mut opts = Options::new("127.3.4.1");
    opts.usage_timeout = 10;
    let (mut cluster, t) = Cluster::start(&opts).await;
    let state = cluster.state_dir();

    // Kill the taskmanager as soon as the create made its server (the instance directory
    // appears), before the guest is prepared.
    let creating = {
        let t = Tenant::new(&t.base, PROJECT);
        tokio::spawn(async move { create_mariadb(&t, "orphan").await })
    };
    let instances = state.join("instances");
    let deadline = Instant::now() + Duration::from_secs(60);
    let made = loop {
        let found: Vec<PathBuf> = std::fs::read_dir(&instances)
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        if let Some(dir) = found.into_iter().next() {
            break dir;
        }
        assert!(
            Instant::now() < deadline,
            "no server made: {}",
            cluster.log("taskmanager")
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    cluster.kill9("taskmanager");
    let killed = Instant::now();
    let id = creating.await.unwrap();
    assert!(made.ends_with(&id), "{} is not {id}", made.display());
    let tm_log = cluster.log("taskmanager");
    assert!(
        !tm_log.contains("instance ACTIVE"),
        "the create finished before the kill:\n{tm_log}"
    );
    let inst = t.instance(&id).await.unwrap();
    assert_eq!(inst["status"], "BUILD", "{inst}");

    cluster.spawn("taskmanager", env!("CARGO_BIN_EXE_trove-taskmanager"));
    // usage_timeout (10 s) + the recovery period (5 s) + margin.
    let inst = common::wait_not_building(&t, &id, Duration::from_secs(40)).await;
    eprintln!("left BUILD {:?} after the kill: {inst}", killed.elapsed());
    assert_eq!(inst["status"], "ERROR", "{inst}\n{}", cluster.logs(&id));
    let fault = fault_message(&t, "orphan").await;
    eprintln!("fault: {fault}");
    assert!(
        fault.contains("usage_timeout") && fault.contains("interrupted"),
        "{fault}"
    );
    common::wait_no_trace(&state, &id, Duration::from_secs(30)).await;
    let user = format!("guest-{id}");
    assert!(!rabbit_user_exists(&user).await, "broker user {user} left");

    t.osc_ok(&["database", "instance", "delete", "orphan"])
        .await;
    t.wait_gone(&id, Duration::from_secs(60)).await;
    assert_eq!(quota_in_use(&t, PROJECT, "instances").await, 0);
    assert_eq!(quota_in_use(&t, PROJECT, "volumes").await, 0);
}

// ---------------------------------------------------------------------------------------
// 5. RabbitMQ restarted in the middle of a create.

/// Starts the broker application again if the test fails while it is stopped.
struct StartAppOnDrop;

impl Drop for StartAppOnDrop {
    fn drop(&mut self) {
        let _ = Command::new("rabbitmqctl").arg("start_app").status();
        let _ = Command::new("rabbitmqctl")
            .args(["--timeout", "120", "await_startup"])
            .status();
    }
}

fn rabbitmqctl(args: &[&str]) {
    let out = Command::new("rabbitmqctl")
        .args(args)
        .output()
        .expect("run rabbitmqctl");
    assert!(
        out.status.success(),
        "rabbitmqctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Waits until the broker's management API answers again.
async fn wait_management_api(timeout: Duration) {
    let deadline = Instant::now() + timeout;
    let http = reqwest::Client::new();
    loop {
        let ok = http
            .get("http://127.0.0.1:15672/api/overview")
            .basic_auth("guest", Some("guest"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if ok {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "management API not back after {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rabbitmq_restart_mid_create_ends_active_or_in_a_clear_error() {
    if !common::is_root() {
        eprintln!("skipped: needs root for loop devices and mounts");
        return;
    }
    let _broker = trove_rpc::testing::broker_lock_exclusive().unwrap();
    let mut opts = Options::new("127.3.5.1");
    opts.usage_timeout = 60;
    opts.report_interval = 2;
    let (cluster, t) = Cluster::start(&opts).await;
    let state = cluster.state_dir();

    let id = create_mariadb(&t, "bounce").await;
    let restarted = Instant::now();
    {
        let _guard = StartAppOnDrop;
        rabbitmqctl(&["stop_app"]);
        tokio::time::sleep(Duration::from_secs(2)).await;
        rabbitmqctl(&["start_app"]);
        rabbitmqctl(&["--timeout", "120", "await_startup"]);
    }
    wait_management_api(Duration::from_secs(60)).await;
    eprintln!("broker back {:?} after the stop", restarted.elapsed());

    // usage_timeout (60 s) + the recovery period (15 s) + margin.
    let inst = common::wait_not_building(&t, &id, Duration::from_secs(100)).await;
    eprintln!(
        "left BUILD {:?} after the restart: {inst}",
        restarted.elapsed()
    );
    let user = format!("guest-{id}");
    eprintln!(
        "taskmanager steps:\n{}",
        cluster
            .log("taskmanager")
            .lines()
            .filter(|l| l.contains(&id) || l.contains("connect"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    match inst["status"].as_str() {
        Some("ACTIVE") => {
            // Services and guest reconnected; the database works and reports.
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let inst = t.instance(&id).await.unwrap();
                if inst["operating_status"] == "HEALTHY" {
                    break;
                }
                assert!(Instant::now() < deadline, "never HEALTHY: {inst}");
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            let conf = std::fs::read_to_string(
                state
                    .join("instances")
                    .join(&id)
                    .join("conf.d/trove-guestagent.conf"),
            )
            .unwrap_or_default();
            let guest_user = trove_config::Config::from_ini_str("trove-guestagent.conf", &conf)
                .ok()
                .and_then(|c| {
                    trove_rpc::TransportUrl::parse(c.config.default.transport_url.expose_secret())
                        .ok()
                })
                .and_then(|u| u.hosts.first().map(|h| h.username.clone()))
                .unwrap_or_default();
            let dedicated = guest_user == user;
            eprintln!(
                "outcome: ACTIVE and HEALTHY; the guest connects as {}",
                if dedicated {
                    "its own broker user"
                } else {
                    "the shared broker user"
                }
            );
        }
        Some("ERROR") => {
            let fault = fault_message(&t, "bounce").await;
            eprintln!("outcome: ERROR: {fault}");
            assert!(!fault.is_empty(), "an ERROR without a fault");
            common::wait_no_trace(&state, &id, Duration::from_secs(30)).await;
        }
        other => panic!("unexpected status {other:?}: {inst}\n{}", cluster.logs(&id)),
    }

    t.osc_ok(&["database", "instance", "delete", "bounce"])
        .await;
    t.wait_gone(&id, Duration::from_secs(60)).await;
    common::wait_no_trace(&state, &id, Duration::from_secs(10)).await;
    assert!(!rabbit_user_exists(&user).await, "broker user {user} left");
    assert_eq!(quota_in_use(&t, PROJECT, "instances").await, 0);
}
