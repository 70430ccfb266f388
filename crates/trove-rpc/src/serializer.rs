//! Serializers: how argument values, results and the context are transformed on the wire.
//!
//! Three styles exist in Trove (spec §6):
//! * [`PlainSerializer`]: nothing is transformed;
//! * [`SecureSerializer`]: with a key, every argument value, every call result and the
//!   whole context are replaced by `base64(AES(json(value)))`; the context becomes
//!   `{"context": "<base64>"}` (`_context_context` on the wire). Used API->taskmanager
//!   (`taskmanager_rpc_encr_key`) and controller<->guest (per-instance key);
//! * [`ConductorGuestSerializer`] / [`ConductorHostSerializer`]: guest->conductor, where each
//!   value is tagged with the sending instance id (`csz-instance-id`) so the conductor can
//!   look up that instance's key through an [`InstanceKeyLookup`].
//!
//! A message that should be encrypted but does not decrypt is rejected with
//! [`RpcError::Decrypt`]; its content is never logged and the method is never executed.
//! (Trove silently keeps undecryptable argument values; rejecting is stricter and never
//! refuses anything a correctly keyed Trove peer sends.)

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{Map, Value};
use trove_common::crypto;

use crate::message::python_json;
use crate::RpcError;

/// Context key carrying the encrypted context.
pub const ENCRYPTED_CONTEXT_KEY: &str = "context";
/// Context/argument key naming the sending instance in guest->conductor messages.
pub const INSTANCE_ID_TAG: &str = "csz-instance-id";

/// Transforms values on their way to and from the wire.
#[async_trait]
pub trait Serializer: Send + Sync {
    /// Transforms one argument value or call result before sending.
    fn serialize_entity(&self, entity: Value) -> Result<Value, RpcError>;
    /// Transforms the context dict before it is flattened into `_context_*` keys.
    fn serialize_context(&self, ctx: Map<String, Value>) -> Result<Map<String, Value>, RpcError>;
    /// Reverses [`Serializer::serialize_entity`]; `raw_ctx` is the context as received.
    async fn deserialize_entity(
        &self,
        raw_ctx: &Map<String, Value>,
        entity: Value,
    ) -> Result<Value, RpcError>;
    /// Reverses [`Serializer::serialize_context`].
    async fn deserialize_context(
        &self,
        ctx: Map<String, Value>,
    ) -> Result<Map<String, Value>, RpcError>;
}

/// Leaves everything as it is (no encryption).
#[derive(Debug, Default, Clone, Copy)]
pub struct PlainSerializer;

#[async_trait]
impl Serializer for PlainSerializer {
    fn serialize_entity(&self, entity: Value) -> Result<Value, RpcError> {
        Ok(entity)
    }
    fn serialize_context(&self, ctx: Map<String, Value>) -> Result<Map<String, Value>, RpcError> {
        Ok(ctx)
    }
    async fn deserialize_entity(
        &self,
        _raw_ctx: &Map<String, Value>,
        entity: Value,
    ) -> Result<Value, RpcError> {
        Ok(entity)
    }
    async fn deserialize_context(
        &self,
        ctx: Map<String, Value>,
    ) -> Result<Map<String, Value>, RpcError> {
        Ok(ctx)
    }
}

/// Encrypts a JSON value: `base64(IV || AES-256-CBC(json.dumps(value)))`.
pub fn encrypt_value(key: &str, value: &Value) -> String {
    crypto::encrypt(key, python_json(value).as_bytes())
}

/// Decrypts a value made by [`encrypt_value`] (or by Trove).
pub fn decrypt_value(key: &str, text: &str) -> Result<Value, RpcError> {
    let plain = crypto::decrypt(key, text).map_err(|e| RpcError::Decrypt(e.to_string()))?;
    serde_json::from_slice(&plain)
        .map_err(|_| RpcError::Decrypt("decrypted text is not JSON".into()))
}

fn decrypt_context(key: &str, ctx: &Map<String, Value>) -> Result<Map<String, Value>, RpcError> {
    let Some(Value::String(enc)) = ctx.get(ENCRYPTED_CONTEXT_KEY) else {
        return Err(RpcError::Decrypt(
            "message carries no encrypted context".into(),
        ));
    };
    match decrypt_value(key, enc)? {
        Value::Object(m) => Ok(m),
        _ => Err(RpcError::Decrypt(
            "decrypted context is not a JSON object".into(),
        )),
    }
}

/// Trove's `SecureSerializer`: encrypts with one key (or nothing when the key is `None`).
#[derive(Clone, Default)]
pub struct SecureSerializer {
    key: Option<String>,
}

impl std::fmt::Debug for SecureSerializer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecureSerializer")
            .field("keyed", &self.key.is_some())
            .finish()
    }
}

impl SecureSerializer {
    /// A serializer with `key` (`None`: clear text, like Trove with no key).
    pub fn new(key: Option<String>) -> Self {
        Self { key }
    }
}

#[async_trait]
impl Serializer for SecureSerializer {
    fn serialize_entity(&self, entity: Value) -> Result<Value, RpcError> {
        Ok(match &self.key {
            Some(k) => Value::String(encrypt_value(k, &entity)),
            None => entity,
        })
    }
    fn serialize_context(&self, ctx: Map<String, Value>) -> Result<Map<String, Value>, RpcError> {
        let Some(k) = &self.key else { return Ok(ctx) };
        let mut out = Map::new();
        out.insert(
            ENCRYPTED_CONTEXT_KEY.into(),
            Value::String(encrypt_value(k, &Value::Object(ctx))),
        );
        Ok(out)
    }
    async fn deserialize_entity(
        &self,
        _raw_ctx: &Map<String, Value>,
        entity: Value,
    ) -> Result<Value, RpcError> {
        let Some(k) = &self.key else {
            return Ok(entity);
        };
        match entity {
            Value::String(s) => decrypt_value(k, &s),
            _ => Err(RpcError::Decrypt(
                "argument is not an encrypted string".into(),
            )),
        }
    }
    async fn deserialize_context(
        &self,
        ctx: Map<String, Value>,
    ) -> Result<Map<String, Value>, RpcError> {
        let Some(k) = &self.key else { return Ok(ctx) };
        decrypt_context(k, &ctx)
    }
}

/// Trove's `ConductorGuestSerializer`: the guest side of guest->conductor traffic.
///
/// With a key, each value becomes the JSON *text* of
/// `{"entity": "<base64>", "csz-instance-id": "<guest id>"}` and the context becomes
/// `{"context": "<base64>", "csz-instance-id": "<guest id>"}`.
#[derive(Clone)]
pub struct ConductorGuestSerializer {
    key: Option<String>,
    instance_id: String,
}

impl std::fmt::Debug for ConductorGuestSerializer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConductorGuestSerializer")
            .field("keyed", &self.key.is_some())
            .field("instance_id", &self.instance_id)
            .finish()
    }
}

impl ConductorGuestSerializer {
    /// The serializer of guest `instance_id` holding `key` (`instance_rpc_encr_key`).
    pub fn new(key: Option<String>, instance_id: impl Into<String>) -> Self {
        Self {
            key,
            instance_id: instance_id.into(),
        }
    }
}

#[async_trait]
impl Serializer for ConductorGuestSerializer {
    fn serialize_entity(&self, entity: Value) -> Result<Value, RpcError> {
        let Some(k) = &self.key else {
            return Ok(entity);
        };
        let tagged = serde_json::json!({"entity": encrypt_value(k, &entity), INSTANCE_ID_TAG: self.instance_id});
        Ok(Value::String(python_json(&tagged)))
    }
    fn serialize_context(&self, ctx: Map<String, Value>) -> Result<Map<String, Value>, RpcError> {
        let Some(k) = &self.key else { return Ok(ctx) };
        let mut out = Map::new();
        out.insert(
            ENCRYPTED_CONTEXT_KEY.into(),
            Value::String(encrypt_value(k, &Value::Object(ctx))),
        );
        out.insert(
            INSTANCE_ID_TAG.into(),
            Value::String(self.instance_id.clone()),
        );
        Ok(out)
    }
    async fn deserialize_entity(
        &self,
        _raw_ctx: &Map<String, Value>,
        entity: Value,
    ) -> Result<Value, RpcError> {
        // Conductor replies are unused (every conductor method is a cast).
        Ok(entity)
    }
    async fn deserialize_context(
        &self,
        ctx: Map<String, Value>,
    ) -> Result<Map<String, Value>, RpcError> {
        Ok(ctx)
    }
}

/// Finds an instance's RPC key (the conductor implements it with the control DB:
/// decrypt `instances.encrypted_key` with `inst_rpc_key_encr_key`).
#[async_trait]
pub trait InstanceKeyLookup: Send + Sync {
    /// The plaintext per-instance key, `None` when the instance is unknown or has no key.
    async fn instance_key(&self, instance_id: &str) -> Result<Option<String>, RpcError>;
}

/// An [`InstanceKeyLookup`] over a fixed map (tests, all-in-one mode).
#[derive(Default, Clone)]
pub struct StaticKeyLookup {
    keys: HashMap<String, String>,
}

impl StaticKeyLookup {
    /// Builds the lookup from `(instance id, key)` pairs.
    pub fn new(keys: impl IntoIterator<Item = (String, String)>) -> Self {
        Self {
            keys: keys.into_iter().collect(),
        }
    }
}

#[async_trait]
impl InstanceKeyLookup for StaticKeyLookup {
    async fn instance_key(&self, instance_id: &str) -> Result<Option<String>, RpcError> {
        Ok(self.keys.get(instance_id).cloned())
    }
}

/// Wraps an [`InstanceKeyLookup`] with a cache of the most recently used keys (Trove
/// keeps the 10 most recent instance keys per process). Misses are not cached, so a key
/// set later is found.
pub struct CachingKeyLookup {
    inner: Arc<dyn InstanceKeyLookup>,
    capacity: usize,
    /// Most recently used last.
    cache: std::sync::Mutex<std::collections::VecDeque<(String, String)>>,
}

impl CachingKeyLookup {
    /// Trove's cache size.
    pub const DEFAULT_CAPACITY: usize = 10;

    /// Caches up to `capacity` keys of `inner`.
    pub fn new(inner: Arc<dyn InstanceKeyLookup>, capacity: usize) -> Self {
        Self {
            inner,
            capacity: capacity.max(1),
            cache: Default::default(),
        }
    }

    /// Forgets an instance's key (call when the instance is deleted).
    pub fn forget(&self, instance_id: &str) {
        self.cache
            .lock()
            .expect("key cache lock")
            .retain(|(id, _)| id != instance_id);
    }
}

#[async_trait]
impl InstanceKeyLookup for CachingKeyLookup {
    async fn instance_key(&self, instance_id: &str) -> Result<Option<String>, RpcError> {
        {
            let mut c = self.cache.lock().expect("key cache lock");
            if let Some(pos) = c.iter().position(|(id, _)| id == instance_id) {
                let hit = c.remove(pos).expect("position is valid");
                let key = hit.1.clone();
                c.push_back(hit);
                return Ok(Some(key));
            }
        }
        let found = self.inner.instance_key(instance_id).await?;
        if let Some(k) = &found {
            let mut c = self.cache.lock().expect("key cache lock");
            if c.len() == self.capacity {
                c.pop_front();
            }
            c.push_back((instance_id.to_owned(), k.clone()));
        }
        Ok(found)
    }
}

/// Trove's `ConductorHostSerializer`: the conductor side of guest->conductor traffic.
///
/// Messages without `csz-instance-id` (unencrypted guests, the taskmanager's clear casts)
/// pass through. Tagged ones are decrypted with the tagged instance's key; a tagged value
/// that does not decrypt rejects the whole message. The decrypted context gets
/// `instance_id` set to the tag. It never encrypts (the conductor only receives casts).
#[derive(Clone)]
pub struct ConductorHostSerializer {
    keys: Arc<dyn InstanceKeyLookup>,
}

impl ConductorHostSerializer {
    /// A serializer looking keys up in `keys`.
    pub fn new(keys: Arc<dyn InstanceKeyLookup>) -> Self {
        Self { keys }
    }

    async fn key_for(&self, instance_id: &str) -> Result<String, RpcError> {
        self.keys.instance_key(instance_id).await?.ok_or_else(|| {
            RpcError::Decrypt(format!("no RPC key known for instance {instance_id}"))
        })
    }
}

#[async_trait]
impl Serializer for ConductorHostSerializer {
    fn serialize_entity(&self, entity: Value) -> Result<Value, RpcError> {
        Ok(entity)
    }
    fn serialize_context(&self, ctx: Map<String, Value>) -> Result<Map<String, Value>, RpcError> {
        Ok(ctx)
    }
    async fn deserialize_entity(
        &self,
        _raw_ctx: &Map<String, Value>,
        entity: Value,
    ) -> Result<Value, RpcError> {
        let Value::String(text) = &entity else {
            return Ok(entity);
        };
        let Ok(Value::Object(tagged)) = serde_json::from_str::<Value>(text) else {
            return Ok(entity);
        };
        let Some(Value::String(instance_id)) = tagged.get(INSTANCE_ID_TAG) else {
            return Ok(entity);
        };
        let Some(Value::String(enc)) = tagged.get("entity") else {
            return Err(RpcError::Decrypt("tagged argument without entity".into()));
        };
        let key = self.key_for(instance_id).await?;
        decrypt_value(&key, enc)
    }
    async fn deserialize_context(
        &self,
        ctx: Map<String, Value>,
    ) -> Result<Map<String, Value>, RpcError> {
        let Some(Value::String(instance_id)) = ctx.get(INSTANCE_ID_TAG) else {
            return Ok(ctx);
        };
        let key = self.key_for(instance_id).await?;
        let mut out = decrypt_context(&key, &ctx)?;
        out.insert("instance_id".into(), Value::String(instance_id.clone()));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const K: &str = "bzH6y0SGmjuoY0FNSTptrhgieGXNDX6PIhvz";

    fn ctx() -> Map<String, Value> {
        json!({"user": "u", "auth_token": "tok"})
            .as_object()
            .unwrap()
            .clone()
    }

    #[tokio::test]
    async fn secure_round_trip_and_ciphertext_on_wire() {
        let s = SecureSerializer::new(Some(K.into()));
        let v = json!({"name": "db1", "n": [1, 2]});
        let enc = s.serialize_entity(v.clone()).unwrap();
        let text = enc.as_str().unwrap();
        assert!(!text.contains("db1"));
        assert_eq!(
            crypto::decrypt(K, text).unwrap(),
            python_json(&v).as_bytes()
        );
        assert_eq!(s.deserialize_entity(&Map::new(), enc).await.unwrap(), v);

        let c = s.serialize_context(ctx()).unwrap();
        assert_eq!(c.len(), 1);
        assert!(c["context"].is_string());
        assert_eq!(s.deserialize_context(c).await.unwrap(), ctx());
    }

    #[tokio::test]
    async fn secure_rejects_clear_text_and_wrong_key() {
        let s = SecureSerializer::new(Some(K.into()));
        assert!(matches!(
            s.deserialize_context(ctx()).await,
            Err(RpcError::Decrypt(_))
        ));
        assert!(matches!(
            s.deserialize_entity(&Map::new(), json!(5)).await,
            Err(RpcError::Decrypt(_))
        ));
        let other = SecureSerializer::new(Some("another-key".into()));
        let c = other.serialize_context(ctx()).unwrap();
        assert!(matches!(
            s.deserialize_context(c).await,
            Err(RpcError::Decrypt(_))
        ));
    }

    #[tokio::test]
    async fn unkeyed_is_transparent() {
        let s = SecureSerializer::new(None);
        assert_eq!(s.serialize_entity(json!("x")).unwrap(), json!("x"));
        assert_eq!(s.serialize_context(ctx()).unwrap(), ctx());
    }

    struct Counting(std::sync::atomic::AtomicUsize);
    #[async_trait]
    impl InstanceKeyLookup for Counting {
        async fn instance_key(&self, id: &str) -> Result<Option<String>, RpcError> {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok((id != "none").then(|| format!("key-{id}")))
        }
    }

    #[tokio::test]
    async fn caching_lookup_keeps_recent_keys() {
        let inner = Arc::new(Counting(Default::default()));
        let c = CachingKeyLookup::new(inner.clone(), 2);
        let n = || inner.0.load(std::sync::atomic::Ordering::SeqCst);
        assert_eq!(c.instance_key("a").await.unwrap().as_deref(), Some("key-a"));
        c.instance_key("a").await.unwrap();
        assert_eq!(n(), 1);
        c.instance_key("b").await.unwrap();
        c.instance_key("a").await.unwrap(); // a is most recent now
        c.instance_key("c").await.unwrap(); // evicts b
        c.instance_key("a").await.unwrap();
        assert_eq!(n(), 3);
        c.instance_key("b").await.unwrap();
        assert_eq!(n(), 4);
        assert_eq!(c.instance_key("none").await.unwrap(), None);
        c.instance_key("none").await.unwrap();
        assert_eq!(n(), 6, "misses are not cached");
        c.forget("b");
        c.instance_key("b").await.unwrap();
        assert_eq!(n(), 7);
    }

    #[tokio::test]
    async fn conductor_guest_to_host() {
        let g = ConductorGuestSerializer::new(Some(K.into()), "inst-1");
        let h = ConductorHostSerializer::new(Arc::new(StaticKeyLookup::new([(
            "inst-1".to_string(),
            K.to_string(),
        )])));
        let arg = g
            .serialize_entity(json!({"service_status": "healthy"}))
            .unwrap();
        let tagged: Value = serde_json::from_str(arg.as_str().unwrap()).unwrap();
        assert_eq!(tagged["csz-instance-id"], json!("inst-1"));
        assert!(tagged["entity"].is_string());
        let c = g.serialize_context(ctx()).unwrap();
        assert_eq!(c["csz-instance-id"], json!("inst-1"));
        let dc = h.deserialize_context(c.clone()).await.unwrap();
        assert_eq!(dc["user"], json!("u"));
        assert_eq!(dc["instance_id"], json!("inst-1"));
        assert_eq!(
            h.deserialize_entity(&c, arg).await.unwrap(),
            json!({"service_status": "healthy"})
        );
        // Clear values pass through.
        assert_eq!(
            h.deserialize_entity(&c, json!("plain")).await.unwrap(),
            json!("plain")
        );
        assert_eq!(
            h.deserialize_entity(&c, json!(1.5)).await.unwrap(),
            json!(1.5)
        );
        assert_eq!(h.deserialize_context(ctx()).await.unwrap(), ctx());
        // Unknown instance or wrong key: rejected.
        let g2 = ConductorGuestSerializer::new(Some("wrong".into()), "inst-1");
        assert!(h
            .deserialize_context(g2.serialize_context(ctx()).unwrap())
            .await
            .is_err());
        let g3 = ConductorGuestSerializer::new(Some(K.into()), "inst-2");
        assert!(h
            .deserialize_context(g3.serialize_context(ctx()).unwrap())
            .await
            .is_err());
    }
}
