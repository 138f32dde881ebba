//! Haven's FHIR resource store: versioned resources with tombstones, history, search indexes,
//! Patient compartments for Bulk Data export, and persisted export jobs, behind one [`Store`]
//! trait, on SQLite (embedded, the default) or PostgreSQL (cargo feature `postgres`).
//!
//! ```
//! use store::{SearchQuery, Store, SqlStore, Criterion};
//! use serde_json::json;
//!
//! let dir = tempfile::tempdir().unwrap();
//! let store = SqlStore::open_sqlite(dir.path().join("haven.db"))?;
//! let created = store.create(json!({"resourceType": "Patient", "name": [{"family": "Núñez"}]}))?;
//! assert_eq!(created.version, 1);
//! let mut query = SearchQuery::new("Patient");
//! query.criteria.push(Criterion::parse("family", "nunez"));
//! assert_eq!(store.search(&query)?.resources.len(), 1);
//! # Ok::<(), store::Error>(())
//! ```
//!
//! # Why a synchronous trait
//!
//! Both engines are driven through blocking clients (`rusqlite`; the `postgres` crate, which
//! runs its own small runtime). An axum handler calls the store inside
//! `tokio::task::spawn_blocking`, which keeps database work off the async workers; a store
//! value is `Send + Sync` and pools its connections, so many blocking tasks can use one
//! `Arc<dyn Store>` at once. Exports read in pages ([`Store::export_page`]), so a background
//! job holds a blocking thread for one page at a time.
//!
//! # Versions and time
//!
//! Every write transaction takes the store's clock: its instant is the current time, or one
//! millisecond after the previous transaction's when the clock has not moved on, so
//! `meta.lastUpdated` is strictly increasing from one transaction to the next and equal
//! within one. `meta.versionId` counts 1, 2, 3… per resource; a delete writes a tombstone
//! version. [`Store::transaction_time`] takes the clock too, so every write that follows has a
//! later instant: a snapshot "as of that time" can no longer change.
//!
//! Resources are stored as JSON text exactly as given (key order and decimal text kept), with
//! `id` and `meta.versionId`/`meta.lastUpdated` set by the store. PostgreSQL stores that text
//! in a `TEXT` column too: `JSONB` would reorder keys.
//!
//! # Storage
//!
//! One table holds every version of every resource, with the interval during which it was
//! current, so that an export can read the versions live at any instant without holding a
//! database snapshot open; search index tables (token, string, date, reference) hold entries
//! for current versions only; each version records the patients whose compartments it is in
//! ([`fhir::compartment::compartment_patients`], evaluated when written: references must
//! already name server ids). Index values come from the R4 search parameters' FHIRPath
//! expressions ([`indexed_params`] lists what is searchable).
//!
//! # Search
//!
//! See [`SearchQuery`]: criteria AND-ed, values OR-ed, modifiers and date prefixes as FHIR
//! defines them, offset paging in a stable order, optional totals.

mod engine;
mod error;
mod index;
#[cfg(feature = "postgres")]
mod postgres;
mod search;
mod sql;
mod sqlite;
#[cfg(feature = "postgres")]
pub mod testing;
mod time;

use serde_json::Value;

pub use engine::SqlStore;
pub use error::{Error, Result};
pub use index::{indexed_params, normalize};
pub use search::{Criterion, SearchPage, SearchQuery, Sort};
pub use time::Timestamp;

/// One write of a transaction.
#[derive(Debug, Clone)]
pub enum Write {
    /// Creates a resource. Its `id`, when it has one, is kept (a caller that assigned ids
    /// itself, for a transaction Bundle whose references it rewrote, see [`new_id`]) and must
    /// not be in use; without one the store assigns a new id. The REST API drops a client's
    /// `id` before creating.
    Create(Value),
    /// Updates the resource with the type and id the resource names, creating it when it does
    /// not exist or is deleted (update-as-create).
    Update {
        /// The new content.
        resource: Value,
        /// The version the current one must be (`If-Match`), if any.
        if_match: Option<u64>,
    },
    /// Updates the resource with the type and id the resource names, creating it when it does
    /// not exist or is deleted, unless its current version holds the same content (`meta`'s
    /// `versionId` and `lastUpdated` aside): then nothing is written and the outcome is
    /// [`WriteKind::Unchanged`] with the current version. Writing the same resources twice
    /// gives the same store, which is what makes loads idempotent and resumable.
    Upsert(Value),
    /// Deletes a resource by writing a tombstone version.
    Delete {
        /// The resource type.
        resource_type: String,
        /// The id.
        id: String,
        /// The version the current one must be (`If-Match`), if any.
        if_match: Option<u64>,
    },
}

/// What a write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteKind {
    /// A new resource (by create, or by update of an absent or deleted one).
    Created,
    /// A new version of a live resource.
    Updated,
    /// A tombstone version.
    Deleted,
    /// Nothing was written: a delete of a resource that was absent or already deleted, or an
    /// [`Write::Upsert`] of the content the current version already holds.
    Unchanged,
}

/// The result of one write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteOutcome {
    /// The resource type.
    pub resource_type: String,
    /// The resource id (assigned by the store for a create without one).
    pub id: String,
    /// What happened.
    pub kind: WriteKind,
    /// The version written; for [`WriteKind::Unchanged`] the current version (a tombstone's
    /// for a delete), or 0 when the resource never existed.
    pub version: u64,
    /// The instant of the write; for [`WriteKind::Unchanged`] the current version's time, or
    /// the transaction's when the resource never existed.
    pub last_updated: Timestamp,
    /// The stored JSON text for created and updated resources.
    pub json: Option<String>,
}

/// A live version of a resource as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResource {
    /// The resource type.
    pub resource_type: String,
    /// The id.
    pub id: String,
    /// `meta.versionId`.
    pub version: u64,
    /// `meta.lastUpdated`.
    pub last_updated: Timestamp,
    /// The resource as JSON text, exactly as stored.
    pub json: String,
}

/// One version in a history: a resource version or a tombstone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    /// The resource type.
    pub resource_type: String,
    /// The id.
    pub id: String,
    /// The version.
    pub version: u64,
    /// When this version was written.
    pub last_updated: Timestamp,
    /// The resource as JSON text; `None` for a deletion.
    pub json: Option<String>,
}

/// Whose history: the whole system's, a type's or one resource's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HistoryScope {
    /// Every resource.
    System,
    /// Every resource of one type.
    Type(String),
    /// One resource: type and id.
    Instance(String, String),
}

/// A history request: newest versions first, paged by offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryQuery {
    /// Whose history.
    pub scope: HistoryScope,
    /// Only versions written at or after this instant (`_since`).
    pub since: Option<Timestamp>,
    /// Page size (`_count`).
    pub count: usize,
    /// Versions to skip.
    pub offset: usize,
}

/// One page of a history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryPage {
    /// The versions, newest first.
    pub entries: Vec<HistoryEntry>,
    /// How many versions the query matches in all.
    pub total: u64,
    /// Whether more versions follow this page.
    pub more: bool,
}

/// Which patients' data an export covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatientScope {
    /// Every resource, in a compartment or not (system `$export`).
    All,
    /// Resources in the compartment of at least one patient (`Patient/$export`).
    AnyPatient,
    /// Resources in the compartments of these patients (`Group/[id]/$export`, `patient=`).
    Patients(Vec<String>),
}

/// An export of one resource type as of a transaction time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportQuery {
    /// The resource type.
    pub resource_type: String,
    /// The snapshot instant (the manifest's `transactionTime`, from
    /// [`Store::transaction_time`]): the versions live at this instant are exported.
    pub at: Timestamp,
    /// Only versions written after this instant (`_since`).
    pub since: Option<Timestamp>,
    /// Whose compartments.
    pub patients: PatientScope,
}

/// One page of an export, and the cursor to pass for the next one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportPage<T> {
    /// The items, in storage order.
    pub items: Vec<T>,
    /// The cursor after the last item when the page was full, `None` when the export is
    /// complete. Cursors are stable: a job can store one and resume after a restart.
    pub next: Option<u64>,
}

/// A deletion reported by an export (`deleted[]` of the manifest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tombstone {
    /// The resource type.
    pub resource_type: String,
    /// The id.
    pub id: String,
    /// The tombstone's version.
    pub version: u64,
    /// When the resource was deleted.
    pub deleted_at: Timestamp,
}

/// The state of an export job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobStatus {
    /// Kicked off, not started.
    Accepted,
    /// Running.
    InProgress,
    /// Finished; the output manifest is ready.
    Completed,
    /// Stopped by an error.
    Failed,
    /// Cancelled by its client.
    Cancelled,
}

impl JobStatus {
    /// The status as stored: `accepted`, `in-progress`, `completed`, `failed`, `cancelled`.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Accepted => "accepted",
            JobStatus::InProgress => "in-progress",
            JobStatus::Completed => "completed",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
        }
    }

    /// The status named by [`JobStatus::as_str`]'s text.
    pub fn parse(text: &str) -> Option<JobStatus> {
        [
            JobStatus::Accepted,
            JobStatus::InProgress,
            JobStatus::Completed,
            JobStatus::Failed,
            JobStatus::Cancelled,
        ]
        .into_iter()
        .find(|status| status.as_str() == text)
    }
}

/// A persisted Bulk Data export job.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportJob {
    /// The job id (assigned by the store).
    pub id: String,
    /// The kick-off request: URL and parameters, as the server chooses to record them.
    pub request: Value,
    /// Where the job is.
    pub status: JobStatus,
    /// The snapshot instant, once chosen.
    pub transaction_time: Option<Timestamp>,
    /// Progress as the server records it (per-type cursors and counts, so a job resumes).
    pub progress: Value,
    /// The output manifest, once completed.
    pub output: Option<Value>,
    /// Why the job failed.
    pub error: Option<String>,
    /// The client that kicked it off, when authenticated.
    pub owner: Option<String>,
    /// When the job was created.
    pub created: Timestamp,
    /// When the job was last updated.
    pub updated: Timestamp,
}

/// A FHIR resource store.
///
/// All methods block; see the crate documentation for how a server calls them. Errors name
/// types, ids and parameter codes, never resource content.
pub trait Store: Send + Sync {
    /// Applies `writes` atomically, in order, all at one instant: either every write is stored
    /// or none is (a failed precondition or a database error leaves nothing behind). Returns
    /// one outcome per write. A resource written twice gets two versions.
    fn transaction(&self, writes: Vec<Write>) -> Result<Vec<WriteOutcome>>;

    /// Creates one resource (see [`Write::Create`]).
    fn create(&self, resource: Value) -> Result<WriteOutcome> {
        single(self.transaction(vec![Write::Create(resource)])?)
    }

    /// Updates (or creates) one resource (see [`Write::Update`]).
    fn update(&self, resource: Value, if_match: Option<u64>) -> Result<WriteOutcome> {
        single(self.transaction(vec![Write::Update { resource, if_match }])?)
    }

    /// Deletes one resource (see [`Write::Delete`]).
    fn delete(&self, resource_type: &str, id: &str, if_match: Option<u64>) -> Result<WriteOutcome> {
        single(self.transaction(vec![Write::Delete {
            resource_type: resource_type.to_owned(),
            id: id.to_owned(),
            if_match,
        }])?)
    }

    /// The current version of a resource; [`Error::Gone`] when it is deleted,
    /// [`Error::NotFound`] when it never existed.
    fn read(&self, resource_type: &str, id: &str) -> Result<StoredResource>;

    /// One version of a resource; [`Error::Gone`] for a tombstone version,
    /// [`Error::VersionNotFound`] or [`Error::NotFound`] when absent.
    fn vread(&self, resource_type: &str, id: &str, version: u64) -> Result<StoredResource>;

    /// A page of history, newest first. An instance history of a resource that never
    /// existed is [`Error::NotFound`].
    fn history(&self, query: &HistoryQuery) -> Result<HistoryPage>;

    /// A page of search results over the current, live resources of one type.
    fn search(&self, query: &SearchQuery) -> Result<SearchPage>;

    /// Takes the store's clock for an export: returns an instant such that every write
    /// already made has an earlier or equal `lastUpdated`, and every later write a later one.
    fn transaction_time(&self) -> Result<Timestamp>;

    /// Up to `limit` resources of an export, after cursor `after` (0 to start): the
    /// versions live at `query.at`, in storage order. See [`export_resources`] for an
    /// iterator.
    fn export_page(
        &self,
        query: &ExportQuery,
        after: u64,
        limit: usize,
    ) -> Result<ExportPage<StoredResource>>;

    /// Up to `limit` deletions of an export, after cursor `after` (0 to start): resources of
    /// `query.resource_type` whose version live at `query.at` is a tombstone written after
    /// `query.since` (all such tombstones without one). See [`export_deleted`].
    fn deleted_page(
        &self,
        query: &ExportQuery,
        after: u64,
        limit: usize,
    ) -> Result<ExportPage<Tombstone>>;

    /// The number of live resources of each type that has any, sorted by type.
    fn counts(&self) -> Result<Vec<(String, u64)>>;

    /// Records a new export job (status `accepted`) with a new id.
    fn create_job(&self, request: Value, owner: Option<&str>) -> Result<ExportJob>;

    /// The job with this id, if any.
    fn get_job(&self, id: &str) -> Result<Option<ExportJob>>;

    /// Saves the job's status, transaction time, progress, output, error and owner; sets and
    /// returns its `updated` time. [`Error::JobNotFound`] when it does not exist.
    fn update_job(&self, job: &ExportJob) -> Result<ExportJob>;

    /// Every job, newest first.
    fn list_jobs(&self) -> Result<Vec<ExportJob>>;

    /// Deletes a job record; whether it existed.
    fn delete_job(&self, id: &str) -> Result<bool>;
}

fn single(mut outcomes: Vec<WriteOutcome>) -> Result<WriteOutcome> {
    outcomes
        .pop()
        .ok_or_else(|| Error::Database("a one-write transaction returned no outcome".to_owned()))
}

/// A new resource or job id: a random UUID (version 4) in lower-case hex.
pub fn new_id() -> String {
    let mut bytes: [u8; 16] = rand::random();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// An iterator over a paged export (a job that saves its position between pages calls
/// [`Store::export_page`] itself).
pub struct Pages<'a, T> {
    fetch: Box<dyn FnMut(u64) -> Result<ExportPage<T>> + 'a>,
    buffer: std::vec::IntoIter<T>,
    next: Option<u64>,
}

impl<T> Iterator for Pages<'_, T> {
    type Item = Result<T>;

    fn next(&mut self) -> Option<Result<T>> {
        loop {
            if let Some(item) = self.buffer.next() {
                return Some(Ok(item));
            }
            let after = self.next.take()?;
            match (self.fetch)(after) {
                Ok(page) => {
                    self.next = page.next;
                    self.buffer = page.items.into_iter();
                }
                Err(error) => return Some(Err(error)),
            }
        }
    }
}

/// Streams an export's resources, fetching `page_size` at a time, from cursor `after`
/// (0 to start): memory grows with the page, not with the data.
pub fn export_resources<'a>(
    store: &'a dyn Store,
    query: ExportQuery,
    after: u64,
    page_size: usize,
) -> Pages<'a, StoredResource> {
    Pages {
        fetch: Box::new(move |after| store.export_page(&query, after, page_size)),
        buffer: Vec::new().into_iter(),
        next: Some(after),
    }
}

/// Streams an export's deletions, fetching `page_size` at a time, from cursor `after`.
pub fn export_deleted<'a>(
    store: &'a dyn Store,
    query: ExportQuery,
    after: u64,
    page_size: usize,
) -> Pages<'a, Tombstone> {
    Pages {
        fetch: Box::new(move |after| store.deleted_page(&query, after, page_size)),
        buffer: Vec::new().into_iter(),
        next: Some(after),
    }
}

/// Opens a store by location: a `postgres://` or `postgresql://` URL connects to PostgreSQL
/// (with the `postgres` feature); anything else is the path of a SQLite file, created with
/// its folder when missing.
pub fn open(location: &str) -> Result<Box<dyn Store>> {
    if location.starts_with("postgres://") || location.starts_with("postgresql://") {
        #[cfg(feature = "postgres")]
        return Ok(Box::new(SqlStore::connect_postgres(location)?));
        #[cfg(not(feature = "postgres"))]
        return Err(Error::Database(
            "this build has no PostgreSQL support (cargo feature `postgres`)".to_owned(),
        ));
    }
    Ok(Box::new(SqlStore::open_sqlite(location)?))
}
