//! Destinations on a folder (always) and on S3 served by moto (feature `aws`), started and
//! stopped by the test. Without `moto_server`, the S3 test fails with install instructions,
//! unless `HAVEN_SKIP_EMULATORS=1`. Azure Blob Storage is tested in `azurite.rs`.

mod common;

use lake::Destination;

#[test]
fn folder_destination() {
    let dir = tempfile::tempdir().unwrap();
    let dest = Destination::open(dir.path().join("lake").to_str().unwrap()).unwrap();
    common::object_round_trip(&dest);
    common::land_two_runs(&dest);
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

#[cfg(feature = "aws")]
#[test]
fn s3_destination_on_moto() {
    let Some(moto) = testkit::Moto::start() else {
        return;
    };
    moto.create_bucket("lake");
    let options = moto.object_store_options();
    let dest = Destination::open_with("s3://lake/haven/test", &options).unwrap();
    assert_eq!(dest.scheme(), lake::Scheme::S3);
    common::object_round_trip(&dest);
    let (deleted, remaining) = common::land_two_runs(&dest);
    if cfg!(feature = "delta") {
        common::python_sees_deletion(
            "s3://lake/haven/test/delta/Patient",
            &options,
            &deleted,
            remaining,
        );
    }
}
