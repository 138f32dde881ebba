//! Client assertions (RFC 7523 JWTs signed with RS384 or ES384): the header, the key named by
//! `kid` in the client's JWKS (a URL fetched and cached, or a literal set), and the claims.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

/// The longest time ahead an assertion's `exp` may be (SMART: no more than five minutes).
pub const MAX_ASSERTION_LIFETIME_SECS: u64 = 300;
/// Clock skew tolerated between the client and the server, in seconds.
pub const LEEWAY_SECS: u64 = 30;
/// How long a fetched JWKS is used when its response says nothing about caching.
const DEFAULT_JWKS_MAX_AGE: Duration = Duration::from_secs(300);
/// A JWKS URL is fetched again for an unknown `kid` only if its copy is at least this old.
const MIN_REFETCH: Duration = Duration::from_secs(10);
/// The largest JWKS document accepted.
const MAX_JWKS_BYTES: usize = 1 << 20;

/// What the header of an assertion says.
pub struct AssertionHeader {
    /// `RS384` or `ES384`.
    pub alg: Algorithm,
    /// The key id.
    pub kid: String,
    /// The `jku` header, if any (it must equal the registered JWKS URL).
    pub jku: Option<String>,
}

/// Decodes one base64url segment of a compact JWS as a JSON object.
fn segment(assertion: &str, index: usize, what: &str) -> Result<Value, String> {
    let part = assertion
        .split('.')
        .nth(index)
        .ok_or_else(|| format!("the client assertion is not a compact JWS (no {what})"))?;
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| format!("the client assertion's {what} is not base64url"))?;
    let value: Value = serde_json::from_slice(&bytes)
        .map_err(|_| format!("the client assertion's {what} is not JSON"))?;
    if !value.is_object() {
        return Err(format!(
            "the client assertion's {what} is not a JSON object"
        ));
    }
    Ok(value)
}

/// Reads and checks the header: `alg` must be RS384 or ES384 (never `none` or HS*), `kid`
/// must be present, `typ` (if present) must be `JWT`.
pub fn header(assertion: &str) -> Result<AssertionHeader, String> {
    if assertion.split('.').count() != 3 {
        return Err("the client assertion is not a compact JWS of three parts".into());
    }
    let header = segment(assertion, 0, "header")?;
    let alg = match header.get("alg").and_then(Value::as_str) {
        Some("RS384") => Algorithm::RS384,
        Some("ES384") => Algorithm::ES384,
        Some(other) => {
            let shown: String = other.chars().take(16).collect();
            return Err(format!(
                "alg {shown} is not accepted; sign with RS384 or ES384"
            ));
        }
        None => return Err("the client assertion's header has no alg".into()),
    };
    if let Some(typ) = header.get("typ")
        && !typ.as_str().is_some_and(|t| t.eq_ignore_ascii_case("JWT"))
    {
        return Err("the client assertion's typ must be JWT".into());
    }
    let kid = header
        .get("kid")
        .and_then(Value::as_str)
        .filter(|k| !k.is_empty())
        .ok_or("the client assertion's header has no kid")?
        .to_owned();
    let jku = header.get("jku").and_then(Value::as_str).map(str::to_owned);
    Ok(AssertionHeader { alg, kid, jku })
}

/// The `iss` claim, read before the signature is checked (it names the client whose keys
/// verify it).
pub fn unverified_issuer(assertion: &str) -> Result<String, String> {
    segment(assertion, 1, "payload")?
        .get("iss")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| "the client assertion has no iss".into())
}

/// The key of `jwks` with this `kid` whose type fits `alg` (RSA of at least 2048 bits for
/// RS384, EC P-384 for ES384); `None` when there is not exactly one.
pub fn select_key(jwks: &Value, alg: Algorithm, kid: &str) -> Result<Option<DecodingKey>, String> {
    let (kty, alg_name) = match alg {
        Algorithm::RS384 => ("RSA", "RS384"),
        _ => ("EC", "ES384"),
    };
    let candidates: Vec<&Value> = jwks
        .get("keys")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|k| k.get("kid").and_then(Value::as_str) == Some(kid))
        .filter(|k| k.get("kty").and_then(Value::as_str) == Some(kty))
        .filter(|k| {
            k.get("alg")
                .and_then(Value::as_str)
                .is_none_or(|a| a == alg_name)
        })
        .filter(|k| {
            k.get("use")
                .and_then(Value::as_str)
                .is_none_or(|u| u == "sig")
        })
        .collect();
    let [key] = candidates.as_slice() else {
        return Ok(None);
    };
    let text = |field: &str| {
        key.get(field)
            .and_then(Value::as_str)
            .ok_or_else(|| format!("key {kid} has no {field}"))
    };
    if alg == Algorithm::RS384 {
        let n = text("n")?;
        let bits = URL_SAFE_NO_PAD
            .decode(n)
            .map_err(|_| format!("key {kid}: n is not base64url"))?
            .iter()
            .skip_while(|b| **b == 0)
            .count()
            * 8;
        if bits < 2048 {
            return Err(format!("key {kid} is an RSA key of fewer than 2048 bits"));
        }
        DecodingKey::from_rsa_components(n, text("e")?)
            .map(Some)
            .map_err(|e| format!("key {kid}: {e}"))
    } else {
        if text("crv")? != "P-384" {
            return Err(format!(
                "key {kid} is not on curve P-384, which ES384 needs"
            ));
        }
        DecodingKey::from_ec_components(text("x")?, text("y")?)
            .map(Some)
            .map_err(|e| format!("key {kid}: {e}"))
    }
}

/// Checks the signature of `assertion` with `key`; the claims are checked by [`check_claims`].
pub fn verify_signature(
    assertion: &str,
    key: &DecodingKey,
    alg: Algorithm,
) -> Result<Value, String> {
    let mut validation = Validation::new(alg);
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    jsonwebtoken::decode::<Value>(assertion, key, &validation)
        .map(|data| data.claims)
        .map_err(|_| {
            "the client assertion's signature does not verify with the client's key".into()
        })
}

/// The checked claims of an assertion.
pub struct Claims {
    /// The unique id of the assertion.
    pub jti: String,
    /// Its expiry, in seconds since the Unix epoch.
    pub exp: u64,
}

/// Checks `iss` = `sub` = `client_id`, `aud` = `token_url`, `exp` in the future and no more
/// than five minutes ahead of `now`, `nbf` (if any) not in the future, and a `jti`.
pub fn check_claims(
    claims: &Value,
    client_id: &str,
    token_url: &str,
    now: u64,
) -> Result<Claims, String> {
    for field in ["iss", "sub"] {
        if claims.get(field).and_then(Value::as_str) != Some(client_id) {
            return Err(format!(
                "the client assertion's {field} must be the client id {client_id}"
            ));
        }
    }
    let aud_ok = match claims.get("aud") {
        Some(Value::String(aud)) => aud == token_url,
        Some(Value::Array(auds)) => auds.len() == 1 && auds[0].as_str() == Some(token_url),
        _ => false,
    };
    if !aud_ok {
        return Err(format!(
            "the client assertion's aud must be the token URL {token_url}"
        ));
    }
    let exp = claims
        .get("exp")
        .and_then(Value::as_u64)
        .ok_or("the client assertion has no numeric exp")?;
    if exp + LEEWAY_SECS < now {
        return Err("the client assertion has expired (exp is in the past)".into());
    }
    if exp > now + MAX_ASSERTION_LIFETIME_SECS + LEEWAY_SECS {
        return Err("the client assertion's exp is more than 5 minutes ahead".into());
    }
    if let Some(nbf) = claims.get("nbf")
        && nbf.as_u64().is_none_or(|nbf| nbf > now + LEEWAY_SECS)
    {
        return Err("the client assertion is not valid yet (nbf)".into());
    }
    let jti = claims
        .get("jti")
        .and_then(Value::as_str)
        .filter(|j| !j.is_empty() && j.len() <= 256)
        .ok_or("the client assertion needs a jti of 1 to 256 characters")?
        .to_owned();
    Ok(Claims { jti, exp })
}

struct Cached {
    jwks: Arc<Value>,
    fetched: Instant,
    max_age: Duration,
}

/// JWKS documents fetched from clients' JWKS URLs, kept as long as their `Cache-Control`
/// allows (five minutes when it says nothing).
pub struct JwksCache {
    http: reqwest::Client,
    entries: Mutex<HashMap<String, Cached>>,
}

impl JwksCache {
    /// An empty cache.
    pub fn new() -> JwksCache {
        JwksCache {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .redirect(reqwest::redirect::Policy::limited(3))
                .build()
                .unwrap_or_default(),
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The JWKS at `url`: the cached copy while it is fresh, unless `stale_after` says a copy
    /// at least that old must be fetched again (a `kid` was not found in it).
    pub async fn get(
        &self,
        url: &str,
        stale_after: Option<Duration>,
    ) -> Result<Arc<Value>, String> {
        {
            let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(cached) = entries.get(url) {
                let age = cached.fetched.elapsed();
                let fresh = age < cached.max_age && stale_after.is_none_or(|limit| age < limit);
                if fresh {
                    return Ok(Arc::clone(&cached.jwks));
                }
            }
        }
        let (jwks, max_age) = self.fetch(url).await?;
        let jwks = Arc::new(jwks);
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                url.to_owned(),
                Cached {
                    jwks: Arc::clone(&jwks),
                    fetched: Instant::now(),
                    max_age,
                },
            );
        Ok(jwks)
    }

    /// Whether a copy of `url` younger than the refetch limit is cached.
    pub fn recently_fetched(&self, url: &str) -> bool {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(url)
            .is_some_and(|c| c.fetched.elapsed() < MIN_REFETCH)
    }

    async fn fetch(&self, url: &str) -> Result<(Value, Duration), String> {
        let failed = |why: String| format!("the client's JWKS URL {url} could not be read: {why}");
        let response = self
            .http
            .get(url)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| failed(e.without_url().to_string()))?;
        if !response.status().is_success() {
            return Err(failed(format!("HTTP {}", response.status().as_u16())));
        }
        let max_age = response
            .headers()
            .get(reqwest::header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .map_or(DEFAULT_JWKS_MAX_AGE, cache_max_age);
        let bytes = response
            .bytes()
            .await
            .map_err(|e| failed(e.without_url().to_string()))?;
        if bytes.len() > MAX_JWKS_BYTES {
            return Err(failed("the document is larger than 1 MiB".into()));
        }
        let jwks: Value = serde_json::from_slice(&bytes).map_err(|_| failed("not JSON".into()))?;
        super::clients::check_jwks(&jwks).map_err(failed)?;
        Ok((jwks, max_age))
    }
}

impl Default for JwksCache {
    fn default() -> JwksCache {
        JwksCache::new()
    }
}

/// How long a `Cache-Control` value lets a JWKS be kept: `no-store`/`no-cache` not at all,
/// `max-age=N` for N seconds (at most a day), otherwise five minutes.
fn cache_max_age(value: &str) -> Duration {
    let mut max_age = DEFAULT_JWKS_MAX_AGE;
    for directive in value.split(',').map(str::trim) {
        let lower = directive.to_ascii_lowercase();
        if lower == "no-store" || lower == "no-cache" {
            return Duration::ZERO;
        }
        if let Some(seconds) = lower.strip_prefix("max-age=")
            && let Ok(seconds) = seconds.trim_matches('"').parse::<u64>()
        {
            max_age = Duration::from_secs(seconds.min(86_400));
        }
    }
    max_age
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn jws(header: &Value, payload: &Value) -> String {
        format!(
            "{}.{}.c2ln",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(payload.to_string())
        )
    }

    #[test]
    fn only_rs384_and_es384_headers_with_a_kid_pass() {
        let payload = json!({"iss": "c"});
        for alg in ["none", "HS256", "HS384", "RS256", "ES256", "PS384", "EdDSA"] {
            let error = header(&jws(&json!({"alg": alg, "kid": "k"}), &payload))
                .err()
                .unwrap();
            assert!(error.contains("not accepted"), "{alg}: {error}");
        }
        assert!(
            header(&jws(&json!({"alg": "ES384"}), &payload))
                .err()
                .unwrap()
                .contains("kid")
        );
        assert!(
            header(&jws(
                &json!({"alg": "ES384", "kid": "k", "typ": "JOSE+X"}),
                &payload
            ))
            .is_err()
        );
        let ok = header(&jws(
            &json!({"alg": "RS384", "kid": "k", "typ": "JWT"}),
            &payload,
        ))
        .unwrap();
        assert_eq!(ok.alg, Algorithm::RS384);
        assert_eq!(ok.kid, "k");
        assert!(header("a.b").is_err());
        assert!(header("!!.b.c").is_err());
    }

    #[test]
    fn claims_are_checked_one_by_one() {
        let now = 1_000_000;
        let url = "http://h/fhir/auth/token";
        let good = json!({"iss": "c", "sub": "c", "aud": url, "exp": now + 240, "jti": "j"});
        let claims = check_claims(&good, "c", url, now).unwrap();
        assert_eq!((claims.jti.as_str(), claims.exp), ("j", now + 240));
        let cases = [
            ("iss", json!("other"), "iss"),
            ("sub", json!("other"), "sub"),
            ("aud", json!("http://h/fhir"), "aud"),
            ("aud", json!([url, "x"]), "aud"),
            ("exp", json!(now - 120), "expired"),
            ("exp", json!(now + 600), "5 minutes"),
            ("exp", json!("soon"), "exp"),
            ("nbf", json!(now + 600), "nbf"),
            ("jti", json!(""), "jti"),
        ];
        for (field, value, expected) in cases {
            let mut claims = good.clone();
            claims[field] = value;
            let error = check_claims(&claims, "c", url, now).err().unwrap();
            assert!(error.contains(expected), "{field}: {error}");
        }
        let mut array_aud = good.clone();
        array_aud["aud"] = json!([url]);
        assert!(check_claims(&array_aud, "c", url, now).is_ok());
    }

    #[test]
    fn keys_are_chosen_by_kid_and_type() {
        let jwks = json!({"keys": [
            {"kty": "EC", "kid": "ec", "crv": "P-256", "x": "AA", "y": "AA"},
            {"kty": "RSA", "kid": "small", "n": URL_SAFE_NO_PAD.encode([1u8; 128]), "e": "AQAB"},
        ]});
        assert!(
            select_key(&jwks, Algorithm::ES384, "missing")
                .unwrap()
                .is_none()
        );
        assert!(select_key(&jwks, Algorithm::RS384, "ec").unwrap().is_none());
        assert!(
            select_key(&jwks, Algorithm::ES384, "ec")
                .err()
                .unwrap()
                .contains("P-384")
        );
        assert!(
            select_key(&jwks, Algorithm::RS384, "small")
                .err()
                .unwrap()
                .contains("2048")
        );
    }

    #[test]
    fn cache_control_sets_the_jwks_lifetime() {
        assert_eq!(cache_max_age("public, max-age=60"), Duration::from_secs(60));
        assert_eq!(cache_max_age("no-store"), Duration::ZERO);
        assert_eq!(
            cache_max_age("max-age=99999999"),
            Duration::from_secs(86_400)
        );
        assert_eq!(cache_max_age("private"), DEFAULT_JWKS_MAX_AGE);
    }
}
