//! `haven validate`: proves what a lake holds and that no identifier slipped through.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};

/// The long help of `haven validate`.
const LONG_ABOUT: &str = "\
Validate a lake that `haven pipeline run` wrote (a folder, az://, s3:// or gs://):

  counts         per run and type, the rows of the NDJSON and Parquet files equal the run
                 report's landed count, announced equals read, view tables and deletion lists
                 hold the report's rows
  tables         every NDJSON file decodes (gzip, JSON) and every Parquet footer reads
  delta          each Delta table holds exactly the current ids (landed minus deleted)
  references     every Type/id reference of a current resource resolves inside the lake
  identifiers    every string (text attachments decoded) is scanned for SSNs, phone numbers,
                 emails, record numbers, street addresses and URLs; under the safe-harbor
                 preset also for dates finer than a year, 5-digit zips and ages over 89
  source-values  with --source, the identified export's names, identifier values, telecom,
                 addresses and birth dates, searched for as whole words

Findings name the file, line and element path (JSON Pointer) and the kind, never the value.
The report is also saved in the lake as _haven/validation/latest.json (the dashboard shows it).
Exit status: 0 when every check passes, 1 when one fails, 2 when the lake cannot be read.";

/// Check a lake: counts, tables, references and identifiers.
#[derive(Debug, clap::Args)]
#[command(long_about = LONG_ABOUT)]
pub struct Args {
    /// The lake: a folder, az://container/prefix, s3://bucket/prefix or gs://bucket/prefix.
    #[arg(value_name = "LAKE")]
    pub lake: String,
    /// The identified source export (a folder of NDJSON) whose exact values are searched for.
    #[arg(long, value_name = "DIR")]
    pub source: Option<PathBuf>,
    /// An object-store option for the lake, overriding the environment
    /// (`azure_storage_account_name=…`, `aws_endpoint=…`, `use_emulator=true`); repeatable.
    #[arg(long = "store-option", value_name = "KEY=VALUE", value_parser = super::key_value)]
    pub store_options: Vec<(String, String)>,
    /// Print the report as JSON on standard output.
    #[arg(long)]
    pub json: bool,
}

/// Runs `haven validate`.
pub fn run(args: &Args) -> Result<ExitCode> {
    if let Some(source) = &args.source
        && !source.is_dir()
    {
        bail!("--source {}: not a folder", source.display());
    }
    let options: BTreeMap<String, String> = args.store_options.iter().cloned().collect();
    let lake = open(&args.lake, &options)?;
    let report = validate::validate(
        &lake,
        &validate::Options {
            source: args.source.clone(),
        },
    )
    .with_context(|| format!("cannot validate {}", args.lake))?;
    if let Err(error) = report.save(&lake) {
        eprintln!(
            "haven validate: could not save the report to {} in the lake: {error}",
            validate::LATEST_KEY
        );
    }
    if args.json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.summary());
    }
    Ok(if report.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Opens the lake without creating it: a folder must exist.
fn open(location: &str, options: &BTreeMap<String, String>) -> Result<lake::Destination> {
    let is_url = location
        .split_once("://")
        .is_some_and(|(scheme, _)| scheme.len() > 1);
    if !is_url && !std::path::Path::new(location).is_dir() {
        bail!("{location}: no such folder");
    }
    lake::Destination::open_with(location, options)
        .with_context(|| format!("cannot open the lake {location}"))
}
