//! The local compute driver as the binaries set it up: `[local_driver]` options, and the
//! in-process guest launcher of the all-in-one mode.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use async_trait::async_trait;
use trove_compute::local::{GuestLauncher, LocalConfig, LocalDriver, ProcessLauncher};
use trove_compute::DriverError;
use trove_config::{Config, ConfigSources};
use trove_guestagent::{Agent, AgentSettings};
use trove_rpc::Transport;
use trove_taskmanager::Drivers;

/// Runs guest agents as tasks of this process, on its (in-memory) transport: the
/// all-in-one mode. Each agent reads its configuration from the instance's directories,
/// exactly as a `trove-guestagent` process would.
pub struct InProcessLauncher {
    transport: Arc<dyn Transport>,
    agents: tokio::sync::Mutex<HashMap<String, Agent>>,
}

impl std::fmt::Debug for InProcessLauncher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InProcessLauncher").finish_non_exhaustive()
    }
}

impl InProcessLauncher {
    /// A launcher whose agents talk over `transport`.
    pub fn new(transport: Arc<dyn Transport>) -> Self {
        Self {
            transport,
            agents: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    /// Stops every agent (the databases keep running; see [`Agent::stop`]).
    pub async fn stop_all(&self) {
        let agents: Vec<Agent> = self.agents.lock().await.drain().map(|(_, a)| a).collect();
        for a in agents {
            a.stop().await;
        }
    }
}

#[async_trait]
impl GuestLauncher for InProcessLauncher {
    async fn launch(
        &self,
        instance_id: &str,
        config_dirs: &[PathBuf],
        _log_file: &Path,
    ) -> trove_compute::Result<()> {
        let sources = ConfigSources {
            files: Vec::new(),
            dirs: config_dirs.to_vec(),
        };
        let loaded = trove_config::load(&sources)
            .map_err(|e| DriverError::host("reading the guest's configuration", e))?;
        let settings = AgentSettings::from_config(&loaded.config)
            .map_err(|e| DriverError::host("guest agent settings", e))?;
        // Every in-process agent has the operator's one guest configuration: one key.
        trove_guestagent::agent::set_backup_key(&loaded.config)
            .map_err(|e| DriverError::host("guest agent settings", e))?;
        let agent = Agent::start(settings, self.transport.clone())
            .await
            .map_err(|e| DriverError::host("starting the guest agent", e))?;
        if let Some(old) = self
            .agents
            .lock()
            .await
            .insert(instance_id.to_owned(), agent)
        {
            old.stop().await;
        }
        Ok(())
    }

    async fn is_running(&self, instance_id: &str) -> bool {
        self.agents.lock().await.contains_key(instance_id)
    }

    async fn stop(&self, instance_id: &str) -> trove_compute::Result<()> {
        let agent = self.agents.lock().await.remove(instance_id);
        if let Some(a) = agent {
            a.stop().await;
        }
        Ok(())
    }
}

/// The local driver configured by `[local_driver]`, starting guests with `launcher`.
pub fn local_driver(
    config: &Config,
    launcher: Arc<dyn GuestLauncher>,
) -> anyhow::Result<Arc<LocalDriver>> {
    let opts = &config.local_driver;
    let mut lc = LocalConfig::new(&opts.state_path, launcher);
    lc.first_address = opts
        .first_address
        .trim()
        .parse::<Ipv4Addr>()
        .with_context(|| {
            format!(
                "[local_driver] first_address: '{}' is not an IPv4 address",
                opts.first_address
            )
        })?;
    lc.loop_volumes = match opts.loop_volumes.trim().to_ascii_lowercase().as_str() {
        "auto" | "" => LocalConfig::default_loop_volumes(),
        "true" | "yes" | "1" | "on" => true,
        "false" | "no" | "0" | "off" => false,
        other => anyhow::bail!("[local_driver] loop_volumes: '{other}' is not auto, true or false"),
    };
    let driver = LocalDriver::new(lc).context("setting up the local compute driver")?;
    Ok(Arc::new(driver))
}

/// A launcher of `trove-guestagent` processes (`[local_driver] guest_agent_program`, or the
/// binary beside this one), with pid files under the state path.
pub fn process_launcher(config: &Config) -> anyhow::Result<Arc<dyn GuestLauncher>> {
    let opts = &config.local_driver;
    let program = if opts.guest_agent_program.trim().is_empty() {
        ProcessLauncher::default_program().context("finding the trove-guestagent binary")?
    } else {
        PathBuf::from(opts.guest_agent_program.trim())
    };
    let pid_dir = Path::new(&opts.state_path).join("pids");
    std::fs::create_dir_all(&pid_dir).with_context(|| format!("creating {}", pid_dir.display()))?;
    Ok(Arc::new(ProcessLauncher::new(program, pid_dir)))
}

/// The taskmanager's drivers from one local driver.
pub fn drivers(driver: Arc<LocalDriver>) -> Drivers {
    let (compute, volumes, network) = driver.into_drivers();
    Drivers {
        compute,
        volumes,
        network,
    }
}
