//! Benchmark (not a test): wall time from `POST /instances` to `ACTIVE` per datastore, beside
//! the bare time to initialise and start the same server by hand on the same machine. The
//! overhead, product minus bare, is the figure.
//!
//! ```text
//!  cargo bench -p trove --bench create_to_active        (as root: loop devices, mounts, the
//!                                                        database service account)
//!  per datastore (mariadb, postgresql: those the API lists), BENCH_RUNS times (default 5),
//!  interleaved so drift of the machine hits every column alike:
//!   product       POST /v1.0/bench/instances (flavor 1, 1 GB volume, one database, one user)
//!                 -> GET every 50 ms until ACTIVE            (timed: "POST->ACTIVE")
//!                 -> DELETE -> GET every 50 ms until 404     (timed apart: "delete")
//!   bare          what the guest agent runs, minus Trove's work: the same directories and
//!                 configuration for 512 MB of RAM, the same initialiser and server command
//!                 lines as the same service account; ready when `SELECT 1` over the server's
//!                 socket answers and its TCP port accepts a connection
//!   bare+volume   the same, on a fresh sparse 1 GiB image attached to a loop device,
//!                 formatted and mounted with the guest's `mkfs` and `mount` options
//! ```
//!
//! The all-in-one services run in this process (SQLite, in-memory transport, local driver with
//! instance addresses from 127.4.0.1; the bare servers listen on 127.4.255.1; the GET rate
//! limit raised for the 50 ms polling, everything else at its default), everything under
//! one temporary directory that is cleaned up however the run ends: servers killed, mounts
//! unmounted, loop devices backed by its files detached.
//!
//! Environment: `BENCH_RUNS` (runs per datastore and column), `BENCH_DATASTORES` (comma
//! separated subset, e.g. `mariadb`), `RUST_LOG` (default `warn`). The table goes to standard
//! output and, as JSON, to `target/bench/create_to_active.json`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};
use trove_config::Config;
use trove_guestagent::mariadb::{render_my_cnf, MariaDbBinaries, MariaDbLayout};
use trove_guestagent::postgres::{render_hba, render_sizing, PgBinaries, PgLayout, SUPERUSER};
use trove_guestagent::process::ServiceUser;

/// Project the benchmark acts in (noauth takes it from the URL).
const PROJECT: &str = "bench";
/// First address of the product's instances (the end-to-end tests use 127.2.x.x).
const FIRST_ADDRESS: &str = "127.4.0.1";
/// Address of the bare servers.
const BARE_ADDRESS: &str = "127.4.255.1";
/// Flavor of the product's instances, and its RAM (what the bare servers are sized for).
const FLAVOR_ID: &str = "1";
const FLAVOR_RAM_MB: u64 = 512;
/// Volume size in GiB.
const VOLUME_GB: u64 = 1;
/// Poll period of the API and of the bare servers' readiness.
const POLL: Duration = Duration::from_millis(50);
const ACTIVE_TIMEOUT: Duration = Duration::from_secs(300);
const GONE_TIMEOUT: Duration = Duration::from_secs(120);
const READY_TIMEOUT: Duration = Duration::from_secs(120);
const STOP_TIMEOUT: Duration = Duration::from_secs(60);
/// Datastores measured, in this order, when the API lists them.
const DATASTORES: &[&str] = &["mariadb", "postgresql"];

fn main() -> ExitCode {
    if std::env::var_os("RUST_LOG").is_none() {
        // Before any thread exists.
        std::env::set_var("RUST_LOG", "warn");
    }
    if !is_root() {
        eprintln!("create_to_active: skipped: needs root (loop devices, mounts, the database service account)");
        return ExitCode::SUCCESS;
    }
    let runs = match std::env::var("BENCH_RUNS") {
        Ok(v) => match v.trim().parse::<usize>() {
            Ok(n) if n > 0 => n,
            _ => {
                eprintln!("create_to_active: BENCH_RUNS '{v}' is not a positive number");
                return ExitCode::FAILURE;
            }
        },
        Err(_) => 5,
    };
    let only: Option<Vec<String>> = std::env::var("BENCH_DATASTORES").ok().map(|v| {
        v.split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect()
    });
    // A short prefix: PostgreSQL's socket path under an instance's directory
    // (`.../local/instances/<uuid>/data/run/.s.PGSQL.5432`) must stay within 107 bytes.
    let dir = match tempfile::Builder::new().prefix("trove-bench").tempdir() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("create_to_active: creating a temporary directory: {e}");
            return ExitCode::FAILURE;
        }
    };
    let root = match prepare_root(dir.path()) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("create_to_active: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    // Declared after `dir`, so it runs before the directory is removed.
    let cleanup = HostCleanup(root.clone());
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("create_to_active: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async {
        tokio::select! {
            r = bench(&root, runs, only.as_deref()) => r,
            _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
        }
    });
    // The runtime first (guest agents would restart servers that the cleanup stops), then
    // whatever is left on the host, then the directory.
    drop(rt);
    drop(cleanup);
    drop(dir);
    match result {
        Ok(results) => match report(&results) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("create_to_active: {e:#}");
                ExitCode::FAILURE
            }
        },
        Err(e) => {
            eprintln!("create_to_active: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The canonical root, traversable by the service account like `/var/lib/trove` (a
/// temporary directory is 0700).
fn prepare_root(dir: &Path) -> Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let root = dir
        .canonicalize()
        .with_context(|| format!("resolving {}", dir.display()))?;
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("setting the mode of {}", root.display()))?;
    Ok(root)
}

fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Measurements of one datastore (seconds).
struct DatastoreResult {
    name: String,
    version: String,
    active: Vec<f64>,
    delete: Vec<f64>,
    bare: Vec<f64>,
    bare_volume: Vec<f64>,
}

async fn bench(root: &Path, runs: usize, only: Option<&[String]>) -> Result<Vec<DatastoreResult>> {
    let product = Product::start(&root.join("aio")).await?;
    let outcome = measure_all(&product, root, runs, only).await;
    product.stop().await;
    outcome
}

async fn measure_all(
    product: &Product,
    root: &Path,
    runs: usize,
    only: Option<&[String]>,
) -> Result<Vec<DatastoreResult>> {
    let listed = product.datastores().await?;
    let mut results = Vec::new();
    for &name in DATASTORES {
        if only.is_some_and(|o| !o.iter().any(|n| n == name)) {
            continue;
        }
        let Some(version) = listed
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
        else {
            eprintln!("{name}: not registered (server not installed); skipped");
            continue;
        };
        let bare = Bare::new(product.config.as_ref(), name)?;
        let mut r = DatastoreResult {
            name: name.to_owned(),
            version,
            active: Vec::new(),
            delete: Vec::new(),
            bare: Vec::new(),
            bare_volume: Vec::new(),
        };
        for i in 1..=runs {
            let (active, delete) = product
                .create_to_active(name, &r.version, i)
                .await
                .with_context(|| format!("{name} run {i}: product"))?;
            let b = bare
                .run(&root.join(format!("bare/{name}-{i}")), false)
                .await
                .with_context(|| format!("{name} run {i}: bare"))?;
            let bv = bare
                .run(&root.join(format!("bare/{name}-{i}-volume")), true)
                .await
                .with_context(|| format!("{name} run {i}: bare with volume"))?;
            eprintln!(
                "{name} {}: run {i}/{runs}: POST->ACTIVE {active:.2} s, delete {delete:.2} s, \
                 bare {b:.2} s, bare+volume {bv:.2} s",
                r.version
            );
            r.active.push(active);
            r.delete.push(delete);
            r.bare.push(b);
            r.bare_volume.push(bv);
        }
        results.push(r);
    }
    if results.is_empty() {
        bail!("no datastore to measure (listed: {listed:?})");
    }
    Ok(results)
}

// ---------------------------------------------------------------------------------------
// The product: all-in-one services in this process, driven over HTTP.

struct Product {
    config: Arc<Config>,
    aio: trove::aio::Aio,
    base: String,
    http: reqwest::Client,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Product {
    async fn start(state: &Path) -> Result<Product> {
        trove::init_logging(false);
        std::fs::create_dir_all(state).with_context(|| format!("creating {}", state.display()))?;
        let mut config = Config::default();
        trove::aio::apply_defaults(&mut config, state);
        config.local_driver.first_address = FIRST_ADDRESS.to_owned();
        // Polling every 50 ms is 1200 GETs a minute, over Trove's default of 200; a 413
        // would end the run, and waiting it out would distort the times.
        config.default.http_get_rate = 100_000;
        let config = Arc::new(config);
        let aio = trove::aio::Aio::start(config.clone(), state)
            .await
            .context("starting the all-in-one services")?;
        let router = aio.router(config.clone())?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}/v1.0/{PROJECT}", listener.local_addr()?);
        let (stop, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(trove_api::serve(listener, router, async {
            let _ = rx.await;
        }));
        Ok(Product {
            config,
            aio,
            base,
            http: reqwest::Client::new(),
            stop,
            server,
        })
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        match self.server.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("the API server stopped with an error: {e}"),
            Err(e) => eprintln!("the API server task failed: {e}"),
        }
        self.aio.stop().await;
    }

    async fn get(&self, path: &str) -> Result<(u16, Value)> {
        let r = self
            .http
            .get(format!("{}/{path}", self.base))
            .send()
            .await
            .with_context(|| format!("GET {path}"))?;
        let status = r.status().as_u16();
        Ok((status, r.json().await.unwrap_or(Value::Null)))
    }

    /// `(datastore, first version)` of every datastore the API lists.
    async fn datastores(&self) -> Result<Vec<(String, String)>> {
        let (s, body) = self.get("datastores").await?;
        if s != 200 {
            bail!("GET datastores: {s} {body}");
        }
        let mut out = Vec::new();
        for ds in body["datastores"].as_array().into_iter().flatten() {
            let Some(name) = ds["name"].as_str() else {
                continue;
            };
            let (s, one) = self.get(&format!("datastores/{name}")).await?;
            if s != 200 {
                bail!("GET datastores/{name}: {s} {one}");
            }
            if let Some(v) = one["datastore"]["versions"][0]["name"].as_str() {
                out.push((name.to_owned(), v.to_owned()));
            }
        }
        Ok(out)
    }

    /// One create: seconds from POST to ACTIVE, and from DELETE to 404.
    async fn create_to_active(
        &self,
        datastore: &str,
        version: &str,
        run: usize,
    ) -> Result<(f64, f64)> {
        let body = json!({"instance": {
            "name": format!("bench-{datastore}-{run}"),
            "flavorRef": FLAVOR_ID,
            "volume": {"size": VOLUME_GB},
            "datastore": {"type": datastore, "version": version},
            "databases": [{"name": "app"}],
            "users": [{"name": "app", "password": "Secret123", "databases": [{"name": "app"}]}],
        }});
        let started = Instant::now();
        let r = self
            .http
            .post(format!("{}/instances", self.base))
            .json(&body)
            .send()
            .await
            .context("POST instances")?;
        let status = r.status().as_u16();
        let created: Value = r.json().await.unwrap_or(Value::Null);
        if !(200..300).contains(&status) {
            bail!("POST instances: {status} {created}");
        }
        let id = created["instance"]["id"]
            .as_str()
            .ok_or_else(|| anyhow!("no instance id in {created}"))?
            .to_owned();
        let outcome = self.wait_active(&id, started).await;
        // Deleted even when it did not become ACTIVE, so one failure leaves nothing behind.
        let deleted = self.delete(&id).await;
        let active = outcome?;
        Ok((active, deleted?))
    }

    async fn wait_active(&self, id: &str, started: Instant) -> Result<f64> {
        loop {
            let (s, body) = self.get(&format!("instances/{id}")).await?;
            if s != 200 {
                bail!("GET instances/{id}: {s} {body}");
            }
            let inst = &body["instance"];
            match inst["status"].as_str().unwrap_or("") {
                "ACTIVE" => {
                    let elapsed = started.elapsed().as_secs_f64();
                    check_reachable(inst).await?;
                    return Ok(elapsed);
                }
                "ERROR" => bail!("instance {id} went to ERROR: {inst}"),
                _ => {}
            }
            if started.elapsed() > ACTIVE_TIMEOUT {
                bail!("instance {id} not ACTIVE after {ACTIVE_TIMEOUT:?}: {inst}");
            }
            tokio::time::sleep(POLL).await;
        }
    }

    async fn delete(&self, id: &str) -> Result<f64> {
        let started = Instant::now();
        let r = self
            .http
            .delete(format!("{}/instances/{id}", self.base))
            .send()
            .await
            .context("DELETE instance")?;
        let status = r.status().as_u16();
        if !(200..300).contains(&status) {
            let body = r.text().await.unwrap_or_default();
            bail!("DELETE instances/{id}: {status} {body}");
        }
        loop {
            let (s, body) = self.get(&format!("instances/{id}")).await?;
            match s {
                404 => return Ok(started.elapsed().as_secs_f64()),
                200 if body["instance"]["status"] == "ERROR" => {
                    bail!("instance {id} went to ERROR while deleting: {body}")
                }
                200 => {}
                _ => bail!("GET instances/{id}: {s} {body}"),
            }
            if started.elapsed() > GONE_TIMEOUT {
                bail!("instance {id} still there {GONE_TIMEOUT:?} after DELETE");
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

/// An ACTIVE instance accepts TCP connections at its address (not timed: a sanity check).
async fn check_reachable(inst: &Value) -> Result<()> {
    let ip = inst["ip"][0]
        .as_str()
        .ok_or_else(|| anyhow!("ACTIVE instance without an address: {inst}"))?;
    let port = if inst["datastore"]["type"] == "postgresql" {
        5432
    } else {
        3306
    };
    if tcp_accepts(ip, port).await {
        Ok(())
    } else {
        bail!("ACTIVE instance does not accept connections at {ip}:{port}")
    }
}

async fn tcp_accepts(ip: &str, port: u16) -> bool {
    matches!(
        tokio::time::timeout(
            Duration::from_secs(2),
            tokio::net::TcpStream::connect((ip, port))
        )
        .await,
        Ok(Ok(_))
    )
}

// ---------------------------------------------------------------------------------------
// The bare baseline: what the guest agent runs to initialise and start the server.

/// How the guest formats and mounts volumes (`[DEFAULT]` options).
struct VolumeOpts {
    fstype: String,
    format_options: String,
    mount_options: String,
}

struct Bare {
    datastore: &'static str,
    user: ServiceUser,
    volume: VolumeOpts,
}

impl Bare {
    fn new(config: &Config, datastore: &str) -> Result<Bare> {
        let ds = config
            .datastore(datastore)
            .ok_or_else(|| anyhow!("no configuration group for {datastore}"))?;
        let uid_text = ds
            .database_service_uid
            .clone()
            .unwrap_or_else(|| config.default.database_service_uid.clone());
        let uid: u32 = uid_text
            .trim()
            .parse()
            .with_context(|| format!("database_service_uid '{uid_text}'"))?;
        let user = ServiceUser::ensure(&ds.database_service_uname, uid)
            .with_context(|| format!("the service account {}", ds.database_service_uname))?;
        let datastore = match datastore {
            "mariadb" => "mariadb",
            "postgresql" => "postgresql",
            other => bail!("no bare baseline for {other}"),
        };
        Ok(Bare {
            datastore,
            user,
            volume: VolumeOpts {
                fstype: config.default.volume_fstype.clone(),
                format_options: config.default.format_options.clone(),
                mount_options: config.default.mount_options.clone(),
            },
        })
    }

    /// One initialise + start under `dir` (with a fresh volume mounted there when
    /// `with_volume`), timed until ready; then stopped and removed (not timed).
    async fn run(&self, dir: &Path, with_volume: bool) -> Result<f64> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let started = Instant::now();
        let volume = if with_volume {
            Some(LoopVolume::create(dir, &self.volume).await?)
        } else {
            None
        };
        let mount = volume
            .as_ref()
            .map_or_else(|| dir.join("mnt"), |v| v.mount.clone());
        let server = match self.datastore {
            "mariadb" => self.start_mariadb(&mount).await,
            _ => self.start_postgres(&mount).await,
        };
        let outcome = match server {
            Ok(mut s) => {
                let ready = s.wait_ready().await;
                let elapsed = started.elapsed().as_secs_f64();
                let stopped = s.stop().await;
                ready.and(stopped).map(|()| elapsed)
            }
            Err(e) => Err(e),
        };
        if let Some(v) = volume {
            v.remove().await?;
        }
        let outcome = outcome?;
        std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
        Ok(outcome)
    }

    fn mkdirs(&self, dirs: &[&Path]) -> Result<()> {
        for d in dirs {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
            self.user.chown(d)?;
        }
        Ok(())
    }

    /// As the guest's prepare: directories, `my.cnf`, `mariadb-install-db`, `mariadbd`.
    async fn start_mariadb(&self, mount: &Path) -> Result<BareServer> {
        let l = MariaDbLayout::new(mount);
        let bin = MariaDbBinaries::default();
        self.mkdirs(&[
            &l.mount,
            &l.data_dir,
            &l.etc_dir,
            &l.overrides_dir,
            &l.run_dir,
            &l.log_dir,
            &l.tmp_dir,
        ])?;
        write(&l.my_cnf, &render_my_cnf(FLAVOR_RAM_MB, &l.overrides_dir))?;
        let mut init = tokio::process::Command::new(&bin.install_db);
        init.arg("--no-defaults")
            .arg(format!("--datadir={}", l.data_dir.display()))
            .arg("--auth-root-authentication-method=normal")
            .arg("--skip-test-db")
            .arg("--skip-name-resolve")
            .arg(format!("--tmpdir={}", l.tmp_dir.display()))
            .current_dir(&l.mount);
        if self.user.needs_switch() {
            init.arg(format!("--user={}", self.user.name));
        }
        run_checked(init, "mariadb-install-db").await?;
        let mut server = tokio::process::Command::new(&bin.mariadbd);
        server
            .arg(format!("--defaults-file={}", l.my_cnf.display()))
            .arg(format!("--datadir={}", l.data_dir.display()))
            .arg(format!("--socket={}", l.socket.display()))
            .arg(format!(
                "--pid-file={}",
                l.run_dir.join("mysqld.pid").display()
            ))
            .arg(format!("--bind-address={BARE_ADDRESS}"))
            .arg("--port=3306")
            .arg(format!("--tmpdir={}", l.tmp_dir.display()))
            .arg("--skip-name-resolve")
            .arg("--skip-networking=0")
            .current_dir(&l.mount);
        let mut probe = tokio::process::Command::new("mariadb");
        probe
            .arg("--no-defaults")
            .arg("--protocol=socket")
            .arg(format!("--socket={}", l.socket.display()))
            .args([
                "-u",
                "root",
                "--batch",
                "--skip-column-names",
                "-e",
                "SELECT 1",
            ]);
        BareServer::spawn(
            server,
            &self.user,
            &l.log_dir.join("server.log"),
            probe,
            3306,
            "TERM",
        )
    }

    /// As the guest's prepare: directories, `postgresql.conf`, `pg_hba.conf`, `initdb`,
    /// `postgres`.
    async fn start_postgres(&self, mount: &Path) -> Result<BareServer> {
        use std::os::unix::fs::PermissionsExt;
        let l = PgLayout::new(mount);
        let bin = PgBinaries::default();
        self.mkdirs(&[
            &l.mount,
            &l.data_root,
            &l.wal_archive,
            &l.etc_dir,
            &l.overrides_dir,
            &l.run_dir,
            &l.log_dir,
        ])?;
        std::fs::set_permissions(&l.run_dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("setting the mode of {}", l.run_dir.display()))?;
        write(&l.conf, &postgresql_conf(&l))?;
        write(&l.hba, &render_hba())?;
        let mut init = tokio::process::Command::new(bin.bin_dir.join("initdb"));
        init.arg("-D")
            .arg(&l.pgdata)
            .args([
                "-U",
                SUPERUSER,
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
            ])
            .args(["--encoding=UTF8", "--no-locale", "--no-instructions"])
            .current_dir(&l.mount);
        if self.user.needs_switch() {
            init.uid(self.user.uid).gid(self.user.gid);
        }
        run_checked(init, "initdb").await?;
        let mut server = tokio::process::Command::new(bin.bin_dir.join("postgres"));
        server
            .arg("-D")
            .arg(&l.pgdata)
            .arg("-c")
            .arg(format!("config_file={}", l.conf.display()))
            .arg("-c")
            .arg(format!("listen_addresses={BARE_ADDRESS}"))
            .arg("-c")
            .arg("port=5432")
            .arg("-c")
            .arg(format!("unix_socket_directories={}", l.run_dir.display()))
            .current_dir(&l.mount);
        let mut probe = tokio::process::Command::new("psql");
        probe
            .arg("-h")
            .arg(&l.run_dir)
            .args(["-p", "5432", "-U", SUPERUSER, "-d", "postgres", "-X", "-tA"])
            .args(["-c", "SELECT 1"])
            .env("PGCONNECT_TIMEOUT", "5");
        BareServer::spawn(
            server,
            &self.user,
            &l.log_dir.join("server.log"),
            probe,
            5432,
            "INT",
        )
    }
}

/// `postgresql.conf` as the guest writes it without `config_contents`: sizing for the
/// flavor's RAM, then the instance's fixed settings.
fn postgresql_conf(l: &PgLayout) -> String {
    let q = |p: &Path| format!("'{}'", p.display().to_string().replace('\'', "''"));
    let mut conf = render_sizing(FLAVOR_RAM_MB);
    let _ = write!(
        conf,
        "\n# Instance settings.\n\
         data_directory = {}\n\
         hba_file = {}\n\
         ident_file = {}\n\
         listen_addresses = '{BARE_ADDRESS}'\n\
         port = 5432\n\
         unix_socket_directories = {}\n\
         unix_socket_permissions = 0700\n\
         password_encryption = 'scram-sha-256'\n\
         logging_collector = off\n\
         include_dir = {}\n",
        q(&l.pgdata),
        q(&l.hba),
        q(&l.pgdata.join("pg_ident.conf")),
        q(&l.run_dir),
        q(&l.overrides_dir),
    );
    conf
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// Runs `cmd`; an error with its output unless it succeeds.
async fn run_checked(mut cmd: tokio::process::Command, what: &str) -> Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .await
        .with_context(|| format!("running {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

async fn run_host(program: &str, args: &[&str]) -> Result<String> {
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args);
    run_checked(cmd, &format!("{program} {}", args.join(" "))).await
}

/// A bare server process and how to tell it is ready.
struct BareServer {
    child: tokio::process::Child,
    log: PathBuf,
    probe: tokio::process::Command,
    port: u16,
    stop_signal: &'static str,
}

impl BareServer {
    fn spawn(
        mut cmd: tokio::process::Command,
        user: &ServiceUser,
        log: &Path,
        probe: tokio::process::Command,
        port: u16,
        stop_signal: &'static str,
    ) -> Result<BareServer> {
        let out =
            std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone()?;
        if user.needs_switch() {
            cmd.uid(user.uid).gid(user.gid);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true)
            .spawn()
            .context("starting the server")?;
        Ok(BareServer {
            child,
            log: log.to_path_buf(),
            probe,
            port,
            stop_signal,
        })
    }

    /// Until `SELECT 1` answers over the socket and the TCP port accepts a connection.
    async fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "the server exited during start-up ({status}); log: {}",
                    self.log_tail()
                );
            }
            let answered = self
                .probe
                .stdin(Stdio::null())
                .stderr(Stdio::null())
                .output()
                .await
                .is_ok_and(|o| {
                    o.status.success() && String::from_utf8_lossy(&o.stdout).trim() == "1"
                });
            if answered && tcp_accepts(BARE_ADDRESS, self.port).await {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "the server was not ready after {READY_TIMEOUT:?}; log: {}",
                    self.log_tail()
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The guest's stop: SIGTERM (MariaDB) or SIGINT (PostgreSQL's fast shutdown), then
    /// SIGKILL when it does not exit in time.
    async fn stop(mut self) -> Result<()> {
        if self.child.try_wait()?.is_none() {
            if let Some(pid) = self.child.id() {
                run_host(
                    "kill",
                    &[&format!("-{}", self.stop_signal), &pid.to_string()],
                )
                .await?;
            }
            if tokio::time::timeout(STOP_TIMEOUT, self.child.wait())
                .await
                .is_err()
            {
                self.child.kill().await?;
                bail!("the server did not stop within {STOP_TIMEOUT:?}; killed");
            }
        }
        Ok(())
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }
}

/// A sparse image on a loop device, formatted and mounted as the local driver and the guest
/// do it.
struct LoopVolume {
    image: PathBuf,
    device: Option<String>,
    mount: PathBuf,
    mounted: bool,
}

impl LoopVolume {
    async fn create(dir: &Path, opts: &VolumeOpts) -> Result<LoopVolume> {
        let mut v = LoopVolume {
            image: dir.join("volume.img"),
            device: None,
            mount: dir.join("mnt"),
            mounted: false,
        };
        match v.set_up(opts).await {
            Ok(()) => Ok(v),
            Err(e) => {
                if let Err(r) = v.remove().await {
                    eprintln!("cleaning up a failed volume: {r:#}");
                }
                Err(e)
            }
        }
    }

    async fn set_up(&mut self, opts: &VolumeOpts) -> Result<()> {
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&self.image)
            .await
            .with_context(|| format!("creating {}", self.image.display()))?;
        file.set_len(VOLUME_GB << 30).await?;
        file.sync_all().await?;
        drop(file);
        let image = self.image.display().to_string();
        let device = run_host("losetup", &["--find", "--show", &image]).await?;
        let device = device.trim().to_owned();
        if device.is_empty() {
            bail!("losetup printed no device for {image}");
        }
        self.device = Some(device.clone());
        let mut args: Vec<&str> = opts.format_options.split_whitespace().collect();
        match opts.fstype.as_str() {
            "xfs" => args.extend(["-f", &device]),
            _ => args.extend(["-q", "-F", &device]),
        }
        run_host(&format!("mkfs.{}", opts.fstype), &args).await?;
        std::fs::create_dir_all(&self.mount)
            .with_context(|| format!("creating {}", self.mount.display()))?;
        let mount = self.mount.display().to_string();
        let mut args = vec!["-t", opts.fstype.as_str()];
        if !opts.mount_options.trim().is_empty() {
            args.extend(["-o", opts.mount_options.trim()]);
        }
        args.extend([device.as_str(), mount.as_str()]);
        run_host("mount", &args).await?;
        self.mounted = true;
        Ok(())
    }

    async fn remove(mut self) -> Result<()> {
        if self.mounted {
            run_host("umount", &[&self.mount.display().to_string()]).await?;
            self.mounted = false;
        }
        if let Some(dev) = self.device.take() {
            run_host("losetup", &["-d", &dev]).await?;
        }
        if self.image.exists() {
            std::fs::remove_file(&self.image)
                .with_context(|| format!("removing {}", self.image.display()))?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// Clean-up of whatever a failed or interrupted run left on the host.

/// When dropped: stops processes whose command line mentions the directory, unmounts what is
/// mounted under it and detaches loop devices backed by files under it.
struct HostCleanup(PathBuf);

impl Drop for HostCleanup {
    fn drop(&mut self) {
        let needle = self.0.display().to_string();
        let me = std::process::id().to_string();
        let signal = |sig: &str| {
            for pid in processes_mentioning(&needle) {
                if pid != me {
                    let _ = std::process::Command::new("kill")
                        .args([sig, &pid])
                        .status();
                }
            }
        };
        signal("-TERM");
        let deadline = Instant::now() + Duration::from_secs(20);
        while !processes_mentioning(&needle).is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(200));
        }
        signal("-KILL");
        let mut mounts = mounts_under(&needle);
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in mounts {
            let _ = std::process::Command::new("umount")
                .args(["-l", &m])
                .status();
        }
        for dev in loops_under(&needle) {
            let _ = std::process::Command::new("losetup")
                .args(["-d", &dev])
                .status();
        }
    }
}

/// Pids of the processes whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
        .filter(|pid| pid.chars().all(|c| c.is_ascii_digit()))
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|raw| String::from_utf8_lossy(&raw).contains(needle))
        })
        .collect()
}

/// Mount points under `dir` (from `/proc/self/mountinfo`).
fn mounts_under(dir: &str) -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4))
        .filter(|m| m.starts_with(dir))
        .map(str::to_owned)
        .collect()
}

/// Loop devices whose backing file is under `dir`.
fn loops_under(dir: &str) -> Vec<String> {
    let Ok(out) = std::process::Command::new("losetup")
        .args(["-l", "-n", "-O", "NAME,BACK-FILE"])
        .output()
    else {
        return Vec::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let dev = f.next()?;
            let file = f.next()?;
            file.starts_with(dir).then(|| dev.to_owned())
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// The report.

/// Median, minimum and maximum.
fn stats(xs: &[f64]) -> (f64, f64, f64) {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    (median, v[0], v[n - 1])
}

fn report(results: &[DatastoreResult]) -> Result<()> {
    let mut table = String::new();
    let _ = writeln!(
        table,
        "{:<16} {:>4}  {:>22}  {:>10}  {:>11}  {:>20}  {:>15}  {:>8}",
        "datastore",
        "runs",
        "POST->ACTIVE med/min/max",
        "bare (med)",
        "bare+volume",
        "overhead vs bare+vol",
        "overhead vs bare",
        "delete"
    );
    let mut rows = Vec::new();
    for r in results {
        let (a_med, a_min, a_max) = stats(&r.active);
        let (b_med, b_min, b_max) = stats(&r.bare);
        let (bv_med, bv_min, bv_max) = stats(&r.bare_volume);
        let (d_med, d_min, d_max) = stats(&r.delete);
        let _ = writeln!(
            table,
            "{:<16} {:>4}  {:>22}  {:>10}  {:>11}  {:>20}  {:>15}  {:>8}",
            format!("{} {}", r.name, r.version),
            r.active.len(),
            format!("{a_med:.2} / {a_min:.2} / {a_max:.2} s"),
            format!("{b_med:.2} s"),
            format!("{bv_med:.2} s"),
            format!("+{:.2} s (x{:.2})", a_med - bv_med, a_med / bv_med),
            format!("+{:.2} s (x{:.2})", a_med - b_med, a_med / b_med),
            format!("{d_med:.2} s"),
        );
        let summary = |med: f64, min: f64, max: f64, xs: &[f64]| json!({"median": med, "min": min, "max": max, "runs": xs});
        rows.push(json!({
            "datastore": r.name,
            "version": r.version,
            "runs": r.active.len(),
            "post_to_active_s": summary(a_med, a_min, a_max, &r.active),
            "bare_init_start_s": summary(b_med, b_min, b_max, &r.bare),
            "bare_volume_init_start_s": summary(bv_med, bv_min, bv_max, &r.bare_volume),
            "delete_s": summary(d_med, d_min, d_max, &r.delete),
            "overhead_vs_bare_volume": {"median_difference_s": a_med - bv_med, "ratio": a_med / bv_med},
            "overhead_vs_bare": {"median_difference_s": a_med - b_med, "ratio": a_med / b_med},
        }));
    }
    println!();
    print!("{table}");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    let dir = target.join("bench");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let file = dir.join("create_to_active.json");
    let doc = json!({
        "benchmark": "create_to_active",
        "flavor": {"id": FLAVOR_ID, "ram_mb": FLAVOR_RAM_MB},
        "volume_gb": VOLUME_GB,
        "poll_ms": POLL.as_millis() as u64,
        "unix_time": std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        "results": rows,
    });
    std::fs::write(&file, serde_json::to_string_pretty(&doc)? + "\n")
        .with_context(|| format!("writing {}", file.display()))?;
    println!("\nwritten to {}", file.display());
    Ok(())
}
