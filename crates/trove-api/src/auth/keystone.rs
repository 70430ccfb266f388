//! Keystone v3 token validation for the API, the job keystonemiddleware's `auth_token`
//! filter does in front of the original Trove.
//!
//! A [`KeystoneValidator`] is built once at startup from the `[keystone_authtoken]`
//! values ([`KeystoneAuthConfig`]) and shared (`Arc`) by all requests. For each request
//! the HTTP layer calls [`KeystoneValidator::validate`] with the `X-Auth-Token` header
//! and gets either an [`AuthContext`] (who the caller is, which project, which roles) or
//! an [`AuthError`] that already knows its HTTP status, body and, for a 401, the
//! `WWW-Authenticate` value. This module knows nothing of axum or any other framework.
//!
//! # How a token is checked
//!
//! 1. The in-memory cache is consulted. A token Keystone accepted is kept until
//!    `min(token expiry, now + token_cache_time)`; a token Keystone rejected is kept for
//!    `negative_cache_time` (a few seconds) so a client that repeats a bad token does not
//!    hammer Keystone. Failures to reach Keystone are never cached.
//! 2. On a miss, `GET {auth_url}/v3/auth/tokens` is sent with the service token in
//!    `X-Auth-Token` and the user's token in `X-Subject-Token`. Concurrent requests for
//!    the same uncached token share that one call (single flight).
//! 3. The service token comes from a password login of the configured service user,
//!    scoped to its project. It is renewed shortly before it expires and, once, when
//!    Keystone answers 401 to a validation (it was revoked or the keys rotated).
//!
//! A token Keystone accepts but that is not scoped to a project is rejected as
//! [`AuthError::Invalid`]: every Trove URL carries a project, so such a token could
//! never pass the project check that follows.
//!
//! # What it does not do
//!
//! No memcached (the cache lives in the process), no PKI or revocation lists, no
//! `service_token_roles` checks of a second `X-Service-Token`, and no endpoint discovery:
//! Keystone is always reached at `auth_url` (with `/v3` appended when missing), so
//! `region_name` is only carried along for callers that need it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::header::HeaderValue;
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::OnceCell;
use tokio::time::Instant;

/// Header carrying the token being validated (or the one Keystone issued on login).
const SUBJECT_TOKEN: &str = "X-Subject-Token";
/// Header carrying the caller's own token.
const AUTH_TOKEN: &str = "X-Auth-Token";
/// Renew the service token when less than this is left of its lifetime.
const SERVICE_TOKEN_MARGIN: Duration = Duration::from_secs(60);
/// Tokens longer than this are rejected without asking Keystone (Fernet tokens are
/// under 300 bytes; this leaves room for any other provider).
const MAX_TOKEN_LEN: usize = 8192;

/// The `[keystone_authtoken]` settings the validator needs, plus a few tuning knobs
/// that have no option in trove.conf. Build it with [`KeystoneAuthConfig::new`] and set
/// the other fields as needed.
#[derive(Clone, Debug)]
pub struct KeystoneAuthConfig {
    /// `auth_url`: Keystone's identity endpoint, e.g. `http://controller:5000/v3` or
    /// `http://controller/identity` (`/v3` is appended when the path does not end in it).
    pub auth_url: String,
    /// `www_authenticate_uri`: the Keystone address clients are told to authenticate at
    /// in `WWW-Authenticate`; `auth_url` is used when unset.
    pub www_authenticate_uri: Option<String>,
    /// `username` of the service user that validates tokens.
    pub username: String,
    /// `password` of the service user.
    pub password: SecretString,
    /// `project_name` of the service user's project (usually `service`).
    pub project_name: String,
    /// `user_domain_name` (default `Default`).
    pub user_domain_name: String,
    /// `project_domain_name` (default `Default`).
    pub project_domain_name: String,
    /// `region_name`: kept for callers; the validator always talks to `auth_url`.
    pub region_name: Option<String>,
    /// `insecure`: accept any TLS certificate from Keystone (default false).
    pub insecure: bool,
    /// `cafile`: PEM file with the CA certificate(s) that sign Keystone's certificate.
    pub cafile: Option<PathBuf>,
    /// `token_cache_time`: how long a valid token stays cached (default 300 s). Zero
    /// (the `-1` of trove.conf) turns caching off, for both valid and invalid tokens.
    pub token_cache_time: Duration,
    /// `include_service_catalog`: ask Keystone for the user's service catalog and pass it
    /// on in [`AuthContext::service_catalog`] (default true).
    pub include_service_catalog: bool,
    /// How long a token Keystone rejected stays cached as invalid (default 10 s, never
    /// longer than `token_cache_time`).
    pub negative_cache_time: Duration,
    /// Most tokens kept in the cache at once (default 10 000); the entries closest to
    /// expiry are dropped first when it is full.
    pub cache_max_entries: usize,
    /// Time limit of one HTTP exchange with Keystone (default 10 s).
    pub http_timeout: Duration,
}

impl KeystoneAuthConfig {
    /// Settings for the given Keystone and service user, with keystonemiddleware's
    /// defaults for everything else.
    pub fn new(
        auth_url: impl Into<String>,
        username: impl Into<String>,
        password: SecretString,
        project_name: impl Into<String>,
    ) -> Self {
        Self {
            auth_url: auth_url.into(),
            www_authenticate_uri: None,
            username: username.into(),
            password,
            project_name: project_name.into(),
            user_domain_name: "Default".to_owned(),
            project_domain_name: "Default".to_owned(),
            region_name: None,
            insecure: false,
            cafile: None,
            token_cache_time: Duration::from_secs(300),
            include_service_catalog: true,
            negative_cache_time: Duration::from_secs(10),
            cache_max_entries: 10_000,
            http_timeout: Duration::from_secs(10),
        }
    }

    /// The Keystone address advertised in `WWW-Authenticate`.
    pub fn www_authenticate_uri(&self) -> &str {
        self.www_authenticate_uri
            .as_deref()
            .filter(|uri| !uri.is_empty())
            .unwrap_or(&self.auth_url)
    }
}

/// Who made a request, as Keystone vouches for it.
#[derive(Clone, Debug)]
pub struct AuthContext {
    /// Keystone user id.
    pub user_id: String,
    /// User name.
    pub user_name: String,
    /// Id of the project the token is scoped to (the tenant of Trove's URLs).
    pub project_id: String,
    /// Name of that project.
    pub project_name: String,
    /// Names of the roles the user holds on the project, as Keystone lists them.
    pub roles: Vec<String>,
    /// When the token stops being valid.
    pub expires_at: DateTime<Utc>,
    /// The token's v3 service catalog (a JSON array), or `null` when
    /// `include_service_catalog` is off.
    pub service_catalog: Value,
    /// The token itself, for calls made on the user's behalf (e.g. to Swift).
    pub token: SecretString,
}

impl AuthContext {
    /// True when the user holds the named role on the project (compared without regard
    /// to ASCII case, as Keystone's policy checks do).
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r.eq_ignore_ascii_case(role))
    }
}

/// Why a request could not be authenticated.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The token is missing, malformed, expired, revoked or unknown to Keystone:
    /// answer 401 with [`AuthError::www_authenticate`].
    #[error("invalid token: {reason}")]
    Invalid {
        /// What was wrong, for the log (not for the client).
        reason: String,
    },
    /// Keystone could not be asked: it is down, slow, answered with a server error, or
    /// refused the service credentials. Answer 503.
    #[error("Keystone unavailable: {reason}")]
    Unavailable {
        /// What failed, for the log (not for the client).
        reason: String,
    },
}

impl AuthError {
    fn invalid(reason: impl Into<String>) -> Self {
        Self::Invalid {
            reason: reason.into(),
        }
    }

    fn unavailable(reason: impl Into<String>) -> Self {
        Self::Unavailable {
            reason: reason.into(),
        }
    }

    /// HTTP status for the response: 401 or 503.
    pub fn http_status(&self) -> u16 {
        match self {
            Self::Invalid { .. } => 401,
            Self::Unavailable { .. } => 503,
        }
    }

    /// JSON body for the response, in keystonemiddleware's error form (api.md §1.2):
    /// `{"error": {"code": 401, "title": "Unauthorized", "message": "..."}}`. The message
    /// is generic; the reason stays in the server log.
    pub fn body(&self) -> Value {
        match self {
            Self::Invalid { .. } => unauthorized_body(),
            Self::Unavailable { .. } => error_body(503, "Service Unavailable", UNAVAILABLE_MESSAGE),
        }
    }

    /// `WWW-Authenticate` value to send with a 401 (see [`www_authenticate_value`]);
    /// `None` for errors that are not a 401.
    pub fn www_authenticate(&self, www_authenticate_uri: &str) -> Option<String> {
        match self {
            Self::Invalid { .. } => Some(www_authenticate_value(www_authenticate_uri)),
            Self::Unavailable { .. } => None,
        }
    }
}

/// Value of the `WWW-Authenticate` header of a 401: `Keystone uri="<uri>"`, telling
/// clients where to get a token.
pub fn www_authenticate_value(www_authenticate_uri: &str) -> String {
    format!(
        "Keystone uri=\"{}\"",
        www_authenticate_uri.replace('"', "%22")
    )
}

/// Message of the 401 sent for a missing or bad token.
pub const UNAUTHORIZED_MESSAGE: &str =
    "The request you have made requires a valid authentication token.";

/// Message of the 503 sent when Keystone cannot be asked.
pub const UNAVAILABLE_MESSAGE: &str =
    "The authentication service is unavailable. Please try again later.";

/// Body of the 401 sent for a missing or bad token (api.md §1.2).
pub fn unauthorized_body() -> Value {
    error_body(401, "Unauthorized", UNAUTHORIZED_MESSAGE)
}

fn error_body(code: u16, title: &str, message: &str) -> Value {
    json!({"error": {"code": code, "title": title, "message": message}})
}

/// Failure to build a [`KeystoneValidator`] from its settings.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// `auth_url` is not an http(s) URL.
    #[error("[keystone_authtoken] auth_url {0:?} is not an http or https URL")]
    AuthUrl(String),
    /// `cafile` could not be read or holds no usable certificate.
    #[error("[keystone_authtoken] cafile {path}: {reason}")]
    CaFile {
        /// The file named in the configuration.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client for Keystone: {0}")]
    Client(String),
}

/// Validates Keystone tokens; one per process, shared by every request.
pub struct KeystoneValidator {
    config: KeystoneAuthConfig,
    /// `auth_url` normalised to end in `/v3`, without a trailing slash.
    identity_url: String,
    http: reqwest::Client,
    /// The current service token. A tokio mutex because it is held across the login
    /// request, so that concurrent renewals turn into one login.
    service_token: tokio::sync::Mutex<Option<ServiceToken>>,
    /// Validated and rejected tokens. A std mutex: it is only held for map operations,
    /// never across an await.
    cache: Mutex<TokenCache>,
    /// Validations under way, by token. Callers asking for the same token wait on the
    /// same cell instead of asking Keystone again. Lock order: `inflight`, then `cache`.
    inflight: Mutex<HashMap<String, Arc<OnceCell<Outcome>>>>,
    /// `GET /v3/auth/tokens` requests sent (including repeats after a 401).
    validation_requests: AtomicU64,
    /// Service logins (`POST /v3/auth/tokens`) sent.
    service_logins: AtomicU64,
}

impl std::fmt::Debug for KeystoneValidator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeystoneValidator")
            .field("identity_url", &self.identity_url)
            .field("username", &self.config.username)
            .field("project_name", &self.config.project_name)
            .finish_non_exhaustive()
    }
}

type Outcome = Result<Arc<AuthContext>, AuthError>;

/// One caller's share of an in-flight validation. When it goes away (answer received or
/// future dropped) it removes the map entry if the validation is finished (so the next
/// caller goes to the cache, or asks Keystone again after a failure) or if it was the
/// last caller still waiting (so abandoned validations do not pile up).
struct Waiter<'a> {
    inflight: &'a Mutex<HashMap<String, Arc<OnceCell<Outcome>>>>,
    token: &'a str,
    /// Always `Some` until dropped; taken in `drop` so the count is right under the lock.
    cell: Option<Arc<OnceCell<Outcome>>>,
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        let Some(cell) = self.cell.take() else { return };
        let mut inflight = lock(self.inflight);
        let ours = inflight
            .get(self.token)
            .is_some_and(|current| Arc::ptr_eq(current, &cell));
        // The map holds one reference and this waiter another.
        if ours && (cell.initialized() || Arc::strong_count(&cell) == 2) {
            inflight.remove(self.token);
        }
        drop(cell);
    }
}

struct ServiceToken {
    token: SecretString,
    /// When to stop using it (its expiry less [`SERVICE_TOKEN_MARGIN`]).
    renew_at: Instant,
}

impl KeystoneValidator {
    /// Builds a validator. It does not contact Keystone: the service user logs in on the
    /// first validation, so the API can start while Keystone is still coming up.
    pub fn new(config: KeystoneAuthConfig) -> Result<Self, ConfigError> {
        let identity_url = identity_url(&config.auth_url)?;
        let mut builder = reqwest::Client::builder()
            .timeout(config.http_timeout)
            .connect_timeout(config.http_timeout.min(Duration::from_secs(5)))
            .user_agent(concat!("trove-api/", env!("CARGO_PKG_VERSION")));
        if config.insecure {
            builder = builder.danger_accept_invalid_certs(true);
        }
        if let Some(path) = &config.cafile {
            let ca_error = |reason: String| ConfigError::CaFile {
                path: path.clone(),
                reason,
            };
            let pem = std::fs::read(path).map_err(|e| ca_error(e.to_string()))?;
            let certs =
                reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| ca_error(e.to_string()))?;
            if certs.is_empty() {
                return Err(ca_error("no PEM certificate in the file".to_owned()));
            }
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder
            .build()
            .map_err(|e| ConfigError::Client(e.to_string()))?;
        let max = config.cache_max_entries;
        Ok(Self {
            config,
            identity_url,
            http,
            service_token: tokio::sync::Mutex::new(None),
            cache: Mutex::new(TokenCache::new(max)),
            inflight: Mutex::new(HashMap::new()),
            validation_requests: AtomicU64::new(0),
            service_logins: AtomicU64::new(0),
        })
    }

    /// The settings the validator was built with.
    pub fn config(&self) -> &KeystoneAuthConfig {
        &self.config
    }

    /// `WWW-Authenticate` value for this deployment's 401 answers.
    pub fn www_authenticate(&self) -> String {
        www_authenticate_value(self.config.www_authenticate_uri())
    }

    /// Number of token validation requests (`GET /v3/auth/tokens`) sent to Keystone so
    /// far. Cache hits and requests that joined another's call do not count.
    pub fn validation_requests(&self) -> u64 {
        self.validation_requests.load(Ordering::Relaxed)
    }

    /// Number of service-user logins sent to Keystone so far.
    pub fn service_logins(&self) -> u64 {
        self.service_logins.load(Ordering::Relaxed)
    }

    /// Forgets every cached token (valid and invalid), e.g. after a configuration reload.
    pub fn clear_cache(&self) {
        lock(&self.cache).clear();
    }

    /// Checks a user token (the `X-Auth-Token` of a request).
    ///
    /// Returns the caller's identity, from the cache when possible. Errors are
    /// [`AuthError::Invalid`] for a token Keystone does not accept (or one that is empty,
    /// oversized or not project-scoped) and [`AuthError::Unavailable`] when Keystone
    /// could not give an answer.
    ///
    /// Cancellation: dropping the future is safe. If it was the one asking Keystone,
    /// another caller waiting for the same token takes over the request.
    pub async fn validate(&self, token: &str) -> Result<Arc<AuthContext>, AuthError> {
        let token = token.trim();
        if token.is_empty() {
            return Err(AuthError::invalid("no token"));
        }
        if token.len() > MAX_TOKEN_LEN || HeaderValue::from_str(token).is_err() {
            return Err(AuthError::invalid(
                "token is too long or not a valid header",
            ));
        }
        if let Some(hit) = lock(&self.cache).get(token, Instant::now()) {
            return hit;
        }
        let waiter = {
            let mut inflight = lock(&self.inflight);
            // A validation may have finished since the first look.
            if let Some(hit) = lock(&self.cache).get(token, Instant::now()) {
                return hit;
            }
            let cell = inflight
                .entry(token.to_owned())
                .or_insert_with(|| Arc::new(OnceCell::new()))
                .clone();
            Waiter {
                inflight: &self.inflight,
                token,
                cell: Some(cell),
            }
        };
        let cell = waiter.cell.as_ref().expect("set until the waiter drops");
        cell.get_or_init(|| self.validate_uncached(token))
            .await
            .clone()
    }

    /// Asks Keystone about the token and records the answer in the cache.
    async fn validate_uncached(&self, token: &str) -> Outcome {
        let outcome = self.ask_keystone(token).await;
        let now = Instant::now();
        match &outcome {
            Ok(ctx) => {
                let left = (ctx.expires_at - Utc::now()).to_std().unwrap_or_default();
                let keep = left.min(self.config.token_cache_time);
                if !keep.is_zero() {
                    lock(&self.cache).insert(token, Ok(ctx.clone()), now + keep, now);
                }
            }
            Err(err @ AuthError::Invalid { .. }) => {
                tracing::debug!(error = %err, "token rejected");
                let keep = self
                    .config
                    .negative_cache_time
                    .min(self.config.token_cache_time);
                if !keep.is_zero() {
                    lock(&self.cache).insert(token, Err(err.clone()), now + keep, now);
                }
            }
            Err(err) => tracing::warn!(error = %err, "cannot validate a token"),
        }
        outcome
    }

    /// One validation round trip, repeated once with a fresh service token on a 401.
    async fn ask_keystone(&self, token: &str) -> Outcome {
        let mut service = self.service_token(None).await?;
        for attempt in 0..2 {
            let mut request = self
                .http
                .get(format!("{}/auth/tokens", self.identity_url))
                .header(AUTH_TOKEN, service.expose_secret())
                .header(SUBJECT_TOKEN, token);
            if !self.config.include_service_catalog {
                request = request.query(&[("nocatalog", "1")]);
            }
            self.validation_requests.fetch_add(1, Ordering::Relaxed);
            let response = request
                .send()
                .await
                .map_err(|e| AuthError::unavailable(format!("GET /v3/auth/tokens: {e}")))?;
            match response.status() {
                StatusCode::OK => {
                    let body: TokenBody = response.json().await.map_err(|e| {
                        AuthError::unavailable(format!("unreadable token from Keystone: {e}"))
                    })?;
                    return self.context(body.token, token).map(Arc::new);
                }
                StatusCode::UNAUTHORIZED if attempt == 0 => {
                    tracing::info!("Keystone refused the service token; logging in again");
                    service = self.service_token(Some(&service)).await?;
                }
                StatusCode::UNAUTHORIZED => {
                    return Err(AuthError::unavailable(
                        "Keystone refused a freshly issued service token",
                    ))
                }
                StatusCode::FORBIDDEN => return Err(AuthError::unavailable(
                    "the service user may not validate tokens (it needs the service or admin role)",
                )),
                StatusCode::NOT_FOUND | StatusCode::BAD_REQUEST => {
                    return Err(AuthError::invalid(format!(
                        "Keystone answered {}",
                        response.status()
                    )))
                }
                other => {
                    return Err(AuthError::unavailable(format!(
                        "GET /v3/auth/tokens answered {other}"
                    )))
                }
            }
        }
        unreachable!("the loop returns on its second pass")
    }

    /// Builds the request context from Keystone's token document.
    fn context(&self, doc: TokenDoc, token: &str) -> Result<AuthContext, AuthError> {
        let project = doc
            .project
            .ok_or_else(|| AuthError::invalid("token is not scoped to a project"))?;
        let expires_at = DateTime::parse_from_rfc3339(&doc.expires_at)
            .map_err(|e| {
                AuthError::unavailable(format!("bad expires_at {:?}: {e}", doc.expires_at))
            })?
            .with_timezone(&Utc);
        Ok(AuthContext {
            user_id: doc.user.id,
            user_name: doc.user.name,
            project_id: project.id,
            project_name: project.name,
            roles: doc.roles.into_iter().map(|r| r.name).collect(),
            expires_at,
            service_catalog: if self.config.include_service_catalog {
                doc.catalog.unwrap_or_else(|| Value::Array(Vec::new()))
            } else {
                Value::Null
            },
            token: SecretString::from(token),
        })
    }

    /// The service token to use. With `stale`, the caller saw that token refused: a new
    /// one is obtained unless another caller already replaced it.
    async fn service_token(&self, stale: Option<&SecretString>) -> Result<SecretString, AuthError> {
        let mut current = self.service_token.lock().await;
        if let Some(held) = current.as_ref() {
            let refused = stale.is_some_and(|s| s.expose_secret() == held.token.expose_secret());
            if !refused && Instant::now() < held.renew_at {
                return Ok(held.token.clone());
            }
        }
        *current = None;
        let fresh = self.login().await?;
        let token = fresh.token.clone();
        *current = Some(fresh);
        Ok(token)
    }

    /// Password login of the service user, scoped to its project.
    async fn login(&self) -> Result<ServiceToken, AuthError> {
        let cfg = &self.config;
        let body = json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": cfg.username,
                "domain": {"name": cfg.user_domain_name},
                "password": cfg.password.expose_secret(),
            }}},
            "scope": {"project": {
                "name": cfg.project_name,
                "domain": {"name": cfg.project_domain_name},
            }},
        }});
        self.service_logins.fetch_add(1, Ordering::Relaxed);
        let response = self
            .http
            .post(format!("{}/auth/tokens?nocatalog", self.identity_url))
            .json(&body)
            .send()
            .await
            .map_err(|e| AuthError::unavailable(format!("service login: {e}")))?;
        let status = response.status();
        if status == StatusCode::UNAUTHORIZED {
            tracing::error!(
                user = %cfg.username,
                project = %cfg.project_name,
                "Keystone rejected the [keystone_authtoken] service credentials"
            );
            return Err(AuthError::unavailable(
                "Keystone rejected the service credentials",
            ));
        }
        if !status.is_success() {
            return Err(AuthError::unavailable(format!(
                "service login answered {status}"
            )));
        }
        let token = response
            .headers()
            .get(SUBJECT_TOKEN)
            .and_then(|v| v.to_str().ok())
            .map(SecretString::from)
            .ok_or_else(|| AuthError::unavailable("service login returned no token"))?;
        let doc: LoginBody = response
            .json()
            .await
            .map_err(|e| AuthError::unavailable(format!("service login body: {e}")))?;
        let left = DateTime::parse_from_rfc3339(&doc.token.expires_at)
            .ok()
            .and_then(|at| (at.with_timezone(&Utc) - Utc::now()).to_std().ok())
            .unwrap_or_default();
        Ok(ServiceToken {
            token,
            renew_at: Instant::now() + left.saturating_sub(SERVICE_TOKEN_MARGIN),
        })
    }
}

/// `auth_strategy = keystone`: the API's [`Authenticator`](super::Authenticator) on top
/// of [`KeystoneValidator::validate`], reading `X-Auth-Token`. Failures reach the client
/// with the generic messages of this module; the details are in the log.
impl super::Authenticator for KeystoneValidator {
    fn authenticate<'a>(
        &'a self,
        request: super::AuthRequest<'a>,
    ) -> futures::future::BoxFuture<'a, Result<super::AuthContext, super::AuthError>> {
        Box::pin(async move {
            match self.validate(request.token().unwrap_or_default()).await {
                Ok(ctx) => Ok(super::AuthContext::from(&*ctx)),
                Err(AuthError::Invalid { .. }) => Err(super::AuthError::Unauthorized {
                    message: UNAUTHORIZED_MESSAGE.to_owned(),
                    www_authenticate: Some(self.www_authenticate()),
                }),
                Err(AuthError::Unavailable { .. }) => Err(super::AuthError::Unavailable(
                    UNAVAILABLE_MESSAGE.to_owned(),
                )),
            }
        })
    }
}

/// `auth_url` with `/v3` at the end and no trailing slash.
fn identity_url(auth_url: &str) -> Result<String, ConfigError> {
    let trimmed = auth_url.trim().trim_end_matches('/');
    let parsed = reqwest::Url::parse(trimmed)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
        .ok_or_else(|| ConfigError::AuthUrl(auth_url.to_owned()))?;
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(ConfigError::AuthUrl(auth_url.to_owned()));
    }
    if trimmed.ends_with("/v3") {
        Ok(trimmed.to_owned())
    } else {
        Ok(format!("{trimmed}/v3"))
    }
}

/// Locks a std mutex, ignoring poisoning: the maps stay consistent after any panic
/// because every change is a single insert or remove.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Bounded map of token -> answer, each with its own deadline.
struct TokenCache {
    entries: HashMap<String, CacheEntry>,
    max: usize,
}

struct CacheEntry {
    outcome: Outcome,
    until: Instant,
}

impl TokenCache {
    fn new(max: usize) -> Self {
        Self {
            entries: HashMap::new(),
            max,
        }
    }

    fn get(&mut self, token: &str, now: Instant) -> Option<Outcome> {
        match self.entries.get(token) {
            Some(entry) if now < entry.until => Some(entry.outcome.clone()),
            Some(_) => {
                self.entries.remove(token);
                None
            }
            None => None,
        }
    }

    fn insert(&mut self, token: &str, outcome: Outcome, until: Instant, now: Instant) {
        if self.max == 0 {
            return;
        }
        if self.entries.len() >= self.max && !self.entries.contains_key(token) {
            self.entries.retain(|_, e| e.until > now);
            // Still full: drop the tenth of the entries that expire first.
            if self.entries.len() >= self.max {
                let mut deadlines: Vec<Instant> = self.entries.values().map(|e| e.until).collect();
                let cut = (self.max / 10).max(1).min(deadlines.len() - 1);
                deadlines.select_nth_unstable(cut);
                let limit = deadlines[cut];
                self.entries.retain(|_, e| e.until > limit);
            }
        }
        self.entries
            .insert(token.to_owned(), CacheEntry { outcome, until });
    }

    fn clear(&mut self) {
        self.entries.clear();
    }
}

/// `GET /v3/auth/tokens` answer.
#[derive(Deserialize)]
struct TokenBody {
    token: TokenDoc,
}

#[derive(Deserialize)]
struct TokenDoc {
    expires_at: String,
    user: Named,
    #[serde(default)]
    project: Option<Named>,
    #[serde(default)]
    roles: Vec<Named>,
    #[serde(default)]
    catalog: Option<Value>,
}

#[derive(Deserialize)]
struct Named {
    id: String,
    #[serde(default)]
    name: String,
}

/// `POST /v3/auth/tokens` answer (only what the validator reads).
#[derive(Deserialize)]
struct LoginBody {
    token: LoginDoc,
}

#[derive(Deserialize)]
struct LoginDoc {
    expires_at: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(name: &str) -> Outcome {
        Ok(Arc::new(AuthContext {
            user_id: name.to_owned(),
            user_name: name.to_owned(),
            project_id: "p".to_owned(),
            project_name: "p".to_owned(),
            roles: vec!["member".to_owned()],
            expires_at: Utc::now(),
            service_catalog: Value::Null,
            token: SecretString::from(name),
        }))
    }

    #[test]
    fn identity_url_gets_v3() {
        assert_eq!(identity_url("http://k:5000").unwrap(), "http://k:5000/v3");
        assert_eq!(
            identity_url("http://k:5000/v3/").unwrap(),
            "http://k:5000/v3"
        );
        assert_eq!(
            identity_url("https://k/identity").unwrap(),
            "https://k/identity/v3"
        );
        assert!(identity_url("k:5000").is_err());
        assert!(identity_url("ftp://k/v3").is_err());
    }

    #[test]
    fn cache_entries_expire() {
        let mut cache = TokenCache::new(10);
        let now = Instant::now();
        cache.insert("a", ok("a"), now + Duration::from_secs(5), now);
        assert!(cache.get("a", now).is_some());
        assert!(cache.get("a", now + Duration::from_secs(5)).is_none());
        assert!(cache.entries.is_empty());
    }

    #[test]
    fn full_cache_drops_the_soonest_to_expire() {
        let mut cache = TokenCache::new(10);
        let now = Instant::now();
        for i in 0..10u64 {
            let name = format!("t{i}");
            cache.insert(&name, ok(&name), now + Duration::from_secs(10 + i), now);
        }
        cache.insert("new", ok("new"), now + Duration::from_secs(100), now);
        assert!(cache.entries.len() <= 10);
        assert!(cache.get("new", now).is_some());
        assert!(cache.get("t9", now).is_some());
        assert!(cache.get("t0", now).is_none());
    }

    #[tokio::test]
    async fn abandoned_validations_leave_nothing_behind() {
        // Accepts connections (kernel backlog) but never answers.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/v3", silent.local_addr().unwrap());
        let v = Arc::new(
            KeystoneValidator::new(KeystoneAuthConfig::new(
                url,
                "trove",
                SecretString::from("x"),
                "service",
            ))
            .unwrap(),
        );
        let tasks: Vec<_> = (0..5)
            .map(|_| {
                let v = v.clone();
                tokio::spawn(async move { v.validate("tok").await.map(|_| ()) })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(lock(&v.inflight).len(), 1);
        for task in &tasks {
            task.abort();
        }
        for task in tasks {
            assert!(task.await.unwrap_err().is_cancelled());
        }
        assert!(lock(&v.inflight).is_empty());
        assert_eq!(v.service_logins(), 1, "the waiters shared one login");
    }

    #[test]
    fn error_helpers() {
        let invalid = AuthError::invalid("x");
        assert_eq!(invalid.http_status(), 401);
        assert_eq!(invalid.body()["error"]["code"], 401);
        assert_eq!(invalid.body()["error"]["title"], "Unauthorized");
        assert_eq!(
            invalid.www_authenticate("http://k:5000").as_deref(),
            Some("Keystone uri=\"http://k:5000\"")
        );
        let down = AuthError::unavailable("x");
        assert_eq!(down.http_status(), 503);
        assert_eq!(down.body()["error"]["code"], 503);
        assert!(down.www_authenticate("http://k").is_none());
    }
}
