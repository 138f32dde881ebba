//! Search: query parameters parsed into a [`store::SearchQuery`] plus the result parameters
//! this server applies itself (`_elements`, `_summary`), and the searchset Bundle with its
//! `self`/`next`/`previous`/`first` links.
//!
//! Parameters the store cannot search on are refused (400) unless the client sent
//! `Prefer: handling=lenient`; then they are ignored and an `OperationOutcome` entry (search
//! mode `outcome`) says so. A parameter with an empty value is ignored, as FHIR says.

use axum::http::StatusCode;
use serde_json::{Map, Value, json};
use store::{Criterion, SearchQuery, Sort, Store};

use crate::ServerConfig;
use crate::outcome::{FhirError, Issue, operation_outcome};
use crate::respond::{BundleOut, EntryOut, raw};

/// The `meta.tag` that marks a resource reduced by `_elements` or `_summary`.
const SUBSETTED_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/v3-ObservationValue";

/// Result parameters accepted and ignored (JSON is the only format).
const IGNORED: &[&str] = &["_pretty", "_format"];

/// `_summary`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Summary {
    /// The whole resources.
    False,
    /// The total only, no entries.
    Count,
    /// The resources without their narrative.
    Data,
}

/// A parsed search request.
#[derive(Debug, Clone)]
pub struct Search {
    /// What the store runs.
    pub query: SearchQuery,
    elements: Option<Vec<String>>,
    summary: Summary,
    notes: Vec<Issue>,
    /// Parameters carried into paging links (criteria and result parameters, as given).
    link_params: Vec<(String, String)>,
}

/// The search parameter codes that `resource_type` supports (`_id`, `_lastUpdated` and the
/// indexed ones).
pub fn supported_params(resource_type: &str) -> Vec<&'static str> {
    store::indexed_params(resource_type)
        .iter()
        .map(|param| param.code)
        .collect()
}

impl Search {
    /// Parses the (percent-decoded) query parameters of a search on `resource_type`.
    pub fn parse(
        resource_type: &str,
        params: &[(String, String)],
        config: &ServerConfig,
        lenient: bool,
    ) -> Result<Search, FhirError> {
        let supported = supported_params(resource_type);
        let mut search = Search {
            query: SearchQuery::new(resource_type),
            elements: None,
            summary: Summary::False,
            notes: Vec::new(),
            link_params: Vec::new(),
        };
        search.query.count = config.default_page_size;
        search.query.total = true;
        let refuse = |search: &mut Search, code: &str, why: &str| {
            let message = format!("search parameter {code} {why}");
            if lenient {
                search.notes.push(Issue::information(
                    "not-supported",
                    format!("{message}; ignored"),
                ));
                Ok(())
            } else {
                Err(FhirError::new(
                    StatusCode::BAD_REQUEST,
                    "not-supported",
                    format!("{message} (send Prefer: handling=lenient to ignore it)"),
                ))
            }
        };
        for (name, value) in params {
            if value.is_empty() {
                continue;
            }
            let code = name.split(':').next().unwrap_or(name);
            match code {
                "_count" => {
                    let count: usize = value.parse().map_err(|_| {
                        FhirError::bad_request("_count must be a non-negative integer")
                    })?;
                    search.query.count = count.min(config.max_page_size);
                }
                "_offset" => {
                    search.query.offset = value.parse().map_err(|_| {
                        FhirError::bad_request("_offset must be a non-negative integer")
                    })?;
                }
                "_sort" => match value.as_str() {
                    "_lastUpdated" => search.query.sort = Sort::LastUpdated,
                    "-_lastUpdated" => search.query.sort = Sort::LastUpdatedDesc,
                    _ => {
                        refuse(
                            &mut search,
                            "_sort",
                            "supports only _lastUpdated and -_lastUpdated",
                        )?;
                        continue;
                    }
                },
                "_total" => match value.as_str() {
                    "none" => search.query.total = false,
                    "estimate" | "accurate" => search.query.total = true,
                    _ => {
                        return Err(FhirError::bad_request(
                            "_total must be none, estimate or accurate",
                        ));
                    }
                },
                "_summary" => match value.as_str() {
                    "count" => search.summary = Summary::Count,
                    "false" => search.summary = Summary::False,
                    "data" => search.summary = Summary::Data,
                    "true" | "text" => {
                        refuse(
                            &mut search,
                            "_summary",
                            "supports only count, data and false",
                        )?;
                        continue;
                    }
                    _ => {
                        return Err(FhirError::bad_request(
                            "_summary must be true, text, data, count or false",
                        ));
                    }
                },
                "_elements" => {
                    let mut names = Vec::new();
                    for element in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
                        let element = element
                            .strip_prefix(&format!("{resource_type}."))
                            .unwrap_or(element);
                        if fhir::types::element(resource_type, element).is_some() {
                            names.push(element.to_owned());
                        } else {
                            refuse(
                                &mut search,
                                "_elements",
                                &format!("names no element {element} of {resource_type}"),
                            )?;
                        }
                    }
                    search.elements = Some(names);
                }
                _ if IGNORED.contains(&code) => continue,
                _ if supported.contains(&code) => {
                    search.query.criteria.push(Criterion::parse(name, value));
                }
                _ => {
                    refuse(
                        &mut search,
                        code,
                        &format!("is not supported on {resource_type}"),
                    )?;
                    continue;
                }
            }
            if code != "_count" && code != "_offset" {
                search.link_params.push((name.clone(), value.clone()));
            }
        }
        if search.summary == Summary::Count {
            search.query.count = 0;
            search.query.total = true;
        }
        Ok(search)
    }

    /// Runs the search and builds the searchset Bundle (`base_url` without a trailing `/`).
    pub fn run(&self, store: &dyn Store, base_url: &str) -> Result<String, FhirError> {
        let page = store.search(&self.query)?;
        let resource_type = &self.query.resource_type;
        let mut bundle = BundleOut::new("searchset");
        bundle.total = page.total;
        let count = self.query.count;
        let offset = self.query.offset;
        let link = |offset: usize| self.link(base_url, count, offset);
        bundle.link("self", link(offset));
        if count > 0 {
            bundle.link("first", link(0));
            if offset > 0 {
                bundle.link("previous", link(offset.saturating_sub(count)));
            }
            if page.more {
                bundle.link("next", link(offset + count));
            }
        }
        for resource in page.resources {
            let json = match (&self.elements, self.summary) {
                (None, Summary::False | Summary::Count) => resource.json,
                (elements, _) => subset(&resource.json, elements.as_deref(), self.summary)?,
            };
            bundle.entry.push(EntryOut {
                full_url: Some(format!("{base_url}/{resource_type}/{}", resource.id)),
                resource: Some(raw(json)),
                search: Some(json!({"mode": "match"})),
                ..EntryOut::default()
            });
        }
        if !self.notes.is_empty() {
            bundle.entry.push(EntryOut {
                resource: Some(raw(operation_outcome(&self.notes).to_string())),
                search: Some(json!({"mode": "outcome"})),
                ..EntryOut::default()
            });
        }
        Ok(bundle.to_text())
    }

    /// A paging link: the parameters as given, with `_count` and `_offset`.
    fn link(&self, base_url: &str, count: usize, offset: usize) -> String {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for (name, value) in &self.link_params {
            query.append_pair(name, value);
        }
        query.append_pair("_count", &count.to_string());
        if offset > 0 {
            query.append_pair("_offset", &offset.to_string());
        }
        format!("{base_url}/{}?{}", self.query.resource_type, query.finish())
    }
}

/// The resource reduced to `elements` (plus `resourceType`, `id` and `meta`), or without its
/// narrative for `_summary=data`, tagged `SUBSETTED`.
fn subset(json: &str, elements: Option<&[String]>, summary: Summary) -> Result<String, FhirError> {
    let Value::Object(resource) = serde_json::from_str::<Value>(json)
        .map_err(|_| FhirError::internal("a stored resource is not valid JSON"))?
    else {
        return Err(FhirError::internal(
            "a stored resource is not a JSON object",
        ));
    };
    let keep = |key: &str| match (elements, summary) {
        (_, Summary::Data) if key == "text" => false,
        (Some(elements), _) => {
            matches!(key, "resourceType" | "id" | "meta")
                || elements.iter().any(|element| is_element_key(key, element))
        }
        (None, _) => true,
    };
    let mut out: Map<String, Value> = resource.into_iter().filter(|(key, _)| keep(key)).collect();
    let meta = out
        .entry("meta")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(meta) = meta {
        let tags = meta
            .entry("tag")
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(tags) = tags {
            tags.push(json!({"system": SUBSETTED_SYSTEM, "code": "SUBSETTED"}));
        }
    }
    Ok(Value::Object(out).to_string())
}

/// Whether JSON key `key` holds element `element`: the name itself, its `_name` primitive
/// extension, or a choice expansion (`valueQuantity` for `value`).
fn is_element_key(key: &str, element: &str) -> bool {
    let key = key.strip_prefix('_').unwrap_or(key);
    key == element
        || key
            .strip_prefix(element)
            .and_then(|rest| rest.chars().next())
            .is_some_and(char::is_uppercase)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn unknown_parameters_are_refused_unless_lenient() {
        let config = ServerConfig::default();
        let query = params(&[("shoe-size", "9"), ("gender", "female")]);
        let error = Search::parse("Patient", &query, &config, false).unwrap_err();
        assert_eq!(error.status, StatusCode::BAD_REQUEST);
        assert!(error.issues[0].diagnostics.contains("shoe-size"));
        let search = Search::parse("Patient", &query, &config, true).unwrap();
        assert_eq!(search.query.criteria.len(), 1);
        assert_eq!(search.notes.len(), 1);
    }

    #[test]
    fn result_parameters_shape_the_query() {
        let config = ServerConfig::default();
        let query = params(&[
            ("_count", "5000"),
            ("_sort", "-_lastUpdated"),
            ("_total", "none"),
            ("name", ""),
        ]);
        let search = Search::parse("Patient", &query, &config, false).unwrap();
        assert_eq!(search.query.count, config.max_page_size);
        assert_eq!(search.query.sort, Sort::LastUpdatedDesc);
        assert!(!search.query.total);
        assert!(search.query.criteria.is_empty());
    }

    #[test]
    fn elements_keep_mandatory_keys_and_choice_expansions() {
        let json = r#"{"resourceType":"Observation","id":"o","status":"final","valueQuantity":{"value":1.50},"text":{"div":"x"}}"#;
        let elements = vec!["value".to_owned()];
        let out = subset(json, Some(&elements), Summary::False).unwrap();
        assert_eq!(
            out,
            r#"{"resourceType":"Observation","id":"o","valueQuantity":{"value":1.50},"meta":{"tag":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ObservationValue","code":"SUBSETTED"}]}}"#
        );
        let data = subset(json, None, Summary::Data).unwrap();
        assert!(!data.contains("\"text\""));
        assert!(data.contains("\"status\""));
    }
}
