//! oslo.messaging's wire format: the 2.0 envelope, the inner request and reply messages,
//! versions and targets, and Python-compatible JSON text.
//!
//! Request (inner) keys: `method`, `args`, `version`, optional `namespace`, `_unique_id`,
//! for calls `_msg_id`, `_reply_q`, `_timeout`, and the flattened `_context_*` keys.
//! Reply keys: `result`, `failure`, `ending`, `_msg_id`, `_unique_id`.
//! The AMQP body is `{"oslo.version": "2.0", "oslo.message": "<inner JSON text>"}`;
//! bare inner messages (pre-2.0) are accepted on receipt.

use std::collections::VecDeque;
use std::fmt;
use std::io;

use serde_json::{Map, Value};

use crate::{RemoteError, RpcError};

/// The envelope version oslo.messaging writes.
pub const OSLO_VERSION: &str = "2.0";
/// Envelope key holding the version.
pub const VERSION_KEY: &str = "oslo.version";
/// Envelope key holding the inner message as JSON text.
pub const MESSAGE_KEY: &str = "oslo.message";
/// How many recent `_unique_id`s a listener remembers to drop duplicates (oslo: 16).
pub const UNIQUE_ID_CACHE_SIZE: usize = 16;

/// Where a message goes: a topic, optionally a single named server on that topic.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    /// Topic, e.g. `taskmanager`, `trove-conductor`, `guestagent.<id>`.
    pub topic: String,
    /// Server name; messages then go to queue `<topic>.<server>`.
    pub server: Option<String>,
}

impl Target {
    /// A target addressing whichever server consumes `topic`.
    pub fn topic(topic: impl Into<String>) -> Self {
        Self {
            topic: topic.into(),
            server: None,
        }
    }

    /// A target addressing the server named `server` on `topic`.
    pub fn server(topic: impl Into<String>, server: impl Into<String>) -> Self {
        Self {
            topic: topic.into(),
            server: Some(server.into()),
        }
    }

    /// The AMQP routing key (and queue name): `topic` or `topic.server`.
    pub fn routing_key(&self) -> String {
        match &self.server {
            Some(s) => format!("{}.{}", self.topic, s),
            None => self.topic.clone(),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.routing_key())
    }
}

/// An RPC API version `major.minor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    /// Major version: must match exactly.
    pub major: u32,
    /// Minor version: the endpoint's must be >= the message's.
    pub minor: u32,
}

impl Version {
    /// Builds a version.
    pub const fn new(major: u32, minor: u32) -> Self {
        Self { major, minor }
    }

    /// Parses `"1"`, `"1.3"` (a third component, if any, is ignored as oslo's check does).
    pub fn parse(s: &str) -> Result<Self, RpcError> {
        let mut parts = s.trim().split('.');
        let bad = || RpcError::InvalidMessage(format!("invalid version {s:?}"));
        let major = parts.next().ok_or_else(bad)?.parse().map_err(|_| bad())?;
        let minor = match parts.next() {
            Some(m) => m.parse().map_err(|_| bad())?,
            None => 0,
        };
        Ok(Self { major, minor })
    }

    /// oslo's rule: an endpoint at `self` accepts a message at `msg` when the majors are
    /// equal and `self.minor >= msg.minor`.
    pub fn accepts(&self, msg: &Version) -> bool {
        self.major == msg.major && self.minor >= msg.minor
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// serde_json formatter producing Python `json.dumps` text: `", "` and `": "` separators
/// and non-ASCII characters escaped as `\uXXXX` (the `ensure_ascii` default).
struct PythonFormatter;

impl serde_json::ser::Formatter for PythonFormatter {
    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            w.write_all(b", ")
        }
    }
    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            w.write_all(b", ")
        }
    }
    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b": ")
    }
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        for c in fragment.chars() {
            if c.is_ascii() {
                w.write_all(&[c as u8])?;
            } else {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    write!(w, "\\u{unit:04x}")?;
                }
            }
        }
        Ok(())
    }
}

/// JSON text of `v` exactly as Python's `json.dumps(v)` writes it for the common cases
/// (separators and ASCII escaping). This is the plaintext Trove encrypts.
pub fn python_json(v: &Value) -> String {
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut out, PythonFormatter);
    serde::Serialize::serialize(v, &mut ser).expect("serializing a Value to memory cannot fail");
    String::from_utf8(out).expect("formatter writes ASCII only")
}

/// Wraps an inner message into the 2.0 envelope and returns the AMQP body bytes.
pub fn encode_envelope(inner: &Map<String, Value>) -> Vec<u8> {
    let inner_text = python_json(&Value::Object(inner.clone()));
    let mut env = Map::new();
    env.insert(VERSION_KEY.into(), Value::String(OSLO_VERSION.into()));
    env.insert(MESSAGE_KEY.into(), Value::String(inner_text));
    python_json(&Value::Object(env)).into_bytes()
}

/// Parses an AMQP body: the 2.0 envelope, or a bare (pre-2.0) inner message.
pub fn decode_envelope(body: &[u8]) -> Result<Map<String, Value>, RpcError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| RpcError::InvalidMessage(format!("body is not JSON: {e}")))?;
    let Value::Object(mut obj) = v else {
        return Err(RpcError::InvalidMessage("body is not a JSON object".into()));
    };
    if !obj.contains_key(VERSION_KEY) {
        return Ok(obj);
    }
    let version = obj
        .get(VERSION_KEY)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let major = version.split('.').next().unwrap_or_default();
    if major != "2" {
        return Err(RpcError::InvalidMessage(format!(
            "unsupported envelope version {version:?}"
        )));
    }
    match obj.remove(MESSAGE_KEY) {
        Some(Value::String(s)) => match serde_json::from_str::<Value>(&s) {
            Ok(Value::Object(m)) => Ok(m),
            Ok(_) => Err(RpcError::InvalidMessage(
                "oslo.message is not a JSON object".into(),
            )),
            Err(e) => Err(RpcError::InvalidMessage(format!(
                "oslo.message is not JSON: {e}"
            ))),
        },
        _ => Err(RpcError::InvalidMessage(
            "envelope without oslo.message text".into(),
        )),
    }
}

/// A fresh uuid4 in hex without dashes (ids on the wire: `_unique_id`, `_msg_id`, queue names).
pub fn new_hex_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Builds the inner request message (without transport keys such as `_unique_id`).
pub fn build_request(
    method: &str,
    args: Map<String, Value>,
    version: Option<&Version>,
    namespace: Option<&str>,
    context: Map<String, Value>,
) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("method".into(), Value::String(method.into()));
    m.insert("args".into(), Value::Object(args));
    if let Some(v) = version {
        m.insert("version".into(), Value::String(v.to_string()));
    }
    if let Some(ns) = namespace {
        m.insert("namespace".into(), Value::String(ns.into()));
    }
    crate::context::flatten_into(&mut m, context);
    m
}

/// Builds the single final reply oslo's current servers send for a call.
pub fn build_reply(msg_id: &str, outcome: &Result<Value, RemoteError>) -> Map<String, Value> {
    let mut m = Map::new();
    match outcome {
        Ok(v) => {
            m.insert("result".into(), v.clone());
            m.insert("failure".into(), Value::Null);
        }
        Err(e) => {
            m.insert("result".into(), Value::Null);
            m.insert("failure".into(), Value::String(e.to_failure_json()));
        }
    }
    m.insert("ending".into(), Value::Bool(true));
    m.insert("_msg_id".into(), Value::String(msg_id.into()));
    m.insert("_unique_id".into(), Value::String(new_hex_id()));
    m
}

/// Collects the reply messages of one call (current servers send one, old ones two).
#[derive(Debug, Default)]
pub struct ReplyAccumulator {
    result: Option<Value>,
    failure: Option<RemoteError>,
}

impl ReplyAccumulator {
    /// Feeds one reply; returns the outcome once a reply with `ending: true` arrived.
    /// Heartbeats (`result: null, ending: false`) are ignored.
    pub fn feed(&mut self, reply: &Map<String, Value>) -> Option<Result<Value, RemoteError>> {
        if let Some(f) = reply.get("failure").filter(|f| !f.is_null()) {
            self.failure = Some(RemoteError::from_failure(f));
        }
        if let Some(r) = reply.get("result").filter(|r| !r.is_null()) {
            self.result = Some(r.clone());
        }
        if reply
            .get("ending")
            .and_then(Value::as_bool)
            .unwrap_or(false)
        {
            return Some(match self.failure.take() {
                Some(f) => Err(f),
                None => Ok(self.result.take().unwrap_or(Value::Null)),
            });
        }
        None
    }
}

/// The last [`UNIQUE_ID_CACHE_SIZE`] `_unique_id`s seen by a listener.
#[derive(Debug, Default)]
pub struct UniqueIdCache {
    ids: VecDeque<String>,
}

impl UniqueIdCache {
    /// Records `id`; returns `false` when it was seen recently (a duplicate to drop).
    pub fn check_and_insert(&mut self, id: &str) -> bool {
        if self.ids.iter().any(|x| x == id) {
            return false;
        }
        if self.ids.len() == UNIQUE_ID_CACHE_SIZE {
            self.ids.pop_front();
        }
        self.ids.push_back(id.to_owned());
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn python_json_matches_json_dumps() {
        assert_eq!(python_json(&json!({"a": 1})), "{\"a\": 1}");
        assert_eq!(python_json(&json!("abc")), "\"abc\"");
        assert_eq!(
            python_json(&json!([1, "x", null, true])),
            "[1, \"x\", null, true]"
        );
        assert_eq!(python_json(&json!("é😀\n")), "\"\\u00e9\\ud83d\\ude00\\n\"");
    }

    #[test]
    fn envelope_round_trip_and_double_encoding() {
        let mut inner = Map::new();
        inner.insert("method".into(), json!("restart"));
        inner.insert("args".into(), json!({"instance_id": "i1"}));
        let body = encode_envelope(&inner);
        let outer: Value = serde_json::from_slice(&body).unwrap();
        let obj = outer.as_object().unwrap();
        assert_eq!(obj.len(), 2);
        assert_eq!(obj["oslo.version"], json!("2.0"));
        assert!(
            obj["oslo.message"].is_string(),
            "inner message must be JSON text"
        );
        assert_eq!(decode_envelope(&body).unwrap(), inner);
        // Bare pre-2.0 messages are accepted.
        assert_eq!(
            decode_envelope(br#"{"method": "restart", "args": {}}"#).unwrap()["method"],
            json!("restart")
        );
        assert!(decode_envelope(br#"{"oslo.version": "3.0", "oslo.message": "{}"}"#).is_err());
        assert!(decode_envelope(b"[1]").is_err());
    }

    #[test]
    fn request_layout() {
        let mut ctx = Map::new();
        ctx.insert("user".into(), json!("u1"));
        let m = build_request(
            "create_database",
            Map::new(),
            Some(&Version::new(1, 0)),
            None,
            ctx,
        );
        assert_eq!(m["method"], json!("create_database"));
        assert_eq!(m["version"], json!("1.0"));
        assert_eq!(m["_context_user"], json!("u1"));
        assert!(!m.contains_key("namespace"));
    }

    #[test]
    fn version_rules() {
        let ep = Version::parse("1.3").unwrap();
        assert!(ep.accepts(&Version::parse("1.0").unwrap()));
        assert!(ep.accepts(&Version::parse("1.3").unwrap()));
        assert!(!ep.accepts(&Version::parse("1.4").unwrap()));
        assert!(!ep.accepts(&Version::parse("2.0").unwrap()));
        assert!(!Version::new(1, 0).accepts(&Version::new(1, 1)));
        assert_eq!(Version::parse("2").unwrap(), Version::new(2, 0));
        assert!(Version::parse("x.1").is_err());
    }

    #[test]
    fn replies_single_and_legacy_double() {
        let ok = build_reply("m1", &Ok(json!({"x": 1})));
        assert_eq!(ok["ending"], json!(true));
        assert_eq!(ok["failure"], Value::Null);
        let mut acc = ReplyAccumulator::default();
        assert_eq!(acc.feed(&ok), Some(Ok(json!({"x": 1}))));

        let mut acc = ReplyAccumulator::default();
        let first = json!({"result": 5, "failure": null, "ending": false});
        let hb = json!({"result": null, "ending": false});
        let last = json!({"result": null, "failure": null, "ending": true});
        assert_eq!(acc.feed(first.as_object().unwrap()), None);
        assert_eq!(acc.feed(hb.as_object().unwrap()), None);
        assert_eq!(acc.feed(last.as_object().unwrap()), Some(Ok(json!(5))));

        let err = build_reply("m2", &Err(RemoteError::no_such_method("foo")));
        let failure: Value = serde_json::from_str(err["failure"].as_str().unwrap()).unwrap();
        assert_eq!(failure["class"], json!("NoSuchMethod"));
        assert_eq!(failure["module"], json!("oslo_messaging.rpc.dispatcher"));
        assert_eq!(
            failure["message"],
            json!("Endpoint does not support RPC method foo")
        );
        let mut acc = ReplyAccumulator::default();
        let e = acc.feed(&err).unwrap().unwrap_err();
        assert_eq!(e.class, "NoSuchMethod");
    }

    #[test]
    fn unique_id_cache_drops_recent_duplicates_only() {
        let mut c = UniqueIdCache::default();
        assert!(c.check_and_insert("a"));
        assert!(!c.check_and_insert("a"));
        for i in 0..UNIQUE_ID_CACHE_SIZE {
            assert!(c.check_and_insert(&i.to_string()));
        }
        assert!(c.check_and_insert("a"), "evicted after 16 newer ids");
    }
}
