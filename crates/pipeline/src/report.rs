//! A run's report: what each stage read, de-identified and landed, how long it took, and what
//! went wrong; written to the lake as JSON and as a readable summary.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

/// The report of one run.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RunReport {
    /// The run id.
    pub run_id: String,
    /// The lake's location.
    pub lake: String,
    /// Where the data came from (a server URL or a folder).
    pub source: String,
    /// The Bulk Data export level of a server source: `system`, `patient` or `group`. A
    /// patient- or group-level export leaves out the resources outside the Patient
    /// compartment (Organizations, Practitioners, Locations, Medications…) that the patients'
    /// resources refer to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<String>,
    /// The de-identification applied (`preset safe-harbor`, `configuration FILE`).
    pub deid: String,
    /// The `_since` of the export, for an incremental run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// The source's `transactionTime`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_time: Option<String>,
    /// When the run started and finished (RFC 3339).
    pub started: String,
    /// When the run finished.
    pub finished: String,
    /// How many times the run was started (more than 1 after an interruption).
    pub attempts: u32,
    /// Per resource type: announced by the manifest, read, de-identified, landed, deleted.
    pub types: BTreeMap<String, TypeCounts>,
    /// Rows landed per lake table (`ndjson/Patient`, `parquet/Patient`, `views/patient`, …).
    pub tables: BTreeMap<String, u64>,
    /// Time and throughput per stage, in order.
    pub stages: Vec<StageReport>,
    /// Problems that did not stop the run (count mismatches, resources dropped).
    pub warnings: Vec<String>,
}

/// The counts of one resource type.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct TypeCounts {
    /// What the manifest announced (`output[].count`), when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub announced: Option<u64>,
    /// Resources read from the source.
    pub read: u64,
    /// Resources de-identified and landed.
    pub landed: u64,
    /// Resources the de-identification removed whole (redacted to no id).
    pub dropped: u64,
    /// Deletions applied.
    pub deleted: u64,
}

/// One stage's figures.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct StageReport {
    /// `export`, `land` (read, de-identify and write, overlapped), then the land stage's two
    /// halves: `deidentify` and `write`.
    pub name: String,
    /// Wall-clock seconds; for `deidentify`, the workers' busy time divided by their number;
    /// for `write`, the busy time of the thread that writes the lake (both overlap `land`).
    pub seconds: f64,
    /// Resources handled.
    pub resources: u64,
    /// Bytes handled (source NDJSON).
    pub bytes: u64,
}

impl StageReport {
    /// Resources per second.
    pub fn rate(&self) -> f64 {
        if self.seconds > 0.0 {
            self.resources as f64 / self.seconds
        } else {
            0.0
        }
    }
}

impl RunReport {
    /// Resources landed, all types.
    pub fn landed(&self) -> u64 {
        self.types.values().map(|c| c.landed).sum()
    }

    /// Deletions applied, all types.
    pub fn deleted(&self) -> u64 {
        self.types.values().map(|c| c.deleted).sum()
    }

    /// The readable summary.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "run {} into {}", self.run_id, self.lake);
        let _ = writeln!(out, "  source: {}", self.source);
        let _ = writeln!(out, "  de-identification: {}", self.deid);
        match (&self.since, &self.transaction_time) {
            (Some(since), Some(time)) => {
                let _ = writeln!(out, "  incremental: since {since}, up to {time}");
            }
            (None, Some(time)) => {
                let _ = writeln!(out, "  full export as of {time}");
            }
            _ => {}
        }
        if self.attempts > 1 {
            let _ = writeln!(out, "  resumed: {} attempts", self.attempts);
        }
        let _ = writeln!(
            out,
            "  {:<28} {:>10} {:>10} {:>10} {:>8} {:>8}",
            "type", "announced", "read", "landed", "dropped", "deleted"
        );
        for (name, c) in &self.types {
            let announced = c.announced.map_or("-".to_owned(), |n| n.to_string());
            let _ = writeln!(
                out,
                "  {:<28} {:>10} {:>10} {:>10} {:>8} {:>8}",
                name, announced, c.read, c.landed, c.dropped, c.deleted
            );
        }
        let _ = writeln!(
            out,
            "  {:<28} {:>10} {:>10} {:>10}",
            "total",
            "",
            self.types.values().map(|c| c.read).sum::<u64>(),
            self.landed()
        );
        for stage in &self.stages {
            let _ = writeln!(
                out,
                "  stage {:<8} {:>8.2} s  {:>9} resources  {:>9.0} resources/s  {:>8.1} MB",
                stage.name,
                stage.seconds,
                stage.resources,
                stage.rate(),
                stage.bytes as f64 / 1e6
            );
        }
        let _ = writeln!(out, "  tables:");
        for (table, rows) in &self.tables {
            let _ = writeln!(out, "    {table:<40} {rows:>10} rows");
        }
        for warning in &self.warnings {
            let _ = writeln!(out, "  warning: {warning}");
        }
        out
    }
}
