//! The FHIR RESTful API on `/fhir`: `metadata`; create, read, vread, update (including
//! update-as-create), delete with `If-Match`; instance, type and system history; search by
//! GET and `POST _search`; batch and transaction Bundles on the base URL.

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::Response;
use axum::routing::{get, post};
use serde_json::Value;
use store::{HistoryEntry, HistoryQuery, HistoryScope, Store, Timestamp, WriteKind};

use crate::AppState;
use crate::body::FhirJson;
use crate::bundle::{self, Context};
use crate::outcome::FhirError;
use crate::respond::{
    self, BundleOut, EntryOut, Prefer, Return, Written, etag, http_date, raw, resource_response,
};
use crate::search::Search;

/// The REST API's routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/fhir", post(bundle_post))
        .route("/fhir/", post(bundle_post))
        .route("/fhir/metadata", get(metadata))
        .route("/fhir/_history", get(system_history))
        .route("/fhir/{type}", get(search_get).post(create))
        .route("/fhir/{type}/_search", post(search_post))
        .route("/fhir/{type}/_history", get(type_history))
        .route("/fhir/{type}/{id}", get(read).put(update).delete(delete))
        .route("/fhir/{type}/{id}/_history", get(instance_history))
        .route("/fhir/{type}/{id}/_history/{version}", get(vread))
}

/// Answers a request no route matches: 404 with an `OperationOutcome`.
pub async fn no_route(uri: Uri) -> FhirError {
    FhirError::not_found(format!("no FHIR interaction at {}", uri.path()))
}

/// Answers a method a route does not offer (`PATCH`, …): 405 with an `OperationOutcome`.
pub async fn method_not_allowed(method: axum::http::Method, uri: Uri) -> FhirError {
    FhirError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "not-supported",
        format!("{method} is not supported on {}", uri.path()),
    )
}

/// The resource type named in a URL, if this server knows it (404 otherwise).
fn resource_type(name: &str) -> Result<&'static str, FhirError> {
    fhir::types::intern(name)
        .filter(|t| fhir::types::is_concrete_resource_type(t))
        .ok_or_else(|| FhirError::unknown_type(name))
}

/// A URL id, checked against FHIR's id syntax.
fn checked_id(id: &str) -> Result<(), FhirError> {
    if fhir::reference::is_valid_id(id) {
        Ok(())
    } else {
        Err(FhirError::bad_request("the URL has an invalid resource id"))
    }
}

/// The decoded pairs of a query string.
fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

fn context(
    state: &AppState,
) -> (
    std::sync::Arc<dyn Store>,
    String,
    std::sync::Arc<crate::ServerConfig>,
) {
    (
        state.store.clone(),
        state.base_url.to_string(),
        state.config.clone(),
    )
}

async fn metadata(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, FhirError> {
    let format = query_pairs(query.as_deref())
        .into_iter()
        .find(|(name, _)| name == "_format")
        .map(|(_, value)| value);
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let wants_xml = format.is_some_and(|f| f.contains("xml"))
        || (accept.contains("xml") && !accept.contains("json") && !accept.contains("*/*"));
    if wants_xml {
        return Err(FhirError::new(
            StatusCode::NOT_ACCEPTABLE,
            "not-supported",
            "this server speaks FHIR JSON only (application/fhir+json)",
        ));
    }
    let mut statement = crate::capability::capability_statement(&state.base_url);
    if let Some(security) = crate::auth::capability_security(&state) {
        statement["rest"][0]["security"] = security;
    }
    Ok(respond::json(StatusCode::OK, &statement))
}

async fn bundle_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    FhirJson(bundle): FhirJson,
) -> Result<Response, FhirError> {
    let kind = bundle::bundle_type(&bundle)?.to_owned();
    let prefer = Prefer::from_headers(&headers).return_;
    let (store, base_url, config) = context(&state);
    let text = tokio::task::spawn_blocking(move || {
        let context = Context {
            store: store.as_ref(),
            base_url: &base_url,
            config: &config,
        };
        if kind == "transaction" {
            bundle::transaction(context, bundle, prefer)
        } else {
            bundle::batch(context, bundle, prefer)
        }
    })
    .await
    .map_err(|_| FhirError::internal("a store task stopped unexpectedly"))??;
    Ok(respond::json_text(StatusCode::OK, text))
}

async fn search_get(
    State(state): State<AppState>,
    Path(type_name): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, FhirError> {
    search(state, &type_name, query_pairs(query.as_deref()), &headers).await
}

async fn search_post(
    State(state): State<AppState>,
    Path(type_name): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, FhirError> {
    let body = body.map_err(|rejection| {
        FhirError::new(
            rejection.status(),
            "too-costly",
            "the request body is larger than this server accepts",
        )
    })?;
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !form && !body.is_empty() {
        return Err(FhirError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "not-supported",
            "_search takes an application/x-www-form-urlencoded body",
        ));
    }
    let mut params = query_pairs(query.as_deref());
    params.extend(url::form_urlencoded::parse(&body).into_owned());
    search(state, &type_name, params, &headers).await
}

async fn search(
    state: AppState,
    type_name: &str,
    params: Vec<(String, String)>,
    headers: &HeaderMap,
) -> Result<Response, FhirError> {
    let resource_type = resource_type(type_name)?;
    let lenient = Prefer::from_headers(headers).lenient;
    let search = Search::parse(resource_type, &params, &state.config, lenient)?;
    let base_url = state.base_url.clone();
    let text = state
        .blocking(move |store| search.run(store, &base_url))
        .await?;
    Ok(respond::json_text(StatusCode::OK, text))
}

async fn create(
    State(state): State<AppState>,
    Path(type_name): Path<String>,
    headers: HeaderMap,
    FhirJson(mut resource): FhirJson,
) -> Result<Response, FhirError> {
    let resource_type = resource_type(&type_name)?;
    check_type(&resource, resource_type)?;
    if let Some(object) = resource.as_object_mut() {
        object.remove("id");
    }
    let prefer = Prefer::from_headers(&headers).return_;
    let if_none_exist = headers
        .get("if-none-exist")
        .map(|v| v.to_str().map(str::to_owned))
        .transpose()
        .map_err(|_| FhirError::bad_request("If-None-Exist must be a search query"))?;
    let mut entry = serde_json::json!({
        "fullUrl": "urn:uuid:created",
        "resource": resource,
        "request": {"method": "POST", "url": resource_type},
    });
    if let Some(query) = if_none_exist {
        entry["request"]["ifNoneExist"] = Value::String(query);
    }
    let (store, base_url, config) = context(&state);
    let created = tokio::task::spawn_blocking(move || {
        let context = Context {
            store: store.as_ref(),
            base_url: &base_url,
            config: &config,
        };
        let bundle =
            serde_json::json!({"resourceType": "Bundle", "type": "transaction", "entry": [entry]});
        let mut plan = bundle::plan(context, &mut bundle::Resolver::new(), bundle)
            .map_err(|error| strip_expression(error, resource_type))?;
        if let Some((resource_type, id)) = plan.existing() {
            return Ok(Err(store.read(resource_type, id)?));
        }
        let writes = std::mem::take(&mut plan.writes);
        Ok::<_, FhirError>(Ok(store.transaction(writes)?.remove(0)))
    })
    .await
    .map_err(|_| FhirError::internal("a store task stopped unexpectedly"))??;
    let outcome = match created {
        Ok(outcome) => outcome,
        Err(existing) => return Ok(stored_response(&existing)),
    };
    let json = outcome.json.unwrap_or_default();
    Ok(resource_response(
        StatusCode::CREATED,
        Written {
            resource_type,
            id: &outcome.id,
            version: outcome.version,
            last_updated: outcome.last_updated,
            json: &json,
        },
        &state.base_url,
        prefer,
        true,
    ))
}

/// Errors of a single create planned as a one-entry Bundle: element paths are given from
/// the resource (`Observation.subject.reference`), not from the Bundle.
fn strip_expression(mut error: FhirError, resource_type: &str) -> FhirError {
    for issue in &mut error.issues {
        issue.expression = issue.expression.as_deref().and_then(|expression| {
            expression
                .strip_prefix("Bundle.entry[0].resource")
                .map(|rest| format!("{resource_type}{rest}"))
        });
    }
    error
}

/// 400 unless the body's `resourceType` is the URL's type.
fn check_type(resource: &Value, resource_type: &str) -> Result<(), FhirError> {
    match resource.get("resourceType").and_then(Value::as_str) {
        Some(t) if t == resource_type => Ok(()),
        Some(_) => Err(FhirError::bad_request(format!(
            "the body is not a {resource_type} as the URL says"
        ))
        .at("resourceType")),
        None => Err(FhirError::bad_request("the body has no resourceType").at("resourceType")),
    }
}

async fn read(
    State(state): State<AppState>,
    Path((type_name, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, FhirError> {
    let resource_type = resource_type(&type_name)?;
    checked_id(&id)?;
    let found = state
        .blocking(move |store| Ok(store.read(resource_type, &id)?))
        .await?;
    let tag = etag(found.version);
    if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim() == tag)
    {
        let mut response = respond::empty(StatusCode::NOT_MODIFIED);
        respond::set_header(&mut response, header::ETAG, &tag);
        return Ok(response);
    }
    Ok(stored_response(&found))
}

fn stored_response(found: &store::StoredResource) -> Response {
    let mut response = respond::json_text(StatusCode::OK, found.json.clone());
    respond::set_header(&mut response, header::ETAG, &etag(found.version));
    respond::set_header(
        &mut response,
        header::LAST_MODIFIED,
        &http_date(found.last_updated),
    );
    response
}

async fn vread(
    State(state): State<AppState>,
    Path((type_name, id, version)): Path<(String, String, String)>,
) -> Result<Response, FhirError> {
    let resource_type = resource_type(&type_name)?;
    checked_id(&id)?;
    let version: u64 = version
        .parse()
        .map_err(|_| FhirError::not_found("versions are positive integers"))?;
    let found = state
        .blocking(move |store| Ok(store.vread(resource_type, &id, version)?))
        .await?;
    Ok(stored_response(&found))
}

async fn update(
    State(state): State<AppState>,
    Path((type_name, id)): Path<(String, String)>,
    headers: HeaderMap,
    FhirJson(resource): FhirJson,
) -> Result<Response, FhirError> {
    let resource_type = resource_type(&type_name)?;
    checked_id(&id)?;
    check_type(&resource, resource_type)?;
    match resource.get("id") {
        Some(Value::String(body_id)) if *body_id == id => {}
        Some(_) => {
            return Err(
                FhirError::bad_request("the resource id does not match the id in the URL").at("id"),
            );
        }
        None => {
            return Err(FhirError::bad_request(
                "the resource has no id; an update needs the id of the URL in the body",
            )
            .at("id"));
        }
    }
    let if_match = respond::parse_if_match(&headers)?;
    let prefer = Prefer::from_headers(&headers).return_;
    let outcome = state
        .blocking(move |store| Ok(store.update(resource, if_match)?))
        .await?;
    let status = if outcome.kind == WriteKind::Created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let json = outcome.json.unwrap_or_default();
    Ok(resource_response(
        status,
        Written {
            resource_type,
            id: &outcome.id,
            version: outcome.version,
            last_updated: outcome.last_updated,
            json: &json,
        },
        &state.base_url,
        prefer,
        status == StatusCode::CREATED,
    ))
}

async fn delete(
    State(state): State<AppState>,
    Path((type_name, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, FhirError> {
    let resource_type = resource_type(&type_name)?;
    checked_id(&id)?;
    let if_match = respond::parse_if_match(&headers)?;
    let prefer = Prefer::from_headers(&headers).return_;
    let outcome = state
        .blocking(move |store| Ok(store.delete(resource_type, &id, if_match)?))
        .await?;
    let mut response = if prefer == Return::OperationOutcome {
        let message = match outcome.kind {
            WriteKind::Deleted => format!("deleted {resource_type}/{}", outcome.id),
            _ => format!(
                "{resource_type}/{} was not live: nothing deleted",
                outcome.id
            ),
        };
        respond::json(
            StatusCode::OK,
            &crate::outcome::operation_outcome(&[crate::outcome::Issue::information(
                "informational",
                message,
            )]),
        )
    } else {
        respond::empty(StatusCode::NO_CONTENT)
    };
    if outcome.version > 0 {
        respond::set_header(&mut response, header::ETAG, &etag(outcome.version));
    }
    Ok(response)
}

async fn system_history(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Response, FhirError> {
    history(state, HistoryScope::System, query.as_deref()).await
}

async fn type_history(
    State(state): State<AppState>,
    Path(type_name): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, FhirError> {
    let resource_type = resource_type(&type_name)?;
    history(
        state,
        HistoryScope::Type(resource_type.to_owned()),
        query.as_deref(),
    )
    .await
}

async fn instance_history(
    State(state): State<AppState>,
    Path((type_name, id)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Result<Response, FhirError> {
    let resource_type = resource_type(&type_name)?;
    checked_id(&id)?;
    history(
        state,
        HistoryScope::Instance(resource_type.to_owned(), id),
        query.as_deref(),
    )
    .await
}

/// A history Bundle, newest first, paged with `_count` and `_offset`, from `_since`.
async fn history(
    state: AppState,
    scope: HistoryScope,
    query: Option<&str>,
) -> Result<Response, FhirError> {
    let mut request = HistoryQuery {
        scope,
        since: None,
        count: state.config.default_page_size,
        offset: 0,
    };
    for (name, value) in query_pairs(query) {
        match name.as_str() {
            "_count" => {
                let count: usize = value
                    .parse()
                    .map_err(|_| FhirError::bad_request("_count must be a non-negative integer"))?;
                request.count = count.min(state.config.max_page_size);
            }
            "_offset" => {
                request.offset = value.parse().map_err(|_| {
                    FhirError::bad_request("_offset must be a non-negative integer")
                })?;
            }
            "_since" => {
                request.since = Some(
                    Timestamp::parse(&value)
                        .ok_or_else(|| FhirError::bad_request("_since must be a FHIR instant"))?,
                );
            }
            "_format" | "_pretty" => {}
            _ => {
                return Err(FhirError::new(
                    StatusCode::BAD_REQUEST,
                    "not-supported",
                    format!("history parameter {name} is not supported"),
                ));
            }
        }
    }
    let base_url = state.base_url.clone();
    let text = state
        .blocking(move |store| {
            let page = store.history(&request)?;
            Ok(history_bundle(&request, page, &base_url))
        })
        .await?;
    Ok(respond::json_text(StatusCode::OK, text))
}

fn history_bundle(request: &HistoryQuery, page: store::HistoryPage, base_url: &str) -> String {
    let path = match &request.scope {
        HistoryScope::System => format!("{base_url}/_history"),
        HistoryScope::Type(t) => format!("{base_url}/{t}/_history"),
        HistoryScope::Instance(t, id) => format!("{base_url}/{t}/{id}/_history"),
    };
    let link = |offset: usize| {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        if let Some(since) = request.since {
            query.append_pair("_since", &since.to_string());
        }
        query.append_pair("_count", &request.count.to_string());
        if offset > 0 {
            query.append_pair("_offset", &offset.to_string());
        }
        format!("{path}?{}", query.finish())
    };
    let mut bundle = BundleOut::new("history");
    bundle.total = Some(page.total);
    bundle.link("self", link(request.offset));
    if request.offset > 0 {
        bundle.link(
            "previous",
            link(request.offset.saturating_sub(request.count)),
        );
    }
    if page.more {
        bundle.link("next", link(request.offset + request.count));
    }
    bundle.entry = page
        .entries
        .into_iter()
        .map(|entry| history_entry(entry, base_url))
        .collect();
    bundle.to_text()
}

fn history_entry(entry: HistoryEntry, base_url: &str) -> EntryOut {
    let HistoryEntry {
        resource_type,
        id,
        version,
        last_updated,
        json,
    } = entry;
    let (method, url, status) = match (&json, version) {
        (None, _) => ("DELETE", format!("{resource_type}/{id}"), "204 No Content"),
        (Some(_), 1) => ("POST", resource_type.clone(), "201 Created"),
        (Some(_), _) => ("PUT", format!("{resource_type}/{id}"), "200 OK"),
    };
    EntryOut {
        full_url: Some(format!("{base_url}/{resource_type}/{id}")),
        resource: json.map(raw),
        request: Some(serde_json::json!({"method": method, "url": url})),
        response: Some(serde_json::json!({
            "status": status,
            "etag": etag(version),
            "lastModified": last_updated.to_string(),
        })),
        ..EntryOut::default()
    }
}
