//! Delta Lake tables (feature `delta`): resource tables `delta/<Type>` with the key columns,
//! and view tables `delta/views/<name>`, each run merged by key and deletions applied.
//!
//! The merge is copy-on-write without DataFusion (whose build would cost CI several
//! minutes): the run's rows are written as new files (one per batch), then, at
//! [`commit`](DeltaTableWriter::commit), every existing file is scanned for the run's keys
//! (upserted or deleted) through its key column alone; a file that holds any of them is
//! rewritten without those rows. One commit removes the rewritten files and adds the new ones,
//! so readers see either the old table or the merged one. Cost: the key column of the whole
//! table is read once per run, and each file touched is rewritten whole; files are at most
//! one batch ([`WriterOptions::rows_per_batch`]) so a rewrite is bounded. Memory holds one
//! batch and the run's set of keys (about 100 bytes per key).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{BooleanArray, RecordBatch};
use arrow_schema::SchemaRef;
use bytes::Bytes;
use deltalake::kernel::engine::arrow_conversion::TryFromArrow;
use deltalake::kernel::transaction::CommitBuilder;
use deltalake::kernel::{Action, Add, StructType};
use deltalake::logstore::{
    LogStore, LogStoreFactory, ObjectStoreRef, StorageConfig, logstore_factories,
};
use deltalake::protocol::{DeltaOperation, MergePredicate, SaveMode};
use deltalake::writer::{DeltaWriter, RecordBatchWriter};
use deltalake::{DeltaTable, DeltaTableBuilder, DeltaTableError};
use object_store::ObjectStoreExt;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::Value;
use url::Url;

use crate::destination::{Destination, block_on};
use crate::error::{Error, Result};
use crate::table::{ResourceRows, keys_for, parse_line, resource_schema};
use crate::views::{Cell, RESOURCE_ID_COLUMN, ViewDefinition, ViewRows};
use crate::{WriterOptions, check_name};

/// The path of a resource type's Delta table under the destination.
pub fn delta_table_key(resource_type: &str) -> String {
    format!("delta/{resource_type}")
}

/// The path of a view's Delta table under the destination.
pub fn delta_view_key(view: &str) -> String {
    format!("delta/views/{view}")
}

/// What one merge commit did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeltaCommit {
    /// The table's path under the destination.
    pub table: String,
    /// The table version committed; `None` when the run changed nothing.
    pub version: Option<u64>,
    /// Rows written by this run.
    pub rows_written: u64,
    /// Distinct keys upserted.
    pub keys_upserted: u64,
    /// Existing rows dropped because their key was upserted or deleted.
    pub rows_replaced: u64,
    /// Existing files rewritten without the replaced rows.
    pub files_rewritten: u64,
    /// Files added (new rows and rewrites).
    pub files_added: u64,
}

/// The log store used for tables on a store Haven configured itself (Azure, S3, GCS): Delta's
/// default, which commits with put-if-absent.
struct HavenLogStoreFactory;

impl LogStoreFactory for HavenLogStoreFactory {
    fn with_options(
        &self,
        prefixed_store: ObjectStoreRef,
        root_store: ObjectStoreRef,
        location: &Url,
        options: &StorageConfig,
    ) -> deltalake::DeltaResult<Arc<dyn LogStore>> {
        Ok(deltalake::logstore::default_logstore(
            prefixed_store,
            root_store,
            location,
            options,
        ))
    }
}

/// Registers the log store for the cloud schemes Haven builds stores for, unless a Delta
/// cloud integration already did. Call it before opening a Delta table on a cloud
/// destination's store (the writers do).
pub fn register_log_stores() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let factories = logstore_factories();
        for scheme in [
            "az://", "azure://", "abfs://", "abfss://", "s3://", "s3a://", "gs://",
        ] {
            let url = Url::parse(scheme).expect("a scheme URL parses");
            if !factories.contains_key(&url) {
                factories.insert(url, Arc::new(HavenLogStoreFactory));
            }
        }
    });
}

/// The rows a Delta writer buffers: resources (key column `id`) or a view's rows (key
/// column `_resource_id`).
enum Buffer {
    Resources {
        resource_type: String,
        rows: Box<ResourceRows>,
    },
    View {
        view: Box<ViewDefinition>,
        rows: ViewRows,
    },
}

impl Buffer {
    fn len(&self) -> usize {
        match self {
            Buffer::Resources { rows, .. } => rows.len(),
            Buffer::View { rows, .. } => rows.len(),
        }
    }

    fn take_batch(&mut self) -> RecordBatch {
        match self {
            Buffer::Resources { rows, .. } => rows.take_batch(),
            Buffer::View { view, rows } => rows.take_batch(view),
        }
    }
}

/// Streams one run's rows into a Delta table and merges them at
/// [`commit`](DeltaTableWriter::commit): afterwards the table holds, for each key, the rows
/// of its latest upsert, and no rows of deleted keys. Until then readers see the table as it
/// was; a writer dropped without committing leaves only unreferenced files, which Delta
/// ignores (and `VACUUM` removes).
pub struct DeltaTableWriter {
    dest: Destination,
    key: String,
    schema: SchemaRef,
    key_column: usize,
    options: WriterOptions,
    table: DeltaTable,
    writer: RecordBatchWriter,
    buffer: Buffer,
    /// Keys in the buffer (a batch never holds a key twice: a repeat flushes first).
    buffered: HashSet<String>,
    /// For each key upserted this run, the staged file holding its latest rows.
    latest: HashMap<String, usize>,
    /// Staged files, each with the keys it holds that a later file superseded.
    staged: Vec<(Add, HashSet<String>)>,
    deleted: HashSet<String>,
    received: u64,
    rows_written: u64,
}

impl DeltaTableWriter {
    /// Opens (creating it if needed) the Delta table of `resource_type`, `delta/<Type>`.
    pub fn for_resources(
        dest: &Destination,
        resource_type: &str,
        options: WriterOptions,
    ) -> Result<DeltaTableWriter> {
        check_name("resource type", resource_type)?;
        let buffer = Buffer::Resources {
            resource_type: resource_type.to_string(),
            rows: Box::default(),
        };
        DeltaTableWriter::open(
            dest,
            delta_table_key(resource_type),
            resource_schema(),
            0,
            buffer,
            options,
        )
    }

    /// Opens (creating it if needed) the Delta table of `view`, `delta/views/<name>`.
    pub fn for_view(
        dest: &Destination,
        view: &ViewDefinition,
        options: WriterOptions,
    ) -> Result<DeltaTableWriter> {
        let schema = view.schema();
        let key_column = schema.fields().len() - 1;
        debug_assert_eq!(schema.field(key_column).name(), RESOURCE_ID_COLUMN);
        let buffer = Buffer::View {
            view: Box::new(view.clone()),
            rows: ViewRows::new(view),
        };
        DeltaTableWriter::open(
            dest,
            delta_view_key(view.name()),
            schema,
            key_column,
            buffer,
            options,
        )
    }

    fn open(
        dest: &Destination,
        key: String,
        schema: SchemaRef,
        key_column: usize,
        buffer: Buffer,
        options: WriterOptions,
    ) -> Result<DeltaTableWriter> {
        register_log_stores();
        let delta_error = |e: DeltaTableError| Error::Delta {
            table: key.clone(),
            message: e.to_string(),
        };
        let url = dest.url_of(&key);
        let table = block_on(async {
            let mut table = DeltaTableBuilder::from_url(url.clone())?
                .with_storage_backend(dest.object_store(), url)
                .build()?;
            if table.verify_deltatable_existence().await? {
                table.load().await?;
                Ok(table)
            } else {
                let columns = StructType::try_from_arrow(schema.as_ref())?;
                table
                    .create()
                    .with_table_name(key.rsplit('/').next().unwrap_or(&key))
                    .with_columns(columns.fields().cloned())
                    .with_save_mode(SaveMode::Ignore)
                    .await
            }
        })
        .map_err(delta_error)?;
        if table.snapshot().map_err(delta_error)?.schema().as_ref()
            != &StructType::try_from_arrow(schema.as_ref()).map_err(|e| delta_error(e.into()))?
        {
            return Err(Error::Delta {
                table: key,
                message: "the existing table has other columns than this writer".into(),
            });
        }
        let writer = RecordBatchWriter::for_table(&table)
            .map_err(delta_error)?
            .with_writer_properties(crate::parquet::writer_properties(&["resource"]));
        Ok(DeltaTableWriter {
            dest: dest.clone(),
            key,
            schema,
            key_column,
            options,
            table,
            writer,
            buffer,
            buffered: HashSet::new(),
            latest: HashMap::new(),
            staged: Vec::new(),
            deleted: HashSet::new(),
            received: 0,
            rows_written: 0,
        })
    }

    fn delta_error(&self, e: impl std::fmt::Display) -> Error {
        Error::Delta {
            table: self.key.clone(),
            message: e.to_string(),
        }
    }

    /// Upserts one resource (resource tables only).
    pub fn write(&mut self, resource: &Value) -> Result<()> {
        let json = serde_json::to_string(resource).expect("a JSON value serializes");
        self.push_resource(resource, &json)
    }

    /// Upserts one resource given as an NDJSON line, whose text is kept as given.
    pub fn write_line(&mut self, line: &[u8]) -> Result<()> {
        let Buffer::Resources { resource_type, .. } = &self.buffer else {
            return Err(self.delta_error("resources written to a view table"));
        };
        let (resource, text) = parse_line(line, resource_type, self.received)?;
        self.push_resource(&resource, text)
    }

    pub(crate) fn push_resource(&mut self, resource: &Value, json: &str) -> Result<()> {
        let Buffer::Resources { resource_type, .. } = &self.buffer else {
            return Err(self.delta_error("resources written to a view table"));
        };
        let keys = keys_for(resource, resource_type, self.received)?;
        self.received += 1;
        self.make_room(&keys.id)?;
        if let Buffer::Resources { rows, .. } = &mut self.buffer {
            rows.push(&keys, json);
        }
        self.after_push()
    }

    /// Upserts the rows a view gave for the resource `resource_id` (view tables only): they
    /// replace all rows of that resource.
    pub fn write_view_rows(&mut self, resource_id: &str, rows: Vec<Vec<Cell>>) -> Result<()> {
        if !matches!(self.buffer, Buffer::View { .. }) {
            return Err(self.delta_error("view rows written to a resource table"));
        }
        self.make_room(resource_id)?;
        if let Buffer::View { view, rows: buffer } = &mut self.buffer {
            for row in rows {
                buffer.push(view, resource_id, row)?;
            }
        }
        self.after_push()
    }

    /// Records `key` as upserted, flushing first if the buffer already holds it.
    fn make_room(&mut self, key: &str) -> Result<()> {
        if self.buffered.contains(key) {
            self.flush_batch()?;
        }
        self.buffered.insert(key.to_string());
        self.deleted.remove(key);
        Ok(())
    }

    fn after_push(&mut self) -> Result<()> {
        if self.buffer.len() >= self.options.rows_per_batch {
            self.flush_batch()?;
        }
        Ok(())
    }

    /// Deletes the resource `id` (and, for a view table, every row from it).
    pub fn delete(&mut self, id: &str) -> Result<()> {
        if self.buffered.contains(id) {
            self.flush_batch()?;
        }
        if let Some(file) = self.latest.remove(id) {
            self.staged[file].1.insert(id.to_string());
        }
        self.deleted.insert(id.to_string());
        Ok(())
    }

    /// Writes the buffered rows as one staged file.
    fn flush_batch(&mut self) -> Result<()> {
        let batch = self.buffer.take_batch();
        let keys = std::mem::take(&mut self.buffered);
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.rows_written += batch.num_rows() as u64;
        let adds = block_on(async {
            self.writer.write(batch).await?;
            self.writer.flush().await
        })
        .map_err(|e| self.delta_error(e))?;
        for add in adds {
            let index = self.staged.len();
            for key in &keys {
                if let Some(previous) = self.latest.insert(key.clone(), index) {
                    self.staged[previous].1.insert(key.clone());
                }
            }
            self.staged.push((add, HashSet::new()));
        }
        Ok(())
    }

    /// Reads the Parquet file at `path` (relative to the table), keeping only the rows whose
    /// key is not in `drop`; `None` when no row is dropped. Only the key column is read
    /// unless some row must go.
    fn filter_file(
        &self,
        path: &str,
        drop: &dyn Fn(&str) -> bool,
    ) -> Result<Option<(Vec<RecordBatch>, u64)>> {
        let file_key = format!("{}/{}", self.key, path);
        let store = self.dest.object_store();
        let location = self.dest.path(&file_key);
        let bytes: Bytes = block_on(async { store.get(&location).await?.bytes().await })
            .map_err(|e| Error::store("get", &file_key, e))?;
        let parquet_error = |e: parquet::errors::ParquetError| Error::parquet(&file_key, e);
        let builder =
            ParquetRecordBatchReaderBuilder::try_new(bytes.clone()).map_err(parquet_error)?;
        let mask = ProjectionMask::roots(builder.parquet_schema(), [self.key_column]);
        let mut hits = 0u64;
        for batch in builder
            .with_projection(mask)
            .build()
            .map_err(parquet_error)?
        {
            let batch = batch.map_err(|e| Error::parquet(&file_key, e))?;
            let keys = batch.column(0).as_string::<i32>();
            hits += keys.iter().filter(|k| k.is_some_and(drop)).count() as u64;
        }
        if hits == 0 {
            return Ok(None);
        }
        let mut kept = Vec::new();
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
            .and_then(|b| b.build())
            .map_err(parquet_error)?;
        for batch in reader {
            let batch = batch.map_err(|e| Error::parquet(&file_key, e))?;
            let keys = batch.column(self.key_column).as_string::<i32>();
            let mask: BooleanArray = keys.iter().map(|k| Some(!k.is_some_and(drop))).collect();
            let filtered =
                arrow_select_filter(&batch, &mask).map_err(|e| Error::parquet(&file_key, e))?;
            if filtered.num_rows() > 0 {
                kept.push(filtered);
            }
        }
        Ok(Some((kept, hits)))
    }

    /// Writes `batches` as new files and returns their Add actions.
    fn write_files(&mut self, batches: Vec<RecordBatch>) -> Result<Vec<Add>> {
        if batches.is_empty() {
            return Ok(Vec::new());
        }
        let schema = self.schema.clone();
        block_on(async {
            for batch in batches {
                let batch = batch.with_schema(schema.clone())?;
                self.writer.write(batch).await?;
            }
            self.writer.flush().await
        })
        .map_err(|e| self.delta_error(e))
    }

    /// Merges the run into the table in one commit.
    pub fn commit(mut self) -> Result<DeltaCommit> {
        self.flush_batch()?;
        let mut summary = DeltaCommit {
            table: self.key.clone(),
            rows_written: self.rows_written,
            keys_upserted: self.latest.len() as u64,
            ..DeltaCommit::default()
        };
        let mut actions: Vec<Action> = Vec::new();
        // Existing files: drop rows whose key this run upserted or deleted.
        let existing: Vec<_> = self
            .table
            .snapshot()
            .map_err(|e| self.delta_error(e))?
            .log_data()
            .into_iter()
            .map(|file| (file.path().to_string(), file.remove_action(true)))
            .collect();
        let latest = std::mem::take(&mut self.latest);
        let deleted = std::mem::take(&mut self.deleted);
        let replaced = |k: &str| latest.contains_key(k) || deleted.contains(k);
        if !latest.is_empty() || !deleted.is_empty() {
            for (path, remove) in existing {
                let Some((kept, hits)) = self.filter_file(&path, &replaced)? else {
                    continue;
                };
                summary.rows_replaced += hits;
                summary.files_rewritten += 1;
                actions.push(Action::Remove(remove));
                actions.extend(self.write_files(kept)?.into_iter().map(Action::Add));
            }
        }
        // Staged files of this run: drop rows a later upsert or a deletion superseded.
        for (add, superseded) in std::mem::take(&mut self.staged) {
            if superseded.is_empty() {
                actions.push(Action::Add(add));
                continue;
            }
            let drop = |k: &str| superseded.contains(k);
            match self.filter_file(&add.path, &drop)? {
                Some((kept, _)) => {
                    actions.extend(self.write_files(kept)?.into_iter().map(Action::Add));
                    let orphan = format!("{}/{}", self.key, add.path);
                    self.dest.delete(&orphan)?;
                }
                None => actions.push(Action::Add(add)),
            }
        }
        summary.files_added = actions
            .iter()
            .filter(|a| matches!(a, Action::Add(_)))
            .count() as u64;
        if actions.is_empty() {
            return Ok(summary);
        }
        let operation = DeltaOperation::Merge {
            predicate: None,
            merge_predicate: Some(format!(
                "target.{0} = source.{0}",
                self.schema.field(self.key_column).name()
            )),
            matched_predicates: vec![MergePredicate {
                action_type: "update".into(),
                predicate: None,
            }],
            not_matched_predicates: vec![MergePredicate {
                action_type: "insert".into(),
                predicate: None,
            }],
            not_matched_by_source_predicates: Vec::new(),
        };
        let snapshot = self.table.snapshot().map_err(|e| self.delta_error(e))?;
        let version = block_on(async {
            CommitBuilder::default()
                .with_actions(actions)
                .build(Some(snapshot), self.table.log_store(), operation)
                .await
                .map(|finalized| finalized.version())
        })
        .map_err(|e| self.delta_error(e))?;
        summary.version = Some(version);
        Ok(summary)
    }
}

/// Keeps the rows of `batch` where `mask` is true.
fn arrow_select_filter(
    batch: &RecordBatch,
    mask: &BooleanArray,
) -> std::result::Result<RecordBatch, arrow_schema::ArrowError> {
    deltalake::arrow::compute::filter_record_batch(batch, mask)
}
