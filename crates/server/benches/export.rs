//! `$export` throughput of a real server over HTTP, on SQLite and on PostgreSQL, as a ratio
//! against the store's own paging measured in the same run.
//!
//! Input: the entries of the Synthea COVID-19 transaction Bundles in `data/synthea-covid-120`
//! (92,114 resources), with `urn:uuid:` references rewritten to `Type/id`, loaded straight
//! into the store. For each database:
//! - baseline: every live resource of every type paged out of the store as of a transaction
//!   time (pages of 1,000), no HTTP, no files;
//! - export: a system `$export` kicked off over HTTP, timed from the kick-off to the job's
//!   completion (files written to a folder), then the same with
//!   `_anonymizationConfig=safe-harbor`;
//! - download: every output file fetched over HTTP with gzip.
//!
//! Peak RSS is read from `/proc/self/status` (`VmHWM`), reset before each phase through
//! `/proc/self/clear_refs`, so each figure is that phase's own peak.
//!
//! Run with `cargo bench -p server --bench export` (PostgreSQL from `store::testing`;
//! `HAVEN_SKIP_POSTGRES=1` skips it).

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use store::{ExportQuery, JobStatus, PatientScope, Store, Write};

const PAGE: usize = 1000;

/// Synthea's resources as compact JSON lines, hospital and practitioner Bundles first.
fn synthea_lines() -> Vec<String> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/synthea-covid-120");
    let mut bundles: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|error| panic!("{}: {error}", dir.display()))
        .map(|entry| entry.expect("a readable folder entry").path())
        .filter(|path| path.to_string_lossy().ends_with(".json.bz2"))
        .collect();
    bundles.sort();
    let mut lines = Vec::new();
    for path in bundles {
        let mut text = String::new();
        bzip2::read::BzDecoder::new(File::open(&path).expect("a readable Bundle"))
            .read_to_string(&mut text)
            .expect("a bzip2 Bundle");
        let bundle: Value = serde_json::from_str(&text).expect("a JSON Bundle");
        let entries = bundle["entry"].as_array().expect("Bundle entries");
        let targets: HashMap<String, String> = entries
            .iter()
            .filter_map(|entry| {
                let resource = &entry["resource"];
                Some((
                    entry["fullUrl"].as_str()?.to_owned(),
                    format!(
                        "{}/{}",
                        resource["resourceType"].as_str()?,
                        resource["id"].as_str()?
                    ),
                ))
            })
            .collect();
        for entry in entries {
            let mut resource = entry["resource"].clone();
            rewrite_references(&mut resource, &targets);
            lines.push(resource.to_string());
        }
    }
    lines
}

/// Replaces `reference` values that are keys of `targets`.
fn rewrite_references(value: &mut Value, targets: &HashMap<String, String>) {
    match value {
        Value::Object(object) => {
            for (key, child) in object.iter_mut() {
                match child {
                    Value::String(text) if key == "reference" => {
                        if let Some(target) = targets.get(text.as_str()) {
                            *text = target.clone();
                        }
                    }
                    _ => rewrite_references(child, targets),
                }
            }
        }
        Value::Array(items) => items
            .iter_mut()
            .for_each(|item| rewrite_references(item, targets)),
        _ => {}
    }
}

fn load(store: &dyn Store, lines: &[String]) {
    for chunk in lines.chunks(1000) {
        let writes = chunk
            .iter()
            .map(|line| Write::Update {
                resource: serde_json::from_str(line).expect("a JSON resource"),
                if_match: None,
            })
            .collect();
        store.transaction(writes).expect("the transaction succeeds");
    }
}

/// Resets the peak RSS so that the next [`peak_rss_mb`] reports the phase that follows.
fn reset_peak_rss() {
    let _ = fs::write("/proc/self/clear_refs", "5");
}

/// The peak RSS since the last reset, in MB.
fn peak_rss_mb() -> f64 {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("VmHWM:"))
                .and_then(|line| line.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// A phase's figures.
struct Figures {
    resources: u64,
    bytes: u64,
    elapsed: Duration,
    peak_mb: f64,
}

impl Figures {
    fn rate(&self) -> f64 {
        self.resources as f64 / self.elapsed.as_secs_f64()
    }

    fn print(&self, engine: &str, label: &str, baseline: Option<&Figures>) {
        let ratio = baseline.map_or(String::from("baseline"), |b| {
            format!("{:.2}× baseline", self.rate() / b.rate())
        });
        println!(
            "{engine:<10} {label:<24} {:>7} resources {:>7.1} MB in {:>6.2} s: {:>8.0} resources/s {:>6.1} MB/s  peak RSS {:>6.0} MB  ({ratio})",
            self.resources,
            self.bytes as f64 / 1e6,
            self.elapsed.as_secs_f64(),
            self.rate(),
            self.bytes as f64 / 1e6 / self.elapsed.as_secs_f64(),
            self.peak_mb,
        );
    }
}

/// Pages every type out of the store as of a new transaction time.
fn baseline(store: &dyn Store) -> Figures {
    reset_peak_rss();
    let started = Instant::now();
    let at = store.transaction_time().expect("a transaction time");
    let (mut resources, mut bytes) = (0, 0);
    for (resource_type, _) in store.counts().expect("counts") {
        let query = ExportQuery {
            resource_type,
            at,
            since: None,
            patients: PatientScope::All,
        };
        for resource in store::export_resources(store, query, 0, PAGE) {
            resources += 1;
            bytes += resource.expect("an exported resource").json.len() as u64 + 1;
        }
    }
    Figures {
        resources,
        bytes,
        elapsed: started.elapsed(),
        peak_mb: peak_rss_mb(),
    }
}

/// Kicks off a system export over HTTP and waits for the job (watching the store, so polling
/// intervals do not blur the time); the manifest and the figures.
async fn export(
    client: &reqwest::Client,
    state: &server::AppState,
    query: &str,
) -> (Value, Figures) {
    reset_peak_rss();
    let started = Instant::now();
    let response = client
        .get(format!("{}/$export{query}", state.base_url))
        .header("Accept", "application/fhir+json")
        .header("Prefer", "respond-async")
        .send()
        .await
        .expect("the kick-off is answered");
    assert_eq!(response.status(), 202);
    let id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let job = loop {
        let store = Arc::clone(&state.store);
        let lookup = id.clone();
        let job = tokio::task::spawn_blocking(move || store.get_job(&lookup))
            .await
            .unwrap()
            .expect("the job is readable")
            .expect("the job exists");
        match job.status {
            JobStatus::Completed => break job,
            JobStatus::Failed => panic!("the export failed: {:?}", job.error),
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    };
    let elapsed = started.elapsed();
    let manifest = job.output.expect("a completed job has a manifest");
    let resources = manifest["output"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["count"].as_u64().unwrap())
        .sum();
    let dir = PathBuf::from(&state.config.export_to).join(&id);
    let bytes = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    (
        manifest,
        Figures {
            resources,
            bytes,
            elapsed,
            peak_mb: peak_rss_mb(),
        },
    )
}

/// Downloads every output file with gzip; the figures count decompressed bytes.
async fn download(manifest: &Value) -> Figures {
    reset_peak_rss();
    let client = reqwest::Client::new();
    let started = Instant::now();
    let (mut resources, mut bytes) = (0, 0);
    for output in manifest["output"].as_array().unwrap() {
        let mut response = client
            .get(output["url"].as_str().unwrap())
            .header("Accept-Encoding", "gzip")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        while let Some(chunk) = response.chunk().await.unwrap() {
            bytes += chunk.len() as u64;
            resources += chunk.iter().filter(|b| **b == b'\n').count() as u64;
        }
    }
    Figures {
        resources,
        bytes,
        elapsed: started.elapsed(),
        peak_mb: peak_rss_mb(),
    }
}

async fn measure(engine: &str, store: Arc<dyn Store>, dir: &std::path::Path) {
    let base = {
        let store = Arc::clone(&store);
        tokio::task::spawn_blocking(move || baseline(store.as_ref()))
            .await
            .unwrap()
    };
    base.print(engine, "store paging", None);
    let config = server::ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        export_to: dir.join("exports").to_str().unwrap().to_owned(),
        ..server::ServerConfig::default()
    };
    let server = server::Server::bind(config, Arc::clone(&store))
        .await
        .unwrap();
    let state = server.state().clone();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.run_until(async {
        let _ = rx.await;
    }));
    let client = reqwest::Client::new();
    let (manifest, figures) = export(&client, &state, "").await;
    assert_eq!(
        figures.resources, base.resources,
        "every resource is exported"
    );
    figures.print(engine, "$export", Some(&base));
    download(&manifest)
        .await
        .print(engine, "download (gzip)", Some(&base));
    let (_, figures) = export(&client, &state, "?_anonymizationConfig=safe-harbor").await;
    figures.print(engine, "$export safe-harbor", Some(&base));
    let _ = tx.send(());
    serving.await.unwrap().unwrap();
    tokio::task::spawn_blocking(move || drop((state, store)))
        .await
        .unwrap();
}

fn main() {
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    println!("$export benchmark: {threads} cores available");
    let lines = synthea_lines();
    println!("input: {} Synthea resources", lines.len());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let sqlite: Arc<dyn Store> =
        Arc::from(store::open(dir.path().join("haven.db").to_str().unwrap()).unwrap());
    load(sqlite.as_ref(), &lines);
    runtime.block_on(measure("sqlite", sqlite, dir.path()));

    match store::testing::database() {
        Some(database) => {
            let postgres: Arc<dyn Store> = Arc::from(store::open(database.url()).unwrap());
            load(postgres.as_ref(), &lines);
            let dir = tempfile::tempdir().unwrap();
            runtime.block_on(measure("postgres", postgres, dir.path()));
        }
        None => println!("postgres   skipped (HAVEN_SKIP_POSTGRES=1)"),
    }
}
