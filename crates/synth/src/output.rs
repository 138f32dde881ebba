//! Writers: bulk-export NDJSON files per resource type (plain or gzip, optionally split), the
//! `deleted/` Bundles, and files written whole. Everything is written under a temporary name and
//! renamed once complete. Compression happens on the worker threads, segment by segment.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::GzEncoder;

use crate::{Error, Result};

/// Suffix of files being written.
const PARTIAL: &str = ".part";

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Creates a folder and its parents.
pub(crate) fn create_dir(path: &Path) -> Result<()> {
    fs::create_dir_all(path).map_err(io_err(path))
}

/// Writes a whole file under a temporary name, then renames it into place.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(parent) = path.parent() {
        create_dir(parent)?;
    }
    let tmp = partial(path);
    fs::write(&tmp, bytes).map_err(io_err(&tmp))?;
    fs::rename(&tmp, path).map_err(io_err(path))
}

fn partial(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(PARTIAL);
    PathBuf::from(s)
}

/// A run of complete NDJSON lines for one file, gzip-compressed as one gzip member when the
/// output is `.ndjson.gz` (files are concatenations of members, which every gzip reader accepts).
#[derive(Debug, Default)]
pub(crate) struct Segment {
    /// The bytes to append.
    pub(crate) bytes: Vec<u8>,
    /// Lines in the segment.
    pub(crate) lines: u64,
    /// Uncompressed size.
    pub(crate) raw: u64,
    /// Whether the segment starts a new numbered file.
    pub(crate) new_file: bool,
}

/// Cuts NDJSON `lines` (`count` lines, the first being line number `start` of its type) into
/// segments at every multiple of `limit` (0 = never), gzip-compressing each if `gz`.
pub(crate) fn segments(lines: &[u8], count: u64, start: u64, limit: u64, gz: bool) -> Vec<Segment> {
    let mut out = Vec::new();
    if count == 0 {
        return out;
    }
    let mut pieces: Vec<(&[u8], u64, bool)> = Vec::new();
    if limit == 0 {
        pieces.push((lines, count, start == 0));
    } else {
        let mut from = 0;
        let mut n = 0;
        let mut line_no = start;
        let mut new_file = start.is_multiple_of(limit);
        for (i, &b) in lines.iter().enumerate() {
            if b != b'\n' {
                continue;
            }
            n += 1;
            line_no += 1;
            if line_no.is_multiple_of(limit) {
                pieces.push((&lines[from..=i], n, new_file));
                from = i + 1;
                n = 0;
                new_file = true;
            }
        }
        if n > 0 {
            pieces.push((&lines[from..], n, new_file));
        }
    }
    for (bytes, n, new_file) in pieces {
        let raw = bytes.len() as u64;
        let bytes = if gz {
            let mut enc = GzEncoder::new(Vec::with_capacity(bytes.len() / 6), Compression::fast());
            enc.write_all(bytes).expect("compressing in memory");
            enc.finish().expect("compressing in memory")
        } else {
            bytes.to_vec()
        };
        out.push(Segment {
            bytes,
            lines: n,
            raw,
            new_file,
        });
    }
    out
}

/// A finished NDJSON file.
#[derive(Debug, Clone)]
pub(crate) struct FileEntry {
    /// Resource type of its lines.
    pub(crate) ty: String,
    /// Path relative to the output folder, with `/` separators.
    pub(crate) rel: String,
    /// Lines.
    pub(crate) count: u64,
}

/// The numbered files of one resource type: `Type.000.ndjson`, `Type.001.ndjson`, …
pub(crate) struct TypeFiles {
    dir: PathBuf,
    sub: &'static str,
    ty: String,
    gz: bool,
    sink: Option<(BufWriter<File>, PathBuf)>,
    lines: u64,
    bytes: u64,
    done: Vec<FileEntry>,
    pending: Vec<PathBuf>,
}

impl TypeFiles {
    /// Files for `ty` under `dir/sub` (`sub` is `""` or `"deleted/"`).
    pub(crate) fn new(dir: &Path, sub: &'static str, ty: &str, gz: bool) -> TypeFiles {
        TypeFiles {
            dir: dir.to_path_buf(),
            sub,
            ty: ty.to_string(),
            gz,
            sink: None,
            lines: 0,
            bytes: 0,
            done: Vec::new(),
            pending: Vec::new(),
        }
    }

    fn rel(&self, n: usize) -> String {
        let ext = if self.gz { "ndjson.gz" } else { "ndjson" };
        format!("{}{}.{n:03}.{ext}", self.sub, self.ty)
    }

    fn open(&mut self) -> Result<()> {
        let path = self.dir.join(self.rel(self.done.len()));
        let tmp = partial(&path);
        if let Some(parent) = tmp.parent() {
            create_dir(parent)?;
        }
        let file = File::create(&tmp).map_err(io_err(&tmp))?;
        self.sink = Some((BufWriter::with_capacity(1 << 17, file), tmp));
        self.lines = 0;
        Ok(())
    }

    fn close(&mut self) -> Result<()> {
        if let Some((mut sink, tmp)) = self.sink.take() {
            sink.flush().map_err(io_err(&tmp))?;
            let rel = self.rel(self.done.len());
            self.done.push(FileEntry {
                ty: self.ty.clone(),
                rel,
                count: self.lines,
            });
            self.pending.push(tmp);
        }
        Ok(())
    }

    /// Appends a segment, starting the next numbered file first if the segment says so.
    pub(crate) fn append(&mut self, seg: &Segment) -> Result<()> {
        if seg.new_file || self.sink.is_none() {
            self.close()?;
            self.open()?;
        }
        let (sink, tmp) = self.sink.as_mut().expect("opened above");
        sink.write_all(&seg.bytes).map_err(io_err(tmp))?;
        self.lines += seg.lines;
        self.bytes += seg.raw;
        Ok(())
    }

    /// Uncompressed bytes written so far.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Finishes the last file and renames every file into place.
    pub(crate) fn finish(mut self) -> Result<Vec<FileEntry>> {
        self.close()?;
        for (tmp, entry) in self.pending.iter().zip(&self.done) {
            let path = self.dir.join(&entry.rel);
            fs::rename(tmp, &path).map_err(io_err(&path))?;
        }
        Ok(self.done)
    }
}
