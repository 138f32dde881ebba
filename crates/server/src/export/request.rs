//! The kick-off request: headers and parameters (query string or `Parameters` body) checked
//! and resolved into an [`ExportRequest`], which the job record keeps.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use store::Timestamp;

use super::filter::TypeFilter;

/// The NDJSON spellings of `_outputFormat` that the specification requires servers to accept.
pub const OUTPUT_FORMATS: [&str; 3] = ["application/fhir+ndjson", "application/ndjson", "ndjson"];

/// Which `$export` operation was called.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Level {
    /// `[base]/$export`: every resource.
    System,
    /// `[base]/Patient/$export`: the Patient compartment of every patient.
    Patient,
    /// `[base]/Group/[id]/$export`: the compartments of the Group's members.
    Group {
        /// The Group's id.
        id: String,
    },
}

/// A checked kick-off request, as stored in the job record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportRequest {
    /// The kick-off URL for the manifest's `request` (with the query string for GET, without
    /// parameters for POST).
    pub url: String,
    /// The operation.
    pub level: Level,
    /// The resource types to export, in export order.
    pub types: Vec<String>,
    /// `_since` as an instant.
    pub since: Option<String>,
    /// `_until` as an instant.
    pub until: Option<String>,
    /// Patient ids from `patient` (POST); for a Group export the Group's members are
    /// resolved at kick-off and stored here too.
    pub patients: Option<Vec<String>>,
    /// `_typeFilter` queries (`Type?…`), as given.
    pub type_filters: Vec<String>,
    /// `_elements`: `(type or None for all types, element)`.
    pub elements: Vec<(Option<String>, String)>,
    /// `_anonymizationConfig`: a preset or registered configuration name.
    pub anonymization: Option<String>,
    /// Informational notes about what was ignored under `Prefer: handling=lenient`; written
    /// to the manifest's `error[]` as OperationOutcomes.
    pub notes: Vec<String>,
}

impl ExportRequest {
    /// `_since` as a timestamp.
    pub fn since(&self) -> Option<Timestamp> {
        self.since.as_deref().and_then(Timestamp::parse)
    }

    /// `_until` as a timestamp.
    pub fn until(&self) -> Option<Timestamp> {
        self.until.as_deref().and_then(Timestamp::parse)
    }
}

/// A refused kick-off: the HTTP status and a message naming the header or parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// 400 for bad requests, 404 for an unknown Group.
    pub status: u16,
    /// The OperationOutcome issue code (`invalid`, `not-supported`, `not-found`).
    pub code: &'static str,
    /// What is wrong.
    pub message: String,
}

impl Refusal {
    /// A 400 `invalid`.
    pub fn invalid(message: impl Into<String>) -> Refusal {
        Refusal {
            status: 400,
            code: "invalid",
            message: message.into(),
        }
    }

    fn not_supported(message: impl Into<String>) -> Refusal {
        Refusal {
            status: 400,
            code: "not-supported",
            message: message.into(),
        }
    }
}

/// The headers of a kick-off that matter.
#[derive(Debug, Clone, Default)]
pub struct KickoffHeaders<'a> {
    /// `Accept`, if sent.
    pub accept: Option<&'a str>,
    /// Every `Prefer` header value.
    pub prefer: Vec<&'a str>,
}

/// Checks `Accept` and `Prefer`; returns whether `handling=lenient` was asked for.
///
/// A missing `Accept`, `application/fhir+json`, `application/json` and `*/*` are accepted
/// (the specification lets a server assume `application/fhir+json`); `Prefer` must contain
/// `respond-async`.
pub fn check_headers(headers: &KickoffHeaders<'_>) -> Result<bool, Refusal> {
    if let Some(accept) = headers.accept {
        let acceptable = accept.split(',').any(|range| {
            let media = range.split(';').next().unwrap_or("").trim();
            matches!(
                media,
                "application/fhir+json" | "application/json" | "*/*" | "application/*" | ""
            )
        });
        if !acceptable {
            return Err(Refusal::invalid(
                "header Accept: a kick-off must accept application/fhir+json",
            ));
        }
    }
    let prefs: Vec<&str> = headers
        .prefer
        .iter()
        .flat_map(|value| value.split(','))
        .map(|pref| pref.trim())
        .collect();
    if !prefs.contains(&"respond-async") {
        return Err(Refusal::invalid(
            "header Prefer: a kick-off must send `Prefer: respond-async`",
        ));
    }
    Ok(prefs
        .iter()
        .any(|pref| pref.replace(' ', "") == "handling=lenient"))
}

/// Parameter values gathered from the query string and a `Parameters` body, in order.
#[derive(Debug, Clone, Default)]
pub struct RawParams {
    params: Vec<(String, RawValue)>,
}

/// One parameter value.
#[derive(Debug, Clone)]
enum RawValue {
    Text(String),
    Reference(String),
}

impl RawParams {
    /// Parameters from a URL query string.
    pub fn from_query(query: &str) -> RawParams {
        RawParams {
            params: url::form_urlencoded::parse(query.as_bytes())
                .map(|(name, value)| (name.into_owned(), RawValue::Text(value.into_owned())))
                .collect(),
        }
    }

    /// Adds the parameters of a FHIR `Parameters` resource (a POST kick-off body).
    pub fn add_parameters(&mut self, body: &Value) -> Result<(), Refusal> {
        if body.get("resourceType").and_then(Value::as_str) != Some("Parameters") {
            return Err(Refusal::invalid(
                "a POST kick-off body must be a Parameters resource",
            ));
        }
        let parameters = match body.get("parameter") {
            None => return Ok(()),
            Some(Value::Array(parameters)) => parameters,
            Some(_) => return Err(Refusal::invalid("Parameters.parameter must be an array")),
        };
        for (i, parameter) in parameters.iter().enumerate() {
            let name = parameter
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    Refusal::invalid(format!("Parameters.parameter[{i}].name is missing"))
                })?;
            let value = parameter
                .as_object()
                .and_then(|map| map.iter().find(|(key, _)| key.starts_with("value")));
            let value = match value {
                Some((_, Value::String(text))) => RawValue::Text(text.clone()),
                Some((_, Value::Bool(b))) => RawValue::Text(b.to_string()),
                Some((key, object)) if key == "valueReference" => RawValue::Reference(
                    object
                        .get("reference")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                ),
                Some((key, object)) if key == "valueCoding" => RawValue::Text(
                    object
                        .get("code")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                ),
                _ => {
                    return Err(Refusal::invalid(format!(
                        "Parameters.parameter[{i}] ({name}) has no supported value[x]"
                    )));
                }
            };
            self.params.push((name.to_owned(), value));
        }
        Ok(())
    }

    /// Every value of `name`, comma-joined values split (STU2/3 treat repeats and comma
    /// lists alike).
    fn list(&self, name: &str) -> Vec<String> {
        self.values(name)
            .flat_map(|v| {
                v.split(',')
                    .map(str::trim)
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .filter(|v| !v.is_empty())
            .collect()
    }

    fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.params
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| match v {
                RawValue::Text(text) | RawValue::Reference(text) => text.as_str(),
            })
    }

    fn single<'a>(&'a self, name: &'a str) -> Result<Option<&'a str>, Refusal> {
        let mut values = self.values(name);
        let first = values.next();
        if values.next().is_some() {
            return Err(Refusal::invalid(format!(
                "parameter {name} may appear once"
            )));
        }
        Ok(first)
    }
}

/// What the server offers for `_anonymizationConfig`: whether a name is known.
pub trait AnonymizationNames {
    /// Whether `name` is a preset or a registered configuration.
    fn knows(&self, name: &str) -> bool;
}

/// The parameters this server reads; anything else is unsupported.
const KNOWN: &[&str] = &[
    "_outputFormat",
    "_since",
    "_until",
    "_type",
    "_typeFilter",
    "_elements",
    "patient",
    "includeAssociatedData",
    "_anonymizationConfig",
    "allowPartialManifests",
    "organizeOutputBy",
    "_format",
];

/// Checks and resolves kick-off parameters. `post` says whether they came from a POST
/// (`patient` is only allowed there); `lenient` turns refusals of unsupported things into
/// notes.
pub fn resolve(
    level: Level,
    url: String,
    params: &RawParams,
    post: bool,
    lenient: bool,
    anonymization: &dyn AnonymizationNames,
) -> Result<ExportRequest, Refusal> {
    let mut notes = Vec::new();
    let mut unsupported = |message: String| -> Result<(), Refusal> {
        if lenient {
            notes.push(format!("ignored: {message}"));
            Ok(())
        } else {
            Err(Refusal::not_supported(message))
        }
    };
    for (name, _) in &params.params {
        if !KNOWN.contains(&name.as_str()) {
            unsupported(format!("parameter {name} is not supported"))?;
        }
    }
    if let Some(format) = params.single("_outputFormat")?
        && !OUTPUT_FORMATS.contains(&format)
    {
        unsupported(format!(
            "_outputFormat {format}: only application/fhir+ndjson is produced"
        ))?;
    }
    if let Some(format) = params.single("_format")?
        && !matches!(
            format,
            "json" | "application/json" | "application/fhir+json"
        )
    {
        unsupported(format!("_format {format}"))?;
    }
    let instant = |name: &str| -> Result<Option<String>, Refusal> {
        params
            .single(name)?
            .map(|text| {
                Timestamp::parse(text)
                    .map(|t| t.to_string())
                    .ok_or_else(|| {
                        Refusal::invalid(format!("parameter {name} is not a valid FHIR instant"))
                    })
            })
            .transpose()
    };
    let since = instant("_since")?;
    let until = instant("_until")?;
    if !params.list("includeAssociatedData").is_empty() {
        unsupported("parameter includeAssociatedData is not supported".to_owned())?;
    }
    if params.single("organizeOutputBy")?.is_some() {
        unsupported("parameter organizeOutputBy is not supported".to_owned())?;
    }
    if let Some(value) = params.single("allowPartialManifests")?
        && !matches!(value, "true" | "false")
    {
        return Err(Refusal::invalid(
            "allowPartialManifests must be true or false",
        ));
    }

    let in_scope = |t: &str| match level {
        Level::System => true,
        _ => t == "Patient" || fhir::compartment::patient_compartment_params(t).is_some(),
    };
    let mut types: Vec<String> = Vec::new();
    for t in params.list("_type") {
        if !fhir::types::is_concrete_resource_type(&t) {
            unsupported(format!("_type {t} is not a resource type"))?;
        } else if !in_scope(&t) {
            unsupported(format!("_type {t} is not in the Patient compartment"))?;
        } else if !types.contains(&t) {
            types.push(t);
        }
    }
    let requested_types = !params.list("_type").is_empty();
    if requested_types && types.is_empty() {
        return Err(Refusal::invalid(
            "_type names no resource type this export can give",
        ));
    }
    if !requested_types {
        types = fhir::types::resource_types()
            .iter()
            .filter(|t| in_scope(t))
            .map(|t| (*t).to_owned())
            .collect();
    }

    let mut type_filters = Vec::new();
    for filter in params.values("_typeFilter") {
        match TypeFilter::parse(filter) {
            Ok(compiled) if types.iter().any(|t| t == compiled.resource_type()) => {
                type_filters.push(filter.to_owned());
            }
            Ok(compiled) => unsupported(format!(
                "_typeFilter on {}, a type this export does not include",
                compiled.resource_type()
            ))?,
            Err(error) => unsupported(error.to_string())?,
        }
    }

    let mut elements = Vec::new();
    for element in params.list("_elements") {
        let (scope, name) = match element.split_once('.') {
            Some((t, name)) => (Some(t.to_owned()), name.to_owned()),
            None => (None, element.clone()),
        };
        let valid_name = !name.is_empty()
            && !name.contains('.')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        let valid_type = scope
            .as_deref()
            .is_none_or(fhir::types::is_concrete_resource_type);
        let known = match scope.as_deref() {
            Some(t) if valid_type => fhir::types::element(t, &name).is_some(),
            _ => true,
        };
        if valid_name && valid_type && known {
            elements.push((scope, name));
        } else {
            unsupported(format!("_elements {element} is not a top-level element"))?;
        }
    }

    let mut patients = None;
    let references: Vec<String> = params.list("patient");
    if !references.is_empty() {
        if !post {
            unsupported("parameter patient is only supported in a POST kick-off".to_owned())?;
        } else if level == Level::System {
            return Err(Refusal::invalid(
                "parameter patient is not allowed on a system-level export",
            ));
        } else {
            let mut ids = Vec::new();
            for reference in references {
                match fhir::reference::parse(&reference) {
                    fhir::reference::Reference::Relative {
                        resource_type: "Patient",
                        id,
                        ..
                    } => ids.push(id.to_owned()),
                    _ => {
                        return Err(Refusal::invalid(
                            "parameter patient must be a reference of the form Patient/[id]",
                        ));
                    }
                }
            }
            patients = Some(ids);
        }
    }

    let anonymization_name = params.single("_anonymizationConfig")?.map(str::to_owned);
    if let Some(name) = &anonymization_name
        && !anonymization.knows(name)
    {
        return Err(Refusal::invalid(format!(
            "_anonymizationConfig {name} is neither a preset nor a configuration registered \
             with this server"
        )));
    }

    Ok(ExportRequest {
        url,
        level,
        types,
        since,
        until,
        patients,
        type_filters,
        elements,
        anonymization: anonymization_name,
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct Names;
    impl AnonymizationNames for Names {
        fn knows(&self, name: &str) -> bool {
            name == "safe-harbor"
        }
    }

    fn get(level: Level, query: &str, lenient: bool) -> Result<ExportRequest, Refusal> {
        resolve(
            level,
            format!("http://h/fhir/$export?{query}"),
            &RawParams::from_query(query),
            false,
            lenient,
            &Names,
        )
    }

    #[test]
    fn headers_need_respond_async_and_a_json_accept() {
        let ok = KickoffHeaders {
            accept: Some("application/fhir+json"),
            prefer: vec!["respond-async"],
        };
        assert_eq!(check_headers(&ok), Ok(false));
        let lenient = KickoffHeaders {
            accept: None,
            prefer: vec!["respond-async, handling=lenient"],
        };
        assert_eq!(check_headers(&lenient), Ok(true));
        let no_prefer = KickoffHeaders {
            accept: None,
            prefer: vec![],
        };
        assert!(
            check_headers(&no_prefer)
                .unwrap_err()
                .message
                .contains("Prefer")
        );
        let xml = KickoffHeaders {
            accept: Some("application/fhir+xml"),
            prefer: vec!["respond-async"],
        };
        assert!(check_headers(&xml).unwrap_err().message.contains("Accept"));
    }

    #[test]
    fn output_formats_accept_the_three_spellings() {
        for format in ["application/fhir%2Bndjson", "application/ndjson", "ndjson"] {
            get(Level::System, &format!("_outputFormat={format}"), false).unwrap();
        }
        let refused = get(Level::System, "_outputFormat=text/csv", false).unwrap_err();
        assert_eq!(refused.status, 400);
    }

    #[test]
    fn since_must_be_an_instant() {
        let request = get(Level::System, "_since=2024-01-02T03:04:05Z", false).unwrap();
        assert_eq!(request.since.as_deref(), Some("2024-01-02T03:04:05.000Z"));
        let refused = get(Level::System, "_since=yesterday", true).unwrap_err();
        assert!(refused.message.contains("_since"));
    }

    #[test]
    fn types_are_checked_and_lenient_turns_refusals_into_notes() {
        let request = get(
            Level::System,
            "_type=Patient,Observation&_type=Patient",
            false,
        )
        .unwrap();
        assert_eq!(request.types, ["Patient", "Observation"]);
        assert!(get(Level::System, "_type=Patient,Nope", false).is_err());
        let lenient = get(Level::System, "_type=Patient,Nope", true).unwrap();
        assert_eq!(lenient.types, ["Patient"]);
        assert_eq!(lenient.notes.len(), 1);
        assert!(get(Level::Patient, "_type=Organization", false).is_err());
        let all = get(Level::Patient, "", false).unwrap();
        assert!(all.types.contains(&"Observation".to_owned()));
        assert!(!all.types.contains(&"Organization".to_owned()));
    }

    #[test]
    fn include_associated_data_is_refused_unless_lenient() {
        let query = "includeAssociatedData=LatestProvenanceResources";
        assert_eq!(
            get(Level::System, query, false).unwrap_err().code,
            "not-supported"
        );
        assert_eq!(get(Level::System, query, true).unwrap().notes.len(), 1);
    }

    #[test]
    fn patient_is_read_from_a_post_body_only() {
        let mut params = RawParams::default();
        params
            .add_parameters(&json!({"resourceType": "Parameters", "parameter": [
                {"name": "patient", "valueReference": {"reference": "Patient/p1"}},
                {"name": "_type", "valueString": "Patient"}
            ]}))
            .unwrap();
        let request = resolve(Level::Patient, "u".into(), &params, true, false, &Names).unwrap();
        assert_eq!(request.patients, Some(vec!["p1".to_owned()]));
        assert!(resolve(Level::System, "u".into(), &params, true, false, &Names).is_err());
        assert!(get(Level::Patient, "patient=Patient/p1", false).is_err());
    }

    #[test]
    fn elements_and_filters_and_anonymization_are_checked() {
        let request = get(
            Level::System,
            "_elements=id,Patient.birthDate&_typeFilter=Patient%3Fgender%3Dfemale&_anonymizationConfig=safe-harbor",
            false,
        )
        .unwrap();
        assert_eq!(request.elements.len(), 2);
        assert_eq!(request.type_filters, ["Patient?gender=female"]);
        assert!(get(Level::System, "_elements=Patient.nope", false).is_err());
        assert!(get(Level::System, "_typeFilter=Patient%3Fnope%3D1", false).is_err());
        assert!(get(Level::System, "_anonymizationConfig=other", true).is_err());
        assert!(get(Level::System, "_bogus=1", false).is_err());
    }
}
