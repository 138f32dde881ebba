//! The operator's side of export jobs, for the web dashboard: every job with its request,
//! client, progress and files; kick-off, cancel or delete, and downloads, without a bearer
//! token (the dashboard guards these with its own operator login).

use axum::response::Response;
use store::JobStatus;

use super::http;
use super::job::{FileEntry, Progress};
use super::request::{self, ExportRequest, Level, RawParams};
use crate::{AppState, FhirError};

/// One file a job wrote (or is writing, for a running job's finished files).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobFile {
    /// The resource type of its lines (`Bundle` for deletions, `OperationOutcome` for errors).
    pub resource_type: String,
    /// Its name in the job's folder (`Patient-1.ndjson`).
    pub file: String,
    /// Its number of lines.
    pub count: u64,
    /// Its size in bytes.
    pub bytes: u64,
}

impl From<&FileEntry> for JobFile {
    fn from(entry: &FileEntry) -> JobFile {
        JobFile {
            resource_type: entry.resource_type.clone(),
            file: entry.file.clone(),
            count: entry.count,
            bytes: entry.bytes,
        }
    }
}

/// An export job as an operator sees it.
#[derive(Debug, Clone)]
pub struct JobInfo {
    /// The job id.
    pub id: String,
    /// Where the job is.
    pub status: JobStatus,
    /// The checked kick-off request (`None` if the record cannot be read).
    pub request: Option<ExportRequest>,
    /// The client that kicked it off (`None` when authorization was off).
    pub owner: Option<String>,
    /// The snapshot instant (RFC 3339), once chosen.
    pub transaction_time: Option<String>,
    /// When the job was created (RFC 3339).
    pub created: String,
    /// When the job was last updated (RFC 3339).
    pub updated: String,
    /// The share of the work done, from 0 to 1 (1 once completed).
    pub fraction: f64,
    /// The `X-Progress` text of a running job.
    pub progress: String,
    /// Finished resource files.
    pub output: Vec<JobFile>,
    /// Finished deletion files.
    pub deleted: Vec<JobFile>,
    /// The error files of a completed job (OperationOutcomes).
    pub errors: Vec<JobFile>,
    /// Resources left out with a problem.
    pub problems: u64,
    /// Why the job failed.
    pub error: Option<String>,
    /// The folder or container the job writes to (a `file://`, `az://`, `s3://` or `gs://`
    /// URL).
    pub folder: Option<String>,
}

/// Every export job, newest first.
pub async fn jobs(state: &AppState) -> Result<Vec<JobInfo>, FhirError> {
    let exports = std::sync::Arc::clone(&state.exports);
    state
        .blocking(move |store| {
            let mut jobs = store.list_jobs()?;
            jobs.sort_by(|a, b| b.created.cmp(&a.created).then(b.id.cmp(&a.id)));
            Ok(jobs
                .into_iter()
                .map(|job| {
                    let request: Option<ExportRequest> =
                        serde_json::from_value(job.request.clone()).ok();
                    let types = request.as_ref().map_or(0, |r| r.types.len());
                    let progress = Progress::of(&job);
                    let errors = job
                        .output
                        .as_ref()
                        .and_then(|m| m["error"].as_array())
                        .into_iter()
                        .flatten()
                        .filter_map(|entry| {
                            let url = entry["url"].as_str()?;
                            Some(JobFile {
                                resource_type: entry["type"].as_str()?.to_owned(),
                                file: url.rsplit('/').next()?.to_owned(),
                                count: entry["count"].as_u64().unwrap_or(0),
                                bytes: 0,
                            })
                        })
                        .collect();
                    let folder = exports
                        .job_destination(&job.id)
                        .ok()
                        .map(|dest| dest.url().to_string());
                    JobInfo {
                        fraction: if job.status == JobStatus::Completed {
                            1.0
                        } else {
                            progress.fraction(types)
                        },
                        progress: progress.describe(types),
                        output: progress.output.iter().map(JobFile::from).collect(),
                        deleted: progress.deleted.iter().map(JobFile::from).collect(),
                        errors,
                        problems: progress.problems(),
                        id: job.id,
                        status: job.status,
                        request,
                        owner: job.owner,
                        transaction_time: job.transaction_time.map(|t| t.to_string()),
                        created: job.created.to_string(),
                        updated: job.updated.to_string(),
                        error: job.error,
                        folder,
                    }
                })
                .collect())
        })
        .await
}

/// Starts an export as `[base]/$export?{query}` (or `Patient/$export`, `Group/[id]/$export`)
/// would, owned by `owner`; returns the job id. Refusals name the parameter (400).
pub async fn kick_off(
    state: &AppState,
    level: Level,
    query: &str,
    owner: Option<String>,
) -> Result<String, FhirError> {
    let path = match &level {
        Level::System => "/$export".to_owned(),
        Level::Patient => "/Patient/$export".to_owned(),
        Level::Group { id } => format!("/Group/{id}/$export"),
    };
    let url = if query.is_empty() {
        format!("{}{path}", state.base_url)
    } else {
        format!("{}{path}?{query}", state.base_url)
    };
    let params = RawParams::from_query(query);
    let request = request::resolve(level, url, &params, false, false, state.exports.as_ref())?;
    http::launch(state, request, owner).await
}

/// Cancels a running job or deletes a finished one with its files; `false` when there is no
/// such job.
pub async fn cancel(state: &AppState, id: &str) -> Result<bool, FhirError> {
    http::cancel_job(state, id).await
}

/// A completed job's file as an NDJSON response (404 when the manifest does not list it).
pub async fn download(state: &AppState, id: &str, file: &str) -> Result<Response, FhirError> {
    http::file_response(state, id.to_owned(), file.to_owned()).await
}

/// The names `_anonymizationConfig` accepts besides the `deid` presets (registered
/// configuration files).
pub fn anonymization_configs(state: &AppState) -> Vec<String> {
    state
        .config
        .export
        .anonymization_configs
        .keys()
        .cloned()
        .collect()
}
