//! Every `From<DomainError> for ApiError`: the status and fault key of each error class.
//!
//! The table follows api.md §1.5 ("Exception to status mapping"). Where Trove's status
//! depends on the call rather than the class (an unknown flavor is 404 on
//! `GET /flavors/{id}` but 400 in instance create), this is the default and the handler
//! builds its own `ApiError`. A unit test at the bottom pins the whole table.

use trove_db::DbError;

use super::{ApiError, Fault};
use crate::auth::AuthError;
use crate::policy::PolicyDenied;
use crate::taskmanager::TaskManagerError;
use crate::validation::ValidationError;

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::NotFound { kind, ref id } => match kind {
                "datastore" => ApiError::not_found(format!("Datastore '{id}' cannot be found.")),
                // Trove's DatastoreVersionNotFound is not in its exception map: 400.
                "datastore version" => {
                    ApiError::bad_request(format!("Datastore version '{id}' cannot be found."))
                }
                _ => ApiError::resource_not_found(id),
            },
            DbError::NoUniqueMatch {
                kind: "datastore version",
                ref name,
            } => ApiError::bad_request(format!(
                "Multiple datastore versions found for '{name}', use an UUID or specify \
                     both the name and version number to be more specific."
            )),
            DbError::NoUniqueMatch { .. } | DbError::AlreadyExists { .. } | DbError::Invalid(_) => {
                ApiError::bad_request(e.to_string())
            }
            DbError::QuotaExceeded { .. } => ApiError::over_limit(e.to_string()),
            DbError::Conflict(_) => ApiError::new(
                Fault::Conflict,
                "The resource was changed by another request; please retry.",
            )
            .with_source(e),
            ref unavailable if unavailable.is_unavailable() => ApiError::unavailable(e),
            other => ApiError::internal(other),
        }
    }
}

impl From<PolicyDenied> for ApiError {
    fn from(e: PolicyDenied) -> Self {
        ApiError::forbidden(e.to_string())
    }
}

impl From<ValidationError> for ApiError {
    fn from(e: ValidationError) -> Self {
        ApiError::bad_request(e.to_string())
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Unauthorized {
                message,
                www_authenticate,
            } => ApiError::unauthenticated(message, www_authenticate),
            AuthError::Unavailable(msg) => ApiError::unavailable(msg),
        }
    }
}

impl From<TaskManagerError> for ApiError {
    fn from(e: TaskManagerError) -> Self {
        match e {
            TaskManagerError::Unavailable(_) => ApiError::unavailable(e),
            TaskManagerError::Failed(_) => ApiError::internal(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::response::IntoResponse;

    async fn body(e: ApiError) -> (u16, serde_json::Value) {
        let resp = e.into_response();
        let status = resp.status().as_u16();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .expect("body");
        (status, serde_json::from_slice(&bytes).expect("json"))
    }

    fn msg(v: &serde_json::Value, key: &str) -> String {
        v[key]["message"].as_str().expect("message").to_string()
    }

    #[tokio::test]
    async fn the_whole_mapping_table() {
        let nf = |kind, id: &str| DbError::NotFound {
            kind,
            id: id.into(),
        };
        let cases: Vec<(ApiError, u16, &str, &str)> = vec![
            (nf("datastore", "x").into(), 404, "itemNotFound", "Datastore 'x' cannot be found."),
            (
                nf("datastore version", "9").into(),
                400,
                "badRequest",
                "Datastore version '9' cannot be found.",
            ),
            (nf("flavor", "f1").into(), 404, "itemNotFound", "Resource f1 cannot be found."),
            (nf("instance", "i1").into(), 404, "itemNotFound", "Resource i1 cannot be found."),
            (
                DbError::NoUniqueMatch { kind: "datastore version", name: "10".into() }.into(),
                400,
                "badRequest",
                "Multiple datastore versions found for '10', use an UUID or specify both the name and version number to be more specific.",
            ),
            (DbError::Invalid("bad value".into()).into(), 400, "badRequest", "bad value"),
            (
                DbError::QuotaExceeded { resources: vec!["instances".into()] }.into(),
                413,
                "overLimit",
                "Quota exceeded for resources: ['instances'].",
            ),
            (
                DbError::Conflict("lost".into()).into(),
                409,
                "conflict",
                "The resource was changed by another request; please retry.",
            ),
            (
                DbError::Backend(sqlx::Error::PoolTimedOut).into(),
                503,
                "serviceUnavailable",
                "The service is temporarily unavailable. Please try again later.",
            ),
            (
                DbError::Backend(sqlx::Error::RowNotFound).into(),
                500,
                "instanceFault",
                "Internal Server Error. Please keep this ID to help us figure out what went wrong: ().",
            ),
            (
                PolicyDenied { rule: "instance:delete".into() }.into(),
                403,
                "forbidden",
                "Policy doesn't allow instance:delete to be performed.",
            ),
            (
                ValidationError::single("instance", "'name' is a required property").into(),
                400,
                "badRequest",
                "Validation error: instance 'name' is a required property",
            ),
            (
                AuthError::Unavailable("keystone down".into()).into(),
                503,
                "serviceUnavailable",
                "The service is temporarily unavailable. Please try again later.",
            ),
            (
                TaskManagerError::Unavailable("broker down".into()).into(),
                503,
                "serviceUnavailable",
                "The service is temporarily unavailable. Please try again later.",
            ),
            (
                TaskManagerError::Failed("boom".into()).into(),
                500,
                "instanceFault",
                "Internal Server Error. Please keep this ID to help us figure out what went wrong: ().",
            ),
            (ApiError::not_admin(), 401, "unauthorized", "User does not have admin privileges."),
            (ApiError::unprocessable("busy"), 422, "unprocessableEntity", "busy"),
            (ApiError::not_implemented("later"), 501, "notImplemented", "later"),
        ];
        let exists = DbError::AlreadyExists {
            kind: "flavor",
            id: "m1".into(),
        };
        let exists_message = exists.to_string();
        let (s, v) = body(exists.into()).await;
        assert_eq!((s, msg(&v, "badRequest")), (400, exists_message));
        for (err, status, key, message) in cases {
            let (s, v) = body(err).await;
            assert_eq!(s, status, "{v}");
            assert_eq!(v[key]["code"], status, "{v}");
            assert_eq!(msg(&v, key), message);
            assert_eq!(v.as_object().map(|o| o.len()), Some(1), "{v}");
        }
    }

    #[tokio::test]
    async fn token_failures_use_keystonemiddleware_form() {
        let e: ApiError = AuthError::Unauthorized {
            message: "The request you have made requires authentication.".into(),
            www_authenticate: Some("Keystone uri=\"http://ks:5000\"".into()),
        }
        .into();
        let resp = e.into_response();
        assert_eq!(resp.status().as_u16(), 401);
        assert_eq!(
            resp.headers()["www-authenticate"],
            "Keystone uri=\"http://ks:5000\""
        );
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["error"]["title"], "Unauthorized");
        assert_eq!(v["error"]["code"], 401);
    }

    #[tokio::test]
    async fn rate_limit_fault_has_details_and_retry_after() {
        let e = ApiError::rate_limited(
            "Only 200 POST request(s) can be made to * every minute.".into(),
            12,
        );
        let resp = e.into_response();
        assert_eq!(resp.headers()["retry-after"], "12");
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["overLimit"]["retryAfter"], "12");
        assert_eq!(v["overLimit"]["message"], "This request was rate-limited.");
    }

    #[test]
    fn fault_keys_by_status() {
        use axum::http::StatusCode;
        assert_eq!(
            Fault::from_status(StatusCode::INTERNAL_SERVER_ERROR),
            Fault::InstanceFault
        );
        assert_eq!(
            Fault::from_status(StatusCode::METHOD_NOT_ALLOWED),
            Fault::BadMethod
        );
        assert_eq!(
            Fault::from_status(StatusCode::IM_A_TEAPOT),
            Fault::BadRequest
        );
        assert_eq!(
            Fault::from_status(StatusCode::BAD_GATEWAY),
            Fault::InstanceFault
        );
    }
}
