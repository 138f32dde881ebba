//! Write and export throughput of the store on SQLite and on PostgreSQL.
//!
//! Input: the entries of the Synthea COVID-19 transaction Bundles in `data/synthea-covid-120`
//! (92,114 resources), converted in memory to compact NDJSON with their `urn:uuid:`
//! references rewritten to `Type/id` (what the server does before writing). Measured:
//! - write: update-as-create in transactions of 1,000 resources (search indexes and
//!   compartments included; JSON parsing before each transaction is not timed);
//! - export: every live resource of every type streamed in pages of 1,000 as of a transaction
//!   time (system export), then only resources in a Patient compartment (`Patient/$export`).
//!
//! PostgreSQL runs on a throwaway server (see `store::testing`; `HAVEN_SKIP_POSTGRES=1` skips
//! it). Run with `cargo bench -p store --bench store`.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::Read;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;
use store::{ExportQuery, PatientScope, SqlStore, Store, Write};

const BATCH: usize = 1000;
const PAGE: usize = 1000;

/// Synthea's resources as compact JSON lines, hospital and practitioner Bundles first.
fn synthea_lines() -> Vec<String> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/synthea-covid-120");
    let mut bundles: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|error| panic!("{}: {error}", dir.display()))
        .map(|entry| entry.expect("a readable folder entry").path())
        .filter(|path| path.to_string_lossy().ends_with(".json.bz2"))
        .collect();
    // `0-hospitalInformation…` and `0-practitionerInformation…` sort first.
    bundles.sort();
    let mut lines = Vec::new();
    for path in bundles {
        let mut text = String::new();
        bzip2::read::BzDecoder::new(File::open(&path).expect("a readable Bundle"))
            .read_to_string(&mut text)
            .expect("a bzip2 Bundle");
        let bundle: Value = serde_json::from_str(&text).expect("a JSON Bundle");
        let entries = bundle["entry"].as_array().expect("Bundle entries");
        let targets: HashMap<String, String> = entries
            .iter()
            .filter_map(|entry| {
                let resource = &entry["resource"];
                Some((
                    entry["fullUrl"].as_str()?.to_owned(),
                    format!(
                        "{}/{}",
                        resource["resourceType"].as_str()?,
                        resource["id"].as_str()?
                    ),
                ))
            })
            .collect();
        for entry in entries {
            let mut resource = entry["resource"].clone();
            rewrite_references(&mut resource, &targets);
            lines.push(serde_json::to_string(&resource).expect("a resource serializes"));
        }
    }
    lines
}

/// Replaces `reference` values that are keys of `targets`.
fn rewrite_references(value: &mut Value, targets: &HashMap<String, String>) {
    match value {
        Value::Object(object) => {
            for (key, child) in object.iter_mut() {
                match child {
                    Value::String(text) if key == "reference" => {
                        if let Some(target) = targets.get(text.as_str()) {
                            *text = target.clone();
                        }
                    }
                    _ => rewrite_references(child, targets),
                }
            }
        }
        Value::Array(items) => items
            .iter_mut()
            .for_each(|item| rewrite_references(item, targets)),
        _ => {}
    }
}

fn per_second(count: usize, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64()
}

/// Writes every line in transactions of [`BATCH`]; the time spent in the store.
fn load(store: &dyn Store, lines: &[String]) -> Duration {
    let mut elapsed = Duration::ZERO;
    for chunk in lines.chunks(BATCH) {
        let writes = chunk
            .iter()
            .map(|line| Write::Update {
                resource: serde_json::from_str(line).expect("a JSON resource"),
                if_match: None,
            })
            .collect();
        let started = Instant::now();
        store.transaction(writes).expect("the transaction succeeds");
        elapsed += started.elapsed();
    }
    elapsed
}

/// Streams every type's resources as of a new transaction time; resources, bytes, time.
fn export(store: &dyn Store, patients: &PatientScope) -> (usize, usize, Duration) {
    let at = store.transaction_time().expect("a transaction time");
    let types: Vec<String> = store
        .counts()
        .expect("counts")
        .into_iter()
        .map(|(resource_type, _)| resource_type)
        .collect();
    let started = Instant::now();
    let (mut count, mut bytes) = (0, 0);
    for resource_type in types {
        let query = ExportQuery {
            resource_type,
            at,
            since: None,
            patients: patients.clone(),
        };
        for resource in store::export_resources(store, query, 0, PAGE) {
            count += 1;
            bytes += resource.expect("an exported resource").json.len() + 1;
        }
    }
    (count, bytes, started.elapsed())
}

fn measure(engine: &str, store: &dyn Store, lines: &[String]) {
    let elapsed = load(store, lines);
    println!(
        "{engine:<10} write   {:>7} resources in {:>6.1} s: {:>7.0} resources/s (transactions of {BATCH})",
        lines.len(),
        elapsed.as_secs_f64(),
        per_second(lines.len(), elapsed)
    );
    let total: u64 = store.counts().expect("counts").iter().map(|(_, n)| n).sum();
    assert_eq!(total as usize, lines.len(), "every resource is stored once");
    for (label, scope) in [
        ("system", PatientScope::All),
        ("patient", PatientScope::AnyPatient),
    ] {
        let (count, bytes, elapsed) = export(store, &scope);
        println!(
            "{engine:<10} export  {count:>7} resources in {:>6.1} s: {:>7.0} resources/s, {:>6.1} MB/s ({label} export, pages of {PAGE})",
            elapsed.as_secs_f64(),
            per_second(count, elapsed),
            bytes as f64 / 1e6 / elapsed.as_secs_f64()
        );
    }
}

fn main() {
    let lines = synthea_lines();
    let megabytes = lines.iter().map(|l| l.len() + 1).sum::<usize>() as f64 / 1e6;
    println!(
        "input: {} Synthea resources, {megabytes:.1} MB of NDJSON",
        lines.len()
    );

    let dir = tempfile::tempdir().expect("a temporary folder");
    let path = dir.path().join("haven.db");
    let sqlite = SqlStore::open_sqlite(&path).expect("the SQLite store opens");
    measure("sqlite", &sqlite, &lines);
    let size: u64 = fs::read_dir(dir.path())
        .expect("the store folder")
        .map(|entry| entry.expect("an entry").metadata().expect("metadata").len())
        .sum();
    println!(
        "sqlite     file size {:.1} MB (with WAL)",
        size as f64 / 1e6
    );

    #[cfg(feature = "postgres")]
    match store::testing::database() {
        Some(database) => {
            let postgres =
                SqlStore::connect_postgres(database.url()).expect("the PostgreSQL store connects");
            measure("postgresql", &postgres, &lines);
        }
        None => println!("postgresql skipped (HAVEN_SKIP_POSTGRES=1)"),
    }
}
