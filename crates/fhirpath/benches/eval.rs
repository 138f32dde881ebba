//! How fast FHIRPath selects the anonymizer's paths, measured against the cost of parsing the
//! same resources' JSON (the work every de-identification run does anyway).
//!
//! Loads the Synthea COVID-19 transaction Bundles in `data/synthea-covid-120`, takes their entry
//! resources as compact JSON, and measures on one thread: (a) parsing every resource's text
//! into `serde_json::Value`; (b) evaluating each expression on every resource. Prints a table.
//!
//! `cargo bench -p fhirpath --bench eval`. By default the first [`DEFAULT_BUNDLES`] Bundles (in
//! name order) are used; `HAVEN_BENCH_BUNDLES=all` (or a number) changes that. Run without
//! `--bench` (as `cargo test --all-targets` does) it only checks, on one Bundle and one pass,
//! that everything runs.

use std::hint::black_box;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fhirpath::Expression;

/// How many Bundles are loaded unless `HAVEN_BENCH_BUNDLES` says otherwise.
const DEFAULT_BUNDLES: usize = 30;

/// Each measurement repeats whole passes over the resources until at least this long has passed.
const MIN_MEASURE: Duration = Duration::from_millis(500);

/// The most passes one measurement makes.
const MAX_PASSES: u32 = 50;

/// The anonymizer's kinds of paths that are measured.
const EXPRESSIONS: &[&str] = &[
    "nodesByType('HumanName')",
    "Patient.address.postalCode",
    "Resource.id",
    "Observation.value.ofType(Quantity).value",
    "Observation.code.coding.where(system = 'http://loinc.org').code",
    "descendants().ofType(Reference).reference",
    "Patient.telecom.where(system='phone').value",
];

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/synthea-covid-120");
    let smoke = !std::env::args().any(|a| a == "--bench");
    let limit = match std::env::var("HAVEN_BENCH_BUNDLES").as_deref() {
        _ if smoke => 1,
        Ok("all") => usize::MAX,
        Ok(n) => n.parse().expect("HAVEN_BENCH_BUNDLES is `all` or a number"),
        Err(_) => DEFAULT_BUNDLES,
    };
    let started = Instant::now();
    let files = bundle_files(&dir, limit);
    let texts = resource_texts(&files);
    let bytes: usize = texts.iter().map(String::len).sum();
    println!(
        "loaded {} resources ({:.1} MB of compact JSON) from {} bundles in {:.1} s",
        texts.len(),
        bytes as f64 / 1e6,
        files.len(),
        started.elapsed().as_secs_f64()
    );

    let min_measure = if smoke { Duration::ZERO } else { MIN_MEASURE };
    let parse = measure(min_measure, || {
        for text in &texts {
            let value: serde_json::Value = serde_json::from_str(text).expect("valid JSON");
            black_box(value);
        }
    });
    println!(
        "(a) parse JSON text to serde_json::Value: {:.1} ms per pass, {:.0} MB/s, {:.2} µs per resource",
        parse.as_secs_f64() * 1e3,
        bytes as f64 / 1e6 / parse.as_secs_f64(),
        parse.as_secs_f64() * 1e6 / texts.len() as f64
    );

    let resources: Vec<serde_json::Value> = texts
        .iter()
        .map(|t| serde_json::from_str(t).expect("valid JSON"))
        .collect();
    drop(texts);

    println!();
    println!(
        "{:<66} {:>12} {:>9} {:>9} {:>10}",
        "(b) expression", "evals/s", "µs/eval", "results", "vs parse"
    );
    for source in EXPRESSIONS {
        let expression = Expression::parse(source).expect("benchmark expressions compile");
        let mut found = 0usize;
        let mut errors = 0usize;
        for resource in &resources {
            match expression.evaluate(resource) {
                Ok(items) => found += items.len(),
                Err(_) => errors += 1,
            }
        }
        let pass = measure(min_measure, || {
            for resource in &resources {
                black_box(expression.evaluate(black_box(resource)).ok());
            }
        });
        let per_eval = pass.as_secs_f64() / resources.len() as f64;
        let note = if errors > 0 {
            format!("  ({errors} evaluations failed)")
        } else {
            String::new()
        };
        println!(
            "{:<66} {:>12.0} {:>9.2} {:>9} {:>9.2}x{note}",
            source,
            1.0 / per_eval,
            per_eval * 1e6,
            found,
            pass.as_secs_f64() / parse.as_secs_f64()
        );
    }
    println!();
    if smoke {
        println!("smoke run only: `cargo bench -p fhirpath --bench eval` measures");
    }
    println!(
        "single thread; each figure is the mean of whole passes over all {} resources; total {:.1} s",
        resources.len(),
        started.elapsed().as_secs_f64()
    );
}

/// The Bundle files (`*.json.bz2`) in name order, at most `limit` of them.
fn bundle_files(dir: &Path, limit: usize) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.to_string_lossy().ends_with(".json.bz2"))
        .collect();
    files.sort();
    files.truncate(limit);
    files
}

/// The compact JSON text of every entry resource of the Bundles.
fn resource_texts(files: &[PathBuf]) -> Vec<String> {
    let mut texts = Vec::new();
    for path in files {
        let mut text = String::new();
        bzip2::read::MultiBzDecoder::new(std::fs::File::open(path).expect("open bundle"))
            .read_to_string(&mut text)
            .unwrap_or_else(|e| panic!("cannot decompress {}: {e}", path.display()));
        let bundle: serde_json::Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("cannot parse {}: {e}", path.display()));
        let entries = bundle["entry"].as_array().into_iter().flatten();
        texts.extend(
            entries
                .filter_map(|e| e.get("resource"))
                .map(|r| r.to_string()),
        );
    }
    texts
}

/// The mean time of one call of `pass`, after one warm-up call, over enough calls to fill
/// `min_measure` (at least one, at most [`MAX_PASSES`]).
fn measure(min_measure: Duration, mut pass: impl FnMut()) -> Duration {
    pass();
    let started = Instant::now();
    let mut passes = 0;
    while passes < MAX_PASSES && (passes == 0 || started.elapsed() < min_measure) {
        pass();
        passes += 1;
    }
    started.elapsed() / passes
}
