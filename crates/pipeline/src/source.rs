//! Sources: what a run reads. A Bulk Data server is exported into the run's work folder first
//! (see [`crate::bulk_source`]); a folder of NDJSON files is read where it is. Both end as a
//! [`Staged`] export: NDJSON files, deletion files and the manifest's figures.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use fhir::reference::Reference;
use serde_json::Value;

use crate::error::{Error, Result};

/// An export ready to land.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Staged {
    /// The NDJSON files of resources, in the order they are landed.
    pub files: Vec<PathBuf>,
    /// NDJSON files of deletions (Bundles of `DELETE` entries, as Bulk Data's `deleted[]`).
    pub deleted: Vec<PathBuf>,
    /// The export's `transactionTime`, when a manifest gives it.
    pub transaction_time: Option<String>,
    /// The resources the manifest announces per type (its `output[].count`), when it does.
    pub announced: BTreeMap<String, u64>,
}

/// The manifest a folder export may carry.
pub const MANIFEST: &str = "manifest.json";

/// The Bulk Data client's log (NDJSON, but not resources).
pub const LOG: &str = "log.ndjson";

/// Reads a folder of NDJSON files (`.ndjson`, `.ndjson.gz`, sorted by name; files under a
/// `deleted/` subfolder, or named `deleted*`, are deletions; other subfolders and the client's
/// `log.ndjson` are not read) and its `manifest.json` if any.
pub fn scan_folder(folder: &Path) -> Result<Staged> {
    let mut staged = Staged::default();
    let entries = list(folder)?;
    for path in entries {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if path.is_dir() {
            if name == "deleted" {
                staged.deleted.extend(
                    list(&path)?
                        .into_iter()
                        .filter(|p| is_ndjson(p) && p.is_file()),
                );
            }
            continue;
        }
        if !is_ndjson(&path) || name == LOG {
            continue;
        }
        if name.starts_with("deleted") {
            staged.deleted.push(path);
        } else {
            staged.files.push(path);
        }
    }
    let manifest_path = folder.join(MANIFEST);
    match std::fs::read(&manifest_path) {
        Ok(bytes) => read_manifest(&manifest_path, &bytes, &mut staged)?,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(Error::io(&manifest_path, error)),
    }
    Ok(staged)
}

/// Takes `transactionTime` and the per-type counts from a Bulk Data manifest.
fn read_manifest(path: &Path, bytes: &[u8], staged: &mut Staged) -> Result<()> {
    let manifest: Value = serde_json::from_slice(bytes).map_err(|error| {
        Error::Source(format!(
            "{}: not valid JSON (line {}, column {})",
            path.display(),
            error.line(),
            error.column()
        ))
    })?;
    staged.transaction_time = manifest["transactionTime"].as_str().map(str::to_owned);
    if let Some(outputs) = manifest["output"].as_array() {
        for output in outputs {
            if let (Some(kind), Some(count)) = (output["type"].as_str(), output["count"].as_u64()) {
                *staged.announced.entry(kind.to_owned()).or_default() += count;
            }
        }
    }
    Ok(())
}

fn list(folder: &Path) -> Result<Vec<PathBuf>> {
    let reader = std::fs::read_dir(folder).map_err(|error| Error::io(folder, error))?;
    let mut paths = Vec::new();
    for entry in reader {
        paths.push(entry.map_err(|error| Error::io(folder, error))?.path());
    }
    paths.sort();
    Ok(paths)
}

fn is_ndjson(path: &Path) -> bool {
    let name = path.to_string_lossy();
    name.ends_with(".ndjson") || name.ends_with(".ndjson.gz")
}

/// The `(type, id)` pairs a deletion resource names: a Bundle's `DELETE` entries
/// (`request.url` = `Type/id`), or a bare resource with a type and id.
pub fn deletions_in(resource: &Value) -> Vec<(String, String)> {
    if resource["resourceType"] == "Bundle" {
        let Some(entries) = resource["entry"].as_array() else {
            return Vec::new();
        };
        return entries
            .iter()
            .filter(|entry| entry["request"]["method"] == "DELETE")
            .filter_map(
                |entry| match fhir::reference::parse(entry["request"]["url"].as_str()?) {
                    Reference::Relative {
                        resource_type, id, ..
                    }
                    | Reference::Absolute {
                        resource_type, id, ..
                    } => Some((resource_type.to_owned(), id.to_owned())),
                    _ => None,
                },
            )
            .collect();
    }
    match (resource["resourceType"].as_str(), resource["id"].as_str()) {
        (Some(kind), Some(id)) => vec![(kind.to_owned(), id.to_owned())],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_folder_with_a_manifest_and_deletions() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Patient.000.ndjson"), "{}\n").unwrap();
        std::fs::write(dir.path().join("Observation.000.ndjson.gz"), "").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "x").unwrap();
        std::fs::create_dir(dir.path().join("deleted")).unwrap();
        std::fs::write(dir.path().join("deleted/Patient.ndjson"), "").unwrap();
        std::fs::write(
            dir.path().join(MANIFEST),
            r#"{"transactionTime": "2024-01-02T03:04:05Z", "output": [
                {"type": "Patient", "url": "x", "count": 3}, {"type": "Patient", "url": "y", "count": 2}]}"#,
        )
        .unwrap();
        let staged = scan_folder(dir.path()).unwrap();
        let names: Vec<_> = staged
            .files
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["Observation.000.ndjson.gz", "Patient.000.ndjson"]);
        assert_eq!(staged.deleted.len(), 1);
        assert_eq!(
            staged.transaction_time.as_deref(),
            Some("2024-01-02T03:04:05Z")
        );
        assert_eq!(staged.announced["Patient"], 5);
    }

    #[test]
    fn deletions_from_bundles_and_bare_resources() {
        let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"request": {"method": "DELETE", "url": "Patient/a"}},
            {"request": {"method": "PUT", "url": "Patient/b"}},
            {"request": {"method": "DELETE", "url": "Observation/c"}}]});
        assert_eq!(
            deletions_in(&bundle),
            [
                ("Patient".to_owned(), "a".to_owned()),
                ("Observation".to_owned(), "c".to_owned())
            ]
        );
        assert_eq!(
            deletions_in(&json!({"resourceType": "Encounter", "id": "e"})),
            [("Encounter".to_owned(), "e".to_owned())]
        );
    }
}
