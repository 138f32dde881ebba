//! Audit counts of a run: resources per type, nodes touched per method, skipped resources.

use std::collections::BTreeMap;

/// What de-identification did: counts only, never values. Summaries of batches and files add
/// up with [`Summary::merge`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Resources processed, by type: top-level ones and nested ones (Bundle entries,
    /// contained resources) alike.
    pub resources: BTreeMap<String, u64>,
    /// Values processed, by method name (`redact`, `dateShift`, …): each primitive value a
    /// method acted on (a kept value counts for `keep`), and each whole node substituted.
    pub nodes: BTreeMap<&'static str, u64>,
    /// Top-level resources replaced by an empty, REDACTED-labelled resource because a rule
    /// failed and `processingErrors` is `skip`.
    pub skipped: u64,
}

impl Summary {
    /// Adds another summary's counts to this one.
    pub fn merge(&mut self, other: &Summary) {
        for (t, n) in &other.resources {
            match self.resources.get_mut(t) {
                Some(count) => *count += n,
                None => {
                    self.resources.insert(t.clone(), *n);
                }
            }
        }
        for (m, n) in &other.nodes {
            *self.nodes.entry(m).or_default() += n;
        }
        self.skipped += other.skipped;
    }

    /// The summary as a JSON object: `{"resources": {...}, "nodes": {...}, "skipped": n}`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "resources": self.resources,
            "nodes": self.nodes,
            "skipped": self.skipped,
        })
    }

    pub(crate) fn count_resource(&mut self, resource_type: &str) {
        match self.resources.get_mut(resource_type) {
            Some(n) => *n += 1,
            None => {
                self.resources.insert(resource_type.to_string(), 1);
            }
        }
    }

    pub(crate) fn add_nodes(&mut self, method: &'static str, n: u64) {
        *self.nodes.entry(method).or_default() += n;
    }
}
