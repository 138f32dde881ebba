//! Writing plain or gzip NDJSON, to any writer or atomically to a file.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use flate2::write::GzEncoder;
use serde_json::Value;

use super::NdjsonError;

/// The buffer between an [`NdjsonFileWriter`] and its file.
const FILE_BUFFER: usize = 256 * 1024;

/// How NDJSON output is encoded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Compression {
    /// Plain UTF-8 text.
    #[default]
    Plain,
    /// gzip at `level` (0 = store only, 1 = fastest … 9 = smallest).
    Gzip {
        /// The deflate level, 0–9.
        level: u32,
    },
}

impl Compression {
    /// gzip at level 6, zlib's usual balance of speed and size.
    pub const GZIP: Self = Self::Gzip { level: 6 };

    /// [`GZIP`](Self::GZIP) if the file name ends in `.gz`, otherwise [`Plain`](Self::Plain).
    pub fn for_path(path: impl AsRef<Path>) -> Self {
        let gz = path
            .as_ref()
            .extension()
            .is_some_and(|extension| extension.eq_ignore_ascii_case("gz"));
        if gz { Self::GZIP } else { Self::Plain }
    }
}

enum Encoder<W: Write> {
    Plain(W),
    Gzip(Box<GzEncoder<W>>),
}

impl<W: Write> Encoder<W> {
    fn get_mut(&mut self) -> &mut dyn Write {
        match self {
            Self::Plain(writer) => writer,
            Self::Gzip(writer) => writer,
        }
    }
}

/// Writes NDJSON lines, plain or gzip, to any [`Write`]. Give it a buffered writer: it writes
/// each line with two small writes.
pub struct NdjsonWriter<W: Write> {
    encoder: Encoder<W>,
    file: String,
    lines: u64,
}

impl<W: Write> NdjsonWriter<W> {
    /// Writes to `inner`, named `file` in errors.
    pub fn new(inner: W, file: &str, compression: Compression) -> Self {
        let encoder = match compression {
            Compression::Plain => Encoder::Plain(inner),
            Compression::Gzip { level } => Encoder::Gzip(Box::new(GzEncoder::new(
                inner,
                flate2::Compression::new(level.min(9)),
            ))),
        };
        Self {
            encoder,
            file: file.to_owned(),
            lines: 0,
        }
    }

    /// Writes `line` and a `\n`. The line must not contain a newline itself.
    pub fn write_line(&mut self, line: &[u8]) -> Result<(), NdjsonError> {
        let number = self.lines + 1;
        if memchr::memchr(b'\n', line).is_some() {
            return Err(NdjsonError::NewlineInLine {
                file: self.file.clone(),
                line: number,
            });
        }
        let out = self.encoder.get_mut();
        out.write_all(line)
            .and_then(|()| out.write_all(b"\n"))
            .map_err(|error| self.write_error(error))?;
        self.lines = number;
        Ok(())
    }

    /// Writes `value` as compact JSON and a `\n`.
    pub fn write_value(&mut self, value: &Value) -> Result<(), NdjsonError> {
        let out = self.encoder.get_mut();
        serde_json::to_writer(&mut *out, value)
            .map_err(io::Error::from)
            .and_then(|()| out.write_all(b"\n"))
            .map_err(|error| self.write_error(error))?;
        self.lines += 1;
        Ok(())
    }

    /// The number of lines written so far.
    pub fn lines(&self) -> u64 {
        self.lines
    }

    /// Ends the gzip stream (if any), flushes, and returns the inner writer.
    pub fn finish(self) -> Result<W, NdjsonError> {
        let Self {
            encoder,
            file,
            lines,
        } = self;
        let finished = match encoder {
            Encoder::Plain(writer) => Ok(writer),
            Encoder::Gzip(writer) => writer.finish(),
        };
        finished
            .and_then(|mut writer| writer.flush().map(|()| writer))
            .map_err(|error| NdjsonError::Write {
                file,
                line: lines,
                error,
            })
    }

    fn write_error(&self, error: io::Error) -> NdjsonError {
        NdjsonError::Write {
            file: self.file.clone(),
            line: self.lines + 1,
            error,
        }
    }
}

impl<W: Write> fmt::Debug for NdjsonWriter<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NdjsonWriter")
            .field("file", &self.file)
            .field("lines", &self.lines)
            .finish_non_exhaustive()
    }
}

/// Writes an NDJSON file atomically: lines go to a hidden temporary file in the same folder,
/// which [`finish`](Self::finish) syncs and renames onto the target. Dropped without `finish`
/// (or if `finish` fails), it removes the temporary file and leaves the target untouched.
pub struct NdjsonFileWriter {
    writer: Option<NdjsonWriter<BufWriter<File>>>,
    path: PathBuf,
    temp: PathBuf,
}

impl NdjsonFileWriter {
    /// Starts writing the file `path`, which appears (or is replaced) only on [`finish`](Self::finish).
    pub fn create(path: impl AsRef<Path>, compression: Compression) -> Result<Self, NdjsonError> {
        let path = path.as_ref().to_path_buf();
        let name = path.display().to_string();
        let temp = temp_path(&path).ok_or_else(|| NdjsonError::File {
            file: name.clone(),
            action: "create",
            error: io::Error::new(io::ErrorKind::InvalidInput, "the path has no file name"),
        })?;
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)
            .map_err(|error| NdjsonError::File {
                file: name.clone(),
                action: "create",
                error,
            })?;
        let writer = NdjsonWriter::new(
            BufWriter::with_capacity(FILE_BUFFER, file),
            &name,
            compression,
        );
        Ok(Self {
            writer: Some(writer),
            path,
            temp,
        })
    }

    /// The final path of the file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `line` and a `\n`; see [`NdjsonWriter::write_line`].
    pub fn write_line(&mut self, line: &[u8]) -> Result<(), NdjsonError> {
        self.writer_mut().write_line(line)
    }

    /// Writes `value` as compact JSON and a `\n`.
    pub fn write_value(&mut self, value: &Value) -> Result<(), NdjsonError> {
        self.writer_mut().write_value(value)
    }

    /// The number of lines written so far.
    pub fn lines(&self) -> u64 {
        self.writer.as_ref().map_or(0, NdjsonWriter::lines)
    }

    /// Completes the stream, syncs it to disk and renames it onto the target path.
    /// Returns the number of lines written.
    pub fn finish(mut self) -> Result<u64, NdjsonError> {
        let writer = self
            .writer
            .take()
            .expect("the writer is present until finish or drop");
        let lines = writer.lines();
        let buffered = writer.finish()?;
        let file = buffered
            .into_inner()
            .map_err(|error| self.error("flush", error.into_error()))?;
        file.sync_all().map_err(|error| self.error("sync", error))?;
        drop(file);
        fs::rename(&self.temp, &self.path)
            .map_err(|error| self.error("rename into place", error))?;
        self.temp = PathBuf::new();
        Ok(lines)
    }

    fn writer_mut(&mut self) -> &mut NdjsonWriter<BufWriter<File>> {
        self.writer
            .as_mut()
            .expect("the writer is present until finish or drop")
    }

    fn error(&self, action: &'static str, error: io::Error) -> NdjsonError {
        NdjsonError::File {
            file: self.path.display().to_string(),
            action,
            error,
        }
    }
}

impl Drop for NdjsonFileWriter {
    fn drop(&mut self) {
        drop(self.writer.take());
        if !self.temp.as_os_str().is_empty() {
            // Nothing useful can be done if removal fails while dropping.
            let _ = fs::remove_file(&self.temp);
        }
    }
}

impl fmt::Debug for NdjsonFileWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NdjsonFileWriter")
            .field("path", &self.path)
            .field("temp", &self.temp)
            .field("lines", &self.lines())
            .finish()
    }
}

/// A hidden name beside `path`, unique within this process and unlikely to clash across processes.
fn temp_path(path: &Path) -> Option<PathBuf> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = path.file_name()?;
    let serial = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut temp_name = std::ffi::OsString::from(".");
    temp_name.push(name);
    temp_name.push(format!(".{}-{serial}.tmp", std::process::id()));
    Some(path.with_file_name(temp_name))
}
