//! How the API reaches guest agents: the databases, users and root calls (api.md §6-§8)
//! talk to the guest of an instance directly, as Trove's API process does
//! (internals-rpc.md §3), with synchronous calls for reads and casts for changes.
//!
//! [`GuestClientFactory`] hands out a [`GuestApi`] for one instance and its per-instance
//! key; [`RpcGuestClients`] is the implementation over any `trove_rpc` transport
//! (RabbitMQ in production, the in-memory transport in tests), with the low/high call
//! timeouts and the version cap of the configuration.
//!
//! Not here: deciding which key an instance uses ([`instance_key`] decrypts
//! `instances.encrypted_key`) and mapping guest errors to HTTP answers (see
//! [`crate::error::convert`]).

use std::sync::Arc;

use trove_config::Config;
use trove_rpc::api::guest::{GuestApi, GuestTimeouts};
use trove_rpc::{Transport, Version};

/// Hands out guest clients (`Arc<dyn GuestClientFactory>` in the app state).
pub trait GuestClientFactory: Send + Sync + std::fmt::Debug + 'static {
    /// A client of the guest of `instance_id`; `key` is the decrypted per-instance key
    /// (`None`: the instance talks in clear).
    fn client(&self, instance_id: &str, key: Option<String>) -> GuestApi;
}

/// Guest clients over a `trove_rpc` transport.
pub struct RpcGuestClients {
    transport: Arc<dyn Transport>,
    timeouts: GuestTimeouts,
    version_cap: Version,
}

impl std::fmt::Debug for RpcGuestClients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcGuestClients")
            .field("timeouts", &self.timeouts)
            .field("version_cap", &self.version_cap)
            .finish_non_exhaustive()
    }
}

impl RpcGuestClients {
    /// Clients with explicit timeouts and version cap.
    pub fn new(
        transport: Arc<dyn Transport>,
        timeouts: GuestTimeouts,
        version_cap: Version,
    ) -> Self {
        Self {
            transport,
            timeouts,
            version_cap,
        }
    }

    /// Clients configured from trove.conf: `agent_call_low_timeout`,
    /// `agent_call_high_timeout`, `agent_replication_snapshot_timeout` and
    /// `[upgrade_levels] guestagent`.
    pub fn from_config(transport: Arc<dyn Transport>, config: &Config) -> Self {
        Self::new(
            transport,
            timeouts(config),
            version_cap(&config.upgrade_levels.guestagent),
        )
    }
}

impl GuestClientFactory for RpcGuestClients {
    fn client(&self, instance_id: &str, key: Option<String>) -> GuestApi {
        GuestApi::new(
            self.transport.clone(),
            instance_id,
            key,
            self.timeouts,
            self.version_cap,
        )
    }
}

/// The guest call timeouts of the configuration.
pub fn timeouts(config: &Config) -> GuestTimeouts {
    let d = &config.default;
    GuestTimeouts::from_secs(
        d.agent_call_low_timeout,
        d.agent_call_high_timeout,
        d.agent_replication_snapshot_timeout,
    )
}

/// The guest API version cap of `[upgrade_levels] guestagent` (a release alias or a
/// version; anything unreadable means the latest).
pub fn version_cap(level: &str) -> Version {
    trove_rpc::api::guest::guest_version_cap(level)
}

/// The per-instance RPC key of an instance: `encrypted_key` decrypted with
/// `inst_rpc_key_encr_key`; `None` when the column is NULL.
pub fn instance_key(
    config: &Config,
    encrypted_key: Option<&str>,
) -> Result<Option<String>, trove_common::crypto::CryptoError> {
    match encrypted_key.filter(|k| !k.is_empty()) {
        None => Ok(None),
        Some(k) => trove_common::crypto::decrypt_instance_key(
            k,
            config.default.inst_rpc_key_encr_key.expose_secret(),
        )
        .map(Some),
    }
}

impl From<trove_rpc::api::GuestError> for crate::ApiError {
    /// Trove's mapping: `GuestError` and `GuestTimeout` are not in the API's exception
    /// map, so both answer 400 with their message; a broker that cannot be reached is a
    /// 503, as for taskmanager casts.
    fn from(e: trove_rpc::api::GuestError) -> Self {
        use trove_rpc::api::GuestError;
        use trove_rpc::RpcError;
        match e {
            GuestError::Other(RpcError::Unavailable(_) | RpcError::Shutdown) => {
                crate::ApiError::unavailable(e)
            }
            other => crate::ApiError::bad_request(other.to_string()).with_source(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use trove_rpc::api::guest::GUEST_LATEST_VERSION;

    #[test]
    fn version_caps() {
        assert_eq!(version_cap("latest"), GUEST_LATEST_VERSION);
        assert_eq!(version_cap("ussuri"), Version::new(1, 0));
        assert_eq!(version_cap("victoria"), Version::new(1, 1));
        assert_eq!(version_cap("1.2"), Version::new(1, 2));
    }

    #[test]
    fn keys_and_timeouts() {
        let cfg = Config::default();
        assert_eq!(instance_key(&cfg, None).unwrap(), None);
        let enc = trove_common::crypto::encrypt_instance_key(
            "k123",
            cfg.default.inst_rpc_key_encr_key.expose_secret(),
        );
        assert_eq!(
            instance_key(&cfg, Some(&enc)).unwrap().as_deref(),
            Some("k123")
        );
        let t = timeouts(&cfg);
        assert_eq!(t.low, Duration::from_secs(15));
        assert_eq!(t.high, Duration::from_secs(180));
    }
}
