//! Helpers shared by the datastore tests: a free loopback address per test, a guard that
//! kills the server and removes the instance directory whatever happens, the checks that
//! skip a test where it cannot run, and (in [`conductor`] and [`guest`]) the conductor
//! stand-in and the agents the agent-level tests drive.

#![allow(dead_code)]

pub mod conductor;
pub mod guest;
pub mod loopdev;

#[allow(unused_imports)]
pub use conductor::{Conductor, Recorder};
#[allow(unused_imports)]
pub use guest::{
    backup_info, ctx, incremental_info, local_store, mariadb_app_pool, pg_app_pool, prepare_args,
    restore_info, Datastore, Guest, APP_PASSWORD,
};

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rand::Rng;
use trove_guestagent::manager::ManagerConfig;
use trove_guestagent::process::{
    pid_alive, ServerProcess, ServiceUser, DEFAULT_SERVICE_UID, DEFAULT_SERVICE_USER,
};

static TAKEN: Mutex<Option<HashSet<Ipv4Addr>>> = Mutex::new(None);

/// A loopback address (127.a.b.c, away from 127.0.0.x) where `port` can be bound now.
pub fn free_address(port: u16) -> Ipv4Addr {
    let mut rng = rand::thread_rng();
    for _ in 0..500 {
        let ip = Ipv4Addr::new(
            127,
            rng.gen_range(100..=250),
            rng.gen_range(0..=255),
            rng.gen_range(2..=254),
        );
        let mut taken = TAKEN.lock().unwrap();
        let taken = taken.get_or_insert_with(HashSet::new);
        if taken.contains(&ip) {
            continue;
        }
        if TcpListener::bind((ip, port)).is_ok() {
            taken.insert(ip);
            return ip;
        }
    }
    panic!("no free loopback address for port {port}");
}

static ENDPOINTS_TAKEN: Mutex<Option<HashSet<(Ipv4Addr, u16)>>> = Mutex::new(None);

/// An address `net.x` (x in 2..=254) and a port in `ports` that can be bound now and that no
/// other test of this binary was given.
pub fn free_endpoint(net: [u8; 3], ports: RangeInclusive<u16>) -> (Ipv4Addr, u16) {
    let mut rng = rand::thread_rng();
    for _ in 0..1000 {
        let ip = Ipv4Addr::new(net[0], net[1], net[2], rng.gen_range(2..=254));
        let port = rng.gen_range(ports.clone());
        let mut taken = ENDPOINTS_TAKEN.lock().unwrap();
        let taken = taken.get_or_insert_with(HashSet::new);
        if taken.contains(&(ip, port)) {
            continue;
        }
        if TcpListener::bind((ip, port)).is_ok() {
            taken.insert((ip, port));
            return (ip, port);
        }
    }
    panic!(
        "no free address in {}.{}.{}.x for a port in {ports:?}",
        net[0], net[1], net[2]
    );
}

/// Logs of the agent and the managers to the test's output (`RUST_LOG`, `info` by default).
pub fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_test_writer()
        .try_init();
}

/// Whether the test runs as root; prints `skipped: <needs>` otherwise.
pub fn running_as_root(needs: &str) -> bool {
    if rustix::process::geteuid().is_root() {
        return true;
    }
    eprintln!("skipped: {needs}");
    false
}

/// Whether every one of `programs` is installed; prints the first missing one otherwise.
pub fn programs_installed(programs: &[&str]) -> bool {
    for p in programs {
        if trove_guestagent::backup::find_program(p).is_none() {
            eprintln!("skipped: {p} is not installed");
            return false;
        }
    }
    true
}

/// Where PostgreSQL 15's programs are installed.
pub const PG15_BIN: &str = "/usr/lib/postgresql/15/bin";

/// Whether every one of PostgreSQL 15's `tools` is installed; prints the first missing one
/// otherwise.
pub fn pg15_tools_installed(tools: &[&str]) -> bool {
    for t in tools {
        if !Path::new(PG15_BIN).join(t).is_file() {
            eprintln!("skipped: PostgreSQL 15's {t} is not installed");
            return false;
        }
    }
    true
}

/// An instance directory and its server; dropping it kills the server's process group and
/// removes the directory.
pub struct Instance {
    pub config: ManagerConfig,
    pub addr: Ipv4Addr,
    pid_file: PathBuf,
    dir: Option<tempfile::TempDir>,
}

impl Instance {
    /// An instance on a free address from [`free_address`].
    pub fn new(port: u16) -> Self {
        Self::at(free_address(port), port)
    }

    /// An instance whose server listens on `addr:port`.
    pub fn at(addr: Ipv4Addr, port: u16) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("trove-ga-")
            .tempdir()
            .expect("tempdir");
        let user =
            ServiceUser::ensure(DEFAULT_SERVICE_USER, DEFAULT_SERVICE_UID).expect("service user");
        let mut config = ManagerConfig::new(dir.path(), IpAddr::V4(addr), port, user);
        config.state_change_wait_time = Duration::from_secs(60);
        Instance {
            pid_file: dir.path().join("run/server.pid"),
            config,
            addr,
            dir: Some(dir),
        }
    }

    pub fn mount(&self) -> &Path {
        &self.config.mount_point
    }

    /// The pid the agent recorded for the server.
    pub fn server_pid(&self) -> Option<i32> {
        ServerProcess::new(self.pid_file.clone(), PathBuf::new()).recorded_pid()
    }

    /// Sends `kill -<sig>` to the server (e.g. `STOP`, `CONT`).
    pub fn signal_server(&self, sig: &str) {
        let pid = self.server_pid().expect("server pid");
        let st = std::process::Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(pid.to_string())
            .status()
            .unwrap();
        assert!(st.success());
    }

    /// Simulates a crash: SIGKILL to the server only (the pid file stays).
    pub fn kill_server_hard(&self) {
        let pid = self.server_pid().expect("server pid");
        let st = std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()
            .unwrap();
        assert!(st.success());
        for _ in 0..100 {
            if !pid_alive(pid) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("server {pid} survived kill -9");
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        stop_server(&self.pid_file, Duration::from_secs(5));
        drop(self.dir.take());
    }
}

/// Kills the process group of the server whose pid is recorded in `pid_file` (resuming it
/// first if it was stopped) and waits up to `within` for the server to be gone.
pub fn stop_server(pid_file: &Path, within: Duration) {
    let sp = ServerProcess::new(pid_file.to_path_buf(), PathBuf::new());
    if let Some(pid) = sp.recorded_pid() {
        sp.kill_group();
        let _ = std::process::Command::new("kill")
            .args(["-CONT", &pid.to_string()])
            .status();
        let deadline = std::time::Instant::now() + within;
        while pid_alive(pid) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// `df -B1 --output=size,used <path>` in bytes.
pub fn df(path: &Path) -> (u64, u64) {
    let out = std::process::Command::new("df")
        .args(["-B1", "--output=size,used"])
        .arg(path)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let line = text.lines().nth(1).unwrap();
    let mut it = line.split_whitespace().map(|v| v.parse::<u64>().unwrap());
    (it.next().unwrap(), it.next().unwrap())
}

/// A password with everything that could break quoting.
pub const NASTY_PASSWORD: &str = "p'a\"s`s\\w;o%r_d -- ; DROP USER x; \\' é€🙂";
