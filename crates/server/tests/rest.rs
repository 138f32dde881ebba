//! The REST API against a real server on an ephemeral port, on SQLite and on PostgreSQL
//! (`store::testing`), through a real HTTP client.

use std::sync::Arc;

use reqwest::{Client, Response, StatusCode};
use serde_json::{Value, json};

/// A server on 127.0.0.1:0 over one store, stopped when dropped.
struct TestServer {
    base: String,
    client: Client,
    name: &'static str,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl TestServer {
    async fn start(
        name: &'static str,
        store: Arc<dyn store::Store>,
        exports: &std::path::Path,
        max_body_bytes: usize,
    ) -> TestServer {
        let config = server::ServerConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            export_to: exports.display().to_string(),
            max_body_bytes,
            ..server::ServerConfig::default()
        };
        let server = server::Server::bind(config, store).await.unwrap();
        let base = server.state().base_url.to_string();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(server.run_until(async {
            let _ = stopped.await;
        }));
        TestServer {
            base,
            client: Client::new(),
            name,
            _stop: stop,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/{}", self.base, path.trim_start_matches('/'))
    }

    async fn get(&self, path: &str) -> Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    async fn get_json(&self, path: &str) -> Value {
        let response = self.get(path).await;
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "{} GET {path}",
            self.name
        );
        response.json().await.unwrap()
    }

    async fn post(&self, path: &str, body: &Value) -> Response {
        self.client
            .post(self.url(path))
            .header("content-type", "application/fhir+json")
            .body(body.to_string())
            .send()
            .await
            .unwrap()
    }

    async fn put(&self, path: &str, body: &Value) -> Response {
        self.client
            .put(self.url(path))
            .header("content-type", "application/fhir+json")
            .body(body.to_string())
            .send()
            .await
            .unwrap()
    }

    /// Creates a resource and returns its id.
    async fn create(&self, resource: Value) -> String {
        let resource_type = resource["resourceType"].as_str().unwrap().to_owned();
        let response = self.post(&resource_type, &resource).await;
        assert_eq!(response.status(), StatusCode::CREATED, "{}", self.name);
        let created: Value = response.json().await.unwrap();
        created["id"].as_str().unwrap().to_owned()
    }

    /// The total of a search.
    async fn total(&self, query: &str) -> u64 {
        self.get_json(query).await["total"].as_u64().unwrap()
    }
}

const DEFAULT_BODY: usize = 1 << 20;

/// Runs `test` against a fresh server on SQLite, then on PostgreSQL (unless
/// `HAVEN_SKIP_POSTGRES=1`). The stores are opened and dropped outside the async runtime: the
/// PostgreSQL client blocks on a runtime of its own.
fn each_backend<F, Fut>(max_body_bytes: usize, test: F)
where
    F: Fn(TestServer) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    let sqlite = store::open(&dir.path().join("haven.db").display().to_string()).unwrap();
    let mut backends: Vec<(
        &'static str,
        Arc<dyn store::Store>,
        Option<store::testing::TestDatabase>,
    )> = vec![("sqlite", Arc::from(sqlite), None)];
    match store::testing::database() {
        Some(db) => {
            let store = store::open(db.url()).unwrap();
            backends.push(("postgres", Arc::from(store), Some(db)));
        }
        None => eprintln!("skipping PostgreSQL: HAVEN_SKIP_POSTGRES=1"),
    }
    for (name, store, db) in backends {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let exports = dir.path().join(format!("exports-{name}"));
            test(TestServer::start(name, Arc::clone(&store), &exports, max_body_bytes).await).await;
        });
        drop(runtime);
        drop(store);
        drop(db);
    }
}

fn patient(family: &str, gender: &str, birth: &str) -> Value {
    json!({
        "resourceType": "Patient",
        "identifier": [{"system": "urn:test:mrn", "value": format!("mrn-{family}")}],
        "name": [{"family": family, "given": ["Ana", "Maria"]}],
        "gender": gender,
        "birthDate": birth,
        "address": [{"postalCode": "02138"}],
    })
}

fn outcome_code(body: &Value) -> &str {
    assert_eq!(body["resourceType"], "OperationOutcome", "{body}");
    body["issue"][0]["code"].as_str().unwrap()
}

#[test]
fn create_read_update_delete_with_versions() {
    each_backend(DEFAULT_BODY, |server| async move {
        let response = server
            .post("Patient", &patient("Smith", "female", "1980-02-03"))
            .await;
        assert_eq!(response.status(), StatusCode::CREATED);
        let location = response.headers()["location"].to_str().unwrap().to_owned();
        assert_eq!(response.headers()["etag"], "W/\"1\"");
        assert!(response.headers().contains_key("last-modified"));
        assert_eq!(
            response.headers()["content-type"],
            "application/fhir+json; charset=utf-8"
        );
        let created: Value = response.json().await.unwrap();
        let id = created["id"].as_str().unwrap().to_owned();
        assert_eq!(location, server.url(&format!("Patient/{id}/_history/1")));
        assert_eq!(created["meta"]["versionId"], "1");

        let read = server.get(&format!("Patient/{id}")).await;
        assert_eq!(read.status(), StatusCode::OK);
        assert_eq!(read.headers()["etag"], "W/\"1\"");

        let mut changed = created.clone();
        changed["gender"] = json!("other");
        let update = server
            .client
            .put(server.url(&format!("Patient/{id}")))
            .header("if-match", "W/\"1\"")
            .body(changed.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(update.status(), StatusCode::OK, "{}", server.name);
        assert_eq!(update.headers()["etag"], "W/\"2\"");
        let stale = server
            .client
            .put(server.url(&format!("Patient/{id}")))
            .header("if-match", "W/\"1\"")
            .body(changed.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(stale.status(), StatusCode::PRECONDITION_FAILED);
        assert_eq!(outcome_code(&stale.json().await.unwrap()), "conflict");

        let first = server.get_json(&format!("Patient/{id}/_history/1")).await;
        assert_eq!(first["gender"], "female");

        let stale_delete = server
            .client
            .delete(server.url(&format!("Patient/{id}")))
            .header("if-match", "W/\"1\"")
            .send()
            .await
            .unwrap();
        assert_eq!(stale_delete.status(), StatusCode::PRECONDITION_FAILED);
        let deleted = server
            .client
            .delete(server.url(&format!("Patient/{id}")))
            .send()
            .await
            .unwrap();
        assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
        let gone = server.get(&format!("Patient/{id}")).await;
        assert_eq!(gone.status(), StatusCode::GONE);
        assert_eq!(outcome_code(&gone.json().await.unwrap()), "deleted");

        let history = server.get_json(&format!("Patient/{id}/_history")).await;
        assert_eq!(history["type"], "history");
        assert_eq!(history["total"], 3);
        let methods: Vec<&str> = history["entry"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["request"]["method"].as_str().unwrap())
            .collect();
        assert_eq!(methods, ["DELETE", "PUT", "POST"]);

        let missing = server.get("Patient/never-was").await;
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
        assert_eq!(outcome_code(&missing.json().await.unwrap()), "not-found");
    });
}

#[test]
fn update_as_create_keeps_the_client_id() {
    each_backend(DEFAULT_BODY, |server| async move {
        let mut resource = patient("Jones", "male", "1970");
        resource["id"] = json!("client-chosen");
        let response = server.put("Patient/client-chosen", &resource).await;
        assert_eq!(response.status(), StatusCode::CREATED, "{}", server.name);
        assert!(
            response.headers()["location"]
                .to_str()
                .unwrap()
                .ends_with("/Patient/client-chosen/_history/1")
        );
        let again = server.put("Patient/client-chosen", &resource).await;
        assert_eq!(again.status(), StatusCode::OK);
        let history = server.get_json("Patient/_history").await;
        assert_eq!(history["total"], 2);
        let system = server.get_json("_history?_count=1").await;
        assert_eq!(system["entry"].as_array().unwrap().len(), 1);
        assert!(
            system["link"]
                .as_array()
                .unwrap()
                .iter()
                .any(|l| l["relation"] == "next")
        );
    });
}

#[test]
fn prefer_return_chooses_the_body() {
    each_backend(DEFAULT_BODY, |server| async move {
        let minimal = server
            .client
            .post(server.url("Patient"))
            .header("prefer", "return=minimal")
            .body(patient("Min", "female", "2000").to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(minimal.status(), StatusCode::CREATED);
        assert!(minimal.headers().contains_key("location"));
        assert!(minimal.bytes().await.unwrap().is_empty());

        let outcome = server
            .client
            .post(server.url("Patient"))
            .header("prefer", "return=OperationOutcome")
            .body(patient("Oo", "female", "2000").to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(outcome.status(), StatusCode::CREATED);
        let body: Value = outcome.json().await.unwrap();
        assert_eq!(outcome_code(&body), "informational");

        let representation = server
            .client
            .post(server.url("Patient"))
            .header("prefer", "return=representation")
            .body(patient("Rep", "female", "2000").to_string())
            .send()
            .await
            .unwrap();
        let body: Value = representation.json().await.unwrap();
        assert_eq!(body["name"][0]["family"], "Rep");
    });
}

#[test]
fn search_pages_with_links_sorts_and_counts() {
    each_backend(DEFAULT_BODY, |server| async move {
        for n in 0..5 {
            server
                .create(patient(&format!("Page{n}"), "female", "1990"))
                .await;
        }
        let first = server.get_json("Patient?gender=female&_count=2").await;
        assert_eq!(first["type"], "searchset");
        assert_eq!(first["total"], 5);
        assert_eq!(first["entry"].as_array().unwrap().len(), 2);
        assert_eq!(first["entry"][0]["search"]["mode"], "match");
        let link = |bundle: &Value, relation: &str| {
            bundle["link"]
                .as_array()
                .unwrap()
                .iter()
                .find(|l| l["relation"] == relation)
                .map(|l| l["url"].as_str().unwrap().to_owned())
        };
        assert!(link(&first, "previous").is_none());
        let mut families = Vec::new();
        let mut page = first;
        loop {
            for entry in page["entry"].as_array().unwrap() {
                families.push(
                    entry["resource"]["name"][0]["family"]
                        .as_str()
                        .unwrap()
                        .to_owned(),
                );
            }
            let Some(next) = link(&page, "next") else {
                break;
            };
            assert!(next.contains("gender=female"), "{next}");
            let response = server.client.get(&next).send().await.unwrap();
            page = response.json().await.unwrap();
            assert!(link(&page, "previous").is_some());
        }
        assert_eq!(families, ["Page0", "Page1", "Page2", "Page3", "Page4"]);

        let newest = server
            .get_json("Patient?_sort=-_lastUpdated&_count=1")
            .await;
        assert_eq!(newest["entry"][0]["resource"]["name"][0]["family"], "Page4");
        let oldest = server.get_json("Patient?_sort=_lastUpdated&_count=1").await;
        assert_eq!(oldest["entry"][0]["resource"]["name"][0]["family"], "Page0");

        let count = server.get_json("Patient?_summary=count").await;
        assert_eq!(count["total"], 5);
        assert!(count.get("entry").is_none());
        let no_total = server.get_json("Patient?_total=none").await;
        assert!(no_total.get("total").is_none());

        let elements = server.get_json("Patient?_elements=gender&_count=1").await;
        let resource = &elements["entry"][0]["resource"];
        assert_eq!(resource["gender"], "female");
        assert!(resource.get("name").is_none());
        assert_eq!(resource["meta"]["tag"][0]["code"], "SUBSETTED");

        let by_post = server
            .client
            .post(server.url("Patient/_search"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("family=page3")
            .send()
            .await
            .unwrap();
        let by_post: Value = by_post.json().await.unwrap();
        assert_eq!(by_post["total"], 1);
    });
}

#[test]
fn search_parameters_match_as_fhir_defines() {
    each_backend(DEFAULT_BODY, |server| async move {
        let anna = server
            .create(patient("Núñez", "female", "1980-05-17"))
            .await;
        let bob = server.create(patient("Brown", "male", "2001-11-02")).await;
        assert_eq!(server.total("Patient?name=nunez").await, 1);
        assert_eq!(server.total("Patient?family=BRO").await, 1);
        assert_eq!(server.total("Patient?given=ana").await, 2);
        assert_eq!(server.total("Patient?gender=male").await, 1);
        assert_eq!(
            server
                .total("Patient?identifier=urn:test:mrn|mrn-Brown")
                .await,
            1
        );
        assert_eq!(server.total("Patient?identifier=other|mrn-Brown").await, 0);
        assert_eq!(server.total("Patient?address-postalcode=02138").await, 2);
        assert_eq!(server.total("Patient?birthdate=1980").await, 1);
        assert_eq!(server.total("Patient?birthdate=gt1990-01-01").await, 1);
        assert_eq!(server.total("Patient?birthdate=lt1990-01-01").await, 1);
        assert_eq!(server.total("Patient?birthdate=ge1980-05-17").await, 2);
        assert_eq!(server.total("Patient?birthdate=le1980-05-17").await, 1);
        assert_eq!(server.total("Patient?birthdate=eq2001-11").await, 1);
        assert_eq!(server.total(&format!("Patient?_id={anna},{bob}")).await, 2);
        assert_eq!(server.total("Patient?_lastUpdated=gt2000-01-01").await, 2);

        for (n, (subject, date, code, status)) in [
            (&anna, "2020-03-01T10:00:00Z", "94500-6", "final"),
            (&anna, "2021-06-01", "8310-5", "final"),
            (&bob, "2020-03-15", "94500-6", "preliminary"),
        ]
        .into_iter()
        .enumerate()
        {
            server
                .create(json!({
                    "resourceType": "Observation",
                    "status": status,
                    "category": [{"coding": [{
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": if n == 1 { "vital-signs" } else { "laboratory" },
                    }]}],
                    "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
                    "subject": {"reference": format!("Patient/{subject}")},
                    "effectiveDateTime": date,
                }))
                .await;
        }
        assert_eq!(
            server
                .total("Observation?code=http://loinc.org|94500-6")
                .await,
            2
        );
        assert_eq!(server.total("Observation?code=94500-6,8310-5").await, 3);
        assert_eq!(
            server.total(&format!("Observation?patient={anna}")).await,
            2
        );
        assert_eq!(
            server
                .total(&format!("Observation?subject=Patient/{bob}"))
                .await,
            1
        );
        assert_eq!(server.total("Observation?date=ge2020-03-10").await, 2);
        assert_eq!(server.total("Observation?date=lt2020-03-10").await, 1);
        assert_eq!(server.total("Observation?date=2020-03").await, 2);
        assert_eq!(server.total("Observation?status=final").await, 2);
        assert_eq!(server.total("Observation?category=laboratory").await, 2);
        assert_eq!(
            server
                .total(&format!("Observation?patient={anna}&date=gt2021-01-01"))
                .await,
            1
        );

        let bad_date = server.get("Observation?date=yesterday").await;
        assert_eq!(bad_date.status(), StatusCode::BAD_REQUEST);
        assert_eq!(outcome_code(&bad_date.json().await.unwrap()), "invalid");
    });
}

#[test]
fn unknown_search_parameters_fail_unless_lenient() {
    each_backend(DEFAULT_BODY, |server| async move {
        server.create(patient("Lenient", "female", "1990")).await;
        let strict = server.get("Patient?shoe-size=9").await;
        assert_eq!(strict.status(), StatusCode::BAD_REQUEST);
        let body: Value = strict.json().await.unwrap();
        assert_eq!(outcome_code(&body), "not-supported");
        assert!(
            body["issue"][0]["diagnostics"]
                .as_str()
                .unwrap()
                .contains("shoe-size")
        );

        let lenient = server
            .client
            .get(server.url("Patient?shoe-size=9&gender=female"))
            .header("prefer", "handling=lenient")
            .send()
            .await
            .unwrap();
        assert_eq!(lenient.status(), StatusCode::OK);
        let bundle: Value = lenient.json().await.unwrap();
        assert_eq!(bundle["total"], 1);
        let entries = bundle["entry"].as_array().unwrap();
        let outcome = entries
            .iter()
            .find(|e| e["search"]["mode"] == "outcome")
            .unwrap();
        assert_eq!(outcome["resource"]["resourceType"], "OperationOutcome");
    });
}

fn transaction(entries: Vec<Value>) -> Value {
    json!({"resourceType": "Bundle", "type": "transaction", "entry": entries})
}

#[test]
fn transactions_resolve_urn_uuids_and_conditional_references() {
    each_backend(DEFAULT_BODY, |server| async move {
        let org = server
            .create(json!({
                "resourceType": "Organization",
                "identifier": [{"system": "urn:test:org", "value": "hospital-1"}],
                "name": "General",
            }))
            .await;
        let bundle = transaction(vec![
            json!({
                "fullUrl": "urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a",
                "resource": {
                    "resourceType": "Patient",
                    "managingOrganization": {"reference": "Organization?identifier=urn:test:org|hospital-1"},
                },
                "request": {"method": "POST", "url": "Patient"},
            }),
            json!({
                "fullUrl": "urn:uuid:88f151c0-a954-468a-88bd-5ae15c08e059",
                "resource": {
                    "resourceType": "Observation",
                    "status": "final",
                    "code": {"text": "x"},
                    "subject": {"reference": "urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a"},
                },
                "request": {"method": "POST", "url": "Observation"},
            }),
            json!({
                "resource": {
                    "resourceType": "Organization",
                    "identifier": [{"system": "urn:test:org", "value": "hospital-1"}],
                },
                "request": {
                    "method": "POST",
                    "url": "Organization",
                    "ifNoneExist": "identifier=urn:test:org|hospital-1",
                },
            }),
            json!({"request": {"method": "GET", "url": "Organization?identifier=hospital-1"}}),
        ]);
        let response = server.post("", &bundle).await;
        assert_eq!(response.status(), StatusCode::OK, "{}", server.name);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["type"], "transaction-response");
        let entries = body["entry"].as_array().unwrap();
        assert_eq!(entries.len(), 4);
        assert_eq!(entries[0]["response"]["status"], "201 Created");
        assert_eq!(entries[1]["response"]["status"], "201 Created");
        assert_eq!(entries[2]["response"]["status"], "200 OK");
        assert_eq!(entries[3]["resource"]["total"], 1);
        let patient_location = entries[0]["response"]["location"].as_str().unwrap();
        let patient_id = patient_location.split('/').nth(1).unwrap();

        let observations = server
            .get_json(&format!("Observation?subject=Patient/{patient_id}"))
            .await;
        assert_eq!(observations["total"], 1);
        let stored = server.get_json(&format!("Patient/{patient_id}")).await;
        assert_eq!(
            stored["managingOrganization"]["reference"],
            format!("Organization/{org}")
        );
        assert_eq!(server.total("Organization").await, 1);
    });
}

#[test]
fn a_failed_transaction_leaves_nothing_behind() {
    each_backend(DEFAULT_BODY, |server| async move {
        let kept = server.create(patient("Kept", "female", "1990")).await;
        let bundle = transaction(vec![
            json!({
                "fullUrl": "urn:uuid:0f3c8a1e-0000-4000-8000-000000000001",
                "resource": patient("Lost", "male", "1990"),
                "request": {"method": "POST", "url": "Patient"},
            }),
            json!({"request": {"method": "DELETE", "url": format!("Patient/{kept}")}}),
            json!({
                "resource": {
                    "resourceType": "Observation",
                    "status": "final",
                    "code": {"text": "x"},
                    "subject": {"reference": "Organization?identifier=urn:test:org|nowhere"},
                },
                "request": {"method": "POST", "url": "Observation"},
            }),
        ]);
        let response = server.post("", &bundle).await;
        assert_eq!(
            response.status(),
            StatusCode::PRECONDITION_FAILED,
            "{}",
            server.name
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(
            body["issue"][0]["expression"][0],
            "Bundle.entry[2].resource.subject.reference"
        );
        assert_eq!(server.total("Patient?family=lost").await, 0);
        assert_eq!(server.total("Observation").await, 0);
        assert_eq!(
            server.get(&format!("Patient/{kept}")).await.status(),
            StatusCode::OK
        );

        let dangling = transaction(vec![json!({
            "resource": {
                "resourceType": "Observation",
                "status": "final",
                "code": {"text": "x"},
                "subject": {"reference": "urn:uuid:5a0c-not-in-bundle"},
            },
            "request": {"method": "POST", "url": "Observation"},
        })]);
        let response = server.post("", &dangling).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);

        let conflict = transaction(vec![
            json!({
                "resource": patient("Lost", "male", "1990"),
                "request": {"method": "POST", "url": "Patient"},
            }),
            json!({
                "resource": {"resourceType": "Patient", "id": kept},
                "request": {"method": "PUT", "url": format!("Patient/{kept}"), "ifMatch": "W/\"7\""},
            }),
        ]);
        let response = server.post("", &conflict).await;
        assert_eq!(response.status(), StatusCode::PRECONDITION_FAILED);
        assert_eq!(server.total("Patient?family=lost").await, 0);
    });
}

#[test]
fn batches_report_each_entry() {
    each_backend(DEFAULT_BODY, |server| async move {
        let bundle = json!({"resourceType": "Bundle", "type": "batch", "entry": [
            {"resource": patient("Batch", "female", "1990"), "request": {"method": "POST", "url": "Patient"}},
            {"request": {"method": "GET", "url": "Patient/absent"}},
            {"resource": {"resourceType": "Patient"}, "request": {"method": "POST", "url": "Observation"}},
        ]});
        let response = server.post("", &bundle).await;
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["type"], "batch-response");
        let statuses: Vec<&str> = body["entry"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["response"]["status"].as_str().unwrap())
            .collect();
        assert_eq!(
            statuses,
            ["201 Created", "404 Not Found", "400 Bad Request"]
        );
        assert_eq!(
            body["entry"][2]["response"]["outcome"]["issue"][0]["expression"][0],
            "Bundle.entry[2].resource.resourceType"
        );
        assert_eq!(server.total("Patient?family=batch").await, 1);
    });
}

#[test]
fn bad_input_is_refused_and_nothing_is_written() {
    each_backend(16 * 1024, |server| async move {
        let mut big = patient("Big", "female", "1990");
        big["text"] = json!({"status": "generated", "div": "x".repeat(20 * 1024)});
        let response = server.post("Patient", &big).await;
        assert_eq!(
            response.status(),
            StatusCode::PAYLOAD_TOO_LARGE,
            "{}",
            server.name
        );
        assert_eq!(outcome_code(&response.json().await.unwrap()), "too-costly");

        let malformed = server
            .client
            .post(server.url("Patient"))
            .header("content-type", "application/fhir+json")
            .body("{\"resourceType\": \"Patient\", \"name\": [")
            .send()
            .await
            .unwrap();
        assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);
        let body: Value = malformed.json().await.unwrap();
        assert!(
            body["issue"][0]["diagnostics"]
                .as_str()
                .unwrap()
                .contains("line 1")
        );

        let unknown = server
            .post("Spaceship", &json!({"resourceType": "Spaceship"}))
            .await;
        assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
        assert_eq!(outcome_code(&unknown.json().await.unwrap()), "not-found");
        assert_eq!(
            server.get("Spaceship?name=x").await.status(),
            StatusCode::NOT_FOUND
        );

        let mut other = patient("Mismatch", "female", "1990");
        other["id"] = json!("b");
        let mismatch = server.put("Patient/a", &other).await;
        assert_eq!(mismatch.status(), StatusCode::BAD_REQUEST);
        let no_id = server
            .put("Patient/a", &patient("NoId", "female", "1990"))
            .await;
        assert_eq!(no_id.status(), StatusCode::BAD_REQUEST);
        let wrong_type = server
            .post("Observation", &patient("Wrong", "female", "1990"))
            .await;
        assert_eq!(wrong_type.status(), StatusCode::BAD_REQUEST);
        let not_json = server
            .client
            .post(server.url("Patient"))
            .header("content-type", "application/xml")
            .body("<Patient/>")
            .send()
            .await
            .unwrap();
        assert_eq!(not_json.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
        let not_a_bundle = server
            .post("", &patient("NotBundle", "female", "1990"))
            .await;
        assert_eq!(not_a_bundle.status(), StatusCode::BAD_REQUEST);
        let patch = server
            .client
            .patch(server.url("Patient/a"))
            .body("[]")
            .send()
            .await
            .unwrap();
        assert_eq!(patch.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(outcome_code(&patch.json().await.unwrap()), "not-supported");
        let no_route = server.get("Patient/a/b/c/d").await;
        assert_eq!(no_route.status(), StatusCode::NOT_FOUND);
        assert_eq!(outcome_code(&no_route.json().await.unwrap()), "not-found");

        assert_eq!(server.total("Patient").await, 0);
        assert_eq!(
            server.get("Patient/a").await.status(),
            StatusCode::NOT_FOUND
        );
    });
}

#[test]
fn metadata_declares_the_api_and_bulk_data() {
    each_backend(DEFAULT_BODY, |server| async move {
        let xml = server.get("metadata?_format=xml").await;
        assert_eq!(xml.status(), StatusCode::NOT_ACCEPTABLE);
        let statement = server.get_json("metadata").await;
        assert_eq!(statement["resourceType"], "CapabilityStatement");
        assert_eq!(
            statement["instantiates"][0],
            "http://hl7.org/fhir/uv/bulkdata/CapabilityStatement/bulk-data"
        );
        assert_eq!(statement["implementation"]["url"], server.base.as_str());
        let rest = &statement["rest"][0];
        let observation = rest["resource"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["type"] == "Observation")
            .unwrap();
        let params: Vec<&str> = observation["searchParam"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        for code in [
            "patient",
            "code",
            "date",
            "status",
            "category",
            "_lastUpdated",
        ] {
            assert!(params.contains(&code), "{code}");
        }
    });
}

#[test]
fn responses_are_gzipped_when_asked() {
    each_backend(DEFAULT_BODY, |server| async move {
        for n in 0..20 {
            server
                .create(patient(&format!("Zip{n}"), "female", "1990"))
                .await;
        }
        let raw = Client::builder().no_gzip().build().unwrap();
        let response = raw
            .get(server.url("Patient?_count=20"))
            .header("accept-encoding", "gzip")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["content-encoding"], "gzip");
        let plain = raw
            .get(server.url("Patient?_count=20"))
            .send()
            .await
            .unwrap();
        assert!(!plain.headers().contains_key("content-encoding"));
        let decoded: Value = server.get_json("Patient?_count=20").await;
        assert_eq!(decoded["entry"].as_array().unwrap().len(), 20);
    });
}
