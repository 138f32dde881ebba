//! SMART Backend Services authorization for the client: a [`TokenProvider`] that signs JWT
//! client assertions (ES384 or RS384, with `kid`) and exchanges them for access tokens.
//!
//! - **Discovery**: the token URL comes from `[base]/.well-known/smart-configuration`
//!   (`token_endpoint`), falling back to the CapabilityStatement's
//!   `rest.security` `oauth-uris` extension (`[base]/metadata`), unless
//!   [`SmartCredentials::token_url`] gives it.
//! - **Keys** ([`SigningKey`]): a private key as PEM (PKCS#8 for P-384, PKCS#1 or PKCS#8 for
//!   RSA) or as a private JWK (with its `kid`); without a `kid`, the key's RFC 7638 thumbprint
//!   is used, which is what [`SigningKey::generate`] (`haven keys generate`) puts in the
//!   public JWKS it writes. ES384 is the default for new keys: RSA signing with the pure-Rust
//!   `rsa` crate is exposed to the Marvin timing side channel (RUSTSEC-2023-0071) where an
//!   attacker can time many signatures.
//! - **Tokens** ([`SmartAuth`]): a token is cached and renewed shortly before it expires
//!   (30 s, or a quarter of its lifetime if shorter); [`SmartAuth::invalidate`] drops one a
//!   server refused, so the next request authenticates again. Each assertion has a fresh
//!   random `jti` and expires four minutes after it is signed.
//!
//! ```no_run
//! # async fn run() -> Result<(), bulk::Error> {
//! use std::sync::Arc;
//! use bulk::smart::{SigningKey, SmartAuth, SmartCredentials};
//!
//! let key = SigningKey::load(std::path::Path::new("keys/private-key.pem"), None)?;
//! let auth = SmartAuth::new("https://fhir.example.org/r4", SmartCredentials::new("my-client", key));
//! let token = auth.token().await?;
//! # let _ = (token, Arc::new(auth));
//! # Ok(()) }
//! ```

use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{Jwk, ThumbprintHash};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::Error;
use crate::auth::{TokenFuture, TokenProvider};

/// The `client_assertion_type` of SMART Backend Services.
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// How long a signed assertion is valid (SMART allows at most five minutes).
const ASSERTION_LIFETIME_SECS: u64 = 240;
/// The longest a token is kept before it expires.
const RENEW_MARGIN: Duration = Duration::from_secs(30);
/// The scope asked for when none is given: read everything, in the v1 syntax every SMART
/// server understands (servers with `permission-v2` map it to `system/*.rs`).
pub const DEFAULT_SCOPE: &str = "system/*.read";

/// The two signature algorithms SMART Backend Services requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAlgorithm {
    /// ECDSA on P-384 with SHA-384 (the default).
    Es384,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    Rs384,
}

impl KeyAlgorithm {
    /// The JOSE name (`ES384`, `RS384`).
    pub fn as_str(self) -> &'static str {
        match self {
            KeyAlgorithm::Es384 => "ES384",
            KeyAlgorithm::Rs384 => "RS384",
        }
    }

    fn jose(self) -> Algorithm {
        match self {
            KeyAlgorithm::Es384 => Algorithm::ES384,
            KeyAlgorithm::Rs384 => Algorithm::RS384,
        }
    }
}

impl std::str::FromStr for KeyAlgorithm {
    type Err = String;

    fn from_str(text: &str) -> Result<KeyAlgorithm, String> {
        match text.to_ascii_uppercase().as_str() {
            "ES384" => Ok(KeyAlgorithm::Es384),
            "RS384" => Ok(KeyAlgorithm::Rs384),
            _ => Err(format!("unknown algorithm {text}: use ES384 or RS384")),
        }
    }
}

/// A private key that signs client assertions, with its algorithm and key id.
pub struct SigningKey {
    alg: KeyAlgorithm,
    kid: String,
    key: EncodingKey,
    public: Value,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// A newly generated key pair: the private key as PEM, and the key.
pub struct GeneratedKey {
    /// The private key, PEM (PKCS#8 `PRIVATE KEY` for ES384, PKCS#1 `RSA PRIVATE KEY` for
    /// RS384). Keep it secret.
    pub private_pem: String,
    /// The key, ready to sign; its [`SigningKey::public_jwks`] is what the server registers.
    pub key: SigningKey,
}

fn key_error(what: impl std::fmt::Display) -> Error {
    Error::Auth(what.to_string())
}

impl SigningKey {
    /// Generates a key pair: P-384 for ES384, 2048-bit RSA for RS384. The `kid` is the
    /// public key's RFC 7638 thumbprint.
    pub fn generate(alg: KeyAlgorithm) -> Result<GeneratedKey, Error> {
        use p384::pkcs8::EncodePrivateKey;
        let private_pem = match alg {
            KeyAlgorithm::Es384 => {
                use p384::elliptic_curve::Generate;
                p384::SecretKey::generate()
                    .to_pkcs8_pem(p384::pkcs8::LineEnding::LF)
                    .map_err(|e| key_error(format!("encoding the new key: {e}")))?
                    .to_string()
            }
            KeyAlgorithm::Rs384 => {
                use rsa::pkcs1::EncodeRsaPrivateKey;
                let mut rng = rand::rng();
                rsa::PrivateKey::new(&mut rng, 2048)
                    .map_err(|e| key_error(format!("generating an RSA key: {e}")))?
                    .to_pkcs1_pem(rsa::pkcs1::LineEnding::LF)
                    .map_err(|e| key_error(format!("encoding the new key: {e}")))?
                    .to_string()
            }
        };
        let key = SigningKey::from_pem(&private_pem, None)?;
        Ok(GeneratedKey { private_pem, key })
    }

    /// Reads a private key file: a JWK or a JWKS holding one private key (JSON), or PEM.
    /// `kid` overrides the key id (otherwise the JWK's `kid`, or the thumbprint for PEM).
    pub fn load(path: &Path, kid: Option<&str>) -> Result<SigningKey, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let located = |e: Error| {
            key_error(format!(
                "{}: {}",
                path.display(),
                e.to_string().trim_start_matches("access token: ")
            ))
        };
        if text.trim_start().starts_with('{') {
            let json: Value = serde_json::from_str(&text).map_err(|e| {
                key_error(format!("{}: not JSON: line {}", path.display(), e.line()))
            })?;
            let jwk = match json.get("keys").and_then(Value::as_array) {
                Some(keys) => {
                    let private: Vec<&Value> =
                        keys.iter().filter(|k| k.get("d").is_some()).collect();
                    match private.as_slice() {
                        [one] => (*one).clone(),
                        _ => {
                            return Err(key_error(format!(
                                "{}: the JWKS must hold exactly one private key",
                                path.display()
                            )));
                        }
                    }
                }
                None => json,
            };
            let mut key = SigningKey::from_jwk(&jwk).map_err(located)?;
            if let Some(kid) = kid {
                kid.clone_into(&mut key.kid);
                key.public["kid"] = json!(kid);
            }
            Ok(key)
        } else {
            SigningKey::from_pem(&text, kid).map_err(located)
        }
    }

    /// A key from PEM: PKCS#8 P-384 (ES384), or PKCS#1/PKCS#8 RSA (RS384).
    pub fn from_pem(pem: &str, kid: Option<&str>) -> Result<SigningKey, Error> {
        let (alg, key) = if let Ok(key) = EncodingKey::from_ec_pem(pem.as_bytes()) {
            (KeyAlgorithm::Es384, key)
        } else if let Ok(key) = EncodingKey::from_rsa_pem(pem.as_bytes()) {
            (KeyAlgorithm::Rs384, key)
        } else {
            return Err(key_error(
                "not a PEM private key of a supported kind (PKCS#8 P-384 for ES384, \
                 PKCS#1 or PKCS#8 RSA for RS384)",
            ));
        };
        SigningKey::with_key(alg, key, kid)
    }

    /// A key from a private JWK: `kty` `EC` with `crv` `P-384` and `d`, or `kty` `RSA` with
    /// `n`, `e`, `d`, `p` and `q`.
    pub fn from_jwk(jwk: &Value) -> Result<SigningKey, Error> {
        let field = |name: &str| -> Result<Vec<u8>, Error> {
            let text = jwk
                .get(name)
                .and_then(Value::as_str)
                .ok_or_else(|| key_error(format!("the private JWK has no {name}")))?;
            URL_SAFE_NO_PAD
                .decode(text.trim_end_matches('='))
                .map_err(|_| key_error(format!("the private JWK's {name} is not base64url")))
        };
        let kid = jwk.get("kid").and_then(Value::as_str);
        let (alg, key) = match jwk.get("kty").and_then(Value::as_str) {
            Some("EC") => {
                use p384::pkcs8::EncodePrivateKey;
                if jwk.get("crv").and_then(Value::as_str) != Some("P-384") {
                    return Err(key_error(
                        "an EC private JWK must be on curve P-384 (ES384)",
                    ));
                }
                let secret = p384::SecretKey::from_slice(&field("d")?)
                    .map_err(|_| key_error("the private JWK's d is not a P-384 private key"))?;
                let der = secret
                    .to_pkcs8_der()
                    .map_err(|e| key_error(format!("encoding the private JWK: {e}")))?;
                (
                    KeyAlgorithm::Es384,
                    EncodingKey::from_ec_der(der.as_bytes()),
                )
            }
            Some("RSA") => {
                use rsa::pkcs1::EncodeRsaPrivateKey;
                let number =
                    |name: &str| field(name).map(|b| rsa::BoxedUint::from_be_slice_vartime(&b));
                let private = rsa::PrivateKey::from_components(
                    number("n")?,
                    number("e")?,
                    number("d")?,
                    vec![number("p")?, number("q")?],
                )
                .map_err(|e| key_error(format!("the private JWK is not a valid RSA key: {e}")))?;
                let der = private
                    .to_pkcs1_der()
                    .map_err(|e| key_error(format!("encoding the private JWK: {e}")))?;
                (
                    KeyAlgorithm::Rs384,
                    EncodingKey::from_rsa_der(der.as_bytes()),
                )
            }
            _ => return Err(key_error("the private JWK's kty must be EC or RSA")),
        };
        if let Some(declared) = jwk.get("alg").and_then(Value::as_str)
            && declared != alg.as_str()
        {
            return Err(key_error(format!(
                "the private JWK says alg {declared}, but its key is for {}",
                alg.as_str()
            )));
        }
        SigningKey::with_key(alg, key, kid)
    }

    fn with_key(
        alg: KeyAlgorithm,
        key: EncodingKey,
        kid: Option<&str>,
    ) -> Result<SigningKey, Error> {
        let mut public = Jwk::from_encoding_key(&key, alg.jose())
            .map_err(|e| key_error(format!("the key does not fit {}: {e}", alg.as_str())))?;
        let kid = match kid {
            Some(kid) => kid.to_owned(),
            None => public
                .thumbprint(ThumbprintHash::SHA256)
                .map_err(|e| key_error(format!("computing the key id: {e}")))?,
        };
        public.common.key_id = Some(kid.clone());
        let mut public = serde_json::to_value(&public).map_err(|e| key_error(e.to_string()))?;
        public["use"] = json!("sig");
        Ok(SigningKey {
            alg,
            kid,
            key,
            public,
        })
    }

    /// The signature algorithm.
    pub fn algorithm(&self) -> KeyAlgorithm {
        self.alg
    }

    /// The key id (`kid`) sent in each assertion's header.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key as a JWKS (`{"keys": [...]}`) to register with a server.
    pub fn public_jwks(&self) -> Value {
        json!({"keys": [self.public]})
    }

    /// Signs a client assertion for `client_id` at `token_url`, valid for four minutes, with
    /// a random `jti` (and `jku` in the header when given: the registered JWKS URL).
    pub fn sign_assertion(
        &self,
        client_id: &str,
        token_url: &str,
        jku: Option<&str>,
    ) -> Result<String, Error> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut header = Header::new(self.alg.jose());
        header.typ = Some("JWT".to_owned());
        header.kid = Some(self.kid.clone());
        header.jku = jku.map(str::to_owned);
        let claims = json!({
            "iss": client_id,
            "sub": client_id,
            "aud": token_url,
            "exp": now + ASSERTION_LIFETIME_SECS,
            "iat": now,
            "jti": URL_SAFE_NO_PAD.encode(rand::random::<[u8; 18]>()),
        });
        jsonwebtoken::encode(&header, &claims, &self.key)
            .map_err(|e| key_error(format!("signing the client assertion: {e}")))
    }
}

/// Who the client is at a server: its id, key, the scope it asks for, and optionally the
/// token URL and the `jku` to send.
#[derive(Debug)]
pub struct SmartCredentials {
    /// The client id the server registered.
    pub client_id: String,
    /// The private key.
    pub key: SigningKey,
    /// The scopes to ask for, space-separated (default [`DEFAULT_SCOPE`]).
    pub scope: String,
    /// The token endpoint; `None` discovers it.
    pub token_url: Option<String>,
    /// A `jku` header (the registered JWKS URL), for servers that want it.
    pub jku: Option<String>,
}

impl SmartCredentials {
    /// Credentials with the default scope, discovery and no `jku`.
    pub fn new(client_id: impl Into<String>, key: SigningKey) -> SmartCredentials {
        SmartCredentials {
            client_id: client_id.into(),
            key,
            scope: DEFAULT_SCOPE.to_owned(),
            token_url: None,
            jku: None,
        }
    }
}

/// A token and when it should be renewed.
struct Cached {
    token: String,
    renew_at: Instant,
}

/// A [`TokenProvider`] for SMART Backend Services (see the module documentation).
pub struct SmartAuth {
    base_url: String,
    credentials: SmartCredentials,
    http: reqwest::Client,
    token_url: tokio::sync::OnceCell<String>,
    cached: Mutex<Option<Cached>>,
    fetch: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for SmartAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmartAuth")
            .field("base_url", &self.base_url)
            .field("client_id", &self.credentials.client_id)
            .finish_non_exhaustive()
    }
}

impl SmartAuth {
    /// Tokens for the FHIR server at `base_url` (its base, e.g. `https://h/fhir`).
    pub fn new(base_url: &str, credentials: SmartCredentials) -> SmartAuth {
        SmartAuth {
            base_url: base_url.trim_end_matches('/').to_owned(),
            credentials,
            http: reqwest::Client::builder()
                .user_agent(concat!("haven/", env!("CARGO_PKG_VERSION")))
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap_or_default(),
            token_url: tokio::sync::OnceCell::new(),
            cached: Mutex::new(None),
            fetch: tokio::sync::Mutex::new(()),
        }
    }

    /// The token endpoint: configured, or discovered once.
    pub async fn token_url(&self) -> Result<String, Error> {
        if let Some(url) = &self.credentials.token_url {
            return Ok(url.clone());
        }
        self.token_url
            .get_or_try_init(|| {
                discover(&self.http, &self.base_url, self.credentials.key.algorithm())
            })
            .await
            .cloned()
    }

    /// A valid access token: the cached one, or a new one when it is about to expire.
    pub async fn token(&self) -> Result<String, Error> {
        if let Some(token) = self.cached_token() {
            return Ok(token);
        }
        let _one_at_a_time = self.fetch.lock().await;
        if let Some(token) = self.cached_token() {
            return Ok(token);
        }
        let token_url = self.token_url().await?;
        let assertion = self.credentials.key.sign_assertion(
            &self.credentials.client_id,
            &token_url,
            self.credentials.jku.as_deref(),
        )?;
        let form = [
            ("grant_type", "client_credentials"),
            ("scope", self.credentials.scope.as_str()),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", assertion.as_str()),
        ];
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let requested = Instant::now();
        let response = self
            .http
            .post(&token_url)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header(reqwest::header::ACCEPT, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| key_error(format!("token request to {token_url}: {}", e.without_url())))?;
        let status = response.status();
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            let code = answer
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or("no error code");
            let description = answer
                .get("error_description")
                .and_then(Value::as_str)
                .unwrap_or("");
            return Err(key_error(format!(
                "token request to {token_url}: HTTP {}: {code} {description}",
                status.as_u16()
            )));
        }
        let token = answer
            .get("access_token")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                key_error(format!(
                    "token response from {token_url} has no access_token"
                ))
            })?
            .to_owned();
        let lifetime = Duration::from_secs(
            answer
                .get("expires_in")
                .and_then(Value::as_u64)
                .unwrap_or(300),
        );
        let margin = RENEW_MARGIN.min(lifetime / 4);
        *self
            .cached
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Cached {
            token: token.clone(),
            renew_at: requested + lifetime - margin,
        });
        Ok(token)
    }

    /// Forgets `token` (a server answered 401 to it), so the next request gets a new one.
    pub fn invalidate(&self, token: &str) {
        let mut cached = self
            .cached
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if cached.as_ref().is_some_and(|c| c.token == token) {
            *cached = None;
        }
    }

    fn cached_token(&self) -> Option<String> {
        let cached = self
            .cached
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        cached
            .as_ref()
            .filter(|c| Instant::now() < c.renew_at)
            .map(|c| c.token.clone())
    }
}

impl TokenProvider for SmartAuth {
    fn access_token(&self) -> TokenFuture<'_> {
        Box::pin(async { self.token().await.map(Some) })
    }

    fn invalidate(&self, token: &str) {
        SmartAuth::invalidate(self, token);
    }
}

/// Finds the token endpoint of the server at `base_url`: `.well-known/smart-configuration`
/// first, then the CapabilityStatement's `oauth-uris` extension.
pub async fn discover(
    http: &reqwest::Client,
    base_url: &str,
    alg: KeyAlgorithm,
) -> Result<String, Error> {
    let well_known = format!("{base_url}/.well-known/smart-configuration");
    if let Ok(response) = http
        .get(&well_known)
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        && response.status().is_success()
        && let Ok(config) = response.json::<Value>().await
        && let Some(url) = config.get("token_endpoint").and_then(Value::as_str)
    {
        if let Some(algs) = config
            .get("token_endpoint_auth_signing_alg_values_supported")
            .and_then(Value::as_array)
            && !algs.iter().any(|a| a.as_str() == Some(alg.as_str()))
        {
            return Err(key_error(format!(
                "{well_known}: the server does not accept {} client assertions",
                alg.as_str()
            )));
        }
        return Ok(url.to_owned());
    }
    let metadata = format!("{base_url}/metadata");
    let response = http
        .get(&metadata)
        .header(reqwest::header::ACCEPT, "application/fhir+json")
        .send()
        .await
        .map_err(|e| key_error(format!("discovery {metadata}: {}", e.without_url())))?;
    let capability: Value = response.json().await.unwrap_or(Value::Null);
    capability
        .get("rest")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|rest| rest.pointer("/security/extension").and_then(Value::as_array))
        .flatten()
        .filter(|e| e.get("url").and_then(Value::as_str).is_some_and(|u| u.ends_with("/oauth-uris")))
        .filter_map(|e| e.get("extension").and_then(Value::as_array))
        .flatten()
        .find(|e| e.get("url").and_then(Value::as_str) == Some("token"))
        .and_then(|e| e.get("valueUri").and_then(Value::as_str))
        .map(str::to_owned)
        .ok_or_else(|| {
            key_error(format!(
                "no token endpoint: {well_known} did not answer one, and {metadata} has no oauth-uris token"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_es384_key_loads_back_from_pem_with_the_same_kid() {
        let generated = SigningKey::generate(KeyAlgorithm::Es384).unwrap();
        assert!(
            generated
                .private_pem
                .starts_with("-----BEGIN PRIVATE KEY-----")
        );
        let loaded = SigningKey::from_pem(&generated.private_pem, None).unwrap();
        assert_eq!(loaded.kid(), generated.key.kid());
        assert_eq!(loaded.algorithm(), KeyAlgorithm::Es384);
        let jwks = loaded.public_jwks();
        let key = &jwks["keys"][0];
        assert_eq!(
            (key["kty"].as_str(), key["crv"].as_str()),
            (Some("EC"), Some("P-384"))
        );
        assert_eq!(key["kid"].as_str(), Some(loaded.kid()));
        assert!(key.get("d").is_none());
    }

    #[test]
    fn assertions_carry_the_smart_claims() {
        let key = SigningKey::generate(KeyAlgorithm::Es384).unwrap().key;
        let assertion = key
            .sign_assertion("client", "https://h/token", Some("https://c/jwks"))
            .unwrap();
        let header = jsonwebtoken::decode_header(&assertion).unwrap();
        assert_eq!(header.alg, Algorithm::ES384);
        assert_eq!(header.kid.as_deref(), Some(key.kid()));
        assert_eq!(header.typ.as_deref(), Some("JWT"));
        assert_eq!(header.jku.as_deref(), Some("https://c/jwks"));
        let payload = assertion.split('.').nth(1).unwrap();
        let claims: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        assert_eq!(claims["iss"], "client");
        assert_eq!(claims["sub"], "client");
        assert_eq!(claims["aud"], "https://h/token");
        let lifetime = claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap();
        assert!(lifetime <= 300, "{lifetime}");
        let other = key
            .sign_assertion("client", "https://h/token", None)
            .unwrap();
        let other_claims: Value = serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(other.split('.').nth(1).unwrap())
                .unwrap(),
        )
        .unwrap();
        assert_ne!(claims["jti"], other_claims["jti"]);
    }

    #[test]
    fn a_private_ec_jwk_signs_and_a_p256_or_unknown_key_is_refused() {
        let generated = SigningKey::generate(KeyAlgorithm::Es384).unwrap();
        let secret = {
            use p384::pkcs8::DecodePrivateKey;
            p384::SecretKey::from_pkcs8_pem(&generated.private_pem).unwrap()
        };
        let mut jwk = generated.key.public_jwks()["keys"][0].clone();
        jwk["d"] = json!(URL_SAFE_NO_PAD.encode(secret.to_bytes()));
        jwk["kid"] = json!("my-key");
        let from_jwk = SigningKey::from_jwk(&jwk).unwrap();
        assert_eq!(from_jwk.kid(), "my-key");
        assert_eq!(from_jwk.public_jwks()["keys"][0]["x"], jwk["x"]);
        let mut p256 = jwk.clone();
        p256["crv"] = json!("P-256");
        assert!(SigningKey::from_jwk(&p256).is_err());
        let mut wrong_alg = jwk.clone();
        wrong_alg["alg"] = json!("RS384");
        assert!(SigningKey::from_jwk(&wrong_alg).is_err());
        assert!(
            SigningKey::from_pem(
                "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
                None
            )
            .is_err()
        );
    }

    #[test]
    fn algorithms_parse_by_their_jose_names() {
        assert_eq!("es384".parse::<KeyAlgorithm>(), Ok(KeyAlgorithm::Es384));
        assert_eq!("RS384".parse::<KeyAlgorithm>(), Ok(KeyAlgorithm::Rs384));
        assert!("HS256".parse::<KeyAlgorithm>().is_err());
    }
}
