//! Routes of the v1 API whose features are not built yet (backups, backup strategies,
//! clusters, modules, guest logs, SSL, most mgmt routes): they answer 501
//! `notImplemented` in Trove's format after authentication, so clients get a clear error
//! instead of a 404.

use crate::error::ApiError;

/// 501 `notImplemented`.
pub async fn not_implemented() -> ApiError {
    ApiError::not_implemented("This operation is not implemented yet.")
}
