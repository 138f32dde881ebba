//! Errors as FHIR `OperationOutcome`s: every failed request answers one, with the HTTP status
//! that FHIR's RESTful API prescribes.
//!
//! Diagnostics name resource types, ids, versions, parameter codes and element paths, never a
//! value taken from a resource or a search.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// The media type of every FHIR JSON response.
pub const FHIR_JSON: &str = "application/fhir+json; charset=utf-8";

/// How bad an issue is (`OperationOutcome.issue.severity`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The request failed.
    Error,
    /// The request succeeded, with a caveat.
    Warning,
    /// Something worth knowing.
    Information,
}

impl Severity {
    fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Information => "information",
        }
    }
}

/// One issue of an `OperationOutcome`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// How bad it is.
    pub severity: Severity,
    /// The FHIR issue type code (`invalid`, `not-found`, `conflict`, `not-supported`, …).
    pub code: &'static str,
    /// A message for people: names parameters, paths and ids, never values.
    pub diagnostics: String,
    /// The element path the issue is about, if any (`Bundle.entry[3].request.url`).
    pub expression: Option<String>,
}

impl Issue {
    /// An issue without an element path.
    pub fn new(severity: Severity, code: &'static str, diagnostics: impl Into<String>) -> Issue {
        Issue {
            severity,
            code,
            diagnostics: diagnostics.into(),
            expression: None,
        }
    }

    /// An informational note (for example a search parameter ignored under
    /// `Prefer: handling=lenient`).
    pub fn information(code: &'static str, diagnostics: impl Into<String>) -> Issue {
        Issue::new(Severity::Information, code, diagnostics)
    }

    /// The issue as JSON.
    pub fn to_json(&self) -> Value {
        let mut issue = json!({
            "severity": self.severity.as_str(),
            "code": self.code,
            "diagnostics": self.diagnostics,
        });
        if let Some(expression) = &self.expression {
            issue["expression"] = json!([expression]);
        }
        issue
    }
}

/// An `OperationOutcome` resource with these issues.
pub fn operation_outcome(issues: &[Issue]) -> Value {
    json!({
        "resourceType": "OperationOutcome",
        "issue": issues.iter().map(Issue::to_json).collect::<Vec<_>>(),
    })
}

/// A failed request: an HTTP status and the issues of the `OperationOutcome` that explains it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status}: {}", self.issues.first().map_or("", |issue| issue.diagnostics.as_str()))]
pub struct FhirError {
    /// The HTTP status.
    pub status: StatusCode,
    /// Why (at least one issue).
    pub issues: Vec<Issue>,
}

impl FhirError {
    /// An error with one issue of severity `error`.
    pub fn new(
        status: StatusCode,
        code: &'static str,
        diagnostics: impl Into<String>,
    ) -> FhirError {
        FhirError {
            status,
            issues: vec![Issue::new(Severity::Error, code, diagnostics)],
        }
    }

    /// 400 `invalid`: the request is malformed.
    pub fn bad_request(diagnostics: impl Into<String>) -> FhirError {
        FhirError::new(StatusCode::BAD_REQUEST, "invalid", diagnostics)
    }

    /// 404 `not-found`.
    pub fn not_found(diagnostics: impl Into<String>) -> FhirError {
        FhirError::new(StatusCode::NOT_FOUND, "not-found", diagnostics)
    }

    /// 404 for a resource type this server does not know.
    pub fn unknown_type(resource_type: &str) -> FhirError {
        // The type comes from the URL path, not from resource content; keep it short anyway.
        let shown: String = resource_type.chars().take(64).collect();
        FhirError::not_found(format!("unknown resource type {shown}"))
    }

    /// 500 `exception`: the server failed.
    pub fn internal(diagnostics: impl Into<String>) -> FhirError {
        FhirError::new(StatusCode::INTERNAL_SERVER_ERROR, "exception", diagnostics)
    }

    /// The same error with `expression` set on its first issue.
    pub fn at(mut self, expression: impl Into<String>) -> FhirError {
        if let Some(issue) = self.issues.first_mut() {
            issue.expression = Some(expression.into());
        }
        self
    }

    /// The `OperationOutcome` resource.
    pub fn to_outcome(&self) -> Value {
        operation_outcome(&self.issues)
    }
}

impl From<store::Error> for FhirError {
    fn from(error: store::Error) -> FhirError {
        use store::Error as E;
        let message = error.to_string();
        match error {
            E::NotFound { .. } | E::VersionNotFound { .. } | E::JobNotFound(_) => {
                FhirError::not_found(message)
            }
            E::Gone { .. } => FhirError::new(StatusCode::GONE, "deleted", message),
            E::Conflict { ref reason, .. } if reason.contains("version") => {
                FhirError::new(StatusCode::PRECONDITION_FAILED, "conflict", message)
            }
            E::Conflict { .. } => FhirError::new(StatusCode::CONFLICT, "conflict", message),
            E::Invalid(_) | E::InvalidSearch { .. } => FhirError::bad_request(message),
            E::UnsupportedSearch { .. } => {
                FhirError::new(StatusCode::BAD_REQUEST, "not-supported", message)
            }
            _ => {
                tracing::error!(error = %message, "store failure");
                FhirError::internal(message)
            }
        }
    }
}

impl IntoResponse for FhirError {
    fn into_response(self) -> Response {
        let body = self.to_outcome().to_string();
        let mut response = (self.status, body).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_errors_map_to_fhir_statuses() {
        let gone = store::Error::Gone {
            resource_type: "Patient".into(),
            id: "a".into(),
            version: 2,
            deleted_at: store::Timestamp::from_millis(0),
        };
        assert_eq!(FhirError::from(gone).status, StatusCode::GONE);
        let missing = store::Error::NotFound {
            resource_type: "Patient".into(),
            id: "a".into(),
        };
        assert_eq!(FhirError::from(missing).status, StatusCode::NOT_FOUND);
        let invalid = store::Error::Invalid("no resourceType".into());
        let error = FhirError::from(invalid);
        assert_eq!(error.status, StatusCode::BAD_REQUEST);
        assert_eq!(error.to_outcome()["issue"][0]["code"], "invalid");
    }
}
