//! The HTTP core: versions, request ids, content types, fault bodies for every error
//! class the core produces, authentication and the project check, body limits, panics,
//! rate limits, 501 routes.

mod common;

use std::sync::Arc;

use common::{redact, send, Options, TestApp, HOST, PROJECT};
use futures::future::BoxFuture;
use reqwest::Method;
use trove_api::auth::{AuthContext, AuthError, AuthRequest, Authenticator};
use trove_api::ratelimit::{Limit, Unit};

fn assert_request_id(r: &common::Resp) -> String {
    let id = r.header("x-openstack-request-id").to_string();
    assert!(id.starts_with("req-"), "{id}");
    let uuid = &id[4..];
    assert_eq!(uuid.len(), 36, "{id}");
    assert!(uuid::Uuid::parse_str(uuid).is_ok(), "{id}");
    assert_eq!(r.header("x-compute-request-id"), id);
    id
}

#[tokio::test]
async fn versions_document() {
    let app = TestApp::start().await;
    let r = send(app.request(Method::GET, "/")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), "application/json");
    assert_request_id(&r);
    insta::assert_json_snapshot!(r.json(), @r#"
    {
      "versions": [
        {
          "id": "v1.0",
          "links": [
            {
              "href": "http://db.example.org:8779/v1.0/",
              "rel": "self"
            }
          ],
          "status": "CURRENT",
          "updated": "2012-08-01T00:00:00Z"
        }
      ]
    }
    "#);
}

#[tokio::test]
async fn versions_use_public_endpoint() {
    let mut config = trove_config::Config::default();
    config.default.public_endpoint = Some("https://trove.example.com:443/".into());
    let app = TestApp::start_with(Options {
        config,
        ..Options::default()
    })
    .await;
    let r = send(app.request(Method::GET, "/")).await;
    assert_eq!(
        r.json()["versions"][0]["links"][0]["href"],
        "https://trove.example.com:443/v1.0/"
    );
}

#[tokio::test]
async fn healthcheck_is_plain_ok() {
    let app = TestApp::start().await;
    let r = send(app.request(Method::GET, "/healthcheck")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text, "OK");
}

#[tokio::test]
async fn unknown_routes_and_methods_are_item_not_found() {
    let app = TestApp::start().await;
    for (method, path) in [
        (Method::GET, "/nothing".to_string()),
        (Method::GET, format!("/v1.0/{PROJECT}/nothing")),
        (Method::GET, format!("/v1.0/{PROJECT}/flavors/2/extra")),
        // A route that exists without that method (Trove's router answers 404 too).
        (Method::PUT, format!("/v1.0/{PROJECT}/datastores/x")),
        (Method::DELETE, format!("/v1.0/{PROJECT}/flavors")),
    ] {
        let r = send(app.request(method.clone(), &path)).await;
        assert_eq!(
            r.fault(404, "itemNotFound"),
            "The resource could not be found.",
            "{method} {path}"
        );
        assert_request_id(&r);
    }
}

#[tokio::test]
async fn empty_answers_still_have_json_content_type() {
    let app = TestApp::start().await;
    // HEAD of a GET route: no body, still the JSON content type and request ids.
    let r = send(app.request(Method::HEAD, "/")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), "application/json");
    assert!(r.text.is_empty());
}

#[tokio::test]
async fn v1_without_project_is_forbidden() {
    let app = TestApp::start().await;
    for path in ["/v1.0", "/v1.0/"] {
        let r = send(app.request(Method::GET, path)).await;
        r.fault(403, "forbidden");
    }
}

/// An authenticator whose token always belongs to project `p1`.
#[derive(Debug)]
struct FixedProject;

impl Authenticator for FixedProject {
    fn authenticate<'a>(
        &'a self,
        request: AuthRequest<'a>,
    ) -> BoxFuture<'a, Result<AuthContext, AuthError>> {
        Box::pin(async move {
            match request.token() {
                Some("good") => Ok(AuthContext {
                    project_id: "p1".into(),
                    user_id: "u1".into(),
                    roles: vec!["member".into()],
                    ..AuthContext::default()
                }),
                _ => Err(AuthError::Unauthorized {
                    message: "The request you have made requires authentication.".into(),
                    www_authenticate: Some("Keystone uri=\"http://keystone:5000\"".into()),
                }),
            }
        })
    }
}

#[tokio::test]
async fn token_project_must_match_url_project() {
    let app = TestApp::start_with(Options {
        authenticator: Some(Arc::new(FixedProject)),
        ..Options::default()
    })
    .await;
    let ok = send(
        app.request(Method::GET, "/v1.0/p1/flavors")
            .header("x-auth-token", "good"),
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    let other = send(
        app.request(Method::GET, "/v1.0/p2/flavors")
            .header("x-auth-token", "good"),
    )
    .await;
    assert_eq!(
        other.fault(403, "forbidden"),
        "User with tenant id p1 cannot access this resource."
    );
    let bad = send(app.request(Method::GET, "/v1.0/p1/flavors")).await;
    assert_eq!(bad.status, 401);
    assert_eq!(
        bad.header("www-authenticate"),
        "Keystone uri=\"http://keystone:5000\""
    );
    insta::assert_json_snapshot!(bad.json(), @r#"
    {
      "error": {
        "code": 401,
        "message": "The request you have made requires authentication.",
        "title": "Unauthorized"
      }
    }
    "#);
    // Unauthenticated requests cannot even learn which routes exist.
    let unknown = send(app.request(Method::GET, "/v1.0/p1/nothing")).await;
    assert_eq!(unknown.status, 401);
    // The version document needs no token.
    assert_eq!(send(app.request(Method::GET, "/")).await.status, 200);
}

/// An authenticator that panics, to exercise the panic guard.
#[derive(Debug)]
struct Panicking;

impl Authenticator for Panicking {
    fn authenticate<'a>(
        &'a self,
        _request: AuthRequest<'a>,
    ) -> BoxFuture<'a, Result<AuthContext, AuthError>> {
        Box::pin(async move { panic!("authenticator exploded") })
    }
}

#[tokio::test]
async fn panics_become_instance_fault_with_the_request_id() {
    let app = TestApp::start_with(Options {
        authenticator: Some(Arc::new(Panicking)),
        ..Options::default()
    })
    .await;
    let r = send(app.v1(Method::GET, "/flavors")).await;
    let id = assert_request_id(&r);
    let message = r.fault(500, "instanceFault");
    assert_eq!(
        message,
        format!(
            "Internal Server Error. Please keep this ID to help us figure out what went wrong: ({id})."
        )
    );
    assert!(!r.text.contains("exploded"));
    // The server is still alive.
    assert_eq!(send(app.request(Method::GET, "/")).await.status, 200);
}

#[tokio::test]
async fn non_json_content_type_is_415() {
    let app = TestApp::start().await;
    let r = send(
        app.v1_admin(Method::PUT, &format!("/mgmt/quotas/{PROJECT}"))
            .header("content-type", "text/plain")
            .body("quotas=1"),
    )
    .await;
    assert_eq!(r.fault(415, "badMediaType"), "Unsupported Content-Type");
}

#[tokio::test]
async fn malformed_and_missing_bodies_are_400() {
    let app = TestApp::start().await;
    let path = format!("/mgmt/quotas/{PROJECT}");
    for (ct, body) in [
        (Some("application/json"), "{bad json"),
        (Some("application/json"), "[1, 2"),
        (None, "{\"quotas\": "),
        (Some("application/vnd.openstack.trove+json"), "nope"),
    ] {
        let mut rb = app.v1_admin(Method::PUT, &path).body(body.to_string());
        if let Some(ct) = ct {
            rb = rb.header("content-type", ct);
        }
        let r = send(rb).await;
        assert_eq!(
            r.fault(400, "badRequest"),
            "Malformed request body",
            "{body}"
        );
    }
    let r = send(app.v1_admin(Method::PUT, &path)).await;
    assert_eq!(r.fault(400, "badRequest"), "Invalid request body.");
    // A body without Content-Type is parsed as JSON.
    let r = send(app.v1_admin(Method::PUT, &path).body(r#"{"other": {}}"#)).await;
    assert_eq!(
        r.fault(400, "badRequest"),
        "Validation error: 'quotas' is a required property"
    );
}

#[tokio::test]
async fn huge_bodies_are_413_over_limit() {
    let app = TestApp::start_with(Options {
        body_limit: Some(1024),
        ..Options::default()
    })
    .await;
    let big = format!(
        "{{\"quotas\": {{\"instances\": 1, \"pad\": \"{}\"}}}}",
        "x".repeat(4096)
    );
    let r = send(
        app.v1_admin(Method::PUT, &format!("/mgmt/quotas/{PROJECT}"))
            .header("content-type", "application/json")
            .body(big),
    )
    .await;
    assert_eq!(r.fault(413, "overLimit"), "Request is too large.");
    assert_request_id(&r);
}

#[tokio::test]
async fn default_body_limit_comes_from_oslo_middleware() {
    let app = TestApp::start().await;
    let big = format!("{{\"quotas\": {{\"pad\": \"{}\"}}}}", "x".repeat(200_000));
    let r = send(
        app.v1_admin(Method::PUT, &format!("/mgmt/quotas/{PROJECT}"))
            .header("content-type", "application/json")
            .body(big),
    )
    .await;
    r.fault(413, "overLimit");
}

#[tokio::test]
async fn rate_limits_answer_413_with_retry_after() {
    let app = TestApp::start_with(Options {
        rate_limits: Some(vec![Limit {
            verb: "GET",
            uri: "*",
            regex: ".*",
            value: 2,
            unit: Unit::Minute,
        }]),
        ..Options::default()
    })
    .await;
    assert_eq!(app.get("/flavors").await.status, 200);
    assert_eq!(app.get("/flavors").await.status, 200);
    let r = app.get("/flavors").await;
    assert_eq!(r.fault(413, "overLimit"), "This request was rate-limited.");
    let v = r.json();
    assert_eq!(
        v["overLimit"]["details"],
        "Only 2 GET request(s) can be made to * every minute."
    );
    let retry: u64 = r.header("retry-after").parse().unwrap();
    assert!((1..=30).contains(&retry), "{retry}");
    assert_eq!(v["overLimit"]["retryAfter"], retry.to_string());
    // Another project has its own counters.
    let other = send(app.request(Method::GET, "/v1.0/otherproject/flavors")).await;
    assert_eq!(other.status, 200);
}

#[tokio::test]
async fn unbuilt_routes_answer_501() {
    let app = TestApp::start().await;
    for (method, path) in [
        (Method::POST, "/clusters"),
        (Method::GET, "/clusters"),
        (Method::GET, "/modules"),
        (
            Method::GET,
            "/instances/0f3c1c3e-5d5a-4c4b-9a0e-2b6f8d1e7a90/log",
        ),
    ] {
        let r = send(
            app.v1(method.clone(), path)
                .header("content-type", "application/json")
                .body("{}"),
        )
        .await;
        assert_eq!(
            r.fault(501, "notImplemented"),
            "This operation is not implemented yet.",
            "{method} {path}"
        );
    }
}

#[tokio::test]
async fn host_header_drives_links() {
    let app = TestApp::start().await;
    app.seed().await;
    let r = app.get("/flavors/2").await;
    let v = redact(&r.json());
    assert_eq!(
        v["flavor"]["links"][0]["href"],
        format!("https://{HOST}/v1.0/{PROJECT}/flavors/2")
    );
    assert_eq!(
        v["flavor"]["links"][1]["href"],
        format!("https://{HOST}/flavors/2")
    );
}

#[tokio::test]
async fn openapi_document_lists_every_route() {
    let app = TestApp::start().await;
    let r = send(app.request(Method::GET, "/openapi.json")).await;
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["openapi"], "3.1.0");
    let paths = v["paths"].as_object().unwrap();
    for route in trove_api::routes::v1_routes() {
        let p = format!("/v1.0/{{project}}{}", route.path);
        let op = &paths[&p][route.method.to_ascii_lowercase()];
        assert_eq!(op["summary"], route.summary, "{p}");
        assert_eq!(op["x-implemented"], route.implemented, "{p}");
    }
    insta::assert_json_snapshot!("openapi", v);
}

/// A chunked body (no Content-Length) over the limit is cut off while reading: 413 too.
#[tokio::test]
async fn chunked_bodies_over_the_limit_are_413() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::start_with(Options {
        body_limit: Some(1024),
        ..Options::default()
    })
    .await;
    let addr = app.base.trim_start_matches("http://").to_string();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let chunk = format!("{{\"quotas\": {{\"pad\": \"{}\"}}}}", "x".repeat(4000));
    let request = format!(
        "PUT /v1.0/{PROJECT}/mgmt/quotas/{PROJECT} HTTP/1.1\r\nHost: {HOST}\r\n\
         X-Roles: admin\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\
         Connection: close\r\n\r\n{:x}\r\n{chunk}\r\n0\r\n\r\n",
        chunk.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response).await;
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
    assert!(response.contains("\"overLimit\""), "{response}");
    assert!(
        response.contains("x-openstack-request-id: req-"),
        "{response}"
    );
}
