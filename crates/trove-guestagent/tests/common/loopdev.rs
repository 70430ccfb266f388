//! Loop devices for the volume tests: an image file attached to a loop device, detached
//! (after unmounting what it was told about) when dropped, and a runner for the system
//! tools they need.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use trove_guestagent::volume;

/// One MiB.
pub const MIB: u64 = 1024 * 1024;

/// Runs `program` with `args`, which must succeed; returns its standard output.
pub fn sh(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// An image file attached to a loop device. Dropping it unmounts the mount points it was
/// told about (only where this device is mounted) and detaches the device.
pub struct LoopDevice {
    pub dev: PathBuf,
    image: PathBuf,
    mount_points: Vec<PathBuf>,
    _dir: tempfile::TempDir,
}

impl LoopDevice {
    /// A new image of `size_mib` in a directory of its own, attached.
    pub fn new(size_mib: u64) -> LoopDevice {
        let dir = tempfile::Builder::new()
            .prefix("trove-vol-")
            .tempdir()
            .expect("tempdir");
        let image = dir.path().join("volume.img");
        std::fs::File::create(&image)
            .and_then(|f| f.set_len(size_mib * MIB))
            .expect("image file");
        let dev = sh("losetup", &["--find", "--show", image.to_str().unwrap()]);
        // The guard exists before anything else can fail, so the device is always detached.
        let lo = LoopDevice {
            dev: PathBuf::from(dev.trim()),
            image,
            mount_points: Vec::new(),
            _dir: dir,
        };
        assert!(lo.path().starts_with("/dev/loop"), "losetup gave {dev:?}");
        lo
    }

    /// The device, e.g. `/dev/loop7`.
    pub fn path(&self) -> &str {
        self.dev.to_str().unwrap()
    }

    /// Grows the image and tells the loop driver about the new size.
    pub fn grow(&self, size_mib: u64) {
        std::fs::OpenOptions::new()
            .write(true)
            .open(&self.image)
            .and_then(|f| f.set_len(size_mib * MIB))
            .expect("grow image");
        sh("losetup", &["-c", self.path()]);
        let size: u64 = sh("blockdev", &["--getsize64", self.path()])
            .trim()
            .parse()
            .unwrap();
        assert_eq!(size, size_mib * MIB);
    }

    /// Cleans `mp` up on drop, if this device is mounted there.
    pub fn unmount_on_drop(&mut self, mp: &Path) {
        self.mount_points.push(mp.to_path_buf());
    }

    /// The device's major and minor numbers.
    pub fn dev_number(&self) -> (u32, u32) {
        volume::block_device_number(&self.dev).unwrap()
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        let ours = volume::block_device_number(&self.dev).ok();
        for mp in &self.mount_points {
            let mut attempts = 0;
            while let Ok(Some(m)) = volume::mount_at(mp) {
                if Some(m.dev) != ours {
                    break;
                }
                let ok = Command::new("umount")
                    .arg(mp)
                    .stderr(std::process::Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success());
                attempts += 1;
                if !ok && attempts >= 50 {
                    // Still busy (a failed test left a process): detach it from the tree;
                    // the kernel releases it, and the device, when the last user goes.
                    let _ = Command::new("umount").arg("-l").arg(mp).status();
                    break;
                }
                if !ok {
                    // A server just killed may hold its files a moment longer.
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
        let _ = Command::new("losetup").arg("-d").arg(&self.dev).status();
    }
}
