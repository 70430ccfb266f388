//! trove-api: the Trove v1 REST API (routes, views, auth, policy, quotas).
//!
//! Map of the crate:
//! - [`app`]: [`ApiApp::builder`] assembles the router; [`serve`] runs it with graceful
//!   shutdown.
//! - [`middleware`]: request ids, panics, content types, fault bodies for every error.
//! - [`context`]: authentication, the URL project check, `is_admin`, rate limits, and the
//!   [`context::RequestContext`] handlers extract.
//! - [`auth`]: the [`auth::Authenticator`] trait and `noauth`.
//! - [`policy`]: oslo.policy rules with Trove's defaults.
//! - [`error`]: [`ApiError`], Trove's fault body, and every `From<DomainError>` in one file.
//! - [`validation`]: Trove-style schema validation of request bodies.
//! - [`extract`]: JSON body extractors (size limit, malformed JSON).
//! - [`openapi`]: `GET /openapi.json`, generated from the route table.
//! - [`routes`]: the route table; [`handlers`]: one module per resource; [`views`]: JSON
//!   shapes.
//! - [`instances`]: instance status derivation and state gates (pure).
//! - [`ratelimit`], [`quota`]: per-project rate limits and quota limits.
//! - [`taskmanager`]: the casts the API sends to the taskmanager, behind a trait.
//!
//! The API is wire-compatible with Trove for python-troveclient 8.11 and
//! `openstack database ...`; `shared/spec/api*.md` holds the facts it follows.

pub mod app;
pub mod auth;
pub mod context;
pub mod error;
pub mod extract;
pub mod handlers;
pub mod instances;
pub mod middleware;
pub mod openapi;
pub mod policy;
pub mod quota;
pub mod ratelimit;
pub mod routes;
pub mod taskmanager;
pub mod validation;
pub mod views;

pub use app::{serve, ApiApp, ApiAppBuilder, AppState};
pub use error::{ApiError, ApiResult, Fault};
