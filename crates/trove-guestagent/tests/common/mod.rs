//! Helpers shared by the datastore tests: a free loopback address per test and a guard that
//! kills the server and removes the instance directory whatever happens.

#![allow(dead_code)]

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, TcpListener};
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

/// An instance directory and its server; dropping it kills the server's process group and
/// removes the directory.
pub struct Instance {
    pub config: ManagerConfig,
    pub addr: Ipv4Addr,
    pid_file: PathBuf,
    dir: Option<tempfile::TempDir>,
}

impl Instance {
    pub fn new(port: u16) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("trove-ga-")
            .tempdir()
            .expect("tempdir");
        let user =
            ServiceUser::ensure(DEFAULT_SERVICE_USER, DEFAULT_SERVICE_UID).expect("service user");
        let addr = free_address(port);
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
        let sp = ServerProcess::new(self.pid_file.clone(), PathBuf::new());
        if let Some(pid) = sp.recorded_pid() {
            sp.kill_group();
            let _ = std::process::Command::new("kill")
                .args(["-CONT", &pid.to_string()])
                .status();
            for _ in 0..100 {
                if !pid_alive(pid) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        drop(self.dir.take());
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
