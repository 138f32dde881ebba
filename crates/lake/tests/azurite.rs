//! Destinations on Azure Blob Storage served by Azurite (feature `azure`), started and stopped
//! by the test. Without `azurite-blob`, the test fails with install instructions, unless
//! `HAVEN_SKIP_EMULATORS=1`. This binary holds one test, because it points the environment
//! variable `AZURITE_BLOB_STORAGE_URL` at its own Azurite.

mod common;

use lake::Destination;

#[test]
fn azure_blob_destination_on_azurite() {
    let Some(azurite) = testkit::Azurite::start() else {
        return;
    };
    // SAFETY: this binary's only test sets the variable before any thread of its own (the
    // lake's runtime, the Python readers) reads the environment.
    unsafe {
        std::env::set_var(testkit::Azurite::URL_ENV, azurite.endpoint());
    }
    azurite.create_container("lake");
    let options = azurite.object_store_options();
    let dest = Destination::open_with("az://lake/haven/test", &options).unwrap();
    assert_eq!(dest.scheme(), lake::Scheme::Azure);
    common::object_round_trip(&dest);
    let (deleted, remaining) = common::land_two_runs(&dest);
    if cfg!(feature = "delta") {
        common::python_sees_deletion(
            "az://lake/haven/test/delta/Patient",
            &options,
            &deleted,
            remaining,
        );
    }
}
