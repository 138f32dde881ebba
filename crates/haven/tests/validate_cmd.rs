//! `haven validate` from the command line: a lake the pipeline wrote passes (exit 0), a
//! tampered one fails (exit 1) with findings that locate the problem without showing the
//! value, and an unreadable lake is an error (exit 2).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

fn haven() -> Command {
    Command::new(env!("CARGO_BIN_EXE_haven"))
}

/// Synthesizes 6 patients into `dir/source` and lands them in `dir/lake` with safe-harbor.
fn lake(dir: &Path) -> PathBuf {
    let source = dir.join("source");
    let status = haven()
        .args(["synth", "--patients", "6", "--seed", "3", "--out"])
        .arg(&source)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let lake = dir.join("lake");
    let output = haven()
        .args([
            "pipeline",
            "run",
            "--preset",
            "safe-harbor",
            "--format",
            "ndjson,parquet",
        ])
        .arg("--folder")
        .arg(&source)
        .arg("--lake")
        .arg(&lake)
        .arg("--key-file")
        .arg(dir.join("keys.json"))
        .arg("--generate-keys")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    lake
}

fn validate(args: &[&str], lake: &Path) -> Output {
    haven()
        .arg("validate")
        .arg(lake)
        .args(args)
        .output()
        .unwrap()
}

/// The first NDJSON part of a table of the lake.
fn part(lake: &Path, table: &str) -> PathBuf {
    let run = std::fs::read_dir(lake.join(table))
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    run.path().join("part-00000.ndjson.gz")
}

#[test]
fn a_clean_lake_passes_with_exit_0_and_json_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let lake = lake(dir.path());
    let output = validate(&[], &lake);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("PASSED"), "{stdout}");
    for check in ["counts", "tables", "references", "identifiers"] {
        assert!(stdout.contains(&format!("pass  {check}")), "{stdout}");
    }

    let output = validate(&["--json"], &lake);
    assert_eq!(output.status.code(), Some(0));
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["passed"], true);
    assert_eq!(report["safe_harbor"], true);
    assert_eq!(report["checks"][0]["name"], "counts");
    assert_eq!(report["checks"][0]["status"], "passed");
}

#[test]
fn a_tampered_lake_fails_with_exit_1_and_never_shows_the_value() {
    let dir = tempfile::tempdir().unwrap();
    let lake = lake(dir.path());
    let part = part(&lake, "ndjson/Condition");
    let mut text = String::new();
    flate2::read::MultiGzDecoder::new(std::fs::File::open(&part).unwrap())
        .read_to_string(&mut text)
        .unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let mut condition: Value = serde_json::from_str(&lines[0]).unwrap();
    condition["note"] = serde_json::json!([{"text": "reach her at jane.roe@example.org"}]);
    lines[0] = condition.to_string();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all((lines.join("\n") + "\n").as_bytes()).unwrap();
    std::fs::write(&part, gz.finish().unwrap()).unwrap();

    let output = validate(&[], &lake);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("FAIL  identifiers"), "{stdout}");
    assert!(stdout.contains("line 1 /note/0/text"), "{stdout}");
    assert!(stdout.contains("(email)"), "{stdout}");
    assert!(!stdout.contains("jane.roe"), "the value is printed");

    let output = validate(&["--json"], &lake);
    assert_eq!(output.status.code(), Some(1));
    assert!(!String::from_utf8_lossy(&output.stdout).contains("jane.roe"));
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    let email = &report["checks"][4]["groups"]["email"];
    assert_eq!(report["checks"][4]["name"], "identifiers");
    assert_eq!(email["count"], 1);
    assert_eq!(email["examples"][0]["path"], "/note/0/text");
}

#[test]
fn an_unreadable_lake_or_source_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let output = validate(&[], &dir.path().join("nowhere"));
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("nowhere"));

    let output = validate(&[], dir.path());
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("_haven/state.json"));

    let lake = lake(dir.path());
    let missing = dir.path().join("no-source");
    let output = validate(&["--source", missing.to_str().unwrap()], &lake);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--source"));
}
