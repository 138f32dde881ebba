//! What a run tells its user: progress while it runs (a bar on a terminal, a log line every few
//! seconds otherwise) and the summary at the end (on standard error and as JSON). Counts and
//! names only, never a value from a resource.

use std::io::{self, IsTerminal};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use fhir::ndjson::Progress;
use indicatif::{HumanBytes, HumanCount, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;

use super::layout::Layout;
use super::process::Totals;

/// How often the log line is written when standard error is not a terminal.
const LOG_EVERY: Duration = Duration::from_secs(5);

/// How often the progress bar is updated.
const BAR_EVERY: Duration = Duration::from_millis(200);

/// Counters of the whole run, updated by the workers and read by the progress display.
#[derive(Debug)]
pub(super) struct Monitor {
    started: Instant,
    files_total: usize,
    bytes_total: Option<u64>,
    files_done: AtomicU64,
    records_done: AtomicU64,
    bytes_done: AtomicU64,
    current: Mutex<Option<Arc<Progress>>>,
}

/// The counters at one moment.
#[derive(Debug, Clone, Copy)]
pub(super) struct Snapshot {
    files: u64,
    records: u64,
    bytes: u64,
}

impl Monitor {
    /// Counters for the jobs of `layout`, with the total input size when every size is known.
    pub(super) fn new(layout: &Layout) -> Self {
        let jobs = layout.jobs();
        Self {
            started: Instant::now(),
            files_total: jobs.len(),
            bytes_total: jobs.iter().map(|job| job.size).sum(),
            files_done: AtomicU64::new(0),
            records_done: AtomicU64::new(0),
            bytes_done: AtomicU64::new(0),
            current: Mutex::new(None),
        }
    }

    /// An NDJSON stream starts; its reader's counters are watched until [`Self::end_stream`].
    pub(super) fn begin_stream(&self, progress: Arc<Progress>) {
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) = Some(progress);
    }

    /// The current NDJSON stream has ended.
    pub(super) fn end_stream(&self) {
        let current = self
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(progress) = current {
            self.records_done
                .fetch_add(progress.lines_done(), Ordering::Relaxed);
            self.bytes_done
                .fetch_add(progress.source_bytes(), Ordering::Relaxed);
            self.files_done.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A JSON document of `bytes` bytes is done.
    pub(super) fn document_done(&self, bytes: u64) {
        self.records_done.fetch_add(1, Ordering::Relaxed);
        self.bytes_done.fetch_add(bytes, Ordering::Relaxed);
        self.files_done.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters now, the current stream included.
    pub(super) fn snapshot(&self) -> Snapshot {
        let current = self
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let (records, bytes) = current.map_or((0, 0), |p| (p.lines_done(), p.source_bytes()));
        Snapshot {
            files: self.files_done.load(Ordering::Relaxed),
            records: self.records_done.load(Ordering::Relaxed) + records,
            bytes: self.bytes_done.load(Ordering::Relaxed) + bytes,
        }
    }

    /// The input bytes read so far (compressed bytes for gzip).
    pub(super) fn bytes_read(&self) -> u64 {
        self.snapshot().bytes
    }

    /// `2/5 files, 120,000 records, 35.20 MiB, 24,000 records/s`.
    fn describe(&self, now: Snapshot) -> String {
        format!(
            "{}/{} files, {} records, {}, {} records/s",
            now.files,
            self.files_total,
            HumanCount(now.records),
            HumanBytes(now.bytes),
            HumanCount(per_second(now.records, self.started.elapsed()))
        )
    }
}

/// A count per second over `elapsed`.
fn per_second(count: u64, elapsed: Duration) -> u64 {
    let seconds = elapsed.as_secs_f64();
    if seconds > 0.0 {
        (count as f64 / seconds) as u64
    } else {
        0
    }
}

/// Shows progress while a run goes on, and prints notes without garbling the bar. Dropping it
/// stops the display.
#[derive(Debug)]
pub(super) struct Reporter {
    bar: Option<ProgressBar>,
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Reporter {
    /// Starts a progress bar when standard error is a terminal, else a log line every 5 s.
    pub(super) fn start(monitor: Arc<Monitor>) -> Self {
        let (stop, stopped) = mpsc::channel::<()>();
        if !io::stderr().is_terminal() {
            let thread = thread::spawn(move || {
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(LOG_EVERY) {
                    eprintln!("haven: progress: {}", monitor.describe(monitor.snapshot()));
                }
            });
            return Self {
                bar: None,
                stop: Some(stop),
                thread: Some(thread),
            };
        }
        let bar = ProgressBar::with_draw_target(monitor.bytes_total, ProgressDrawTarget::stderr());
        let template = if monitor.bytes_total.is_some() {
            "{spinner} {elapsed_precise} [{wide_bar}] {bytes}/{total_bytes} ETA {eta} {msg}"
        } else {
            "{spinner} {elapsed_precise} {bytes} {msg}"
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.enable_steady_tick(BAR_EVERY);
        let shown = bar.clone();
        let thread = thread::spawn(move || {
            while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(BAR_EVERY) {
                let now = monitor.snapshot();
                shown.set_position(now.bytes);
                shown.set_message(format!(
                    "{}/{} files, {} records",
                    now.files,
                    monitor.files_total,
                    HumanCount(now.records)
                ));
            }
        });
        Self {
            bar: Some(bar),
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Prints a line on standard error (above the bar, if any).
    pub(super) fn note(&self, message: &str) {
        match &self.bar {
            Some(bar) => bar.suspend(|| eprintln!("{message}")),
            None => eprintln!("{message}"),
        }
    }
}

impl Drop for Reporter {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            // The display thread only formats counters; if it panicked there is nothing to add.
            let _ = thread.join();
        }
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// The end-of-run summary.
#[derive(Debug)]
pub(super) struct Summary<'s> {
    /// `preset NAME` or the configuration file.
    pub configuration: &'s str,
    /// INPUT as given.
    pub input: &'s str,
    /// OUTPUT as given.
    pub output: &'s str,
    /// The counts.
    pub totals: &'s Totals,
}

impl Summary<'_> {
    /// The summary as pretty JSON, the same for the same input and configuration.
    pub(super) fn to_json(&self) -> String {
        let totals = self.totals;
        let invalid: Vec<serde_json::Value> = totals
            .invalid
            .iter()
            .map(|i| json!({"file": i.file, "line": i.line, "error": i.error}))
            .collect();
        let mut summary = json!({
            "configuration": self.configuration,
            "input": self.input,
            "output": self.output,
            "files": totals.files,
            "records": totals.records,
            "resourcesIn": totals.resources_in,
            "resourcesOut": totals.resources_out,
            "resourcesProcessed": totals.summary.resources,
            "nodes": totals.summary.nodes,
            "skippedByProcessingErrors": totals.summary.skipped,
            "invalidRecords": totals.invalid_count,
            "invalid": invalid,
        });
        if let Some(scrub) = totals.summary.to_json().get("scrub") {
            summary["scrub"] = scrub.clone();
        }
        let mut text = serde_json::to_string_pretty(&summary).unwrap_or_default();
        text.push('\n');
        text
    }

    /// Prints the summary on standard error.
    pub(super) fn print(&self, elapsed: Duration, bytes: u64, written: Option<&Path>) {
        let totals = self.totals;
        eprintln!(
            "haven: de-identified {} file{}, {} records ({}) in {:.1} s, {} records/s",
            totals.files,
            if totals.files == 1 { "" } else { "s" },
            HumanCount(totals.records),
            HumanBytes(bytes),
            elapsed.as_secs_f64(),
            HumanCount(per_second(totals.records, elapsed))
        );
        let width = totals
            .resources_in
            .keys()
            .map(|kind| kind.len())
            .max()
            .unwrap_or(0)
            .max("resource type".len());
        eprintln!("  {:width$}  {:>10}  {:>10}", "resource type", "in", "out");
        for (kind, count) in &totals.resources_in {
            let out = totals.resources_out.get(kind).copied().unwrap_or(0);
            eprintln!(
                "  {kind:width$}  {:>10}  {:>10}",
                HumanCount(*count).to_string(),
                HumanCount(out).to_string()
            );
        }
        let nodes: Vec<String> = totals
            .summary
            .nodes
            .iter()
            .map(|(method, count)| format!("{method} {}", HumanCount(*count)))
            .collect();
        if !nodes.is_empty() {
            eprintln!("  values by method: {}", nodes.join(", "));
        }
        let scrub = &totals.summary.scrub;
        if !scrub.is_empty() {
            let counts = |m: &std::collections::BTreeMap<&str, u64>| {
                m.iter()
                    .map(|(k, n)| format!("{k} {}", HumanCount(*n)))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            eprintln!(
                "  free text: {} replaced by layer ({}), by kind ({})",
                HumanCount(scrub.layers.values().sum()),
                counts(&scrub.layers),
                counts(&scrub.kinds)
            );
            let dropped: u64 = scrub.dropped.values().sum();
            if dropped > 0 {
                eprintln!(
                    "  free text dropped, as it could not be read as text: {}",
                    HumanCount(dropped)
                );
            }
        }
        if totals.summary.skipped > 0 {
            eprintln!(
                "  resources emptied by processingErrors skip: {}",
                HumanCount(totals.summary.skipped)
            );
        }
        if totals.invalid_count > 0 {
            eprintln!(
                "  invalid records left out: {}",
                HumanCount(totals.invalid_count)
            );
        }
        if let Some(path) = written {
            eprintln!("  summary: {}", path.display());
        }
    }
}
