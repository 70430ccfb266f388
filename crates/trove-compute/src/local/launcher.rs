//! Starting and stopping the guest agent of a local instance.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use rustix::process::Signal;
use tokio::process::{Child, Command};

use super::host;
use crate::{DriverError, Result};

/// Name of the guest agent's binary.
pub const GUEST_AGENT_PROGRAM: &str = "trove-guestagent";

/// How long [`ProcessLauncher::stop`] lets the agent finish the requests in hand.
const STOP_GRACE: Duration = Duration::from_secs(30);

/// How long after spawning a launch checks that the agent did not exit at once.
const STARTUP_CHECK: Duration = Duration::from_millis(300);

/// Runs the guest agent of each local instance.
///
/// [`ProcessLauncher`] runs it as a separate `trove-guestagent` process; the all-in-one
/// binary runs agents inside its own process instead.
#[async_trait]
pub trait GuestLauncher: Send + Sync + std::fmt::Debug {
    /// Starts the agent of `instance_id` with its configuration read from `config_dirs`
    /// (in order, a later directory overriding an earlier one), logging to `log_file`.
    async fn launch(
        &self,
        instance_id: &str,
        config_dirs: &[PathBuf],
        log_file: &Path,
    ) -> Result<()>;

    /// Whether the agent of `instance_id` runs.
    async fn is_running(&self, instance_id: &str) -> bool;

    /// Stops the agent of `instance_id` (letting it finish the requests in hand). Idempotent.
    async fn stop(&self, instance_id: &str) -> Result<()>;
}

/// Runs each guest agent as a process `<program> --config-dir <dir>...` in its own process
/// group, detached from the launcher: it keeps running when the launcher's process exits
/// (a restarted taskmanager finds it again through its pid file,
/// `<pid_dir>/<instance id>.pid`).
pub struct ProcessLauncher {
    /// The guest agent's binary.
    pub program: PathBuf,
    /// Where the pid files are.
    pub pid_dir: PathBuf,
    /// Agents started by this process, to reap them.
    children: Mutex<HashMap<String, Child>>,
}

impl std::fmt::Debug for ProcessLauncher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessLauncher")
            .field("program", &self.program)
            .field("pid_dir", &self.pid_dir)
            .finish_non_exhaustive()
    }
}

impl ProcessLauncher {
    /// A launcher running `program`, with pid files in `pid_dir`.
    pub fn new(program: impl Into<PathBuf>, pid_dir: impl Into<PathBuf>) -> Self {
        ProcessLauncher {
            program: program.into(),
            pid_dir: pid_dir.into(),
            children: Mutex::new(HashMap::new()),
        }
    }

    /// The `trove-guestagent` binary: next to the running executable (or in its parent
    /// directory, where it is for test binaries in `target/<profile>/deps`), else on `PATH`.
    pub fn default_program() -> Result<PathBuf> {
        let mut candidates = Vec::new();
        if let Ok(exe) = std::env::current_exe() {
            if let Some(dir) = exe.parent() {
                candidates.push(dir.join(GUEST_AGENT_PROGRAM));
                if let Some(parent) = dir.parent() {
                    candidates.push(parent.join(GUEST_AGENT_PROGRAM));
                }
            }
        }
        if let Some(path) = std::env::var_os("PATH") {
            candidates.extend(std::env::split_paths(&path).map(|d| d.join(GUEST_AGENT_PROGRAM)));
        }
        candidates
            .into_iter()
            .find(|p| is_executable(p))
            .ok_or_else(|| {
                DriverError::host(
                    format!("finding the {GUEST_AGENT_PROGRAM} program"),
                    "it is neither next to this program nor on PATH",
                )
            })
    }

    fn pid_file(&self, instance_id: &str) -> PathBuf {
        self.pid_dir.join(format!("{instance_id}.pid"))
    }

    /// The pid in the instance's pid file, if the file exists and holds one.
    fn read_pid(&self, instance_id: &str) -> Option<i32> {
        std::fs::read_to_string(self.pid_file(instance_id))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// The pid of the instance's agent if it runs (the pid file's process, when it still
    /// is the agent of that instance).
    fn running_pid(&self, instance_id: &str) -> Option<i32> {
        let pid = self.read_pid(instance_id)?;
        (host::pid_alive(pid) && is_agent_of(&host::cmdline(pid), instance_id)).then_some(pid)
    }

    /// Takes the child of `instance_id` out of the map if it was started by this process.
    fn take_child(&self, instance_id: &str) -> Option<Child> {
        self.children
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(instance_id)
    }

    /// Reaps our child of `instance_id` if it has exited; whether it is still running
    /// (`None` when it is not our child).
    fn poll_child(&self, instance_id: &str) -> Option<bool> {
        let mut children = self.children.lock().unwrap_or_else(|e| e.into_inner());
        let child = children.get_mut(instance_id)?;
        match child.try_wait() {
            Ok(None) => Some(true),
            Ok(Some(_)) | Err(_) => {
                children.remove(instance_id);
                Some(false)
            }
        }
    }

    /// Waits up to `timeout` for `pid` to end, reaping it when it is `child`.
    async fn wait_for_exit(pid: i32, child: Option<&mut Child>, timeout: Duration) -> bool {
        match child {
            Some(child) => tokio::time::timeout(timeout, child.wait()).await.is_ok(),
            None => host::wait_gone(&[pid], timeout).await.is_empty(),
        }
    }
}

/// Whether a command line (NUL-separated) is that of an agent started for `instance_id`:
/// it has a `--config-dir` whose path has the instance id as one of its components.
fn is_agent_of(cmdline: &[u8], instance_id: &str) -> bool {
    let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
    args.windows(2).any(|w| {
        w[0] == b"--config-dir"
            && Path::new(OsStr::from_bytes(w[1]))
                .components()
                .any(|c| c == Component::Normal(OsStr::new(instance_id)))
    })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// The last `max` bytes of a file, for error messages.
fn tail(path: &Path, max: u64) -> String {
    let Ok(mut file) = std::fs::File::open(path) else {
        return String::new();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    if file.seek(SeekFrom::Start(len.saturating_sub(max))).is_err() {
        return String::new();
    }
    let mut buf = Vec::new();
    let _ = file.read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).trim().to_string()
}

#[async_trait]
impl GuestLauncher for ProcessLauncher {
    async fn launch(
        &self,
        instance_id: &str,
        config_dirs: &[PathBuf],
        log_file: &Path,
    ) -> Result<()> {
        if let Some(pid) = self.running_pid(instance_id) {
            tracing::info!(instance.id = %instance_id, pid, "guest agent already runs");
            return Ok(());
        }
        std::fs::create_dir_all(&self.pid_dir)
            .map_err(|e| DriverError::host(format!("creating {}", self.pid_dir.display()), e))?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(log_file)
            .map_err(|e| DriverError::host(format!("opening {}", log_file.display()), e))?;
        let log_err = log
            .try_clone()
            .map_err(|e| DriverError::host(format!("opening {}", log_file.display()), e))?;
        let mut cmd = Command::new(&self.program);
        for dir in config_dirs {
            cmd.arg("--config-dir").arg(dir);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            .process_group(0);
        let mut child = cmd.spawn().map_err(|e| {
            DriverError::host(
                format!(
                    "starting the guest agent {} of instance {instance_id}",
                    self.program.display()
                ),
                e,
            )
        })?;
        let Some(pid) = child.id() else {
            return Err(DriverError::host(
                format!("starting the guest agent of instance {instance_id}"),
                "it exited at once",
            ));
        };
        let pid = pid as i32;
        let pid_file = self.pid_file(instance_id);
        if let Err(e) = std::fs::write(&pid_file, format!("{pid}\n")) {
            let _ = child.start_kill();
            let _ = child.wait().await;
            return Err(DriverError::host(
                format!("writing {}", pid_file.display()),
                e,
            ));
        }
        if let Ok(Ok(status)) = tokio::time::timeout(STARTUP_CHECK, child.wait()).await {
            let _ = std::fs::remove_file(&pid_file);
            return Err(DriverError::host(
                format!("starting the guest agent of instance {instance_id}"),
                format!("it exited with {status}: {}", tail(log_file, 2000)),
            ));
        }
        tracing::info!(instance.id = %instance_id, pid, program = %self.program.display(), log = %log_file.display(), "guest agent started");
        self.children
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(instance_id.to_string(), child);
        Ok(())
    }

    async fn is_running(&self, instance_id: &str) -> bool {
        if self.poll_child(instance_id) == Some(false) {
            return false;
        }
        self.running_pid(instance_id).is_some()
    }

    async fn stop(&self, instance_id: &str) -> Result<()> {
        let mut child = self.take_child(instance_id);
        let pid_file = self.pid_file(instance_id);
        let pid = self.running_pid(instance_id);
        if let Some(pid) = pid {
            tracing::info!(instance.id = %instance_id, pid, "stopping the guest agent");
            host::signal(pid, Signal::TERM)?;
            if !Self::wait_for_exit(pid, child.as_mut(), STOP_GRACE).await {
                tracing::warn!(instance.id = %instance_id, pid, "guest agent did not stop on SIGTERM; killing it");
                host::signal(pid, Signal::KILL)?;
                if !Self::wait_for_exit(pid, child.as_mut(), Duration::from_secs(5)).await {
                    return Err(DriverError::host(
                        format!("stopping the guest agent of instance {instance_id}"),
                        format!("process {pid} is still alive after SIGKILL"),
                    ));
                }
            }
        } else if let Some(child) = child.as_mut() {
            // Exited already (or its pid file is gone): reap it.
            let _ = child.try_wait();
        }
        match std::fs::remove_file(&pid_file) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(DriverError::host(
                format!("removing {}", pid_file.display()),
                e,
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_command_lines_are_recognised_by_config_dir() {
        let cmd = b"/usr/bin/trove-guestagent\0--config-dir\0/s/instances/abc-1/conf.d\0--config-dir\0/s/instances/abc-1/host.d\0";
        assert!(is_agent_of(cmd, "abc-1"));
        assert!(!is_agent_of(cmd, "abc"));
        assert!(!is_agent_of(b"sleep\0/s/instances/abc-1/conf.d\0", "abc-1"));
        assert!(!is_agent_of(b"", "abc-1"));
    }
}
