//! Parsing FHIR reference strings (`Reference.reference`).
//!
//! A resource type counts only if it is a concrete R4 resource type
//! ([`types::is_concrete_resource_type`]) and ids and versions must match the FHIR id syntax
//! `[A-Za-z0-9\-\.]{1,64}`; anything that does not fit a known form is [`Reference::Other`].

use crate::types;

/// A parsed reference string, borrowing from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reference<'a> {
    /// `Patient/123` or `Patient/123/_history/2`.
    Relative {
        /// The target's resource type.
        resource_type: &'static str,
        /// The target's logical id.
        id: &'a str,
        /// The version id after `/_history/`, if any.
        version: Option<&'a str>,
    },
    /// `https://example.org/fhir/Patient/123` (optionally with `/_history/2`).
    Absolute {
        /// The service base URL, without a trailing slash (`https://example.org/fhir`).
        base: &'a str,
        /// The target's resource type.
        resource_type: &'static str,
        /// The target's logical id.
        id: &'a str,
        /// The version id after `/_history/`, if any.
        version: Option<&'a str>,
    },
    /// `#p1`: a contained resource (the id after `#`; empty for `#`, the container itself).
    Contained(&'a str),
    /// `urn:uuid:…`: the UUID, without the `urn:uuid:` prefix.
    Uuid(&'a str),
    /// `urn:oid:…`: the OID, without the `urn:oid:` prefix.
    Oid(&'a str),
    /// `Patient?identifier=x|1`: a conditional reference (in transactions).
    Conditional {
        /// The resource type searched.
        resource_type: &'static str,
        /// The search query after `?`.
        query: &'a str,
    },
    /// Anything else (logical URLs, malformed or unknown types); the whole string.
    Other(&'a str),
}

/// Whether `s` matches the FHIR id syntax `[A-Za-z0-9\-\.]{1,64}`.
pub fn is_valid_id(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

fn is_oid(s: &str) -> bool {
    let mut arcs = s.split('.');
    let first_ok = matches!(arcs.next(), Some("0" | "1" | "2"));
    let mut count = 0;
    let rest_ok = arcs.all(|arc| {
        count += 1;
        !arc.is_empty()
            && arc.bytes().all(|b| b.is_ascii_digit())
            && (arc == "0" || !arc.starts_with('0'))
    });
    first_ok && rest_ok && count > 0
}

fn resource_type(s: &str) -> Option<&'static str> {
    types::intern(s).filter(|t| types::is_concrete_resource_type(t))
}

/// Splits `…/Type/id[/_history/version]` into (prefix, type, id, version).
fn split_tail(s: &str) -> Option<(&str, &'static str, &str, Option<&str>)> {
    let (rest, last) = s.rsplit_once('/')?;
    let (rest, id, version) = match rest.rsplit_once('/') {
        Some((before, "_history")) => {
            let (rest, id) = before.rsplit_once('/')?;
            (rest, id, Some(last))
        }
        _ => (rest, last, None),
    };
    let (prefix, type_name) = rest.rsplit_once('/').unwrap_or(("", rest));
    let resource_type = resource_type(type_name)?;
    let ids_ok = is_valid_id(id) && version.is_none_or(is_valid_id);
    ids_ok.then_some((prefix, resource_type, id, version))
}

/// Whether `base` looks like `scheme://host[/path]`.
fn is_base_url(base: &str) -> bool {
    base.split_once("://").is_some_and(|(scheme, rest)| {
        scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
            && !rest.is_empty()
            && !rest.starts_with('/')
    })
}

impl<'a> Reference<'a> {
    /// Classifies a reference string.
    pub fn parse(s: &'a str) -> Reference<'a> {
        if let Some(local) = s.strip_prefix('#') {
            if local.is_empty() || is_valid_id(local) {
                return Reference::Contained(local);
            }
        } else if let Some(uuid) = s.strip_prefix("urn:uuid:") {
            if is_uuid(uuid) {
                return Reference::Uuid(uuid);
            }
        } else if let Some(oid) = s.strip_prefix("urn:oid:") {
            if is_oid(oid) {
                return Reference::Oid(oid);
            }
        } else if let Some((type_name, query)) = s.split_once('?')
            && let Some(resource_type) = resource_type(type_name)
        {
            return Reference::Conditional {
                resource_type,
                query,
            };
        } else if s.contains("://") {
            if !s.contains(['?', '#'])
                && let Some((base, resource_type, id, version)) = split_tail(s)
                && is_base_url(base)
            {
                return Reference::Absolute {
                    base,
                    resource_type,
                    id,
                    version,
                };
            }
        } else if let Some(("", resource_type, id, version)) = split_tail(s) {
            return Reference::Relative {
                resource_type,
                id,
                version,
            };
        }
        Reference::Other(s)
    }

    /// The target's resource type, when the reference names one (relative, absolute,
    /// conditional).
    pub fn resource_type(&self) -> Option<&'static str> {
        match self {
            Reference::Relative { resource_type, .. }
            | Reference::Absolute { resource_type, .. }
            | Reference::Conditional { resource_type, .. } => Some(resource_type),
            _ => None,
        }
    }

    /// The target's logical id (relative and absolute references).
    pub fn id(&self) -> Option<&'a str> {
        match self {
            Reference::Relative { id, .. } | Reference::Absolute { id, .. } => Some(id),
            _ => None,
        }
    }

    /// The version id of a versioned relative or absolute reference.
    pub fn version(&self) -> Option<&'a str> {
        match self {
            Reference::Relative { version, .. } | Reference::Absolute { version, .. } => *version,
            _ => None,
        }
    }
}

/// Classifies a reference string; the same as [`Reference::parse`].
pub fn parse(s: &str) -> Reference<'_> {
    Reference::parse(s)
}
