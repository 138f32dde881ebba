//! The validation's scan rate on a lake of `synth` data, as a ratio against a baseline
//! measured in the same run: reading every NDJSON file of the lake, decompressing it and
//! parsing each line to JSON (the least any validation must do).
//!
//! `cargo bench -p validate` (`HAVEN_BENCH_PATIENTS`, default 300, sets the data size).

use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

use pipeline::{Pipeline, PipelineConfig, Silent};

/// The best of this many timings of each measurement.
const ROUNDS: usize = 3;

fn best(mut f: impl FnMut() -> u64) -> (Duration, u64) {
    let mut best = Duration::MAX;
    let mut result = 0;
    for _ in 0..ROUNDS {
        let started = Instant::now();
        result = f();
        best = best.min(started.elapsed());
    }
    (best, result)
}

/// Reads, gunzips and parses every line of every NDJSON file of the lake; the bytes of JSON.
fn baseline(dest: &lake::Destination) -> (u64, u64) {
    let mut resources = 0;
    let mut bytes = 0;
    for object in dest.list("ndjson/").unwrap() {
        let data = dest.get(&object.key).unwrap().unwrap();
        let reader = BufReader::new(flate2::read::MultiGzDecoder::new(&data[..]));
        for line in reader.split(b'\n') {
            let line = line.unwrap();
            let value: serde_json::Value = serde_json::from_slice(&line).unwrap();
            std::hint::black_box(value);
            resources += 1;
            bytes += line.len() as u64;
        }
    }
    (resources, bytes)
}

fn main() {
    let patients: u64 = std::env::var("HAVEN_BENCH_PATIENTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(300);
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source");
    let lake_dir = dir.path().join("lake");
    synth::generate(&synth::SynthOptions::new(patients, 1, &source), &|_| {}).unwrap();
    let config = format!(
        "[source]\nfolder = {source:?}\n[deid]\npreset = \"safe-harbor\"\nkey_file = {:?}\n\
         generate_keys = true\n[lake]\nlocation = {lake_dir:?}\nformats = [\"ndjson\", \"parquet\"]\n",
        dir.path().join("keys.json")
    );
    Pipeline::new(PipelineConfig::from_toml(&config).unwrap())
        .unwrap()
        .run(&Silent)
        .unwrap();
    let dest = lake::Destination::open(lake_dir.to_str().unwrap()).unwrap();

    let (base_time, _) = best(|| baseline(&dest).0);
    let (resources, bytes) = baseline(&dest);
    let options = validate::Options::default();
    let (plain_time, _) = best(|| validate::validate(&dest, &options).unwrap().resources);
    let with_source = validate::Options {
        source: Some(source.clone()),
    };
    let (source_time, _) = best(|| validate::validate(&dest, &with_source).unwrap().resources);

    let mb = bytes as f64 / 1e6;
    println!(
        "lake of {patients} synth patients: {resources} resources, {mb:.1} MB of JSON (best of {ROUNDS})"
    );
    for (name, time) in [
        ("baseline: gunzip + parse NDJSON", base_time),
        ("validate", plain_time),
        ("validate --source", source_time),
    ] {
        let s = time.as_secs_f64();
        println!(
            "  {name:<34} {s:>7.3} s {:>10.0} resources/s {:>7.1} MB/s  {:>5.2}x baseline time",
            resources as f64 / s,
            mb / s,
            s / base_time.as_secs_f64()
        );
    }
}
