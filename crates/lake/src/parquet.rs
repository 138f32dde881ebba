//! Parquet files: resource tables (`parquet/<Type>/run=<id>/part-00000.parquet`) with the key
//! columns of [`resource_schema`](crate::resource_schema), and the generic batch file writer
//! the view tables use.

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use serde_json::Value;

use crate::destination::{Destination, ObjectWriter};
use crate::error::{Error, Result};
use crate::table::{ResourceRows, keys_for, parse_line, resource_schema};
use crate::{FileWritten, TableSummary, WriterOptions, check_name};

/// The key of one Parquet part of a resource table.
pub fn parquet_key(resource_type: &str, run_id: &str, part: u32) -> String {
    format!("parquet/{resource_type}/run={run_id}/part-{part:05}.parquet")
}

/// Writer properties: Snappy (readable everywhere), no dictionary or statistics for columns
/// holding whole JSON documents (`large_columns`).
pub(crate) fn writer_properties(large_columns: &[&str]) -> WriterProperties {
    large_columns
        .iter()
        .fold(
            WriterProperties::builder().set_compression(Compression::SNAPPY),
            |builder, column| {
                let path = ColumnPath::from(*column);
                builder
                    .set_column_dictionary_enabled(path.clone(), false)
                    .set_column_statistics_enabled(path, EnabledStatistics::None)
            },
        )
        .build()
}

/// Streams record batches of one schema into one Parquet object, one row group per batch,
/// uploaded as it goes and made visible by [`finish`](ParquetFileWriter::finish).
pub struct ParquetFileWriter {
    key: String,
    writer: ArrowWriter<ObjectWriter>,
    rows: u64,
}

impl ParquetFileWriter {
    /// Starts `key` with `schema`.
    pub fn create(dest: &Destination, key: &str, schema: SchemaRef) -> Result<ParquetFileWriter> {
        ParquetFileWriter::with_properties(dest, key, schema, writer_properties(&[]))
    }

    pub(crate) fn with_properties(
        dest: &Destination,
        key: &str,
        schema: SchemaRef,
        properties: WriterProperties,
    ) -> Result<ParquetFileWriter> {
        let upload = dest.writer(key)?;
        let writer = ArrowWriter::try_new(upload, schema, Some(properties))
            .map_err(|e| Error::parquet(key, e))?;
        Ok(ParquetFileWriter {
            key: key.to_string(),
            writer,
            rows: 0,
        })
    }

    /// Writes `batch` as one row group.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.writer
            .write(batch)
            .and_then(|()| self.writer.flush())
            .map_err(|e| Error::parquet(&self.key, e))?;
        self.rows += batch.num_rows() as u64;
        Ok(())
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Writes the footer and completes the upload.
    pub fn finish(self) -> Result<FileWritten> {
        let upload = self
            .writer
            .into_inner()
            .map_err(|e| Error::parquet(&self.key, e))?;
        let bytes = upload.finish()?;
        Ok(FileWritten {
            key: self.key,
            rows: self.rows,
            bytes,
        })
    }
}

/// Streams the resources of one type into the Parquet parts of one run, with the key columns
/// `id`, `patient`, `lastUpdated`, `resourceType` and `resource`. Memory holds one batch
/// ([`WriterOptions::rows_per_batch`] rows) plus one upload part.
pub struct ParquetWriter {
    dest: Destination,
    resource_type: String,
    run_id: String,
    options: WriterOptions,
    rows: ResourceRows,
    file: Option<ParquetFileWriter>,
    received: u64,
    summary: TableSummary,
}

impl ParquetWriter {
    /// A writer for `resource_type` in run `run_id`.
    pub fn create(
        dest: &Destination,
        resource_type: &str,
        run_id: &str,
        options: WriterOptions,
    ) -> Result<ParquetWriter> {
        check_name("resource type", resource_type)?;
        check_name("run id", run_id)?;
        Ok(ParquetWriter {
            dest: dest.clone(),
            resource_type: resource_type.to_string(),
            run_id: run_id.to_string(),
            options,
            rows: ResourceRows::default(),
            file: None,
            received: 0,
            summary: TableSummary::new(format!("parquet/{resource_type}")),
        })
    }

    /// Writes one resource (serialized to compact JSON for the `resource` column).
    pub fn write(&mut self, resource: &Value) -> Result<()> {
        let json = serde_json::to_string(resource).expect("a JSON value serializes");
        self.push(resource, &json)
    }

    /// Writes one NDJSON line; the `resource` column keeps the line's text as given.
    pub fn write_line(&mut self, line: &[u8]) -> Result<()> {
        let (resource, text) = parse_line(line, &self.resource_type, self.received)?;
        self.push(&resource, text)
    }

    /// Writes one resource whose JSON text the caller already has.
    pub(crate) fn push(&mut self, resource: &Value, json: &str) -> Result<()> {
        let keys = keys_for(resource, &self.resource_type, self.received)?;
        self.received += 1;
        self.rows.push(&keys, json);
        if self.rows.len() >= self.options.rows_per_batch
            || self.rows.bytes() >= self.options.bytes_per_batch
        {
            self.flush_batch()?;
        }
        Ok(())
    }

    fn flush_batch(&mut self) -> Result<()> {
        if self.rows.len() == 0 {
            return Ok(());
        }
        if self.file.is_none() {
            let key = parquet_key(
                &self.resource_type,
                &self.run_id,
                self.summary.files.len() as u32,
            );
            self.file = Some(ParquetFileWriter::with_properties(
                &self.dest,
                &key,
                resource_schema(),
                writer_properties(&["resource"]),
            )?);
        }
        let file = self.file.as_mut().expect("a part is open");
        file.write(&self.rows.take_batch())?;
        if file.rows() >= self.options.rows_per_file {
            self.close_part()?;
        }
        Ok(())
    }

    fn close_part(&mut self) -> Result<()> {
        close_part(&mut self.file, &mut self.summary)
    }

    /// Writes what is buffered and completes the last part.
    pub fn finish(mut self) -> Result<TableSummary> {
        self.flush_batch()?;
        self.close_part()?;
        Ok(std::mem::take(&mut self.summary))
    }
}

/// Completes the open part file, if any, and adds it to the table's summary.
pub(crate) fn close_part(
    file: &mut Option<ParquetFileWriter>,
    summary: &mut TableSummary,
) -> Result<()> {
    if let Some(file) = file.take() {
        let written = file.finish()?;
        summary.rows += written.rows;
        summary.files.push(written);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use arrow_array::cast::AsArray;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    use super::*;

    #[test]
    fn resources_round_trip_with_key_columns() {
        let dir = tempfile::tempdir().unwrap();
        let dest = Destination::open(dir.path().to_str().unwrap()).unwrap();
        let options = WriterOptions {
            rows_per_batch: 2,
            ..WriterOptions::default()
        };
        let mut w = ParquetWriter::create(&dest, "Observation", "r1", options).unwrap();
        for i in 0..5 {
            let line = format!(
                r#"{{"resourceType":"Observation","id":"o{i}","subject":{{"reference":"Patient/p{i}"}},"valueQuantity":{{"value":1.50}}}}"#
            );
            w.write_line(line.as_bytes()).unwrap();
        }
        let summary = w.finish().unwrap();
        assert_eq!(summary.rows, 5);
        let bytes = dest.get(&summary.files[0].key).unwrap().unwrap();
        let builder = ParquetRecordBatchReaderBuilder::try_new(bytes).unwrap();
        assert_eq!(
            builder.metadata().num_row_groups(),
            3,
            "one row group per batch"
        );
        let batches: Vec<_> = builder.build().unwrap().map(|b| b.unwrap()).collect();
        let first = &batches[0];
        assert_eq!(first.column(0).as_string::<i32>().value(1), "o1");
        assert_eq!(first.column(1).as_string::<i32>().value(1), "p1");
        assert!(first.column(4).as_string::<i32>().value(0).contains("1.50"));
    }

    #[test]
    fn wrong_type_is_an_error_without_content() {
        let dir = tempfile::tempdir().unwrap();
        let dest = Destination::open(dir.path().to_str().unwrap()).unwrap();
        let mut w =
            ParquetWriter::create(&dest, "Patient", "r1", WriterOptions::default()).unwrap();
        let err = w
            .write(&serde_json::json!({"resourceType": "Observation", "id": "secret-id"}))
            .unwrap_err()
            .to_string();
        assert!(!err.contains("secret"), "{err}");
        let err = w
            .write_line(b"{\"id\": \"secret\"")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("secret"), "{err}");
    }
}
