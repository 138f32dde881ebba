//! SMART Backend Services on a real server (SQLite, an ephemeral 127.0.0.1 port): discovery,
//! the token endpoint with every way a client assertion can be wrong, and the enforcement of
//! access tokens and scopes on the REST API and on `$export` jobs.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bulk::smart::{KeyAlgorithm, SigningKey};
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_LOCATION, WWW_AUTHENTICATE};
use serde_json::{Value, json};
use server::auth::clients::{Client, KeySource, Registry};
use server::auth::{AuthConfig, AuthMode, JWT_BEARER};
use server::{Server, ServerConfig};
use store::Write;

/// A client registered with the test server.
struct TestClient {
    id: String,
    key: SigningKey,
}

/// A JWKS served over HTTP for JWKS-URL registrations, counting its fetches.
struct JwksServer {
    url: String,
    fetches: Arc<AtomicUsize>,
    jwks: Arc<std::sync::Mutex<Value>>,
}

impl JwksServer {
    async fn start(jwks: Value) -> JwksServer {
        let fetches = Arc::new(AtomicUsize::new(0));
        let shared = Arc::new(std::sync::Mutex::new(jwks));
        let (count, served) = (Arc::clone(&fetches), Arc::clone(&shared));
        let app = axum::Router::new().route(
            "/jwks.json",
            axum::routing::get(move || {
                let (count, served) = (Arc::clone(&count), Arc::clone(&served));
                async move {
                    count.fetch_add(1, Ordering::SeqCst);
                    let body = served.lock().unwrap().clone();
                    ([("cache-control", "max-age=3600")], axum::Json(body))
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        JwksServer {
            url,
            fetches,
            jwks: shared,
        }
    }
}

/// A server with authorization on, two registered clients and a little data.
struct Hub {
    base: String,
    token_url: String,
    clients_file: PathBuf,
    http: reqwest::Client,
    /// `etl`: ES384, literal JWKS, `system/*.read`.
    etl: TestClient,
    /// `analytics`: RS384 through a JWKS URL, `system/Patient.rs system/Group.rs`.
    analytics: TestClient,
    jwks: JwksServer,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

impl Hub {
    async fn start(token_lifetime: Duration) -> Hub {
        let dir = tempfile::tempdir().unwrap();
        let etl = TestClient {
            id: "etl".into(),
            key: SigningKey::generate(KeyAlgorithm::Es384).unwrap().key,
        };
        let analytics = TestClient {
            id: "analytics".into(),
            key: SigningKey::generate(KeyAlgorithm::Rs384).unwrap().key,
        };
        let jwks = JwksServer::start(analytics.key.public_jwks()).await;
        let mut registry = Registry::default();
        registry
            .add(Client {
                id: etl.id.clone(),
                keys: KeySource::Jwks(etl.key.public_jwks()),
                scope: "system/*.read".into(),
            })
            .unwrap();
        registry
            .add(Client {
                id: analytics.id.clone(),
                keys: KeySource::JwksUrl(jwks.url.clone()),
                scope: "system/Patient.rs system/Group.rs".into(),
            })
            .unwrap();
        let clients_file = dir.path().join("clients.json");
        registry.save(&clients_file).unwrap();

        let path = dir.path().join("haven.db");
        let store: Arc<dyn store::Store> = tokio::task::spawn_blocking(move || {
            let store: Arc<dyn store::Store> =
                Arc::from(store::open(path.to_str().unwrap()).unwrap());
            store.transaction(sample()).unwrap();
            store
        })
        .await
        .unwrap();
        let config = ServerConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            export_to: dir.path().join("exports").to_str().unwrap().to_owned(),
            auth: AuthConfig {
                mode: AuthMode::Smart,
                clients_file: Some(clients_file.clone()),
                token_lifetime,
            },
            ..ServerConfig::default()
        };
        let server = Server::bind(config, store).await.unwrap();
        let base = server.state().base_url.to_string();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            server
                .run_until(async {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        });
        Hub {
            token_url: format!("{base}/auth/token"),
            base,
            clients_file,
            http: reqwest::Client::new(),
            etl,
            analytics,
            jwks,
            shutdown: Some(tx),
            _dir: dir,
        }
    }

    /// Posts a token request with this assertion and scope.
    async fn token_request(&self, assertion: &str, scope: &str) -> (StatusCode, Value) {
        let form = [
            ("grant_type", "client_credentials"),
            ("scope", scope),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", assertion),
        ];
        let response = post_form(&self.http, &self.token_url, &form)
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap())
    }

    /// A token for a client, asking for `scope`.
    async fn token(&self, client: &TestClient, scope: &str) -> String {
        let assertion = client
            .key
            .sign_assertion(&client.id, &self.token_url, None)
            .unwrap();
        let (status, body) = self.token_request(&assertion, scope).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["access_token"].as_str().unwrap().to_owned()
    }

    async fn get(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        let mut request = self
            .http
            .get(format!("{}{path}", self.base))
            .header(ACCEPT, "application/fhir+json");
        if let Some(token) = token {
            request = request.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        request.send().await.unwrap()
    }

    /// Kicks off an export and polls it to completion; the manifest and the status URL.
    async fn export(&self, query: &str, token: &str) -> (String, Value) {
        let response = self
            .http
            .get(format!("{}/$export{query}", self.base))
            .header(ACCEPT, "application/fhir+json")
            .header("prefer", "respond-async")
            .header(AUTHORIZATION, format!("Bearer {token}"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::ACCEPTED,
            "{}",
            response.text().await.unwrap()
        );
        let status_url = response.headers()[CONTENT_LOCATION]
            .to_str()
            .unwrap()
            .to_owned();
        for _ in 0..200 {
            let poll = self
                .http
                .get(&status_url)
                .header(AUTHORIZATION, format!("Bearer {token}"))
                .send()
                .await
                .unwrap();
            match poll.status() {
                StatusCode::OK => return (status_url, poll.json().await.unwrap()),
                StatusCode::ACCEPTED | StatusCode::TOO_MANY_REQUESTS => {
                    tokio::time::sleep(Duration::from_millis(600)).await;
                }
                other => panic!("status poll: {other}: {}", poll.text().await.unwrap()),
            }
        }
        panic!("the export did not finish");
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// A form-encoded POST.
fn post_form(http: &reqwest::Client, url: &str, pairs: &[(&str, &str)]) -> reqwest::RequestBuilder {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    http.post(url)
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(body)
}

fn sample() -> Vec<Write> {
    let mut writes = Vec::new();
    for p in ["p1", "p2"] {
        writes.push(Write::Create(
            json!({"resourceType": "Patient", "id": p, "gender": "female"}),
        ));
        writes.push(Write::Create(json!({
            "resourceType": "Observation", "id": format!("{p}-obs"), "status": "final",
            "code": {"text": "pulse"}, "subject": {"reference": format!("Patient/{p}")}
        })));
    }
    writes.push(Write::Create(json!({
        "resourceType": "Group", "id": "g1", "type": "person", "actual": true,
        "member": [{"entity": {"reference": "Patient/p1"}}]
    })));
    writes
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Signs arbitrary claims with a client's key (the header names its kid and algorithm).
fn sign(key: &SigningKey, private_pem: Option<&str>, claims: &Value) -> String {
    let alg = match key.algorithm() {
        KeyAlgorithm::Es384 => jsonwebtoken::Algorithm::ES384,
        KeyAlgorithm::Rs384 => jsonwebtoken::Algorithm::RS384,
    };
    let mut header = jsonwebtoken::Header::new(alg);
    header.kid = Some(key.kid().to_owned());
    header.typ = Some("JWT".into());
    let pem = private_pem.expect("a PEM to sign with");
    let encoding = match key.algorithm() {
        KeyAlgorithm::Es384 => jsonwebtoken::EncodingKey::from_ec_pem(pem.as_bytes()).unwrap(),
        KeyAlgorithm::Rs384 => jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap(),
    };
    jsonwebtoken::encode(&header, claims, &encoding).unwrap()
}

/// A JWS with any header, the given claims and a meaningless signature part.
fn unsigned(header: &Value, claims: &Value, signature: &str) -> String {
    format!(
        "{}.{}.{signature}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

fn claims(client: &str, aud: &str) -> Value {
    json!({"iss": client, "sub": client, "aud": aud, "exp": now() + 120, "jti": format!("{}", rand_id())})
}

fn rand_id() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(SystemTime::now())
}

/// A hub whose `etl` client signs with a key we also hold as PEM (to craft bad assertions).
async fn hub_with_pem() -> (Hub, String) {
    let mut hub = Hub::start(Duration::from_secs(300)).await;
    let generated = SigningKey::generate(KeyAlgorithm::Es384).unwrap();
    let mut registry = Registry::load(&hub.clients_file).unwrap();
    registry.remove("etl");
    registry
        .add(Client {
            id: "etl".into(),
            keys: KeySource::Jwks(generated.key.public_jwks()),
            scope: "system/*.read".into(),
        })
        .unwrap();
    // A different modification time than the first write, so the server reads it again.
    std::thread::sleep(Duration::from_millis(20));
    registry.save(&hub.clients_file).unwrap();
    hub.etl.key = generated.key;
    (hub, generated.private_pem)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_smart_configuration_names_the_token_endpoint_and_algorithms() {
    let hub = Hub::start(Duration::from_secs(300)).await;
    let response = hub.get("/.well-known/smart-configuration", None).await;
    assert_eq!(response.status(), StatusCode::OK);
    let config: Value = response.json().await.unwrap();
    assert_eq!(config["token_endpoint"], hub.token_url);
    assert_eq!(
        config["token_endpoint_auth_methods_supported"],
        json!(["private_key_jwt"])
    );
    assert_eq!(
        config["token_endpoint_auth_signing_alg_values_supported"],
        json!(["RS384", "ES384"])
    );
    let capabilities = config["capabilities"].as_array().unwrap();
    for capability in [
        "client-confidential-asymmetric",
        "permission-v1",
        "permission-v2",
    ] {
        assert!(capabilities.contains(&json!(capability)), "{capability}");
    }
    // The CapabilityStatement is public and names the token endpoint too.
    let response = hub.get("/metadata", None).await;
    assert_eq!(response.status(), StatusCode::OK);
    let statement: Value = response.json().await.unwrap();
    let oauth = &statement["rest"][0]["security"]["extension"][0];
    assert!(
        oauth["url"].as_str().unwrap().ends_with("/oauth-uris"),
        "{oauth}"
    );
    assert_eq!(oauth["extension"][0]["valueUri"], hub.token_url);
}

#[tokio::test(flavor = "multi_thread")]
async fn es384_with_a_literal_jwks_and_rs384_with_a_jwks_url_get_tokens() {
    let hub = Hub::start(Duration::from_secs(300)).await;
    let assertion = hub
        .etl
        .key
        .sign_assertion("etl", &hub.token_url, None)
        .unwrap();
    let (status, body) = hub.token_request(&assertion, "system/*.rs").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "bearer");
    assert!(body["expires_in"].as_u64().unwrap() <= 300);
    assert_eq!(body["scope"], "system/*.rs");

    let assertion = hub
        .analytics
        .key
        .sign_assertion("analytics", &hub.token_url, Some(&hub.jwks.url))
        .unwrap();
    let (status, body) = hub.token_request(&assertion, "system/*.read").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["scope"], "system/Patient.read system/Group.read");
    // A second token is verified with the cached JWKS.
    hub.token(&hub.analytics, "system/Patient.rs").await;
    assert_eq!(hub.jwks.fetches.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rotated_key_is_found_by_fetching_the_jwks_url_again() {
    let hub = Hub::start(Duration::from_secs(300)).await;
    hub.token(&hub.analytics, "system/Patient.rs").await;
    let rotated = SigningKey::generate(KeyAlgorithm::Es384).unwrap().key;
    *hub.jwks.jwks.lock().unwrap() = rotated.public_jwks();
    let client = TestClient {
        id: "analytics".into(),
        key: rotated,
    };
    // The cached copy is younger than the refetch limit: the new kid is not known yet.
    let assertion = client
        .key
        .sign_assertion("analytics", &hub.token_url, None)
        .unwrap();
    let (status, body) = hub.token_request(&assertion, "system/Patient.rs").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("no EC P-384 key with kid"),
        "{body}"
    );
    tokio::time::sleep(Duration::from_secs(11)).await;
    hub.token(&client, "system/Patient.rs").await;
    assert_eq!(hub.jwks.fetches.load(Ordering::SeqCst), 2);
}

/// Expects `invalid_client` (401) with a description containing `expected`.
async fn refused(hub: &Hub, assertion: &str, expected: &str) {
    let (status, body) = hub.token_request(assertion, "system/*.read").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{expected}: {body}");
    assert_eq!(body["error"], "invalid_client", "{expected}: {body}");
    let description = body["error_description"].as_str().unwrap();
    assert!(description.contains(expected), "{expected}: {description}");
}

#[tokio::test(flavor = "multi_thread")]
async fn assertions_with_bad_claims_are_refused() {
    let (hub, pem) = hub_with_pem().await;
    let key = &hub.etl.key;
    let base = claims("etl", &hub.token_url);
    let with = |field: &str, value: Value| {
        let mut c = base.clone();
        c["jti"] = json!(rand_id().to_string());
        c[field] = value;
        sign(key, Some(&pem), &c)
    };
    refused(&hub, &with("exp", json!(now() - 600)), "expired").await;
    refused(
        &hub,
        &with("exp", json!(now() + 600)),
        "more than 5 minutes ahead",
    )
    .await;
    refused(
        &hub,
        &with("aud", json!(format!("{}/other", hub.base))),
        "aud must be the token URL",
    )
    .await;
    refused(
        &hub,
        &with("sub", json!("analytics")),
        "sub must be the client id",
    )
    .await;
    refused(&hub, &with("iss", json!("analytics")), "kid").await;
    refused(
        &hub,
        &with("iss", json!("stranger")),
        "client stranger is not registered",
    )
    .await;
    refused(&hub, &with("jti", Value::Null), "jti").await;
    // The good assertion works once, and its replay is refused.
    let good = with("exp", json!(now() + 200));
    let (status, body) = hub.token_request(&good, "system/*.read").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    refused(&hub, &good, "jti was already used").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn assertions_not_signed_with_the_registered_key_are_refused() {
    let (hub, _pem) = hub_with_pem().await;
    let c = claims("etl", &hub.token_url);
    let kid = hub.etl.key.kid().to_owned();
    // alg none, with an empty or a made-up signature.
    refused(
        &hub,
        &unsigned(&json!({"alg": "none", "typ": "JWT", "kid": kid}), &c, ""),
        "alg none",
    )
    .await;
    refused(
        &hub,
        &unsigned(&json!({"alg": "none", "kid": kid}), &c, "c2ln"),
        "alg none",
    )
    .await;
    // HS256 with the public key's text as the secret (the classic key-confusion attack).
    let mut hs = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    hs.kid = Some(kid.clone());
    let secret = hub.etl.key.public_jwks().to_string();
    let forged = jsonwebtoken::encode(
        &hs,
        &c,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()).unwrap(),
    )
    .unwrap();
    refused(&hub, &forged, "alg HS256").await;
    // An unknown kid.
    let stranger = SigningKey::generate(KeyAlgorithm::Es384).unwrap();
    refused(
        &hub,
        &stranger
            .key
            .sign_assertion("etl", &hub.token_url, None)
            .unwrap(),
        "no EC P-384 key with kid",
    )
    .await;
    // The registered kid, but another key's signature.
    let mut other = claims("etl", &hub.token_url);
    other["jti"] = json!("forged");
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES384);
    header.kid = Some(kid.clone());
    let forged = jsonwebtoken::encode(
        &header,
        &other,
        &jsonwebtoken::EncodingKey::from_ec_pem(stranger.private_pem.as_bytes()).unwrap(),
    )
    .unwrap();
    refused(&hub, &forged, "signature does not verify").await;
    // A valid signature over other content (the payload swapped after signing).
    let genuine = hub
        .etl
        .key
        .sign_assertion("etl", &hub.token_url, None)
        .unwrap();
    let parts: Vec<&str> = genuine.split('.').collect();
    let mut tampered = claims("etl", &hub.token_url);
    tampered["exp"] = json!(now() + 280);
    let swapped = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(tampered.to_string()),
        parts[2]
    );
    refused(&hub, &swapped, "signature does not verify").await;
    // RS384 in the header for an EC key.
    refused(
        &hub,
        &unsigned(
            &json!({"alg": "RS384", "typ": "JWT", "kid": kid}),
            &c,
            "c2ln",
        ),
        "no RSA key with kid",
    )
    .await;
    // A jku that is not the registered JWKS URL.
    let assertion = hub
        .analytics
        .key
        .sign_assertion(
            "analytics",
            &hub.token_url,
            Some("http://127.0.0.1:1/evil.json"),
        )
        .unwrap();
    refused(&hub, &assertion, "jku").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_token_requests_get_oauth_errors() {
    let hub = Hub::start(Duration::from_secs(300)).await;
    let assertion = hub
        .etl
        .key
        .sign_assertion("etl", &hub.token_url, None)
        .unwrap();
    let post = |form: Vec<(&'static str, String)>| {
        let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let request = post_form(&hub.http, &hub.token_url, &pairs);
        async move {
            let response = request.send().await.unwrap();
            let status = response.status();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    let (status, body) = post(vec![("grant_type", "password".into())]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("unsupported_grant_type"))
    );
    let (status, body) = post(vec![
        ("grant_type", "client_credentials".into()),
        ("client_assertion_type", "urn:other".into()),
        ("client_assertion", assertion.clone()),
        ("scope", "system/*.read".into()),
    ])
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );
    // A scope the client is not registered for.
    let (status, body) = hub
        .token_request(&assertion, "system/*.write patient/*.read")
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_scope")),
        "{body}"
    );
    // A JSON body instead of a form.
    let response = hub
        .http
        .post(&hub.token_url)
        .json(&json!({"grant_type": "client_credentials"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

/// Checks a 401 or 403: an OperationOutcome body and a `WWW-Authenticate: Bearer` challenge.
async fn assert_refusal(response: reqwest::Response, status: StatusCode, challenge: &str) {
    assert_eq!(response.status(), status);
    let header = response.headers()[WWW_AUTHENTICATE]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(header.starts_with("Bearer realm="), "{header}");
    assert!(header.contains(challenge), "{header}");
    let outcome: Value = response.json().await.unwrap();
    assert_eq!(outcome["resourceType"], "OperationOutcome");
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_without_a_valid_token_get_401_with_an_outcome() {
    let hub = Hub::start(Duration::from_secs(1)).await;
    assert_refusal(
        hub.get("/Patient/p1", None).await,
        StatusCode::UNAUTHORIZED,
        "",
    )
    .await;
    assert_refusal(
        hub.get("/$export", None).await,
        StatusCode::UNAUTHORIZED,
        "",
    )
    .await;
    assert_refusal(
        hub.get("/Patient/p1", Some("made-up")).await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    )
    .await;
    let token = hub.token(&hub.etl, "system/*.read").await;
    assert_ne!(
        hub.get("/Patient/p1", Some(&token)).await.status(),
        StatusCode::UNAUTHORIZED
    );
    // The token lives one second.
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_refusal(
        hub.get("/Patient/p1", Some(&token)).await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_without_the_types_scope_gets_403() {
    let hub = Hub::start(Duration::from_secs(300)).await;
    let token = hub.token(&hub.analytics, "system/Patient.rs").await;
    assert_refusal(
        hub.get("/Observation/p1-obs", Some(&token)).await,
        StatusCode::FORBIDDEN,
        "insufficient_scope",
    )
    .await;
    assert_refusal(
        hub.get("/Observation?status=final", Some(&token)).await,
        StatusCode::FORBIDDEN,
        "system/Observation.s",
    )
    .await;
    assert_refusal(
        hub.get("/Patient/p1/Observation", Some(&token)).await,
        StatusCode::FORBIDDEN,
        "system/Observation.s",
    )
    .await;
    let allowed = hub.get("/Patient/p1", Some(&token)).await.status();
    assert!(
        allowed != StatusCode::FORBIDDEN && allowed != StatusCode::UNAUTHORIZED,
        "{allowed}"
    );
    // Read-only scopes do not allow writes.
    let response = hub
        .http
        .put(format!("{}/Patient/p1", hub.base))
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .json(&json!({"resourceType": "Patient", "id": "p1"}))
        .send()
        .await
        .unwrap();
    assert_refusal(response, StatusCode::FORBIDDEN, "system/Patient.u").await;
    // A Group export needs read access to the Group.
    let response = hub
        .http
        .get(format!("{}/Group/g1/$export", hub.base))
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .header("prefer", "respond-async")
        .send()
        .await
        .unwrap();
    assert_refusal(response, StatusCode::FORBIDDEN, "system/Group.r").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn exports_are_limited_to_granted_types_and_visible_only_to_their_client() {
    let hub = Hub::start(Duration::from_secs(300)).await;
    let analytics = hub.token(&hub.analytics, "system/Patient.rs").await;
    let (status_url, manifest) = hub.export("?_type=Patient,Observation", &analytics).await;
    assert_eq!(manifest["requiresAccessToken"], true);
    let types: Vec<&str> = manifest["output"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["Patient"], "{manifest}");
    // The dropped type is named in an informational OperationOutcome.
    let error_url = manifest["error"][0]["url"]
        .as_str()
        .expect("a note in error[]");
    let note = hub
        .http
        .get(error_url)
        .header(AUTHORIZATION, format!("Bearer {analytics}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        note.contains("Observation") && note.contains("information"),
        "{note}"
    );

    let file_url = manifest["output"][0]["url"].as_str().unwrap().to_owned();
    let download = |url: String, token: Option<String>| {
        let mut request = hub.http.get(url);
        if let Some(token) = token {
            request = request.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        async move { request.send().await.unwrap() }
    };
    let own = download(file_url.clone(), Some(analytics.clone())).await;
    assert_eq!(own.status(), StatusCode::OK);
    assert_eq!(own.text().await.unwrap().lines().count(), 2);
    assert_refusal(
        download(file_url.clone(), None).await,
        StatusCode::UNAUTHORIZED,
        "",
    )
    .await;

    // Another client, even with wider scopes, sees no such job.
    let etl = hub.token(&hub.etl, "system/*.read").await;
    assert_eq!(
        download(status_url.clone(), Some(etl.clone()))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        download(file_url.clone(), Some(etl.clone())).await.status(),
        StatusCode::NOT_FOUND
    );
    let cancel = hub
        .http
        .delete(&status_url)
        .header(AUTHORIZATION, format!("Bearer {etl}"))
        .send()
        .await
        .unwrap();
    assert_eq!(cancel.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        download(status_url.clone(), Some(analytics.clone()))
            .await
            .status(),
        StatusCode::OK
    );

    // Only types without any granted scope: 403.
    let response = hub
        .http
        .get(format!("{}/$export?_type=Observation", hub.base))
        .header(AUTHORIZATION, format!("Bearer {analytics}"))
        .header("prefer", "respond-async")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
}

#[tokio::test(flavor = "multi_thread")]
async fn auth_can_be_off_only_on_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn store::Store> =
        Arc::from(store::open(dir.path().join("h.db").to_str().unwrap()).unwrap());
    let open = ServerConfig {
        listen: "0.0.0.0:0".parse().unwrap(),
        export_to: dir.path().join("exports").to_str().unwrap().to_owned(),
        ..ServerConfig::default()
    };
    let error = Server::bind(open.clone(), Arc::clone(&store))
        .await
        .err()
        .unwrap();
    assert!(error.to_string().contains("loopback"), "{error}");
    assert_eq!(AuthMode::default_for(&open.listen), AuthMode::Smart);
    assert_eq!(
        AuthMode::default_for(&"127.0.0.1:8080".parse().unwrap()),
        AuthMode::None
    );
    // Without authorization there is no SMART configuration, and no token is needed.
    let local = ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..open
    };
    let server = Server::bind(local, store).await.unwrap();
    let base = server.state().base_url.to_string();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.run_until(async {
        let _ = rx.await;
    }));
    let response = reqwest::get(format!("{base}/.well-known/smart-configuration"))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let _ = tx.send(());
    task.await.unwrap().unwrap();
    tokio::task::spawn_blocking(move || drop(dir))
        .await
        .unwrap();
}
