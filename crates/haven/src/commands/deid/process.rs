//! The engine over the jobs: NDJSON streams in parallel batches written back in order, JSON
//! documents (one resource or a Bundle per file) in parallel with each other.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, BufWriter, Read, StdoutLock, Write};
use std::path::Path;

use deid::{Context, Engine, Summary};
use fhir::ndjson::{
    Compression, LineRef, NdjsonError, NdjsonFileWriter, NdjsonReader, NdjsonWriter,
    ProcessOptions, ReadOptions, process_ordered,
};
use rayon::ThreadPool;
use rayon::prelude::*;
use serde_json::Value;

use super::Failure;
use super::layout::{self, Input, Job, Staging, Target};
use super::report::{Monitor, Reporter};

/// How many invalid records are listed one by one (on standard error and in the summary); all
/// are counted.
const INVALID_LISTED: usize = 1000;

/// The counts of a run.
#[derive(Debug, Default)]
pub(super) struct Totals {
    /// Input files (or standard input) processed.
    pub files: u64,
    /// Records read: NDJSON lines and JSON documents, valid or not.
    pub records: u64,
    /// Top-level resources read, by type (`unknown` for types that are not FHIR R4).
    pub resources_in: BTreeMap<&'static str, u64>,
    /// Top-level resources written, by type.
    pub resources_out: BTreeMap<&'static str, u64>,
    /// The engine's counts: every resource processed (nested ones too), values per method.
    pub summary: Summary,
    /// Invalid records left out (with `--skip-invalid`).
    pub invalid_count: u64,
    /// The first [`INVALID_LISTED`] invalid records.
    pub invalid: Vec<Invalid>,
}

/// An invalid record left out.
#[derive(Debug)]
pub(super) struct Invalid {
    /// The input file.
    pub file: String,
    /// The line, for NDJSON.
    pub line: Option<u64>,
    /// Why, naming the file, line and element path.
    pub error: String,
}

/// What became of one record.
enum Outcome<T> {
    /// De-identified into `output`.
    Done {
        output: T,
        kind: &'static str,
        summary: Summary,
    },
    /// Invalid (left out with `--skip-invalid`).
    Invalid {
        kind: Option<&'static str>,
        error: String,
    },
}

impl Totals {
    /// Counts a record, reporting an invalid one on standard error.
    fn record<T>(
        &mut self,
        outcome: Outcome<T>,
        file: &str,
        line: Option<u64>,
        reporter: &Reporter,
    ) {
        self.records += 1;
        match outcome {
            Outcome::Done { kind, summary, .. } => {
                *self.resources_in.entry(kind).or_default() += 1;
                *self.resources_out.entry(kind).or_default() += 1;
                self.summary.merge(&summary);
            }
            Outcome::Invalid { kind, error } => {
                if let Some(kind) = kind {
                    *self.resources_in.entry(kind).or_default() += 1;
                }
                self.invalid_count += 1;
                if self.invalid.len() < INVALID_LISTED {
                    reporter.note(&format!("haven: left out {error}"));
                    self.invalid.push(Invalid {
                        file: file.to_string(),
                        line,
                        error,
                    });
                } else if self.invalid.len() == INVALID_LISTED
                    && self.invalid_count == INVALID_LISTED as u64 + 1
                {
                    reporter.note(&format!(
                        "haven: more invalid records; only the first {INVALID_LISTED} are listed"
                    ));
                }
            }
        }
    }
}

/// The type of a resource for the counts: its R4 type, or `unknown`.
fn resource_kind(resource: &Value) -> &'static str {
    resource
        .get("resourceType")
        .and_then(Value::as_str)
        .and_then(fhir::types::intern)
        .filter(|kind| fhir::types::is_concrete_resource_type(kind))
        .unwrap_or("unknown")
}

/// A JSON parse error for messages: position and kind, never input text.
fn json_error(error: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let what = match error.classify() {
        Category::Syntax | Category::Eof => {
            let text = error.to_string();
            let position = format!(" at line {} column {}", error.line(), error.column());
            text.strip_suffix(&position).unwrap_or(&text).to_owned()
        }
        Category::Data => "invalid value".to_owned(),
        Category::Io => "read failed".to_owned(),
    };
    format!(
        "line {}: invalid JSON at column {} ({what})",
        error.line(),
        error.column()
    )
}

/// The NDJSON output of a stream.
enum LineWriter {
    Stdout(NdjsonWriter<BufWriter<StdoutLock<'static>>>),
    File(NdjsonFileWriter),
}

impl LineWriter {
    /// Opens the output of `target`.
    fn open(target: &Target) -> Result<Self, Failure> {
        Ok(match target {
            Target::Stdout => LineWriter::Stdout(NdjsonWriter::new(
                BufWriter::new(io::stdout().lock()),
                "<stdout>",
                Compression::Plain,
            )),
            Target::File { staged, path } => LineWriter::File(
                NdjsonFileWriter::create(staged, target.compression())
                    .map_err(|error| write_failure(error, path))?,
            ),
        })
    }

    /// Writes one line.
    fn write_line(&mut self, line: &[u8]) -> Result<(), NdjsonError> {
        match self {
            LineWriter::Stdout(writer) => writer.write_line(line),
            LineWriter::File(writer) => writer.write_line(line),
        }
    }

    /// Completes the output (a file at its staged path).
    fn finish(self, target: &Target) -> Result<(), Failure> {
        let path = match target {
            Target::File { path, .. } => path.as_path(),
            Target::Stdout => Path::new("-"),
        };
        match self {
            LineWriter::Stdout(writer) => writer.finish().map(drop),
            LineWriter::File(writer) => writer.finish().map(drop),
        }
        .map_err(|error| write_failure(error, path))
    }
}

/// A write error naming the final output path rather than its staged name.
fn write_failure(error: NdjsonError, path: &Path) -> Failure {
    let path = path.display();
    match error {
        NdjsonError::File { action, error, .. } => {
            Failure::output(format!("{path}: cannot {action}: {error}"))
        }
        NdjsonError::Write { error, .. } if error.kind() == io::ErrorKind::BrokenPipe => {
            Failure::closed()
        }
        NdjsonError::Write { line, error, .. } => {
            Failure::output(format!("{path}: write failed at line {line}: {error}"))
        }
        other => Failure::output(other.to_string()),
    }
}

/// What a run shares with every job.
pub(super) struct Run<'r> {
    /// The compiled configuration.
    pub engine: &'r Engine,
    /// The worker threads.
    pub pool: &'r ThreadPool,
    /// Leave invalid records out instead of stopping.
    pub skip_invalid: bool,
    /// Progress counters.
    pub monitor: &'r Monitor,
    /// Where notes go.
    pub reporter: &'r Reporter,
}

impl Run<'_> {
    /// Runs every job: JSON documents in parallel first, then NDJSON streams one after the
    /// other, each in parallel batches. Finished outputs are handed to `staging`.
    pub(super) fn all(&self, jobs: &[Job], staging: &mut Staging) -> Result<Totals, Failure> {
        let mut totals = Totals::default();
        let documents: Vec<(&Job, &Path)> = jobs
            .iter()
            .filter_map(|job| match &job.input {
                Input::Json(path) => Some((job, path.as_path())),
                _ => None,
            })
            .collect();
        let results: Vec<Result<Outcome<()>, Failure>> = self.pool.install(|| {
            documents
                .par_iter()
                .map(|(job, path)| self.document(job, path))
                .collect()
        });
        for ((job, _), result) in documents.iter().zip(results) {
            let outcome = result?;
            if matches!(outcome, Outcome::Done { .. }) {
                staging.add(&job.target);
            }
            totals.files += 1;
            totals.record(outcome, &job.name, None, self.reporter);
        }
        for job in jobs {
            let stream = match &job.input {
                Input::Stdin => self.stream(
                    NdjsonReader::new(io::stdin().lock(), &job.name, ReadOptions::default())?,
                    job,
                    &mut totals,
                ),
                Input::Ndjson(path) => self.stream(
                    NdjsonReader::open(path, ReadOptions::default())?,
                    job,
                    &mut totals,
                ),
                Input::Part { path, start, end } => self.stream(
                    super::shard::open_part(path, &job.name, *start, *end)?,
                    job,
                    &mut totals,
                ),
                Input::Json(_) => continue,
            };
            stream?;
            staging.add(&job.target);
            totals.files += 1;
        }
        Ok(totals)
    }

    /// De-identifies an NDJSON stream in parallel batches, writing lines in input order.
    fn stream<R: Read>(
        &self,
        mut reader: NdjsonReader<R>,
        job: &Job,
        totals: &mut Totals,
    ) -> Result<(), Failure> {
        let mut writer = LineWriter::open(&job.target)?;
        let context = Context {
            file: job.file.as_deref(),
            folder: job.folder.as_deref(),
            sequence: 0,
        };
        let options = ProcessOptions {
            pool: Some(self.pool),
            max_in_flight: None,
        };
        let path = match &job.target {
            Target::File { path, .. } => path.as_path(),
            Target::Stdout => Path::new("-"),
        };
        self.monitor.begin_stream(reader.progress());
        let processed = process_ordered(
            &mut reader,
            options,
            |line| self.line(line, &context, job.sequence),
            |line, outcome| {
                if let Outcome::Done { output, .. } = &outcome {
                    writer
                        .write_line(output.as_bytes())
                        .map_err(|error| write_failure(error, path))?;
                }
                totals.record(outcome, line.file(), Some(line.number()), self.reporter);
                Ok(())
            },
        );
        self.monitor.end_stream();
        processed?;
        writer.finish(&job.target)
    }

    /// De-identifies one NDJSON line into compact JSON.
    fn line(
        &self,
        line: LineRef<'_>,
        context: &Context<'_>,
        sequence: u64,
    ) -> Result<Outcome<String>, Failure> {
        let outcome = match line.parse_resource() {
            Ok(resource) => {
                let context = Context {
                    sequence: sequence.wrapping_add(line.number()),
                    ..*context
                };
                let at = || format!("{} line {}", line.file(), line.number());
                match self.resource(resource, &context, at) {
                    Outcome::Done {
                        output,
                        kind,
                        summary,
                    } => Outcome::Done {
                        output: output.to_string(),
                        kind,
                        summary,
                    },
                    Outcome::Invalid { kind, error } => Outcome::Invalid { kind, error },
                }
            }
            Err(error) => Outcome::Invalid {
                kind: None,
                error: error.to_string(),
            },
        };
        self.check(outcome)
    }

    /// De-identifies one resource; an error names `at()` (file and line) and the element path.
    fn resource(
        &self,
        mut resource: Value,
        context: &Context<'_>,
        at: impl FnOnce() -> String,
    ) -> Outcome<Value> {
        let kind = resource_kind(&resource);
        match self.engine.deidentify(&mut resource, context) {
            Ok(summary) => Outcome::Done {
                output: resource,
                kind,
                summary,
            },
            Err(error) => Outcome::Invalid {
                kind: Some(kind),
                error: format!("{}: {}", at(), error.describe()),
            },
        }
    }

    /// An invalid record stops the run unless `--skip-invalid` is given.
    fn check<T>(&self, outcome: Outcome<T>) -> Result<Outcome<T>, Failure> {
        match outcome {
            Outcome::Invalid { error, .. } if !self.skip_invalid => Err(Failure::input(error)),
            outcome => Ok(outcome),
        }
    }

    /// De-identifies a JSON document (a resource or a Bundle) and writes its output.
    fn document(&self, job: &Job, path: &Path) -> Result<Outcome<()>, Failure> {
        let bytes = fs::read(path)
            .map_err(|error| Failure::input(format!("cannot read {}: {error}", job.name)))?;
        let context = Context {
            file: job.file.as_deref(),
            folder: job.folder.as_deref(),
            sequence: job.sequence,
        };
        let outcome = match parse_document(&bytes) {
            Ok(resource) => self.resource(resource, &context, || job.name.clone()),
            Err(error) => Outcome::Invalid {
                kind: None,
                error: format!("{}: {error}", job.name),
            },
        };
        let outcome = match self.check(outcome)? {
            Outcome::Done {
                output,
                kind,
                summary,
            } => {
                write_document(&output, &job.target)?;
                Outcome::Done {
                    output: (),
                    kind,
                    summary,
                }
            }
            Outcome::Invalid { kind, error } => Outcome::Invalid { kind, error },
        };
        self.monitor.document_done(bytes.len() as u64);
        Ok(outcome)
    }
}

/// Parses a JSON document that must be a resource (an object with a `resourceType` string).
fn parse_document(bytes: &[u8]) -> Result<Value, String> {
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    let value: Value = serde_json::from_slice(bytes).map_err(|error| json_error(&error))?;
    match value.get("resourceType") {
        Some(Value::String(kind)) if !kind.is_empty() => Ok(value),
        _ if !value.is_object() => Err("expected a JSON object holding a resource".into()),
        _ => Err("not a resource: resourceType missing or not a non-empty string".into()),
    }
}

/// Writes a de-identified document: pretty JSON for a `.json` output, else one NDJSON line.
fn write_document(resource: &Value, target: &Target) -> Result<(), Failure> {
    match target {
        Target::Stdout => {
            let mut out = io::stdout().lock();
            writeln!(out, "{resource}")
                .and_then(|()| out.flush())
                .map_err(|error| match error.kind() {
                    io::ErrorKind::BrokenPipe => Failure::closed(),
                    _ => Failure::output(format!("cannot write to standard output: {error}")),
                })
        }
        Target::File { staged, path } if target.is_json() => {
            let mut text = serde_json::to_string_pretty(resource).map_err(|error| {
                Failure::output(format!("cannot write {}: {error}", path.display()))
            })?;
            text.push('\n');
            layout::write_staged(staged, path, text.as_bytes())
        }
        Target::File { staged, path } => {
            let mut writer = NdjsonFileWriter::create(staged, target.compression())
                .map_err(|error| write_failure(error, path))?;
            writer
                .write_value(resource)
                .map_err(|error| write_failure(error, path))?;
            writer
                .finish()
                .map(drop)
                .map_err(|error| write_failure(error, path))
        }
    }
}
