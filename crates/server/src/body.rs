//! Request bodies: FHIR JSON, size-limited, with errors as `OperationOutcome`s (413 for a
//! body over the configured limit, 415 for a media type that is not JSON, 400 for malformed
//! JSON).

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use serde_json::Value;

use crate::outcome::FhirError;

/// A request body parsed as one JSON object (a resource, a Bundle, a Parameters).
#[derive(Debug, Clone, PartialEq)]
pub struct FhirJson(pub Value);

impl<S: Send + Sync> FromRequest<S> for FhirJson {
    type Rejection = FhirError;

    async fn from_request(request: Request, state: &S) -> Result<FhirJson, FhirError> {
        check_media_type(&request)?;
        let bytes =
            Bytes::from_request(request, state)
                .await
                .map_err(|rejection| match rejection.status() {
                    StatusCode::PAYLOAD_TOO_LARGE => FhirError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "too-costly",
                        "the request body is larger than this server accepts",
                    ),
                    status => FhirError::new(status, "invalid", "the request body cannot be read"),
                })?;
        parse_object(&bytes).map(FhirJson)
    }
}

/// Accepts `application/fhir+json`, `application/json`, `application/json+fhir` (and
/// `+json` types generally) or no `Content-Type` at all.
fn check_media_type(request: &Request) -> Result<(), FhirError> {
    let Some(value) = request.headers().get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let media = value
        .to_str()
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let json = media == "application/json"
        || media == "application/json+fhir"
        || media.ends_with("+json")
        || media.is_empty();
    if json {
        Ok(())
    } else {
        Err(FhirError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "not-supported",
            "this server reads FHIR JSON bodies (Content-Type: application/fhir+json)",
        ))
    }
}

/// Parses a body as one JSON object. The error gives the line and column of a syntax error,
/// never the text around it.
pub fn parse_object(bytes: &[u8]) -> Result<Value, FhirError> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(value @ Value::Object(_)) => Ok(value),
        Ok(_) => Err(FhirError::bad_request(
            "the request body must be a JSON object (a FHIR resource)",
        )),
        Err(error) => Err(FhirError::bad_request(format!(
            "malformed JSON at line {}, column {}",
            error.line(),
            error.column()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syntax_errors_name_the_position_only() {
        let error = parse_object(b"{\"name\": \"Secret\",,}").unwrap_err();
        assert_eq!(error.status, StatusCode::BAD_REQUEST);
        let message = &error.issues[0].diagnostics;
        assert!(message.contains("line 1, column 19"), "{message}");
        assert!(!message.contains("Secret"));
    }

    #[test]
    fn bodies_must_be_objects() {
        assert!(parse_object(b"[1]").is_err());
        assert!(parse_object(b"{\"resourceType\":\"Patient\"}").is_ok());
    }
}
