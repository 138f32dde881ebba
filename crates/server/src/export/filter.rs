//! `_typeFilter`: FHIR search queries on one resource type, evaluated in memory on each
//! exported resource, so that a filter sees the same snapshot as the rest of the export.
//!
//! A query `Type?code[:modifier]=value[,value]&…` is compiled once: every parameter must be a
//! search parameter of the type (`fhir::search`) of kind token, string, date, reference or uri
//! (or `_id`, `_lastUpdated`), and its FHIRPath expression is compiled with the `fhirpath`
//! engine. Criteria are AND-ed, the comma-separated values of one criterion OR-ed, and
//! several filters on one type OR-ed, as the Bulk Data specification says. The matching
//! rules follow `store::SearchQuery` (token `system|code`, string prefix on normalised text,
//! date prefixes over ranges, references by id or `Type/id`, `:missing`, `:not`, `:exact`,
//! `:contains`, `:Type`).

use fhir::search::SearchParamKind;
use fhirpath::Expression;
use serde_json::Value;
use store::{Criterion, Timestamp};

/// Why a `_typeFilter` value was refused; names the parameter, never a resource value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("_typeFilter `{filter}`: {reason}")]
pub struct FilterError {
    /// The filter as given (a client-supplied query, not resource content).
    pub filter: String,
    /// What is wrong with it.
    pub reason: String,
}

/// One compiled `_typeFilter` query.
#[derive(Debug)]
pub struct TypeFilter {
    resource_type: String,
    criteria: Vec<Compiled>,
}

#[derive(Debug)]
struct Compiled {
    code: String,
    kind: SearchParamKind,
    modifier: Option<String>,
    values: Vec<String>,
    expression: Expression,
    /// For reference parameters whose expression was `….where(resolve() is T)`: the types
    /// the reference must point at.
    target_types: Vec<String>,
}

/// Result parameters and features a `_typeFilter` may not use (the specification excludes
/// them; the store does not support the others).
const NOT_ALLOWED: &[&str] = &[
    "_include",
    "_revinclude",
    "_sort",
    "_count",
    "_elements",
    "_summary",
    "_total",
    "_contained",
    "_containedType",
    "_format",
];

impl TypeFilter {
    /// Compiles `Type?query`.
    pub fn parse(filter: &str) -> Result<TypeFilter, FilterError> {
        let fail = |reason: String| FilterError {
            filter: filter.to_owned(),
            reason,
        };
        let (resource_type, query) = filter
            .split_once('?')
            .ok_or_else(|| fail("expected `Type?parameter=value`".to_owned()))?;
        if !fhir::types::is_concrete_resource_type(resource_type) {
            return Err(fail(format!("`{resource_type}` is not a resource type")));
        }
        let mut criteria = Vec::new();
        for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
            let criterion = Criterion::parse(&name, &value);
            if NOT_ALLOWED.contains(&criterion.code.as_str()) {
                return Err(fail(format!(
                    "`{}` is not allowed in a _typeFilter",
                    criterion.code
                )));
            }
            if criterion.code.contains('.') {
                return Err(fail(format!(
                    "chained parameter `{}` is not supported",
                    criterion.code
                )));
            }
            let param =
                fhir::search::search_param(resource_type, &criterion.code).ok_or_else(|| {
                    fail(format!(
                        "`{}` is not a search parameter of {resource_type}",
                        criterion.code
                    ))
                })?;
            let supported = matches!(
                param.kind,
                SearchParamKind::Token
                    | SearchParamKind::String
                    | SearchParamKind::Date
                    | SearchParamKind::Reference
                    | SearchParamKind::Uri
            ) && !param.expression.is_empty();
            if !supported {
                return Err(fail(format!(
                    "search parameter `{}` ({:?}) is not supported in a _typeFilter",
                    criterion.code, param.kind
                )));
            }
            check_modifier(param.kind, criterion.modifier.as_deref()).map_err(&fail)?;
            if param.kind == SearchParamKind::Date && criterion.modifier.is_none() {
                for value in &criterion.values {
                    if DateValue::parse(value).is_none() {
                        return Err(fail(format!(
                            "`{}` needs a date value with an optional prefix",
                            criterion.code
                        )));
                    }
                }
            }
            let (source, target_types) = without_resolve(param.expression);
            let expression = Expression::parse(&source).map_err(|e| {
                fail(format!(
                    "the expression of `{}` does not compile: {e}",
                    criterion.code
                ))
            })?;
            criteria.push(Compiled {
                code: criterion.code,
                kind: param.kind,
                modifier: criterion.modifier,
                values: criterion.values,
                expression,
                target_types,
            });
        }
        if criteria.is_empty() {
            return Err(fail("no search parameters".to_owned()));
        }
        Ok(TypeFilter {
            resource_type: resource_type.to_owned(),
            criteria,
        })
    }

    /// The resource type the filter applies to.
    pub fn resource_type(&self) -> &str {
        &self.resource_type
    }

    /// Whether `resource` matches every criterion.
    pub fn matches(&self, resource: &Value) -> bool {
        self.criteria.iter().all(|c| c.matches(resource))
    }
}

fn check_modifier(kind: SearchParamKind, modifier: Option<&str>) -> Result<(), String> {
    let Some(modifier) = modifier else {
        return Ok(());
    };
    let ok = match kind {
        _ if modifier == "missing" => true,
        SearchParamKind::Token => modifier == "not",
        SearchParamKind::String => matches!(modifier, "exact" | "contains"),
        SearchParamKind::Reference => fhir::types::is_concrete_resource_type(modifier),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!("modifier `:{modifier}` is not supported here"))
    }
}

/// `expression` without its `.where(resolve() is T)` filters, and the types they named.
fn without_resolve(expression: &str) -> (String, Vec<String>) {
    const FILTER: &str = ".where(resolve() is ";
    let mut rest = expression;
    let mut out = String::with_capacity(expression.len());
    let mut types = Vec::new();
    while let Some(start) = rest.find(FILTER) {
        out.push_str(&rest[..start]);
        let after = &rest[start + FILTER.len()..];
        let end = after.find(')').unwrap_or(after.len());
        types.push(after[..end].trim().to_owned());
        rest = after.get(end + 1..).unwrap_or("");
    }
    out.push_str(rest);
    (out, types)
}

impl Compiled {
    fn matches(&self, resource: &Value) -> bool {
        let Ok(items) = self.expression.evaluate(resource) else {
            return false;
        };
        let nodes: Vec<&Value> = items.iter().filter_map(|item| item.json()).collect();
        if self.modifier.as_deref() == Some("missing") {
            let missing = nodes.is_empty();
            return self.values.iter().any(|v| match v.as_str() {
                "true" => missing,
                "false" => !missing,
                _ => false,
            });
        }
        if self.code == "_id" {
            let id = resource.get("id").and_then(Value::as_str);
            return self.values.iter().any(|v| Some(v.as_str()) == id);
        }
        match self.kind {
            SearchParamKind::Token => {
                let any = self
                    .values
                    .iter()
                    .any(|v| nodes.iter().any(|node| token_matches(node, v)));
                if self.modifier.as_deref() == Some("not") {
                    !any
                } else {
                    any
                }
            }
            SearchParamKind::String => self.values.iter().any(|v| {
                let wanted = store::normalize(v);
                nodes.iter().any(|node| {
                    let mut texts = Vec::new();
                    strings(node, &mut texts);
                    texts.iter().any(|text| match self.modifier.as_deref() {
                        Some("exact") => *text == v.as_str(),
                        Some("contains") => store::normalize(text).contains(&wanted),
                        _ => store::normalize(text).starts_with(&wanted),
                    })
                })
            }),
            SearchParamKind::Date => self.values.iter().any(|v| {
                DateValue::parse(v).is_some_and(|wanted| {
                    nodes
                        .iter()
                        .filter_map(|node| node_range(node))
                        .any(|range| wanted.matches(range))
                })
            }),
            SearchParamKind::Reference => self.values.iter().any(|v| {
                nodes
                    .iter()
                    .any(|node| self.reference_matches(node, v.as_str()))
            }),
            SearchParamKind::Uri => self
                .values
                .iter()
                .any(|v| nodes.iter().any(|node| node.as_str() == Some(v.as_str()))),
            _ => false,
        }
    }

    fn reference_matches(&self, node: &Value, wanted: &str) -> bool {
        let Some(text) = node
            .get("reference")
            .and_then(Value::as_str)
            .or_else(|| node.as_str())
        else {
            return false;
        };
        let (target_type, target_id) = match fhir::reference::parse(text) {
            fhir::reference::Reference::Relative {
                resource_type, id, ..
            }
            | fhir::reference::Reference::Absolute {
                resource_type, id, ..
            } => (resource_type, id),
            _ => return text == wanted,
        };
        if !self.target_types.is_empty() && !self.target_types.iter().any(|t| t == target_type) {
            return false;
        }
        if let Some(modifier) = self.modifier.as_deref()
            && modifier != target_type
        {
            return false;
        }
        if text == wanted {
            return true;
        }
        match wanted.rsplit_once('/') {
            Some((prefix, id)) => {
                id == target_id
                    && prefix.rsplit('/').next() == Some(target_type)
                    && (!prefix.contains("://") || text.ends_with(&format!("{target_type}/{id}")))
            }
            None => wanted == target_id,
        }
    }
}

/// Whether a token node (`code`, `boolean`, `Coding`, `CodeableConcept`, `Identifier`,
/// `ContactPoint`) matches a `[system]|[code]` value.
fn token_matches(node: &Value, wanted: &str) -> bool {
    let (system, code) = match wanted.split_once('|') {
        Some((system, code)) => (Some(system), code),
        None => (None, wanted),
    };
    let pair_matches = |node_system: Option<&str>, node_code: Option<&str>| {
        let system_ok = match system {
            None => true,
            Some("") => node_system.is_none(),
            Some(s) => node_system == Some(s),
        };
        let code_ok = code.is_empty() && system.is_some() || node_code == Some(code);
        system_ok && code_ok
    };
    match node {
        Value::String(text) => system.is_none_or(str::is_empty) && text == code,
        Value::Bool(b) => system.is_none() && code == if *b { "true" } else { "false" },
        Value::Object(map) => {
            if let Some(codings) = map.get("coding").and_then(Value::as_array) {
                return codings.iter().any(|c| {
                    pair_matches(
                        c.get("system").and_then(Value::as_str),
                        c.get("code").and_then(Value::as_str),
                    )
                });
            }
            let code_key = if map.contains_key("code") {
                "code"
            } else {
                "value"
            };
            pair_matches(
                map.get("system").and_then(Value::as_str),
                map.get(code_key).and_then(Value::as_str),
            )
        }
        _ => false,
    }
}

/// Every string in a node (a string, or the string leaves of a `HumanName`, `Address`, …).
fn strings<'a>(node: &'a Value, out: &mut Vec<&'a str>) {
    match node {
        Value::String(text) => out.push(text),
        Value::Array(items) => items.iter().for_each(|item| strings(item, out)),
        Value::Object(map) => map
            .iter()
            .filter(|(key, _)| !matches!(key.as_str(), "use" | "type" | "period" | "extension"))
            .for_each(|(_, value)| strings(value, out)),
        _ => {}
    }
}

/// The half-open range of milliseconds `[low, high)` a date node covers.
type Range = (i64, i64);

fn node_range(node: &Value) -> Option<Range> {
    match node {
        Value::String(text) => date_range(text),
        Value::Object(map) => {
            let start = map.get("start").and_then(Value::as_str);
            let end = map.get("end").and_then(Value::as_str);
            if start.is_none() && end.is_none() {
                return None;
            }
            let low = match start {
                Some(s) => date_range(s)?.0,
                None => i64::MIN,
            };
            let high = match end {
                Some(e) => date_range(e)?.1,
                None => i64::MAX,
            };
            Some((low, high))
        }
        _ => None,
    }
}

/// The range of a FHIR date, dateTime or instant at its precision.
fn date_range(text: &str) -> Option<Range> {
    let low = Timestamp::parse(text)?.millis();
    let date_part = text.split('T').next().unwrap_or(text);
    let high = match (text.contains('T'), date_part.len()) {
        (false, 4) => {
            let year: i32 = text.parse().ok()?;
            Timestamp::parse(&format!("{:04}", year + 1))?.millis()
        }
        (false, 7) => {
            let year: i32 = text[..4].parse().ok()?;
            let month: u32 = text[5..7].parse().ok()?;
            let (y, m) = if month == 12 {
                (year + 1, 1)
            } else {
                (year, month + 1)
            };
            Timestamp::parse(&format!("{y:04}-{m:02}"))?.millis()
        }
        (false, _) => low + 86_400_000,
        (true, _) => {
            let time = &text[text.find('T')? + 1..];
            let clock = time
                .split(['Z', '+', '-'])
                .next()
                .unwrap_or(time)
                .to_owned();
            let width = match clock.split(':').count() {
                2 => 60_000,
                _ if clock.contains('.') => 1,
                _ => 1000,
            };
            low + width
        }
    };
    Some((low, high))
}

/// A date search value: prefix and range.
#[derive(Debug, Clone, Copy)]
struct DateValue {
    prefix: &'static str,
    range: Range,
}

impl DateValue {
    fn parse(value: &str) -> Option<DateValue> {
        const PREFIXES: [&str; 9] = ["eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap"];
        let (prefix, rest) = PREFIXES
            .iter()
            .find_map(|p| value.strip_prefix(p).map(|rest| (*p, rest)))
            .unwrap_or(("eq", value));
        Some(DateValue {
            prefix,
            range: date_range(rest)?,
        })
    }

    fn matches(&self, (low, high): Range) -> bool {
        let (s_low, s_high) = self.range;
        let eq = low >= s_low && high <= s_high;
        match self.prefix {
            "ne" => !eq,
            "gt" => high > s_high,
            "lt" => low < s_low,
            "ge" => high > s_high || eq,
            "le" => low < s_low || eq,
            "sa" => low >= s_high,
            "eb" => high <= s_low,
            "ap" => low < s_high && high > s_low,
            _ => eq,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn observation() -> Value {
        json!({
            "resourceType": "Observation",
            "id": "o1",
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
            "subject": {"reference": "Patient/p1"},
            "effectiveDateTime": "2021-03-04T10:00:00Z"
        })
    }

    fn matches(filter: &str, resource: &Value) -> bool {
        TypeFilter::parse(filter).unwrap().matches(resource)
    }

    #[test]
    fn tokens_match_code_and_system() {
        let obs = observation();
        assert!(matches("Observation?status=final", &obs));
        assert!(matches("Observation?status=amended,final", &obs));
        assert!(!matches("Observation?status=amended", &obs));
        assert!(matches("Observation?code=http://loinc.org|8867-4", &obs));
        assert!(matches("Observation?code=http://loinc.org|", &obs));
        assert!(!matches(
            "Observation?code=http://snomed.info/sct|8867-4",
            &obs
        ));
        assert!(matches("Observation?status:not=amended", &obs));
    }

    #[test]
    fn criteria_are_and_ed() {
        let obs = observation();
        assert!(matches("Observation?status=final&subject=Patient/p1", &obs));
        assert!(!matches(
            "Observation?status=final&subject=Patient/p2",
            &obs
        ));
    }

    #[test]
    fn references_match_by_id_and_type() {
        let obs = observation();
        assert!(matches("Observation?patient=p1", &obs));
        assert!(matches("Observation?subject:Patient=p1", &obs));
        assert!(!matches("Observation?subject:Group=p1", &obs));
        assert!(matches(
            "Observation?subject=http://x.org/fhir/Patient/p1",
            &obs
        ));
    }

    #[test]
    fn dates_compare_ranges_with_prefixes() {
        let obs = observation();
        assert!(matches("Observation?date=2021", &obs));
        assert!(matches("Observation?date=2021-03", &obs));
        assert!(matches("Observation?date=ge2021-03-04", &obs));
        assert!(matches("Observation?date=gt2020-12-31", &obs));
        assert!(!matches("Observation?date=lt2021-01-01", &obs));
        assert!(matches("Observation?date=ap2021-03-04", &obs));
    }

    #[test]
    fn strings_match_normalised_prefixes() {
        let patient =
            json!({"resourceType": "Patient", "name": [{"family": "Núñez", "given": ["Ana"]}]});
        assert!(matches("Patient?family=nun", &patient));
        assert!(matches("Patient?name=ana", &patient));
        assert!(!matches("Patient?family:exact=nunez", &patient));
        assert!(matches("Patient?family:contains=ÑE", &patient));
        assert!(matches("Patient?gender:missing=true", &patient));
    }

    #[test]
    fn bad_filters_name_the_parameter() {
        for (filter, part) in [
            ("Observation", "expected"),
            ("Nope?x=1", "not a resource type"),
            ("Observation?nope=1", "`nope`"),
            ("Observation?_sort=date", "`_sort`"),
            ("Observation?subject.name=x", "chained"),
            ("Observation?date=yesterday", "`date`"),
            ("Observation?value-quantity=5", "not supported"),
        ] {
            let error = TypeFilter::parse(filter).unwrap_err();
            assert!(error.to_string().contains(part), "{filter}: {error}");
        }
    }
}
