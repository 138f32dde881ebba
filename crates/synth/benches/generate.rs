//! Throughput of `synth::generate`: patients/s, resources/s and MB/s (uncompressed JSON) on one
//! thread and on all threads, for each output format.
//!
//! `cargo bench -p synth --bench generate` (2,000 patients); set `SYNTH_BENCH_PATIENTS` to
//! change the size and `SYNTH_BENCH_FORMATS` (comma-separated: ndjson, ndjson.gz, bundles) to
//! choose formats. On Linux the process CPU time is printed too, since on a shared machine the
//! wall-clock speed-up only shows when the cores are free.

use std::time::Instant;

use synth::{Format, SynthOptions};

/// CPU seconds (user + system) used by this process so far, where `/proc` tells (Linux; assumes
/// the usual 100 clock ticks per second).
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

fn run(threads: usize, patients: u64, format: Format) -> f64 {
    let dir = tempfile::tempdir().expect("temporary folder");
    let mut opts = SynthOptions::new(patients, 42, dir.path());
    opts.format = format;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("thread pool");
    let cpu = cpu_seconds();
    let start = Instant::now();
    let report = pool
        .install(|| synth::generate(&opts, &|_| {}))
        .expect("generate");
    let secs = start.elapsed().as_secs_f64();
    let cpu = match (cpu, cpu_seconds()) {
        (Some(a), Some(b)) => format!(", {:.2} s CPU", b - a),
        _ => String::new(),
    };
    println!(
        "{format:<9} threads={threads}: {patients} patients, {} resources, {:.1} MB in {secs:.2} s \
         = {:.0} patients/s, {:.0} resources/s, {:.1} MB/s{cpu}",
        report.resources,
        report.bytes as f64 / 1e6,
        patients as f64 / secs,
        report.resources as f64 / secs,
        report.bytes as f64 / 1e6 / secs,
    );
    secs
}

fn main() {
    let patients = std::env::var("SYNTH_BENCH_PATIENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000);
    let formats: Vec<Format> = std::env::var("SYNTH_BENCH_FORMATS")
        .unwrap_or_else(|_| "ndjson,ndjson.gz".into())
        .split(',')
        .map(|f| f.parse().expect("format"))
        .collect();
    let all = std::thread::available_parallelism().map_or(1, |n| n.get());
    for format in formats {
        let one = run(1, patients, format);
        let many = run(all, patients, format);
        println!("{format:<9} speed-up on {all} threads: {:.2}x", one / many);
    }
}
