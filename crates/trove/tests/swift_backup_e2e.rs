//! Backups into the tenant's real Swift, end to end: `trove-api` with `auth_strategy =
//! keystone`, `trove-taskmanager` and `trove-conductor` as processes (the distributed
//! harness), guests running real `mariadbd` / `postgres` servers, a real Keystone and a real
//! Swift (`scripts/swift-test-stack.sh`, shared by the tests of a run), driven by the real
//! legacy `trove` CLI of python-troveclient 8.11 logged in as the stack's `demo` user.
//!
//! For each datastore: rows (and 2 MB of random bytes) are written, a full backup taken
//! (`trove backup-create`), more rows (1.5 MB), an incremental backup (`--incremental`), more
//! rows, a second incremental (`--parent`); `trove backup-list` and `backup-show` show them;
//! the objects are checked in the demo project's Swift account with the demo user's token
//! (the guests' `backup_segment_max_size` is 1 MiB, so larger backups are Static Large
//! Objects: manifest, segment names and sizes, the incrementals' parent metadata); each
//! backup is restored into a new instance (`trove create ... --backup`) that must show the
//! rows of its time; the backups are deleted child first (`trove backup-delete`) and their
//! objects and segments must be gone from Swift; nothing may have gone to the local backup
//! directory; the instances are deleted and leave nothing on the host.
//!
//! The API is found through the Keystone catalog: each test registers a `database`
//! endpoint for its API in a region of its own (replacing that region's endpoint of an
//! earlier run) and removes it at the end.
//!
//! Needs root (loop devices, mounts, PostgreSQL's service user), the client virtualenv
//! (`scripts/client-venv.sh`), RabbitMQ and MariaDB (`scripts/ensure-services.sh`); the
//! project's test command provides them. The Keystone + Swift stack is started here when
//! it does not run yet.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::cluster::{Cluster, Options};
use common::{assert_no_trace, ip_of, is_root, mariadb, psql};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const ACTIVE_TIMEOUT: Duration = Duration::from_secs(300);
const BACKUP_TIMEOUT: Duration = Duration::from_secs(240);
const GONE_TIMEOUT: Duration = Duration::from_secs(120);
/// The container backups go to when the request names none (`backup_swift_container`).
const CONTAINER: &str = "database_backups";
/// `[DEFAULT] backup_segment_max_size` of the guests: backups larger than this are stored
/// as a Static Large Object with segments of this size.
const SEGMENT: u64 = 1024 * 1024;
const USER: &str = "app";
const PASSWORD: &str = "Secret123";

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

// ---------------------------------------------------------------------------------------
// The Keystone + Swift stack.

/// What `scripts/swift-test-stack.sh` reports, plus the admin credentials of its Keystone.
struct Stack {
    auth_url: String,
    demo_password: String,
    demo_project_id: String,
    storage_url: String,
    admin: BTreeMap<String, String>,
}

/// Starts (or reuses) the shared stack, once per test process.
fn stack() -> &'static Stack {
    static STACK: OnceLock<Stack> = OnceLock::new();
    STACK.get_or_init(|| {
        let out = std::process::Command::new("bash")
            .arg(repo_root().join("scripts/swift-test-stack.sh"))
            .stdin(std::process::Stdio::null())
            .output()
            .expect("cannot run bash scripts/swift-test-stack.sh");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "scripts/swift-test-stack.sh failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let env_path = PathBuf::from(stdout.lines().last().expect("env file path").trim());
        let text = std::fs::read_to_string(&env_path).expect("read the stack's env file");
        let env: BTreeMap<&str, &str> = text.lines().filter_map(|l| l.split_once('=')).collect();
        let openrc = env_path
            .parent()
            .expect("the env file's directory")
            .join("keystone/admin-openrc");
        let admin = std::fs::read_to_string(&openrc)
            .unwrap_or_else(|e| panic!("{}: {e}", openrc.display()))
            .lines()
            .filter_map(|l| l.trim().strip_prefix("export "))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| {
                (
                    k.to_owned(),
                    v.trim_matches('"').trim_matches('\'').to_owned(),
                )
            })
            .collect();
        Stack {
            auth_url: env["OS_AUTH_URL"].trim_end_matches('/').to_owned(),
            demo_password: env["DEMO_PASSWORD"].to_owned(),
            demo_project_id: env["DEMO_PROJECT_ID"].to_owned(),
            storage_url: env["DEMO_STORAGE_URL"].to_owned(),
            admin,
        }
    })
}

/// A project-scoped token of `user` (domain Default): (token, token document).
async fn login(
    http: &reqwest::Client,
    auth_url: &str,
    user: &str,
    password: &str,
    project: &str,
) -> (String, Value) {
    let body = json!({"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": user, "domain": {"name": "Default"}, "password": password}}},
        "scope": {"project": {"name": project, "domain": {"name": "Default"}}}}});
    let resp = http
        .post(format!("{auth_url}/auth/tokens"))
        .json(&body)
        .send()
        .await
        .expect("POST /v3/auth/tokens");
    assert_eq!(resp.status(), StatusCode::CREATED, "login of {user}");
    let token = resp.headers()["x-subject-token"]
        .to_str()
        .unwrap()
        .to_owned();
    (token, resp.json().await.unwrap())
}

/// A `database` endpoint of the stack's Keystone, pointing at this test's API, removed by
/// [`Endpoint::remove`].
struct Endpoint {
    http: reqwest::Client,
    auth_url: String,
    admin_token: String,
    id: String,
}

impl Endpoint {
    /// Registers `http://127.0.0.1:<port>/v1.0/%(tenant_id)s` as the public endpoint of the
    /// `database` service in `region` (created when missing); endpoints of that service an
    /// earlier run left in `region` are removed first.
    async fn register(region: &str, port: u16) -> Endpoint {
        let s = stack();
        let http = reqwest::Client::new();
        let a = |k: &str| {
            s.admin
                .get(k)
                .cloned()
                .unwrap_or_else(|| panic!("{k} in admin-openrc"))
        };
        let (admin_token, _) = login(
            &http,
            &s.auth_url,
            &a("OS_USERNAME"),
            &a("OS_PASSWORD"),
            &a("OS_PROJECT_NAME"),
        )
        .await;
        let ks = |method: Method, path: &str| {
            http.request(method, format!("{}/{path}", s.auth_url))
                .header("X-Auth-Token", &admin_token)
        };
        let doc: Value = ks(Method::GET, "services?type=database")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let service = match doc["services"].as_array().and_then(|v| v.first()) {
            Some(svc) => svc["id"].as_str().unwrap().to_owned(),
            None => {
                let r = ks(Method::POST, "services")
                    .json(&json!({"service": {"type": "database", "name": "trove"}}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(
                    r.status(),
                    StatusCode::CREATED,
                    "create the database service"
                );
                let v: Value = r.json().await.unwrap();
                v["service"]["id"].as_str().unwrap().to_owned()
            }
        };
        let r = ks(Method::GET, &format!("regions/{region}"))
            .send()
            .await
            .unwrap();
        if r.status() == StatusCode::NOT_FOUND {
            let r = ks(Method::POST, "regions")
                .json(&json!({"region": {"id": region, "description": "Trove-rs Swift backup tests"}}))
                .send()
                .await
                .unwrap();
            assert!(
                r.status() == StatusCode::CREATED || r.status() == StatusCode::CONFLICT,
                "create region {region}: {}",
                r.status()
            );
        }
        let doc: Value = ks(
            Method::GET,
            &format!("endpoints?service_id={service}&region_id={region}"),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
        for e in doc["endpoints"].as_array().into_iter().flatten() {
            let id = e["id"].as_str().unwrap();
            ks(Method::DELETE, &format!("endpoints/{id}"))
                .send()
                .await
                .unwrap();
        }
        let r = ks(Method::POST, "endpoints")
            .json(&json!({"endpoint": {
                "service_id": service, "interface": "public", "region_id": region,
                "url": format!("http://127.0.0.1:{port}/v1.0/%(tenant_id)s")}}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED, "create the endpoint");
        let v: Value = r.json().await.unwrap();
        let id = v["endpoint"]["id"].as_str().unwrap().to_owned();
        Endpoint {
            http,
            auth_url: s.auth_url.clone(),
            admin_token,
            id,
        }
    }

    async fn remove(mut self) {
        let r = self
            .http
            .delete(format!("{}/endpoints/{}", self.auth_url, self.id))
            .header("X-Auth-Token", &self.admin_token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NO_CONTENT, "remove the endpoint");
        self.id.clear();
    }
}

impl Drop for Endpoint {
    /// A test that failed before [`Endpoint::remove`] still removes its endpoint.
    fn drop(&mut self) {
        if !self.id.is_empty() {
            curl(
                &self.admin_token,
                "DELETE",
                &format!("{}/endpoints/{}", self.auth_url, self.id),
            );
        }
    }
}

/// `curl -s -X METHOD URL` with `token`; its output (best effort, for clean-ups in `Drop`).
fn curl(token: &str, method: &str, url: &str) -> String {
    std::process::Command::new("curl")
        .args(["-s", "--max-time", "30", "-X", method, "-H"])
        .arg(format!("X-Auth-Token: {token}"))
        .arg(url)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// The Swift objects of this test's backups (`<id>.*` and the segments `<id>_*`), removed
/// when dropped, so that a failed test leaves nothing in the shared account.
struct SwiftCleanup {
    storage_url: String,
    token: String,
    ids: Vec<String>,
}

impl Drop for SwiftCleanup {
    fn drop(&mut self) {
        for id in &self.ids {
            let listing = curl(
                &self.token,
                "GET",
                &format!("{}/{CONTAINER}?prefix={id}", self.storage_url),
            );
            for name in listing.lines().map(str::trim).filter(|l| !l.is_empty()) {
                curl(
                    &self.token,
                    "DELETE",
                    &format!("{}/{CONTAINER}/{name}", self.storage_url),
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// The demo tenant: the `trove` CLI, the API and Swift with its own token.

struct Demo {
    bin: PathBuf,
    home: tempfile::TempDir,
    region: String,
    /// `http://127.0.0.1:<port>/v1.0/<demo project id>`
    api: String,
    token: String,
    http: reqwest::Client,
}

impl Demo {
    async fn new(base: &str, region: &str) -> Demo {
        let bin = repo_root().join("target/venvs/troveclient/bin/trove");
        assert!(
            bin.exists(),
            "{} is missing: run scripts/client-venv.sh (scripts/test.sh does)",
            bin.display()
        );
        let s = stack();
        let http = reqwest::Client::new();
        let (token, doc) = login(&http, &s.auth_url, "demo", &s.demo_password, "demo").await;
        let swift = doc["token"]["catalog"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|svc| svc["type"] == "object-store")
            .flat_map(|svc| svc["endpoints"].as_array().into_iter().flatten())
            .find(|e| e["interface"] == "public")
            .and_then(|e| e["url"].as_str())
            .unwrap_or_else(|| panic!("no object-store endpoint in the demo catalog: {doc}"))
            .to_owned();
        assert_eq!(swift, s.storage_url, "the catalog names the demo account");
        Demo {
            bin,
            home: tempfile::tempdir().unwrap(),
            region: region.to_owned(),
            api: format!("{base}/v1.0/{}", s.demo_project_id),
            token,
            http,
        }
    }

    /// `trove ARGS` as the demo user: (success, stdout, stderr).
    async fn run(&self, args: &[&str]) -> (bool, String, String) {
        let s = stack();
        let mut cmd = tokio::process::Command::new(&self.bin);
        cmd.args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.home.path())
            .env("LANG", "C.UTF-8")
            .env("OS_AUTH_URL", &s.auth_url)
            .env("OS_AUTH_TYPE", "password")
            .env("OS_IDENTITY_API_VERSION", "3")
            .env("OS_USERNAME", "demo")
            .env("OS_PASSWORD", &s.demo_password)
            .env("OS_PROJECT_NAME", "demo")
            .env("OS_USER_DOMAIN_NAME", "Default")
            .env("OS_PROJECT_DOMAIN_NAME", "Default")
            .env("OS_REGION_NAME", &self.region)
            .env("OS_INTERFACE", "public")
            .kill_on_drop(true);
        let started = Instant::now();
        let out = tokio::time::timeout(Duration::from_secs(180), cmd.output())
            .await
            .unwrap_or_else(|_| panic!("trove {args:?} did not finish in 180 s"))
            .expect("run trove");
        eprintln!(
            "trove {} ({:.1} s)",
            args.join(" "),
            started.elapsed().as_secs_f64()
        );
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `trove ARGS`, which must succeed; its stdout.
    async fn trove(&self, args: &[&str]) -> String {
        let (ok, stdout, stderr) = self.run(args).await;
        assert!(
            ok,
            "trove {}\n--- stdout\n{stdout}--- stderr\n{stderr}",
            args.join(" ")
        );
        stdout
    }

    /// `trove --json ARGS`, which must succeed; its output as JSON.
    async fn trove_json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = self.trove(&all).await;
        serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("trove {args:?}: not JSON ({e}): {out}"))
    }

    /// `GET <api>/<path>` with the demo token: (status, body).
    async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}/{path}", self.api))
            .header("X-Auth-Token", &self.token)
            .send()
            .await
            .expect("GET");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn instance(&self, id: &str) -> Option<Value> {
        match self.get(&format!("instances/{id}")).await {
            (200, b) => Some(b["instance"].clone()),
            (404, _) => None,
            (s, b) => panic!("GET instance {id}: {s} {b}"),
        }
    }

    /// Waits for ACTIVE; on ERROR or after the timeout panics with the services' logs.
    async fn wait_active(&self, cluster: &Cluster, id: &str) -> Value {
        let deadline = Instant::now() + ACTIVE_TIMEOUT;
        loop {
            let inst = self.instance(id).await.expect("instance exists");
            if inst["status"] == "ACTIVE" {
                return inst;
            }
            if inst["status"] == "ERROR" || Instant::now() > deadline {
                panic!("instance {id} not ACTIVE: {inst}\n{}", cluster.logs(id));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    async fn wait_gone(&self, id: &str) {
        let deadline = Instant::now() + GONE_TIMEOUT;
        while self.instance(id).await.is_some() {
            assert!(Instant::now() < deadline, "instance {id} still there");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Waits until backup `id` is COMPLETED (FAILED fails the test, with the logs).
    async fn wait_backup(&self, cluster: &Cluster, instance: &str, id: &str) -> Value {
        let deadline = Instant::now() + BACKUP_TIMEOUT;
        loop {
            let (s, b) = self.get(&format!("backups/{id}")).await;
            assert_eq!(s, 200, "{b}");
            match b["backup"]["status"].as_str() {
                Some("COMPLETED") => return b["backup"].clone(),
                Some("FAILED") => panic!("backup {id} FAILED: {b}\n{}", cluster.logs(instance)),
                _ => {}
            }
            assert!(
                Instant::now() < deadline,
                "backup {id} not COMPLETED: {b}\n{}",
                cluster.logs(instance)
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Waits until backup `id` is gone from the API (the taskmanager deleted it).
    async fn wait_backup_gone(&self, cluster: &Cluster, id: &str) {
        let deadline = Instant::now() + GONE_TIMEOUT;
        loop {
            let (s, b) = self.get(&format!("backups/{id}")).await;
            if s == 404 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "backup {id} still there: {s} {b}\n{}",
                cluster.log("taskmanager")
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// A request to the demo account in Swift with the demo token.
    async fn swift(&self, method: Method, url: &str) -> reqwest::Response {
        self.http
            .request(method, url)
            .header("X-Auth-Token", &self.token)
            .send()
            .await
            .expect("Swift answers")
    }

    /// The segments (`/<container>/<name>`, bytes) of the Static Large Object at `url`
    /// (`GET ?multipart-manifest=get`); none for an ordinary object.
    async fn segments(&self, url: &str) -> Vec<(String, u64)> {
        let r = self
            .swift(Method::GET, &format!("{url}?multipart-manifest=get"))
            .await;
        assert_eq!(
            r.status(),
            StatusCode::OK,
            "GET {url}?multipart-manifest=get"
        );
        let is_manifest = r
            .headers()
            .get("x-static-large-object")
            .is_some_and(|v| v.to_str().unwrap().eq_ignore_ascii_case("true"));
        if !is_manifest {
            return Vec::new();
        }
        let v: Value = r.json().await.expect("a manifest");
        v.as_array()
            .unwrap_or_else(|| panic!("manifest of {url}: {v}"))
            .iter()
            .map(|seg| {
                (
                    seg["name"].as_str().unwrap_or_default().to_owned(),
                    seg["bytes"].as_u64().unwrap_or_default(),
                )
            })
            .collect()
    }

    /// Names of the objects in the demo account's backup container starting with `prefix`.
    async fn objects(&self, prefix: &str) -> Vec<String> {
        let url = format!(
            "{}/{CONTAINER}?format=json&prefix={prefix}",
            stack().storage_url
        );
        let r = self.swift(Method::GET, &url).await;
        if r.status() == StatusCode::NOT_FOUND {
            return Vec::new();
        }
        assert!(r.status().is_success(), "GET {url}: {}", r.status());
        let v: Value = r.json().await.unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|o| o["name"].as_str().unwrap().to_owned())
            .collect()
    }
}

// ---------------------------------------------------------------------------------------
// The datastores.

#[derive(Clone, Copy, Debug)]
enum Kind {
    MariaDb,
    PostgreSql,
}

impl Kind {
    fn datastore(self) -> &'static str {
        match self {
            Kind::MariaDb => "mariadb",
            Kind::PostgreSql => "postgresql",
        }
    }

    /// The object name of backup `id`.
    fn object(self, id: &str) -> String {
        match self {
            Kind::MariaDb => format!("{id}.xbstream.zst"),
            Kind::PostgreSql => format!("{id}.tar.zst"),
        }
    }

    /// Runs `sql` in database `app` of the instance at `ip` as the tenant's user.
    async fn sql(self, ip: &str, sql: &str) -> Result<String, String> {
        match self {
            Kind::MariaDb => mariadb(ip, USER, PASSWORD, "app", sql).await,
            Kind::PostgreSql => psql(ip, USER, PASSWORD, "app", sql).await,
        }
    }

    /// The rows of table `t` as the tenant's user sees them: `id|name` lines in order.
    async fn rows(self, ip: &str) -> Vec<String> {
        let out = self
            .sql(ip, "SELECT id, name FROM t ORDER BY id")
            .await
            .unwrap_or_else(|e| panic!("{self:?} at {ip}: the tenant reads its rows: {e}"));
        out.lines().map(|l| l.replace('\t', "|")).collect()
    }

    /// Adds `rows` rows of 2 KiB random (incompressible) bytes to table `blobs` (created
    /// first when `create`), so that the next backup is larger than a segment.
    async fn write_blobs(self, ip: &str, create: bool, first: u32, rows: u32) {
        let last = first + rows - 1;
        let sql = match self {
            Kind::MariaDb => format!(
                "{}INSERT INTO blobs (id, b) WITH RECURSIVE s(n) AS \
                 (SELECT {first} UNION ALL SELECT n + 1 FROM s WHERE n < {last}) \
                 SELECT n, CONCAT(RANDOM_BYTES(1024), RANDOM_BYTES(1024)) FROM s;",
                if create {
                    "CREATE TABLE blobs (id INT PRIMARY KEY, b LONGBLOB); "
                } else {
                    ""
                }
            ),
            Kind::PostgreSql => format!(
                "{}INSERT INTO blobs SELECT g, (SELECT string_agg(decode(md5(random()::text \
                 || g || '.' || i), 'hex'), ''::bytea) FROM generate_series(1, 128) i) \
                 FROM generate_series({first}, {last}) g;",
                if create {
                    "CREATE TABLE blobs (id INT PRIMARY KEY, b BYTEA); "
                } else {
                    ""
                }
            ),
        };
        self.sql(ip, &sql)
            .await
            .unwrap_or_else(|e| panic!("{self:?} at {ip}: the tenant writes blobs: {e}"));
    }

    /// The number of rows of `blobs` and a digest of their contents, as the tenant sees
    /// them.
    async fn blobs(self, ip: &str) -> String {
        let sql = match self {
            Kind::MariaDb => {
                "SELECT CONCAT(COUNT(*), '|', MD5(GROUP_CONCAT(MD5(b) ORDER BY id SEPARATOR ''))) \
                 FROM blobs"
            }
            Kind::PostgreSql => {
                "SELECT count(*) || '|' || md5(string_agg(md5(b), '' ORDER BY id)) FROM blobs"
            }
        };
        let out = self
            .sql(ip, sql)
            .await
            .unwrap_or_else(|e| panic!("{self:?} at {ip}: the tenant reads its blobs: {e}"));
        out.trim().to_owned()
    }

    /// Inserts rows `ids` into `t` (created first when `create`).
    async fn write(self, ip: &str, create: bool, ids: std::ops::RangeInclusive<u32>) {
        let values: Vec<String> = ids.map(|i| format!("({i}, 'row-{i}')")).collect();
        let mut sql = String::new();
        if create {
            sql.push_str("CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(32)); ");
        }
        sql.push_str(&format!("INSERT INTO t VALUES {};", values.join(", ")));
        self.sql(ip, &sql)
            .await
            .unwrap_or_else(|e| panic!("{self:?} at {ip}: the tenant writes: {e}"));
    }
}

/// The files under `dir` (none when it does not exist).
fn walk(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn expected(n: u32) -> Vec<String> {
    (1..=n).map(|i| format!("{i}|row-{i}")).collect()
}

fn id_of(v: &Value) -> String {
    v["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {v}"))
        .to_owned()
}

// ---------------------------------------------------------------------------------------
// The scenario.

/// Full and incremental backups of a `kind` instance into the demo project's Swift through
/// the `trove` CLI behind Keystone, restored into new instances, deleted child first.
async fn backups_in_swift(kind: Kind, first_address: &str, region: &str) {
    let s = tokio::task::spawn_blocking(stack).await.unwrap();
    // The guests' configuration: small segments, so that backups are stored in segments.
    // The local backup directory (where backups would go without an object store in the
    // request's catalog) is one of this test's, and must stay empty.
    let work = tempfile::Builder::new()
        .prefix("trove-swift-e2e")
        .tempdir()
        .unwrap();
    let guest_conf = work.path().join("trove-guestagent.conf");
    let local_backups = work.path().join("local-backups");
    std::fs::write(
        &guest_conf,
        format!("[DEFAULT]\ndebug = true\nbackup_segment_max_size = {SEGMENT}\n"),
    )
    .unwrap();
    let mut opts = Options::new(first_address);
    // (A repeated key: the last one wins.)
    opts.extra_default = format!(
        "auth_strategy = keystone\nguest_config = {}\n",
        guest_conf.display()
    );
    opts.extra_conf = format!(
        "[keystone_authtoken]\nauth_url = {}\nusername = trove\npassword = trove\n\
         project_name = service\nuser_domain_name = Default\nproject_domain_name = Default\n\
         region_name = RegionOne\n\
         [local_driver]\nbackup_path = {}\n",
        s.auth_url,
        local_backups.display()
    );
    let (cluster, noauth) = Cluster::start(&opts).await;
    let state = cluster.state_dir();
    let port: u16 = noauth
        .base
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("port of {}", noauth.base));
    // Without a token the API refuses the tenant's requests.
    let r = reqwest::get(format!(
        "{}/v1.0/{}/instances",
        noauth.base, s.demo_project_id
    ))
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    let endpoint = Endpoint::register(region, port).await;
    let demo = Demo::new(&noauth.base, region).await;
    let mut swift_cleanup = SwiftCleanup {
        storage_url: s.storage_url.clone(),
        token: demo.token.clone(),
        ids: Vec::new(),
    };
    let ds = kind.datastore();

    let (status, body) = demo.get(&format!("datastores/{ds}")).await;
    assert_eq!(status, 200, "{body}");
    let version = body["datastore"]["versions"][0]["name"]
        .as_str()
        .unwrap_or_else(|| panic!("no version of {ds}: {body}"))
        .to_owned();
    let create = |name: &'static str, extra: Vec<String>| {
        let version = version.clone();
        let demo = &demo;
        async move {
            let mut args: Vec<String> = [
                "create",
                name,
                "1",
                "--size",
                "1",
                "--datastore",
                ds,
                "--datastore_version",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            args.push(version);
            args.extend(extra);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let inst = demo.trove_json(&args).await;
            assert_eq!(inst["name"], name, "{inst}");
            id_of(&inst)
        }
    };

    // The source instance with the tenant's database and user, and three rows.
    let src = create(
        "src",
        vec![
            "--databases".into(),
            "app".into(),
            "--users".into(),
            format!("{USER}:{PASSWORD}"),
        ],
    )
    .await;
    let inst = demo.wait_active(&cluster, &src).await;
    let ip = ip_of(&inst);
    kind.write(&ip, true, 1..=3).await;
    kind.write_blobs(&ip, true, 1, 1000).await;
    let blobs_full = kind.blobs(&ip).await;

    // Full backup.
    let full = demo
        .trove_json(&["backup-create", "src", "full", "--description", "all of it"])
        .await;
    assert_eq!(full["name"], "full", "{full}");
    let full = id_of(&full);
    swift_cleanup.ids.push(full.clone());
    let full_b = demo.wait_backup(&cluster, &src, &full).await;
    assert!(
        full_b["locationRef"]
            .as_str()
            .is_some_and(|l| l.starts_with(&s.storage_url)),
        "the backup is not in the tenant's Swift account {}: {full_b}",
        s.storage_url
    );
    demo.wait_active(&cluster, &src).await;

    // Incremental on top of it (the latest backup), then another with an explicit parent.
    kind.write(&ip, false, 4..=5).await;
    kind.write_blobs(&ip, false, 1001, 750).await;
    let blobs_inc1 = kind.blobs(&ip).await;
    assert_ne!(blobs_inc1, blobs_full);
    let inc1 = demo
        .trove_json(&["backup-create", "src", "inc1", "--incremental"])
        .await;
    let inc1 = id_of(&inc1);
    swift_cleanup.ids.push(inc1.clone());
    let inc1_b = demo.wait_backup(&cluster, &src, &inc1).await;
    assert_eq!(
        inc1_b["parent_id"].as_str(),
        Some(full.as_str()),
        "{inc1_b}"
    );
    demo.wait_active(&cluster, &src).await;
    kind.write(&ip, false, 6..=7).await;
    let inc2 = demo
        .trove_json(&["backup-create", "src", "inc2", "--parent", &inc1])
        .await;
    let inc2 = id_of(&inc2);
    swift_cleanup.ids.push(inc2.clone());
    let inc2_b = demo.wait_backup(&cluster, &src, &inc2).await;
    assert_eq!(
        inc2_b["parent_id"].as_str(),
        Some(inc1.as_str()),
        "{inc2_b}"
    );
    demo.wait_active(&cluster, &src).await;
    assert_eq!(kind.rows(&ip).await, expected(7));
    assert_eq!(kind.blobs(&ip).await, blobs_inc1);

    // The CLI lists and shows them.
    let list = demo.trove_json(&["backup-list"]).await;
    let listed: BTreeMap<String, Value> = list
        .as_array()
        .unwrap_or_else(|| panic!("backup-list: {list}"))
        .iter()
        .map(|b| (id_of(b), b.clone()))
        .collect();
    assert_eq!(listed.len(), 3, "{list}");
    for (id, parent) in [(&full, None), (&inc1, Some(&full)), (&inc2, Some(&inc1))] {
        let b = &listed[id.as_str()];
        assert_eq!(b["status"], "COMPLETED", "{b}");
        assert_eq!(b["instance_id"].as_str(), Some(src.as_str()), "{b}");
        assert_eq!(b["parent_id"].as_str(), parent.map(String::as_str), "{b}");
    }
    for (id, b) in [(&full, &full_b), (&inc1, &inc1_b), (&inc2, &inc2_b)] {
        let shown = demo.trove_json(&["backup-show", id]).await;
        assert_eq!(shown["id"].as_str(), Some(id.as_str()), "{shown}");
        assert_eq!(shown["status"], "COMPLETED", "{shown}");
        assert_eq!(shown["locationRef"], b["locationRef"], "{shown}");
        // The legacy CLI flattens the datastore to its type and version.
        assert_eq!(shown["datastore"], ds, "{shown}");
        assert!(shown["size"].as_f64().is_some_and(|s| s > 0.0), "{shown}");
    }
    assert_eq!(full_b["description"], "all of it", "{full_b}");

    // The objects are in the demo project's account: a backup larger than SEGMENT (the full
    // one and the first incremental are, with 2 and 1.5 MB of random bytes) as a Static
    // Large Object of SEGMENT-byte segments `<id>_00000000`, ... next to it; a smaller one
    // as one object (its only segment copied server-side and removed).
    let mut locations = BTreeMap::new();
    for (id, b, random_bytes) in [
        (&full, &full_b, true),
        (&inc1, &inc1_b, true),
        (&inc2, &inc2_b, false),
    ] {
        let object = kind.object(id);
        let location = format!("{}/{CONTAINER}/{object}", s.storage_url);
        assert_eq!(b["locationRef"].as_str(), Some(location.as_str()), "{b}");
        let head = demo.swift(Method::HEAD, &location).await;
        assert_eq!(head.status(), StatusCode::OK, "HEAD {location}");
        let headers = head.headers().clone();
        let h = |name: &str| headers.get(name).map(|v| v.to_str().unwrap().to_owned());
        let size: u64 = h("content-length")
            .and_then(|l| l.parse().ok())
            .unwrap_or_else(|| panic!("{headers:?}"));
        let segments = demo.segments(&location).await;
        // The random bytes alone are more than a segment.
        assert!(!random_bytes || size > SEGMENT, "backup {id}: {size} bytes");
        eprintln!(
            "backup {id}: {size} bytes in Swift, {} segment(s)",
            segments.len().max(1)
        );
        if size > SEGMENT {
            assert!(
                h("x-static-large-object").is_some_and(|v| v.eq_ignore_ascii_case("true")),
                "backup {id} is no Static Large Object: {headers:?}"
            );
            let count = size.div_ceil(SEGMENT) as usize;
            let names: Vec<String> = (0..count).map(|i| format!("{id}_{i:08}")).collect();
            assert_eq!(
                segments.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>(),
                names
                    .iter()
                    .map(|n| format!("/{CONTAINER}/{n}"))
                    .collect::<Vec<_>>(),
                "manifest of {id}"
            );
            for (i, (_, bytes)) in segments.iter().enumerate() {
                let want = if i + 1 < count {
                    SEGMENT
                } else {
                    size - SEGMENT * (count as u64 - 1)
                };
                assert_eq!(*bytes, want, "segment {i} of {id}");
            }
            let mut listed = vec![object.clone()];
            listed.extend(names);
            listed.sort();
            assert_eq!(demo.objects(id).await, listed, "objects of backup {id}");
        } else {
            assert_eq!(h("x-static-large-object"), None, "{id}: {headers:?}");
            assert!(size > 0, "backup {id}: {size} bytes");
            assert!(segments.is_empty(), "{segments:?}");
            assert_eq!(
                demo.objects(id).await,
                vec![object.clone()],
                "objects of backup {id}"
            );
        }
        locations.insert(id.clone(), (location, headers));
    }
    let meta = |id: &String, key: &str| {
        locations[id]
            .1
            .get(key)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    assert_eq!(meta(&full, "x-object-meta-parent-location"), None);
    assert_eq!(
        meta(&inc1, "x-object-meta-parent-location").as_deref(),
        Some(locations[&full].0.as_str())
    );
    assert_eq!(
        meta(&inc2, "x-object-meta-parent-location").as_deref(),
        Some(locations[&inc1].0.as_str())
    );
    // Without the tenant's token Swift does not give them out.
    let r = demo
        .http
        .head(&locations[&full].0)
        .send()
        .await
        .expect("Swift answers");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "an anonymous read");

    // Each backup restored into a new instance shows the rows of its time.
    let mut copies = Vec::new();
    for (name, bid, rows, blobs) in [
        ("from-full", &full, 3, &blobs_full),
        ("from-inc1", &inc1, 5, &blobs_inc1),
        ("from-inc2", &inc2, 7, &blobs_inc1),
    ] {
        let copy = create(name, vec!["--backup".into(), bid.clone()]).await;
        let inst = demo.wait_active(&cluster, &copy).await;
        let copy_ip = ip_of(&inst);
        assert_ne!(copy_ip, ip);
        assert_eq!(
            kind.rows(&copy_ip).await,
            expected(rows),
            "{name} from {bid}"
        );
        assert_eq!(&kind.blobs(&copy_ip).await, blobs, "{name} from {bid}");
        copies.push(copy);
    }
    // The source is unchanged.
    assert_eq!(kind.rows(&ip).await, expected(7));

    // Deleting the backups, child first, removes their objects from Swift.
    for id in [&inc2, &inc1, &full] {
        demo.trove(&["backup-delete", id]).await;
        demo.wait_backup_gone(&cluster, id).await;
        let left = demo.objects(id).await;
        assert!(left.is_empty(), "objects of backup {id} left: {left:?}");
        let head = demo.swift(Method::HEAD, &locations[id].0).await;
        assert_eq!(head.status(), StatusCode::NOT_FOUND, "{}", locations[id].0);
        let segment = format!("{}/{CONTAINER}/{id}_00000000", s.storage_url);
        let head = demo.swift(Method::HEAD, &segment).await;
        assert_eq!(head.status(), StatusCode::NOT_FOUND, "{segment}");
    }
    assert!(
        !cluster.log("taskmanager").contains("DELETE_FAILED"),
        "{}",
        cluster.log("taskmanager")
    );
    let list = demo.trove_json(&["backup-list"]).await;
    assert_eq!(list.as_array().map(Vec::len), Some(0), "{list}");

    // The instances go, leaving nothing on the host.
    for id in copies.iter().chain([&src]) {
        demo.trove(&["delete", id]).await;
    }
    for id in copies.iter().chain([&src]) {
        demo.wait_gone(id).await;
        assert_no_trace(&state, id);
    }
    let local: Vec<_> = walk(&local_backups);
    assert!(local.is_empty(), "backups in the local store: {local:?}");
    endpoint.remove().await;
    drop(swift_cleanup);
    drop(cluster);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mariadb_backups_in_the_tenants_swift_through_the_trove_cli() {
    if !is_root() {
        eprintln!("skipped: needs root for loop devices and mounts");
        return;
    }
    assert!(
        std::process::Command::new("mariadb-backup")
            .arg("--version")
            .output()
            .is_ok(),
        "mariadb-backup is not installed (scripts/ensure-services.sh installs it)"
    );
    backups_in_swift(Kind::MariaDb, "127.2.9.1", "trove-swift-e2e-mariadb").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgresql_backups_in_the_tenants_swift_through_the_trove_cli() {
    if !is_root() {
        eprintln!("skipped: needs root for loop devices and mounts");
        return;
    }
    backups_in_swift(
        Kind::PostgreSql,
        "127.2.9.101",
        "trove-swift-e2e-postgresql",
    )
    .await;
}
