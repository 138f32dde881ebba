//! How fast `safe-harbor` de-identifies Synthea NDJSON, against the floor any tool pays (parse
//! every line and serialize it again) and against `jq -c .` doing nothing on the same file; and
//! what scrubbing free text costs, on Synthea and on a corpus of long notes.
//!
//! Loads the Synthea COVID-19 transaction Bundles in `data/synthea-covid-120` (hospital and
//! practitioner Bundles first, then patients in name order), writes their entry resources as
//! compact NDJSON lines (references stay `urn:uuid:`), then measures on the same lines:
//! (a) parse + re-serialize, (b) `safe-harbor`, each on 1 thread and on every thread count up to
//! all cores (rayon, batches of [`BATCH`] lines through [`deid::Engine::deidentify_lines`]), and
//! (c) `jq -c .` on the NDJSON file (a subprocess, output to `/dev/null`; skipped when `jq` is
//! absent), (d) `safe-harbor-strict` (free text removed, not scrubbed), and (e) the floor and
//! `safe-harbor` on a corpus of long notes: Synthea's notes joined ten at a time with names,
//! phone numbers and dates planted in them, as DocumentReference attachments and Observation
//! notes. `safe-harbor` runs with the run's identifiers collected from the lines first, as
//! `haven deid` does (the collection is timed on its own). The passes of (a) and (b) alternate, [`REPEAT`] of each, so that both see the same
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

    let identities_started = Instant::now();
    let mut identities = deid::scrub::Identities::default();
    for line in &lines {
        let _ = identities.add_json(line);
    }
    let engine = safe_harbor("safe-harbor").with_identities(&identities);
    println!(
        "identities: {} values collected and compiled in {:.1} ms ({:.1} MB)",
        engine.dictionary().len(),
        identities_started.elapsed().as_secs_f64() * 1e3,
        engine.dictionary().memory_usage() as f64 / 1e6
    );
    let strict = safe_harbor("safe-harbor-strict");
    let notes = long_notes(&lines, &engine);
    let note_lines: Vec<&[u8]> = notes.iter().map(Vec::as_slice).collect();
    let notes_mb = notes.iter().map(Vec::len).sum::<usize>() as f64 / 1e6;
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

    let report_notes = |label: &str, time: Duration| {
        let s = time.as_secs_f64();
        println!(
            "{label:<44} {:>9.1} ms {:>10.0} resources/s {:>7.1} MB/s",
            s * 1e3,
            note_lines.len() as f64 / s,
            notes_mb / s
        );
    };
    let mut floor = Vec::new();
    let mut deid = Vec::new();
    let mut strict_times = Vec::new();
    let mut notes_floor = Vec::new();
    let mut notes_deid = Vec::new();
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
        let (_, st) = alternate(
            repeat,
            || {},
            || pool.install(|| deidentify(&strict, &lines)),
        );
        let (nf, nd) = alternate(
            repeat,
            || pool.install(|| reserialize(&note_lines)),
            || pool.install(|| deidentify(&engine, &note_lines)),
        );
        report(&format!("(a) parse + re-serialize, {n} thread(s)"), f.best);
        report(&format!("(b) safe-harbor, {n} thread(s)"), d.best);
        report(&format!("(d) safe-harbor-strict, {n} thread(s)"), st.best);
        report_notes(
            &format!("(e) long notes: parse + re-serialize, {n}"),
            nf.best,
        );
        report_notes(
            &format!("(e) long notes: safe-harbor, {n} thread(s)"),
            nd.best,
        );
        floor.push(f);
        deid.push(d);
        strict_times.push(st);
        notes_floor.push(nf);
        notes_deid.push(nd);
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
    println!();
    println!(
        "{:>8} {:>12} {:>16} {:>16}",
        "threads", "(d)/(a)", "notes (e) ratio", "notes (e) med"
    );
    for (i, &n) in threads.iter().enumerate() {
        println!(
            "{n:>8} {:>11.2}x {:>15.2}x {:>15.2}x",
            strict_times[i].best.as_secs_f64() / floor[i].best.as_secs_f64(),
            notes_deid[i].best.as_secs_f64() / notes_floor[i].best.as_secs_f64(),
            notes_deid[i].median.as_secs_f64() / notes_floor[i].median.as_secs_f64(),
        );
    }
    println!(
        "{} long-note resources, {notes_mb:.1} MB. targets: (b)/(a) <= 2.50x with scrubbing; \
         (b) faster than jq. Best of {repeat} alternating passes (med: ratio of the medians); \
         total {:.1} s",
        note_lines.len(),
        started.elapsed().as_secs_f64()
    );
    if smoke {
        println!("smoke run only: `cargo bench -p deid --bench deid` measures");
    }
}

/// A preset with fixed keys.
fn safe_harbor(preset: &str) -> Engine {
    let mut config =
        Config::from_json(deid::presets::preset(preset).expect("the preset")).expect("ok");
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

/// A corpus of long notes: Synthea's decoded notes joined ten at a time, with names and
/// numbers of the run's people planted (a patient's name, a phone number, a record number, a
/// date in two spellings and a third person's name), each note as a DocumentReference
/// attachment and as an Observation note. Checks that `engine` scrubs the planted name.
fn long_notes(lines: &[&[u8]], engine: &Engine) -> Vec<Vec<u8>> {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut notes: Vec<String> = Vec::new();
    let mut names: Vec<String> = Vec::new();
    for line in lines {
        let value: serde_json::Value = serde_json::from_slice(line).expect("valid JSON");
        if value["resourceType"] == "Patient"
            && let Some(given) = value["name"][0]["given"][0].as_str()
        {
            names.push(format!(
                "{given} {}",
                value["name"][0]["family"].as_str().unwrap_or("")
            ));
        }
        if let Some(data) = value["content"][0]["attachment"]["data"].as_str()
            && let Ok(text) = b64.decode(data)
        {
            notes.push(String::from_utf8_lossy(&text).into_owned());
        }
    }
    let mut out = Vec::new();
    for (i, chunk) in notes.chunks(10).enumerate() {
        let name = &names[i % names.len().max(1)];
        let mut text = chunk.join("\n");
        text.push_str(&format!(
            "\nSeen with {name} on 03/04/2021 (March 4th, 2021); call 617-555-{:04} or MRN: \
             QX{i:06}. Reported by her neighbour Wilhelmina Thistlewood.\n",
            i % 10_000
        ));
        let document = serde_json::json!({
            "resourceType": "DocumentReference", "id": format!("note-{i}"), "status": "current",
            "content": [{"attachment": {"contentType": "text/plain", "data": b64.encode(&text)}}]
        });
        let observation = serde_json::json!({
            "resourceType": "Observation", "id": format!("obs-note-{i}"), "status": "final",
            "code": {"text": "note"}, "note": [{"text": text}]
        });
        out.push(serde_json::to_vec(&document).expect("serializable"));
        out.push(serde_json::to_vec(&observation).expect("serializable"));
    }
    if let Some(first) = out.get(1) {
        let batch = engine.deidentify_lines(&[first.as_slice()], &Context::default());
        let scrubbed = batch.lines[0].as_ref().expect("a long note de-identifies");
        assert!(
            scrubbed.contains("[NAME]") && !scrubbed.contains("Thistlewood"),
            "the planted names are scrubbed"
        );
    }
    out
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
