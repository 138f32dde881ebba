//! Download throughput of the Bulk Data client against a local peer, as a ratio to a baseline
//! measured in the same run: the same bytes fetched with plain `reqwest` and discarded.
//!
//! The client's run includes kick-off, polling, per-line `resourceType` checks, the count check,
//! writing to disk with fsync and rename, and the state journal. Run with
//! `cargo bench -p bulk --bench download` (`BULK_BENCH_MB` sets the data size, default 200).

#[path = "../tests/peer/mod.rs"]
mod peer;

use std::time::{Duration, Instant};

use bulk::{ExportOptions, ExportRequest, Exporter, Level};
use futures::StreamExt;
use peer::{Peer, Reply, manifest, script_export};
use serde_json::json;

/// One file of Patient resources of about `mb` megabytes: (body, resources).
fn data(mb: usize) -> (Vec<u8>, u64) {
    let mut body = Vec::with_capacity(mb << 20);
    let mut n = 0u64;
    while body.len() < mb << 20 {
        let patient = json!({
            "resourceType": "Patient", "id": format!("p{n}"), "gender": "female",
            "birthDate": "1970-01-01",
            "name": [{"family": "Example", "given": ["Pat", "Q"]}],
            "address": [{"line": ["1 Main Street"], "city": "Springfield", "postalCode": "12345"}],
            "telecom": [{"system": "phone", "value": "555-0100"}],
            "extension": [{"url": "http://example.org/x", "valueString": "padding to a realistic size of a resource line"}]
        });
        body.extend(serde_json::to_vec(&patient).unwrap());
        body.push(b'\n');
        n += 1;
    }
    (body, n)
}

fn main() {
    let mb: usize = std::env::var("BULK_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let files = 4;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let peer = runtime.block_on(Peer::start());
    let (body, per_file) = data(mb / files);
    let paths: Vec<String> = (0..files).map(|i| format!("/files/{i}")).collect();
    let entries: Vec<(&str, &str, Option<u64>)> = paths
        .iter()
        .map(|p| ("Patient", p.as_str(), Some(per_file)))
        .collect();
    script_export(&peer, &manifest(&peer, false, &entries));
    for path in &paths {
        peer.on(
            &format!("GET {path}"),
            vec![Reply::status(200).body(body.clone())],
        );
    }
    let total_mb = (body.len() * files) as f64 / 1e6;

    // Baseline: the same files, 4 at a time, read and discarded.
    let baseline = runtime.block_on(async {
        let client = reqwest::Client::new();
        let started = Instant::now();
        let tasks = paths.iter().map(|p| {
            let client = client.clone();
            let url = peer.at(p);
            async move {
                let mut stream = client.get(url).send().await.unwrap().bytes_stream();
                let mut n = 0usize;
                while let Some(chunk) = stream.next().await {
                    n += chunk.unwrap().len();
                }
                n
            }
        });
        let bytes: usize = futures::future::join_all(tasks).await.into_iter().sum();
        assert_eq!(bytes, body.len() * files);
        started.elapsed()
    });

    let out = tempfile::tempdir().unwrap();
    let mut options = ExportOptions::new(
        ExportRequest::new(peer.at("/fhir"), Level::System),
        out.path(),
    );
    options.retry.min_retry_after = Duration::ZERO;
    let started = Instant::now();
    let summary = runtime
        .block_on(Exporter::new(options).run_async())
        .unwrap();
    let client = started.elapsed();
    assert_eq!(summary.resources, per_file * files as u64);

    let rate = |d: Duration| total_mb / d.as_secs_f64();
    println!(
        "data: {files} files, {total_mb:.0} MB, {} resources",
        summary.resources
    );
    println!("baseline (reqwest, discard):  {:>7.1} MB/s", rate(baseline));
    println!(
        "bulk client (check + write):  {:>7.1} MB/s, {:.0} resources/s",
        rate(client),
        summary.resources as f64 / client.as_secs_f64()
    );
    println!(
        "ratio client/baseline:         {:>7.2}",
        baseline.as_secs_f64() / client.as_secs_f64()
    );
}
