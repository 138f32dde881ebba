//! The completion manifest, in both shapes peers send.
//!
//! STU2/STU3 (`error[]`, `request`, `extension` as an object) and the STU4 ballot (`outcome[]`,
//! no `request`, `extension` as an array of FHIR Extensions, `deleted` entries without `type`)
//! parse into the same [`Manifest`]. Paged manifests carry `link[{relation: "next", url}]`.

use serde_json::Value;

/// Which list of the manifest a file comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileKind {
    /// `output[]`: exported resources.
    Output,
    /// `deleted[]`: transaction Bundles of `DELETE Type/id` entries.
    Deleted,
    /// `error[]` (STU2/3) or `outcome[]` (STU4): OperationOutcome NDJSON.
    Error,
}

impl FileKind {
    /// The name the SMART client's log uses for this list (`output`, `deleted`, `error`).
    pub fn as_str(self) -> &'static str {
        match self {
            FileKind::Output => "output",
            FileKind::Deleted => "deleted",
            FileKind::Error => "error",
        }
    }

    /// The `resourceType` every line of such a file must have, when the list fixes it.
    pub fn fixed_type(self) -> Option<&'static str> {
        match self {
            FileKind::Output => None,
            FileKind::Deleted => Some("Bundle"),
            FileKind::Error => Some("OperationOutcome"),
        }
    }
}

/// One file listed in a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestFile {
    /// Which list it is in.
    pub kind: FileKind,
    /// Its `type` (absent with `organizeOutputBy`, and for STU4 `deleted` entries).
    pub resource_type: Option<String>,
    /// Its absolute URL.
    pub url: String,
    /// Its `count` of resources, when the server gave one.
    pub count: Option<u64>,
}

/// A parsed manifest page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// `transactionTime`, as the server wrote it.
    pub transaction_time: String,
    /// `requiresAccessToken`: whether downloads need the bearer token (if `false`, sending it is
    /// forbidden).
    pub requires_access_token: bool,
    /// Every file of the page: `output`, then `deleted`, then `error`/`outcome`.
    pub files: Vec<ManifestFile>,
    /// The URL of the next page (`link` with `relation: "next"`), if any.
    pub next: Option<String>,
}

impl Manifest {
    /// Parses a manifest page, or says which field is wrong (never quoting a value).
    pub fn parse(body: &Value) -> Result<Manifest, String> {
        let object = body
            .as_object()
            .ok_or("the manifest is not a JSON object")?;
        let transaction_time = object
            .get("transactionTime")
            .and_then(Value::as_str)
            .ok_or("the manifest has no transactionTime string")?
            .to_owned();
        let requires_access_token = match object.get("requiresAccessToken") {
            Some(Value::Bool(b)) => *b,
            None => false,
            Some(_) => return Err("requiresAccessToken is not a boolean".into()),
        };
        let mut files = Vec::new();
        for (field, kind) in [
            ("output", FileKind::Output),
            ("deleted", FileKind::Deleted),
            ("error", FileKind::Error),
            ("outcome", FileKind::Error),
        ] {
            let entries = match object.get(field) {
                None | Some(Value::Null) => continue,
                Some(Value::Array(entries)) => entries,
                Some(_) => return Err(format!("{field} is not an array")),
            };
            for (index, entry) in entries.iter().enumerate() {
                let url = entry
                    .get("url")
                    .and_then(Value::as_str)
                    .ok_or_else(|| format!("{field}[{index}].url is missing or not a string"))?;
                let resource_type = match entry.get("type") {
                    None | Some(Value::Null) => None,
                    Some(Value::String(t)) if !t.is_empty() => Some(t.clone()),
                    Some(_) => return Err(format!("{field}[{index}].type is not a resource type")),
                };
                if let Some(t) = &resource_type
                    && !t.bytes().all(|b| b.is_ascii_alphanumeric())
                {
                    return Err(format!("{field}[{index}].type is not a resource type"));
                }
                let count =
                    match entry.get("count") {
                        None | Some(Value::Null) => None,
                        Some(c) => Some(c.as_u64().ok_or_else(|| {
                            format!("{field}[{index}].count is not a whole number")
                        })?),
                    };
                files.push(ManifestFile {
                    kind,
                    resource_type,
                    url: url.to_owned(),
                    count,
                });
            }
        }
        let next = match object.get("link") {
            Some(Value::Array(links)) => links
                .iter()
                .find(|l| l.get("relation").and_then(Value::as_str) == Some("next"))
                .and_then(|l| l.get("url").and_then(Value::as_str))
                .map(str::to_owned),
            _ => None,
        };
        Ok(Manifest {
            transaction_time,
            requires_access_token,
            files,
            next,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn stu2_manifest_with_error_and_object_extension() {
        let m = Manifest::parse(&json!({
            "transactionTime": "2021-01-01T00:00:00Z",
            "request": "https://example.com/fhir/Patient/$export",
            "requiresAccessToken": true,
            "output": [{"type": "Patient", "url": "https://example.com/p1.ndjson", "count": 100}],
            "deleted": [{"type": "Bundle", "url": "https://example.com/d1.ndjson"}],
            "error": [{"type": "OperationOutcome", "url": "https://example.com/e1.ndjson"}],
            "extension": {"https://example.com/ext": true}
        }))
        .unwrap();
        assert!(m.requires_access_token);
        assert_eq!(m.files.len(), 3);
        assert_eq!(m.files[0].count, Some(100));
        assert_eq!(m.files[1].kind, FileKind::Deleted);
        assert_eq!(m.files[2].kind, FileKind::Error);
        assert_eq!(m.next, None);
    }

    #[test]
    fn stu4_manifest_with_outcome_array_extension_and_untyped_deleted() {
        let m = Manifest::parse(&json!({
            "transactionTime": "2026-01-01T00:00:00+00:00",
            "requiresAccessToken": false,
            "output": [],
            "deleted": [{"url": "https://example.com/d1.ndjson", "count": 2}],
            "outcome": [{"type": "OperationOutcome", "url": "https://example.com/o1.ndjson"}],
            "extension": [{"url": "https://example.com/ext", "valueBoolean": true}],
            "link": [{"relation": "next", "url": "https://example.com/status?page=2"}]
        }))
        .unwrap();
        assert!(!m.requires_access_token);
        assert_eq!(m.files[0].resource_type, None);
        assert_eq!(m.files[0].kind, FileKind::Deleted);
        assert_eq!(m.files[1].kind, FileKind::Error);
        assert_eq!(m.next.as_deref(), Some("https://example.com/status?page=2"));
    }

    #[test]
    fn broken_manifests_name_the_field() {
        let err =
            Manifest::parse(&json!({"transactionTime": "x", "output": [{"type": "Patient"}]}))
                .unwrap_err();
        assert_eq!(err, "output[0].url is missing or not a string");
        let err = Manifest::parse(&json!({"output": []})).unwrap_err();
        assert!(err.contains("transactionTime"));
        let err = Manifest::parse(
            &json!({"transactionTime": "x", "output": [{"type": "../x", "url": "u"}]}),
        )
        .unwrap_err();
        assert_eq!(err, "output[0].type is not a resource type");
    }
}
