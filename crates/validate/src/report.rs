//! The validation report: one entry per check (passed, failed or skipped, with counts) and
//! the findings that failed it, each located by file, line and element path and named by
//! kind. No finding ever holds a value read from the lake or the source.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

/// The key under which [`Report::save`] keeps the latest report in the lake.
pub const LATEST_KEY: &str = "_haven/validation/latest.json";

/// How many findings of one group (a kind, a reference pair, a table) are listed with their
/// location; the rest are counted.
pub const EXAMPLES_PER_GROUP: usize = 10;

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Nothing was found.
    Passed,
    /// At least one finding.
    Failed,
    /// The check did not apply (no Delta tables, no `--source`).
    Skipped,
}

/// Where a finding is and what it is; never the value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The kind: `ssn`, `phone`, `email`, `mrn`, `street-address`, `url`, `full-date`,
    /// `zip5`, `age-over-89`, `source-value`, `unresolved-reference`, `row-count`,
    /// `unreadable`, …
    pub kind: String,
    /// The object's key in the lake (or the table, for a count).
    pub file: String,
    /// The 1-based line (NDJSON) or row (Parquet), when the finding is in one resource.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    /// The element's JSON Pointer inside the resource (`/note/0/text`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// What is wrong, in words and counts (never a value).
    pub detail: String,
}

/// A group of findings of one kind: the total and the first few located.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FindingGroup {
    /// How many findings the group holds.
    pub count: u64,
    /// The first [`EXAMPLES_PER_GROUP`] of them.
    pub examples: Vec<Finding>,
}

/// One check's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// The check's name (`counts`, `tables`, `delta`, `references`, `identifiers`,
    /// `source-values`).
    pub name: &'static str,
    /// Passed, failed or skipped.
    pub status: Status,
    /// What was checked, in words with counts (`412 files, 9034 rows`).
    pub summary: String,
    /// Findings grouped by kind (for references, by `Source → Target`).
    pub groups: BTreeMap<String, FindingGroup>,
}

impl Check {
    /// A check with no findings yet (passed unless findings are added).
    pub fn new(name: &'static str) -> Check {
        Check {
            name,
            status: Status::Passed,
            summary: String::new(),
            groups: BTreeMap::new(),
        }
    }

    /// A check that did not apply, and why.
    pub fn skipped(name: &'static str, why: impl Into<String>) -> Check {
        Check {
            name,
            status: Status::Skipped,
            summary: why.into(),
            groups: BTreeMap::new(),
        }
    }

    /// Adds a finding under `group`: counted, and listed while the group has room.
    pub fn add(&mut self, group: &str, finding: Finding) {
        self.status = Status::Failed;
        let entry = self.groups.entry(group.to_owned()).or_default();
        entry.count += 1;
        if entry.examples.len() < EXAMPLES_PER_GROUP {
            entry.examples.push(finding);
        }
    }

    /// Findings in all groups.
    pub fn findings(&self) -> u64 {
        self.groups.values().map(|g| g.count).sum()
    }
}

/// The whole validation report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// The lake's URL.
    pub lake: String,
    /// The de-identification the lake records (`preset safe-harbor`), if any.
    pub deid: Option<String>,
    /// Whether the safe-harbor rules (years only, 3-digit zips, ages ≤ 89) were applied.
    pub safe_harbor: bool,
    /// The runs validated, oldest first.
    pub runs: Vec<String>,
    /// Resources scanned (every line of every resource table).
    pub resources: u64,
    /// Bytes of resource JSON scanned.
    pub bytes: u64,
    /// The checks, in the order they ran.
    pub checks: Vec<Check>,
    /// True when no check failed.
    pub passed: bool,
}

impl Report {
    /// The check named `name`, if it ran.
    pub fn check(&self, name: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.name == name)
    }

    /// The report as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("the report serializes")
    }

    /// Saves the report as JSON under [`LATEST_KEY`] in the lake (one atomic put, replacing
    /// the last one), where the dashboard shows it.
    pub fn save(&self, lake: &lake::Destination) -> crate::Result<()> {
        let mut bytes = self.to_json().into_bytes();
        bytes.push(b'\n');
        lake.put(LATEST_KEY, bytes)?;
        Ok(())
    }

    /// The readable pass/fail report.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let verdict = if self.passed { "PASSED" } else { "FAILED" };
        let _ = writeln!(out, "validate {}: {verdict}", self.lake);
        let deid = self.deid.as_deref().unwrap_or("not recorded");
        let rules = if self.safe_harbor {
            " (safe-harbor rules: years only, 3-digit zips, ages up to 89)"
        } else {
            ""
        };
        let _ = writeln!(out, "  de-identification: {deid}{rules}");
        let _ = writeln!(
            out,
            "  {} run(s), {} resources, {:.1} MB of JSON scanned",
            self.runs.len(),
            self.resources,
            self.bytes as f64 / 1e6
        );
        for check in &self.checks {
            let status = match check.status {
                Status::Passed => "pass",
                Status::Failed => "FAIL",
                Status::Skipped => "skip",
            };
            let _ = writeln!(out, "  {status}  {:<14} {}", check.name, check.summary);
            for (group, findings) in &check.groups {
                let _ = writeln!(out, "        {group}: {}", findings.count);
                for f in &findings.examples {
                    let _ = write!(out, "          {}", f.file);
                    if let Some(line) = f.line {
                        let _ = write!(out, " line {line}");
                    }
                    if let Some(path) = &f.path {
                        let _ = write!(out, " {path}");
                    }
                    let _ = writeln!(out, ": {} ({})", f.detail, f.kind);
                }
                let more = findings.count - findings.examples.len() as u64;
                if more > 0 {
                    let _ = writeln!(out, "          … and {more} more");
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod save_tests {
    use super::*;

    #[test]
    fn a_saved_report_replaces_the_last_one_under_the_latest_key() {
        let dir = tempfile::tempdir().unwrap();
        let lake = lake::Destination::open(dir.path().to_str().unwrap()).unwrap();
        let mut report = Report {
            lake: "file:///lake".into(),
            deid: None,
            safe_harbor: false,
            runs: vec!["r1".into()],
            resources: 3,
            bytes: 100,
            checks: vec![Check::new("counts")],
            passed: true,
        };
        report.save(&lake).unwrap();
        report.passed = false;
        report.save(&lake).unwrap();
        let saved: serde_json::Value =
            serde_json::from_slice(&lake.get(LATEST_KEY).unwrap().unwrap()).unwrap();
        assert_eq!(saved["passed"], false);
        assert_eq!(saved["checks"][0]["name"], "counts");
    }
}
