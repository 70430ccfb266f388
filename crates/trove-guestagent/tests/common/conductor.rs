//! The conductor stand-in: a server on a topic of its own on an in-memory broker that records
//! what the guests cast to it (`update_backup`, heartbeats, notifications).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::{Map, Value};
use trove_rpc::{InMemoryTransport, MessageHandler, RemoteError, ServerHandle, Target, Transport};

/// What the guests cast to the conductor: `(method, args)` in arrival order.
#[derive(Default)]
pub struct Recorder(Mutex<Vec<(String, Map<String, Value>)>>);

#[async_trait]
impl MessageHandler for Recorder {
    async fn handle(&self, message: Map<String, Value>) -> Result<Value, RemoteError> {
        let method = message
            .get("method")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let args = message
            .get("args")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        self.0.lock().unwrap().push((method, args));
        Ok(Value::Null)
    }
}

impl Recorder {
    /// The arguments of every cast of `method`, in arrival order.
    pub fn calls(&self, method: &str) -> Vec<Map<String, Value>> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|(m, _)| m == method)
            .map(|(_, a)| a.clone())
            .collect()
    }

    /// The updates of a backup in the order the guest sent them (each cast is handled in
    /// a task of its own, so they may arrive in another order).
    pub fn backup_updates(&self, backup_id: &str) -> Vec<Map<String, Value>> {
        let mut u: Vec<Map<String, Value>> = self
            .calls("update_backup")
            .into_iter()
            .filter(|a| a["backup_id"] == backup_id)
            .collect();
        u.sort_by(|a, b| {
            let sent = |m: &Map<String, Value>| m["sent"].as_f64().unwrap_or(0.0);
            sent(a).total_cmp(&sent(b))
        });
        u
    }

    /// Waits for the final state of a backup (COMPLETED or FAILED); returns every update.
    pub async fn wait_backup_done(
        &self,
        backup_id: &str,
        within: Duration,
    ) -> Vec<Map<String, Value>> {
        let deadline = Instant::now() + within;
        loop {
            let u = self.backup_updates(backup_id);
            if u.iter()
                .any(|a| a["state"] == "COMPLETED" || a["state"] == "FAILED")
            {
                // Updates sent just before the last one may still be on their way.
                tokio::time::sleep(Duration::from_millis(300)).await;
                return self.backup_updates(backup_id);
            }
            assert!(
                Instant::now() < deadline,
                "backup {backup_id} not finished in {within:?}: {u:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits for a heartbeat of `instance` with one of `statuses`; returns it.
    pub async fn wait_heartbeat(
        &self,
        instance: &str,
        statuses: &[&str],
        within: Duration,
    ) -> String {
        let deadline = Instant::now() + within;
        loop {
            let seen: Vec<String> = self
                .calls("heartbeat")
                .into_iter()
                .filter(|a| a["instance_id"] == instance)
                .filter_map(|a| a["payload"]["service_status"].as_str().map(str::to_owned))
                .collect();
            if let Some(s) = seen.iter().find(|s| statuses.contains(&s.as_str())) {
                return s.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no heartbeat {statuses:?} from {instance} in {within:?}: {seen:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The first fault reported (`notify_exc_info`) whose message contains `needle`, or "".
    pub fn fault_of(&self, needle: &str) -> String {
        self.calls("notify_exc_info")
            .iter()
            .filter_map(|a| a["message"].as_str().map(str::to_owned))
            .find(|m| m.contains(needle))
            .unwrap_or_default()
    }
}

/// An in-memory broker with the conductor stand-in serving on a topic of its own; the
/// stand-in stops when this is dropped.
pub struct Conductor {
    pub transport: InMemoryTransport,
    pub topic: String,
    pub recorder: Arc<Recorder>,
    _server: ServerHandle,
}

impl Conductor {
    pub async fn start() -> Conductor {
        let transport = InMemoryTransport::new();
        let topic = format!("conductor-{}", uuid::Uuid::new_v4().simple());
        let recorder = Arc::new(Recorder::default());
        let server = transport
            .serve(&Target::topic(topic.clone()), recorder.clone())
            .await
            .expect("conductor stand-in serves");
        Conductor {
            transport,
            topic,
            recorder,
            _server: server,
        }
    }
}
