//! Authentication: who is calling, as a pluggable [`Authenticator`].
//!
//! The API asks the configured authenticator for an [`AuthContext`] (project, user, roles)
//! on every `/v1.0` request, before the URL project check and before any handler runs.
//! Two implementations exist:
//! - [`NoAuth`] (`auth_strategy = noauth`, the embedded default): trusts the project in the
//!   URL, takes the user from `X-User-Id` (default `noauth`) and the roles from the
//!   comma-separated `X-Roles` (default `member`). For local use only.
//! - [`KeystoneAuth`] (`auth_strategy = keystone`): validates `X-Auth-Token` with
//!   Keystone v3 through [`keystone::KeystoneValidator`].
//!
//! What this module does not do: the URL project check (`TenantBasedAuth`), `is_admin`
//! (decided by the policy rule `context_is_admin`) and policy checks; the request-context
//! middleware does those with the [`AuthContext`] returned here.

use axum::http::HeaderMap;
use futures::future::BoxFuture;

pub mod keystone;

/// What the API knows about the caller once authenticated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthContext {
    /// The token's project id.
    pub project_id: String,
    /// The token's user id.
    pub user_id: String,
    /// Role names of the token.
    pub roles: Vec<String>,
    /// The caller's token, passed on with the casts the request makes so that the
    /// services act on the user's behalf (the guest writes backups to the user's Swift
    /// with it); `None` without Keystone.
    pub token: Option<UserToken>,
    /// The token's service catalog (a JSON array; the taskmanager finds the user's
    /// object store in it); `None` without Keystone or with `include_service_catalog` off.
    pub service_catalog: Option<serde_json::Value>,
}

impl From<&keystone::AuthContext> for AuthContext {
    fn from(k: &keystone::AuthContext) -> Self {
        use secrecy::ExposeSecret;
        AuthContext {
            project_id: k.project_id.clone(),
            user_id: k.user_id.clone(),
            roles: k.roles.clone(),
            token: Some(UserToken(k.token.expose_secret().to_owned())),
            service_catalog: Some(k.service_catalog.clone()).filter(|c| !c.is_null()),
        }
    }
}

/// A user's Keystone token. Its `Debug` form does not show it.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct UserToken(pub String);

impl std::fmt::Debug for UserToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UserToken(<redacted>)")
    }
}

/// Why a request could not be authenticated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// Missing, invalid or expired credentials: 401 with keystonemiddleware's body.
    #[error("{message}")]
    Unauthorized {
        /// What the client is told.
        message: String,
        /// `WWW-Authenticate` header value, e.g. `Keystone uri="http://ks:5000"`.
        www_authenticate: Option<String>,
    },
    /// The identity service could not be reached: 503.
    #[error("authentication service unavailable: {0}")]
    Unavailable(String),
}

/// What an authenticator may look at.
#[derive(Debug, Clone, Copy)]
pub struct AuthRequest<'a> {
    /// The request headers (`X-Auth-Token`, ...).
    pub headers: &'a HeaderMap,
    /// The first path segment after `/v1.0`, if any (the URL project).
    pub url_project: Option<&'a str>,
}

impl<'a> AuthRequest<'a> {
    /// The value of a header as text, if present and valid UTF-8.
    pub fn header(&self, name: &str) -> Option<&'a str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The `X-Auth-Token` header.
    pub fn token(&self) -> Option<&'a str> {
        self.header("x-auth-token").filter(|t| !t.is_empty())
    }
}

/// Decides who is calling. Implementations are shared by every request
/// (`Arc<dyn Authenticator>`), so they must be cheap to call concurrently; caching of
/// token validations belongs inside the implementation.
pub trait Authenticator: Send + Sync + std::fmt::Debug + 'static {
    /// Authenticates one request.
    fn authenticate<'a>(
        &'a self,
        request: AuthRequest<'a>,
    ) -> BoxFuture<'a, Result<AuthContext, AuthError>>;
}

/// `auth_strategy = noauth`: trusts the URL project; see the module doc.
#[derive(Debug, Clone, Default)]
pub struct NoAuth;

impl NoAuth {
    /// The context `noauth` derives from a request, without any await.
    pub fn context_of(request: &AuthRequest<'_>) -> Result<AuthContext, AuthError> {
        let project_id = request
            .url_project
            .filter(|p| !p.is_empty())
            .or_else(|| request.header("x-project-id"))
            .or_else(|| request.header("x-tenant-id"))
            .unwrap_or_default()
            .to_string();
        let user_id = request
            .header("x-user-id")
            .filter(|u| !u.trim().is_empty())
            .unwrap_or("noauth")
            .trim()
            .to_string();
        let mut roles: Vec<String> = request
            .header("x-roles")
            .or_else(|| request.header("x-role"))
            .map(|r| {
                r.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        if roles.is_empty() {
            roles.push("member".to_string());
        }
        Ok(AuthContext {
            project_id,
            user_id,
            roles,
            ..AuthContext::default()
        })
    }
}

impl Authenticator for NoAuth {
    fn authenticate<'a>(
        &'a self,
        request: AuthRequest<'a>,
    ) -> BoxFuture<'a, Result<AuthContext, AuthError>> {
        Box::pin(async move { Self::context_of(&request) })
    }
}

/// `auth_strategy = keystone`: validates `X-Auth-Token` with a shared
/// [`keystone::KeystoneValidator`] (cached, single-flight) and maps its answer.
#[derive(Debug, Clone)]
pub struct KeystoneAuth {
    validator: std::sync::Arc<keystone::KeystoneValidator>,
}

impl KeystoneAuth {
    /// Authenticates with `validator`.
    pub fn new(validator: std::sync::Arc<keystone::KeystoneValidator>) -> Self {
        Self { validator }
    }

    fn unauthorized(&self) -> AuthError {
        AuthError::Unauthorized {
            message: keystone::UNAUTHORIZED_MESSAGE.to_string(),
            www_authenticate: Some(self.validator.www_authenticate()),
        }
    }
}

impl Authenticator for KeystoneAuth {
    fn authenticate<'a>(
        &'a self,
        request: AuthRequest<'a>,
    ) -> BoxFuture<'a, Result<AuthContext, AuthError>> {
        Box::pin(async move {
            let Some(token) = request.token() else {
                return Err(self.unauthorized());
            };
            match self.validator.validate(token).await {
                Ok(ctx) => Ok(AuthContext::from(&*ctx)),
                Err(keystone::AuthError::Invalid { reason }) => {
                    tracing::info!(reason = %reason, "token rejected");
                    Err(self.unauthorized())
                }
                Err(other) => Err(AuthError::Unavailable(other.to_string())),
            }
        })
    }
}

/// The authenticator `[DEFAULT] auth_strategy` asks for: [`NoAuth`] for `noauth`,
/// [`KeystoneAuth`] built from `[keystone_authtoken]` for `keystone`. An error names the
/// missing or bad option, for a fail-fast start.
pub fn authenticator_from_config(
    cfg: &trove_config::Config,
) -> Result<std::sync::Arc<dyn Authenticator>, String> {
    match cfg.default.auth_strategy.as_str() {
        "noauth" => Ok(std::sync::Arc::new(NoAuth)),
        "keystone" => {
            let k = &cfg.keystone_authtoken;
            let need = |v: &Option<String>, name: &str| {
                v.clone().filter(|s| !s.is_empty()).ok_or_else(|| {
                    format!("[keystone_authtoken] {name} must be set for auth_strategy = keystone")
                })
            };
            let auth_url = need(&k.auth_url, "auth_url")?;
            let username = need(&k.username, "username")?;
            let project_name = need(&k.project_name, "project_name")?;
            let password = k
                .password
                .as_ref()
                .map(|p| p.expose_secret().to_string())
                .ok_or("[keystone_authtoken] password must be set for auth_strategy = keystone")?;
            let mut kc = keystone::KeystoneAuthConfig::new(
                auth_url,
                username,
                secrecy::SecretString::from(password),
                project_name,
            );
            kc.www_authenticate_uri = k.www_authenticate_uri.clone().filter(|s| !s.is_empty());
            if let Some(d) = k.user_domain_name.clone().filter(|s| !s.is_empty()) {
                kc.user_domain_name = d;
            }
            if let Some(d) = k.project_domain_name.clone().filter(|s| !s.is_empty()) {
                kc.project_domain_name = d;
            }
            kc.region_name = k.region_name.clone();
            kc.insecure = k.insecure;
            kc.cafile = k.cafile.clone().map(std::path::PathBuf::from);
            kc.token_cache_time = std::time::Duration::from_secs(k.token_cache_time.max(0) as u64);
            kc.include_service_catalog = k.include_service_catalog;
            let validator = keystone::KeystoneValidator::new(kc)
                .map_err(|e| format!("[keystone_authtoken]: {e}"))?;
            Ok(std::sync::Arc::new(KeystoneAuth::new(std::sync::Arc::new(
                validator,
            ))))
        }
        other => Err(format!(
            "[DEFAULT] auth_strategy = {other} is not supported (use keystone or noauth)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[tokio::test]
    async fn noauth_defaults_and_headers() {
        let mut headers = HeaderMap::new();
        let req = AuthRequest {
            headers: &headers,
            url_project: Some("p1"),
        };
        let ctx = NoAuth.authenticate(req).await.unwrap();
        assert_eq!(ctx.project_id, "p1");
        assert_eq!(ctx.user_id, "noauth");
        assert_eq!(ctx.roles, vec!["member".to_string()]);

        headers.insert("x-user-id", HeaderValue::from_static("alice"));
        headers.insert("x-roles", HeaderValue::from_static("admin, reader,"));
        let req = AuthRequest {
            headers: &headers,
            url_project: Some("p2"),
        };
        let ctx = NoAuth.authenticate(req).await.unwrap();
        assert_eq!(ctx.user_id, "alice");
        assert_eq!(ctx.roles, vec!["admin".to_string(), "reader".to_string()]);
        assert_eq!(ctx.project_id, "p2");
    }

    #[test]
    fn authenticator_from_config_checks_options() {
        let noauth = trove_config::Config::default();
        assert!(authenticator_from_config(&noauth).is_ok());
        let missing =
            trove_config::Config::from_ini_str("t.conf", "[DEFAULT]\nauth_strategy = keystone\n")
                .unwrap()
                .config;
        assert_eq!(
            authenticator_from_config(&missing).unwrap_err(),
            "[keystone_authtoken] auth_url must be set for auth_strategy = keystone"
        );
        let full = trove_config::Config::from_ini_str(
            "t.conf",
            "[DEFAULT]\nauth_strategy = keystone\n[keystone_authtoken]\nauth_url = http://ks:5000\n\
             username = trove\npassword = pw\nproject_name = service\n",
        )
        .unwrap()
        .config;
        assert!(authenticator_from_config(&full).is_ok());
    }

    #[tokio::test]
    async fn keystone_without_token_is_401_without_asking_keystone() {
        let cfg = keystone::KeystoneAuthConfig::new(
            "http://127.0.0.1:9/v3",
            "trove",
            secrecy::SecretString::from("pw".to_string()),
            "service",
        );
        let validator = keystone::KeystoneValidator::new(cfg).unwrap();
        let auth = KeystoneAuth::new(std::sync::Arc::new(validator));
        let headers = HeaderMap::new();
        let err = auth
            .authenticate(AuthRequest {
                headers: &headers,
                url_project: Some("p1"),
            })
            .await
            .unwrap_err();
        match err {
            AuthError::Unauthorized {
                www_authenticate, ..
            } => assert_eq!(
                www_authenticate.as_deref(),
                Some("Keystone uri=\"http://127.0.0.1:9/v3\"")
            ),
            other => panic!("{other:?}"),
        }
    }
}
