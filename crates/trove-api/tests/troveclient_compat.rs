//! The real clients against the API: `openstack database ...` (python-troveclient 8.11's
//! OSC plugin) with keystoneauth's `none` auth type pointed at a test server.
//!
//! Needs the client virtualenv that `scripts/client-venv.sh` makes
//! (`target/venvs/troveclient`; the project's test command creates it) and fails without it.

mod common;

use std::path::PathBuf;

use common::{TestApp, PROJECT};

fn openstack_bin() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let bin = root.join("target/venvs/troveclient/bin/openstack");
    assert!(
        bin.exists(),
        "{} is missing: run scripts/client-venv.sh (scripts/test.sh does)",
        bin.display()
    );
    bin
}

async fn osc(bin: &PathBuf, app: &TestApp, args: &[&str]) -> (bool, String) {
    let endpoint = format!("{}/v1.0/{PROJECT}", app.base);
    let out = tokio::process::Command::new(bin)
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openstack_database_commands_work() {
    let bin = openstack_bin();
    let app = TestApp::start().await;
    app.seed().await;

    let (ok, out) = osc(&bin, &app, &["database", "flavor", "list", "-f", "json"]).await;
    assert!(ok, "{out}");
    let flavors: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(flavors.as_array().unwrap().len(), 3, "{out}");

    let (ok, out) = osc(&bin, &app, &["datastore", "show", "mariadb", "-f", "json"]).await;
    assert!(ok, "{out}");
    assert!(out.contains("10.11"), "{out}");

    let (ok, out) = osc(
        &bin,
        &app,
        &[
            "database",
            "instance",
            "create",
            "db1",
            "--flavor",
            "2",
            "--size",
            "1",
            "--datastore",
            "mariadb",
            "--datastore-version",
            "10.11",
            "-f",
            "json",
        ],
    )
    .await;
    assert!(ok, "{out}");
    let created: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(created["status"], "BUILD", "{out}");

    let (ok, out) = osc(&bin, &app, &["database", "instance", "list"]).await;
    assert!(ok, "{out}");
    assert!(out.contains("db1"), "{out}");

    let (ok, out) = osc(&bin, &app, &["database", "instance", "show", "db1"]).await;
    assert!(ok, "{out}");
    assert!(out.contains("mariadb"), "{out}");

    let (ok, out) = osc(&bin, &app, &["database", "limit", "list"]).await;
    assert!(ok, "{out}");

    // Refusals come back with Trove's messages.
    let (ok, out) = osc(&bin, &app, &["database", "instance", "delete", "db1"]).await;
    assert!(!ok);
    assert!(
        out.contains("is not ready. (Status is BUILD). (HTTP 422)"),
        "{out}"
    );
    let (ok, out) = osc(&bin, &app, &["database", "instance", "show", "nosuch"]).await;
    assert!(!ok);
    assert!(out.contains("nosuch"), "{out}");
}
