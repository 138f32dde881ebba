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
    /// What the `scrub` method replaced in free text.
    pub scrub: ScrubCounts,
}

/// The replacements of the `scrub` method: by layer, by placeholder kind, by element path, and
/// the elements dropped because they could not be read as text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScrubCounts {
    /// Replacements by the layer that found them (`record`, `patterns`, `names`).
    pub layers: BTreeMap<&'static str, u64>,
    /// Replacements by kind (`name`, `phone`, `date`, …).
    pub kinds: BTreeMap<&'static str, u64>,
    /// Replacements by element path (`Condition.code.text`), then by kind.
    pub paths: BTreeMap<String, BTreeMap<&'static str, u64>>,
    /// Elements removed because they could not be read as text (XHTML that is not well-formed,
    /// a binary or undecodable attachment), by element path.
    pub dropped: BTreeMap<String, u64>,
}

impl ScrubCounts {
    /// Whether nothing was replaced or dropped.
    pub fn is_empty(&self) -> bool {
        self.layers.is_empty() && self.dropped.is_empty()
    }

    /// Counts the spans replaced in the element at `path`.
    pub(crate) fn add(&mut self, path: &str, spans: &[scrub::Span]) {
        if spans.is_empty() {
            return;
        }
        let by_kind = match self.paths.get_mut(path) {
            Some(k) => k,
            None => self.paths.entry(path.to_string()).or_default(),
        };
        for span in spans {
            *self.layers.entry(span.layer.name()).or_default() += 1;
            *self.kinds.entry(span.kind.name()).or_default() += 1;
            *by_kind.entry(span.kind.name()).or_default() += 1;
        }
    }

    /// Counts an element dropped at `path`.
    pub(crate) fn drop_element(&mut self, path: &str) {
        *self.dropped.entry(path.to_string()).or_default() += 1;
    }

    fn merge(&mut self, other: &ScrubCounts) {
        for (k, n) in &other.layers {
            *self.layers.entry(k).or_default() += n;
        }
        for (k, n) in &other.kinds {
            *self.kinds.entry(k).or_default() += n;
        }
        for (path, kinds) in &other.paths {
            let mine = self.paths.entry(path.clone()).or_default();
            for (k, n) in kinds {
                *mine.entry(k).or_default() += n;
            }
        }
        for (path, n) in &other.dropped {
            *self.dropped.entry(path.clone()).or_default() += n;
        }
    }

    fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "layers": self.layers,
            "kinds": self.kinds,
            "paths": self.paths,
            "dropped": self.dropped,
        })
    }
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
        self.scrub.merge(&other.scrub);
    }

    /// The summary as a JSON object: `{"resources": {...}, "nodes": {...}, "skipped": n}`,
    /// with `"scrub": {"layers", "kinds", "paths", "dropped"}` when free text was scrubbed.
    pub fn to_json(&self) -> serde_json::Value {
        let mut json = serde_json::json!({
            "resources": self.resources,
            "nodes": self.nodes,
            "skipped": self.skipped,
        });
        if !self.scrub.is_empty() {
            json["scrub"] = self.scrub.to_json();
        }
        json
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
