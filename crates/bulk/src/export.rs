//! Running an export: kick-off (or resume), polling, manifest pages, parallel downloads, the
//! final DELETE.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use reqwest::header::{
    ACCEPT, AUTHORIZATION, CONTENT_LOCATION, CONTENT_TYPE, HeaderMap, RETRY_AFTER,
};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::sync::Semaphore;
use url::Url;

use crate::Error;
use crate::auth::{NoAuth, TokenProvider};
use crate::check::LineChecker;
use crate::log::ExportLog;
use crate::manifest::{FileKind, Manifest};
use crate::request::ExportRequest;
use crate::retry::{RetryPolicy, is_transient_outcome, outcome_summary};
use crate::state::{FileEntry, Finished, State, StateStore, write_atomically};

/// How an export runs.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// What to export.
    pub request: ExportRequest,
    /// The output folder.
    pub out: PathBuf,
    /// Use the `transactionTime` of the last completed export in `out` as `_since` (a full
    /// export if there is none).
    pub since_auto: bool,
    /// Downloads at once per host.
    pub downloads_per_host: usize,
    /// Retries and `Retry-After` bounds.
    pub retry: RetryPolicy,
    /// The first wait between status polls when the server sends no `Retry-After`; it doubles
    /// up to `poll_max`.
    pub poll_initial: Duration,
    /// The longest wait between status polls without `Retry-After`.
    pub poll_max: Duration,
    /// The longest NDJSON line accepted.
    pub max_line_bytes: usize,
    /// Send DELETE to the status URL once everything is downloaded.
    pub delete_when_done: bool,
}

impl ExportOptions {
    /// Defaults: 4 downloads per host, polls from 1 s up to 60 s, 64 MiB lines, DELETE at the end.
    pub fn new(request: ExportRequest, out: impl Into<PathBuf>) -> Self {
        ExportOptions {
            request,
            out: out.into(),
            since_auto: false,
            downloads_per_host: 4,
            retry: RetryPolicy::default(),
            poll_initial: Duration::from_secs(1),
            poll_max: Duration::from_secs(60),
            max_line_bytes: 64 << 20,
            delete_when_done: true,
        }
    }
}

/// Something that happened, for progress displays.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The server accepted the kick-off.
    KickedOff {
        /// The status URL.
        status_url: String,
    },
    /// A recorded export is being continued.
    Resumed {
        /// The status URL.
        status_url: String,
        /// Files already complete.
        files_done: usize,
    },
    /// The recorded status URL is no longer valid; the export starts again.
    Expired {
        /// The status URL.
        status_url: String,
    },
    /// The export is still running on the server.
    Waiting {
        /// `X-Progress`, when sent.
        progress: Option<String>,
        /// The wait before the next poll.
        wait: Duration,
    },
    /// A request failed and will be tried again.
    Retrying {
        /// The step (`kick-off`, `status`, `download`).
        what: &'static str,
        /// Why (status code or error).
        reason: String,
        /// The wait before the next try.
        wait: Duration,
    },
    /// All manifest pages are known.
    ManifestReady {
        /// Files to download now (not yet complete).
        files: usize,
        /// Files in the manifest.
        total_files: usize,
        /// Sum of the manifest `count`s of the output files to download, if every one has a
        /// count.
        resources: Option<u64>,
    },
    /// Bytes of NDJSON written.
    Bytes(u64),
    /// A file is complete.
    FileDone {
        /// Its name in the output folder.
        name: String,
        /// Resources in it.
        resources: u64,
    },
}

/// What a finished export produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// The manifest's `transactionTime`.
    pub transaction_time: String,
    /// Files in the output folder.
    pub files: usize,
    /// Resources in them.
    pub resources: u64,
    /// Bytes in them.
    pub bytes: u64,
    /// True if this run continued an export recorded in the folder.
    pub resumed: bool,
}

type Observer = Arc<dyn Fn(&Event) + Send + Sync>;

/// A Bulk Data export into one output folder.
///
/// The async [`run_async`](Exporter::run_async) runs on the caller's tokio runtime;
/// [`run`](Exporter::run) owns a small multi-threaded runtime and blocks, for synchronous
/// callers such as the CLI.
pub struct Exporter {
    options: ExportOptions,
    tokens: Arc<dyn TokenProvider>,
    observer: Observer,
}

impl Exporter {
    /// An export with no authorization and no observer.
    pub fn new(options: ExportOptions) -> Self {
        Exporter {
            options,
            tokens: Arc::new(NoAuth),
            observer: Arc::new(|_| {}),
        }
    }

    /// Uses `tokens` for every request that carries a token.
    pub fn with_tokens(mut self, tokens: Arc<dyn TokenProvider>) -> Self {
        self.tokens = tokens;
        self
    }

    /// Calls `observer` with each [`Event`].
    pub fn with_observer(mut self, observer: impl Fn(&Event) + Send + Sync + 'static) -> Self {
        self.observer = Arc::new(observer);
        self
    }

    /// Runs the export to completion on a runtime of its own (do not call from async code; use
    /// [`run_async`](Exporter::run_async) there).
    pub fn run(&self) -> Result<Summary, Error> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| Error::io(&self.options.out, e))?;
        runtime.block_on(self.run_async())
    }

    /// Runs the export to completion: resumes what `out` records, or kicks off.
    pub async fn run_async(&self) -> Result<Summary, Error> {
        let out = &self.options.out;
        std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
        let store = StateStore::open(out)?;
        let recorded = store.load()?;
        let last_completed = recorded.as_ref().and_then(|s| {
            if s.completed {
                s.transaction_time.clone()
            } else {
                s.last_completed_transaction_time.clone()
            }
        });
        let mut request = self.options.request.clone();
        if self.options.since_auto {
            request.since = last_completed.clone();
        }
        let client = reqwest::Client::builder()
            .user_agent(concat!("haven/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(30))
            .read_timeout(Duration::from_secs(300))
            .build()
            .map_err(|e| Error::Http {
                what: "client",
                url: String::new(),
                source: e,
            })?;

        let (mut state, resumed) = match recorded {
            Some(state) if !state.completed => {
                if state.request != request {
                    return Err(Error::State {
                        path: out.join(crate::state::STATE_DIR),
                        message: "the folder holds an unfinished export of a different request; \
                                  re-run with the same options to finish it, or use another folder"
                            .into(),
                    });
                }
                (state, true)
            }
            Some(previous) => {
                remove_previous_files(out, &previous)?;
                store.clear_finished()?;
                (State::new(request, new_export_id(), last_completed), false)
            }
            None => (State::new(request, new_export_id(), None), false),
        };
        let log = ExportLog::open(out, &state.export_id)?;
        let run = Run {
            options: &self.options,
            client,
            tokens: self.tokens.clone(),
            observer: self.observer.clone(),
            log,
            store,
            started: Instant::now(),
        };
        run.execute(&mut state, resumed).await
    }
}

/// Clears what a previous, completed export left in `out` (a new export replaces it): its
/// data files and manifest copies are removed, and its `log.ndjson` moves to
/// `.haven-export/log.EXPORTID.ndjson`, so that the log holds one export, as readers of the
/// SMART format expect.
fn remove_previous_files(out: &Path, previous: &State) -> Result<(), Error> {
    let remove = |path: PathBuf| match std::fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(&path, e)),
        _ => Ok(()),
    };
    for file in &previous.files {
        remove(out.join(&file.name))?;
    }
    remove(out.join("manifest.json"))?;
    for page in 1..previous.pages.len() {
        remove(out.join(format!("manifest.{page:03}.json")))?;
    }
    let log = out.join("log.ndjson");
    let kept = out
        .join(crate::state::STATE_DIR)
        .join(format!("log.{}.ndjson", previous.export_id));
    match std::fs::rename(&log, &kept) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(&log, e)),
        _ => Ok(()),
    }
}

/// A random 20-hex-digit id, like the SMART client's.
fn new_export_id() -> String {
    use std::hash::{BuildHasher, RandomState};
    let a = RandomState::new().hash_one(std::time::SystemTime::now());
    let b = RandomState::new().hash_one(a);
    format!("{a:016x}{:04x}", b & 0xffff)
}

/// The state of one run.
struct Run<'a> {
    options: &'a ExportOptions,
    client: reqwest::Client,
    tokens: Arc<dyn TokenProvider>,
    observer: Observer,
    log: ExportLog,
    store: StateStore,
    started: Instant,
}

/// How a response ends a step.
enum Outcome {
    /// Try again after this wait.
    Retry(Duration, String),
    /// Stop with this error.
    Fail(Error),
}

impl Run<'_> {
    fn emit(&self, event: Event) {
        (self.observer)(&event);
    }

    async fn execute(&self, state: &mut State, resumed: bool) -> Result<Summary, Error> {
        if state.pages.is_empty() {
            let mut status_url = state.status_url.clone();
            if let Some(url) = &status_url {
                self.emit(Event::Resumed {
                    status_url: url.clone(),
                    files_done: 0,
                });
            }
            let first = loop {
                let url = match &status_url {
                    Some(url) => url.clone(),
                    None => {
                        let url = self.kickoff(&state.request).await?;
                        state.status_url = Some(url.clone());
                        self.store.save(state)?;
                        self.emit(Event::KickedOff {
                            status_url: url.clone(),
                        });
                        url
                    }
                };
                match self.poll(&url).await {
                    Ok(manifest) => break manifest,
                    Err(Error::Status {
                        status: 404 | 410, ..
                    }) if resumed && state.pages.is_empty() => {
                        self.emit(Event::Expired { status_url: url });
                        status_url = None;
                    }
                    Err(e) => return Err(e),
                }
            };
            self.collect_pages(state, first).await?;
        } else if let Some(url) = &state.status_url {
            let done = self.store.finished()?.len();
            self.emit(Event::Resumed {
                status_url: url.clone(),
                files_done: done,
            });
        }
        self.download_all(state).await?;

        if self.options.delete_when_done
            && let Some(url) = &state.status_url
        {
            self.release(url).await;
        }
        let finished = self.store.finished()?;
        let (resources, bytes) = state
            .files
            .iter()
            .filter_map(|f| finished.get(&f.url))
            .fold((0, 0), |(r, b), f| (r + f.resources, b + f.bytes));
        state.completed = true;
        self.store.save(state)?;
        self.log.event(
            "export_complete",
            json!({
                "files": state.files.len(),
                "resources": resources,
                "bytes": bytes,
                "attachments": 0,
                "duration": self.started.elapsed().as_millis() as u64,
            }),
        )?;
        Ok(Summary {
            transaction_time: state.transaction_time.clone().unwrap_or_default(),
            files: state.files.len(),
            resources,
            bytes,
            resumed,
        })
    }

    /// Sends `builder`, with a bearer token from the provider if `authorize`, turning
    /// transport errors into [`Error::Http`]. A 401 to a token makes the provider drop it
    /// ([`TokenProvider::invalidate`]) and the request is sent once more with a new one.
    async fn send(
        &self,
        what: &'static str,
        url: &str,
        builder: RequestBuilder,
        authorize: bool,
    ) -> Result<Response, Error> {
        let transport = |source| Error::Http {
            what,
            url: url.to_owned(),
            source,
        };
        if !authorize {
            return builder.send().await.map_err(transport);
        }
        let again = builder.try_clone();
        let token = self.tokens.access_token().await?;
        let response = with_token(builder, token.as_deref())
            .send()
            .await
            .map_err(transport)?;
        match (response.status(), token, again) {
            (StatusCode::UNAUTHORIZED, Some(refused), Some(again)) => {
                self.tokens.invalidate(&refused);
                let token = self.tokens.access_token().await?;
                with_token(again, token.as_deref())
                    .send()
                    .await
                    .map_err(transport)
            }
            _ => Ok(response),
        }
    }

    /// Decides what a non-success response means. `fatal_outcomes`: a 5xx with a
    /// non-transient OperationOutcome ends the step (a failed job) instead of being retried.
    async fn judge(
        &self,
        what: &'static str,
        url: &str,
        response: Response,
        attempt: u32,
        fatal_outcomes: bool,
    ) -> (Outcome, Value, HeaderMap) {
        let status = response.status();
        let headers = response.headers().clone();
        let retry_after = header_str(&headers, RETRY_AFTER.as_str());
        let body_text = response.text().await.unwrap_or_default();
        let body: Value = serde_json::from_str(&body_text).unwrap_or(Value::Null);
        let reason = format!("HTTP {}", status.as_u16());
        let policy = &self.options.retry;
        let outcome = if status == StatusCode::TOO_MANY_REQUESTS
            || status == StatusCode::REQUEST_TIMEOUT
            || (status.is_server_error()
                && (!fatal_outcomes
                    || is_transient_outcome(&body)
                    || outcome_summary(&body).is_none()))
            || (status.is_client_error() && is_transient_outcome(&body))
        {
            Outcome::Retry(policy.wait(retry_after.as_deref(), attempt), reason)
        } else {
            Outcome::Fail(Error::Status {
                what,
                url: url.to_owned(),
                status: status.as_u16(),
                outcome: outcome_summary(&body),
            })
        };
        let body = if body.is_null() && !body_text.is_empty() {
            Value::String(body_text.chars().take(500).collect())
        } else {
            body
        };
        (outcome, body, headers)
    }

    /// The kick-off: returns the absolute status URL.
    async fn kickoff(&self, request: &ExportRequest) -> Result<String, Error> {
        let url = request.kickoff_url().map_err(|message| Error::Protocol {
            what: "kick-off",
            url: request.server.clone(),
            message,
        })?;
        let mut attempt = 0;
        loop {
            let builder = if request.uses_post() {
                self.client
                    .request(Method::POST, url.clone())
                    .header(CONTENT_TYPE, "application/fhir+json")
                    .body(
                        serde_json::to_vec(&request.parameters_body())
                            .expect("Parameters serialize"),
                    )
            } else {
                self.client.get(url.clone())
            }
            .header(ACCEPT, "application/fhir+json")
            .header("Prefer", "respond-async");
            let result = self.send("kick-off", url.as_str(), builder, true).await;
            let (wait, reason) = match result {
                Ok(response) if response.status() == StatusCode::ACCEPTED => {
                    let location = header_str(response.headers(), CONTENT_LOCATION.as_str())
                        .ok_or_else(|| Error::Protocol {
                            what: "kick-off",
                            url: url.to_string(),
                            message: "202 without a Content-Location header".into(),
                        })?;
                    let status_url = url.join(&location).map_err(|e| Error::Protocol {
                        what: "kick-off",
                        url: url.to_string(),
                        message: format!("Content-Location is not a URL: {e}"),
                    })?;
                    self.log.event(
                        "kickoff",
                        self.kickoff_detail(request, url.as_str(), None, Value::Null),
                    )?;
                    return Ok(status_url.to_string());
                }
                Ok(response) => {
                    let status = response.status().as_u16();
                    match self
                        .judge("kick-off", url.as_str(), response, attempt, true)
                        .await
                    {
                        (Outcome::Retry(wait, reason), _, _) => (wait, reason),
                        (Outcome::Fail(error), body, _) => {
                            self.log.event(
                                "kickoff",
                                self.kickoff_detail(request, url.as_str(), Some(status), body),
                            )?;
                            return Err(error);
                        }
                    }
                }
                Err(error) => (self.options.retry.backoff(attempt), error.to_string()),
            };
            attempt += 1;
            if attempt >= self.options.retry.attempts {
                return Err(Error::Protocol {
                    what: "kick-off",
                    url: url.to_string(),
                    message: format!("gave up after {attempt} tries: {reason}"),
                });
            }
            self.emit(Event::Retrying {
                what: "kick-off",
                reason,
                wait,
            });
            tokio::time::sleep(wait).await;
        }
    }

    fn kickoff_detail(
        &self,
        request: &ExportRequest,
        url: &str,
        error_code: Option<u16>,
        error_body: Value,
    ) -> Value {
        json!({
            "exportUrl": url,
            "errorCode": error_code,
            "errorBody": if error_code.is_some() { error_body } else { Value::Null },
            "softwareName": null,
            "softwareVersion": null,
            "softwareReleaseDate": null,
            "fhirVersion": null,
            "requestParameters": request.log_parameters(),
        })
    }

    /// Polls `url` (a status URL or a manifest page) until it answers 200 with a manifest.
    async fn poll(&self, url: &str) -> Result<(Value, Manifest), Error> {
        let mut polls = 0u32;
        let mut failures = 0u32;
        loop {
            let builder = self.client.get(url).header(ACCEPT, "application/json");
            let (wait, retry_reason) = match self.send("status", url, builder, true).await {
                Ok(response) if response.status() == StatusCode::OK => {
                    let body: Value = response.json().await.map_err(|source| Error::Http {
                        what: "status",
                        url: url.to_owned(),
                        source,
                    })?;
                    let manifest = Manifest::parse(&body).map_err(|message| Error::Protocol {
                        what: "manifest",
                        url: url.to_owned(),
                        message,
                    })?;
                    return Ok((body, manifest));
                }
                Ok(response) if response.status() == StatusCode::ACCEPTED => {
                    let progress = header_str(response.headers(), "x-progress");
                    let retry_after = header_str(response.headers(), RETRY_AFTER.as_str());
                    let wait = match retry_after.as_deref().and_then(|v| {
                        crate::retry::parse_retry_after(v, std::time::SystemTime::now())
                    }) {
                        Some(wait) => self.options.retry.clamp(wait),
                        None => self.poll_delay(polls),
                    };
                    let body: Value = response.json().await.unwrap_or(Value::Null);
                    self.log.event(
                        "status_progress",
                        json!({"body": body, "xProgress": progress, "retryAfter": retry_after}),
                    )?;
                    self.emit(Event::Waiting { progress, wait });
                    polls += 1;
                    failures = 0;
                    tokio::time::sleep(wait).await;
                    continue;
                }
                Ok(response) => {
                    let status = response.status();
                    let (outcome, body, headers) =
                        self.judge("status", url, response, failures, true).await;
                    match outcome {
                        Outcome::Retry(wait, reason) if status == StatusCode::TOO_MANY_REQUESTS => {
                            self.emit(Event::Retrying {
                                what: "status",
                                reason,
                                wait,
                            });
                            tokio::time::sleep(wait).await;
                            continue;
                        }
                        Outcome::Retry(wait, reason) => {
                            self.log_status_error(status.as_u16(), &body, &headers, &reason)?;
                            (wait, reason)
                        }
                        Outcome::Fail(error) => {
                            self.log_status_error(
                                status.as_u16(),
                                &body,
                                &headers,
                                &error.to_string(),
                            )?;
                            return Err(error);
                        }
                    }
                }
                Err(error) => (self.options.retry.backoff(failures), error.to_string()),
            };
            failures += 1;
            if failures >= self.options.retry.attempts {
                return Err(Error::Protocol {
                    what: "status",
                    url: url.to_owned(),
                    message: format!("gave up after {failures} tries: {retry_reason}"),
                });
            }
            self.emit(Event::Retrying {
                what: "status",
                reason: retry_reason,
                wait,
            });
            tokio::time::sleep(wait).await;
        }
    }

    fn poll_delay(&self, polls: u32) -> Duration {
        self.options
            .poll_initial
            .saturating_mul(1u32.checked_shl(polls.min(30)).unwrap_or(u32::MAX))
            .min(self.options.poll_max)
    }

    fn log_status_error(
        &self,
        code: u16,
        body: &Value,
        headers: &HeaderMap,
        message: &str,
    ) -> Result<(), Error> {
        self.log.event(
            "status_error",
            json!({"body": body, "code": code, "message": message, "responseHeaders": header_map(headers)}),
        )
    }

    /// Follows `link` `next` from the first manifest page, records every page and its files,
    /// and writes the manifest copies to OUT.
    async fn collect_pages(
        &self,
        state: &mut State,
        first: (Value, Manifest),
    ) -> Result<(), Error> {
        let (mut body, mut manifest) = first;
        loop {
            self.log.event(
                "status_page_complete",
                json!({
                    "transactionTime": manifest.transaction_time,
                    "outputFileCount": manifest.files.iter().filter(|f| f.kind == FileKind::Output).count(),
                    "deletedFileCount": manifest.files.iter().filter(|f| f.kind == FileKind::Deleted).count(),
                    "errorFileCount": manifest.files.iter().filter(|f| f.kind == FileKind::Error).count(),
                }),
            )?;
            state.requires_access_token |= manifest.requires_access_token;
            state
                .transaction_time
                .get_or_insert_with(|| manifest.transaction_time.clone());
            state.add_files(&manifest.files);
            state.pages.push(body);
            let Some(next) = manifest.next.clone() else {
                break;
            };
            let base = Url::parse(state.status_url.as_deref().unwrap_or_default()).ok();
            let next = match base.and_then(|b| b.join(&next).ok()) {
                Some(url) => url.to_string(),
                None => next,
            };
            if state.pages.len() > 10_000 {
                return Err(Error::Protocol {
                    what: "manifest",
                    url: next,
                    message: "more than 10,000 manifest pages".into(),
                });
            }
            (body, manifest) = self.poll(&next).await?;
        }
        let count = |kind| state.files.iter().filter(|f| f.kind == kind).count();
        let detail = json!({
            "transactionTime": state.transaction_time,
            "outputFileCount": count(FileKind::Output),
            "deletedFileCount": count(FileKind::Deleted),
            "errorFileCount": count(FileKind::Error),
        });
        self.log.event("status_complete", detail.clone())?;
        self.log.event(
            "manifest_complete",
            json!({
                "transactionTime": state.transaction_time,
                "totalOutputFileCount": detail["outputFileCount"],
                "totalDeletedFileCount": detail["deletedFileCount"],
                "totalErrorFileCount": detail["errorFileCount"],
                "totalManifests": state.pages.len(),
            }),
        )?;
        let out = &self.options.out;
        for (index, page) in state.pages.iter().enumerate() {
            let name = if index == 0 {
                "manifest.json".to_owned()
            } else {
                format!("manifest.{index:03}.json")
            };
            let bytes = serde_json::to_vec_pretty(page).expect("a manifest serializes");
            write_atomically(&out.join(name), &bytes)?;
        }
        self.store.save(state)
    }

    /// Downloads every file not yet finished, `downloads_per_host` at a time per host.
    async fn download_all(&self, state: &State) -> Result<(), Error> {
        let finished = self.store.finished()?;
        let todo: Vec<&FileEntry> = state
            .files
            .iter()
            .filter(|f| !finished.contains_key(&f.url))
            .collect();
        let resources = todo
            .iter()
            .filter(|f| f.kind == FileKind::Output)
            .map(|f| f.count)
            .sum::<Option<u64>>();
        self.emit(Event::ManifestReady {
            files: todo.len(),
            total_files: state.files.len(),
            resources,
        });
        for folder in ["deleted", "error"] {
            if todo.iter().any(|f| f.name.starts_with(folder)) {
                let path = self.options.out.join(folder);
                std::fs::create_dir_all(&path).map_err(|e| Error::io(&path, e))?;
            }
        }
        // One semaphore per origin; at most `downloads_per_host` × origins downloads exist at
        // once, so memory does not grow with the number of files (peers send 20,000+).
        let origin = |url: &str| {
            Url::parse(url)
                .ok()
                .map(|u| u.origin().ascii_serialization())
                .unwrap_or_default()
        };
        let per_host = self.options.downloads_per_host.max(1);
        let mut hosts: HashMap<String, Arc<Semaphore>> = HashMap::new();
        for file in &todo {
            hosts
                .entry(origin(&file.url))
                .or_insert_with(|| Arc::new(Semaphore::new(per_host)));
        }
        let in_flight = per_host * hosts.len().max(1);
        let hosts = &hosts;
        let mut tasks = futures::stream::iter(todo)
            .map(|file| async move {
                let permits = hosts[&origin(&file.url)].clone();
                let _permit = permits
                    .acquire_owned()
                    .await
                    .expect("the semaphore is never closed");
                (file, self.download(file, state.requires_access_token).await)
            })
            .buffer_unordered(in_flight);
        let mut errors = Vec::new();
        while let Some((file, result)) = tasks.next().await {
            match result {
                Ok(done) => {
                    self.store.record_finished(&file.url, done)?;
                    self.emit(Event::FileDone {
                        name: file.name.clone(),
                        resources: done.resources,
                    });
                }
                Err(error) => errors.push(error),
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Error::Files(errors))
        }
    }

    /// Downloads one file with retries: streamed, checked line by line, written to
    /// `NAME.part` and renamed into place once complete and verified.
    async fn download(&self, file: &FileEntry, authorize: bool) -> Result<Finished, Error> {
        let target = self.options.out.join(&file.name);
        let mut part = target.as_os_str().to_owned();
        part.push(".part");
        let part = PathBuf::from(part);
        self.log.event("download_request", json!({"fileUrl": file.url, "itemType": file.kind.as_str(), "resourceType": file.resource_type}))?;
        let mut attempt = 0;
        loop {
            let builder = self
                .client
                .get(&file.url)
                .header(ACCEPT, "application/fhir+ndjson");
            let failure = match self.send("download", &file.url, builder, authorize).await {
                Ok(response) if response.status() == StatusCode::OK => {
                    match self.stream_to(file, response, &part).await {
                        Ok(done) => {
                            tokio::fs::rename(&part, &target)
                                .await
                                .map_err(|e| Error::io(&target, e))?;
                            self.log.event("download_complete", json!({"fileUrl": file.url, "fileSize": done.bytes, "resourceCount": done.resources}))?;
                            return Ok(done);
                        }
                        Err(Error::Http { source, .. }) => (
                            self.options.retry.backoff(attempt),
                            source.to_string(),
                            Value::Null,
                            HeaderMap::new(),
                            None,
                        ),
                        Err(error) => {
                            let _ = tokio::fs::remove_file(&part).await;
                            return Err(self.download_failed(
                                file,
                                error,
                                Value::Null,
                                &HeaderMap::new(),
                                None,
                            ));
                        }
                    }
                }
                Ok(response) => {
                    let status = response.status().as_u16();
                    match self
                        .judge("download", &file.url, response, attempt, false)
                        .await
                    {
                        (Outcome::Retry(wait, reason), body, headers) => {
                            (wait, reason, body, headers, Some(status))
                        }
                        (Outcome::Fail(error), body, headers) => {
                            return Err(self.download_failed(
                                file,
                                error,
                                body,
                                &headers,
                                Some(status),
                            ));
                        }
                    }
                }
                Err(error) => (
                    self.options.retry.backoff(attempt),
                    error.to_string(),
                    Value::Null,
                    HeaderMap::new(),
                    None,
                ),
            };
            let (wait, reason, body, headers, status) = failure;
            attempt += 1;
            if attempt >= self.options.retry.attempts {
                let error = Error::Protocol {
                    what: "download",
                    url: file.url.clone(),
                    message: format!("gave up after {attempt} tries: {reason}"),
                };
                let _ = tokio::fs::remove_file(&part).await;
                return Err(self.download_failed(file, error, body, &headers, status));
            }
            self.emit(Event::Retrying {
                what: "download",
                reason,
                wait,
            });
            tokio::time::sleep(wait).await;
        }
    }

    fn download_failed(
        &self,
        file: &FileEntry,
        error: Error,
        body: Value,
        headers: &HeaderMap,
        code: Option<u16>,
    ) -> Error {
        let logged = self.log.event(
            "download_error",
            json!({"fileUrl": file.url, "body": body, "code": code, "message": error.to_string(), "responseHeaders": header_map(headers)}),
        );
        match logged {
            Ok(()) => error,
            Err(log_error) => log_error,
        }
    }

    /// Streams a 200 response into `part`, checking every line.
    async fn stream_to(
        &self,
        file: &FileEntry,
        response: Response,
        part: &Path,
    ) -> Result<Finished, Error> {
        let expected = file.kind.fixed_type().or(file.resource_type.as_deref());
        let mut checker = LineChecker::new(&file.name, expected, self.options.max_line_bytes);
        if file.kind == FileKind::Output && file.resource_type.is_none() {
            checker = checker.organized();
        }
        let handle = tokio::fs::File::create(part)
            .await
            .map_err(|e| Error::io(part, e))?;
        let mut writer = tokio::io::BufWriter::with_capacity(1 << 18, handle);
        let mut body = response.bytes_stream();
        let mut lines = Vec::new();
        let mut bytes = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|source| Error::Http {
                what: "download",
                url: file.url.clone(),
                source,
            })?;
            lines.clear();
            checker.feed(&chunk, &mut lines)?;
            writer
                .write_all(&lines)
                .await
                .map_err(|e| Error::io(part, e))?;
            bytes += lines.len() as u64;
            if !lines.is_empty() {
                self.emit(Event::Bytes(lines.len() as u64));
            }
        }
        lines.clear();
        let resources = checker.finish(&mut lines)?;
        writer
            .write_all(&lines)
            .await
            .map_err(|e| Error::io(part, e))?;
        bytes += lines.len() as u64;
        writer.flush().await.map_err(|e| Error::io(part, e))?;
        writer
            .into_inner()
            .sync_all()
            .await
            .map_err(|e| Error::io(part, e))?;
        // `count` means resources for output and deleted files; peers put other numbers on
        // error files (the SMART server: the resources that failed), so those are not checked.
        if let Some(count) = file.count
            && file.kind != FileKind::Error
            && count != resources
        {
            return Err(Error::Invalid {
                file: file.name.clone(),
                message: format!("{resources} resources where the manifest count is {count}"),
            });
        }
        Ok(Finished { resources, bytes })
    }

    /// Tells the server the files may be removed (DELETE on the status URL). A failure here
    /// does not fail the export: the data is complete, and the server expires files anyway.
    async fn release(&self, url: &str) {
        let builder = self
            .client
            .delete(url)
            .header(ACCEPT, "application/fhir+json");
        // Whatever the answer (202, 404 for an export already released, or a network error),
        // the export is complete; the server's own expiry removes files it still holds.
        let _ = self.send("delete", url, builder, true).await;
    }
}

/// `builder` with `Authorization: Bearer token`, if there is a token.
fn with_token(builder: RequestBuilder, token: Option<&str>) -> RequestBuilder {
    match token {
        Some(token) => builder.header(AUTHORIZATION, format!("Bearer {token}")),
        None => builder,
    }
}

/// A header's value as text, if present and printable.
fn header_str(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Response headers for the log, without anything that could carry a credential.
fn header_map(headers: &HeaderMap) -> Value {
    let mut map = serde_json::Map::new();
    for (name, value) in headers {
        if matches!(
            name.as_str(),
            "set-cookie" | "authorization" | "www-authenticate"
        ) {
            continue;
        }
        if let Ok(value) = value.to_str() {
            map.insert(name.as_str().to_owned(), Value::String(value.to_owned()));
        }
    }
    Value::Object(map)
}
