//! Haven's lake validation (`haven validate`): proves what a pipeline run landed and that no
//! identifier slipped through.
//!
//! Checks, in order (see [`Report`]):
//! - **counts**: per run and type, the rows of the NDJSON and Parquet files equal the run
//!   report's `landed`, `announced` equals `read`, each view table's rows equal the report's
//!   `tables`, and each deletion list holds the report's `deleted`;
//! - **tables**: every NDJSON file decodes to its end (gzip and JSON), every Parquet footer
//!   reads;
//! - **delta** (feature `delta`): each Delta resource table holds exactly the current ids (all
//!   ids landed over the runs, minus those deleted since);
//! - **references**: every `Type/id` reference of a current resource resolves to a current
//!   resource; when a run exported at patient or group level, references to types outside the
//!   Patient compartment (which such an export leaves out) are counted apart, not as findings;
//! - **identifiers**: every string is scanned for identifier patterns (SSN, phone, email,
//!   record numbers, street addresses, URLs) and, under the safe-harbor preset, for dates finer
//!   than a year, 5-digit zips and ages over 89 (see the `scan` module's notes for what is
//!   skipped: codes and terminology URLs); so is every text cell of the Parquet view tables
//!   (free-text patterns, and the zip rule in columns named for zips or postal codes), since a
//!   ViewDefinition can build new strings;
//! - **source-values** (given the identified source): the source's exact identifying values,
//!   as whole words (see [`SourceValues`] for which values and which are left out).
//!
//! Findings name the file, line (or row), JSON Pointer and kind; never a value.
//!
//! Streaming: files are read one at a time and scanned in batches of lines; the ids are kept
//! as 64-bit hashes per type (8 bytes and a run number per resource).
//!
//! ```no_run
//! let lake = lake::Destination::open("./lake")?;
//! let report = validate::validate(&lake, &validate::Options::default())?;
//! print!("{}", report.summary());
//! assert!(report.passed);
//! # Ok::<(), validate::Error>(())
//! ```

#[cfg(feature = "delta")]
mod delta;
mod error;
mod inventory;
mod read;
mod report;
mod scan;
mod source;
mod walk;

use std::collections::{BTreeMap, HashMap};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::PathBuf;

use lake::{Destination, ObjectInfo};
use pipeline::RunReport;
use pipeline::state::{LakeState, STATE_KEY, report_key};
use rayon::prelude::*;
use serde_json::Value;

pub use error::{Error, Result};
pub use report::{Check, EXAMPLES_PER_GROUP, Finding, FindingGroup, LATEST_KEY, Report, Status};
pub use source::{MIN_VALUE_CHARS, SourceStats, SourceValues, Vocabulary};

use inventory::{Inventory, RunFiles};
use read::{ReadError, ndjson_lines, parquet_resources, parquet_rows, parquet_text_cells};
use scan::{CellRule, Scanner, cell_rule};

/// Lines scanned per parallel batch.
const BATCH_LINES: usize = 2048;
/// Bytes of JSON scanned per parallel batch, whichever limit comes first.
const BATCH_BYTES: usize = 16 * 1024 * 1024;

/// What to validate besides the lake itself.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The identified source (a folder of NDJSON): its identifying values are searched for.
    pub source: Option<PathBuf>,
}

/// The hash under which an id is kept.
fn id_hash(id: &str) -> u64 {
    let mut hasher = DefaultHasher::new();
    id.hash(&mut hasher);
    hasher.finish()
}

/// The lake's ids: per type, the hash of each current id and the index of the run that last
/// landed it.
#[derive(Debug, Default)]
struct Ids {
    by_type: HashMap<String, HashMap<u64, u32>>,
}

impl Ids {
    fn contains(&self, resource_type: &str, id: &str) -> bool {
        self.by_type
            .get(resource_type)
            .is_some_and(|ids| ids.contains_key(&id_hash(id)))
    }

    fn current_run(&self, resource_type: &str, id: &str) -> Option<u32> {
        self.by_type
            .get(resource_type)
            .and_then(|ids| ids.get(&id_hash(id)).copied())
    }

    fn total(&self) -> usize {
        self.by_type.values().map(HashMap::len).sum()
    }
}

/// A run's partitions, with its position among the recorded runs (`None` for a partition
/// of a run the state does not record).
struct RunEntry<'a> {
    id: &'a str,
    index: Option<u32>,
    files: &'a RunFiles,
}

/// The rows counted in one run's files.
#[derive(Debug, Default)]
struct RunRows {
    ndjson: BTreeMap<String, u64>,
    parquet: BTreeMap<String, u64>,
    views: BTreeMap<String, u64>,
    deleted: BTreeMap<String, u64>,
}

/// The checks under way.
struct Checks {
    counts: Check,
    tables: Check,
    references: Check,
    identifiers: Check,
    source_values: Check,
}

/// Validates the lake at `dest`: reads its state and run reports, then every file.
///
/// Returns the report (which says whether the lake passed); an `Err` only when the lake or
/// the source cannot be read at all (no state file, a failed listing).
pub fn validate(dest: &Destination, options: &Options) -> Result<Report> {
    let state: LakeState = pipeline::state::read(dest, STATE_KEY)
        .map_err(|e| Error::State {
            location: dest.url().to_string(),
            reason: e.to_string(),
        })?
        .ok_or_else(|| Error::State {
            location: dest.url().to_string(),
            reason: format!("no {STATE_KEY}: not a Haven lake, or no run has completed"),
        })?;
    let safe_harbor = state.deid.as_deref() == Some("preset safe-harbor");
    let inventory = Inventory::list(dest)?;
    let mut checks = Checks {
        counts: Check::new("counts"),
        tables: Check::new("tables"),
        references: Check::new("references"),
        identifiers: Check::new("identifiers"),
        source_values: Check::new("source-values"),
    };

    let empty = RunFiles::default();
    let mut runs: Vec<RunEntry<'_>> = state
        .runs
        .iter()
        .enumerate()
        .map(|(i, run)| RunEntry {
            id: &run.run_id,
            index: Some(i as u32),
            files: inventory.runs.get(&run.run_id).unwrap_or(&empty),
        })
        .collect();
    for (id, files) in &inventory.runs {
        if !state.runs.iter().any(|r| &r.run_id == id) {
            checks.counts.add(
                "unrecorded-run",
                Finding {
                    kind: "unrecorded-run".to_owned(),
                    file: format!("run={id}"),
                    line: None,
                    path: None,
                    detail: format!(
                        "partitions of run {id}, which {STATE_KEY} does not record (an \
                         interrupted run?)"
                    ),
                },
            );
            runs.push(RunEntry {
                id,
                index: None,
                files,
            });
        }
    }

    // Pass 1: counts, tables, ids and the display vocabulary.
    let mut ids = Ids::default();
    let mut vocabulary = options.source.as_ref().map(|_| Vocabulary::default());
    let mut opened = Opened::default();
    let mut reconciled = 0u64;
    // The level of a run that exported only Patient compartments, if any.
    let mut compartment_level: Option<String> = None;
    for run in &runs {
        let rows = count_run(
            dest,
            run,
            &mut ids,
            vocabulary.as_mut(),
            &mut checks,
            &mut opened,
        )?;
        if let Some(index) = run.index {
            let record = &state.runs[index as usize];
            match pipeline::state::read::<RunReport>(dest, &report_key(&record.run_id, "json")) {
                Ok(Some(report)) => {
                    reconciled += reconcile(run.id, &report, &rows, &mut checks.counts);
                    if let Some(level) = report.level.filter(|level| level != "system") {
                        compartment_level = Some(level);
                    }
                }
                Ok(None) => checks.counts.add(
                    "missing-report",
                    finding(
                        "missing-report",
                        &report_key(&record.run_id, "json"),
                        None,
                        "the run's report is missing",
                    ),
                ),
                Err(e) => checks.counts.add(
                    "unreadable-report",
                    finding(
                        "unreadable-report",
                        &report_key(&record.run_id, "json"),
                        None,
                        &e.to_string(),
                    ),
                ),
            }
        }
    }
    checks.counts.summary = format!(
        "{reconciled} table partitions reconciled with {} run report(s)",
        state.runs.len()
    );
    checks.tables.summary = format!(
        "{} NDJSON and {} Parquet files opened, {} rows",
        opened.ndjson, opened.parquet, opened.rows
    );

    let delta = delta_check(dest, &inventory, &ids);

    // The source's identifying values, minus the lake's clinical vocabulary.
    let source = match (&options.source, &vocabulary) {
        (Some(dir), Some(vocabulary)) => Some(SourceValues::read(dir, vocabulary)?),
        _ => None,
    };

    // Pass 2: references and the identifier scan.
    let scanner = Scanner {
        safe_harbor,
        source: source.as_ref(),
        reference_year: state
            .runs
            .last()
            .and_then(|r| r.finished.get(..4)?.parse().ok()),
    };
    let mut scanned = Scanned::default();
    let compartment_only = compartment_level.is_some();
    for run in &runs {
        let refs = References {
            ids: &ids,
            compartment_only,
        };
        scan_run(dest, run, &refs, &scanner, &mut checks, &mut scanned)?;
    }
    checks.references.summary = format!(
        "{} relative references checked against {} current resources; {} unresolved",
        scanned.references,
        ids.total(),
        checks.references.findings()
    );
    if let Some(level) = &compartment_level {
        checks.references.summary.push_str(&format!(
            "; {} to types outside the Patient compartment, which a {level}-level export leaves \
             out (not findings: export at system level to include them)",
            scanned.excluded
        ));
    }
    checks.identifiers.summary = format!(
        "{} resources and {} view cells scanned{}; {} findings",
        scanned.resources,
        scanned.view_cells,
        if safe_harbor {
            " with the safe-harbor rules"
        } else {
            ""
        },
        checks.identifiers.findings()
    );
    let source_values = match &source {
        Some(source) => {
            let stats = source.stats;
            checks.source_values.summary = format!(
                "{} source values searched for ({} shorter than {MIN_VALUE_CHARS} characters and \
                 {} made of clinical words left out); {} findings",
                stats.searched,
                stats.too_short,
                stats.clinical_words,
                checks.source_values.findings()
            );
            checks.source_values
        }
        None => Check::skipped("source-values", "no --source given"),
    };

    let checks = vec![
        checks.counts,
        checks.tables,
        delta,
        checks.references,
        checks.identifiers,
        source_values,
    ];
    Ok(Report {
        lake: dest.url().to_string(),
        deid: state.deid.clone(),
        safe_harbor,
        runs: state.runs.iter().map(|r| r.run_id.clone()).collect(),
        resources: scanned.resources,
        bytes: scanned.bytes,
        passed: checks.iter().all(|c| c.status != Status::Failed),
        checks,
    })
}

/// Files opened and rows read in pass 1.
#[derive(Debug, Default)]
struct Opened {
    ndjson: u64,
    parquet: u64,
    rows: u64,
}

/// What pass 2 scanned.
#[derive(Debug, Default)]
struct Scanned {
    resources: u64,
    bytes: u64,
    references: u64,
    /// References to types a patient- or group-level export leaves out.
    excluded: u64,
    view_cells: u64,
}

fn finding(kind: &str, file: &str, line: Option<u64>, detail: &str) -> Finding {
    Finding {
        kind: kind.to_owned(),
        file: file.to_owned(),
        line,
        path: None,
        detail: detail.to_owned(),
    }
}

/// Reads an object, recording a missing one as a table finding.
fn get(
    dest: &Destination,
    object: &ObjectInfo,
    tables: &mut Check,
) -> Result<Option<bytes::Bytes>> {
    let bytes = dest.get(&object.key)?;
    if bytes.is_none() {
        tables.add(
            "unreadable",
            finding("unreadable", &object.key, None, "listed but gone"),
        );
    }
    Ok(bytes)
}

fn unreadable(tables: &mut Check, key: &str, error: &ReadError) {
    tables.add(
        "unreadable",
        finding("unreadable", key, error.line, &error.reason),
    );
}

/// The files a type's resources are read from: its NDJSON, or its Parquet when the run
/// wrote no NDJSON for it.
fn content_files<'a>(files: &'a RunFiles, resource_type: &str) -> (&'a [ObjectInfo], bool) {
    match files.ndjson.get(resource_type) {
        Some(list) if !list.is_empty() => (list, true),
        _ => (
            files
                .parquet
                .get(resource_type)
                .map_or(&[][..], Vec::as_slice),
            false,
        ),
    }
}

/// Every resource type a run holds resources of.
fn run_types(files: &RunFiles) -> Vec<&str> {
    let mut types: Vec<&str> = files
        .ndjson
        .keys()
        .chain(files.parquet.keys())
        .map(String::as_str)
        .collect();
    types.sort_unstable();
    types.dedup();
    types
}

/// Pass 1 over one run: row counts, decoding, ids (landed, then deleted), vocabulary.
fn count_run(
    dest: &Destination,
    run: &RunEntry<'_>,
    ids: &mut Ids,
    mut vocabulary: Option<&mut Vocabulary>,
    checks: &mut Checks,
    opened: &mut Opened,
) -> Result<RunRows> {
    let mut rows = RunRows::default();
    for resource_type in run_types(run.files) {
        let (_, from_ndjson) = content_files(run.files, resource_type);
        let type_ids = ids.by_type.entry(resource_type.to_owned()).or_default();
        let mut on_resource = |key: &str, line: u64, text: &[u8], counts: &mut Check| {
            let Ok(resource) = serde_json::from_slice::<Value>(text) else {
                counts.add(
                    "unparsable",
                    finding("unparsable", key, Some(line), "not a JSON resource"),
                );
                return;
            };
            if resource.get("resourceType").and_then(Value::as_str) != Some(resource_type) {
                counts.add(
                    "resource-type",
                    finding(
                        "resource-type",
                        key,
                        Some(line),
                        &format!("not a {resource_type} resource"),
                    ),
                );
            }
            match (resource.get("id").and_then(Value::as_str), run.index) {
                (Some(id), Some(index)) => {
                    type_ids.insert(id_hash(id), index);
                }
                (None, _) => counts.add(
                    "missing-id",
                    finding("missing-id", key, Some(line), "a resource without an id"),
                ),
                _ => {}
            }
            if let Some(v) = vocabulary.as_deref_mut() {
                v.add_resource(&resource);
            }
        };
        for object in run.files.ndjson.get(resource_type).into_iter().flatten() {
            let Some(bytes) = get(dest, object, &mut checks.tables)? else {
                continue;
            };
            opened.ndjson += 1;
            let mut n = 0;
            let result = ndjson_lines(&bytes, |line, text| {
                n = line;
                on_resource(&object.key, line, text, &mut checks.tables);
            });
            if let Err(e) = result {
                unreadable(&mut checks.tables, &object.key, &e);
            }
            opened.rows += n;
            *rows.ndjson.entry(resource_type.to_owned()).or_default() += n;
        }
        for object in run.files.parquet.get(resource_type).into_iter().flatten() {
            let Some(bytes) = get(dest, object, &mut checks.tables)? else {
                continue;
            };
            opened.parquet += 1;
            match parquet_rows(bytes.clone()) {
                Ok(n) => {
                    opened.rows += n;
                    *rows.parquet.entry(resource_type.to_owned()).or_default() += n;
                }
                Err(e) => {
                    unreadable(&mut checks.tables, &object.key, &e);
                    continue;
                }
            }
            if !from_ndjson {
                let result = parquet_resources(bytes, |row, text| {
                    on_resource(&object.key, row, text, &mut checks.tables);
                });
                if let Err(e) = result {
                    unreadable(&mut checks.tables, &object.key, &e);
                }
            }
        }
    }
    for (resource_type, objects) in &run.files.deleted {
        for object in objects {
            let Some(bytes) = get(dest, object, &mut checks.tables)? else {
                continue;
            };
            opened.ndjson += 1;
            let type_ids = ids.by_type.entry(resource_type.clone()).or_default();
            let mut n = 0;
            let result = ndjson_lines(&bytes, |line, text| {
                n = line;
                match serde_json::from_slice::<Value>(text)
                    .ok()
                    .and_then(|v| v.get("id").and_then(Value::as_str).map(id_hash))
                {
                    Some(hash) if run.index.is_some() => {
                        type_ids.remove(&hash);
                    }
                    Some(_) => {}
                    None => checks.tables.add(
                        "unparsable",
                        finding(
                            "unparsable",
                            &object.key,
                            Some(line),
                            "not a deletion entry",
                        ),
                    ),
                }
            });
            if let Err(e) = result {
                unreadable(&mut checks.tables, &object.key, &e);
            }
            opened.rows += n;
            *rows.deleted.entry(resource_type.clone()).or_default() += n;
        }
    }
    for (view, objects) in &run.files.views {
        for object in objects {
            let Some(bytes) = get(dest, object, &mut checks.tables)? else {
                continue;
            };
            opened.parquet += 1;
            match parquet_rows(bytes) {
                Ok(n) => {
                    opened.rows += n;
                    *rows.views.entry(view.clone()).or_default() += n;
                }
                Err(e) => unreadable(&mut checks.tables, &object.key, &e),
            }
        }
    }
    Ok(rows)
}

/// Compares one run's files with its report; the partitions compared.
fn reconcile(run_id: &str, report: &RunReport, rows: &RunRows, counts: &mut Check) -> u64 {
    let report_file = report_key(run_id, "json");
    let mut compared = 0;
    let mut types: Vec<&String> = report
        .types
        .keys()
        .chain(rows.ndjson.keys())
        .chain(rows.parquet.keys())
        .chain(rows.deleted.keys())
        .collect();
    types.sort_unstable();
    types.dedup();
    for resource_type in types {
        let c = report.types.get(resource_type).copied().unwrap_or_default();
        if let Some(announced) = c.announced
            && announced != c.read
        {
            counts.add(
                "announced-read",
                finding(
                    "announced-read",
                    &report_file,
                    None,
                    &format!(
                        "{resource_type}: the manifest announced {announced}, {} were read",
                        c.read
                    ),
                ),
            );
        }
        for (format, files, expected, what) in [
            ("ndjson", &rows.ndjson, c.landed, "landed"),
            ("parquet", &rows.parquet, c.landed, "landed"),
            ("deleted", &rows.deleted, c.deleted, "deleted"),
        ] {
            let table = format!("{format}/{resource_type}");
            compared += compare(
                counts,
                run_id,
                &table,
                files.get(resource_type).copied(),
                report.tables.get(&table).copied(),
                Some((expected, what)),
            );
        }
    }
    let mut views: Vec<&str> = report
        .tables
        .keys()
        .filter_map(|t| t.strip_prefix("views/"))
        .chain(rows.views.keys().map(String::as_str))
        .collect();
    views.sort_unstable();
    views.dedup();
    for view in views {
        let table = format!("views/{view}");
        compared += compare(
            counts,
            run_id,
            &table,
            rows.views.get(view).copied(),
            report.tables.get(&table).copied(),
            None,
        );
    }
    compared
}

/// Compares a table partition's rows with the report's figures; 1 if the partition exists.
fn compare(
    counts: &mut Check,
    run_id: &str,
    table: &str,
    files: Option<u64>,
    listed: Option<u64>,
    expected: Option<(u64, &str)>,
) -> u64 {
    if files.is_none() && listed.is_none() {
        return 0;
    }
    let partition = format!("{table}/run={run_id}");
    let rows = files.unwrap_or(0);
    let mut mismatch = |detail: String| {
        counts.add("row-count", finding("row-count", &partition, None, &detail));
    };
    if let Some((expected, what)) = expected
        && rows != expected
    {
        mismatch(format!(
            "{rows} rows in the files; the report says {expected} {what}"
        ));
    }
    match listed {
        Some(listed) if listed != rows => mismatch(format!(
            "{rows} rows in the files; the report's tables say {listed}"
        )),
        None => mismatch(format!(
            "{rows} rows in a table the report's tables do not list"
        )),
        _ => {}
    }
    1
}

/// The Delta check: each Delta resource table's ids against the current ids.
#[cfg(feature = "delta")]
fn delta_check(dest: &Destination, inventory: &Inventory, ids: &Ids) -> Check {
    delta::check(dest, &inventory.delta, &ids.by_type, id_hash)
}

/// Without the `delta` feature, Delta tables are not read.
#[cfg(not(feature = "delta"))]
fn delta_check(_dest: &Destination, inventory: &Inventory, _ids: &Ids) -> Check {
    if inventory.delta.is_empty() {
        Check::skipped("delta", "no Delta tables")
    } else {
        Check::skipped(
            "delta",
            format!(
                "{} Delta tables not checked (built without the `delta` feature)",
                inventory.delta.len()
            ),
        )
    }
}

/// One resource's scan result.
struct Scan {
    line: u64,
    hits: Vec<scan::Hit>,
    unresolved: Vec<(&'static str, String)>,
    references: u64,
    excluded: u64,
}

/// What references are resolved against: the current ids, and whether the lake holds only
/// Patient compartments (a patient- or group-level export).
struct References<'a> {
    ids: &'a Ids,
    compartment_only: bool,
}

/// Pass 2 over one run: the identifier scan of every resource, and the references of the
/// current ones.
fn scan_run(
    dest: &Destination,
    run: &RunEntry<'_>,
    refs: &References<'_>,
    scanner: &Scanner<'_>,
    checks: &mut Checks,
    scanned: &mut Scanned,
) -> Result<()> {
    for resource_type in run_types(run.files) {
        let (content, from_ndjson) = content_files(run.files, resource_type);
        for object in content {
            let Some(bytes) = dest.get(&object.key)? else {
                continue;
            };
            let mut batch: Vec<(u64, Vec<u8>)> = Vec::with_capacity(BATCH_LINES);
            let mut batch_bytes = 0usize;
            let mut flush = |batch: &mut Vec<(u64, Vec<u8>)>, checks: &mut Checks| {
                let results: Vec<Scan> = batch
                    .par_iter()
                    .filter_map(|(line, text)| {
                        scan_one(*line, text, resource_type, run, refs, scanner)
                    })
                    .collect();
                for scan in results {
                    record(checks, &object.key, resource_type, scan, scanned);
                }
                scanned.bytes += batch.iter().map(|(_, t)| t.len() as u64).sum::<u64>();
                scanned.resources += batch.len() as u64;
                batch.clear();
            };
            let mut push = |line: u64, text: &[u8], checks: &mut Checks| {
                batch_bytes += text.len();
                batch.push((line, text.to_vec()));
                if batch.len() >= BATCH_LINES || batch_bytes >= BATCH_BYTES {
                    flush(&mut batch, checks);
                    batch_bytes = 0;
                }
            };
            // Decoding errors were recorded by pass 1; what decodes is scanned.
            if from_ndjson {
                let _ = ndjson_lines(&bytes, |line, text| push(line, text, checks));
            } else {
                let _ = parquet_resources(bytes, |row, text| push(row, text, checks));
            }
            flush(&mut batch, checks);
        }
    }
    for objects in run.files.views.values() {
        for object in objects {
            let Some(bytes) = dest.get(&object.key)? else {
                continue;
            };
            // Each column's rule and pointer, decided once per file.
            let mut columns: Vec<(String, CellRule, String)> = Vec::new();
            // Decoding errors were recorded by pass 1; what decodes is scanned.
            let _ = parquet_text_cells(bytes, |row, column, value| {
                scanned.view_cells += 1;
                let at = columns
                    .iter()
                    .position(|(name, ..)| name == column)
                    .unwrap_or_else(|| {
                        columns.push((column.to_owned(), cell_rule(column), format!("/{column}")));
                        columns.len() - 1
                    });
                let (_, rule, pointer) = &columns[at];
                let hits = scanner.scan_cell(*rule, pointer, value);
                if !hits.is_empty() {
                    let scan = Scan {
                        line: row,
                        hits,
                        unresolved: Vec::new(),
                        references: 0,
                        excluded: 0,
                    };
                    record(checks, &object.key, "", scan, scanned);
                }
            });
        }
    }
    Ok(())
}

fn scan_one(
    line: u64,
    text: &[u8],
    resource_type: &str,
    run: &RunEntry<'_>,
    refs: &References<'_>,
    scanner: &Scanner<'_>,
) -> Option<Scan> {
    let resource: Value = serde_json::from_slice(text).ok()?;
    let (hits, found) = scanner.scan(&resource);
    let current = run.index.is_some()
        && resource
            .get("id")
            .and_then(Value::as_str)
            .and_then(|id| refs.ids.current_run(resource_type, id))
            == run.index;
    let mut unresolved = Vec::new();
    let mut references = 0;
    let mut excluded = 0;
    if current {
        for r in found {
            references += 1;
            if refs.ids.contains(r.target_type, &r.id) {
                continue;
            }
            if refs.compartment_only
                && fhir::compartment::patient_compartment_params(r.target_type).is_none()
            {
                excluded += 1;
            } else {
                unresolved.push((r.target_type, r.pointer));
            }
        }
    }
    Some(Scan {
        line,
        hits,
        unresolved,
        references,
        excluded,
    })
}

fn record(checks: &mut Checks, key: &str, resource_type: &str, scan: Scan, scanned: &mut Scanned) {
    scanned.references += scan.references;
    scanned.excluded += scan.excluded;
    for hit in scan.hits {
        let check = if hit.kind == "source-value" {
            &mut checks.source_values
        } else {
            &mut checks.identifiers
        };
        check.add(
            hit.kind,
            Finding {
                kind: hit.kind.to_owned(),
                file: key.to_owned(),
                line: Some(scan.line),
                path: Some(hit.pointer),
                detail: hit.detail,
            },
        );
    }
    for (target, pointer) in scan.unresolved {
        checks.references.add(
            &format!("{resource_type} → {target}"),
            Finding {
                kind: "unresolved-reference".to_owned(),
                file: key.to_owned(),
                line: Some(scan.line),
                path: Some(pointer),
                detail: format!("no current {target} has the referenced id"),
            },
        );
    }
}
