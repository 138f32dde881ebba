//! Haven's data lake: where de-identified resources land, and in what shapes.
//!
//! - [`Destination`]: a local folder (always built), `az://container/prefix` (feature `azure`),
//!   `s3://bucket/prefix` (feature `aws`) or `gs://bucket/prefix` (feature `gcp`), through
//!   `object_store`, with atomic puts and streamed multipart uploads.
//! - Writers, streaming (memory follows the batch, not the data set), one per resource type:
//!   - [`NdjsonWriter`]: gzip NDJSON partitioned by run,
//!     `ndjson/<Type>/run=<id>/part-00000.ndjson.gz`;
//!   - [`ParquetWriter`]: Parquet with the key columns of [`resource_schema`] (`id`,
//!     `patient`, `lastUpdated`, `resourceType`, `resource` as JSON text),
//!     `parquet/<Type>/run=<id>/part-00000.parquet`;
//!   - `DeltaTableWriter` (feature `delta`): Delta Lake tables with the same columns,
//!     `delta/<Type>`, where each run merges by id and applies deletions.
//! - [`views`]: SQL-on-FHIR v2 ViewDefinitions evaluated with Haven's FHIRPath engine, with
//!   built-in COVID-19 views, written as Parquet (`views/<name>/run=<id>/…`) and Delta
//!   (`delta/views/<name>`).
//! - [`RunWriter`]: one run of the pipeline: routes each resource to every enabled format
//!   and view, applies deletions, and reports what landed.
//!
//! The API is blocking; object-store I/O runs on a small runtime owned by this crate. From
//! async code, call it inside `tokio::task::spawn_blocking`.
//!
//! Cargo features (none by default; the folder destination, NDJSON, Parquet and views are
//! always built): `azure`, `aws`, `gcp` (or `cloud` for all three) add the cloud
//! destinations; `delta` adds Delta Lake tables through `deltalake`, without DataFusion (its
//! Delta kernel already links `object_store`'s cloud back ends, so `delta` costs little more
//! with `cloud`).
//!
//! ```
//! # let dir = tempfile::tempdir().unwrap();
//! # let folder = dir.path().to_str().unwrap();
//! let dest = lake::Destination::open(folder)?;
//! let mut run = lake::RunWriter::new(&dest, lake::RunOptions::new("2024-01-01"))?;
//! run.write(&serde_json::json!({"resourceType": "Patient", "id": "p1", "gender": "female"}))?;
//! let summary = run.finish()?;
//! assert_eq!(summary.tables["ndjson/Patient"].rows, 1);
//! # Ok::<(), lake::Error>(())
//! ```

#[cfg(feature = "delta")]
mod delta;
mod destination;
mod error;
mod ndjson;
mod parquet;
mod run;
mod table;
pub mod views;

#[cfg(feature = "delta")]
pub use delta::{
    DeltaCommit, DeltaTableWriter, delta_table_key, delta_view_key, register_log_stores,
};
pub use destination::{Destination, ObjectInfo, ObjectWriter, Scheme};
pub use error::{Error, Result};
pub use ndjson::{NdjsonWriter, ndjson_key};
pub use parquet::{ParquetFileWriter, ParquetWriter, parquet_key};
pub use run::{Formats, RunOptions, RunSummary, RunWriter};
pub use table::{KeyColumns, parse_instant_micros, resource_schema};

/// Batch and file sizes shared by the writers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriterOptions {
    /// Rows buffered before a batch is encoded (a Parquet row group, a Delta write).
    pub rows_per_batch: usize,
    /// JSON bytes buffered before a batch is encoded, whichever limit comes first.
    pub bytes_per_batch: usize,
    /// Rows per file before a new part starts.
    pub rows_per_file: u64,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            rows_per_batch: 10_000,
            bytes_per_batch: 32 * 1024 * 1024,
            rows_per_file: 1_000_000,
        }
    }
}

/// One object a writer completed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileWritten {
    /// Its key under the destination.
    pub key: String,
    /// Rows (lines) in it.
    pub rows: u64,
    /// Its size in bytes.
    pub bytes: u64,
}

/// What a writer put in one table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableSummary {
    /// The table's path under the destination (`ndjson/Patient`, `views/patient`).
    pub table: String,
    /// Rows written by this run.
    pub rows: u64,
    /// The files written by this run.
    pub files: Vec<FileWritten>,
}

impl TableSummary {
    pub(crate) fn new(table: String) -> TableSummary {
        TableSummary {
            table,
            ..TableSummary::default()
        }
    }

    /// Bytes written by this run.
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.bytes).sum()
    }
}

/// Refuses names that would escape or split a key (resource types, run ids, view names).
pub(crate) fn check_name(what: &'static str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidName { what })
    }
}
