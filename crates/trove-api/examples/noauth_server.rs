//! A local API for trying clients against: SQLite in a temporary directory, `noauth`,
//! a taskmanager that only logs casts, one MariaDB datastore and two flavors.
//!
//! ```text
//! cargo run -p trove-api --example noauth_server -- 127.0.0.1:8779
//! ```
//!
//! python-troveclient's library reaches it with keystoneauth's `noauth` plugin:
//! `Client(session=Session(auth=noauth.NoAuth(endpoint=ep)), endpoint_override=ep)` with
//! `ep = "http://127.0.0.1:8779/v1.0/demo"`.

use std::sync::Arc;

use trove_api::auth::NoAuth;
use trove_api::policy::Enforcer;
use trove_api::taskmanager::RecordingTaskManager;
use trove_api::{serve, ApiApp};
use trove_db::{DatastoreVersionSpec, Db, NewFlavor};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8779".into());
    let dir = tempfile::tempdir()?;
    let db = Db::connect(&format!(
        "sqlite:///{}",
        dir.path().join("trove.db").display()
    ))
    .await?;
    db.migrate().await?;
    db.datastore_update("mariadb", None).await?;
    db.datastore_version_upsert(&DatastoreVersionSpec {
        datastore: "mariadb".into(),
        name: "10.11".into(),
        manager: "mariadb".into(),
        image_id: String::new(),
        packages: String::new(),
        active: true,
        image_tags: None,
        version: Some("10.11.6".into()),
        registry_ext: None,
        repl_strategy: None,
    })
    .await?;
    db.datastore_update("mariadb", Some("10.11")).await?;
    for (id, name, ram) in [("1", "m1.tiny", 512), ("2", "m1.small", 2048)] {
        db.flavor_create(&NewFlavor {
            id: Some(id.into()),
            name: name.into(),
            ram,
            vcpus: 1,
            disk: 10,
            ephemeral: 0,
        })
        .await?;
    }
    let router = ApiApp::builder(
        Arc::new(trove_config::Config::default()),
        db,
        Arc::new(Enforcer::with_defaults()),
        Arc::new(NoAuth),
        Some(Arc::new(RecordingTaskManager::new())),
    )
    .build();
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    eprintln!("listening on http://{}", listener.local_addr()?);
    serve(listener, router, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}
