//! `haven export`: drives a FHIR server's Bulk Data `$export` into a local folder, resumably.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bulk::{Event, ExportOptions, ExportRequest, Exporter, Level, StaticToken};

/// The long help of `haven export`.
const LONG_ABOUT: &str = "\
Export a FHIR server's data with Bulk Data $export into the folder OUT.

OUT receives one NDJSON file per manifest entry (Patient.000.ndjson, …; deleted resources under
deleted/, OperationOutcomes under error/), the manifest (manifest.json) and log.ndjson in the
SMART bulk-data-client's log format. Files are downloaded in parallel, checked line by line
(resourceType and the manifest's count), written under a temporary name and renamed when
complete.

The export is resumable: OUT/.haven-export records the status URL, the manifest and the finished
files, so running the same command again after a failure, Ctrl-C or kill -9 continues where it
stopped (no new kick-off while the server still knows the export; finished files are skipped).
Once everything is downloaded the server is told to release its files (DELETE on the status URL).
A new export into a folder whose last export completed replaces that export's files; with
--since auto it asks only for what changed since that export's transactionTime.

Authorization: --client-id and --key use SMART Backend Services (the token endpoint is found in
the server's .well-known/smart-configuration; tokens are renewed before they expire);
--token (or the HAVEN_TOKEN environment variable) sends a fixed bearer token; without either
no Authorization header is sent. Downloads carry the token only when the manifest says
requiresAccessToken: true, and never across a redirect to another origin.";

/// Export a FHIR server's data with Bulk Data $export, resumably.
#[derive(Debug, clap::Args)]
#[command(long_about = LONG_ABOUT)]
pub struct Args {
    /// The FHIR base URL of the server (e.g. https://fhir.example.org/r4).
    #[arg(long, value_name = "URL")]
    pub server: String,
    /// Patient-level export (`Patient/$export`) instead of system level.
    #[arg(long, conflicts_with = "group")]
    pub patient: bool,
    /// Group-level export (`Group/ID/$export`).
    #[arg(long, value_name = "ID")]
    pub group: Option<String>,
    /// Resource types to export (`_type`), comma-separated; default: all.
    #[arg(long = "type", value_name = "T,…", value_delimiter = ',')]
    pub types: Vec<String>,
    /// Only resources changed after this instant (`_since`), or `auto`: since the
    /// transactionTime of the last completed export in OUT (everything if there is none).
    #[arg(long, value_name = "TIME|auto")]
    pub since: Option<String>,
    /// Only resources changed before this instant (`_until`, Bulk Data STU3).
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// A search query restricting one type (`_typeFilter`), e.g.
    /// `Observation?category=laboratory`; repeat for more.
    #[arg(long = "type-filter", value_name = "QUERY")]
    pub type_filters: Vec<String>,
    /// Top-level elements to keep (`_elements`), comma-separated.
    #[arg(long, value_name = "E,…", value_delimiter = ',')]
    pub elements: Vec<String>,
    /// A further kick-off parameter passed as given, e.g. `allowPartialManifests=true` or
    /// `organizeOutputBy=Patient`; repeat for more.
    #[arg(long = "param", value_name = "NAME=VALUE", value_parser = name_value)]
    pub params: Vec<(String, String)>,
    /// Kick off with POST and a Parameters body instead of GET.
    #[arg(long)]
    pub post: bool,
    /// A bearer token for the server (default: the HAVEN_TOKEN environment variable).
    #[arg(long, value_name = "TOKEN", conflicts_with = "client_id")]
    pub token: Option<String>,
    /// SMART Backend Services sign-in.
    #[command(flatten)]
    pub smart: super::SmartArgs,
    /// Downloads at once per host.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub parallel: u16,
    /// Tries per request before giving up (network errors, 429, 5xx, transient outcomes).
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub retries: u32,
    /// Do not send the final DELETE that lets the server remove its files.
    #[arg(long)]
    pub keep_on_server: bool,
    /// The output folder.
    #[arg(value_name = "OUT")]
    pub out: PathBuf,
}

/// Runs the export and prints what landed where.
pub fn run(args: &Args) -> Result<ExitCode> {
    let level = match (&args.group, args.patient) {
        (Some(id), _) => Level::Group(id.clone()),
        (None, true) => Level::Patient,
        (None, false) => Level::System,
    };
    let mut request = ExportRequest::new(&args.server, level);
    request.types = args.types.clone();
    request.type_filters = args.type_filters.clone();
    request.elements = args.elements.clone();
    request.extra = args.params.clone();
    request.post = args.post;
    let since_auto = args.since.as_deref() == Some("auto");
    if !since_auto {
        request.since = args
            .since
            .as_deref()
            .map(|t| instant("--since", t))
            .transpose()?;
    }
    request.until = args
        .until
        .as_deref()
        .map(|t| instant("--until", t))
        .transpose()?;
    if let Err(message) = request.kickoff_url() {
        bail!("{message}");
    }
    let mut options = ExportOptions::new(request, &args.out);
    options.since_auto = since_auto;
    options.downloads_per_host = usize::from(args.parallel);
    options.retry.attempts = args.retries;
    options.delete_when_done = !args.keep_on_server;
    let token = args
        .token
        .clone()
        .or_else(|| std::env::var("HAVEN_TOKEN").ok().filter(|t| !t.is_empty()));

    let progress = Arc::new(Progress::new());
    let observer = progress.clone();
    let mut exporter = Exporter::new(options).with_observer(move |event| observer.show(event));
    let smart = &args.smart;
    if let (Some(client_id), Some(key)) = (&smart.client_id, &smart.key) {
        let key = bulk::SigningKey::load(key, smart.kid.as_deref())?;
        let mut credentials = bulk::SmartCredentials::new(client_id, key);
        if let Some(scope) = &smart.scope {
            credentials.scope.clone_from(scope);
        }
        credentials.token_url.clone_from(&smart.token_url);
        exporter = exporter.with_tokens(Arc::new(bulk::SmartAuth::new(&args.server, credentials)));
    } else if let Some(token) = token {
        exporter = exporter.with_tokens(Arc::new(StaticToken::new(token)));
    }
    let started = Instant::now();
    let result = exporter.run();
    progress.finish();
    let summary = result.with_context(|| {
        format!(
            "export into {} stopped; run the same command again to resume",
            args.out.display()
        )
    })?;
    eprintln!(
        "exported {} resources in {} files ({:.1} MB) to {} in {:.1} s{}; transactionTime {}",
        summary.resources,
        summary.files,
        summary.bytes as f64 / 1e6,
        args.out.display(),
        started.elapsed().as_secs_f64(),
        if summary.resumed { " (resumed)" } else { "" },
        summary.transaction_time,
    );
    Ok(ExitCode::SUCCESS)
}

/// Parses `--param NAME=VALUE`.
fn name_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_owned(), value.to_owned())),
        _ => Err("expected NAME=VALUE".to_owned()),
    }
}

/// Checks that `value` looks like a FHIR instant or date (the server has the last word).
fn instant(flag: &str, value: &str) -> Result<String> {
    let looks_right = value.len() >= 4
        && value.as_bytes()[..4].iter().all(u8::is_ascii_digit)
        && value
            .bytes()
            .all(|b| b.is_ascii_digit() || b"-:T.+Z".contains(&b));
    if !looks_right {
        bail!("{flag} must be a FHIR instant such as 2024-01-31T00:00:00Z");
    }
    Ok(value.to_owned())
}

/// A progress bar on a terminal, a log line every few seconds otherwise.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    state: Mutex<Counters>,
}

/// What the display has seen.
struct Counters {
    last_line: Instant,
    files: usize,
    total_files: usize,
    resources: u64,
    bytes: u64,
}

impl Progress {
    fn new() -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Progress {
            bar,
            state: Mutex::new(Counters {
                last_line: Instant::now(),
                files: 0,
                total_files: 0,
                resources: 0,
                bytes: 0,
            }),
        }
    }

    /// Prints a line now (above the bar on a terminal).
    fn line(&self, text: &str) {
        match &self.bar {
            Some(bar) => bar.println(text),
            None => eprintln!("{text}"),
        }
    }

    fn show(&self, event: &Event) {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match event {
            Event::KickedOff { status_url } => self.line(&format!("export: kicked off; status at {status_url}")),
            Event::Resumed { status_url, files_done } => self.line(&format!(
                "export: resuming the export recorded in the folder ({status_url}; {files_done} files already complete)"
            )),
            Event::Expired { status_url } => {
                self.line(&format!("export: the server no longer knows {status_url}; starting a new export"))
            }
            Event::Retrying { what, reason, wait } => self.line(&format!(
                "export: {what} failed ({reason}); trying again in {:.1} s",
                wait.as_secs_f64()
            )),
            Event::Waiting { progress, wait } => {
                let text = format!(
                    "export: server working{}; next check in {:.1} s",
                    progress.as_deref().map(|p| format!(" ({p})")).unwrap_or_default(),
                    wait.as_secs_f64()
                );
                match &self.bar {
                    Some(bar) => bar.set_message(text),
                    None if state.last_line.elapsed() >= Duration::from_secs(5) => {
                        state.last_line = Instant::now();
                        eprintln!("{text}");
                    }
                    None => {}
                }
            }
            Event::ManifestReady { files, total_files, resources } => {
                state.total_files = *total_files;
                state.files = total_files - files;
                let expected = resources.map(|r| format!(", {r} resources")).unwrap_or_default();
                self.line(&format!("export: manifest ready: {files} of {total_files} files to download{expected}"));
                if let Some(bar) = &self.bar {
                    bar.set_style(
                        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} files {msg} eta {eta}")
                            .expect("a valid progress template"),
                    );
                    bar.set_length(*total_files as u64);
                    bar.set_position(state.files as u64);
                    bar.set_message(String::new());
                }
            }
            Event::Bytes(n) => {
                state.bytes += n;
                if let Some(bar) = &self.bar {
                    bar.set_message(format!("{} resources, {:.1} MB", state.resources, state.bytes as f64 / 1e6));
                }
            }
            Event::FileDone { resources, .. } => {
                state.files += 1;
                state.resources += resources;
                match &self.bar {
                    Some(bar) => bar.set_position(state.files as u64),
                    None if state.last_line.elapsed() >= Duration::from_secs(5) || state.files == state.total_files => {
                        state.last_line = Instant::now();
                        eprintln!(
                            "export: {}/{} files, {} resources, {:.1} MB",
                            state.files,
                            state.total_files,
                            state.resources,
                            state.bytes as f64 / 1e6
                        );
                    }
                    None => {}
                }
            }
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
