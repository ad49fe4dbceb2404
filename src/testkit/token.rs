//! A token service for a registry started with token auth (distribution's `auth.token`),
//! over HTTPS: it trades an OAuth2 refresh token (docker's identity-token logins) for a
//! signed JWT access token granting what the scope asks, and refuses everything else,
//! recording each request.

use std::path::Path;
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use base64::Engine as _;

/// The `service` and `issuer` names the registry and the tokens agree on.
pub const SERVICE: &str = "lazyoci-test";
/// The token issuer.
pub const ISSUER: &str = "lazyoci-test-issuer";

/// One request to the token service.
#[derive(Clone, Debug)]
pub struct TokenRequest {
    /// `GET` or `POST`.
    pub method: String,
    /// `grant_type` (POST form), if any.
    pub grant_type: Option<String>,
    /// Whether the request carried the expected refresh token.
    pub refresh_ok: bool,
    /// Whether it carried an `Authorization` header.
    pub authorization: bool,
}

#[derive(Clone)]
struct Shared {
    refresh_token: String,
    signer: Arc<dyn rustls::sign::SigningKey>,
    x5c: String,
    requests: Arc<Mutex<Vec<TokenRequest>>>,
}

/// A running token service. Stops when dropped.
pub struct TokenServer {
    url: String,
    requests: Arc<Mutex<Vec<TokenRequest>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// `repository:<name>:<actions>` scopes as distribution's `access` claim.
fn access(scopes: &[String]) -> serde_json::Value {
    scopes
        .iter()
        .filter_map(|s| {
            let mut parts = s.splitn(3, ':');
            let (kind, name, actions) = (parts.next()?, parts.next()?, parts.next()?);
            Some(serde_json::json!({
                "type": kind,
                "name": name,
                "actions": actions.split(',').collect::<Vec<_>>(),
            }))
        })
        .collect()
}

fn jwt(s: &Shared, scopes: &[String]) -> Option<String> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_secs();
    let header = serde_json::json!({"alg": "RS256", "typ": "JWT", "x5c": [s.x5c]});
    let claims = serde_json::json!({
        "iss": ISSUER, "sub": "alice", "aud": SERVICE,
        "exp": now + 300, "nbf": now - 10, "iat": now - 10, "jti": format!("{now}-{}", scopes.len()),
        "access": access(scopes),
    });
    let signing_input = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let signer = s
        .signer
        .choose_scheme(&[rustls::SignatureScheme::RSA_PKCS1_SHA256])?;
    let sig = signer.sign(signing_input.as_bytes()).ok()?;
    Some(format!("{signing_input}.{}", b64url(&sig)))
}

async fn token(
    State(s): State<Shared>,
    method: axum::http::Method,
    headers: axum::http::HeaderMap,
    Query(query): Query<Vec<(String, String)>>,
    body: String,
) -> impl IntoResponse {
    let form: Vec<(String, String)> = url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let refresh_ok = get("refresh_token").as_deref() == Some(s.refresh_token.as_str());
    let grant_type = get("grant_type");
    if let Ok(mut r) = s.requests.lock() {
        r.push(TokenRequest {
            method: method.to_string(),
            grant_type: grant_type.clone(),
            refresh_ok,
            authorization: headers.contains_key(axum::http::header::AUTHORIZATION),
        });
    }
    let scopes: Vec<String> = form
        .iter()
        .chain(query.iter())
        .filter(|(k, _)| k == "scope")
        .map(|(_, v)| v.clone())
        .collect();
    if method != axum::http::Method::POST
        || grant_type.as_deref() != Some("refresh_token")
        || !refresh_ok
    {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(serde_json::json!({"error": "invalid_grant"})),
        );
    }
    match jwt(&s, &scopes) {
        Some(t) => (
            StatusCode::OK,
            axum::Json(serde_json::json!({"access_token": t, "expires_in": 300})),
        ),
        None => (
            StatusCode::INTERNAL_SERVER_ERROR,
            axum::Json(serde_json::json!({"error": "cannot sign"})),
        ),
    }
}

impl TokenServer {
    /// Serve `https://127.0.0.1:PORT/token` with `tls_cert`/`tls_key`, signing tokens with
    /// `sign_key` (PEM, RSA) whose certificate `sign_cert` (PEM) goes in each token's `x5c`
    /// (so the registry's `rootcertbundle` must hold it). Accepts `refresh_token` only.
    pub async fn start(
        tls_cert: &Path,
        tls_key: &Path,
        sign_cert: &Path,
        sign_key: &Path,
        refresh_token: &str,
    ) -> anyhow::Result<TokenServer> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let cert = CertificateDer::from_pem_file(sign_cert)?;
        let key = PrivateKeyDer::from_pem_file(sign_key)?;
        let signer = rustls::crypto::aws_lc_rs::sign::any_supported_type(&key)?;
        let acceptor = super::tls::acceptor(tls_cert, tls_key, None)?;
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        std_listener.set_nonblocking(true)?;
        let url = format!("https://{}/token", std_listener.local_addr()?);
        let requests = Arc::new(Mutex::new(Vec::new()));
        let shared = Shared {
            refresh_token: refresh_token.to_string(),
            signer,
            x5c: base64::engine::general_purpose::STANDARD.encode(cert.as_ref()),
            requests: requests.clone(),
        };
        let app = axum::Router::new()
            .route("/token", axum::routing::get(token).post(token))
            .with_state(shared);
        let stop = super::tls::serve_on_thread(std_listener, Some(acceptor), app)?;
        Ok(TokenServer {
            url,
            requests,
            stop: Some(stop),
        })
    }

    /// The realm, `https://127.0.0.1:PORT/token`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Requests so far.
    pub fn requests(&self) -> Vec<TokenRequest> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}
