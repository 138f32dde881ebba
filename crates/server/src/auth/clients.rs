//! Registered SMART Backend Services clients: a JSON file that `haven clients add|list|remove`
//! edits and the server reads (again whenever it changes).
//!
//! ```json
//! {"clients": [
//!   {"id": "analytics", "jwks_url": "https://analytics.example.org/jwks.json", "scope": "system/*.rs"},
//!   {"id": "etl", "jwks": {"keys": [{"kty": "EC", "crv": "P-384", "kid": "k1", "x": "…", "y": "…"}]},
//!    "scope": "system/Patient.read system/Observation.read"}
//! ]}
//! ```

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::scopes::Scopes;

/// Where a client's public keys come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeySource {
    /// A JWKS URL, fetched when needed and cached (the form the SMART specification
    /// strongly prefers).
    JwksUrl(String),
    /// A literal JWKS (`{"keys": [...]}`).
    Jwks(Value),
}

/// One registered client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Client {
    /// The client id: the `iss` and `sub` of its assertions.
    pub id: String,
    /// Its public keys.
    #[serde(flatten)]
    pub keys: KeySource,
    /// The scopes it may be granted, space-separated (`system/*.rs`).
    pub scope: String,
}

impl Client {
    /// Checks a registration: a plain id, keys with `kty` and `kid`, an `http(s)` JWKS URL,
    /// and at least one scope Haven can enforce.
    pub fn validate(&self) -> Result<(), String> {
        if self.id.is_empty()
            || self.id.len() > 200
            || !self.id.chars().all(|c| c.is_ascii_graphic())
        {
            return Err(
                "client id must be 1 to 200 printable ASCII characters without spaces".into(),
            );
        }
        match &self.keys {
            KeySource::JwksUrl(url) => {
                let parsed = url::Url::parse(url)
                    .map_err(|e| format!("client {}: jwks_url: {e}", self.id))?;
                if !matches!(parsed.scheme(), "https" | "http") {
                    return Err(format!(
                        "client {}: jwks_url must be an http(s) URL",
                        self.id
                    ));
                }
            }
            KeySource::Jwks(jwks) => {
                check_jwks(jwks).map_err(|e| format!("client {}: jwks: {e}", self.id))?
            }
        }
        if Scopes::parse(&self.scope).is_empty() {
            return Err(format!(
                "client {}: scope names no system scope (system/*.rs, system/Patient.read, …)",
                self.id
            ));
        }
        Ok(())
    }
}

/// Checks that a JWKS has a `keys` array whose keys each have `kty` and `kid`.
pub fn check_jwks(jwks: &Value) -> Result<(), String> {
    let keys = jwks
        .get("keys")
        .and_then(Value::as_array)
        .ok_or("a JWKS needs a keys array")?;
    if keys.is_empty() {
        return Err("the keys array is empty".into());
    }
    for (index, key) in keys.iter().enumerate() {
        for field in ["kty", "kid"] {
            if key.get(field).and_then(Value::as_str).is_none() {
                return Err(format!("keys[{index}] has no {field}"));
            }
        }
        if key.get("d").is_some() {
            return Err(format!(
                "keys[{index}] is a private key; register the public JWKS"
            ));
        }
    }
    Ok(())
}

/// Errors reading or writing a registry file.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a valid registry.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong (names the client and field).
        message: String,
    },
}

/// The registered clients.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registry {
    /// The clients, in registration order.
    pub clients: Vec<Client>,
}

impl Registry {
    /// Reads a registry file; a missing file is an empty registry.
    pub fn load(path: &Path) -> Result<Registry, RegistryError> {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Registry::default()),
            Err(source) => {
                return Err(RegistryError::Io {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        let invalid = |message: String| RegistryError::Invalid {
            path: path.to_owned(),
            message,
        };
        let registry: Registry =
            serde_json::from_slice(&bytes).map_err(|e| invalid(e.to_string()))?;
        for client in &registry.clients {
            client.validate().map_err(invalid)?;
        }
        Ok(registry)
    }

    /// Writes the registry to `path` through a temporary file renamed into place.
    pub fn save(&self, path: &Path) -> Result<(), RegistryError> {
        let io = |source| RegistryError::Io {
            path: path.to_owned(),
            source,
        };
        let text = serde_json::to_string_pretty(self).map_err(|e| io(std::io::Error::other(e)))?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let temp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
        std::fs::write(&temp, text + "\n").map_err(io)?;
        std::fs::rename(&temp, path).map_err(io)
    }

    /// The client with this id.
    pub fn get(&self, id: &str) -> Option<&Client> {
        self.clients.iter().find(|c| c.id == id)
    }

    /// Registers a client; an id already registered is refused.
    pub fn add(&mut self, client: Client) -> Result<(), String> {
        client.validate()?;
        if self.get(&client.id).is_some() {
            return Err(format!(
                "client {} is already registered; remove it first to change it",
                client.id
            ));
        }
        self.clients.push(client);
        Ok(())
    }

    /// Removes a client; whether it was registered.
    pub fn remove(&mut self, id: &str) -> bool {
        let before = self.clients.len();
        self.clients.retain(|c| c.id != id);
        self.clients.len() != before
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn client(id: &str) -> Client {
        Client {
            id: id.into(),
            keys: KeySource::JwksUrl("https://keys.example.org/jwks.json".into()),
            scope: "system/*.rs".into(),
        }
    }

    #[test]
    fn a_registry_round_trips_through_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("clients.json");
        assert!(Registry::load(&path).unwrap().clients.is_empty());
        let mut registry = Registry::default();
        registry.add(client("a")).unwrap();
        registry
            .add(Client {
                id: "b".into(),
                keys: KeySource::Jwks(json!({"keys": [{"kty": "EC", "kid": "k", "crv": "P-384", "x": "x", "y": "y"}]})),
                scope: "system/Patient.read".into(),
            })
            .unwrap();
        registry.save(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"jwks_url\""), "{text}");
        assert_eq!(Registry::load(&path).unwrap(), registry);
        assert!(registry.remove("a"));
        assert!(!registry.remove("a"));
    }

    #[test]
    fn bad_registrations_are_refused() {
        let mut registry = Registry::default();
        registry.add(client("a")).unwrap();
        assert!(
            registry
                .add(client("a"))
                .unwrap_err()
                .contains("already registered")
        );
        assert!(registry.add(client("has space")).is_err());
        let mut no_scope = client("c");
        no_scope.scope = "patient/*.read".into();
        assert!(registry.add(no_scope).unwrap_err().contains("scope"));
        let mut ftp = client("d");
        ftp.keys = KeySource::JwksUrl("ftp://keys.example.org/jwks".into());
        assert!(registry.add(ftp).is_err());
        for jwks in [
            json!({}),
            json!({"keys": []}),
            json!({"keys": [{"kty": "EC"}]}),
            json!({"keys": [{"kty": "EC", "kid": "k", "d": "secret"}]}),
        ] {
            let mut literal = client("e");
            literal.keys = KeySource::Jwks(jwks.clone());
            assert!(registry.add(literal).is_err(), "{jwks}");
        }
    }
}
