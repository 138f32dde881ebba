//! Bulk Data `$export` (STU2 on the wire, STU3 additions accepted): kick-off, background
//! jobs, status polling, cancellation and downloads.
//!
//! # Endpoints
//!
//! - Kick-off, `GET` or `POST` (a `Parameters` body): `[base]/$export`,
//!   `[base]/Patient/$export`, `[base]/Group/[id]/$export`. Needs `Prefer: respond-async`;
//!   `Accept` may be missing, `application/fhir+json`, `application/json` or `*/*`. Answers
//!   `202` with an absolute `Content-Location` (the status URL, built from the configured
//!   public base URL) and the job id in `X-Request-ID`. Parameters: `_outputFormat` (the three
//!   NDJSON spellings), `_since`, `_until`, `_type`, `_typeFilter` (evaluated in memory on the
//!   snapshot, see [`filter`]), `_elements` (top-level elements; `resourceType`, `id` and
//!   `meta` are always kept and the resource is tagged `SUBSETTED`), `patient` (POST only),
//!   and Haven's `_anonymizationConfig=NAME` (a `deid` preset such as `safe-harbor`, or a
//!   configuration registered in [`ExportSettings::anonymization_configs`]).
//!   `includeAssociatedData` and `organizeOutputBy` are not supported: 400, or ignored with an
//!   informational OperationOutcome in the manifest's `error[]` under
//!   `Prefer: handling=lenient`; unknown parameters and `_type` values likewise.
//!   `allowPartialManifests` is accepted; manifests are always complete.
//! - Status: `GET [base]/_operations/export/[id]` answers `202` with `X-Progress` and
//!   `Retry-After` while the job runs, `429` with a delta `Retry-After` when polled more
//!   often than half the advertised interval, `200` with the manifest when done, `500` with an
//!   OperationOutcome when the job failed, and `404` with an OperationOutcome for unknown or
//!   cancelled jobs. `DELETE` on it cancels a running job or releases a finished one: `202`,
//!   its files are removed, and the status URL answers `404` from then on.
//! - Files: `GET [base]/_operations/export/[id]/[file]`, streamed from the destination with
//!   `Content-Type: application/fhir+ndjson` (gzip when the client accepts it).
//!
//! # Jobs and files
//!
//! A job pins `transactionTime` at kick-off ([`store::Store::transaction_time`]) and reads
//! every type as of that instant, page by page, on a blocking thread. Each type goes to
//! `[Type]-[n].ndjson` in a folder named by the job id under the destination
//! ([`crate::ServerConfig::export_to`]: a folder, or `az://`, `s3://`, `gs://` through
//! `lake::Destination`), as Azure API for FHIR does; a file is rolled over at the first page
//! boundary after it reaches [`ExportSettings::max_file_bytes`]. With `_since`, deletions go
//! to `Deleted-[Type]-[n].ndjson` as transaction Bundles of one `DELETE` entry each, listed
//! in `deleted[]`. Files are written through atomic uploads (a temporary name renamed on
//! completion for a folder), and the job saves its progress (finished files, the store cursor)
//! after each one, so [`resume_jobs`] picks unfinished jobs up after a restart from the last
//! finished file.
//!
//! Downloads go through the server for every destination, object storage included: the
//! manifest's URLs are the server's own, so clients need no storage credentials and the
//! server keeps one access rule (`requiresAccessToken` follows
//! [`ExportSettings::requires_access_token`]); the files also stay where an analyst expects
//! them, in the container folder named by the job id.
//!
//! # De-identified export
//!
//! With `_anonymizationConfig`, each page of lines goes through `deid::Engine::deidentify_lines`
//! (rayon, order kept) before it is written. Keys a configuration needs but does not hold
//! (`cryptoHashKey`, `encryptKey`, …) are generated once per server process and name, so
//! exports of one run agree with each other; register a configuration file with fixed keys
//! for exports that must agree across restarts. A resource the engine refuses is left out and
//! named (type and id) in `error[]`.

pub mod admin;
pub mod filter;
mod http;
mod job;
pub mod request;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Instant;

use store::JobStatus;

pub use http::routes;

/// Export settings that a deployment may tune (part of [`crate::ServerConfig`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportSettings {
    /// Options for an object-store destination, named as `object_store` names them
    /// (`azure_storage_account_name`, `aws_endpoint`, …); they override the environment.
    pub destination_options: BTreeMap<String, String>,
    /// The size at which an output file is rolled over (default 64 MiB, as Microsoft's
    /// server does).
    pub max_file_bytes: u64,
    /// Resources read from the store per page (default 1,000).
    pub page_size: usize,
    /// The `Retry-After` sent while a job runs, in seconds (default 1); polls less than half
    /// of it apart get `429`.
    pub retry_after_secs: u64,
    /// De-identification configuration files (Microsoft's format) by the name a client gives
    /// in `_anonymizationConfig`; the `deid` presets are always available by name.
    pub anonymization_configs: BTreeMap<String, PathBuf>,
    /// Whether the manifest says downloads need the bearer token (set when authorization is
    /// on).
    pub requires_access_token: bool,
}

impl Default for ExportSettings {
    fn default() -> ExportSettings {
        ExportSettings {
            destination_options: BTreeMap::new(),
            max_file_bytes: 64 << 20,
            page_size: 1000,
            retry_after_secs: 1,
            anonymization_configs: BTreeMap::new(),
            requires_access_token: false,
        }
    }
}

/// The export side of a running server: its settings, where files go, the running jobs'
/// cancellation flags, the last poll of each job, and compiled de-identification engines.
pub struct Exports {
    settings: ExportSettings,
    export_to: String,
    base_url: String,
    requires_access_token: bool,
    destination: OnceLock<lake::Destination>,
    running: Mutex<HashMap<String, Arc<AtomicBool>>>,
    polls: Mutex<HashMap<String, Instant>>,
    engines: Mutex<HashMap<String, Arc<deid::Engine>>>,
}

impl std::fmt::Debug for Exports {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exports")
            .field("export_to", &self.export_to)
            .finish_non_exhaustive()
    }
}

impl Exports {
    /// The export state of a server whose files go to `export_to` and whose API is at
    /// `base_url` (no trailing `/`). Opens nothing yet.
    pub fn new(settings: ExportSettings, export_to: &str, base_url: &str) -> Exports {
        Exports {
            requires_access_token: settings.requires_access_token,
            settings,
            export_to: export_to.to_owned(),
            base_url: base_url.trim_end_matches('/').to_owned(),
            destination: OnceLock::new(),
            running: Mutex::new(HashMap::new()),
            polls: Mutex::new(HashMap::new()),
            engines: Mutex::new(HashMap::new()),
        }
    }

    /// The destination root, opened on first use (blocking: it may create a folder).
    fn destination(&self) -> Result<&lake::Destination, lake::Error> {
        if let Some(dest) = self.destination.get() {
            return Ok(dest);
        }
        let dest =
            lake::Destination::open_with(&self.export_to, &self.settings.destination_options)?;
        Ok(self.destination.get_or_init(|| dest))
    }

    /// The folder of one job.
    fn job_destination(&self, id: &str) -> Result<lake::Destination, lake::Error> {
        Ok(self.destination()?.child(id))
    }

    /// Whether `_anonymizationConfig=name` can be honoured.
    fn knows_anonymization(&self, name: &str) -> bool {
        self.settings.anonymization_configs.contains_key(name)
            || deid::presets::preset(name).is_some()
    }

    /// The compiled engine of a preset or registered configuration (compiled once).
    fn engine(&self, name: &str) -> Result<Arc<deid::Engine>, String> {
        let mut engines = self.engines.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(engine) = engines.get(name) {
            return Ok(Arc::clone(engine));
        }
        let mut config = match self.settings.anonymization_configs.get(name) {
            Some(path) => {
                let bytes = std::fs::read(path).map_err(|e| {
                    format!(
                        "anonymization configuration {name} ({}): {e}",
                        path.display()
                    )
                })?;
                deid::Config::from_slice(&bytes)
            }
            None => {
                let text = deid::presets::preset(name)
                    .ok_or_else(|| format!("no anonymization configuration named {name}"))?;
                deid::Config::from_json(text)
            }
        }
        .map_err(|e| format!("anonymization configuration {name}: {e}"))?;
        // Keys from the configuration and the server's environment (HAVEN_CRYPTO_HASH_KEY,
        // HAVEN_DATE_SHIFT_KEY, HAVEN_ENCRYPT_KEY), so exports agree across restarts; keys
        // still missing are generated for this process only.
        if let Err(error) = deid::keys::resolve(&mut config, &deid::keys::KeyOptions::default())
            && config.missing_keys().is_empty()
        {
            return Err(format!("anonymization configuration {name}: {error}"));
        }
        config.generate_missing_keys();
        let engine = Arc::new(
            deid::Engine::new(config)
                .map_err(|e| format!("anonymization configuration {name}: {e}"))?,
        );
        engines.insert(name.to_owned(), Arc::clone(&engine));
        Ok(engine)
    }

    /// Registers a running job; its cancellation flag.
    fn start(&self, id: &str) -> Option<Arc<AtomicBool>> {
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        if running.contains_key(id) {
            return None;
        }
        let flag = Arc::new(AtomicBool::new(false));
        running.insert(id.to_owned(), Arc::clone(&flag));
        Some(flag)
    }

    fn stop(&self, id: &str) {
        self.running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id);
    }

    /// Removes a job's files (best effort: a file left behind is logged).
    fn remove_files(&self, id: &str) {
        let removed = self.job_destination(id).and_then(|dest| {
            for object in dest.list("")? {
                dest.delete(&object.key)?;
            }
            Ok(())
        });
        if let Err(error) = removed {
            tracing::warn!(job = id, %error, "could not remove an export's files");
        }
        if let Ok(dest) = self.job_destination(id)
            && dest.scheme() == lake::Scheme::Local
            && let Ok(path) = dest.url().to_file_path()
        {
            let _ = std::fs::remove_dir(path);
        }
    }
}

/// The download URL of a job's file.
fn file_url(base_url: &str, id: &str, file: &str) -> String {
    format!("{base_url}/_operations/export/{id}/{file}")
}

/// The status URL of a job.
fn status_url(base_url: &str, id: &str) -> String {
    format!("{base_url}/_operations/export/{id}")
}

/// Starts a job in the background: a Tokio task that runs it on the blocking pool, then
/// removes its files if it was cancelled meanwhile.
fn spawn(state: &crate::AppState, id: String) {
    let Some(cancel) = state.exports.start(&id) else {
        return;
    };
    let store = Arc::clone(&state.store);
    let exports = Arc::clone(&state.exports);
    tokio::spawn(async move {
        let task = tokio::task::spawn_blocking(move || {
            job::run(store.as_ref(), &exports, &id, &cancel);
            exports.stop(&id);
            if cancel.load(std::sync::atomic::Ordering::Relaxed) {
                exports.remove_files(&id);
            }
        });
        if task.await.is_err() {
            tracing::error!("an export job's thread panicked");
        }
    });
}

/// Resumes the jobs a previous server process left accepted or in progress; call once at
/// start-up, inside the Tokio runtime. Returns how many were resumed.
pub async fn resume_jobs(state: &crate::AppState) -> Result<usize, crate::FhirError> {
    let jobs = state.blocking(|store| Ok(store.list_jobs()?)).await?;
    let mut resumed = 0;
    for job in jobs {
        if matches!(job.status, JobStatus::Accepted | JobStatus::InProgress) {
            tracing::info!(job = job.id, "resuming export");
            spawn(state, job.id);
            resumed += 1;
        }
    }
    Ok(resumed)
}
