//! `log.ndjson` in the format of the SMART bulk-data-client ("Bulk Data Export Log Items"), so
//! that tools reading it (Cumulus ETL takes `exportUrl` from `kickoff` and `transactionTime`
//! from `status_complete`) work with Haven's exports.
//!
//! Each line is `{"exportId", "timestamp", "eventId", "eventDetail"}`. Events: `kickoff`,
//! `status_progress`, `status_complete`, `status_page_complete`, `manifest_complete`,
//! `status_error`, `download_request`, `download_complete`, `download_error`,
//! `export_complete`. A resumed export appends to the same file with the same `exportId`.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use serde_json::{Value, json};

use crate::Error;

/// An append-only export log.
#[derive(Debug)]
pub struct ExportLog {
    path: PathBuf,
    export_id: String,
    file: Mutex<fs::File>,
}

impl ExportLog {
    /// Opens (appending) `OUT/log.ndjson` for the export `export_id`.
    pub fn open(out: &Path, export_id: &str) -> Result<Self, Error> {
        let path = out.join("log.ndjson");
        let file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        Ok(ExportLog {
            path,
            export_id: export_id.to_owned(),
            file: Mutex::new(file),
        })
    }

    /// Appends one event.
    pub fn event(&self, event_id: &str, detail: Value) -> Result<(), Error> {
        let line = json!({
            "exportId": self.export_id,
            "timestamp": humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            "eventId": event_id,
            "eventDetail": detail,
        });
        let mut bytes = serde_json::to_vec(&line).expect("a log line serializes");
        bytes.push(b'\n');
        let mut file = self
            .file
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        file.write_all(&bytes).map_err(|e| Error::io(&self.path, e))
    }
}
