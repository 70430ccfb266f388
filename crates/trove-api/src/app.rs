//! Assembling the API: [`ApiApp::builder`] wires configuration, database, policy,
//! authentication and the taskmanager client into an axum [`Router`]; [`serve`] runs it
//! on a bound listener until a shutdown future completes.
//!
//! ```no_run
//! # async fn run(cfg: trove_config::Config, db: trove_db::Db) -> std::io::Result<()> {
//! use std::sync::Arc;
//! use trove_api::{auth::NoAuth, policy::Enforcer, serve, ApiApp};
//!
//! let router = ApiApp::builder(Arc::new(cfg), db, Arc::new(Enforcer::with_defaults()), Arc::new(NoAuth), None)
//!     .build();
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8779").await?;
//! serve(listener, router, async { let _ = tokio::signal::ctrl_c().await; }).await
//! # }
//! ```

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use tower_http::limit::RequestBodyLimitLayer;
use trove_config::Config;
use trove_db::Db;

use crate::auth::Authenticator;
use crate::flavors::{DbFlavors, FlavorSource};
use crate::guest::GuestClientFactory;
use crate::policy::Enforcer;
use crate::ratelimit::{default_limits, Limit, RateLimiter};
use crate::taskmanager::TaskManagerClient;

/// Shared state of every handler (cheap to clone).
#[derive(Debug, Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: Arc<Config>,
    db: Db,
    enforcer: Arc<Enforcer>,
    authenticator: Arc<dyn Authenticator>,
    taskmanager: Option<Arc<dyn TaskManagerClient>>,
    guests: Option<Arc<dyn GuestClientFactory>>,
    flavors: Arc<dyn FlavorSource>,
    /// Per-project request counters (in memory, per process).
    limiter: RateLimiter,
}

impl AppState {
    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The control database.
    pub fn db(&self) -> &Db {
        &self.inner.db
    }

    /// The policy enforcer.
    pub fn enforcer(&self) -> &Enforcer {
        &self.inner.enforcer
    }

    /// The authenticator.
    pub fn authenticator(&self) -> &dyn Authenticator {
        &*self.inner.authenticator
    }

    /// The taskmanager client, if this API was built with one.
    pub fn taskmanager(&self) -> Option<&dyn TaskManagerClient> {
        self.inner.taskmanager.as_deref()
    }

    /// The rate limiter.
    pub fn limiter(&self) -> &RateLimiter {
        &self.inner.limiter
    }

    /// The guest clients, if this API was built with them (see [`ApiAppBuilder::guests`]).
    pub fn guests(&self) -> Option<&dyn GuestClientFactory> {
        self.inner.guests.as_deref()
    }

    /// The flavor catalog (see [`ApiAppBuilder::flavors`]).
    pub fn flavors(&self) -> &dyn FlavorSource {
        &*self.inner.flavors
    }
}

/// Entry point of the API; see [`ApiApp::builder`].
#[derive(Debug)]
pub struct ApiApp;

impl ApiApp {
    /// Starts building the API from its collaborators. `taskmanager` may be `None` (calls
    /// that need it then answer 503).
    pub fn builder(
        config: Arc<Config>,
        db: Db,
        enforcer: Arc<Enforcer>,
        authenticator: Arc<dyn Authenticator>,
        taskmanager: Option<Arc<dyn TaskManagerClient>>,
    ) -> ApiAppBuilder {
        let body_limit = usize::try_from(config.oslo_middleware.max_request_body_size)
            .unwrap_or(114_688)
            .max(1);
        let limits = default_limits(&config);
        ApiAppBuilder {
            config,
            flavors: Arc::new(DbFlavors(db.clone())),
            db,
            enforcer,
            authenticator,
            taskmanager,
            guests: None,
            body_limit,
            limits,
        }
    }
}

/// Builder of the API router.
#[derive(Debug)]
pub struct ApiAppBuilder {
    config: Arc<Config>,
    db: Db,
    enforcer: Arc<Enforcer>,
    authenticator: Arc<dyn Authenticator>,
    taskmanager: Option<Arc<dyn TaskManagerClient>>,
    guests: Option<Arc<dyn GuestClientFactory>>,
    flavors: Arc<dyn FlavorSource>,
    body_limit: usize,
    limits: Vec<Limit>,
}

impl ApiAppBuilder {
    /// Largest accepted request body in bytes (default `[oslo_middleware]
    /// max_request_body_size`); larger bodies get 413.
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes.max(1);
        self
    }

    /// Replaces the rate limits (default: the `http_*_rate` options); an empty list
    /// disables rate limiting.
    pub fn rate_limits(mut self, limits: Vec<Limit>) -> Self {
        self.limits = limits;
        self
    }

    /// How to reach guest agents (databases, users, root); without it those calls
    /// answer 503.
    pub fn guests(mut self, guests: Arc<dyn GuestClientFactory>) -> Self {
        self.guests = Some(guests);
        self
    }

    /// Where flavors come from (default: the control database's `flavors` table; with the
    /// OpenStack compute driver, the cloud's compute service).
    pub fn flavors(mut self, flavors: Arc<dyn FlavorSource>) -> Self {
        self.flavors = flavors;
        self
    }

    /// The shared state the router will use.
    pub fn state(&self) -> AppState {
        AppState {
            inner: Arc::new(Inner {
                config: self.config.clone(),
                db: self.db.clone(),
                enforcer: self.enforcer.clone(),
                authenticator: self.authenticator.clone(),
                taskmanager: self.taskmanager.clone(),
                guests: self.guests.clone(),
                flavors: self.flavors.clone(),
                limiter: RateLimiter::new(self.limits.clone()),
            }),
        }
    }

    /// The finished router, middleware included.
    pub fn build(self) -> Router {
        let state = self.state();
        crate::routes::router(state.clone())
            .layer(axum::middleware::from_fn_with_state(
                state,
                crate::context::authenticate,
            ))
            .layer(RequestBodyLimitLayer::new(self.body_limit))
            .layer(axum::middleware::from_fn(crate::middleware::outer))
    }
}

/// Serves `router` on `listener` until `shutdown` completes, then stops accepting and
/// lets requests in flight finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}
