//! `trove-taskmanager`: runs Trove's instance workflows
//! (`trove-taskmanager --config-file /etc/trove/trove.conf`).
//!
//! It connects to the control database and to RabbitMQ, serves `taskmanager_queue` on the
//! control exchange (decrypting with `taskmanager_rpc_encr_key` when
//! `enable_secure_rpc_messaging` is on), and builds instances with the compute driver
//! `[local_driver] compute_driver` names: `openstack` (Nova, Cinder, Neutron in the service
//! project) or, by default, `local` (`[local_driver]`): each instance's guest agent is a `trove-guestagent` process with its
//! own RabbitMQ user (created through the broker's management API when reachable), its own
//! loop-mounted volume and loopback address. Several taskmanagers may share the topic.
//! SIGINT or SIGTERM stops it gracefully: no new work, running workflows end or are left
//! for recovery (creates left BUILDING past `usage_timeout` are failed and cleaned by the
//! next taskmanager).

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use trove_config::{Config, ConfigArgs};
use trove_rpc::admin::BrokerAdmin;
use trove_rpc::{AmqpTransport, Transport, TransportUrl};
use trove_taskmanager::TaskManager;

/// Command line of trove-taskmanager.
#[derive(Parser)]
#[command(
    name = "trove-taskmanager",
    about = "Trove-rs taskmanager: builds, resizes and deletes instances",
    version
)]
struct Cli {
    #[command(flatten)]
    config: ConfigArgs,
}

fn main() -> ExitCode {
    trove::exit_code("trove-taskmanager", run(Cli::parse()))
}

fn run(cli: Cli) -> anyhow::Result<()> {
    trove::run_service(&cli.config, serve)
}

async fn serve(config: Arc<Config>) -> anyhow::Result<()> {
    let db = trove::connect_db(&config).await?;
    let url = config.default.transport_url.expose_secret();
    let transport =
        AmqpTransport::connect_url(url, trove::amqp_options(&config, "trove-taskmanager"))
            .await
            .context("connecting to the message broker ([DEFAULT] transport_url)")?;
    let broker = TransportUrl::parse(url).ok().map(|u| {
        BrokerAdmin::from_transport_url(
            &u,
            &config.default.control_exchange,
            &config.default.conductor_queue,
        )
    });
    let drivers = match config.local_driver.compute_driver.trim() {
        "local" | "" => {
            let launcher = trove::local::process_launcher(&config)?;
            trove::local::drivers(trove::local::local_driver(&config, launcher)?)
        }
        "openstack" => {
            let d = trove_openstack::OpenStackDriver::from_config(&config)
                .await
                .context("connecting to the cloud ([service_credentials])")?;
            trove_taskmanager::Drivers {
                compute: Arc::new(d.clone()),
                volumes: Arc::new(d.clone()),
                network: Arc::new(d),
            }
        }
        other => anyhow::bail!(
            "[local_driver] compute_driver: '{other}' is not a compute driver (local, openstack)"
        ),
    };
    let tm = TaskManager::new(
        config.clone(),
        db.clone(),
        drivers,
        Arc::new(transport.clone()) as Arc<dyn Transport>,
        broker,
    );
    let result = trove_taskmanager::run(tm, &transport, trove::shutdown_signal())
        .await
        .context("serving the taskmanager topic");
    transport.shutdown().await;
    db.close().await;
    result
}
