//! The Delta check (feature `delta`): every Delta table opens at its latest version and its
//! files' footers read; each resource table (`delta/<Type>`) holds each current id exactly
//! once and no other id.

use std::collections::{BTreeSet, HashMap, HashSet};

use arrow_array::Array;
use arrow_array::cast::AsArray;
use deltalake::DeltaTableBuilder;
use lake::Destination;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::report::{Check, Finding};

/// What one Delta table holds.
struct TableIds {
    files: u64,
    rows: u64,
    ids: HashSet<u64>,
    duplicates: u64,
}

/// Checks every Delta table of the lake against the current ids.
pub(crate) fn check(
    dest: &Destination,
    tables: &BTreeSet<String>,
    current: &HashMap<String, HashMap<u64, u32>>,
    hash: fn(&str) -> u64,
) -> Check {
    if tables.is_empty() {
        return Check::skipped("delta", "no Delta tables");
    }
    lake::register_log_stores();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            let mut check = Check::new("delta");
            check.add(
                "unreadable",
                finding("unreadable", "delta", &format!("no runtime: {e}")),
            );
            return check;
        }
    };
    let mut check = Check::new("delta");
    let (mut files, mut rows) = (0, 0);
    for table in tables {
        let resource_type = table
            .strip_prefix("delta/")
            .filter(|t| !t.starts_with("views/"));
        let column = if resource_type.is_some() {
            "id"
        } else {
            lake::views::RESOURCE_ID_COLUMN
        };
        let found = runtime
            .block_on(table_files(dest, table))
            .and_then(|paths| read_files(dest, table, &paths, column, hash));
        match found {
            Ok(found) => {
                files += found.files;
                rows += found.rows;
                if let Some(resource_type) = resource_type {
                    compare(&mut check, table, resource_type, &found, current);
                }
            }
            Err(reason) => check.add("unreadable", finding("unreadable", table, &reason)),
        }
    }
    check.summary = format!(
        "{} tables opened, {files} files, {rows} rows; resource tables compared with the \
         current ids",
        tables.len()
    );
    check
}

fn compare(
    check: &mut Check,
    table: &str,
    resource_type: &str,
    found: &TableIds,
    current: &HashMap<String, HashMap<u64, u32>>,
) {
    let empty = HashMap::new();
    let expected = current.get(resource_type).unwrap_or(&empty);
    let missing = expected.keys().filter(|h| !found.ids.contains(h)).count();
    let extra = found
        .ids
        .iter()
        .filter(|h| !expected.contains_key(h))
        .count();
    if missing > 0 {
        check.add(
            "delta-ids",
            finding(
                "delta-ids",
                table,
                &format!("{missing} current {resource_type} ids are missing from the table"),
            ),
        );
    }
    if extra > 0 {
        check.add(
            "delta-ids",
            finding(
                "delta-ids",
                table,
                &format!("{extra} ids in the table were never landed or have been deleted"),
            ),
        );
    }
    if found.duplicates > 0 {
        check.add(
            "delta-ids",
            finding(
                "delta-ids",
                table,
                &format!("{} ids appear more than once", found.duplicates),
            ),
        );
    }
}

/// Opens `table` at its latest version: the paths of its files, relative to the table.
async fn table_files(dest: &Destination, table: &str) -> Result<Vec<String>, String> {
    let url = dest.url_of(table);
    let mut delta = DeltaTableBuilder::from_url(url.clone())
        .and_then(|b| b.with_storage_backend(dest.object_store(), url).build())
        .map_err(|e| format!("does not open: {e}"))?;
    delta
        .load()
        .await
        .map_err(|e| format!("does not open: {e}"))?;
    let paths: Vec<String> = delta
        .snapshot()
        .map_err(|e| format!("has no snapshot: {e}"))?
        .log_data()
        .into_iter()
        .map(|file| file.path().to_string())
        .collect();
    Ok(paths)
}

/// Reads the key column of each file of `table`.
fn read_files(
    dest: &Destination,
    table: &str,
    paths: &[String],
    column: &str,
    hash: fn(&str) -> u64,
) -> Result<TableIds, String> {
    let mut found = TableIds {
        files: 0,
        rows: 0,
        ids: HashSet::new(),
        duplicates: 0,
    };
    for path in paths {
        let key = format!("{table}/{path}");
        let bytes = dest
            .get(&key)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("{key}: listed in the Delta log but missing"))?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(bytes)
            .map_err(|e| format!("{key}: the Parquet footer does not read: {e}"))?;
        let schema = builder.parquet_schema();
        let index = schema
            .columns()
            .iter()
            .position(|c| c.name() == column)
            .ok_or_else(|| format!("{key}: no `{column}` column"))?;
        let mask = ProjectionMask::leaves(schema, [index]);
        let reader = builder
            .with_projection(mask)
            .build()
            .map_err(|e| format!("{key}: cannot read rows: {e}"))?;
        found.files += 1;
        for batch in reader {
            let batch = batch.map_err(|e| format!("{key}: cannot read rows: {e}"))?;
            let ids = batch
                .column(0)
                .as_string_opt::<i32>()
                .ok_or_else(|| format!("{key}: `{column}` is not text"))?;
            found.rows += ids.len() as u64;
            for id in ids.iter().flatten() {
                if !found.ids.insert(hash(id)) && column == "id" {
                    found.duplicates += 1;
                }
            }
        }
    }
    Ok(found)
}

fn finding(kind: &str, table: &str, detail: &str) -> Finding {
    Finding {
        kind: kind.to_owned(),
        file: table.to_owned(),
        line: None,
        path: None,
        detail: detail.to_owned(),
    }
}
