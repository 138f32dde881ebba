//! Helpers shared by the export integration tests: a real server on an ephemeral 127.0.0.1
//! port over SQLite or PostgreSQL, writing to a folder or to Azurite, a small data set, and a
//! Bulk Data client that kicks off, polls (honouring `Retry-After`) and downloads.

// Each test binary uses a subset of these helpers.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::{ACCEPT, CONTENT_LOCATION, RETRY_AFTER};
use serde_json::{Value, json};
use server::{AppState, Server, ServerConfig};
use store::{Store, Write};

/// Which database a test server runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    /// A SQLite file in the test's folder.
    Sqlite,
    /// A throwaway PostgreSQL database (`store::testing`).
    Postgres,
}

/// Where a test server's exports go.
pub enum Storage {
    /// A folder in the test's temporary folder.
    Folder,
    /// A container in an Azurite started for the test.
    Azurite(testkit::Azurite),
}

/// A running server and what it needs to stay alive.
pub struct TestServer {
    /// The FHIR base URL (`http://127.0.0.1:port/fhir`).
    pub base: String,
    /// The server's state (its store, settings and export jobs).
    pub state: AppState,
    /// Where its exports go (`az://…` for Azurite, a folder path otherwise).
    pub export_to: String,
    /// The destination options (Azurite's endpoint and key).
    pub options: BTreeMap<String, String>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    pub dir: tempfile::TempDir,
    _pg: Option<store::testing::TestDatabase>,
    _storage: Option<Storage>,
}

/// Options of a test server.
pub struct Options {
    /// The database.
    pub db: Db,
    /// Whether files go to Azurite rather than a folder.
    pub azurite: bool,
    /// Export settings.
    pub settings: server::export::ExportSettings,
}

impl Options {
    /// SQLite, a folder, default settings.
    pub fn new(db: Db) -> Options {
        Options {
            db,
            azurite: false,
            settings: server::export::ExportSettings::default(),
        }
    }
}

/// Opens the store of a test, `None` when PostgreSQL tests are skipped.
pub fn open_store(
    db: Db,
    dir: &std::path::Path,
) -> Option<(Arc<dyn Store>, Option<store::testing::TestDatabase>)> {
    match db {
        Db::Sqlite => {
            let store = store::open(dir.join("haven.db").to_str().unwrap()).unwrap();
            Some((Arc::from(store), None))
        }
        Db::Postgres => {
            let Some(database) = store::testing::database() else {
                eprintln!("skipped: HAVEN_SKIP_POSTGRES=1");
                return None;
            };
            let store = store::open(database.url()).unwrap();
            Some((Arc::from(store), Some(database)))
        }
    }
}

impl TestServer {
    /// Starts a server with the sample data loaded; `None` when its database or emulator is
    /// skipped.
    pub async fn start(options: Options) -> Option<TestServer> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_owned();
        let db = options.db;
        let (store, pg) = tokio::task::spawn_blocking(move || {
            let (store, pg) = open_store(db, &path)?;
            load_sample(store.as_ref());
            Some((store, pg))
        })
        .await
        .unwrap()?;
        TestServer::start_with(options, dir, store, pg).await
    }

    /// Starts a server over an existing store.
    pub async fn start_with(
        options: Options,
        dir: tempfile::TempDir,
        store: Arc<dyn Store>,
        pg: Option<store::testing::TestDatabase>,
    ) -> Option<TestServer> {
        let mut settings = options.settings;
        let (export_to, storage) = if options.azurite {
            let azurite = testkit::Azurite::start()?;
            azurite.create_container("exports");
            // The account's endpoint given directly (rather than emulator mode, which reads
            // it from the environment), so that tests need not set variables.
            settings.destination_options = BTreeMap::from([
                (
                    "account_name".to_owned(),
                    testkit::Azurite::ACCOUNT.to_owned(),
                ),
                ("account_key".to_owned(), testkit::Azurite::KEY.to_owned()),
                (
                    "endpoint".to_owned(),
                    format!("{}/{}", azurite.endpoint(), testkit::Azurite::ACCOUNT),
                ),
                ("allow_http".to_owned(), "true".to_owned()),
            ]);
            (
                "az://exports/haven".to_owned(),
                Some(Storage::Azurite(azurite)),
            )
        } else {
            (
                dir.path().join("exports").to_str().unwrap().to_owned(),
                Some(Storage::Folder),
            )
        };
        let options_map = settings.destination_options.clone();
        let config = ServerConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            export_to: export_to.clone(),
            export: settings,
            ..ServerConfig::default()
        };
        let server = Server::bind(config, store).await.unwrap();
        let base = server.state().base_url.to_string();
        let state = server.state().clone();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            server
                .run_until(async {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        });
        Some(TestServer {
            base,
            state,
            export_to,
            options: options_map,
            shutdown: Some(tx),
            task: Some(task),
            dir,
            _pg: pg,
            _storage: storage,
        })
    }

    /// Stops serving and waits for the server to finish.
    pub async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    /// Stops the server and drops it on a blocking thread (a PostgreSQL store must not be
    /// dropped inside the async runtime).
    pub async fn finish(mut self) {
        self.stop().await;
        tokio::task::spawn_blocking(move || drop(self))
            .await
            .unwrap();
    }

    /// The store.
    pub fn store(&self) -> &dyn Store {
        self.state.store.as_ref()
    }

    /// The object keys (`jobid/Patient-1.ndjson`) under the export destination.
    pub async fn exported_keys(&self) -> Vec<String> {
        let export_to = self.export_to.clone();
        let options = self.options.clone();
        tokio::task::spawn_blocking(move || {
            let dest = lake::Destination::open_with(&export_to, &options).unwrap();
            dest.list("").unwrap().into_iter().map(|o| o.key).collect()
        })
        .await
        .unwrap()
    }
}

/// The sample data: an Organization, three Patients (two in Group `g1`), two Observations and
/// a Condition per patient.
pub fn load_sample(store: &dyn Store) {
    let mut writes = vec![Write::Create(json!({
        "resourceType": "Organization", "id": "o1", "name": "General Hospital"
    }))];
    for (n, (family, gender)) in [("Alvarez", "female"), ("Brown", "male"), ("Chen", "female")]
        .iter()
        .enumerate()
    {
        let p = format!("p{}", n + 1);
        writes.push(Write::Create(json!({
            "resourceType": "Patient", "id": p, "gender": gender,
            "birthDate": format!("19{}0-05-0{}", n + 5, n + 1),
            "name": [{"family": family, "given": ["Sam"]}],
            "address": [{"city": "Springfield", "postalCode": "12345"}],
            "managingOrganization": {"reference": "Organization/o1"}
        })));
        for (k, status) in ["final", "amended"].iter().enumerate() {
            writes.push(Write::Create(json!({
                "resourceType": "Observation", "id": format!("{p}-obs{k}"), "status": status,
                "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
                "subject": {"reference": format!("Patient/{p}")},
                "effectiveDateTime": format!("202{k}-03-04T10:00:00Z"),
                "valueQuantity": {"value": 70 + n, "unit": "/min"}
            })));
        }
        writes.push(Write::Create(json!({
            "resourceType": "Condition", "id": format!("{p}-cond"),
            "subject": {"reference": format!("Patient/{p}")},
            "code": {"text": "Hypertension"}
        })));
    }
    writes.push(Write::Create(json!({
        "resourceType": "Group", "id": "g1", "type": "person", "actual": true,
        "member": [{"entity": {"reference": "Patient/p1"}}, {"entity": {"reference": "Patient/p2"}}]
    })));
    store.transaction(writes).unwrap();
}

/// A Bulk Data client for the tests.
pub struct Client {
    /// The HTTP client (gzip handled by reqwest).
    pub http: reqwest::Client,
}

impl Default for Client {
    fn default() -> Client {
        Client {
            http: reqwest::Client::new(),
        }
    }
}

/// What a completed export gave.
pub struct Completed {
    /// The manifest.
    pub manifest: Value,
    /// The lines of each output file, by manifest type, in manifest order.
    pub files: Vec<(String, Vec<Value>)>,
}

impl Completed {
    /// Every exported resource of a type.
    pub fn resources(&self, resource_type: &str) -> Vec<&Value> {
        self.files
            .iter()
            .filter(|(t, _)| t == resource_type)
            .flat_map(|(_, lines)| lines)
            .collect()
    }

    /// The ids of every exported resource of a type, sorted.
    pub fn ids(&self, resource_type: &str) -> Vec<String> {
        let mut ids: Vec<String> = self
            .resources(resource_type)
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_owned())
            .collect();
        ids.sort();
        ids
    }
}

impl Client {
    /// A GET kick-off with the two headers the specification asks for (plus `extra`).
    pub async fn kickoff(&self, url: &str, extra: &[(&str, &str)]) -> reqwest::Response {
        let mut request = self
            .http
            .get(url)
            .header(ACCEPT, "application/fhir+json")
            .header("Prefer", "respond-async");
        for (name, value) in extra {
            request = request.header(*name, *value);
        }
        request.send().await.unwrap()
    }

    /// A POST kick-off with a `Parameters` body.
    pub async fn kickoff_post(&self, url: &str, parameters: Value) -> reqwest::Response {
        self.http
            .post(url)
            .header(ACCEPT, "application/fhir+json")
            .header("Prefer", "respond-async")
            .header("Content-Type", "application/fhir+json")
            .body(parameters.to_string())
            .send()
            .await
            .unwrap()
    }

    /// Kicks off, checks the 202 and returns the status URL.
    pub async fn start(&self, url: &str, extra: &[(&str, &str)]) -> String {
        let response = self.kickoff(url, extra).await;
        assert_eq!(response.status(), 202, "kick-off of {url}");
        status_url(&response)
    }

    /// Polls until the job is no longer in progress, honouring `Retry-After` (else doubling
    /// the wait), as Inferno does; returns the final response.
    pub async fn poll(&self, status: &str) -> reqwest::Response {
        let started = Instant::now();
        let mut wait = Duration::from_millis(100);
        loop {
            let response = self
                .http
                .get(status)
                .header(ACCEPT, "application/json")
                .send()
                .await
                .unwrap();
            if !matches!(response.status().as_u16(), 202 | 429) {
                return response;
            }
            wait = match response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
            {
                Some(seconds) => Duration::from_secs(seconds),
                None => wait * 2,
            };
            assert!(
                started.elapsed() < Duration::from_secs(180),
                "the export did not finish in time"
            );
            tokio::time::sleep(wait).await;
        }
    }

    /// Runs an export to completion and downloads every output file.
    pub async fn export(&self, url: &str, extra: &[(&str, &str)]) -> Completed {
        let status = self.start(url, extra).await;
        self.complete(&status).await
    }

    /// Polls a job to completion and downloads its output files.
    pub async fn complete(&self, status: &str) -> Completed {
        let response = self.poll(status).await;
        if response.status() != 200 {
            panic!("status of {status}: {}", response.text().await.unwrap());
        }
        let manifest: Value = response.json().await.unwrap();
        let mut files = Vec::new();
        for entry in manifest["output"].as_array().unwrap() {
            let lines = self.download(entry["url"].as_str().unwrap()).await;
            files.push((entry["type"].as_str().unwrap().to_owned(), lines));
        }
        Completed { manifest, files }
    }

    /// Downloads an NDJSON file and parses its lines.
    pub async fn download(&self, url: &str) -> Vec<Value> {
        let response = self
            .http
            .get(url)
            .header(ACCEPT, "application/fhir+ndjson")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "download of {url}");
        let text = response.text().await.unwrap();
        text.lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }

    /// Sends DELETE to a status URL.
    pub async fn delete(&self, status: &str) -> reqwest::Response {
        self.http.delete(status).send().await.unwrap()
    }
}

/// The absolute `Content-Location` of a kick-off response.
pub fn status_url(response: &reqwest::Response) -> String {
    let location = response
        .headers()
        .get(CONTENT_LOCATION)
        .expect("a 202 kick-off has Content-Location")
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        location.starts_with("http://") || location.starts_with("https://"),
        "Content-Location is absolute"
    );
    location
}

/// Whether a body is an OperationOutcome with at least one issue.
pub fn is_outcome(body: &Value) -> bool {
    body["resourceType"] == "OperationOutcome"
        && body["issue"].as_array().is_some_and(|i| !i.is_empty())
}
