//! The pipeline against a real `haven serve` (the `server` crate on an ephemeral port over a
//! SQLite store): a first run exports everything; after the store changes (updates, new
//! patients, deletions, as `synth --update-of` describes them), the next run exports only
//! what changed since the first run's `transactionTime` and applies the deletions.

mod common;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use pipeline::{Pipeline, PipelineConfig, Silent};
use serde_json::Value;

fn ndjson_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "ndjson"))
        .collect();
    files.sort();
    files
}

fn config(server: &str, lake: &Path, keys: &Path, work: &Path) -> PipelineConfig {
    let text = format!(
        "work_dir = {work:?}\n[source]\nserver = {server:?}\nlevel = \"system\"\n[deid]\n\
         preset = \"safe-harbor\"\nkey_file = {keys:?}\ngenerate_keys = true\n[lake]\n\
         location = {lake:?}\nformats = [\"ndjson\"]\n"
    );
    PipelineConfig::from_toml(&text).unwrap()
}

fn gunzip_lines(path: &Path) -> Vec<Value> {
    let mut text = String::new();
    flate2::read::MultiGzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_string(&mut text)
        .unwrap();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn incremental_runs_against_a_live_server() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base");
    synth::generate(&synth::SynthOptions::new(40, 7, &base), &|_| {}).unwrap();
    let update = dir.path().join("update");
    let mut options = synth::SynthOptions::new(3, 0, &update);
    options.update_of = Some(base.clone());
    synth::generate(&options, &|_| {}).unwrap();

    let store: Arc<dyn store::Store> =
        Arc::from(store::open(&dir.path().join("hub.db").display().to_string()).unwrap());
    let files = ndjson_files(&base);
    server::load::load(store.as_ref(), &files, &Default::default(), &mut |_| {}).unwrap();
    let server = common::start(
        Arc::clone(&store),
        &dir.path().join("exports"),
        Default::default(),
    );

    let lake = dir.path().join("lake");
    let keys = dir.path().join("keys.json");
    let work = dir.path().join("work");
    let pipeline = Pipeline::new(config(&server.base_url, &lake, &keys, &work)).unwrap();
    let first = pipeline.run(&Silent).unwrap();
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    for file in &files {
        for line in std::fs::read_to_string(file).unwrap().lines() {
            let value: Value = serde_json::from_str(line).unwrap();
            *expected
                .entry(value["resourceType"].as_str().unwrap().to_owned())
                .or_default() += 1;
        }
    }
    for (kind, count) in &expected {
        assert_eq!(first.types[kind].read, *count, "{kind} exported");
        assert_eq!(
            first.types[kind].announced,
            Some(*count),
            "{kind} announced"
        );
        assert_eq!(first.types[kind].landed, *count, "{kind} landed");
    }
    assert!(first.since.is_none());
    assert!(
        !work.join(&first.run_id).exists(),
        "the raw export is removed"
    );

    // The hub changes: updated and new resources, and deletions.
    std::thread::sleep(std::time::Duration::from_millis(20));
    let changed = ndjson_files(&update);
    server::load::load(store.as_ref(), &changed, &Default::default(), &mut |_| {}).unwrap();
    let mut deletions = Vec::new();
    for entry in std::fs::read_dir(update.join("deleted")).unwrap() {
        for line in std::fs::read_to_string(entry.unwrap().path())
            .unwrap()
            .lines()
        {
            let bundle: Value = serde_json::from_str(line).unwrap();
            for e in bundle["entry"].as_array().unwrap() {
                let (kind, id) = e["request"]["url"]
                    .as_str()
                    .unwrap()
                    .split_once('/')
                    .unwrap();
                deletions.push((kind.to_owned(), id.to_owned()));
            }
        }
    }
    assert!(!deletions.is_empty());
    for (kind, id) in &deletions {
        store.delete(kind, id, None).unwrap();
    }
    let changed_count: u64 = changed
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap().lines().count() as u64)
        .sum();

    let second = pipeline.run(&Silent).unwrap();
    assert_eq!(
        second.since, first.transaction_time,
        "the second run is incremental"
    );
    let read: u64 = second.types.values().map(|c| c.read).sum();
    assert_eq!(read, changed_count, "only what changed is exported");
    let deleted: u64 = second.types.values().map(|c| c.deleted).sum();
    assert_eq!(deleted, deletions.len() as u64, "every deletion is applied");

    // The deletion lists name rows the first run landed.
    let mut first_ids = std::collections::BTreeSet::new();
    for kind in first.types.keys() {
        let folder = lake.join(format!("ndjson/{kind}/run={}", first.run_id));
        for entry in std::fs::read_dir(folder).unwrap() {
            for value in gunzip_lines(&entry.unwrap().path()) {
                first_ids.insert((kind.clone(), value["id"].as_str().unwrap().to_owned()));
            }
        }
    }
    let mut listed = 0;
    for kind in second.types.keys() {
        let folder = lake.join(format!("deleted/{kind}/run={}", second.run_id));
        let Ok(entries) = std::fs::read_dir(folder) else {
            continue;
        };
        for entry in entries {
            for value in gunzip_lines(&entry.unwrap().path()) {
                let id = value["id"].as_str().unwrap().to_owned();
                assert!(first_ids.contains(&(kind.clone(), id)), "{kind} deletion");
                listed += 1;
            }
        }
    }
    assert_eq!(listed, deletions.len());
}
