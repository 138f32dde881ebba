//! Scrubbing inside markup: XHTML (FHIR narratives) and HTML (text attachments). Only text and
//! the attributes that hold text (`title`, `alt`, `href`, …) change; tags, structure and every
//! other attribute are copied byte for byte, so well-formed XHTML stays well-formed.

use std::fmt;

use crate::kind::Span;

/// Attributes whose values are text a person may have written (or a link that may name one).
const TEXT_ATTRIBUTES: [&str; 9] = [
    "title", "alt", "href", "src", "summary", "abbr", "label", "longdesc", "cite",
];

/// Why a narrative could not be scrubbed: it is not well-formed XHTML. Holds the position only,
/// never the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkupError {
    /// The line of the first error, from 1.
    pub line: u32,
    /// The column of the first error, from 1.
    pub column: u32,
}

impl fmt::Display for MarkupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "not well-formed XHTML (line {}, column {})",
            self.line, self.column
        )
    }
}

impl std::error::Error for MarkupError {}

/// Checks that `xhtml` is a well-formed XML document.
pub(crate) fn check_xhtml(xhtml: &str) -> Result<(), MarkupError> {
    let options = roxmltree::ParsingOptions {
        allow_dtd: false,
        ..roxmltree::ParsingOptions::default()
    };
    roxmltree::Document::parse_with_options(xhtml, options)
        .map(|_| ())
        .map_err(|e| {
            let position = e.pos();
            MarkupError {
                line: position.row,
                column: position.col,
            }
        })
}

/// Text decoded from markup, with the byte offset in the markup of each decoded byte (and one
/// past the end).
struct Decoded {
    text: String,
    offsets: Vec<usize>,
}

/// Decodes the character references of XML (`&amp;`, `&#233;`, `&#xE9;`); an unknown entity is
/// kept as written.
fn decode(raw: &str, base: usize) -> Decoded {
    let mut text = String::with_capacity(raw.len());
    let mut offsets = Vec::with_capacity(raw.len() + 1);
    let mut i = 0;
    while i < raw.len() {
        let rest = &raw[i..];
        let entity = rest
            .strip_prefix('&')
            .and_then(|r| r.find(';').filter(|&n| n <= 10).map(|n| (&r[..n], n + 2)));
        let decoded = entity.and_then(|(name, len)| {
            let c = match name {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                _ => name
                    .strip_prefix("#x")
                    .or_else(|| name.strip_prefix("#X"))
                    .and_then(|h| u32::from_str_radix(h, 16).ok())
                    .or_else(|| name.strip_prefix('#').and_then(|d| d.parse().ok()))
                    .and_then(char::from_u32),
            };
            c.map(|c| (c, len))
        });
        let (c, len) = decoded.unwrap_or_else(|| {
            let c = rest.chars().next().unwrap_or('\u{fffd}');
            (c, c.len_utf8())
        });
        for _ in 0..c.len_utf8() {
            offsets.push(base + i);
        }
        text.push(c);
        i += len;
    }
    offsets.push(base + raw.len());
    Decoded { text, offsets }
}

/// Escapes text for XML content or a double- or single-quoted attribute.
fn escape(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
}

/// Scrubs the text of `markup` with `scrub` (which returns the new text and its spans, or
/// `None` when nothing was found). Returns the new markup and the spans in the markup as it
/// came in, or `None` when nothing changed.
pub(crate) fn scrub<F>(markup: &str, mut scrub: F) -> Option<(String, Vec<Span>)>
where
    F: FnMut(&str) -> Option<(String, Vec<Span>)>,
{
    let mut out = String::with_capacity(markup.len());
    let mut spans = Vec::new();
    let mut changed = false;
    let mut pos = 0;
    while pos < markup.len() {
        let rest = &markup[pos..];
        if !rest.starts_with('<') {
            let end = rest.find('<').map_or(markup.len(), |n| pos + n);
            changed |= replace_text(&markup[pos..end], pos, &mut scrub, &mut out, &mut spans);
            pos = end;
            continue;
        }
        if let Some(body) = rest.strip_prefix("<!--") {
            let end = body.find("-->").map_or(markup.len(), |n| pos + 4 + n);
            out.push_str("<!--");
            changed |= replace_text(
                &markup[pos + 4..end],
                pos + 4,
                &mut scrub,
                &mut out,
                &mut spans,
            );
            out.push_str(&markup[end..(end + 3).min(markup.len())]);
            pos = (end + 3).min(markup.len());
            continue;
        }
        if let Some(body) = rest.strip_prefix("<![CDATA[") {
            let end = body.find("]]>").map_or(markup.len(), |n| pos + 9 + n);
            out.push_str("<![CDATA[");
            let raw = &markup[pos + 9..end];
            match scrub(raw) {
                Some((text, found)) => {
                    changed = true;
                    out.push_str(&text.replace("]]>", "]] >"));
                    spans.extend(found.into_iter().map(|s| Span {
                        start: s.start + pos + 9,
                        end: s.end + pos + 9,
                        ..s
                    }));
                }
                None => out.push_str(raw),
            }
            out.push_str(&markup[end..(end + 3).min(markup.len())]);
            pos = (end + 3).min(markup.len());
            continue;
        }
        let end = tag_end(rest).map_or(markup.len(), |n| pos + n);
        let tag = &markup[pos..end];
        if tag.starts_with("<?") || tag.starts_with("<!") || tag.starts_with("</") {
            out.push_str(tag);
        } else {
            let mut copied = pos;
            for (start, value_end) in text_attributes(tag) {
                let (start, value_end) = (pos + start, pos + value_end);
                out.push_str(&markup[copied..start]);
                changed |= replace_text(
                    &markup[start..value_end],
                    start,
                    &mut scrub,
                    &mut out,
                    &mut spans,
                );
                copied = value_end;
            }
            out.push_str(&markup[copied..end]);
        }
        pos = end;
    }
    changed.then_some((out, spans))
}

/// Scrubs one run of text or attribute value (`raw`, at `base` in the markup): decoded,
/// scrubbed, and escaped again when something was found; copied as it is otherwise. Returns
/// whether something was found.
fn replace_text<F>(
    raw: &str,
    base: usize,
    scrub: &mut F,
    out: &mut String,
    spans: &mut Vec<Span>,
) -> bool
where
    F: FnMut(&str) -> Option<(String, Vec<Span>)>,
{
    let decoded = decode(raw, base);
    match scrub(&decoded.text) {
        Some((text, found)) => {
            escape(&text, out);
            spans.extend(found.into_iter().map(|s| Span {
                start: decoded.offsets[s.start],
                end: decoded.offsets[s.end],
                ..s
            }));
            true
        }
        None => {
            out.push_str(raw);
            false
        }
    }
}

/// One past the `>` that ends the tag at the start of `rest` (quotes respected).
fn tag_end(rest: &str) -> Option<usize> {
    let mut quote: Option<u8> = None;
    for (i, b) in rest.bytes().enumerate() {
        match (quote, b) {
            (Some(q), b) if b == q => quote = None,
            (Some(_), _) => {}
            (None, b'"' | b'\'') => quote = Some(b),
            (None, b'>') => return Some(i + 1),
            _ => {}
        }
    }
    None
}

/// The byte ranges (within `tag`) of the values of its text-bearing attributes.
fn text_attributes(tag: &str) -> Vec<(usize, usize)> {
    let bytes = tag.as_bytes();
    let mut ranges = Vec::new();
    let mut i = 1;
    while i < bytes.len() && !bytes[i].is_ascii_whitespace() && bytes[i] != b'>' && bytes[i] != b'/'
    {
        i += 1;
    }
    loop {
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let name_start = i;
        while i < bytes.len()
            && !bytes[i].is_ascii_whitespace()
            && !matches!(bytes[i], b'=' | b'>' | b'/')
        {
            i += 1;
        }
        if i == name_start {
            return ranges;
        }
        let name = &tag[name_start..i];
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        if bytes.get(i) != Some(&b'=') {
            continue;
        }
        i += 1;
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let Some(&quote) = bytes.get(i).filter(|b| matches!(b, b'"' | b'\'')) else {
            // An unquoted value (HTML): up to the next blank.
            let start = i;
            while i < bytes.len() && !bytes[i].is_ascii_whitespace() && bytes[i] != b'>' {
                i += 1;
            }
            if TEXT_ATTRIBUTES.iter().any(|a| a.eq_ignore_ascii_case(name)) {
                ranges.push((start, i));
            }
            continue;
        };
        let start = i + 1;
        let Some(len) = tag[start..].find(quote as char) else {
            return ranges;
        };
        if TEXT_ATTRIBUTES.iter().any(|a| a.eq_ignore_ascii_case(name)) {
            ranges.push((start, start + len));
        }
        i = start + len + 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kind::{Kind, Layer};

    fn fake(text: &str) -> Option<(String, Vec<Span>)> {
        let at = text.find("Ann")?;
        let spans = vec![Span::new(at, at + 3, Kind::Name, Layer::Record)];
        Some((text.replace("Ann", "[NAME]"), spans))
    }

    #[test]
    fn text_and_text_attributes_change_and_nothing_else() {
        let xhtml = r#"<div xmlns="http://www.w3.org/1999/xhtml"><p class="Ann">Ann &amp; Bob</p><img alt='Ann' src="x.png"/><!-- Ann --></div>"#;
        check_xhtml(xhtml).unwrap();
        let (out, spans) = scrub(xhtml, fake).unwrap();
        assert_eq!(
            out,
            r#"<div xmlns="http://www.w3.org/1999/xhtml"><p class="Ann">[NAME] &amp; Bob</p><img alt='[NAME]' src="x.png"/><!-- [NAME] --></div>"#
        );
        check_xhtml(&out).unwrap();
        for span in spans {
            assert_eq!(&xhtml[span.start..span.end], "Ann");
        }
        assert!(scrub("<div>nothing</div>", fake).is_none());
    }

    #[test]
    fn entities_map_back_to_the_markup() {
        let (out, spans) = scrub("<p>&#65;nn said</p>", fake).unwrap();
        assert_eq!(out, "<p>[NAME] said</p>");
        assert_eq!(spans[0].start, 3);
        assert_eq!(spans[0].end, 10);
    }

    #[test]
    fn broken_xhtml_is_refused_with_its_position() {
        let error = check_xhtml("<div><p>Ann</div>").unwrap_err();
        assert_eq!(error.line, 1);
        assert!(!error.to_string().contains("Ann"));
    }
}
