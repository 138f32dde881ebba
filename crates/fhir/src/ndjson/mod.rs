//! Streaming NDJSON: bounded batches in, ordered results out.
//!
//! - [`NdjsonReader`] reads plain or gzip NDJSON (gzip is recognised by its magic bytes) from a
//!   path or any [`Read`](std::io::Read) and cuts it into [`Batch`]es of at most
//!   [`ReadOptions::batch_lines`] lines and [`ReadOptions::batch_bytes`] bytes, each line with its
//!   1-based line number. Blank lines are skipped, a trailing `\r` is dropped, and a line longer
//!   than [`ReadOptions::max_line_bytes`] is an error, found without buffering past the limit.
//! - [`process_ordered`] runs a per-line function on a rayon pool and hands the results to a sink
//!   in input order, with a bounded number of batches in flight, so memory follows the batch
//!   budget and not the file size.
//! - [`NdjsonWriter`] writes plain or gzip NDJSON to any [`Write`](std::io::Write);
//!   [`NdjsonFileWriter`] writes to a temporary file beside the target and renames it into place
//!   on [`finish`](NdjsonFileWriter::finish), so a failed run leaves no partial output.
//! - [`parse_resource`] parses one line into a `serde_json::Value` and checks that it is a
//!   resource (an object with a non-empty string `resourceType`).
//!
//! Errors ([`NdjsonError`]) name the file and line, never the content of a line.
//!
//! ```
//! use fhir::ndjson::{NdjsonError, NdjsonReader, NdjsonWriter, ProcessOptions, ReadOptions};
//! use fhir::ndjson::{Compression, process_ordered};
//!
//! let input = b"{\"resourceType\":\"Patient\",\"id\":\"a\"}\n\n{\"resourceType\":\"Patient\",\"id\":\"b\"}\n";
//! let mut reader = NdjsonReader::new(&input[..], "patients.ndjson", ReadOptions::default())?;
//! let mut writer = NdjsonWriter::new(Vec::new(), "out.ndjson", Compression::Plain);
//! process_ordered(
//!     &mut reader,
//!     ProcessOptions::default(),
//!     |line| {
//!         let mut resource = line.parse_resource()?;
//!         resource["id"] = "hidden".into();
//!         Ok::<_, NdjsonError>(serde_json::to_vec(&resource).expect("a Value serializes"))
//!     },
//!     |_line, output| writer.write_line(&output),
//! )?;
//! let output = writer.finish()?;
//! assert_eq!(output, b"{\"resourceType\":\"Patient\",\"id\":\"hidden\"}\n{\"resourceType\":\"Patient\",\"id\":\"hidden\"}\n");
//! # Ok::<(), NdjsonError>(())
//! ```

mod parallel;
mod read;
mod write;

use std::io;

use serde_json::Value;

pub use parallel::{ProcessOptions, ProcessSummary, process_ordered};
pub use read::{Batch, LineRef, NdjsonReader, Progress, ReadOptions};
pub use write::{Compression, NdjsonFileWriter, NdjsonWriter};

/// An NDJSON read, parse or write failure. Messages name the file and line, never content.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NdjsonError {
    /// A file could not be opened, created, flushed, synced or renamed into place.
    #[error("{file}: cannot {action}: {error}")]
    File {
        /// The file concerned.
        file: String,
        /// What was being attempted (`open`, `create`, `flush`, `sync`, `rename into place`).
        action: &'static str,
        /// The operating system's error.
        #[source]
        error: io::Error,
    },
    /// Reading or decompressing failed after `line` complete lines.
    #[error("{file} after line {line}: read failed: {error}")]
    Read {
        /// The file being read.
        file: String,
        /// The number of the last line read before the failure.
        line: u64,
        /// The underlying error (for example a corrupt gzip stream).
        #[source]
        error: io::Error,
    },
    /// A line is longer than the configured maximum.
    #[error("{file} line {line}: line longer than the maximum of {max} bytes")]
    LineTooLong {
        /// The file being read.
        file: String,
        /// The 1-based number of the offending line.
        line: u64,
        /// The configured maximum line length in bytes.
        max: usize,
    },
    /// A line is not valid JSON.
    #[error("{file} line {line}: invalid JSON at column {column} ({reason})")]
    InvalidJson {
        /// The file being read.
        file: String,
        /// The 1-based line number.
        line: u64,
        /// The 1-based byte column where the parser stopped.
        column: usize,
        /// What the parser expected or found, without any input text.
        reason: String,
    },
    /// A line is valid JSON but not an object.
    #[error("{file} line {line}: expected a JSON object, found {found}")]
    NotAnObject {
        /// The file being read.
        file: String,
        /// The 1-based line number.
        line: u64,
        /// The kind of JSON value found (`an array`, `a string`, …).
        found: &'static str,
    },
    /// A line is a JSON object without a non-empty string `resourceType`.
    #[error("{file} line {line}: resourceType missing or not a non-empty string")]
    MissingResourceType {
        /// The file being read.
        file: String,
        /// The 1-based line number.
        line: u64,
    },
    /// A line handed to a writer contains a newline, which would split the record.
    #[error("{file} line {line}: output line contains a newline")]
    NewlineInLine {
        /// The file being written.
        file: String,
        /// The 1-based number of the line being written.
        line: u64,
    },
    /// Writing, compressing or flushing failed.
    #[error("{file} line {line}: write failed: {error}")]
    Write {
        /// The file being written.
        file: String,
        /// The 1-based number of the line being written (the last line when finishing).
        line: u64,
        /// The underlying error.
        #[source]
        error: io::Error,
    },
}

/// Parses one NDJSON line into a resource: valid JSON, an object, with a non-empty string
/// `resourceType`. `file` and `line` only label the error, which never quotes the input.
pub fn parse_resource(bytes: &[u8], file: &str, line: u64) -> Result<Value, NdjsonError> {
    let value: Value =
        serde_json::from_slice(bytes).map_err(|error| invalid_json(&error, file, line))?;
    match &value {
        Value::Object(map) => match map.get("resourceType") {
            Some(Value::String(kind)) if !kind.is_empty() => Ok(value),
            _ => Err(NdjsonError::MissingResourceType {
                file: file.to_owned(),
                line,
            }),
        },
        other => Err(NdjsonError::NotAnObject {
            file: file.to_owned(),
            line,
            found: kind_of(other),
        }),
    }
}

/// Turns a serde_json parse error into an [`NdjsonError::InvalidJson`] without input text.
fn invalid_json(error: &serde_json::Error, file: &str, line: u64) -> NdjsonError {
    use serde_json::error::Category;
    // Syntax and EOF errors print a fixed phrase followed by the position. Data errors carry free
    // text from a `Deserialize` impl, which may quote input, so they get a fixed phrase instead.
    let reason = match error.classify() {
        Category::Syntax | Category::Eof => {
            let text = error.to_string();
            let position = format!(" at line {} column {}", error.line(), error.column());
            text.strip_suffix(&position).unwrap_or(&text).to_owned()
        }
        Category::Data => "invalid value".to_owned(),
        Category::Io => "read failed".to_owned(),
    };
    NdjsonError::InvalidJson {
        file: file.to_owned(),
        line,
        column: error.column(),
        reason,
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[test]
    fn io_failures_are_sources_and_keep_their_message() {
        let error = NdjsonError::Write {
            file: "out.ndjson".to_owned(),
            line: 3,
            error: io::Error::new(io::ErrorKind::BrokenPipe, "pipe closed"),
        };
        assert_eq!(
            error.to_string(),
            "out.ndjson line 3: write failed: pipe closed"
        );
        let source = error.source().and_then(|s| s.downcast_ref::<io::Error>());
        assert_eq!(source.map(io::Error::kind), Some(io::ErrorKind::BrokenPipe));
        for error in [
            NdjsonError::File {
                file: "a".to_owned(),
                action: "open",
                error: io::Error::from(io::ErrorKind::NotFound),
            },
            NdjsonError::Read {
                file: "a".to_owned(),
                line: 1,
                error: io::Error::from(io::ErrorKind::InvalidData),
            },
        ] {
            assert!(
                error.source().is_some_and(|s| s.is::<io::Error>()),
                "{error}"
            );
        }
    }
}
