//! Reading the lake's files, one at a time and batch by batch: gzip NDJSON line by line,
//! Parquet footers for row counts, the `resource` column of Parquet resource tables and the
//! text cells of view tables row group by row group. Failures are described by position and cause, never by content.

use std::io::{BufRead, BufReader};

use arrow_array::Array;
use arrow_array::cast::AsArray;
use bytes::Bytes;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::file::reader::{FileReader, SerializedFileReader};

/// Why a file could not be read to its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ReadError {
    /// The 1-based line or row where reading stopped, when known.
    pub line: Option<u64>,
    /// The cause (a decoder's message; no content).
    pub reason: String,
}

/// Calls `f(line, bytes)` for every non-empty line of a gzip NDJSON object; the lines read.
pub(crate) fn ndjson_lines(bytes: &[u8], mut f: impl FnMut(u64, &[u8])) -> Result<u64, ReadError> {
    let mut reader = BufReader::with_capacity(256 * 1024, flate2::read::MultiGzDecoder::new(bytes));
    let mut line = Vec::with_capacity(16 * 1024);
    let mut n = 0u64;
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) => return Ok(n),
            Ok(_) => {
                let text = line.strip_suffix(b"\n").unwrap_or(&line);
                let text = text.strip_suffix(b"\r").unwrap_or(text);
                if !text.iter().all(u8::is_ascii_whitespace) {
                    n += 1;
                    f(n, text);
                }
            }
            Err(e) => {
                return Err(ReadError {
                    line: Some(n + 1),
                    reason: format!("gzip does not decode: {e}"),
                });
            }
        }
    }
}

/// The row count of a Parquet object, from its footer.
pub(crate) fn parquet_rows(bytes: Bytes) -> Result<u64, ReadError> {
    let reader = SerializedFileReader::new(bytes).map_err(|e| ReadError {
        line: None,
        reason: format!("the Parquet footer does not read: {e}"),
    })?;
    let rows = reader.metadata().file_metadata().num_rows();
    u64::try_from(rows).map_err(|_| ReadError {
        line: None,
        reason: "the Parquet footer gives a negative row count".to_owned(),
    })
}

/// Calls `f(row, json)` for each row's `resource` column of a Parquet resource table, one
/// row group at a time; the rows read.
pub(crate) fn parquet_resources(
    bytes: Bytes,
    mut f: impl FnMut(u64, &[u8]),
) -> Result<u64, ReadError> {
    let error = |line: Option<u64>, reason: String| ReadError { line, reason };
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes)
        .map_err(|e| error(None, format!("the Parquet footer does not read: {e}")))?;
    let schema = builder.parquet_schema();
    let Some(index) = schema.columns().iter().position(|c| c.name() == "resource") else {
        return Err(error(None, "no `resource` column".to_owned()));
    };
    let mask = ProjectionMask::leaves(schema, [index]);
    let reader = builder
        .with_projection(mask)
        .build()
        .map_err(|e| error(None, format!("cannot read rows: {e}")))?;
    let mut n = 0u64;
    for batch in reader {
        let batch = batch.map_err(|e| error(Some(n + 1), format!("cannot read rows: {e}")))?;
        let column = batch.column(0);
        let Some(strings) = column.as_string_opt::<i32>() else {
            return Err(error(None, "the `resource` column is not text".to_owned()));
        };
        for i in 0..strings.len() {
            n += 1;
            if strings.is_valid(i) {
                f(n, strings.value(i).as_bytes());
            }
        }
    }
    Ok(n)
}

/// Calls `f(row, column, value)` for every non-null text cell of a Parquet view table (string
/// columns and lists of strings, one call per item), one row group at a time; the rows read.
pub(crate) fn parquet_text_cells(
    bytes: Bytes,
    mut f: impl FnMut(u64, &str, &str),
) -> Result<u64, ReadError> {
    let error = |line: Option<u64>, reason: String| ReadError { line, reason };
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
        .map_err(|e| error(None, format!("the Parquet footer does not read: {e}")))?
        .build()
        .map_err(|e| error(None, format!("cannot read rows: {e}")))?;
    let mut read = 0u64;
    for batch in reader {
        let batch = batch.map_err(|e| error(Some(read + 1), format!("cannot read rows: {e}")))?;
        let schema = batch.schema();
        for (field, column) in schema.fields().iter().zip(batch.columns()) {
            let name = field.name().as_str();
            if let Some(strings) = column.as_string_opt::<i32>() {
                for (i, value) in strings.iter().enumerate() {
                    if let Some(value) = value {
                        f(read + i as u64 + 1, name, value);
                    }
                }
            } else if let Some(lists) = column.as_list_opt::<i32>() {
                for (i, list) in lists.iter().enumerate() {
                    let Some(list) = list else { continue };
                    let Some(items) = list.as_string_opt::<i32>() else {
                        break;
                    };
                    for value in items.iter().flatten() {
                        f(read + i as u64 + 1, name, value);
                    }
                }
            }
        }
        read += batch.num_rows() as u64;
    }
    Ok(read)
}
