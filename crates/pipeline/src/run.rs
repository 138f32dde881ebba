//! One run: source → de-identification → lake, resumable, with its report and state.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use deid::{Context, Engine};
use fhir::ndjson::{NdjsonReader, ProcessOptions, ReadOptions, process_ordered};
use lake::views::ViewDefinition;
use lake::{Destination, Formats, RunOptions, RunWriter};
use serde_json::{Value, json};

use crate::config::PipelineConfig;
use crate::error::{Error, Result};
use crate::report::{RunReport, StageReport, TypeCounts};
use crate::source::{self, Staged};
use crate::state::{self, CURRENT_KEY, CurrentRun, LakeState, RunRecord, STATE_KEY};

/// Watches a run: stages as they start, resources as they pass, and notes for the user. The
/// CLI draws a progress bar or prints periodic lines; the default methods do nothing.
pub trait Observer: Send + Sync {
    /// A stage starts; `total` is the number of resources expected, when known.
    fn stage(&self, _name: &str, _total: Option<u64>) {}
    /// `resources` more resources went through the current stage.
    fn advance(&self, _resources: u64) {}
    /// A line for the user (never a resource value).
    fn note(&self, _text: &str) {}
}

/// An observer that shows nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct Silent;

impl Observer for Silent {}

/// A configured pipeline, ready to run.
#[derive(Debug, Clone)]
pub struct Pipeline {
    config: PipelineConfig,
    threads: Option<usize>,
}

/// The lines between two progress reports.
const ADVANCE_EVERY: u64 = 1_000;

impl Pipeline {
    /// A pipeline with `config`, checked.
    pub fn new(config: PipelineConfig) -> Result<Pipeline> {
        config.check()?;
        Ok(Pipeline {
            config,
            threads: None,
        })
    }

    /// Uses `threads` worker threads for de-identification (default: one per core).
    pub fn with_threads(mut self, threads: usize) -> Pipeline {
        self.threads = Some(threads);
        self
    }

    /// The configuration.
    pub fn config(&self) -> &PipelineConfig {
        &self.config
    }

    /// Runs once: resumes the run under way if the lake has one, otherwise starts a new run
    /// that exports only what changed since the last one. Returns its report, which is also
    /// written to the lake under `_haven/runs/<run id>/`.
    pub fn run(&self, observer: &dyn Observer) -> Result<RunReport> {
        let config = &self.config;
        let dest = Destination::open_with(&config.lake.location, &config.lake.options)?;
        let mut lake_state: LakeState = state::read(&dest, STATE_KEY)?.unwrap_or_default();
        let (mut deid_config, deid_name) = self.deid_config()?;
        if let Some(previous) = &lake_state.deid
            && previous != &deid_name
        {
            return Err(Error::Deid(format!(
                "the lake was built with {previous}, this run asks for {deid_name}; ids and \
                 dates would not match (use a new lake, or the same de-identification)"
            )));
        }
        let key_options = deid::keys::KeyOptions {
            key_file: config.deid.key_file.clone(),
            generate: config.deid.generate_keys,
        };
        let keys = deid::keys::resolve(&mut deid_config, &key_options)
            .map_err(|error| Error::Deid(error.to_string()))?;
        for note in keys.notes() {
            observer.note(&note);
        }
        let mut engine =
            Engine::new(deid_config).map_err(|error| Error::Deid(error.to_string()))?;

        let current = match state::read::<CurrentRun>(&dest, CURRENT_KEY)? {
            Some(mut current) => {
                current.attempts += 1;
                observer.note(&format!(
                    "resuming run {} (attempt {})",
                    current.run_id, current.attempts
                ));
                current
            }
            None => CurrentRun {
                run_id: new_run_id(&lake_state),
                started: now(),
                since: lake_state.watermark.clone(),
                attempts: 1,
            },
        };
        if current.attempts > 1 {
            let removed = dest.remove_abandoned_uploads()?;
            if removed > 0 {
                observer.note(&format!(
                    "removed {removed} incomplete files left by the interrupted attempt"
                ));
            }
        }
        state::write(&dest, CURRENT_KEY, &current)?;

        let mut report = RunReport {
            run_id: current.run_id.clone(),
            lake: config.lake.location.clone(),
            source: self.source_name(),
            level: config
                .source
                .server
                .as_ref()
                .map(|_| config.source.level.as_str().to_owned()),
            deid: deid_name.clone(),
            since: current.since.clone(),
            started: current.started.clone(),
            attempts: current.attempts,
            ..RunReport::default()
        };

        let started = Instant::now();
        observer.stage("export", None);
        let work = self.work_dir()?.join(&current.run_id);
        let staged = self.stage(&current, &work, observer)?;
        report.transaction_time = staged.transaction_time.clone();
        report.stages.push(StageReport {
            name: "export".to_owned(),
            seconds: started.elapsed().as_secs_f64(),
            resources: staged.announced.values().sum(),
            bytes: files_size(&staged.files),
        });

        let started = Instant::now();
        let total = staged.announced.values().sum::<u64>();
        observer.stage("land", (total > 0).then_some(total));
        let mut options = RunOptions::new(&current.run_id);
        options.formats = self.formats();
        options.views = self.views()?;
        let mut writer = RunWriter::new(&dest, options)?;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(self.threads.unwrap_or(0))
            .thread_name(|index| format!("haven-pipeline-{index}"))
            .build()
            .map_err(|error| Error::Source(format!("cannot start worker threads: {error}")))?;
        if engine.scrubs() {
            let identities =
                deid::identities::collect(staged.files.iter().map(PathBuf::as_path), &pool)?;
            engine = engine.with_identities(&identities);
            observer.note(&format!(
                "scrub: {} identifying values of the export's people and places",
                engine.dictionary().len()
            ));
        }
        let busy = Busy::default();
        for file in &staged.files {
            let landing = Landing {
                engine: &engine,
                pool: &pool,
                busy: &busy,
                observer,
            };
            landing.file(file, &mut writer, &mut report.types)?;
        }
        for file in &staged.deleted {
            apply_deletions(file, &engine, &mut writer, &mut report.types)?;
        }
        let finishing = Instant::now();
        let summary = writer.finish()?;
        busy.add_write(finishing.elapsed());
        report.tables = summary
            .tables
            .iter()
            .map(|(table, t)| (table.clone(), t.rows))
            .collect();
        let resources = report.types.values().map(|c| c.read).sum();
        let bytes = files_size(&staged.files);
        report.stages.push(StageReport {
            name: "land".to_owned(),
            seconds: started.elapsed().as_secs_f64(),
            resources,
            bytes,
        });
        report.stages.push(StageReport {
            name: "deidentify".to_owned(),
            seconds: busy.deidentify_seconds() / pool.current_num_threads().max(1) as f64,
            resources,
            bytes,
        });
        report.stages.push(StageReport {
            name: "write".to_owned(),
            seconds: busy.write_seconds(),
            resources,
            bytes,
        });
        for (kind, announced) in &staged.announced {
            let counts = report.types.entry(kind.clone()).or_default();
            counts.announced = Some(*announced);
            if counts.read != *announced {
                report.warnings.push(format!(
                    "{kind}: the manifest announced {announced} resources, the files held {}",
                    counts.read
                ));
            }
        }
        for (kind, counts) in &report.types {
            if counts.dropped > 0 {
                report.warnings.push(format!(
                    "{kind}: {} resources were redacted whole and not landed",
                    counts.dropped
                ));
            }
        }
        report.finished = now();

        state::write(&dest, &state::report_key(&report.run_id, "json"), &report)?;
        dest.put(
            &state::report_key(&report.run_id, "txt"),
            report.summary().into_bytes(),
        )?;
        lake_state.deid = Some(deid_name);
        if report.transaction_time.is_some() {
            lake_state.watermark = report.transaction_time.clone();
        }
        lake_state.runs.push(RunRecord {
            run_id: report.run_id.clone(),
            transaction_time: report.transaction_time.clone(),
            since: report.since.clone(),
            finished: report.finished.clone(),
            resources: report.landed(),
            deleted: report.deleted(),
        });
        state::write(&dest, STATE_KEY, &lake_state)?;
        dest.delete(CURRENT_KEY)?;
        if work.exists() {
            std::fs::remove_dir_all(&work).map_err(|error| Error::io(&work, error))?;
        }
        if let Some(stored) = keys.store().map_err(|e| Error::Deid(e.to_string()))? {
            observer.note(&stored);
        }
        Ok(report)
    }

    /// The export stage: a folder is read where it is; a server is exported into `work`.
    fn stage(&self, current: &CurrentRun, work: &Path, observer: &dyn Observer) -> Result<Staged> {
        let source = &self.config.source;
        if let Some(folder) = &source.folder {
            return source::scan_folder(folder);
        }
        crate::bulk_source::export(source, current.since.as_deref(), work, observer)
    }

    fn source_name(&self) -> String {
        match (&self.config.source.server, &self.config.source.folder) {
            (Some(server), _) => server.clone(),
            (None, Some(folder)) => folder.display().to_string(),
            (None, None) => String::new(),
        }
    }

    /// The de-identification configuration and its name for the report and the state.
    fn deid_config(&self) -> Result<(deid::Config, String)> {
        let deid = &self.config.deid;
        if let Some(path) = &deid.config {
            let bytes = std::fs::read(path).map_err(|error| Error::io(path, error))?;
            let config = deid::Config::from_slice(&bytes)
                .map_err(|error| Error::Deid(format!("{}: {error}", path.display())))?;
            return Ok((config, format!("configuration {}", path.display())));
        }
        let name = deid.preset.as_deref().unwrap_or("safe-harbor");
        let text = deid::presets::preset(name).ok_or_else(|| {
            let known: Vec<&str> = deid::presets::presets().iter().map(|(n, _)| *n).collect();
            Error::Deid(format!(
                "unknown preset `{name}` (known: {})",
                known.join(", ")
            ))
        })?;
        let config = deid::Config::from_json(text)
            .map_err(|error| Error::Deid(format!("preset {name}: {error}")))?;
        Ok((config, format!("preset {name}")))
    }

    fn formats(&self) -> Formats {
        let has = |name: &str| self.config.lake.formats.iter().any(|f| f == name);
        Formats {
            ndjson: has("ndjson"),
            parquet: has("parquet"),
            delta: has("delta"),
        }
    }

    fn views(&self) -> Result<Vec<ViewDefinition>> {
        let mut views = Vec::new();
        for entry in &self.config.lake.views {
            if entry == "builtin" {
                views.extend(lake::views::builtin_views());
                continue;
            }
            let path = Path::new(entry);
            let bytes = std::fs::read(path).map_err(|error| Error::io(path, error))?;
            let definition: Value =
                serde_json::from_slice(&bytes).map_err(|error| Error::Config {
                    file: entry.clone(),
                    reason: format!(
                        "not valid JSON (line {}, column {})",
                        error.line(),
                        error.column()
                    ),
                })?;
            views.push(
                ViewDefinition::from_json(&definition).map_err(|error| Error::Config {
                    file: entry.clone(),
                    reason: error.to_string(),
                })?,
            );
        }
        Ok(views)
    }

    /// The local folder for raw exports: the configured one, or one per lake under Haven's
    /// data folder.
    fn work_dir(&self) -> Result<PathBuf> {
        if let Some(work) = &self.config.work_dir {
            return Ok(work.clone());
        }
        let home = match std::env::var_os("HAVEN_HOME") {
            Some(home) => PathBuf::from(home),
            None => {
                let home = std::env::var_os("HOME").ok_or_else(|| Error::Config {
                    file: "pipeline configuration".to_owned(),
                    reason: "no work_dir, and neither HAVEN_HOME nor HOME is set".to_owned(),
                })?;
                PathBuf::from(home).join(".local/share/haven")
            }
        };
        let lake: String = self
            .config
            .lake
            .location
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        Ok(home.join("pipeline").join(lake.trim_matches('_')))
    }
}

/// Time spent de-identifying (summed over the worker threads) and writing (on the calling
/// thread) during the land stage, which overlap in time.
#[derive(Debug, Default)]
struct Busy {
    deidentify_nanos: AtomicU64,
    write_nanos: AtomicU64,
}

impl Busy {
    fn add_deidentify(&self, elapsed: Duration) {
        self.deidentify_nanos
            .fetch_add(elapsed.as_nanos() as u64, Ordering::Relaxed);
    }

    fn add_write(&self, elapsed: Duration) {
        self.write_nanos
            .fetch_add(elapsed.as_nanos() as u64, Ordering::Relaxed);
    }

    fn deidentify_seconds(&self) -> f64 {
        self.deidentify_nanos.load(Ordering::Relaxed) as f64 / 1e9
    }

    fn write_seconds(&self) -> f64 {
        self.write_nanos.load(Ordering::Relaxed) as f64 / 1e9
    }
}

/// What landing a file needs besides the file and the writer.
struct Landing<'a> {
    engine: &'a Engine,
    pool: &'a rayon::ThreadPool,
    busy: &'a Busy,
    observer: &'a dyn Observer,
}

impl Landing<'_> {
    /// Reads one NDJSON file, de-identifies its resources in parallel and writes them, in
    /// order, to the lake.
    fn file(
        &self,
        path: &Path,
        writer: &mut RunWriter,
        counts: &mut BTreeMap<String, TypeCounts>,
    ) -> Result<()> {
        let mut reader = NdjsonReader::open(path, ReadOptions::default())?;
        let file = reader.file().to_owned();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let options = ProcessOptions {
            pool: Some(self.pool),
            max_in_flight: None,
        };
        let mut since_advance = 0;
        process_ordered(
            &mut reader,
            options,
            |line| {
                let started = Instant::now();
                let mut resource = line.parse_resource()?;
                let kind = resource["resourceType"]
                    .as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| Error::Resource {
                        file: file.clone(),
                        line: line.number(),
                        reason: "no resourceType".to_owned(),
                    })?;
                let context = Context {
                    file: Some(&name),
                    folder: None,
                    sequence: line.number(),
                };
                self.engine
                    .deidentify(&mut resource, &context)
                    .map_err(|error| Error::Resource {
                        file: file.clone(),
                        line: line.number(),
                        reason: error.to_string(),
                    })?;
                self.busy.add_deidentify(started.elapsed());
                Ok::<_, Error>((kind, resource))
            },
            |line, (kind, resource)| {
                let started = Instant::now();
                let entry = counts.entry(kind).or_default();
                entry.read += 1;
                if resource.get("id").is_some_and(Value::is_string) {
                    writer.write(&resource).map_err(|error| Error::Resource {
                        file: file.clone(),
                        line: line.number(),
                        reason: error.to_string(),
                    })?;
                    entry.landed += 1;
                } else {
                    entry.dropped += 1;
                }
                since_advance += 1;
                if since_advance == ADVANCE_EVERY {
                    self.observer.advance(since_advance);
                    since_advance = 0;
                }
                self.busy.add_write(started.elapsed());
                Ok(())
            },
        )?;
        self.observer.advance(since_advance);
        Ok(())
    }
}

/// Applies a file of deletions: each `(type, id)` goes through the same de-identification as
/// the resources' ids, so it names the landed resource.
fn apply_deletions(
    path: &Path,
    engine: &Engine,
    writer: &mut RunWriter,
    counts: &mut BTreeMap<String, TypeCounts>,
) -> Result<()> {
    let mut reader = NdjsonReader::open(path, ReadOptions::default())?;
    while let Some(batch) = reader.next_batch()? {
        for line in batch.iter() {
            let resource = line.parse_resource()?;
            for (kind, id) in source::deletions_in(&resource) {
                let mut stub = json!({"resourceType": kind, "id": id});
                engine
                    .deidentify(&mut stub, &Context::default())
                    .map_err(|error| Error::Resource {
                        file: reader.file().to_owned(),
                        line: line.number(),
                        reason: error.to_string(),
                    })?;
                if let Some(landed_id) = stub["id"].as_str() {
                    writer.delete(&kind, landed_id)?;
                    counts.entry(kind).or_default().deleted += 1;
                }
            }
        }
    }
    Ok(())
}

fn files_size(files: &[PathBuf]) -> u64 {
    files
        .iter()
        .filter_map(|file| std::fs::metadata(file).ok())
        .map(|meta| meta.len())
        .sum()
}

/// Now, RFC 3339 to the second, UTC.
pub(crate) fn now() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

/// A run id from the clock (`20240102T030405Z`), unique among the lake's runs.
fn new_run_id(state: &LakeState) -> String {
    let base: String = now().chars().filter(|c| *c != '-' && *c != ':').collect();
    let taken = |id: &str| state.runs.iter().any(|run| run.run_id == id);
    if !taken(&base) {
        return base;
    }
    (2..)
        .map(|n| format!("{base}-{n}"))
        .find(|id| !taken(id))
        .expect("an unused suffix exists")
}
