//! `haven pipeline run`: export → de-identify → lake, incrementally, once or on a schedule.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use pipeline::{ExportLevel, Observer, Pipeline, PipelineConfig};

/// The long help of `haven pipeline run`.
const LONG_ABOUT: &str = "\
Run the pipeline: export from a Bulk Data server (or read a folder of NDJSON), de-identify every
resource, and land the result in a lake (a folder, az://, s3:// or gs://) as NDJSON, Parquet and
Delta tables plus flat analyst views.

The first run exports everything; each later run exports only what changed since the previous
run's transactionTime and applies the deletions the server lists. A run that is interrupted
(crash, kill -9, lost connection) is resumed by the next start, without loss or duplicates. The
lake keeps its state and one report per run under _haven/.

Settings come from --config pipeline.toml (see docs/pipeline.md), and the flags below override
them; with no file, the flags alone describe the pipeline.";

/// Export, de-identify and land FHIR data in a lake.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to do.
    #[command(subcommand)]
    pub command: PipelineCommand,
}

/// The subcommands of `haven pipeline`.
#[derive(Debug, clap::Subcommand)]
pub enum PipelineCommand {
    /// Run the pipeline once, or repeatedly with --every.
    #[command(long_about = LONG_ABOUT)]
    Run(RunArgs),
}

/// Flags of `haven pipeline run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// A pipeline.toml file.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Export from this Bulk Data server (its FHIR base URL).
    #[arg(long, value_name = "URL", conflicts_with = "folder")]
    pub server: Option<String>,
    /// Read this folder of NDJSON files instead of a server.
    #[arg(long, value_name = "DIR")]
    pub folder: Option<PathBuf>,
    /// The export level: system (the default: the patients' records and the organizations,
    /// practitioners, locations and medications they refer to), patient or group (the
    /// patients' compartments only, whose references to those types stay unresolved).
    #[arg(long, value_name = "LEVEL")]
    pub level: Option<String>,
    /// The Group to export (implies --level group).
    #[arg(long, value_name = "ID")]
    pub group: Option<String>,
    /// Resource types to export (comma-separated).
    #[arg(long = "type", value_name = "TYPES", value_delimiter = ',')]
    pub types: Vec<String>,
    /// SMART Backend Services sign-in.
    #[command(flatten)]
    pub smart: super::SmartArgs,
    /// The lake: a folder, az://container/prefix, s3://bucket/prefix or gs://bucket/prefix.
    #[arg(long, value_name = "LOCATION")]
    pub lake: Option<String>,
    /// An object-store option for the lake, overriding the environment
    /// (`azure_storage_account_name=…`, `aws_endpoint=…`, `use_emulator=true`); repeatable.
    #[arg(long = "store-option", value_name = "KEY=VALUE", value_parser = super::key_value)]
    pub store_options: Vec<(String, String)>,
    /// Formats to write (comma-separated): ndjson, parquet, delta.
    #[arg(long, value_name = "FORMATS", value_delimiter = ',')]
    pub format: Vec<String>,
    /// ViewDefinition JSON files to evaluate besides the built-in views.
    #[arg(long, value_name = "FILE")]
    pub view: Vec<PathBuf>,
    /// A de-identification preset (safe-harbor, research, limited-data-set, ms-sample).
    #[arg(long, value_name = "NAME", conflicts_with = "deid_config")]
    pub preset: Option<String>,
    /// A Microsoft anonymizer configuration file.
    #[arg(long, value_name = "FILE")]
    pub deid_config: Option<PathBuf>,
    /// The key file (cryptoHashKey, dateShiftKey, encryptKey).
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<PathBuf>,
    /// Generate missing keys and store them in the key file.
    #[arg(long)]
    pub generate_keys: bool,
    /// The local folder for raw exports while a run is under way.
    #[arg(long, value_name = "DIR")]
    pub work_dir: Option<PathBuf>,
    /// Repeat the run at this interval (`30m`, `1h`, `1day`), until stopped.
    #[arg(long, value_name = "INTERVAL", value_parser = humantime::parse_duration)]
    pub every: Option<Duration>,
    /// Worker threads for de-identification (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Print the run's report as JSON on standard output.
    #[arg(long)]
    pub json: bool,
}

/// Runs `haven pipeline …`.
pub fn run(args: &Args) -> Result<ExitCode> {
    match &args.command {
        PipelineCommand::Run(run_args) => run_pipeline(run_args),
    }
}

fn run_pipeline(args: &RunArgs) -> Result<ExitCode> {
    let config = configure(args)?;
    let mut pipeline = Pipeline::new(config)?;
    if let Some(threads) = args.threads {
        pipeline = pipeline.with_threads(threads);
    }
    let observer = Progress::default();
    let Some(interval) = args.every else {
        let report = pipeline.run(&observer)?;
        observer.clear();
        print_report(&report, args.json)?;
        return Ok(ExitCode::SUCCESS);
    };
    pipeline::run_every(&pipeline, interval, &observer, |outcome| {
        observer.clear();
        match outcome {
            Ok(report) => {
                if let Err(error) = print_report(&report, args.json) {
                    eprintln!("haven: error: {error:#}");
                    return false;
                }
            }
            Err(error) => eprintln!("haven: run failed (the next run resumes it): {error}"),
        }
        true
    });
    Ok(ExitCode::SUCCESS)
}

/// The configuration file, if any, with the flags applied over it.
pub fn configure(args: &RunArgs) -> Result<PipelineConfig> {
    let mut config = match &args.config {
        Some(path) => PipelineConfig::from_file(path)
            .with_context(|| format!("cannot use {}", path.display()))?,
        None => {
            let Some(lake) = &args.lake else {
                bail!("give --config FILE, or --lake LOCATION with --server URL or --folder DIR");
            };
            PipelineConfig {
                source: pipeline::SourceConfig::default(),
                deid: pipeline::DeidConfig::default(),
                lake: pipeline::LakeConfig {
                    location: lake.clone(),
                    options: Default::default(),
                    formats: Vec::new(),
                    views: vec!["builtin".to_owned()],
                },
                work_dir: None,
            }
        }
    };
    if let Some(server) = &args.server {
        config.source.server = Some(server.clone());
        config.source.folder = None;
    }
    if let Some(folder) = &args.folder {
        config.source.folder = Some(folder.clone());
        config.source.server = None;
    }
    if let Some(level) = &args.level {
        config.source.level = match level.as_str() {
            "system" => ExportLevel::System,
            "patient" => ExportLevel::Patient,
            "group" => ExportLevel::Group,
            other => bail!("unknown --level {other} (expected system, patient or group)"),
        };
    }
    if let Some(group) = &args.group {
        config.source.group = Some(group.clone());
        config.source.level = ExportLevel::Group;
    }
    if !args.types.is_empty() {
        config.source.types = args.types.clone();
    }
    let smart = &args.smart;
    if let (Some(client_id), Some(key)) = (&smart.client_id, &smart.key) {
        config.source.auth = Some(pipeline::SmartConfig {
            client_id: client_id.clone(),
            key_file: key.clone(),
            kid: smart.kid.clone(),
            scope: smart.scope.clone(),
            token_url: smart.token_url.clone(),
        });
        config.source.token_env = None;
    }
    if let Some(lake) = &args.lake {
        config.lake.location = lake.clone();
    }
    config
        .lake
        .options
        .extend(args.store_options.iter().cloned());
    if !args.format.is_empty() {
        config.lake.formats = args.format.clone();
    } else if config.lake.formats.is_empty() {
        config.lake.formats = default_formats();
    }
    config
        .lake
        .views
        .extend(args.view.iter().map(|p| p.display().to_string()));
    if let Some(preset) = &args.preset {
        config.deid.preset = Some(preset.clone());
        config.deid.config = None;
    }
    if let Some(file) = &args.deid_config {
        config.deid.config = Some(file.clone());
        config.deid.preset = None;
    }
    if let Some(key_file) = &args.key_file {
        config.deid.key_file = Some(key_file.clone());
    }
    if args.generate_keys {
        config.deid.generate_keys = true;
    }
    if let Some(work) = &args.work_dir {
        config.work_dir = Some(work.clone());
    }
    config.check()?;
    Ok(config)
}

/// NDJSON and Parquet, plus Delta when this build has it.
pub(crate) fn default_formats() -> Vec<String> {
    let mut formats = vec!["ndjson".to_owned(), "parquet".to_owned()];
    if cfg!(feature = "delta") {
        formats.push("delta".to_owned());
    }
    formats
}

fn print_report(report: &pipeline::RunReport, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        eprint!("{}", report.summary());
    }
    Ok(())
}

/// A progress bar on a terminal, a log line every few seconds otherwise.
#[derive(Default)]
pub(crate) struct Progress {
    state: Mutex<ProgressState>,
}

#[derive(Default)]
struct ProgressState {
    bar: Option<indicatif::ProgressBar>,
    stage: String,
    done: u64,
    last_log: Option<Instant>,
}

impl Progress {
    pub(crate) fn clear(&self) {
        let mut state = self.state.lock().expect("progress lock");
        if let Some(bar) = state.bar.take() {
            bar.finish_and_clear();
        }
    }
}

impl Observer for Progress {
    fn stage(&self, name: &str, total: Option<u64>) {
        let mut state = self.state.lock().expect("progress lock");
        if let Some(bar) = state.bar.take() {
            bar.finish_and_clear();
        }
        state.stage = name.to_owned();
        state.done = 0;
        state.last_log = Some(Instant::now());
        if std::io::stderr().is_terminal() {
            let bar = match total {
                Some(total) => indicatif::ProgressBar::new(total),
                None => indicatif::ProgressBar::new_spinner(),
            };
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{prefix:>7} {bar:40} {pos}/{len} resources {per_sec} eta {eta}",
                )
                .expect("a valid progress template"),
            );
            bar.set_prefix(name.to_owned());
            state.bar = Some(bar);
        } else {
            eprintln!("haven: pipeline: {name}");
        }
    }

    fn advance(&self, resources: u64) {
        let mut state = self.state.lock().expect("progress lock");
        state.done += resources;
        if let Some(bar) = &state.bar {
            bar.inc(resources);
            return;
        }
        if state
            .last_log
            .is_none_or(|last| last.elapsed() >= Duration::from_secs(5))
        {
            state.last_log = Some(Instant::now());
            eprintln!("haven: pipeline: {} {} resources", state.stage, state.done);
        }
    }

    fn note(&self, text: &str) {
        let state = self.state.lock().expect("progress lock");
        match &state.bar {
            Some(bar) => bar.println(format!("haven: {text}")),
            None => eprintln!("haven: {text}"),
        }
    }
}
