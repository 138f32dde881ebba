//! `$export` behaviour beyond the Inferno checks: parameters, errors, Group and Patient
//! scopes, deletions, filters, elements, gzip, throttling, cancellation, rollover, restart.

mod export_support;

use std::io::Read;

use export_support::{Client, Db, Options, TestServer, is_outcome};
use serde_json::{Value, json};

async fn sqlite() -> TestServer {
    TestServer::start(Options::new(Db::Sqlite)).await.unwrap()
}

async fn refused(client: &Client, url: &str, extra: &[(&str, &str)]) -> (u16, Value) {
    let response = client.kickoff(url, extra).await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kick_off_needs_respond_async_and_a_json_accept() {
    let server = sqlite().await;
    let client = Client::default();
    let url = format!("{}/Patient/$export", server.base);
    let response = client
        .http
        .get(&url)
        .header("Accept", "application/fhir+json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert!(is_outcome(&response.json().await.unwrap()));
    let response = client
        .http
        .get(&url)
        .header("Accept", "application/fhir+xml")
        .header("Prefer", "respond-async")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let response = client
        .http
        .get(&url)
        .header("Prefer", "respond-async")
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        202,
        "a missing Accept is taken as application/fhir+json"
    );
    let id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(export_support::status_url(&response).ends_with(&format!("/_operations/export/{id}")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_parameters_are_refused_with_an_outcome() {
    let server = sqlite().await;
    let client = Client::default();
    let base = &server.base;
    for query in [
        "_since=not-a-date",
        "_type=Patient,Nope",
        "includeAssociatedData=LatestProvenanceResources",
        "_outputFormat=text/csv",
        "_typeFilter=Observation%3Fnope%3D1",
        "_anonymizationConfig=no-such-config",
        "_bogus=1",
    ] {
        let (status, body) = refused(&client, &format!("{base}/$export?{query}"), &[]).await;
        assert_eq!(status, 400, "{query}");
        assert!(is_outcome(&body), "{query}");
    }
    let (status, _) = refused(
        &client,
        &format!("{base}/Patient/$export?_type=Organization"),
        &[],
    )
    .await;
    assert_eq!(status, 400, "a type outside the Patient compartment");
    let (status, body) = refused(&client, &format!("{base}/Group/nope/$export"), &[]).await;
    assert_eq!(status, 404);
    assert!(is_outcome(&body));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lenient_handling_ignores_unsupported_parameters_with_a_note() {
    let server = sqlite().await;
    let client = Client::default();
    let url = format!(
        "{}/$export?_type=Patient,Nope&includeAssociatedData=LatestProvenanceResources",
        server.base
    );
    let done = client.export(&url, &[("Prefer", "handling=lenient")]).await;
    assert_eq!(done.ids("Patient"), ["p1", "p2", "p3"]);
    let errors = done.manifest["error"].as_array().unwrap();
    assert_eq!(errors.len(), 1);
    let notes = client.download(errors[0]["url"].as_str().unwrap()).await;
    assert_eq!(notes.len(), 2);
    for note in &notes {
        assert_eq!(note["issue"][0]["severity"], "information");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_export_covers_its_members_compartments_only() {
    let server = sqlite().await;
    let client = Client::default();
    let done = client
        .export(&format!("{}/Group/g1/$export", server.base), &[])
        .await;
    assert_eq!(done.ids("Patient"), ["p1", "p2"]);
    assert_eq!(
        done.ids("Observation"),
        ["p1-obs0", "p1-obs1", "p2-obs0", "p2-obs1"]
    );
    assert_eq!(done.ids("Condition"), ["p1-cond", "p2-cond"]);
    assert!(done.resources("Organization").is_empty());
    assert!(
        done.manifest.get("deleted").is_none(),
        "no deleted[] without _since"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patient_and_system_exports_differ_by_compartment() {
    let server = sqlite().await;
    let client = Client::default();
    let patient = client
        .export(&format!("{}/Patient/$export", server.base), &[])
        .await;
    assert_eq!(patient.ids("Patient"), ["p1", "p2", "p3"]);
    assert!(patient.resources("Organization").is_empty());
    assert_eq!(
        patient.ids("Group"),
        ["g1"],
        "Group.member puts a Group in the compartment"
    );
    let system = client
        .export(&format!("{}/$export", server.base), &[])
        .await;
    assert_eq!(system.ids("Organization"), ["o1"]);
    assert_eq!(system.ids("Group"), ["g1"]);
    assert_eq!(system.ids("Observation").len(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_kick_off_reads_patient_and_type_from_parameters() {
    let server = sqlite().await;
    let client = Client::default();
    let parameters = json!({"resourceType": "Parameters", "parameter": [
        {"name": "patient", "valueReference": {"reference": "Patient/p3"}},
        {"name": "_type", "valueString": "Patient,Condition"},
        {"name": "_outputFormat", "valueString": "application/fhir+ndjson"}
    ]});
    let response = client
        .kickoff_post(&format!("{}/Patient/$export", server.base), parameters)
        .await;
    assert_eq!(response.status(), 202);
    let done = client
        .complete(&export_support::status_url(&response))
        .await;
    assert_eq!(done.ids("Patient"), ["p3"]);
    assert_eq!(done.ids("Condition"), ["p3-cond"]);
    assert!(done.resources("Observation").is_empty());
    assert_eq!(
        done.manifest["request"],
        format!("{}/Patient/$export", server.base)
    );

    let unknown = json!({"resourceType": "Parameters", "parameter": [
        {"name": "patient", "valueReference": {"reference": "Patient/nobody"}}]});
    let response = client
        .kickoff_post(&format!("{}/Patient/$export", server.base), unknown)
        .await;
    assert_eq!(response.status(), 400);
    let outsider = json!({"resourceType": "Parameters", "parameter": [
        {"name": "patient", "valueReference": {"reference": "Patient/p3"}}]});
    let response = client
        .kickoff_post(&format!("{}/Group/g1/$export", server.base), outsider)
        .await;
    assert_eq!(response.status(), 400, "p3 is not a member of g1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn since_exports_changes_and_lists_deletions_as_bundles() {
    let server = sqlite().await;
    let client = Client::default();
    let first = client
        .export(&format!("{}/$export", server.base), &[])
        .await;
    let since = first.manifest["transactionTime"]
        .as_str()
        .unwrap()
        .to_owned();
    let store = server.state.store.clone();
    tokio::task::spawn_blocking(move || {
        store.delete("Observation", "p1-obs0", None).unwrap();
        let mut patient: Value =
            serde_json::from_str(&store.read("Patient", "p2").unwrap().json).unwrap();
        patient["gender"] = json!("other");
        store.update(patient, None).unwrap();
    })
    .await
    .unwrap();
    let url = format!(
        "{}/$export?_since={}",
        server.base,
        since.replace('+', "%2B")
    );
    let second = client.export(&url, &[]).await;
    assert_eq!(second.ids("Patient"), ["p2"]);
    assert!(second.resources("Observation").is_empty());
    let deleted = second.manifest["deleted"].as_array().unwrap();
    assert_eq!(deleted.len(), 1);
    assert_eq!(deleted[0]["type"], "Bundle");
    let bundles = client.download(deleted[0]["url"].as_str().unwrap()).await;
    assert_eq!(bundles.len(), 1);
    assert_eq!(bundles[0]["type"], "transaction");
    assert_eq!(bundles[0]["entry"][0]["request"]["method"], "DELETE");
    assert_eq!(
        bundles[0]["entry"][0]["request"]["url"],
        "Observation/p1-obs0"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn until_leaves_out_later_changes() {
    let server = sqlite().await;
    let client = Client::default();
    let until = server.store().transaction_time().unwrap().to_string();
    let store = server.state.store.clone();
    tokio::task::spawn_blocking(move || {
        let mut patient: Value =
            serde_json::from_str(&store.read("Patient", "p1").unwrap().json).unwrap();
        patient["gender"] = json!("other");
        store.update(patient, None).unwrap();
    })
    .await
    .unwrap();
    let done = client
        .export(
            &format!(
                "{}/Patient/$export?_type=Patient&_until={until}",
                server.base
            ),
            &[],
        )
        .await;
    assert_eq!(done.ids("Patient"), ["p2", "p3"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn type_filters_and_elements_shape_the_output() {
    let server = sqlite().await;
    let client = Client::default();
    let filter = "Observation%3Fstatus%3Dfinal%26date%3Dge2020-01-01";
    let url = format!(
        "{}/Patient/$export?_type=Observation,Patient&_typeFilter={filter}&_typeFilter=Patient%3Fgender%3Dmale&_elements=Patient.gender,status",
        server.base
    );
    let done = client.export(&url, &[]).await;
    assert_eq!(done.ids("Observation"), ["p1-obs0", "p2-obs0", "p3-obs0"]);
    assert_eq!(done.ids("Patient"), ["p2"]);
    let patient = done.resources("Patient")[0];
    assert_eq!(patient["gender"], "male");
    assert!(
        patient.get("name").is_none(),
        "_elements leaves other elements out"
    );
    assert_eq!(patient["meta"]["tag"][0]["code"], "SUBSETTED");
    let observation = done.resources("Observation")[0];
    assert!(observation.get("status").is_some() && observation.get("code").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downloads_are_gzipped_when_the_client_accepts_it() {
    let server = sqlite().await;
    let client = Client::default();
    let done = client
        .export(
            &format!("{}/Patient/$export?_type=Patient", server.base),
            &[],
        )
        .await;
    let url = done.manifest["output"][0]["url"].as_str().unwrap();
    let raw = reqwest::Client::builder().no_gzip().build().unwrap();
    let response = raw
        .get(url)
        .header("Accept-Encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-encoding"], "gzip");
    assert_eq!(
        response.headers()["content-type"],
        "application/fhir+ndjson"
    );
    let compressed = response.bytes().await.unwrap();
    let mut text = String::new();
    flate2::read::GzDecoder::new(&compressed[..])
        .read_to_string(&mut text)
        .unwrap();
    assert_eq!(text.lines().count(), 3);
    let plain = raw.get(url).send().await.unwrap();
    assert!(plain.headers().get("content-encoding").is_none());
    assert_eq!(plain.text().await.unwrap(), text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_files_and_jobs_answer_404() {
    let server = sqlite().await;
    let client = Client::default();
    let done = client
        .export(
            &format!("{}/Patient/$export?_type=Patient", server.base),
            &[],
        )
        .await;
    let url = done.manifest["output"][0]["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let other = url.replace("Patient-1.ndjson", "Observation-1.ndjson");
    assert_eq!(client.http.get(&other).send().await.unwrap().status(), 404);
    let escape = url.replace("Patient-1.ndjson", "..%2F..%2Fhaven.db");
    assert_eq!(client.http.get(&escape).send().await.unwrap().status(), 404);
    let unknown = format!("{}/_operations/export/no-such-job", server.base);
    assert_eq!(
        client.http.get(&unknown).send().await.unwrap().status(),
        404
    );
    assert_eq!(client.delete(&unknown).await.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_polled_too_fast_answers_429_with_a_delta_retry_after() {
    let server = sqlite().await;
    let client = Client::default();
    // A job the store holds but no task runs: it stays "accepted".
    let job = server.store().create_job(json!({}), None).unwrap();
    let status = format!("{}/_operations/export/{}", server.base, job.id);
    let first = client.http.get(&status).send().await.unwrap();
    assert_eq!(first.status(), 202);
    assert_eq!(first.headers()["retry-after"], "1");
    assert!(first.headers().get("x-progress").unwrap().len() < 100);
    let second = client.http.get(&status).send().await.unwrap();
    assert_eq!(second.status(), 429);
    let wait: u64 = second.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=1).contains(&wait), "a delta in seconds, not a date");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(client.http.get(&status).send().await.unwrap().status(), 202);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_finished_export_removes_its_files() {
    let server = sqlite().await;
    let client = Client::default();
    let status = client.start(&format!("{}/$export", server.base), &[]).await;
    let done = client.complete(&status).await;
    assert!(!done.files.is_empty());
    let id = status.rsplit('/').next().unwrap().to_owned();
    assert!(
        server
            .exported_keys()
            .await
            .iter()
            .any(|k| k.starts_with(&format!("{id}/")))
    );
    assert_eq!(client.delete(&status).await.status(), 202);
    assert!(
        !server
            .exported_keys()
            .await
            .iter()
            .any(|k| k.starts_with(&format!("{id}/")))
    );
    assert_eq!(client.http.get(&status).send().await.unwrap().status(), 404);
    let url = done.manifest["output"][0]["url"].as_str().unwrap();
    assert_eq!(client.http.get(url).send().await.unwrap().status(), 404);
    assert_eq!(
        client.delete(&status).await.status(),
        404,
        "a second DELETE"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_roll_over_at_the_configured_size() {
    let mut options = Options::new(Db::Sqlite);
    options.settings.max_file_bytes = 1;
    options.settings.page_size = 2;
    let server = TestServer::start(options).await.unwrap();
    let client = Client::default();
    let done = client
        .export(
            &format!("{}/Patient/$export?_type=Observation", server.base),
            &[],
        )
        .await;
    let outputs = done.manifest["output"].as_array().unwrap();
    assert_eq!(
        outputs.len(),
        3,
        "six observations, two per page, one page per file"
    );
    assert!(outputs.iter().all(|o| o["count"] == 2));
    assert_eq!(done.ids("Observation").len(), 6);
    let names: Vec<&str> = outputs
        .iter()
        .map(|o| o["url"].as_str().unwrap().rsplit('/').next().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "Observation-1.ndjson",
            "Observation-2.ndjson",
            "Observation-3.ndjson"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unfinished_jobs_resume_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = export_support::open_store(Db::Sqlite, dir.path()).unwrap();
    export_support::load_sample(store.as_ref());
    // A job a previous process accepted: kick off on one server, stop it before polling...
    let mut first = TestServer::start_with(
        Options::new(Db::Sqlite),
        tempfile::tempdir().unwrap(),
        store.clone(),
        None,
    )
    .await
    .unwrap();
    // Once it answers, the first server has looked for unfinished jobs (before the job below
    // exists), so only the second one resumes it.
    let metadata = reqwest::get(format!("{}/metadata", first.base))
        .await
        .unwrap();
    assert_eq!(metadata.status(), 200);
    let job = {
        let request = server::export::request::resolve(
            server::export::request::Level::Patient,
            format!("{}/Patient/$export", first.base),
            &server::export::request::RawParams::from_query("_type=Patient,Condition"),
            false,
            false,
            &NoAnonymization,
        )
        .unwrap();
        let mut job = store
            .create_job(serde_json::to_value(&request).unwrap(), None)
            .unwrap();
        job.transaction_time = Some(store.transaction_time().unwrap());
        store.update_job(&job).unwrap()
    };
    first.stop().await;
    // ...and a change after its transaction time, which the resumed job must not see.
    store.delete("Condition", "p1-cond", None).unwrap();
    let second = TestServer::start_with(Options::new(Db::Sqlite), dir, store.clone(), None)
        .await
        .unwrap();
    let client = Client::default();
    let done = client
        .complete(&format!("{}/_operations/export/{}", second.base, job.id))
        .await;
    assert_eq!(done.ids("Patient"), ["p1", "p2", "p3"]);
    assert_eq!(
        done.ids("Condition"),
        ["p1-cond", "p2-cond", "p3-cond"],
        "as of transactionTime"
    );
}

struct NoAnonymization;

impl server::export::request::AnonymizationNames for NoAnonymization {
    fn knows(&self, _: &str) -> bool {
        false
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymization_config_de_identifies_on_the_way_out() {
    let server = sqlite().await;
    let client = Client::default();
    let url = format!(
        "{}/Patient/$export?_type=Patient,Observation&_anonymizationConfig=safe-harbor",
        server.base
    );
    let done = client.export(&url, &[]).await;
    let patients = done.resources("Patient");
    assert_eq!(patients.len(), 3);
    for patient in &patients {
        assert!(patient.get("name").is_none(), "names are removed");
        let text = patient.to_string();
        for family in ["Alvarez", "Brown", "Chen", "Springfield"] {
            assert!(!text.contains(family), "no identifier is left");
        }
    }
    assert_eq!(done.resources("Observation").len(), 6);
    assert_eq!(done.manifest["error"].as_array().unwrap().len(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_group_export_narrows_to_named_members() {
    let server = sqlite().await;
    let client = Client::default();
    let parameters = json!({"resourceType": "Parameters", "parameter": [
        {"name": "patient", "valueReference": {"reference": "Patient/p2"}},
        {"name": "_type", "valueString": "Patient"},
        {"name": "_type", "valueString": "Observation"}
    ]});
    let response = client
        .kickoff_post(&format!("{}/Group/g1/$export", server.base), parameters)
        .await;
    assert_eq!(response.status(), 202);
    let done = client
        .complete(&export_support::status_url(&response))
        .await;
    assert_eq!(done.ids("Patient"), ["p2"]);
    assert_eq!(done.ids("Observation"), ["p2-obs0", "p2-obs1"]);
    assert!(
        done.resources("Condition").is_empty(),
        "repeated _type values add up"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn type_filters_must_name_an_exported_type() {
    let server = sqlite().await;
    let client = Client::default();
    let url = format!(
        "{}/$export?_type=Patient&_typeFilter=Observation%3Fstatus%3Dfinal",
        server.base
    );
    let (status, body) = refused(&client, &url, &[]).await;
    assert_eq!(status, 400);
    assert!(
        body["issue"][0]["diagnostics"]
            .as_str()
            .unwrap()
            .contains("Observation")
    );
    let done = client.export(&url, &[("Prefer", "handling=lenient")]).await;
    assert_eq!(done.ids("Patient"), ["p1", "p2", "p3"]);
    assert_eq!(done.manifest["error"].as_array().unwrap().len(), 1);
}
