//! The Inferno Bulk Data STU2 server checks (shared/docs/bulk-data.md §3.1), reimplemented
//! against a real server on an ephemeral port, at Group, Patient and System level, on SQLite
//! and PostgreSQL, with files in a folder and in Azurite. The SMART Backend Services checks
//! (1–3, 5, 15) need authorization, which this server does not run here (`requiresAccessToken`
//! is false, so downloads are capability URLs).

mod export_support;

use export_support::{Client, Db, Options, TestServer, is_outcome, status_url};
use serde_json::Value;

/// The three kick-off URLs of a server.
fn levels(server: &TestServer) -> [String; 3] {
    [
        format!("{}/Group/g1/$export", server.base),
        format!("{}/Patient/$export", server.base),
        format!("{}/$export", server.base),
    ]
}

/// Checks 4: the CapabilityStatement declares the export operations.
async fn capability_statement(server: &TestServer, client: &Client) {
    let response = client
        .http
        .get(format!("{}/metadata", server.base))
        .header("Accept", "application/fhir+json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let capability: Value = response.json().await.unwrap();
    let rest = &capability["rest"][0];
    let group_ops: Vec<&str> = rest["resource"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["type"] == "Group")
        .flat_map(|r| r["operation"].as_array().into_iter().flatten())
        .filter_map(|op| op["name"].as_str())
        .collect();
    assert!(group_ops.contains(&"export"), "Group declares $export");
    let instantiates = capability["instantiates"].as_array().unwrap();
    assert!(
        instantiates
            .iter()
            .any(|u| u == "http://hl7.org/fhir/uv/bulkdata/CapabilityStatement/bulk-data"),
        "instantiates the Bulk Data CapabilityStatement"
    );
}

/// Checks 6–14 at one level: kick-off, polling, manifest, downloads, content.
async fn export_at(server: &TestServer, client: &Client, url: &str) {
    let response = client.kickoff(url, &[]).await;
    assert_eq!(response.status(), 202, "6: kick-off of {url}");
    let status = status_url(&response);
    // 7: polled honouring Retry-After (see Client::poll).
    let response = client.poll(&status).await;
    if response.status() != 200 {
        panic!("8: completion: {}", response.text().await.unwrap());
    }
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.contains("application/json"),
        "8: {content_type}"
    );
    let manifest: Value = response.json().await.unwrap();
    for field in [
        "transactionTime",
        "request",
        "requiresAccessToken",
        "output",
        "error",
    ] {
        assert!(manifest.get(field).is_some(), "9: manifest has {field}");
    }
    assert!(manifest["requiresAccessToken"].is_boolean());
    assert!(manifest["request"].as_str().unwrap().ends_with("$export"));
    let mut patients = 0;
    let outputs = manifest["output"].as_array().unwrap();
    assert!(!outputs.is_empty());
    for output in outputs {
        let resource_type = output["type"].as_str().expect("10: output has type");
        let file_url = output["url"].as_str().expect("10: output has url");
        assert!(file_url.starts_with("http://"), "10: absolute url");
        let response = client
            .http
            .get(file_url)
            .header("Accept", "application/fhir+ndjson")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "11: download");
        assert_eq!(
            response.headers()["content-type"],
            "application/fhir+ndjson",
            "11: Content-Type"
        );
        let text = response.text().await.unwrap();
        let mut count = 0;
        for line in text.lines() {
            let resource: Value = serde_json::from_str(line).expect("12: every line is JSON");
            assert_eq!(resource["resourceType"], resource_type, "12: type matches");
            count += 1;
        }
        assert_eq!(output["count"], count, "count matches the lines");
        if resource_type == "Patient" {
            patients += count;
        }
    }
    assert!(patients >= 2, "14: at least 2 patients");
    // The files sit in a folder named by the job id, in the folder or the container.
    let id = status.rsplit('/').next().unwrap().to_owned();
    let in_job_folder = |keys: &[String]| {
        keys.iter()
            .filter(|k| k.starts_with(&format!("{id}/")))
            .count()
    };
    assert_eq!(in_job_folder(&server.exported_keys().await), outputs.len());
    assert_eq!(client.delete(&status).await.status(), 202);
    assert_eq!(
        in_job_folder(&server.exported_keys().await),
        0,
        "DELETE removes the files"
    );
}

/// Checks 16–20 at one level: output formats, `_since`, cancel → 404.
async fn parameters_at(client: &Client, url: &str) {
    for format in ["application/fhir%2Bndjson", "application/ndjson", "ndjson"] {
        let status = client
            .start(&format!("{url}?_outputFormat={format}"), &[])
            .await;
        assert_eq!(
            client.delete(&status).await.status(),
            202,
            "16-18: {format}"
        );
    }
    let status = client
        .start(&format!("{url}?_since=2010-03-01T00:00:00Z"), &[])
        .await;
    assert_eq!(client.delete(&status).await.status(), 202, "19: _since");
    let status = client.start(url, &[]).await;
    assert_eq!(client.delete(&status).await.status(), 202, "20: DELETE");
    let response = client.http.get(&status).send().await.unwrap();
    assert_eq!(response.status(), 404, "20: status after DELETE");
    let body: Value = response.json().await.unwrap();
    assert!(is_outcome(&body), "20: 404 carries an OperationOutcome");
}

async fn conformance(options: Options) {
    let Some(server) = TestServer::start(options).await else {
        return;
    };
    let client = Client::default();
    capability_statement(&server, &client).await;
    for url in levels(&server) {
        export_at(&server, &client, &url).await;
        parameters_at(&client, &url).await;
    }
    server.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stu2_server_checks_pass_on_sqlite_with_a_folder() {
    conformance(Options::new(Db::Sqlite)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stu2_server_checks_pass_on_postgres_with_a_folder() {
    conformance(Options::new(Db::Postgres)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stu2_server_checks_pass_on_sqlite_with_azurite() {
    let mut options = Options::new(Db::Sqlite);
    options.azurite = true;
    conformance(options).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stu2_server_checks_pass_on_postgres_with_azurite() {
    let mut options = Options::new(Db::Postgres);
    options.azurite = true;
    conformance(options).await;
}
