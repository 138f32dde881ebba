//! One export job, run on a blocking thread: read the snapshot type by type, page by page,
//! turn each page into NDJSON lines (filters, `_until`, `_elements`, de-identification), and
//! write them to rolling files in the job's folder, saving progress after every finished file
//! so that a restarted server resumes where the last finished file ended.

use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use store::{ExportJob, ExportQuery, JobStatus, PatientScope, Store, Timestamp};

use super::filter::TypeFilter;
use super::request::{ExportRequest, Level};
use super::{Exports, file_url};

/// Why a job stopped without completing.
#[derive(Debug, thiserror::Error)]
pub(crate) enum JobError {
    /// The client cancelled it (DELETE) or the job record is gone.
    #[error("the export was cancelled")]
    Cancelled,
    /// A store, storage or configuration failure (messages name types, keys and files only).
    #[error("{0}")]
    Failed(String),
}

impl From<store::Error> for JobError {
    fn from(error: store::Error) -> JobError {
        match error {
            store::Error::JobNotFound(_) => JobError::Cancelled,
            other => JobError::Failed(format!("store: {other}")),
        }
    }
}

impl From<lake::Error> for JobError {
    fn from(error: lake::Error) -> JobError {
        JobError::Failed(format!("storage: {error}"))
    }
}

impl From<std::io::Error> for JobError {
    fn from(error: std::io::Error) -> JobError {
        JobError::Failed(format!("storage: {error}"))
    }
}

/// The phase a job is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Phase {
    /// Writing resources.
    #[default]
    Output,
    /// Writing deletions (only with `_since`).
    Deleted,
}

/// A finished file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct FileEntry {
    /// The resource type of its lines (`Bundle` for deletions).
    #[serde(rename = "type")]
    pub resource_type: String,
    /// Its name in the job's folder.
    pub file: String,
    /// Its number of lines.
    pub count: u64,
    /// Its size in bytes.
    pub bytes: u64,
}

/// The most per-resource problems a job records one by one (the rest are counted).
const MAX_PROBLEMS: usize = 1000;

/// What a job has done, saved in the job record after every finished file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Progress {
    phase: Phase,
    /// The index in the request's types of the type being exported.
    type_index: usize,
    /// The store cursor where the file being written started.
    cursor: u64,
    /// Resources written before that cursor (the de-identification sequence).
    written: u64,
    /// Finished resource files.
    pub output: Vec<FileEntry>,
    /// Finished deletion files.
    pub deleted: Vec<FileEntry>,
    /// Per-resource problems (type, id and reason; never values).
    problems: Vec<String>,
    /// Problems beyond [`MAX_PROBLEMS`].
    more_problems: u64,
}

impl Progress {
    /// Reads a job's saved progress (empty for a new job).
    pub fn of(job: &ExportJob) -> Progress {
        serde_json::from_value(job.progress.clone()).unwrap_or_default()
    }

    /// The share of the work done, from 0 to 1: types finished out of `types` (the deletion
    /// phase counts as the last step).
    pub fn fraction(&self, types: usize) -> f64 {
        let steps = types.max(1) as f64;
        match self.phase {
            Phase::Output => (self.type_index as f64 / steps).min(1.0),
            Phase::Deleted => 1.0 - 0.5 / steps,
        }
    }

    /// How many resources were left out with a problem (de-identification failures).
    pub fn problems(&self) -> u64 {
        self.problems.len() as u64 + self.more_problems
    }

    /// A short description for `X-Progress` (under 100 characters).
    pub fn describe(&self, types: usize) -> String {
        let resources: u64 = self.output.iter().map(|f| f.count).sum();
        match self.phase {
            Phase::Output => format!(
                "exporting type {} of {types}, {resources} resources written",
                (self.type_index + 1).min(types.max(1))
            ),
            Phase::Deleted => format!("listing deletions, {resources} resources written"),
        }
    }
}

/// An open output file that rolls over at the configured size.
struct Sink {
    writer: std::io::BufWriter<lake::ObjectWriter>,
    file: String,
    resource_type: String,
    count: u64,
    bytes: u64,
}

impl Sink {
    fn open(dest: &lake::Destination, resource_type: &str, file: String) -> Result<Sink, JobError> {
        Ok(Sink {
            writer: std::io::BufWriter::with_capacity(1 << 20, dest.writer(&file)?),
            file,
            resource_type: resource_type.to_owned(),
            count: 0,
            bytes: 0,
        })
    }

    fn write_line(&mut self, line: &[u8]) -> Result<(), JobError> {
        self.writer.write_all(line)?;
        self.writer.write_all(b"\n")?;
        self.count += 1;
        self.bytes += line.len() as u64 + 1;
        Ok(())
    }

    fn finish(self) -> Result<FileEntry, JobError> {
        let writer = self
            .writer
            .into_inner()
            .map_err(|e| JobError::Failed(format!("storage: {}: {}", self.file, e.error())))?;
        writer.finish()?;
        Ok(FileEntry {
            resource_type: self.resource_type,
            file: self.file,
            count: self.count,
            bytes: self.bytes,
        })
    }
}

/// The `meta.tag` that marks a resource with only some of its elements (`_elements`).
fn subsetted() -> Value {
    json!({"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED"})
}

/// Turns a page of stored resources into output lines.
struct Transform {
    until: Option<Timestamp>,
    filters: Vec<TypeFilter>,
    elements: Vec<(Option<String>, String)>,
    engine: Option<Arc<deid::Engine>>,
}

impl Transform {
    fn new(
        request: &ExportRequest,
        engine: Option<Arc<deid::Engine>>,
    ) -> Result<Transform, JobError> {
        let filters = request
            .type_filters
            .iter()
            .map(|f| TypeFilter::parse(f).map_err(|e| JobError::Failed(e.to_string())))
            .collect::<Result<_, _>>()?;
        Ok(Transform {
            until: request.until(),
            filters,
            elements: request.elements.clone(),
            engine,
        })
    }

    /// The elements kept for `resource_type`, or `None` when `_elements` does not apply.
    fn elements_of(&self, resource_type: &str) -> Option<Vec<&str>> {
        if self.elements.is_empty() {
            return None;
        }
        let mut kept = vec!["resourceType", "id", "meta"];
        let mut any = false;
        for (scope, name) in &self.elements {
            if scope.as_deref().is_none_or(|t| t == resource_type) {
                kept.push(name);
                any = true;
            }
        }
        any.then_some(kept)
    }

    /// The lines of a page, in order; problems are pushed to `problems`.
    fn lines(
        &self,
        resource_type: &str,
        items: Vec<store::StoredResource>,
        sequence: u64,
        file: &str,
        problems: &mut Vec<String>,
    ) -> Vec<String> {
        let filters: Vec<&TypeFilter> = self
            .filters
            .iter()
            .filter(|f| f.resource_type() == resource_type)
            .collect();
        let kept = self.elements_of(resource_type);
        let needs_parse = !filters.is_empty() || kept.is_some();
        let until = self.until;
        let fast = !needs_parse && until.is_none();
        let lines: Vec<(String, String)> = if fast {
            items
                .into_iter()
                .map(|r| (r.id, one_line(r.json)))
                .collect()
        } else {
            items
                .into_par_iter()
                .filter(|r| until.is_none_or(|until| r.last_updated <= until))
                .filter_map(|r| {
                    if !needs_parse {
                        return Some((r.id, one_line(r.json)));
                    }
                    let mut value: Value = serde_json::from_str(&r.json).ok()?;
                    if !filters.is_empty() && !filters.iter().any(|f| f.matches(&value)) {
                        return None;
                    }
                    if let Some(kept) = &kept {
                        keep_elements(&mut value, kept);
                    }
                    Some((r.id, value.to_string()))
                })
                .collect()
        };
        let Some(engine) = &self.engine else {
            return lines.into_iter().map(|(_, line)| line).collect();
        };
        let bytes: Vec<&[u8]> = lines.iter().map(|(_, line)| line.as_bytes()).collect();
        let ctx = deid::Context {
            file: Some(file),
            folder: None,
            sequence,
        };
        let batch = engine.deidentify_lines(&bytes, &ctx);
        batch
            .lines
            .into_iter()
            .zip(&lines)
            .filter_map(|(result, (id, _))| match result {
                Ok(line) => Some(line),
                Err(error) => {
                    problems.push(format!(
                        "{resource_type}/{id} was left out: de-identification failed: {error}"
                    ));
                    None
                }
            })
            .collect()
    }
}

/// Stored JSON as one NDJSON line (stored text is compact unless a client sent it otherwise).
fn one_line(json: String) -> String {
    if json.contains('\n') {
        serde_json::from_str::<Value>(&json).map_or(json, |v| v.to_string())
    } else {
        json
    }
}

/// Keeps only `kept` top-level elements and tags the resource `SUBSETTED`.
fn keep_elements(resource: &mut Value, kept: &[&str]) {
    let Some(map) = resource.as_object_mut() else {
        return;
    };
    map.retain(|key, _| {
        let base = key.strip_prefix('_').unwrap_or(key);
        kept.contains(&base)
    });
    let meta = map.entry("meta").or_insert_with(|| json!({}));
    if let Some(meta) = meta.as_object_mut() {
        let tags = meta.entry("tag").or_insert_with(|| json!([]));
        if let Some(tags) = tags.as_array_mut() {
            tags.push(subsetted());
        }
    }
}

/// The identifying values of every person and place in the store at `at` (whatever the
/// export's scope: a note may name anyone), for the `scrub` of a de-identified export. A job
/// that resumes collects them again from the same snapshot, so it scrubs alike.
fn identities(
    store: &dyn Store,
    at: Timestamp,
    page_size: usize,
    cancel: &AtomicBool,
) -> Result<deid::scrub::Identities, JobError> {
    let mut identities = deid::scrub::Identities::default();
    for resource_type in deid::scrub::Identities::RESOURCE_TYPES {
        let query = ExportQuery {
            resource_type: resource_type.to_owned(),
            at,
            since: None,
            patients: PatientScope::All,
        };
        let mut cursor = 0;
        loop {
            if cancel.load(Ordering::Relaxed) {
                return Err(JobError::Cancelled);
            }
            let page = store.export_page(&query, cursor, page_size)?;
            for resource in &page.items {
                let _ = identities.add_json(resource.json.as_bytes());
            }
            match page.next {
                Some(after) => cursor = after,
                None => break,
            }
        }
    }
    Ok(identities)
}

/// Runs (or resumes) a job to its end; saves its final state. Call on a blocking thread.
pub(crate) fn run(store: &dyn Store, exports: &Exports, id: &str, cancel: &AtomicBool) {
    let outcome = run_inner(store, exports, id, cancel);
    let Ok(Some(mut job)) = store.get_job(id) else {
        return;
    };
    match outcome {
        Ok(()) => {}
        Err(JobError::Cancelled) => {}
        Err(JobError::Failed(message)) => {
            tracing::error!(job = id, error = %message, "export failed");
            job.status = JobStatus::Failed;
            job.error = Some(message);
            let _ = store.update_job(&job);
        }
    }
}

fn run_inner(
    store: &dyn Store,
    exports: &Exports,
    id: &str,
    cancel: &AtomicBool,
) -> Result<(), JobError> {
    let mut job = store.get_job(id)?.ok_or(JobError::Cancelled)?;
    let request: ExportRequest = serde_json::from_value(job.request.clone())
        .map_err(|e| JobError::Failed(format!("the job's request record is unreadable: {e}")))?;
    let at = match job.transaction_time {
        Some(at) => at,
        None => store.transaction_time()?,
    };
    job.transaction_time = Some(at);
    job.status = JobStatus::InProgress;
    job = store.update_job(&job)?;
    let dest = exports.job_destination(id)?;
    let mut engine = request
        .anonymization
        .as_deref()
        .map(|name| exports.engine(name))
        .transpose()
        .map_err(JobError::Failed)?;
    if let Some(scrubbing) = engine.as_ref().filter(|e| e.scrubs()) {
        let identities = identities(store, at, exports.settings.page_size.max(1), cancel)?;
        engine = Some(Arc::new((**scrubbing).clone().with_identities(&identities)));
    }
    let transform = Transform::new(&request, engine)?;
    let mut progress = Progress::of(&job);
    let patients = match (&request.level, &request.patients) {
        (_, Some(ids)) => PatientScope::Patients(ids.clone()),
        (Level::System, None) => PatientScope::All,
        (Level::Patient, None) => PatientScope::AnyPatient,
        (Level::Group { .. }, None) => PatientScope::Patients(Vec::new()),
    };
    let page_size = exports.settings.page_size.max(1);
    let max_bytes = exports.settings.max_file_bytes.max(1);
    let since = request.since();
    let phases: &[Phase] = if since.is_some() {
        &[Phase::Output, Phase::Deleted]
    } else {
        &[Phase::Output]
    };
    for &phase in phases {
        if phase == Phase::Output && progress.phase == Phase::Deleted {
            continue;
        }
        if progress.phase != phase {
            progress.phase = phase;
            progress.type_index = 0;
            progress.cursor = 0;
        }
        while progress.type_index < request.types.len() {
            let resource_type = &request.types[progress.type_index];
            let query = ExportQuery {
                resource_type: resource_type.clone(),
                at,
                since,
                patients: patients.clone(),
            };
            let mut cursor = progress.cursor;
            let mut sink: Option<Sink> = None;
            loop {
                if cancel.load(Ordering::Relaxed) {
                    return Err(JobError::Cancelled);
                }
                let (lines, next) = match phase {
                    Phase::Output => {
                        let page = store.export_page(&query, cursor, page_size)?;
                        let file = next_file(&progress, phase, resource_type);
                        let sequence = progress.written + sink.as_ref().map_or(0, |s| s.count);
                        let mut problems = Vec::new();
                        let lines = transform.lines(
                            resource_type,
                            page.items,
                            sequence,
                            &file,
                            &mut problems,
                        );
                        for problem in problems {
                            record_problem(&mut progress, problem);
                        }
                        (lines, page.next)
                    }
                    Phase::Deleted => {
                        let page = store.deleted_page(&query, cursor, page_size)?;
                        let until = request.until();
                        let lines = page
                            .items
                            .iter()
                            .filter(|t| until.is_none_or(|until| t.deleted_at <= until))
                            .map(deletion_bundle)
                            .collect();
                        (lines, page.next)
                    }
                };
                if !lines.is_empty() {
                    if sink.is_none() {
                        let file = next_file(&progress, phase, resource_type);
                        let line_type = match phase {
                            Phase::Output => resource_type.as_str(),
                            Phase::Deleted => "Bundle",
                        };
                        sink = Some(Sink::open(&dest, line_type, file)?);
                    }
                    let open = sink.as_mut().expect("opened above");
                    for line in &lines {
                        open.write_line(line.as_bytes())?;
                    }
                }
                let full = sink.as_ref().is_some_and(|s| s.bytes >= max_bytes);
                if (full || next.is_none())
                    && let Some(done) = sink.take()
                {
                    let entry = done.finish()?;
                    progress.written += entry.count;
                    match phase {
                        Phase::Output => progress.output.push(entry),
                        Phase::Deleted => progress.deleted.push(entry),
                    }
                    progress.cursor = next.unwrap_or(0);
                    if next.is_some() {
                        job = save(store, job, &progress)?;
                    }
                }
                match next {
                    Some(after) => cursor = after,
                    None => break,
                }
            }
            progress.type_index += 1;
            progress.cursor = 0;
            job = save(store, job, &progress)?;
        }
    }
    let mut errors = Vec::new();
    if !request.notes.is_empty() || !progress.problems.is_empty() {
        let mut sink = Sink::open(
            &dest,
            "OperationOutcome",
            "OperationOutcome-1.ndjson".into(),
        )?;
        for note in &request.notes {
            sink.write_line(outcome_line("information", "informational", note).as_bytes())?;
        }
        for problem in &progress.problems {
            sink.write_line(outcome_line("error", "processing", problem).as_bytes())?;
        }
        if progress.more_problems > 0 {
            let more = format!("{} more resources were left out", progress.more_problems);
            sink.write_line(outcome_line("error", "processing", &more).as_bytes())?;
        }
        errors.push(sink.finish()?);
    }
    if cancel.load(Ordering::Relaxed) {
        return Err(JobError::Cancelled);
    }
    let entries = |files: &[FileEntry]| -> Vec<Value> {
        files
            .iter()
            .map(|f| json!({"type": f.resource_type, "url": file_url(&exports.base_url, id, &f.file), "count": f.count}))
            .collect()
    };
    let mut manifest = json!({
        "transactionTime": at.to_string(),
        "request": request.url,
        "requiresAccessToken": exports.requires_access_token,
        "output": entries(&progress.output),
    });
    if since.is_some() {
        manifest["deleted"] = json!(entries(&progress.deleted));
    }
    manifest["error"] = json!(entries(&errors));
    job.progress = serde_json::to_value(&progress).unwrap_or_default();
    job.output = Some(manifest);
    job.status = JobStatus::Completed;
    store.update_job(&job)?;
    Ok(())
}

/// The name of the next file of a type in a phase (`Patient-2.ndjson`,
/// `Deleted-Observation-1.ndjson`).
fn next_file(progress: &Progress, phase: Phase, resource_type: &str) -> String {
    match phase {
        Phase::Output => {
            let n = progress
                .output
                .iter()
                .filter(|f| f.resource_type == resource_type)
                .count();
            format!("{resource_type}-{}.ndjson", n + 1)
        }
        Phase::Deleted => {
            let prefix = format!("Deleted-{resource_type}-");
            let n = progress
                .deleted
                .iter()
                .filter(|f| f.file.starts_with(&prefix))
                .count();
            format!("{prefix}{}.ndjson", n + 1)
        }
    }
}

fn record_problem(progress: &mut Progress, problem: String) {
    if progress.problems.len() < MAX_PROBLEMS {
        progress.problems.push(problem);
    } else {
        progress.more_problems += 1;
    }
}

fn save(store: &dyn Store, mut job: ExportJob, progress: &Progress) -> Result<ExportJob, JobError> {
    job.progress = serde_json::to_value(progress).unwrap_or_default();
    Ok(store.update_job(&job)?)
}

/// A deletion as the specification lists it: a transaction Bundle with one DELETE entry.
fn deletion_bundle(tombstone: &store::Tombstone) -> String {
    json!({
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{
            "request": {
                "method": "DELETE",
                "url": format!("{}/{}", tombstone.resource_type, tombstone.id)
            }
        }]
    })
    .to_string()
}

/// An OperationOutcome NDJSON line.
fn outcome_line(severity: &str, code: &str, diagnostics: &str) -> String {
    json!({
        "resourceType": "OperationOutcome",
        "issue": [{"severity": severity, "code": code, "diagnostics": diagnostics}]
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elements_keep_mandatory_keys_and_tag_subsetted() {
        let mut patient = json!({"resourceType": "Patient", "id": "p", "birthDate": "2000-01-01",
            "_birthDate": {"extension": []}, "gender": "male", "name": [{"family": "X"}]});
        keep_elements(&mut patient, &["resourceType", "id", "meta", "birthDate"]);
        assert_eq!(
            patient,
            json!({"resourceType": "Patient", "id": "p", "birthDate": "2000-01-01",
                "_birthDate": {"extension": []}, "meta": {"tag": [subsetted()]}})
        );
    }

    #[test]
    fn file_names_count_per_type_and_phase() {
        let mut progress = Progress::default();
        assert_eq!(
            next_file(&progress, Phase::Output, "Patient"),
            "Patient-1.ndjson"
        );
        progress.output.push(FileEntry {
            resource_type: "Patient".into(),
            file: "Patient-1.ndjson".into(),
            count: 1,
            bytes: 1,
        });
        assert_eq!(
            next_file(&progress, Phase::Output, "Patient"),
            "Patient-2.ndjson"
        );
        assert_eq!(
            next_file(&progress, Phase::Deleted, "Patient"),
            "Deleted-Patient-1.ndjson"
        );
    }

    #[test]
    fn deletions_are_transaction_bundles() {
        let line = deletion_bundle(&store::Tombstone {
            resource_type: "Condition".into(),
            id: "c1".into(),
            version: 2,
            deleted_at: Timestamp::from_millis(0),
        });
        let bundle: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(bundle["type"], "transaction");
        assert_eq!(bundle["entry"][0]["request"]["method"], "DELETE");
        assert_eq!(bundle["entry"][0]["request"]["url"], "Condition/c1");
    }
}
