//! Lakes the pipeline built from `synth` data with the safe-harbor preset: every check
//! passes, for a first run and after an incremental run that applies deletions.

mod common;

use std::path::Path;

use pipeline::{Pipeline, Silent};
use validate::Status;

#[test]
fn a_safe_harbor_lake_from_synth_passes_every_check() {
    let lake = common::lake(12);
    let report = common::validate(&lake.lake, None);
    assert!(report.passed, "{}", report.summary());
    assert!(report.safe_harbor);
    assert_eq!(report.runs, std::slice::from_ref(&lake.report.run_id));
    let landed: u64 = lake.report.landed();
    assert_eq!(report.resources, landed, "every landed resource is scanned");
    for name in ["counts", "tables", "references", "identifiers"] {
        assert_eq!(report.check(name).unwrap().status, Status::Passed, "{name}");
    }
    assert_eq!(report.check("delta").unwrap().status, Status::Skipped);
    assert_eq!(
        report.check("source-values").unwrap().status,
        Status::Skipped
    );
}

/// With the source, none of its identifying values remains anywhere in the lake: the
/// safe-harbor preset scrubs free text (notes, narratives, `Organization.name`, where
/// Synthea's provider names hold the patients' cities) with the run's own identifiers.
#[test]
fn with_the_source_no_identifying_value_of_it_remains() {
    let lake = common::lake(12);
    let report = common::validate(&lake.lake, Some(&lake.source));
    for name in [
        "counts",
        "tables",
        "references",
        "identifiers",
        "source-values",
    ] {
        assert_eq!(
            report.check(name).unwrap().status,
            Status::Passed,
            "{name}: {}",
            report.summary()
        );
    }
    assert!(
        report
            .check("source-values")
            .unwrap()
            .summary
            .contains("source values searched for")
    );
}

#[test]
fn an_incremental_lake_reconciles_deletions_and_its_current_ids() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base");
    synth::generate(&synth::SynthOptions::new(30, 7, &base), &|_| {}).unwrap();
    let update = dir.path().join("update");
    let mut options = synth::SynthOptions::new(3, 0, &update);
    options.update_of = Some(base.clone());
    synth::generate(&options, &|_| {}).unwrap();
    let lake = dir.path().join("lake");
    let keys = dir.path().join("keys.json");
    let formats = "\"ndjson\", \"parquet\"";
    for source in [&base, &update] {
        Pipeline::new(common::config(source, &lake, &keys, formats))
            .unwrap()
            .run(&Silent)
            .unwrap();
    }
    let report = common::validate(&lake, None);
    assert!(report.passed, "{}", report.summary());
    assert_eq!(report.runs.len(), 2);
    assert!(deletions(&lake) > 0, "the update deletes resources");
}

/// Lines in the lake's deletion lists.
fn deletions(lake: &Path) -> usize {
    let mut n = 0;
    for table in std::fs::read_dir(lake.join("deleted")).unwrap() {
        for run in std::fs::read_dir(table.unwrap().path()).unwrap() {
            for part in std::fs::read_dir(run.unwrap().path()).unwrap() {
                let mut text = String::new();
                std::io::Read::read_to_string(
                    &mut flate2::read::MultiGzDecoder::new(
                        std::fs::File::open(part.unwrap().path()).unwrap(),
                    ),
                    &mut text,
                )
                .unwrap();
                n += text.lines().count();
            }
        }
    }
    n
}
