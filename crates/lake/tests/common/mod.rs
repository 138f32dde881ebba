//! Helpers shared by the lake's integration tests: synthetic data, the Python readers, and
//! checks run on every destination. The emulators and Python come from `testkit`.

// Each test binary uses a subset of these helpers.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

/// The Python modules the reader tests import.
pub const READERS: &[&str] = &["pyarrow", "duckdb", "deltalake"];

/// Runs a Python script (with the readers installed) that prints one JSON document, and
/// parses it; `None` when the readers are missing and `HAVEN_SKIP_EMULATORS=1`.
pub fn python_json(script: &str, args: &[&str]) -> Option<serde_json::Value> {
    Some(testkit::Python::find(READERS)?.json(script, args))
}

/// Generates `patients` synthetic patients into `dir` (NDJSON per type).
pub fn synth(dir: &Path, patients: u64, seed: u64) -> synth::SynthReport {
    synth::generate(&synth::SynthOptions::new(patients, seed, dir), &|_| {}).expect("synth runs")
}

/// Generates an update batch of `new_patients` against the output in `base`.
pub fn synth_update(base: &Path, dir: &Path, new_patients: u64) -> synth::SynthReport {
    let mut options = synth::SynthOptions::new(new_patients, 0, dir);
    options.update_of = Some(base.to_path_buf());
    synth::generate(&options, &|_| {}).expect("synth update runs")
}

/// The NDJSON lines of every `Type.NNN.ndjson` file in `dir`, in file order.
pub fn ndjson_lines(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "ndjson"))
        .collect();
    files.sort();
    let mut lines = Vec::new();
    for file in files {
        let ty = file
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .split('.')
            .next()
            .unwrap()
            .to_string();
        let reader = std::io::BufReader::new(std::fs::File::open(&file).unwrap());
        for line in reader.split(b'\n') {
            let line = line.unwrap();
            if !line.is_empty() {
                lines.push((ty.clone(), line));
            }
        }
    }
    lines
}

/// The `(type, id)` pairs listed as deleted in an update batch's `deleted/` Bundles.
pub fn deleted_in(dir: &Path) -> Vec<(String, String)> {
    let Ok(entries) = std::fs::read_dir(dir.join("deleted")) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in entries {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let bundle: serde_json::Value = serde_json::from_str(line).unwrap();
            for e in bundle["entry"].as_array().into_iter().flatten() {
                if e["request"]["method"] == "DELETE" {
                    let url = e["request"]["url"].as_str().unwrap();
                    let (ty, id) = url.split_once('/').unwrap();
                    out.push((ty.to_string(), id.to_string()));
                }
            }
        }
    }
    out
}

/// Exercises put, streamed put (several parts), get, list and delete on `dest`.
pub fn object_round_trip(dest: &lake::Destination) {
    dest.put("t/small.txt", &b"hello"[..]).unwrap();
    assert_eq!(&dest.get("t/small.txt").unwrap().unwrap()[..], b"hello");
    assert!(dest.get("t/missing").unwrap().is_none());

    let mut writer = dest.writer("t/big.bin").unwrap();
    let chunk: Vec<u8> = (0..1024 * 1024).map(|i| (i % 251) as u8).collect();
    for _ in 0..12 {
        writer.write_all(&chunk).unwrap();
    }
    assert!(
        dest.get("t/big.bin").unwrap().is_none(),
        "invisible until finished"
    );
    assert_eq!(writer.finish().unwrap(), 12 * 1024 * 1024);
    let big = dest.get("t/big.bin").unwrap().unwrap();
    assert_eq!(big.len(), 12 * 1024 * 1024);
    assert_eq!(&big[5 * 1024 * 1024..5 * 1024 * 1024 + 16], &chunk[..16]);

    let mut abandoned = dest.writer("t/abandoned.bin").unwrap();
    abandoned.write_all(&chunk).unwrap();
    drop(abandoned);

    let keys: Vec<String> = dest.list("t").unwrap().into_iter().map(|o| o.key).collect();
    assert_eq!(keys, ["t/big.bin", "t/small.txt"]);
    dest.delete("t/small.txt").unwrap();
    dest.delete("t/big.bin").unwrap();
    dest.delete("t/never").unwrap();
    assert!(dest.list("t").unwrap().is_empty());
}

/// Lands a small synthetic data set in two runs (the second deleting a patient) and checks
/// what the destination lists; returns the deleted patient's id and how many remain.
pub fn land_two_runs(dest: &lake::Destination) -> (String, u64) {
    let work = tempfile::tempdir().unwrap();
    synth(work.path(), 12, 5);
    let lines = ndjson_lines(work.path());
    let formats = lake::Formats {
        ndjson: true,
        parquet: true,
        delta: cfg!(feature = "delta"),
    };
    let mut options = lake::RunOptions::new("r1");
    options.formats = formats;
    let mut run = lake::RunWriter::new(dest, options.clone()).unwrap();
    for (_, line) in &lines {
        run.write_line(line).unwrap();
    }
    let first = run.finish().unwrap();
    let patients = lines.iter().filter(|(t, _)| t == "Patient").count() as u64;
    assert_eq!(first.tables["parquet/Patient"].rows, patients);
    assert_eq!(first.tables["views/patient"].rows, patients);

    let patient: serde_json::Value =
        serde_json::from_slice(&lines.iter().find(|(t, _)| t == "Patient").unwrap().1).unwrap();
    let id = patient["id"].as_str().unwrap().to_string();
    options.run_id = "r2".into();
    let mut run = lake::RunWriter::new(dest, options).unwrap();
    run.delete("Patient", &id).unwrap();
    run.finish().unwrap();

    let keys: Vec<String> = dest.list("").unwrap().into_iter().map(|o| o.key).collect();
    for key in [
        "ndjson/Patient/run=r1/part-00000.ndjson.gz",
        "parquet/Patient/run=r1/part-00000.parquet",
        "views/observation/run=r1/part-00000.parquet",
        "deleted/Patient/run=r2/part-00000.ndjson.gz",
    ] {
        assert!(keys.iter().any(|k| k == key), "{key} missing from {keys:?}");
    }
    if cfg!(feature = "delta") {
        assert!(
            keys.iter()
                .any(|k| k == "delta/Patient/_delta_log/00000000000000000002.json")
        );
    }
    (id, patients - 1)
}

/// Reads `delta/Patient` with Python's deltalake through `options` and checks the deleted
/// patient is gone.
pub fn python_sees_deletion(
    table_url: &str,
    options: &BTreeMap<String, String>,
    deleted: &str,
    expected_rows: u64,
) {
    let Some(got) = python_json(
        r#"
import sys, json, os
from deltalake import DeltaTable
t = DeltaTable(sys.argv[1], storage_options=json.loads(sys.argv[2])).to_pyarrow_table()
print(json.dumps({"rows": t.num_rows, "ids": t.column("id").to_pylist()}), flush=True)
# Skip interpreter teardown, where pyarrow's S3 client can abort.
os._exit(0)
"#,
        &[table_url, &serde_json::to_string(options).unwrap()],
    ) else {
        return;
    };
    assert_eq!(got["rows"], expected_rows);
    assert!(!got["ids"].as_array().unwrap().iter().any(|i| i == deleted));
}
