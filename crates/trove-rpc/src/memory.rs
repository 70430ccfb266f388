//! In-process transport with the same semantics as the AMQP one: topic and `topic.server`
//! queues, competing consumers (round robin), messages kept while a declared queue has no
//! consumer, unroutable messages dropped, duplicate suppression, call timeouts.
//! Used by the all-in-one mode and unit tests. Messages never leave the process.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Map, Value};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::message::{new_hex_id, ReplyAccumulator, Target};
use crate::server::{MessageHandler, ServerHandle, ServerRuntime};
use crate::transport::Transport;
use crate::{RemoteError, RpcError};

type Delivery = (String, Map<String, Value>);

#[derive(Default)]
struct Queue {
    consumers: Vec<(u64, mpsc::UnboundedSender<Delivery>)>,
    pending: VecDeque<Map<String, Value>>,
    next: usize,
}

#[derive(Default)]
struct Inner {
    /// Queues by name (= routing key).
    queues: Mutex<HashMap<String, Queue>>,
    /// Callers waiting for a reply, by `_msg_id`.
    waiting: Mutex<HashMap<String, oneshot::Sender<Result<Value, RemoteError>>>>,
    next_consumer: std::sync::atomic::AtomicU64,
}

impl Inner {
    fn deliver(&self, queue_name: &str, msg: Map<String, Value>) -> bool {
        let mut queues = self.queues.lock().expect("queues lock");
        let Some(q) = queues.get_mut(queue_name) else {
            return false;
        };
        let mut msg = msg;
        while !q.consumers.is_empty() {
            let i = q.next % q.consumers.len();
            q.next = q.next.wrapping_add(1);
            match q.consumers[i].1.send((queue_name.to_owned(), msg)) {
                Ok(()) => return true,
                Err(mpsc::error::SendError((_, m))) => {
                    msg = m;
                    q.consumers.remove(i);
                }
            }
        }
        q.pending.push_back(msg);
        true
    }

    fn declare(&self, name: &str) {
        self.queues
            .lock()
            .expect("queues lock")
            .entry(name.to_owned())
            .or_default();
    }
}

/// The in-memory [`Transport`]. Cloning shares the same "broker".
#[derive(Clone, Default)]
pub struct InMemoryTransport {
    inner: Arc<Inner>,
}

impl InMemoryTransport {
    /// A new, empty in-process broker.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of messages waiting in queue `name` (no consumer yet), for tests.
    pub fn pending(&self, name: &str) -> usize {
        self.inner
            .queues
            .lock()
            .expect("queues lock")
            .get(name)
            .map_or(0, |q| q.pending.len())
    }
}

#[async_trait]
impl Transport for InMemoryTransport {
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
        message.insert("_reply_q".into(), Value::String("reply_in_memory".into()));
        message.insert("_timeout".into(), Value::Null);
        let (tx, rx) = oneshot::channel();
        self.inner
            .waiting
            .lock()
            .expect("waiting lock")
            .insert(msg_id.clone(), tx);
        self.inner.deliver(&target.routing_key(), message);
        let outcome = tokio::time::timeout(timeout, rx).await;
        self.inner
            .waiting
            .lock()
            .expect("waiting lock")
            .remove(&msg_id);
        match outcome {
            Ok(Ok(Ok(v))) => Ok(v),
            Ok(Ok(Err(e))) => Err(RpcError::Remote(e)),
            Ok(Err(_)) => Err(RpcError::Shutdown),
            Err(_) => Err(RpcError::Timeout {
                topic: target.to_string(),
                method,
                seconds: timeout.as_secs_f64(),
            }),
        }
    }

    async fn cast(&self, target: &Target, mut message: Map<String, Value>) -> Result<(), RpcError> {
        message.insert("_unique_id".into(), Value::String(new_hex_id()));
        if !self.inner.deliver(&target.routing_key(), message) {
            tracing::debug!(topic = %target, "no queue bound to the routing key; message dropped");
        }
        Ok(())
    }

    async fn serve(
        &self,
        target: &Target,
        handler: Arc<dyn MessageHandler>,
    ) -> Result<ServerHandle, RpcError> {
        let mut names = vec![target.topic.clone()];
        if let Some(s) = &target.server {
            names.push(format!("{}.{}", target.topic, s));
        }
        let id = self
            .inner
            .next_consumer
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (tx, mut rx) = mpsc::unbounded_channel::<Delivery>();
        {
            let mut queues = self.inner.queues.lock().expect("queues lock");
            for n in &names {
                let q = queues.entry(n.clone()).or_default();
                q.consumers.push((id, tx.clone()));
                while let Some(m) = q.pending.pop_front() {
                    let _ = tx.send((n.clone(), m));
                }
            }
        }
        drop(tx);
        let runtime = ServerRuntime::new(target.clone(), handler);
        let cancel = CancellationToken::new();
        let inner = self.inner.clone();
        let stop = cancel.clone();
        let done = tokio::spawn(async move {
            loop {
                let permit = tokio::select! {
                    _ = stop.cancelled() => break,
                    p = runtime.acquire() => p,
                };
                let delivery = tokio::select! {
                    _ = stop.cancelled() => break,
                    d = rx.recv() => d,
                };
                let Some((_queue, msg)) = delivery else { break };
                let replies = inner.clone();
                runtime.submit(permit, msg, move |_reply_q, reply| async move {
                    let mut acc = ReplyAccumulator::default();
                    if let Some(outcome) = acc.feed(&reply) {
                        let id = reply
                            .get("_msg_id")
                            .and_then(Value::as_str)
                            .unwrap_or_default();
                        if let Some(tx) = replies.waiting.lock().expect("waiting lock").remove(id) {
                            let _ = tx.send(outcome);
                        }
                    }
                });
            }
            // Stop consuming; messages handed to us but not started go back to their queue.
            {
                let mut queues = inner.queues.lock().expect("queues lock");
                for q in queues.values_mut() {
                    q.consumers.retain(|(c, _)| *c != id);
                }
            }
            rx.close();
            while let Ok((queue, msg)) = rx.try_recv() {
                inner.deliver(&queue, msg);
            }
            runtime.tracker.close();
            runtime.tracker.wait().await;
        });
        Ok(ServerHandle::new(target.clone(), cancel, done))
    }

    async fn declare_topic_queues(
        &self,
        topic: &str,
        server: Option<&str>,
    ) -> Result<(), RpcError> {
        self.inner.declare(topic);
        if let Some(s) = server {
            self.inner.declare(&format!("{topic}.{s}"));
        }
        Ok(())
    }

    async fn delete_topic_queues(&self, topic: &str, server: Option<&str>) -> Result<(), RpcError> {
        let mut queues = self.inner.queues.lock().expect("queues lock");
        queues.remove(topic);
        if let Some(s) = server {
            queues.remove(&format!("{topic}.{s}"));
        }
        Ok(())
    }
}
