//! [`DbKeyLookup`]: the conductor's source of per-instance RPC keys.
//!
//! Guests encrypt what they send to the conductor with their own key and tag it with their
//! instance id (`csz-instance-id`). The conductor finds that key in
//! `instances.encrypted_key`, stored encrypted with `inst_rpc_key_encr_key`. Wrap this
//! lookup in trove-rpc's [`trove_rpc::CachingKeyLookup`] (as [`crate::Conductor::from_config`]
//! does) so a busy conductor does not read the row for every message.
//!
//! Only live instances have keys here: a message from a deleted instance is rejected. The
//! key is never logged.

use async_trait::async_trait;
use trove_config::Secret;
use trove_db::{Db, DbError};
use trove_rpc::{InstanceKeyLookup, RpcError};

/// Reads and decrypts per-instance RPC keys from the control database.
#[derive(Clone)]
pub struct DbKeyLookup {
    db: Db,
    /// `inst_rpc_key_encr_key`, which encrypts the stored keys.
    master_key: Secret,
}

impl std::fmt::Debug for DbKeyLookup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbKeyLookup")
            .field("db", &self.db.redacted_url())
            .finish_non_exhaustive()
    }
}

impl DbKeyLookup {
    /// A lookup on `db` decrypting with `inst_rpc_key_encr_key`.
    pub fn new(db: Db, inst_rpc_key_encr_key: Secret) -> Self {
        Self {
            db,
            master_key: inst_rpc_key_encr_key,
        }
    }
}

#[async_trait]
impl InstanceKeyLookup for DbKeyLookup {
    /// `Ok(None)` when the instance does not exist (or is deleted) or has no key (NULL or
    /// empty `encrypted_key`: secure RPC was off when it was created). A stored key that
    /// does not decrypt is [`RpcError::Decrypt`] (wrong `inst_rpc_key_encr_key`), so
    /// messages for it are rejected; a database failure is [`RpcError::Unavailable`].
    async fn instance_key(&self, instance_id: &str) -> Result<Option<String>, RpcError> {
        let instance = match self.db.instance_get(instance_id).await {
            Ok(i) => i,
            Err(DbError::NotFound { .. }) => return Ok(None),
            Err(e) => {
                return Err(RpcError::Unavailable(format!(
                    "reading instance {instance_id}: {e}"
                )))
            }
        };
        let Some(encrypted) = instance.encrypted_key.filter(|k| !k.is_empty()) else {
            return Ok(None);
        };
        trove_common::crypto::decrypt_instance_key(&encrypted, self.master_key.expose_secret())
            .map(Some)
            .map_err(|_| {
                RpcError::Decrypt(format!(
                    "the stored RPC key of instance {instance_id} does not decrypt with inst_rpc_key_encr_key"
                ))
            })
    }
}
