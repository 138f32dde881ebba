//! Loading files straight into a store (`haven load`): transaction and batch Bundles
//! (`.json`, `.json.gz`, `.json.bz2`), NDJSON (`.ndjson`, `.ndjson.gz`, `.ndjson.bz2`) and
//! single resources.
//!
//! Bundles are planned by the same code as `POST /fhir` ([`crate::bundle`]): `urn:uuid:` and
//! conditional references rewritten, conditional creates honoured. Many Bundles are committed
//! together in one store transaction of about [`LoadOptions::batch_resources`] resources,
//! which is what makes loading fast; a batch Bundle is loaded as one unit like a transaction.
//! While a batch is committed (on a thread of its own), the next files are read and parsed in
//! parallel and planned.
//!
//! Loads are idempotent and resumable: loading the same input again, whole or after an
//! interrupted load (a crash, `kill -9`), gives the store that one uninterrupted load gives.
//! Resources keep their ids (NDJSON, as an export from another server gives them, and single
//! resources); a Bundle's created resources get stable ids ([`Resolver::stable`]: the UUID of
//! their `urn:uuid:` fullUrl); and every write is a [`Write::Upsert`], which writes nothing
//! when the stored version already holds the same content.
//!
//! Folders are read recursively. Synthea's `hospitalInformation*` and
//! `practitionerInformation*` Bundles are loaded first, since the patients' Bundles refer to
//! their Organizations, Locations and Practitioners conditionally.
//!
//! Memory follows the batch: a transaction batch and the Bundles being parsed, never the
//! whole data set. A failure stops the load; the batches committed before it stay, the one
//! in progress is not written.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use fhir::ndjson::{NdjsonError, NdjsonReader, ReadOptions};
use rayon::prelude::*;
use serde_json::Value;
use store::{Store, Write, WriteKind, WriteOutcome};

use crate::ServerConfig;
use crate::bundle::{self, Context, Resolver, Seal};
use crate::outcome::FhirError;

/// How a load runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadOptions {
    /// Resources per store transaction (a Bundle is never split).
    pub batch_resources: usize,
    /// How many Bundle files are parsed at once, in parallel.
    pub parse_ahead: usize,
}

impl Default for LoadOptions {
    /// 20,000 resources per transaction; 8 files parsed ahead.
    fn default() -> LoadOptions {
        LoadOptions {
            batch_resources: 20_000,
            parse_ahead: 8,
        }
    }
}

/// Where a load is, for progress displays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadProgress {
    /// Files read so far.
    pub files_done: usize,
    /// Files to read in all.
    pub files_total: usize,
    /// Resources committed so far.
    pub resources: u64,
}

/// What a load did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadSummary {
    /// Files read.
    pub files: usize,
    /// Resources of the input now in the store: written (created or updated) or found there
    /// already with the same content.
    pub resources: u64,
    /// Those resources per type.
    pub counts: BTreeMap<String, u64>,
    /// How many of them were already stored with the same content (nothing written).
    pub unchanged: u64,
}

/// Why a load stopped. Messages name files, entries and element paths, never values.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A file or folder could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file is not JSON, or not a resource.
    #[error("{}: {reason}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong (with a line and column for malformed JSON).
        reason: String,
    },
    /// An NDJSON file could not be read (the error names the file and line).
    #[error(transparent)]
    Ndjson(#[from] NdjsonError),
    /// A Bundle could not be planned (the error names the entry and element path).
    #[error("{}: {error}{}", path.display(), expression(error))]
    Bundle {
        /// The file.
        path: PathBuf,
        /// Why.
        error: FhirError,
    },
    /// A store transaction failed; nothing of that batch was written.
    #[error("writing the batch ending with {}: {source}", last.display())]
    Store {
        /// The last file of the batch.
        last: PathBuf,
        /// The store's error.
        source: store::Error,
    },
}

fn expression(error: &FhirError) -> String {
    error
        .issues
        .first()
        .and_then(|issue| issue.expression.as_deref())
        .map(|expression| format!(" (at {expression})"))
        .unwrap_or_default()
}

/// The format of an input file, from its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Ndjson,
}

/// The format of a file this loader reads, by extension (`.json`, `.ndjson`, optionally
/// followed by `.gz` or `.bz2`).
fn format_of(path: &Path) -> Option<Format> {
    let name = path.file_name()?.to_str()?;
    let name = name
        .strip_suffix(".gz")
        .or_else(|| name.strip_suffix(".bz2"))
        .unwrap_or(name);
    if name.ends_with(".ndjson") {
        Some(Format::Ndjson)
    } else if name.ends_with(".json") {
        Some(Format::Json)
    } else {
        None
    }
}

/// Load order: Synthea hospital Bundles, then practitioner Bundles, then the rest.
fn priority(path: &Path) -> u8 {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if name.contains("hospitalInformation") {
        0
    } else if name.contains("practitionerInformation") {
        1
    } else {
        2
    }
}

/// The files to load: the files given (whatever their name) and the loadable files under
/// the folders given (recursively, sorted by path), hospital and practitioner Bundles first.
pub fn input_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, LoadError> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), LoadError> {
        let io = |source| LoadError::Io {
            path: dir.to_owned(),
            source,
        };
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(io)?
            .map(|entry| entry.map(|e| e.path()))
            .collect::<Result<_, _>>()
            .map_err(io)?;
        entries.sort();
        for path in entries {
            if path.is_dir() {
                walk(&path, out)?;
            } else if format_of(&path).is_some() {
                out.push(path);
            }
        }
        Ok(())
    }
    let mut files = Vec::new();
    for path in paths {
        let metadata = std::fs::metadata(path).map_err(|source| LoadError::Io {
            path: path.clone(),
            source,
        })?;
        if metadata.is_dir() {
            walk(path, &mut files)?;
        } else {
            files.push(path.clone());
        }
    }
    files.sort_by_key(|path| priority(path));
    Ok(files)
}

/// Opens a file, decompressing `.gz` and `.bz2`.
fn open(path: &Path) -> Result<Box<dyn Read + Send>, LoadError> {
    let file = std::fs::File::open(path).map_err(|source| LoadError::Io {
        path: path.to_owned(),
        source,
    })?;
    let reader = std::io::BufReader::new(file);
    let name = path.to_string_lossy();
    Ok(if name.ends_with(".bz2") {
        Box::new(bzip2::read::MultiBzDecoder::new(reader))
    } else if name.ends_with(".gz") {
        Box::new(flate2::read::MultiGzDecoder::new(reader))
    } else {
        Box::new(reader)
    })
}

/// Reads and parses a JSON file.
fn parse_json(path: &Path) -> Result<Value, LoadError> {
    let mut bytes = Vec::new();
    open(path)?
        .read_to_end(&mut bytes)
        .map_err(|source| LoadError::Io {
            path: path.to_owned(),
            source,
        })?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(value) if value.get("resourceType").and_then(Value::as_str).is_some() => Ok(value),
        Ok(_) => Err(LoadError::Invalid {
            path: path.to_owned(),
            reason: "not a FHIR resource (no resourceType)".to_owned(),
        }),
        Err(error) => Err(LoadError::Invalid {
            path: path.to_owned(),
            reason: format!(
                "malformed JSON at line {}, column {}",
                error.line(),
                error.column()
            ),
        }),
    }
}

/// A resource outside a Bundle, kept with its id; one without gets a stable id from its
/// content ([`bundle::stable_id`]).
fn single(mut resource: Value) -> Write {
    if resource.get("id").is_none() {
        let id = bundle::stable_id(None, Some(&resource));
        if let Value::Object(object) = &mut resource {
            bundle::set_id(object, &id);
        }
    }
    Write::Upsert(resource)
}

/// Loads `files` (see [`input_files`]) into `store`, calling `progress` after each file.
pub fn load(
    store: &dyn Store,
    files: &[PathBuf],
    options: &LoadOptions,
    progress: &mut dyn FnMut(&LoadProgress),
) -> Result<LoadSummary, LoadError> {
    let config = ServerConfig::default();
    std::thread::scope(|scope| {
        // One batch is committed on this thread while the next one is read and planned.
        let (batches, inbox) = sync_channel::<Vec<Write>>(0);
        let (results, outcomes) = sync_channel(1);
        scope.spawn(move || {
            for batch in inbox {
                if results.send(store.transaction(batch)).is_err() {
                    break;
                }
            }
        });
        let mut loader = Loader {
            context: Context {
                store,
                base_url: "",
                config: &config,
            },
            options,
            resolver: Resolver::stable(),
            batch: Vec::new(),
            summary: LoadSummary::default(),
            last: PathBuf::new(),
            batches,
            outcomes,
            in_flight: None,
        };
        let mut done = 0;
        let mut report = |loader: &Loader<'_>, done: usize| {
            progress(&LoadProgress {
                files_done: done,
                files_total: files.len(),
                resources: loader.summary.resources,
            });
        };
        // Runs of JSON files are parsed `parse_ahead` at a time in parallel, then planned in
        // order.
        let mut rest = files;
        while let Some(first) = rest.first() {
            if format_of(first) == Some(Format::Ndjson) {
                loader.ndjson(first, &mut |loader| report(loader, done))?;
                done += 1;
                report(&loader, done);
                rest = &rest[1..];
                continue;
            }
            let run = rest
                .iter()
                .take(options.parse_ahead.max(1))
                .take_while(|path| format_of(path) != Some(Format::Ndjson))
                .count();
            let parsed: Vec<Result<Value, LoadError>> = rest[..run]
                .par_iter()
                .map(|path| parse_json(path))
                .collect();
            for (path, value) in rest[..run].iter().zip(parsed) {
                loader.json(path, value?)?;
                done += 1;
                report(&loader, done);
            }
            rest = &rest[run..];
        }
        loader.flush()?;
        loader.wait()?;
        report(&loader, done);
        loader.summary.files = files.len();
        Ok(loader.summary)
    })
}

/// A batch handed to the committing thread.
struct InFlight {
    /// The resolver's seal over the plans of the batch.
    seal: Seal,
    /// Which writes of the batch are deletes (not counted as loaded resources).
    deletes: Vec<bool>,
    /// The batch's last file, named in errors.
    last: PathBuf,
}

/// The state of a load between files.
struct Loader<'a> {
    context: Context<'a>,
    options: &'a LoadOptions,
    resolver: Resolver,
    batch: Vec<Write>,
    summary: LoadSummary,
    /// The last file added to the batch.
    last: PathBuf,
    /// Batches to commit, to the committing thread.
    batches: SyncSender<Vec<Write>>,
    /// The outcomes of committed batches, from it.
    outcomes: Receiver<store::Result<Vec<WriteOutcome>>>,
    /// The batch being committed.
    in_flight: Option<InFlight>,
}

impl Loader<'_> {
    /// Adds a parsed JSON file: a Bundle or a single resource.
    fn json(&mut self, path: &Path, value: Value) -> Result<(), LoadError> {
        let is_bundle = value.get("resourceType").and_then(Value::as_str) == Some("Bundle");
        let kind = value.get("type").and_then(Value::as_str).unwrap_or("");
        match (is_bundle, kind) {
            (true, "transaction" | "batch") => {
                let plan =
                    bundle::plan(self.context, &mut self.resolver, value).map_err(|error| {
                        LoadError::Bundle {
                            path: path.to_owned(),
                            error,
                        }
                    })?;
                for resource_type in plan.matched_types() {
                    self.summary.unchanged += 1;
                    self.summary.resources += 1;
                    *self
                        .summary
                        .counts
                        .entry(resource_type.to_owned())
                        .or_default() += 1;
                }
                self.batch.extend(plan.writes);
            }
            (true, "collection") => {
                let entries = match value.get("entry") {
                    Some(Value::Array(entries)) => entries.clone(),
                    _ => Vec::new(),
                };
                for entry in entries {
                    if let Some(resource) = entry.get("resource") {
                        self.batch.push(single(resource.clone()));
                    }
                }
            }
            (true, _) => {
                return Err(LoadError::Invalid {
                    path: path.to_owned(),
                    reason: "a Bundle to load must be of type transaction, batch or collection"
                        .to_owned(),
                });
            }
            (false, _) => self.batch.push(single(value)),
        }
        self.last = path.to_owned();
        if self.batch.len() >= self.options.batch_resources {
            self.flush()?;
        }
        Ok(())
    }

    /// Adds the resources of an NDJSON file, committing full batches as it goes.
    fn ndjson(&mut self, path: &Path, report: &mut dyn FnMut(&Self)) -> Result<(), LoadError> {
        let name = path.display().to_string();
        let mut reader = NdjsonReader::new(open(path)?, &name, ReadOptions::default())?;
        while let Some(batch) = reader.next_batch()? {
            for line in batch.iter() {
                self.batch.push(single(line.parse_resource()?));
            }
            self.last = path.to_owned();
            if self.batch.len() >= self.options.batch_resources {
                self.flush()?;
                report(self);
            }
        }
        Ok(())
    }

    /// Hands the batch to the committing thread, once the batch before it is committed.
    fn flush(&mut self) -> Result<(), LoadError> {
        if self.batch.is_empty() {
            return Ok(());
        }
        self.wait()?;
        let writes = std::mem::take(&mut self.batch);
        let deletes = writes
            .iter()
            .map(|write| matches!(write, Write::Delete { .. }))
            .collect();
        self.in_flight = Some(InFlight {
            seal: self.resolver.seal(),
            deletes,
            last: self.last.clone(),
        });
        if self.batches.send(writes).is_err() {
            // The committing thread is gone: it panicked; its result says so.
            return self.wait();
        }
        Ok(())
    }

    /// Waits for the batch being committed, if any, and counts what it wrote.
    fn wait(&mut self) -> Result<(), LoadError> {
        let Some(in_flight) = self.in_flight.take() else {
            return Ok(());
        };
        let outcomes = self
            .outcomes
            .recv()
            .unwrap_or_else(|_| {
                Err(store::Error::Database(
                    "the committing thread stopped".to_owned(),
                ))
            })
            .map_err(|source| LoadError::Store {
                last: in_flight.last.clone(),
                source,
            })?;
        for (outcome, delete) in outcomes.iter().zip(&in_flight.deletes) {
            if *delete {
                continue;
            }
            match outcome.kind {
                WriteKind::Created | WriteKind::Updated => {}
                WriteKind::Unchanged => self.summary.unchanged += 1,
                WriteKind::Deleted => continue,
            }
            *self
                .summary
                .counts
                .entry(outcome.resource_type.clone())
                .or_default() += 1;
            self.summary.resources += 1;
        }
        self.resolver.committed(in_flight.seal);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_come_from_extensions() {
        assert_eq!(format_of(Path::new("a.json.bz2")), Some(Format::Json));
        assert_eq!(format_of(Path::new("a.ndjson.gz")), Some(Format::Ndjson));
        assert_eq!(format_of(Path::new("a.ndjson")), Some(Format::Ndjson));
        assert_eq!(format_of(Path::new("README.md")), None);
    }

    #[test]
    fn hospital_and_practitioner_bundles_come_first() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "0a.json",
            "hospitalInformation1.json",
            "practitionerInformation1.json.bz2",
            "notes.txt",
        ] {
            std::fs::write(dir.path().join(name), "{}").unwrap();
        }
        let files = input_files(&[dir.path().to_owned()]).unwrap();
        let names: Vec<_> = files
            .iter()
            .map(|p| p.file_name().unwrap().to_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "hospitalInformation1.json",
                "practitionerInformation1.json.bz2",
                "0a.json"
            ]
        );
    }
}
