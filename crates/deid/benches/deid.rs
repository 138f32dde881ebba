//! How fast `safe-harbor` de-identifies Synthea NDJSON, against the floor any tool pays (parse
//! every line and serialize it again) and against `jq -c .` doing nothing on the same file.
//!
//! Loads the Synthea COVID-19 transaction Bundles in `data/synthea-covid-120` (hospital and
//! practitioner Bundles first, then patients in name order), writes their entry resources as
//! compact NDJSON lines (references stay `urn:uuid:`), then measures on the same lines:
//! (a) parse + re-serialize, (b) `safe-harbor`, each on 1 thread and on every thread count up to
//! all cores (rayon, batches of [`BATCH`] lines through [`deid::Engine::deidentify_lines`]), and
//! (c) `jq -c .` on the NDJSON file (a subprocess, output to `/dev/null`; skipped when `jq` is
//! absent). The passes of (a) and (b) alternate, [`REPEAT`] of each, so that both see the same
//! machine load; each figure is the best pass (the one least disturbed by other work on the
//! machine), and the ratios are also given from the median passes.
//!
//! `cargo bench -p deid --bench deid`. By default the first [`DEFAULT_BUNDLES`] Bundles are used
//! (about 19,000 resources); `HAVEN_BENCH_BUNDLES=all` (all 92,114 resources) or a number
//! changes that. Run without `--bench` (as `cargo test --all-targets` does) it only checks, on
//! a few Bundles and one pass, that everything runs.

use std::hint::black_box;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use deid::config::KeyKind;
use deid::{Config, Context, Engine};
use rayon::prelude::*;

/// How many Bundles are loaded unless `HAVEN_BENCH_BUNDLES` says otherwise.
const DEFAULT_BUNDLES: usize = 26;

/// How many passes each measurement makes.
const REPEAT: usize = 7;

/// Lines per call of [`Engine::deidentify_lines`], as an NDJSON reader would batch them.
const BATCH: usize = 1000;

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/synthea-covid-120");
    let smoke = !std::env::args().any(|a| a == "--bench");
    let limit = match std::env::var("HAVEN_BENCH_BUNDLES").as_deref() {
        _ if smoke => 3,
        Ok("all") => usize::MAX,
        Ok(n) => n.parse().expect("HAVEN_BENCH_BUNDLES is `all` or a number"),
        Err(_) => DEFAULT_BUNDLES,
    };
    let repeat = if smoke { 1 } else { REPEAT };
    let started = Instant::now();
    let files = bundle_files(&dir, limit);
    let ndjson = ndjson_of(&files);
    let lines: Vec<&[u8]> = ndjson
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let bytes = ndjson.len();
    let mb = bytes as f64 / 1e6;
    println!(
        "{} resources, {mb:.1} MB of NDJSON, from {} bundles (loaded in {:.1} s)",
        lines.len(),
        files.len(),
        started.elapsed().as_secs_f64()
    );

    let engine = safe_harbor();
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let threads: Vec<usize> = (1..=cores).collect();
    let report = |label: &str, time: Duration| {
        let s = time.as_secs_f64();
        println!(
            "{label:<44} {:>9.1} ms {:>10.0} resources/s {:>7.1} MB/s",
            s * 1e3,
            lines.len() as f64 / s,
            mb / s
        );
    };

    let mut floor = Vec::new();
    let mut deid = Vec::new();
    for &n in &threads {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .expect("a thread pool");
        let (f, d) = alternate(
            repeat,
            || pool.install(|| reserialize(&lines)),
            || pool.install(|| deidentify(&engine, &lines)),
        );
        report(&format!("(a) parse + re-serialize, {n} thread(s)"), f.best);
        report(&format!("(b) safe-harbor, {n} thread(s)"), d.best);
        floor.push(f);
        deid.push(d);
    }
    let jq = jq_time(&ndjson, repeat);
    match jq {
        Some(t) => report("(c) jq -c . (1 process)", t.best),
        None => println!("(c) jq -c . skipped: `jq` is not installed"),
    }

    println!();
    println!(
        "{:>8} {:>10} {:>12} {:>14} {:>14} {:>16}",
        "threads", "(b)/(a)", "(b)/(a) med", "(b) speed-up", "(a) speed-up", "(b) vs jq"
    );
    for (i, &n) in threads.iter().enumerate() {
        let vs_jq = jq.map_or_else(
            || "n/a".to_string(),
            |t| {
                format!(
                    "{:.2}x faster",
                    t.best.as_secs_f64() / deid[i].best.as_secs_f64()
                )
            },
        );
        println!(
            "{n:>8} {:>9.2}x {:>11.2}x {:>13.2}x {:>13.2}x {vs_jq:>16}",
            deid[i].best.as_secs_f64() / floor[i].best.as_secs_f64(),
            deid[i].median.as_secs_f64() / floor[i].median.as_secs_f64(),
            deid[0].best.as_secs_f64() / deid[i].best.as_secs_f64(),
            floor[0].best.as_secs_f64() / floor[i].best.as_secs_f64(),
        );
    }
    println!(
        "targets: (b)/(a) <= 2.00x; (b) faster than jq. Best of {repeat} alternating passes \
         (med: ratio of the medians); total {:.1} s",
        started.elapsed().as_secs_f64()
    );
    if smoke {
        println!("smoke run only: `cargo bench -p deid --bench deid` measures");
    }
}

/// The `safe-harbor` preset with fixed keys.
fn safe_harbor() -> Engine {
    let mut config =
        Config::from_json(deid::presets::preset("safe-harbor").expect("the preset")).expect("ok");
    config
        .set_key(KeyKind::CryptoHash, "bench-hash-key")
        .expect("a hash key");
    config
        .set_key(KeyKind::DateShift, "bench-shift-key")
        .expect("a shift key");
    Engine::new(config).expect("the preset compiles")
}

/// The floor: every line parsed as a resource and written back as compact JSON, in batches
/// of [`BATCH`] lines spread over the current thread pool, like [`deidentify`].
fn reserialize(lines: &[&[u8]]) {
    for batch in lines.chunks(BATCH) {
        let out: Vec<String> = batch
            .par_iter()
            .map(|line| {
                let value: serde_json::Value = serde_json::from_slice(line).expect("valid JSON");
                serde_json::to_string(&value).expect("serializable")
            })
            .collect();
        black_box(out);
    }
}

/// `safe-harbor` on every line, in batches of [`BATCH`] lines.
fn deidentify(engine: &Engine, lines: &[&[u8]]) {
    let ctx = Context::default();
    for (i, batch) in lines.chunks(BATCH).enumerate() {
        let out = engine.deidentify_lines(
            batch,
            &Context {
                sequence: (i * BATCH) as u64,
                ..ctx
            },
        );
        if let Some(line) = out.lines.iter().position(Result::is_err) {
            panic!("line {} failed to de-identify", i * BATCH + line + 1);
        }
        black_box(out);
    }
}

/// The best and the median time of a pass.
#[derive(Debug, Clone, Copy)]
struct Times {
    best: Duration,
    median: Duration,
}

impl Times {
    fn of(mut times: Vec<Duration>) -> Times {
        times.sort();
        Times {
            best: times[0],
            median: times[times.len() / 2],
        }
    }
}

/// Times `repeat` calls of `pass`, after one warm-up call.
fn measure(repeat: usize, mut pass: impl FnMut()) -> Times {
    pass();
    Times::of(
        (0..repeat)
            .map(|_| {
                let started = Instant::now();
                pass();
                started.elapsed()
            })
            .collect(),
    )
}

/// Times `repeat` calls of each pass, alternating them, after one warm-up call of each.
fn alternate(repeat: usize, mut a: impl FnMut(), mut b: impl FnMut()) -> (Times, Times) {
    a();
    b();
    let (mut ta, mut tb) = (Vec::new(), Vec::new());
    for _ in 0..repeat {
        let started = Instant::now();
        a();
        ta.push(started.elapsed());
        let started = Instant::now();
        b();
        tb.push(started.elapsed());
    }
    (Times::of(ta), Times::of(tb))
}

/// The times of `jq -c .` over the NDJSON (written to a temporary file), or `None` when `jq`
/// cannot be run.
fn jq_time(ndjson: &[u8], repeat: usize) -> Option<Times> {
    let available = Command::new("jq")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !available {
        return None;
    }
    let path = std::env::temp_dir().join(format!("haven-deid-bench-{}.ndjson", std::process::id()));
    std::fs::File::create(&path)
        .and_then(|mut f| f.write_all(ndjson))
        .expect("a writable temporary file");
    let run = || {
        let status = Command::new("jq")
            .args(["-c", "."])
            .arg(&path)
            .stdout(Stdio::null())
            .status()
            .expect("jq runs");
        assert!(status.success(), "jq failed");
    };
    let time = measure(repeat, run);
    std::fs::remove_file(&path).ok();
    Some(time)
}

/// The Bundle files (`*.json.bz2`) in name order (hospital and practitioner first), at most
/// `limit` of them.
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

/// The entry resources of the Bundles as compact NDJSON.
fn ndjson_of(files: &[PathBuf]) -> Vec<u8> {
    let texts: Vec<Vec<u8>> = files
        .par_iter()
        .map(|path| {
            let mut text = Vec::new();
            bzip2::read::MultiBzDecoder::new(std::fs::File::open(path).expect("open bundle"))
                .read_to_end(&mut text)
                .unwrap_or_else(|e| panic!("cannot decompress {}: {e}", path.display()));
            let bundle: serde_json::Value = serde_json::from_slice(&text)
                .unwrap_or_else(|e| panic!("cannot parse {}: {e}", path.display()));
            let mut out = Vec::new();
            for resource in bundle["entry"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|e| e.get("resource"))
            {
                serde_json::to_writer(&mut out, resource).expect("serializable");
                out.push(b'\n');
            }
            out
        })
        .collect();
    texts.concat()
}
