//! What the lake remembers between runs, under `_haven/`: the watermark (the last completed
//! run's `transactionTime`), the runs, the run under way, and each run's report.

use lake::Destination;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The key of the state file.
pub const STATE_KEY: &str = "_haven/state.json";
/// The key of the marker of a run under way.
pub const CURRENT_KEY: &str = "_haven/current.json";

/// The lake's state.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct LakeState {
    /// The `transactionTime` of the last completed run: the next export asks `_since` it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watermark: Option<String>,
    /// The de-identification the lake was built with (`preset safe-harbor`, `configuration
    /// FILE`); a later run with another one is refused, since ids would no longer match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deid: Option<String>,
    /// The completed runs, oldest first.
    #[serde(default)]
    pub runs: Vec<RunRecord>,
}

/// One completed run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunRecord {
    /// The run id (a partition name: `run=<id>`).
    pub run_id: String,
    /// The source's `transactionTime`, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_time: Option<String>,
    /// The `_since` the export asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// When the run finished (RFC 3339).
    pub finished: String,
    /// Resources landed.
    pub resources: u64,
    /// Deletions applied.
    pub deleted: u64,
}

/// The marker of a run under way: a run that finds it resumes that run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CurrentRun {
    /// The run id.
    pub run_id: String,
    /// When it started (RFC 3339).
    pub started: String,
    /// The `_since` of its export.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// How many times it has been started (1 for an uninterrupted run).
    pub attempts: u32,
}

/// Reads a JSON object from the lake, `None` when it is absent.
pub fn read<T: for<'de> Deserialize<'de>>(dest: &Destination, key: &str) -> Result<Option<T>> {
    let Some(bytes) = dest.get(key)? else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|error| Error::State {
            key: key.to_owned(),
            reason: format!(
                "not valid (line {}, column {}): {error}",
                error.line(),
                error.column()
            ),
        })
}

/// Writes a JSON object to the lake (an atomic put).
pub fn write<T: Serialize>(dest: &Destination, key: &str, value: &T) -> Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value).expect("state serializes");
    bytes.push(b'\n');
    dest.put(key, bytes)?;
    Ok(())
}

/// The key of a run's report (`json` or `txt`).
pub fn report_key(run_id: &str, extension: &str) -> String {
    format!("_haven/runs/{run_id}/report.{extension}")
}
