//! `haven pipeline run` from the command line: a folder source into a folder lake, the report,
//! flags over a configuration file, and a run killed with SIGKILL that the next start resumes
//! into the same lake as an uninterrupted run.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn haven() -> Command {
    Command::new(env!("CARGO_BIN_EXE_haven"))
}

fn synth(out: &Path, patients: &str) {
    let status = haven()
        .args(["synth", "--patients", patients, "--seed", "5", "--out"])
        .arg(out)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
}

fn pipeline(source: &Path, lake: &Path, keys: &Path) -> Command {
    let mut command = haven();
    command
        .args(["pipeline", "run", "--format", "ndjson,parquet", "--folder"])
        .arg(source)
        .arg("--lake")
        .arg(lake)
        .arg("--key-file")
        .arg(keys)
        .arg("--generate-keys");
    command
}

/// Every file of a lake with the run id replaced, gzip files decompressed, `_haven` reports
/// (which hold times) left out.
fn lake_contents(lake: &Path, run_id: &str) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![lake.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path.strip_prefix(lake).unwrap().display().to_string();
            if rel.starts_with("_haven") {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let mut bytes = std::fs::read(&path).unwrap();
            if rel.ends_with(".gz") {
                let mut plain = Vec::new();
                flate2::read::MultiGzDecoder::new(&bytes[..])
                    .read_to_end(&mut plain)
                    .unwrap();
                bytes = plain;
            }
            out.insert(rel.replace(run_id, "RUN"), bytes);
        }
    }
    out
}

#[test]
fn a_run_prints_its_report_and_json_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source");
    synth(&source, "8");
    let lake = dir.path().join("lake");
    let output = pipeline(&source, &lake, &dir.path().join("keys.json"))
        .arg("--json")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["types"]["Patient"]["read"], 8);
    assert_eq!(report["types"]["Patient"]["landed"], 8);
    assert_eq!(report["tables"]["parquet/Patient"], 8);
    let run_id = report["run_id"].as_str().unwrap();
    let summary =
        std::fs::read_to_string(lake.join(format!("_haven/runs/{run_id}/report.txt"))).unwrap();
    assert!(summary.contains("preset safe-harbor"), "{summary}");
    assert!(summary.contains("Patient"), "{summary}");

    let bad = haven()
        .args(["pipeline", "run", "--folder"])
        .arg(&source)
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--lake"));
}

#[test]
fn a_configuration_file_with_flags_over_it() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source");
    synth(&source, "3");
    let config = dir.path().join("pipeline.toml");
    std::fs::write(
        &config,
        "[source]\nfolder = \"source\"\n[deid]\npreset = \"safe-harbor\"\nkey_file = \"keys.json\"\n\
         generate_keys = true\n[lake]\nlocation = \"lake\"\nformats = [\"parquet\"]\n",
    )
    .unwrap();
    let output = haven()
        .args([
            "pipeline", "run", "--format", "ndjson", "--json", "--config",
        ])
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(report["tables"].get("ndjson/Patient").is_some());
    assert!(report["tables"].get("parquet/Patient").is_none());
    assert!(dir.path().join("lake/_haven/state.json").exists());
    assert!(dir.path().join("keys.json").exists());
}

#[test]
fn a_killed_run_resumes_to_the_same_lake() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source");
    synth(&source, "150");
    let keys = dir.path().join("keys.json");

    let clean = dir.path().join("clean");
    let output = pipeline(&source, &clean, &keys)
        .arg("--json")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let clean_report: Value = serde_json::from_slice(&output.stdout).unwrap();

    // Kill a run once it has started landing.
    let killed = dir.path().join("killed");
    let mut child = pipeline(&source, &killed, &keys)
        .stderr(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !killed.join("_haven/current.json").exists() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the run never started"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(300));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        killed.join("_haven/current.json").exists(),
        "the run finished before it was killed: give it more data"
    );

    let output = pipeline(&source, &killed, &keys)
        .arg("--json")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["attempts"], 2);
    assert_eq!(report["types"], clean_report["types"]);
    let run_id = report["run_id"].as_str().unwrap();
    let resumed = lake_contents(&killed, run_id);
    let expected = lake_contents(&clean, clean_report["run_id"].as_str().unwrap());
    assert_eq!(
        resumed.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>()
    );
    assert!(
        resumed == expected,
        "the resumed lake differs from the clean one"
    );
}
