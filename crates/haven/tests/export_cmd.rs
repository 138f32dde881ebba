//! `haven export` from the command line, against a scripted Bulk Data peer (a real HTTP server on
//! 127.0.0.1): flags to kick-off, output layout, exit codes, and resuming after `kill -9`.

#[path = "../../bulk/tests/peer/mod.rs"]
mod peer;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use peer::{Peer, Reply, manifest, patients, script_export};
use serde_json::Value;

fn haven() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_haven"));
    command.env_remove("HAVEN_TOKEN");
    command
}

/// A peer running on a runtime of its own, so the test can run the CLI synchronously.
fn start_peer() -> (Peer, tokio::runtime::Runtime) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let peer = runtime.block_on(Peer::start());
    (peer, runtime)
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn export(peer: &Peer, out: &Path, extra: &[&str]) -> Output {
    haven()
        .arg("export")
        .arg("--server")
        .arg(peer.at("/fhir"))
        .args(extra)
        .arg(out)
        .output()
        .unwrap()
}

#[test]
fn group_export_by_post_with_a_token_from_the_environment() {
    let (peer, _runtime) = start_peer();
    let m = manifest(
        &peer,
        true,
        &[
            ("Patient", "/files/p1", Some(2)),
            ("Condition", "/files/c1", Some(1)),
        ],
    );
    peer.on(
        "POST /fhir/Group/g1/$export",
        vec![Reply::status(202).header("content-location", peer.at("/status/1"))],
    );
    peer.on("GET /status/1", vec![Reply::status(200).json(&m)]);
    peer.on("DELETE /status/1", vec![Reply::status(202)]);
    peer.on("GET /files/p1", vec![Reply::ndjson(&patients(2))]);
    peer.on(
        "GET /files/c1",
        vec![Reply::ndjson(&[
            serde_json::json!({"resourceType": "Condition", "id": "c"}),
        ])],
    );
    let out = tempfile::tempdir().unwrap();

    let output = haven()
        .env("HAVEN_TOKEN", "env-token")
        .args([
            "export",
            "--server",
            &peer.at("/fhir"),
            "--group",
            "g1",
            "--type",
            "Patient,Condition",
            "--post",
        ])
        .arg(out.path())
        .output()
        .unwrap();

    assert!(output.status.success(), "{}", stderr(&output));
    let kickoff = &peer.seen("POST /fhir/Group/g1/$export")[0];
    assert_eq!(kickoff.headers["authorization"], "Bearer env-token");
    let body: Value = serde_json::from_slice(&kickoff.body).unwrap();
    assert_eq!(body["parameter"].as_array().unwrap().len(), 2);
    assert_eq!(
        peer.seen("GET /files/p1")[0].headers["authorization"],
        "Bearer env-token"
    );
    assert!(out.path().join("Patient.000.ndjson").exists());
    assert!(out.path().join("Condition.000.ndjson").exists());
    assert!(out.path().join("manifest.json").exists());
    assert!(out.path().join("log.ndjson").exists());
    let text = stderr(&output);
    assert!(text.contains("exported 3 resources in 2 files"), "{text}");
    assert!(
        text.contains("transactionTime 2026-11-28T10:00:00Z"),
        "{text}"
    );
    assert!(!text.contains("env-token"));
}

#[test]
fn a_killed_export_resumes_where_it_stopped() {
    let (peer, _runtime) = start_peer();
    let m = manifest(
        &peer,
        false,
        &[
            ("Patient", "/files/p1", Some(1)),
            ("Patient", "/files/p2", Some(2)),
            ("Patient", "/files/p3", Some(3)),
        ],
    );
    script_export(&peer, &m);
    peer.on("GET /files/p1", vec![Reply::ndjson(&patients(1))]);
    peer.on("GET /files/p2", vec![Reply::ndjson(&patients(2))]);
    peer.on(
        "GET /files/p3",
        vec![Reply::ndjson(&patients(3)).delay(Duration::from_secs(120))],
    );
    let out = tempfile::tempdir().unwrap();
    let mut child = haven()
        .args(["export", "--server", &peer.at("/fhir")])
        .arg(out.path())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let journal = out.path().join(".haven-export/finished.ndjson");
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::fs::read_to_string(&journal).map_or(0, |j| j.lines().count()) < 2
        || peer.seen("GET /files/p3").is_empty()
    {
        assert!(
            Instant::now() < deadline,
            "the first two files never finished"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(
        !out.path().join("Patient.002.ndjson").exists(),
        "an unfinished file is never in place"
    );

    peer.on("GET /files/p3", vec![Reply::ndjson(&patients(3))]);
    let output = export(&peer, out.path(), &[]);

    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("exported 6 resources in 3 files"),
        "{}",
        stderr(&output)
    );
    assert!(stderr(&output).contains("(resumed)"));
    assert_eq!(
        peer.seen("GET /fhir/$export").len(),
        1,
        "no second kick-off"
    );
    assert_eq!(
        peer.seen("GET /files/p1").len(),
        1,
        "finished files are not fetched again"
    );
    assert_eq!(peer.seen("GET /files/p3").len(), 2);
    assert_eq!(
        std::fs::read_to_string(out.path().join("Patient.002.ndjson"))
            .unwrap()
            .lines()
            .count(),
        3
    );
    assert_eq!(peer.seen("DELETE /status/1").len(), 1);
}

#[test]
fn a_failed_export_exits_2_and_says_how_to_resume() {
    let (peer, _runtime) = start_peer();
    peer.on(
        "GET /fhir/Patient/$export",
        vec![Reply::outcome(400, "not-supported")],
    );
    let out = tempfile::tempdir().unwrap();

    let output = export(&peer, out.path(), &["--patient"]);

    assert_eq!(output.status.code(), Some(2));
    let text = stderr(&output);
    assert!(
        text.contains("run the same command again to resume"),
        "{text}"
    );
    assert!(
        text.contains("HTTP 400 (error not-supported: scripted failure)"),
        "{text}"
    );
}

#[test]
fn bad_flags_are_refused_before_any_request() {
    let (peer, _runtime) = start_peer();
    let out = tempfile::tempdir().unwrap();
    for (flags, message) in [
        (
            &["--since", "yesterday"][..],
            "--since must be a FHIR instant",
        ),
        (&["--patient", "--group", "g"][..], "cannot be used with"),
        (&["--group", "../etc"][..], "Group id"),
    ] {
        let output = export(&peer, out.path(), flags);
        assert_eq!(output.status.code(), Some(2), "{flags:?}");
        assert!(
            stderr(&output).contains(message),
            "{flags:?}: {}",
            stderr(&output)
        );
    }
    let output = haven()
        .args(["export", "--server", "not a url"])
        .arg(out.path())
        .output()
        .unwrap();
    assert!(
        stderr(&output).contains("--server is not an absolute URL"),
        "{}",
        stderr(&output)
    );
    assert!(peer.seen("GET /fhir/$export").is_empty());
}

/// Resources per type in the NDJSON files directly in `out`.
fn exported(out: &Path) -> std::collections::BTreeMap<String, u64> {
    let mut counts = std::collections::BTreeMap::new();
    for entry in std::fs::read_dir(out).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        if name.ends_with(".ndjson") && name != "log.ndjson" {
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

#[test]
fn exports_from_haven_serve_then_only_the_changes_with_since_auto() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("synth");
    let report = synth::generate(&synth::SynthOptions::new(8, 3, &data), &|_| {}).unwrap();
    let files: Vec<std::path::PathBuf> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "ndjson"))
        .collect();
    let store: std::sync::Arc<dyn store::Store> =
        std::sync::Arc::from(store::open(dir.path().join("haven.db").to_str().unwrap()).unwrap());
    server::load::load(
        store.as_ref(),
        &files,
        &server::load::LoadOptions::default(),
        &mut |_| {},
    )
    .unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let config = server::ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        export_to: dir.path().join("exports").to_str().unwrap().to_owned(),
        ..server::ServerConfig::default()
    };
    let bound = runtime
        .block_on(server::Server::bind(config, store.clone()))
        .unwrap();
    let base = bound.state().base_url.to_string();
    runtime.spawn(bound.run_until(std::future::pending()));
    let out = dir.path().join("out");
    let run = |extra: &[&str]| {
        haven()
            .args(["export", "--server", &base])
            .args(extra)
            .arg(&out)
            .output()
            .unwrap()
    };

    let first = run(&["--since", "auto"]);

    assert!(first.status.success(), "{}", stderr(&first));
    assert_eq!(exported(&out), report.by_type);

    let patient: Value = serde_json::from_str(
        std::fs::read_to_string(out.join("Patient.000.ndjson"))
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    let mut changed = patient.clone();
    changed["gender"] = "other".into();
    std::thread::sleep(Duration::from_millis(20));
    store
        .transaction(vec![store::Write::Update {
            resource: changed,
            if_match: None,
        }])
        .unwrap();

    let second = run(&["--since", "auto", "--type", "Patient,Observation"]);

    assert!(second.status.success(), "{}", stderr(&second));
    assert_eq!(
        exported(&out),
        std::collections::BTreeMap::from([("Patient".to_owned(), 1)])
    );
    let log = std::fs::read_to_string(out.join("log.ndjson")).unwrap();
    let kickoff = log.lines().rfind(|l| l.contains("\"kickoff\"")).unwrap();
    assert!(
        kickoff.contains("_since"),
        "the second kick-off asks for changes only"
    );
}
