//! The production shape of a run: a `haven serve` that requires SMART Backend Services tokens,
//! a pipeline that signs in with a registered client's private key, and a lake in Azure Blob
//! Storage (Azurite, started by the test) in every format. The lake is then read back through
//! its own URL: the run state, the report's counts, the NDJSON rows and, with the `delta`
//! feature, the Delta table opened by the Python `deltalake` package.
//!
//! This binary holds one test, because it points `AZURITE_BLOB_STORAGE_URL` at its own Azurite.

mod common;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bulk::smart::{KeyAlgorithm, SigningKey};
use pipeline::state::LakeState;
use pipeline::{Pipeline, PipelineConfig, Silent};
use serde_json::Value;
use server::auth::clients::{Client, KeySource, Registry};
use server::auth::{AuthConfig, AuthMode};

/// The pipeline configuration: the secured server, safe-harbor, the Azurite lake.
fn config(server: &str, key: Option<&Path>, lake: &str, dir: &Path, options: &str) -> String {
    let auth = key
        .map(|key| format!("[source.auth]\nclient_id = \"lake-loader\"\nkey_file = {key:?}\n"))
        .unwrap_or_default();
    let formats = if cfg!(feature = "delta") {
        r#"["ndjson", "parquet", "delta"]"#
    } else {
        r#"["ndjson", "parquet"]"#
    };
    format!(
        "work_dir = {work:?}\n[source]\nserver = {server:?}\nlevel = \"system\"\n{auth}\
         [deid]\npreset = \"safe-harbor\"\nkey_file = {keys:?}\ngenerate_keys = true\n\
         [lake]\nlocation = {lake:?}\nformats = {formats}\n[lake.options]\n{options}",
        work = dir.join("work"),
        keys = dir.join("deid-keys.json"),
    )
}

fn gunzip_lines(bytes: &[u8]) -> Vec<Value> {
    let mut text = String::new();
    flate2::read::MultiGzDecoder::new(bytes)
        .read_to_string(&mut text)
        .unwrap();
    text.lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[test]
fn secured_server_to_a_lake_on_azurite() {
    let Some(azurite) = testkit::Azurite::start() else {
        return;
    };
    // SAFETY: this binary's only test sets the variable before any thread of its own (the
    // lake's runtime, the server, the Python reader) reads the environment.
    unsafe {
        std::env::set_var(testkit::Azurite::URL_ENV, azurite.endpoint());
    }
    azurite.create_container("lake");
    let options: String = azurite
        .object_store_options()
        .iter()
        .map(|(key, value)| format!("{key} = {value:?}\n"))
        .collect();

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("synth");
    synth::generate(&synth::SynthOptions::new(12, 3, &data), &|_| {}).unwrap();
    let files: Vec<_> = std::fs::read_dir(&data)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "ndjson"))
        .collect();
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    for file in &files {
        let name = file.file_name().unwrap().to_str().unwrap();
        let kind = name.split('.').next().unwrap().to_owned();
        *expected.entry(kind).or_default() +=
            std::fs::read_to_string(file).unwrap().lines().count() as u64;
    }
    let store: Arc<dyn store::Store> =
        Arc::from(store::open(&dir.path().join("hub.db").display().to_string()).unwrap());
    server::load::load(store.as_ref(), &files, &Default::default(), &mut |_| {}).unwrap();

    let generated = SigningKey::generate(KeyAlgorithm::Es384).unwrap();
    let key_file = dir.path().join("lake-loader.pem");
    std::fs::write(&key_file, &generated.private_pem).unwrap();
    let mut registry = Registry::default();
    registry
        .add(Client {
            id: "lake-loader".into(),
            keys: KeySource::Jwks(generated.key.public_jwks()),
            scope: "system/*.rs".into(),
        })
        .unwrap();
    registry.save(&dir.path().join("clients.json")).unwrap();
    let server = common::start(
        Arc::clone(&store),
        &dir.path().join("exports"),
        AuthConfig {
            mode: AuthMode::Smart,
            clients_file: Some(dir.path().join("clients.json")),
            token_lifetime: Duration::from_secs(300),
        },
    );
    let lake = "az://lake/covid";

    // Without credentials the server refuses, and the lake stays empty.
    let anonymous =
        PipelineConfig::from_toml(&config(&server.base_url, None, lake, dir.path(), &options))
            .unwrap();
    let refused = Pipeline::new(anonymous).unwrap().run(&Silent).unwrap_err();
    assert!(
        refused.to_string().contains("401"),
        "refused without a token: {refused}"
    );
    let dest = lake::Destination::open_with(lake, &azurite.object_store_options()).unwrap();
    assert!(
        pipeline::state::read::<LakeState>(&dest, "_haven/state.json")
            .unwrap()
            .is_none(),
        "a refused run records nothing"
    );

    let signed = PipelineConfig::from_toml(&config(
        &server.base_url,
        Some(&key_file),
        lake,
        dir.path(),
        &options,
    ))
    .unwrap();
    let report = Pipeline::new(signed).unwrap().run(&Silent).unwrap();
    for (kind, count) in &expected {
        assert_eq!(report.types[kind].read, *count, "{kind} exported");
        assert_eq!(report.types[kind].landed, *count, "{kind} landed");
    }
    let state: LakeState = pipeline::state::read(&dest, "_haven/state.json")
        .unwrap()
        .expect("the run state is in the lake");
    assert!(report.transaction_time.is_some());
    assert_eq!(
        state.watermark, report.transaction_time,
        "the watermark is the export's transactionTime"
    );

    // The de-identified Patient rows are in the container, without names.
    let prefix = format!("ndjson/Patient/run={}", report.run_id);
    let keys = dest.list(&prefix).unwrap();
    assert!(!keys.is_empty(), "Patient NDJSON under {prefix}");
    let mut patients = 0;
    for object in keys {
        let bytes = dest.get(&object.key).unwrap().expect("listed object");
        for patient in gunzip_lines(&bytes) {
            for name in patient["name"].as_array().into_iter().flatten() {
                for part in ["family", "given", "text"] {
                    assert!(name.get(part).is_none(), "name.{part} in {}", object.key);
                }
            }
            for telecom in patient["telecom"].as_array().into_iter().flatten() {
                assert!(telecom.get("value").is_none(), "telecom in {}", object.key);
            }
            patients += 1;
        }
    }
    assert_eq!(patients, expected["Patient"]);

    if cfg!(feature = "delta") {
        let Some(python) = testkit::Python::find(&["deltalake"]) else {
            return;
        };
        let storage: serde_json::Map<String, Value> = azurite
            .object_store_options()
            .into_iter()
            .map(|(key, value)| (key, Value::String(value)))
            .collect();
        let rows = python.json(
            "import sys, json\n\
             from deltalake import DeltaTable\n\
             table = DeltaTable(sys.argv[1], storage_options=json.loads(sys.argv[2]))\n\
             print(json.dumps({'rows': table.to_pyarrow_table().num_rows}))\n",
            &[
                "az://lake/covid/delta/Patient",
                &Value::Object(storage).to_string(),
            ],
        );
        assert_eq!(
            rows["rows"], expected["Patient"],
            "Delta rows read by deltalake"
        );
    }
}
