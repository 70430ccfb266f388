//! End to end in the distributed mode: `trove-api`, `trove-taskmanager` and
//! `trove-conductor` as separate processes over the real RabbitMQ, with MariaDB as the
//! control database; each instance's guest agent is its own `trove-guestagent` process
//! with its own RabbitMQ user. Driven by the real `openstack database` CLI.
//!
//! Needs root, RabbitMQ with the management plugin, MariaDB on 127.0.0.1:3306 and the client
//! virtualenv; the project's test command provides all of them.

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{assert_nothing_left, ip_of, mariadb, processes_mentioning, Tenant, PROJECT};

/// The services of one test, killed when dropped.
struct Cluster {
    children: Vec<(String, Child)>,
    dir: tempfile::TempDir,
    conf: PathBuf,
    db_name: String,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _cleanup = common::HostCleanup(self.dir.path().to_path_buf());
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
        let _ = Command::new("mariadb")
            .args(["-h", "127.0.0.1", "-u", "root", "-e"])
            .arg(format!("DROP DATABASE IF EXISTS {}", self.db_name))
            .status();
    }
}

impl Cluster {
    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{name}.log"))).unwrap_or_default()
    }

    fn spawn(&mut self, name: &str, program: &str) {
        let log = std::fs::File::create(self.dir.path().join(format!("{name}.log"))).unwrap();
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

    fn stop(&mut self, name: &str) {
        if let Some(pos) = self.children.iter().position(|(n, _)| n == name) {
            let (_, mut c) = self.children.remove(pos);
            let _ = Command::new("kill").arg(c.id().to_string()).status();
            let _ = c.wait();
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn start(first_address: &str) -> (Cluster, Tenant) {
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
    std::fs::write(
        &conf,
        format!(
            "[DEFAULT]\ntransport_url = rabbit://guest:guest@127.0.0.1:5672/\n\
             control_exchange = {exchange}\nreport_interval = 5\nusage_timeout = 300\n\
             bind_host = 127.0.0.1\nbind_port = {port}\n\
             guest_config = {guest_conf}\n\
             [database]\nconnection = mysql+pymysql://root@127.0.0.1:3306/{db_name}?charset=utf8\n\
             [local_driver]\nstate_path = {state}\nfirst_address = {first_address}\n\
             guest_agent_program = {agent}\n",
            guest_conf = dir.path().join("trove-guestagent.conf").display(),
            state = state.display(),
            agent = env!("CARGO_BIN_EXE_trove-guestagent"),
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

fn uuid_like() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{:016x}", t ^ (u128::from(std::process::id()) << 40))
        .chars()
        .rev()
        .collect()
}

async fn rabbit_user_exists(name: &str) -> bool {
    let r = reqwest::Client::new()
        .get(format!("http://127.0.0.1:15672/api/users/{name}"))
        .basic_auth("guest", Some("guest"))
        .send()
        .await
        .expect("RabbitMQ management API");
    r.status().as_u16() == 200
}

/// Waits for ACTIVE; on failure shows the services' and the guest's logs.
async fn wait_active(c: &Cluster, t: &Tenant, id: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let inst = t.instance(id).await.expect("instance exists");
        if inst["status"] == "ACTIVE" {
            return inst;
        }
        if inst["status"] == "ERROR" || Instant::now() > deadline {
            let guest = std::fs::read_to_string(
                state_dir(c)
                    .join("instances")
                    .join(id)
                    .join("guestagent.log"),
            )
            .unwrap_or_default();
            panic!(
                "instance {id} not ACTIVE: {inst}\n--- taskmanager\n{}\n--- conductor\n{}\n--- guest\n{guest}",
                c.log("taskmanager"),
                c.log("conductor")
            );
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

fn state_dir(c: &Cluster) -> PathBuf {
    c.dir.path().canonicalize().unwrap().join("local")
}

fn agent_processes(id: &str) -> Vec<String> {
    processes_mentioning(id)
        .into_iter()
        .filter(|p| p.contains("trove-guestagent"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn separate_processes_over_rabbitmq_build_and_delete_an_instance() {
    if !common::is_root() {
        eprintln!("skipped: needs root for loop devices and mounts");
        return;
    }
    let _broker = trove_rpc::testing::broker_lock_shared().unwrap();
    let (cluster, t) = start("127.2.2.1").await;
    let (_, ds) = t.get("datastores/mariadb").await;
    let version = ds["datastore"]["versions"][0]["name"]
        .as_str()
        .unwrap()
        .to_owned();

    let created = t
        .osc_json(&[
            "database",
            "instance",
            "create",
            "dist1",
            "--flavor",
            "1",
            "--size",
            "1",
            "--datastore",
            "mariadb",
            "--datastore-version",
            &version,
            "--databases",
            "app",
            "--users",
            "app:Secret123",
        ])
        .await;
    let id = created["id"].as_str().unwrap().to_owned();
    let inst = wait_active(&cluster, &t, &id).await;
    let ip = ip_of(&inst);
    mariadb(
        &ip,
        "app",
        "Secret123",
        "app",
        "CREATE TABLE t (x INT); INSERT INTO t VALUES (1)",
    )
    .await
    .expect("app writes");

    // The guest agent is its own process, connected as its own RabbitMQ user.
    assert_eq!(
        agent_processes(&id).len(),
        1,
        "{:?}",
        processes_mentioning(&id)
    );
    let user = format!("guest-{id}");
    assert!(rabbit_user_exists(&user).await, "no RabbitMQ user {user}");
    let guest_conf = std::fs::read_to_string(
        state_dir(&cluster)
            .join("instances")
            .join(&id)
            .join("conf.d/trove-guestagent.conf"),
    )
    .unwrap();
    assert!(
        guest_conf.contains("debug = true"),
        "operator's guest config copied"
    );
    let loaded = trove_config::Config::from_ini_str("trove-guestagent.conf", &guest_conf)
        .unwrap()
        .config;
    let url = trove_rpc::TransportUrl::parse(loaded.default.transport_url.expose_secret()).unwrap();
    assert_eq!(url.hosts[0].username, user, "{guest_conf}");
    assert_ne!(
        url.hosts[0].password, "guest",
        "the shared credentials reached the guest"
    );

    // A restart of the taskmanager does not touch the running instance.
    let mut cluster = cluster;
    cluster.stop("taskmanager");
    cluster.spawn("taskmanager", env!("CARGO_BIN_EXE_trove-taskmanager"));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(agent_processes(&id).len(), 1);

    t.osc_ok(&["database", "instance", "restart", "dist1"])
        .await;
    t.wait_status(&id, "ACTIVE", Duration::from_secs(120)).await;
    let got = mariadb(&ip, "app", "Secret123", "app", "SELECT x FROM t")
        .await
        .unwrap();
    assert_eq!(got.trim(), "1");

    t.osc_ok(&["database", "instance", "delete", "dist1"]).await;
    t.wait_gone(&id, Duration::from_secs(120)).await;
    assert_nothing_left(&state_dir(&cluster), &id, &ip);
    assert!(
        !rabbit_user_exists(&user).await,
        "RabbitMQ user {user} left behind"
    );
    assert!(cluster.log("taskmanager").contains("instance deleted"));
}
