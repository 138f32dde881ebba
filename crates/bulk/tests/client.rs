//! The Bulk Data client against a scripted, fault-injecting peer (a real HTTP server on
//! 127.0.0.1): the robustness paths real servers exercise.

mod peer;

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bulk::{Error, Event, ExportOptions, ExportRequest, Exporter, Level, RetryPolicy, StaticToken};
use peer::{Peer, Reply, manifest, patients, script_export};
use serde_json::{Value, json};

/// Options with millisecond waits, so fault paths run fast.
fn options(peer: &Peer, out: &Path) -> ExportOptions {
    let mut options = ExportOptions::new(ExportRequest::new(peer.at("/fhir"), Level::System), out);
    options.retry = RetryPolicy {
        attempts: 4,
        initial_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
        min_retry_after: Duration::from_millis(1),
        max_retry_after: Duration::from_millis(200),
    };
    options.poll_initial = Duration::from_millis(5);
    options.poll_max = Duration::from_millis(20);
    options
}

/// An exporter that records its events.
fn recording(options: ExportOptions) -> (Exporter, Arc<Mutex<Vec<Event>>>) {
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    let exporter =
        Exporter::new(options).with_observer(move |e| sink.lock().unwrap().push(e.clone()));
    (exporter, events)
}

fn read(path: impl AsRef<Path>) -> String {
    std::fs::read_to_string(path).unwrap()
}

fn log_events(out: &Path) -> Vec<Value> {
    read(out.join("log.ndjson"))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plain_export_writes_files_manifest_log_and_releases_the_server() {
    let peer = Peer::start().await;
    let m = manifest(
        &peer,
        false,
        &[
            ("Patient", "/files/p1", Some(3)),
            ("Patient", "/files/p2", None),
        ],
    );
    script_export(&peer, &m);
    peer.on("GET /files/p1", vec![Reply::ndjson(&patients(3))]);
    peer.on("GET /files/p2", vec![Reply::ndjson(&patients(2))]);
    let out = tempfile::tempdir().unwrap();
    let (exporter, events) = recording(options(&peer, out.path()));

    let summary = exporter.run_async().await.unwrap();

    assert_eq!(
        (summary.files, summary.resources, summary.resumed),
        (2, 5, false)
    );
    assert_eq!(summary.transaction_time, "2026-11-28T10:00:00Z");
    assert_eq!(
        read(out.path().join("Patient.000.ndjson")).lines().count(),
        3
    );
    assert_eq!(
        read(out.path().join("Patient.001.ndjson")).lines().count(),
        2
    );
    let saved: Value = serde_json::from_str(&read(out.path().join("manifest.json"))).unwrap();
    assert_eq!(saved, m);
    let kickoff = &peer.seen("GET /fhir/$export")[0];
    assert_eq!(kickoff.headers["accept"], "application/fhir+json");
    assert_eq!(kickoff.headers["prefer"], "respond-async");
    assert_eq!(
        peer.seen("GET /status/1")[0].headers["accept"],
        "application/json"
    );
    assert_eq!(
        peer.seen("GET /files/p1")[0].headers["accept"],
        "application/fhir+ndjson"
    );
    assert!(peer.seen("GET /files/p1")[0].headers["accept-encoding"].contains("gzip"));
    assert_eq!(peer.seen("DELETE /status/1").len(), 1);
    assert!(
        events
            .lock()
            .unwrap()
            .iter()
            .any(|e| matches!(e, Event::Waiting { progress: Some(p), .. } if p == "50% complete"))
    );

    let log = log_events(out.path());
    let ids: Vec<&str> = log.iter().map(|l| l["eventId"].as_str().unwrap()).collect();
    assert_eq!(
        ids[..3],
        ["kickoff", "status_progress", "status_page_complete"]
    );
    assert!(ids.contains(&"status_complete") && ids.contains(&"manifest_complete"));
    assert_eq!(ids.iter().filter(|i| **i == "download_request").count(), 2);
    assert_eq!(ids.iter().filter(|i| **i == "download_complete").count(), 2);
    assert_eq!(*ids.last().unwrap(), "export_complete");
    assert_eq!(log[0]["eventDetail"]["exportUrl"], peer.at("/fhir/$export"));
    assert_eq!(log[1]["eventDetail"]["xProgress"], "50% complete");
    let complete = log
        .iter()
        .find(|l| l["eventId"] == "status_complete")
        .unwrap();
    assert_eq!(
        complete["eventDetail"]["transactionTime"],
        "2026-11-28T10:00:00Z"
    );
    assert_eq!(log.last().unwrap()["eventDetail"]["resources"], 5);
    assert!(
        log.iter()
            .all(|l| l["exportId"] == log[0]["exportId"] && l["timestamp"].is_string())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn post_kickoff_sends_a_parameters_body() {
    let peer = Peer::start().await;
    script_export(&peer, &manifest(&peer, false, &[]));
    let out = tempfile::tempdir().unwrap();
    let mut options = options(&peer, out.path());
    options.request.post = true;
    options.request.types = vec!["Patient".into(), "Condition".into()];
    options.request.since = Some("2026-01-01T00:00:00Z".into());

    Exporter::new(options).run_async().await.unwrap();

    let kickoff = &peer.seen("POST /fhir/$export")[0];
    assert_eq!(kickoff.headers["content-type"], "application/fhir+json");
    assert_eq!(kickoff.headers["prefer"], "respond-async");
    let body: Value = serde_json::from_slice(&kickoff.body).unwrap();
    assert_eq!(body["resourceType"], "Parameters");
    assert_eq!(
        body["parameter"][0],
        json!({"name": "_since", "valueInstant": "2026-01-01T00:00:00Z"})
    );
    assert_eq!(
        body["parameter"][2],
        json!({"name": "_type", "valueString": "Condition"})
    );
    // A relative Content-Location is resolved against the kick-off URL.
    assert_eq!(peer.seen("GET /status/1").len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn retry_after_is_honoured_in_every_form_and_clamped() {
    let peer = Peer::start().await;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let m = manifest(&peer, false, &[]);
    peer.on(
        "GET /fhir/$export",
        vec![Reply::status(202).header("content-location", peer.at("/status/1"))],
    );
    peer.on(
        "GET /status/1",
        vec![
            // delta-seconds, far too long: clamped to the 200 ms maximum.
            Reply::status(202).header("retry-after", "3600"),
            // an HTTP-date in the past: the minimum wait.
            Reply::status(202).header("retry-after", "Sun, 06 Nov 1994 08:49:37 GMT"),
            // the SMART reference server's 429 with an epoch timestamp an hour ahead: clamped.
            Reply::status(429).header("retry-after", (now + 3600).to_string()),
            // epoch milliseconds.
            Reply::status(429).header("retry-after", ((now + 3600) * 1000).to_string()),
            // no Retry-After: exponential backoff from poll_initial.
            Reply::status(202),
            Reply::status(200).json(&m),
        ],
    );
    peer.on("DELETE /status/1", vec![Reply::status(202)]);
    let out = tempfile::tempdir().unwrap();
    let (exporter, events) = recording(options(&peer, out.path()));

    exporter.run_async().await.unwrap();

    let waits: Vec<Duration> = events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            Event::Waiting { wait, .. } => Some(*wait),
            Event::Retrying {
                what: "status",
                wait,
                ..
            } => Some(*wait),
            _ => None,
        })
        .collect();
    let ms = Duration::from_millis;
    assert_eq!(waits, [ms(200), ms(1), ms(200), ms(200), ms(20)]);
}

#[tokio::test(flavor = "multi_thread")]
async fn downloads_retry_429_5xx_and_transient_outcomes() {
    let peer = Peer::start().await;
    script_export(
        &peer,
        &manifest(&peer, false, &[("Patient", "/files/p1", Some(2))]),
    );
    peer.on(
        "GET /files/p1",
        vec![
            Reply::status(503),
            Reply::status(429).header("retry-after", "0"),
            Reply::outcome(500, "transient"),
            Reply::ndjson(&patients(2)),
        ],
    );
    let out = tempfile::tempdir().unwrap();

    let summary = Exporter::new(options(&peer, out.path()))
        .run_async()
        .await
        .unwrap();

    assert_eq!(summary.resources, 2);
    assert_eq!(peer.seen("GET /files/p1").len(), 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn retries_are_bounded() {
    let peer = Peer::start().await;
    script_export(
        &peer,
        &manifest(&peer, false, &[("Patient", "/files/p1", None)]),
    );
    peer.on("GET /files/p1", vec![Reply::status(502)]);
    let out = tempfile::tempdir().unwrap();

    let error = Exporter::new(options(&peer, out.path()))
        .run_async()
        .await
        .unwrap_err();

    assert!(
        error
            .to_string()
            .contains("gave up after 4 tries: HTTP 502"),
        "{error}"
    );
    assert_eq!(peer.seen("GET /files/p1").len(), 4);
    assert!(!out.path().join("Patient.000.ndjson").exists());
    assert!(!out.path().join("Patient.000.ndjson.part").exists());
    assert_eq!(
        peer.seen("DELETE /status/1").len(),
        0,
        "files are not released while some are missing"
    );
    let log = log_events(out.path());
    assert!(
        log.iter()
            .any(|l| l["eventId"] == "download_error" && l["eventDetail"]["code"] == 502)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_transient_status_outcome_is_retried_and_a_failed_job_is_not() {
    let peer = Peer::start().await;
    let m = manifest(&peer, false, &[]);
    peer.on(
        "GET /fhir/$export",
        vec![Reply::status(202).header("content-location", peer.at("/status/1"))],
    );
    peer.on(
        "GET /status/1",
        vec![
            Reply::outcome(500, "transient"),
            Reply::status(200).json(&m),
        ],
    );
    let out = tempfile::tempdir().unwrap();
    Exporter::new(options(&peer, out.path()))
        .run_async()
        .await
        .unwrap();
    assert_eq!(peer.seen("GET /status/1").len(), 2);
    assert!(
        log_events(out.path())
            .iter()
            .any(|l| l["eventId"] == "status_error")
    );

    let peer = Peer::start().await;
    peer.on(
        "GET /fhir/$export",
        vec![Reply::status(202).header("content-location", peer.at("/status/1"))],
    );
    peer.on("GET /status/1", vec![Reply::outcome(500, "processing")]);
    let out = tempfile::tempdir().unwrap();
    let error = Exporter::new(options(&peer, out.path()))
        .run_async()
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "status {}: HTTP 500 (error processing: scripted failure)",
            peer.at("/status/1")
        )
    );
    assert_eq!(peer.seen("GET /status/1").len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_kickoff_is_reported_with_its_outcome() {
    let peer = Peer::start().await;
    peer.on(
        "GET /fhir/$export",
        vec![Reply::outcome(400, "not-supported")],
    );
    let out = tempfile::tempdir().unwrap();
    let error = Exporter::new(options(&peer, out.path()))
        .run_async()
        .await
        .unwrap_err();
    assert!(
        matches!(error, Error::Status { status: 400, .. }),
        "{error}"
    );
    let log = log_events(out.path());
    assert_eq!(log[0]["eventId"], "kickoff");
    assert_eq!(log[0]["eventDetail"]["errorCode"], 400);
}

#[tokio::test(flavor = "multi_thread")]
async fn redirects_to_another_origin_drop_the_token() {
    let storage = Peer::start().await;
    storage.on("GET /blob/p1", vec![Reply::ndjson(&patients(1))]);
    let peer = Peer::start().await;
    script_export(
        &peer,
        &manifest(
            &peer,
            true,
            &[
                ("Patient", "/files/p1", Some(1)),
                ("Patient", "/files/p2", Some(1)),
            ],
        ),
    );
    peer.on(
        "GET /files/p1",
        vec![Reply::status(307).header("location", storage.at("/blob/p1"))],
    );
    peer.on(
        "GET /files/p2",
        vec![Reply::status(307).header("location", peer.at("/files/p2b"))],
    );
    peer.on("GET /files/p2b", vec![Reply::ndjson(&patients(1))]);
    let out = tempfile::tempdir().unwrap();

    Exporter::new(options(&peer, out.path()))
        .with_tokens(Arc::new(StaticToken::new("secret-token")))
        .run_async()
        .await
        .unwrap();

    assert_eq!(
        peer.seen("GET /fhir/$export")[0].headers["authorization"],
        "Bearer secret-token"
    );
    assert_eq!(
        peer.seen("GET /files/p1")[0].headers["authorization"],
        "Bearer secret-token"
    );
    assert!(
        !storage.seen("GET /blob/p1")[0]
            .headers
            .contains_key("authorization")
    );
    assert_eq!(
        peer.seen("GET /files/p2b")[0].headers["authorization"],
        "Bearer secret-token",
        "same origin keeps it"
    );
}

/// Hands out `t1`, `t2`, … and records the tokens it was told the server refused.
#[derive(Default)]
struct Rotating {
    issued: std::sync::atomic::AtomicUsize,
    refused: Mutex<Vec<String>>,
}

impl bulk::TokenProvider for Rotating {
    fn access_token(&self) -> bulk::auth::TokenFuture<'_> {
        Box::pin(async {
            let n = self.issued.load(std::sync::atomic::Ordering::SeqCst);
            Ok(Some(format!("t{}", n + 1)))
        })
    }

    fn invalidate(&self, token: &str) {
        self.refused.lock().unwrap().push(token.to_owned());
        self.issued
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_token_is_dropped_and_the_request_sent_again_with_a_new_one() {
    let peer = Peer::start().await;
    script_export(
        &peer,
        &manifest(&peer, true, &[("Patient", "/files/p1", Some(1))]),
    );
    peer.on(
        "GET /files/p1",
        vec![Reply::outcome(401, "login"), Reply::ndjson(&patients(1))],
    );
    let out = tempfile::tempdir().unwrap();
    let tokens = Arc::new(Rotating::default());

    Exporter::new(options(&peer, out.path()))
        .with_tokens(tokens.clone())
        .run_async()
        .await
        .unwrap();

    let seen = peer.seen("GET /files/p1");
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].headers["authorization"], "Bearer t1");
    assert_eq!(seen[1].headers["authorization"], "Bearer t2");
    assert_eq!(*tokens.refused.lock().unwrap(), ["t1"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn no_token_is_sent_for_downloads_when_the_manifest_does_not_require_one() {
    let peer = Peer::start().await;
    script_export(
        &peer,
        &manifest(&peer, false, &[("Patient", "/files/p1", Some(1))]),
    );
    peer.on("GET /files/p1", vec![Reply::ndjson(&patients(1))]);
    let out = tempfile::tempdir().unwrap();

    Exporter::new(options(&peer, out.path()))
        .with_tokens(Arc::new(StaticToken::new("secret-token")))
        .run_async()
        .await
        .unwrap();

    assert_eq!(
        peer.seen("GET /status/1")[0].headers["authorization"],
        "Bearer secret-token"
    );
    assert!(
        !peer.seen("GET /files/p1")[0]
            .headers
            .contains_key("authorization")
    );
    assert_eq!(
        peer.seen("DELETE /status/1")[0].headers["authorization"],
        "Bearer secret-token"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn paged_manifests_are_followed_and_saved() {
    let peer = Peer::start().await;
    let mut first = manifest(&peer, false, &[("Patient", "/files/p1", Some(1))]);
    first["link"] = json!([{"relation": "next", "url": peer.at("/status/1/page/2")}]);
    script_export(&peer, &first);
    peer.on(
        "GET /status/1/page/2",
        vec![Reply::status(200).json(&manifest(
            &peer,
            false,
            &[("Patient", "/files/p2", Some(2))],
        ))],
    );
    peer.on("GET /files/p1", vec![Reply::ndjson(&patients(1))]);
    peer.on("GET /files/p2", vec![Reply::ndjson(&patients(2))]);
    let out = tempfile::tempdir().unwrap();

    let summary = Exporter::new(options(&peer, out.path()))
        .run_async()
        .await
        .unwrap();

    assert_eq!((summary.files, summary.resources), (2, 3));
    assert_eq!(
        read(out.path().join("Patient.001.ndjson")).lines().count(),
        2
    );
    assert!(out.path().join("manifest.001.json").exists());
    let manifests = log_events(out.path())
        .into_iter()
        .find(|l| l["eventId"] == "manifest_complete")
        .unwrap();
    assert_eq!(manifests["eventDetail"]["totalManifests"], 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_stu4_manifest_shape_is_read_with_deleted_and_outcome_files() {
    let peer = Peer::start().await;
    let m = json!({
        "transactionTime": "2026-11-28T10:00:00+00:00",
        "requiresAccessToken": false,
        "output": [{"type": "Patient", "url": peer.at("/files/p1"), "count": 1}],
        "deleted": [{"url": peer.at("/files/d1"), "count": 1}],
        "outcome": [{"type": "OperationOutcome", "url": peer.at("/files/o1")}],
        "extension": [{"url": "http://example.org/ext", "valueString": "x"}]
    });
    script_export(&peer, &m);
    peer.on("GET /files/p1", vec![Reply::ndjson(&patients(1))]);
    peer.on(
        "GET /files/d1",
        vec![Reply::ndjson(&[
            json!({"resourceType": "Bundle", "type": "transaction",
            "entry": [{"request": {"method": "DELETE", "url": "Patient/gone"}}]}),
        ])],
    );
    peer.on(
        "GET /files/o1",
        vec![Reply::ndjson(&[json!({"resourceType": "OperationOutcome", "issue": [{"severity": "information", "code": "informational"}]})])],
    );
    let out = tempfile::tempdir().unwrap();

    let summary = Exporter::new(options(&peer, out.path()))
        .run_async()
        .await
        .unwrap();

    assert_eq!(summary.files, 3);
    assert!(read(out.path().join("deleted/Bundle.000.ndjson")).contains("Patient/gone"));
    assert!(read(out.path().join("error/OperationOutcome.000.ndjson")).contains("informational"));
}

#[tokio::test(flavor = "multi_thread")]
async fn gzip_bodies_are_decoded_declared_or_not() {
    let gzip = |lines: &[Value]| {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        for line in lines {
            encoder
                .write_all(&serde_json::to_vec(line).unwrap())
                .unwrap();
            encoder.write_all(b"\n").unwrap();
        }
        encoder.finish().unwrap()
    };
    let peer = Peer::start().await;
    script_export(
        &peer,
        &manifest(
            &peer,
            false,
            &[
                ("Patient", "/files/p1", Some(3)),
                ("Patient", "/files/p2", Some(2)),
            ],
        ),
    );
    peer.on(
        "GET /files/p1",
        vec![
            Reply::status(200)
                .header("content-encoding", "gzip")
                .body(gzip(&patients(3))),
        ],
    );
    peer.on(
        "GET /files/p2",
        vec![Reply::status(200).body(gzip(&patients(2)))],
    );
    let out = tempfile::tempdir().unwrap();

    Exporter::new(options(&peer, out.path()))
        .run_async()
        .await
        .unwrap();

    assert!(
        read(out.path().join("Patient.000.ndjson"))
            .starts_with("{\"resourceType\":\"Patient\",\"id\":\"p0\"}\n")
    );
    assert_eq!(
        read(out.path().join("Patient.001.ndjson")).lines().count(),
        2
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn count_mismatches_and_wrong_resource_types_fail_only_their_file() {
    let peer = Peer::start().await;
    script_export(
        &peer,
        &manifest(
            &peer,
            false,
            &[
                ("Patient", "/files/p1", Some(5)),
                ("Condition", "/files/c1", None),
                ("Patient", "/files/ok", Some(1)),
            ],
        ),
    );
    peer.on("GET /files/p1", vec![Reply::ndjson(&patients(4))]);
    peer.on("GET /files/c1", vec![Reply::ndjson(&patients(1))]);
    peer.on("GET /files/ok", vec![Reply::ndjson(&patients(1))]);
    let out = tempfile::tempdir().unwrap();

    let error = Exporter::new(options(&peer, out.path()))
        .run_async()
        .await
        .unwrap_err();

    let Error::Files(errors) = &error else {
        panic!("{error}")
    };
    let mut messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
    messages.sort();
    assert_eq!(
        messages,
        [
            "Condition.000.ndjson: line 1: resourceType Patient where the manifest says Condition",
            "Patient.000.ndjson: 4 resources where the manifest count is 5",
        ]
    );
    assert_eq!(
        peer.seen("GET /files/p1").len(),
        1,
        "invalid data is not retried"
    );
    assert!(!out.path().join("Patient.000.ndjson").exists());
    assert!(!out.path().join("Condition.000.ndjson").exists());
    assert!(!out.path().join("Condition.000.ndjson.part").exists());
    assert!(out.path().join("Patient.001.ndjson").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rerun_resumes_without_a_new_kickoff_and_skips_finished_files() {
    let peer = Peer::start().await;
    script_export(
        &peer,
        &manifest(
            &peer,
            false,
            &[
                ("Patient", "/files/p1", Some(1)),
                ("Patient", "/files/p2", Some(2)),
            ],
        ),
    );
    peer.on("GET /files/p1", vec![Reply::ndjson(&patients(1))]);
    peer.on("GET /files/p2", vec![Reply::status(500)]);
    let out = tempfile::tempdir().unwrap();
    Exporter::new(options(&peer, out.path()))
        .run_async()
        .await
        .unwrap_err();
    assert!(out.path().join("Patient.000.ndjson").exists());

    peer.on("GET /files/p2", vec![Reply::ndjson(&patients(2))]);
    let summary = Exporter::new(options(&peer, out.path()))
        .run_async()
        .await
        .unwrap();

    assert!(summary.resumed);
    assert_eq!((summary.files, summary.resources), (2, 3));
    assert_eq!(peer.seen("GET /fhir/$export").len(), 1);
    assert_eq!(peer.seen("GET /files/p1").len(), 1);
    assert_eq!(peer.seen("DELETE /status/1").len(), 1);
    let log = log_events(out.path());
    assert_eq!(log.iter().filter(|l| l["eventId"] == "kickoff").count(), 1);
    assert!(
        log.iter().all(|l| l["exportId"] == log[0]["exportId"]),
        "one export, one id"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rerun_after_kickoff_polls_the_recorded_status_url() {
    let peer = Peer::start().await;
    peer.on(
        "GET /fhir/$export",
        vec![Reply::status(202).header("content-location", peer.at("/status/1"))],
    );
    peer.on("GET /status/1", vec![Reply::outcome(500, "processing")]);
    let out = tempfile::tempdir().unwrap();
    Exporter::new(options(&peer, out.path()))
        .run_async()
        .await
        .unwrap_err();

    script_export(&peer, &manifest(&peer, false, &[]));
    peer.on("GET /fhir/$export", vec![Reply::outcome(500, "processing")]);
    Exporter::new(options(&peer, out.path()))
        .run_async()
        .await
        .unwrap();
    assert_eq!(peer.seen("GET /fhir/$export").len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_status_url_starts_a_new_export() {
    let peer = Peer::start().await;
    peer.on(
        "GET /fhir/$export",
        vec![Reply::status(202).header("content-location", peer.at("/status/1"))],
    );
    peer.on("GET /status/1", vec![Reply::status(503)]);
    let out = tempfile::tempdir().unwrap();
    Exporter::new(options(&peer, out.path()))
        .run_async()
        .await
        .unwrap_err();

    peer.on("GET /status/1", vec![Reply::outcome(404, "not-found")]);
    peer.on(
        "GET /fhir/$export",
        vec![Reply::status(202).header("content-location", peer.at("/status/2"))],
    );
    peer.on(
        "GET /status/2",
        vec![Reply::status(200).json(&manifest(&peer, false, &[]))],
    );
    let (exporter, events) = recording(options(&peer, out.path()));
    exporter.run_async().await.unwrap();

    assert_eq!(peer.seen("GET /fhir/$export").len(), 2);
    assert!(
        events
            .lock()
            .unwrap()
            .iter()
            .any(|e| matches!(e, Event::Expired { .. }))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unfinished_export_of_another_request_is_not_mixed_in() {
    let peer = Peer::start().await;
    peer.on(
        "GET /fhir/$export",
        vec![Reply::status(202).header("content-location", peer.at("/status/1"))],
    );
    peer.on("GET /status/1", vec![Reply::outcome(500, "processing")]);
    let out = tempfile::tempdir().unwrap();
    Exporter::new(options(&peer, out.path()))
        .run_async()
        .await
        .unwrap_err();

    let mut other = options(&peer, out.path());
    other.request.types = vec!["Condition".into()];
    let error = Exporter::new(other).run_async().await.unwrap_err();
    assert!(
        error
            .to_string()
            .contains("unfinished export of a different request"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn since_auto_asks_for_changes_since_the_last_completed_export() {
    let peer = Peer::start().await;
    script_export(
        &peer,
        &manifest(&peer, false, &[("Patient", "/files/p1", Some(2))]),
    );
    peer.on("GET /files/p1", vec![Reply::ndjson(&patients(2))]);
    let out = tempfile::tempdir().unwrap();
    let mut first = options(&peer, out.path());
    first.since_auto = true;
    Exporter::new(first.clone()).run_async().await.unwrap();
    assert!(
        !peer.seen("GET /fhir/$export")[0].uri.contains("_since"),
        "no previous export: everything"
    );

    let mut second = manifest(&peer, false, &[]);
    second["transactionTime"] = json!("2026-11-29T10:00:00Z");
    script_export(&peer, &second);
    Exporter::new(first.clone()).run_async().await.unwrap();
    assert!(
        peer.seen("GET /fhir/$export")[1]
            .uri
            .ends_with("$export?_since=2026-11-28T10%3A00%3A00Z")
    );
    assert!(
        !out.path().join("Patient.000.ndjson").exists(),
        "the previous export's files are replaced"
    );
    let log = log_events(out.path());
    assert_eq!(log[0]["eventId"], "kickoff");
    assert!(
        log.iter().all(|l| l["exportId"] == log[0]["exportId"]),
        "log.ndjson holds the latest export only"
    );
    let kept = std::fs::read_dir(out.path().join(".haven-export"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_str()
                .unwrap()
                .starts_with("log.")
        })
        .count();
    assert_eq!(kept, 1, "the previous export's log is kept aside");

    Exporter::new(first).run_async().await.unwrap();
    assert!(
        peer.seen("GET /fhir/$export")[2]
            .uri
            .ends_with("$export?_since=2026-11-29T10%3A00%3A00Z")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn downloads_run_in_parallel_up_to_the_per_host_limit() {
    let peer = Peer::start().await;
    let files: Vec<(String, String)> = (0..6)
        .map(|i| ("Patient".to_owned(), format!("/files/{i}")))
        .collect();
    let refs: Vec<(&str, &str, Option<u64>)> = files
        .iter()
        .map(|(t, p)| (t.as_str(), p.as_str(), Some(1)))
        .collect();
    script_export(&peer, &manifest(&peer, false, &refs));
    for (_, path) in &files {
        peer.on(
            &format!("GET {path}"),
            vec![Reply::ndjson(&patients(1)).delay(Duration::from_millis(150))],
        );
    }
    let out = tempfile::tempdir().unwrap();
    let mut options = options(&peer, out.path());
    options.downloads_per_host = 2;
    let (exporter, events) = recording(options);

    exporter.run_async().await.unwrap();

    assert_eq!(peer.max_in_flight(), 2);
    let done = events
        .lock()
        .unwrap()
        .iter()
        .filter(|e| matches!(e, Event::FileDone { .. }))
        .count();
    assert_eq!(done, 6);
}
