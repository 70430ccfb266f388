//! trove-api: the Trove v1 REST API (routes, views, auth, policy, quotas).

pub mod policy;
