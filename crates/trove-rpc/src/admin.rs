//! Per-guest RabbitMQ users (beyond Trove): a compromised guest must not hold broker
//! credentials that read other guests' traffic or drive the control plane.
//!
//! [`BrokerAdmin`] uses the RabbitMQ management HTTP API (plugin `rabbitmq_management`) to
//! create user `guest-<instance id>` with a random password and these permissions on the
//! vhost (`I` = instance id, `E` = control exchange, `C` = conductor topic):
//!
//! | permission | regex | why |
//! |---|---|---|
//! | configure | `^(guestagent\.I(\.I)?\|reply_guest_I_[0-9a-f]+)$` | declare its own queues and reply queues |
//! | write | the same, plus `E` and `amq.default` | bind its queues (write on queue); publish to the conductor (E) and send replies (default exchange) |
//! | read | its queues plus `E` | consume its queues; bind them to E |
//! | topic write on E | `^C$` | publish only with routing key `trove-conductor` |
//! | topic read on E | `^guestagent\.I(\.I)?$` | bind only its own routing keys |
//!
//! So a guest cannot consume, bind to, declare or delete another guest's queues, cannot
//! publish to the taskmanager topic, and cannot reconfigure the exchange. Residual risk:
//! replies go through the default exchange, which RabbitMQ cannot restrict by routing
//! key, so a guest can push messages into any queue by name; with
//! `enable_secure_rpc_messaging` those are rejected for lack of the right key.
//!
//! The guest's transport must then run with [`AmqpOptions::for_guest`] (no exchange or
//! foreign queue declarations, reply queues named `reply_guest_<id>_<hex>`).
//! [`BrokerAdmin::guest_access`] falls back to the shared credentials with a logged
//! warning when the management API is unreachable or refuses.

use std::time::Duration;

use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use serde_json::json;

use crate::amqp::{AmqpOptions, TransportUrl};

/// Default port of the management HTTP API.
pub const MANAGEMENT_PORT: u16 = 15672;

/// Why a management operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// The management API cannot be reached (plugin not enabled, firewall...).
    #[error("RabbitMQ management API unreachable at {url}: {reason} (enable it with `rabbitmq-plugins enable rabbitmq_management`)")]
    Unreachable {
        /// API base URL.
        url: String,
        /// Underlying error.
        reason: String,
    },
    /// The admin credentials are not allowed to manage users (HTTP 401/403).
    #[error("RabbitMQ management API refused the operation ({status}): the transport_url user needs the administrator tag")]
    Denied {
        /// HTTP status.
        status: u16,
    },
    /// Any other unexpected answer.
    #[error("RabbitMQ management API answered {status} to {what}: {body}")]
    Unexpected {
        /// HTTP status.
        status: u16,
        /// Operation.
        what: String,
        /// Response body (no secrets are sent back by the API).
        body: String,
    },
}

/// A guest's own broker credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct GuestCredentials {
    /// User name, `guest-<instance id>`.
    pub username: String,
    /// Random password (32 characters from the OS CSPRNG). Never printed by `Debug`.
    pub password: String,
}

impl std::fmt::Debug for GuestCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuestCredentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl GuestCredentials {
    /// The guest's `transport_url`: `base` with every host's credentials replaced.
    pub fn transport_url(&self, base: &TransportUrl) -> TransportUrl {
        let mut u = base.clone();
        for h in &mut u.hosts {
            h.username = self.username.clone();
            h.password = self.password.clone();
        }
        u
    }
}

/// What a guest connects with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuestBrokerAccess {
    /// Its own restricted user.
    Dedicated(GuestCredentials),
    /// The shared `transport_url` credentials (management access unavailable).
    Shared,
}

/// The permission regexes of one guest (see the module doc).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestPermissions {
    /// vhost `configure` regex.
    pub configure: String,
    /// vhost `write` regex.
    pub write: String,
    /// vhost `read` regex.
    pub read: String,
    /// Topic permission `write` regex on the control exchange.
    pub topic_write: String,
    /// Topic permission `read` regex on the control exchange.
    pub topic_read: String,
}

/// Escapes regex metacharacters.
fn re_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.^$|?*+()[]{}-/".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// User name of a guest's broker user.
pub fn guest_username(instance_id: &str) -> String {
    format!("guest-{instance_id}")
}

/// Reply queue prefix of a guest's transport (`reply_guest_<id>_<hex>`).
pub fn guest_reply_prefix(instance_id: &str) -> String {
    format!("guest_{instance_id}")
}

impl GuestPermissions {
    /// The permissions of guest `instance_id` on `exchange` talking to `conductor_topic`.
    pub fn new(instance_id: &str, exchange: &str, conductor_topic: &str) -> Self {
        let id = re_escape(instance_id);
        let queues = format!("guestagent\\.{id}(\\.{id})?");
        let replies = format!(
            "reply_{}_[0-9a-f]+",
            re_escape(&guest_reply_prefix(instance_id))
        );
        let ex = re_escape(exchange);
        Self {
            configure: format!("^({queues}|{replies})$"),
            write: format!("^({queues}|{replies}|{ex}|amq\\.default)$"),
            read: format!("^({queues}|{replies}|{ex})$"),
            topic_write: format!("^{}$", re_escape(conductor_topic)),
            topic_read: format!("^{queues}$"),
        }
    }
}

impl AmqpOptions {
    /// Options for a guest agent connecting with its own restricted user: it neither
    /// declares the exchange nor the conductor's queue, and names its reply queue so its
    /// permissions cover it.
    pub fn for_guest(exchange: impl Into<String>, instance_id: &str) -> Self {
        Self {
            declare_exchange: false,
            declare_queues_on_publish: false,
            reply_queue_prefix: Some(guest_reply_prefix(instance_id)),
            ..Self::with_exchange(exchange)
        }
    }
}

/// Manages per-guest users through the RabbitMQ management HTTP API.
#[derive(Clone)]
pub struct BrokerAdmin {
    http: reqwest::Client,
    base: String,
    user: String,
    password: String,
    vhost: String,
    exchange: String,
    conductor_topic: String,
}

impl std::fmt::Debug for BrokerAdmin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerAdmin")
            .field("base", &self.base)
            .field("user", &self.user)
            .field("vhost", &self.vhost)
            .finish_non_exhaustive()
    }
}

fn enc(s: &str) -> String {
    utf8_percent_encode(s, NON_ALPHANUMERIC).to_string()
}

impl BrokerAdmin {
    /// An admin client of the API at `base_url` (e.g. `http://127.0.0.1:15672`).
    pub fn new(
        base_url: &str,
        user: &str,
        password: &str,
        vhost: &str,
        exchange: &str,
        conductor_topic: &str,
    ) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("HTTP client");
        Self {
            http,
            base: base_url.trim_end_matches('/').to_owned(),
            user: user.into(),
            password: password.into(),
            vhost: vhost.into(),
            exchange: exchange.into(),
            conductor_topic: conductor_topic.into(),
        }
    }

    /// Uses the first host and the credentials of `url` (the controller's
    /// `transport_url`), with the API on port [`MANAGEMENT_PORT`] over HTTP.
    pub fn from_transport_url(url: &TransportUrl, exchange: &str, conductor_topic: &str) -> Self {
        let h = &url.hosts[0];
        let host = if h.host.contains(':') {
            format!("[{}]", h.host)
        } else {
            h.host.clone()
        };
        Self::new(
            &format!("http://{host}:{MANAGEMENT_PORT}"),
            &h.username,
            &h.password,
            &url.virtual_host,
            exchange,
            conductor_topic,
        )
    }

    async fn put(&self, path: &str, body: serde_json::Value, what: &str) -> Result<(), AdminError> {
        let url = format!("{}/api/{path}", self.base);
        let resp = self
            .http
            .put(&url)
            .basic_auth(&self.user, Some(&self.password))
            .json(&body)
            .send()
            .await
            .map_err(|e| AdminError::Unreachable {
                url: self.base.clone(),
                reason: e.to_string(),
            })?;
        check(resp, what).await
    }

    /// Creates (or resets) the user of guest `instance_id` with a fresh random password
    /// and the permissions of [`GuestPermissions`].
    pub async fn create_guest_user(
        &self,
        instance_id: &str,
    ) -> Result<GuestCredentials, AdminError> {
        let username = guest_username(instance_id);
        let password = trove_common::crypto::generate_random_key();
        let p = GuestPermissions::new(instance_id, &self.exchange, &self.conductor_topic);
        self.put(
            &format!("users/{}", enc(&username)),
            json!({"password": password, "tags": ""}),
            "create user",
        )
        .await?;
        let vu = format!("{}/{}", enc(&self.vhost), enc(&username));
        self.put(
            &format!("permissions/{vu}"),
            json!({"configure": p.configure, "write": p.write, "read": p.read}),
            "set permissions",
        )
        .await?;
        self.put(
            &format!("topic-permissions/{vu}"),
            json!({"exchange": self.exchange, "write": p.topic_write, "read": p.topic_read}),
            "set topic permissions",
        )
        .await?;
        tracing::info!(instance.id = instance_id, broker.user = %username, "created the guest's RabbitMQ user");
        Ok(GuestCredentials { username, password })
    }

    /// Deletes the user of guest `instance_id` (and with it its permissions; the broker
    /// closes its connections). A missing user is not an error.
    pub async fn delete_guest_user(&self, instance_id: &str) -> Result<(), AdminError> {
        let username = guest_username(instance_id);
        let url = format!("{}/api/users/{}", self.base, enc(&username));
        let resp = self
            .http
            .delete(&url)
            .basic_auth(&self.user, Some(&self.password))
            .send()
            .await
            .map_err(|e| AdminError::Unreachable {
                url: self.base.clone(),
                reason: e.to_string(),
            })?;
        if resp.status().as_u16() == 404 {
            return Ok(());
        }
        check(resp, "delete user").await?;
        tracing::info!(instance.id = instance_id, broker.user = %username, "deleted the guest's RabbitMQ user");
        Ok(())
    }

    /// A dedicated user for the guest, or the shared credentials with a logged warning
    /// when the operator cannot grant management access.
    pub async fn guest_access(&self, instance_id: &str) -> GuestBrokerAccess {
        match self.create_guest_user(instance_id).await {
            Ok(c) => GuestBrokerAccess::Dedicated(c),
            Err(e) => {
                tracing::warn!(
                    instance.id = instance_id,
                    error = %e,
                    "cannot create a dedicated RabbitMQ user for the guest; it will use the shared transport_url \
                     credentials, so a compromised guest could read other guests' queues"
                );
                GuestBrokerAccess::Shared
            }
        }
    }
}

async fn check(resp: reqwest::Response, what: &str) -> Result<(), AdminError> {
    let status = resp.status().as_u16();
    match status {
        200..=299 => Ok(()),
        401 | 403 => Err(AdminError::Denied { status }),
        _ => Err(AdminError::Unexpected {
            status,
            what: what.into(),
            body: resp.text().await.unwrap_or_default(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permissions_cover_only_the_guest() {
        let p = GuestPermissions::new("ab-12", "trove", "trove-conductor");
        assert_eq!(
            p.configure,
            r"^(guestagent\.ab\-12(\.ab\-12)?|reply_guest_ab\-12_[0-9a-f]+)$"
        );
        assert_eq!(p.topic_write, r"^trove\-conductor$");
        assert!(p.write.contains(r"|trove|amq\.default)$"));
        assert_eq!(guest_username("ab-12"), "guest-ab-12");
    }

    #[test]
    fn guest_transport_url_replaces_credentials() {
        let base = TransportUrl::parse("rabbit://admin:pw@h1:5672,admin:pw@h2:5673/vh").unwrap();
        let c = GuestCredentials {
            username: "guest-x".into(),
            password: "s3cret".into(),
        };
        let u = c.transport_url(&base);
        assert!(u
            .hosts
            .iter()
            .all(|h| h.username == "guest-x" && h.password == "s3cret"));
        assert_eq!(u.virtual_host, "vh");
        assert!(!format!("{c:?}").contains("s3cret"));
    }
}
