//! `instance_addresses`: our table of the addresses the taskmanager learned for each
//! instance (fixed IPs of its user-facing ports and an associated floating IP).
//!
//! Python Trove asks Nova for a server's addresses on every show; we store them when the
//! taskmanager learns them, so API reads stay fast and work with any compute driver. The
//! rows of an instance are replaced as a whole ([`Db::instance_addresses_set`]) and removed
//! when the instance is soft-deleted ([`Db::instance_soft_delete`]).

use std::collections::HashMap;

use crate::db::{utc_now, Backend, Db};
use crate::error::DbError;
use crate::repo::begin_write;

/// `type` of a fixed IP of one of the instance's ports.
pub const ADDRESS_PRIVATE: &str = "private";
/// `type` of a floating IP associated with the instance.
pub const ADDRESS_PUBLIC: &str = "public";

/// Ids per `IN (...)` query of [`Db::instance_addresses_for`]: an instance list page (at
/// most 1000 rows) is one query, and every backend accepts this many bind parameters.
const IDS_PER_QUERY: usize = 1000;

/// A row of `instance_addresses`.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct InstanceAddress {
    /// The instance.
    pub instance_id: String,
    /// The IP address (at most 64 characters).
    pub address: String,
    /// [`ADDRESS_PRIVATE`] or [`ADDRESS_PUBLIC`] (column `type`, at most 16 characters).
    #[sqlx(rename = "type")]
    pub kind: String,
    /// The network id of a fixed IP; `None` for a floating IP.
    pub network: Option<String>,
}

impl InstanceAddress {
    /// A fixed IP of a port on `network`.
    pub fn private(instance_id: &str, address: &str, network: Option<&str>) -> InstanceAddress {
        InstanceAddress {
            instance_id: instance_id.to_string(),
            address: address.to_string(),
            kind: ADDRESS_PRIVATE.to_string(),
            network: network.map(str::to_string),
        }
    }

    /// A floating IP (no network).
    pub fn public(instance_id: &str, address: &str) -> InstanceAddress {
        InstanceAddress {
            instance_id: instance_id.to_string(),
            address: address.to_string(),
            kind: ADDRESS_PUBLIC.to_string(),
            network: None,
        }
    }
}

const COLS: &str = "instance_id, address, `type`, network";

/// Checks the rows of one [`Db::instance_addresses_set`] call against the column sizes and
/// the primary key.
fn validate(instance_id: &str, addresses: &[InstanceAddress]) -> Result<(), DbError> {
    if instance_id.is_empty() || instance_id.chars().count() > 36 {
        return Err(DbError::Invalid(format!(
            "instance id '{instance_id}' must have 1 to 36 characters"
        )));
    }
    let mut seen = std::collections::HashSet::new();
    for a in addresses {
        if a.instance_id != instance_id {
            return Err(DbError::Invalid(format!(
                "address {} belongs to instance '{}', not '{instance_id}'",
                a.address, a.instance_id
            )));
        }
        if a.address.is_empty() || a.address.chars().count() > 64 {
            return Err(DbError::Invalid(format!(
                "address '{}' of instance {instance_id} must have 1 to 64 characters",
                a.address
            )));
        }
        if a.kind.is_empty() || a.kind.chars().count() > 16 {
            return Err(DbError::Invalid(format!(
                "address type '{}' of {} must have 1 to 16 characters",
                a.kind, a.address
            )));
        }
        if a.network.as_ref().is_some_and(|n| n.chars().count() > 255) {
            return Err(DbError::Invalid(format!(
                "network of address {} must have at most 255 characters",
                a.address
            )));
        }
        if !seen.insert(a.address.as_str()) {
            return Err(DbError::Invalid(format!(
                "address {} is given twice for instance {instance_id}",
                a.address
            )));
        }
    }
    Ok(())
}

impl Db {
    /// Replaces the addresses of a live instance with `addresses`, in one transaction
    /// (an empty slice removes them all).
    ///
    /// Every row must name `instance_id` and an address at most once, within the column
    /// sizes -> otherwise [`DbError::Invalid`]. A missing or soft-deleted instance ->
    /// [`DbError::NotFound`]: the instance row is locked first, so addresses written while
    /// the instance is being deleted cannot outlive it.
    pub async fn instance_addresses_set(
        &self,
        instance_id: &str,
        addresses: &[InstanceAddress],
    ) -> Result<(), DbError> {
        validate(instance_id, addresses)?;
        let lock = if self.backend() == Backend::Sqlite {
            // BEGIN IMMEDIATE already holds the database's write lock.
            ""
        } else {
            " FOR UPDATE"
        };
        let live = self.sql(&format!(
            "SELECT id FROM instances WHERE id = ? AND deleted = FALSE{lock}"
        ));
        let del = self.sql("DELETE FROM instance_addresses WHERE instance_id = ?");
        let ins = self.sql(&format!(
            "INSERT INTO instance_addresses ({COLS}, created) VALUES (?, ?, ?, ?, ?)"
        ));
        let now = utc_now();
        with_pool!(self, p => {
            let mut tx = begin_write!(self, p);
            let found: Option<(String,)> = sqlx::query_as(&live).bind(instance_id).fetch_optional(&mut *tx).await?;
            if found.is_none() {
                return Err(DbError::NotFound { kind: "instance", id: instance_id.to_string() });
            }
            sqlx::query(&del).bind(instance_id).execute(&mut *tx).await?;
            for a in addresses {
                sqlx::query(&ins).bind(instance_id).bind(&a.address).bind(&a.kind).bind(&a.network).bind(now)
                    .execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// The stored addresses of an instance, ordered by address (empty when none).
    pub async fn instance_addresses(
        &self,
        instance_id: &str,
    ) -> Result<Vec<InstanceAddress>, DbError> {
        let sql = self.sql(&format!(
            "SELECT {COLS} FROM instance_addresses WHERE instance_id = ? ORDER BY address"
        ));
        let mut rows: Vec<InstanceAddress> =
            with_pool!(self, p => sqlx::query_as(&sql).bind(instance_id).fetch_all(p).await?);
        // Same order on every backend, whatever the column's collation.
        rows.sort_by(|a, b| a.address.cmp(&b.address));
        Ok(rows)
    }

    /// The addresses of several instances (a list page), keyed by instance id, each list
    /// ordered by address. Instances without addresses have no entry. Up to 1000 ids take
    /// one query.
    pub async fn instance_addresses_for<S: AsRef<str>>(
        &self,
        instance_ids: &[S],
    ) -> Result<HashMap<String, Vec<InstanceAddress>>, DbError> {
        let mut out: HashMap<String, Vec<InstanceAddress>> = HashMap::new();
        for chunk in instance_ids.chunks(IDS_PER_QUERY) {
            let marks = vec!["?"; chunk.len()].join(", ");
            let sql = self.sql(&format!(
                "SELECT {COLS} FROM instance_addresses WHERE instance_id IN ({marks}) ORDER BY instance_id, address"
            ));
            let rows: Vec<InstanceAddress> = with_pool!(self, p => {
                let mut q = sqlx::query_as(&sql);
                for id in chunk {
                    q = q.bind(id.as_ref());
                }
                q.fetch_all(p).await?
            });
            for r in rows {
                out.entry(r.instance_id.clone()).or_default().push(r);
            }
        }
        for list in out.values_mut() {
            list.sort_by(|a, b| a.address.cmp(&b.address));
            // An id given twice (in different chunks) must not double its rows.
            list.dedup();
        }
        Ok(out)
    }

    /// Removes every stored address of an instance; returns how many were removed.
    pub async fn instance_addresses_delete(&self, instance_id: &str) -> Result<u64, DbError> {
        let sql = self.sql("DELETE FROM instance_addresses WHERE instance_id = ?");
        Ok(
            with_pool!(self, p => sqlx::query(&sql).bind(instance_id).execute(p).await?.rows_affected()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_problem() {
        let ok = [
            InstanceAddress::private("i1", "10.0.0.2", Some("net")),
            InstanceAddress::public("i1", "203.0.113.4"),
        ];
        assert!(validate("i1", &ok).is_ok());
        let e = validate("i2", &ok).unwrap_err().to_string();
        assert!(e.contains("belongs to instance 'i1'"), "{e}");
        let twice = [
            InstanceAddress::private("i1", "10.0.0.2", None),
            InstanceAddress::public("i1", "10.0.0.2"),
        ];
        let e = validate("i1", &twice).unwrap_err().to_string();
        assert!(e.contains("given twice"), "{e}");
        let long = [InstanceAddress::private("i1", &"1".repeat(65), None)];
        assert!(validate("i1", &long).is_err());
        let mut bad_kind = InstanceAddress::public("i1", "10.0.0.3");
        bad_kind.kind = "x".repeat(17);
        assert!(validate("i1", &[bad_kind]).is_err());
        assert!(validate("", &[]).is_err());
    }
}
