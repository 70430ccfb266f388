//! Views: the JSON shapes of Trove's responses, built from repository rows.
//!
//! Views hold no business logic and do no I/O: a handler loads rows, decides what the
//! caller may see (admin-only keys are a parameter), and a view renders them with Trove's
//! key names, envelopes and timestamp format. Renaming a column cannot silently change
//! the API because every key is written here.

pub mod configurations;
pub mod databases;
pub mod datastores;
pub mod flavors;
pub mod instances;
pub mod limits;
pub mod mgmt_instances;
pub mod params;
pub mod quotas;
pub mod root;
pub mod users;
pub mod versions;

use chrono::NaiveDateTime;

/// A database timestamp as Trove renders it: naive UTC `YYYY-MM-DDTHH:MM:SS`.
pub fn timestamp(t: &NaiveDateTime) -> String {
    t.format("%Y-%m-%dT%H:%M:%S").to_string()
}
