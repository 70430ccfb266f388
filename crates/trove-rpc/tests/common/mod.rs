//! Helpers shared by the integration tests: the RabbitMQ lock and startup, a test
//! dispatcher, and the transport contract run against every transport.
//!
//! Tests that use RabbitMQ hold a *shared* lock on a file in the temp dir; the broker
//! restart test holds it *exclusively*, so it never disturbs another test, under
//! `cargo test` (threads) and `cargo nextest` (processes) alike.

#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::collections::HashMap;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::{json, Map, Value};
use trove_rpc::{
    AmqpOptions, AmqpTransport, Dispatcher, PlainSerializer, RemoteError, RpcClient, RpcContext,
    RpcEndpoint, RpcError, SecureSerializer, Serializer, Target, Transport, Version,
};

/// Holds the broker lock for the life of a test.
pub struct BrokerLock {
    _lock: trove_rpc::testing::BrokerTestLock,
}

/// Shared lock: any number of RabbitMQ tests at once, never during a broker restart.
pub fn shared_broker_lock() -> BrokerLock {
    let lock = trove_rpc::testing::broker_lock_shared().expect("shared broker lock");
    ensure_rabbitmq();
    BrokerLock { _lock: lock }
}

/// Exclusive lock: for tests that stop and start the broker.
pub fn exclusive_broker_lock() -> BrokerLock {
    let lock = trove_rpc::testing::broker_lock_exclusive().expect("exclusive broker lock");
    ensure_rabbitmq();
    BrokerLock { _lock: lock }
}

/// AMQP URL of the test broker (`TROVE_TEST_RABBIT_URL`, default guest on 127.0.0.1).
pub fn rabbit_url() -> String {
    std::env::var("TROVE_TEST_RABBIT_URL")
        .unwrap_or_else(|_| "rabbit://guest:guest@127.0.0.1:5672/".into())
}

fn port_open() -> bool {
    TcpStream::connect_timeout(&"127.0.0.1:5672".parse().unwrap(), Duration::from_secs(1)).is_ok()
}

/// Starts the local RabbitMQ if its port is closed and waits for it.
pub fn ensure_rabbitmq() {
    if port_open() {
        return;
    }
    let _ = Command::new("rabbitmq-server").arg("-detached").status();
    let _ = Command::new("rabbitmqctl")
        .args(["--timeout", "120", "await_startup"])
        .status();
    let _ = Command::new("rabbitmqctl").args(["start_app"]).status();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !port_open() {
        assert!(Instant::now() < deadline, "RabbitMQ is not running on 127.0.0.1:5672 and could not be started (rabbitmq-server -detached)");
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// A unique control exchange for one test.
pub fn unique_exchange() -> String {
    format!("trove_test_{}", uuid::Uuid::new_v4().simple())
}

/// A unique topic name.
pub fn unique_topic(prefix: &str) -> String {
    format!(
        "{prefix}_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

/// Connects an AMQP transport on `exchange` with test-friendly timeouts.
pub async fn amqp(exchange: &str) -> AmqpTransport {
    let mut o = AmqpOptions::with_exchange(exchange);
    o.publish_timeout = Duration::from_secs(60);
    AmqpTransport::connect_url(&rabbit_url(), o)
        .await
        .expect("connect to RabbitMQ")
}

/// Deletes test queues and exchanges through a raw AMQP connection.
pub async fn cleanup(exchange: &str, queues: &[String]) {
    use amqprs::channel::{ExchangeDeleteArguments, QueueDeleteArguments};
    let Ok(conn) = raw_connection().await else {
        return;
    };
    if let Ok(ch) = conn.open_channel(None).await {
        for q in queues {
            let _ = ch.queue_delete(QueueDeleteArguments::new(q)).await;
        }
        let _ = ch
            .exchange_delete(ExchangeDeleteArguments::new(exchange))
            .await;
        let _ = ch.close().await;
    }
    let _ = conn.close().await;
}

/// A plain amqprs connection as the admin user (for capturing and injecting messages).
pub async fn raw_connection() -> Result<amqprs::connection::Connection, amqprs::error::Error> {
    let u = trove_rpc::TransportUrl::parse(&rabbit_url()).unwrap();
    let h = &u.hosts[0];
    let mut a =
        amqprs::connection::OpenConnectionArguments::new(&h.host, h.port, &h.username, &h.password);
    a.virtual_host(&u.virtual_host);
    amqprs::connection::Connection::open(&a.finish()).await
}

/// One request seen by a test server: method, arguments, context.
pub type Seen = (String, Map<String, Value>, RpcContext);

/// Records what a test server saw and answers a few methods.
#[derive(Default)]
pub struct TestDispatcher {
    pub name: String,
    pub calls: AtomicUsize,
    pub seen: Mutex<Vec<Seen>>,
}

impl TestDispatcher {
    pub fn named(name: &str) -> Arc<Self> {
        Arc::new(Self {
            name: name.into(),
            ..Default::default()
        })
    }

    pub fn seen_values(&self, method: &str, key: &str) -> Vec<Value> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(m, _, _)| m == method)
            .filter_map(|(_, a, _)| a.get(key).cloned())
            .collect()
    }
}

#[async_trait]
impl Dispatcher for TestDispatcher {
    async fn dispatch(
        &self,
        ctx: RpcContext,
        method: &str,
        args: Map<String, Value>,
    ) -> Result<Value, RemoteError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.seen
            .lock()
            .unwrap()
            .push((method.to_owned(), args.clone(), ctx.clone()));
        match method {
            "echo" => Ok(Value::Object(args)),
            "add" => Ok(json!(
                args.get("a").and_then(Value::as_i64).unwrap_or(0)
                    + args.get("b").and_then(Value::as_i64).unwrap_or(0)
            )),
            "whoami" => Ok(json!(self.name)),
            "whois_user" => Ok(json!(ctx.user)),
            "record" => Ok(Value::Null),
            "sleep" => {
                let s = args.get("seconds").and_then(Value::as_f64).unwrap_or(0.0);
                tokio::time::sleep(Duration::from_secs_f64(s)).await;
                Ok(json!("slept"))
            }
            "fail" => Err(RemoteError::trove(
                "NotFound",
                "Resource thing cannot be found.",
            )),
            "panic" => panic!("handler bug"),
            _ => Err(RemoteError::no_such_method(method)),
        }
    }
}

pub fn ctx() -> RpcContext {
    RpcContext {
        user: Some("alice".into()),
        project_id: Some("p1".into()),
        auth_token: Some("tok-secret".into()),
        ..RpcContext::new_internal()
    }
}

pub fn args(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

pub fn client(t: &Arc<dyn Transport>, topic: &str, key: Option<&str>) -> RpcClient {
    RpcClient::new(
        t.clone(),
        Target::topic(topic),
        Some(Version::new(1, 0)),
        serializer(key),
    )
}

pub fn serializer(key: Option<&str>) -> Arc<dyn Serializer> {
    match key {
        Some(k) => Arc::new(SecureSerializer::new(Some(k.into()))),
        None => Arc::new(PlainSerializer),
    }
}

pub async fn serve(
    t: &Arc<dyn Transport>,
    target: Target,
    d: Arc<TestDispatcher>,
    key: Option<&str>,
) -> trove_rpc::ServerHandle {
    let ep = RpcEndpoint::new(Version::new(1, 3), serializer(key), d);
    t.serve(&target, Arc::new(ep)).await.expect("serve")
}

/// Waits until `f` holds, at most `secs` seconds.
pub async fn eventually(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    f()
}

// ------------------------------------------------------------------------------------
// The transport contract: every Transport must pass these. Each returns the queue names
// it created so AMQP callers can delete them.

pub async fn contract_call_cast(t: Arc<dyn Transport>) -> Vec<String> {
    let topic = unique_topic("callcast");
    let d = TestDispatcher::named("s1");
    let h = serve(&t, Target::server(&topic, "s1"), d.clone(), None).await;
    let c = client(&t, &topic, None);
    let r = c
        .call(
            &ctx(),
            "add",
            args(json!({"a": 2, "b": 40})),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    assert_eq!(r, json!(42));
    let r = c
        .call(
            &ctx(),
            "echo",
            args(json!({"x": {"nested": [1, "é"]}})),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    assert_eq!(r, json!({"x": {"nested": [1, "é"]}}));
    assert_eq!(
        c.call(&ctx(), "whois_user", Map::new(), Duration::from_secs(10))
            .await
            .unwrap(),
        json!("alice")
    );
    for i in 0..10 {
        c.cast(&ctx(), "record", args(json!({"n": i})))
            .await
            .unwrap();
    }
    assert!(
        eventually(10, || d.seen_values("record", "n").len() == 10).await,
        "all casts delivered"
    );
    // The server-specific queue.
    let cs = RpcClient::new(
        t.clone(),
        Target::server(&topic, "s1"),
        Some(Version::new(1, 0)),
        serializer(None),
    );
    assert_eq!(
        cs.call(&ctx(), "whoami", Map::new(), Duration::from_secs(10))
            .await
            .unwrap(),
        json!("s1")
    );
    h.stop().await;
    vec![topic.clone(), format!("{topic}.s1")]
}

pub async fn contract_remote_errors(t: Arc<dyn Transport>) -> Vec<String> {
    let topic = unique_topic("errors");
    let d = TestDispatcher::named("s");
    let h = serve(&t, Target::topic(&topic), d.clone(), None).await;
    let c = client(&t, &topic, None);
    let e = c
        .call(&ctx(), "nope", Map::new(), Duration::from_secs(10))
        .await
        .unwrap_err();
    assert_eq!(e.remote().unwrap().class, "NoSuchMethod");
    let e = c
        .with_version(Version::new(1, 4))
        .call(&ctx(), "echo", Map::new(), Duration::from_secs(10))
        .await
        .unwrap_err();
    assert_eq!(e.remote().unwrap().class, "UnsupportedVersion");
    let e = c
        .call(&ctx(), "fail", Map::new(), Duration::from_secs(10))
        .await
        .unwrap_err();
    let r = e.remote().unwrap();
    assert_eq!(
        (r.class.as_str(), r.module.as_str()),
        ("NotFound", "trove.common.exception")
    );
    assert_eq!(r.message, "Resource thing cannot be found.");
    let e = c
        .call(&ctx(), "panic", Map::new(), Duration::from_secs(10))
        .await
        .unwrap_err();
    assert_eq!(
        e.remote().map(|r| r.class.as_str()),
        Some("RuntimeError"),
        "{e}"
    );
    h.stop().await;
    vec![topic]
}

pub async fn contract_timeout(t: Arc<dyn Transport>) -> Vec<String> {
    let topic = unique_topic("nobody");
    let c = client(&t, &topic, None);
    let start = Instant::now();
    let e = c
        .call(&ctx(), "echo", Map::new(), Duration::from_millis(1500))
        .await
        .unwrap_err();
    let took = start.elapsed();
    assert!(e.is_timeout(), "{e}");
    assert!(
        took >= Duration::from_millis(1400) && took < Duration::from_secs(4),
        "took {took:?}"
    );
    let text = e.to_string();
    assert!(
        text.contains(&topic) && text.contains("echo") && text.contains("1.5"),
        "{text}"
    );
    vec![topic]
}

pub async fn contract_competing(t: Arc<dyn Transport>) -> Vec<String> {
    let topic = unique_topic("compete");
    let d1 = TestDispatcher::named("one");
    let d2 = TestDispatcher::named("two");
    let h1 = serve(&t, Target::server(&topic, "one"), d1.clone(), None).await;
    let h2 = serve(&t, Target::server(&topic, "two"), d2.clone(), None).await;
    let c = client(&t, &topic, None);
    let mut names: HashMap<String, usize> = HashMap::new();
    let cx = ctx();
    let calls = (0..40).map(|_| c.call(&cx, "whoami", Map::new(), Duration::from_secs(10)));
    for r in futures::future::join_all(calls).await {
        *names
            .entry(r.unwrap().as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    assert_eq!(names.values().sum::<usize>(), 40);
    assert!(
        names.get("one").copied().unwrap_or(0) >= 5 && names.get("two").copied().unwrap_or(0) >= 5,
        "work shared: {names:?}"
    );
    // Each message handled exactly once.
    assert_eq!(
        d1.calls.load(Ordering::SeqCst) + d2.calls.load(Ordering::SeqCst),
        40
    );
    h1.stop().await;
    h2.stop().await;
    vec![
        topic.clone(),
        format!("{topic}.one"),
        format!("{topic}.two"),
    ]
}

pub async fn contract_encryption(t: Arc<dyn Transport>) -> Vec<String> {
    let topic = unique_topic("secure");
    let key = "bzH6y0SGmjuoY0FNSTptrhgieGXNDX6PIhvz";
    let d = TestDispatcher::named("s");
    let h = serve(&t, Target::topic(&topic), d.clone(), Some(key)).await;
    let c = client(&t, &topic, Some(key));
    let r = c
        .call(
            &ctx(),
            "echo",
            args(json!({"password": "hunter2"})),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    assert_eq!(r, json!({"password": "hunter2"}));
    assert_eq!(
        d.seen.lock().unwrap()[0].2.auth_token.as_deref(),
        Some("tok-secret")
    );
    // Wrong key and clear text are rejected and never executed.
    let before = d.calls.load(Ordering::SeqCst);
    let e = client(&t, &topic, Some("wrong-key"))
        .call(&ctx(), "echo", Map::new(), Duration::from_secs(10))
        .await
        .unwrap_err();
    assert_eq!(
        e.remote().map(|r| r.class.as_str()),
        Some("DecryptionError"),
        "{e}"
    );
    let e = client(&t, &topic, None)
        .call(&ctx(), "echo", Map::new(), Duration::from_secs(10))
        .await
        .unwrap_err();
    assert_eq!(
        e.remote().map(|r| r.class.as_str()),
        Some("DecryptionError"),
        "{e}"
    );
    client(&t, &topic, Some("wrong-key"))
        .cast(&ctx(), "record", Map::new())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(d.calls.load(Ordering::SeqCst), before);
    h.stop().await;
    vec![topic]
}

pub async fn contract_queued_before_server(t: Arc<dyn Transport>) -> Vec<String> {
    let topic = unique_topic("early");
    t.declare_topic_queues(&topic, Some("srv")).await.unwrap();
    let c = client(&t, &topic, None);
    c.cast(&ctx(), "record", args(json!({"n": "early"})))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let d = TestDispatcher::named("srv");
    let h = serve(&t, Target::server(&topic, "srv"), d.clone(), None).await;
    assert!(eventually(10, || d.seen_values("record", "n") == vec![json!("early")]).await);
    h.stop().await;
    // Deleting the queues drops what was waiting in them.
    t.delete_topic_queues(&topic, Some("srv")).await.unwrap();
    t.delete_topic_queues(&topic, Some("srv")).await.unwrap();
    vec![topic.clone(), format!("{topic}.srv")]
}

pub async fn contract_graceful_stop(t: Arc<dyn Transport>) -> Vec<String> {
    let topic = unique_topic("graceful");
    let d = TestDispatcher::named("s");
    let h = serve(&t, Target::topic(&topic), d.clone(), None).await;
    let c = client(&t, &topic, None);
    let call = tokio::spawn(async move {
        c.call(
            &ctx(),
            "sleep",
            args(json!({"seconds": 1.0})),
            Duration::from_secs(10),
        )
        .await
    });
    assert!(eventually(5, || d.calls.load(Ordering::SeqCst) == 1).await);
    let start = Instant::now();
    h.stop().await;
    assert!(
        start.elapsed() >= Duration::from_millis(500),
        "stop waited for the in-flight call"
    );
    assert_eq!(call.await.unwrap().unwrap(), json!("slept"));
    vec![topic]
}

/// Returns `Ok` when `f` completes in time, for readable failures.
pub async fn within<T>(secs: u64, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), f)
        .await
        .expect("test step timed out")
}

pub fn is_access_refused(e: &RpcError) -> bool {
    matches!(e, RpcError::AccessRefused(_))
}

// ------------------------------------------------------------------------------------
// Python with oslo.messaging for the interop tests and the benchmark.

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

pub fn scripts() -> PathBuf {
    workspace_root().join("tests/interop")
}

pub fn has_oslo(python: &Path) -> bool {
    std::process::Command::new(python)
        .args(["-c", "import oslo_messaging, cryptography"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A Python with oslo.messaging, creating the virtualenv if needed (under a file lock,
/// so parallel test processes create it once).
pub fn interop_python() -> PathBuf {
    if let Ok(p) = std::env::var("TROVE_INTEROP_PYTHON") {
        let p = PathBuf::from(p);
        assert!(
            has_oslo(&p),
            "TROVE_INTEROP_PYTHON={} cannot import oslo_messaging and cryptography",
            p.display()
        );
        return p;
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    std::fs::create_dir_all(&target).unwrap();
    let venv = target.join("interop-venv");
    let python = venv.join("bin/python");
    let lock = std::fs::File::create(target.join("interop-venv.lock")).unwrap();
    lock.lock().unwrap();
    if !has_oslo(&python) {
        let st = std::process::Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status();
        assert!(
            st.is_ok_and(|s| s.success()),
            "python3 -m venv {} failed (install python3-venv)",
            venv.display()
        );
        let out = std::process::Command::new(venv.join("bin/pip"))
            .args([
                "install",
                "--disable-pip-version-check",
                "-q",
                "oslo.messaging",
                "cryptography",
            ])
            .output()
            .expect("run pip");
        assert!(
            out.status.success(),
            "pip install oslo.messaging failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            has_oslo(&python),
            "the new virtualenv cannot import oslo_messaging"
        );
    }
    python
}
