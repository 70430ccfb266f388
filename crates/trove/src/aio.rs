//! The all-in-one mode: API, taskmanager, conductor and guest agents in one process, over
//! the in-memory transport, with a SQLite control database and the local compute driver.
//!
//! ```text
//!  trove-aio ── AioOptions::config: embedded defaults under --state-dir (SQLite, local
//!     │         driver state), or the operator's files
//!     ├─ db_sync, then bootstrap (first start): the datastores whose servers are
//!     │  installed here, with validation rules and default versions, and four flavors
//!     ├─ conductor ─┐
//!     ├─ taskmanager ── local driver ── InProcessLauncher: one Agent task per instance
//!     ├─ API (noauth, 127.0.0.1:8779)   │
//!     └──────── InMemoryTransport ───────┘
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use trove_config::Config;
use trove_db::Db;
use trove_rpc::{InMemoryTransport, Transport};
use trove_taskmanager::{TaskManager, TaskManagerServer};

use crate::local::{drivers, local_driver, InProcessLauncher};

/// Validation rules shipped for the datastores the bootstrap registers.
const MARIADB_RULES: &str = include_str!("../../../etc/validation-rules/mariadb.json");
const POSTGRESQL_RULES: &str = include_str!("../../../etc/validation-rules/postgresql.json");

/// Flavors registered on first start: id, name, RAM (MB), vCPUs, disk (GB).
const FLAVORS: &[(&str, &str, &str, &str, &str)] = &[
    ("1", "m1.tiny", "512", "1", "1"),
    ("2", "m1.small", "1024", "1", "5"),
    ("3", "m1.medium", "2048", "2", "10"),
    ("4", "m1.large", "4096", "4", "20"),
];

/// Fills in the all-in-one defaults under `state_dir` wherever `config` still has the
/// built-in default: SQLite control database, local driver state, a plain (unencrypted by
/// key rotation) setup that needs no other service.
pub fn apply_defaults(config: &mut Config, state_dir: &Path) {
    let defaults = Config::default();
    if config.database.connection.expose_secret() == defaults.database.connection.expose_secret() {
        config.database.connection =
            format!("sqlite:///{}", state_dir.join("trove.sqlite").display()).into();
    }
    if config.local_driver.backup_path == defaults.local_driver.backup_path {
        config.local_driver.backup_path = state_dir.join("backups").display().to_string();
    }
    if config.local_driver.state_path == defaults.local_driver.state_path {
        config.local_driver.state_path = state_dir.join("local").display().to_string();
    }
}

/// A datastore server found installed on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledDatastore {
    /// Datastore and manager name (`mariadb`, `postgresql`).
    pub manager: &'static str,
    /// Version name (`10.11`, `15`).
    pub name: String,
    /// Full version number (`10.11.19`, `15.20`).
    pub number: String,
}

fn version_after(text: &str, marker: &str) -> Option<String> {
    let rest = &text[text.find(marker)? + marker.len()..];
    let v: String = rest
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let v = v.trim_end_matches('.').to_string();
    (!v.is_empty()).then_some(v)
}

/// The MariaDB and PostgreSQL servers installed here (Debian's paths).
pub async fn installed_datastores() -> Vec<InstalledDatastore> {
    let mut out = Vec::new();
    for bin in ["/usr/sbin/mariadbd", "mariadbd"] {
        if let Ok(o) = tokio::process::Command::new(bin)
            .arg("--version")
            .output()
            .await
        {
            let text = String::from_utf8_lossy(&o.stdout);
            if let Some(number) = version_after(&text, "Ver") {
                let name = number.split('.').take(2).collect::<Vec<_>>().join(".");
                out.push(InstalledDatastore {
                    manager: "mariadb",
                    name,
                    number,
                });
                break;
            }
        }
    }
    let mut pg: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.path().join("bin/postgres"))
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    pg.sort();
    if let Some(bin) = pg.last() {
        if let Ok(o) = tokio::process::Command::new(bin)
            .arg("--version")
            .output()
            .await
        {
            let text = String::from_utf8_lossy(&o.stdout);
            if let Some(number) = version_after(&text, "(PostgreSQL)") {
                let name = number.split('.').next().unwrap_or("").to_string();
                out.push(InstalledDatastore {
                    manager: "postgresql",
                    name,
                    number,
                });
            }
        }
    }
    out
}

async fn manage(db: &Db, args: &[&str]) -> anyhow::Result<String> {
    let mut all = vec!["trove-manage"];
    all.extend_from_slice(args);
    trove_manage::run_args(db, all)
        .await
        .with_context(|| format!("trove-manage {}", args.join(" ")))
}

/// First start: registers the installed datastores (validation rules, default version)
/// and the flavors, unless datastores are registered already. Returns what it registered.
pub async fn bootstrap(db: &Db, state_dir: &Path) -> anyhow::Result<Vec<InstalledDatastore>> {
    if !db.datastore_list().await?.is_empty() {
        return Ok(Vec::new());
    }
    let found = installed_datastores().await;
    let rules_dir = state_dir.join("validation-rules");
    std::fs::create_dir_all(&rules_dir)?;
    for ds in &found {
        let rules = rules_dir.join(format!("{}.json", ds.manager));
        std::fs::write(
            &rules,
            if ds.manager == "mariadb" {
                MARIADB_RULES
            } else {
                POSTGRESQL_RULES
            },
        )?;
        let rules = rules.display().to_string();
        manage(db, &["datastore_update", ds.manager, ""]).await?;
        manage(
            db,
            &[
                "datastore_version_update",
                ds.manager,
                &ds.name,
                ds.manager,
                "",
                "",
                "1",
                "--version",
                &ds.number,
            ],
        )
        .await?;
        manage(db, &["datastore_update", ds.manager, &ds.name]).await?;
        manage(
            db,
            &[
                "db_load_datastore_config_parameters",
                ds.manager,
                &ds.name,
                &rules,
                "--version",
                &ds.number,
            ],
        )
        .await?;
        tracing::info!(datastore = ds.manager, version = %ds.name, number = %ds.number, "registered an installed datastore");
    }
    let existing = manage(db, &["flavor_list"]).await?;
    for (id, name, ram, vcpus, disk) in FLAVORS {
        if !existing
            .lines()
            .any(|l| l.split_whitespace().next() == Some(id))
        {
            manage(db, &["flavor_create", name, ram, vcpus, disk, "--id", id]).await?;
        }
    }
    Ok(found)
}

/// The running all-in-one services.
pub struct Aio {
    /// The control database.
    pub db: Db,
    /// The shared in-memory transport.
    pub transport: Arc<dyn Transport>,
    conductor: trove_conductor::ConductorServer,
    taskmanager: TaskManagerServer,
    launcher: Arc<InProcessLauncher>,
}

impl std::fmt::Debug for Aio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Aio").finish_non_exhaustive()
    }
}

impl Aio {
    /// Starts database, conductor, taskmanager and the guest launcher (not the API: see
    /// [`Aio::router`]), and restarts the agents of instances that exist from an earlier run.
    pub async fn start(config: Arc<Config>, state_dir: &Path) -> anyhow::Result<Aio> {
        std::fs::create_dir_all(state_dir)
            .with_context(|| format!("creating {}", state_dir.display()))?;
        let db = crate::connect_db(&config).await?;
        db.migrate().await.context("db_sync")?;
        let registered = bootstrap(&db, state_dir).await?;
        for ds in &registered {
            println!(
                "registered datastore {} {} ({})",
                ds.manager, ds.name, ds.number
            );
        }
        let transport: Arc<dyn Transport> = Arc::new(InMemoryTransport::new());
        let conductor = trove_conductor::start(&config, db.clone(), transport.as_ref())
            .await
            .context("starting the conductor")?;
        let launcher = Arc::new(InProcessLauncher::new(transport.clone()));
        let driver = local_driver(&config, launcher.clone())?;
        let tm = TaskManager::new(
            config.clone(),
            db.clone(),
            drivers(driver),
            transport.clone(),
            None,
        );
        let taskmanager = TaskManagerServer::start(
            tm.clone(),
            transport.as_ref(),
            trove_taskmanager::target(&config),
            trove_taskmanager::recovery_period(tm.settings()),
        )
        .await
        .context("starting the taskmanager")?;
        let resumed = resume_agents(&db, &tm).await;
        if resumed > 0 {
            tracing::info!(
                count = resumed,
                "restarted the guest agents of existing instances"
            );
        }
        Ok(Aio {
            db,
            transport,
            conductor,
            taskmanager,
            launcher,
        })
    }

    /// The API router on this process's transport.
    pub fn router(&self, config: Arc<Config>) -> anyhow::Result<axum::Router> {
        // The all-in-one mode runs the local driver: flavors are the control database's.
        let flavors = Arc::new(trove_api::flavors::DbFlavors(self.db.clone()));
        crate::api_router(
            config,
            self.db.clone(),
            self.transport.clone(),
            flavors,
            None,
        )
    }

    /// Stops taskmanager, guest agents and conductor (the database servers of the
    /// instances keep running; the next start picks them up again).
    pub async fn stop(self) {
        self.taskmanager.stop().await;
        self.launcher.stop_all().await;
        self.conductor.stop().await;
        self.db.close().await;
    }
}

/// Starts again the agents of live instances whose server exists but whose agent does not
/// run (this process restarted).
async fn resume_agents(db: &Db, tm: &Arc<TaskManager>) -> usize {
    let mut n = 0;
    let instances = match db.instance_list_all(100_000).await {
        Ok(i) => i,
        Err(e) => {
            tracing::error!(error = %e, "cannot list instances to resume their agents");
            return 0;
        }
    };
    for inst in instances.iter().filter(|i| !i.deleted) {
        let Some(sid) = &inst.compute_instance_id else {
            continue;
        };
        match tm.drivers().compute.get_server(sid).await {
            Ok(Some(s)) if s.status == trove_compute::ServerStatus::Shutoff => {
                match tm.drivers().compute.reboot_server(sid).await {
                    Ok(()) => n += 1,
                    Err(e) => {
                        tracing::error!(instance.id = %inst.id, error = %e, "cannot restart the instance's agent")
                    }
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(instance.id = %inst.id, error = %e, "cannot read the server"),
        }
    }
    n
}

/// What to tell the person who started the all-in-one mode.
pub fn usage_text(address: std::net::SocketAddr, state_dir: &Path) -> String {
    format!(
        "Trove-rs all-in-one is running.\n\
         \n  API:        http://{address}/v1.0/<project>/  (noauth: any project name works)\
         \n  State:      {state}\
         \n\nTry it with the python-troveclient / openstack CLIs:\
         \n  export OS_AUTH_TYPE=none OS_ENDPOINT=http://{address}/v1.0/demo\
         \n  openstack --os-auth-type none --os-endpoint http://{address}/v1.0/demo database flavor list\
         \n  openstack --os-auth-type none --os-endpoint http://{address}/v1.0/demo database instance create db1 --flavor 1 --size 1 \\\
         \n      --datastore mariadb --datastore-version <version> --databases app --users app:Secret123\
         \n  curl -s http://{address}/v1.0/demo/instances\
         \n\nStop with Ctrl-C (instances' database servers keep their data under the state directory).\n",
        state = state_dir.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_from_server_banners() {
        assert_eq!(
            version_after(
                "/usr/sbin/mariadbd  Ver 10.11.19-MariaDB-0+deb12u1 for debian-linux-gnu",
                "Ver"
            )
            .as_deref(),
            Some("10.11.19")
        );
        assert_eq!(
            version_after(
                "postgres (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)",
                "(PostgreSQL)"
            )
            .as_deref(),
            Some("15.20")
        );
        assert_eq!(version_after("nothing here", "Ver"), None);
    }

    #[test]
    fn defaults_land_under_the_state_dir_unless_configured() {
        let mut c = Config::default();
        apply_defaults(&mut c, Path::new("/srv/aio"));
        assert_eq!(
            c.database.connection.expose_secret(),
            "sqlite:////srv/aio/trove.sqlite"
        );
        assert_eq!(c.local_driver.state_path, "/srv/aio/local");
        let mut c = Config::default();
        c.database.connection = "mysql+pymysql://u:p@h/trove".into();
        apply_defaults(&mut c, Path::new("/srv/aio"));
        assert_eq!(
            c.database.connection.expose_secret(),
            "mysql+pymysql://u:p@h/trove"
        );
    }
}
