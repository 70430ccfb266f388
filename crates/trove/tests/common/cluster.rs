//! The distributed harness: `trove-api`, `trove-taskmanager` and `trove-conductor` as
//! processes over the real RabbitMQ (a control exchange of their own) with a MariaDB
//! control database of their own; guests are `trove-guestagent` processes (or whatever
//! [`Options::guest_agent_program`] names). Everything is stopped and removed on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{processes_mentioning, HostCleanup, Tenant, PROJECT};

/// What a test changes in the services' configuration.
#[derive(Debug, Clone)]
pub struct Options {
    /// `[local_driver] first_address`: each test has a loopback range of its own.
    pub first_address: String,
    /// `[DEFAULT] report_interval` (also the guests' heartbeat period).
    pub report_interval: u64,
    /// `[DEFAULT] usage_timeout`.
    pub usage_timeout: u64,
    /// More `[DEFAULT]` lines of the services' configuration.
    pub extra_default: String,
    /// `[local_driver] guest_agent_program` (default: the built `trove-guestagent`).
    pub guest_agent_program: Option<PathBuf>,
    /// More configuration appended to the services' trove.conf (whole sections; a group
    /// named again merges with the earlier one).
    pub extra_conf: String,
}

impl Options {
    /// Defaults of the distributed end-to-end tests on `first_address`.
    pub fn new(first_address: &str) -> Self {
        Options {
            first_address: first_address.to_owned(),
            report_interval: 5,
            usage_timeout: 300,
            extra_default: String::new(),
            guest_agent_program: None,
            extra_conf: String::new(),
        }
    }
}

/// The services of one test, killed when dropped.
pub struct Cluster {
    children: Vec<(String, Child)>,
    /// The test's directory: configuration, logs and the local driver's state.
    pub dir: tempfile::TempDir,
    conf: PathBuf,
    db_name: String,
    /// The control exchange of this test's services.
    pub exchange: String,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _cleanup = HostCleanup(self.dir.path().to_path_buf());
        for (_, c) in &mut self.children {
            let _ = Command::new("kill").arg(c.id().to_string()).status();
        }
        for (_, c) in &mut self.children {
            let deadline = Instant::now() + Duration::from_secs(20);
            while c.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        // The broker users of this test's instances (a create that a failing test left
        // behind still has its guest's user).
        let ids = Command::new("mariadb")
            .args([
                "-h",
                "127.0.0.1",
                "-u",
                "root",
                "--batch",
                "--skip-column-names",
            ])
            .arg(&self.db_name)
            .args(["-e", "SELECT id FROM instances"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        for id in ids.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let _ = Command::new("curl")
                .args(["-s", "-u", "guest:guest", "-X", "DELETE"])
                .arg(format!("http://127.0.0.1:15672/api/users/guest-{id}"))
                .output();
        }
        let _ = Command::new("mariadb")
            .args(["-h", "127.0.0.1", "-u", "root", "-e"])
            .arg(format!("DROP DATABASE IF EXISTS {}", self.db_name))
            .status();
        self.remove_broker_objects();
    }
}

impl Cluster {
    /// Deletes this test's queues (named after its suffix) and control exchange from
    /// RabbitMQ through the management API.
    fn remove_broker_objects(&self) {
        let suffix = self.exchange.trim_start_matches("trove_e2e_").to_owned();
        let api = "http://127.0.0.1:15672/api";
        let curl = |args: &[&str]| {
            Command::new("curl")
                .args(["-s", "-u", "guest:guest"])
                .args(args)
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default()
        };
        let listed = curl(&[&format!("{api}/queues/%2F?columns=name")]);
        let names: Vec<String> = serde_json::from_str::<serde_json::Value>(&listed)
            .ok()
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(|q| q["name"].as_str().map(str::to_owned))
            .filter(|n| n.contains(&suffix))
            .collect();
        for n in names {
            curl(&["-X", "DELETE", &format!("{api}/queues/%2F/{n}")]);
        }
        curl(&[
            "-X",
            "DELETE",
            &format!("{api}/exchanges/%2F/{}", self.exchange),
        ]);
    }

    /// Starts conductor, taskmanager and API with `opts`; returns once the API answers.
    pub async fn start(opts: &Options) -> (Cluster, Tenant) {
        let dir = tempfile::Builder::new()
            .prefix("trove-dist-e2e")
            .tempdir()
            .unwrap();
        let suffix = &uuid_like()[..8];
        let db_name = format!("trove_e2e_{suffix}");
        let exchange = format!("trove_e2e_{suffix}");
        let ok = Command::new("mariadb")
            .args(["-h", "127.0.0.1", "-u", "root", "-e"])
            .arg(format!("CREATE DATABASE {db_name}"))
            .status()
            .unwrap();
        assert!(ok.success(), "cannot create the control database");
        let port = free_port();
        let state = dir.path().canonicalize().unwrap().join("local");
        let conf = dir.path().join("trove.conf");
        let agent = opts
            .guest_agent_program
            .clone()
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_trove-guestagent")));
        std::fs::write(
            &conf,
            format!(
                "[DEFAULT]\ntransport_url = rabbit://guest:guest@127.0.0.1:5672/\n\
                 control_exchange = {exchange}\nreport_interval = {report}\n\
                 taskmanager_queue = taskmanager_{suffix}\nconductor_queue = conductor_{suffix}\n\
                 usage_timeout = {usage}\n\
                 bind_host = 127.0.0.1\nbind_port = {port}\n\
                 guest_config = {guest_conf}\n{extra}\n\
                 [database]\nconnection = mysql+pymysql://root@127.0.0.1:3306/{db_name}?charset=utf8\n\
                 [local_driver]\nstate_path = {state}\nfirst_address = {first}\n\
                 guest_agent_program = {agent}\n{extra_conf}",
                report = opts.report_interval,
                usage = opts.usage_timeout,
                extra = opts.extra_default,
                guest_conf = dir.path().join("trove-guestagent.conf").display(),
                state = state.display(),
                first = opts.first_address,
                agent = agent.display(),
                extra_conf = opts.extra_conf,
            ),
        )
        .unwrap();
        // The operator's guest configuration, copied into every guest.
        std::fs::write(
            dir.path().join("trove-guestagent.conf"),
            "[DEFAULT]\ndebug = true\n",
        )
        .unwrap();
        let config = trove::load_config(&trove_config::ConfigArgs {
            config_file: vec![conf.clone()],
            config_dir: vec![],
        })
        .unwrap();
        let db = trove::connect_db(&config).await.unwrap();
        db.migrate().await.unwrap();
        trove::aio::bootstrap(&db, dir.path()).await.unwrap();
        db.close().await;

        let mut cluster = Cluster {
            children: Vec::new(),
            dir,
            conf,
            db_name,
            exchange,
        };
        cluster.spawn("conductor", env!("CARGO_BIN_EXE_trove-conductor"));
        cluster.spawn("taskmanager", env!("CARGO_BIN_EXE_trove-taskmanager"));
        cluster.spawn("api", env!("CARGO_BIN_EXE_trove-api"));
        let base = format!("http://127.0.0.1:{port}");
        let tenant = Tenant::new(&base, PROJECT);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if reqwest::get(&base).await.is_ok() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "API not up: {}",
                cluster.log("api")
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        (cluster, tenant)
    }

    /// The output of service `name` so far (all its runs).
    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{name}.log"))).unwrap_or_default()
    }

    /// Starts `program` as service `name` (its output appended to `<name>.log`).
    pub fn spawn(&mut self, name: &str, program: &str) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("{name}.log")))
            .unwrap();
        let child = Command::new(program)
            .arg("--config-file")
            .arg(&self.conf)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("{program}: {e}"));
        self.children.push((name.to_owned(), child));
    }

    /// Stops service `name` with SIGTERM and waits for it.
    pub fn stop(&mut self, name: &str) {
        if let Some(pos) = self.children.iter().position(|(n, _)| n == name) {
            let (_, mut c) = self.children.remove(pos);
            let _ = Command::new("kill").arg(c.id().to_string()).status();
            let _ = c.wait();
        }
    }

    /// Kills service `name` with SIGKILL (no clean-up of its own) and reaps it.
    pub fn kill9(&mut self, name: &str) {
        if let Some(pos) = self.children.iter().position(|(n, _)| n == name) {
            let (_, mut c) = self.children.remove(pos);
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The local driver's state directory.
    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().canonicalize().unwrap().join("local")
    }

    /// The guest agent's output of instance `id`.
    pub fn guest_log(&self, id: &str) -> String {
        std::fs::read_to_string(
            self.state_dir()
                .join("instances")
                .join(id)
                .join("guestagent.log"),
        )
        .unwrap_or_default()
    }

    /// The services' and the guest's logs, for failure messages.
    pub fn logs(&self, id: &str) -> String {
        format!(
            "--- taskmanager\n{}\n--- conductor\n{}\n--- guest\n{}",
            self.log("taskmanager"),
            self.log("conductor"),
            self.guest_log(id)
        )
    }

    /// Waits for ACTIVE; on ERROR or after `timeout` panics with the logs.
    pub async fn wait_active(&self, t: &Tenant, id: &str, timeout: Duration) -> serde_json::Value {
        let deadline = Instant::now() + timeout;
        loop {
            let inst = t.instance(id).await.expect("instance exists");
            if inst["status"] == "ACTIVE" {
                return inst;
            }
            if inst["status"] == "ERROR" || Instant::now() > deadline {
                panic!("instance {id} not ACTIVE: {inst}\n{}", self.logs(id));
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A unique-enough hex string (names of databases and exchanges).
pub fn uuid_like() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    static COUNT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!(
        "{:016x}",
        t ^ u128::from(std::process::id()) ^ (u128::from(n) << 24)
    )
    .chars()
    .rev()
    .collect()
}

/// Whether the RabbitMQ user `name` exists (management API).
pub async fn rabbit_user_exists(name: &str) -> bool {
    let r = reqwest::Client::new()
        .get(format!("http://127.0.0.1:15672/api/users/{name}"))
        .basic_auth("guest", Some("guest"))
        .send()
        .await
        .expect("RabbitMQ management API");
    r.status().as_u16() == 200
}

/// The `trove-guestagent` processes of instance `id`.
pub fn agent_processes(id: &str) -> Vec<String> {
    processes_mentioning(id)
        .into_iter()
        .filter(|p| p.contains("trove-guestagent"))
        .collect()
}

/// Address leases under the local state `state` that name instance `id`.
pub fn leases_of(state: &Path, id: &str) -> Vec<PathBuf> {
    std::fs::read_dir(state.join("addresses"))
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| std::fs::read_to_string(p).is_ok_and(|s| s.contains(id)))
                .collect()
        })
        .unwrap_or_default()
}

impl Cluster {
    /// Runs `query` in this test's control database with the `mariadb` client; returns
    /// its output without column names, trimmed.
    pub fn sql(&self, query: &str) -> String {
        let out = Command::new("mariadb")
            .args([
                "-h",
                "127.0.0.1",
                "-u",
                "root",
                "--batch",
                "--skip-column-names",
            ])
            .arg(&self.db_name)
            .args(["-e", query])
            .output()
            .expect("run mariadb");
        assert!(
            out.status.success(),
            "{query}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}
