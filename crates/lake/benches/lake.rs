//! Throughput of the lake's writers on synthetic data, each into a local folder on one
//! thread, as rows/s and MB/s of input NDJSON, and as a ratio against a baseline measured in
//! the same run: parsing every line with serde_json and serializing it again to a sink (the
//! least any writer that looks inside the resources does).
//!
//! Writers: gzip NDJSON; Parquet with the key columns; the built-in SQL-on-FHIR views as
//! Parquet; with the `delta` feature, a first Delta load, an incremental merge of one
//! resource in ten, and the views as Delta tables; and a whole run with every format.
//!
//! `cargo bench -p lake --bench lake --features delta` (2,000 patients); set
//! `LAKE_BENCH_PATIENTS` to change the size.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use lake::{Destination, Formats, RunOptions, RunWriter, WriterOptions};
use serde_json::Value;

/// The NDJSON lines of every `*.ndjson` file in `dir`.
fn read_lines(dir: &Path) -> Vec<Vec<u8>> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("synthetic data folder")
        .map(|e| e.expect("folder entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "ndjson"))
        .collect();
    files.sort();
    files
        .iter()
        .flat_map(|f| {
            std::fs::read(f)
                .expect("NDJSON file")
                .split(|b| *b == b'\n')
                .filter(|l| !l.is_empty())
                .map(<[u8]>::to_vec)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Prints one measurement against the baseline's seconds for the same input.
struct Report {
    baseline_secs: f64,
}

impl Report {
    fn row(&self, name: &str, rows: usize, bytes: usize, secs: f64, baseline_share: f64) {
        println!(
            "{name:<34} {rows:>9} {:>12.0} {:>8.1} {:>12.3}",
            rows as f64 / secs,
            bytes as f64 / secs / 1e6,
            self.baseline_secs * baseline_share / secs
        );
    }
}

/// Parses every line and serializes it to a sink; returns the seconds taken.
fn baseline(lines: &[Vec<u8>]) -> f64 {
    let start = Instant::now();
    let mut sink = std::io::sink();
    for line in lines {
        let value: Value = serde_json::from_slice(line).expect("JSON");
        serde_json::to_writer(&mut sink, &value).expect("serializes");
        sink.write_all(b"\n").expect("sink");
    }
    start.elapsed().as_secs_f64()
}

fn folder() -> (tempfile::TempDir, Destination) {
    let dir = tempfile::tempdir().expect("temporary folder");
    let dest = Destination::open(dir.path().to_str().expect("UTF-8 path")).expect("folder");
    (dir, dest)
}

/// Writes `lines` in one run `run_id` with `formats` (and the built-in views if `views`)
/// into `dest`; returns the seconds taken.
fn run(dest: &Destination, run_id: &str, lines: &[&[u8]], formats: Formats, views: bool) -> f64 {
    let mut options = RunOptions::new(run_id);
    options.formats = formats;
    if !views {
        options.views.clear();
    }
    let start = Instant::now();
    let mut run = RunWriter::new(dest, options).expect("run");
    for line in lines {
        run.write_line(line).expect("write");
    }
    run.finish().expect("finish");
    start.elapsed().as_secs_f64()
}

/// Evaluates the built-in views on `lines` and writes them as Parquet; returns (rows
/// written, seconds).
fn views_parquet(lines: &[&[u8]]) -> (usize, f64) {
    let (_dir, dest) = folder();
    let views = lake::views::builtin_views();
    let start = Instant::now();
    let mut writers: Vec<_> = views
        .iter()
        .map(|v| lake::views::ViewWriter::create(&dest, v, "bench", WriterOptions::default()))
        .collect::<Result<_, _>>()
        .expect("view writers");
    let mut rows = 0;
    for line in lines {
        let resource: Value = serde_json::from_slice(line).expect("JSON");
        let ty = resource["resourceType"].as_str().unwrap_or_default();
        for (view, writer) in views.iter().zip(&mut writers) {
            if view.resource() == ty {
                rows += writer.write(&resource).expect("view row");
            }
        }
    }
    for writer in writers {
        writer.finish().expect("finish");
    }
    (rows, start.elapsed().as_secs_f64())
}

/// Evaluates the built-in views on `lines` and merges them into Delta tables; returns the
/// seconds taken.
#[cfg(feature = "delta")]
fn views_delta(lines: &[&[u8]]) -> f64 {
    let (_dir, dest) = folder();
    let views = lake::views::builtin_views();
    let start = Instant::now();
    let mut writers: Vec<_> = views
        .iter()
        .map(|v| lake::DeltaTableWriter::for_view(&dest, v, WriterOptions::default()))
        .collect::<Result<_, _>>()
        .expect("view tables");
    for line in lines {
        let resource: Value = serde_json::from_slice(line).expect("JSON");
        let ty = resource["resourceType"].as_str().unwrap_or_default();
        let id = resource["id"].as_str().unwrap_or_default();
        for (view, writer) in views.iter().zip(&mut writers) {
            if view.resource() == ty {
                let rows = view.evaluate(&resource).expect("view rows");
                writer.write_view_rows(id, rows).expect("view row");
            }
        }
    }
    for writer in writers {
        writer.commit().expect("commit");
    }
    start.elapsed().as_secs_f64()
}

fn main() {
    let patients: u64 = std::env::var("LAKE_BENCH_PATIENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000);
    let source = tempfile::tempdir().expect("temporary folder");
    synth::generate(
        &synth::SynthOptions::new(patients, 42, source.path()),
        &|_| {},
    )
    .expect("synth");
    let owned = read_lines(source.path());
    let lines: Vec<&[u8]> = owned.iter().map(Vec::as_slice).collect();
    let bytes: usize = lines.iter().map(|l| l.len()).sum();
    println!(
        "{patients} synthetic patients: {} resources, {:.1} MB of NDJSON; one thread, local folder",
        lines.len(),
        bytes as f64 / 1e6
    );
    // Warm up the allocator and caches once, then measure the baseline.
    baseline(&owned);
    let report = Report {
        baseline_secs: baseline(&owned),
    };
    println!(
        "\n{:<34} {:>9} {:>12} {:>8} {:>12}",
        "writer", "rows in", "rows/s", "MB/s", "x baseline"
    );
    report.row(
        "baseline: serde_json parse+write",
        lines.len(),
        bytes,
        report.baseline_secs,
        1.0,
    );
    let only = |ndjson, parquet, delta| Formats {
        ndjson,
        parquet,
        delta,
    };
    let (_dir, dest) = folder();
    let secs = run(&dest, "bench", &lines, only(true, false, false), false);
    report.row("ndjson.gz", lines.len(), bytes, secs, 1.0);

    let (_dir, dest) = folder();
    let secs = run(&dest, "bench", &lines, only(false, true, false), false);
    report.row("parquet (key columns)", lines.len(), bytes, secs, 1.0);

    let (view_rows, secs) = views_parquet(&lines);
    report.row("views -> parquet", lines.len(), bytes, secs, 1.0);

    if cfg!(feature = "delta") {
        let (_dir, dest) = folder();
        let secs = run(&dest, "r1", &lines, only(false, false, true), false);
        report.row("delta: first load", lines.len(), bytes, secs, 1.0);
        let tenth: Vec<&[u8]> = lines.iter().step_by(10).copied().collect();
        let tenth_bytes: usize = tenth.iter().map(|l| l.len()).sum();
        let secs = run(&dest, "r2", &tenth, only(false, false, true), false);
        report.row(
            "delta: merge of 1 in 10",
            tenth.len(),
            tenth_bytes,
            secs,
            tenth.len() as f64 / lines.len() as f64,
        );

        #[cfg(feature = "delta")]
        report.row(
            "views -> delta",
            lines.len(),
            bytes,
            views_delta(&lines),
            1.0,
        );
    }

    let (_dir, dest) = folder();
    let all = only(true, true, cfg!(feature = "delta"));
    let secs = run(&dest, "bench", &lines, all, true);
    report.row(
        "whole run, every format + views",
        lines.len(),
        bytes,
        secs,
        1.0,
    );
    println!(
        "\nrows/s and MB/s count input resources and NDJSON bytes; the views wrote {view_rows} rows.\n\
         x baseline = the baseline's time for the same input / the writer's time (1.0 = as fast as\n\
         parsing and re-serializing the JSON; 0.25 = four times as long)."
    );
}
