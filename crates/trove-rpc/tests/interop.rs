//! Interoperability with the real oslo.messaging (Python), through the local RabbitMQ:
//! a Python client calls a Rust server and a Rust client calls a Python server, in clear
//! and with Trove's encryption.
//!
//! Python: `TROVE_INTEROP_PYTHON` if set, else a virtualenv at `target/interop-venv`
//! created on first use (`python3 -m venv`, `pip install oslo.messaging cryptography`).
//! These tests never skip: without a usable Python they fail and say why.

mod common;

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use serde_json::{json, Map, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use trove_rpc::{RpcClient, Target, Transport, Version};

const KEY: &str = "emYjgHFqfXNB1NGehAFIUeoyw4V4XwWHEaKP";

fn py_args(exchange: &str, topic: &str, key: Option<&str>) -> Vec<String> {
    let mut v = vec![
        "--url".into(),
        rabbit_url(),
        "--exchange".into(),
        exchange.into(),
        "--topic".into(),
        topic.into(),
    ];
    if let Some(k) = key {
        v.extend(["--key".into(), k.into()]);
    }
    v
}

async fn run_python_client(
    exchange: &str,
    topic: &str,
    key: Option<&str>,
    extra: &[&str],
) -> Value {
    let out = Command::new(interop_python())
        .arg(scripts().join("client.py"))
        .args(py_args(exchange, topic, key))
        .args(extra)
        .current_dir(scripts())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(180), out)
        .await
        .expect("python client timed out")
        .expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "python client failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .expect("python client prints JSON")
}

#[tokio::test]
async fn python_encryption_helper_matches_spec_vectors() {
    let v = run_python_client("unused", "unused", None, &["--mode", "selftest"]).await;
    assert_eq!(v, json!({"selftest": "ok"}));
}

async fn python_client_calls_rust_server(key: Option<&str>) {
    let _lock = shared_broker_lock();
    let exchange = unique_exchange();
    let at = amqp(&exchange).await;
    let t: Arc<dyn Transport> = Arc::new(at.clone());
    let topic = unique_topic("py2rust");
    let d = TestDispatcher::named("rust-srv");
    let h = serve(&t, Target::server(&topic, "rust-srv"), d.clone(), key).await;

    let out = run_python_client(&exchange, &topic, key, &["--mode", "check"]).await;
    assert_eq!(out["add"], json!(42));
    assert_eq!(
        out["echo"],
        json!({"x": {"nested": [1, "é", null]}, "password": "hunter2"})
    );
    assert_eq!(out["whoami"], json!("rust-srv"));
    assert_eq!(out["fail"]["exc_type"], json!("NotFound"), "{out}");
    assert!(out["fail"]["value"]
        .as_str()
        .unwrap()
        .contains("Resource thing cannot be found."));
    assert_eq!(out["nope"]["exc_type"], json!("NoSuchMethod"));
    assert_eq!(out["v19"]["exc_type"], json!("UnsupportedVersion"));
    assert!(
        eventually(10, || d.seen_values("record", "n").len() == 5).await,
        "Python casts reach the Rust server"
    );
    let seen = d.seen.lock().unwrap().clone();
    let (_, _, ctx) = &seen[0];
    assert_eq!(ctx.user.as_deref(), Some("py-user"));
    assert_eq!(ctx.request_id.as_deref(), Some("req-python"));
    assert_eq!(ctx.roles, vec!["member".to_string()]);

    h.stop().await;
    at.shutdown().await;
    cleanup(&exchange, &[topic.clone(), format!("{topic}.rust-srv")]).await;
}

#[tokio::test]
async fn python_client_calls_rust_server_clear() {
    python_client_calls_rust_server(None).await;
}

#[tokio::test]
async fn python_client_calls_rust_server_encrypted() {
    python_client_calls_rust_server(Some(KEY)).await;
}

async fn rust_client_calls_python_server(key: Option<&str>) {
    let _lock = shared_broker_lock();
    let exchange = unique_exchange();
    let topic = unique_topic("rust2py");
    let mut child = Command::new(interop_python())
        .arg(scripts().join("server.py"))
        .args(py_args(&exchange, &topic, key))
        .args(["--server", "py-srv"])
        .current_dir(scripts())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start python server");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let ready = tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(l) = lines.next_line().await.unwrap() {
            if l.trim() == "READY" {
                return true;
            }
        }
        false
    });
    assert!(
        ready.await.expect("python server did not start in time"),
        "python server exited before READY"
    );

    let at = amqp(&exchange).await;
    let t: Arc<dyn Transport> = Arc::new(at.clone());
    let c = client(&t, &topic, key);
    let to = Duration::from_secs(20);
    assert_eq!(
        c.call(&ctx(), "add", args(json!({"a": 2, "b": 40})), to)
            .await
            .unwrap(),
        json!(42)
    );
    let echo = c
        .call(
            &ctx(),
            "echo",
            args(json!({"x": {"nested": [1, "é", null]}})),
            to,
        )
        .await
        .unwrap();
    assert_eq!(echo, json!({"x": {"nested": [1, "é", null]}}));
    let who = c.call(&ctx(), "whoami", Map::new(), to).await.unwrap();
    assert_eq!(who["server"], json!("py-srv"));
    assert_eq!(
        who["user"],
        json!("alice"),
        "context reaches the Python server"
    );
    let e = c.call(&ctx(), "fail", Map::new(), to).await.unwrap_err();
    let r = e.remote().expect("remote error");
    assert_eq!(
        (r.class.as_str(), r.module.as_str(), r.message.as_str()),
        ("ValueError", "builtins", "python says no")
    );
    assert!(!r.traceback.is_empty());
    let e = c.call(&ctx(), "nope", Map::new(), to).await.unwrap_err();
    assert_eq!(e.remote().unwrap().class, "NoSuchMethod");
    let e = c
        .with_version(Version::new(1, 4))
        .call(&ctx(), "add", args(json!({"a": 1, "b": 1})), to)
        .await
        .unwrap_err();
    assert_eq!(e.remote().unwrap().class, "UnsupportedVersion");
    for n in 0..5 {
        c.cast(&ctx(), "record", args(json!({"n": n})))
            .await
            .unwrap();
    }
    let direct = RpcClient::new(
        t.clone(),
        Target::server(&topic, "py-srv"),
        Some(Version::new(1, 0)),
        serializer(key),
    );
    let mut recorded = Vec::new();
    for _ in 0..50 {
        recorded = direct
            .call(&ctx(), "recorded", Map::new(), to)
            .await
            .unwrap()
            .as_array()
            .unwrap()
            .clone();
        if recorded.len() == 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut got: Vec<i64> = recorded.iter().filter_map(Value::as_i64).collect();
    got.sort();
    assert_eq!(
        got,
        vec![0, 1, 2, 3, 4],
        "Rust casts reach the Python server"
    );

    drop(child.stdin.take());
    if tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .is_err()
    {
        let _ = child.kill().await;
    }
    at.shutdown().await;
    cleanup(&exchange, &[topic.clone(), format!("{topic}.py-srv")]).await;
}

#[tokio::test]
async fn rust_client_calls_python_server_clear() {
    rust_client_calls_python_server(None).await;
}

#[tokio::test]
async fn rust_client_calls_python_server_encrypted() {
    rust_client_calls_python_server(Some(KEY)).await;
}
