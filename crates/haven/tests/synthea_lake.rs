//! The README's whole job on real Synthea data, as the demo runs it but smaller: `haven load`
//! the hospital and practitioner Bundles and a few patients, `haven serve` them, land a lake
//! with `haven pipeline run` (its default level, and the safe-harbor preset), and `haven
//! validate` it, which must pass: every count reconciled, every reference resolved, no
//! identifier left (Synthea's ZIP+4 postal codes, addresses and names included). A
//! patient-level lake passes too, its references to the Organizations and Practitioners such
//! an export leaves out counted apart from dangling ones.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn haven() -> Command {
    Command::new(env!("CARGO_BIN_EXE_haven"))
}

/// The Synthea Bundles whose names start with each prefix.
fn synthea_files(prefixes: &[&str]) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/synthea-covid-120");
    let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            let name = path.file_name().unwrap().to_str().unwrap();
            name.ends_with(".json.bz2") && prefixes.iter().any(|p| name.starts_with(p))
        })
        .collect();
    names.sort();
    names
}

#[test]
fn a_safe_harbor_lake_of_synthea_data_validates() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hub.db");
    let files = synthea_files(&[
        "0-hospitalInformation",
        "0-practitionerInformation",
        "057aa36e",
        "0696ac49",
        "085e81c0",
        "0ef7a3b5",
    ]);
    assert_eq!(files.len(), 6);
    let status = haven()
        .arg("load")
        .arg("--db")
        .arg(&db)
        .args(&files)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());

    let mut server = haven()
        .arg("serve")
        .arg("--db")
        .arg(&db)
        .args(["--listen", "127.0.0.1:0", "--auth", "none", "--export-to"])
        .arg(dir.path().join("exports"))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut logs = BufReader::new(server.stderr.take().unwrap());
    let mut line = String::new();
    logs.read_line(&mut line).unwrap();
    // Keep reading the server's log, so that it never writes into a closed pipe.
    std::thread::spawn(move || std::io::copy(&mut logs, &mut std::io::sink()));
    let base = line
        .split_whitespace()
        .find(|word| word.starts_with("http://"))
        .unwrap_or_else(|| panic!("no URL in {line:?}"))
        .to_owned();

    let pipeline = |lake: &Path, level: &[&str]| {
        haven()
            .args(["pipeline", "run", "--server", &base])
            .args(level)
            .args([
                "--preset",
                "safe-harbor",
                "--format",
                "ndjson,parquet",
                "--generate-keys",
            ])
            .arg("--key-file")
            .arg(dir.path().join("keys.json"))
            .arg("--work-dir")
            .arg(dir.path().join("work"))
            .arg("--lake")
            .arg(lake)
            .stdout(Stdio::null())
            .output()
            .unwrap()
    };
    let lake = dir.path().join("lake");
    let landed = pipeline(&lake, &[]);
    let patient_lake = dir.path().join("patient-lake");
    let patient_landed = pipeline(&patient_lake, &["--level", "patient"]);
    let _ = server.kill();
    let _ = server.wait();
    for landed in [&landed, &patient_landed] {
        assert!(
            landed.status.success(),
            "{}",
            String::from_utf8_lossy(&landed.stderr)
        );
    }

    let validate = |lake: &Path| {
        let validated = haven().arg("validate").arg(lake).output().unwrap();
        let report = String::from_utf8_lossy(&validated.stdout).into_owned();
        assert_eq!(validated.status.code(), Some(0), "{report}");
        for check in ["counts", "tables", "references", "identifiers"] {
            assert!(
                report
                    .lines()
                    .any(|l| l.trim_start().starts_with(&format!("pass  {check}"))),
                "{check} passes: {report}"
            );
        }
        report
    };
    let report = validate(&lake);
    assert!(!report.contains("leaves out"), "{report}");
    let report = validate(&patient_lake);
    let references = report
        .lines()
        .find(|l| l.trim_start().starts_with("pass  references"))
        .unwrap();
    assert!(
        references.contains("which a patient-level export leaves out"),
        "{references}"
    );
    let excluded: u64 = references
        .split("; ")
        .find(|part| part.contains("outside the Patient compartment"))
        .and_then(|part| part.split_whitespace().next()?.parse().ok())
        .unwrap();
    assert!(excluded > 0, "{references}");
}
