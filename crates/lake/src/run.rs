//! One run into the lake: every resource goes to each enabled format and to the views of its
//! type; deletions go to the Delta tables and to a per-run list.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

use crate::destination::Destination;
use crate::error::{Error, Result};
use crate::ndjson::NdjsonWriter;
use crate::parquet::ParquetWriter;
use crate::table::parse_line;
use crate::views::{ViewDefinition, ViewWriter};
use crate::{TableSummary, WriterOptions, check_name};

/// Which formats a run writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Formats {
    /// Gzip NDJSON per type, `ndjson/<Type>/run=<id>/`.
    pub ndjson: bool,
    /// Parquet per type and per view, `parquet/<Type>/run=<id>/`, `views/<name>/run=<id>/`.
    pub parquet: bool,
    /// Delta tables per type and per view, `delta/<Type>`, `delta/views/<name>` (feature
    /// `delta`; asking for it without the feature is an error).
    pub delta: bool,
}

impl Default for Formats {
    /// NDJSON and Parquet, plus Delta when the feature is built.
    fn default() -> Self {
        Formats {
            ndjson: true,
            parquet: true,
            delta: cfg!(feature = "delta"),
        }
    }
}

/// How a run writes.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The run's id, used in partition paths (`run=<id>`): letters, digits, `.`, `_`, `-`.
    pub run_id: String,
    /// The formats written.
    pub formats: Formats,
    /// The views evaluated (by default [`builtin_views`](crate::views::builtin_views)).
    pub views: Vec<ViewDefinition>,
    /// Batch and file sizes.
    pub writer: WriterOptions,
}

impl RunOptions {
    /// Default formats, the built-in views and default sizes, for run `run_id`.
    pub fn new(run_id: &str) -> RunOptions {
        RunOptions {
            run_id: run_id.to_string(),
            formats: Formats::default(),
            views: crate::views::builtin_views(),
            writer: WriterOptions::default(),
        }
    }
}

/// What a run landed, by table path (`ndjson/Patient`, `parquet/Patient`, `views/patient`,
/// `delta/Patient`, `delta/views/patient`).
#[derive(Debug, Clone, Default)]
pub struct RunSummary {
    /// Rows and files per table written as files of this run.
    pub tables: BTreeMap<String, TableSummary>,
    /// Deleted ids received, per resource type.
    pub deleted: BTreeMap<String, u64>,
    /// Delta commits, per table (feature `delta`).
    #[cfg(feature = "delta")]
    pub delta: BTreeMap<String, crate::DeltaCommit>,
}

/// The writers of one resource type.
#[derive(Default)]
struct TypeWriters {
    ndjson: Option<NdjsonWriter>,
    parquet: Option<ParquetWriter>,
    #[cfg(feature = "delta")]
    delta: Option<crate::DeltaTableWriter>,
    deleted: Vec<String>,
}

/// The writers of one view.
struct ViewWriters {
    view: ViewDefinition,
    parquet: Option<ViewWriter>,
    #[cfg(feature = "delta")]
    delta: Option<crate::DeltaTableWriter>,
}

/// Writes one run: resources of any type, in any order, with deletions; [`finish`]
/// completes the files and merges the Delta tables.
///
/// [`finish`]: RunWriter::finish
pub struct RunWriter {
    dest: Destination,
    options: RunOptions,
    types: HashMap<String, TypeWriters>,
    views: Vec<ViewWriters>,
    received: u64,
}

impl RunWriter {
    /// Starts run `options.run_id` in `dest`.
    pub fn new(dest: &Destination, options: RunOptions) -> Result<RunWriter> {
        check_name("run id", &options.run_id)?;
        if options.formats.delta && !cfg!(feature = "delta") {
            return Err(Error::Destination {
                url: dest.url().to_string(),
                reason: "this build of Haven lacks the `delta` feature".into(),
            });
        }
        let views = options
            .views
            .iter()
            .map(|view| ViewWriters {
                view: view.clone(),
                parquet: None,
                #[cfg(feature = "delta")]
                delta: None,
            })
            .collect();
        Ok(RunWriter {
            dest: dest.clone(),
            options,
            types: HashMap::new(),
            views,
            received: 0,
        })
    }

    /// Writes one resource.
    pub fn write(&mut self, resource: &Value) -> Result<()> {
        let json = serde_json::to_string(resource).expect("a JSON value serializes");
        self.push(resource, &json)
    }

    /// Writes one NDJSON line; the NDJSON and `resource` columns keep its text as given.
    pub fn write_line(&mut self, line: &[u8]) -> Result<()> {
        let (resource, text) = parse_line(line, "(any)", self.received)?;
        self.push(&resource, text)
    }

    fn push(&mut self, resource: &Value, json: &str) -> Result<()> {
        let index = self.received;
        self.received += 1;
        let resource_type = resource
            .get("resourceType")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::Resource {
                resource_type: "(any)".into(),
                index,
                reason: "no resourceType".into(),
            })?;
        let writers = self.type_writers(resource_type)?;
        if let Some(w) = &mut writers.ndjson {
            w.write_line(json.as_bytes())?;
        }
        if let Some(w) = &mut writers.parquet {
            w.push(resource, json)?;
        }
        #[cfg(feature = "delta")]
        if let Some(w) = &mut writers.delta {
            w.push_resource(resource, json)?;
        }
        let id = resource
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default();
        for i in 0..self.views.len() {
            if self.views[i].view.resource() != resource_type {
                continue;
            }
            self.open_view(i)?;
            let writers = &mut self.views[i];
            let rows = writers.view.evaluate(resource)?;
            #[cfg(feature = "delta")]
            if let Some(w) = &mut writers.delta {
                w.write_view_rows(id, rows.clone())?;
            }
            if let Some(w) = &mut writers.parquet {
                w.write_rows(id, rows)?;
            }
        }
        Ok(())
    }

    /// Records the deletion of `resource_type/id`: it is removed from the Delta tables (and
    /// the view tables) at [`finish`](RunWriter::finish), and listed in
    /// `deleted/<Type>/run=<id>/part-00000.ndjson.gz` when NDJSON is written.
    pub fn delete(&mut self, resource_type: &str, id: &str) -> Result<()> {
        let writers = self.type_writers(resource_type)?;
        writers.deleted.push(id.to_string());
        #[cfg(feature = "delta")]
        {
            if let Some(w) = &mut writers.delta {
                w.delete(id)?;
            }
            for i in 0..self.views.len() {
                if self.views[i].view.resource() == resource_type {
                    self.open_view(i)?;
                    if let Some(w) = &mut self.views[i].delta {
                        w.delete(id)?;
                    }
                }
            }
        }
        Ok(())
    }

    fn type_writers(&mut self, resource_type: &str) -> Result<&mut TypeWriters> {
        if !self.types.contains_key(resource_type) {
            let (dest, run, opts, formats) = (
                &self.dest,
                self.options.run_id.as_str(),
                self.options.writer,
                self.options.formats,
            );
            let writers = TypeWriters {
                ndjson: formats
                    .ndjson
                    .then(|| NdjsonWriter::create(dest, resource_type, run, opts))
                    .transpose()?,
                parquet: formats
                    .parquet
                    .then(|| ParquetWriter::create(dest, resource_type, run, opts))
                    .transpose()?,
                #[cfg(feature = "delta")]
                delta: formats
                    .delta
                    .then(|| crate::DeltaTableWriter::for_resources(dest, resource_type, opts))
                    .transpose()?,
                deleted: Vec::new(),
            };
            self.types.insert(resource_type.to_string(), writers);
        }
        Ok(self.types.get_mut(resource_type).expect("inserted above"))
    }

    fn open_view(&mut self, i: usize) -> Result<()> {
        let formats = self.options.formats;
        let writers = &mut self.views[i];
        if formats.parquet && writers.parquet.is_none() {
            writers.parquet = Some(ViewWriter::create(
                &self.dest,
                &writers.view,
                &self.options.run_id,
                self.options.writer,
            )?);
        }
        #[cfg(feature = "delta")]
        if formats.delta && writers.delta.is_none() {
            writers.delta = Some(crate::DeltaTableWriter::for_view(
                &self.dest,
                &writers.view,
                self.options.writer,
            )?);
        }
        Ok(())
    }

    /// Completes every file, writes the deletion lists and merges the Delta tables.
    pub fn finish(self) -> Result<RunSummary> {
        let mut summary = RunSummary::default();
        let mut types: Vec<_> = self.types.into_iter().collect();
        types.sort_by(|a, b| a.0.cmp(&b.0));
        for (resource_type, writers) in types {
            if let Some(w) = writers.ndjson {
                let table = w.finish()?;
                summary.tables.insert(table.table.clone(), table);
                if !writers.deleted.is_empty() {
                    let table = write_deleted(
                        &self.dest,
                        &resource_type,
                        &self.options.run_id,
                        &writers.deleted,
                    )?;
                    summary.tables.insert(table.table.clone(), table);
                }
            }
            if let Some(w) = writers.parquet {
                let table = w.finish()?;
                summary.tables.insert(table.table.clone(), table);
            }
            #[cfg(feature = "delta")]
            if let Some(w) = writers.delta {
                let commit = w.commit()?;
                summary.delta.insert(commit.table.clone(), commit);
            }
            if !writers.deleted.is_empty() {
                summary
                    .deleted
                    .insert(resource_type, writers.deleted.len() as u64);
            }
        }
        for writers in self.views {
            if let Some(w) = writers.parquet {
                let table = w.finish()?;
                summary.tables.insert(table.table.clone(), table);
            }
            #[cfg(feature = "delta")]
            if let Some(w) = writers.delta {
                let commit = w.commit()?;
                summary.delta.insert(commit.table.clone(), commit);
            }
        }
        Ok(summary)
    }
}

/// Writes the run's deleted ids of one type as `{"resourceType":…,"id":…}` lines, apart from
/// the resources so that globbing a type's NDJSON never picks them up.
fn write_deleted(
    dest: &Destination,
    resource_type: &str,
    run_id: &str,
    ids: &[String],
) -> Result<TableSummary> {
    let key = format!("deleted/{resource_type}/run={run_id}/part-00000.ndjson.gz");
    let mut text = String::new();
    for id in ids {
        let line = serde_json::json!({"resourceType": resource_type, "id": id});
        text.push_str(&line.to_string());
        text.push('\n');
    }
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut encoder, text.as_bytes())
        .and_then(|()| encoder.finish())
        .map_err(|source| Error::Io {
            key: key.clone(),
            source,
        })
        .and_then(|bytes| {
            let size = bytes.len() as u64;
            dest.put(&key, bytes)?;
            let rows = ids.len() as u64;
            Ok(TableSummary {
                table: format!("deleted/{resource_type}"),
                rows,
                files: vec![crate::FileWritten {
                    key,
                    rows,
                    bytes: size,
                }],
            })
        })
}
