//! Shared end-to-end helpers: the real `openstack database` CLI (python-troveclient 8.11)
//! against a running API, real database clients against the instances, and checks that a
//! deleted instance left nothing behind on the host.

#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The project the tests act in (noauth takes it from the URL).
pub const PROJECT: &str = "e2e";

/// The `openstack` command of the client virtualenv.
pub fn openstack_bin() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let bin = root.join("target/venvs/troveclient/bin/openstack");
    assert!(
        bin.exists(),
        "{} is missing: run scripts/client-venv.sh (scripts/test.sh does)",
        bin.display()
    );
    bin
}

/// A tenant with the CLI, against the API at `base` (`http://127.0.0.1:port`).
pub struct Tenant {
    pub base: String,
    pub project: String,
    bin: PathBuf,
    http: reqwest::Client,
}

impl Tenant {
    pub fn new(base: &str, project: &str) -> Self {
        Tenant {
            base: base.to_owned(),
            project: project.to_owned(),
            bin: openstack_bin(),
            http: reqwest::Client::new(),
        }
    }

    /// `openstack --os-auth-type none --os-endpoint ... ARGS`: (success, stdout+stderr).
    pub async fn osc(&self, args: &[&str]) -> (bool, String) {
        let endpoint = format!("{}/v1.0/{}", self.base, self.project);
        let out = tokio::process::Command::new(&self.bin)
            .args(["--os-auth-type", "none", "--os-endpoint", &endpoint])
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .output()
            .await
            .expect("run openstack");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    /// Like [`Tenant::osc`], which must succeed; parses `-f json` output.
    pub async fn osc_json(&self, args: &[&str]) -> Value {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["-f", "json"]);
        let (ok, out) = self.osc(&all).await;
        assert!(ok, "openstack {}: {out}", args.join(" "));
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
    }

    /// Like [`Tenant::osc`], which must succeed.
    pub async fn osc_ok(&self, args: &[&str]) -> String {
        let (ok, out) = self.osc(args).await;
        assert!(ok, "openstack {}: {out}", args.join(" "));
        out
    }

    /// `GET /v1.0/<project>/<path>` as JSON (status, body).
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}/v1.0/{}/{path}", self.base, self.project))
            .send()
            .await
            .expect("GET");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// The instance as the API shows it (`None`: 404).
    pub async fn instance(&self, id: &str) -> Option<Value> {
        let (status, body) = self.get(&format!("instances/{id}")).await;
        match status {
            200 => Some(body["instance"].clone()),
            404 => None,
            s => panic!("GET instance {id}: {s} {body}"),
        }
    }

    /// Waits until the instance's status is `want` (panics on ERROR or after `timeout`).
    pub async fn wait_status(&self, id: &str, want: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let inst = self.instance(id).await.expect("instance exists");
            let status = inst["status"].as_str().unwrap_or("").to_owned();
            if status == want {
                return inst;
            }
            assert!(
                status != "ERROR" || want == "ERROR",
                "instance {id} went to ERROR: {inst}"
            );
            assert!(
                Instant::now() < deadline,
                "instance {id} not {want} after {timeout:?}: {inst}"
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// Waits until the instance is gone (404).
    pub async fn wait_gone(&self, id: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.instance(id).await.is_some() {
            assert!(
                Instant::now() < deadline,
                "instance {id} still there after {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
}

/// The instance's first address.
pub fn ip_of(inst: &Value) -> String {
    inst["ip"][0]
        .as_str()
        .unwrap_or_else(|| panic!("no ip in {inst}"))
        .to_owned()
}

/// Runs the real `mariadb` client against `host:3306` as `user`; returns stdout.
pub async fn mariadb(
    host: &str,
    user: &str,
    password: &str,
    db: &str,
    sql: &str,
) -> Result<String, String> {
    let out = tokio::process::Command::new("mariadb")
        .args([
            "-h",
            host,
            "-P",
            "3306",
            "-u",
            user,
            "--batch",
            "--skip-column-names",
        ])
        .arg(format!("-p{password}"))
        .args(if db.is_empty() { vec![] } else { vec![db] })
        .args(["-e", sql])
        .output()
        .await
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// Runs the real `psql` client against `host:5432` as `user`; returns stdout.
pub async fn psql(
    host: &str,
    user: &str,
    password: &str,
    db: &str,
    sql: &str,
) -> Result<String, String> {
    let out = tokio::process::Command::new("psql")
        .args([
            "-h",
            host,
            "-p",
            "5432",
            "-U",
            user,
            "-d",
            db,
            "-tA",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            sql,
        ])
        .env("PGPASSWORD", password)
        .env("PGCONNECT_TIMEOUT", "5")
        .output()
        .await
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// Processes whose command line mentions `needle`.
pub fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return found;
    };
    for e in dir.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|s| s.chars().all(|c| c.is_ascii_digit()))
        else {
            continue;
        };
        if let Ok(raw) = std::fs::read(format!("/proc/{pid}/cmdline")) {
            let cmd = String::from_utf8_lossy(&raw).replace('\0', " ");
            if cmd.contains(needle) {
                found.push(format!("{pid}: {cmd}"));
            }
        }
    }
    found
}

/// Mounts whose mount point is under `dir`.
pub fn mounts_under(dir: &Path) -> Vec<String> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let d = dir.display().to_string();
    text.lines()
        .filter(|l| {
            l.split_whitespace()
                .nth(4)
                .is_some_and(|m| m.starts_with(&d))
        })
        .map(str::to_owned)
        .collect()
}

/// Loop devices backed by files under `dir`.
pub fn loops_under(dir: &Path) -> Vec<String> {
    let Ok(out) = std::process::Command::new("losetup")
        .args(["-l", "-n", "-O", "NAME,BACK-FILE"])
        .output()
    else {
        return Vec::new();
    };
    let d = dir.display().to_string();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(&d))
        .map(str::to_owned)
        .collect()
}

/// Asserts that nothing of instance `id` is left under the local driver's `state` dir.
pub fn assert_nothing_left(state: &Path, id: &str, ip: &str) {
    assert!(
        processes_mentioning(id).is_empty(),
        "processes left: {:?}",
        processes_mentioning(id)
    );
    assert!(
        mounts_under(&state.join("instances").join(id)).is_empty(),
        "mounts left"
    );
    assert!(
        loops_under(state).iter().all(|l| !l.contains(id)),
        "loop devices left: {:?}",
        loops_under(state)
    );
    assert!(
        !state.join("instances").join(id).exists(),
        "instance dir left"
    );
    assert!(
        !state.join("addresses").join(ip).exists(),
        "address lease left"
    );
    let volumes: Vec<_> = std::fs::read_dir(state.join("volumes"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    for v in volumes {
        let meta = std::fs::read_to_string(&v).unwrap_or_default();
        assert!(!meta.contains(id), "volume left: {}", v.display());
    }
}

/// Whether this process runs as root (loop devices, mounts, PostgreSQL's service user).
pub fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Best-effort removal of whatever a failed test left under `dir`: processes mentioning
/// it, mounts under it, loop devices backed by files under it. Runs when dropped, so a
/// panicking test does not leave database servers and loop devices behind.
pub struct HostCleanup(pub PathBuf);

impl Drop for HostCleanup {
    fn drop(&mut self) {
        let d = self.0.display().to_string();
        let pids = |sig: &str| {
            for p in processes_mentioning(&d) {
                if let Some(pid) = p.split(':').next() {
                    if pid != std::process::id().to_string() {
                        let _ = std::process::Command::new("kill").args([sig, pid]).status();
                    }
                }
            }
        };
        pids("-TERM");
        let deadline = Instant::now() + Duration::from_secs(15);
        while !processes_mentioning(&d).is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(200));
        }
        pids("-KILL");
        let mut mounts: Vec<String> = mounts_under(&self.0)
            .iter()
            .filter_map(|l| l.split_whitespace().nth(4).map(str::to_owned))
            .collect();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in mounts {
            let _ = std::process::Command::new("umount")
                .args(["-l", &m])
                .status();
        }
        for l in loops_under(&self.0) {
            if let Some(dev) = l.split_whitespace().next() {
                let _ = std::process::Command::new("losetup")
                    .args(["-d", dev])
                    .status();
            }
        }
    }
}

pub mod aio;
pub mod cluster;

/// What is left on the host of instance `id` under the local state `state`: processes
/// mentioning it, mounts and loop devices, its directory, address leases naming it, volumes.
pub fn leftovers(state: &Path, id: &str) -> Vec<String> {
    let mut left: Vec<String> = processes_mentioning(id)
        .into_iter()
        .map(|p| format!("process {p}"))
        .collect();
    left.extend(
        mounts_under(&state.join("instances").join(id))
            .into_iter()
            .map(|m| format!("mount {m}")),
    );
    left.extend(
        loops_under(state)
            .into_iter()
            .filter(|l| l.contains(id))
            .map(|l| format!("loop device {l}")),
    );
    if state.join("instances").join(id).exists() {
        left.push("instance directory".into());
    }
    for dir in ["addresses", "volumes"] {
        if let Ok(d) = std::fs::read_dir(state.join(dir)) {
            for e in d.flatten() {
                if std::fs::read_to_string(e.path()).is_ok_and(|s| s.contains(id)) {
                    left.push(format!("{dir}: {}", e.path().display()));
                }
            }
        }
    }
    left
}

/// Asserts that nothing of instance `id` is left (see [`leftovers`]), also when its
/// address is not known (a failed create no longer shows it).
pub fn assert_no_trace(state: &Path, id: &str) {
    let left = leftovers(state, id);
    assert!(left.is_empty(), "left of instance {id}: {left:#?}");
}

/// Waits up to `timeout` until nothing of instance `id` is left (a failed create shows
/// ERROR first and then removes its resources); panics with what is left.
pub async fn wait_no_trace(state: &Path, id: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let left = leftovers(state, id);
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "left of instance {id} after {timeout:?}: {left:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `in_use` of quota `resource` of project `project`, as the management API shows it.
pub async fn quota_in_use(t: &Tenant, project: &str, resource: &str) -> i64 {
    let (s, body) = t.get(&format!("mgmt/quotas/{project}")).await;
    assert_eq!(s, 200, "{body}");
    body["quotas"]
        .as_array()
        .and_then(|q| q.iter().find(|r| r["resource"] == resource))
        .and_then(|r| r["in_use"].as_i64())
        .unwrap_or_else(|| panic!("no {resource} in {body}"))
}

/// Waits until the instance leaves BUILD; returns it (panics after `timeout`).
pub async fn wait_not_building(t: &Tenant, id: &str, timeout: Duration) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let inst = t.instance(id).await.expect("instance exists");
        if inst["status"] != "BUILD" {
            return inst;
        }
        assert!(
            Instant::now() < deadline,
            "instance {id} still BUILD after {timeout:?}: {inst}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}
