//! `scrub` (a Haven method): free text is kept, and every identifier found in it is replaced
//! by a typed placeholder, by the `scrub` crate's three layers.
//!
//! What it does to a value depends on the element's type:
//! - `string`, `markdown`, `uri`, `url`: the text is scrubbed;
//! - `xhtml` (a narrative's `div`): its text and text attributes are scrubbed and it stays
//!   well-formed; a `div` that is not well-formed XHTML is dropped;
//! - `base64Binary` (an attachment's or a Binary's `data`): decoded and scrubbed when its
//!   `contentType` is text (`text/*`, XML, JSON), then encoded again, with the attachment's
//!   `size` updated and its `hash` removed; data of any other type, or that does not decode
//!   to UTF-8 text, is dropped (with the `hash`), as nothing in it could be checked; other
//!   `base64Binary` values (a `hash`, a signature's `data`) are dropped too;
//! - every other type (codes, ids, numbers, dates) is left as it is: pair `scrub` with the
//!   rules for dates and identifiers.

use base64::Engine as _;
use serde_json::Value;

use crate::config::ScrubSettings;

/// The scrubber of a configuration over `dictionary`.
pub(crate) fn scrubber(settings: &ScrubSettings, dictionary: scrub::Dictionary) -> scrub::Scrubber {
    scrub::Scrubber::new(
        dictionary,
        scrub::Settings {
            layers: settings.layers,
            keep: settings.keep.clone(),
        },
    )
}

/// The identifiers a resource holds itself (its people, contained people, a Bundle's
/// entries), or `None` when it holds none.
pub(crate) fn local_dictionary(resource: &Value) -> Option<scrub::Dictionary> {
    let obj = resource.as_object()?;
    let resource_type = obj
        .get("resourceType")
        .and_then(Value::as_str)
        .unwrap_or("");
    let worth = scrub::Identities::collects(resource_type)
        || resource_type == "Bundle"
        || obj.get("contained").is_some();
    if !worth {
        return None;
    }
    let mut identities = scrub::Identities::default();
    identities.add_resource(resource);
    (!identities.is_empty()).then(|| identities.build())
}

/// What `scrub` did to one value.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Nothing was found (or the type is not text).
    Unchanged,
    /// The value is replaced: its new JSON string, the spans replaced (in the text as it came
    /// in, decoded for base64), and for base64 data the new decoded length in bytes.
    Replaced {
        value: String,
        spans: Vec<scrub::Span>,
        decoded_len: Option<usize>,
    },
    /// The value could not be read as text and must go.
    Dropped,
}

/// How the content of a `base64Binary` is read, by its content type.
enum Content {
    Text,
    Markup,
    Unreadable,
}

fn content(content_type: Option<&str>) -> Content {
    let Some(content_type) = content_type else {
        return Content::Unreadable;
    };
    let media = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match media.as_str() {
        "text/html" | "application/xhtml+xml" | "text/xml" | "application/xml" => Content::Markup,
        m if m.starts_with("text/") => Content::Text,
        "application/json" | "application/fhir+json" | "application/x-ndjson" => Content::Text,
        m if m.ends_with("+xml") => Content::Markup,
        _ => Content::Unreadable,
    }
}

/// Scrubs one value of FHIR type `ty` under the JSON key `key` (`content_type` is the sibling
/// `contentType`, for base64 `data`).
pub(crate) fn scrub_value(
    scrubber: &scrub::Scrubber,
    ty: &str,
    key: &str,
    text: &str,
    content_type: Option<&str>,
    context: &scrub::Context<'_>,
) -> Outcome {
    let replaced = |s: scrub::Scrubbed| Outcome::Replaced {
        value: s.text,
        spans: s.spans,
        decoded_len: None,
    };
    match ty {
        "string" | "markdown" | "uri" | "url" => scrubber
            .text(text, context)
            .map_or(Outcome::Unchanged, replaced),
        "xhtml" => match scrubber.xhtml(text, context) {
            Ok(found) => found.map_or(Outcome::Unchanged, replaced),
            Err(_) => Outcome::Dropped,
        },
        "base64Binary" => {
            // Only `data` is content; other base64 values (an attachment's `hash`, a signature)
            // are not text, and a hash of identified content could confirm a guess.
            let reading = if key == "data" {
                content(content_type)
            } else {
                Content::Unreadable
            };
            if matches!(reading, Content::Unreadable) {
                return Outcome::Dropped;
            }
            let Some(decoded) = base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok())
            else {
                return Outcome::Dropped;
            };
            let found = match reading {
                Content::Markup => scrubber.html(&decoded, context),
                _ => scrubber.text(&decoded, context),
            };
            match found {
                Some(s) => Outcome::Replaced {
                    value: base64::engine::general_purpose::STANDARD.encode(s.text.as_bytes()),
                    decoded_len: Some(s.text.len()),
                    spans: s.spans,
                },
                None => Outcome::Unchanged,
            }
        }
        _ => Outcome::Unchanged,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scrubber() -> scrub::Scrubber {
        let mut ids = scrub::Identities::default();
        ids.add_resource(&serde_json::json!({
            "resourceType": "Patient", "name": [{"family": "Pryce", "given": ["Annabel"]}]
        }));
        super::scrubber(&ScrubSettings::default(), ids.build())
    }

    #[test]
    fn text_attachments_are_scrubbed_and_binary_ones_dropped() {
        let s = scrubber();
        let ctx = scrub::Context::default();
        let data =
            base64::engine::general_purpose::STANDARD.encode("Annabel Pryce, seen 2021-03-04");
        match scrub_value(
            &s,
            "base64Binary",
            "data",
            &data,
            Some("text/plain; charset=utf-8"),
            &ctx,
        ) {
            Outcome::Replaced {
                value,
                decoded_len,
                spans,
            } => {
                let text = base64::engine::general_purpose::STANDARD
                    .decode(value)
                    .unwrap();
                assert_eq!(String::from_utf8(text).unwrap(), "[NAME], seen 2021");
                assert_eq!(decoded_len, Some(17));
                assert_eq!(spans.len(), 2);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            scrub_value(&s, "base64Binary", "hash", &data, Some("text/plain"), &ctx),
            Outcome::Dropped
        ));
        assert!(matches!(
            scrub_value(&s, "base64Binary", "data", &data, Some("image/png"), &ctx),
            Outcome::Dropped
        ));
        assert!(matches!(
            scrub_value(&s, "base64Binary", "data", "%%%", Some("text/plain"), &ctx),
            Outcome::Dropped
        ));
        assert!(matches!(
            scrub_value(&s, "xhtml", "div", "<div>Annabel", None, &ctx),
            Outcome::Dropped
        ));
        assert!(matches!(
            scrub_value(&s, "code", "code", "Annabel", None, &ctx),
            Outcome::Unchanged
        ));
    }
}
