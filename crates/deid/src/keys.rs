//! The keys of a run: from the configuration, the environment, a key file, or generated.
//!
//! Later sources win: the configuration's `parameters`, then `HAVEN_CRYPTO_HASH_KEY`,
//! `HAVEN_DATE_SHIFT_KEY` and `HAVEN_ENCRYPT_KEY`, then the key file. Generated keys are added to
//! the key file (mode 0600) only once the run has succeeded ([`Keys::store`]). No message ever
//! holds a key. The CLI, the pipeline and the server all resolve keys through [`resolve`].

use std::collections::BTreeMap;
use std::env::{self, VarError};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::Config;
use crate::config::KeyKind;

/// Why the keys could not be resolved or stored: a sentence for the user, with no key in it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct KeyError(String);

/// Where to look for keys beyond the configuration and the environment.
#[derive(Debug, Clone, Default)]
pub struct KeyOptions {
    /// The key file to read (and, with `generate`, to store generated keys in).
    pub key_file: Option<PathBuf>,
    /// Generate the keys no source sets, to be stored in `key_file` once the run succeeds.
    pub generate: bool,
}

/// Each key with the environment variable that sets it.
const ENVIRONMENT: [(KeyKind, &str); 3] = [
    (KeyKind::CryptoHash, "HAVEN_CRYPTO_HASH_KEY"),
    (KeyKind::DateShift, "HAVEN_DATE_SHIFT_KEY"),
    (KeyKind::Encrypt, "HAVEN_ENCRYPT_KEY"),
];

/// The environment variable of a key.
fn variable(kind: KeyKind) -> &'static str {
    ENVIRONMENT
        .iter()
        .find(|(k, _)| *k == kind)
        .map_or("", |(_, name)| name)
}

/// Where the keys came from, and the generated keys still to be stored.
#[derive(Debug)]
pub struct Keys {
    sources: BTreeMap<KeyKind, String>,
    warnings: Vec<String>,
    pending: Option<Pending>,
}

/// A key file to write once the run has succeeded.
#[derive(Debug)]
struct Pending {
    path: PathBuf,
    members: Map<String, Value>,
    generated: Vec<KeyKind>,
}

/// Fills the configuration's keys from the environment and the key file, and generates the
/// missing ones when `options.generate` is set (which needs a key file to store them in);
/// otherwise a missing key is an error that says how to provide it.
pub fn resolve(config: &mut Config, options: &KeyOptions) -> Result<Keys, KeyError> {
    let mut keys = Keys {
        sources: BTreeMap::new(),
        warnings: Vec::new(),
        pending: None,
    };
    for (kind, name) in ENVIRONMENT {
        match env::var(name) {
            Ok(key) if !key.is_empty() => {
                config
                    .set_key(kind, &key)
                    .map_err(|error| KeyError(format!("{name}: {error}")))?;
                keys.sources.insert(kind, name.to_string());
            }
            Ok(_) | Err(VarError::NotPresent) => {}
            Err(VarError::NotUnicode(_)) => {
                return Err(KeyError(format!("{name} is not valid UTF-8")));
            }
        }
    }
    let path = options.key_file.clone();
    let mut members = Map::new();
    if let Some(path) = &path {
        match read_key_file(path)? {
            Some(found) => {
                if let Some(mode) = readable_by_others(path) {
                    keys.warnings.push(format!(
                        "warning: key file {} can be read by other users (mode {mode:04o}); \
                         restrict it with chmod 600",
                        path.display()
                    ));
                }
                for (kind, key) in key_members(&found, path)? {
                    config.set_key(kind, key).map_err(|error| {
                        KeyError(format!("key file {}: {error}", path.display()))
                    })?;
                    keys.sources
                        .insert(kind, format!("key file {}", path.display()));
                }
                members = found;
            }
            None if options.generate => {}
            None => {
                return Err(KeyError(format!(
                    "key file {} does not exist (pass --generate-keys to create it)",
                    path.display()
                )));
            }
        }
    }
    let missing = config.missing_keys();
    if missing.is_empty() {
        return Ok(keys);
    }
    let Some(path) = path.filter(|_| options.generate) else {
        return Err(missing_keys(config, &missing));
    };
    let generated = config.generate_missing_keys();
    for kind in &generated {
        let key = match kind {
            KeyKind::CryptoHash => &config.parameters.crypto_hash_key,
            KeyKind::DateShift => &config.parameters.date_shift_key,
            KeyKind::Encrypt => &config.parameters.encrypt_key,
        };
        members.insert(
            kind.parameter().to_string(),
            Value::String(key.clone().unwrap_or_default()),
        );
    }
    keys.pending = Some(Pending {
        path,
        members,
        generated,
    });
    Ok(keys)
}

impl Keys {
    /// Lines for standard error: where each key came from (never the key), and warnings.
    pub fn notes(&self) -> Vec<String> {
        let mut notes = self.warnings.clone();
        if !self.sources.is_empty() {
            let sources: Vec<String> = self
                .sources
                .iter()
                .map(|(kind, source)| format!("{kind} from {source}"))
                .collect();
            notes.push(format!("keys: {}", sources.join(", ")));
        }
        if let Some(pending) = &self.pending {
            notes.push(format!(
                "keys: generating {}, to be stored in {} when the run succeeds",
                names(&pending.generated),
                pending.path.display()
            ));
        }
        notes
    }

    /// Writes the generated keys to the key file (mode 0600), keeping the keys already in it,
    /// and says where; does nothing when no key was generated.
    pub fn store(self) -> Result<Option<String>, KeyError> {
        let Some(pending) = self.pending else {
            return Ok(None);
        };
        let mut text = serde_json::to_string_pretty(&Value::Object(pending.members))
            .map_err(|error| KeyError(format!("cannot encode the key file: {error}")))?;
        text.push('\n');
        write_private(&pending.path, text.as_bytes()).map_err(|error| {
            KeyError(format!("cannot write {}: {error}", pending.path.display()))
        })?;
        Ok(Some(format!(
            "keys: generated {} and stored in {} (mode 0600); keep that file, apart from the \
             de-identified data, to get the same hashes and date shifts next time",
            names(&pending.generated),
            pending.path.display()
        )))
    }
}

/// `a`, `a and b`, `a, b and c`.
fn names(kinds: &[KeyKind]) -> String {
    let names: Vec<&str> = kinds.iter().map(|k| k.parameter()).collect();
    match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => names.join(""),
    }
}

/// The error for keys the rules need that no source sets: which, for which rule, and how to
/// provide them.
fn missing_keys(config: &Config, missing: &[(KeyKind, usize)]) -> KeyError {
    let mut message = String::from("the configuration needs keys that are not set:");
    for (kind, rule) in missing {
        let path = config.rules.get(*rule).map_or("", |r| r.path.as_str());
        message.push_str(&format!(
            "\n  {kind} (first needed by rule {rule}, `{path}`)"
        ));
    }
    let kinds: Vec<KeyKind> = missing.iter().map(|(k, _)| *k).collect();
    let example: Vec<String> = kinds
        .iter()
        .map(|k| format!("\"{}\": \"…\"", k.parameter()))
        .collect();
    let variables: Vec<&str> = kinds.iter().map(|k| variable(*k)).collect();
    message.push_str(&format!(
        "\nProvide {} in one of three ways:\
         \n  - in the configuration's \"parameters\";\
         \n  - in a key file given with --key-file FILE, holding {{{}}};\
         \n  - in the environment: {}.\
         \nOr pass --generate-keys to generate new keys and store them in a key file.",
        names(&kinds),
        example.join(", "),
        variables.join(", ")
    ));
    KeyError(message)
}

/// The key file's members, or `None` when it does not exist.
fn read_key_file(path: &Path) -> Result<Option<Map<String, Value>>, KeyError> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => {
            return Err(KeyError(format!(
                "cannot read key file {}: {error}",
                path.display()
            )));
        }
    };
    match serde_json::from_str(text.trim_start_matches('\u{feff}')) {
        Ok(Value::Object(members)) => Ok(Some(members)),
        Ok(_) => Err(KeyError(format!(
            "key file {} must be a JSON object",
            path.display()
        ))),
        Err(error) => Err(KeyError(format!(
            "key file {} is not valid JSON (line {}, column {})",
            path.display(),
            error.line(),
            error.column()
        ))),
    }
}

/// The permission bits of a file that users other than its owner may read.
#[cfg(unix)]
fn readable_by_others(path: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(path).ok()?.permissions().mode() & 0o777;
    (mode & 0o077 != 0).then_some(mode)
}

/// Other systems have no Unix permission bits to check.
#[cfg(not(unix))]
fn readable_by_others(_path: &Path) -> Option<u32> {
    None
}

/// The keys a key file sets; unknown members and non-string keys are errors.
fn key_members<'m>(
    members: &'m Map<String, Value>,
    path: &Path,
) -> Result<Vec<(KeyKind, &'m str)>, KeyError> {
    let mut keys = Vec::new();
    for (name, value) in members {
        let Some((kind, _)) = ENVIRONMENT.iter().find(|(k, _)| k.parameter() == name) else {
            return Err(KeyError(format!(
                "key file {}: unknown member `{name}` (expected cryptoHashKey, dateShiftKey or \
                 encryptKey)",
                path.display()
            )));
        };
        match value {
            Value::String(key) if !key.is_empty() => keys.push((*kind, key.as_str())),
            Value::String(_) | Value::Null => {}
            _ => {
                return Err(KeyError(format!(
                    "key file {}: {name} must be a string",
                    path.display()
                )));
            }
        }
    }
    Ok(keys)
}

/// Writes a file readable by its owner only (mode 0600), through a temporary name renamed into
/// place once complete.
fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    let temp = path.with_file_name(format!(
        ".{}.{}.tmp",
        name.unwrap_or_default(),
        std::process::id()
    ));
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = options.open(&temp).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&temp, path)
    });
    if written.is_err() {
        let _ = fs::remove_file(&temp);
    }
    written
}
