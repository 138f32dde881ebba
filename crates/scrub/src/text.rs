//! The scrubber: runs the layers over a text, merges what they find, and writes the placeholders.

use std::sync::Arc;

use crate::dates::DateAction;
use crate::dictionary::Dictionary;
use crate::kind::{Kind, Layer, Span};
use crate::markup::{self, MarkupError};
use crate::{names, patterns};

/// Which layers run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layers {
    /// The record's own identifiers ([`Dictionary`]).
    pub record: bool,
    /// The patterns for identifiers that have a shape.
    pub patterns: bool,
    /// The name lexicon with its context cues.
    pub names: bool,
}

impl Default for Layers {
    /// Every layer.
    fn default() -> Layers {
        Layers {
            record: true,
            patterns: true,
            names: true,
        }
    }
}

/// How a [`Scrubber`] works: its layers, and the kinds it leaves in place.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    /// The layers that run.
    pub layers: Layers,
    /// Kinds that are not identifiers here and stay as written (a limited data set keeps
    /// dates, ZIP codes, cities and ages).
    pub keep: Vec<Kind>,
}

/// Per-text circumstances: the identifiers of the resource the text is in, and what becomes
/// of dates.
#[derive(Debug, Clone, Copy, Default)]
pub struct Context<'a> {
    /// The identifiers of the resource itself (its contained people), besides the run's.
    pub local: Option<&'a Dictionary>,
    /// What dates become.
    pub dates: DateAction,
}

/// A scrubbed text and what was replaced in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scrubbed {
    /// The text with every identifier replaced.
    pub text: String,
    /// What was replaced: byte ranges in the text as it came in, in order, not overlapping.
    pub spans: Vec<Span>,
}

/// Finds and replaces identifiers in text; built once per run and shared by every thread.
#[derive(Debug, Clone)]
pub struct Scrubber {
    dictionary: Arc<Dictionary>,
    settings: Settings,
    keep: u16,
}

impl Scrubber {
    /// A scrubber over the run's `dictionary` (which may be empty).
    pub fn new(dictionary: impl Into<Arc<Dictionary>>, settings: Settings) -> Scrubber {
        let keep = settings.keep.iter().fold(0, |bits, k| bits | k.bit());
        Scrubber {
            dictionary: dictionary.into(),
            settings,
            keep,
        }
    }

    /// How it works.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The run's dictionary.
    pub fn dictionary(&self) -> &Dictionary {
        &self.dictionary
    }

    /// Scrubs plain text (or markdown) with the default context: dates become their year.
    pub fn scrub(&self, text: &str) -> String {
        self.text(text, &Context::default())
            .map_or_else(|| text.to_string(), |s| s.text)
    }

    /// Scrubs plain text or markdown; `None` when nothing was found.
    pub fn text(&self, text: &str, context: &Context<'_>) -> Option<Scrubbed> {
        let spans = self.find(text, context);
        if spans.is_empty() {
            return None;
        }
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for span in &spans {
            out.push_str(&text[at..span.start]);
            match (span.kind, &span.date) {
                (Kind::Date, Some(date)) => out.push_str(&context.dates.replacement(date)),
                (kind, _) => out.push_str(kind.placeholder()),
            }
            at = span.end;
        }
        out.push_str(&text[at..]);
        Some(Scrubbed { text: out, spans })
    }

    /// Scrubs an XHTML fragment (a FHIR narrative's `div`): its text and text-bearing
    /// attributes. Fails, holding only a position, when it is not well-formed; `Ok(None)` when
    /// nothing was found.
    pub fn xhtml(
        &self,
        xhtml: &str,
        context: &Context<'_>,
    ) -> Result<Option<Scrubbed>, MarkupError> {
        markup::check_xhtml(xhtml)?;
        Ok(self.html(xhtml, context))
    }

    /// Scrubs HTML, which need not be well-formed XML (a `text/html` attachment); `None` when
    /// nothing was found.
    pub fn html(&self, html: &str, context: &Context<'_>) -> Option<Scrubbed> {
        markup::scrub(html, |text| {
            self.text(text, context).map(|s| (s.text, s.spans))
        })
        .map(|(text, spans)| Scrubbed { text, spans })
    }

    /// The identifiers in `text`: every enabled layer's spans, merged where they overlap, with
    /// the words of one name (`Pryce, Ann`, `Ann J. Pryce`) joined into one span.
    pub fn find(&self, text: &str, context: &Context<'_>) -> Vec<Span> {
        let layers = self.settings.layers;
        let mut spans = Vec::new();
        if layers.record {
            self.dictionary.find(text, &mut spans);
            if let Some(local) = context.local {
                local.find(text, &mut spans);
            }
        }
        if layers.patterns {
            let from = spans.len();
            patterns::find(text, &mut spans);
            for span in &mut spans[from..] {
                let record_date = span.date.as_ref().is_some_and(|d| {
                    self.dictionary.has_date(d) || context.local.is_some_and(|l| l.has_date(d))
                });
                if record_date {
                    span.layer = Layer::Record;
                }
            }
        }
        if layers.names {
            let known: Vec<(usize, usize)> = spans
                .iter()
                .filter(|s| s.kind == Kind::Name)
                .map(|s| (s.start, s.end))
                .collect();
            names::find(text, &known, &mut spans);
        }
        let keep_dates = context.dates == DateAction::Keep;
        spans.retain(|s| self.keep & s.kind.bit() == 0 && !(keep_dates && s.kind == Kind::Date));
        merge(text, spans)
    }
}

/// Sorts spans and merges those that overlap (the longer one gives the kind and layer), then
/// joins name spans separated only by blanks, commas, periods or an initial.
fn merge(text: &str, mut spans: Vec<Span>) -> Vec<Span> {
    spans.sort_by_key(|s| (s.start, std::cmp::Reverse(s.end)));
    let mut merged: Vec<Span> = Vec::with_capacity(spans.len());
    for span in spans {
        match merged.last_mut() {
            Some(last) if span.start < last.end => {
                if span.end - span.start > last.end - last.start {
                    let start = last.start;
                    *last = span;
                    last.start = start;
                }
                last.end = last.end.max(span.end);
            }
            Some(last)
                if last.kind == Kind::Name
                    && span.kind == Kind::Name
                    && joins_names(&text[last.end..span.start]) =>
            {
                last.end = span.end;
            }
            _ => merged.push(span),
        }
    }
    merged
}

/// Whether what stands between two names makes them one name: blanks, a comma, the period of
/// an initial, or an initial (`Ann J. Pryce`).
fn joins_names(gap: &str) -> bool {
    if gap.len() > 6 {
        return false;
    }
    let letters = gap.chars().filter(|c| c.is_alphabetic()).count();
    let initial = letters == 1 && gap.contains('.') && gap.chars().any(char::is_uppercase);
    (letters == 0 || initial)
        && gap
            .chars()
            .all(|c| c.is_whitespace() || matches!(c, ',' | '.') || (initial && c.is_uppercase()))
        && gap.chars().filter(|&c| c == '\n').count() == 0
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::Identities;

    fn scrubber() -> Scrubber {
        let mut ids = Identities::default();
        ids.add_resource(&json!({
            "resourceType": "Patient",
            "name": [{"family": "Cormier289", "given": ["Chi716"]}],
            "telecom": [{"value": "555-942-8848"}],
            "identifier": [{"value": "S99934475"}],
            "birthDate": "1959-07-30"
        }));
        Scrubber::new(ids.build(), Settings::default())
    }

    #[test]
    fn every_layer_replaces_with_typed_placeholders() {
        let s = scrubber();
        assert_eq!(
            s.scrub("CORMIER289, Chi716 (DL S99934475) called 5559428848 on 07/30/1959."),
            "[NAME] (DL [ID]) called [PHONE] on 1959."
        );
        assert_eq!(
            s.scrub("Chi716\n is a 30 year-old non-hispanic white female."),
            "[NAME]\n is a 30 year-old non-hispanic white female."
        );
        assert_eq!(
            s.scrub("Chi716's neighbour Ann Pryce, aged 93, saw her on March 4th."),
            "[NAME]'s neighbour [NAME], aged [AGE], saw her on [DATE]."
        );
    }

    #[test]
    fn dates_follow_the_context() {
        let s = scrubber();
        let shifted = s
            .text(
                "seen 2021-03-04 and 03/2021",
                &Context {
                    local: None,
                    dates: DateAction::Shift(10),
                },
            )
            .unwrap();
        assert_eq!(shifted.text, "seen 2021-03-14 and 2021");
        assert!(
            s.text(
                "seen 2021-03-04",
                &Context {
                    local: None,
                    dates: DateAction::Keep
                }
            )
            .is_none()
        );
        let birth = s.text("born 30 July 1959", &Context::default()).unwrap();
        assert_eq!(birth.spans[0].layer, Layer::Record);
    }

    #[test]
    fn layers_and_kept_kinds_switch_off() {
        let s = Scrubber::new(
            scrubber().dictionary().clone(),
            Settings {
                layers: Layers {
                    record: true,
                    patterns: false,
                    names: false,
                },
                keep: vec![Kind::Phone],
            },
        );
        assert_eq!(
            s.scrub("Chi716 at 555-942-8848 with Dr. Ann Pryce on 03/04/2021"),
            "[NAME] at 555-942-8848 with Dr. Ann Pryce on 03/04/2021"
        );
    }

    #[test]
    fn narratives_stay_well_formed() {
        let s = scrubber();
        let div = r#"<div xmlns="http://www.w3.org/1999/xhtml"><b>Chi716 Cormier289</b> <a href="mailto:c@x.org" title="Chi716">mail</a></div>"#;
        let out = s.xhtml(div, &Context::default()).unwrap().unwrap();
        assert_eq!(
            out.text,
            r#"<div xmlns="http://www.w3.org/1999/xhtml"><b>[NAME]</b> <a href="mailto:[EMAIL]" title="[NAME]">mail</a></div>"#
        );
        crate::markup::check_xhtml(&out.text).unwrap();
        assert!(s.xhtml("<div>Chi716", &Context::default()).is_err());
    }
}
