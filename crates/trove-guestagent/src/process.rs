//! Supervision of the database server process.
//!
//! The server runs as its own process group, detached from the agent: stopping or restarting
//! the agent leaves the database running unless it is told to stop it. What survives the agent
//! is a pid file the agent writes when it spawns the server and removes when it stops it on
//! purpose; together with `/proc/<pid>` it tells the states apart:
//!
//! | pid file | process alive | [`Liveness`] |
//! |---|---|---|
//! | absent | - | `Stopped` (stopped on purpose or never started) |
//! | present | yes | `Alive(pid)` |
//! | present | no (or zombie, or the pid now runs another program) | `Vanished` (crashed) |
//!
//! The spawning agent also reaps the child in a background task so a crashed server does not
//! linger as a zombie that would still look alive.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal};

use crate::error::{GuestError, Result};
use crate::status::ServiceStatus;

/// The OS account the database server runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceUser {
    /// Account name.
    pub name: String,
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

/// Trove's default account name for the database server (`database_service_uname`).
pub const DEFAULT_SERVICE_USER: &str = "database";
/// Trove's default uid for it (`database_service_uid`).
pub const DEFAULT_SERVICE_UID: u32 = 1001;

static USER_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl ServiceUser {
    /// The account the agent itself runs as (for agents that do not run as root).
    pub fn current() -> Self {
        let uid = rustix::process::geteuid().as_raw();
        let gid = rustix::process::getegid().as_raw();
        let name = lookup_passwd_by_uid(uid).unwrap_or_else(|| uid.to_string());
        ServiceUser { name, uid, gid }
    }

    /// Finds `name` in `/etc/passwd`.
    pub fn lookup(name: &str) -> Option<Self> {
        let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
        passwd.lines().find_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() >= 4 && f[0] == name {
                Some(ServiceUser {
                    name: name.to_string(),
                    uid: f[2].parse().ok()?,
                    gid: f[3].parse().ok()?,
                })
            } else {
                None
            }
        })
    }

    /// Returns the account `name`, creating it with `useradd` (with `uid` when that id is
    /// free, a system-chosen one otherwise) when it is missing. Needs root to create.
    pub fn ensure(name: &str, uid: u32) -> Result<Self> {
        let _guard = USER_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(u) = Self::lookup(name) {
            return Ok(u);
        }
        let uid_free = lookup_passwd_by_uid(uid).is_none();
        // Trove's default gid is the uid: make the group with that id when it is free.
        if !group_exists(name) {
            let mut g = std::process::Command::new("groupadd");
            g.arg("--system");
            if !gid_taken(uid) {
                g.args(["--gid", &uid.to_string()]);
            }
            let out = g
                .arg(name)
                .output()
                .map_err(|e| GuestError::io("running groupadd", e))?;
            if !out.status.success() && !group_exists(name) {
                return Err(GuestError::Command {
                    program: "groupadd".into(),
                    detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
                });
            }
        }
        let mut cmd = std::process::Command::new("useradd");
        cmd.args(["--system", "--gid", name, "--no-create-home"])
            .args(["--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin"]);
        if uid_free {
            cmd.args(["--uid", &uid.to_string()]);
        }
        cmd.arg(name);
        let out = cmd
            .output()
            .map_err(|e| GuestError::io("running useradd", e))?;
        // Another process may have created it meanwhile: look again before failing.
        if let Some(u) = Self::lookup(name) {
            return Ok(u);
        }
        Err(GuestError::Command {
            program: "useradd".into(),
            detail: format!(
                "{}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        })
    }

    /// True when processes must switch to this account (the agent runs as someone else).
    pub fn needs_switch(&self) -> bool {
        rustix::process::geteuid().as_raw() != self.uid
    }

    /// Changes the owner of `path` (not recursive) to this account, when running as root.
    pub fn chown(&self, path: &Path) -> Result<()> {
        if !self.needs_switch() {
            return Ok(());
        }
        rustix::fs::chown(
            path,
            Some(rustix::fs::Uid::from_raw(self.uid)),
            Some(rustix::fs::Gid::from_raw(self.gid)),
        )
        .map_err(|e| GuestError::io(format!("chown {}", path.display()), e.into()))
    }

    /// Makes `cmd` run as this account.
    pub fn apply(&self, cmd: &mut tokio::process::Command) {
        if self.needs_switch() {
            cmd.uid(self.uid).gid(self.gid);
        }
    }
}

fn group_entries() -> Vec<(String, u32)> {
    std::fs::read_to_string("/etc/group")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            Some((f.first()?.to_string(), f.get(2)?.parse().ok()?))
        })
        .collect()
}

fn group_exists(name: &str) -> bool {
    group_entries().iter().any(|(n, _)| n == name)
}

fn gid_taken(gid: u32) -> bool {
    group_entries().iter().any(|(_, g)| *g == gid)
}

fn lookup_passwd_by_uid(uid: u32) -> Option<String> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        (f.len() >= 3 && f[2] == uid.to_string()).then(|| f[0].to_string())
    })
}

/// What the pid file and `/proc` say about the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// The process runs.
    Alive(i32),
    /// No pid file: stopped on purpose, or never started.
    Stopped,
    /// The pid file is there but the process is gone: it died without being asked to.
    Vanished(i32),
}

/// True when a live (non-zombie) process is in process group `pgid`. Zombies are ignored: an
/// orphaned child may wait a while for whoever reaps orphans on this host.
pub fn group_alive(pgid: i32) -> bool {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return false;
    };
    rd.flatten().any(|e| {
        let name = e.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<i32>().ok()) else {
            return false;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            return false;
        };
        let Some(i) = stat.rfind(')') else {
            return false;
        };
        // After the command name: state, ppid, pgrp.
        let f: Vec<&str> = stat[i + 1..].split_whitespace().take(3).collect();
        f.len() == 3 && !matches!(f[0], "Z" | "X") && f[2].parse::<i32>().ok() == Some(pgid)
    })
}

/// True when `pid` exists and is not a zombie.
pub fn pid_alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state is the first field after the parenthesised command name.
        Ok(stat) => match stat.rfind(')') {
            Some(i) => !matches!(
                stat[i + 1..].trim_start().chars().next(),
                Some('Z') | Some('X')
            ),
            None => true,
        },
        Err(_) => false,
    }
}

fn signal(pid: i32, sig: Signal, group: bool) {
    if let Some(p) = Pid::from_raw(pid) {
        let r = if group {
            rustix::process::kill_process_group(p, sig)
        } else {
            rustix::process::kill_process(p, sig)
        };
        if let Err(e) = r {
            tracing::debug!(pid, error = %e, "signal not delivered");
        }
    }
}

/// The server process as seen through its pid file.
#[derive(Debug, Clone)]
pub struct ServerProcess {
    pid_file: PathBuf,
    log_file: PathBuf,
    stop_signal: Signal,
    program: Option<PathBuf>,
}

impl ServerProcess {
    /// A supervisor using `pid_file` and appending the server's output to `log_file`.
    pub fn new(pid_file: PathBuf, log_file: PathBuf) -> Self {
        ServerProcess {
            pid_file,
            log_file,
            stop_signal: Signal::TERM,
            program: None,
        }
    }

    /// Only a process running `program` counts as the server: a recorded pid that the kernel
    /// has since given to another program reads as [`Liveness::Vanished`].
    pub fn with_program(mut self, program: &Path) -> Self {
        self.program =
            Some(std::fs::canonicalize(program).unwrap_or_else(|_| program.to_path_buf()));
        self
    }

    fn runs_program(&self, pid: i32) -> bool {
        let Some(want) = &self.program else {
            return true;
        };
        match std::fs::read_link(format!("/proc/{pid}/exe")) {
            Ok(exe) => &exe == want,
            // Not ours to inspect (another user, no privileges): trust the pid.
            Err(_) => true,
        }
    }

    /// Uses `sig` instead of SIGTERM to ask the server to stop (PostgreSQL: SIGINT, "fast"
    /// shutdown, which does not wait for clients to disconnect).
    pub fn with_stop_signal(mut self, sig: Signal) -> Self {
        self.stop_signal = sig;
        self
    }

    /// After a crash: kills what is left of the server's process group (PostgreSQL's
    /// backends outlive a killed postmaster for a moment) and waits until it is empty.
    pub async fn clear_leftovers(&self) {
        let Some(pid) = self.recorded_pid().and_then(Pid::from_raw) else {
            return;
        };
        let _ = rustix::process::kill_process_group(pid, Signal::KILL);
        let deadline = Instant::now() + Duration::from_secs(10);
        while group_alive(pid.as_raw_nonzero().get()) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The pid recorded in the pid file, if any.
    pub fn recorded_pid(&self) -> Option<i32> {
        std::fs::read_to_string(&self.pid_file)
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Observes the process (see the module doc).
    pub fn liveness(&self) -> Liveness {
        match self.recorded_pid() {
            None => Liveness::Stopped,
            Some(pid) if pid_alive(pid) && self.runs_program(pid) => Liveness::Alive(pid),
            Some(pid) => Liveness::Vanished(pid),
        }
    }

    /// Waits until the process is alive and `ping` succeeds, for at most `wait`; fails at
    /// once, with the end of the server's log, if the process exits.
    pub async fn wait_healthy<F, Fut>(
        &self,
        program: &str,
        wait: Duration,
        mut ping: F,
    ) -> Result<()>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = Instant::now() + wait;
        loop {
            match self.liveness() {
                Liveness::Alive(_) => {
                    if ping().await {
                        return Ok(());
                    }
                }
                _ => {
                    return Err(GuestError::Command {
                        program: program.into(),
                        detail: format!(
                            "exited during start-up; log: {}",
                            log_tail(&self.log_file)
                        ),
                    })
                }
            }
            if Instant::now() >= deadline {
                return Err(GuestError::Timeout {
                    wanted: "healthy",
                    secs: wait.as_secs(),
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The service status from liveness and, for a live process, `ping` (only awaited then):
    /// see [`crate::status`].
    pub async fn observe(&self, ping: impl std::future::Future<Output = bool>) -> ServiceStatus {
        match self.liveness() {
            Liveness::Alive(_) => {
                if ping.await {
                    ServiceStatus::Healthy
                } else {
                    ServiceStatus::Running
                }
            }
            Liveness::Stopped => ServiceStatus::Shutdown,
            Liveness::Vanished(_) => ServiceStatus::Crashed,
        }
    }

    /// Spawns `cmd` as a detached process group, records its pid and reaps it when it exits.
    pub fn spawn(&self, mut cmd: tokio::process::Command) -> Result<i32> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_file)
            .map_err(|e| GuestError::io(format!("opening {}", self.log_file.display()), e))?;
        let log2 = log
            .try_clone()
            .map_err(|e| GuestError::io("duplicating the log file", e))?;
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2))
            .process_group(0)
            .kill_on_drop(false);
        let mut child = cmd
            .spawn()
            .map_err(|e| GuestError::io(format!("starting {:?}", cmd.as_std().get_program()), e))?;
        let pid = child
            .id()
            .map(|p| p as i32)
            .ok_or_else(|| GuestError::Command {
                program: "server".into(),
                detail: "exited before its pid could be read".into(),
            })?;
        std::fs::write(&self.pid_file, format!("{pid}\n"))
            .map_err(|e| GuestError::io(format!("writing {}", self.pid_file.display()), e))?;
        tokio::spawn(async move {
            match child.wait().await {
                Ok(status) => tracing::info!(pid, %status, "database server exited"),
                Err(e) => tracing::warn!(pid, error = %e, "waiting for the database server failed"),
            }
        });
        Ok(pid)
    }

    /// Stops the server on purpose: the stop signal (SIGTERM by default), wait up to `wait`, then SIGKILL to the whole
    /// group; removes the pid file either way.
    pub async fn terminate(&self, wait: Duration) -> Result<()> {
        if let Liveness::Vanished(_) = self.liveness() {
            self.clear_leftovers().await;
        }
        if let Liveness::Alive(pid) = self.liveness() {
            signal(pid, self.stop_signal, false);
            let deadline = Instant::now() + wait;
            while pid_alive(pid) && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            if pid_alive(pid) {
                tracing::warn!(pid, "database server ignored SIGTERM; killing it");
                signal(pid, Signal::KILL, true);
                let deadline = Instant::now() + Duration::from_secs(10);
                while pid_alive(pid) && Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        self.forget()
    }

    /// Removes the pid file (the server is known to be stopped).
    pub fn forget(&self) -> Result<()> {
        match std::fs::remove_file(&self.pid_file) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(GuestError::io(
                format!("removing {}", self.pid_file.display()),
                e,
            )),
        }
    }

    /// Kills the whole process group at once (SIGKILL), leaving the pid file in place. For
    /// emergencies and test clean-up.
    pub fn kill_group(&self) {
        if let Some(pid) = self.recorded_pid() {
            signal(pid, Signal::KILL, true);
        }
    }
}

/// The last lines of a log file, for error messages.
pub fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(8)..].join(" | ")
}

/// Runs a helper program to completion; a non-zero exit becomes [`GuestError::Command`].
pub async fn run_checked(mut cmd: tokio::process::Command, program: &str) -> Result<()> {
    let out = cmd
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| GuestError::io(format!("running {program}"), e))?;
    if out.status.success() {
        return Ok(());
    }
    let mut detail = String::from_utf8_lossy(&out.stderr).into_owned();
    detail.push_str(&String::from_utf8_lossy(&out.stdout));
    // The lines that say what failed, else the end of the output.
    let errors: Vec<&str> = detail
        .lines()
        .filter(|l| l.contains("ERROR") || l.contains("rror:") || l.contains("FATAL"))
        .take(10)
        .collect();
    let lines: Vec<&str> = if errors.is_empty() {
        let tail: Vec<&str> = detail.lines().rev().take(10).collect();
        tail.into_iter().rev().collect()
    } else {
        errors
    };
    Err(GuestError::Command {
        program: program.into(),
        detail: format!("{}: {}", out.status, lines.join(" | ")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn liveness_from_pid_file() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("server.pid");
        let sp = ServerProcess::new(pid_file.clone(), dir.path().join("log"));
        assert_eq!(sp.liveness(), Liveness::Stopped);
        // This test process stands in for a live server...
        let me = std::process::id() as i32;
        std::fs::write(&pid_file, format!("{me}\n")).unwrap();
        assert_eq!(sp.liveness(), Liveness::Alive(me));
        // ... but not for one running another program (a reused pid).
        let picky = sp.clone().with_program(Path::new("/usr/sbin/mariadbd"));
        assert_eq!(picky.liveness(), Liveness::Vanished(me));
        // A pid that does not exist: crashed.
        std::fs::write(&pid_file, "999999999\n").unwrap();
        assert_eq!(sp.liveness(), Liveness::Vanished(999_999_999));
        sp.forget().unwrap();
        assert_eq!(sp.liveness(), Liveness::Stopped);
    }
}
