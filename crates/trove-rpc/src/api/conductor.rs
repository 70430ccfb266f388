//! Conductor RPC API (spec §4): version 1.0, every method a cast, topic
//! `trove-conductor`. Guests encrypt with [`crate::ConductorGuestSerializer`]; the
//! conductor decrypts with [`crate::ConductorHostSerializer`].

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::message::{Target, Version};
use crate::serializer::ConductorGuestSerializer;
use crate::transport::{RpcClient, Transport};
use crate::{RemoteError, RpcContext, RpcError};

/// Default conductor topic (`conductor_queue`).
pub const CONDUCTOR_TOPIC: &str = "trove-conductor";
/// The conductor API version.
pub const CONDUCTOR_VERSION: Version = Version::new(1, 0);

/// Optional fields of `update_backup`; only present keys are sent.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct UpdateBackupFields {
    /// Size in GB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<f64>,
    /// Backup state (e.g. `COMPLETED`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Backup type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_type: Option<String>,
    /// Checksum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
    /// Storage location.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Success flag (not a column; ignored by the conductor).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success: Option<bool>,
    /// Why the backup failed, in words a tenant can read (see [`tenant_fault_message`]).
    /// Our addition: Trove's guests never send it, and Trove's conductor, which copies
    /// every argument naming a backup column, skips it, as it has no such column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault_message: Option<String>,
}

/// The longest failure reason a guest sends (characters; the conductor stores no more).
pub const FAULT_MESSAGE_MAX_CHARS: usize = 800;
/// How many of the last lines of a failure reason are kept.
pub const FAULT_MESSAGE_MAX_LINES: usize = 5;

/// Words after which a value is a secret (`password=x`, `X-Auth-Token: x`, ...).
const SECRET_KEYS: &[&str] = &["password", "passwd", "token", "secret", "temp_url_sig"];

/// `text` made fit for a tenant to read: its last [`FAULT_MESSAGE_MAX_LINES`] non-empty
/// lines joined by ` | `, the value after a secret-looking key (`password`, `token`,
/// `secret`, ...) and the credentials of URLs (`scheme://user:pass@`) replaced by `***`,
/// and no longer than [`FAULT_MESSAGE_MAX_CHARS`] (the end, where the cause is, is kept).
pub fn tenant_fault_message(text: &str) -> String {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let kept = &lines[lines.len().saturating_sub(FAULT_MESSAGE_MAX_LINES)..];
    let joined = redact_secrets(&kept.join(" | "));
    let n = joined.chars().count();
    if n <= FAULT_MESSAGE_MAX_CHARS {
        return joined;
    }
    let tail: String = joined
        .chars()
        .skip(n - (FAULT_MESSAGE_MAX_CHARS - 1))
        .collect();
    format!("…{tail}")
}

fn redact_secrets(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        let lower = rest.to_ascii_lowercase();
        let url = lower.find("://");
        let key = SECRET_KEYS
            .iter()
            .filter_map(|k| lower.find(k).map(|i| (i, i + k.len())))
            .min();
        match (url, key) {
            (Some(p), k) if k.is_none_or(|(i, _)| p < i) => {
                // URL credentials: scheme://user:password@host
                let from = p + 3;
                let auth = &rest[from..];
                let end = auth
                    .find(|c: char| c == '/' || c.is_whitespace())
                    .unwrap_or(auth.len());
                out.push_str(&rest[..from]);
                match auth[..end]
                    .rfind('@')
                    .filter(|at| auth[..*at].contains(':'))
                {
                    Some(at) => {
                        out.push_str("***");
                        rest = &auth[at..];
                    }
                    None => rest = auth,
                }
            }
            (_, Some((_, k))) => {
                out.push_str(&rest[..k]);
                rest = &rest[k..];
                if let Some((start, end)) = secret_value(rest) {
                    out.push_str(&rest[..start]);
                    out.push_str("***");
                    rest = &rest[end..];
                }
            }
            _ => {
                out.push_str(rest);
                break;
            }
        }
    }
    out
}

/// Where the value of a secret-looking key is in `rest` (the text after the key word):
/// the key's own tail (`_key`, a closing quote), blanks, `=` or `:`, blanks and maybe an
/// opening quote, then the value up to its closing quote, or else to a blank or delimiter.
fn secret_value(rest: &str) -> Option<(usize, usize)> {
    let b = rest.as_bytes();
    let mut i = 0;
    while i < b.len() && i < 16 && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'-') {
        i += 1;
    }
    if matches!(b.get(i), Some(b'"' | b'\'')) {
        i += 1;
    }
    while b.get(i) == Some(&b' ') {
        i += 1;
    }
    if !matches!(b.get(i), Some(b'=' | b':')) {
        return None;
    }
    i += 1;
    while b.get(i) == Some(&b' ') {
        i += 1;
    }
    let quote = b.get(i).copied().filter(|q| matches!(q, b'"' | b'\''));
    if quote.is_some() {
        i += 1;
    }
    let start = i;
    let len = match quote {
        Some(q) => rest[start..].find(char::from(q)),
        None => rest[start..].find(|c: char| c.is_whitespace() || "'\"&,;)]}|".contains(c)),
    };
    let end = len.map_or(rest.len(), |n| start + n);
    (end > start).then_some((start, end))
}

/// Every conductor method with its wire arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", content = "args", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ConductorRequest {
    /// Liveness and service status.
    Heartbeat {
        /** Instance id. */
        instance_id: String,
        /** `{"service_status": "<description>"}`. */
        payload: Value,
        /** UTC epoch seconds when sent. */
        #[serde(default)]
        sent: Option<f64>,
    },
    /// Backup progress.
    UpdateBackup {
        /** Instance id. */
        instance_id: String,
        /** Backup id. */
        backup_id: String,
        /** UTC epoch seconds when sent. */
        #[serde(default)]
        sent: Option<f64>,
        /** Changed fields. */
        #[serde(flatten)]
        fields: UpdateBackupFields,
    },
    /// Root was enabled.
    ReportRoot {
        /** Instance id. */
        instance_id: String,
        /** Legacy, ignored. */
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user: Option<String>,
    },
    /// Emit the end notification of an action.
    NotifyEnd {
        /** Notification payload with `notification_classname`. */
        serialized_notification: Value,
        /** Extra arguments. */
        notification_args: Value,
    },
    /// Emit an error notification (stored as an instance fault).
    NotifyExcInfo {
        /** Notification payload. */
        serialized_notification: Value,
        /** Error message. */
        message: String,
        /** Traceback lines. */
        exception: Value,
    },
}

impl ConductorRequest {
    /// Decodes a received request (see [`crate::api`]).
    pub fn decode(method: &str, args: Map<String, Value>) -> Result<Self, RemoteError> {
        super::decode(method, args)
    }
}

/// Client of the conductor (used by guest agents, and by the taskmanager in clear).
#[derive(Clone, Debug)]
pub struct ConductorApi {
    client: RpcClient,
}

impl ConductorApi {
    /// A client on `topic` (normally [`CONDUCTOR_TOPIC`]) for guest `instance_id` with its
    /// key (`instance_rpc_encr_key`; `None` sends in clear).
    pub fn new(
        transport: Arc<dyn Transport>,
        topic: &str,
        instance_id: &str,
        key: Option<String>,
    ) -> Self {
        let ser = ConductorGuestSerializer::new(key, instance_id);
        Self {
            client: RpcClient::new(
                transport,
                Target::topic(topic),
                Some(CONDUCTOR_VERSION),
                Arc::new(ser),
            ),
        }
    }

    /// Casts any conductor request.
    pub async fn cast(&self, ctx: &RpcContext, req: &ConductorRequest) -> Result<(), RpcError> {
        let (method, args) = super::split(req)?;
        self.client.cast(ctx, &method, args).await
    }

    /// `heartbeat` with `{"service_status": status}` stamped now.
    pub async fn heartbeat(
        &self,
        ctx: &RpcContext,
        instance_id: &str,
        service_status: &str,
    ) -> Result<(), RpcError> {
        let req = ConductorRequest::Heartbeat {
            instance_id: instance_id.into(),
            payload: serde_json::json!({"service_status": service_status}),
            sent: Some(super::epoch_now()),
        };
        self.cast(ctx, &req).await
    }

    /// `update_backup` stamped now.
    pub async fn update_backup(
        &self,
        ctx: &RpcContext,
        instance_id: &str,
        backup_id: &str,
        fields: UpdateBackupFields,
    ) -> Result<(), RpcError> {
        let req = ConductorRequest::UpdateBackup {
            instance_id: instance_id.into(),
            backup_id: backup_id.into(),
            sent: Some(super::epoch_now()),
            fields,
        };
        self.cast(ctx, &req).await
    }

    /// `report_root`.
    pub async fn report_root(&self, ctx: &RpcContext, instance_id: &str) -> Result<(), RpcError> {
        self.cast(
            ctx,
            &ConductorRequest::ReportRoot {
                instance_id: instance_id.into(),
                user: None,
            },
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn update_backup_sends_only_present_fields() {
        let r = ConductorRequest::UpdateBackup {
            instance_id: "i".into(),
            backup_id: "b".into(),
            sent: Some(1.5),
            fields: UpdateBackupFields {
                state: Some("COMPLETED".into()),
                size: Some(0.2),
                ..Default::default()
            },
        };
        let (m, a) = crate::api::split(&r).unwrap();
        assert_eq!(m, "update_backup");
        assert_eq!(
            Value::Object(a.clone()),
            json!({"instance_id": "i", "backup_id": "b", "sent": 1.5, "state": "COMPLETED", "size": 0.2})
        );
        assert_eq!(ConductorRequest::decode(&m, a).unwrap(), r);
    }

    #[test]
    fn fault_messages_keep_the_last_lines_without_secrets() {
        assert_eq!(
            tenant_fault_message("backup b failed: disk full"),
            "backup b failed: disk full"
        );
        let many: String = (1..=9).map(|i| format!("line {i}\n\n")).collect();
        assert_eq!(
            tenant_fault_message(&many),
            "line 5 | line 6 | line 7 | line 8 | line 9"
        );
        for (raw, want) in [
            (
                "mariadb --password=s3cret --user=os_admin failed",
                "mariadb --password=*** --user=os_admin failed",
            ),
            (
                "Access denied for user 'os_admin'@'localhost' (using password: YES)",
                "Access denied for user 'os_admin'@'localhost' (using password: ***)",
            ),
            ("PGPASSWORD='x y' psql", "PGPASSWORD='***' psql"),
            (
                "header X-Auth-Token: gAAAAB.x-y rejected",
                "header X-Auth-Token: *** rejected",
            ),
            (
                "PUT http://admin:hunter2@swift:8080/v1/c/o?temp_url_sig=abc&x=1: 401",
                "PUT http://***@swift:8080/v1/c/o?temp_url_sig=***&x=1: 401",
            ),
            ("secret_key = \"k\", next", "secret_key = \"***\", next"),
            ("the token is missing", "the token is missing"),
        ] {
            assert_eq!(tenant_fault_message(raw), want, "{raw}");
        }
        let long = format!("{}the cause", "é".repeat(2000));
        let kept = tenant_fault_message(&long);
        assert_eq!(kept.chars().count(), FAULT_MESSAGE_MAX_CHARS);
        assert!(kept.starts_with('…') && kept.ends_with("the cause"));
    }

    #[test]
    fn update_backup_fault_message_is_optional_both_ways() {
        let r = ConductorRequest::UpdateBackup {
            instance_id: "i".into(),
            backup_id: "b".into(),
            sent: Some(2.0),
            fields: UpdateBackupFields {
                state: Some("FAILED".into()),
                success: Some(false),
                fault_message: Some("The backup tool failed: disk full.".into()),
                ..Default::default()
            },
        };
        let (m, a) = crate::api::split(&r).unwrap();
        assert_eq!(
            Value::Object(a.clone()),
            json!({"instance_id": "i", "backup_id": "b", "sent": 2.0, "state": "FAILED",
                "success": false, "fault_message": "The backup tool failed: disk full."})
        );
        assert_eq!(ConductorRequest::decode(&m, a).unwrap(), r);
        // What a guest without the field sends decodes with no message.
        let old = json!({"instance_id": "i", "backup_id": "b", "sent": 2.0, "state": "FAILED"});
        match ConductorRequest::decode("update_backup", old.as_object().unwrap().clone()).unwrap() {
            ConductorRequest::UpdateBackup { fields, .. } => {
                assert_eq!(fields.state.as_deref(), Some("FAILED"));
                assert_eq!(fields.fault_message, None);
            }
            other => panic!("{other:?}"),
        }
    }
}
