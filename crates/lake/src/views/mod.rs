//! Flat analyst tables from SQL-on-FHIR v2 ViewDefinitions, evaluated with Haven's FHIRPath
//! engine.
//!
//! Supported: `select` with `column` (`name`, `path`, `type`, `collection`), nested `select`,
//! `forEach`, `forEachOrNull`, `unionAll`, `where`, `constant` (every primitive `value[x]`),
//! and the functions `getResourceKey()` and `getReferenceKey([Type])` at the end of a path
//! (`getResourceKey()`, `subject.getReferenceKey(Patient)`).
//!
//! Column types map to Arrow as: `boolean` → Boolean; `integer`, `positiveInt`,
//! `unsignedInt`, `integer64` → Int64; `decimal` → Float64; everything else (strings, codes,
//! dates and times, which keep their FHIR precision and text) → Utf8. A `collection` column
//! is a list of strings. Every view table ends with a `_resource_id` column, the id of the
//! resource a row came from, which incremental Delta runs merge on.
//!
//! [`builtin_views`] are the COVID-19 views shipped with Haven (`patient`, `condition`,
//! `observation`, `encounter`, `immunization`); users add their own ViewDefinition files with
//! [`load_views`].

mod eval;
mod rows;

use std::path::Path;
use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema, SchemaRef};
use serde_json::Value;

use crate::destination::Destination;
use crate::error::{Error, Result};
use crate::parquet::ParquetFileWriter;
use crate::{TableSummary, WriterOptions, check_name};

pub use eval::Cell;
pub(crate) use rows::ViewRows;

use eval::{Compiled, Select};

/// The column every view table ends with: the id of the resource the row came from.
pub const RESOURCE_ID_COLUMN: &str = "_resource_id";

/// The built-in views' ViewDefinition files, embedded in the crate.
const BUILTIN: [(&str, &str); 5] = [
    ("patient", include_str!("../../views/patient.json")),
    ("condition", include_str!("../../views/condition.json")),
    ("observation", include_str!("../../views/observation.json")),
    ("encounter", include_str!("../../views/encounter.json")),
    (
        "immunization",
        include_str!("../../views/immunization.json"),
    ),
];

/// One output column of a view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// The column name.
    pub name: String,
    /// The FHIR type code it declares (`string` when none).
    pub fhir_type: String,
    /// Whether it holds a list of values.
    pub collection: bool,
}

impl Column {
    /// The Arrow type of this column.
    pub fn data_type(&self) -> DataType {
        let scalar = scalar_type(&self.fhir_type);
        if self.collection {
            DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)))
        } else {
            scalar
        }
    }
}

/// The Arrow type of a scalar column of FHIR type `code`.
fn scalar_type(code: &str) -> DataType {
    match code {
        "boolean" => DataType::Boolean,
        "integer" | "positiveInt" | "unsignedInt" | "integer64" => DataType::Int64,
        "decimal" => DataType::Float64,
        _ => DataType::Utf8,
    }
}

/// Normalizes a column type: `http://hl7.org/fhirpath/System.String` → `string`.
fn normalize_type(code: &str) -> String {
    let last = code.rsplit('/').next().unwrap_or(code);
    match last.strip_prefix("System.") {
        Some("String") => "string".into(),
        Some("Integer") => "integer".into(),
        Some("Decimal") => "decimal".into(),
        Some("Boolean") => "boolean".into(),
        Some("Date") => "date".into(),
        Some("DateTime") => "dateTime".into(),
        Some("Time") => "time".into(),
        Some(other) => other.to_string(),
        None => last.to_string(),
    }
}

/// A compiled ViewDefinition.
#[derive(Debug, Clone)]
pub struct ViewDefinition {
    name: String,
    resource: String,
    columns: Vec<Column>,
    selects: Vec<Select>,
    wheres: Vec<Compiled>,
    schema: SchemaRef,
}

impl ViewDefinition {
    /// Compiles a ViewDefinition resource.
    pub fn from_json(definition: &Value) -> Result<ViewDefinition> {
        let name = definition
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let invalid = |reason: String| Error::View {
            view: name.clone(),
            reason,
        };
        check_name("view name", &name)
            .map_err(|_| invalid("`name` must be letters, digits, `.`, `_` or `-`".into()))?;
        if definition.get("resourceType").and_then(Value::as_str) != Some("ViewDefinition") {
            return Err(invalid("not a ViewDefinition".into()));
        }
        let resource = definition
            .get("resource")
            .and_then(Value::as_str)
            .filter(|r| fhir::types::is_concrete_resource_type(r))
            .ok_or_else(|| invalid("`resource` must be an R4 resource type".into()))?
            .to_string();
        let constants = eval::constants(definition.get("constant")).map_err(invalid)?;
        let mut columns = Vec::new();
        let selects = match definition.get("select") {
            Some(Value::Array(items)) if !items.is_empty() => items
                .iter()
                .map(|s| Select::compile(s, &constants, &mut columns))
                .collect::<std::result::Result<Vec<_>, String>>()
                .map_err(invalid)?,
            _ => return Err(invalid("`select` must be a non-empty array".into())),
        };
        let wheres = match definition.get("where") {
            None => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|w| {
                    let path = w
                        .get("path")
                        .and_then(Value::as_str)
                        .ok_or("`where` needs a `path`")?;
                    Compiled::compile(path, &constants)
                })
                .collect::<std::result::Result<Vec<_>, String>>()
                .map_err(invalid)?,
            Some(_) => return Err(invalid("`where` must be an array".into())),
        };
        let mut seen = std::collections::HashSet::new();
        for column in &columns {
            if column.name == RESOURCE_ID_COLUMN || !seen.insert(column.name.as_str()) {
                return Err(invalid(format!(
                    "column `{}` is defined twice",
                    column.name
                )));
            }
        }
        let mut fields: Vec<Field> = columns
            .iter()
            .map(|c| Field::new(&c.name, c.data_type(), true))
            .collect();
        fields.push(Field::new(RESOURCE_ID_COLUMN, DataType::Utf8, false));
        Ok(ViewDefinition {
            name,
            resource,
            columns,
            selects,
            wheres,
            schema: Arc::new(Schema::new(fields)),
        })
    }

    /// The view's name, which is also its table's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The resource type it reads.
    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// The output columns, in order (without the trailing `_resource_id`).
    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    /// The Arrow schema of the view's table (its columns, then `_resource_id`).
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// The rows `resource` gives: none when it is of another type or fails a `where`.
    pub fn evaluate(&self, resource: &Value) -> Result<Vec<Vec<Cell>>> {
        if resource.get("resourceType").and_then(Value::as_str) != Some(self.resource.as_str()) {
            return Ok(Vec::new());
        }
        eval::evaluate(self, resource).map_err(|reason| Error::View {
            view: self.name.clone(),
            reason,
        })
    }
}

/// The built-in COVID-19 views: `patient` (id, gender, birth year, zip3, deceased),
/// `condition`, `observation`, `encounter` and `immunization`.
pub fn builtin_views() -> Vec<ViewDefinition> {
    BUILTIN
        .iter()
        .map(|(name, text)| {
            let json: Value = serde_json::from_str(text).expect("built-in views are JSON");
            let view = ViewDefinition::from_json(&json).expect("built-in views compile");
            debug_assert_eq!(view.name(), *name);
            view
        })
        .collect()
}

/// Loads ViewDefinition JSON files: `path` is one file, or a folder whose `*.json` files are
/// read in name order.
pub fn load_views(path: &Path) -> Result<Vec<ViewDefinition>> {
    let io_error = |file: &Path, e: std::io::Error| Error::View {
        view: file.display().to_string(),
        reason: format!("cannot read: {e}"),
    };
    let files = if path.is_dir() {
        let mut files: Vec<_> = std::fs::read_dir(path)
            .map_err(|e| io_error(path, e))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        files.sort();
        files
    } else {
        vec![path.to_path_buf()]
    };
    files
        .iter()
        .map(|file| {
            let text = std::fs::read_to_string(file).map_err(|e| io_error(file, e))?;
            let json: Value = serde_json::from_str(&text).map_err(|e| Error::View {
                view: file.display().to_string(),
                reason: format!("not JSON (line {}, column {})", e.line(), e.column()),
            })?;
            ViewDefinition::from_json(&json)
        })
        .collect()
}

/// The key of one Parquet part of a view table.
pub fn view_parquet_key(view: &str, run_id: &str, part: u32) -> String {
    format!("views/{view}/run={run_id}/part-{part:05}.parquet")
}

/// Evaluates one view over resources and streams its rows into the Parquet parts of one run
/// (`views/<name>/run=<id>/part-00000.parquet`).
pub struct ViewWriter {
    view: ViewDefinition,
    dest: Destination,
    run_id: String,
    options: WriterOptions,
    rows: ViewRows,
    file: Option<ParquetFileWriter>,
    summary: TableSummary,
}

impl ViewWriter {
    /// A writer of `view` for run `run_id`.
    pub fn create(
        dest: &Destination,
        view: &ViewDefinition,
        run_id: &str,
        options: WriterOptions,
    ) -> Result<ViewWriter> {
        check_name("run id", run_id)?;
        Ok(ViewWriter {
            view: view.clone(),
            dest: dest.clone(),
            run_id: run_id.to_string(),
            options,
            rows: ViewRows::new(view),
            file: None,
            summary: TableSummary::new(format!("views/{}", view.name())),
        })
    }

    /// Evaluates the view on `resource` and writes its rows; returns how many.
    pub fn write(&mut self, resource: &Value) -> Result<usize> {
        let rows = self.view.evaluate(resource)?;
        let id = resource
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default();
        self.write_rows(id, rows)
    }

    /// Writes rows the caller evaluated, from the resource with id `resource_id`.
    pub(crate) fn write_rows(&mut self, resource_id: &str, rows: Vec<Vec<Cell>>) -> Result<usize> {
        let count = rows.len();
        for row in rows {
            self.rows.push(&self.view, resource_id, row)?;
        }
        if self.rows.len() >= self.options.rows_per_batch {
            self.flush_batch()?;
        }
        Ok(count)
    }

    fn flush_batch(&mut self) -> Result<()> {
        if self.rows.len() == 0 {
            return Ok(());
        }
        if self.file.is_none() {
            let key = view_parquet_key(
                self.view.name(),
                &self.run_id,
                self.summary.files.len() as u32,
            );
            self.file = Some(ParquetFileWriter::create(
                &self.dest,
                &key,
                self.view.schema(),
            )?);
        }
        let file = self.file.as_mut().expect("a part is open");
        file.write(&self.rows.take_batch(&self.view))?;
        if file.rows() >= self.options.rows_per_file {
            self.close_part()?;
        }
        Ok(())
    }

    fn close_part(&mut self) -> Result<()> {
        crate::parquet::close_part(&mut self.file, &mut self.summary)
    }

    /// Writes what is buffered and completes the last part.
    pub fn finish(mut self) -> Result<TableSummary> {
        self.flush_batch()?;
        self.close_part()?;
        Ok(std::mem::take(&mut self.summary))
    }
}
