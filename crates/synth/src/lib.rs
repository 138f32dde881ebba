//! Deterministic generator of realistic synthetic FHIR R4 patients, for Haven's tests and
//! benchmarks (`haven synth`).
//!
//! One call, [`generate`], writes a data set shaped like a Bulk Data export: one NDJSON file per
//! resource type with `Type/id` references (plain or gzip), or one transaction Bundle per
//! patient with `urn:uuid:` references. Patients carry PHI in every place real exports do
//! (names, identifiers, telecom, geolocated addresses, extensions, narrative, clinical notes,
//! `Reference.display`), and COVID-19 arrives in waves whose timing differs by ZIP3 area; the
//! true weekly curve is written to [`TRUTH_FILE`] beside the data.
//!
//! The same options give byte-identical output: every patient draws from its own random stream
//! keyed by (seed, patient index), patients are generated in parallel (rayon) and written in
//! order through buffered writers, so memory stays flat. With [`SynthOptions::update_of`], a
//! second batch modifies, adds and deletes resources relative to an earlier output, as an
//! incremental (`_since`) export would deliver them.
//!
//! ```no_run
//! let opts = synth::SynthOptions::new(1_000, 42, "out/synth-1k");
//! let report = synth::generate(&opts, &|done| eprintln!("{done} patients")).unwrap();
//! println!("{} resources", report.resources);
//! ```

mod json;
mod output;
mod patient;
mod rng;
mod time;
mod truth;
mod update;
mod vocab;
mod world;

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use rayon::prelude::*;
use serde_json::{Value, json};

use crate::json::{J, jw};
use crate::output::{FileEntry, Segment, TypeFiles};
use crate::patient::{Record, Res, Ty};
use crate::rng::IdGen;
use crate::world::{RefStyle, World};

pub use crate::truth::{TRUTH_FILE, TruthRow, iso_week_of, read_truth};

/// The Bulk-Data-style manifest written in the output folder.
pub const MANIFEST_FILE: &str = "manifest.json";

/// The key, inside the manifest's `extension`, of what an update batch needs to replay.
const MANIFEST_EXTENSION: &str = "https://haven.invalid/fhir/StructureDefinition/synth";

/// Patients generated per parallel chunk (bounds memory: about 100 KB of JSON each).
const CHUNK: u64 = 256;

/// Output layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `Type.000.ndjson` per resource type, `Type/id` references.
    Ndjson,
    /// As [`Format::Ndjson`], gzip-compressed (`Type.000.ndjson.gz`). Each file is a series of
    /// gzip members (compressed in parallel), which `gzip -d`, Python's `gzip` and flate2's
    /// `MultiGzDecoder` read as one stream; flate2's single-member `GzDecoder` stops after the
    /// first.
    NdjsonGz,
    /// One transaction Bundle per patient (`<patient id>.json`) with `urn:uuid:` references,
    /// plus `0-shared.json` with the Organizations, Locations, Practitioners and
    /// PractitionerRoles, which patients reference conditionally (`Practitioner?identifier=…`).
    Bundles,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Ndjson => "ndjson",
            Format::NdjsonGz => "ndjson.gz",
            Format::Bundles => "bundles",
        })
    }
}

impl FromStr for Format {
    type Err = Error;

    /// Parses `ndjson`, `ndjson.gz` or `bundles`.
    fn from_str(s: &str) -> Result<Format> {
        match s {
            "ndjson" => Ok(Format::Ndjson),
            "ndjson.gz" => Ok(Format::NdjsonGz),
            "bundles" => Ok(Format::Bundles),
            _ => Err(Error::Options(format!(
                "unknown format `{s}` (expected ndjson, ndjson.gz or bundles)"
            ))),
        }
    }
}

/// What to generate and where.
#[derive(Debug, Clone)]
pub struct SynthOptions {
    /// Patients to generate; with `update_of`, the number of *new* patients in the batch.
    pub patients: u64,
    /// The seed. With `update_of`, the earlier output's seed is used and this is ignored.
    pub seed: u64,
    /// Output layout.
    pub format: Format,
    /// The output folder (created if missing; files of the same names are replaced).
    pub out_dir: PathBuf,
    /// An earlier output folder to write an update batch against (NDJSON formats only).
    pub update_of: Option<PathBuf>,
    /// Split NDJSON files every this many lines (`Type.000.ndjson`, `Type.001.ndjson`, …);
    /// 0 keeps one file per type. Not used for Bundles.
    pub lines_per_file: u64,
}

impl SynthOptions {
    /// NDJSON output of `patients` patients with `seed` into `out_dir`, one file per type.
    pub fn new(patients: u64, seed: u64, out_dir: impl Into<PathBuf>) -> SynthOptions {
        SynthOptions {
            patients,
            seed,
            format: Format::Ndjson,
            out_dir: out_dir.into(),
            update_of: None,
            lines_per_file: 0,
        }
    }
}

/// What a run wrote.
#[derive(Debug, Clone, Default)]
pub struct SynthReport {
    /// Batch number: 0 for a first export, then 1, 2, … for updates.
    pub batch: u32,
    /// The batch's `transactionTime` (also in the manifest).
    pub transaction_time: String,
    /// Patients new in this batch.
    pub patients: u64,
    /// Resources written (new and modified), shared ones and the Group included.
    pub resources: u64,
    /// Resources written per type.
    pub by_type: BTreeMap<String, u64>,
    /// Resources listed as deleted.
    pub deleted: u64,
    /// Uncompressed JSON bytes written.
    pub bytes: u64,
    /// Detected SARS-CoV-2 PCR results in the data set as of this batch (the truth curve's total).
    pub covid_cases: u64,
}

/// Generation failures. Messages name files, never patient data.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing a file failed.
    #[error("cannot access {path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file written by an earlier run (manifest, truth) is not as expected.
    #[error("{path}: {message}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The options cannot be honoured.
    #[error("invalid options: {0}")]
    Options(String),
}

/// Results of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// One batch of a data set's lineage.
#[derive(Debug, Clone, Copy)]
struct BatchInfo {
    /// Patients in the data set after this batch (indices `0..patients`).
    patients: u64,
}

/// The data set's lineage: seed, pool size and batches, the last being the one to write.
#[derive(Debug, Clone)]
struct Lineage {
    seed: u64,
    organizations: usize,
    batches: Vec<BatchInfo>,
}

impl Lineage {
    fn batch(&self) -> u32 {
        (self.batches.len() - 1) as u32
    }

    fn total(&self) -> u64 {
        self.batches.last().map_or(0, |b| b.patients)
    }

    /// The batch in which patient `index` first appeared.
    fn born(&self, index: u64) -> u32 {
        self.batches
            .iter()
            .position(|b| index < b.patients)
            .unwrap_or(0) as u32
    }

    fn read(dir: &Path, new_patients: u64) -> Result<Lineage> {
        let path = dir.join(MANIFEST_FILE);
        let bad = |message: &str| Error::Format {
            path: path.clone(),
            message: message.to_string(),
        };
        let text = std::fs::read(&path).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
        let manifest: Value =
            serde_json::from_slice(&text).map_err(|_| bad("not a JSON manifest"))?;
        let ext = &manifest["extension"][MANIFEST_EXTENSION];
        let seed = ext["seed"].as_u64().ok_or_else(|| bad("no synth seed"))?;
        let organizations = ext["organizations"]
            .as_u64()
            .ok_or_else(|| bad("no synth organization count"))?
            as usize;
        let mut batches: Vec<BatchInfo> = ext["batches"]
            .as_array()
            .ok_or_else(|| bad("no synth batches"))?
            .iter()
            .map(|b| {
                b["patients"]
                    .as_u64()
                    .map(|patients| BatchInfo { patients })
            })
            .collect::<Option<_>>()
            .ok_or_else(|| bad("malformed synth batches"))?;
        let last = batches
            .last()
            .ok_or_else(|| bad("no synth batches"))?
            .patients;
        batches.push(BatchInfo {
            patients: last + new_patients,
        });
        Ok(Lineage {
            seed,
            organizations,
            batches,
        })
    }
}

/// One patient's serialized output.
struct Out {
    /// NDJSON lines per type (index = [`Ty::index`]), then the `deleted` Bundle line last.
    lines: Vec<Vec<u8>>,
    counts: Vec<u64>,
    /// A Bundle file (Bundles format): file name and bytes.
    bundle: Option<(String, Vec<u8>)>,
    curve: truth::Curve,
    member: Option<String>,
    new_patient: bool,
}

const DELETED_SLOT: usize = Ty::ALL.len();

fn ndjson_line(buf: &mut Vec<u8>, value: &Value) {
    serde_json::to_writer(&mut *buf, value).expect("writing JSON to memory cannot fail");
    buf.push(b'\n');
}

fn bundle_bytes(resources: &[Res]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(resources.len() * 1500);
    buf.extend_from_slice(br#"{"resourceType":"Bundle","type":"transaction","entry":["#);
    for (i, r) in resources.iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        write!(buf, r#"{{"fullUrl":"urn:uuid:{}","resource":"#, r.id).expect("in memory");
        buf.extend_from_slice(r.json.as_bytes());
        write!(
            buf,
            r#","request":{{"method":"POST","url":"{}"}}}}"#,
            r.ty.name()
        )
        .expect("in memory");
    }
    buf.extend_from_slice(b"]}");
    buf
}

fn shared_bundle_bytes(values: &[Value]) -> Vec<u8> {
    let entries: Vec<Value> = values
        .iter()
        .map(|v| {
            let ty = v["resourceType"].as_str().unwrap_or_default();
            let id = v["id"].as_str().unwrap_or_default();
            let mut request = json!({"method": "POST", "url": ty});
            if let Some(ident) = v["identifier"][0].as_object() {
                let sys = ident["system"].as_str().unwrap_or_default();
                let val = ident["value"].as_str().unwrap_or_default();
                request["ifNoneExist"] = format!("identifier={sys}|{val}").into();
            }
            json!({"fullUrl": format!("urn:uuid:{id}"), "resource": v, "request": request})
        })
        .collect();
    serde_json::to_vec(&json!({"resourceType": "Bundle", "type": "transaction", "entry": entries}))
        .expect("in memory")
}

/// Generates (or replays and updates) patient `index` and serializes what this batch writes.
fn produce(world: &World, lineage: &Lineage, format: Format, index: u64) -> Out {
    let batch = lineage.batch();
    let born = lineage.born(index);
    let mut record: Record = patient::generate(world, index, born);
    let new_patient = born == batch;
    let mut deleted = Vec::new();
    let changed = if new_patient {
        None
    } else {
        for b in born + 1..batch {
            update::apply(world, &mut record, b);
        }
        let delta = update::apply(world, &mut record, batch);
        deleted = delta.deleted;
        Some(delta.changed)
    };
    let written: &[Res] = changed.as_deref().unwrap_or(&record.resources);

    let mut lines = vec![Vec::new(); DELETED_SLOT + 1];
    let mut counts = vec![0; DELETED_SLOT + 1];
    for r in written {
        counts[r.ty.index()] += 1;
    }
    let bundle = if format == Format::Bundles {
        Some((format!("{}.json", record.person.id), bundle_bytes(written)))
    } else {
        for r in written {
            let buf = &mut lines[r.ty.index()];
            buf.extend_from_slice(r.json.as_bytes());
            buf.push(b'\n');
        }
        None
    };
    if !deleted.is_empty() {
        let mut ids = IdGen::new(&[world.seed, index, u64::from(batch), 0xDE1]);
        let entries: Vec<Value> = deleted
            .iter()
            .map(|(ty, id)| json!({"request": {"method": "DELETE", "url": format!("{}/{id}", ty.name())}}))
            .collect();
        counts[DELETED_SLOT] = entries.len() as u64;
        let b = json!({"resourceType": "Bundle", "id": ids.next_id(), "type": "transaction", "entry": entries});
        ndjson_line(&mut lines[DELETED_SLOT], &b);
    }
    let mut curve = truth::Curve::new();
    truth::count(&record, &mut curve);
    Out {
        lines,
        counts,
        bundle,
        curve,
        member: (!record.deleted).then(|| record.person.id.clone()),
        new_patient,
    }
}

/// A chunk of consecutive patients, serialized and cut into file segments.
struct Chunk {
    /// Segments per slot (resource types, then `deleted/`).
    segments: Vec<Vec<Segment>>,
    counts: Vec<u64>,
    bundles: Vec<(String, Vec<u8>)>,
    curve: truth::Curve,
    members: Vec<String>,
    new_patients: u64,
    /// Patients in the chunk.
    patients: u64,
}

/// Generates patients `range` in parallel and prepares their segments; `start_lines` are the
/// lines already written per slot (where file splits fall).
fn produce_chunk(
    world: &World,
    lineage: &Lineage,
    opts: &SynthOptions,
    range: std::ops::Range<u64>,
    start_lines: &[u64],
) -> Chunk {
    let patients = range.end - range.start;
    let outs: Vec<Out> = range
        .into_par_iter()
        .map(|i| produce(world, lineage, opts.format, i))
        .collect();
    let counts: Vec<u64> = (0..=DELETED_SLOT)
        .map(|slot| outs.iter().map(|o| o.counts[slot]).sum())
        .collect();
    let gz = opts.format == Format::NdjsonGz;
    let segments = if opts.format == Format::Bundles {
        Vec::new()
    } else {
        (0..=DELETED_SLOT)
            .into_par_iter()
            .map(|slot| {
                let size = outs.iter().map(|o| o.lines[slot].len()).sum();
                let mut buf = Vec::with_capacity(size);
                for o in &outs {
                    buf.extend_from_slice(&o.lines[slot]);
                }
                output::segments(
                    &buf,
                    counts[slot],
                    start_lines[slot],
                    opts.lines_per_file,
                    gz,
                )
            })
            .collect()
    };
    let mut chunk = Chunk {
        segments,
        counts,
        bundles: Vec::new(),
        curve: truth::Curve::new(),
        members: Vec::new(),
        new_patients: 0,
        patients,
    };
    for o in outs {
        chunk.bundles.extend(o.bundle);
        for (k, n) in o.curve {
            *chunk.curve.entry(k).or_default() += n;
        }
        chunk.members.extend(o.member);
        chunk.new_patients += u64::from(o.new_patient);
    }
    chunk
}

/// The open output of a run.
struct Writers {
    dir: PathBuf,
    gz: bool,
    limit: u64,
    files: Vec<TypeFiles>,
    /// Lines handed to each slot so far (including chunks not yet written).
    lines: Vec<u64>,
    bundles: usize,
    curve: truth::Curve,
    members: Vec<String>,
    report: SynthReport,
}

impl Writers {
    fn new(opts: &SynthOptions) -> Writers {
        let gz = opts.format == Format::NdjsonGz;
        let mut files: Vec<TypeFiles> = Ty::ALL
            .iter()
            .map(|t| TypeFiles::new(&opts.out_dir, "", t.name(), gz))
            .collect();
        files.push(TypeFiles::new(&opts.out_dir, "deleted/", "Bundle", gz));
        Writers {
            dir: opts.out_dir.clone(),
            gz,
            limit: opts.lines_per_file,
            files,
            lines: vec![0; DELETED_SLOT + 1],
            bundles: 0,
            curve: truth::Curve::new(),
            members: Vec::new(),
            report: SynthReport::default(),
        }
    }

    /// Writes a chunk: its segments (one thread per file) or its Bundle files.
    fn write(&mut self, chunk: Chunk) -> Result<()> {
        let dir = &self.dir;
        chunk
            .bundles
            .par_iter()
            .try_for_each(|(name, bytes)| output::write_atomic(&dir.join(name), bytes))?;
        self.files
            .par_iter_mut()
            .zip(chunk.segments.par_iter())
            .try_for_each(|(f, segs)| segs.iter().try_for_each(|s| f.append(s)))?;
        for (slot, n) in chunk.counts.iter().enumerate() {
            if slot == DELETED_SLOT {
                self.report.deleted += n;
            } else if *n > 0 {
                *self
                    .report
                    .by_type
                    .entry(Ty::ALL[slot].name().to_string())
                    .or_default() += n;
            }
        }
        for (_, bytes) in &chunk.bundles {
            self.report.bytes += bytes.len() as u64;
        }
        self.bundles += chunk.bundles.len();
        for (k, n) in chunk.curve {
            *self.curve.entry(k).or_default() += n;
        }
        self.members.extend(chunk.members);
        self.report.patients += chunk.new_patients;
        Ok(())
    }

    /// Writes single resources (the shared ones) straight to their files.
    fn write_values(&mut self, values: &[Value]) -> Result<()> {
        for v in values {
            if let Some(ty) = v["resourceType"].as_str().and_then(Ty::from_name) {
                let mut line = Vec::new();
                ndjson_line(&mut line, v);
                self.write_line(ty, &line)?;
            }
        }
        Ok(())
    }

    /// Writes one NDJSON line (with its newline) of type `ty`.
    fn write_line(&mut self, ty: Ty, line: &[u8]) -> Result<()> {
        let slot = ty.index();
        for seg in output::segments(line, 1, self.lines[slot], self.limit, self.gz) {
            self.files[slot].append(&seg)?;
        }
        self.lines[slot] += 1;
        *self
            .report
            .by_type
            .entry(ty.name().to_string())
            .or_default() += 1;
        Ok(())
    }
}

/// The Group of all current patients (for Group-level `$export`), as one NDJSON line; its
/// version is the batch number + 1.
fn group(world: &World, members: &[String], batch: u32) -> Vec<u8> {
    let id = IdGen::new(&[world.seed, 0x6E0]).next_id();
    let last_updated = time::instant(world::transaction_time(batch) - 1);
    let mut j = J::with_capacity(64 + members.len() * 64);
    j.open_obj();
    jw!(@obj &mut j,
        "resourceType": "Group",
        "id": id,
        "meta": {"versionId": (batch + 1).to_string(), "lastUpdated": last_updated},
        "type": "person",
        "actual": true,
        "name": "All synthetic patients",
        "quantity": members.len()
    );
    j.key("member");
    j.open_arr();
    for m in members {
        jw!(&mut j, {"entity": {"reference": world.local_ref("Patient", m)}});
    }
    j.close_arr();
    j.close_obj();
    let mut line = j.take().into_bytes();
    line.push(b'\n');
    line
}

fn manifest(opts: &SynthOptions, lineage: &Lineage, files: &[FileEntry], bundles: usize) -> Value {
    let batch = lineage.batch();
    let (output, deleted): (Vec<&FileEntry>, Vec<&FileEntry>) =
        files.iter().partition(|f| !f.rel.starts_with("deleted/"));
    let entry = |f: &&FileEntry| json!({"type": f.ty, "url": f.rel, "count": f.count});
    let mut request = format!(
        "haven synth --patients {} --seed {} --format {}",
        opts.patients, lineage.seed, opts.format
    );
    if let Some(prev) = &opts.update_of {
        request.push_str(&format!(" --update-of {}", prev.display()));
    }
    let batches: Vec<Value> = lineage
        .batches
        .iter()
        .enumerate()
        .map(|(b, info)| {
            json!({
                "transactionTime": time::instant(world::transaction_time(b as u32)),
                "patients": info.patients
            })
        })
        .collect();
    let mut ext = json!({
        "seed": lineage.seed,
        "organizations": lineage.organizations,
        "format": opts.format.to_string(),
        "batches": batches
    });
    if batch > 0 {
        ext["since"] = time::instant(world::transaction_time(batch - 1)).into();
    }
    if opts.format == Format::Bundles {
        ext["bundles"] = bundles.into();
    }
    json!({
        "transactionTime": time::instant(world::transaction_time(batch)),
        "request": request,
        "requiresAccessToken": false,
        "output": output.iter().map(entry).collect::<Vec<_>>(),
        "deleted": deleted.iter().map(entry).collect::<Vec<_>>(),
        "error": [],
        "extension": {MANIFEST_EXTENSION: ext}
    })
}

/// Generates a data set (or, with [`SynthOptions::update_of`], the next batch of one) into
/// `opts.out_dir`, calling `progress` with the number of patients done after each chunk.
///
/// Writes the resource files (see [`Format`]), `deleted/Bundle.000.ndjson` for updates,
/// [`TRUTH_FILE`] and [`MANIFEST_FILE`]. Runs on the current rayon thread pool.
pub fn generate(opts: &SynthOptions, progress: &dyn Fn(u64)) -> Result<SynthReport> {
    let lineage = match &opts.update_of {
        None => Lineage {
            seed: opts.seed,
            organizations: world::organizations_for(opts.patients),
            batches: vec![BatchInfo {
                patients: opts.patients,
            }],
        },
        Some(prev) => {
            if opts.format == Format::Bundles {
                return Err(Error::Options(
                    "update batches are written as NDJSON (ndjson or ndjson.gz)".into(),
                ));
            }
            if prev == &opts.out_dir {
                return Err(Error::Options(
                    "the update must go to a different folder than the output it updates".into(),
                ));
            }
            Lineage::read(prev, opts.patients)?
        }
    };
    let style = if opts.format == Format::Bundles {
        RefStyle::Bundle
    } else {
        RefStyle::Relative
    };
    let world = World::new(lineage.seed, lineage.organizations, style);
    let batch = lineage.batch();
    output::create_dir(&opts.out_dir)?;
    let mut w = Writers::new(opts);

    if batch == 0 {
        let shared = world.shared_resources(&time::instant(world::base_transaction_time() - 1));
        if opts.format == Format::Bundles {
            let bytes = shared_bundle_bytes(&shared);
            w.report.bytes += bytes.len() as u64;
            output::write_atomic(&opts.out_dir.join("0-shared.json"), &bytes)?;
            for v in &shared {
                let ty = v["resourceType"].as_str().unwrap_or_default().to_string();
                *w.report.by_type.entry(ty).or_default() += 1;
            }
        } else {
            w.write_values(&shared)?;
        }
    }

    let total = lineage.total();
    let mut pending: Option<Chunk> = None;
    let mut start = 0;
    let mut done = 0;
    loop {
        let end = (start + CHUNK).min(total);
        let starts = w.lines.clone();
        let (written, next) = rayon::join(
            || match pending.take() {
                Some(chunk) => {
                    let n = chunk.patients;
                    w.write(chunk).map(|()| n)
                }
                None => Ok(0),
            },
            || (start < end).then(|| produce_chunk(&world, &lineage, opts, start..end, &starts)),
        );
        let n = written?;
        if n > 0 {
            done += n;
            progress(done);
        }
        match next {
            Some(chunk) => {
                for (l, c) in w.lines.iter_mut().zip(&chunk.counts) {
                    *l += c;
                }
                pending = Some(chunk);
            }
            None => break,
        }
        start = end;
    }

    if opts.format != Format::Bundles {
        let g = group(&world, &w.members, batch);
        w.write_line(Ty::Group, &g)?;
    }
    let bundles = w.bundles;
    let mut report = w.report;
    let mut entries = Vec::new();
    for f in w.files {
        report.bytes += f.bytes();
        entries.extend(f.finish()?);
    }
    report.resources = report.by_type.values().sum();
    report.covid_cases = w.curve.values().sum();
    report.batch = batch;
    report.transaction_time = time::instant(world::transaction_time(batch));

    output::write_atomic(
        &opts.out_dir.join(TRUTH_FILE),
        truth::to_csv(&w.curve).as_bytes(),
    )?;
    let m = manifest(opts, &lineage, &entries, bundles);
    let mut text = serde_json::to_vec_pretty(&m).expect("in memory");
    text.push(b'\n');
    output::write_atomic(&opts.out_dir.join(MANIFEST_FILE), &text)?;
    Ok(report)
}
