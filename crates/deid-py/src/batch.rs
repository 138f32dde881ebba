//! The batch call: NDJSON lines in an Arrow string array, de-identified in parallel, out as a
//! record batch with one row per line and an error column instead of exceptions.

use std::sync::Arc;

use arrow_array::builder::StringBuilder;
use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use deid::config::KeyKind;
use deid::{Config, Context, Engine};
use rayon::prelude::*;
use serde_json::Value;

/// The output column holding each line's de-identified resource as compact JSON.
pub const RESOURCE: &str = "resource";
/// The output column holding the resource's type.
pub const RESOURCE_TYPE: &str = "resourceType";
/// The output column holding the de-identified resource's `id`.
pub const ID: &str = "id";
/// The output column holding why a line failed: its file and element path, never a value.
pub const ERROR: &str = "error";

/// Where the lines of a batch come from (date-shift scope `file` uses the file's name).
#[derive(Debug, Clone, Copy)]
pub enum Files<'a> {
    /// Every line comes from this file (or from no named file).
    Same(Option<&'a str>),
    /// Line `i` comes from the file in row `i` of this string array.
    PerLine(&'a dyn Array),
}

/// A compiled configuration with its keys, ready to de-identify batches from any thread.
#[derive(Debug, Clone)]
pub struct Deidentifier {
    engine: Engine,
    key_id: Option<String>,
}

/// What became of one line.
enum Outcome {
    /// A null or blank line: nothing to write, nothing wrong.
    Empty,
    /// The de-identified resource, its type and id.
    Done(String, String, Option<String>),
    /// Why the line failed.
    Failed(String),
}

impl Deidentifier {
    /// Compiles a configuration (Microsoft's JSON format or a preset's text) with the keys
    /// given as (`cryptoHashKey` | `dateShiftKey` | `encryptKey`, key) pairs, which win over
    /// keys in the configuration. Fails when a rule needs a key that is not set.
    pub fn new<'k>(
        config: &str,
        keys: impl IntoIterator<Item = (&'k str, &'k str)>,
    ) -> Result<Deidentifier, String> {
        let mut config = Config::from_json(config).map_err(|error| error.to_string())?;
        for (name, key) in keys {
            let kind = match name {
                "cryptoHashKey" => KeyKind::CryptoHash,
                "dateShiftKey" => KeyKind::DateShift,
                "encryptKey" => KeyKind::Encrypt,
                other => {
                    return Err(format!(
                        "unknown key `{other}` (the keys are cryptoHashKey, dateShiftKey and encryptKey)"
                    ));
                }
            };
            config
                .set_key(kind, key)
                .map_err(|error| error.to_string())?;
        }
        let key_id = config.key_id();
        let engine = Engine::new(config).map_err(|error| error.to_string())?;
        Ok(Deidentifier { engine, key_id })
    }

    /// A fingerprint of the keys (see [`Config::key_id`]); never the keys themselves.
    pub fn key_id(&self) -> Option<&str> {
        self.key_id.as_deref()
    }

    /// The schema of [`Deidentifier::deidentify`]'s batches: four nullable strings.
    pub fn output_schema() -> SchemaRef {
        let field = |name| Field::new(name, DataType::Utf8, true);
        Arc::new(Schema::new(vec![
            field(RESOURCE),
            field(RESOURCE_TYPE),
            field(ID),
            field(ERROR),
        ]))
    }

    /// De-identifies every line of `lines` (a string array: `utf8`, `large_utf8` or
    /// `utf8_view`), in parallel. Row `i` of the result belongs to line `i`: a resource with
    /// its type and id, or an error, or all nulls for a null or blank line. `folder` is the
    /// root input folder (date-shift scope `folder` uses its last component).
    pub fn deidentify(
        &self,
        lines: &dyn Array,
        files: Files<'_>,
        folder: Option<&str>,
    ) -> Result<RecordBatch, String> {
        let lines = strings(lines, "lines")?;
        let files = match files {
            Files::Same(file) => vec![file; lines.len()],
            Files::PerLine(array) => {
                let files = strings(array, "files")?;
                if files.len() != lines.len() {
                    return Err(format!(
                        "files has {} rows and lines has {}",
                        files.len(),
                        lines.len()
                    ));
                }
                files
            }
        };
        let outcomes: Vec<Outcome> = lines
            .par_iter()
            .zip(files.par_iter())
            .map(|(line, file)| self.line(*line, *file, folder))
            .collect();
        let mut columns: [StringBuilder; 4] = Default::default();
        for outcome in outcomes {
            let row: [Option<String>; 4] = match outcome {
                Outcome::Empty => [None, None, None, None],
                Outcome::Done(text, kind, id) => [Some(text), Some(kind), id, None],
                Outcome::Failed(error) => [None, None, None, Some(error)],
            };
            for (builder, value) in columns.iter_mut().zip(row) {
                builder.append_option(value);
            }
        }
        let columns: Vec<ArrayRef> = columns
            .into_iter()
            .map(|mut builder| Arc::new(builder.finish()) as ArrayRef)
            .collect();
        RecordBatch::try_new(Deidentifier::output_schema(), columns).map_err(|e| e.to_string())
    }

    /// De-identifies one line of `file`.
    fn line(&self, line: Option<&str>, file: Option<&str>, folder: Option<&str>) -> Outcome {
        let Some(line) = line.filter(|l| !l.trim_ascii().is_empty()) else {
            return Outcome::Empty;
        };
        let context = Context {
            file,
            folder,
            sequence: 0,
        };
        let failed =
            |message: String| Outcome::Failed(format!("{}: {message}", file.unwrap_or("input")));
        let (resource, _) = match self.engine.deidentify_line(line.as_bytes(), &context) {
            Ok(done) => done,
            Err(error) => return failed(error.describe()),
        };
        let kind = match resource.get("resourceType") {
            Some(Value::String(kind)) => kind.clone(),
            _ => return failed("the result has no resourceType".to_owned()),
        };
        let id = resource
            .get("id")
            .and_then(Value::as_str)
            .map(str::to_owned);
        match serde_json::to_string(&resource) {
            Ok(text) => Outcome::Done(text, kind, id),
            Err(_) => failed("the result cannot be written as JSON".to_owned()),
        }
    }
}

/// The values of a string array (nulls as `None`), or an error naming the argument.
fn strings<'a>(array: &'a dyn Array, what: &str) -> Result<Vec<Option<&'a str>>, String> {
    if let Some(array) = array.as_string_opt::<i32>() {
        Ok(array.iter().collect())
    } else if let Some(array) = array.as_string_opt::<i64>() {
        Ok(array.iter().collect())
    } else if let Some(array) = array.as_string_view_opt() {
        Ok(array.iter().collect())
    } else {
        Err(format!(
            "{what} must be a string array, not {}",
            array.data_type()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{LargeStringArray, StringArray, StringViewArray};

    const CONFIG: &str = r#"{
        "fhirPathRules": [
            {"path": "Patient.name", "method": "redact"},
            {"path": "Patient.birthDate", "method": "dateShift"},
            {"path": "Resource.id", "method": "cryptoHash"}
        ],
        "parameters": {"dateShiftScope": "file"}
    }"#;
    const KEYS: [(&str, &str); 2] = [("cryptoHashKey", "k1-hash"), ("dateShiftKey", "k2-shift")];
    const PATIENT: &str = r#"{"resourceType":"Patient","id":"p1","name":[{"family":"Doe"}],"birthDate":"1970-05-06"}"#;

    fn engine() -> Deidentifier {
        Deidentifier::new(CONFIG, KEYS).unwrap()
    }

    fn column<'a>(batch: &'a RecordBatch, name: &str) -> Vec<Option<&'a str>> {
        batch
            .column_by_name(name)
            .unwrap()
            .as_string::<i32>()
            .iter()
            .collect()
    }

    /// What the engine itself writes for a line of `file`.
    fn expected(line: &str, file: &str) -> String {
        let mut config = Config::from_json(CONFIG).unwrap();
        config.set_key(KeyKind::CryptoHash, "k1-hash").unwrap();
        config.set_key(KeyKind::DateShift, "k2-shift").unwrap();
        let ctx = Context {
            file: Some(file),
            ..Context::default()
        };
        let (value, _) = Engine::new(config)
            .unwrap()
            .deidentify_line(line.as_bytes(), &ctx)
            .unwrap();
        value.to_string()
    }

    #[test]
    fn rows_follow_lines_with_resources_blanks_and_errors() {
        let lines = StringArray::from(vec![
            Some(PATIENT),
            None,
            Some("  "),
            Some(r#"{"resourceType":"Patient","name":"#),
            Some(r#"{"resourceType":"Patient","id":"p2","colour":"secret-value"}"#),
        ]);
        let batch = engine()
            .deidentify(&lines, Files::Same(Some("Patient.ndjson")), None)
            .unwrap();
        assert_eq!(batch.num_rows(), 5);
        let resources = column(&batch, RESOURCE);
        assert_eq!(
            resources[0],
            Some(expected(PATIENT, "Patient.ndjson").as_str())
        );
        assert!(!resources[0].unwrap().contains("Doe"));
        assert_eq!(resources[1..], [None, None, None, None]);
        assert_eq!(
            column(&batch, RESOURCE_TYPE),
            [Some("Patient"), None, None, None, None]
        );
        let ids = column(&batch, ID);
        assert!(ids[0].is_some_and(|id| id != "p1" && id.len() == 64));
        let errors = column(&batch, ERROR);
        assert_eq!(errors[..3], [None, None, None]);
        let json_error = errors[3].unwrap();
        assert!(json_error.starts_with("Patient.ndjson: "), "{json_error}");
        assert!(json_error.contains("JSON"), "{json_error}");
        let element_error = errors[4].unwrap();
        assert!(element_error.contains("colour"), "{element_error}");
        assert!(!element_error.contains("secret-value"), "{element_error}");
    }

    #[test]
    fn file_scope_uses_each_lines_own_file() {
        let lines = LargeStringArray::from(vec![PATIENT, PATIENT]);
        let files = StringViewArray::from(vec!["file:///in/a/Patient.ndjson", "b.ndjson"]);
        let batch = engine()
            .deidentify(&lines, Files::PerLine(&files), Some("/in"))
            .unwrap();
        let resources = column(&batch, RESOURCE);
        assert_eq!(
            resources[0],
            Some(expected(PATIENT, "Patient.ndjson").as_str())
        );
        assert_eq!(resources[1], Some(expected(PATIENT, "b.ndjson").as_str()));
        assert_ne!(resources[0], resources[1]);
    }

    #[test]
    fn bad_arguments_are_errors() {
        let lines = StringArray::from(vec![PATIENT]);
        let files = StringArray::from(vec!["a", "b"]);
        let error = engine()
            .deidentify(&lines, Files::PerLine(&files), None)
            .unwrap_err();
        assert_eq!(error, "files has 2 rows and lines has 1");
        let numbers = arrow_array::Int32Array::from(vec![1]);
        let error = engine()
            .deidentify(&numbers, Files::Same(None), None)
            .unwrap_err();
        assert_eq!(error, "lines must be a string array, not Int32");
    }

    #[test]
    fn keys_are_checked_and_fingerprinted() {
        let missing = Deidentifier::new(CONFIG, [("cryptoHashKey", "k1")]).unwrap_err();
        assert!(missing.contains("dateShiftKey"), "{missing}");
        let unknown = Deidentifier::new(CONFIG, [("saltKey", "x")]).unwrap_err();
        assert!(unknown.contains("unknown key `saltKey`"), "{unknown}");
        let id = engine().key_id().unwrap().to_owned();
        assert_eq!(id.len(), 16);
        assert!(!id.contains("k1-hash"));
        let other = Deidentifier::new(CONFIG, [KEYS[0], ("dateShiftKey", "other")]).unwrap();
        assert_ne!(other.key_id(), Some(id.as_str()));
    }
}
