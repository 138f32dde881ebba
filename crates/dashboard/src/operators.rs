//! Dashboard operators: names and salted PBKDF2-HMAC-SHA256 password hashes in a TOML file
//! (`haven operators add NAME` writes it), checked in constant time at sign-in.
//!
//! ```toml
//! [[operator]]
//! name = "alice"
//! password = "pbkdf2-sha256$600000$<salt, hex>$<hash, hex>"
//! ```

use std::path::{Path, PathBuf};

use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// PBKDF2 iterations for new hashes (OWASP's 2023 figure for HMAC-SHA256).
pub const DEFAULT_ITERATIONS: u32 = 600_000;

/// The scheme tag of a stored hash.
const SCHEME: &str = "pbkdf2-sha256";

/// Why the operators file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file cannot be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
    /// The file is not a valid operators file.
    #[error("{path}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong (never a password or hash).
        reason: String,
    },
    /// An operator name is empty or has characters other than letters, digits, `.`, `-`,
    /// `_` and `@`.
    #[error(
        "operator name {0:?} is not allowed: use letters, digits, '.', '-', '_' or '@' (1 to 64)"
    )]
    BadName(String),
    /// The password is too short.
    #[error("the password must have at least {0} characters")]
    ShortPassword(usize),
}

/// The shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 12;

/// One operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operator {
    /// The sign-in name.
    pub name: String,
    /// The password hash (`pbkdf2-sha256$ITERATIONS$SALT$HASH`, hex).
    pub password: String,
}

/// The operators of a dashboard.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operators {
    /// The operators, in file order.
    #[serde(default, rename = "operator")]
    pub operators: Vec<Operator>,
}

impl Operators {
    /// Reads an operators file; a missing file holds no operators.
    pub fn load(path: &Path) -> Result<Operators, Error> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Operators::default()),
            Err(source) => {
                return Err(Error::Io {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        let operators: Operators = toml::from_str(&text).map_err(|e| Error::Invalid {
            path: path.to_owned(),
            reason: e.message().to_owned(),
        })?;
        for operator in &operators.operators {
            if parse_hash(&operator.password).is_none() {
                return Err(Error::Invalid {
                    path: path.to_owned(),
                    reason: format!(
                        "operator {}: the password is not a {SCHEME} hash",
                        operator.name
                    ),
                });
            }
        }
        Ok(operators)
    }

    /// Writes the file (a temporary file renamed over it, readable by its owner only).
    pub fn save(&self, path: &Path) -> Result<(), Error> {
        let io = |source| Error::Io {
            path: path.to_owned(),
            source,
        };
        let mut text = String::from(
            "# Haven dashboard operators (haven operators add NAME). Passwords are PBKDF2 hashes.\n",
        );
        text.push_str(&toml::to_string(self).map_err(|e| Error::Invalid {
            path: path.to_owned(),
            reason: e.to_string(),
        })?);
        let temp = path.with_extension("toml.tmp");
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        write_private(&temp, text.as_bytes()).map_err(io)?;
        std::fs::rename(&temp, path).map_err(io)
    }

    /// Adds an operator, or replaces the password of one with the same name.
    pub fn set(&mut self, name: &str, password: &str, iterations: u32) -> Result<(), Error> {
        check_name(name)?;
        if password.chars().count() < MIN_PASSWORD_CHARS {
            return Err(Error::ShortPassword(MIN_PASSWORD_CHARS));
        }
        let hash = hash_password(password, iterations);
        match self.operators.iter_mut().find(|o| o.name == name) {
            Some(operator) => operator.password = hash,
            None => self.operators.push(Operator {
                name: name.to_owned(),
                password: hash,
            }),
        }
        Ok(())
    }

    /// Removes an operator; whether there was one.
    pub fn remove(&mut self, name: &str) -> bool {
        let before = self.operators.len();
        self.operators.retain(|o| o.name != name);
        self.operators.len() != before
    }

    /// Whether `password` is the password of operator `name`. An unknown name costs as
    /// much time as a wrong password.
    pub fn verify(&self, name: &str, password: &str) -> bool {
        match self.operators.iter().find(|o| o.name == name) {
            Some(operator) => verify_password(&operator.password, password),
            None => {
                let _ = pbkdf2(password.as_bytes(), b"haven-no-such-operator", 1000);
                false
            }
        }
    }
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}

fn check_name(name: &str) -> Result<(), Error> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '@'));
    if ok {
        Ok(())
    } else {
        Err(Error::BadName(name.chars().take(64).collect()))
    }
}

/// PBKDF2-HMAC-SHA256 with a 32-byte output (RFC 8018, one block).
pub fn pbkdf2(password: &[u8], salt: &[u8], iterations: u32) -> [u8; 32] {
    let mac = <Hmac<Sha256> as KeyInit>::new_from_slice(password).expect("HMAC takes any key");
    let mut first = mac.clone();
    first.update(salt);
    first.update(&1u32.to_be_bytes());
    let mut u = [0u8; 32];
    u.copy_from_slice(&first.finalize().into_bytes());
    let mut out = u;
    for _ in 1..iterations.max(1) {
        let mut next = mac.clone();
        next.update(&u);
        u.copy_from_slice(&next.finalize().into_bytes());
        for (o, b) in out.iter_mut().zip(u) {
            *o ^= b;
        }
    }
    out
}

/// A new salted hash of `password`.
pub fn hash_password(password: &str, iterations: u32) -> String {
    let salt: [u8; 16] = rand::random();
    let hash = pbkdf2(password.as_bytes(), &salt, iterations);
    format!(
        "{SCHEME}${iterations}${}${}",
        hex::encode(salt),
        hex::encode(hash)
    )
}

fn parse_hash(stored: &str) -> Option<(u32, Vec<u8>, Vec<u8>)> {
    let mut parts = stored.split('$');
    if parts.next()? != SCHEME {
        return None;
    }
    let iterations: u32 = parts.next()?.parse().ok().filter(|n| *n > 0)?;
    let salt = hex::decode(parts.next()?).ok()?;
    let hash = hex::decode(parts.next()?).ok().filter(|h| h.len() == 32)?;
    parts.next().is_none().then_some((iterations, salt, hash))
}

/// Whether `password` matches a stored hash (constant-time comparison).
pub fn verify_password(stored: &str, password: &str) -> bool {
    let Some((iterations, salt, hash)) = parse_hash(stored) else {
        return false;
    };
    let computed = pbkdf2(password.as_bytes(), &salt, iterations);
    computed
        .iter()
        .zip(&hash)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
        == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pbkdf2_matches_the_published_vectors() {
        // RFC 7914 section 11 and the widely published PBKDF2-HMAC-SHA256 vectors.
        assert_eq!(
            hex::encode(pbkdf2(b"password", b"salt", 1)),
            "120fb6cffcf8b32c43e7225256c4f837a86548c92ccc35480805987cb70be17b"
        );
        assert_eq!(
            hex::encode(pbkdf2(b"password", b"salt", 2)),
            "ae4d0c95af6b46d32d0adff928f06dd02a303f8ef3c251dfd6e2d85a95474c43"
        );
        assert_eq!(
            hex::encode(pbkdf2(b"password", b"salt", 4096)),
            "c5e478d59288c841aa530db6845c4c8d962893a001ce4e11a4963873aa98134a"
        );
    }

    #[test]
    fn a_password_verifies_against_its_own_hash_only() {
        let hash = hash_password("correct horse battery", 1000);
        assert!(verify_password(&hash, "correct horse battery"));
        assert!(!verify_password(&hash, "correct horse battery!"));
        assert!(!verify_password("pbkdf2-sha256$x$00$00", "x"));
        assert_ne!(hash, hash_password("correct horse battery", 1000));
    }

    #[test]
    fn the_file_round_trips_and_refuses_bad_names_and_short_passwords() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("operators.toml");
        let mut operators = Operators::load(&path).unwrap();
        assert!(operators.operators.is_empty());
        operators
            .set("alice", "a long enough password", 1000)
            .unwrap();
        assert!(matches!(
            operators.set("bob smith", "a long enough password", 1000),
            Err(Error::BadName(_))
        ));
        assert!(matches!(
            operators.set("bob", "short", 1000),
            Err(Error::ShortPassword(_))
        ));
        operators.save(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("a long enough password"));
        let loaded = Operators::load(&path).unwrap();
        assert!(loaded.verify("alice", "a long enough password"));
        assert!(!loaded.verify("alice", "wrong password here"));
        assert!(!loaded.verify("mallory", "a long enough password"));
    }
}
