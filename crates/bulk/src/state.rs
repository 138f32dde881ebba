//! What an export has done so far, recorded in the output folder so that a re-run continues.
//!
//! `OUT/.haven-export/state.json` holds the request, the status URL, the manifest pages and the
//! file list with their assigned names; it is rewritten atomically (temporary file, fsync,
//! rename) at each phase change. `OUT/.haven-export/finished.ndjson` is an append-only journal
//! with one line per file that was downloaded, verified and renamed into place, so recording a
//! file costs one short append however many files there are. A torn last line (a crash during
//! the append) is ignored and that file is fetched again.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Error;
use crate::manifest::{FileKind, ManifestFile};
use crate::request::ExportRequest;

/// The folder inside OUT that holds the state.
pub const STATE_DIR: &str = ".haven-export";

/// The version of the state file layout.
const STATE_VERSION: u32 = 1;

/// One file of the manifest, with the name it gets in OUT.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Which manifest list it is in.
    pub kind: FileKind,
    /// Its `type` in the manifest.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none", default)]
    pub resource_type: Option<String>,
    /// Its URL.
    pub url: String,
    /// Its `count` in the manifest.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub count: Option<u64>,
    /// Its path relative to OUT (`Patient.000.ndjson`, `deleted/Bundle.000.ndjson`, …).
    pub name: String,
}

/// What a finished file held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Finished {
    /// Resources (non-blank lines) written.
    pub resources: u64,
    /// Bytes written.
    pub bytes: u64,
}

/// The recorded state of the export in one output folder.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    /// Layout version.
    pub version: u32,
    /// The id that ties the lines of `log.ndjson` for this export together.
    pub export_id: String,
    /// The kick-off request.
    pub request: ExportRequest,
    /// The status URL (`Content-Location` of the kick-off), once kicked off.
    pub status_url: Option<String>,
    /// The manifest pages, once the export is complete on the server.
    pub pages: Vec<Value>,
    /// The files of all pages, with their names in OUT.
    pub files: Vec<FileEntry>,
    /// Whether downloads need the bearer token.
    pub requires_access_token: bool,
    /// `transactionTime` of this export's manifest.
    pub transaction_time: Option<String>,
    /// True once every file is downloaded and the server was told to release them.
    pub completed: bool,
    /// `transactionTime` of the last completed export in this folder (for `--since auto`).
    pub last_completed_transaction_time: Option<String>,
}

impl State {
    /// A fresh state for `request`.
    pub fn new(request: ExportRequest, export_id: String, last_completed: Option<String>) -> Self {
        State {
            version: STATE_VERSION,
            export_id,
            request,
            status_url: None,
            pages: Vec::new(),
            files: Vec::new(),
            requires_access_token: false,
            transaction_time: None,
            completed: false,
            last_completed_transaction_time: last_completed,
        }
    }

    /// Adds the files of one manifest page, naming each `Type.NNN.ndjson` with a per-type
    /// sequence over all pages (deleted files under `deleted/`, error files under `error/`).
    pub fn add_files(&mut self, files: &[ManifestFile]) {
        let mut next: HashMap<(FileKind, String), usize> = HashMap::new();
        for entry in &self.files {
            let key = (entry.kind, stem(entry.kind, entry.resource_type.as_deref()));
            *next.entry(key).or_default() += 1;
        }
        for file in files {
            let stem = stem(file.kind, file.resource_type.as_deref());
            let n = next.entry((file.kind, stem.clone())).or_default();
            let folder = match file.kind {
                FileKind::Output => "",
                FileKind::Deleted => "deleted/",
                FileKind::Error => "error/",
            };
            self.files.push(FileEntry {
                kind: file.kind,
                resource_type: file.resource_type.clone(),
                url: file.url.clone(),
                count: file.count,
                name: format!("{folder}{stem}.{n:03}.ndjson"),
            });
            *n += 1;
        }
    }
}

/// The stem of a file name: its type, or the type its list fixes, or `output`.
fn stem(kind: FileKind, resource_type: Option<&str>) -> String {
    resource_type
        .or(kind.fixed_type())
        .unwrap_or("output")
        .to_owned()
}

/// The state files of one output folder.
#[derive(Debug, Clone)]
pub struct StateStore {
    dir: PathBuf,
}

impl StateStore {
    /// The state of the output folder `out` (creating `out/.haven-export`).
    pub fn open(out: &Path) -> Result<Self, Error> {
        let dir = out.join(STATE_DIR);
        fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        Ok(StateStore { dir })
    }

    fn state_path(&self) -> PathBuf {
        self.dir.join("state.json")
    }

    fn journal_path(&self) -> PathBuf {
        self.dir.join("finished.ndjson")
    }

    /// The recorded state, if any.
    pub fn load(&self) -> Result<Option<State>, Error> {
        let path = self.state_path();
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(&path, e)),
        };
        let state: State = serde_json::from_slice(&bytes).map_err(|e| Error::State {
            path: path.clone(),
            message: format!("unreadable: {e}"),
        })?;
        if state.version != STATE_VERSION {
            return Err(Error::State {
                path,
                message: format!("layout version {} is not {STATE_VERSION}", state.version),
            });
        }
        Ok(Some(state))
    }

    /// Records `state` atomically.
    pub fn save(&self, state: &State) -> Result<(), Error> {
        let bytes = serde_json::to_vec_pretty(state).expect("the state serializes");
        write_atomically(&self.state_path(), &bytes)
    }

    /// The finished files recorded in the journal, by URL.
    pub fn finished(&self) -> Result<HashMap<String, Finished>, Error> {
        let path = self.journal_path();
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HashMap::new()),
            Err(e) => return Err(Error::io(&path, e)),
        };
        #[derive(Deserialize)]
        struct Line {
            url: String,
            #[serde(flatten)]
            finished: Finished,
        }
        Ok(text
            .lines()
            .filter_map(|line| serde_json::from_str::<Line>(line).ok())
            .map(|line| (line.url, line.finished))
            .collect())
    }

    /// Records that the file at `url` is complete in OUT.
    pub fn record_finished(&self, url: &str, finished: Finished) -> Result<(), Error> {
        let path = self.journal_path();
        let mut line = serde_json::to_vec(&serde_json::json!({
            "url": url, "resources": finished.resources, "bytes": finished.bytes
        }))
        .expect("a journal line serializes");
        line.push(b'\n');
        let mut file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        file.write_all(&line).map_err(|e| Error::io(&path, e))
    }

    /// Forgets the finished files (a new export starts in this folder).
    pub fn clear_finished(&self) -> Result<(), Error> {
        let path = self.journal_path();
        match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(&path, e)),
            _ => Ok(()),
        }
    }
}

/// Writes `bytes` to `path` through a temporary file in the same folder, fsynced, then renamed.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut file = fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    file.write_all(bytes).map_err(|e| Error::io(&tmp, e))?;
    file.sync_all().map_err(|e| Error::io(&tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::Level;

    #[test]
    fn names_follow_a_per_type_sequence_across_pages() {
        let mut state = State::new(
            ExportRequest::new("http://h", Level::System),
            "x".into(),
            None,
        );
        let file = |kind, t: Option<&str>, url: &str| ManifestFile {
            kind,
            resource_type: t.map(str::to_owned),
            url: url.into(),
            count: None,
        };
        state.add_files(&[
            file(FileKind::Output, Some("Patient"), "u1"),
            file(FileKind::Output, Some("Condition"), "u2"),
            file(FileKind::Deleted, None, "u3"),
        ]);
        state.add_files(&[
            file(FileKind::Output, Some("Patient"), "u4"),
            file(FileKind::Error, None, "u5"),
        ]);
        let names: Vec<_> = state.files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "Patient.000.ndjson",
                "Condition.000.ndjson",
                "deleted/Bundle.000.ndjson",
                "Patient.001.ndjson",
                "error/OperationOutcome.000.ndjson"
            ]
        );
    }

    #[test]
    fn the_journal_survives_a_torn_last_line() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        store
            .record_finished(
                "a",
                Finished {
                    resources: 2,
                    bytes: 10,
                },
            )
            .unwrap();
        let journal = dir.path().join(STATE_DIR).join("finished.ndjson");
        let mut file = fs::OpenOptions::new().append(true).open(&journal).unwrap();
        file.write_all(b"{\"url\":\"b\",\"reso").unwrap();
        let finished = store.finished().unwrap();
        assert_eq!(finished.len(), 1);
        assert_eq!(
            finished["a"],
            Finished {
                resources: 2,
                bytes: 10
            }
        );
    }
}
