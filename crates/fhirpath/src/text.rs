//! `encode`, `decode`, `escape` and `unescape`: base64, URL-safe base64, hex, HTML and JSON.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};

use crate::ast::Function;

/// Applies one of the four string transcoding functions; `None` for an unknown format or
/// undecodable input.
pub(crate) fn transcode(function: Function, format: &str, s: &str) -> Option<String> {
    match (function, format) {
        (Function::Encode, "base64") => Some(STANDARD.encode(s)),
        (Function::Encode, "urlbase64") => Some(URL_SAFE.encode(s)),
        (Function::Encode, "hex") => Some(s.bytes().map(|b| format!("{b:02x}")).collect()),
        (Function::Decode, "base64") => String::from_utf8(STANDARD.decode(s).ok()?).ok(),
        (Function::Decode, "urlbase64") => String::from_utf8(URL_SAFE.decode(s).ok()?).ok(),
        (Function::Decode, "hex") => {
            if !s.len().is_multiple_of(2) {
                return None;
            }
            let bytes: Option<Vec<u8>> = (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
                .collect();
            String::from_utf8(bytes?).ok()
        }
        (Function::Escape, "html") => Some(
            s.chars()
                .map(|c| match c {
                    '"' => "&quot;".to_string(),
                    '&' => "&amp;".to_string(),
                    '<' => "&lt;".to_string(),
                    '>' => "&gt;".to_string(),
                    '\'' => "&#39;".to_string(),
                    other => other.to_string(),
                })
                .collect(),
        ),
        (Function::Escape, "json") => {
            let quoted = serde_json::to_string(s).ok()?;
            Some(quoted[1..quoted.len() - 1].to_string())
        }
        (Function::Unescape, "html") => Some(
            s.replace("&quot;", "\"")
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&#39;", "'")
                .replace("&apos;", "'")
                .replace("&amp;", "&"),
        ),
        (Function::Unescape, "json") => Some(unescape_json(s)),
        _ => None,
    }
}

/// Resolves JSON backslash escapes; other characters pass through unchanged.
fn unescape_json(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some('b') => out.push('\u{8}'),
            Some('f') => out.push('\u{c}'),
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                if let Some(c) = u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                    out.push(c);
                }
            }
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}
