//! Reading plain or gzip NDJSON into bounded batches of numbered lines.

use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use flate2::read::MultiGzDecoder;
use serde_json::Value;

use super::{NdjsonError, parse_resource};

/// The first two bytes of every gzip member.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// The read buffer's size while no line is longer than it; it grows only to hold a longer line.
const READ_CHUNK: usize = 256 * 1024;

/// Limits for cutting NDJSON into batches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadOptions {
    /// The most lines in one batch (at least 1).
    pub batch_lines: usize,
    /// The most line bytes in one batch; a single longer line still forms a batch of its own.
    pub batch_bytes: usize,
    /// The longest accepted line in bytes, not counting its line ending.
    pub max_line_bytes: usize,
}

impl Default for ReadOptions {
    /// 1,000 lines, 8 MiB per batch; lines up to 64 MiB.
    fn default() -> Self {
        Self {
            batch_lines: 1_000,
            batch_bytes: 8 << 20,
            max_line_bytes: 64 << 20,
        }
    }
}

/// Counters a caller can watch from another thread, e.g. to drive a progress bar.
#[derive(Debug, Default)]
pub struct Progress {
    source_bytes: AtomicU64,
    lines_read: AtomicU64,
    lines_done: AtomicU64,
}

impl Progress {
    /// Bytes taken from the underlying reader (compressed bytes for gzip, comparable to the file size).
    pub fn source_bytes(&self) -> u64 {
        self.source_bytes.load(Ordering::Relaxed)
    }

    /// Non-blank lines placed into batches so far.
    pub fn lines_read(&self) -> u64 {
        self.lines_read.load(Ordering::Relaxed)
    }

    /// Lines whose results have been handed on; [`process_ordered`](super::process_ordered)
    /// counts here, and callers that process batches themselves may too.
    pub fn lines_done(&self) -> u64 {
        self.lines_done.load(Ordering::Relaxed)
    }

    /// Adds `lines` to [`lines_done`](Self::lines_done).
    pub fn add_lines_done(&self, lines: u64) {
        self.lines_done.fetch_add(lines, Ordering::Relaxed);
    }
}

/// A reader that counts the bytes it yields into [`Progress::source_bytes`].
struct Counted<R> {
    inner: R,
    progress: Arc<Progress>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let read = self.inner.read(buf)?;
        self.progress
            .source_bytes
            .fetch_add(read as u64, Ordering::Relaxed);
        Ok(read)
    }
}

/// The source with the bytes already taken to sniff the gzip magic put back in front.
type Prefixed<R> = io::Chain<io::Take<io::Cursor<[u8; 2]>>, Counted<R>>;

enum Source<R> {
    Plain(Prefixed<R>),
    Gzip(Box<MultiGzDecoder<Prefixed<R>>>),
}

impl<R: Read> Source<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Plain(reader) => reader.read(buf),
            Self::Gzip(reader) => reader.read(buf),
        }
    }
}

/// Reads NDJSON (plain, or gzip recognised by its magic bytes) as batches of numbered lines.
///
/// Memory is one read buffer (256 KiB, growing only to hold a longer line, and never past
/// [`ReadOptions::max_line_bytes`] plus two) and the batches the caller holds.
pub struct NdjsonReader<R> {
    source: Source<R>,
    file: Arc<str>,
    options: ReadOptions,
    gzip: bool,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    line: u64,
    eof: bool,
    /// An error found after the lines of the batch last returned, for the next call.
    failed: Option<NdjsonError>,
    progress: Arc<Progress>,
}

impl NdjsonReader<File> {
    /// Opens the NDJSON file at `path`; errors and batches name it as `path` displays.
    pub fn open(path: impl AsRef<Path>, options: ReadOptions) -> Result<Self, NdjsonError> {
        let path = path.as_ref();
        let name = path.display().to_string();
        let file = File::open(path).map_err(|error| NdjsonError::File {
            file: name.clone(),
            action: "open",
            error,
        })?;
        Self::new(file, &name, options)
    }
}

impl<R: Read> NdjsonReader<R> {
    /// Reads NDJSON from `reader`, named `file` in errors and batches. Sniffs the first two
    /// bytes to tell gzip from plain text.
    pub fn new(reader: R, file: &str, options: ReadOptions) -> Result<Self, NdjsonError> {
        let progress = Arc::new(Progress::default());
        let mut counted = Counted {
            inner: reader,
            progress: Arc::clone(&progress),
        };
        let mut magic = [0; 2];
        let sniffed = read_up_to(&mut counted, &mut magic).map_err(|error| NdjsonError::Read {
            file: file.to_owned(),
            line: 0,
            error,
        })?;
        let gzip = magic[..sniffed] == GZIP_MAGIC;
        let prefixed = io::Cursor::new(magic).take(sniffed as u64).chain(counted);
        let source = if gzip {
            Source::Gzip(Box::new(MultiGzDecoder::new(prefixed)))
        } else {
            Source::Plain(prefixed)
        };
        Ok(Self {
            source,
            file: file.into(),
            options,
            gzip,
            buf: Vec::new(),
            start: 0,
            end: 0,
            line: 0,
            eof: false,
            failed: None,
            progress,
        })
    }

    /// Numbers the lines as the continuation of a file whose first `lines` lines came before
    /// this reader's input (a part of a file read from a line boundary), so that batches and
    /// errors give the file's own line numbers.
    pub fn after_lines(mut self, lines: u64) -> Self {
        self.line = lines;
        self
    }

    /// The name used in errors and batches.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// Whether the input is gzip-compressed.
    pub fn is_gzip(&self) -> bool {
        self.gzip
    }

    /// The limits this reader cuts batches by.
    pub fn options(&self) -> ReadOptions {
        self.options
    }

    /// Counters shared with this reader, readable from any thread while it runs.
    pub fn progress(&self) -> Arc<Progress> {
        Arc::clone(&self.progress)
    }

    /// Reads the next batch into a new [`Batch`]; `None` at the end of the input.
    pub fn next_batch(&mut self) -> Result<Option<Batch>, NdjsonError> {
        let mut batch = Batch::default();
        Ok(self.fill_batch(&mut batch)?.then_some(batch))
    }

    /// Clears `batch` and refills it with the next lines, reusing its buffers. Returns `false`
    /// (with `batch` empty) at the end of the input. An error comes after every line before it:
    /// a batch cut short by an error is returned first, and the error on the next call. After
    /// an error the reader yields nothing more.
    pub fn fill_batch(&mut self, batch: &mut Batch) -> Result<bool, NdjsonError> {
        batch.reset(&self.file);
        if let Some(error) = self.failed.take() {
            return Err(error);
        }
        if let Err(error) = self.fill(batch) {
            self.eof = true;
            self.start = self.end;
            if batch.is_empty() {
                return Err(error);
            }
            self.failed = Some(error);
        }
        self.progress
            .lines_read
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        Ok(!batch.is_empty())
    }

    fn fill(&mut self, batch: &mut Batch) -> Result<(), NdjsonError> {
        loop {
            while let Some(offset) = memchr::memchr(b'\n', &self.buf[self.start..self.end]) {
                if !self.take_line(batch, self.start + offset)? {
                    return Ok(());
                }
            }
            if self.eof {
                // A last line without a newline.
                if self.start < self.end {
                    self.take_line(batch, self.end)?;
                }
                return Ok(());
            }
            self.refill()?;
        }
    }

    /// Moves the line `buf[start..line_end]` into `batch`, or skips it if blank. Returns `false`,
    /// leaving the line in place, when `batch` has no room for it.
    fn take_line(&mut self, batch: &mut Batch, line_end: usize) -> Result<bool, NdjsonError> {
        let number = self.line + 1;
        let start = self.start;
        let mut end = line_end;
        if end > start && self.buf[end - 1] == b'\r' {
            end -= 1;
        }
        let length = end - start;
        if length > self.options.max_line_bytes {
            return Err(self.too_long(number));
        }
        let content = &self.buf[start..end];
        let blank = content
            .iter()
            .all(|byte| matches!(byte, b' ' | b'\t' | b'\r'));
        if !blank {
            let full = batch.len() >= self.options.batch_lines.max(1)
                || batch.bytes() + length > self.options.batch_bytes;
            if !batch.is_empty() && full {
                return Ok(false);
            }
            batch.push(number, content, self.options.batch_bytes);
        }
        self.line = number;
        self.start = (line_end + 1).min(self.end);
        Ok(true)
    }

    /// Makes room after the partial line at `buf[start..end]` and reads more input.
    fn refill(&mut self) -> Result<(), NdjsonError> {
        let pending = self.end - self.start;
        // The partial line may still end in "\r\n", so one byte over the limit can be a '\r'.
        if pending > self.options.max_line_bytes.saturating_add(1) {
            return Err(self.too_long(self.line + 1));
        }
        self.buf.copy_within(self.start..self.end, 0);
        self.start = 0;
        self.end = pending;
        if self.buf.len() > READ_CHUNK && pending < READ_CHUNK / 2 {
            self.buf.truncate(READ_CHUNK);
            self.buf.shrink_to_fit();
        }
        if self.end == self.buf.len() {
            let longest = self
                .options
                .max_line_bytes
                .saturating_add(2)
                .max(READ_CHUNK);
            let grown = (self.buf.len() * 2).clamp(READ_CHUNK, longest);
            self.buf.resize(grown, 0);
        }
        let read = loop {
            match self.source.read(&mut self.buf[self.end..]) {
                Ok(read) => break read,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => {
                    return Err(NdjsonError::Read {
                        file: self.file.to_string(),
                        line: self.line,
                        error,
                    });
                }
            }
        };
        if read == 0 {
            self.eof = true;
        }
        self.end += read;
        Ok(())
    }

    fn too_long(&self, line: u64) -> NdjsonError {
        NdjsonError::LineTooLong {
            file: self.file.to_string(),
            line,
            max: self.options.max_line_bytes,
        }
    }
}

impl<R> fmt::Debug for NdjsonReader<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NdjsonReader")
            .field("file", &self.file)
            .field("gzip", &self.gzip)
            .field("line", &self.line)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// Reads until `buf` is full or the input ends; returns how many bytes were read.
fn read_up_to(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(read) => filled += read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(filled)
}

/// Where one line sits in a batch's buffer.
#[derive(Clone, Copy)]
struct Span {
    start: usize,
    end: usize,
    number: u64,
}

/// Consecutive non-blank lines of one input, each with its 1-based line number, in one buffer.
///
/// Its `Debug` output shows file, line numbers and sizes only, never content.
#[derive(Default)]
pub struct Batch {
    file: Arc<str>,
    data: Vec<u8>,
    spans: Vec<Span>,
}

impl Batch {
    /// An empty batch, for [`NdjsonReader::fill_batch`] to fill.
    pub fn new() -> Self {
        Self::default()
    }

    /// The name of the input the lines come from.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// The number of lines.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Whether the batch holds no lines.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// The total length of the lines in bytes, without line endings.
    pub fn bytes(&self) -> usize {
        self.data.len()
    }

    /// The line at `index` (0-based position in the batch), if any.
    pub fn get(&self, index: usize) -> Option<LineRef<'_>> {
        self.spans.get(index).map(|span| self.line_at(span))
    }

    /// The lines in input order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = LineRef<'_>> + DoubleEndedIterator + '_ {
        self.spans.iter().map(|span| self.line_at(span))
    }

    fn line_at(&self, span: &Span) -> LineRef<'_> {
        LineRef {
            file: &self.file,
            number: span.number,
            bytes: &self.data[span.start..span.end],
        }
    }

    fn reset(&mut self, file: &Arc<str>) {
        self.data.clear();
        self.spans.clear();
        if !Arc::ptr_eq(&self.file, file) {
            self.file = Arc::clone(file);
        }
    }

    fn push(&mut self, number: u64, content: &[u8], budget: usize) {
        let needed = self.data.len() + content.len();
        if needed > self.data.capacity() {
            // Grow geometrically, but not past the budget, so a full batch holds about `budget`.
            let target = needed.max((self.data.capacity() * 2).min(budget));
            self.data.reserve_exact(target - self.data.len());
        }
        let start = self.data.len();
        self.data.extend_from_slice(content);
        self.spans.push(Span {
            start,
            end: self.data.len(),
            number,
        });
    }
}

impl fmt::Debug for Batch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Batch")
            .field("file", &self.file)
            .field("lines", &self.len())
            .field("bytes", &self.bytes())
            .field("first_line", &self.spans.first().map(|span| span.number))
            .field("last_line", &self.spans.last().map(|span| span.number))
            .finish()
    }
}

/// One line of a batch: its bytes (without line ending), its 1-based number and its file.
///
/// Its `Debug` output shows file, number and length only, never content.
#[derive(Clone, Copy)]
pub struct LineRef<'a> {
    file: &'a str,
    number: u64,
    bytes: &'a [u8],
}

impl<'a> LineRef<'a> {
    /// The name of the input the line comes from.
    pub fn file(&self) -> &'a str {
        self.file
    }

    /// The 1-based line number in the input, counting blank lines.
    pub fn number(&self) -> u64 {
        self.number
    }

    /// The line's bytes, without `\n` or a trailing `\r`.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Parses the line as a resource; see [`parse_resource`](super::parse_resource).
    pub fn parse_resource(&self) -> Result<Value, NdjsonError> {
        parse_resource(self.bytes, self.file, self.number)
    }
}

impl fmt::Debug for LineRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LineRef")
            .field("file", &self.file)
            .field("number", &self.number)
            .field("len", &self.bytes.len())
            .finish()
    }
}
