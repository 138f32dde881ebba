//! SMART Backend Services authorization (SMART App Launch 2.x `backend-services`, asymmetric
//! client authentication), as the Bulk Data IG asks of a server.
//!
//! # Endpoints (when [`AuthMode::Smart`])
//!
//! - `GET /fhir/.well-known/smart-configuration`: the token endpoint, `private_key_jwt` with
//!   `RS384`/`ES384`, the `system/` scopes, capabilities `client-confidential-asymmetric`,
//!   `permission-v1` and `permission-v2`.
//! - `POST /fhir/auth/token` (form-encoded): `grant_type=client_credentials`,
//!   `client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer`,
//!   `client_assertion` (a JWT) and `scope`. The assertion must be signed with RS384 or ES384
//!   (`none`, HS* and anything else are refused) by the key its `kid` names in the client's
//!   JWKS: a registered JWKS URL (fetched, cached as its `Cache-Control` allows, fetched again
//!   for an unknown `kid`; a `jku` header must equal it) or a literal JWKS. `iss` = `sub` =
//!   the client id, `aud` = the token URL, `exp` in the future and at most five minutes
//!   ahead (30 s of clock skew allowed), and a `jti` never seen before: used ids are
//!   remembered until well after their assertion expires. The answer is an opaque bearer
//!   token valid for at most 300 s ([`AuthConfig::token_lifetime`]) with the granted scopes:
//!   each requested scope narrowed to what the client is registered for. Failures follow
//!   RFC 6749 §5.2 (`invalid_client`, `invalid_scope`, …).
//!
//! Clients are registered in a JSON file ([`clients::Registry`], `haven clients add`), read
//! again whenever it changes.
//!
//! # Enforcement
//!
//! [`enforce`] runs before every handler: every request except the CapabilityStatement
//! (`/fhir/metadata`), the SMART configuration and the token endpoint needs a valid bearer
//! token (else `401` with an OperationOutcome and `WWW-Authenticate: Bearer …`), and the
//! scopes the interaction needs, derived from the path and method (else `403`, likewise):
//! read, vread and instance history need `r` on the type; search and type history `s`;
//! create `c`; update and patch `u`; delete `d`; compartment searches `r` on the
//! compartment's type and `s` on the searched one; system search and history `system/*.s`;
//! batches, transactions and other operations `system/*` with every permission they may use.
//! `$export` needs `r` on at least one type (`Group/[id]/$export` also on `Group`); the
//! export code limits the exported types with [`limit_export`] and records the job owner
//! ([`Principal::client_id`]), taking the caller from [`caller`]. Status polls, cancels and downloads need the token of the
//! client that started the job (another client gets `404`), and a download needs `r` on the
//! file's type. Handlers find the caller in the request's [`Principal`] extension.
//!
//! # Modes
//!
//! [`AuthMode::None`] serves everyone and is refused on a non-loopback address
//! ([`check_mode`]); [`AuthMode::default_for`] picks `Smart` for those.

pub mod assertion;
pub mod clients;
pub mod scopes;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

pub use scopes::{Interaction, Scopes};

use crate::export::request::ExportRequest;
use crate::{AppState, FhirError};

/// The longest lifetime of an access token, in seconds (SMART: SHOULD NOT exceed 300).
pub const MAX_TOKEN_LIFETIME_SECS: u64 = 300;
/// The `client_assertion_type` of SMART Backend Services.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// The token endpoint's path under the FHIR base URL.
pub const TOKEN_PATH: &str = "/auth/token";

/// Whether the server asks for tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuthMode {
    /// No authorization: everyone may do everything (loopback addresses only).
    #[default]
    None,
    /// SMART Backend Services: bearer tokens with `system/` scopes.
    Smart,
}

impl AuthMode {
    /// The mode a server bound to `listen` gets when none is chosen: `Smart` unless the
    /// address is a loopback one.
    pub fn default_for(listen: &SocketAddr) -> AuthMode {
        if listen.ip().is_loopback() {
            AuthMode::None
        } else {
            AuthMode::Smart
        }
    }
}

/// Authorization settings (part of [`crate::ServerConfig`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthConfig {
    /// Whether tokens are required.
    pub mode: AuthMode,
    /// The registered clients' file ([`clients::Registry`]); `None` registers nobody.
    pub clients_file: Option<PathBuf>,
    /// How long an access token lives (at most [`MAX_TOKEN_LIFETIME_SECS`]; default 300 s).
    pub token_lifetime: Duration,
}

impl Default for AuthConfig {
    fn default() -> AuthConfig {
        AuthConfig {
            mode: AuthMode::None,
            clients_file: None,
            token_lifetime: Duration::from_secs(MAX_TOKEN_LIFETIME_SECS),
        }
    }
}

/// Refuses [`AuthMode::None`] on a non-loopback address.
pub fn check_mode(config: &AuthConfig, listen: &SocketAddr) -> Result<(), String> {
    if config.mode == AuthMode::None && !listen.ip().is_loopback() {
        return Err(format!(
            "authorization can only be turned off on a loopback address, not {listen}; \
             use --auth smart and register clients"
        ));
    }
    Ok(())
}

/// Who is calling: the client an access token was issued to, and its granted scopes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    client_id: String,
    scopes: Scopes,
}

impl Principal {
    /// A principal (for tests and embedding).
    pub fn new(client_id: impl Into<String>, scopes: Scopes) -> Principal {
        Principal {
            client_id: client_id.into(),
            scopes,
        }
    }

    /// The client id (the owner recorded on the export jobs it starts).
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The granted scopes.
    pub fn scopes(&self) -> &Scopes {
        &self.scopes
    }

    /// Whether the token permits `interaction` on `resource_type`.
    pub fn allows(&self, resource_type: &str, interaction: Interaction) -> bool {
        self.scopes.allows(resource_type, interaction)
    }
}

/// Limits an export to the types the caller may read: types without a read scope are
/// dropped with a note (written to the manifest's `error[]` as an informational
/// OperationOutcome), with their `_typeFilter`s. `403` when no type is left. Does nothing
/// without a principal (authorization off).
pub fn limit_export(
    principal: Option<&Principal>,
    request: &mut ExportRequest,
) -> Result<(), FhirError> {
    let Some(principal) = principal else {
        return Ok(());
    };
    let (kept, dropped): (Vec<String>, Vec<String>) = std::mem::take(&mut request.types)
        .into_iter()
        .partition(|t| principal.allows(t, Interaction::Read));
    if kept.is_empty() {
        return Err(forbidden(
            "the access token grants read access to none of the requested resource types",
            "system/*.rs",
        ));
    }
    request.types = kept;
    if !dropped.is_empty() {
        request.type_filters.retain(|filter| {
            let filter_type = filter.split('?').next().unwrap_or("");
            !dropped.iter().any(|t| t == filter_type)
        });
        let note = if dropped.len() <= 20 {
            format!(
                "not exported: the access token grants no read scope for {}",
                dropped.join(", ")
            )
        } else {
            format!(
                "not exported: {} resource types for which the access token grants no read scope",
                dropped.len()
            )
        };
        request.notes.push(note);
    }
    Ok(())
}

/// The `security` element of the CapabilityStatement's `rest` entry when authorization is
/// on: the SMART `oauth-uris` extension (token endpoint) and the `SMART-on-FHIR` service,
/// for clients that discover through the CapabilityStatement.
pub fn capability_security(state: &AppState) -> Option<Value> {
    if state.auth.mode() != AuthMode::Smart {
        return None;
    }
    Some(json!({
        "extension": [{
            "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
            "extension": [{"url": "token", "valueUri": state.auth.token_url()}],
        }],
        "service": [{"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
            "code": "SMART-on-FHIR",
        }]}],
        "description": "SMART Backend Services (client credentials with a signed JWT assertion)",
    }))
}

/// An issued access token.
struct Issued {
    principal: Principal,
    expires: Instant,
}

/// The registry as last read, and when its file was modified then.
struct LoadedRegistry {
    registry: clients::Registry,
    modified: Option<SystemTime>,
}

/// The authorization state of a running server: the configuration, registered clients,
/// cached JWKS documents, used assertion ids and issued tokens.
pub struct Auth {
    config: AuthConfig,
    token_url: String,
    registry: Mutex<LoadedRegistry>,
    jwks: assertion::JwksCache,
    used_jtis: Mutex<HashMap<String, u64>>,
    tokens: Mutex<HashMap<String, Issued>>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("mode", &self.config.mode)
            .field("token_url", &self.token_url)
            .finish_non_exhaustive()
    }
}

/// Seconds since the Unix epoch.
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Auth {
    /// The authorization state of a server whose FHIR base URL is `base_url` (no trailing
    /// `/`). The clients file is read on the first token request.
    pub fn new(config: &AuthConfig, base_url: &str) -> Auth {
        let mut config = config.clone();
        config.token_lifetime = config
            .token_lifetime
            .min(Duration::from_secs(MAX_TOKEN_LIFETIME_SECS));
        Auth {
            token_url: format!("{}{TOKEN_PATH}", base_url.trim_end_matches('/')),
            config,
            registry: Mutex::new(LoadedRegistry {
                registry: clients::Registry::default(),
                modified: None,
            }),
            jwks: assertion::JwksCache::new(),
            used_jtis: Mutex::new(HashMap::new()),
            tokens: Mutex::new(HashMap::new()),
        }
    }

    /// Logs a warning when authorization is off (call once when the server starts).
    pub fn warn_if_open(&self) {
        if self.config.mode == AuthMode::None {
            tracing::warn!(
                "authorization is off (--auth none): every local caller can read and write all data"
            );
        }
    }

    /// Whether tokens are required.
    pub fn mode(&self) -> AuthMode {
        self.config.mode
    }

    /// The token endpoint's URL (the `aud` of client assertions).
    pub fn token_url(&self) -> &str {
        &self.token_url
    }

    /// The client registered under `id`, reading the clients file again if it changed.
    fn client(&self, id: &str) -> Result<Option<clients::Client>, String> {
        let Some(path) = &self.config.clients_file else {
            return Ok(None);
        };
        let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
        let mut loaded = self.registry.lock().unwrap_or_else(PoisonError::into_inner);
        if modified != loaded.modified || modified.is_none() {
            loaded.registry = clients::Registry::load(path).map_err(|e| e.to_string())?;
            loaded.modified = modified;
        }
        Ok(loaded.registry.get(id).cloned())
    }

    /// The principal of a bearer token, if it is one this server issued and it has not
    /// expired.
    pub fn principal(&self, token: &str) -> Option<Principal> {
        let mut tokens = self.tokens.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        match tokens.get(token) {
            Some(issued) if issued.expires > now => Some(issued.principal.clone()),
            Some(_) => {
                tokens.remove(token);
                None
            }
            None => None,
        }
    }

    /// Verifies a client assertion and issues a token for the requested scope.
    async fn issue(&self, assertion: &str, scope: &str) -> Result<Value, OAuthError> {
        let header = assertion::header(assertion).map_err(OAuthError::client)?;
        let client_id = assertion::unverified_issuer(assertion).map_err(OAuthError::client)?;
        let client = self
            .client(&client_id)
            .map_err(|e| {
                tracing::error!(error = %e, "the clients file cannot be read");
                OAuthError::server("the client registry cannot be read")
            })?
            .ok_or_else(|| OAuthError::client(format!("client {client_id} is not registered")))?;
        let key = match &client.keys {
            clients::KeySource::Jwks(jwks) => {
                if header.jku.is_some() {
                    return Err(OAuthError::client(
                        "the client assertion has a jku header, but the client registered a literal JWKS",
                    ));
                }
                assertion::select_key(jwks, header.alg, &header.kid)
            }
            clients::KeySource::JwksUrl(url) => {
                if header.jku.as_ref().is_some_and(|jku| jku != url) {
                    return Err(OAuthError::client(
                        "the client assertion's jku is not the client's registered JWKS URL",
                    ));
                }
                let jwks = self.jwks.get(url, None).await.map_err(OAuthError::client)?;
                match assertion::select_key(&jwks, header.alg, &header.kid) {
                    Ok(None) if !self.jwks.recently_fetched(url) => {
                        let fresh = self
                            .jwks
                            .get(url, Some(Duration::ZERO))
                            .await
                            .map_err(OAuthError::client)?;
                        assertion::select_key(&fresh, header.alg, &header.kid)
                    }
                    other => other,
                }
            }
        }
        .map_err(OAuthError::client)?
        .ok_or_else(|| {
            OAuthError::client(format!(
                "no {} key with kid {} in client {client_id}'s JWKS",
                if header.alg == jsonwebtoken::Algorithm::RS384 { "RSA" } else { "EC P-384" },
                header.kid.chars().take(64).collect::<String>()
            ))
        })?;
        let claims =
            assertion::verify_signature(assertion, &key, header.alg).map_err(OAuthError::client)?;
        let now = unix_now();
        let checked = assertion::check_claims(&claims, &client_id, &self.token_url, now)
            .map_err(OAuthError::client)?;
        self.remember_jti(&client_id, &checked, now)?;

        let granted = Scopes::parse(&client.scope).grant(scope);
        if granted.is_empty() {
            return Err(OAuthError::new(
                "invalid_scope",
                format!("none of the requested scopes is granted to client {client_id}"),
            ));
        }
        let token = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
        let lifetime = self.config.token_lifetime;
        {
            let mut tokens = self.tokens.lock().unwrap_or_else(PoisonError::into_inner);
            let now = Instant::now();
            tokens.retain(|_, issued| issued.expires > now);
            tokens.insert(
                token.clone(),
                Issued {
                    principal: Principal::new(client_id.clone(), granted.clone()),
                    expires: now + lifetime,
                },
            );
        }
        tracing::info!(client = client_id, scope = %granted, "access token issued");
        Ok(json!({
            "access_token": token,
            "token_type": "bearer",
            "expires_in": lifetime.as_secs(),
            "scope": granted.to_string(),
        }))
    }

    /// Records an assertion id, refusing one already used by the same client. Ids are kept
    /// until a minute after the assertion could no longer be accepted.
    fn remember_jti(
        &self,
        client_id: &str,
        claims: &assertion::Claims,
        now: u64,
    ) -> Result<(), OAuthError> {
        let mut used = self
            .used_jtis
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        used.retain(|_, forget_at| *forget_at >= now);
        let key = format!("{client_id}\n{}", claims.jti);
        if used.contains_key(&key) {
            return Err(OAuthError::client(
                "the client assertion's jti was already used; sign a new assertion for each request",
            ));
        }
        used.insert(key, claims.exp + assertion::LEEWAY_SECS + 60);
        Ok(())
    }
}

/// An OAuth 2 error response (RFC 6749 §5.2).
#[derive(Debug)]
struct OAuthError {
    status: StatusCode,
    code: &'static str,
    description: String,
}

impl OAuthError {
    fn new(code: &'static str, description: impl Into<String>) -> OAuthError {
        OAuthError {
            status: StatusCode::BAD_REQUEST,
            code,
            description: description.into(),
        }
    }

    fn client(description: impl Into<String>) -> OAuthError {
        OAuthError {
            status: StatusCode::UNAUTHORIZED,
            ..OAuthError::new("invalid_client", description)
        }
    }

    fn server(description: impl Into<String>) -> OAuthError {
        OAuthError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            ..OAuthError::new("server_error", description)
        }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        tracing::info!(error = self.code, description = %self.description, "token request refused");
        let body = json!({"error": self.code, "error_description": self.description});
        let mut response = (self.status, axum::Json(body)).into_response();
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}

/// The SMART configuration and token routes, merged into [`crate::router`].
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/fhir/.well-known/smart-configuration",
            get(smart_configuration),
        )
        .route(&format!("/fhir{TOKEN_PATH}"), post(token))
}

async fn smart_configuration(State(state): State<AppState>) -> Response {
    if state.auth.mode() != AuthMode::Smart {
        return FhirError::not_found("authorization is off on this server").into_response();
    }
    let body = json!({
        "token_endpoint": state.auth.token_url(),
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
        "scopes_supported": ["system/*.rs", "system/*.cruds", "system/*.read", "system/*.write", "system/*.*"],
        "capabilities": ["client-confidential-asymmetric", "permission-v1", "permission-v2"],
    });
    axum::Json(body).into_response()
}

async fn token(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    match token_request(&state, &headers, &body).await {
        Ok(body) => {
            let mut response = axum::Json(body).into_response();
            let headers = response.headers_mut();
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
            response
        }
        Err(error) => error.into_response(),
    }
}

async fn token_request(
    state: &AppState,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Value, OAuthError> {
    if state.auth.mode() != AuthMode::Smart {
        return Err(OAuthError::new(
            "invalid_request",
            "authorization is off on this server",
        ));
    }
    let form_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        });
    if !form_type {
        return Err(OAuthError::new(
            "invalid_request",
            "the token request must be application/x-www-form-urlencoded",
        ));
    }
    let mut form: HashMap<String, String> = HashMap::new();
    for (name, value) in url::form_urlencoded::parse(body) {
        if form
            .insert(name.clone().into_owned(), value.into_owned())
            .is_some()
        {
            return Err(OAuthError::new(
                "invalid_request",
                format!("parameter {name} is repeated"),
            ));
        }
    }
    let field = |name: &str| form.get(name).map(String::as_str).filter(|v| !v.is_empty());
    match field("grant_type") {
        Some("client_credentials") => {}
        Some(_) => {
            return Err(OAuthError::new(
                "unsupported_grant_type",
                "only grant_type=client_credentials is supported",
            ));
        }
        None => return Err(OAuthError::new("invalid_request", "grant_type is missing")),
    }
    if field("client_assertion_type") != Some(JWT_BEARER) {
        return Err(OAuthError::new(
            "invalid_request",
            format!("client_assertion_type must be {JWT_BEARER}"),
        ));
    }
    let assertion = field("client_assertion")
        .ok_or_else(|| OAuthError::new("invalid_request", "client_assertion is missing"))?;
    let scope =
        field("scope").ok_or_else(|| OAuthError::new("invalid_scope", "scope is missing"))?;
    state.auth.issue(assertion, scope).await
}

/// What a request needs besides a valid token.
#[derive(Debug, PartialEq, Eq)]
enum Need {
    /// Nothing: public.
    Public,
    /// A token, nothing more (the handler answers 404 or 405).
    Token,
    /// These permissions on these types (`None`: on every type, a `system/*` scope).
    Scopes(Vec<(Option<String>, Interaction)>),
    /// The interaction on at least one type (and these further scopes).
    AnyType(Interaction, Vec<(Option<String>, Interaction)>),
    /// The export job's owner, and read access to the file's type if a file is named.
    Job {
        id: String,
        file_type: Option<String>,
    },
}

/// The scopes a request needs, by path (under `/fhir`) and method.
fn need(method: &Method, path: &str) -> Need {
    let Some(rest) = path.strip_prefix("/fhir") else {
        return Need::Token;
    };
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let is_type = |t: &str| fhir::types::is_concrete_resource_type(t);
    let on = |t: &str, i: Interaction| Need::Scopes(vec![(Some(t.to_owned()), i)]);
    let every = |interactions: &[Interaction]| {
        Need::Scopes(interactions.iter().map(|i| (None, *i)).collect())
    };
    let all = [
        Interaction::Create,
        Interaction::Read,
        Interaction::Update,
        Interaction::Delete,
        Interaction::Search,
    ];
    match segments.as_slice() {
        ["metadata"] | [".well-known", "smart-configuration"] => Need::Public,
        ["auth", "token"] => Need::Public,
        [] if *method == Method::GET => every(&[Interaction::Search]),
        [] => every(&all),
        ["_history"] => every(&[Interaction::Search]),
        ["$export"] | ["Patient", "$export"] => Need::AnyType(Interaction::Read, Vec::new()),
        ["Group", _, "$export"] => Need::AnyType(
            Interaction::Read,
            vec![(Some("Group".to_owned()), Interaction::Read)],
        ),
        ["_operations", "export", id] => Need::Job {
            id: (*id).to_owned(),
            file_type: None,
        },
        ["_operations", "export", id, file] => Need::Job {
            id: (*id).to_owned(),
            file_type: Some(file_type(file)),
        },
        [t, ..] if !is_type(t) && !t.starts_with('$') => Need::Token,
        [t] if *method == Method::GET => on(t, Interaction::Search),
        [t] if *method == Method::POST => on(t, Interaction::Create),
        [_] => Need::Token,
        [t, "_search"] if *method == Method::POST => on(t, Interaction::Search),
        [t, "_history"] => on(t, Interaction::Search),
        [t, id] if !id.starts_with('$') => match *method {
            Method::GET | Method::HEAD => on(t, Interaction::Read),
            Method::PUT | Method::PATCH => on(t, Interaction::Update),
            Method::DELETE => on(t, Interaction::Delete),
            _ => Need::Token,
        },
        [t, _, "_history"] | [t, _, "_history", _] => on(t, Interaction::Read),
        [t, _, c] if is_type(c) => Need::Scopes(vec![
            (Some((*t).to_owned()), Interaction::Read),
            (Some((*c).to_owned()), Interaction::Search),
        ]),
        _ => every(&all),
    }
}

/// The resource type of an export file name (`Patient-1.ndjson`, `Deleted-Patient-1.ndjson`);
/// `OperationOutcome` for the error files.
fn file_type(file: &str) -> String {
    let stem = file.strip_suffix(".ndjson").unwrap_or(file);
    let stem = stem.strip_prefix("Deleted-").unwrap_or(stem);
    stem.rsplit_once('-').map_or(stem, |(t, _)| t).to_owned()
}

/// 401 with an OperationOutcome and `WWW-Authenticate`.
fn unauthorized(state: &AppState, description: Option<&str>) -> Response {
    let message =
        description.unwrap_or("this request needs a bearer token (SMART Backend Services)");
    let mut response = FhirError::new(StatusCode::UNAUTHORIZED, "login", message).into_response();
    let mut challenge = format!("Bearer realm=\"{}\"", state.base_url);
    if let Some(description) = description {
        challenge.push_str(&format!(
            ", error=\"invalid_token\", error_description=\"{description}\""
        ));
    }
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

/// A 403 `FhirError` naming the scope that would have been needed.
fn forbidden(message: &str, scope: &str) -> FhirError {
    FhirError::new(
        StatusCode::FORBIDDEN,
        "forbidden",
        format!("{message} (needs {scope})"),
    )
}

/// 403 with an OperationOutcome and `WWW-Authenticate: Bearer error="insufficient_scope"`.
fn forbidden_response(state: &AppState, message: &str, scope: &str) -> Response {
    let mut response = forbidden(message, scope).into_response();
    let challenge = format!(
        "Bearer realm=\"{}\", error=\"insufficient_scope\", scope=\"{scope}\"",
        state.base_url
    );
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

/// The scope text that grants `interaction` on a type (or `*`).
fn scope_text(resource_type: Option<&str>, interaction: Interaction) -> String {
    let letter = match interaction {
        Interaction::Create => "c",
        Interaction::Read => "r",
        Interaction::Update => "u",
        Interaction::Delete => "d",
        Interaction::Search => "s",
    };
    format!("system/{}.{letter}", resource_type.unwrap_or("*"))
}

/// The first missing scope of `needs`, as a 403 response.
fn check_scopes(
    state: &AppState,
    principal: &Principal,
    needs: &[(Option<String>, Interaction)],
) -> Option<Response> {
    for (resource_type, interaction) in needs {
        let allowed = match resource_type {
            Some(t) => principal.allows(t, *interaction),
            None => principal.scopes.allows_all_types(*interaction),
        };
        if !allowed {
            let scope = scope_text(resource_type.as_deref(), *interaction);
            return Some(forbidden_response(
                state,
                "the access token's scopes do not permit this interaction",
                &scope,
            ));
        }
    }
    None
}

/// The bearer token of a request, if it has one.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// The authorization middleware (see the module documentation): checks the bearer token and
/// the scopes the request needs, and attaches the caller's [`Principal`] to the request.
pub async fn enforce(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    if state.auth.mode() == AuthMode::None {
        return next.run(request).await;
    }
    let need = need(request.method(), request.uri().path());
    if need == Need::Public {
        return next.run(request).await;
    }
    let Some(token) = bearer(request.headers()) else {
        return unauthorized(&state, None);
    };
    let Some(principal) = state.auth.principal(token) else {
        return unauthorized(&state, Some("the access token is unknown or has expired"));
    };
    let refusal = match &need {
        Need::Public | Need::Token => None,
        Need::Scopes(needs) => check_scopes(&state, &principal, needs),
        Need::AnyType(interaction, more) => {
            if principal.scopes.allows_any(*interaction) {
                check_scopes(&state, &principal, more)
            } else {
                Some(forbidden_response(
                    &state,
                    "the access token grants no read scope",
                    &scope_text(None, *interaction),
                ))
            }
        }
        Need::Job { id, file_type } => match job_owner(&state, id).await {
            Err(error) => Some(error.into_response()),
            Ok(Some(owner)) if owner.as_deref() != Some(principal.client_id()) => {
                let shown: String = id.chars().take(64).collect();
                Some(
                    FhirError::not_found(format!("no export job {shown} (unknown, or cancelled)"))
                        .into_response(),
                )
            }
            Ok(_) => match file_type {
                Some(t) if t != "OperationOutcome" => {
                    check_scopes(&state, &principal, &[(Some(t.clone()), Interaction::Read)])
                }
                _ if !principal.scopes.allows_any(Interaction::Read) => Some(forbidden_response(
                    &state,
                    "the access token grants no read scope",
                    "system/*.r",
                )),
                _ => None,
            },
        },
    };
    if let Some(response) = refusal {
        return response;
    }
    request.extensions_mut().insert(principal.clone());
    CALLER.scope(principal, next.run(request)).await
}

tokio::task_local! {
    /// The principal of the request being handled (set by [`enforce`]).
    static CALLER: Principal;
}

/// The principal of the request being handled, for code that has no access to the request's
/// extensions (call it from the handler's task, not from a blocking closure); `None` when
/// authorization is off or the path is public.
pub fn caller() -> Option<Principal> {
    CALLER.try_with(Principal::clone).ok()
}

/// The owner of an export job: `None` if there is no such job, `Some(None)` if it has no
/// owner.
async fn job_owner(state: &AppState, id: &str) -> Result<Option<Option<String>>, FhirError> {
    let id = id.to_owned();
    state
        .blocking(move |store| Ok(store.get_job(&id)?.map(|job| job.owner)))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::request::Level;

    #[test]
    fn requests_need_the_scopes_of_their_interaction() {
        let get = Method::GET;
        let t = |s: &str, i| (Some(s.to_owned()), i);
        assert_eq!(need(&get, "/fhir/metadata"), Need::Public);
        assert_eq!(
            need(&get, "/fhir/.well-known/smart-configuration"),
            Need::Public
        );
        assert_eq!(need(&Method::POST, "/fhir/auth/token"), Need::Public);
        assert_eq!(
            need(&get, "/fhir/Patient/1"),
            Need::Scopes(vec![t("Patient", Interaction::Read)])
        );
        assert_eq!(
            need(&get, "/fhir/Observation"),
            Need::Scopes(vec![t("Observation", Interaction::Search)])
        );
        assert_eq!(
            need(&Method::POST, "/fhir/Observation/_search"),
            Need::Scopes(vec![t("Observation", Interaction::Search)])
        );
        assert_eq!(
            need(&Method::POST, "/fhir/Patient"),
            Need::Scopes(vec![t("Patient", Interaction::Create)])
        );
        assert_eq!(
            need(&Method::PUT, "/fhir/Patient/1"),
            Need::Scopes(vec![t("Patient", Interaction::Update)])
        );
        assert_eq!(
            need(&Method::DELETE, "/fhir/Patient/1"),
            Need::Scopes(vec![t("Patient", Interaction::Delete)])
        );
        assert_eq!(
            need(&get, "/fhir/Patient/1/_history/2"),
            Need::Scopes(vec![t("Patient", Interaction::Read)])
        );
        assert_eq!(
            need(&get, "/fhir/Patient/_history"),
            Need::Scopes(vec![t("Patient", Interaction::Search)])
        );
        assert_eq!(
            need(&get, "/fhir/Patient/1/Observation"),
            Need::Scopes(vec![
                t("Patient", Interaction::Read),
                t("Observation", Interaction::Search)
            ])
        );
        assert_eq!(
            need(&get, "/fhir/_history"),
            Need::Scopes(vec![(None, Interaction::Search)])
        );
        assert!(matches!(need(&Method::POST, "/fhir"), Need::Scopes(v) if v.len() == 5));
        assert!(
            matches!(need(&get, "/fhir/Patient/1/$everything"), Need::Scopes(v) if v.len() == 5)
        );
        assert_eq!(
            need(&get, "/fhir/$export"),
            Need::AnyType(Interaction::Read, vec![])
        );
        assert_eq!(
            need(&get, "/fhir/Group/g/$export"),
            Need::AnyType(Interaction::Read, vec![t("Group", Interaction::Read)])
        );
        assert_eq!(
            need(
                &get,
                "/fhir/_operations/export/j/Deleted-Observation-3.ndjson"
            ),
            Need::Job {
                id: "j".into(),
                file_type: Some("Observation".into())
            }
        );
        assert_eq!(need(&get, "/fhir/NotAType/1"), Need::Token);
        assert_eq!(need(&get, "/elsewhere"), Need::Token);
    }

    #[test]
    fn exports_are_limited_to_readable_types() {
        let mut request = ExportRequest {
            url: "http://h/fhir/$export?_type=Patient,Observation".into(),
            level: Level::System,
            types: vec!["Patient".into(), "Observation".into()],
            since: None,
            until: None,
            patients: None,
            type_filters: vec!["Observation?code=x".into(), "Patient?active=true".into()],
            elements: Vec::new(),
            anonymization: None,
            notes: Vec::new(),
        };
        let principal = Principal::new("c", Scopes::parse("system/Patient.rs"));
        limit_export(Some(&principal), &mut request).unwrap();
        assert_eq!(request.types, ["Patient"]);
        assert_eq!(request.type_filters, ["Patient?active=true"]);
        assert!(
            request.notes[0].contains("Observation"),
            "{:?}",
            request.notes
        );
        let nothing = Principal::new("c", Scopes::parse("system/Encounter.rs"));
        let error = limit_export(Some(&nothing), &mut request).unwrap_err();
        assert_eq!(error.status, StatusCode::FORBIDDEN);
    }
}
