//! `haven load`: loads Bundles and NDJSON files straight into a store that no server holds
//! open.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::serve::{db_location, shown};

/// The long help of `haven load`.
const LONG_ABOUT: &str = "\
Load FHIR data into a store: transaction and batch Bundles (.json, .json.gz, .json.bz2) and
NDJSON (.ndjson, .ndjson.gz, .ndjson.bz2), given as files or folders (read recursively).

Bundles are processed as POST /fhir processes a transaction: urn:uuid and conditional
references (Organization?identifier=system|value) rewritten, ifNoneExist honoured. Synthea's
hospitalInformation and practitionerInformation Bundles are loaded first. Many Bundles are
committed per store transaction; a failure stops the load, keeping the batches committed
before it.

Loading is idempotent: run the same load again, after a crash or a kill, and the store ends
as one uninterrupted load leaves it, with nothing duplicated. Resources keep their ids (a
Bundle entry created from a urn:uuid fullUrl takes that UUID as its id), and a resource whose
stored version already holds the same content is not written again.";

/// Load Bundles and NDJSON into a store.
#[derive(Debug, clap::Args)]
#[command(long_about = LONG_ABOUT)]
pub struct Args {
    /// The store: a SQLite file path, or a postgres://… URL (default: haven.db in the data
    /// directory, as `haven serve` uses).
    #[arg(long, value_name = "PATH|URL")]
    pub db: Option<String>,
    /// Resources per store transaction.
    #[arg(long, default_value_t = 20_000)]
    pub batch: usize,
    /// Files and folders to load.
    #[arg(required = true, value_name = "FILES|FOLDERS")]
    pub inputs: Vec<PathBuf>,
}

/// Loads the inputs and prints the counts per type.
pub fn run(args: &Args) -> Result<ExitCode> {
    let location = db_location(args.db.as_deref())?;
    let files = server::load::input_files(&args.inputs)?;
    if files.is_empty() {
        anyhow::bail!("no .json or .ndjson files (optionally .gz or .bz2) in the inputs");
    }
    let store = store::open(&location)
        .with_context(|| format!("cannot open the store {}", shown(&location)))?;
    let options = server::load::LoadOptions {
        batch_resources: args.batch.max(1),
        ..server::load::LoadOptions::default()
    };
    let summary = load_showing_progress(store.as_ref(), &files, &options, &shown(&location))?;
    for (resource_type, count) in &summary.counts {
        println!("{resource_type}\t{count}");
    }
    Ok(ExitCode::SUCCESS)
}

/// A fault-injection point for crash tests: once this many resources are committed, the load
/// stops where it is and waits to be killed (`kill -9`), as a crash would stop it.
const PAUSE_VARIABLE: &str = "HAVEN_TEST_LOAD_PAUSE_AT";

/// Says that the load is paused, then waits forever for the test to kill the process.
fn pause_for_a_crash_test(resources: u64) -> ! {
    eprintln!("haven: load paused after {resources} resources ({PAUSE_VARIABLE})");
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// Loads `files` into `store` with a progress bar on a terminal (a line every 5 s otherwise),
/// then prints the throughput; `name` names the store in that line.
pub(crate) fn load_showing_progress(
    store: &dyn store::Store,
    files: &[PathBuf],
    options: &server::load::LoadOptions,
    name: &str,
) -> Result<server::load::LoadSummary> {
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(files.len() as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} files {msg} eta {eta}")
                .expect("a valid progress template"),
        );
        bar
    });
    let started = Instant::now();
    let mut last_log = Instant::now();
    let pause_at = std::env::var(PAUSE_VARIABLE)
        .ok()
        .and_then(|value| value.parse::<u64>().ok());
    let summary = server::load::load(store, files, options, &mut |progress| {
        if pause_at.is_some_and(|at| progress.resources >= at) {
            pause_for_a_crash_test(progress.resources);
        }
        if let Some(bar) = &bar {
            bar.set_position(progress.files_done as u64);
            bar.set_message(format!("{} resources", progress.resources));
        } else if last_log.elapsed() >= Duration::from_secs(5) {
            last_log = Instant::now();
            eprintln!(
                "load: {}/{} files, {} resources",
                progress.files_done, progress.files_total, progress.resources
            );
        }
    });
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let summary = summary?;
    let seconds = started.elapsed().as_secs_f64().max(1e-9);
    let unchanged = match summary.unchanged {
        0 => String::new(),
        n => format!("; {n} were already there"),
    };
    eprintln!(
        "loaded {} resources from {} files into {} in {:.1} s ({:.0} resources/s{unchanged})",
        summary.resources,
        summary.files,
        name,
        seconds,
        summary.resources as f64 / seconds
    );
    Ok(summary)
}
