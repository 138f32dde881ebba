//! Destinations on a folder (always), Azure Blob Storage on Azurite (feature `azure`) and S3 on
//! moto (feature `aws`), the emulators started and stopped by the tests. Without the tool, an
//! emulator test fails with install instructions, unless `HAVEN_SKIP_EMULATORS=1`.

mod common;

use std::collections::BTreeMap;
use std::io::Write;

use lake::{Destination, Formats, RunOptions, RunWriter};

/// Exercises put, streamed put (several parts), get, list and delete on `dest`.
fn object_round_trip(dest: &Destination) {
    dest.put("t/small.txt", &b"hello"[..]).unwrap();
    assert_eq!(&dest.get("t/small.txt").unwrap().unwrap()[..], b"hello");
    assert!(dest.get("t/missing").unwrap().is_none());

    let mut writer = dest.writer("t/big.bin").unwrap();
    let chunk: Vec<u8> = (0..1024 * 1024).map(|i| (i % 251) as u8).collect();
    for _ in 0..12 {
        writer.write_all(&chunk).unwrap();
    }
    assert!(
        dest.get("t/big.bin").unwrap().is_none(),
        "invisible until finished"
    );
    assert_eq!(writer.finish().unwrap(), 12 * 1024 * 1024);
    let big = dest.get("t/big.bin").unwrap().unwrap();
    assert_eq!(big.len(), 12 * 1024 * 1024);
    assert_eq!(&big[5 * 1024 * 1024..5 * 1024 * 1024 + 16], &chunk[..16]);

    let mut abandoned = dest.writer("t/abandoned.bin").unwrap();
    abandoned.write_all(&chunk).unwrap();
    drop(abandoned);

    let keys: Vec<String> = dest.list("t").unwrap().into_iter().map(|o| o.key).collect();
    assert_eq!(keys, ["t/big.bin", "t/small.txt"]);
    dest.delete("t/small.txt").unwrap();
    dest.delete("t/big.bin").unwrap();
    dest.delete("t/never").unwrap();
    assert!(dest.list("t").unwrap().is_empty());
}

/// Lands a small synthetic data set in two runs (the second deleting a patient) and checks
/// what the destination lists; returns the deleted patient's id and how many remain.
fn land_two_runs(dest: &Destination) -> (String, u64) {
    let work = tempfile::tempdir().unwrap();
    common::synth(work.path(), 12, 5);
    let lines = common::ndjson_lines(work.path());
    let formats = Formats {
        ndjson: true,
        parquet: true,
        delta: cfg!(feature = "delta"),
    };
    let mut options = RunOptions::new("r1");
    options.formats = formats;
    let mut run = RunWriter::new(dest, options.clone()).unwrap();
    for (_, line) in &lines {
        run.write_line(line).unwrap();
    }
    let first = run.finish().unwrap();
    let patients = lines.iter().filter(|(t, _)| t == "Patient").count() as u64;
    assert_eq!(first.tables["parquet/Patient"].rows, patients);
    assert_eq!(first.tables["views/patient"].rows, patients);

    let patient: serde_json::Value =
        serde_json::from_slice(&lines.iter().find(|(t, _)| t == "Patient").unwrap().1).unwrap();
    let id = patient["id"].as_str().unwrap().to_string();
    options.run_id = "r2".into();
    let mut run = RunWriter::new(dest, options).unwrap();
    run.delete("Patient", &id).unwrap();
    run.finish().unwrap();

    let keys: Vec<String> = dest.list("").unwrap().into_iter().map(|o| o.key).collect();
    for key in [
        "ndjson/Patient/run=r1/part-00000.ndjson.gz",
        "parquet/Patient/run=r1/part-00000.parquet",
        "views/observation/run=r1/part-00000.parquet",
        "deleted/Patient/run=r2/part-00000.ndjson.gz",
    ] {
        assert!(keys.iter().any(|k| k == key), "{key} missing from {keys:?}");
    }
    if cfg!(feature = "delta") {
        assert!(
            keys.iter()
                .any(|k| k == "delta/Patient/_delta_log/00000000000000000002.json")
        );
    }
    (id, patients - 1)
}

/// Reads `delta/Patient` with Python's deltalake through `options` and checks the deleted
/// patient is gone.
fn python_sees_deletion(
    table_url: &str,
    options: &BTreeMap<String, String>,
    deleted: &str,
    expected_rows: u64,
) {
    let got = common::python_json(
        r#"
import sys, json
from deltalake import DeltaTable
t = DeltaTable(sys.argv[1], storage_options=json.loads(sys.argv[2])).to_pyarrow_table()
print(json.dumps({"rows": t.num_rows, "ids": t.column("id").to_pylist()}))
"#,
        &[table_url, &serde_json::to_string(options).unwrap()],
    );
    assert_eq!(got["rows"], expected_rows);
    assert!(!got["ids"].as_array().unwrap().iter().any(|i| i == deleted));
}

#[test]
fn folder_destination() {
    let dir = tempfile::tempdir().unwrap();
    let dest = Destination::open(dir.path().join("lake").to_str().unwrap()).unwrap();
    object_round_trip(&dest);
    land_two_runs(&dest);
    assert!(
        dir.path()
            .join("lake/parquet/Patient/run=r1/part-00000.parquet")
            .is_file()
    );
    let url = format!("file://{}", dir.path().join("other").display());
    assert_eq!(
        Destination::open(&url).unwrap().scheme(),
        lake::Scheme::Local
    );
}

#[cfg(feature = "azure")]
#[test]
fn azure_blob_destination_on_azurite() {
    let Some(azurite) = common::start_azurite() else {
        return;
    };
    common::azurite_create_container(azurite.port, "lake");
    let options = common::azurite_options(azurite.port);
    let dest = Destination::open_with("az://lake/haven/test", &options).unwrap();
    assert_eq!(dest.scheme(), lake::Scheme::Azure);
    object_round_trip(&dest);
    let (deleted, remaining) = land_two_runs(&dest);
    if cfg!(feature = "delta") {
        python_sees_deletion(
            "az://lake/haven/test/delta/Patient",
            &options,
            &deleted,
            remaining,
        );
    }
}

#[cfg(feature = "aws")]
#[test]
fn s3_destination_on_moto() {
    let Some(moto) = common::start_moto() else {
        return;
    };
    common::moto_create_bucket(moto.port, "lake");
    let options = common::moto_options(moto.port);
    let dest = Destination::open_with("s3://lake/haven/test", &options).unwrap();
    assert_eq!(dest.scheme(), lake::Scheme::S3);
    object_round_trip(&dest);
    let (deleted, remaining) = land_two_runs(&dest);
    if cfg!(feature = "delta") {
        python_sees_deletion(
            "s3://lake/haven/test/delta/Patient",
            &options,
            &deleted,
            remaining,
        );
    }
}
