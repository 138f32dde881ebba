//! The committed tables in `crates/fhir/src/generated` are what the generator produces now.

use std::path::{Path, PathBuf};
use std::process::Command;

fn files(dir: &Path) -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.expect("directory entry").path();
            let name = path
                .file_name()
                .expect("file name")
                .to_string_lossy()
                .into_owned();
            let text = std::fs::read_to_string(&path).expect("generated file is UTF-8");
            (name, text)
        })
        .collect();
    files.sort();
    files
}

#[test]
fn generated_tables_are_up_to_date() {
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("fhir-tables-gen-up-to-date");
    if out.exists() {
        std::fs::remove_dir_all(&out).expect("clearing the output folder");
    }
    let status = Command::new(env!("CARGO_BIN_EXE_fhir-tables-gen"))
        .arg("--out")
        .arg(&out)
        .status()
        .expect("running fhir-tables-gen");
    assert!(status.success(), "fhir-tables-gen failed");

    let committed =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../crates/fhir/src/generated");
    let (fresh, committed) = (files(&out), files(&committed));
    let names =
        |files: &[(String, String)]| files.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(
        names(&fresh),
        names(&committed),
        "generated file set differs"
    );
    for ((name, fresh), (_, committed)) in fresh.iter().zip(&committed) {
        assert!(
            fresh == committed,
            "crates/fhir/src/generated/{name} is stale: run `cargo run -p fhir-tables-gen`"
        );
    }
}
