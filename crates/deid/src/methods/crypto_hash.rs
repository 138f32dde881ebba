//! `cryptoHash`: replaces a value by the lowercase hex HMAC-SHA256 of its text under
//! `cryptoHashKey`.
//!
//! `Reference.reference` values keep their shape so links still resolve: only the id is hashed
//! in `#id`, `Type/id`, `http(s)://…/Type/id/_history/v`, `urn:oid:…` and `urn:uuid:…`; any
//! other reference is hashed whole. Because the id of a resource and the id inside a reference
//! hash the same way, `Patient/123` still points at the Patient whose id was `123`.
//!
//! Under Haven's `validOutput`, [`Hasher::hash_reference_valid`] keeps every reference valid:
//! a base URL of any characters keeps its base and type, a hashed `urn:uuid:` is a UUID and a
//! hashed `urn:oid:` an OID, and a conditional reference keeps its type and parameter names
//! with their values hashed.

use hmac::{KeyInit, Mac};
use sha2::Sha256;

/// The lowercase hex HMAC-SHA256 of `text` under `key` (both UTF-8). The empty text stays empty.
pub fn hash(key: &str, text: &str) -> String {
    Hasher::new(key).hash(text)
}

/// A key made ready once (its HMAC pads hashed) for hashing many values.
#[derive(Clone)]
pub struct Hasher {
    mac: hmac::Hmac<Sha256>,
}

impl std::fmt::Debug for Hasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hasher(..)")
    }
}

impl Hasher {
    /// Prepares `key` (UTF-8).
    pub fn new(key: &str) -> Hasher {
        Hasher {
            mac: <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(key.as_bytes())
                .expect("HMAC accepts keys of any length"),
        }
    }

    /// The same as [`hash`] with this key.
    pub fn hash(&self, text: &str) -> String {
        if text.is_empty() {
            return String::new();
        }
        self.hash_into(String::with_capacity(64), text)
    }

    /// Appends the hash of `text` (not empty) to `out`.
    fn hash_into(&self, mut out: String, text: &str) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut mac = self.mac.clone();
        mac.update(text.as_bytes());
        for b in mac.finalize().into_bytes() {
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
        out
    }

    /// `prefix`, the hash of `id`, then `suffix`.
    fn wrap(&self, prefix: &str, id: &str, suffix: &str) -> String {
        if id.is_empty() {
            return [prefix, suffix].concat();
        }
        let mut out = String::with_capacity(prefix.len() + 64 + suffix.len());
        out.push_str(prefix);
        let mut out = self.hash_into(out, id);
        out.push_str(suffix);
        out
    }

    /// The HMAC-SHA256 of `text`.
    fn digest(&self, text: &str) -> [u8; 32] {
        let mut mac = self.mac.clone();
        mac.update(text.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// A reference hashed as [`Hasher::hash_reference`] does, keeping it a valid reference:
    /// `http(s)://any-base/Type/id` keeps base and type; `urn:uuid:U` becomes the UUID (version
    /// 8, RFC 9562) made of the first 16 bytes of the keyed hash of `U`; `urn:oid:O` becomes
    /// the OID `2.25.N` (the UUID arc) of those bytes; `Type?name=value&…` keeps its type and
    /// names, each value hashed ([`Hasher::hash_query`]).
    pub fn hash_reference_valid(&self, reference: &str) -> String {
        if let Some(local) = reference.strip_prefix('#') {
            return self.wrap("#", local, "");
        }
        if let Some((prefix, id, suffix)) = split_any_base(reference) {
            return self.wrap(prefix, id, suffix);
        }
        if let Some(uuid) = reference.strip_prefix("urn:uuid:")
            && is_uuid(uuid)
        {
            let mut bytes: [u8; 16] = self.digest(uuid)[..16].try_into().expect("16 bytes");
            bytes[6] = (bytes[6] & 0x0f) | 0x80;
            bytes[8] = (bytes[8] & 0x3f) | 0x80;
            let hex = hex::encode(bytes);
            return format!(
                "urn:uuid:{}-{}-{}-{}-{}",
                &hex[..8],
                &hex[8..12],
                &hex[12..16],
                &hex[16..20],
                &hex[20..]
            );
        }
        if let Some(oid) = reference.strip_prefix("urn:oid:")
            && is_oid(oid)
        {
            let bytes: [u8; 16] = self.digest(oid)[..16].try_into().expect("16 bytes");
            return format!("urn:oid:2.25.{}", u128::from_be_bytes(bytes));
        }
        if let Some((resource_type, query)) = reference.split_once('?')
            && fhir::types::resource_types()
                .binary_search(&resource_type)
                .is_ok()
        {
            return format!("{resource_type}?{}", self.hash_query(query));
        }
        self.hash(reference)
    }

    /// A search query (`identifier=http://sys|123&_count=1`, a conditional reference's or a
    /// Bundle entry's `ifNoneExist`) with every value hashed and the names kept; a part
    /// without `=` is hashed whole.
    pub fn hash_query(&self, query: &str) -> String {
        query
            .split('&')
            .map(|part| match part.split_once('=') {
                Some((name, value)) => format!("{name}={}", self.hash(value)),
                None => self.hash(part),
            })
            .collect::<Vec<_>>()
            .join("&")
    }

    /// The same as [`hash_reference`] with this key.
    pub fn hash_reference(&self, reference: &str) -> String {
        if let Some(local) = reference.strip_prefix('#') {
            return self.wrap("#", local, "");
        }
        if let Some((prefix, id, suffix)) = split_literal(reference) {
            return self.wrap(prefix, id, suffix);
        }
        if let Some(oid) = reference.strip_prefix("urn:oid:")
            && is_oid(oid)
        {
            return self.wrap("urn:oid:", oid, "");
        }
        if let Some(uuid) = reference.strip_prefix("urn:uuid:")
            && is_uuid(uuid)
        {
            return self.wrap("urn:uuid:", uuid, "");
        }
        self.hash(reference)
    }
}

fn is_id_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'-' || c == b'.'
}

fn is_id(s: &str) -> bool {
    (1..=64).contains(&s.len()) && s.bytes().all(is_id_char)
}

fn is_url_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'\\' | b'/' | b'.' | b':' | b'%' | b'$')
}

/// Whether `head` (everything before `/id`) is `[http(s)://urlchars*]ResourceType`.
fn is_reference_head(head: &str) -> bool {
    let types = fhir::types::resource_types();
    let base = head
        .strip_prefix("http://")
        .or_else(|| head.strip_prefix("https://"));
    match base {
        None => types.binary_search(&head).is_ok(),
        Some(rest) => {
            // The URL part is greedy in the original's expression, but any split that leaves a
            // resource type at the end gives the same result.
            (0..rest.len()).any(|i| {
                rest.is_char_boundary(i)
                    && rest.as_bytes()[..i].iter().all(|&c| is_url_char(c))
                    && types.binary_search(&&rest[i..]).is_ok()
            })
        }
    }
}

/// Splits a literal reference into (prefix up to and including `Type/`, id, `/_history/v`
/// suffix), following the original's expression.
fn split_literal(reference: &str) -> Option<(&str, &str, &str)> {
    let (body, suffix) = match reference.rfind("/_history/") {
        Some(at) if is_id(&reference[at + "/_history/".len()..]) => reference.split_at(at),
        _ => (reference, ""),
    };
    let slash = body.rfind('/')?;
    let (head, id) = (&body[..slash], &body[slash + 1..]);
    (is_id(id) && is_reference_head(head)).then_some((&body[..=slash], id, suffix))
}

/// Splits `[scheme://base/]Type/id[/_history/v]` with a base of any characters into (prefix up
/// to and including `Type/`, id, suffix).
fn split_any_base(reference: &str) -> Option<(&str, &str, &str)> {
    let (body, suffix) = match reference.rfind("/_history/") {
        Some(at) if is_id(&reference[at + "/_history/".len()..]) => reference.split_at(at),
        _ => (reference, ""),
    };
    let slash = body.rfind('/')?;
    let (head, id) = (&body[..slash], &body[slash + 1..]);
    let resource_type = head.rsplit('/').next().unwrap_or(head);
    let based = head.len() == resource_type.len()
        || (head.contains("://") && !head.contains(char::is_whitespace));
    let known = fhir::types::resource_types()
        .binary_search(&resource_type)
        .is_ok();
    (is_id(id) && known && based).then_some((&body[..=slash], id, suffix))
}

fn is_oid(s: &str) -> bool {
    let mut arcs = s.split('.');
    matches!(arcs.next(), Some("0" | "1" | "2"))
        && s.contains('.')
        && arcs.all(|a| {
            !a.is_empty()
                && a.bytes().all(|c| c.is_ascii_digit())
                && (a == "0" || !a.starts_with('0'))
        })
}

/// `8-4-4-4-12` hexadecimal digits.
fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.bytes().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// Hashes a `Reference.reference`, keeping its shape (see the module documentation).
pub fn hash_reference(key: &str, reference: &str) -> String {
    Hasher::new(key).hash_reference(reference)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_vectors() {
        assert_eq!(hash("123", ""), "");
        assert_eq!(
            hash("123", "abc"),
            "8f16771f9f8851b26f4d460fa17de93e2711c7e51337cb8a608a0f81e1c1b6ae"
        );
        assert_eq!(
            hash("123", "example"),
            "698d54f0494528a759f19c8e87a9f99e75a5881b9267ee3926bcf62c992d84ba"
        );
        for text in ["&*^%$@()=-,/", "ÆŊŋßſ♫∅", &"a".repeat(1000)] {
            let h = hash("123", text);
            assert_eq!(h.len(), 64);
            assert!(
                h.bytes()
                    .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
            );
        }
    }

    #[test]
    fn references_keep_their_shape() {
        let h = |s: &str| hash("123", s);
        let r = |s: &str| hash_reference("123", s);
        assert_eq!(
            r("Patient/example"),
            "Patient/698d54f0494528a759f19c8e87a9f99e75a5881b9267ee3926bcf62c992d84ba"
        );
        assert_eq!(r("#p1"), format!("#{}", h("p1")));
        assert_eq!(r("#"), "#");
        assert_eq!(
            r("http://example.org/fhir/Observation/apo89654/_history/2"),
            format!(
                "http://example.org/fhir/Observation/{}/_history/2",
                h("apo89654")
            )
        );
        assert_eq!(
            r("https://example.org/fhir/Patient/1"),
            format!("https://example.org/fhir/Patient/{}", h("1"))
        );
        assert_eq!(
            r("Patient/1/_history/3"),
            format!("Patient/{}/_history/3", h("1"))
        );
        assert_eq!(
            r("urn:uuid:aa2ed3d0-2b1c-4a8e-9a5e-3e0a8b7c1d2f"),
            format!("urn:uuid:{}", h("aa2ed3d0-2b1c-4a8e-9a5e-3e0a8b7c1d2f"))
        );
        assert_eq!(
            r("urn:oid:1.2.3.4.5"),
            format!("urn:oid:{}", h("1.2.3.4.5"))
        );
        // Hashed whole: not a reference shape the original recognises.
        for whole in [
            "034AB16",
            "Patient/AbcŴΉЙ",
            "ftp://example.org/Patient/1",
            "http://example.org/fhir/StructureDefinitionTest/1",
            "urn:oid:1.2.3=4.5",
            "http://my-server.org/Patient/1",
            "Unknown/1",
        ] {
            assert_eq!(r(whole), h(whole), "{whole}");
        }
    }

    #[test]
    fn valid_references_stay_valid() {
        let hasher = Hasher::new("123");
        let h = |s: &str| hash("123", s);
        let v = |s: &str| hasher.hash_reference_valid(s);
        assert_eq!(
            v("http://my-server.org/fhir-r4/Patient/1"),
            format!("http://my-server.org/fhir-r4/Patient/{}", h("1"))
        );
        assert_eq!(
            v("Patient/1/_history/2"),
            format!("Patient/{}/_history/2", h("1"))
        );
        let uuid = v("urn:uuid:aa2ed3d0-2b1c-4a8e-9a5e-3e0a8b7c1d2f");
        let body = uuid.strip_prefix("urn:uuid:").unwrap();
        assert!(is_uuid(body), "{uuid}");
        assert_eq!(&body[14..15], "8", "version 8");
        assert!(
            matches!(&body[19..20], "8" | "9" | "a" | "b"),
            "RFC 9562 variant"
        );
        assert_eq!(
            uuid,
            v("urn:uuid:aa2ed3d0-2b1c-4a8e-9a5e-3e0a8b7c1d2f"),
            "deterministic"
        );
        let oid = v("urn:oid:1.2.3.4.5");
        assert!(
            oid.starts_with("urn:oid:2.25.") && is_oid(&oid[8..]),
            "{oid}"
        );
        assert_eq!(
            v("Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|9999999619"),
            format!(
                "Practitioner?identifier={}",
                h("http://hl7.org/fhir/sid/us-npi|9999999619")
            )
        );
        assert_eq!(
            hasher.hash_query("identifier=a|1&name=x"),
            format!("identifier={}&name={}", h("a|1"), h("x"))
        );
        assert_eq!(v("#c1"), format!("#{}", h("c1")));
        assert_eq!(v("Unknown/1"), h("Unknown/1"));
    }
}
