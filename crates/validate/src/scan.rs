//! The identifier scan: every string value of a resource, classified by its FHIR type and
//! element, is checked with the free-text detectors of `haven deid`'s `scrub` (the `scrub`
//! crate's patterns, and under safe-harbor its name lexicon; narratives read as markup), the
//! profile's rules (safe-harbor: years only, 3-digit zips, ages up to 89) and the exact
//! identifying values of the source.
//!
//! What is not scanned, and why:
//! - codings (`Coding.code`, `system`, `version`, `display`) and other `code`, `id`,
//!   `canonical`, `oid` and `uuid` values: terminology, whose digits (LOINC, SNOMED) would
//!   read as identifiers;
//! - `uri`/`url` values under the terminology keys `system`, `url`, `profile` and
//!   `valueSet`, such as `Extension.url` (but `Attachment.url` is scanned);
//! - `Reference.reference` and `fullUrl`, which the reference check resolves instead.
//!
//! A birth year counts as an age over 89 when even the youngest age it allows at the last
//! run's year is 90 or more.
//!
//! A postal code is a 3-digit zip under safe-harbor when it is 3 digits, or 3 digits and
//! `00` (as the preset writes it: `02100`), or a ZIP+4 so cut (`02100-0000`): the trailing
//! zeros carry nothing.

use std::sync::LazyLock;

use base64::Engine as _;
use regex::Regex;
use serde_json::Value;

use crate::source::SourceValues;
use crate::walk::{Leaf, Site, walk};

/// `uri`-typed keys that hold terminology or definitions, not data about a person.
const TERMINOLOGY_KEYS: &[&str] = &["system", "url", "profile", "valueSet"];

/// The patterns of structured values (postal codes, identifier values).
struct Patterns {
    zip5: Regex,
    zip3: Regex,
    digits: Regex,
}

static PATTERNS: LazyLock<Patterns> = LazyLock::new(|| {
    let re = |p: &str| Regex::new(p).expect("a built-in pattern compiles");
    Patterns {
        zip5: re(r"^\s*\d{5}(?:-\d{4})?\s*$"),
        zip3: re(r"^\s*\d{3}(?:00(?:-0000)?)?\s*$"),
        digits: re(r"\d{4,}"),
    }
});

/// The free-text detectors of `haven deid`'s `scrub` (its pattern layer, and under
/// safe-harbor its name lexicon), without a record dictionary: one with safe-harbor's kinds,
/// one that leaves dates, ZIP codes and ages alone.
static DETECTORS: LazyLock<[scrub::Scrubber; 2]> = LazyLock::new(|| {
    let scrubber = |names: bool, keep: Vec<scrub::Kind>| {
        scrub::Scrubber::new(
            scrub::Dictionary::default(),
            scrub::Settings {
                layers: scrub::Layers {
                    record: false,
                    patterns: true,
                    names,
                },
                keep,
            },
        )
    };
    [
        scrubber(true, Vec::new()),
        scrubber(
            false,
            vec![scrub::Kind::Date, scrub::Kind::Zip, scrub::Kind::Age],
        ),
    ]
});

/// One thing the scan found: its kind, the element's JSON Pointer and a description that
/// holds no value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Hit {
    pub kind: &'static str,
    pub pointer: String,
    pub detail: String,
}

/// A relative reference (`Type/id`) found in a resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ref {
    pub target_type: &'static str,
    pub id: String,
    pub pointer: String,
}

/// The scanner's configuration.
pub(crate) struct Scanner<'a> {
    /// Apply the safe-harbor rules.
    pub safe_harbor: bool,
    /// The source's identifying values, when given.
    pub source: Option<&'a SourceValues>,
    /// The year ages are reckoned at (the last run's), for birth years under safe-harbor.
    pub reference_year: Option<i32>,
}

/// How an element's value is treated.
enum Role {
    Skip,
    Reference,
    Date,
    Uri,
    Base64,
    Markup,
    Text {
        identifier: bool,
        postal: bool,
        line: bool,
    },
}

/// How the text cells of a view column are scanned. A view's values come from the resources
/// already scanned, but a ViewDefinition can build new strings (concatenations, substrings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CellRule {
    /// The row id column, and columns named for terminology ([`TERMINOLOGY_KEYS`], alone or
    /// as a `_suffix`: `system`, `code_system`).
    Skip,
    /// Columns named for a zip or postal code: the zip rule.
    Postal,
    /// Every other column: the free-text patterns.
    Text,
}

/// The rule of the view column named `column`.
pub(crate) fn cell_rule(column: &str) -> CellRule {
    let lower = column.to_ascii_lowercase();
    let terminology = TERMINOLOGY_KEYS.iter().any(|key| {
        let key = key.to_ascii_lowercase();
        lower == key || lower.ends_with(&format!("_{key}"))
    });
    if column == lake::views::RESOURCE_ID_COLUMN || terminology {
        CellRule::Skip
    } else if lower.contains("zip") || lower.contains("postal") {
        CellRule::Postal
    } else {
        CellRule::Text
    }
}

fn role(site: &Site<'_>) -> Role {
    let parent = site.parent.unwrap_or_default();
    if !parent.is_empty() && fhir::types::is_a(parent, "Coding") {
        return Role::Skip;
    }
    if site.key == "reference" && (parent == "Reference" || site.parent.is_none()) {
        return Role::Reference;
    }
    if site.key == "fullUrl" {
        return Role::Skip;
    }
    let terminology_key =
        TERMINOLOGY_KEYS.contains(&site.key) && !(parent == "Attachment" && site.key == "url");
    match site.type_code {
        Some("code" | "id" | "canonical" | "oid" | "uuid" | "time" | "boolean") => Role::Skip,
        Some("uri" | "url" | "System.String") | None if terminology_key => Role::Skip,
        Some("date" | "dateTime" | "instant") => Role::Date,
        Some("uri" | "url") => Role::Uri,
        Some("base64Binary") => Role::Base64,
        Some("xhtml") => Role::Markup,
        None if matches!(site.key, "code" | "system" | "version") => Role::Skip,
        _ => Role::Text {
            identifier: parent == "Identifier" && site.key == "value",
            postal: parent == "Address" && site.key == "postalCode",
            line: parent == "Address" && site.key == "line",
        },
    }
}

impl Scanner<'_> {
    /// Scans one resource: the identifier findings and the relative references.
    pub(crate) fn scan(&self, resource: &Value) -> (Vec<Hit>, Vec<Ref>) {
        let mut hits = Vec::new();
        let mut refs = Vec::new();
        walk(resource, &mut |pointer, site, leaf| match leaf {
            Leaf::Num(n) => {
                if self.safe_harbor
                    && site.parent == Some("Age")
                    && site.key == "value"
                    && n.as_f64().is_some_and(|age| age > 89.0)
                {
                    hits.push(hit("age-over-89", pointer, "an age over 89"));
                }
            }
            Leaf::Str(s) => self.string(site, pointer, s, &mut hits, &mut refs),
        });
        (hits, refs)
    }

    /// Scans one text cell of a view table under its column's [`CellRule`].
    pub(crate) fn scan_cell(&self, rule: CellRule, pointer: &str, value: &str) -> Vec<Hit> {
        let mut hits = Vec::new();
        match rule {
            CellRule::Skip => return hits,
            CellRule::Postal
                if self.safe_harbor
                    && PATTERNS.zip5.is_match(value)
                    && !PATTERNS.zip3.is_match(value) =>
            {
                hits.push(hit(
                    "zip5",
                    pointer,
                    "a 5-digit zip code (safe-harbor keeps 3 digits)",
                ));
            }
            CellRule::Postal => {}
            CellRule::Text => self.text(pointer, value, false, "", &mut hits),
        }
        self.source_values(pointer, value, "", &mut hits);
        hits
    }

    fn string(
        &self,
        site: &Site<'_>,
        pointer: &str,
        s: &str,
        hits: &mut Vec<Hit>,
        refs: &mut Vec<Ref>,
    ) {
        match role(site) {
            Role::Skip => {}
            Role::Reference => {
                if let fhir::reference::Reference::Relative {
                    resource_type, id, ..
                } = fhir::reference::parse(s)
                {
                    refs.push(Ref {
                        target_type: resource_type,
                        id: id.to_owned(),
                        pointer: pointer.to_owned(),
                    });
                }
            }
            Role::Date => {
                if self.safe_harbor && s.trim().len() > 4 {
                    hits.push(hit(
                        "full-date",
                        pointer,
                        "a date finer than the year (safe-harbor keeps years only)",
                    ));
                } else if self.safe_harbor
                    && site.key == "birthDate"
                    && let (Some(now), Ok(born)) = (self.reference_year, s.trim().parse::<i32>())
                    && now - born - 1 > 89
                {
                    hits.push(hit(
                        "age-over-89",
                        pointer,
                        "a birth year that makes the age over 89 (safe-harbor aggregates them)",
                    ));
                }
                self.source_values(pointer, s, "", hits);
            }
            Role::Uri => {
                if self
                    .detectors()
                    .find(s, &scrub::Context::default())
                    .iter()
                    .any(|span| span.kind == scrub::Kind::Url)
                {
                    hits.push(hit("url", pointer, "a URL"));
                }
                self.source_values(pointer, s, "", hits);
            }
            Role::Markup => {
                let spans = self
                    .detectors()
                    .html(s, &scrub::Context::default())
                    .map(|found| found.spans)
                    .unwrap_or_default();
                self.findings(pointer, s, &spans, "", hits);
                self.source_values(pointer, s, "", hits);
            }
            Role::Base64 => {
                if let Some(text) = decoded_text(s) {
                    self.text(pointer, &text, false, " in the decoded attachment", hits);
                    self.source_values(pointer, &text, " in the decoded attachment", hits);
                }
            }
            Role::Text {
                identifier,
                postal,
                line,
            } => {
                if postal
                    && self.safe_harbor
                    && PATTERNS.zip5.is_match(s)
                    && !PATTERNS.zip3.is_match(s)
                {
                    hits.push(hit(
                        "zip5",
                        pointer,
                        "a 5-digit zip code (safe-harbor keeps 3 digits)",
                    ));
                } else if line && self.safe_harbor && !s.trim().is_empty() {
                    hits.push(hit(
                        "street-address",
                        pointer,
                        "an address line (safe-harbor removes street addresses)",
                    ));
                } else if !postal {
                    self.text(pointer, s, identifier, "", hits);
                }
                self.source_values(pointer, s, "", hits);
            }
        }
    }

    /// The free-text detectors for this scan's rules.
    fn detectors(&self) -> &'static scrub::Scrubber {
        &DETECTORS[usize::from(!self.safe_harbor)]
    }

    /// The identifiers of free text (`scrub`'s detectors) and of identifier values.
    fn text(&self, pointer: &str, s: &str, identifier: bool, within: &str, hits: &mut Vec<Hit>) {
        if identifier && is_mrn_like(s) {
            hits.push(hit(
                "mrn",
                pointer,
                &format!("an identifier value that is not a keyed hash{within}"),
            ));
        }
        let spans = self.detectors().find(s, &scrub::Context::default());
        let spans: Vec<scrub::Span> = spans
            .into_iter()
            .filter(|span| !(identifier && span.kind == scrub::Kind::Id))
            .collect();
        self.findings(pointer, s, &spans, within, hits);
    }

    /// One finding per kind of identifier found in `s`, named as the reports name them.
    fn findings(
        &self,
        pointer: &str,
        s: &str,
        spans: &[scrub::Span],
        within: &str,
        hits: &mut Vec<Hit>,
    ) {
        let mut kinds: Vec<(&'static str, &'static str)> = Vec::new();
        for span in spans {
            let found = match span.kind {
                scrub::Kind::Id if is_ssn(&s[span.start..span.end]) => {
                    ("ssn", "a social security number")
                }
                scrub::Kind::Id => ("mrn", "a labelled record number"),
                scrub::Kind::Phone => ("phone", "a phone number"),
                scrub::Kind::Email => ("email", "an email address"),
                scrub::Kind::Url => ("url", "a URL"),
                scrub::Kind::Ip => ("ip", "an IP address"),
                scrub::Kind::Address | scrub::Kind::City => ("street-address", "a street address"),
                scrub::Kind::Name => ("name", "a person's name (name lexicon)"),
                scrub::Kind::Zip => (
                    "zip5",
                    "a 5-digit zip code in text (safe-harbor keeps 3 digits)",
                ),
                scrub::Kind::Age => ("age-over-89", "an age over 89 in text"),
                scrub::Kind::Date
                    if span
                        .date
                        .is_some_and(|d| d.month.is_some() || d.day.is_some()) =>
                {
                    (
                        "full-date",
                        "a date finer than the year in text (safe-harbor keeps years only)",
                    )
                }
                scrub::Kind::Date => continue,
            };
            if !kinds.contains(&found) {
                kinds.push(found);
            }
        }
        for (kind, what) in kinds {
            hits.push(hit(kind, pointer, &format!("{what}{within}")));
        }
    }

    fn source_values(&self, pointer: &str, s: &str, within: &str, hits: &mut Vec<Hit>) {
        if let Some(source) = self.source
            && let Some(category) = source.find(s)
        {
            hits.push(Hit {
                kind: "source-value",
                pointer: pointer.to_owned(),
                detail: format!("{category} from the source{within}"),
            });
        }
    }
}

/// Whether a value is shaped like a social security number (`123-45-6789`).
fn is_ssn(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 11
        && b.iter().enumerate().all(|(i, c)| match i {
            3 | 6 => *c == b'-',
            _ => c.is_ascii_digit(),
        })
}

/// Whether an identifier value looks like a record number rather than Haven's keyed hash
/// (64 hex digits): a run of 4 or more digits, or a UUID.
fn is_mrn_like(s: &str) -> bool {
    let s = s.trim();
    let hash = s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit());
    let uuid = s.len() == 36
        && s.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        });
    !hash && (uuid || PATTERNS.digits.is_match(s))
}

/// The text of a base64 value, when it decodes to UTF-8 text (not an image or a PDF).
fn decoded_text(s: &str) -> Option<String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let control = text
        .chars()
        .filter(|c| c.is_control() && !c.is_whitespace())
        .count();
    (control * 100 <= text.chars().count()).then_some(text)
}

fn hit(kind: &'static str, pointer: &str, detail: &str) -> Hit {
    Hit {
        kind,
        pointer: pointer.to_owned(),
        detail: detail.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn kinds(resource: Value) -> Vec<(&'static str, String)> {
        let scanner = Scanner {
            safe_harbor: true,
            source: None,
            reference_year: Some(2024),
        };
        let (hits, _) = scanner.scan(&resource);
        hits.into_iter().map(|h| (h.kind, h.pointer)).collect()
    }

    #[test]
    fn codes_and_terminology_urls_are_not_identifiers() {
        let found = kinds(json!({
            "resourceType": "Observation",
            "code": {"coding": [{"system": "http://loinc.org", "code": "12345678",
                                 "display": "Test 555-123-4567"}], "text": "Glucose"},
            "meta": {"profile": ["http://hl7.org/fhir/StructureDefinition/vitalsigns"]},
            "effectiveDateTime": "2020",
            "valueQuantity": {"value": 123456789, "system": "http://unitsofmeasure.org"}
        }));
        assert!(found.is_empty(), "{found:?}");
        let units_are_not_streets = kinds(json!({
            "resourceType": "Observation",
            "code": {"text": "Glomerular filtration rate/1.73 sq M.predicted"}
        }));
        assert!(
            units_are_not_streets.is_empty(),
            "{units_are_not_streets:?}"
        );
    }

    #[test]
    fn patterns_in_text_are_found_with_their_kind_and_path() {
        let found = kinds(json!({
            "resourceType": "Patient",
            "birthDate": "1970-01-02",
            "address": [
                {"postalCode": "02134", "line": ["1 Main St"]},
                {"postalCode": "02100"},
                {"postalCode": "02100-0000"},
                {"postalCode": "02134-0000"}
            ],
            "identifier": [{"value": "MRN-0012345"}],
            "telecom": [{"value": "555-123-4567"}, {"value": "a.b@example.org"}],
            "text": {"div": "SSN 123-45-6789 see https://example.org/p on 03/04/2020"}
        }));
        for expected in [
            ("full-date", "/birthDate"),
            ("zip5", "/address/0/postalCode"),
            ("street-address", "/address/0/line/0"),
            ("mrn", "/identifier/0/value"),
            ("phone", "/telecom/0/value"),
            ("email", "/telecom/1/value"),
            ("ssn", "/text/div"),
            ("url", "/text/div"),
            ("full-date", "/text/div"),
        ] {
            assert!(
                found.contains(&(expected.0, expected.1.to_owned())),
                "{expected:?} in {found:?}"
            );
        }
        assert!(
            !found
                .iter()
                .any(|(_, p)| p == "/address/1/postalCode" || p == "/address/2/postalCode"),
            "a zip3 written as DDD00 or DDD00-0000 is not a 5-digit zip"
        );
        assert!(
            found.contains(&("zip5", "/address/3/postalCode".to_owned())),
            "a ZIP+4 with its 5 digits is a 5-digit zip"
        );
    }

    #[test]
    fn text_attachments_are_decoded_and_ages_over_89_found() {
        let data = base64::engine::general_purpose::STANDARD.encode("call 555-222-3333");
        let found = kinds(json!({
            "resourceType": "DocumentReference",
            "content": [{"attachment": {"contentType": "text/plain", "data": data}}]
        }));
        assert_eq!(found, [("phone", "/content/0/attachment/data".to_owned())]);
        let found = kinds(json!({
            "resourceType": "Condition",
            "onsetAge": {"value": 93, "unit": "a"}
        }));
        assert_eq!(found, [("age-over-89", "/onsetAge/value".to_owned())]);
        let found = kinds(json!({"resourceType": "Patient", "birthDate": "1933"}));
        assert_eq!(found, [("age-over-89", "/birthDate".to_owned())]);
        assert!(kinds(json!({"resourceType": "Patient", "birthDate": "1934"})).is_empty());
    }

    #[test]
    fn keyed_hashes_are_not_record_numbers() {
        assert!(!is_mrn_like(&"0123456789abcdef".repeat(4)));
        assert!(is_mrn_like("A-99812"));
        assert!(is_mrn_like("2f5a7c1e-3b4d-4e6f-8a9b-0c1d2e3f4a5b"));
    }
}
