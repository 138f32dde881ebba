//! `server::load` on the Synthea COVID-19 Bundles (`data/synthea-covid-120`), into SQLite and
//! PostgreSQL: counts per type, references rewritten to server ids, conditional references
//! resolved, NDJSON loaded with its ids.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::Value;
use server::load::{LoadOptions, input_files, load};
use store::{SearchQuery, Store};

fn synthea_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/synthea-covid-120")
}

/// The Bundle files of the hospital, the practitioners and the first `patients` patients.
fn synthea_files(patients: usize) -> Vec<PathBuf> {
    let all = input_files(&[synthea_dir()]).unwrap();
    let (shared, people): (Vec<_>, Vec<_>) = all.into_iter().partition(|path| {
        let name = path.file_name().unwrap().to_str().unwrap();
        name.contains("Information")
    });
    assert_eq!(
        shared.len(),
        2,
        "the hospital and practitioner Bundles come first"
    );
    shared
        .into_iter()
        .chain(people.into_iter().take(patients))
        .collect()
}

/// Resources per type in the files, read independently of the loader.
fn expected_counts(files: &[PathBuf]) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for path in files {
        let mut text = String::new();
        bzip2::read::MultiBzDecoder::new(std::fs::File::open(path).unwrap())
            .read_to_string(&mut text)
            .unwrap();
        let bundle: Value = serde_json::from_str(&text).unwrap();
        for entry in bundle["entry"].as_array().unwrap() {
            let resource_type = entry["resource"]["resourceType"].as_str().unwrap();
            *counts.entry(resource_type.to_owned()).or_default() += 1;
        }
    }
    counts
}

/// Every `reference` string in a resource.
fn references(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(object) => {
            for (key, child) in object {
                match (key.as_str(), child) {
                    ("reference", Value::String(reference)) => out.push(reference.clone()),
                    _ => references(child, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| references(item, out)),
        _ => {}
    }
}

fn all_of(store: &dyn Store, resource_type: &str) -> Vec<Value> {
    let mut query = SearchQuery::new(resource_type);
    query.count = 100_000;
    store
        .search(&query)
        .unwrap()
        .resources
        .into_iter()
        .map(|r| serde_json::from_str(&r.json).unwrap())
        .collect()
}

fn check_synthea_load(store: &dyn Store, patients: usize) {
    let files = synthea_files(patients);
    let options = LoadOptions {
        batch_resources: 5_000,
        ..LoadOptions::default()
    };
    let mut reports = 0;
    let summary = load(store, &files, &options, &mut |_| reports += 1).unwrap();
    assert!(reports >= files.len());
    let expected = expected_counts(&files);
    assert_eq!(summary.counts, expected);
    let stored: BTreeMap<String, u64> = store.counts().unwrap().into_iter().collect();
    assert_eq!(stored, expected);
    assert_eq!(summary.resources, expected.values().sum::<u64>());

    // Every reference names a stored resource by its server id.
    let mut ids = std::collections::HashSet::new();
    let mut resources = Vec::new();
    for resource_type in expected.keys() {
        for resource in all_of(store, resource_type) {
            ids.insert(format!(
                "{resource_type}/{}",
                resource["id"].as_str().unwrap()
            ));
            resources.push(resource);
        }
    }
    let mut checked = 0;
    for resource in &resources {
        let mut found = Vec::new();
        references(resource, &mut found);
        for reference in found.into_iter().filter(|r| !r.starts_with('#')) {
            assert!(
                !reference.starts_with("urn:uuid:"),
                "an unresolved urn:uuid"
            );
            assert!(
                !reference.contains('?'),
                "an unresolved conditional reference"
            );
            assert!(ids.contains(&reference), "a dangling reference {reference}");
            checked += 1;
        }
    }
    assert!(checked > 1000);

    // Compartments follow the rewritten references.
    let patient_ids: Vec<String> = all_of(store, "Patient")
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(patient_ids.len(), patients);
    let mut query = SearchQuery::new("Encounter");
    query
        .criteria
        .push(store::Criterion::parse("patient", &patient_ids[0]));
    query.total = true;
    assert!(store.search(&query).unwrap().total.unwrap() > 0);
}

#[test]
fn synthea_bundles_load_into_sqlite_with_references_rewritten() {
    let dir = tempfile::tempdir().unwrap();
    let store = store::open(&dir.path().join("haven.db").display().to_string()).unwrap();
    check_synthea_load(store.as_ref(), 4);
}

#[test]
fn synthea_bundles_load_into_postgres_with_references_rewritten() {
    let Some(db) = store::testing::database() else {
        eprintln!("skipping PostgreSQL: HAVEN_SKIP_POSTGRES=1");
        return;
    };
    let store = store::open(db.url()).unwrap();
    check_synthea_load(store.as_ref(), 2);
}

#[test]
fn loading_the_same_bundles_twice_writes_nothing_new() {
    let dir = tempfile::tempdir().unwrap();
    let store = store::open(&dir.path().join("haven.db").display().to_string()).unwrap();
    let files = synthea_files(1);
    let options = LoadOptions {
        batch_resources: 300,
        ..LoadOptions::default()
    };
    let first = load(store.as_ref(), &files, &options, &mut |_| {}).unwrap();
    assert!(first.resources > 700);
    assert_eq!(first.unchanged, 0);
    let history = |store: &dyn Store| {
        store
            .history(&store::HistoryQuery {
                scope: store::HistoryScope::System,
                since: None,
                count: 1,
                offset: 0,
            })
            .unwrap()
            .total
    };
    let versions = history(store.as_ref());
    // Organizations, Locations and Practitioners are conditional creates; the patient's
    // resources and the PractitionerRoles get the ids of their urn:uuid fullUrls and are
    // found unchanged.
    let second = load(store.as_ref(), &files, &options, &mut |_| {}).unwrap();
    assert_eq!(second.counts, first.counts);
    assert_eq!(second.unchanged, first.resources);
    assert_eq!(history(store.as_ref()), versions, "no version was written");
    let stored: u64 = store.counts().unwrap().iter().map(|(_, n)| n).sum();
    assert_eq!(stored, first.resources);
}

#[test]
fn ndjson_keeps_ids_and_bad_bundles_name_the_entry() {
    let dir = tempfile::tempdir().unwrap();
    let store = store::open(&dir.path().join("haven.db").display().to_string()).unwrap();
    let ndjson = dir.path().join("Patient.ndjson");
    std::fs::write(
        &ndjson,
        "{\"resourceType\":\"Patient\",\"id\":\"p1\"}\n\n{\"resourceType\":\"Observation\",\"id\":\"o1\",\"status\":\"final\",\"code\":{\"text\":\"x\"},\"subject\":{\"reference\":\"Patient/p1\"}}\n",
    )
    .unwrap();
    let summary = load(
        store.as_ref(),
        &[ndjson],
        &LoadOptions::default(),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(summary.resources, 2);
    assert_eq!(store.read("Observation", "o1").unwrap().version, 1);

    let bad = dir.path().join("bad.json");
    std::fs::write(
        &bad,
        r#"{"resourceType":"Bundle","type":"transaction","entry":[
            {"fullUrl":"urn:uuid:a","resource":{"resourceType":"Patient","name":[{"family":"Secret"}]},"request":{"method":"POST","url":"Patient"}},
            {"resource":{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"urn:uuid:missing"}},"request":{"method":"POST","url":"Observation"}}
        ]}"#,
    )
    .unwrap();
    let error = load(store.as_ref(), &[bad], &LoadOptions::default(), &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(error.contains("bad.json"), "{error}");
    assert!(
        error.contains("Bundle.entry[1].resource.subject.reference"),
        "{error}"
    );
    assert!(!error.contains("Secret"));
    assert_eq!(
        store.counts().unwrap().iter().map(|(_, n)| n).sum::<u64>(),
        2
    );

    let broken = dir.path().join("broken.json");
    std::fs::write(&broken, "{\"resourceType\": ").unwrap();
    let error = load(
        store.as_ref(),
        &[broken],
        &LoadOptions::default(),
        &mut |_| {},
    )
    .unwrap_err()
    .to_string();
    assert!(
        error.contains("broken.json") && error.contains("line 1"),
        "{error}"
    );
}
