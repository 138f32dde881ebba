//! The SMART Backend Services client against small mock authorization servers on 127.0.0.1:
//! discovery (well-known document, CapabilityStatement fallback), the token request, caching,
//! renewal and invalidation.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use bulk::TokenProvider;
use bulk::smart::{KeyAlgorithm, SigningKey, SmartAuth, SmartCredentials};
use serde_json::{Value, json};

/// What the mock server saw.
#[derive(Default)]
struct Seen {
    forms: Vec<Vec<(String, String)>>,
}

#[derive(Clone)]
struct Mock {
    seen: Arc<Mutex<Seen>>,
    expires_in: u64,
    well_known: bool,
    algs: Value,
    base: Arc<Mutex<String>>,
}

async fn well_known(State(mock): State<Mock>) -> Result<axum::Json<Value>, StatusCode> {
    if !mock.well_known {
        return Err(StatusCode::NOT_FOUND);
    }
    let base = mock.base.lock().unwrap().clone();
    Ok(axum::Json(json!({
        "token_endpoint": format!("{base}/token"),
        "token_endpoint_auth_signing_alg_values_supported": mock.algs,
    })))
}

async fn metadata(State(mock): State<Mock>) -> axum::Json<Value> {
    let base = mock.base.lock().unwrap().clone();
    axum::Json(json!({
        "resourceType": "CapabilityStatement",
        "rest": [{"mode": "server", "security": {"extension": [{
            "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
            "extension": [{"url": "authorize", "valueUri": "x"}, {"url": "token", "valueUri": format!("{base}/cap-token")}]
        }]}}]
    }))
}

async fn token(State(mock): State<Mock>, body: Bytes) -> (StatusCode, axum::Json<Value>) {
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&body).into_owned().collect();
    let mut seen = mock.seen.lock().unwrap();
    seen.forms.push(form);
    let n = seen.forms.len();
    (
        StatusCode::OK,
        axum::Json(
            json!({"access_token": format!("token-{n}"), "token_type": "bearer", "expires_in": mock.expires_in}),
        ),
    )
}

async fn refuse() -> (StatusCode, axum::Json<Value>) {
    (
        StatusCode::UNAUTHORIZED,
        axum::Json(
            json!({"error": "invalid_client", "error_description": "client x is not registered"}),
        ),
    )
}

async fn start(mock: Mock) -> String {
    let app = Router::new()
        .route("/fhir/.well-known/smart-configuration", get(well_known))
        .route("/fhir/metadata", get(metadata))
        .route("/fhir/token", post(token))
        .route("/fhir/cap-token", post(token))
        .route("/fhir/refuse", post(refuse))
        .with_state(mock.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/fhir", listener.local_addr().unwrap());
    *mock.base.lock().unwrap() = base.clone();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

fn mock(expires_in: u64, well_known: bool) -> Mock {
    Mock {
        seen: Arc::default(),
        expires_in,
        well_known,
        algs: json!(["ES384", "RS384"]),
        base: Arc::default(),
    }
}

fn credentials() -> SmartCredentials {
    SmartCredentials::new(
        "client-1",
        SigningKey::generate(KeyAlgorithm::Es384).unwrap().key,
    )
}

fn field<'a>(form: &'a [(String, String)], name: &str) -> &'a str {
    form.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap()
}

#[tokio::test]
async fn the_token_endpoint_is_discovered_and_the_request_is_well_formed() {
    let server = mock(300, true);
    let base = start(server.clone()).await;
    let auth = SmartAuth::new(&base, credentials());
    assert_eq!(auth.token_url().await.unwrap(), format!("{base}/token"));
    assert_eq!(
        auth.access_token().await.unwrap().as_deref(),
        Some("token-1")
    );
    let seen = server.seen.lock().unwrap();
    let form = &seen.forms[0];
    assert_eq!(field(form, "grant_type"), "client_credentials");
    assert_eq!(field(form, "scope"), "system/*.read");
    assert_eq!(
        field(form, "client_assertion_type"),
        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    );
    let assertion = field(form, "client_assertion");
    let header = jsonwebtoken::decode_header(assertion).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::ES384);
    assert!(header.kid.is_some());
}

#[tokio::test]
async fn without_a_well_known_document_the_capability_statement_names_the_token_url() {
    let base = start(mock(300, false)).await;
    let auth = SmartAuth::new(&base, credentials());
    assert_eq!(auth.token_url().await.unwrap(), format!("{base}/cap-token"));
    assert_eq!(auth.token().await.unwrap(), "token-1");
}

#[tokio::test]
async fn a_server_that_does_not_take_the_keys_algorithm_is_reported() {
    let mut server = mock(300, true);
    server.algs = json!(["RS384"]);
    let base = start(server).await;
    let error = SmartAuth::new(&base, credentials())
        .token()
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("does not accept ES384"),
        "{error}"
    );
}

#[tokio::test]
async fn tokens_are_cached_renewed_before_expiry_and_dropped_when_refused() {
    let server = mock(2, true);
    let base = start(server.clone()).await;
    let auth = SmartAuth::new(&base, credentials());
    let first = auth.token().await.unwrap();
    assert_eq!(auth.token().await.unwrap(), first);
    assert_eq!(server.seen.lock().unwrap().forms.len(), 1);
    // Renewed a quarter of its two-second lifetime before it expires.
    tokio::time::sleep(std::time::Duration::from_millis(1600)).await;
    let second = auth.token().await.unwrap();
    assert_ne!(second, first);
    // A token the server refused is not used again; another token is not affected.
    auth.invalidate(&first);
    assert_eq!(auth.token().await.unwrap(), second);
    auth.invalidate(&second);
    let third = auth.token().await.unwrap();
    assert_ne!(third, second);
    let forms = server.seen.lock().unwrap().forms.clone();
    let jtis: std::collections::HashSet<String> = forms
        .iter()
        .map(|form| {
            let payload = field(form, "client_assertion")
                .split('.')
                .nth(1)
                .unwrap()
                .to_owned();
            use base64::Engine as _;
            let claims: Value = serde_json::from_slice(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(payload)
                    .unwrap(),
            )
            .unwrap();
            claims["jti"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(jtis.len(), 3, "every assertion has its own jti");
}

#[tokio::test]
async fn a_refused_token_request_names_the_oauth_error() {
    let base = start(mock(300, true)).await;
    let mut credentials = credentials();
    credentials.token_url = Some(format!("{base}/refuse"));
    let error = SmartAuth::new(&base, credentials)
        .token()
        .await
        .unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("HTTP 401") && message.contains("invalid_client"),
        "{message}"
    );
}
