//! The configuration: Microsoft's FHIR anonymizer format, read unchanged.
//!
//! ```json
//! {"fhirVersion": "R4", "processingErrors": "raise",
//!  "fhirPathRules": [{"path": "nodesByType('HumanName')", "method": "redact"}],
//!  "parameters": {"dateShiftKey": "…", "cryptoHashKey": "…"}}
//! ```
//!
//! Unknown keys are ignored (as the original does), duplicate keys anywhere are an error, a UTF-8
//! byte-order mark is accepted. Every rule is checked at load: its path must be valid FHIRPath and
//! its method known, with the settings that method needs.

use std::fmt;

use rust_decimal::Decimal;
use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// A de-identification configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `fhirVersion` as written (`"R4"`, or `None` when absent or empty).
    pub fhir_version: Option<String>,
    /// What to do when a rule fails at run time (`processingErrors`).
    pub processing_errors: ProcessingErrors,
    /// The rules, in file order (`fhirPathRules`).
    pub rules: Vec<Rule>,
    /// The method parameters (`parameters`).
    pub parameters: Parameters,
}

/// `processingErrors`: what happens when a rule fails at run time on a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProcessingErrors {
    /// Fail (the default).
    #[default]
    Raise,
    /// Replace the whole top-level resource by an empty, REDACTED-labelled one and go on.
    Skip,
}

/// One entry of `fhirPathRules`.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// The FHIRPath selecting the nodes, as written.
    pub path: String,
    /// The method and its settings.
    pub method: Method,
}

/// A de-identification method with its settings.
#[derive(Debug, Clone, PartialEq)]
pub enum Method {
    /// Leave the nodes as they are and protect them from later rules.
    Keep,
    /// Remove the values (with the partial variants of [`Parameters`]).
    Redact,
    /// Shift dates by a keyed offset, keeping precision and zone.
    DateShift,
    /// Replace values by their HMAC-SHA256 (reference-aware).
    CryptoHash,
    /// Replace values by their AES-CBC encryption (Base64 of IV and ciphertext).
    Encrypt,
    /// Replace the nodes by a fixed value (`replaceWith`: a string, a JSON object or `null`).
    Substitute {
        /// The replacement as written.
        replace_with: Value,
    },
    /// Add uniform noise to numbers and quantities.
    Perturb(PerturbSettings),
    /// Replace values by the first matching case's value.
    Generalize(GeneralizeSettings),
    /// Haven: keep free text but replace every identifier found in it by a typed placeholder
    /// (`[NAME]`, `[PHONE]`, …), dates by their year or shifted (see [`ScrubSettings`]).
    Scrub,
}

impl Method {
    /// The method's name as used in configurations (`dateShift`, `cryptoHash`, …).
    pub fn name(&self) -> &'static str {
        match self {
            Method::Keep => "keep",
            Method::Redact => "redact",
            Method::DateShift => "dateShift",
            Method::CryptoHash => "cryptoHash",
            Method::Encrypt => "encrypt",
            Method::Substitute { .. } => "substitute",
            Method::Perturb(_) => "perturb",
            Method::Generalize(_) => "generalize",
            Method::Scrub => "scrub",
        }
    }
}

/// Settings of `perturb`.
#[derive(Debug, Clone, PartialEq)]
pub struct PerturbSettings {
    /// `span`: the width of the noise interval (absolute, or relative to the value).
    pub span: Decimal,
    /// `rangeType`.
    pub range_type: RangeType,
    /// `roundTo`: decimal places kept (0–28, default 2; integers always 0).
    pub round_to: u32,
}

/// `rangeType` of `perturb`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeType {
    /// Noise in `[-span/2, span/2]` (the default).
    Fixed,
    /// Noise in `[-span·|v|/2, span·|v|/2]`.
    Proportional,
}

/// Settings of `generalize`.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneralizeSettings {
    /// `cases`: FHIRPath predicate → FHIRPath value, in file order (the first true case wins).
    pub cases: Vec<(String, String)>,
    /// `otherValues`: what happens to values no case matches.
    pub other_values: OtherValues,
}

/// `otherValues` of `generalize`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtherValues {
    /// Remove the value (the default).
    Redact,
    /// Leave it.
    Keep,
}

/// Haven's `scrubLayers`, `scrubDates` and `scrubKeep` parameters: how the `scrub` method
/// finds identifiers in free text and what it writes for them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScrubSettings {
    /// `scrubLayers`: the detectors that run (default `["record", "patterns"]`; `"names"` adds
    /// the name lexicon).
    pub layers: scrub::Layers,
    /// `scrubDates`: what dates found in text become.
    pub dates: ScrubDates,
    /// `scrubKeep`: kinds left as written (`date`, `zip`, `city`, `age` in a limited data set).
    pub keep: Vec<scrub::Kind>,
}

impl Default for ScrubSettings {
    fn default() -> ScrubSettings {
        ScrubSettings {
            layers: scrub::Layers {
                record: true,
                patterns: true,
                names: false,
            },
            dates: ScrubDates::Year,
            keep: Vec::new(),
        }
    }
}

/// `scrubDates`: what a date found in free text becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ScrubDates {
    /// Its year (Safe Harbor), or `[DATE]` without one (the default).
    #[default]
    Year,
    /// Shifted by the resource's date-shift offset, as `dateShift` shifts its dates.
    Shift,
    /// Left as written.
    Keep,
}

/// `dateShiftScope`: what, besides the key, decides a date-shift offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DateShiftScope {
    /// The id of the outermost resource (the default).
    #[default]
    Resource,
    /// The input file's name.
    File,
    /// The input folder's name.
    Folder,
    /// Haven: the id of the patient whose compartment the resource belongs to, so every resource
    /// of one patient shifts by the same offset.
    Patient,
}

/// The `parameters` object.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Parameters {
    /// `dateShiftKey` (`None` when absent or empty).
    pub date_shift_key: Option<String>,
    /// `dateShiftScope`.
    pub date_shift_scope: DateShiftScope,
    /// `dateShiftFixedOffsetInDays`: when set, every date shifts by this many days.
    pub date_shift_fixed_offset_in_days: Option<i64>,
    /// `cryptoHashKey` (`None` when absent or empty).
    pub crypto_hash_key: Option<String>,
    /// `encryptKey`: 16, 24 or 32 bytes of UTF-8 (`None` when absent or empty).
    pub encrypt_key: Option<String>,
    /// `enablePartialAgesForRedact`: redact only ages over 89.
    pub enable_partial_ages_for_redact: bool,
    /// `enablePartialDatesForRedact`: redact dates to their year (nothing when over 89 years).
    pub enable_partial_dates_for_redact: bool,
    /// `enablePartialZipCodesForRedact`: keep the first 3 characters of postal codes.
    pub enable_partial_zip_codes_for_redact: bool,
    /// `restrictedZipCodeTabulationAreas`: 3-digit prefixes whose postal codes become all zeros.
    pub restricted_zip_code_tabulation_areas: Vec<String>,
    /// Haven's `enableReferenceHashForUris`: `cryptoHash` treats every `uri` value
    /// (`Bundle.entry.fullUrl`, `Bundle.entry.request.url`) like `Reference.reference`, hashing
    /// only the id, so `urn:uuid:` references still point at their entries. Off by default (the
    /// original hashes such values whole); other tools ignore the key.
    pub enable_reference_hash_for_uris: bool,
    /// Haven's settings of the `scrub` method.
    pub scrub: ScrubSettings,
    /// Haven's `validOutput`: every method writes only what the element's type allows, so the
    /// output is valid FHIR R4 (see `Engine`). Off by default, where the output is Microsoft's
    /// byte for byte; on in Haven's presets.
    pub valid_output: bool,
}

/// A key a configuration may need.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyKind {
    /// `dateShiftKey`.
    DateShift,
    /// `cryptoHashKey`.
    CryptoHash,
    /// `encryptKey`.
    Encrypt,
}

impl KeyKind {
    /// The parameter's name in the configuration.
    pub fn parameter(self) -> &'static str {
        match self {
            KeyKind::DateShift => "dateShiftKey",
            KeyKind::CryptoHash => "cryptoHashKey",
            KeyKind::Encrypt => "encryptKey",
        }
    }
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.parameter())
    }
}

impl Config {
    /// Parses a configuration from JSON text (a leading byte-order mark is accepted).
    pub fn from_json(text: &str) -> Result<Config> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let root: Value = serde_json::from_str(text).map_err(|e| {
            Error::config(format!(
                "not valid JSON (line {}, column {})",
                e.line(),
                e.column()
            ))
        })?;
        if let Some(pointer) = crate::json::find_duplicate_key(text) {
            return Err(Error::config(format!("duplicate key at {pointer}")));
        }
        Config::from_value(&root)
    }

    /// Parses a configuration from JSON bytes (UTF-8, optionally with a byte-order mark).
    pub fn from_slice(bytes: &[u8]) -> Result<Config> {
        let text = std::str::from_utf8(bytes)
            .map_err(|e| Error::config(format!("not UTF-8 (byte {})", e.valid_up_to())))?;
        Config::from_json(text)
    }

    fn from_value(root: &Value) -> Result<Config> {
        let root = root
            .as_object()
            .ok_or_else(|| Error::config("the configuration must be a JSON object"))?;
        let fhir_version = match root.get("fhirVersion") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.is_empty() => None,
            Some(Value::String(s)) if s.eq_ignore_ascii_case("R4") => Some(s.clone()),
            Some(Value::String(s)) => {
                return Err(Error::config(format!(
                    "fhirVersion `{s}` is not supported: Haven de-identifies FHIR R4 only"
                )));
            }
            Some(_) => return Err(Error::config("fhirVersion must be a string")),
        };
        let processing_errors = match root.get("processingErrors") {
            None | Some(Value::Null) => ProcessingErrors::Raise,
            Some(Value::String(s)) if s.eq_ignore_ascii_case("raise") => ProcessingErrors::Raise,
            Some(Value::String(s)) if s.eq_ignore_ascii_case("skip") => ProcessingErrors::Skip,
            Some(_) => {
                return Err(Error::config(
                    "processingErrors must be \"raise\" or \"skip\"",
                ));
            }
        };
        let rules = match root.get("fhirPathRules") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(rules)) => rules
                .iter()
                .enumerate()
                .map(|(i, r)| parse_rule(i, r))
                .collect::<Result<Vec<_>>>()?,
            Some(_) => return Err(Error::config("fhirPathRules must be an array")),
        };
        let parameters = match root.get("parameters") {
            None | Some(Value::Null) => Parameters::default(),
            Some(Value::Object(p)) => parse_parameters(p)?,
            Some(_) => return Err(Error::config("parameters must be an object")),
        };
        Ok(Config {
            fhir_version,
            processing_errors,
            rules,
            parameters,
        })
    }

    /// The keys this configuration's rules need that are not set, each with the index of the
    /// first rule needing it. `dateShiftKey` is not needed when a fixed offset is set.
    pub fn missing_keys(&self) -> Vec<(KeyKind, usize)> {
        let p = &self.parameters;
        let mut missing: Vec<(KeyKind, usize)> = Vec::new();
        for (i, rule) in self.rules.iter().enumerate() {
            let no_date_shift_key =
                p.date_shift_key.is_none() && p.date_shift_fixed_offset_in_days.is_none();
            let kind = match rule.method {
                Method::DateShift if no_date_shift_key => KeyKind::DateShift,
                Method::Scrub if no_date_shift_key && p.scrub.dates == ScrubDates::Shift => {
                    KeyKind::DateShift
                }
                Method::CryptoHash if p.crypto_hash_key.is_none() => KeyKind::CryptoHash,
                Method::Encrypt if p.encrypt_key.is_none() => KeyKind::Encrypt,
                _ => continue,
            };
            if !missing.iter().any(|(k, _)| *k == kind) {
                missing.push((kind, i));
            }
        }
        missing
    }

    /// Fills every missing key the rules need with a fresh random key (32 hexadecimal
    /// characters, so `encryptKey` is AES-256) and returns which keys were generated. Output made
    /// with generated keys cannot be linked to any other run unless the caller stores the keys.
    pub fn generate_missing_keys(&mut self) -> Vec<KeyKind> {
        use rand::RngExt;
        let missing: Vec<KeyKind> = self.missing_keys().into_iter().map(|(k, _)| k).collect();
        let mut rng = rand::rng();
        for kind in &missing {
            let key = hex::encode(rng.random::<[u8; 16]>());
            let slot = match kind {
                KeyKind::DateShift => &mut self.parameters.date_shift_key,
                KeyKind::CryptoHash => &mut self.parameters.crypto_hash_key,
                KeyKind::Encrypt => &mut self.parameters.encrypt_key,
            };
            *slot = Some(key);
        }
        missing
    }

    /// A fingerprint of the keys set (16 hexadecimal characters of a SHA-256 over them), to
    /// tell runs made with the same keys apart from others without revealing any key; `None`
    /// when no key is set.
    pub fn key_id(&self) -> Option<String> {
        use sha2::{Digest, Sha256};
        let parameters = &self.parameters;
        let keys = [
            &parameters.date_shift_key,
            &parameters.crypto_hash_key,
            &parameters.encrypt_key,
        ];
        if keys.iter().all(|key| key.is_none()) {
            return None;
        }
        let mut hash = Sha256::new();
        hash.update(b"haven key id\0");
        for key in keys {
            match key {
                Some(key) => {
                    hash.update((key.len() as u64).to_le_bytes());
                    hash.update(key.as_bytes());
                }
                None => hash.update(u64::MAX.to_le_bytes()),
            }
        }
        Some(hex::encode(&hash.finalize()[..8]))
    }

    /// Sets a key (an empty string unsets it), checking an encryption key's length.
    pub fn set_key(&mut self, kind: KeyKind, key: &str) -> Result<()> {
        let value = (!key.is_empty()).then(|| key.to_string());
        match kind {
            KeyKind::DateShift => self.parameters.date_shift_key = value,
            KeyKind::CryptoHash => self.parameters.crypto_hash_key = value,
            KeyKind::Encrypt => {
                if let Some(k) = &value {
                    check_encrypt_key(k)?;
                }
                self.parameters.encrypt_key = value;
            }
        }
        Ok(())
    }
}

fn check_encrypt_key(key: &str) -> Result<()> {
    match key.len() {
        16 | 24 | 32 => Ok(()),
        n => Err(Error::config(format!(
            "invalid encryptKey size: {} bits (AES needs 128, 192 or 256 bits of UTF-8)",
            n * 8
        ))),
    }
}

fn parse_rule(index: usize, rule: &Value) -> Result<Rule> {
    let obj = rule
        .as_object()
        .ok_or_else(|| Error::config(format!("rule {index} is not a JSON object")))?;
    let path = match obj.get("path") {
        Some(Value::String(p)) if !p.trim().is_empty() => p.clone(),
        _ => {
            return Err(Error::config(format!(
                "rule {index} has no `path` (a non-empty FHIRPath string is required)"
            )));
        }
    };
    if let Err(e) = fhirpath::Expression::parse(&path) {
        return Err(Error::rule_config(
            index,
            &path,
            format!("invalid FHIRPath: {e}"),
        ));
    }
    let method_name = match obj.get("method") {
        Some(Value::String(m)) => m.as_str(),
        _ => return Err(Error::rule_config(index, &path, "has no `method`")),
    };
    let err = |message: &str| Error::rule_config(index, &path, message);
    let method = match method_name.to_ascii_lowercase().as_str() {
        "keep" => Method::Keep,
        "redact" => Method::Redact,
        "dateshift" => Method::DateShift,
        "cryptohash" => Method::CryptoHash,
        "encrypt" => Method::Encrypt,
        "substitute" => match obj.get("replaceWith") {
            None => return Err(err("substitute needs `replaceWith`")),
            Some(Value::Array(_)) => {
                return Err(err("`replaceWith` must be a string, a JSON object or null"));
            }
            Some(v) => Method::Substitute {
                replace_with: v.clone(),
            },
        },
        "perturb" => Method::Perturb(parse_perturb(obj).map_err(|m| err(&m))?),
        "generalize" => Method::Generalize(parse_generalize(obj).map_err(|m| err(&m))?),
        "scrub" => Method::Scrub,
        _ => {
            return Err(Error::rule_config(
                index,
                &path,
                format!(
                    "unknown method `{method_name}` (expected keep, redact, dateShift, cryptoHash, \
                     encrypt, substitute, perturb, generalize or scrub)"
                ),
            ));
        }
    };
    Ok(Rule { path, method })
}

/// A setting given as a JSON number or as a string holding one, as the original accepts.
fn number_text(v: &Value) -> Option<String> {
    match v {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.trim().to_string()),
        _ => None,
    }
}

fn parse_decimal(text: &str) -> Option<Decimal> {
    text.parse::<Decimal>()
        .ok()
        .or_else(|| Decimal::from_scientific(text).ok())
}

fn parse_perturb(obj: &Map<String, Value>) -> std::result::Result<PerturbSettings, String> {
    let span = obj.get("span").ok_or("perturb needs `span`")?;
    let span = number_text(span)
        .and_then(|t| parse_decimal(&t))
        .ok_or("perturb `span` must be a number")?;
    if span.is_sign_negative() && !span.is_zero() {
        return Err("perturb `span` must not be negative".into());
    }
    let range_type = match obj.get("rangeType") {
        None | Some(Value::Null) => RangeType::Fixed,
        Some(Value::String(s)) if s.eq_ignore_ascii_case("fixed") => RangeType::Fixed,
        Some(Value::String(s)) if s.eq_ignore_ascii_case("proportional") => RangeType::Proportional,
        Some(_) => return Err("perturb `rangeType` must be \"fixed\" or \"proportional\"".into()),
    };
    let round_to = match obj.get("roundTo") {
        None | Some(Value::Null) => 2,
        Some(v) => {
            let d = number_text(v)
                .and_then(|t| parse_decimal(&t))
                .ok_or("perturb `roundTo` must be an integer from 0 to 28")?;
            if !d.fract().is_zero() || d < Decimal::ZERO || d > Decimal::from(28) {
                return Err("perturb `roundTo` must be an integer from 0 to 28".into());
            }
            u32::try_from(d.mantissa() / 10i128.pow(d.scale())).unwrap_or(0)
        }
    };
    Ok(PerturbSettings {
        span,
        range_type,
        round_to,
    })
}

fn parse_generalize(obj: &Map<String, Value>) -> std::result::Result<GeneralizeSettings, String> {
    let cases = match obj.get("cases") {
        Some(Value::Object(cases)) => cases,
        Some(_) => return Err("generalize `cases` must be a JSON object".into()),
        None => return Err("generalize needs `cases`".into()),
    };
    let mut out = Vec::with_capacity(cases.len());
    for (predicate, value) in cases {
        let Value::String(value) = value else {
            return Err(format!(
                "generalize case `{predicate}`: the value must be a FHIRPath string"
            ));
        };
        if let Err(e) = fhirpath::Expression::parse(predicate) {
            return Err(format!(
                "generalize case `{predicate}` is not valid FHIRPath: {e}"
            ));
        }
        if let Err(e) = fhirpath::Expression::parse(value) {
            return Err(format!(
                "generalize case `{predicate}`: value `{value}` is not valid FHIRPath: {e}"
            ));
        }
        out.push((predicate.clone(), value.clone()));
    }
    let other_values = match obj.get("otherValues") {
        None | Some(Value::Null) => OtherValues::Redact,
        Some(Value::String(s)) if s.eq_ignore_ascii_case("redact") => OtherValues::Redact,
        Some(Value::String(s)) if s.eq_ignore_ascii_case("keep") => OtherValues::Keep,
        Some(_) => return Err("generalize `otherValues` must be \"redact\" or \"keep\"".into()),
    };
    Ok(GeneralizeSettings {
        cases: out,
        other_values,
    })
}

fn key_param(p: &Map<String, Value>, name: &str) -> Result<Option<String>> {
    match p.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(Error::config(format!("parameters.{name} must be a string"))),
    }
}

fn bool_param(p: &Map<String, Value>, name: &str) -> Result<bool> {
    match p.get(name) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(true),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(false),
        Some(_) => Err(Error::config(format!(
            "parameters.{name} must be true or false"
        ))),
    }
}

fn parse_parameters(p: &Map<String, Value>) -> Result<Parameters> {
    let date_shift_scope = match p.get("dateShiftScope") {
        None | Some(Value::Null) => DateShiftScope::Resource,
        Some(Value::String(s)) => match s.to_ascii_lowercase().as_str() {
            "resource" => DateShiftScope::Resource,
            "file" => DateShiftScope::File,
            "folder" => DateShiftScope::Folder,
            "patient" => DateShiftScope::Patient,
            _ => {
                return Err(Error::config(
                    "parameters.dateShiftScope must be resource, file, folder or patient",
                ));
            }
        },
        Some(_) => return Err(Error::config("parameters.dateShiftScope must be a string")),
    };
    let date_shift_fixed_offset_in_days = match p.get("dateShiftFixedOffsetInDays") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            number_text(v)
                .and_then(|t| t.parse::<i64>().ok())
                .ok_or_else(|| {
                    Error::config("parameters.dateShiftFixedOffsetInDays must be an integer")
                })?,
        ),
    };
    let encrypt_key = key_param(p, "encryptKey")?;
    if let Some(k) = &encrypt_key {
        check_encrypt_key(k)?;
    }
    let restricted_zip_code_tabulation_areas = match p.get("restrictedZipCodeTabulationAreas") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| i.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| {
                Error::config("parameters.restrictedZipCodeTabulationAreas must hold strings")
            })?,
        Some(_) => {
            return Err(Error::config(
                "parameters.restrictedZipCodeTabulationAreas must be an array of strings",
            ));
        }
    };
    Ok(Parameters {
        date_shift_key: key_param(p, "dateShiftKey")?,
        date_shift_scope,
        date_shift_fixed_offset_in_days,
        crypto_hash_key: key_param(p, "cryptoHashKey")?,
        encrypt_key,
        enable_partial_ages_for_redact: bool_param(p, "enablePartialAgesForRedact")?,
        enable_partial_dates_for_redact: bool_param(p, "enablePartialDatesForRedact")?,
        enable_partial_zip_codes_for_redact: bool_param(p, "enablePartialZipCodesForRedact")?,
        restricted_zip_code_tabulation_areas,
        enable_reference_hash_for_uris: bool_param(p, "enableReferenceHashForUris")?,
        scrub: parse_scrub(p)?,
        valid_output: bool_param(p, "validOutput")?,
    })
}

/// A list of names given as a JSON array of strings, each read by `read`.
fn name_list<T>(
    p: &Map<String, Value>,
    key: &str,
    what: &str,
    read: impl Fn(&str) -> Option<T>,
) -> Result<Option<Vec<T>>> {
    match p.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| {
                item.as_str()
                    .and_then(&read)
                    .ok_or_else(|| Error::config(format!("parameters.{key} must list {what}")))
            })
            .collect::<Result<Vec<T>>>()
            .map(Some),
        Some(_) => Err(Error::config(format!(
            "parameters.{key} must be an array of {what}"
        ))),
    }
}

fn parse_scrub(p: &Map<String, Value>) -> Result<ScrubSettings> {
    let mut settings = ScrubSettings::default();
    if let Some(layers) = name_list(
        p,
        "scrubLayers",
        "record, patterns or names",
        scrub::Layer::from_name,
    )? {
        settings.layers = scrub::Layers {
            record: layers.contains(&scrub::Layer::Record),
            patterns: layers.contains(&scrub::Layer::Pattern),
            names: layers.contains(&scrub::Layer::Lexicon),
        };
    }
    settings.dates = match p.get("scrubDates") {
        None | Some(Value::Null) => ScrubDates::Year,
        Some(Value::String(s)) if s.eq_ignore_ascii_case("year") => ScrubDates::Year,
        Some(Value::String(s)) if s.eq_ignore_ascii_case("shift") => ScrubDates::Shift,
        Some(Value::String(s)) if s.eq_ignore_ascii_case("keep") => ScrubDates::Keep,
        Some(_) => {
            return Err(Error::config(
                "parameters.scrubDates must be year, shift or keep",
            ));
        }
    };
    let kinds = scrub::Kind::ALL.map(scrub::Kind::name).join(", ");
    if let Some(keep) = name_list(
        p,
        "scrubKeep",
        &format!("kinds ({kinds})"),
        scrub::Kind::from_name,
    )? {
        settings.keep = keep;
    }
    Ok(settings)
}
