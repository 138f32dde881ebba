//! The exact identifying values of the identified source (an export folder of NDJSON, as
//! `haven synth` or `haven export` writes it), searched for as whole words in the lake's
//! strings with one Aho-Corasick automaton.
//!
//! Which values: of `Patient`, `Practitioner`, `RelatedPerson` and `Person`, the names
//! (`family`, `given`, `text`), telecom values, address lines, cities, districts, postal
//! codes and address texts, and the birth date when it is a full date; of every resource, every
//! `Identifier.value`.
//!
//! Which are left out, so that a match means a leak and not a coincidence:
//! - values shorter than 4 characters (initials, `Jr`, house numbers): as whole words they
//!   occur by chance in clinical text;
//! - values made only of words that the lake's own code displays use (a family name
//!   `Glucose`, a city `Fever`): those words are the lake's clinical vocabulary, so their
//!   presence in a string shows nothing. The vocabulary is read from the lake
//!   (`Coding.display`), not from a fixed list, so it follows the terminology the data uses.

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::walk::{Leaf, walk};

/// The shortest source value searched for, in characters.
pub const MIN_VALUE_CHARS: usize = 4;

/// The person-like resource types whose demographics are identifying.
const PERSON_TYPES: &[&str] = &["Patient", "Practitioner", "RelatedPerson", "Person"];

/// The source's identifying values, ready to be searched for.
pub struct SourceValues {
    automaton: Option<AhoCorasick>,
    /// The category (`a family name`) of each pattern, by pattern index.
    categories: Vec<&'static str>,
    /// Values kept, and values left out by each rule.
    pub stats: SourceStats,
}

/// How many source values were searched for and how many were left out, by rule.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SourceStats {
    /// Distinct values searched for.
    pub searched: u64,
    /// Left out for being shorter than [`MIN_VALUE_CHARS`].
    pub too_short: u64,
    /// Left out for being made of the lake's clinical vocabulary.
    pub clinical_words: u64,
}

/// Collects the words of the lake's code displays, lowercased.
#[derive(Debug, Default)]
pub struct Vocabulary {
    words: HashSet<String>,
}

impl Vocabulary {
    /// Adds the words of every `display` beside a `code` or `system` in `resource`.
    pub fn add_resource(&mut self, resource: &Value) {
        match resource {
            Value::Object(map) => {
                if (map.contains_key("code") || map.contains_key("system"))
                    && let Some(display) = map.get("display").and_then(Value::as_str)
                {
                    for word in words(display) {
                        self.words.insert(word.to_lowercase());
                    }
                }
                map.values().for_each(|v| self.add_resource(v));
            }
            Value::Array(items) => items.iter().for_each(|v| self.add_resource(v)),
            _ => {}
        }
    }

    fn covers(&self, value: &str) -> bool {
        let mut any = false;
        for word in words(value) {
            any = true;
            if !self.words.contains(&word.to_lowercase()) {
                return false;
            }
        }
        any
    }
}

fn words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
}

impl SourceValues {
    /// Reads every `.ndjson` and `.ndjson.gz` file under `dir` (one resource per line) and
    /// keeps the identifying values, minus those the rules above leave out.
    pub fn read(dir: &Path, vocabulary: &Vocabulary) -> Result<SourceValues> {
        let mut values: BTreeMap<String, &'static str> = BTreeMap::new();
        for path in ndjson_files(dir)? {
            read_file(&path, &mut values)?;
        }
        let mut stats = SourceStats::default();
        let mut patterns = Vec::new();
        let mut categories = Vec::new();
        for (value, category) in values {
            if value.chars().count() < MIN_VALUE_CHARS {
                stats.too_short += 1;
            } else if vocabulary.covers(&value) {
                stats.clinical_words += 1;
            } else {
                patterns.push(value);
                categories.push(category);
            }
        }
        stats.searched = patterns.len() as u64;
        let automaton = (!patterns.is_empty()).then(|| {
            AhoCorasickBuilder::new()
                .ascii_case_insensitive(true)
                .match_kind(MatchKind::Standard)
                .build(&patterns)
                .expect("an automaton over the source values builds")
        });
        Ok(SourceValues {
            automaton,
            categories,
            stats,
        })
    }

    /// The category of the first source value found in `text` as a whole word.
    pub fn find(&self, text: &str) -> Option<&'static str> {
        let automaton = self.automaton.as_ref()?;
        automaton
            .find_overlapping_iter(text)
            .find(|m| whole_word(text, m.start(), m.end()))
            .map(|m| self.categories[m.pattern().as_usize()])
    }
}

/// Whether `text[start..end]` is bounded by non-alphanumeric characters or the ends.
fn whole_word(text: &str, start: usize, end: usize) -> bool {
    let (Some(before), Some(after)) = (text.get(..start), text.get(end..)) else {
        return false;
    };
    let before_ok = before
        .chars()
        .next_back()
        .is_none_or(|c| !c.is_alphanumeric());
    let after_ok = after.chars().next().is_none_or(|c| !c.is_alphanumeric());
    before_ok && after_ok
}

fn ndjson_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(folder) = stack.pop() {
        let entries = std::fs::read_dir(&folder).map_err(|e| Error::Source {
            path: folder.display().to_string(),
            line: None,
            reason: e.to_string(),
        })?;
        for entry in entries {
            let path = entry
                .map_err(|e| Error::Source {
                    path: folder.display().to_string(),
                    line: None,
                    reason: e.to_string(),
                })?
                .path();
            let name = path.to_string_lossy();
            if path.is_dir() {
                stack.push(path);
            } else if name.ends_with(".ndjson") || name.ends_with(".ndjson.gz") {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

fn read_file(path: &Path, values: &mut BTreeMap<String, &'static str>) -> Result<()> {
    let error = |line: Option<u64>, reason: String| Error::Source {
        path: path.display().to_string(),
        line,
        reason,
    };
    let file = std::fs::File::open(path).map_err(|e| error(None, e.to_string()))?;
    let reader: Box<dyn Read> = if path.to_string_lossy().ends_with(".gz") {
        Box::new(flate2::read::MultiGzDecoder::new(file))
    } else {
        Box::new(file)
    };
    for (i, line) in BufReader::new(reader).lines().enumerate() {
        let n = i as u64 + 1;
        let line = line.map_err(|e| error(Some(n), e.to_string()))?;
        if line.trim().is_empty() {
            continue;
        }
        let resource: Value = serde_json::from_str(&line)
            .map_err(|e| error(Some(n), format!("not JSON (column {})", e.column())))?;
        collect(&resource, values);
    }
    Ok(())
}

/// The identifying values of one source resource, by category.
fn collect(resource: &Value, values: &mut BTreeMap<String, &'static str>) {
    let person = resource
        .get("resourceType")
        .and_then(Value::as_str)
        .is_some_and(|t| PERSON_TYPES.contains(&t));
    walk(resource, &mut |_, site, leaf| {
        let Leaf::Str(s) = leaf else {
            return;
        };
        let parent = site.parent.unwrap_or_default();
        let category = match (parent, site.key) {
            ("Identifier", "value") => Some("an identifier value"),
            _ if !person => None,
            ("HumanName", "family") => Some("a family name"),
            ("HumanName", "given") => Some("a given name"),
            ("HumanName", "text") => Some("a name"),
            ("ContactPoint", "value") => Some("a telecom value"),
            ("Address", "line") => Some("an address line"),
            ("Address", "city") => Some("a city"),
            ("Address", "district") => Some("a district"),
            ("Address", "postalCode") => Some("a postal code"),
            ("Address", "text") => Some("an address"),
            (_, "birthDate") if s.len() > 4 => Some("a birth date"),
            _ => None,
        };
        if let Some(category) = category {
            let value = s.trim();
            if !value.is_empty() {
                values.entry(value.to_owned()).or_insert(category);
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_match_as_whole_words_only() {
        assert!(whole_word("Mr Smith.", 3, 8));
        assert!(!whole_word("Smithson", 0, 5));
        assert!(!whole_word("éSmith", 2, 7));
    }

    #[test]
    fn short_values_and_clinical_words_are_left_out() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("Patient.ndjson"),
            r#"{"resourceType":"Patient","name":[{"family":"Fever","given":["Al","Marguerite"]}],"address":[{"city":"Springfield"}]}"#,
        )
        .unwrap();
        let mut vocabulary = Vocabulary::default();
        vocabulary.add_resource(&serde_json::json!({
            "coding": [{"code": "386661006", "display": "Fever (finding)"}]
        }));
        let source = SourceValues::read(dir.path(), &vocabulary).unwrap();
        assert_eq!(
            source.stats,
            SourceStats {
                searched: 2,
                too_short: 1,
                clinical_words: 1
            }
        );
        assert_eq!(
            source.find("seen by marguerite today"),
            Some("a given name")
        );
        assert_eq!(source.find("from Springfield"), Some("a city"));
        assert_eq!(source.find("Fever and cough"), None);
    }
}
