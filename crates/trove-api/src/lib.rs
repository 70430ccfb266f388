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
//! - [`guest`]: guest agent clients for the databases, users and root calls.
//!
//! The API is wire-compatible with Trove for python-troveclient 8.11 and
//! `openstack database ...`; `shared/spec/api*.md` holds the facts it follows.
//!
//! Wiring a server (what a `trove-api` binary does):
//!
//! ```no_run
//! # async fn run(cfg: trove_config::Config, transport: std::sync::Arc<dyn trove_rpc::Transport>)
//! #     -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use trove_api::guest::RpcGuestClients;
//! use trove_api::{auth, policy::Enforcer, taskmanager::RpcTaskManager, ApiApp};
//! use trove_rpc::api::taskmanager::TaskManagerApi;
//!
//! let db = trove_db::Db::connect(cfg.database.connection.expose_secret()).await?;
//! let enforcer = Enforcer::load(cfg.oslo_policy.policy_file.as_ref(), None)?
//!     .with_admin_roles(cfg.default.admin_roles.clone());
//! let authenticator = auth::authenticator_from_config(&cfg)?;
//! let key = cfg
//!     .default
//!     .enable_secure_rpc_messaging
//!     .then(|| cfg.default.taskmanager_rpc_encr_key.expose_secret().to_string());
//! let tm = TaskManagerApi::new(transport.clone(), &cfg.default.taskmanager_queue, key);
//! let guests = Arc::new(RpcGuestClients::from_config(transport, &cfg));
//! let listener =
//!     tokio::net::TcpListener::bind((cfg.default.bind_host, cfg.default.bind_port)).await?;
//! let router = ApiApp::builder(
//!     Arc::new(cfg),
//!     db,
//!     Arc::new(enforcer),
//!     authenticator,
//!     Some(Arc::new(RpcTaskManager::new(tm))),
//! )
//! .guests(guests)
//! .build();
//! trove_api::serve(listener, router, async {
//!     let _ = tokio::signal::ctrl_c().await;
//! })
//! .await?;
//! # Ok(()) }
//! ```

pub mod app;
pub mod auth;
pub mod context;
pub mod error;
pub mod extract;
pub mod flavors;
pub mod guest;
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
