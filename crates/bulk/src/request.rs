//! What to export: the kick-off endpoint and its parameters, sent as a GET query or a POST
//! `Parameters` body.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use url::Url;

/// The level of the export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "level", content = "id")]
pub enum Level {
    /// `[base]/$export`.
    System,
    /// `[base]/Patient/$export`.
    Patient,
    /// `[base]/Group/[id]/$export`.
    Group(String),
}

/// The kick-off request of an export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportRequest {
    /// The FHIR base URL of the server.
    pub server: String,
    /// System, Patient or Group export.
    pub level: Level,
    /// `_type`: resource types to export (empty = all).
    pub types: Vec<String>,
    /// `_since`: only resources changed after this instant.
    pub since: Option<String>,
    /// `_until` (STU3): only resources changed before this instant.
    pub until: Option<String>,
    /// `_typeFilter`: one search query per value (`Type?param=value`).
    pub type_filters: Vec<String>,
    /// `_elements`: top-level elements to keep.
    pub elements: Vec<String>,
    /// `patient`: patient ids to restrict a Patient or Group export to (POST only).
    pub patients: Vec<String>,
    /// `_outputFormat`; `None` leaves the server's default (`application/fhir+ndjson`).
    pub output_format: Option<String>,
    /// Further kick-off parameters passed as given (`allowPartialManifests=true`,
    /// `organizeOutputBy=Patient`, vendor extras). In a POST body, `true`/`false` become
    /// `valueBoolean`, anything else `valueString`.
    pub extra: Vec<(String, String)>,
    /// Kick off with POST and a `Parameters` body instead of GET and a query.
    pub post: bool,
}

impl ExportRequest {
    /// A request for everything at `level` on `server`, kicked off by GET.
    pub fn new(server: impl Into<String>, level: Level) -> Self {
        ExportRequest {
            server: server.into(),
            level,
            types: Vec::new(),
            since: None,
            until: None,
            type_filters: Vec::new(),
            elements: Vec::new(),
            patients: Vec::new(),
            output_format: None,
            extra: Vec::new(),
            post: false,
        }
    }

    /// True if the request is sent by POST (asked for, or needed because `patient` is set).
    pub fn uses_post(&self) -> bool {
        self.post || !self.patients.is_empty()
    }

    /// The kick-off URL: the endpoint, plus the query for a GET kick-off.
    pub fn kickoff_url(&self) -> Result<Url, String> {
        let base = self.server.trim_end_matches('/');
        let path = match &self.level {
            Level::System => "$export".to_owned(),
            Level::Patient => "Patient/$export".to_owned(),
            Level::Group(id) => {
                if id.is_empty()
                    || id.len() > 64
                    || !id
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
                {
                    return Err("the Group id must be 1-64 letters, digits, '-' or '.'".into());
                }
                format!("Group/{id}/$export")
            }
        };
        let mut url = Url::parse(&format!("{base}/{path}"))
            .map_err(|e| format!("--server is not an absolute URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err("--server must be an http or https URL".into());
        }
        let parameters = self.parameters();
        if !self.uses_post() && !parameters.is_empty() {
            let mut query = url.query_pairs_mut();
            for (name, value) in parameters {
                query.append_pair(name, &value);
            }
        }
        Ok(url)
    }

    /// The parameters as (name, value) pairs; multi-valued STU2/3 parameters comma-joined.
    fn parameters(&self) -> Vec<(&str, String)> {
        let mut params = Vec::new();
        if let Some(format) = &self.output_format {
            params.push(("_outputFormat", format.clone()));
        }
        if let Some(since) = &self.since {
            params.push(("_since", since.clone()));
        }
        if let Some(until) = &self.until {
            params.push(("_until", until.clone()));
        }
        if !self.types.is_empty() {
            params.push(("_type", self.types.join(",")));
        }
        if !self.elements.is_empty() {
            params.push(("_elements", self.elements.join(",")));
        }
        for filter in &self.type_filters {
            params.push(("_typeFilter", filter.clone()));
        }
        for (name, value) in &self.extra {
            params.push((name.as_str(), value.clone()));
        }
        params
    }

    /// The `Parameters` body of a POST kick-off: one repeated parameter per value (as STU4
    /// requires, and STU2/3 treat like the comma-joined form).
    pub fn parameters_body(&self) -> Value {
        let mut parameter = Vec::new();
        if let Some(format) = &self.output_format {
            parameter.push(json!({"name": "_outputFormat", "valueString": format}));
        }
        if let Some(since) = &self.since {
            parameter.push(json!({"name": "_since", "valueInstant": since}));
        }
        if let Some(until) = &self.until {
            parameter.push(json!({"name": "_until", "valueInstant": until}));
        }
        for t in &self.types {
            parameter.push(json!({"name": "_type", "valueString": t}));
        }
        for e in &self.elements {
            parameter.push(json!({"name": "_elements", "valueString": e}));
        }
        for f in &self.type_filters {
            parameter.push(json!({"name": "_typeFilter", "valueString": f}));
        }
        for (name, value) in &self.extra {
            parameter.push(match value.as_str() {
                "true" | "false" => json!({"name": name, "valueBoolean": value == "true"}),
                _ => json!({"name": name, "valueString": value}),
            });
        }
        for p in &self.patients {
            parameter.push(
                json!({"name": "patient", "valueReference": {"reference": format!("Patient/{p}")}}),
            );
        }
        json!({"resourceType": "Parameters", "parameter": parameter})
    }

    /// The request parameters as the SMART client's `kickoff` log event shows them.
    pub fn log_parameters(&self) -> Value {
        let mut object = serde_json::Map::new();
        for (name, value) in self.parameters() {
            object.insert(name.to_owned(), Value::String(value));
        }
        if !self.patients.is_empty() {
            object.insert("patient".into(), Value::String(self.patients.join(",")));
        }
        Value::Object(object)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_kickoff_puts_parameters_in_the_query() {
        let mut r = ExportRequest::new("http://h/fhir/", Level::Group("g1".into()));
        r.types = vec!["Patient".into(), "Condition".into()];
        r.since = Some("2024-01-01T00:00:00Z".into());
        r.type_filters = vec!["Condition?clinical-status=active".into()];
        r.extra = vec![("organizeOutputBy".into(), "Patient".into())];
        assert_eq!(
            r.kickoff_url().unwrap().as_str(),
            "http://h/fhir/Group/g1/$export?_since=2024-01-01T00%3A00%3A00Z&_type=Patient%2CCondition&_typeFilter=Condition%3Fclinical-status%3Dactive&organizeOutputBy=Patient"
        );
    }

    #[test]
    fn post_kickoff_repeats_parameters_in_the_body() {
        let mut r = ExportRequest::new("http://h/fhir", Level::Patient);
        r.types = vec!["Patient".into(), "Condition".into()];
        r.patients = vec!["p1".into()];
        r.extra = vec![("allowPartialManifests".into(), "true".into())];
        assert!(r.uses_post());
        assert_eq!(
            r.kickoff_url().unwrap().as_str(),
            "http://h/fhir/Patient/$export"
        );
        let body = r.parameters_body();
        let names: Vec<_> = body["parameter"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            ["_type", "_type", "allowPartialManifests", "patient"]
        );
        assert_eq!(body["parameter"][2]["valueBoolean"], true);
        assert_eq!(
            body["parameter"][3]["valueReference"]["reference"],
            "Patient/p1"
        );
    }

    #[test]
    fn bad_servers_and_group_ids_are_refused() {
        assert!(
            ExportRequest::new("ftp://h", Level::System)
                .kickoff_url()
                .is_err()
        );
        assert!(
            ExportRequest::new("not a url", Level::System)
                .kickoff_url()
                .is_err()
        );
        assert!(
            ExportRequest::new("http://h", Level::Group("../x".into()))
                .kickoff_url()
                .is_err()
        );
    }
}
