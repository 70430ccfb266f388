//! Tests of the local driver against this host: loopback addresses, sparse volume images on
//! real loop devices, guest agent processes, mounts.
//!
//! Tests that need loop devices (root and /dev/loop-control) print why and return early
//! elsewhere. Every test has its own state directory and its own address range
//! (127.1.<test>.x), so they can run in parallel.

use std::collections::{BTreeMap, HashSet};
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use trove_compute::local::{GuestLauncher, LocalConfig, LocalDriver, ProcessLauncher};
use trove_compute::{
    ComputeDriver, DriverError, FlavorSpec, InjectedFile, NetworkDriver, NetworkRequest,
    ServerRequest, ServerStatus, VolumeDriver, VolumeRequest, VolumeStatus,
};

const GIB: u64 = 1 << 30;

/// A guest agent stand-in: keeps its `--config-dir` arguments in its command line (so the
/// launcher recognises it) and runs a `sleep` child that it stops on SIGTERM.
const AGENT_SCRIPT: &str =
    "#!/bin/sh\ntrap 'kill $child; exit 0' TERM\nsleep 600 &\nchild=$!\nwait\n";

struct Env {
    tmp: tempfile::TempDir,
    driver: Arc<LocalDriver>,
    launcher: Arc<ProcessLauncher>,
}

/// When a test fails half-way, what it made on the host (processes, mounts, loop devices
/// of its own state directory) is removed as the test ends.
impl Drop for Env {
    fn drop(&mut self) {
        let root = self.tmp.path().to_path_buf();
        let root_str = root.to_string_lossy().into_owned();
        let own = std::process::id() as i32;
        let mut pids: Vec<i32> = std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
            .filter(|&pid| pid != own)
            .filter(|&pid| {
                String::from_utf8_lossy(
                    &std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default(),
                )
                .contains(&root_str)
            })
            .collect();
        let children: Vec<i32> = pids.iter().flat_map(|&p| children_now(p)).collect();
        pids.extend(children);
        for pid in pids {
            if let Some(pid) = rustix::process::Pid::from_raw(pid) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
        }
        let mounts: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
            .filter(|m| m.starts_with(&root_str))
            .collect();
        for m in mounts {
            let _ = Command::new("umount").arg("-l").arg(m).status();
        }
        let volumes = self.driver.state_dir().join("volumes");
        for entry in std::fs::read_dir(volumes).into_iter().flatten().flatten() {
            if entry.path().extension().is_some_and(|e| e == "img") {
                let devices = Command::new("losetup").arg("-j").arg(entry.path()).output();
                for line in devices
                    .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                    .unwrap_or_default()
                    .lines()
                {
                    if let Some((device, _)) = line.split_once(':') {
                        let _ = Command::new("losetup").args(["-d", device]).status();
                    }
                }
            }
        }
    }
}

fn children_now(pid: i32) -> Vec<i32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

fn loop_devices_usable(test: &str) -> bool {
    let usable = LocalConfig::default_loop_volumes();
    if !usable {
        eprintln!("skipping {test}: needs root and /dev/loop-control for loop devices");
    }
    usable
}

fn write_script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, body).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn env_with(first: Ipv4Addr, loop_volumes: bool, agent_body: &str) -> Env {
    let tmp = tempfile::tempdir().unwrap();
    let program = write_script(tmp.path(), "fake-guestagent", agent_body);
    let launcher = Arc::new(ProcessLauncher::new(program, tmp.path().join("pids")));
    let mut config = LocalConfig::new(tmp.path().join("state"), launcher.clone());
    config.first_address = first;
    config.loop_volumes = loop_volumes;
    let driver = Arc::new(LocalDriver::new(config).unwrap());
    Env {
        tmp,
        driver,
        launcher,
    }
}

fn env(first: Ipv4Addr, loop_volumes: bool) -> Env {
    env_with(first, loop_volumes, AGENT_SCRIPT)
}

fn net_req(instance_id: &str, tcp_ports: Vec<u16>) -> NetworkRequest {
    NetworkRequest {
        instance_id: instance_id.into(),
        project_id: "p1".into(),
        tcp_ports,
        ..Default::default()
    }
}

fn flavor(id: &str, ram_mb: i64) -> FlavorSpec {
    FlavorSpec {
        id: id.into(),
        name: format!("flavor-{id}"),
        ram_mb,
        vcpus: 1,
        disk_gb: 0,
        ephemeral_gb: 0,
    }
}

async fn server_req(
    driver: &LocalDriver,
    instance_id: &str,
    volume: Option<trove_compute::Volume>,
) -> ServerRequest {
    let ports = driver
        .allocate(&net_req(instance_id, vec![3306]))
        .await
        .unwrap();
    ServerRequest {
        instance_id: instance_id.into(),
        project_id: "p1".into(),
        name: "db1".into(),
        datastore_manager: "mariadb".into(),
        image_id: None,
        flavor: flavor("1", 512),
        ports,
        volume,
        files: vec![
            InjectedFile {
                path: "/etc/trove/conf.d/guest_info.conf".into(),
                content: "[DEFAULT]\nguest_id = x\n".into(),
            },
            InjectedFile {
                path: "/etc/trove/conf.d/trove-guestagent.conf".into(),
                content: "[DEFAULT]\ntransport_url = rabbit://secret@h/\n".into(),
            },
            InjectedFile {
                path: "/etc/pki/ca.pem".into(),
                content: "CA".into(),
            },
        ],
        availability_zone: None,
        metadata: BTreeMap::new(),
    }
}

fn losetup_j(image: &Path) -> String {
    let out = Command::new("losetup")
        .arg("-j")
        .arg(image)
        .output()
        .unwrap();
    assert!(out.status.success(), "losetup -j failed: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn blockdev_size(device: &str) -> u64 {
    let out = Command::new("blockdev")
        .args(["--getsize64", device])
        .output()
        .unwrap();
    assert!(out.status.success(), "blockdev failed: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat[stat.rfind(')').unwrap() + 1..]
                .trim_start()
                .chars()
                .next();
            !matches!(state, Some('Z' | 'X'))
        }
        Err(_) => false,
    }
}

fn agent_pid(launcher: &ProcessLauncher, instance_id: &str) -> i32 {
    std::fs::read_to_string(launcher.pid_dir.join(format!("{instance_id}.pid")))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// The children of `pid` (the agent's `sleep`), waiting a little for the shell to fork.
fn children_of(pid: i32) -> Vec<i32> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let children = children_now(pid);
        if !children.is_empty() || Instant::now() > deadline {
            return children;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn is_mounted(path: &Path) -> bool {
    let path = path.to_string_lossy().replace(' ', "\\040");
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(path.as_str()))
}

fn lease_holders(driver: &LocalDriver) -> BTreeMap<String, String> {
    std::fs::read_dir(driver.state_dir().join("addresses"))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read_to_string(e.path()).unwrap(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_allocations_get_distinct_addresses_even_across_drivers() {
    let a = env(Ipv4Addr::new(127, 1, 10, 1), false);
    // A second driver (as another process would be) on the same state directory.
    let second = Arc::new(
        LocalDriver::new({
            let mut c = LocalConfig::new(a.driver.state_dir(), a.launcher.clone());
            c.first_address = Ipv4Addr::new(127, 1, 10, 1);
            c.loop_volumes = false;
            c
        })
        .unwrap(),
    );
    let mut tasks = Vec::new();
    for i in 0..20 {
        let driver = if i % 2 == 0 {
            a.driver.clone()
        } else {
            second.clone()
        };
        tasks.push(tokio::spawn(async move {
            driver
                .allocate(&net_req(&format!("inst-{i}"), vec![3306]))
                .await
        }));
    }
    let mut addresses = HashSet::new();
    for task in tasks {
        let ports = task.await.unwrap().unwrap();
        assert_eq!(ports.len(), 1);
        let port = &ports[0];
        assert_eq!(port.addresses.len(), 1);
        let address = &port.addresses[0];
        assert_eq!(address.address, port.id);
        assert_eq!(address.kind, "private");
        assert_eq!(address.network, "loopback");
        let ip: Ipv4Addr = address.address.parse().unwrap();
        assert_eq!(ip.octets()[..3], [127, 1, 10], "{ip} outside the range");
        assert_ne!(ip, Ipv4Addr::LOCALHOST);
        addresses.insert(ip);
    }
    assert_eq!(addresses.len(), 20, "addresses shared: {addresses:?}");
    let holders = lease_holders(&a.driver);
    assert_eq!(holders.len(), 20);
    for (ip, holder) in &holders {
        assert!(addresses.contains(&ip.parse().unwrap()));
        assert!(holder.starts_with("inst-"));
    }

    // A retried allocation keeps its address; release frees exactly the instance's lease.
    let held = holders
        .iter()
        .find(|(_, h)| *h == "inst-7")
        .unwrap()
        .0
        .clone();
    let again = a
        .driver
        .allocate(&net_req("inst-7", vec![3306]))
        .await
        .unwrap();
    assert_eq!(again[0].id, held);
    a.driver.release("inst-7").await.unwrap();
    let holders = lease_holders(&a.driver);
    assert_eq!(holders.len(), 19);
    assert!(!holders.contains_key(&held));
    a.driver.release("inst-7").await.unwrap();
    // The 20 leases are 127.1.10.1-20 (each allocation takes the lowest free address), so
    // the freed address is the lowest free one and the next instance gets it.
    let next = a
        .driver
        .allocate(&net_req("inst-new", vec![3306]))
        .await
        .unwrap();
    assert_eq!(next[0].id, held);
}

#[tokio::test]
async fn an_address_whose_port_is_taken_is_skipped() {
    let first = Ipv4Addr::new(127, 1, 20, 1);
    let e = env(first, false);
    let listener = TcpListener::bind((first, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    let ports = e.driver.allocate(&net_req("i1", vec![port])).await.unwrap();
    assert_eq!(ports[0].id, "127.1.20.2");
    assert!(!e.driver.state_dir().join("addresses/127.1.20.1").exists());
    // Without that port, the address is fine.
    let ports = e
        .driver
        .allocate(&net_req("i2", vec![port + 1]))
        .await
        .unwrap();
    assert_eq!(ports[0].id, "127.1.20.1");
    drop(listener);
}

#[tokio::test]
async fn bad_configuration_and_ids_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let launcher: Arc<dyn GuestLauncher> =
        Arc::new(ProcessLauncher::new("/bin/true", tmp.path().join("pids")));
    for first in [Ipv4Addr::LOCALHOST, Ipv4Addr::new(10, 0, 0, 1)] {
        let mut c = LocalConfig::new(tmp.path(), launcher.clone());
        c.first_address = first;
        assert!(matches!(LocalDriver::new(c), Err(DriverError::Invalid(_))));
    }
    let e = env(Ipv4Addr::new(127, 1, 21, 1), false);
    assert!(matches!(
        e.driver.allocate(&net_req("../x", vec![])).await,
        Err(DriverError::Invalid(_))
    ));
    assert!(matches!(
        e.driver.get_server("a/b").await,
        Err(DriverError::Invalid(_))
    ));
    assert!(e.driver.get_server("nothing").await.unwrap().is_none());
    assert!(e.driver.get_volume("nothing").await.unwrap().is_none());
    e.driver.delete_server("nothing").await.unwrap();
    // What a create that died right after making the directory leaves is found and removed.
    let dir = e.driver.instance_dir("half-made");
    std::fs::create_dir_all(dir.join("conf.d")).unwrap();
    let found = e.driver.find_server("half-made").await.unwrap().unwrap();
    assert_eq!(found.status, ServerStatus::Error);
    e.driver.delete_server("half-made").await.unwrap();
    assert!(!dir.exists());
    assert!(e.driver.find_server("half-made").await.unwrap().is_none());
    e.driver.delete_volume("nothing").await.unwrap();
    assert!(matches!(
        e.driver.reboot_server("nothing").await,
        Err(DriverError::NotFound { kind: "server", .. })
    ));
}

#[tokio::test]
async fn volumes_are_sparse_images_that_grow_and_never_shrink() {
    let e = env(Ipv4Addr::new(127, 1, 22, 1), false);
    let req = VolumeRequest {
        instance_id: "i1".into(),
        size_gb: 2,
        volume_type: None,
        availability_zone: None,
    };
    let volume = e.driver.create_volume(&req).await.unwrap();
    assert_eq!(volume.size_gb, 2);
    assert_eq!(volume.status, VolumeStatus::Available);
    let image = e.driver.volume_image(&volume.id);
    let meta = std::fs::metadata(&image).unwrap();
    assert_eq!(meta.len(), 2 * GIB);
    assert!(meta.blocks() * 512 < (1 << 20), "image is not sparse");
    assert_eq!(
        e.driver.get_volume(&volume.id).await.unwrap(),
        Some(volume.clone())
    );
    assert_eq!(
        e.driver.find_volumes("i1").await.unwrap(),
        vec![volume.clone()]
    );
    assert!(e.driver.find_volumes("i2").await.unwrap().is_empty());

    e.driver.extend_volume(&volume.id, 3).await.unwrap();
    assert_eq!(std::fs::metadata(&image).unwrap().len(), 3 * GIB);
    assert!(matches!(
        e.driver.extend_volume(&volume.id, 1).await,
        Err(DriverError::Invalid(_))
    ));
    assert_eq!(std::fs::metadata(&image).unwrap().len(), 3 * GIB);
    assert_eq!(
        e.driver
            .get_volume(&volume.id)
            .await
            .unwrap()
            .unwrap()
            .size_gb,
        3
    );
    assert!(matches!(
        e.driver.extend_volume("missing", 5).await,
        Err(DriverError::NotFound { kind: "volume", .. })
    ));
    assert!(matches!(
        e.driver
            .create_volume(&VolumeRequest {
                size_gb: 0,
                ..req.clone()
            })
            .await,
        Err(DriverError::Invalid(_))
    ));

    e.driver.delete_volume(&volume.id).await.unwrap();
    assert!(!image.exists());
    assert!(e.driver.get_volume(&volume.id).await.unwrap().is_none());
    e.driver.delete_volume(&volume.id).await.unwrap();
    assert_eq!(
        std::fs::read_dir(e.driver.state_dir().join("volumes"))
            .unwrap()
            .count(),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_lifecycle_with_a_loop_device() {
    if !loop_devices_usable("server_lifecycle_with_a_loop_device") {
        return;
    }
    let e = env(Ipv4Addr::new(127, 1, 30, 1), true);
    let d = &e.driver;
    let id = "0b9f7a4e-0000-4000-8000-000000000030";
    let volume = d
        .create_volume(&VolumeRequest {
            instance_id: id.into(),
            size_gb: 1,
            volume_type: None,
            availability_zone: None,
        })
        .await
        .unwrap();
    let image = d.volume_image(&volume.id);
    let req = server_req(d, id, Some(volume.clone())).await;
    let address = req.ports[0].id.clone();
    assert_eq!(address, "127.1.30.1");

    let server = d.create_server(&req).await.unwrap();
    let inst = d.instance_dir(id);
    assert_eq!(server.id, id);
    assert_eq!(server.status, ServerStatus::Active);
    assert_eq!(server.addresses, req.ports[0].addresses);
    assert_eq!(server.flavor_id, "1");
    let guest_volume = server.volume.clone().expect("a loop-attached volume");
    assert_eq!(
        guest_volume.mount_point,
        inst.join("data").display().to_string()
    );
    let device = guest_volume.device_path.clone();
    assert!(device.starts_with("/dev/loop"), "{device}");
    assert!(Path::new(&device).exists());
    assert!(losetup_j(&image).starts_with(&format!("{device}:")));
    assert_eq!(blockdev_size(&device), GIB);
    assert_eq!(
        d.get_volume(&volume.id).await.unwrap().unwrap().status,
        VolumeStatus::InUse
    );

    // The files the guest agent reads.
    let conf = inst.join("conf.d/trove-guestagent.conf");
    assert!(std::fs::read_to_string(&conf)
        .unwrap()
        .contains("transport_url"));
    assert_eq!(
        std::fs::metadata(&conf).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(inst.join("conf.d/guest_info.conf").exists());
    assert_eq!(
        std::fs::read_to_string(inst.join("root/etc/pki/ca.pem")).unwrap(),
        "CA"
    );
    assert_eq!(
        std::fs::read_to_string(inst.join("host.d/local.conf")).unwrap(),
        format!(
            "[DEFAULT]\nbind_host = {address}\n\n[mariadb]\nmount_point = {}\n",
            inst.join("data").display()
        )
    );
    assert_eq!(
        std::fs::metadata(inst.join("data"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o755
    );

    // The agent runs with both config dirs.
    assert!(e.launcher.is_running(id).await);
    let agent = agent_pid(&e.launcher, id);
    let cmdline = std::fs::read(format!("/proc/{agent}/cmdline")).unwrap();
    let args: Vec<String> = cmdline
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    assert_eq!(
        args[args.len() - 5..],
        [
            "--config-dir".to_string(),
            inst.join("conf.d").display().to_string(),
            "--config-dir".to_string(),
            inst.join("host.d").display().to_string(),
            String::new(),
        ]
    );
    let sleeps = children_of(agent);
    assert!(!sleeps.is_empty(), "the fake agent has no sleep child");
    assert_eq!(d.get_server(id).await.unwrap(), Some(server.clone()));
    assert_eq!(d.find_server(id).await.unwrap(), Some(server.clone()));
    // A restarted taskmanager (a new driver on the same state) finds it.
    let restarted = LocalDriver::new({
        let mut c = LocalConfig::new(d.state_dir(), e.launcher.clone());
        c.first_address = Ipv4Addr::new(127, 1, 30, 1);
        c.loop_volumes = true;
        c
    })
    .unwrap();
    assert_eq!(
        restarted.get_server(id).await.unwrap(),
        Some(server.clone())
    );

    // A second create for the instance is refused and leaves the first alone.
    assert!(matches!(
        d.create_server(&req).await,
        Err(DriverError::Invalid(_))
    ));
    assert!(e.launcher.is_running(id).await);

    // Growing the volume grows the loop device.
    d.extend_volume(&volume.id, 2).await.unwrap();
    assert_eq!(std::fs::metadata(&image).unwrap().len(), 2 * GIB);
    assert_eq!(blockdev_size(&device), 2 * GIB);

    // Reboot: a new agent process, the same volume.
    d.reboot_server(id).await.unwrap();
    assert!(!alive(agent));
    for pid in &sleeps {
        assert!(!alive(*pid), "sleep {pid} survived the reboot");
    }
    let agent = agent_pid(&e.launcher, id);
    assert!(alive(agent));
    assert!(losetup_j(&image).starts_with(&format!("{device}:")));
    assert_eq!(
        d.get_server(id).await.unwrap().unwrap().status,
        ServerStatus::Active
    );
    let sleeps = children_of(agent);

    // Stopped agent: SHUTOFF.
    e.launcher.stop(id).await.unwrap();
    assert!(!alive(agent));
    assert_eq!(
        d.get_server(id).await.unwrap().unwrap().status,
        ServerStatus::Shutoff
    );
    d.reboot_server(id).await.unwrap();
    let agent = agent_pid(&e.launcher, id);
    let sleeps: Vec<i32> = sleeps.into_iter().chain(children_of(agent)).collect();

    // Delete: no process, no loop device, no directory; the volume image stays.
    d.delete_server(id).await.unwrap();
    assert!(!alive(agent));
    for pid in &sleeps {
        assert!(!alive(*pid), "sleep {pid} survived the delete");
    }
    assert!(!e.launcher.is_running(id).await);
    assert_eq!(losetup_j(&image), "");
    assert!(!is_mounted(&inst.join("data")));
    assert!(!inst.exists());
    assert!(d.get_server(id).await.unwrap().is_none());
    assert!(image.exists());
    assert_eq!(
        d.get_volume(&volume.id).await.unwrap().unwrap().status,
        VolumeStatus::Available
    );
    d.delete_server(id).await.unwrap();

    d.delete_volume(&volume.id).await.unwrap();
    assert!(!image.exists());
    d.release(id).await.unwrap();
    assert!(lease_holders(d).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_kills_database_processes_unmounts_and_detaches() {
    if !loop_devices_usable("delete_kills_database_processes_unmounts_and_detaches") {
        return;
    }
    let e = env(Ipv4Addr::new(127, 1, 40, 1), true);
    let d = &e.driver;
    let id = "0b9f7a4e-0000-4000-8000-000000000040";
    let volume = d
        .create_volume(&VolumeRequest {
            instance_id: id.into(),
            size_gb: 1,
            volume_type: None,
            availability_zone: None,
        })
        .await
        .unwrap();
    let image = d.volume_image(&volume.id);
    let req = server_req(d, id, Some(volume.clone())).await;
    let server = d.create_server(&req).await.unwrap();
    let device = server.volume.unwrap().device_path;
    let data = d.instance_dir(id).join("data");

    // What the guest agent would do: format, mount, start a database on the data.
    let mkfs = Command::new("mkfs.ext4")
        .args(["-q", "-F", &device])
        .output()
        .unwrap();
    assert!(mkfs.status.success(), "mkfs.ext4: {mkfs:?}");
    let mount = Command::new("mount")
        .arg(&device)
        .arg(&data)
        .output()
        .unwrap();
    assert!(mount.status.success(), "mount: {mount:?}");
    assert!(is_mounted(&data));
    let log = data.join("db.log");
    std::fs::write(&log, "started\n").unwrap();
    // A "database" holding a file open on the volume, its path in its command line.
    let mut db = Command::new("tail")
        .arg("-f")
        .arg(&log)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();

    let result = d.delete_server(id).await;
    // The driver must have ended it; otherwise end it here so the test does not hang.
    let db_stopped = !alive(db.id() as i32);
    if !db_stopped {
        db.kill().unwrap();
    }
    let db_status = db.wait().unwrap();
    result.unwrap();
    assert!(db_stopped, "the database process survived the delete");
    assert!(
        !db_status.success(),
        "the database process was not killed: {db_status}"
    );
    assert!(!is_mounted(&data));
    assert_eq!(losetup_j(&image), "");
    assert!(!d.instance_dir(id).exists());
    d.delete_volume(&volume.id).await.unwrap();
    assert!(!image.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_volume_detaches_a_loop_device_left_behind() {
    if !loop_devices_usable("delete_volume_detaches_a_loop_device_left_behind") {
        return;
    }
    let e = env(Ipv4Addr::new(127, 1, 41, 1), true);
    let volume = e
        .driver
        .create_volume(&VolumeRequest {
            instance_id: "i41".into(),
            size_gb: 1,
            volume_type: None,
            availability_zone: None,
        })
        .await
        .unwrap();
    let image = e.driver.volume_image(&volume.id);
    let out = Command::new("losetup")
        .args(["--find", "--show"])
        .arg(&image)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        e.driver
            .get_volume(&volume.id)
            .await
            .unwrap()
            .unwrap()
            .status,
        VolumeStatus::InUse
    );
    e.driver.delete_volume(&volume.id).await.unwrap();
    assert!(!image.exists());
    let device = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let listed = Command::new("losetup").arg(&device).output().unwrap();
    let still = String::from_utf8_lossy(&listed.stdout);
    assert!(
        !still.contains(&volume.id),
        "{device} still attached: {still}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_create_leaves_nothing() {
    let loops = LocalConfig::default_loop_volumes();
    let e = env_with(
        Ipv4Addr::new(127, 1, 42, 1),
        loops,
        "#!/bin/sh\necho 'no transport_url' >&2\nexit 3\n",
    );
    let d = &e.driver;
    let id = "0b9f7a4e-0000-4000-8000-000000000042";
    let volume = d
        .create_volume(&VolumeRequest {
            instance_id: id.into(),
            size_gb: 1,
            volume_type: None,
            availability_zone: None,
        })
        .await
        .unwrap();
    let req = server_req(d, id, Some(volume.clone())).await;
    let err = d.create_server(&req).await.unwrap_err();
    assert!(
        err.to_string().contains("no transport_url"),
        "error without the agent's output: {err}"
    );
    assert!(!d.instance_dir(id).exists());
    assert!(d.get_server(id).await.unwrap().is_none());
    if loops {
        assert_eq!(losetup_j(&d.volume_image(&volume.id)), "");
    }
    // A request without an address is refused before anything is made.
    let mut no_port = req.clone();
    no_port.ports.clear();
    assert!(matches!(
        d.create_server(&no_port).await,
        Err(DriverError::Invalid(_))
    ));
    assert!(!d.instance_dir(id).exists());
    d.delete_volume(&volume.id).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_loop_devices_the_guest_uses_a_directory_and_resizes_are_recorded() {
    let e = env(Ipv4Addr::new(127, 1, 50, 1), false);
    let d = &e.driver;
    let id = "0b9f7a4e-0000-4000-8000-000000000050";
    let volume = d
        .create_volume(&VolumeRequest {
            instance_id: id.into(),
            size_gb: 1,
            volume_type: None,
            availability_zone: None,
        })
        .await
        .unwrap();
    let req = server_req(d, id, Some(volume.clone())).await;
    let server = d.create_server(&req).await.unwrap();
    assert_eq!(server.volume, None);
    assert!(d.instance_dir(id).join("data").is_dir());
    assert_eq!(
        d.get_volume(&volume.id).await.unwrap().unwrap().status,
        VolumeStatus::Available
    );

    d.resize_server(id, &flavor("2", 1024)).await.unwrap();
    let s = d.get_server(id).await.unwrap().unwrap();
    assert_eq!(
        (s.status, s.flavor_id.as_str()),
        (ServerStatus::VerifyResize, "2")
    );
    assert!(matches!(
        d.resize_server(id, &flavor("3", 2048)).await,
        Err(DriverError::Invalid(_))
    ));
    d.revert_resize(id).await.unwrap();
    let s = d.get_server(id).await.unwrap().unwrap();
    assert_eq!(
        (s.status, s.flavor_id.as_str()),
        (ServerStatus::Active, "1")
    );
    assert!(matches!(
        d.confirm_resize(id).await,
        Err(DriverError::Invalid(_))
    ));
    assert!(matches!(
        d.revert_resize(id).await,
        Err(DriverError::Invalid(_))
    ));

    d.resize_server(id, &flavor("3", 2048)).await.unwrap();
    d.confirm_resize(id).await.unwrap();
    let s = d.get_server(id).await.unwrap().unwrap();
    assert_eq!(
        (s.status, s.flavor_id.as_str()),
        (ServerStatus::Active, "3")
    );
    // Still the same agent: a resize restarts nothing on this host.
    assert!(e.launcher.is_running(id).await);

    let agent = agent_pid(&e.launcher, id);
    d.delete_server(id).await.unwrap();
    assert!(!alive(agent));
    assert!(!d.instance_dir(id).exists());
    d.delete_volume(&volume.id).await.unwrap();
    d.release(id).await.unwrap();
}
