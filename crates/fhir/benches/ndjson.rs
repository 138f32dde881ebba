//! Throughput of the NDJSON path a de-identification run takes: read batches, parse every line
//! into a `serde_json::Value`, serialize it back and write it in order, on one thread and on all.
//!
//! Input: the Synthea COVID-19 transaction Bundles in `data/synthea-covid-120`, turned into
//! compact NDJSON of their entries' resources (plain, and gzip at level 6), cached in Cargo's
//! temporary folder for benches and read into memory, so no disk I/O is timed. Figures are best
//! of a few runs; MB are 10^6 bytes of uncompressed NDJSON. Run with
//! `cargo bench -p fhir --bench ndjson`.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use fhir::ndjson::{
    Compression, NdjsonError, NdjsonFileWriter, NdjsonReader, NdjsonWriter, ProcessOptions,
    ReadOptions, process_ordered,
};
use rayon::ThreadPool;
use rayon::prelude::*;
use serde_json::Value;

const RUNS: usize = 3;

/// The Synthea resources as plain and gzip NDJSON, converted on the first run and then cached.
fn inputs() -> (Vec<u8>, Vec<u8>) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/synthea-covid-120");
    let mut bundles: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|error| panic!("{}: {error}", dir.display()))
        .map(|entry| entry.expect("a readable folder entry").path())
        .filter(|path| path.to_string_lossy().ends_with(".json.bz2"))
        .collect();
    bundles.sort();
    // The cache is named after the Bundles' count and total size, so changed data is converted anew.
    let total: u64 = bundles
        .iter()
        .map(|path| fs::metadata(path).expect("a readable Bundle").len())
        .sum();
    let cache = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("synthea-{}-{total}", bundles.len()));
    let (plain_path, gzip_path) = (
        cache.join("resources.ndjson"),
        cache.join("resources.ndjson.gz"),
    );
    if let (Ok(plain), Ok(gz)) = (fs::read(&plain_path), fs::read(&gzip_path)) {
        return (plain, gz);
    }
    let plain = synthea_ndjson(&bundles);
    fs::create_dir_all(&cache).expect("a writable cache folder");
    for (path, compression) in [
        (&plain_path, Compression::Plain),
        (&gzip_path, Compression::GZIP),
    ] {
        let mut writer = NdjsonFileWriter::create(path, compression).unwrap();
        for line in plain
            .split(|byte| *byte == b'\n')
            .filter(|line| !line.is_empty())
        {
            writer.write_line(line).unwrap();
        }
        writer.finish().unwrap();
    }
    let gz = fs::read(&gzip_path).expect("the file just written");
    (plain, gz)
}

/// The resources of the Synthea Bundles at `paths`, one compact JSON line each, in order.
fn synthea_ndjson(paths: &[PathBuf]) -> Vec<u8> {
    let parts: Vec<Vec<u8>> = paths
        .par_iter()
        .map(|path| {
            let mut json = Vec::new();
            bzip2::read::BzDecoder::new(File::open(path).expect("a readable Bundle"))
                .read_to_end(&mut json)
                .expect("valid bzip2");
            let bundle: Value = serde_json::from_slice(&json).expect("a JSON Bundle");
            let mut ndjson = Vec::new();
            for entry in bundle["entry"].as_array().expect("Bundle.entry") {
                serde_json::to_writer(&mut ndjson, &entry["resource"]).expect("a Value serializes");
                ndjson.push(b'\n');
            }
            ndjson
        })
        .collect();
    parts.concat()
}

fn pool(threads: usize) -> ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("a thread pool")
}

/// How long `run` takes, and the lines it reports.
fn timed(run: impl FnOnce() -> u64) -> (Duration, u64) {
    let start = Instant::now();
    let lines = run();
    (start.elapsed(), lines)
}

/// The fastest of [`RUNS`] runs of `run`.
fn best(mut run: impl FnMut() -> u64) -> (Duration, u64) {
    (0..RUNS)
        .map(|_| timed(&mut run))
        .min()
        .expect("at least one run")
}

/// Reads every batch and touches nothing else: the reader's own cost.
fn read_only(input: &[u8]) -> u64 {
    let mut reader = NdjsonReader::new(input, "synthea.ndjson", ReadOptions::default()).unwrap();
    let mut lines = 0;
    while let Some(batch) = reader.next_batch().unwrap() {
        lines += batch.len() as u64;
    }
    lines
}

/// Parses and re-serializes every line on `pool`, writing in order; checks nothing was lost.
fn round_trip(input: &[u8], plain_len: usize, pool: &ThreadPool) -> u64 {
    let mut reader = NdjsonReader::new(input, "synthea.ndjson", ReadOptions::default()).unwrap();
    let mut writer = NdjsonWriter::new(io::sink(), "out.ndjson", Compression::Plain);
    let mut written = 0;
    let summary = process_ordered(
        &mut reader,
        ProcessOptions {
            pool: Some(pool),
            max_in_flight: None,
        },
        |line| {
            let resource = line.parse_resource()?;
            Ok::<_, NdjsonError>(serde_json::to_vec(&resource).expect("a Value serializes"))
        },
        |_, bytes| {
            written += bytes.len() + 1;
            writer.write_line(&bytes)
        },
    )
    .unwrap();
    writer.finish().unwrap();
    assert_eq!(written, plain_len, "the output is the input, byte for byte");
    summary.lines
}

fn report(label: &str, bytes: usize, (elapsed, lines): (Duration, u64)) -> f64 {
    let seconds = elapsed.as_secs_f64();
    let megabytes_per_second = bytes as f64 / 1e6 / seconds;
    println!(
        "{label:<40} {megabytes_per_second:>8.1} MB/s {:>10.0} lines/s ({:.3} s)",
        lines as f64 / seconds,
        seconds
    );
    megabytes_per_second
}

fn main() {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let prepared = Instant::now();
    let (plain, gz) = inputs();
    let lines = read_only(&plain);
    println!(
        "ndjson bench: {lines} Synthea resources, {:.1} MB NDJSON ({:.1} MB gzip), {threads} threads \
         available, prepared in {:.1} s",
        plain.len() as f64 / 1e6,
        gz.len() as f64 / 1e6,
        prepared.elapsed().as_secs_f64()
    );

    report(
        "read batches, plain",
        plain.len(),
        best(|| read_only(&plain)),
    );
    report("read batches, gzip", plain.len(), best(|| read_only(&gz)));

    let (single, all) = (pool(1), pool(threads));
    for (name, input) in [("plain", &plain), ("gzip", &gz)] {
        // Alternate the two so that a change in machine load affects both alike.
        let (mut one, mut many) = ((Duration::MAX, 0), (Duration::MAX, 0));
        for _ in 0..RUNS {
            one = one.min(timed(|| round_trip(input, plain.len(), &single)));
            many = many.min(timed(|| round_trip(input, plain.len(), &all)));
        }
        let one = report(
            &format!("parse + serialize, {name}, 1 thread"),
            plain.len(),
            one,
        );
        let label = format!("parse + serialize, {name}, {threads} threads");
        let many = report(&label, plain.len(), many);
        println!("ratio parallel / single, {name}: {:.2}", many / one);
    }
}
