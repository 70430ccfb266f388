//! Throughput through the local RabbitMQ: calls/s and casts/s of this crate's AMQP
//! transport, and of the Python oslo.messaging client on the same machine, in one run.
//!
//!     cargo bench -p trove-rpc --bench rpc_throughput       # TROVE_BENCH_N=2000 for more
//!
//! Calls are sequential (one in flight, as a Trove client does) unless marked
//! "concurrent"; casts are sequential and, for Rust, confirmed by the broker (publisher
//! confirms), so a cast counts once RabbitMQ has accepted it. This is a measurement, not a
//! test: nothing is asserted.

#[path = "../tests/common/mod.rs"]
mod common;

use std::process::Stdio;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use trove_rpc::{Target, Transport};

struct Row {
    what: String,
    calls: f64,
    casts: Option<f64>,
}

async fn rust_rows(n: usize, exchange: &str, key: Option<&str>, label: &str) -> Vec<Row> {
    let (st, ct) = (amqp(exchange).await, amqp(exchange).await);
    let (s, c): (Arc<dyn Transport>, Arc<dyn Transport>) =
        (Arc::new(st.clone()), Arc::new(ct.clone()));
    let topic = unique_topic("bench");
    let d = TestDispatcher::named("bench");
    let h = serve(&s, Target::topic(&topic), d.clone(), key).await;
    let cl = client(&c, &topic, key);
    let to = Duration::from_secs(30);
    cl.call(&ctx(), "add", args(json!({"a": 0, "b": 0})), to)
        .await
        .unwrap();

    let start = Instant::now();
    for i in 0..n {
        cl.call(&ctx(), "add", args(json!({"a": i, "b": 1})), to)
            .await
            .unwrap();
    }
    let calls = n as f64 / start.elapsed().as_secs_f64();

    let before = d.calls.load(Ordering::SeqCst);
    let start = Instant::now();
    for i in 0..n {
        cl.cast(&ctx(), "record", args(json!({"n": i})))
            .await
            .unwrap();
    }
    let casts = n as f64 / start.elapsed().as_secs_f64();
    while d.calls.load(Ordering::SeqCst) < before + n {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let casts_e2e = n as f64 / start.elapsed().as_secs_f64();

    let start = Instant::now();
    let cx = ctx();
    let mut inflight = futures::stream::FuturesUnordered::new();
    use futures::StreamExt;
    for i in 0..n {
        inflight.push(cl.call(&cx, "add", args(json!({"a": i, "b": 1})), to));
        if inflight.len() >= 32 {
            inflight.next().await.unwrap().unwrap();
        }
    }
    while let Some(r) = inflight.next().await {
        r.unwrap();
    }
    let concurrent = n as f64 / start.elapsed().as_secs_f64();

    h.stop().await;
    st.shutdown().await;
    ct.shutdown().await;
    cleanup(exchange, &[topic]).await;
    vec![
        Row {
            what: format!("trove-rpc (Rust) {label}"),
            calls,
            casts: Some(casts),
        },
        Row {
            what: format!("trove-rpc (Rust) {label}, casts until handled"),
            calls: f64::NAN,
            casts: Some(casts_e2e),
        },
        Row {
            what: format!("trove-rpc (Rust) {label}, 32 calls in flight"),
            calls: concurrent,
            casts: None,
        },
    ]
}

async fn python_bench(n: usize, exchange: &str, topic: &str, key: Option<&str>) -> (f64, f64) {
    let mut cmd = Command::new(interop_python());
    cmd.arg(scripts().join("client.py"))
        .args([
            "--url",
            &rabbit_url(),
            "--exchange",
            exchange,
            "--topic",
            topic,
            "--mode",
            "bench",
            "--n",
            &n.to_string(),
        ])
        .current_dir(scripts());
    if let Some(k) = key {
        cmd.args(["--key", k]);
    }
    let out = cmd.output().await.expect("run python client");
    assert!(
        out.status.success(),
        "python bench failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(
        out.stdout
            .split(|b| *b == b'\n')
            .rfind(|l| !l.is_empty())
            .unwrap(),
    )
    .unwrap();
    (
        v["calls_per_s"].as_f64().unwrap(),
        v["casts_per_s"].as_f64().unwrap(),
    )
}

async fn python_rows(n: usize, exchange: &str) -> Vec<Row> {
    // oslo.messaging client -> oslo.messaging server.
    let topic = unique_topic("pybench");
    let mut child = Command::new(interop_python())
        .arg(scripts().join("server.py"))
        .args([
            "--url",
            &rabbit_url(),
            "--exchange",
            exchange,
            "--topic",
            &topic,
        ])
        .current_dir(scripts())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start python server");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    while let Some(l) = lines.next_line().await.unwrap() {
        if l.trim() == "READY" {
            break;
        }
    }
    let (py_calls, py_casts) = python_bench(n, exchange, &topic, None).await;
    drop(child.stdin.take());
    let _ = tokio::time::timeout(Duration::from_secs(20), child.wait()).await;
    let _ = child.kill().await;

    // oslo.messaging client -> Rust server.
    let st = amqp(exchange).await;
    let s: Arc<dyn Transport> = Arc::new(st.clone());
    let topic2 = unique_topic("pybench_rs");
    let h = serve(
        &s,
        Target::topic(&topic2),
        TestDispatcher::named("bench"),
        None,
    )
    .await;
    let (mix_calls, mix_casts) = python_bench(n, exchange, &topic2, None).await;
    h.stop().await;
    st.shutdown().await;
    cleanup(exchange, &[topic, topic2]).await;
    vec![
        Row {
            what: "oslo.messaging (Python) client -> oslo.messaging server".into(),
            calls: py_calls,
            casts: Some(py_casts),
        },
        Row {
            what: "oslo.messaging (Python) client -> trove-rpc server".into(),
            calls: mix_calls,
            casts: Some(mix_casts),
        },
    ]
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("rpc_throughput is a benchmark: run it with `cargo bench -p trove-rpc --bench rpc_throughput`");
        return;
    }
    let n: usize = std::env::var("TROVE_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _lock = shared_broker_lock();
    let rows = rt.block_on(async {
        let exchange = unique_exchange();
        let mut rows = rust_rows(n, &exchange, None, "clear").await;
        rows.extend(rust_rows(n, &exchange, Some("bench-key-0123456789"), "encrypted").await);
        rows.extend(python_rows(n, &exchange).await);
        rows
    });
    println!("\nRPC throughput through RabbitMQ on 127.0.0.1 ({n} messages per measurement)\n");
    println!(
        "{:<62} {:>10} {:>10}",
        "client / server", "calls/s", "casts/s"
    );
    println!("{}", "-".repeat(84));
    for r in rows {
        let calls = if r.calls.is_nan() {
            "-".to_string()
        } else {
            format!("{:.0}", r.calls)
        };
        let casts = r.casts.map_or("-".to_string(), |c| format!("{c:.0}"));
        println!("{:<62} {:>10} {:>10}", r.what, calls, casts);
    }
}
