//! Security labels: each de-identified resource (not contained ones) says in `meta.security`
//! what was done to it, with HL7 v3 ObservationValue codes, in a fixed order.

use std::sync::LazyLock;

use serde_json::{Map, Value, json};

use crate::methods::Operation;

const V3: &str = "http://terminology.hl7.org/CodeSystem/v3-ObservationValue";

/// The coding of every operation, by [`Operation::ALL`] position, built once.
static CODINGS: LazyLock<Vec<Value>> =
    LazyLock::new(|| Operation::ALL.iter().map(|&op| coding(op)).collect());

/// The code of an operation's coding.
fn code(op: Operation) -> &'static str {
    match op {
        Operation::Redact => "REDACTED",
        Operation::Abstract => "ABSTRED",
        Operation::CryptoHash => "CRYTOHASH",
        Operation::Encrypt => "MASKED",
        Operation::Perturb => "PERTURBED",
        Operation::Substitute => "SUBSTITUTED",
        Operation::Generalize => "GENERALIZED",
    }
}

/// The coding appended to `meta.security` for an operation.
pub fn coding(op: Operation) -> Value {
    let code = code(op);
    match op {
        Operation::Redact => json!({"system": V3, "code": code, "display": "redacted"}),
        Operation::Abstract => json!({"system": V3, "code": code, "display": "abstracted"}),
        Operation::CryptoHash => {
            json!({"system": V3, "code": code, "display": "cryptographic hash function"})
        }
        Operation::Encrypt => json!({"system": V3, "code": code, "display": "masked"}),
        Operation::Perturb => json!({
            "code": code,
            "display": "exact value is replaced with another exact value"
        }),
        Operation::Substitute => json!({
            "code": code,
            "display": "exact value is replaced with a predefined value"
        }),
        Operation::Generalize => json!({
            "code": code,
            "display": "exact value is replaced with a general value"
        }),
    }
}

/// Appends the labels of the operations in `ops` (a bit set of [`Operation::bit`]) to the
/// resource's `meta.security`, skipping codes already there (compared case-insensitively).
/// An existing `meta` keeps its place and its `lastUpdated` is written as the original tool
/// re-renders it (`Z` becomes `+00:00`, zero fractions go); a new `meta` is added last.
/// With `valid` (Haven's `validOutput`), every label names its code system, which Microsoft's
/// `PERTURBED`, `SUBSTITUTED` and `GENERALIZED` labels leave out.
pub(crate) fn add(resource: &mut Map<String, Value>, ops: u8, valid: bool) {
    if ops == 0 {
        return;
    }
    let meta = resource
        .entry("meta")
        .or_insert_with(|| Value::Object(Map::new()));
    if !meta.is_object() {
        *meta = Value::Object(Map::new());
    }
    let Value::Object(meta) = meta else {
        return;
    };
    if let Some(Value::String(last)) = meta.get_mut("lastUpdated")
        && let Some(rendered) = rerender_instant(last)
    {
        *last = rendered;
    }
    let security = meta
        .entry("security")
        .or_insert_with(|| Value::Array(Vec::new()));
    if !security.is_array() {
        *security = Value::Array(Vec::new());
    }
    let Value::Array(security) = security else {
        return;
    };
    for (&op, label) in Operation::ALL.iter().zip(CODINGS.iter()) {
        if ops & op.bit() == 0 {
            continue;
        }
        let code = code(op);
        let present = security.iter().any(|c| {
            c.get("code")
                .and_then(Value::as_str)
                .is_some_and(|existing| existing.eq_ignore_ascii_case(code))
        });
        if !present {
            let mut label = label.clone();
            if valid && label.get("system").is_none() {
                let mut coding = Map::new();
                coding.insert("system".into(), Value::String(V3.into()));
                if let Value::Object(rest) = label {
                    coding.extend(rest);
                }
                label = Value::Object(coding);
            }
            security.push(label);
        }
    }
}

/// An instant as .NET's `DateTimeOffset` writes it back (`yyyy-MM-ddTHH:mm:ss.FFFFFFFzzz`):
/// `2014-08-25T00:00:00Z` → `2014-08-25T00:00:00+00:00`, `…:00.500Z` → `…:00.5+00:00`.
fn rerender_instant(text: &str) -> Option<String> {
    let b = text.as_bytes();
    if b.len() < 20 || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (base, rest) = text.split_at(19);
    let (fraction, zone) = match rest.strip_prefix('.') {
        Some(f) => {
            let n = f.bytes().take_while(u8::is_ascii_digit).count();
            (&f[..n], &f[n..])
        }
        None => ("", rest),
    };
    let zone = match zone {
        "Z" => "+00:00",
        z if z.len() == 6 && matches!(z.as_bytes()[0], b'+' | b'-') => z,
        _ => return None,
    };
    let fraction = fraction.get(..7).unwrap_or(fraction).trim_end_matches('0');
    let dot = if fraction.is_empty() { "" } else { "." };
    Some(format!("{base}{dot}{fraction}{zone}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rerenders_like_dotnet() {
        assert_eq!(
            rerender_instant("2014-08-25T00:00:00Z").as_deref(),
            Some("2014-08-25T00:00:00+00:00")
        );
        assert_eq!(
            rerender_instant("2014-08-25T00:00:00.000-05:00").as_deref(),
            Some("2014-08-25T00:00:00-05:00")
        );
        assert_eq!(
            rerender_instant("2014-08-25T10:01:02.1230Z").as_deref(),
            Some("2014-08-25T10:01:02.123+00:00")
        );
        assert_eq!(rerender_instant("2014"), None);
    }

    #[test]
    fn appends_in_order_without_duplicates() {
        let mut r = json!({"resourceType": "Patient", "meta": {"versionId": "1",
            "security": [{"system": "s", "code": "redacted"}]}, "id": "x"});
        let ops =
            Operation::Generalize.bit() | Operation::Redact.bit() | Operation::CryptoHash.bit();
        add(r.as_object_mut().unwrap(), ops, false);
        let codes: Vec<&str> = r["meta"]["security"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["code"].as_str().unwrap())
            .collect();
        assert_eq!(codes, ["redacted", "CRYTOHASH", "GENERALIZED"]);
        assert_eq!(r.as_object().unwrap().keys().nth(1).unwrap(), "meta");

        let mut r = json!({"resourceType": "Patient", "id": "x"});
        add(r.as_object_mut().unwrap(), 0, false);
        assert!(r.get("meta").is_none());
        add(r.as_object_mut().unwrap(), Operation::Perturb.bit(), false);
        assert_eq!(r.as_object().unwrap().keys().next_back().unwrap(), "meta");
        assert_eq!(r["meta"]["security"][0], coding(Operation::Perturb));
    }
}
