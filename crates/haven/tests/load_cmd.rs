//! `haven load`: Synthea Bundles from a folder into SQLite and PostgreSQL, counts per type on
//! standard output, errors naming the file.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

fn haven() -> Command {
    Command::new(env!("CARGO_BIN_EXE_haven"))
}

fn synthea_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/synthea-covid-120")
}

/// A folder with the hospital and practitioner Bundles and the first `patients` patient
/// Bundles, and the resources per type they hold.
fn synthea_subset(patients: usize) -> (tempfile::TempDir, BTreeMap<String, u64>) {
    let dir = tempfile::tempdir().unwrap();
    let mut names: Vec<String> = std::fs::read_dir(synthea_dir())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".json.bz2"))
        .collect();
    names.sort();
    let (shared, people): (Vec<_>, Vec<_>) = names
        .into_iter()
        .partition(|name| name.contains("Information"));
    let mut counts = BTreeMap::new();
    for name in shared.iter().chain(people.iter().take(patients)) {
        let source = synthea_dir().join(name);
        std::fs::copy(&source, dir.path().join(name)).unwrap();
        let mut text = String::new();
        bzip2::read::MultiBzDecoder::new(std::fs::File::open(&source).unwrap())
            .read_to_string(&mut text)
            .unwrap();
        let bundle: serde_json::Value = serde_json::from_str(&text).unwrap();
        for entry in bundle["entry"].as_array().unwrap() {
            let resource_type = entry["resource"]["resourceType"].as_str().unwrap();
            *counts.entry(resource_type.to_owned()).or_default() += 1;
        }
    }
    (dir, counts)
}

/// Runs `haven load --db DB FOLDER` and returns the printed counts.
fn load(db: &str, folder: &Path) -> BTreeMap<String, u64> {
    let output = haven()
        .args(["load", "--db", db])
        .arg(folder)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("resources/s"), "{stderr}");
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let (resource_type, count) = line.split_once('\t').unwrap();
            (resource_type.to_owned(), count.parse().unwrap())
        })
        .collect()
}

#[test]
fn a_synthea_folder_loads_into_sqlite_with_its_counts() {
    let (folder, expected) = synthea_subset(2);
    let db = tempfile::tempdir().unwrap();
    let path = db.path().join("nested/haven.db");
    let counts = load(path.to_str().unwrap(), folder.path());
    assert_eq!(counts, expected);
    assert!(path.is_file());
    let store = store::open(path.to_str().unwrap()).unwrap();
    let stored: BTreeMap<String, u64> = store.counts().unwrap().into_iter().collect();
    assert_eq!(stored, expected);
}

#[test]
fn a_synthea_folder_loads_into_postgres() {
    let Some(db) = store::testing::database() else {
        eprintln!("skipping PostgreSQL: HAVEN_SKIP_POSTGRES=1");
        return;
    };
    let (folder, expected) = synthea_subset(1);
    assert_eq!(load(db.url(), folder.path()), expected);
}

#[test]
fn missing_and_malformed_inputs_are_named_and_fail() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("haven.db");
    let output = haven()
        .args(["load", "--db"])
        .arg(&db)
        .arg(dir.path().join("absent.json"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("absent.json"));

    let bad = dir.path().join("bad.json");
    std::fs::write(
        &bad,
        "{\"resourceType\": \"Patient\", \"name\": \"Secret\",",
    )
    .unwrap();
    let output = haven()
        .args(["load", "--db"])
        .arg(&db)
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("bad.json") && stderr.contains("line 1"),
        "{stderr}"
    );
    assert!(!stderr.contains("Secret"));
}

/// The store's live resources as `(type, id, version, JSON without meta.lastUpdated)`, sorted:
/// what two loads must agree on (instants aside).
fn snapshot(db: &Path) -> Vec<(String, String, u64, String)> {
    let store = store::open(db.to_str().unwrap()).unwrap();
    let at = store.transaction_time().unwrap();
    let mut rows = Vec::new();
    for (resource_type, _) in store.counts().unwrap() {
        let query = store::ExportQuery {
            resource_type,
            at,
            since: None,
            patients: store::PatientScope::All,
        };
        for resource in store::export_resources(store.as_ref(), query, 0, 1000) {
            let resource = resource.unwrap();
            let mut json: serde_json::Value = serde_json::from_str(&resource.json).unwrap();
            json["meta"].as_object_mut().unwrap().remove("lastUpdated");
            rows.push((
                resource.resource_type,
                resource.id,
                resource.version,
                json.to_string(),
            ));
        }
    }
    rows.sort();
    rows
}

#[test]
fn a_load_killed_midway_then_run_again_gives_the_store_of_one_load() {
    let (folder, expected) = synthea_subset(3);
    let total: u64 = expected.values().sum();
    let dir = tempfile::tempdir().unwrap();
    let whole = dir.path().join("whole.db");
    assert_eq!(load(whole.to_str().unwrap(), folder.path()), expected);

    // Killed with SIGKILL once some batches are committed.
    let killed = dir.path().join("killed.db");
    let mut child = haven()
        .args(["load", "--batch", "300", "--db"])
        .arg(&killed)
        .arg(folder.path())
        .env("HAVEN_TEST_LOAD_PAUSE_AT", "600")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let paused = std::io::BufRead::lines(stderr)
        .map(Result::unwrap)
        .any(|line| line.contains("load paused"));
    assert!(paused, "the load finished before the pause point");
    child.kill().unwrap();
    child.wait().unwrap();
    let partial: u64 = store::open(killed.to_str().unwrap())
        .unwrap()
        .counts()
        .unwrap()
        .iter()
        .map(|(_, n)| n)
        .sum();
    assert!(partial >= 600 && partial < total, "{partial} of {total}");

    // Loaded again: the store of one uninterrupted load, nothing duplicated.
    assert_eq!(load(killed.to_str().unwrap(), folder.path()), expected);
    let one_load = snapshot(&whole);
    assert_eq!(one_load.len() as u64, total);
    assert!(one_load.iter().all(|(_, _, version, _)| *version == 1));
    assert_eq!(snapshot(&killed), one_load);

    // And a third time: every resource is found unchanged.
    let output = haven()
        .args(["load", "--db"])
        .arg(&killed)
        .arg(folder.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("; {total} were already there")),
        "{stderr}"
    );
    assert_eq!(snapshot(&killed), one_load);
}
