//! Host operations of the local driver: external commands, loop devices, `/proc` scanning,
//! signals and mounts.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal};
use tokio::process::Command;

use crate::{DriverError, Result};

/// How often a wait for processes to end looks again.
const POLL: Duration = Duration::from_millis(100);

/// Runs `program args...`; its stdout on success, a [`DriverError::Host`] carrying the
/// command's stderr otherwise.
pub(crate) async fn run<S: AsRef<OsStr>>(program: &str, args: &[S]) -> Result<String> {
    let shown = std::iter::once(program.to_string())
        .chain(
            args.iter()
                .map(|a| a.as_ref().to_string_lossy().into_owned()),
        )
        .collect::<Vec<_>>()
        .join(" ");
    tracing::debug!(command = %shown, "running");
    let output = Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| DriverError::host(format!("running `{shown}`"), e))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let stderr = stderr.trim();
        let message = if stderr.is_empty() {
            format!("exited with {}", output.status)
        } else {
            format!("exited with {}: {stderr}", output.status)
        };
        Err(DriverError::host(format!("`{shown}`"), message))
    }
}

/// Attaches `image` to a free loop device; the device's path (`/dev/loopN`).
pub(crate) async fn loop_attach(image: &Path) -> Result<String> {
    let out = run(
        "losetup",
        &[
            OsStr::new("--find"),
            OsStr::new("--show"),
            image.as_os_str(),
        ],
    )
    .await?;
    let device = out.trim();
    if device.is_empty() {
        return Err(DriverError::host(
            format!("attaching {} to a loop device", image.display()),
            "losetup printed no device",
        ));
    }
    Ok(device.to_string())
}

/// The loop devices `image` is attached to (`losetup -j`).
pub(crate) async fn loop_devices_of(image: &Path) -> Result<Vec<String>> {
    if !image.exists() {
        return Ok(Vec::new());
    }
    let out = run("losetup", &[OsStr::new("-j"), image.as_os_str()]).await?;
    Ok(parse_losetup_j(&out))
}

/// The devices in `losetup -j` output: `/dev/loop0: [2049]:1234 (/path/img)` per line.
fn parse_losetup_j(out: &str) -> Vec<String> {
    out.lines()
        .filter_map(|line| line.split_once(':').map(|(dev, _)| dev.trim()))
        .filter(|dev| dev.starts_with("/dev/"))
        .map(str::to_string)
        .collect()
}

/// Detaches a loop device.
pub(crate) async fn loop_detach(device: &str) -> Result<()> {
    run("losetup", &["-d", device]).await.map(drop)
}

/// Makes the kernel re-read the size of a loop device's backing file.
pub(crate) async fn loop_refresh(device: &str) -> Result<()> {
    run("losetup", &["-c", device]).await.map(drop)
}

/// Whether process `pid` exists and has not exited (zombies count as gone).
pub(crate) fn pid_alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name, which is in parentheses and may hold anything.
        Ok(stat) => match stat.rfind(')') {
            Some(i) => !matches!(stat[i + 1..].trim_start().chars().next(), Some('Z' | 'X')),
            None => true,
        },
        Err(_) => false,
    }
}

/// The NUL-separated command line of `pid` (empty if gone or a kernel thread).
pub(crate) fn cmdline(pid: i32) -> Vec<u8> {
    std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default()
}

/// Whether `haystack` holds `dir` as a whole path (followed by `/`, NUL or the end), so
/// that `/x/abc` does not match `/x/abcd`.
fn mentions_dir(haystack: &[u8], dir: &[u8]) -> bool {
    if dir.is_empty() || haystack.len() < dir.len() {
        return false;
    }
    (0..=haystack.len() - dir.len()).any(|i| {
        haystack[i..].starts_with(dir)
            && matches!(haystack.get(i + dir.len()), None | Some(b'/') | Some(0))
    })
}

/// Processes (other than this one) whose command line names `dir` or a path under it, or
/// whose working directory is under it.
pub(crate) fn processes_using(dir: &Path) -> Vec<i32> {
    let own = std::process::id() as i32;
    let dir_bytes = dir.as_os_str().as_encoded_bytes();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids: Vec<i32> = entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| pid != own && pid > 1)
        .filter(|&pid| {
            mentions_dir(&cmdline(pid), dir_bytes)
                || std::fs::read_link(format!("/proc/{pid}/cwd"))
                    .map(|cwd| cwd.starts_with(dir))
                    .unwrap_or(false)
        })
        .filter(|&pid| pid_alive(pid))
        .collect();
    pids.sort_unstable();
    pids
}

/// Sends `signal` to `pid`; a process that is already gone is not an error.
pub(crate) fn signal(pid: i32, signal: Signal) -> Result<()> {
    let Some(p) = Pid::from_raw(pid) else {
        return Ok(());
    };
    match rustix::process::kill_process(p, signal) {
        Ok(()) | Err(rustix::io::Errno::SRCH) => Ok(()),
        Err(e) => Err(DriverError::host(format!("signalling process {pid}"), e)),
    }
}

/// Waits until none of `pids` is alive, or `timeout` passes; the ones still alive.
pub(crate) async fn wait_gone(pids: &[i32], timeout: Duration) -> Vec<i32> {
    let deadline = Instant::now() + timeout;
    loop {
        let alive: Vec<i32> = pids.iter().copied().filter(|&p| pid_alive(p)).collect();
        if alive.is_empty() || Instant::now() >= deadline {
            return alive;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Stops every process using `dir` (see [`processes_using`]): SIGTERM, up to `grace` to
/// exit, then SIGKILL.
pub(crate) async fn stop_processes_using(
    dir: &Path,
    grace: Duration,
    instance_id: &str,
) -> Result<()> {
    let pids = processes_using(dir);
    if pids.is_empty() {
        return Ok(());
    }
    tracing::info!(instance.id = %instance_id, ?pids, "stopping processes using the instance directory");
    for &pid in &pids {
        signal(pid, Signal::TERM)?;
    }
    let left = wait_gone(&pids, grace).await;
    if !left.is_empty() {
        tracing::warn!(instance.id = %instance_id, pids = ?left, "processes did not stop on SIGTERM; killing them");
        for &pid in &left {
            signal(pid, Signal::KILL)?;
        }
        let left = wait_gone(&left, Duration::from_secs(5)).await;
        if !left.is_empty() {
            return Err(DriverError::host(
                format!("stopping the processes using {}", dir.display()),
                format!("processes {left:?} are still alive after SIGKILL"),
            ));
        }
    }
    // Processes started meanwhile by the ones just stopped (a restarting database).
    let late = processes_using(dir);
    if !late.is_empty() {
        for &pid in &late {
            signal(pid, Signal::KILL)?;
        }
        let left = wait_gone(&late, Duration::from_secs(5)).await;
        if !left.is_empty() {
            return Err(DriverError::host(
                format!("stopping the processes using {}", dir.display()),
                format!("processes {left:?} are still alive after SIGKILL"),
            ));
        }
    }
    Ok(())
}

/// Undoes the octal escapes (`\040` for a space...) of a `/proc/self/mountinfo` path.
fn unescape_mount_path(s: &str) -> PathBuf {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 4 <= bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let v = (bytes[i + 1] - b'0') as u32 * 64
                + (bytes[i + 2] - b'0') as u32 * 8
                + (bytes[i + 3] - b'0') as u32;
            out.push(v as u8);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    PathBuf::from(std::ffi::OsString::from(
        String::from_utf8_lossy(&out).into_owned(),
    ))
}

/// Mount points in a mountinfo text that are `dir` or under it, deepest first.
fn mounts_under_in(mountinfo: &str, dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(unescape_mount_path)
        .filter(|p| p.starts_with(dir))
        .collect();
    found.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    found.dedup();
    found
}

/// Mount points that are `dir` or under it, deepest first (from `/proc/self/mountinfo`).
pub(crate) fn mounts_under(dir: &Path) -> Result<Vec<PathBuf>> {
    let info = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| DriverError::host("reading /proc/self/mountinfo", e))?;
    Ok(mounts_under_in(&info, dir))
}

/// Unmounts `path`; falls back to a lazy unmount when it is busy.
pub(crate) async fn unmount(path: &Path, instance_id: &str) -> Result<()> {
    tracing::info!(instance.id = %instance_id, mount_point = %path.display(), "unmounting");
    match run("umount", &[path.as_os_str()]).await {
        Ok(_) => Ok(()),
        Err(e) => {
            tracing::warn!(instance.id = %instance_id, mount_point = %path.display(), error = %e, "unmount failed; unmounting lazily");
            run("umount", &[OsStr::new("-l"), path.as_os_str()])
                .await
                .map(drop)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn losetup_j_output_is_parsed() {
        let out = "/dev/loop3: [65024]:10011233 (/tmp/a b.img)\n/dev/loop12: [65024]:10011233 (/tmp/a b.img)\n";
        assert_eq!(parse_losetup_j(out), vec!["/dev/loop3", "/dev/loop12"]);
        assert!(parse_losetup_j("").is_empty());
    }

    #[test]
    fn dir_mentions_are_whole_paths() {
        let cmd = b"mariadbd\0--defaults-file=/s/instances/ab/data/my.cnf\0";
        assert!(mentions_dir(cmd, b"/s/instances/ab"));
        assert!(mentions_dir(
            b"postgres\0-D\0/s/instances/ab",
            b"/s/instances/ab"
        ));
        assert!(!mentions_dir(cmd, b"/s/instances/a"));
        assert!(!mentions_dir(b"", b"/s"));
    }

    #[test]
    fn mountinfo_paths_are_unescaped_and_sorted_deepest_first() {
        let info = "\
36 35 98:0 / / rw - ext3 /dev/root rw
40 36 7:3 / /s/inst/a\\040b/data rw - ext4 /dev/loop3 rw
41 40 7:4 / /s/inst/a\\040b/data/sub rw - ext4 /dev/loop4 rw
42 36 7:5 / /s/inst/other rw - ext4 /dev/loop5 rw
";
        let found = mounts_under_in(info, Path::new("/s/inst/a b"));
        assert_eq!(
            found,
            vec![
                PathBuf::from("/s/inst/a b/data/sub"),
                PathBuf::from("/s/inst/a b/data")
            ]
        );
    }

    #[test]
    fn own_process_is_alive_and_not_listed() {
        assert!(pid_alive(std::process::id() as i32));
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
        assert!(!processes_using(&cwd).contains(&(std::process::id() as i32)));
    }
}
