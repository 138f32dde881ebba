//! `haven synth`: generates realistic synthetic FHIR R4 patients for tests and benchmarks.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

/// The long help of `haven synth`.
const LONG_ABOUT: &str = "\
Generate realistic synthetic FHIR R4 patients, deterministically.

Each patient carries PHI where real exports carry it (names, SSN, MRN, driver's licence,
passport, telecom, geolocated address, birth date, narrative, clinical notes naming the patient,
Reference.display), with encounters, conditions, observations (vitals, labs, SARS-CoV-2 PCR),
COVID-19 immunizations, medication requests, procedures, diagnostic reports, document references,
claims and explanations of benefit, and shared practitioners, organizations and locations.
COVID-19 arrives in waves over 2020-2022 whose timing differs by 3-digit zip area; the true
weekly curve is written to _truth/covid_cases_by_zip3_week.csv beside the data.

The same --seed gives byte-identical output whatever the thread count. With --update-of, a
second batch modifies, adds and deletes resources relative to an earlier output, with the
deletions written as a Bulk Data export writes them (deleted/ folder).";

/// Generate realistic synthetic FHIR R4 patients, deterministically.
#[derive(Debug, clap::Args)]
#[command(long_about = LONG_ABOUT)]
pub struct Args {
    /// How many patients to generate (with --update-of: how many new patients).
    #[arg(long, default_value_t = 100)]
    pub patients: u64,
    /// The random seed (ignored with --update-of, which reuses the earlier output's seed).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The output folder.
    #[arg(long)]
    pub out: PathBuf,
    /// `ndjson` (one file per resource type), `ndjson.gz`, or `bundles` (one transaction
    /// Bundle per patient).
    #[arg(long, default_value = "ndjson")]
    pub format: synth::Format,
    /// Write an update batch against this earlier output folder.
    #[arg(long, value_name = "DIR")]
    pub update_of: Option<PathBuf>,
    /// Start a new NDJSON file every this many lines (0: one file per type).
    #[arg(long, default_value_t = 0)]
    pub lines_per_file: u64,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
}

/// Generates the data set and prints what was written.
pub fn run(args: &Args) -> Result<ExitCode> {
    let mut options = synth::SynthOptions::new(args.patients, args.seed, &args.out);
    options.format = args.format;
    options.update_of = args.update_of.clone();
    options.lines_per_file = args.lines_per_file;
    let mut pool = rayon::ThreadPoolBuilder::new();
    if let Some(threads) = args.threads {
        pool = pool.num_threads(threads);
    }
    let pool = pool.build().context("cannot start worker threads")?;
    let progress = Progress::new(args.patients);
    let started = Instant::now();
    let report = pool
        .install(|| synth::generate(&options, &|done| progress.update(done)))
        .with_context(|| format!("cannot generate into {}", args.out.display()))?;
    progress.finish();
    let seconds = started.elapsed().as_secs_f64().max(1e-9);
    eprintln!(
        "wrote {} patients, {} resources ({:.1} MB) to {} in {:.1} s: {:.0} patients/s, {:.0} resources/s",
        report.patients,
        report.resources,
        report.bytes as f64 / 1e6,
        args.out.display(),
        seconds,
        report.patients as f64 / seconds,
        report.resources as f64 / seconds,
    );
    for (resource_type, count) in &report.by_type {
        eprintln!("  {resource_type:<28} {count:>10}");
    }
    if report.deleted > 0 {
        eprintln!("  {:<28} {:>10}", "(deleted)", report.deleted);
    }
    eprintln!("COVID-19 cases in the truth curve: {}", report.covid_cases);
    Ok(ExitCode::SUCCESS)
}

/// A progress bar on a terminal, a log line every few seconds otherwise.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    last_log: Mutex<Instant>,
    total: u64,
}

impl Progress {
    fn new(total: u64) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(total);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:40} {pos}/{len} patients {per_sec} eta {eta}",
                )
                .expect("a valid progress template"),
            );
            bar
        });
        Progress {
            bar,
            last_log: Mutex::new(Instant::now()),
            total,
        }
    }

    fn update(&self, done: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(done);
            return;
        }
        let mut last = self.last_log.lock().expect("progress lock");
        if last.elapsed() >= Duration::from_secs(5) {
            *last = Instant::now();
            eprintln!("synth: {done}/{} patients", self.total);
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
