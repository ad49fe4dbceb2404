//! Registry authentication: token scopes, Bearer token exchange and Basic auth. IO.
//!
//! Credentials go only to the registry's own host, or to the token realm the registry
//! names when that realm is HTTPS.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, HeaderValue};

use super::RegistryError;
use super::client::{RegistryClient, api_host};
use super::http::{basic_header, parse_challenge, read_limited};

/// What a request needs permission for; becomes the token `scope`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Registry-wide (`/v2/`).
    None,
    /// Read a repository.
    Pull(String),
    /// Read and write a repository.
    Push(String),
    /// Write `repo` and read `from` (cross-repository mount).
    Mount {
        /// Destination.
        repo: String,
        /// Source repository on the same registry.
        from: String,
    },
}

impl Scope {
    pub(super) fn params(&self) -> Vec<String> {
        match self {
            Scope::None => vec![],
            Scope::Pull(r) => vec![format!("repository:{r}:pull")],
            Scope::Push(r) => vec![format!("repository:{r}:pull,push")],
            Scope::Mount { repo, from } => vec![
                format!("repository:{repo}:pull,push"),
                format!("repository:{from}:pull"),
            ],
        }
    }
}

#[derive(Default)]
pub(super) struct AuthState {
    pub(super) basic: bool,
    pub(super) tokens: HashMap<Scope, (String, Instant)>,
}

impl RegistryClient {
    /// The refresh token, when the credential is an identity-token login.
    fn identity_token(&self) -> Option<&str> {
        self.credential
            .as_ref()
            .filter(|c| c.username == crate::credentials::IDENTITY_TOKEN_USER)
            .map(|c| c.password.as_str())
    }

    pub(super) async fn auth_header(&self, scope: &Scope) -> Option<HeaderValue> {
        let state = self.auth.lock().await;
        if let Some((token, until)) = state.tokens.get(scope)
            && Instant::now() < *until
        {
            return HeaderValue::from_str(&format!("Bearer {token}")).ok();
        }
        if state.basic {
            return self.credential.as_ref().and_then(basic_header);
        }
        None
    }

    /// Answer a 401 challenge: fetch a token or switch to basic auth. Returns whether a retry
    /// can succeed.
    pub(super) async fn authenticate(
        &self,
        challenge: Option<&HeaderValue>,
        scope: &Scope,
    ) -> Result<(), RegistryError> {
        let auth_err = |reason: String| RegistryError::Auth {
            host: self.host.clone(),
            reason,
        };
        let challenge = challenge.and_then(|c| c.to_str().ok()).unwrap_or_default();
        let (kind, params) = parse_challenge(challenge);
        match kind.to_ascii_lowercase().as_str() {
            "basic" => {
                if self.credential.is_none() {
                    return Err(auth_err(format!(
                        "the registry requires a login; run `docker login {}` (or `helm registry login`)",
                        self.host
                    )));
                }
                if self.identity_token().is_some() {
                    return Err(auth_err(format!(
                        "the registry asks for basic auth, but the credential is an identity token (from {}); log in with a user name and password",
                        self.credential_origin
                            .as_deref()
                            .unwrap_or("the docker config")
                    )));
                }
                self.auth.lock().await.basic = true;
                Ok(())
            }
            "bearer" => {
                let realm = params
                    .get("realm")
                    .ok_or_else(|| auth_err("token challenge without a realm".into()))?;
                let mut url = url::Url::parse(realm)
                    .map_err(|_| auth_err(format!("token realm {realm:?} is not a URL")))?;
                {
                    let mut q = url.query_pairs_mut();
                    if let Some(service) = params.get("service") {
                        q.append_pair("service", service);
                    }
                    for s in scope.params() {
                        q.append_pair("scope", &s);
                    }
                }
                // Credentials go to the realm only over TLS, or to the registry's own host.
                let realm_host = url.host_str().map(|h| match url.port() {
                    Some(p) => format!("{h}:{p}"),
                    None => h.to_string(),
                });
                let same_host = realm_host.as_deref() == Some(api_host(&self.host));
                let may_send = url.scheme() == "https" || same_host;
                let mut req = match self.identity_token().filter(|_| may_send) {
                    // OAuth2 refresh flow (docker's identity-token logins): POST the refresh
                    // token, receive an access token.
                    Some(refresh) => {
                        let mut form = url::form_urlencoded::Serializer::new(String::new());
                        form.append_pair("grant_type", "refresh_token");
                        form.append_pair("refresh_token", refresh);
                        form.append_pair("client_id", "lazyoci");
                        if let Some(service) = params.get("service") {
                            form.append_pair("service", service);
                        }
                        for s in scope.params() {
                            form.append_pair("scope", &s);
                        }
                        let mut base = url.clone();
                        base.set_query(None);
                        self.http
                            .post(base)
                            .header(
                                reqwest::header::CONTENT_TYPE,
                                "application/x-www-form-urlencoded",
                            )
                            .body(form.finish())
                    }
                    None => {
                        let mut req = self.http.get(url.clone());
                        if let Some(c) = &self.credential
                            && may_send
                            && let Some(h) = basic_header(c)
                        {
                            req = req.header(AUTHORIZATION, h);
                        }
                        req
                    }
                };
                req = req.timeout(self.opts.request_timeout);
                let resp = req
                    .send()
                    .await
                    .map_err(|e| RegistryError::transport(&self.host, "token request", e))?;
                self.observe("GET", resp.status());
                let status = resp.status();
                let body = read_limited(resp, 1024 * 1024)
                    .await
                    .map_err(|e| self.read_error("token response", e))?;
                if !status.is_success() {
                    return Err(auth_err(
                        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                            format!(
                                "the token service refused the credentials (HTTP {}); {}",
                                status.as_u16(),
                                self.check_credentials_hint()
                            )
                        } else {
                            format!("token service answered HTTP {}", status.as_u16())
                        },
                    ));
                }
                #[derive(serde::Deserialize)]
                struct Tok {
                    token: Option<String>,
                    access_token: Option<String>,
                    expires_in: Option<u64>,
                }
                let tok: Tok = serde_json::from_slice(&body)
                    .map_err(|e| auth_err(format!("unreadable token response: {e}")))?;
                let token = tok
                    .token
                    .or(tok.access_token)
                    .filter(|t| !t.is_empty())
                    .ok_or_else(|| auth_err("token response holds no token".into()))?;
                let ttl = Duration::from_secs(
                    tok.expires_in
                        .unwrap_or(60)
                        .clamp(10, 3600)
                        .saturating_sub(5),
                );
                self.auth
                    .lock()
                    .await
                    .tokens
                    .insert(scope.clone(), (token, Instant::now() + ttl));
                Ok(())
            }
            _ => Err(auth_err(format!(
                "unsupported authentication challenge {challenge:?}"
            ))),
        }
    }
}
