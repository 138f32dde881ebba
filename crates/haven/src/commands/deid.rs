//! `haven deid [--config FILE | --preset NAME] INPUT OUTPUT`: de-identifies FHIR R4 files,
//! folders or standard input with the `deid` engine.
//!
//! The work is split into rooms: [`keys`] finds the keys (configuration, environment, key
//! file, or generated), [`layout`] turns INPUT and OUTPUT into jobs and stages the outputs so
//! that they appear only when the run succeeds, [`process`] runs the engine over each job, and
//! [`report`] shows progress and writes the summary. Every message names files, lines and element
//! paths, never a value from a resource or a key.

mod identities;
mod layout;
mod process;
mod report;
mod shard;

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use deid::{Config, Engine};

use self::layout::{Layout, Target};
use self::report::{Monitor, Reporter};
pub use self::shard::ShardSpec;

/// The long help of `haven deid`.
const LONG_ABOUT: &str = "\
De-identify FHIR R4 resources with a built-in preset or a Microsoft anonymizer configuration.

INPUT and OUTPUT are each one of:
  a file    `.json` (one resource or a Bundle), `.ndjson` or `.ndjson.gz`. Gzip input is
            recognised by its content; the output is gzip when its name ends in `.gz`. A `.json`
            output needs a `.json` input; an input with any other name is read as NDJSON. When
            OUTPUT is an existing folder, the file is written into it under the input's name.
  a folder  searched recursively: every `.json`, `.ndjson` and `.ndjson.gz` file is written to
            the same relative path and name under OUTPUT. Other files, and a Bulk Data
            export's `manifest.json` and `log.ndjson`, are ignored with a note; hidden files
            and folders (names starting with `.`) are skipped.
  -         NDJSON on standard input or standard output.

The rules come from --config FILE (Microsoft's format, read unchanged) or --preset NAME
(default: safe-harbor). --list-presets shows the presets; --print-preset NAME prints one as a
configuration file to copy and adapt.

Keys (cryptoHashKey, dateShiftKey, encryptKey) are never taken from the command line, where
other users can see them. Each is read from, the later source winning: the configuration's
`parameters`; the environment variables HAVEN_CRYPTO_HASH_KEY, HAVEN_DATE_SHIFT_KEY and
HAVEN_ENCRYPT_KEY; the key file given by --key-file FILE, a JSON object such as
{\"cryptoHashKey\": \"…\", \"dateShiftKey\": \"…\", \"encryptKey\": \"…\"}. When a rule needs a key
that is not set, Haven stops, unless --generate-keys is given: it then generates the missing
keys and adds them to the key file (by default `haven-keys.json` beside OUTPUT; created with
mode 0600), reading the keys already in it. Keep that file apart from the data: the same keys
give the same hashes and date shifts on every run.

Outputs are complete or absent: files are written under temporary names and moved into place
only when the whole run has succeeded, so a failed run leaves nothing in OUTPUT (with `-`,
lines already written stay written). A record (an NDJSON line or a `.json` file) that is not
valid JSON, not a resource, not a FHIR R4 resource type, or holds an unknown element stops the
run, naming its file, line and element path; with --skip-invalid it is left out, reported,
counted, and the run goes on. --seed N gives the same output whatever --threads is.

Valid FHIR: Haven's presets (safe-harbor, safe-harbor-strict, research, limited-data-set) set
the parameter `validOutput`, so every method writes only what the element's type allows: a
required element that must go is masked with the data-absent-reason extension (`masked`), an
optional one is removed whole, an instant is never cut to a year, hashed references keep their
base, type and shape (a hashed urn:uuid is a UUID, a hashed urn:oid an OID). Without it
(Microsoft's configurations, and ms-sample) the output is Microsoft's, byte for byte, which can
be invalid FHIR; --valid-output turns it on for any configuration.

Free text: the rules' `scrub` method (Haven's; used by the safe-harbor, research and
limited-data-set presets) keeps free text and replaces every identifier found in it by a typed
placeholder ([NAME], [PHONE], [ID], [ADDRESS], [CITY], [ZIP], [EMAIL], [URL], [IP], [AGE], dates
by their year or shifted). Before any resource is de-identified, a first pass collects the
identifying values of every person and place of INPUT (names, identifiers, telecom, addresses,
birth dates of Patient, RelatedPerson, Person, Practitioner, and the addresses and telecom of
Organization, Location and PractitionerRole), so that a patient's name typed into any note of
the run is found; files named for other types (Observation.ndjson) are not read for it. With
--identities PATH they are collected from PATH instead (a run on standard input finds each
resource's own identifiers only, unless --identities is given).

Sharded runs (Kubernetes Indexed Jobs, Argo, Azure Batch): with --shard I/N (or --shard-count N
and the index in JOB_COMPLETION_INDEX), a process de-identifies only its share of INPUT (a byte
range of every plain NDJSON file, cut at line starts, and every N-th gzip or JSON file) into
OUTPUT/.haven-shards/of-N/shard-I/; a shard already done does nothing. Every shard must be given
the same INPUT, configuration and keys (--generate-keys is refused). Then
`haven deid --commit OUTPUT --shard-count N` checks that all N shards are done, joins their parts
in order into OUTPUT, which is then byte for byte what one unsharded run writes (methods
without randomness; perturb and encrypt need --seed), and writes OUTPUT/haven-deid-manifest.json
(inputs, outputs, counts per type, invalid records, the configuration's SHA-256 and a key id,
never a key). Committing again does nothing.

At the end a summary (resources in and out per type, values handled per method, invalid records)
is printed on standard error and written as JSON to OUTPUT.summary.json (a file) or
OUTPUT/_haven_deid_summary.json (a folder); not for `-`. A progress bar shows on a terminal;
otherwise a progress line is logged every 5 seconds.";

/// The exit status table shown after the help.
const EXIT_STATUS: &str = "\
Exit status:
  0  success
  1  success, but invalid records were left out (--skip-invalid)
  2  usage, configuration or key error (no input read, nothing written)
  3  input error: INPUT cannot be read, or holds an invalid record (without --skip-invalid)
  4  output error: OUTPUT cannot be written

With --commit, 3 also means that a shard has not finished or shards of different runs were
found.";

/// The usage lines: INPUT and OUTPUT are required unless a preset is listed or printed.
const USAGE: &str = "haven deid [OPTIONS] INPUT OUTPUT
       haven deid --shard I/N [OPTIONS] INPUT OUTPUT
       haven deid --commit OUTPUT --shard-count N
       haven deid --list-presets
       haven deid --print-preset NAME";

/// How many ignored files of an input folder are named one by one.
const IGNORED_LISTED: usize = 20;

/// The preset used when neither --config nor --preset is given.
const DEFAULT_PRESET: &str = "safe-harbor";

/// De-identify FHIR R4 resources with a built-in preset or a Microsoft anonymizer configuration.
#[derive(Debug, clap::Args)]
#[command(long_about = LONG_ABOUT, after_help = EXIT_STATUS, override_usage = USAGE)]
pub struct Args {
    /// The input: a `.json`, `.ndjson` or `.ndjson.gz` file, a folder, or `-` for standard input.
    #[arg(required_unless_present_any = ["list_presets", "print_preset", "commit"])]
    pub input: Option<PathBuf>,
    /// The output: a file (named like the input kinds), a folder, or `-` for standard output.
    #[arg(required_unless_present_any = ["list_presets", "print_preset", "commit"])]
    pub output: Option<PathBuf>,
    /// A configuration file in Microsoft's anonymizer format.
    #[arg(long, value_name = "FILE", conflicts_with = "preset")]
    pub config: Option<PathBuf>,
    /// A built-in configuration (see --list-presets); the default is safe-harbor.
    #[arg(long, value_name = "NAME")]
    pub preset: Option<String>,
    /// A JSON file holding keys: {"cryptoHashKey": …, "dateShiftKey": …, "encryptKey": …}.
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<PathBuf>,
    /// Generate the keys the rules need and that are not set, and store them in the key file.
    #[arg(long)]
    pub generate_keys: bool,
    /// Leave out invalid records (reported by file and line, and counted) instead of stopping.
    #[arg(long)]
    pub skip_invalid: bool,
    /// The number of worker threads (default: one per CPU core).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: Option<u16>,
    /// Write valid FHIR R4 whatever the configuration says (its `validOutput` parameter on).
    #[arg(long)]
    pub valid_output: bool,
    /// Where `scrub` collects the run's identifiers from (a file or folder of the people and
    /// places); default: INPUT itself (all of it, also in a sharded run).
    #[arg(long, value_name = "PATH")]
    pub identities: Option<PathBuf>,
    /// Make perturb noise and encryption reproducible (for tests; not for real data).
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// De-identify only shard I of N (from 0, e.g. `3/8`) into OUTPUT/.haven-shards/.
    #[arg(long, value_name = "I/N", value_parser = ShardSpec::parse,
          conflicts_with_all = ["shard_count", "commit", "generate_keys"])]
    pub shard: Option<ShardSpec>,
    /// The number of shards: with INPUT OUTPUT, the shard is JOB_COMPLETION_INDEX; with
    /// --commit, the shards to join.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..),
          conflicts_with = "generate_keys")]
    pub shard_count: Option<u32>,
    /// Join the finished shards under DIR/.haven-shards/ into DIR, with a manifest.
    #[arg(long, value_name = "DIR", requires = "shard_count",
          conflicts_with_all = ["input", "list_presets", "print_preset"])]
    pub commit: Option<PathBuf>,
    /// List the built-in presets with their descriptions.
    #[arg(long, conflicts_with_all = ["input", "print_preset"])]
    pub list_presets: bool,
    /// Print a built-in preset as a configuration file.
    #[arg(long, value_name = "NAME", conflicts_with = "input")]
    pub print_preset: Option<String>,
}

/// Runs `haven deid`; the exit status follows the table in [`EXIT_STATUS`].
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let result = if args.list_presets {
        list_presets();
        Ok(Status::Success)
    } else if let Some(name) = &args.print_preset {
        print_preset(name)
    } else if let (Some(output), Some(count)) = (&args.commit, args.shard_count) {
        commit(output, count)
    } else {
        deidentify(args)
    };
    Ok(match result {
        Ok(status) => ExitCode::from(status as u8),
        Err(failure) => {
            if failure.status != Status::Success {
                eprintln!("haven: error: {failure}");
            }
            ExitCode::from(failure.status as u8)
        }
    })
}

/// The exit status of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    /// Everything went well (also: the reader of standard output went away).
    Success = 0,
    /// The run completed, but invalid lines were left out.
    Skipped = 1,
    /// Bad arguments, configuration or keys.
    Usage = 2,
    /// The input cannot be read or holds an invalid line.
    Input = 3,
    /// The output cannot be written.
    Output = 4,
}

/// Why a run stopped: its exit status and a message naming files, lines and element paths.
#[derive(Debug)]
struct Failure {
    status: Status,
    message: String,
}

impl Failure {
    /// A usage, configuration or key error.
    fn usage(message: impl Into<String>) -> Self {
        Self::new(Status::Usage, message)
    }

    /// An unreadable input or an invalid line.
    fn input(message: impl Into<String>) -> Self {
        Self::new(Status::Input, message)
    }

    /// An output that cannot be written.
    fn output(message: impl Into<String>) -> Self {
        Self::new(Status::Output, message)
    }

    /// The reader of standard output went away (`haven deid … - | head`): the run ends
    /// quietly, as other commands do.
    fn closed() -> Self {
        Self::new(Status::Success, "standard output closed")
    }

    /// A failure with an exit status and a message.
    fn new(status: Status, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Reading errors of the NDJSON reader: the input cannot be read.
impl From<fhir::ndjson::NdjsonError> for Failure {
    fn from(error: fhir::ndjson::NdjsonError) -> Self {
        Self::input(error.to_string())
    }
}

/// Prints every preset's name and description, wrapped for a terminal.
fn list_presets() {
    for (name, description) in deid::presets::presets() {
        println!("{name}");
        let mut line = String::new();
        for word in description.split_whitespace() {
            if !line.is_empty() && line.len() + 1 + word.len() > 76 {
                println!("    {line}");
                line.clear();
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
        if !line.is_empty() {
            println!("    {line}");
        }
    }
}

/// Prints a preset's configuration text.
fn print_preset(name: &str) -> Result<Status, Failure> {
    let text = preset_text(name)?;
    print!("{text}");
    if !text.ends_with('\n') {
        println!();
    }
    Ok(Status::Success)
}

/// A preset's text, or an error listing the presets.
fn preset_text(name: &str) -> Result<&'static str, Failure> {
    deid::presets::preset(name).ok_or_else(|| {
        let names: Vec<&str> = deid::presets::presets().iter().map(|(n, _)| *n).collect();
        Failure::usage(format!(
            "unknown preset `{name}` (the presets are {})",
            names.join(", ")
        ))
    })
}

/// Loads the configuration, describes where it came from, and hashes its text.
fn load_config(args: &Args) -> Result<(Config, String, String), Failure> {
    match &args.config {
        Some(path) => {
            let bytes = std::fs::read(path).map_err(|error| {
                Failure::usage(format!(
                    "cannot read configuration {}: {error}",
                    path.display()
                ))
            })?;
            let config = Config::from_slice(&bytes)
                .map_err(|error| Failure::usage(format!("{}: {error}", path.display())))?;
            Ok((
                config,
                path.display().to_string(),
                shard::config_sha256(&bytes),
            ))
        }
        None => {
            let name = args.preset.as_deref().unwrap_or(DEFAULT_PRESET);
            let text = preset_text(name)?;
            let config = Config::from_json(text)
                .map_err(|error| Failure::usage(format!("preset {name}: {error}")))?;
            Ok((
                config,
                format!("preset {name}"),
                shard::config_sha256(text.as_bytes()),
            ))
        }
    }
}

/// The whole run: configuration, keys, layout, processing, then commit and summary.
fn deidentify(args: &Args) -> Result<Status, Failure> {
    let started = Instant::now();
    let (Some(input), Some(output)) = (&args.input, &args.output) else {
        return Err(Failure::usage("INPUT and OUTPUT are required"));
    };
    let (mut config, configuration, config_sha256) = load_config(args)?;
    if args.valid_output {
        config.parameters.valid_output = true;
    }
    let shard = match (args.shard, args.shard_count) {
        (Some(spec), _) => Some(spec),
        (None, Some(count)) => Some(ShardSpec::from_environment(count)?),
        (None, None) => None,
    };
    let shard_output = shard.map(|spec| shard::shard_folder(output, spec));
    if let Some(folder) = &shard_output {
        fs::create_dir_all(folder).map_err(|error| {
            Failure::output(format!("cannot create {}: {error}", folder.display()))
        })?;
    }
    let mut layout = Layout::plan(input, shard_output.as_deref().unwrap_or(output))?;
    let key_file = match (&args.key_file, args.generate_keys) {
        (Some(path), _) => Some(path.clone()),
        (None, true) => Some(layout.default_key_file().ok_or_else(|| {
            Failure::usage(
                "--generate-keys needs --key-file FILE to store the keys when OUTPUT is `-`",
            )
        })?),
        (None, false) => None,
    };
    let key_options = deid::keys::KeyOptions {
        key_file: key_file.clone(),
        generate: args.generate_keys,
    };
    let keys = deid::keys::resolve(&mut config, &key_options)
        .map_err(|error| Failure::usage(error.to_string()))?;
    let key_id = config.key_id();
    for note in keys.notes() {
        eprintln!("haven: {note}");
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(args.threads.map_or(0, usize::from))
        .thread_name(|index| format!("haven-deid-{index}"))
        .build()
        .map_err(|error| Failure::usage(format!("cannot start worker threads: {error}")))?;
    let scrubs = config
        .rules
        .iter()
        .any(|rule| rule.method == deid::config::Method::Scrub);
    let run_identities = match &args.identities {
        Some(path) => Some(identities::collect_from(path, &pool)?),
        None if scrubs => {
            if layout
                .jobs()
                .iter()
                .any(|job| matches!(job.input, layout::Input::Stdin))
            {
                eprintln!(
                    "haven: note: reading standard input, scrub finds each resource's own \
                     identifiers only; give --identities PATH to find the run's people in all text"
                );
            }
            Some(identities::collect(
                layout.jobs().iter().map(|job| &job.input),
                &pool,
            )?)
        }
        None => None,
    };
    let shard_plan = match (shard, &shard_output) {
        (Some(spec), Some(folder)) => {
            let plan = shard::Plan {
                configuration: configuration.clone(),
                config_sha256,
                key_id,
                count: spec.count,
                inputs: layout
                    .jobs()
                    .iter()
                    .map(|job| (job.name.clone(), job.size.unwrap_or(0)))
                    .collect(),
            };
            if shard::already_done(folder, &plan, spec)? {
                eprintln!(
                    "haven: shard {} of {} is already done in {}",
                    spec.index,
                    spec.count,
                    folder.display()
                );
                return Ok(Status::Success);
            }
            fs::create_dir_all(folder).map_err(|error| {
                Failure::output(format!("cannot create {}: {error}", folder.display()))
            })?;
            shard::assign(layout.jobs_mut(), spec)?;
            Some((spec, folder, plan))
        }
        _ => None,
    };
    let mut engine = Engine::new(config).map_err(|error| Failure::usage(error.to_string()))?;
    if let Some(seed) = args.seed {
        engine = engine.with_seed(seed);
    }
    if let Some(identities) = run_identities {
        engine = engine.with_identities(&identities);
        let dictionary = engine.dictionary();
        eprintln!(
            "haven: scrub: {} identifying values of the run's people and places ({:.1} MB)",
            dictionary.len(),
            dictionary.memory_usage() as f64 / 1e6
        );
    }
    let mut staging = layout.prepare(&mut |note| eprintln!("{note}"))?;

    let monitor = Arc::new(Monitor::new(&layout));
    let reporter = Reporter::start(Arc::clone(&monitor));
    let ignored = layout.ignored();
    for path in ignored.iter().take(IGNORED_LISTED) {
        reporter.note(&format!(
            "haven: note: ignored {} (not .json, .ndjson or .ndjson.gz)",
            path.display()
        ));
    }
    if ignored.len() > IGNORED_LISTED {
        reporter.note(&format!(
            "haven: note: ignored {} more files",
            ignored.len() - IGNORED_LISTED
        ));
    }
    if layout.jobs().is_empty() {
        reporter.note(&format!(
            "haven: note: no .json, .ndjson or .ndjson.gz file in {}",
            layout.input_name()
        ));
    }
    let run = process::Run {
        engine: &engine,
        pool: &pool,
        skip_invalid: args.skip_invalid,
        monitor: &monitor,
        reporter: &reporter,
    };
    let totals = run.all(layout.jobs(), &mut staging)?;
    drop(reporter);

    let summary = report::Summary {
        configuration: &configuration,
        input: &layout.input_name(),
        output: &layout.output_name(),
        totals: &totals,
    };
    let summary_target = layout.summary_target();
    if let Some(target @ Target::File { staged, path }) = &summary_target {
        layout::write_staged(staged, path, summary.to_json().as_bytes())?;
        staging.add(target);
    }
    let stored_keys = StoredKeys::store(keys, key_file.as_deref())?;
    if let Err(failure) = staging.commit() {
        return Err(stored_keys.undo(failure));
    }
    stored_keys.announce();
    let written = match &summary_target {
        Some(Target::File { path, .. }) => Some(path.as_path()),
        _ => None,
    };
    summary.print(started.elapsed(), monitor.bytes_read(), written);
    if let Some((spec, folder, plan)) = &shard_plan {
        let summary_name = match &summary_target {
            Some(Target::File { path, .. }) => path.file_name().map(|n| n.to_string_lossy()),
            _ => None,
        };
        shard::mark_done(
            folder,
            plan,
            *spec,
            summary_name.as_deref().unwrap_or_default(),
        )?;
        eprintln!(
            "haven: shard {} of {} done; once all {} are, run: haven deid --commit {} \
             --shard-count {}",
            spec.index,
            spec.count,
            spec.count,
            output.display(),
            spec.count
        );
    }
    Ok(if totals.invalid_count > 0 {
        Status::Skipped
    } else {
        Status::Success
    })
}

/// Generated keys, written to their key file just before the outputs are committed (so that
/// published outputs always have their keys stored), and taken back if that commit fails.
struct StoredKeys {
    /// What was stored, and where, for standard error; `None` when no key was generated.
    message: Option<String>,
    /// The key file, and whether this run created it.
    file: Option<(PathBuf, bool)>,
}

impl StoredKeys {
    /// Writes the generated keys (if any) to `key_file`.
    fn store(keys: deid::keys::Keys, key_file: Option<&Path>) -> Result<StoredKeys, Failure> {
        let existed = key_file.is_some_and(Path::exists);
        let message = keys
            .store()
            .map_err(|error| Failure::output(error.to_string()))?;
        let file = match (&message, key_file) {
            (Some(_), Some(path)) => Some((path.to_owned(), !existed)),
            _ => None,
        };
        Ok(StoredKeys { message, file })
    }

    /// Says where the generated keys are.
    fn announce(self) {
        if let Some(message) = self.message {
            eprintln!("haven: {message}");
        }
    }

    /// After a failed commit, when nothing was published: removes a key file this run
    /// created; a key file that existed keeps the keys added to it, and the failure says so.
    fn undo(self, failure: Failure) -> Failure {
        match self.file {
            Some((path, true)) => {
                let _ = fs::remove_file(&path);
                failure
            }
            Some((path, false)) => Failure::new(
                failure.status,
                format!(
                    "{failure}\n(the keys generated for this run stay in {})",
                    path.display()
                ),
            ),
            None => failure,
        }
    }
}

/// `--commit OUTPUT --shard-count N`: joins the shards into OUTPUT with a manifest.
fn commit(output: &Path, count: u32) -> Result<Status, Failure> {
    match shard::commit(output, count)? {
        shard::Committed::Published { files, resources } => eprintln!(
            "haven: committed {count} shards into {}: {files} files, {resources} resources; \
             manifest {}",
            output.display(),
            output.join(shard::MANIFEST).display()
        ),
        shard::Committed::AlreadyCommitted => eprintln!(
            "haven: {} is already committed ({}); nothing to do",
            output.display(),
            shard::MANIFEST
        ),
    }
    Ok(Status::Success)
}
