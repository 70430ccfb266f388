//! The instance's data volume: format, mount, unmount and grow the file system of a block
//! device (a Cinder volume at `/dev/vdb` on a cloud, a loop device on the local driver).
//!
//! ```text
//!  prepare (device_path given)     mount_volume / unmount_volume     resize_fs
//!   │ device is a block device?     (taskmanager's offline volume      │ ext3/ext4: online
//!   │ blkid: a file system?          resize: stop_db, unmount_volume,  │   resize2fs <dev>;
//!   │   none -> mkfs.<fstype>        detach, extend, attach,           │   offline: e2fsck -f -p,
//!   │ mount -t <fs> -o <options>     resize_fs(online=false),          │   resize2fs <dev>
//!   │ /etc/fstab line (not for       mount_volume, restart)            │ xfs: xfs_growfs <mount>
//!   v  loop devices)                                                   v
//!  <mount_point>/ (the manager's layout and the prepare markers live there)
//! ```
//!
//! Every operation is idempotent where Trove's taskmanager may repeat it: formatting a device
//! that has a file system does nothing, mounting a device already mounted at the mount point
//! does nothing, unmounting what is not mounted does nothing. Helper programs run with a
//! timeout (`volume_format_timeout` for `mkfs`, `e2fsck`, `resize2fs` and `xfs_growfs`,
//! `command_process_timeout` for the others); a failure carries the program's own message.
//!
//! The volume is mounted by `prepare`, not at agent start-up (Trove mounts at start-up). The
//! local driver keeps its loop devices attached and mounted across agent restarts; after a
//! host reboot a cloud volume comes back through the `/etc/fstab` line written by `prepare`,
//! while a loop device (which does not survive a reboot) must be attached and mounted again
//! by whoever set it up (`mount_volume`). While the volume is unmounted (the taskmanager's
//! offline resize) the prepare markers under the mount point are out of sight: the agent
//! counts the instance as not prepared, sends no heartbeats and restarts nothing until
//! `mount_volume` brings them back.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{GuestError, Result};

/// File systems the agent creates and grows (`[DEFAULT] volume_fstype` choices).
pub const SUPPORTED_FSTYPES: &[&str] = &["ext3", "ext4", "xfs"];

/// How data volumes are formatted and mounted (`[DEFAULT]` options of the guest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeConfig {
    /// File system created on an empty volume (`volume_fstype`: ext3, ext4, xfs).
    pub fstype: String,
    /// Extra `mkfs` options, split on whitespace (`format_options`, `-m 5`).
    pub format_options: String,
    /// `mount -o` options (`mount_options`, `defaults,noatime`).
    pub mount_options: String,
    /// Time allowed to `mkfs`, `e2fsck`, `resize2fs`, `xfs_growfs` (`volume_format_timeout`).
    pub format_timeout: Duration,
    /// Time allowed to the other helpers (`blkid`, `mount`, `umount`;
    /// `command_process_timeout`).
    pub command_timeout: Duration,
    /// The file system table a mounted volume is recorded in (`/etc/fstab`).
    pub fstab: PathBuf,
}

impl Default for VolumeConfig {
    /// Trove's defaults: ext4, `-m 5`, `defaults,noatime`, 120 s to format, 30 s for other
    /// commands, `/etc/fstab`.
    fn default() -> Self {
        VolumeConfig {
            fstype: "ext4".into(),
            format_options: "-m 5".into(),
            mount_options: "defaults,noatime".into(),
            format_timeout: Duration::from_secs(120),
            command_timeout: Duration::from_secs(30),
            fstab: PathBuf::from("/etc/fstab"),
        }
    }
}

/// One line of `/proc/self/mountinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    /// Device number (major, minor) of the mounted file system.
    pub dev: (u32, u32),
    /// Where it is mounted.
    pub mount_point: PathBuf,
    /// File system type (`ext4`).
    pub fstype: String,
    /// Mount source (`/dev/vdb`).
    pub source: String,
}

/// Decodes the octal escapes (`\040` for a space) of a mountinfo field.
fn unescape_mountinfo(field: &str) -> String {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            let oct = &b[i + 1..i + 4];
            if oct.iter().all(|c| (b'0'..=b'7').contains(c)) {
                let v = oct
                    .iter()
                    .fold(0u32, |acc, c| acc * 8 + u32::from(c - b'0'));
                if let Ok(v) = u8::try_from(v) {
                    out.push(v);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses the text of `/proc/self/mountinfo`, in mount order (a later entry at the same mount
/// point is on top of an earlier one). Malformed lines are skipped.
pub fn parse_mountinfo(text: &str) -> Vec<MountEntry> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let sep = fields.iter().position(|f| *f == "-")?;
            if sep < 6 || fields.len() < sep + 3 {
                return None;
            }
            let (major, minor) = fields[2].split_once(':')?;
            Some(MountEntry {
                dev: (major.parse().ok()?, minor.parse().ok()?),
                mount_point: PathBuf::from(unescape_mountinfo(fields[4])),
                fstype: fields[sep + 1].to_string(),
                source: unescape_mountinfo(fields[sep + 2]),
            })
        })
        .collect()
}

/// The mounts of this process's mount namespace.
pub fn mounts() -> Result<Vec<MountEntry>> {
    let text = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| GuestError::io("reading /proc/self/mountinfo", e))?;
    Ok(parse_mountinfo(&text))
}

/// `path` with symbolic links resolved; the path itself when it cannot be resolved.
fn resolved(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

/// The file system mounted on top at `path`, if `path` is a mount point.
pub fn mount_at(path: &Path) -> Result<Option<MountEntry>> {
    let path = resolved(path);
    Ok(mounts()?.into_iter().rev().find(|m| m.mount_point == path))
}

/// True when `path` is a mount point (from `/proc/self/mountinfo`).
pub fn is_mount_point(path: &Path) -> Result<bool> {
    Ok(mount_at(path)?.is_some())
}

/// The device number of the block device `device`; a clear error when it does not exist or
/// is not a block device.
pub fn block_device_number(device: &Path) -> Result<(u32, u32)> {
    let st = match rustix::fs::stat(device) {
        Ok(st) => st,
        Err(rustix::io::Errno::NOENT) => {
            return Err(GuestError::Volume(format!(
                "volume device {} does not exist",
                device.display()
            )))
        }
        Err(e) => {
            return Err(GuestError::io(
                format!("examining volume device {}", device.display()),
                e.into(),
            ))
        }
    };
    if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::BlockDevice {
        return Err(GuestError::Volume(format!(
            "volume device {} is not a block device",
            device.display()
        )));
    }
    let rdev = st.st_rdev;
    Ok((rustix::fs::major(rdev), rustix::fs::minor(rdev)))
}

/// True for a loop device (`/dev/loopN`), which does not survive a reboot.
pub fn is_loop_device(device: &Path) -> bool {
    let name = |p: &Path| {
        p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("loop"))
    };
    name(device) || name(&resolved(device))
}

/// Output of a helper program that exited with a status.
struct Output {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs `program args` with `timeout`; the child is killed when the time is up.
async fn run(program: &str, args: &[&str], timeout: Duration) -> Result<Output> {
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    tracing::debug!(program, ?args, "running");
    let out = match tokio::time::timeout(timeout, cmd.output()).await {
        Ok(r) => r.map_err(|e| GuestError::io(format!("running {program}"), e))?,
        Err(_) => {
            return Err(GuestError::Command {
                program: format!("{program} {}", args.join(" ")),
                detail: format!("timed out after {} s", timeout.as_secs()),
            })
        }
    };
    Ok(Output {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// Runs a helper whose exit status must be one of `ok_codes`; otherwise
/// [`GuestError::Command`] with its standard error (or output).
async fn run_ok(program: &str, args: &[&str], timeout: Duration, ok_codes: &[i32]) -> Result<()> {
    let out = run(program, args, timeout).await?;
    if out.code.is_some_and(|c| ok_codes.contains(&c)) {
        return Ok(());
    }
    let text = if out.stderr.trim().is_empty() {
        out.stdout.trim()
    } else {
        out.stderr.trim()
    };
    let status = match out.code {
        Some(c) => format!("exit status {c}"),
        None => "killed by a signal".to_string(),
    };
    let text: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    Err(GuestError::Command {
        program: format!("{program} {}", args.join(" ")),
        detail: format!("{status}: {}", text.join(" | ")),
    })
}

fn path_str(p: &Path) -> Result<&str> {
    p.to_str()
        .ok_or_else(|| GuestError::InvalidValue(format!("path {} is not valid UTF-8", p.display())))
}

/// Formats, mounts, unmounts and grows data volumes with the options of a [`VolumeConfig`].
#[derive(Debug, Clone, Default)]
pub struct VolumeManager {
    config: VolumeConfig,
}

impl VolumeManager {
    /// A manager using `config`.
    pub fn new(config: VolumeConfig) -> Self {
        VolumeManager { config }
    }

    /// The options in use.
    pub fn config(&self) -> &VolumeConfig {
        &self.config
    }

    /// The file system type on `device` as `blkid` probes it (`None`: no file system).
    /// Errors when the device holds something that is not a file system (a partition table),
    /// so that it is never formatted over.
    pub async fn filesystem_type(&self, device: &Path) -> Result<Option<String>> {
        block_device_number(device)?;
        let dev = path_str(device)?;
        let args = ["-p", "-o", "value", "-s", "TYPE", dev];
        let out = run("blkid", &args, self.config.command_timeout).await?;
        match out.code {
            // blkid -p: 2 = nothing found on the device.
            Some(2) => Ok(None),
            Some(0) => {
                let fstype = out.stdout.trim();
                if fstype.is_empty() {
                    Err(GuestError::Volume(format!(
                        "volume device {dev} holds data that is not a file system (a partition table?); refusing to format it"
                    )))
                } else {
                    Ok(Some(fstype.to_string()))
                }
            }
            _ => Err(GuestError::Command {
                program: format!("blkid {}", args.join(" ")),
                detail: format!("{:?}: {}", out.code, out.stderr.trim()),
            }),
        }
    }

    /// Creates a `fstype` file system on `device` unless it already has one; returns the
    /// type of the file system now on it (the existing one when it had one, which may differ
    /// from `fstype`). `format_options` are split on whitespace and passed to `mkfs`.
    pub async fn format_if_needed(
        &self,
        device: &Path,
        fstype: &str,
        format_options: &str,
    ) -> Result<String> {
        if let Some(existing) = self.filesystem_type(device).await? {
            if existing != fstype {
                tracing::warn!(device = %device.display(), existing, configured = fstype,
                    "the volume already has another file system type; keeping it");
            } else {
                tracing::info!(device = %device.display(), fstype, "volume already formatted");
            }
            return Ok(existing);
        }
        let dev = path_str(device)?;
        let mut args: Vec<&str> = format_options.split_whitespace().collect();
        match fstype {
            "ext3" | "ext4" => args.extend(["-q", "-F", dev]),
            "xfs" => args.extend(["-f", dev]),
            other => {
                return Err(GuestError::InvalidValue(format!(
                "volume file system type '{other}' is not supported (supported: ext3, ext4, xfs)"
            )))
            }
        }
        let program = format!("mkfs.{fstype}");
        tracing::info!(
            device = dev,
            fstype,
            options = format_options,
            "formatting the volume"
        );
        run_ok(&program, &args, self.config.format_timeout, &[0]).await?;
        // A file system that blkid cannot see would be formatted again next time.
        match self.filesystem_type(device).await? {
            Some(t) if t == fstype => Ok(t),
            other => Err(GuestError::Volume(format!(
                "{program} finished but {dev} shows file system {other:?}"
            ))),
        }
    }

    /// Mounts `device` at `mount_point` (created if missing) with `mount -t <fstype> -o
    /// <mount_options>`; `fstype` `None` uses what `blkid` finds on the device. Does nothing
    /// when the device is already mounted there; refuses when something else is.
    pub async fn mount(
        &self,
        device: &Path,
        mount_point: &Path,
        fstype: Option<&str>,
        mount_options: &str,
    ) -> Result<()> {
        let dev_no = block_device_number(device)?;
        crate::manager::mkdir(mount_point)?;
        if let Some(m) = mount_at(mount_point)? {
            if m.dev == dev_no {
                tracing::info!(device = %device.display(), mount_point = %mount_point.display(),
                    "volume already mounted");
                return Ok(());
            }
            return Err(GuestError::Volume(format!(
                "{} is already a mount point (of {}); refusing to mount {} over it",
                mount_point.display(),
                m.source,
                device.display()
            )));
        }
        let fstype = match fstype {
            Some(t) => t.to_string(),
            None => self.filesystem_type(device).await?.ok_or_else(|| {
                GuestError::Volume(format!(
                    "volume device {} has no file system to mount",
                    device.display()
                ))
            })?,
        };
        let (dev, mp) = (path_str(device)?, path_str(mount_point)?);
        if std::fs::read_dir(mount_point).is_ok_and(|mut d| d.next().is_some()) {
            tracing::warn!(
                mount_point = mp,
                "the mount point is not empty; its files will be hidden under the volume"
            );
        }
        let mut args = vec!["-t", fstype.as_str()];
        if !mount_options.trim().is_empty() {
            args.extend(["-o", mount_options.trim()]);
        }
        args.extend([dev, mp]);
        run_ok("mount", &args, self.config.command_timeout, &[0]).await?;
        tracing::info!(device = dev, mount_point = mp, fstype, "volume mounted");
        Ok(())
    }

    /// Unmounts whatever is mounted at `mount_point`; does nothing when it is not a mount
    /// point. With `device`, refuses when the file system mounted there is another device's.
    pub async fn unmount(&self, mount_point: &Path, device: Option<&Path>) -> Result<()> {
        let Some(m) = mount_at(mount_point)? else {
            tracing::info!(mount_point = %mount_point.display(), "not mounted; nothing to unmount");
            return Ok(());
        };
        if let Some(device) = device {
            if block_device_number(device)? != m.dev {
                return Err(GuestError::Volume(format!(
                    "{} is the mount point of {}, not of {}; refusing to unmount it",
                    mount_point.display(),
                    m.source,
                    device.display()
                )));
            }
        }
        let mp = path_str(mount_point)?;
        run_ok("umount", &[mp], self.config.command_timeout, &[0]).await?;
        tracing::info!(mount_point = mp, "volume unmounted");
        Ok(())
    }

    /// Grows the file system on `device` to the device's size. ext3/ext4: online (mounted)
    /// `resize2fs <device>`; offline `e2fsck -f -p <device>` then `resize2fs <device>` (the
    /// device is unmounted from `mount_point` first if it is mounted there, as a volume
    /// re-attached with a fstab line may be). xfs: `xfs_growfs <mount_point>`, mounting the
    /// device at `mount_point` for the time of the resize when it is not mounted.
    pub async fn resize_fs(&self, device: &Path, mount_point: &Path, online: bool) -> Result<()> {
        let dev_no = block_device_number(device)?;
        let fstype = self.filesystem_type(device).await?.ok_or_else(|| {
            GuestError::Volume(format!(
                "volume device {} has no file system to resize",
                device.display()
            ))
        })?;
        let all = mounts()?;
        let mount_point = resolved(mount_point);
        let mounted_here = all
            .iter()
            .rev()
            .find(|m| m.mount_point == mount_point)
            .is_some_and(|m| m.dev == dev_no);
        let mounted_elsewhere = all
            .iter()
            .find(|m| m.dev == dev_no && m.mount_point != mount_point);
        if let Some(m) = mounted_elsewhere {
            return Err(GuestError::Volume(format!(
                "volume device {} is mounted at {}, not at {}",
                device.display(),
                m.mount_point.display(),
                mount_point.display()
            )));
        }
        let dev = path_str(device)?;
        let long = self.config.format_timeout;
        match fstype.as_str() {
            "ext2" | "ext3" | "ext4" => {
                if online && mounted_here {
                    tracing::info!(device = dev, "growing the mounted file system");
                } else {
                    if online {
                        tracing::info!(
                            device = dev,
                            "online resize asked for an unmounted volume; checking it first"
                        );
                    }
                    if mounted_here {
                        tracing::info!(device = dev, mount_point = %mount_point.display(),
                            "unmounting the volume for an offline resize");
                        self.unmount(&mount_point, Some(device)).await?;
                    }
                    // e2fsck: 0 clean, 1 errors corrected, 2 corrected (reboot advised).
                    run_ok("e2fsck", &["-f", "-p", dev], long, &[0, 1, 2]).await?;
                }
                run_ok("resize2fs", &[dev], long, &[0]).await?;
            }
            "xfs" => {
                let mp = path_str(&mount_point)?;
                if mounted_here {
                    run_ok("xfs_growfs", &[mp], long, &[0]).await?;
                } else {
                    self.mount(
                        device,
                        &mount_point,
                        Some("xfs"),
                        &self.config.mount_options,
                    )
                    .await?;
                    let grown = run_ok("xfs_growfs", &[mp], long, &[0]).await;
                    let unmounted = self.unmount(&mount_point, Some(device)).await;
                    grown?;
                    unmounted?;
                }
            }
            other => {
                return Err(GuestError::NotSupported(format!(
                    "resizing a {other} file system"
                )))
            }
        }
        tracing::info!(device = dev, fstype, online, "file system resized");
        Ok(())
    }

    /// What `prepare` does with its `device_path`: format the device if it has no file
    /// system, mount it at `mount_point` with the configured options, and (except for loop
    /// devices) record the mount in the fstab so it comes back after a reboot.
    pub async fn prepare_volume(&self, device: &Path, mount_point: &Path) -> Result<()> {
        let c = &self.config;
        let fstype = self
            .format_if_needed(device, &c.fstype, &c.format_options)
            .await?;
        self.mount(device, mount_point, Some(&fstype), &c.mount_options)
            .await?;
        if is_loop_device(device) {
            tracing::info!(device = %device.display(), "loop device: not recorded in the fstab (it does not survive a reboot)");
        } else {
            add_fstab_entry(&c.fstab, device, mount_point, &fstype, &c.mount_options)?;
        }
        Ok(())
    }
}

/// Appends `<device> <mount_point> <fstype> <options> 0 2` to `fstab` unless a line already
/// names `mount_point` (a line naming it for another device is left alone, with a warning).
/// Returns true when a line was added.
pub fn add_fstab_entry(
    fstab: &Path,
    device: &Path,
    mount_point: &Path,
    fstype: &str,
    mount_options: &str,
) -> Result<bool> {
    let text = match std::fs::read_to_string(fstab) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(GuestError::io(format!("reading {}", fstab.display()), e)),
    };
    let (dev, mp) = (path_str(device)?, path_str(mount_point)?);
    if dev.contains(char::is_whitespace) || mp.contains(char::is_whitespace) {
        return Err(GuestError::InvalidValue(format!(
            "cannot record {dev} at {mp} in {}: paths with spaces are not supported",
            fstab.display()
        )));
    }
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.first().is_none_or(|w| w.starts_with('#')) || f.len() < 2 {
            continue;
        }
        if f[1] == mp {
            if f[0] != dev {
                tracing::warn!(fstab = %fstab.display(), line, device = dev,
                    "the fstab names another device at the mount point; leaving it");
            }
            return Ok(false);
        }
    }
    let options = if mount_options.trim().is_empty() {
        "defaults"
    } else {
        mount_options.trim()
    };
    let mut new = text;
    if !new.is_empty() && !new.ends_with('\n') {
        new.push('\n');
    }
    new.push_str(&format!("{dev} {mp} {fstype} {options} 0 2\n"));
    // Written to a temporary file then renamed, so a crash never leaves a truncated fstab.
    let tmp = fstab.with_extension("trove-tmp");
    let mode = std::fs::metadata(fstab)
        .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o7777)
        .unwrap_or(0o644);
    crate::manager::write_file(&tmp, new.as_bytes(), mode)?;
    std::fs::rename(&tmp, fstab)
        .map_err(|e| GuestError::io(format!("replacing {}", fstab.display()), e))?;
    tracing::info!(fstab = %fstab.display(), device = dev, mount_point = mp, "volume recorded in the fstab");
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_lines() {
        let text = "22 27 0:21 / /proc rw,relatime - proc proc rw\n\
                    42 27 7:3 / /tmp/a\\040b rw,noatime shared:5 - ext4 /dev/loop3 rw\n\
                    garbage\n\
                    43 42 7:4 / /tmp/a\\040b rw - ext4 /dev/loop4 rw\n";
        let m = parse_mountinfo(text);
        assert_eq!(m.len(), 3);
        assert_eq!(m[1].dev, (7, 3));
        assert_eq!(m[1].mount_point, PathBuf::from("/tmp/a b"));
        assert_eq!(m[1].fstype, "ext4");
        assert_eq!(m[1].source, "/dev/loop3");
        // The later mount at the same point is the one on top.
        let top = m
            .iter()
            .rev()
            .find(|e| e.mount_point == Path::new("/tmp/a b"))
            .unwrap();
        assert_eq!(top.dev, (7, 4));
        assert_eq!(unescape_mountinfo("a\\134b\\011"), "a\\b\t");
        assert_eq!(unescape_mountinfo("trailing\\04"), "trailing\\04");
    }

    #[test]
    fn root_is_a_mount_point_and_a_file_is_not() {
        assert!(is_mount_point(Path::new("/")).unwrap());
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        std::fs::write(&f, "x").unwrap();
        assert!(!is_mount_point(&f).unwrap());
        assert!(!is_mount_point(&dir.path().join("missing")).unwrap());
    }

    #[test]
    fn devices_are_checked() {
        let e = block_device_number(Path::new("/dev/trove-no-such-volume")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "volume device /dev/trove-no-such-volume does not exist"
        );
        let e = block_device_number(Path::new("/dev/null")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "volume device /dev/null is not a block device"
        );
        assert!(is_loop_device(Path::new("/dev/loop7")));
        assert!(!is_loop_device(Path::new("/dev/vdb")));
    }

    #[tokio::test]
    async fn missing_devices_are_refused_before_any_command() {
        let vm = VolumeManager::default();
        let dev = Path::new("/dev/trove-no-such-volume");
        let dir = tempfile::tempdir().unwrap();
        for e in [
            vm.format_if_needed(dev, "ext4", "-m 5").await.unwrap_err(),
            vm.mount(dev, dir.path(), None, "defaults")
                .await
                .unwrap_err(),
            vm.resize_fs(dev, dir.path(), true).await.unwrap_err(),
            vm.prepare_volume(dev, dir.path()).await.unwrap_err(),
        ] {
            assert!(
                e.to_string().contains("does not exist"),
                "unexpected error: {e}"
            );
            assert!(!e.is_client_error());
        }
        // Not mounted: unmounting is a no-op.
        vm.unmount(dir.path(), None).await.unwrap();
    }

    #[test]
    fn fstab_lines() {
        let dir = tempfile::tempdir().unwrap();
        let fstab = dir.path().join("fstab");
        std::fs::write(&fstab, "# comment\nUUID=abc / ext4 defaults 0 1").unwrap();
        let add = |dev: &str, mp: &str| {
            add_fstab_entry(
                &fstab,
                Path::new(dev),
                Path::new(mp),
                "ext4",
                "defaults,noatime",
            )
            .unwrap()
        };
        assert!(add("/dev/vdb", "/var/lib/mysql"));
        assert!(!add("/dev/vdb", "/var/lib/mysql"), "not added twice");
        assert!(!add("/dev/vdc", "/var/lib/mysql"), "mount point taken");
        let text = std::fs::read_to_string(&fstab).unwrap();
        assert_eq!(
            text,
            "# comment\nUUID=abc / ext4 defaults 0 1\n/dev/vdb /var/lib/mysql ext4 defaults,noatime 0 2\n"
        );
        let missing = dir.path().join("new-fstab");
        assert!(add_fstab_entry(
            &missing,
            Path::new("/dev/vdb"),
            Path::new("/data"),
            "xfs",
            ""
        )
        .unwrap());
        assert_eq!(
            std::fs::read_to_string(&missing).unwrap(),
            "/dev/vdb /data xfs defaults 0 2\n"
        );
    }
}
