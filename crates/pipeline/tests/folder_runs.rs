//! Runs of the pipeline from folders of NDJSON (written by `synth`) into a folder lake: counts
//! reconcile, identifiers are gone, incremental runs apply deletions, an interrupted run
//! resumes to the same lake, and the state refuses a change of de-identification.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};

use pipeline::{Pipeline, PipelineConfig, Silent};
use serde_json::Value;

fn synth(dir: &Path, patients: u64) {
    synth_seeded(dir, patients, 11);
}

fn synth_seeded(dir: &Path, patients: u64, seed: u64) {
    synth::generate(&synth::SynthOptions::new(patients, seed, dir), &|_| {}).unwrap();
}

fn synth_update(base: &Path, dir: &Path, patients: u64) {
    let mut options = synth::SynthOptions::new(patients, 0, dir);
    options.update_of = Some(base.to_path_buf());
    synth::generate(&options, &|_| {}).unwrap();
}

fn config(source: &Path, lake: &Path, keys: &Path) -> PipelineConfig {
    let text = format!(
        "[source]\nfolder = {source:?}\n[deid]\npreset = \"safe-harbor\"\nkey_file = {keys:?}\n\
         generate_keys = true\n[lake]\nlocation = {lake:?}\nformats = [\"ndjson\", \"parquet\"]\n"
    );
    PipelineConfig::from_toml(&text).unwrap()
}

/// Every resource in the `.ndjson` files of a source folder, by type.
fn source_resources(dir: &Path) -> BTreeMap<String, Vec<Value>> {
    let mut out: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "ndjson") {
            for line in std::fs::read_to_string(&path).unwrap().lines() {
                let value: Value = serde_json::from_str(line).unwrap();
                let kind = value["resourceType"].as_str().unwrap().to_owned();
                out.entry(kind).or_default().push(value);
            }
        }
    }
    out
}

/// The gunzipped lines of every file under `lake/prefix`, by file path relative to the lake.
fn lake_files(lake: &Path, prefix: &str) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![lake.join(prefix)];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.to_string_lossy().ends_with(".ndjson.gz") {
                let mut text = String::new();
                flate2::read::MultiGzDecoder::new(std::fs::File::open(&path).unwrap())
                    .read_to_string(&mut text)
                    .unwrap();
                let key = path.strip_prefix(lake).unwrap().display().to_string();
                out.insert(key, text.lines().map(str::to_owned).collect());
            }
        }
    }
    out
}

struct Work {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

fn work() -> Work {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    Work { _dir: dir, root }
}

#[test]
fn a_full_run_lands_every_resource_de_identified() {
    let w = work();
    let source = w.root.join("source");
    synth(&source, 12);
    let lake = w.root.join("lake");
    let report = Pipeline::new(config(&source, &lake, &w.root.join("keys.json")))
        .unwrap()
        .run(&Silent)
        .unwrap();

    let resources = source_resources(&source);
    for (kind, list) in &resources {
        let counts = report.types[kind];
        assert_eq!(counts.read, list.len() as u64, "{kind} read");
        assert_eq!(
            counts.announced,
            Some(list.len() as u64),
            "{kind} announced"
        );
        assert_eq!(counts.landed + counts.dropped, counts.read, "{kind}");
        assert_eq!(
            report.tables[&format!("ndjson/{kind}")],
            counts.landed,
            "{kind} ndjson rows"
        );
        assert_eq!(report.tables[&format!("parquet/{kind}")], counts.landed);
    }
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    assert_eq!(
        report.transaction_time.as_deref(),
        Some("2023-01-01T00:00:00.000Z")
    );

    let landed = lake_files(&lake, "ndjson/Patient");
    let lines: Vec<&String> = landed.values().flatten().collect();
    assert_eq!(lines.len(), resources["Patient"].len());
    let source_ids: BTreeSet<&str> = resources["Patient"]
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    let family_names: BTreeSet<&str> = resources["Patient"]
        .iter()
        .flat_map(|p| p["name"].as_array().unwrap())
        .filter_map(|n| n["family"].as_str())
        .collect();
    for line in lines {
        let patient: Value = serde_json::from_str(line).unwrap();
        let id = patient["id"].as_str().unwrap();
        assert_eq!(id.len(), 64, "ids are hashed");
        assert!(!source_ids.contains(id));
        for name in patient["name"].as_array().into_iter().flatten() {
            assert!(name.get("family").is_none() && name.get("given").is_none());
        }
        assert!(
            patient["birthDate"].as_str().is_none_or(|d| d.len() == 4),
            "only the birth year is kept"
        );
        for family in &family_names {
            assert!(!line.contains(family), "a family name slipped through");
        }
    }

    let state: Value =
        serde_json::from_slice(&std::fs::read(lake.join("_haven/state.json")).unwrap()).unwrap();
    assert_eq!(state["watermark"], "2023-01-01T00:00:00.000Z");
    assert_eq!(state["deid"], "preset safe-harbor");
    assert_eq!(state["runs"].as_array().unwrap().len(), 1);
    assert!(!lake.join("_haven/current.json").exists());
    let stored: Value = serde_json::from_slice(
        &std::fs::read(lake.join(format!("_haven/runs/{}/report.json", report.run_id))).unwrap(),
    )
    .unwrap();
    assert_eq!(stored["run_id"], report.run_id.as_str());
    assert!(
        w.root.join("keys.json").exists(),
        "generated keys are stored"
    );
}

#[test]
fn an_incremental_run_lands_changes_and_applies_deletions() {
    let w = work();
    let base = w.root.join("base");
    synth_seeded(&base, 40, 7);
    let update = w.root.join("update");
    synth_update(&base, &update, 3);
    let lake = w.root.join("lake");
    let keys = w.root.join("keys.json");
    let first = Pipeline::new(config(&base, &lake, &keys))
        .unwrap()
        .run(&Silent)
        .unwrap();
    let second = Pipeline::new(config(&update, &lake, &keys))
        .unwrap()
        .run(&Silent)
        .unwrap();
    assert_ne!(first.run_id, second.run_id);
    assert_eq!(second.since.as_deref(), Some("2023-01-01T00:00:00.000Z"));

    let mut deleted: BTreeMap<String, u64> = BTreeMap::new();
    for entry in std::fs::read_dir(update.join("deleted")).unwrap() {
        for line in std::fs::read_to_string(entry.unwrap().path())
            .unwrap()
            .lines()
        {
            let bundle: Value = serde_json::from_str(line).unwrap();
            for e in bundle["entry"].as_array().unwrap() {
                let url = e["request"]["url"].as_str().unwrap();
                *deleted
                    .entry(url.split('/').next().unwrap().to_owned())
                    .or_default() += 1;
            }
        }
    }
    assert!(!deleted.is_empty(), "the update deletes resources");
    for (kind, count) in &deleted {
        assert_eq!(second.types[kind].deleted, *count, "{kind} deletions");
    }
    // The deletion lists name ids that the first run landed.
    let first_ids: BTreeSet<String> = lake_files(&lake, "ndjson/")
        .iter()
        .filter(|(key, _)| key.contains(&format!("run={}", first.run_id)))
        .flat_map(|(_, lines)| lines.iter())
        .map(|line| {
            serde_json::from_str::<Value>(line).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    let deletions = lake_files(&lake, "deleted/");
    assert!(!deletions.is_empty());
    for line in deletions.values().flatten() {
        let value: Value = serde_json::from_str(line).unwrap();
        let id = value["id"].as_str().or(value.as_str()).unwrap_or(line);
        assert!(first_ids.contains(id), "a deletion names a landed id");
    }
    let state: Value =
        serde_json::from_slice(&std::fs::read(lake.join("_haven/state.json")).unwrap()).unwrap();
    assert_eq!(state["watermark"], "2023-01-31T00:00:00.000Z");
    assert_eq!(state["runs"].as_array().unwrap().len(), 2);
}

#[test]
fn an_interrupted_run_resumes_under_its_id_to_the_same_lake() {
    let w = work();
    let source = w.root.join("source");
    synth(&source, 10);
    let keys = w.root.join("keys.json");
    let clean = w.root.join("clean");
    let clean_report = Pipeline::new(config(&source, &clean, &keys))
        .unwrap()
        .run(&Silent)
        .unwrap();

    // A run that stopped after writing its marker and some of its files.
    let resumed = w.root.join("resumed");
    std::fs::create_dir_all(resumed.join("_haven")).unwrap();
    std::fs::write(
        resumed.join("_haven/current.json"),
        r#"{"run_id": "R1", "started": "2024-01-01T00:00:00Z", "attempts": 1}"#,
    )
    .unwrap();
    let partial = resumed.join("ndjson/Patient/run=R1");
    std::fs::create_dir_all(&partial).unwrap();
    std::fs::write(partial.join("part-00000.ndjson.gz"), b"truncated").unwrap();
    let report = Pipeline::new(config(&source, &resumed, &keys))
        .unwrap()
        .run(&Silent)
        .unwrap();
    assert_eq!(report.run_id, "R1");
    assert_eq!(report.attempts, 2);
    assert_eq!(report.types, clean_report.types);

    let normalize = |lake: &Path, run: &str| -> BTreeMap<String, Vec<String>> {
        lake_files(lake, "")
            .into_iter()
            .map(|(key, lines)| (key.replace(run, "RUN"), lines))
            .collect()
    };
    assert_eq!(
        normalize(&resumed, "R1"),
        normalize(&clean, &clean_report.run_id)
    );
}

#[test]
fn a_lake_refuses_another_de_identification() {
    let w = work();
    let source = w.root.join("source");
    synth(&source, 2);
    let lake = w.root.join("lake");
    let keys = w.root.join("keys.json");
    Pipeline::new(config(&source, &lake, &keys))
        .unwrap()
        .run(&Silent)
        .unwrap();
    let mut other = config(&source, &lake, &keys);
    other.deid.preset = Some("research".to_owned());
    let error = Pipeline::new(other).unwrap().run(&Silent).unwrap_err();
    assert!(error.to_string().contains("preset safe-harbor"), "{error}");
}

#[test]
fn a_bad_line_names_its_file_and_line_and_no_value() {
    let w = work();
    let source = w.root.join("source");
    std::fs::create_dir_all(&source).unwrap();
    std::fs::write(
        source.join("Patient.ndjson"),
        "{\"resourceType\":\"Patient\",\"id\":\"a\"}\n{\"resourceType\":\"Patient\",\"id\":\"Smith-secret\n",
    )
    .unwrap();
    let lake = w.root.join("lake");
    let error = Pipeline::new(config(&source, &lake, &w.root.join("keys.json")))
        .unwrap()
        .run(&Silent)
        .unwrap_err()
        .to_string();
    assert!(error.contains("Patient.ndjson"), "{error}");
    assert!(error.contains("line 2"), "{error}");
    assert!(!error.contains("Smith"), "{error}");
    assert!(
        !lake.join("_haven/state.json").exists(),
        "a failed run records nothing"
    );
}
