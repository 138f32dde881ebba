//! The HTTP side of `$export`: kick-off, status, cancel and download handlers.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::TryStreamExt;
use serde_json::Value;
use store::JobStatus;

use super::request::{
    self, AnonymizationNames, ExportRequest, KickoffHeaders, Level, RawParams, Refusal,
};
use super::{Exports, job, spawn, status_url};
use crate::outcome::{FHIR_JSON, Issue, operation_outcome};
use crate::{AppState, FhirError};

/// The media type of exported files.
const NDJSON: &str = "application/fhir+ndjson";

/// The export operations' routes, merged into [`crate::router`].
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/fhir/$export", get(system).post(system))
        .route("/fhir/Patient/$export", get(patient).post(patient))
        .route("/fhir/Group/{id}/$export", get(group).post(group))
        .route("/fhir/_operations/export/{id}", get(status).delete(cancel))
        .route("/fhir/_operations/export/{id}/{file}", get(download))
}

async fn system(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    kickoff(state, Level::System, method, uri, headers, body).await
}

async fn patient(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    kickoff(state, Level::Patient, method, uri, headers, body).await
}

async fn group(
    State(state): State<AppState>,
    Path(id): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    kickoff(state, Level::Group { id }, method, uri, headers, body).await
}

impl From<Refusal> for FhirError {
    fn from(refusal: Refusal) -> FhirError {
        FhirError::new(
            StatusCode::from_u16(refusal.status).unwrap_or(StatusCode::BAD_REQUEST),
            refusal.code,
            refusal.message,
        )
    }
}

impl AnonymizationNames for Exports {
    fn knows(&self, name: &str) -> bool {
        self.knows_anonymization(name)
    }
}

fn header_text(headers: &HeaderMap, name: header::HeaderName) -> Vec<&str> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .collect()
}

async fn kickoff(
    state: AppState,
    level: Level,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match start(state, level, method, uri, headers, body).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn start(
    state: AppState,
    level: Level,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, FhirError> {
    let accept = header_text(&headers, header::ACCEPT).join(",");
    let kickoff_headers = KickoffHeaders {
        accept: (!accept.is_empty()).then_some(accept.as_str()),
        prefer: header_text(&headers, header::HeaderName::from_static("prefer")),
    };
    let lenient = request::check_headers(&kickoff_headers)?;
    let post = method == Method::POST;
    let mut params = RawParams::from_query(uri.query().unwrap_or(""));
    if post && !body.is_empty() {
        let parameters: Value = serde_json::from_slice(&body)
            .map_err(|e| FhirError::bad_request(format!("the kick-off body is not JSON: {e}")))?;
        params.add_parameters(&parameters)?;
    }
    let path = uri.path().strip_prefix("/fhir").unwrap_or(uri.path());
    let url = match (post, uri.query()) {
        (false, Some(query)) => format!("{}{path}?{query}", state.base_url),
        _ => format!("{}{path}", state.base_url),
    };
    let mut request = request::resolve(level, url, &params, post, lenient, state.exports.as_ref())?;
    let caller = crate::auth::caller();
    crate::auth::limit_export(caller.as_ref(), &mut request)?;
    let owner = caller.map(|c| c.client_id().to_owned());
    let id = launch(&state, request, owner).await?;
    let outcome = operation_outcome(&[Issue::information(
        "informational",
        format!("export job {id} accepted"),
    )]);
    let mut response = (StatusCode::ACCEPTED, outcome.to_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
    if let Ok(location) = HeaderValue::from_str(&status_url(&state.base_url, &id)) {
        headers.insert(header::CONTENT_LOCATION, location);
    }
    if let Ok(value) = HeaderValue::from_str(&id) {
        headers.insert(header::HeaderName::from_static("x-request-id"), value);
    }
    Ok(response)
}

/// Checks a resolved request's patients, records the job (owned by `owner`) and starts it;
/// returns its id.
pub(super) async fn launch(
    state: &AppState,
    mut request: ExportRequest,
    owner: Option<String>,
) -> Result<String, FhirError> {
    let id = state
        .blocking(move |store| {
            check_patients(store, &mut request)?;
            let mut job = store.create_job(
                serde_json::to_value(&request).map_err(|e| FhirError::internal(e.to_string()))?,
                owner.as_deref(),
            )?;
            job.transaction_time = Some(store.transaction_time()?);
            Ok(store.update_job(&job)?.id)
        })
        .await?;
    spawn(state, id.clone());
    Ok(id)
}

/// Resolves a Group's members and checks `patient` references: unknown patients, and
/// patients who are not members of the Group, are refused (400).
fn check_patients(store: &dyn store::Store, request: &mut ExportRequest) -> Result<(), FhirError> {
    if let Level::Group { id } = &request.level {
        let group = match store.read("Group", id) {
            Ok(group) => group,
            Err(store::Error::NotFound { .. } | store::Error::Gone { .. }) => {
                return Err(FhirError::not_found(format!("Group/{id} does not exist")));
            }
            Err(other) => return Err(other.into()),
        };
        let group: Value = serde_json::from_str(&group.json)
            .map_err(|_| FhirError::internal(format!("Group/{id} is not readable JSON")))?;
        let members: Vec<String> = group
            .get("member")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|member| member.get("inactive").and_then(Value::as_bool) != Some(true))
            .filter_map(|member| member.pointer("/entity/reference").and_then(Value::as_str))
            .filter_map(|reference| match fhir::reference::parse(reference) {
                fhir::reference::Reference::Relative {
                    resource_type: "Patient",
                    id,
                    ..
                } => Some(id.to_owned()),
                _ => None,
            })
            .collect();
        if let Some(patients) = &request.patients
            && let Some(outsider) = patients.iter().find(|p| !members.contains(p))
        {
            return Err(FhirError::bad_request(format!(
                "parameter patient: Patient/{outsider} is not a member of Group/{id}"
            )));
        }
        if request.patients.is_none() {
            request.patients = Some(members);
        }
        return Ok(());
    }
    for patient in request.patients.iter().flatten() {
        match store.read("Patient", patient) {
            Ok(_) => {}
            Err(store::Error::NotFound { .. } | store::Error::Gone { .. }) => {
                return Err(FhirError::bad_request(format!(
                    "parameter patient: Patient/{patient} does not exist"
                )));
            }
            Err(other) => return Err(other.into()),
        }
    }
    Ok(())
}

fn no_job(id: &str) -> FhirError {
    let shown: String = id.chars().take(64).collect();
    FhirError::not_found(format!("no export job {shown} (unknown, or cancelled)"))
}

async fn status(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, FhirError> {
    let lookup = id.clone();
    let job = state
        .blocking(move |store| Ok(store.get_job(&lookup)?))
        .await?
        .ok_or_else(|| no_job(&id))?;
    match job.status {
        JobStatus::Completed => {
            let manifest = job.output.unwrap_or(Value::Null);
            let mut response = (StatusCode::OK, manifest.to_string()).into_response();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            Ok(response)
        }
        JobStatus::Failed => Err(FhirError::internal(format!(
            "export job {id} failed: {}",
            job.error.unwrap_or_default()
        ))),
        JobStatus::Cancelled => Err(no_job(&id)),
        JobStatus::Accepted | JobStatus::InProgress => {
            let interval = Duration::from_secs(state.exports.settings.retry_after_secs.max(1));
            let now = Instant::now();
            {
                let mut polls = state
                    .exports
                    .polls
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if let Some(last) = polls.get(&id)
                    && now.duration_since(*last) < interval / 2
                {
                    let wait = interval.saturating_sub(now.duration_since(*last));
                    let mut response = FhirError::new(
                        StatusCode::TOO_MANY_REQUESTS,
                        "throttled",
                        format!("export job {id} polled too often; wait before polling again"),
                    )
                    .into_response();
                    response.headers_mut().insert(
                        header::RETRY_AFTER,
                        HeaderValue::from(wait.as_secs().max(1)),
                    );
                    return Ok(response);
                }
                polls.insert(id.clone(), now);
            }
            let request: Option<ExportRequest> = serde_json::from_value(job.request.clone()).ok();
            let types = request.map_or(0, |r| r.types.len());
            let progress = job::Progress::of(&job).describe(types);
            let mut response = StatusCode::ACCEPTED.into_response();
            let headers = response.headers_mut();
            headers.insert(header::RETRY_AFTER, HeaderValue::from(interval.as_secs()));
            if let Ok(value) = HeaderValue::from_str(&progress) {
                headers.insert(header::HeaderName::from_static("x-progress"), value);
            }
            Ok(response)
        }
    }
}

async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, FhirError> {
    if !cancel_job(&state, &id).await? {
        return Err(no_job(&id));
    }
    let outcome = operation_outcome(&[Issue::information(
        "informational",
        format!("export job {id} cancelled; its files are removed"),
    )]);
    let mut response = (StatusCode::ACCEPTED, outcome.to_string()).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
    Ok(response)
}

/// Cancels a running job or releases a finished one: its record goes, its files are removed
/// (by the job's task once it stops, for a running job). `false` when there is no such job.
pub(super) async fn cancel_job(state: &AppState, id: &str) -> Result<bool, FhirError> {
    let id = id.to_owned();
    let exports = Arc::clone(&state.exports);
    state
        .blocking(move |store| {
            let job_id = id;
            let Some(job) = store.get_job(&job_id)? else {
                return Ok(false);
            };
            if job.status == JobStatus::Cancelled {
                return Ok(false);
            }
            let flag = exports
                .running
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .get(&job_id)
                .cloned();
            store.delete_job(&job_id)?;
            match flag {
                // The job's task removes its files once it has stopped writing.
                Some(flag) => flag.store(true, Ordering::Relaxed),
                None => exports.remove_files(&job_id),
            }
            exports
                .polls
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .remove(&job_id);
            Ok(true)
        })
        .await
}

/// Whether a file name is one a job writes (`Patient-1.ndjson`): no path separators or dots
/// beyond the extension, so a name can never leave the job's folder.
fn valid_file_name(file: &str) -> bool {
    file.strip_suffix(".ndjson").is_some_and(|stem| {
        !stem.is_empty() && stem.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    })
}

async fn download(
    State(state): State<AppState>,
    Path((id, file)): Path<(String, String)>,
) -> Result<Response, FhirError> {
    file_response(&state, id, file).await
}

/// A completed job's file, streamed from the destination as NDJSON; 404 for a job or file
/// the manifest does not list.
pub(super) async fn file_response(
    state: &AppState,
    id: String,
    file: String,
) -> Result<Response, FhirError> {
    if !valid_file_name(&file) {
        return Err(FhirError::not_found("no such export file"));
    }
    let lookup = id.clone();
    let job = state
        .blocking(move |store| Ok(store.get_job(&lookup)?))
        .await?
        .ok_or_else(|| no_job(&id))?;
    let listed = job.status == JobStatus::Completed
        && job.output.as_ref().is_some_and(|manifest| {
            ["output", "deleted", "error"].iter().any(|part| {
                manifest[part]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|entry| {
                        entry["url"]
                            .as_str()
                            .is_some_and(|url| url.ends_with(&format!("/{id}/{file}")))
                    })
            })
        });
    if !listed {
        return Err(FhirError::not_found(format!(
            "export job {id} has no completed file {file}"
        )));
    }
    let exports = Arc::clone(&state.exports);
    let (job_id, name) = (id.clone(), file.clone());
    let dest = tokio::task::spawn_blocking(move || exports.job_destination(&job_id))
        .await
        .map_err(|_| FhirError::internal("a storage task stopped unexpectedly"))?
        .map_err(|e| FhirError::internal(format!("export storage: {e}")))?;
    let body = if dest.scheme() == lake::Scheme::Local {
        let path = dest
            .url()
            .to_file_path()
            .map_err(|()| FhirError::internal("export folder is not a local path"))?
            .join(&name);
        let handle = tokio::fs::File::open(&path)
            .await
            .map_err(|_| FhirError::not_found(format!("export file {name} is missing")))?;
        Body::from_stream(tokio_util::io::ReaderStream::with_capacity(
            handle,
            256 << 10,
        ))
    } else {
        let location = dest.url_of(&name);
        let path = object_store::path::Path::from(location.path().trim_start_matches('/'));
        let result = object_store::ObjectStoreExt::get(dest.object_store().as_ref(), &path)
            .await
            .map_err(|e| FhirError::internal(format!("export storage: {name}: {e}")))?;
        Body::from_stream(result.into_stream().map_err(std::io::Error::other))
    };
    let mut response = Response::new(body);
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(NDJSON));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::valid_file_name;

    #[test]
    fn file_names_cannot_leave_the_job_folder() {
        assert!(valid_file_name("Patient-1.ndjson"));
        assert!(valid_file_name("Deleted-Observation-12.ndjson"));
        assert!(!valid_file_name("..%2Fx.ndjson"));
        assert!(!valid_file_name("../x.ndjson"));
        assert!(!valid_file_name(".ndjson"));
        assert!(!valid_file_name("Patient-1.json"));
    }
}
