//! The Delta check on a lake with Delta tables (feature `delta`): a clean lake's tables hold
//! exactly the current ids; a table that lost a file's rows fails.

mod common;

use validate::Status;

#[test]
fn delta_tables_hold_exactly_the_current_ids() {
    let lake = common::lake_with(6, "\"ndjson\", \"parquet\", \"delta\"");
    let report = common::validate(&lake.lake, None);
    let check = report.check("delta").unwrap();
    assert_eq!(check.status, Status::Passed, "{}", report.summary());
    assert!(report.passed, "{}", report.summary());
}

#[test]
fn a_delta_table_missing_a_file_fails() {
    let lake = common::lake_with(6, "\"ndjson\", \"parquet\", \"delta\"");
    let table = lake.lake.join("delta/Condition");
    let file = std::fs::read_dir(&table)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "parquet"))
        .unwrap();
    std::fs::remove_file(&file).unwrap();
    let report = common::validate(&lake.lake, None);
    let found = common::findings(&report, "delta");
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(
        (found[0].0.as_str(), found[0].1.as_str()),
        ("unreadable", "delta/Condition")
    );
}

#[test]
fn a_delta_table_whose_ids_differ_from_the_landed_ones_fails() {
    let lake = common::lake_with(6, "\"ndjson\", \"parquet\", \"delta\"");
    let part = &common::parts(&lake.lake, "ndjson/Condition")[0];
    common::edit_line(part, 1, |c| c["id"] = serde_json::json!("0".repeat(64)));
    let report = common::validate(&lake.lake, None);
    let check = report.check("delta").unwrap();
    let details: Vec<&str> = check.groups["delta-ids"]
        .examples
        .iter()
        .map(|f| f.detail.as_str())
        .collect();
    assert_eq!(
        details,
        [
            "1 current Condition ids are missing from the table",
            "1 ids in the table were never landed or have been deleted"
        ]
    );
}
