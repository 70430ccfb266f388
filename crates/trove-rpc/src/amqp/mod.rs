//! The RabbitMQ transport, speaking oslo.messaging's wire format (spec §5).
//!
//! Client library: `amqprs`, chosen because it is tokio-native (no executor abstraction
//! layer, unlike lapin 3+/4), small (no TLS or codegen by default), maintained, and has
//! what this transport needs: publisher confirms, manual acks, per-consumer channels and
//! connection/channel close callbacks for reconnection.
//!
//! Topology, for control exchange `E`, topic `T`, server `S`:
//! * exchange `E`: `topic`, durable=false, auto_delete=false (declared by publishers and
//!   servers unless [`AmqpOptions::declare_exchange`] is off, as for restricted guest users);
//! * queues `T` and `T.S`: durable=false, auto_delete=false, bound to `E` with their own
//!   names; several servers on `T` are competing consumers;
//! * one reply queue per transport, `reply_<hex>` (or `reply_<prefix>_<hex>`), with
//!   `x-expires` = 1800000 ms, on the default exchange.
//!   (The fanout exchange `T_fanout` is not declared: Trove never uses fanout.)
//!
//! Messages are JSON in the 2.0 envelope, `content_type=application/json`,
//! `content_encoding=utf-8`, persistent; calls carry `expiration` = timeout in ms.
//!
//! Reliability:
//! * a supervisor task owns the connection; when it drops (broker restart, network) it
//!   reconnects with oslo's back-off (first retry at once, then `retry_interval`, growing
//!   by `retry_backoff` per attempt up to `interval_max`; hosts tried round robin),
//!   re-declares the exchange and reply queue, and servers re-declare their queues and
//!   resume consuming;
//! * every publish uses publisher confirms: a cast that returned `Ok` was accepted by
//!   the broker. A publish attempted while disconnected waits for the reconnection, at
//!   most [`AmqpOptions::publish_timeout`] (casts) or the call timeout (calls), and is
//!   retried with the same `_unique_id`, which receivers use to drop duplicates;
//! * a call never outlives its timeout: a reply lost with the connection becomes
//!   [`RpcError::Timeout`];
//! * servers acknowledge a message when they start it (as oslo.messaging does); messages
//!   prefetched but not started go back to the queue when a server stops or loses its
//!   channel.

mod channel;
pub mod url;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use amqprs::channel::{
    BasicAckArguments, BasicCancelArguments, BasicConsumeArguments, BasicQosArguments, Channel,
    ConfirmSelectArguments, ConsumerMessage, ExchangeDeclareArguments, QueueBindArguments,
    QueueDeclareArguments,
};
use amqprs::connection::{Connection, OpenConnectionArguments};
use amqprs::{BasicProperties, FieldTable, FieldValue};
use async_trait::async_trait;
use serde_json::{Map, Value};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use self::channel::{map_err, ChanCallback, CloseInfo, ConfirmState, ConnCallback, Publisher};
pub use self::url::{BrokerHost, TransportUrl};
use crate::message::{decode_envelope, encode_envelope, new_hex_id, ReplyAccumulator, Target};
use crate::server::{MessageHandler, ServerHandle, ServerRuntime};
use crate::transport::Transport;
use crate::{RemoteError, RpcError};

/// `x-expires` of reply queues (oslo `rabbit_transient_queues_ttl` = 1800 s).
pub const REPLY_QUEUE_EXPIRES_MS: i32 = 1_800_000;

/// Tunables of the AMQP transport (defaults follow `[oslo_messaging_rabbit]`).
#[derive(Debug, Clone)]
pub struct AmqpOptions {
    /// Control exchange (`[DEFAULT] control_exchange`; Trove deployments use `trove`).
    pub exchange: String,
    /// Declare the exchange (needs `configure` permission on it). Off for guest users.
    pub declare_exchange: bool,
    /// Before the first publish to a routing key on each connection, declare that queue
    /// and its binding (as Trove does for guest queues before `prepare`), so a cast sent
    /// right after a broker restart is kept even if its server has not re-subscribed yet.
    /// Needs `configure` permission on the queue; off for restricted guest users.
    pub declare_queues_on_publish: bool,
    /// Reply queue name becomes `reply_<prefix>_<hex>` (lets per-guest permissions
    /// name the guest's reply queues); `None` gives oslo's `reply_<hex>`.
    pub reply_queue_prefix: Option<String>,
    /// `rabbit_retry_interval`: first back-off delay.
    pub retry_interval: Duration,
    /// `rabbit_retry_backoff`: added to the delay after each failed attempt.
    pub retry_backoff: Duration,
    /// `rabbit_interval_max`: longest delay between attempts.
    pub interval_max: Duration,
    /// Messages a server may hold unacknowledged (QoS prefetch).
    pub prefetch_count: u16,
    /// Time allowed for opening one connection.
    pub connect_timeout: Duration,
    /// How long a cast (or a reply) waits for a connection and the broker's confirm.
    pub publish_timeout: Duration,
    /// AMQP heartbeat in seconds (`heartbeat_timeout_threshold`).
    pub heartbeat: u16,
    /// Connection name shown in the management UI.
    pub connection_name: Option<String>,
}

impl Default for AmqpOptions {
    fn default() -> Self {
        Self {
            exchange: "openstack".into(),
            declare_exchange: true,
            declare_queues_on_publish: true,
            reply_queue_prefix: None,
            retry_interval: Duration::from_secs(1),
            retry_backoff: Duration::from_secs(2),
            interval_max: Duration::from_secs(30),
            prefetch_count: 64,
            connect_timeout: Duration::from_secs(10),
            publish_timeout: Duration::from_secs(60),
            heartbeat: 60,
            connection_name: None,
        }
    }
}

impl AmqpOptions {
    /// Defaults with the given control exchange.
    pub fn with_exchange(exchange: impl Into<String>) -> Self {
        Self {
            exchange: exchange.into(),
            ..Self::default()
        }
    }

    /// Delay before reconnection attempt number `attempt` (0-based): 0 for the first,
    /// then `retry_interval + (attempt - 1) * retry_backoff`, capped at `interval_max`.
    pub fn backoff(&self, attempt: u32) -> Duration {
        if attempt == 0 {
            return Duration::ZERO;
        }
        (self.retry_interval + self.retry_backoff * (attempt - 1)).min(self.interval_max)
    }
}

/// A live connection with its publisher.
struct Live {
    connection: Connection,
    publisher: Publisher,
    /// Kept so the reply consumer's channel stays open as long as the connection.
    _reply_channel: Channel,
    /// Channel for queue declarations made on behalf of publishers, and the routing
    /// keys already declared on this connection.
    declarer: tokio::sync::Mutex<(Option<Channel>, std::collections::HashSet<String>)>,
    /// Cancelled as soon as anything shows the connection is unusable.
    lost: CancellationToken,
    /// Why the broker closed the publisher channel, if it did (403 = not permitted).
    publish_close: CloseInfo,
}

struct Waiter {
    acc: ReplyAccumulator,
    tx: Option<oneshot::Sender<Result<Value, RemoteError>>>,
}

struct Shared {
    url: TransportUrl,
    opts: AmqpOptions,
    reply_queue: String,
    /// The current connection; `None` while (re)connecting.
    current: watch::Sender<Option<Arc<Live>>>,
    /// Calls waiting for replies, by `_msg_id`.
    waiting: Mutex<HashMap<String, Waiter>>,
    /// Stops the supervisor and every server of this transport.
    shutdown: CancellationToken,
    /// The supervisor task, awaited by [`AmqpTransport::shutdown`].
    supervisor: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// Cancels the transport when the last [`AmqpTransport`] clone is dropped.
struct DropGuard(CancellationToken);
impl Drop for DropGuard {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

/// oslo.messaging-compatible transport over RabbitMQ. Clones share one connection.
#[derive(Clone)]
pub struct AmqpTransport {
    shared: Arc<Shared>,
    _guard: Arc<DropGuard>,
}

fn props(expiration_ms: Option<u128>) -> BasicProperties {
    let mut p = BasicProperties::default();
    p.with_content_type("application/json")
        .with_content_encoding("utf-8")
        .with_delivery_mode(2);
    if let Some(ms) = expiration_ms {
        p.with_expiration(&ms.to_string());
    }
    p.finish()
}

fn field_table(pairs: &[(&str, FieldValue)]) -> FieldTable {
    let mut t = FieldTable::new();
    for (k, v) in pairs {
        t.insert((*k).try_into().expect("short field name"), v.clone());
    }
    t
}

impl AmqpTransport {
    /// Connects to the broker (waiting at most `opts.connect_timeout` per host for the
    /// first connection) and starts the connection supervisor.
    pub async fn connect(url: TransportUrl, opts: AmqpOptions) -> Result<Self, RpcError> {
        if url.hosts.is_empty() {
            return Err(RpcError::Config("transport_url has no host".into()));
        }
        let reply_queue = match &opts.reply_queue_prefix {
            Some(p) => format!("reply_{p}_{}", new_hex_id()),
            None => format!("reply_{}", new_hex_id()),
        };
        let (current, _) = watch::channel(None);
        let shutdown = CancellationToken::new();
        let shared = Arc::new(Shared {
            url,
            opts,
            reply_queue,
            current,
            waiting: Mutex::new(HashMap::new()),
            shutdown: shutdown.clone(),
            supervisor: Mutex::new(None),
        });
        // First connection in the foreground so configuration errors surface here.
        let mut last_err = None;
        let mut first = None;
        for host in &shared.url.hosts {
            match open_live(&shared, host).await {
                Ok(x) => {
                    first = Some(x);
                    break;
                }
                Err(e) => last_err = Some(e),
            }
        }
        let Some(first) = first else {
            return Err(last_err.unwrap_or_else(|| RpcError::Unavailable("no broker host".into())));
        };
        let task = tokio::spawn(supervise(shared.clone(), Some(first)));
        *shared.supervisor.lock().expect("supervisor lock") = Some(task);
        Ok(Self {
            shared,
            _guard: Arc::new(DropGuard(shutdown)),
        })
    }

    /// Parses `transport_url` and connects with `opts`.
    pub async fn connect_url(transport_url: &str, opts: AmqpOptions) -> Result<Self, RpcError> {
        Self::connect(TransportUrl::parse(transport_url)?, opts).await
    }

    /// Name of this transport's reply queue.
    pub fn reply_queue(&self) -> &str {
        &self.shared.reply_queue
    }

    /// The control exchange.
    pub fn exchange(&self) -> &str {
        &self.shared.opts.exchange
    }

    /// True while a connection is up.
    pub fn is_connected(&self) -> bool {
        self.shared
            .current
            .borrow()
            .as_ref()
            .is_some_and(|l| !l.lost.is_cancelled())
    }

    /// Stops the supervisor and all servers, and closes the connection.
    pub fn close(&self) {
        self.shared.shutdown.cancel();
    }

    /// Like [`AmqpTransport::close`], and waits until the reply queue is deleted and the
    /// connection closed.
    pub async fn shutdown(&self) {
        self.shared.shutdown.cancel();
        let task = self
            .shared
            .supervisor
            .lock()
            .expect("supervisor lock")
            .take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }

    /// Waits until a connection is up (used by tests after a broker restart).
    pub async fn wait_connected(&self, timeout: Duration) -> Result<(), RpcError> {
        self.shared
            .wait_live(Instant::now() + timeout)
            .await
            .map(|_| ())
    }
}

/// Opens a connection: publisher channel (confirm mode), exchange, reply queue consumer.
async fn open_live(
    shared: &Shared,
    host: &BrokerHost,
) -> Result<(Arc<Live>, mpsc::UnboundedReceiver<ConsumerMessage>), RpcError> {
    let opts = &shared.opts;
    let mut args =
        OpenConnectionArguments::new(&host.host, host.port, &host.username, &host.password);
    args.virtual_host(&shared.url.virtual_host)
        .heartbeat(opts.heartbeat);
    if let Some(n) = &opts.connection_name {
        args.connection_name(n);
    }
    let connection =
        match tokio::time::timeout(opts.connect_timeout, Connection::open(&args.finish())).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                let text = e.to_string();
                if text.contains("ACCESS_REFUSED") || text.contains("403") {
                    return Err(RpcError::AccessRefused(format!(
                        "login to {host:?} refused"
                    )));
                }
                return Err(RpcError::Unavailable(format!(
                    "cannot connect to {host:?}: {text}"
                )));
            }
            Err(_) => {
                return Err(RpcError::Unavailable(format!(
                    "timed out connecting to {host:?}"
                )))
            }
        };
    let lost = CancellationToken::new();
    let fail = |e: amqprs::error::Error| {
        RpcError::Unavailable(format!("AMQP setup on {host:?} failed: {e}"))
    };
    connection
        .register_callback(ConnCallback { lost: lost.clone() })
        .await
        .map_err(fail)?;

    let confirms = Arc::new(Mutex::new(ConfirmState::default()));
    let pinfo: CloseInfo = Default::default();
    let pch = connection.open_channel(None).await.map_err(fail)?;
    pch.register_callback(ChanCallback {
        close_info: pinfo.clone(),
        confirms: Some(confirms.clone()),
        lost: Some(lost.clone()),
    })
    .await
    .map_err(fail)?;
    pch.confirm_select(ConfirmSelectArguments::default())
        .await
        .map_err(fail)?;
    if opts.declare_exchange {
        declare_exchange(&pch, &opts.exchange).await.map_err(fail)?;
    }

    let rinfo: CloseInfo = Default::default();
    let rch = connection.open_channel(None).await.map_err(fail)?;
    rch.register_callback(ChanCallback {
        close_info: rinfo.clone(),
        confirms: None,
        lost: Some(lost.clone()),
    })
    .await
    .map_err(fail)?;
    let mut q = QueueDeclareArguments::new(&shared.reply_queue);
    q.durable(false)
        .auto_delete(false)
        .arguments(field_table(&[(
            "x-expires",
            FieldValue::I(REPLY_QUEUE_EXPIRES_MS),
        )]));
    if let Err(e) = rch.queue_declare(q.finish()).await {
        return Err(map_err(e, &rinfo, "declaring the reply queue").await);
    }
    let mut c = BasicConsumeArguments::new(&shared.reply_queue, "");
    c.manual_ack(false);
    let (_tag, rx) = match rch.basic_consume_rx(c.finish()).await {
        Ok(x) => x,
        Err(e) => return Err(map_err(e, &rinfo, "consuming the reply queue").await),
    };
    let live = Arc::new(Live {
        connection,
        publisher: Publisher::new(pch, confirms),
        _reply_channel: rch,
        declarer: tokio::sync::Mutex::new((None, Default::default())),
        lost,
        publish_close: pinfo,
    });
    Ok((live, rx))
}

async fn declare_exchange(ch: &Channel, exchange: &str) -> Result<(), amqprs::error::Error> {
    let mut x = ExchangeDeclareArguments::new(exchange, "topic");
    x.durable(false).auto_delete(false);
    ch.exchange_declare(x.finish()).await
}

/// Owns the connection: publishes it, routes replies, detects loss, reconnects.
async fn supervise(
    shared: Arc<Shared>,
    mut first: Option<(Arc<Live>, mpsc::UnboundedReceiver<ConsumerMessage>)>,
) {
    let mut attempt: u32 = 0;
    let mut reconnecting = false;
    let mut host_idx = 0usize;
    loop {
        if shared.shutdown.is_cancelled() {
            break;
        }
        let opened = match first.take() {
            Some(x) => Ok(x),
            None => {
                let host = &shared.url.hosts[host_idx % shared.url.hosts.len()];
                open_live(&shared, host).await
            }
        };
        match opened {
            Ok((live, mut replies)) => {
                if reconnecting {
                    tracing::info!(url = %shared.url, "reconnected to the message broker");
                }
                attempt = 0;
                shared.current.send_replace(Some(live.clone()));
                loop {
                    tokio::select! {
                        _ = shared.shutdown.cancelled() => break,
                        _ = live.lost.cancelled() => break,
                        _ = live.connection.listen_network_io_failure() => break,
                        m = replies.recv() => match m {
                            Some(m) => shared.route_reply(m),
                            None => break,
                        },
                    }
                }
                if shared.shutdown.is_cancelled() && !live.lost.is_cancelled() {
                    let delete = live.publisher.channel.queue_delete(
                        amqprs::channel::QueueDeleteArguments::new(&shared.reply_queue),
                    );
                    let _ = tokio::time::timeout(Duration::from_secs(2), delete).await;
                }
                live.lost.cancel();
                shared.current.send_replace(None);
                let _ =
                    tokio::time::timeout(Duration::from_secs(2), live.connection.clone().close())
                        .await;
                if shared.shutdown.is_cancelled() {
                    break;
                }
                tracing::warn!(url = %shared.url, "lost the connection to the message broker; reconnecting");
                reconnecting = true;
            }
            Err(e) => {
                let delay = shared.opts.backoff(attempt.max(1));
                attempt += 1;
                host_idx += 1;
                tracing::warn!(url = %shared.url, error = %e, retry_in_s = delay.as_secs_f64(), "cannot reach the message broker");
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = shared.shutdown.cancelled() => break,
                }
            }
        }
    }
    shared.current.send_replace(None);
}

impl Shared {
    fn route_reply(&self, m: ConsumerMessage) {
        let Some(body) = m.content else { return };
        let reply = match decode_envelope(&body) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "dropping an unreadable reply");
                return;
            }
        };
        let Some(msg_id) = reply.get("_msg_id").and_then(Value::as_str) else {
            return;
        };
        let mut waiting = self.waiting.lock().expect("waiting lock");
        let Some(w) = waiting.get_mut(msg_id) else {
            tracing::debug!(msg_id, "reply for a call nobody waits for (timed out?)");
            return;
        };
        if let Some(outcome) = w.acc.feed(&reply) {
            if let Some(tx) = w.tx.take() {
                let _ = tx.send(outcome);
            }
            waiting.remove(msg_id);
        }
    }

    /// The current connection, waiting for (re)connection until `deadline`.
    async fn wait_live(&self, deadline: Instant) -> Result<Arc<Live>, RpcError> {
        let mut rx = self.current.subscribe();
        let wait = rx.wait_for(|c| c.as_ref().is_some_and(|l| !l.lost.is_cancelled()));
        tokio::select! {
            r = tokio::time::timeout_at(deadline, wait) => match r {
                Ok(Ok(live)) => Ok(live.clone().expect("checked by wait_for")),
                Ok(Err(_)) => Err(RpcError::Shutdown),
                Err(_) => Err(RpcError::Unavailable(format!("no connection to the message broker at {}", self.url))),
            },
            _ = self.shutdown.cancelled() => Err(RpcError::Shutdown),
        }
    }

    /// Declares queue `routing_key` bound to the exchange once per connection
    /// (best effort: a refusal is logged and not retried on this connection).
    async fn ensure_queue(&self, live: &Live, routing_key: &str) {
        let mut d = live.declarer.lock().await;
        if d.1.contains(routing_key) {
            return;
        }
        let info: CloseInfo = Default::default();
        if d.0.as_ref().is_none_or(|c| !c.is_open()) {
            let Ok(ch) = live.connection.open_channel(None).await else {
                return;
            };
            if ch
                .register_callback(ChanCallback {
                    close_info: info.clone(),
                    confirms: None,
                    lost: None,
                })
                .await
                .is_err()
            {
                return;
            }
            d.0 = Some(ch);
        }
        let ch = d.0.as_ref().expect("set above");
        let target = Target::topic(routing_key);
        if let Err(e) = self.declare_queues(ch, &info, &target).await {
            tracing::debug!(queue = routing_key, error = %e, "could not declare the destination queue");
        }
        d.1.insert(routing_key.to_owned());
    }

    /// Publishes with confirms, retrying across reconnections until `deadline`.
    async fn publish(
        &self,
        exchange: &str,
        routing_key: &str,
        body: Vec<u8>,
        props: BasicProperties,
        mandatory: bool,
        deadline: Instant,
    ) -> Result<(), RpcError> {
        loop {
            let live = self.wait_live(deadline).await?;
            if !exchange.is_empty() && self.opts.declare_queues_on_publish {
                self.ensure_queue(&live, routing_key).await;
            }
            let rx = match live
                .publisher
                .publish(
                    exchange,
                    routing_key,
                    body.clone(),
                    props.clone(),
                    mandatory,
                )
                .await
            {
                Ok(rx) => rx,
                Err(e) => {
                    tracing::debug!(error = %e, "publish failed; waiting for reconnection");
                    live.lost.cancel();
                    continue;
                }
            };
            tokio::select! {
                r = tokio::time::timeout_at(deadline, rx) => match r {
                    Ok(Ok(true)) => return Ok(()),
                    Ok(Ok(false)) => return Err(RpcError::NotAccepted(format!("broker nacked the message to {routing_key}"))),
                    // Channel closed before the confirm: publish again on the next
                    // connection, unless the broker refused the publish itself.
                    Ok(Err(_)) => {
                        live.lost.cancel();
                        if let Some((channel::ACCESS_REFUSED, text)) = live.publish_close.lock().expect("close info lock").clone() {
                            return Err(RpcError::AccessRefused(format!("publishing to {routing_key}: {text}")));
                        }
                        continue;
                    }
                    Err(_) => return Err(RpcError::Unavailable(format!("no confirm from the broker for the message to {routing_key}"))),
                },
                _ = live.lost.cancelled() => {
                    if let Some((channel::ACCESS_REFUSED, text)) = live.publish_close.lock().expect("close info lock").clone() {
                        return Err(RpcError::AccessRefused(format!("publishing to {routing_key}: {text}")));
                    }
                    continue;
                }
            }
        }
    }

    async fn declare_queues(
        &self,
        ch: &Channel,
        info: &CloseInfo,
        target: &Target,
    ) -> Result<Vec<String>, RpcError> {
        if self.opts.declare_exchange {
            if let Err(e) = declare_exchange(ch, &self.opts.exchange).await {
                return Err(map_err(e, info, "declaring the exchange").await);
            }
        }
        let mut names = vec![target.topic.clone()];
        if let Some(s) = &target.server {
            names.push(format!("{}.{}", target.topic, s));
        }
        for n in &names {
            let mut q = QueueDeclareArguments::new(n);
            q.durable(false).auto_delete(false);
            if let Err(e) = ch.queue_declare(q.finish()).await {
                return Err(map_err(e, info, &format!("declaring queue {n}")).await);
            }
            if let Err(e) = ch
                .queue_bind(QueueBindArguments::new(n, &self.opts.exchange, n))
                .await
            {
                return Err(map_err(e, info, &format!("binding queue {n}")).await);
            }
        }
        Ok(names)
    }

    /// Opens a server channel: QoS, queues, consumers merged into one receiver.
    async fn start_consumer(
        &self,
        live: &Live,
        target: &Target,
    ) -> Result<
        (
            Channel,
            Vec<String>,
            mpsc::UnboundedReceiver<ConsumerMessage>,
        ),
        RpcError,
    > {
        let info: CloseInfo = Default::default();
        let ch = live
            .connection
            .open_channel(None)
            .await
            .map_err(|e| RpcError::Unavailable(format!("opening a channel: {e}")))?;
        ch.register_callback(ChanCallback {
            close_info: info.clone(),
            confirms: None,
            lost: None,
        })
        .await
        .map_err(|e| RpcError::Unavailable(e.to_string()))?;
        if let Err(e) = ch
            .basic_qos(BasicQosArguments::new(0, self.opts.prefetch_count, false))
            .await
        {
            return Err(map_err(e, &info, "setting QoS").await);
        }
        let names = self.declare_queues(&ch, &info, target).await?;
        let (tx, rx) = mpsc::unbounded_channel();
        let mut tags = Vec::new();
        for n in &names {
            let mut c = BasicConsumeArguments::new(n, "");
            c.manual_ack(true);
            let (tag, mut one) = match ch.basic_consume_rx(c.finish()).await {
                Ok(x) => x,
                Err(e) => return Err(map_err(e, &info, &format!("consuming queue {n}")).await),
            };
            tags.push(tag);
            let tx = tx.clone();
            tokio::spawn(async move {
                while let Some(m) = one.recv().await {
                    if tx.send(m).is_err() {
                        break;
                    }
                }
            });
        }
        Ok((ch, tags, rx))
    }

    async fn send_reply(self: Arc<Self>, reply_q: String, reply: Map<String, Value>) {
        let body = encode_envelope(&reply);
        let deadline = Instant::now() + self.opts.publish_timeout;
        if let Err(e) = self
            .publish("", &reply_q, body, props(None), true, deadline)
            .await
        {
            tracing::warn!(reply_queue = %reply_q, error = %e, "could not send a reply");
        }
    }
}

/// A server's live subscription: connection, channel, consumer tags, merged deliveries.
type Subscription = (
    Arc<Live>,
    Channel,
    Vec<String>,
    mpsc::UnboundedReceiver<ConsumerMessage>,
);

/// One server: consumes, dispatches, and re-subscribes after reconnections.
async fn run_server(
    shared: Arc<Shared>,
    target: Target,
    runtime: ServerRuntime,
    cancel: CancellationToken,
    mut first: Option<Subscription>,
) {
    let mut attempt = 0u32;
    loop {
        let (live, ch, tags, mut rx) = match first.take() {
            Some(x) => x,
            None => {
                let live = tokio::select! {
                    _ = cancel.cancelled() => break,
                    l = shared.wait_live(Instant::now() + Duration::from_secs(3600 * 24 * 365)) => match l {
                        Ok(l) => l,
                        Err(_) => break,
                    },
                };
                match shared.start_consumer(&live, &target).await {
                    Ok((ch, tags, rx)) => {
                        tracing::info!(topic = %target, "server resumed consuming");
                        attempt = 0;
                        (live, ch, tags, rx)
                    }
                    Err(e) => {
                        attempt += 1;
                        let delay = shared.opts.backoff(attempt);
                        tracing::warn!(topic = %target, error = %e, retry_in_s = delay.as_secs_f64(), "server cannot consume");
                        tokio::select! {
                            _ = cancel.cancelled() => break,
                            _ = tokio::time::sleep(delay) => continue,
                        }
                    }
                }
            }
        };
        let graceful = loop {
            let permit = tokio::select! {
                _ = cancel.cancelled() => break true,
                p = runtime.acquire() => p,
            };
            let m = tokio::select! {
                _ = cancel.cancelled() => break true,
                _ = live.lost.cancelled() => break false,
                m = rx.recv() => m,
            };
            let Some(m) = m else { break false };
            let (Some(deliver), Some(body)) = (m.deliver, m.content) else {
                continue;
            };
            if ch
                .basic_ack(BasicAckArguments::new(deliver.delivery_tag(), false))
                .await
                .is_err()
            {
                break false;
            }
            match decode_envelope(&body) {
                Ok(msg) => {
                    let s = shared.clone();
                    runtime.submit(permit, msg, move |q, r| s.send_reply(q, r));
                }
                Err(e) => {
                    tracing::warn!(topic = %target, error = %e, "dropping an unreadable message")
                }
            }
        };
        if graceful {
            for t in tags {
                let _ = ch.basic_cancel(BasicCancelArguments::new(&t)).await;
            }
            runtime.tracker.close();
            runtime.tracker.wait().await;
            // Closing the channel returns prefetched, unstarted messages to the queue.
            let _ = ch.close().await;
            return;
        }
        drop(ch);
        tracing::warn!(topic = %target, "server lost its channel; will resume after reconnection");
    }
    runtime.tracker.close();
    runtime.tracker.wait().await;
}

#[async_trait]
impl Transport for AmqpTransport {
    async fn call(
        &self,
        target: &Target,
        mut message: Map<String, Value>,
        timeout: Duration,
    ) -> Result<Value, RpcError> {
        let method = message
            .get("method")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let msg_id = new_hex_id();
        message.insert("_unique_id".into(), Value::String(new_hex_id()));
        message.insert("_msg_id".into(), Value::String(msg_id.clone()));
        message.insert(
            "_reply_q".into(),
            Value::String(self.shared.reply_queue.clone()),
        );
        message.insert("_timeout".into(), Value::Null);
        let (tx, rx) = oneshot::channel();
        self.shared.waiting.lock().expect("waiting lock").insert(
            msg_id.clone(),
            Waiter {
                acc: ReplyAccumulator::default(),
                tx: Some(tx),
            },
        );
        let deadline = Instant::now() + timeout;
        let body = encode_envelope(&message);
        let shared = &self.shared;
        let routing_key = target.routing_key();
        let outcome = tokio::time::timeout_at(deadline, async {
            shared
                .publish(
                    &shared.opts.exchange,
                    &routing_key,
                    body,
                    props(Some(timeout.as_millis())),
                    false,
                    deadline,
                )
                .await?;
            rx.await.map_err(|_| RpcError::Shutdown)
        })
        .await;
        self.shared
            .waiting
            .lock()
            .expect("waiting lock")
            .remove(&msg_id);
        let timed_out = || RpcError::Timeout {
            topic: target.to_string(),
            method: method.clone(),
            seconds: timeout.as_secs_f64(),
        };
        match outcome {
            Ok(Ok(Ok(v))) => Ok(v),
            Ok(Ok(Err(remote))) => Err(RpcError::Remote(remote)),
            Ok(Err(RpcError::Unavailable(_))) if Instant::now() >= deadline => Err(timed_out()),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(timed_out()),
        }
    }

    async fn cast(&self, target: &Target, mut message: Map<String, Value>) -> Result<(), RpcError> {
        message.insert("_unique_id".into(), Value::String(new_hex_id()));
        let body = encode_envelope(&message);
        let deadline = Instant::now() + self.shared.opts.publish_timeout;
        self.shared
            .publish(
                &self.shared.opts.exchange,
                &target.routing_key(),
                body,
                props(None),
                false,
                deadline,
            )
            .await
    }

    async fn serve(
        &self,
        target: &Target,
        handler: Arc<dyn MessageHandler>,
    ) -> Result<ServerHandle, RpcError> {
        let live = self
            .shared
            .wait_live(Instant::now() + self.shared.opts.connect_timeout)
            .await?;
        let (ch, tags, rx) = self.shared.start_consumer(&live, target).await?;
        let runtime = ServerRuntime::new(target.clone(), handler);
        let cancel = self.shared.shutdown.child_token();
        let done = tokio::spawn(run_server(
            self.shared.clone(),
            target.clone(),
            runtime,
            cancel.clone(),
            Some((live, ch, tags, rx)),
        ));
        Ok(ServerHandle::new(target.clone(), cancel, done))
    }

    async fn declare_topic_queues(
        &self,
        topic: &str,
        server: Option<&str>,
    ) -> Result<(), RpcError> {
        let live = self
            .shared
            .wait_live(Instant::now() + self.shared.opts.publish_timeout)
            .await?;
        let info: CloseInfo = Default::default();
        let ch = live
            .connection
            .open_channel(None)
            .await
            .map_err(|e| RpcError::Unavailable(format!("opening a channel: {e}")))?;
        ch.register_callback(ChanCallback {
            close_info: info.clone(),
            confirms: None,
            lost: None,
        })
        .await
        .map_err(|e| RpcError::Unavailable(e.to_string()))?;
        let target = Target {
            topic: topic.to_owned(),
            server: server.map(str::to_owned),
        };
        let r = self
            .shared
            .declare_queues(&ch, &info, &target)
            .await
            .map(|_| ());
        let _ = ch.close().await;
        r
    }

    async fn delete_topic_queues(&self, topic: &str, server: Option<&str>) -> Result<(), RpcError> {
        let live = self
            .shared
            .wait_live(Instant::now() + self.shared.opts.publish_timeout)
            .await?;
        let info: CloseInfo = Default::default();
        let ch = live
            .connection
            .open_channel(None)
            .await
            .map_err(|e| RpcError::Unavailable(format!("opening a channel: {e}")))?;
        ch.register_callback(ChanCallback {
            close_info: info.clone(),
            confirms: None,
            lost: None,
        })
        .await
        .map_err(|e| RpcError::Unavailable(e.to_string()))?;
        let mut names = vec![topic.to_owned()];
        if let Some(s) = server {
            names.push(format!("{topic}.{s}"));
        }
        let mut result = Ok(());
        for n in &names {
            if let Err(e) = ch
                .queue_delete(amqprs::channel::QueueDeleteArguments::new(n))
                .await
            {
                result = Err(map_err(e, &info, &format!("deleting queue {n}")).await);
                break;
            }
        }
        let _ = ch.close().await;
        // Forget declarations made on this connection so a later publish re-declares.
        live.declarer.lock().await.1.retain(|k| !names.contains(k));
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_follows_oslo_steps() {
        let o = AmqpOptions::default();
        let d: Vec<u64> = (0..20).map(|a| o.backoff(a).as_secs()).collect();
        assert_eq!(&d[..5], &[0, 1, 3, 5, 7]);
        assert_eq!(d[19], 30);
    }
}
