//! Request handlers, one module per resource. A handler extracts its input, checks
//! policy, calls the repositories, and renders a view; errors are [`crate::ApiError`]s.

pub mod backups;
pub mod configurations;
pub mod datastores;
pub mod extensions;
pub mod flavors;
pub mod instances;
pub mod limits;
pub mod mgmt_datastores;
pub mod mgmt_instances;
pub mod not_implemented;
pub mod quotas;
pub mod versions;
