//! Lakes tampered with after the pipeline built them fail with the right finding: located by
//! file, line and element path, named by kind, and never showing the value.

mod common;

use serde_json::{Value, json};
use validate::Status;

/// Plants `text` as a note of the first Condition; the finding kinds of the identifier scan
/// at that place.
fn planted_note(text: &str) -> (validate::Report, String) {
    let lake = common::lake(6);
    let part = &common::parts(&lake.lake, "ndjson/Condition")[0];
    common::edit_line(part, 1, |c| c["note"] = json!([{"text": text}]));
    let report = common::validate(&lake.lake, None);
    (report, common::key(&lake.lake, part))
}

#[test]
fn an_ssn_in_a_note_fails_the_identifier_scan() {
    let (report, key) = planted_note("patient SSN 123-45-6789 on file");
    assert!(!report.passed);
    let found = common::findings(&report, "identifiers");
    assert_eq!(
        found,
        [(
            "ssn".to_owned(),
            key,
            Some(1),
            Some("/note/0/text".to_owned())
        )]
    );
    common::assert_not_in_output(&report, "123-45-6789");
}

#[test]
fn a_five_digit_zip_fails_under_safe_harbor() {
    let lake = common::lake(6);
    let part = &common::parts(&lake.lake, "ndjson/Patient")[0];
    common::edit_line(part, 2, |p| p["address"][0]["postalCode"] = json!("02134"));
    let report = common::validate(&lake.lake, None);
    let found = common::findings(&report, "identifiers");
    let key = common::key(&lake.lake, part);
    assert_eq!(
        found,
        [(
            "zip5".to_owned(),
            key,
            Some(2),
            Some("/address/0/postalCode".to_owned())
        )]
    );
    common::assert_not_in_output(&report, "02134");
}

#[test]
fn a_full_birth_date_fails_under_safe_harbor() {
    let lake = common::lake(6);
    let part = &common::parts(&lake.lake, "ndjson/Patient")[0];
    common::edit_line(part, 1, |p| p["birthDate"] = json!("1987-06-21"));
    let report = common::validate(&lake.lake, None);
    let found = common::findings(&report, "identifiers");
    let key = common::key(&lake.lake, part);
    assert_eq!(
        found,
        [(
            "full-date".to_owned(),
            key,
            Some(1),
            Some("/birthDate".to_owned())
        )]
    );
    common::assert_not_in_output(&report, "1987-06-21");
}

#[test]
fn a_source_family_name_planted_in_a_string_is_found() {
    let lake = common::lake(6);
    let patients: String = std::fs::read_dir(&lake.source)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("Patient.")
        })
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    let family = patients
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find_map(|p| {
            let family = p["name"][0]["family"].as_str()?.to_owned();
            (family.len() >= 6).then_some(family)
        })
        .expect("a family name of 6 letters or more");
    let part = &common::parts(&lake.lake, "ndjson/Condition")[0];
    common::edit_line(part, 3, |c| {
        c["code"]["text"] = json!(format!("reported by {family}, neighbour"));
    });
    let report = common::validate(&lake.lake, Some(&lake.source));
    let key = common::key(&lake.lake, part);
    let found = common::findings(&report, "source-values");
    assert!(
        found.contains(&(
            "source-value".to_owned(),
            key,
            Some(3),
            Some("/code/text".to_owned())
        )),
        "{found:?}"
    );
    common::assert_not_in_output(&report, &family);
    // Without the source, the name is not an identifier pattern.
    assert_eq!(
        common::validate(&lake.lake, None)
            .check("identifiers")
            .unwrap()
            .status,
        Status::Passed
    );
}

#[test]
fn a_dangling_reference_is_reported_by_source_and_target_type() {
    let lake = common::lake(6);
    let part = &common::parts(&lake.lake, "ndjson/Condition")[0];
    let missing = "f".repeat(64);
    common::edit_line(part, 2, |c| {
        c["subject"]["reference"] = json!(format!("Patient/{missing}"));
    });
    let report = common::validate(&lake.lake, None);
    let check = report.check("references").unwrap();
    assert_eq!(check.status, Status::Failed);
    assert_eq!(
        check.groups.keys().collect::<Vec<_>>(),
        ["Condition → Patient"]
    );
    let found = common::findings(&report, "references");
    let key = common::key(&lake.lake, part);
    assert_eq!(
        found,
        [(
            "unresolved-reference".to_owned(),
            key,
            Some(2),
            Some("/subject/reference".to_owned())
        )]
    );
    common::assert_not_in_output(&report, &missing);
    assert_eq!(report.check("identifiers").unwrap().status, Status::Passed);
}

#[test]
fn a_parquet_file_whose_rows_disagree_with_the_report_fails_the_counts() {
    let lake = common::lake(6);
    let patients = &common::parts(&lake.lake, "parquet/Patient")[0];
    let conditions = &common::parts(&lake.lake, "parquet/Condition")[0];
    assert_ne!(
        lake.report.types["Patient"].landed,
        lake.report.types["Condition"].landed
    );
    std::fs::copy(patients, conditions).unwrap();
    let report = common::validate(&lake.lake, None);
    assert!(!report.passed);
    let found = common::findings(&report, "counts");
    let partition = format!("parquet/Condition/run={}", lake.report.run_id);
    assert!(!found.is_empty());
    assert!(
        found
            .iter()
            .all(|(kind, file, _, _)| kind == "row-count" && *file == partition),
        "{found:?}"
    );
    assert_eq!(report.check("tables").unwrap().status, Status::Passed);
}

#[test]
fn a_truncated_gzip_file_fails_to_open() {
    let lake = common::lake(6);
    let part = &common::parts(&lake.lake, "ndjson/Observation")[0];
    let bytes = std::fs::read(part).unwrap();
    std::fs::write(part, &bytes[..bytes.len() / 2]).unwrap();
    let report = common::validate(&lake.lake, None);
    let key = common::key(&lake.lake, part);
    let found = common::findings(&report, "tables");
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!((found[0].0.as_str(), &found[0].1), ("unreadable", &key));
    let detail = &report.check("tables").unwrap().groups["unreadable"].examples[0].detail;
    assert!(detail.contains("gzip"), "{detail}");
    let counts = common::findings(&report, "counts");
    let partition = format!("ndjson/Observation/run={}", lake.report.run_id);
    assert!(
        counts
            .iter()
            .any(|(kind, file, _, _)| kind == "row-count" && *file == partition)
    );
}

#[test]
fn a_lake_without_state_is_an_error_not_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    let dest = lake::Destination::open(dir.path().to_str().unwrap()).unwrap();
    let error = validate::validate(&dest, &validate::Options::default()).unwrap_err();
    assert!(error.to_string().contains("_haven/state.json"), "{error}");
}

/// Rewrites the text cell at (`row`, 1-based; `column`) of a Parquet view part.
fn edit_view_cell(part: &std::path::Path, row: usize, column: &str, value: &str) {
    use std::sync::Arc;

    use arrow_array::cast::AsArray;
    use arrow_array::{ArrayRef, RecordBatch, StringArray};
    use parquet::arrow::ArrowWriter;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    let bytes = bytes::Bytes::from(std::fs::read(part).unwrap());
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes).unwrap();
    let schema = builder.schema().clone();
    let batches: Vec<RecordBatch> = builder.build().unwrap().map(Result::unwrap).collect();
    let index = schema.index_of(column).unwrap();
    let mut out = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut out, schema.clone(), None).unwrap();
    let mut seen = 0;
    for batch in batches {
        let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
        if (seen..seen + batch.num_rows()).contains(&(row - 1)) {
            let mut cells: Vec<Option<String>> = columns[index]
                .as_string::<i32>()
                .iter()
                .map(|c| c.map(str::to_owned))
                .collect();
            cells[row - 1 - seen] = Some(value.to_owned());
            columns[index] = Arc::new(StringArray::from(cells));
        }
        seen += batch.num_rows();
        writer
            .write(&RecordBatch::try_new(schema.clone(), columns).unwrap())
            .unwrap();
    }
    writer.close().unwrap();
    std::fs::write(part, out).unwrap();
}

#[test]
fn identifiers_built_into_view_cells_are_found() {
    let lake = common::lake(6);
    let part = &common::parts(&lake.lake, "views/patient")[0];
    edit_view_cell(part, 2, "state", "call 617-555-0123");
    edit_view_cell(part, 3, "zip3", "02134");
    let report = common::validate(&lake.lake, None);
    assert!(!report.passed);
    let key = common::key(&lake.lake, part);
    let mut found = common::findings(&report, "identifiers");
    found.sort();
    assert_eq!(
        found,
        [
            (
                "phone".to_owned(),
                key.clone(),
                Some(2),
                Some("/state".to_owned())
            ),
            ("zip5".to_owned(), key, Some(3), Some("/zip3".to_owned())),
        ]
    );
    common::assert_not_in_output(&report, "617-555-0123");
    common::assert_not_in_output(&report, "02134");
    let summary = &report.check("identifiers").unwrap().summary;
    assert!(summary.contains("view cells scanned"), "{summary}");
}
