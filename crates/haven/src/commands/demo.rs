//! `haven demo`: the whole job on the bundled data, with no setup: a server on a temporary
//! SQLite store loaded with the Synthea COVID-19 data, the pipeline with the `safe-harbor`
//! preset into a local lake, and the validation report.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use pipeline::{DeidConfig, ExportLevel, LakeConfig, Pipeline, PipelineConfig, SourceConfig};

use super::load::load_showing_progress;
use super::pipeline::Progress;

/// The bundled Synthea data, as found from the source tree Haven was built from.
const BUNDLED_DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/synthea-covid-120");

/// The long help of `haven demo`.
const LONG_ABOUT: &str = "\
Run the whole job on the bundled data, with no setup:

  1. start `haven serve` on a temporary SQLite store and load the bundled Synthea COVID-19
     data (120 patients, 92,114 resources) into it;
  2. run the pipeline against it: a system-level Bulk Data export (the patients' records and
     the organizations, practitioners and locations they reference), de-identification with the
     `safe-harbor` preset (fresh keys), and a lake in ./haven-demo-lake with NDJSON, Parquet
     and Delta tables per resource type and the flat COVID-19 views;
  3. run `haven validate` on the lake and print its report.

The server, its store and the raw export live in a temporary folder removed at the end; only
the de-identified lake stays. A lake left by an earlier demo is replaced.";

/// Run the whole job (serve, export, de-identify, land, validate) on the bundled data.
#[derive(Debug, clap::Args)]
#[command(long_about = LONG_ABOUT)]
pub struct Args {
    /// The data to load: Synthea Bundles or NDJSON, files or folders.
    #[arg(long, value_name = "DIR", default_value = BUNDLED_DATA)]
    pub data: PathBuf,
    /// The lake folder to write (replaced if an earlier demo left it).
    #[arg(long, value_name = "DIR", default_value = "haven-demo-lake")]
    pub lake: PathBuf,
    /// Worker threads for de-identification (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
}

/// Runs the demo; exits 0 when the lake passes validation, 1 when it does not.
pub fn run(args: &Args) -> Result<ExitCode> {
    let started = Instant::now();
    prepare_lake(&args.lake)?;
    let temp = tempfile::Builder::new()
        .prefix("haven-demo-")
        .tempdir()
        .context("cannot create a temporary folder")?;

    eprintln!(
        "haven demo: 1/3 loading {} into a temporary store",
        args.data.display()
    );
    let files = server::load::input_files(std::slice::from_ref(&args.data))
        .with_context(|| format!("cannot read {}", args.data.display()))?;
    if files.is_empty() {
        bail!("no FHIR files in {}", args.data.display());
    }
    let db = temp.path().join("haven.db");
    let store: Arc<dyn store::Store> =
        Arc::from(store::open(&db.display().to_string()).context("cannot create the demo store")?);
    let loaded = load_showing_progress(
        store.as_ref(),
        &files,
        &server::load::LoadOptions::default(),
        "the demo store",
    )?;
    let loaded_at = started.elapsed();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the server's runtime")?;
    let config = server::ServerConfig {
        listen: ([127, 0, 0, 1], 0).into(),
        export_to: temp.path().join("exports").display().to_string(),
        ..server::ServerConfig::default()
    };
    let bound = runtime
        .block_on(server::Server::bind(config, Arc::clone(&store)))
        .context("cannot start the demo server")?;
    let base_url = format!("http://{}/fhir", bound.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = runtime.spawn(bound.run_until(async {
        let _ = stopped.await;
    }));
    eprintln!("haven demo: 2/3 pipeline: {base_url} -> $export -> safe-harbor -> lake");

    let lake = std::path::absolute(&args.lake).context("cannot resolve the lake folder")?;
    let pipeline_config = PipelineConfig {
        source: SourceConfig {
            server: Some(base_url.clone()),
            level: ExportLevel::System,
            ..SourceConfig::default()
        },
        deid: DeidConfig {
            preset: Some("safe-harbor".to_owned()),
            config: None,
            key_file: Some(temp.path().join("keys.json")),
            generate_keys: true,
        },
        lake: LakeConfig {
            location: lake.display().to_string(),
            options: Default::default(),
            formats: super::pipeline::default_formats(),
            views: vec!["builtin".to_owned()],
        },
        work_dir: Some(temp.path().join("work")),
    };
    let mut pipeline = Pipeline::new(pipeline_config)?;
    if let Some(threads) = args.threads {
        pipeline = pipeline.with_threads(threads);
    }
    let observer = Progress::default();
    let report = pipeline.run(&observer);
    observer.clear();
    let _ = stop.send(());
    let _ = runtime.block_on(serving);
    let report = report?;
    eprint!("{}", report.summary());
    let landed_at = started.elapsed();

    eprintln!("haven demo: 3/3 validating {}", lake.display());
    let destination = lake::Destination::open(&lake.display().to_string())?;
    let validation = validate::validate(&destination, &validate::Options::default())?;
    eprint!("{}", validation.summary());
    let validated_at = started.elapsed();

    eprintln!(
        "\nhaven demo: loaded {} resources, landed {} de-identified resources in {:.1} s",
        loaded.resources,
        report.landed(),
        started.elapsed().as_secs_f64()
    );
    eprintln!(
        "  phases:   load {:.1} s, pipeline {:.1} s, validate {:.1} s",
        loaded_at.as_secs_f64(),
        (landed_at - loaded_at).as_secs_f64(),
        (validated_at - landed_at).as_secs_f64()
    );
    eprintln!("  lake:     {}", lake.display());
    eprintln!(
        "  tables:   ndjson/<Type>, parquet/<Type>, delta/<Type>, views/<view>, delta/views/<view>"
    );
    eprintln!("  reports:  {}", lake.join("_haven/runs").display());
    eprintln!(
        "  validation: {}",
        if validation.passed {
            "PASSED"
        } else {
            "FAILED"
        }
    );
    Ok(if validation.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Makes room for the lake: nothing there, or a lake an earlier demo left (removed).
fn prepare_lake(lake: &Path) -> Result<()> {
    if !lake.exists() {
        return Ok(());
    }
    let empty = std::fs::read_dir(lake)
        .with_context(|| format!("cannot read {}", lake.display()))?
        .next()
        .is_none();
    if empty {
        return Ok(());
    }
    if !lake.join("_haven/state.json").exists() {
        bail!(
            "{} exists and is not a lake an earlier demo wrote; give another --lake",
            lake.display()
        );
    }
    std::fs::remove_dir_all(lake).with_context(|| format!("cannot replace {}", lake.display()))
}
