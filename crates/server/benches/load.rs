//! Load throughput of the Synthea COVID-19 Bundles (`data/synthea-covid-120`, 92,114
//! resources) into SQLite and PostgreSQL, as `haven load` runs it, against a baseline measured
//! in the same run: decompressing and parsing the same Bundles, nothing else.
//!
//! `cargo bench -p server --bench load` (PostgreSQL from `store::testing`; set
//! `HAVEN_SKIP_POSTGRES=1` to skip it).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rayon::prelude::*;
use server::load::{LoadOptions, input_files, load};

fn files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/synthea-covid-120");
    input_files(&[dir]).expect("the Synthea data")
}

/// Decompresses and parses every Bundle (in parallel, as the loader does); returns the
/// number of resources.
fn parse_only(files: &[PathBuf]) -> u64 {
    files
        .par_iter()
        .map(|path| {
            let mut bytes = Vec::new();
            bzip2::read::MultiBzDecoder::new(std::fs::File::open(path).expect("a file"))
                .read_to_end(&mut bytes)
                .expect("bzip2");
            let bundle: serde_json::Value = serde_json::from_slice(&bytes).expect("JSON");
            bundle["entry"].as_array().map_or(0, |e| e.len() as u64)
        })
        .sum()
}

fn timed<T>(run: impl FnOnce() -> T) -> (T, f64) {
    let started = Instant::now();
    let value = run();
    (value, started.elapsed().as_secs_f64())
}

fn main() {
    let files = files();
    let (resources, baseline) = timed(|| parse_only(&files));
    let baseline_rate = resources as f64 / baseline;
    println!(
        "{} files, {resources} resources; baseline (decompress + parse): {baseline:.2} s, {baseline_rate:.0} resources/s",
        files.len()
    );
    let options = LoadOptions::default();
    let report = |name: &str, loaded: u64, seconds: f64| {
        assert_eq!(loaded, resources, "{name}: every resource is loaded");
        let rate = loaded as f64 / seconds;
        println!(
            "load into {name:<10}: {seconds:.2} s, {rate:.0} resources/s, {:.3}x the parse baseline",
            rate / baseline_rate
        );
    };

    let dir = tempfile::tempdir().expect("a temporary folder");
    let sqlite = store::open(&dir.path().join("haven.db").display().to_string()).expect("SQLite");
    let (summary, seconds) =
        timed(|| load(sqlite.as_ref(), &files, &options, &mut |_| {}).expect("the load"));
    report("SQLite", summary.resources, seconds);

    match store::testing::database() {
        Some(db) => {
            let postgres = store::open(db.url()).expect("PostgreSQL");
            let (summary, seconds) =
                timed(|| load(postgres.as_ref(), &files, &options, &mut |_| {}).expect("the load"));
            report("PostgreSQL", summary.resources, seconds);
        }
        None => println!("PostgreSQL skipped (HAVEN_SKIP_POSTGRES=1)"),
    }
}
