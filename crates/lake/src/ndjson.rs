//! NDJSON (gzip) per resource type, partitioned by run:
//! `ndjson/<Type>/run=<id>/part-00000.ndjson.gz`.

use std::io::Write;

use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::Value;

use crate::destination::{Destination, ObjectWriter};
use crate::error::{Error, Result};
use crate::{FileWritten, TableSummary, WriterOptions, check_name};

/// The key of one NDJSON part.
pub fn ndjson_key(resource_type: &str, run_id: &str, part: u32) -> String {
    format!("ndjson/{resource_type}/run={run_id}/part-{part:05}.ndjson.gz")
}

/// Streams the resources of one type into gzip NDJSON parts of one run. Each part is an
/// atomic upload; a new part starts after [`WriterOptions::rows_per_file`] lines.
pub struct NdjsonWriter {
    dest: Destination,
    resource_type: String,
    run_id: String,
    options: WriterOptions,
    current: Option<(GzEncoder<ObjectWriter>, u64)>,
    summary: TableSummary,
}

impl NdjsonWriter {
    /// A writer for `resource_type` in run `run_id` (letters, digits, `.`, `_`, `-`).
    pub fn create(
        dest: &Destination,
        resource_type: &str,
        run_id: &str,
        options: WriterOptions,
    ) -> Result<NdjsonWriter> {
        check_name("resource type", resource_type)?;
        check_name("run id", run_id)?;
        Ok(NdjsonWriter {
            dest: dest.clone(),
            resource_type: resource_type.to_string(),
            run_id: run_id.to_string(),
            options,
            current: None,
            summary: TableSummary::new(format!("ndjson/{resource_type}")),
        })
    }

    /// Writes one resource as a line.
    pub fn write(&mut self, resource: &Value) -> Result<()> {
        let line = serde_json::to_vec(resource).expect("a JSON value serializes");
        self.write_line(&line)
    }

    /// Writes one NDJSON line as given (a trailing newline is dropped); the caller vouches
    /// that it is a resource of this writer's type.
    pub fn write_line(&mut self, line: &[u8]) -> Result<()> {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if self.current.is_none() {
            let key = ndjson_key(
                &self.resource_type,
                &self.run_id,
                self.summary.files.len() as u32,
            );
            let upload = self.dest.writer(&key)?;
            self.current = Some((GzEncoder::new(upload, Compression::fast()), 0));
        }
        let (encoder, lines) = self.current.as_mut().expect("a part is open");
        if let Err(source) = encoder
            .write_all(line)
            .and_then(|()| encoder.write_all(b"\n"))
        {
            return Err(Error::Io {
                key: encoder_key(encoder),
                source,
            });
        }
        *lines += 1;
        self.summary.rows += 1;
        if *lines >= self.options.rows_per_file {
            self.close_part()?;
        }
        Ok(())
    }

    fn close_part(&mut self) -> Result<()> {
        let Some((encoder, lines)) = self.current.take() else {
            return Ok(());
        };
        let key = encoder_key(&encoder);
        let upload = encoder.finish().map_err(|source| Error::Io {
            key: key.clone(),
            source,
        })?;
        let bytes = upload.finish()?;
        self.summary.files.push(FileWritten {
            key,
            rows: lines,
            bytes,
        });
        Ok(())
    }

    /// Completes the last part; returns what was written.
    pub fn finish(mut self) -> Result<TableSummary> {
        self.close_part()?;
        Ok(std::mem::take(&mut self.summary))
    }
}

fn encoder_key(encoder: &GzEncoder<ObjectWriter>) -> String {
    encoder.get_ref().key().to_string()
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    #[test]
    fn parts_roll_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let dest = Destination::open(dir.path().to_str().unwrap()).unwrap();
        let options = WriterOptions {
            rows_per_file: 2,
            ..WriterOptions::default()
        };
        let mut w = NdjsonWriter::create(&dest, "Patient", "r1", options).unwrap();
        for i in 0..3 {
            w.write(&serde_json::json!({"resourceType": "Patient", "id": format!("p{i}")}))
                .unwrap();
        }
        let summary = w.finish().unwrap();
        assert_eq!(summary.rows, 3);
        let keys: Vec<_> = summary.files.iter().map(|f| f.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "ndjson/Patient/run=r1/part-00000.ndjson.gz",
                "ndjson/Patient/run=r1/part-00001.ndjson.gz"
            ]
        );
        let bytes = dest.get(keys[1]).unwrap().unwrap();
        let mut text = String::new();
        flate2::read::GzDecoder::new(&bytes[..])
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "{\"resourceType\":\"Patient\",\"id\":\"p2\"}\n");
    }

    #[test]
    fn names_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let dest = Destination::open(dir.path().to_str().unwrap()).unwrap();
        assert!(NdjsonWriter::create(&dest, "../x", "r1", WriterOptions::default()).is_err());
        assert!(NdjsonWriter::create(&dest, "Patient", "a/b", WriterOptions::default()).is_err());
    }
}
