//! Repositories: async methods on [`crate::Db`], grouped by table, and their row types.
//!
//! Every method runs the same SQL text on each backend (see [`crate::db`]). Methods that
//! write several rows do it in one transaction; on SQLite write transactions start with
//! `BEGIN IMMEDIATE` so that concurrent writers queue instead of failing.
//! Timestamps are naive UTC truncated to seconds ([`crate::utc_now`]).

pub mod addresses;
pub mod backups;
pub mod conductor;
pub mod configurations;
pub mod datastores;
pub mod faults;
pub mod flavors;
pub mod instances;
pub mod params;
pub mod quotas;
pub mod root_history;
pub mod service_status;

pub use addresses::{InstanceAddress, ADDRESS_PRIVATE, ADDRESS_PUBLIC};
pub use backups::{Backup, BACKUP_RUNNING_STATES};
pub use configurations::{Configuration, ConfigurationParameter};
pub use datastores::{
    Datastore, DatastoreVersion, DatastoreVersionSpec, METADATA_FLAVOR, METADATA_VOLUME_TYPE,
};
pub use faults::InstanceFault;
pub use flavors::{Flavor, NewFlavor};
pub use instances::Instance;
pub use params::{ConfigParam, ConfigParamRule};
pub use quotas::{reservation_status, QuotaDefaults, QuotaUsage, Reservation, QUOTA_RESOURCES};
pub use root_history::RootHistory;
pub use service_status::ServiceStatusRow;

/// Starts a write transaction on `$pool` (`BEGIN IMMEDIATE` on SQLite).
macro_rules! begin_write {
    ($db:expr, $pool:expr) => {
        if $db.backend() == $crate::db::Backend::Sqlite {
            $pool.begin_with("BEGIN IMMEDIATE").await?
        } else {
            $pool.begin().await?
        }
    };
}
pub(crate) use begin_write;

/// One page of a marker-paged listing.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// The rows of this page.
    pub items: Vec<T>,
    /// Marker for the next page (the last id of this page) when more rows follow.
    pub next_marker: Option<String>,
}

impl<T> Page<T> {
    /// Builds a page from up to `limit + 1` rows fetched in order.
    pub(crate) fn from_rows(mut rows: Vec<T>, limit: usize, id: impl Fn(&T) -> String) -> Page<T> {
        let more = rows.len() > limit;
        rows.truncate(limit);
        let next_marker = if more { rows.last().map(id) } else { None };
        Page {
            items: rows,
            next_marker,
        }
    }
}
