//! The all-in-one services in the test process: API on a free port, taskmanager,
//! conductor and in-process guest agents (SQLite, in-memory transport, local driver).

use std::path::PathBuf;
use std::sync::Arc;

use trove::aio::{apply_defaults, Aio};
use trove_config::Config;

use super::{Tenant, PROJECT};

/// The running services of one test, stopped by [`Running::shutdown`].
pub struct Running {
    /// The tenant's CLI against this API.
    pub tenant: Tenant,
    aio: Option<Aio>,
    server: tokio::task::JoinHandle<()>,
    stop: tokio::sync::oneshot::Sender<()>,
    /// The local driver's state directory.
    pub local_state: PathBuf,
    _cleanup: super::HostCleanup,
    _dir: tempfile::TempDir,
}

/// Starts the services with `[local_driver] first_address`.
pub async fn start(first_address: &str) -> Running {
    trove::init_logging(false);
    let dir = tempfile::Builder::new()
        .prefix("trove-aio-e2e")
        .tempdir()
        .unwrap();
    let state = dir.path().canonicalize().unwrap();
    let mut config = Config::default();
    apply_defaults(&mut config, &state);
    config.local_driver.first_address = first_address.to_owned();
    config.default.report_interval = 5;
    config.default.usage_timeout = 300;
    config.default.control_exchange = "trove".into();
    let config = Arc::new(config);
    let aio = Aio::start(config.clone(), &state)
        .await
        .expect("aio starts");
    let router = aio.router(config.clone()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        trove_api::serve(listener, router, async {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    Running {
        tenant: Tenant::new(&base, PROJECT),
        aio: Some(aio),
        server,
        stop,
        local_state: state.join("local"),
        _cleanup: super::HostCleanup(state.clone()),
        _dir: dir,
    }
}

impl Running {
    /// Stops the API and the services.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(());
        let _ = self.server.await;
        if let Some(a) = self.aio.take() {
            a.stop().await;
        }
    }

    /// `openstack database instance create NAME --flavor 1 --size 1` on the datastore's
    /// first version, with `extra` arguments; the created instance as JSON.
    pub async fn create(&self, name: &str, datastore: &str, extra: &[&str]) -> serde_json::Value {
        let version = self.version_of(datastore).await;
        let mut args = vec![
            "database",
            "instance",
            "create",
            name,
            "--flavor",
            "1",
            "--size",
            "1",
            "--datastore",
            datastore,
            "--datastore-version",
            &version,
        ];
        args.extend_from_slice(extra);
        self.tenant.osc_json(&args).await
    }

    /// The name of the datastore's first version.
    pub async fn version_of(&self, datastore: &str) -> String {
        let (s, body) = self.tenant.get(&format!("datastores/{datastore}")).await;
        assert_eq!(s, 200, "{body}");
        body["datastore"]["versions"][0]["name"]
            .as_str()
            .unwrap_or_else(|| panic!("no version of {datastore}: {body}"))
            .to_owned()
    }

    /// `in_use` of a quota resource of the tenant's own project.
    pub async fn quota_in_use(&self, resource: &str) -> i64 {
        let (s, body) = self.tenant.get(&format!("mgmt/quotas/{PROJECT}")).await;
        assert_eq!(s, 200, "{body}");
        body["quotas"]
            .as_array()
            .and_then(|q| q.iter().find(|r| r["resource"] == resource))
            .and_then(|r| r["in_use"].as_i64())
            .unwrap_or_else(|| panic!("no {resource} in {body}"))
    }
}
