//! Data volumes on real loop devices: formatting, mounting, unmounting and growing an ext4 file
//! system, and a MariaDB instance prepared on a volume through the agent (in-memory
//! transport). Needs root (loop devices, mount); skipped with a message otherwise.
//!
//! Every test attaches its own image file with `losetup --find --show` and detaches only that
//! device, after unmounting only its own mount points.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use trove_guestagent::agent::AgentSettings;
use trove_guestagent::heartbeat::RestartBackoff;
use trove_guestagent::manager::ManagerConfig;
use trove_guestagent::process::{
    pid_alive, ServerProcess, ServiceUser, DEFAULT_SERVICE_UID, DEFAULT_SERVICE_USER,
};
use trove_guestagent::volume::{self, VolumeConfig, VolumeManager};
use trove_guestagent::{
    Agent, Database, DatastoreManager, MariaDbManager, PostgresManager, PrepareRequest,
    ServiceStatus,
};
use trove_rpc::api::guest::GUEST_LATEST_VERSION;
use trove_rpc::api::{GuestApi, GuestRequest, GuestTimeouts, PrepareArgs};
use trove_rpc::{InMemoryTransport, RpcContext, Transport};

use common::loopdev::{sh, LoopDevice, MIB};

fn is_root() -> bool {
    if rustix::process::geteuid().is_root() {
        return true;
    }
    eprintln!("skipped: loop devices and mounts need root");
    false
}

/// Growing a mounted ext4 (`EXT4_IOC_RESIZE_FS`) needs `CAP_SYS_RESOURCE`, which some
/// sandboxes withhold even from root.
fn can_resize_online() -> bool {
    const CAP_SYS_RESOURCE: u32 = 24;
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let caps = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0);
    if caps & (1 << CAP_SYS_RESOURCE) != 0 {
        return true;
    }
    eprintln!("online resize not checked: this process lacks CAP_SYS_RESOURCE");
    false
}

fn statvfs_bytes(path: &Path) -> u64 {
    let st = rustix::fs::statvfs(path).unwrap();
    st.f_blocks * st.f_frsize
}

fn manager_in(dir: &Path) -> VolumeManager {
    VolumeManager::new(VolumeConfig {
        fstab: dir.join("fstab"),
        ..VolumeConfig::default()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn format_mount_resize_and_unmount_a_loop_device() {
    if !is_root() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let mp = work.path().join("mnt");
    let mut lo = LoopDevice::new(256);
    lo.unmount_on_drop(&mp);
    let vm = manager_in(work.path());

    // Formatted once.
    assert_eq!(vm.filesystem_type(&lo.dev).await.unwrap(), None);
    let t = vm
        .format_if_needed(&lo.dev, "ext4", "-m 5")
        .await
        .expect("format");
    assert_eq!(t, "ext4");
    assert_eq!(
        sh("blkid", &["-p", "-o", "value", "-s", "TYPE", lo.path()]).trim(),
        "ext4"
    );

    // Mounted (the directory is created), twice is fine.
    assert!(!mp.exists());
    vm.mount(&lo.dev, &mp, Some("ext4"), "defaults,noatime")
        .await
        .expect("mount");
    assert!(volume::is_mount_point(&mp).unwrap());
    let m = volume::mount_at(&mp).unwrap().unwrap();
    assert_eq!(m.dev, lo.dev_number());
    assert_eq!(m.fstype, "ext4");
    assert!(mp.join("lost+found").is_dir());
    vm.mount(&lo.dev, &mp, None, "defaults")
        .await
        .expect("mounting again is a no-op");
    std::fs::write(mp.join("keep.txt"), "survives").unwrap();
    let size_256 = statvfs_bytes(&mp);
    assert!(
        size_256 > 200 * MIB && size_256 <= 256 * MIB,
        "size {size_256}"
    );

    // Unmounted (twice is fine); formatting again does not touch the data.
    vm.unmount(&mp, Some(&lo.dev)).await.expect("unmount");
    assert!(!volume::is_mount_point(&mp).unwrap());
    assert!(!mp.join("keep.txt").exists());
    vm.unmount(&mp, Some(&lo.dev))
        .await
        .expect("unmounting again is a no-op");
    assert_eq!(
        vm.format_if_needed(&lo.dev, "ext4", "-m 5").await.unwrap(),
        "ext4"
    );
    vm.mount(&lo.dev, &mp, None, "defaults,noatime")
        .await
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(mp.join("keep.txt")).unwrap(),
        "survives"
    );

    // Online resize: the mounted file system grows with its device (where the kernel lets
    // this process; otherwise resize2fs's own reason is reported).
    lo.grow(512);
    assert_eq!(statvfs_bytes(&mp), size_256, "not grown before resize_fs");
    let online = vm.resize_fs(&lo.dev, &mp, true).await;
    let size_512 = statvfs_bytes(&mp);
    if can_resize_online() {
        online.expect("online resize");
        assert!(
            size_512 > size_256 * 19 / 10,
            "{size_256} -> {size_512} after an online resize"
        );
    } else {
        let e = online.unwrap_err().to_string();
        assert!(
            e.starts_with("resize2fs ") && e.contains("Permission denied"),
            "unexpected: {e}"
        );
        assert!(volume::is_mount_point(&mp).unwrap(), "still mounted");
    }

    // Offline resize of an unmounted device: e2fsck, resize2fs.
    vm.unmount(&mp, None).await.unwrap();
    lo.grow(768);
    vm.resize_fs(&lo.dev, &mp, false)
        .await
        .expect("offline resize");
    assert!(!volume::is_mount_point(&mp).unwrap());
    vm.mount(&lo.dev, &mp, None, "defaults,noatime")
        .await
        .unwrap();
    let size_768 = statvfs_bytes(&mp);
    assert!(
        size_768 > size_256 * 28 / 10 && size_768 > size_512,
        "{size_256} -> {size_512} -> {size_768} after an offline resize"
    );

    // An offline resize of a device mounted at its mount point unmounts it first.
    lo.grow(1024);
    vm.resize_fs(&lo.dev, &mp, false)
        .await
        .expect("offline resize of a mounted volume");
    assert!(!volume::is_mount_point(&mp).unwrap());
    vm.mount(&lo.dev, &mp, None, "defaults").await.unwrap();
    assert!(statvfs_bytes(&mp) > size_768 * 13 / 10);
    assert_eq!(
        std::fs::read_to_string(mp.join("keep.txt")).unwrap(),
        "survives"
    );

    // Another device: not mounted over ours, ours not unmounted in its name, and a device
    // mounted elsewhere is not resized at this mount point.
    let other_mp = work.path().join("other");
    let mut lo2 = LoopDevice::new(64);
    lo2.unmount_on_drop(&mp);
    lo2.unmount_on_drop(&other_mp);
    vm.format_if_needed(&lo2.dev, "ext4", "").await.unwrap();
    let e = vm.mount(&lo2.dev, &mp, None, "defaults").await.unwrap_err();
    assert!(
        e.to_string().contains("already a mount point"),
        "unexpected: {e}"
    );
    let e = vm.unmount(&mp, Some(&lo2.dev)).await.unwrap_err();
    assert!(
        e.to_string().contains("refusing to unmount"),
        "unexpected: {e}"
    );
    assert!(volume::is_mount_point(&mp).unwrap());
    let e = vm.resize_fs(&lo.dev, &other_mp, true).await.unwrap_err();
    assert!(e.to_string().contains("is mounted at"), "unexpected: {e}");

    // prepare's volume step on a loop device: formatted already, mounted, no fstab line.
    vm.prepare_volume(&lo2.dev, &other_mp)
        .await
        .expect("prepare volume");
    assert_eq!(
        volume::mount_at(&other_mp).unwrap().unwrap().dev,
        lo2.dev_number()
    );
    assert!(!work.path().join("fstab").exists());
    vm.unmount(&other_mp, None).await.unwrap();
    vm.unmount(&mp, None).await.unwrap();
}

/// A directory for an instance whose mount point is `<dir>/mnt`, traversable by the service
/// account; dropping it kills the server if one is left, then lets the loop device go.
struct VolumeInstance {
    config: ManagerConfig,
    lo: Option<LoopDevice>,
    _dir: tempfile::TempDir,
}

impl VolumeInstance {
    fn new(port: u16, size_mib: u64) -> VolumeInstance {
        let dir = tempfile::Builder::new()
            .prefix("trove-ga-vol-")
            .tempdir()
            .expect("tempdir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let user =
            ServiceUser::ensure(DEFAULT_SERVICE_USER, DEFAULT_SERVICE_UID).expect("service user");
        let addr = common::free_address(port);
        let mount = dir.path().join("mnt");
        let mut config = ManagerConfig::new(&mount, addr.into(), port, user);
        config.state_change_wait_time = Duration::from_secs(60);
        config.volume.fstab = dir.path().join("fstab");
        let mut lo = LoopDevice::new(size_mib);
        lo.unmount_on_drop(&mount);
        VolumeInstance {
            config,
            lo: Some(lo),
            _dir: dir,
        }
    }

    fn lo(&self) -> &LoopDevice {
        self.lo.as_ref().unwrap()
    }

    fn mount(&self) -> &Path {
        &self.config.mount_point
    }
}

impl Drop for VolumeInstance {
    fn drop(&mut self) {
        let sp = ServerProcess::new(self.mount().join("run/server.pid"), PathBuf::new());
        if let Some(pid) = sp.recorded_pid() {
            sp.kill_group();
            for _ in 0..100 {
                if !pid_alive(pid) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        drop(self.lo.take());
    }
}

fn prepare_args(device: &str, mount: &str) -> PrepareArgs {
    serde_json::from_value(json!({
        "packages": null,
        "databases": [{"_name": "orders", "_character_set": null, "_collate": null}],
        "memory_mb": 512,
        "users": [],
        "device_path": device,
        "mount_point": mount,
        "backup_info": null,
        "config_contents": null,
        "root_password": null,
        "overrides": null,
        "cluster_config": null,
        "snapshot": null,
        "modules": null,
        "ds_version": "10.11"
    }))
    .expect("prepare args")
}

/// A MariaDB instance prepared with `device_path` = a loop device: its data lives on the
/// mounted ext4; `resize_fs` over RPC grows what `get_filesystem_stats` reports; the volume
/// can be unmounted and mounted again over RPC once the server is stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mariadb_prepared_on_a_volume_through_the_agent() {
    if !is_root() {
        return;
    }
    common::init_logging();
    let inst = VolumeInstance::new(3306, 256);
    let dev = inst.lo().path().to_string();
    let mount = inst.mount().to_str().unwrap().to_string();
    let transport = InMemoryTransport::new();
    let guest_id = uuid::Uuid::new_v4().to_string();
    let key = "volume-test-key-0123456789abcdef".to_string();
    let settings = AgentSettings {
        guest_id: guest_id.clone(),
        datastore_manager: "mariadb".into(),
        rpc_key: Some(key.clone()),
        conductor_topic: format!("trove-conductor-vol-{guest_id}"),
        report_interval: Duration::from_secs(1),
        restart_backoff: RestartBackoff::default(),
        manager: inst.config.clone(),
    };
    let agent = Agent::start(settings, Arc::new(transport.clone()) as Arc<dyn Transport>)
        .await
        .expect("agent starts");
    let guest = GuestApi::new(
        Arc::new(transport.clone()),
        &guest_id,
        Some(key),
        GuestTimeouts {
            low: Duration::from_secs(60),
            high: Duration::from_secs(120),
            snapshot: Duration::from_secs(120),
        },
        GUEST_LATEST_VERSION,
    );
    let ctx = RpcContext::new_internal();

    guest
        .prepare(&ctx, prepare_args(&dev, &mount))
        .await
        .expect("prepare cast");
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let status = agent.manager().status().await;
        if agent.manager().is_prepared() && status == ServiceStatus::Healthy {
            break;
        }
        assert_ne!(
            status,
            ServiceStatus::Failed,
            "prepare failed (see the log)"
        );
        assert!(
            Instant::now() < deadline,
            "not prepared in time: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The volume is mounted at the mount point and the server's files are on it.
    let m = volume::mount_at(inst.mount()).unwrap().expect("mounted");
    assert_eq!(m.dev, inst.lo().dev_number());
    assert_eq!(m.fstype, "ext4");
    assert!(inst.mount().join("lost+found").is_dir());
    for p in ["data/mysql", "data", ".guestagent/.guestagent.prepare.end"] {
        let st = rustix::fs::stat(inst.mount().join(p)).unwrap();
        assert_eq!(
            (rustix::fs::major(st.st_dev), rustix::fs::minor(st.st_dev)),
            m.dev,
            "{p} is not on the volume"
        );
    }
    let root = rustix::fs::stat(inst.mount()).unwrap();
    assert_eq!(
        root.st_uid, inst.config.service_user.uid,
        "the service account owns the volume's root"
    );
    let (dbs, _) = guest.list_databases(&ctx, None, None, false).await.unwrap();
    assert!(dbs.iter().any(|d| d.name == "orders"), "{dbs:?}");

    // resize_fs over RPC: the reported size follows the device.
    let stats = |v: &Value| v["total_blocks"].as_u64().unwrap() * v["block_size"].as_u64().unwrap();
    let before = guest
        .send(&ctx, GuestRequest::GetFilesystemStats { fs_path: None })
        .await
        .unwrap();
    let before_bytes = stats(&before);
    assert!(
        before_bytes > 200 * MIB && before_bytes <= 256 * MIB,
        "{before}"
    );
    inst.lo().grow(512);
    let online = guest
        .send(
            &ctx,
            GuestRequest::ResizeFs {
                device_path: Some(dev.clone()),
                mount_point: Some(mount.clone()),
                online: Some(true),
            },
        )
        .await;
    let after = guest
        .send(&ctx, GuestRequest::GetFilesystemStats { fs_path: None })
        .await
        .unwrap();
    let after_bytes = stats(&after);
    if can_resize_online() {
        online.expect("resize_fs");
        assert!(after_bytes > before_bytes * 19 / 10, "{before} -> {after}");
        assert!(after["total"].as_f64().unwrap() > before["total"].as_f64().unwrap());
    } else {
        let e = online.unwrap_err().to_string();
        assert!(
            e.contains("resize2fs") && e.contains("Permission denied"),
            "unexpected: {e}"
        );
        assert_eq!(after_bytes, before_bytes);
    }
    let (dbs, _) = guest.list_databases(&ctx, None, None, false).await.unwrap();
    assert!(dbs.iter().any(|d| d.name == "orders"));

    // The taskmanager's offline flow: stop, unmount, (resize), mount, restart.
    guest
        .send(
            &ctx,
            GuestRequest::StopDb {
                do_not_start_on_reboot: None,
            },
        )
        .await
        .expect("stop_db");
    guest
        .send(
            &ctx,
            GuestRequest::UnmountVolume {
                device_path: Some(dev.clone()),
                mount_point: Some(mount.clone()),
            },
        )
        .await
        .expect("unmount_volume");
    assert!(!volume::is_mount_point(inst.mount()).unwrap());
    assert!(!inst.mount().join("data").exists());
    inst.lo().grow(640);
    guest
        .send(
            &ctx,
            GuestRequest::ResizeFs {
                device_path: Some(dev.clone()),
                mount_point: Some(mount.clone()),
                online: Some(false),
            },
        )
        .await
        .expect("offline resize_fs");
    guest
        .send(
            &ctx,
            GuestRequest::MountVolume {
                device_path: Some(dev.clone()),
                mount_point: Some(mount.clone()),
            },
        )
        .await
        .expect("mount_volume");
    assert!(inst.mount().join("data/mysql").is_dir());
    guest.restart(&ctx).await.expect("restart");
    let (dbs, _) = guest.list_databases(&ctx, None, None, false).await.unwrap();
    assert!(dbs.iter().any(|d| d.name == "orders"));
    let grown = guest
        .send(&ctx, GuestRequest::GetFilesystemStats { fs_path: None })
        .await
        .unwrap();
    assert!(
        stats(&grown) > before_bytes * 23 / 10 && stats(&grown) > after_bytes,
        "{before} -> {after} -> {grown}"
    );
    assert!(grown["total"].as_f64().unwrap() > before["total"].as_f64().unwrap());

    // Clean up: stop the server, unmount (the guard detaches the device).
    guest
        .send(
            &ctx,
            GuestRequest::StopDb {
                do_not_start_on_reboot: None,
            },
        )
        .await
        .expect("stop_db");
    agent.stop().await;
    VolumeManager::default()
        .unmount(inst.mount(), None)
        .await
        .expect("unmount at the end");
    assert!(
        !inst.config.volume.fstab.exists(),
        "no fstab line for a loop device"
    );
}

/// A device that is not there fails prepare before anything is written: status FAILED, no
/// prepare marker, nothing under the mount point, and the error names the device.
#[tokio::test]
async fn prepare_with_a_missing_device_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mount = dir.path().join("mnt");
    let config = ManagerConfig::new(
        &mount,
        "127.0.0.1".parse().unwrap(),
        3306,
        ServiceUser::current(),
    );
    let mgr = MariaDbManager::new(config.clone());
    let e = mgr
        .prepare(PrepareRequest {
            memory_mb: 512,
            device_path: Some("/dev/trove-test-no-such-volume".into()),
            mount_point: Some(mount.to_str().unwrap().into()),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "volume device /dev/trove-test-no-such-volume does not exist"
    );
    assert_eq!(mgr.status().await, ServiceStatus::Failed);
    assert!(!config.prepare_start_marker().exists());
    assert!(
        !mount.exists(),
        "nothing created before the volume is there"
    );
    // A blank device means a plain directory: the volume step is skipped (prepare then goes
    // on to the server, which is not what this test is about).
    let blank = PrepareRequest {
        device_path: Some("  ".into()),
        ..Default::default()
    };
    assert_eq!(ManagerConfig::requested_device(&blank), None);
    config
        .mount_requested_volume(&blank)
        .await
        .expect("no device, nothing to mount");
    assert!(!mount.exists());
}

/// PostgreSQL (run as the unprivileged service account) on a freshly formatted volume, whose
/// root is root's and holds lost+found: the server starts and its data is on the volume.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_prepared_on_a_volume() {
    if !is_root() {
        return;
    }
    let inst = VolumeInstance::new(5432, 256);
    let mgr = PostgresManager::new(inst.config.clone());
    mgr.prepare(PrepareRequest {
        memory_mb: 512,
        databases: vec![Database::new("orders")],
        device_path: Some(inst.lo().path().into()),
        mount_point: Some("/var/lib/postgresql".into()),
        ..Default::default()
    })
    .await
    .expect("prepare on a volume");
    assert_eq!(mgr.status().await, ServiceStatus::Healthy);
    let m = volume::mount_at(inst.mount()).unwrap().expect("mounted");
    assert_eq!(m.dev, inst.lo().dev_number());
    assert!(inst.mount().join("lost+found").is_dir());
    let pgdata = inst.mount().join("data/pgdata");
    let st = rustix::fs::stat(&pgdata).unwrap();
    assert_eq!(
        (rustix::fs::major(st.st_dev), rustix::fs::minor(st.st_dev)),
        m.dev,
        "PGDATA is on the volume"
    );
    assert_eq!(st.st_uid, inst.config.service_user.uid);
    assert!(pgdata.join("PG_VERSION").exists());
    let dbs = mgr.list_databases(None, None, false).await.unwrap();
    assert!(dbs.items.iter().any(|d| d.name == "orders"), "{dbs:?}");
    let stats = mgr.get_filesystem_stats(None).await.unwrap();
    assert!(stats.total_blocks * stats.block_size <= 256 * MIB);
    mgr.stop().await.expect("stop");
    VolumeManager::default()
        .unmount(inst.mount(), Some(&inst.lo().dev))
        .await
        .expect("unmount");
}

/// The volume options come from `[DEFAULT]`, with Trove's defaults.
#[test]
fn volume_options_from_the_configuration() {
    let base = "[DEFAULT]\nguest_id = g1\ndatastore_manager = mariadb\n";
    let settings = |extra: &str| {
        let text = format!("{base}{extra}");
        let config = trove_config::Config::from_ini_str("guest_info.conf", &text)
            .expect("config")
            .config;
        AgentSettings::from_config(&config).map(|s| s.manager.volume)
    };
    let defaults = settings("").expect("settings");
    assert_eq!(
        defaults,
        VolumeConfig {
            fstab: PathBuf::from("/etc/fstab"),
            ..VolumeConfig::default()
        }
    );
    assert_eq!(defaults.fstype, "ext4");
    assert_eq!(defaults.format_options, "-m 5");
    assert_eq!(defaults.mount_options, "defaults,noatime");
    assert_eq!(defaults.format_timeout, Duration::from_secs(120));
    assert_eq!(defaults.command_timeout, Duration::from_secs(30));
    let custom = settings(
        "volume_fstype = xfs\nformat_options = -K\nmount_options = noatime,nodiratime\n\
         volume_format_timeout = 300\ncommand_process_timeout = 45\n",
    )
    .expect("settings");
    assert_eq!(custom.fstype, "xfs");
    assert_eq!(custom.format_options, "-K");
    assert_eq!(custom.mount_options, "noatime,nodiratime");
    assert_eq!(custom.format_timeout, Duration::from_secs(300));
    assert_eq!(custom.command_timeout, Duration::from_secs(45));
}
