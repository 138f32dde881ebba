//! Building FHIR responses: JSON bodies, `ETag`/`Last-Modified`/`Location` headers, and the
//! `Prefer` request header (`return=`, `handling=`).

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use serde::Serialize;
use serde_json::Value;
use serde_json::value::RawValue;
use store::Timestamp;

use crate::outcome::{FHIR_JSON, FhirError, Issue, operation_outcome};

/// What the client asked for in `Prefer: return=…`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Return {
    /// No `return` preference: the interaction's default.
    #[default]
    Default,
    /// `return=minimal`: no body.
    Minimal,
    /// `return=representation`: the resource.
    Representation,
    /// `return=OperationOutcome`: an `OperationOutcome` describing what happened.
    OperationOutcome,
}

/// The `Prefer` header's preferences that this server honours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Prefer {
    /// `return=`.
    pub return_: Return,
    /// `handling=lenient`: ignore unknown or unsupported search parameters (with a note)
    /// instead of failing.
    pub lenient: bool,
}

impl Prefer {
    /// Reads every `Prefer` header (comma- or semicolon-separated preferences).
    pub fn from_headers(headers: &HeaderMap) -> Prefer {
        let mut prefer = Prefer::default();
        for value in headers.get_all("prefer") {
            let Ok(text) = value.to_str() else { continue };
            for part in text.split([',', ';']) {
                let Some((key, value)) = part.split_once('=') else {
                    continue;
                };
                let value = value.trim().trim_matches('"');
                match key.trim().to_ascii_lowercase().as_str() {
                    "return" => {
                        prefer.return_ = match value {
                            "minimal" => Return::Minimal,
                            "representation" => Return::Representation,
                            "OperationOutcome" => Return::OperationOutcome,
                            _ => prefer.return_,
                        }
                    }
                    "handling" => prefer.lenient = value.eq_ignore_ascii_case("lenient"),
                    _ => {}
                }
            }
        }
        prefer
    }
}

/// A weak ETag for a version: `W/"3"`.
pub fn etag(version: u64) -> String {
    format!("W/\"{version}\"")
}

/// Parses an `If-Match` value (`W/"3"`, `"3"` or `3`) into a version.
pub fn parse_if_match(headers: &HeaderMap) -> Result<Option<u64>, FhirError> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or("").trim();
    let text = text.strip_prefix("W/").unwrap_or(text).trim_matches('"');
    text.parse::<u64>()
        .map(Some)
        .map_err(|_| FhirError::bad_request("If-Match must be a version ETag such as W/\"1\""))
}

/// An instant as an HTTP date (`Last-Modified`).
pub fn http_date(at: Timestamp) -> String {
    let millis = u64::try_from(at.millis()).unwrap_or(0);
    httpdate::fmt_http_date(std::time::UNIX_EPOCH + std::time::Duration::from_millis(millis))
}

/// A response with a FHIR JSON body.
pub fn json_text(status: StatusCode, body: String) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
    response
}

/// A response with a FHIR JSON body built from a value.
pub fn json(status: StatusCode, body: &Value) -> Response {
    json_text(status, body.to_string())
}

/// A response without a body.
pub fn empty(status: StatusCode) -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = status;
    response
}

/// Adds a header whose value was built by this server (ids, versions, dates, URLs).
pub fn set_header(response: &mut Response, name: header::HeaderName, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        response.headers_mut().insert(name, value);
    }
}

/// What a write or read returned, for [`resource_response`].
#[derive(Debug, Clone, Copy)]
pub struct Written<'a> {
    /// The resource type.
    pub resource_type: &'a str,
    /// The id.
    pub id: &'a str,
    /// The version.
    pub version: u64,
    /// `meta.lastUpdated`.
    pub last_updated: Timestamp,
    /// The stored JSON text.
    pub json: &'a str,
}

/// The response to a create, update or read: `status`, `ETag`, `Last-Modified`, a `Location`
/// when `location` is set, and the body the `Prefer` header asks for (the resource by
/// default).
pub fn resource_response(
    status: StatusCode,
    written: Written<'_>,
    base_url: &str,
    prefer: Return,
    location: bool,
) -> Response {
    let mut response = match prefer {
        Return::Minimal => empty(status),
        Return::OperationOutcome => {
            let verb = if status == StatusCode::CREATED {
                "created"
            } else {
                "updated"
            };
            let issue = Issue::information(
                "informational",
                format!(
                    "{verb} {}/{} version {}",
                    written.resource_type, written.id, written.version
                ),
            );
            json(status, &operation_outcome(&[issue]))
        }
        Return::Default | Return::Representation => json_text(status, written.json.to_owned()),
    };
    set_header(&mut response, header::ETAG, &etag(written.version));
    set_header(
        &mut response,
        header::LAST_MODIFIED,
        &http_date(written.last_updated),
    );
    if location {
        let url = format!(
            "{base_url}/{}/{}/_history/{}",
            written.resource_type, written.id, written.version
        );
        set_header(&mut response, header::LOCATION, &url);
        set_header(&mut response, header::CONTENT_LOCATION, &url);
    }
    response
}

/// A Bundle being built for a response (searchset, history, batch- and
/// transaction-response). Entries hold resources as raw JSON text, so stored resources go out
/// exactly as stored without being parsed again.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BundleOut {
    /// Always `Bundle`.
    pub resource_type: &'static str,
    /// The Bundle type.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// `total`, for searchsets and histories.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
    /// `self`, `next`, `previous`, `first` links.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub link: Vec<LinkOut>,
    /// The entries.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub entry: Vec<EntryOut>,
}

impl BundleOut {
    /// An empty Bundle of a type.
    pub fn new(kind: &'static str) -> BundleOut {
        BundleOut {
            resource_type: "Bundle",
            kind,
            total: None,
            link: Vec::new(),
            entry: Vec::new(),
        }
    }

    /// Adds a link.
    pub fn link(&mut self, relation: &'static str, url: String) {
        self.link.push(LinkOut { relation, url });
    }

    /// The Bundle as JSON text.
    pub fn to_text(&self) -> String {
        serde_json::to_string(self).expect("a Bundle serializes")
    }
}

/// `Bundle.link`.
#[derive(Debug, Serialize)]
pub struct LinkOut {
    /// `self`, `next`, `previous`, `first`.
    pub relation: &'static str,
    /// The URL.
    pub url: String,
}

/// `Bundle.entry`.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EntryOut {
    /// The resource's absolute URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub full_url: Option<String>,
    /// The resource, as JSON text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<Box<RawValue>>,
    /// `search.mode` (`match`, `outcome`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub search: Option<Value>,
    /// `request`, in histories.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request: Option<Value>,
    /// `response`, in histories and batch/transaction responses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response: Option<Value>,
}

/// JSON text as a raw value for [`EntryOut::resource`].
pub fn raw(json: String) -> Box<RawValue> {
    RawValue::from_string(json).expect("stored and generated resources are valid JSON")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefer_header_is_read() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "prefer",
            HeaderValue::from_static("return=minimal, handling=lenient"),
        );
        let prefer = Prefer::from_headers(&headers);
        assert_eq!(prefer.return_, Return::Minimal);
        assert!(prefer.lenient);
        assert_eq!(Prefer::from_headers(&HeaderMap::new()), Prefer::default());
    }

    #[test]
    fn if_match_accepts_weak_and_strong_etags() {
        let mut headers = HeaderMap::new();
        headers.insert(header::IF_MATCH, HeaderValue::from_static("W/\"3\""));
        assert_eq!(parse_if_match(&headers).unwrap(), Some(3));
        headers.insert(header::IF_MATCH, HeaderValue::from_static("\"4\""));
        assert_eq!(parse_if_match(&headers).unwrap(), Some(4));
        headers.insert(header::IF_MATCH, HeaderValue::from_static("x"));
        assert!(parse_if_match(&headers).is_err());
    }

    #[test]
    fn http_dates_are_rfc_7231() {
        assert_eq!(
            http_date(Timestamp::from_millis(0)),
            "Thu, 01 Jan 1970 00:00:00 GMT"
        );
    }
}
