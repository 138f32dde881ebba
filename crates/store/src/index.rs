//! Which search parameters the store indexes, and extracting their values from a resource at
//! write time.
//!
//! Each indexed parameter's FHIRPath expression comes from the R4 search parameter tables
//! ([`fhir::search::search_param`]) and is compiled once. Its results are turned into index
//! entries by shape:
//! - token: a `CodeableConcept` gives one `system|code` per coding, a `Coding` its
//!   `system|code`, an `Identifier` or `ContactPoint` its `system|value`, a primitive its text
//!   (with an empty system);
//! - string: a `HumanName` gives each of its parts (`family`, `given`, `prefix`, `suffix`,
//!   `text`), an `Address` each of its parts, a primitive its text; each is kept as written
//!   (for `:exact`) and [`normalize`]d (for the default prefix match and `:contains`);
//! - date: a `date`/`dateTime`/`instant` gives the range its precision covers, a `Period` the
//!   range from its start to its end (open when missing), a `Timing` its events;
//! - reference: a relative or absolute reference gives its target type and id.
//!
//! `.where(resolve() is T)` cannot be evaluated on a resource alone, so it is dropped from the
//! expression and the parameter's declared target types filter the references instead (the
//! `patient` parameters target only `Patient`).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use fhir::reference::Reference;
use fhir::search::{SearchParam, SearchParamKind};
use fhirpath::Expression;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::time::Range;

/// The Patient parameters the store indexes.
const PATIENT_PARAMS: &[&str] = &[
    "address-postalcode",
    "birthdate",
    "family",
    "gender",
    "given",
    "identifier",
    "name",
];

/// The clinical resource types whose common parameters the store indexes.
const CLINICAL_TYPES: &[&str] = &[
    "Condition",
    "DiagnosticReport",
    "DocumentReference",
    "Encounter",
    "Immunization",
    "MedicationRequest",
    "Observation",
    "Procedure",
];

/// The common clinical parameters, indexed where the type defines them.
const CLINICAL_PARAMS: &[&str] = &[
    "category",
    "code",
    "date",
    "identifier",
    "patient",
    "status",
    "subject",
];

/// The parameter indexed on every other resource type that defines it: conditional
/// references and conditional creates (`Organization?identifier=system|value`) search on it.
const OTHER_PARAMS: &[&str] = &["identifier"];

/// The parameters every type supports from the resource row itself, without an index table.
pub(crate) const ROW_PARAMS: &[&str] = &["_id", "_lastUpdated"];

/// One indexed parameter of one resource type, with its compiled expression.
pub(crate) struct Plan {
    /// The parameter's definition.
    pub param: &'static SearchParam,
    expression: Expression,
}

/// The plans of every indexed parameter, by resource type.
fn plans() -> &'static BTreeMap<&'static str, Vec<Plan>> {
    static PLANS: OnceLock<BTreeMap<&'static str, Vec<Plan>>> = OnceLock::new();
    PLANS.get_or_init(|| {
        let others = fhir::types::resource_types()
            .iter()
            .filter(|t| **t != "Patient" && !CLINICAL_TYPES.contains(t))
            .map(|t| (*t, OTHER_PARAMS));
        let wanted = std::iter::once(("Patient", PATIENT_PARAMS))
            .chain(CLINICAL_TYPES.iter().map(|t| (*t, CLINICAL_PARAMS)))
            .chain(others);
        wanted
            .map(|(resource_type, codes)| {
                let plans = codes
                    .iter()
                    .filter_map(|code| fhir::search::search_param(resource_type, code))
                    .filter(|param| {
                        matches!(
                            param.kind,
                            SearchParamKind::Token
                                | SearchParamKind::String
                                | SearchParamKind::Date
                                | SearchParamKind::Reference
                        )
                    })
                    .map(|param| Plan {
                        param,
                        expression: Expression::parse(&without_resolve(param.expression))
                            .expect("the R4 search parameter expressions compile"),
                    })
                    .collect();
                (resource_type, plans)
            })
            .collect()
    })
}

/// `expression` without its `.where(resolve() is T)` filters.
fn without_resolve(expression: &str) -> String {
    const FILTER: &str = ".where(resolve() is ";
    let mut rest = expression;
    let mut out = String::with_capacity(expression.len());
    while let Some(start) = rest.find(FILTER) {
        out.push_str(&rest[..start]);
        let after = &rest[start + FILTER.len()..];
        rest = after.find(')').map_or("", |end| &after[end + 1..]);
    }
    out.push_str(rest);
    out
}

/// The plan of parameter `code` of `resource_type`, if the store indexes it.
pub(crate) fn plan(resource_type: &str, code: &str) -> Option<&'static Plan> {
    plans()
        .get(resource_type)?
        .iter()
        .find(|plan| plan.param.code == code)
}

/// The search parameters the store can search on for `resource_type`: `_id` and
/// `_lastUpdated` for every type, plus the indexed ones (for Patient `name`, `family`, `given`,
/// `identifier`, `birthdate`, `gender`, `address-postalcode`; for the common clinical types
/// `patient`, `subject`, `code`, `date`, `status`, `category`, `identifier` where the type
/// defines them; for every other type `identifier` where it defines it).
/// Empty for a name that is not a resource type.
pub fn indexed_params(resource_type: &str) -> Vec<&'static SearchParam> {
    let row = ROW_PARAMS
        .iter()
        .filter_map(|code| fhir::search::search_param(resource_type, code));
    let indexed = plans()
        .get(resource_type)
        .into_iter()
        .flatten()
        .map(|plan| plan.param);
    row.chain(indexed).collect()
}

/// A token index entry: `system|code` (`system` empty when there is none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TokenEntry {
    pub param: &'static str,
    pub system: String,
    pub code: String,
}

/// A string index entry: the text [`normalize`]d, and as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StringEntry {
    pub param: &'static str,
    pub norm: String,
    pub exact: String,
}

/// A date index entry: the range the value covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DateEntry {
    pub param: &'static str,
    pub low: i64,
    pub high: i64,
}

/// A reference index entry: the target's type and id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RefEntry {
    pub param: &'static str,
    pub target_type: &'static str,
    pub target_id: String,
}

/// The index entries of one resource.
#[derive(Debug, Default, Clone)]
pub(crate) struct Entries {
    pub tokens: Vec<TokenEntry>,
    pub strings: Vec<StringEntry>,
    pub dates: Vec<DateEntry>,
    pub refs: Vec<RefEntry>,
}

fn push_unique<T: PartialEq>(list: &mut Vec<T>, entry: T) {
    if !list.contains(&entry) {
        list.push(entry);
    }
}

/// Extracts the index entries of every indexed parameter of the resource's type.
pub(crate) fn extract(resource_type: &str, resource: &Value) -> Result<Entries> {
    let mut entries = Entries::default();
    for plan in plans().get(resource_type).into_iter().flatten() {
        let param = plan.param;
        let items = plan.expression.evaluate(resource).map_err(|error| {
            Error::Invalid(format!(
                "search parameter {} of {resource_type} cannot be evaluated: {error}",
                param.code
            ))
        })?;
        for json in items.iter().filter_map(|item| item.json()) {
            match param.kind {
                SearchParamKind::Token => tokens(param.code, json, &mut entries.tokens),
                SearchParamKind::String => strings(param.code, json, &mut entries.strings),
                SearchParamKind::Date => dates(param.code, json, &mut entries.dates),
                SearchParamKind::Reference => refs(param, json, &mut entries.refs),
                _ => {}
            }
        }
    }
    Ok(entries)
}

fn text(value: Option<&Value>) -> &str {
    value.and_then(Value::as_str).unwrap_or("")
}

fn tokens(param: &'static str, json: &Value, out: &mut Vec<TokenEntry>) {
    let mut push = |system: &str, code: &str| {
        if !code.is_empty() {
            push_unique(
                out,
                TokenEntry {
                    param,
                    system: system.to_owned(),
                    code: code.to_owned(),
                },
            );
        }
    };
    match json {
        Value::String(code) => push("", code),
        Value::Bool(flag) => push("", if *flag { "true" } else { "false" }),
        Value::Object(object) => {
            if let Some(codings) = object.get("coding").and_then(Value::as_array) {
                for coding in codings {
                    push(text(coding.get("system")), text(coding.get("code")));
                }
            } else if object.contains_key("code") {
                push(text(object.get("system")), text(object.get("code")));
            } else if object.contains_key("value") {
                push(text(object.get("system")), text(object.get("value")));
            }
        }
        _ => {}
    }
}

/// The parts of a `HumanName` or `Address` that string search matches.
const STRING_PARTS: &[&str] = &[
    "family",
    "given",
    "prefix",
    "suffix",
    "text",
    "line",
    "city",
    "district",
    "state",
    "postalCode",
    "country",
];

fn strings(param: &'static str, json: &Value, out: &mut Vec<StringEntry>) {
    let mut push = |value: &str| {
        let norm = normalize(value);
        if !norm.is_empty() {
            push_unique(
                out,
                StringEntry {
                    param,
                    norm,
                    exact: value.to_owned(),
                },
            );
        }
    };
    match json {
        Value::String(value) => push(value),
        Value::Object(object) => {
            for part in STRING_PARTS.iter().filter_map(|key| object.get(*key)) {
                match part {
                    Value::String(value) => push(value),
                    Value::Array(values) => {
                        values.iter().filter_map(Value::as_str).for_each(&mut push)
                    }
                    _ => {}
                }
            }
        }
        _ => {}
    }
}

fn dates(param: &'static str, json: &Value, out: &mut Vec<DateEntry>) {
    let mut push = |range: Range| {
        push_unique(
            out,
            DateEntry {
                param,
                low: range.low,
                high: range.high,
            },
        );
    };
    match json {
        Value::String(value) => {
            if let Some(range) = Range::parse(value) {
                push(range);
            }
        }
        Value::Object(object) => {
            if let Some(events) = object.get("event").and_then(Value::as_array) {
                events
                    .iter()
                    .filter_map(Value::as_str)
                    .filter_map(Range::parse)
                    .for_each(push);
            } else if object.contains_key("start") || object.contains_key("end") {
                let start = object
                    .get("start")
                    .and_then(Value::as_str)
                    .map(Range::parse);
                let end = object.get("end").and_then(Value::as_str).map(Range::parse);
                // A present but malformed bound makes the whole period unusable.
                if let (Some(None), _) | (_, Some(None)) = (&start, &end) {
                    return;
                }
                push(Range {
                    low: start.flatten().map_or(i64::MIN, |r| r.low),
                    high: end.flatten().map_or(i64::MAX, |r| r.high),
                });
            }
        }
        _ => {}
    }
}

fn refs(param: &'static SearchParam, json: &Value, out: &mut Vec<RefEntry>) {
    let Some(reference) = json.get("reference").and_then(Value::as_str) else {
        return;
    };
    let parsed = Reference::parse(reference);
    let (Some(target_type), Some(id)) = (parsed.resource_type(), parsed.id()) else {
        return;
    };
    if !matches!(
        parsed,
        Reference::Relative { .. } | Reference::Absolute { .. }
    ) {
        return;
    }
    if !param.targets.is_empty() && !param.targets.contains(&target_type) {
        return;
    }
    push_unique(
        out,
        RefEntry {
            param: param.code,
            target_type,
            target_id: id.to_owned(),
        },
    );
}

/// Normalises text for string search: lower case, accents removed from Latin letters
/// (`Zoë Ærø` → `zoe aero`, also when written with combining marks), ligatures and `ß`
/// spelled out, runs of white space collapsed to one space and trimmed.
pub fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut space = false;
    for c in text.chars() {
        if c.is_whitespace() {
            space = !out.is_empty();
            continue;
        }
        if ('\u{300}'..='\u{36f}').contains(&c) {
            continue;
        }
        if space {
            out.push(' ');
            space = false;
        }
        match fold(c) {
            Some(base) => out.push_str(base),
            None => out.extend(c.to_lowercase()),
        }
    }
    out
}

/// The unaccented lower-case spelling of a Latin-1 Supplement or Latin Extended-A letter.
fn fold(c: char) -> Option<&'static str> {
    Some(match c {
        'À'..='Å' | 'à'..='å' | 'Ā'..='ą' => "a",
        'Æ' | 'æ' => "ae",
        'Ç' | 'ç' | 'Ć'..='č' => "c",
        'Ð' | 'ð' | 'Ď'..='đ' => "d",
        'È'..='Ë' | 'è'..='ë' | 'Ē'..='ě' => "e",
        'Ĝ'..='ģ' => "g",
        'Ĥ'..='ħ' => "h",
        'Ì'..='Ï' | 'ì'..='ï' | 'Ĩ'..='ı' => "i",
        'Ĳ' | 'ĳ' => "ij",
        'Ĵ' | 'ĵ' => "j",
        'Ķ'..='ĸ' => "k",
        'Ĺ'..='ł' => "l",
        'Ñ' | 'ñ' | 'Ń'..='ŋ' => "n",
        'Ò'..='Ö' | 'Ø' | 'ò'..='ö' | 'ø' | 'Ō'..='ő' => "o",
        'Œ' | 'œ' => "oe",
        'Ŕ'..='ř' => "r",
        'ß' => "ss",
        'Ś'..='š' | 'ſ' => "s",
        'Ţ'..='ŧ' => "t",
        'Þ' | 'þ' => "th",
        'Ù'..='Ü' | 'ù'..='ü' | 'Ũ'..='ų' => "u",
        'Ŵ' | 'ŵ' => "w",
        'Ý' | 'ý' | 'ÿ' | 'Ŷ'..='Ÿ' => "y",
        'Ź'..='ž' => "z",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn normalize_folds_case_accents_and_space() {
        assert_eq!(normalize("  Zoë   Ærø "), "zoe aero");
        assert_eq!(normalize("Bénédicte"), "benedicte");
        assert_eq!(normalize("Be\u{301}ne\u{301}dicte"), "benedicte");
        assert_eq!(normalize("Łukasz Straße ŒUF"), "lukasz strasse oeuf");
        assert_eq!(normalize("ΑΘΗΝΑ"), "αθηνα");
    }

    #[test]
    fn resolve_filters_are_dropped() {
        assert_eq!(
            without_resolve("Observation.subject.where(resolve() is Patient)"),
            "Observation.subject"
        );
        assert_eq!(
            without_resolve("A.x.where(resolve() is Patient) | A.y"),
            "A.x | A.y"
        );
    }

    #[test]
    fn every_listed_parameter_is_indexed() {
        let codes: Vec<_> = indexed_params("Patient").iter().map(|p| p.code).collect();
        assert_eq!(codes.len(), 2 + PATIENT_PARAMS.len());
        let observation: Vec<_> = indexed_params("Observation")
            .iter()
            .map(|p| p.code)
            .collect();
        assert_eq!(
            observation,
            [
                "_id",
                "_lastUpdated",
                "category",
                "code",
                "date",
                "identifier",
                "patient",
                "status",
                "subject"
            ]
        );
        let organization: Vec<_> = indexed_params("Organization")
            .iter()
            .map(|p| p.code)
            .collect();
        assert_eq!(organization, ["_id", "_lastUpdated", "identifier"]);
        assert!(plan("Encounter", "code").is_none());
        assert!(plan("MedicationRequest", "code").is_some());
    }

    #[test]
    fn entries_by_kind() {
        let observation = json!({
            "resourceType": "Observation",
            "status": "final",
            "category": [{"coding": [{"system": "http://c", "code": "vital-signs"}]}],
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}, {"code": "hr"}]},
            "subject": {"reference": "Patient/p1"},
            "effectivePeriod": {"start": "2024-01-01", "end": "2024-01-02T10:00:00Z"}
        });
        let entries = extract("Observation", &observation).unwrap();
        let tokens: Vec<_> = entries
            .tokens
            .iter()
            .map(|t| (t.param, t.system.as_str(), t.code.as_str()))
            .collect();
        assert_eq!(
            tokens,
            [
                ("category", "http://c", "vital-signs"),
                ("code", "http://loinc.org", "8867-4"),
                ("code", "", "hr"),
                ("status", "", "final"),
            ]
        );
        let refs: Vec<_> = entries
            .refs
            .iter()
            .map(|r| (r.param, r.target_type, r.target_id.as_str()))
            .collect();
        assert_eq!(
            refs,
            [("patient", "Patient", "p1"), ("subject", "Patient", "p1")]
        );
        let date = &entries.dates[0];
        assert_eq!(
            (date.low, date.high),
            (
                Range::parse("2024-01-01").unwrap().low,
                Range::parse("2024-01-02T10:00:00Z").unwrap().high
            )
        );
    }

    #[test]
    fn patient_references_only_for_patient_targets() {
        let condition = json!({"resourceType": "Condition", "subject": {"reference": "Group/g"}});
        let entries = extract("Condition", &condition).unwrap();
        let params: Vec<_> = entries.refs.iter().map(|r| r.param).collect();
        assert_eq!(params, ["subject"]);
    }
}
