//! The Bulk Data client against Haven's own server (`server` crate) on an ephemeral 127.0.0.1
//! port, over a SQLite store loaded with `synth` data: a full export, then an incremental one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bulk::{ExportOptions, ExportRequest, Exporter, Level, RetryPolicy};
use serde_json::Value;
use server::{Server, ServerConfig};
use store::{Store, Write};

/// A running server and its store.
struct Running {
    base: String,
    store: Arc<dyn Store>,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

async fn start(dir: &Path, store: Arc<dyn Store>) -> Running {
    let config = ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        export_to: dir.join("exports").to_str().unwrap().to_owned(),
        ..ServerConfig::default()
    };
    let server = Server::bind(config, store.clone()).await.unwrap();
    let base = server.state().base_url.to_string();
    let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.run_until(async {
        let _ = stopped.await;
    }));
    Running {
        base,
        store,
        _shutdown: shutdown,
    }
}

/// Loads `patients` synthetic patients into a SQLite store; returns it and the resources per type.
fn synth_store(dir: &Path, patients: u64) -> (Arc<dyn Store>, BTreeMap<String, u64>) {
    let data = dir.join("synth");
    let report = synth::generate(&synth::SynthOptions::new(patients, 7, &data), &|_| {}).unwrap();
    let files: Vec<PathBuf> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "ndjson"))
        .collect();
    let store: Arc<dyn Store> =
        Arc::from(store::open(dir.join("haven.db").to_str().unwrap()).unwrap());
    server::load::load(
        store.as_ref(),
        &files,
        &server::load::LoadOptions::default(),
        &mut |_| {},
    )
    .unwrap();
    (store, report.by_type)
}

fn options(base: &str, out: &Path) -> ExportOptions {
    let mut options = ExportOptions::new(ExportRequest::new(base, Level::System), out);
    options.since_auto = true;
    options.retry = RetryPolicy {
        min_retry_after: Duration::from_millis(50),
        ..RetryPolicy::default()
    };
    options.poll_initial = Duration::from_millis(50);
    options
}

/// Resources per type in the output folder's NDJSON files (not `deleted/` or `error/`).
fn exported(out: &Path) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for entry in std::fs::read_dir(out).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "ndjson")
            && path.file_name().unwrap() != "log.ndjson"
        {
            for line in std::fs::read_to_string(&path).unwrap().lines() {
                let resource: Value = serde_json::from_str(line).unwrap();
                *counts
                    .entry(resource["resourceType"].as_str().unwrap().to_owned())
                    .or_default() += 1;
            }
        }
    }
    counts
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_then_an_incremental_export_from_haven_serve() {
    let dir = tempfile::tempdir().unwrap();
    let (store, by_type) = synth_store(dir.path(), 15);
    let server = start(dir.path(), store).await;
    let out = dir.path().join("out");

    let first = Exporter::new(options(&server.base, &out))
        .run_async()
        .await
        .unwrap();

    assert_eq!(exported(&out), by_type);
    assert_eq!(first.resources, by_type.values().sum::<u64>());
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
    assert!(
        manifest["request"].is_string(),
        "an STU2 manifest names its request"
    );
    let state: Value = serde_json::from_str(
        &std::fs::read_to_string(out.join(".haven-export/state.json")).unwrap(),
    )
    .unwrap();
    let status = reqwest::get(state["status_url"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(status.status(), 404, "the final DELETE released the export");
    let log = std::fs::read_to_string(out.join("log.ndjson")).unwrap();
    assert!(log.lines().last().unwrap().contains("\"export_complete\""));

    // One patient changes and one is deleted: the next export asks only for that.
    let patient_line = std::fs::read_to_string(out.join("Patient.000.ndjson")).unwrap();
    let mut patients = patient_line
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap());
    let mut changed = patients.next().unwrap();
    let removed = patients.next().unwrap();
    changed["gender"] = "unknown".into();
    let changed_id = changed["id"].as_str().unwrap().to_owned();
    let removed_id = removed["id"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(20)).await;
    server
        .store
        .transaction(vec![
            Write::Update {
                resource: changed,
                if_match: None,
            },
            Write::Delete {
                resource_type: "Patient".into(),
                id: removed_id.clone(),
                if_match: None,
            },
        ])
        .unwrap();

    let second = Exporter::new(options(&server.base, &out))
        .run_async()
        .await
        .unwrap();

    assert!(second.transaction_time > first.transaction_time);
    assert_eq!(exported(&out), BTreeMap::from([("Patient".to_owned(), 1)]));
    let patient: Value = serde_json::from_str(
        std::fs::read_to_string(out.join("Patient.000.ndjson"))
            .unwrap()
            .trim(),
    )
    .unwrap();
    assert_eq!(patient["id"], changed_id.as_str());
    let deleted: String = std::fs::read_dir(out.join("deleted"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    assert!(
        deleted.contains(&format!("Patient/{removed_id}")),
        "the deletion is reported"
    );
}
