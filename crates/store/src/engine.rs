//! The store's logic, written once over [`Backend`] for both SQL engines: the schema,
//! versioned writes, reads, history, search, exports, counts and jobs.

use std::collections::HashMap;
use std::path::Path;

use rayon::prelude::*;
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::index::{self, Entries};
use crate::search::{self, SearchPage, SearchQuery};
use crate::sql::{Arg, Backend, Conn, Dialect, Mode, Row, Sql, for_each_chunk};
use crate::time::Timestamp;
use crate::{
    ExportJob, ExportPage, ExportQuery, HistoryEntry, HistoryPage, HistoryQuery, HistoryScope,
    JobStatus, PatientScope, Store, StoredResource, Tombstone, Write, WriteKind, WriteOutcome,
};

/// The schema, with `{int}`, `{text}` and `{bool}` standing for each engine's column types.
/// The index tables are keyed by `seq` first: in SQLite by a primary key `{key:…}` in whose
/// order the table is stored (`{without_rowid}`); in PostgreSQL by a narrow index on `seq`
/// ([`POSTGRES_SEQ_INDEXES`]), cheaper to maintain than a wide primary key.
///
/// - `resources` holds every version of every resource: `seq` is a store-wide sequence number
///   (the storage order and the export cursor), `[last_updated, valid_to)` the time during
///   which the version was current (`valid_to` is null for current versions), `deleted` marks
///   tombstones (whose `json` is null).
/// - `compartments` lists, per version, the patients whose compartments it is in (tombstones
///   inherit them), so that exports can select patients as of any instant.
/// - `idx_*` hold the search index entries of current, live versions only, keyed by `seq`
///   first (to drop them when a version is superseded) and indexed by value for searches.
/// - `store_clock` is the single row every write transaction locks: the last instant and the
///   last `seq` handed out.
/// - `export_jobs` holds Bulk Data export jobs (JSON columns as text).
const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS store_meta (
    key {text} PRIMARY KEY,
    value {text} NOT NULL
);
CREATE TABLE IF NOT EXISTS store_clock (
    id {int} PRIMARY KEY,
    last_ts {int} NOT NULL,
    last_seq {int} NOT NULL
);
INSERT INTO store_clock (id, last_ts, last_seq) VALUES (1, 0, 0) ON CONFLICT DO NOTHING;
CREATE TABLE IF NOT EXISTS resources (
    seq {int} PRIMARY KEY,
    type {text} NOT NULL,
    id {text} NOT NULL,
    version {int} NOT NULL,
    last_updated {int} NOT NULL,
    valid_to {int},
    deleted {bool} NOT NULL,
    json {text}
);
CREATE UNIQUE INDEX IF NOT EXISTS resources_version ON resources (type, id, version);
CREATE UNIQUE INDEX IF NOT EXISTS resources_current ON resources (type, id) WHERE valid_to IS NULL;
CREATE INDEX IF NOT EXISTS resources_type_seq ON resources (type, seq);
CREATE INDEX IF NOT EXISTS resources_live ON resources (type, seq) WHERE valid_to IS NULL AND NOT deleted;
CREATE INDEX IF NOT EXISTS resources_time ON resources (last_updated);
CREATE TABLE IF NOT EXISTS compartments (
    seq {int} NOT NULL,
    patient_id {text} NOT NULL,
    PRIMARY KEY (seq, patient_id)
);
CREATE INDEX IF NOT EXISTS compartments_patient ON compartments (patient_id);
CREATE TABLE IF NOT EXISTS idx_token (
    seq {int} NOT NULL,
    type {text} NOT NULL,
    param {text} NOT NULL,
    system {text} NOT NULL,
    code {text} NOT NULL{key:seq, param, system, code}
){without_rowid};
CREATE INDEX IF NOT EXISTS idx_token_value ON idx_token (type, param, code, system);
CREATE TABLE IF NOT EXISTS idx_string (
    seq {int} NOT NULL,
    type {text} NOT NULL,
    param {text} NOT NULL,
    norm {text} NOT NULL,
    exact {text} NOT NULL{key:seq, param, norm, exact}
){without_rowid};
CREATE INDEX IF NOT EXISTS idx_string_value ON idx_string (type, param, norm);
CREATE TABLE IF NOT EXISTS idx_date (
    seq {int} NOT NULL,
    type {text} NOT NULL,
    param {text} NOT NULL,
    low {int} NOT NULL,
    high {int} NOT NULL{key:seq, param, low, high}
){without_rowid};
CREATE INDEX IF NOT EXISTS idx_date_value ON idx_date (type, param, low);
CREATE TABLE IF NOT EXISTS idx_ref (
    seq {int} NOT NULL,
    type {text} NOT NULL,
    param {text} NOT NULL,
    target_type {text} NOT NULL,
    target_id {text} NOT NULL{key:seq, param, target_type, target_id}
){without_rowid};
CREATE INDEX IF NOT EXISTS idx_ref_value ON idx_ref (type, param, target_id);
CREATE TABLE IF NOT EXISTS export_jobs (
    id {text} PRIMARY KEY,
    request {text} NOT NULL,
    status {text} NOT NULL,
    transaction_time {int},
    progress {text} NOT NULL,
    output {text},
    error {text},
    owner {text},
    created {int} NOT NULL,
    updated {int} NOT NULL
)
"#;

/// The `seq` indexes of the index tables in PostgreSQL.
#[cfg(feature = "postgres")]
const POSTGRES_SEQ_INDEXES: &str = "
CREATE INDEX IF NOT EXISTS idx_token_seq ON idx_token (seq);
CREATE INDEX IF NOT EXISTS idx_string_seq ON idx_string (seq);
CREATE INDEX IF NOT EXISTS idx_date_seq ON idx_date (seq);
CREATE INDEX IF NOT EXISTS idx_ref_seq ON idx_ref (seq)
";

/// Transactions with at least this many writes prepare them in parallel.
const PARALLEL_PREPARE: usize = 64;

/// The version of [`SCHEMA`], recorded in `store_meta`.
const SCHEMA_VERSION: &str = "1";

/// The index tables, which hold entries of current, live versions only.
const INDEX_TABLES: &[&str] = &["idx_token", "idx_string", "idx_date", "idx_ref"];

/// A [`Store`] on a SQL database: SQLite ([`SqlStore::open_sqlite`]) or PostgreSQL
/// ([`SqlStore::connect_postgres`], with the `postgres` feature). Both engines share this
/// logic and the schema; only connections and a few SQL spellings differ.
pub struct SqlStore {
    backend: Box<dyn Backend>,
    dialect: Dialect,
}

impl SqlStore {
    /// Opens (creating when missing, with its folder) a SQLite store file in WAL mode.
    pub fn open_sqlite(path: impl AsRef<Path>) -> Result<SqlStore> {
        SqlStore::with_backend(Box::new(crate::sqlite::Sqlite::open(path.as_ref())?))
    }

    /// Connects to a PostgreSQL database (`postgres://user:password@host:port/database`) and
    /// creates the store's tables when missing.
    #[cfg(feature = "postgres")]
    pub fn connect_postgres(url: &str) -> Result<SqlStore> {
        SqlStore::with_backend(Box::new(crate::postgres::Postgres::connect(url)?))
    }

    fn with_backend(backend: Box<dyn Backend>) -> Result<SqlStore> {
        let dialect = backend.dialect();
        let store = SqlStore { backend, dialect };
        store.run(Mode::Write, |conn| create_schema(conn, dialect))?;
        Ok(store)
    }

    /// Runs `work` in one transaction.
    fn run<T>(&self, mode: Mode, work: impl FnOnce(&mut dyn Conn) -> Result<T>) -> Result<T> {
        let mut work = Some(work);
        let mut out = None;
        self.backend.run(mode, &mut |conn| {
            let work = work
                .take()
                .ok_or_else(|| Error::Database("a transaction ran twice".to_owned()))?;
            out = Some(work(conn)?);
            Ok(())
        })?;
        out.ok_or_else(|| Error::Database("a transaction produced no result".to_owned()))
    }
}

fn create_schema(conn: &mut dyn Conn, dialect: Dialect) -> Result<()> {
    let schema = match dialect {
        Dialect::Sqlite => render(
            SCHEMA,
            ["INTEGER", "TEXT", "INTEGER", " WITHOUT ROWID"],
            true,
        ),
        #[cfg(feature = "postgres")]
        Dialect::Postgres => {
            let tables = render(
                SCHEMA,
                ["BIGINT", "TEXT COLLATE \"C\"", "BOOLEAN", ""],
                false,
            );
            format!("{tables};{POSTGRES_SEQ_INDEXES}")
        }
    };
    for statement in schema.split(';').filter(|s| !s.trim().is_empty()) {
        conn.execute(statement, &[])?;
    }
    let rows = conn.query("SELECT value FROM store_meta WHERE key = 'schema'", &[])?;
    match rows.into_iter().next() {
        None => {
            conn.execute(
                "INSERT INTO store_meta (key, value) VALUES ('schema', $1)",
                &[Arg::Text(SCHEMA_VERSION.to_owned())],
            )?;
        }
        Some(mut row) => {
            let found = row.take_text(0)?;
            if found != SCHEMA_VERSION {
                return Err(Error::Database(format!(
                    "the database has store schema version {found}; this build knows version {SCHEMA_VERSION}"
                )));
            }
        }
    }
    Ok(())
}

/// [`SCHEMA`] with its placeholders `{int}`, `{text}`, `{bool}` and `{without_rowid}` replaced
/// by `types`, and each `{key:columns}` by a primary key on those columns when `keys` is set.
fn render(schema: &str, types: [&str; 4], keys: bool) -> String {
    let mut out = schema
        .replace("{int}", types[0])
        .replace("{text}", types[1])
        .replace("{bool}", types[2])
        .replace("{without_rowid}", types[3]);
    while let Some(start) = out.find("{key:") {
        let Some(length) = out[start..].find('}') else {
            break;
        };
        let end = start + length;
        let columns = out[start + 5..end].to_owned();
        let key = if keys {
            format!(",\n    PRIMARY KEY ({columns})")
        } else {
            String::new()
        };
        out.replace_range(start..=end, &key);
    }
    out
}

/// A write checked and prepared outside the database transaction.
struct Prepared {
    resource_type: &'static str,
    id: String,
    op: Op,
}

enum Op {
    Put {
        resource: Value,
        create_only: bool,
        /// An upsert: nothing is written when the current version holds the same content.
        skip_same: bool,
        if_match: Option<u64>,
        entries: Entries,
        patients: Vec<String>,
    },
    Delete {
        if_match: Option<u64>,
    },
}

fn resource_type_of(resource: &Value) -> Result<&'static str> {
    let name = resource
        .get("resourceType")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::Invalid("the resource has no resourceType".to_owned()))?;
    known_type(name)
}

fn known_type(name: &str) -> Result<&'static str> {
    fhir::types::intern(name)
        .filter(|t| fhir::types::is_concrete_resource_type(t))
        .ok_or_else(|| Error::Invalid(format!("{name} is not an R4 resource type")))
}

fn check_id(id: &str) -> Result<()> {
    if fhir::reference::is_valid_id(id) {
        Ok(())
    } else {
        Err(Error::Invalid("the id is not a valid FHIR id".to_owned()))
    }
}

/// Inserts `key` right after `anchor` (at the end when `anchor` is absent), keeping the order
/// of the other members.
fn insert_after(object: &mut Map<String, Value>, anchor: &str, key: &str, value: Value) {
    if !object.contains_key(anchor) {
        object.insert(key.to_owned(), value);
        return;
    }
    let old = std::mem::take(object);
    let mut value = Some(value);
    for (k, v) in old {
        let is_anchor = k == anchor;
        object.insert(k, v);
        if is_anchor && let Some(value) = value.take() {
            object.insert(key.to_owned(), value);
        }
    }
}

fn prepare(write: Write) -> Result<Prepared> {
    let (mut resource, create_only, skip_same, if_match) = match write {
        Write::Delete {
            resource_type,
            id,
            if_match,
        } => {
            check_id(&id)?;
            return Ok(Prepared {
                resource_type: known_type(&resource_type)?,
                id,
                op: Op::Delete { if_match },
            });
        }
        Write::Create(resource) => (resource, true, false, None),
        Write::Update { resource, if_match } => (resource, false, false, if_match),
        Write::Upsert(resource) => (resource, false, true, None),
    };
    let resource_type = resource_type_of(&resource)?;
    let object = resource
        .as_object_mut()
        .ok_or_else(|| Error::Invalid("the resource is not a JSON object".to_owned()))?;
    if object.get("meta").is_some_and(|meta| !meta.is_object()) {
        return Err(Error::Invalid("meta is not an object".to_owned()));
    }
    let id = match object.get("id") {
        Some(Value::String(id)) => id.clone(),
        Some(_) => return Err(Error::Invalid("the id is not a string".to_owned())),
        None if create_only => {
            let id = crate::new_id();
            insert_after(object, "resourceType", "id", Value::String(id.clone()));
            id
        }
        None => {
            return Err(Error::Invalid(
                "an update needs the resource's id".to_owned(),
            ));
        }
    };
    check_id(&id)?;
    let entries = index::extract(resource_type, &resource)?;
    let patients = fhir::compartment::compartment_patients(&resource);
    Ok(Prepared {
        resource_type,
        id,
        op: Op::Put {
            resource,
            create_only,
            skip_same,
            if_match,
            entries,
            patients,
        },
    })
}

/// Sets `meta.versionId` and `meta.lastUpdated` (adding `meta` after `id` when missing) and
/// serializes the resource.
fn stamp(mut resource: Value, version: u64, at: Timestamp) -> Result<String> {
    let object = resource
        .as_object_mut()
        .ok_or_else(|| Error::Invalid("the resource is not a JSON object".to_owned()))?;
    if !object.contains_key("meta") {
        insert_after(object, "id", "meta", Value::Object(Map::new()));
    }
    if let Some(Value::Object(meta)) = object.get_mut("meta") {
        meta.insert("versionId".to_owned(), Value::String(version.to_string()));
        meta.insert("lastUpdated".to_owned(), Value::String(at.to_string()));
    }
    serde_json::to_string(&resource)
        .map_err(|_| Error::Invalid("the resource cannot be serialized".to_owned()))
}

/// Where the current version of a resource is, during a write transaction.
#[derive(Debug, Clone, Copy)]
enum Origin {
    /// A row already in the database, by `seq`.
    Stored(i64),
    /// A row of this transaction, by index in its new rows.
    New(usize),
}

#[derive(Debug, Clone, Copy)]
struct Current {
    version: u64,
    deleted: bool,
    last_updated: i64,
    origin: Origin,
}

/// A version row to insert.
struct NewRow {
    seq: i64,
    resource_type: &'static str,
    id: String,
    version: u64,
    valid_to: Option<i64>,
    json: Option<String>,
    entries: Entries,
    patients: Vec<String>,
}

fn conflict(resource_type: &str, id: &str, reason: String) -> Error {
    Error::Conflict {
        resource_type: resource_type.to_owned(),
        id: id.to_owned(),
        reason,
    }
}

/// Locks the clock row; the last instant and `seq` handed out.
fn lock_clock(conn: &mut dyn Conn, dialect: Dialect) -> Result<(i64, i64)> {
    let sql = format!(
        "SELECT last_ts, last_seq FROM store_clock WHERE id = 1{}",
        dialect.for_update()
    );
    let row = conn
        .query(&sql, &[])?
        .into_iter()
        .next()
        .ok_or_else(|| Error::Database("the store clock row is missing".to_owned()))?;
    Ok((row.int(0)?, row.int(1)?))
}

/// The current versions of the resources `prepared` names, by type and id, and the stored
/// JSON of those that upserts name (to tell whether their content changed).
fn load_current(conn: &mut dyn Conn, prepared: &[Prepared]) -> Result<(CurrentMap, StoredJson)> {
    let mut by_type: HashMap<&'static str, Vec<&str>> = HashMap::new();
    for p in prepared {
        by_type.entry(p.resource_type).or_default().push(&p.id);
    }
    let with_json = prepared.iter().any(|p| {
        matches!(
            p.op,
            Op::Put {
                skip_same: true,
                ..
            }
        )
    });
    let columns = if with_json {
        "id, seq, version, deleted, last_updated, json"
    } else {
        "id, seq, version, deleted, last_updated"
    };
    let mut current = HashMap::new();
    let mut stored_json = HashMap::new();
    for (resource_type, ids) in by_type {
        for chunk in ids.chunks(1000) {
            let mut sql = Sql::new(&format!("SELECT {columns} FROM resources WHERE type = "));
            sql.push_arg(Arg::Text(resource_type.to_owned()))
                .push(" AND valid_to IS NULL AND id IN (");
            for (n, id) in chunk.iter().enumerate() {
                if n > 0 {
                    sql.push(", ");
                }
                sql.push_arg(Arg::Text((*id).to_owned()));
            }
            sql.push(")");
            for mut row in conn.query(&sql.text, &sql.args)? {
                let id = row.take_text(0)?;
                let state = Current {
                    origin: Origin::Stored(row.int(1)?),
                    version: row.uint(2)?,
                    deleted: row.flag(3)?,
                    last_updated: row.int(4)?,
                };
                if with_json && let Some(json) = row.take_opt_text(5)? {
                    stored_json.insert((resource_type, id.clone()), json);
                }
                current.insert((resource_type, id), state);
            }
        }
    }
    Ok((current, stored_json))
}

/// Current versions by type and id, during a write transaction.
type CurrentMap = HashMap<(&'static str, String), Current>;

/// The stored JSON of current versions, by type and id.
type StoredJson = HashMap<(&'static str, String), String>;

/// The compartment patients of stored versions, by `seq`.
fn load_patients(conn: &mut dyn Conn, seqs: &[i64]) -> Result<HashMap<i64, Vec<String>>> {
    let mut patients: HashMap<i64, Vec<String>> = HashMap::new();
    for chunk in seqs.chunks(1000) {
        let mut sql = Sql::new("SELECT seq, patient_id FROM compartments WHERE seq IN (");
        for (n, seq) in chunk.iter().enumerate() {
            if n > 0 {
                sql.push(", ");
            }
            sql.push_arg(Arg::Int(*seq));
        }
        sql.push(")");
        for mut row in conn.query(&sql.text, &sql.args)? {
            let patient = row.take_text(1)?;
            patients.entry(row.int(0)?).or_default().push(patient);
        }
    }
    Ok(patients)
}

/// Applies prepared writes inside a write transaction.
fn apply(
    conn: &mut dyn Conn,
    dialect: Dialect,
    prepared: Vec<Prepared>,
) -> Result<Vec<WriteOutcome>> {
    let (last_ts, last_seq) = lock_clock(conn, dialect)?;
    let now = Timestamp::now().millis().max(last_ts + 1);
    let at = Timestamp::from_millis(now);
    let (mut current, stored_json) = load_current(conn, &prepared)?;
    let deleted_seqs: Vec<i64> = prepared
        .iter()
        .filter(|p| matches!(p.op, Op::Delete { .. }))
        .filter_map(|p| match current.get(&(p.resource_type, p.id.clone())) {
            Some(Current {
                deleted: false,
                origin: Origin::Stored(seq),
                ..
            }) => Some(*seq),
            _ => None,
        })
        .collect();
    let mut stored_patients = load_patients(conn, &deleted_seqs)?;

    let mut rows: Vec<NewRow> = Vec::with_capacity(prepared.len());
    let mut superseded: Vec<i64> = Vec::new();
    let mut outcomes = Vec::with_capacity(prepared.len());
    for Prepared {
        resource_type,
        id,
        op,
    } in prepared
    {
        let key = (resource_type, id.clone());
        let prior = current.get(&key).copied();
        let live = prior.filter(|p| !p.deleted);
        let if_match = match &op {
            Op::Put { if_match, .. } | Op::Delete { if_match } => *if_match,
        };
        if let Some(expected) = if_match
            && live.map(|p| p.version) != Some(expected)
        {
            let reason = match live {
                Some(p) => format!("version {} is current, not {expected}", p.version),
                None => format!("no live version {expected}"),
            };
            return Err(conflict(resource_type, &id, reason));
        }
        if let Op::Put {
            create_only: true, ..
        } = op
            && prior.is_some()
        {
            return Err(conflict(
                resource_type,
                &id,
                "the id is already in use".to_owned(),
            ));
        }
        if let (
            Op::Put {
                resource,
                skip_same: true,
                ..
            },
            Some(live),
        ) = (&op, live)
        {
            let current_json = match live.origin {
                Origin::Stored(_) => stored_json.get(&key).map(String::as_str),
                Origin::New(index) => rows[index].json.as_deref(),
            };
            let same = stamp(
                resource.clone(),
                live.version,
                Timestamp::from_millis(live.last_updated),
            )?;
            if current_json == Some(same.as_str()) {
                outcomes.push(WriteOutcome {
                    resource_type: resource_type.to_owned(),
                    id,
                    kind: WriteKind::Unchanged,
                    version: live.version,
                    last_updated: Timestamp::from_millis(live.last_updated),
                    json: None,
                });
                continue;
            }
        }
        if matches!(op, Op::Delete { .. }) && live.is_none() {
            outcomes.push(WriteOutcome {
                resource_type: resource_type.to_owned(),
                id,
                kind: WriteKind::Unchanged,
                version: prior.map_or(0, |p| p.version),
                last_updated: Timestamp::from_millis(prior.map_or(now, |p| p.last_updated)),
                json: None,
            });
            continue;
        }
        let patients_before = match prior.map(|p| p.origin) {
            Some(Origin::Stored(seq)) => {
                superseded.push(seq);
                stored_patients.remove(&seq).unwrap_or_default()
            }
            Some(Origin::New(index)) => {
                rows[index].valid_to = Some(now);
                rows[index].patients.clone()
            }
            None => Vec::new(),
        };
        let version = prior.map_or(1, |p| p.version + 1);
        let (kind, json, entries, patients) = match op {
            Op::Delete { .. } => (
                WriteKind::Deleted,
                None,
                Entries::default(),
                patients_before,
            ),
            Op::Put {
                resource,
                entries,
                patients,
                ..
            } => {
                let kind = if live.is_some() {
                    WriteKind::Updated
                } else {
                    WriteKind::Created
                };
                (kind, Some(stamp(resource, version, at)?), entries, patients)
            }
        };
        outcomes.push(WriteOutcome {
            resource_type: resource_type.to_owned(),
            id: id.clone(),
            kind,
            version,
            last_updated: at,
            json: json.clone(),
        });
        current.insert(
            key,
            Current {
                version,
                deleted: json.is_none(),
                last_updated: now,
                origin: Origin::New(rows.len()),
            },
        );
        rows.push(NewRow {
            seq: last_seq + 1 + rows.len() as i64,
            resource_type,
            id,
            version,
            valid_to: None,
            json,
            entries,
            patients,
        });
    }
    if rows.is_empty() {
        return Ok(outcomes);
    }
    write_rows(conn, now, &superseded, &rows)?;
    conn.execute(
        "UPDATE store_clock SET last_ts = $1, last_seq = $2 WHERE id = 1",
        &[Arg::Int(now), Arg::Int(last_seq + rows.len() as i64)],
    )?;
    Ok(outcomes)
}

/// Closes the superseded versions, drops their index entries, and inserts the new versions
/// with their compartments and (for current, live ones) index entries.
fn write_rows(conn: &mut dyn Conn, now: i64, superseded: &[i64], rows: &[NewRow]) -> Result<()> {
    for_each_chunk(
        conn,
        "UPDATE resources SET valid_to = $1 WHERE seq IN (",
        &[Arg::Int(now)],
        superseded,
    )?;
    for table in INDEX_TABLES {
        let statement = format!("DELETE FROM {table} WHERE seq IN (");
        for_each_chunk(conn, &statement, &[], superseded)?;
    }
    let versions = rows
        .iter()
        .map(|row| {
            vec![
                Arg::Int(row.seq),
                Arg::Text(row.resource_type.to_owned()),
                Arg::Text(row.id.clone()),
                Arg::Int(row.version as i64),
                Arg::Int(now),
                Arg::OptInt(row.valid_to),
                Arg::Bool(row.json.is_none()),
                Arg::OptText(row.json.clone()),
            ]
        })
        .collect();
    conn.insert(
        "resources",
        &[
            "seq",
            "type",
            "id",
            "version",
            "last_updated",
            "valid_to",
            "deleted",
            "json",
        ],
        versions,
    )?;
    let compartments = rows
        .iter()
        .flat_map(|row| {
            row.patients
                .iter()
                .map(|patient| vec![Arg::Int(row.seq), Arg::Text(patient.clone())])
        })
        .collect();
    conn.insert("compartments", &["seq", "patient_id"], compartments)?;

    let indexed = || {
        rows.iter()
            .filter(|row| row.valid_to.is_none() && row.json.is_some())
    };
    let head = |row: &NewRow, param: &str| {
        vec![
            Arg::Int(row.seq),
            Arg::Text(row.resource_type.to_owned()),
            Arg::Text(param.to_owned()),
        ]
    };
    let tokens = indexed()
        .flat_map(|row| {
            row.entries.tokens.iter().map(move |t| {
                let mut args = head(row, t.param);
                args.extend([Arg::Text(t.system.clone()), Arg::Text(t.code.clone())]);
                args
            })
        })
        .collect();
    conn.insert(
        "idx_token",
        &["seq", "type", "param", "system", "code"],
        tokens,
    )?;
    let strings = indexed()
        .flat_map(|row| {
            row.entries.strings.iter().map(move |s| {
                let mut args = head(row, s.param);
                args.extend([Arg::Text(s.norm.clone()), Arg::Text(s.exact.clone())]);
                args
            })
        })
        .collect();
    conn.insert(
        "idx_string",
        &["seq", "type", "param", "norm", "exact"],
        strings,
    )?;
    let dates = indexed()
        .flat_map(|row| {
            row.entries.dates.iter().map(move |d| {
                let mut args = head(row, d.param);
                args.extend([Arg::Int(d.low), Arg::Int(d.high)]);
                args
            })
        })
        .collect();
    conn.insert("idx_date", &["seq", "type", "param", "low", "high"], dates)?;
    let refs = indexed()
        .flat_map(|row| {
            row.entries.refs.iter().map(move |r| {
                let mut args = head(row, r.param);
                args.extend([
                    Arg::Text(r.target_type.to_owned()),
                    Arg::Text(r.target_id.clone()),
                ]);
                args
            })
        })
        .collect();
    conn.insert(
        "idx_ref",
        &["seq", "type", "param", "target_type", "target_id"],
        refs,
    )
}

/// A `StoredResource` from columns `type, id, version, last_updated, json` at `first`.
fn stored(mut row: Row, first: usize) -> Result<StoredResource> {
    Ok(StoredResource {
        resource_type: row.take_text(first)?,
        id: row.take_text(first + 1)?,
        version: row.uint(first + 2)?,
        last_updated: Timestamp::from_millis(row.int(first + 3)?),
        json: row.take_text(first + 4)?,
    })
}

/// Reads one version row (`version, last_updated, deleted, json`), answering
/// [`Error::Gone`] for a tombstone.
fn live_version(resource_type: &str, id: &str, mut row: Row) -> Result<StoredResource> {
    let version = row.uint(0)?;
    let last_updated = Timestamp::from_millis(row.int(1)?);
    if row.flag(2)? {
        return Err(Error::Gone {
            resource_type: resource_type.to_owned(),
            id: id.to_owned(),
            version,
            deleted_at: last_updated,
        });
    }
    Ok(StoredResource {
        resource_type: resource_type.to_owned(),
        id: id.to_owned(),
        version,
        last_updated,
        json: row.take_text(3)?,
    })
}

fn not_found(resource_type: &str, id: &str) -> Error {
    Error::NotFound {
        resource_type: resource_type.to_owned(),
        id: id.to_owned(),
    }
}

fn exists(conn: &mut dyn Conn, resource_type: &str, id: &str) -> Result<bool> {
    let rows = conn.query(
        "SELECT 1 FROM resources WHERE type = $1 AND id = $2 LIMIT 1",
        &[
            Arg::Text(resource_type.to_owned()),
            Arg::Text(id.to_owned()),
        ],
    )?;
    Ok(!rows.is_empty())
}

/// `LIMIT` and `OFFSET` arguments.
fn page_args(sql: &mut Sql, limit: usize, offset: usize) {
    let limit = sql.arg(Arg::Int(i64::try_from(limit).unwrap_or(i64::MAX)));
    let offset = sql.arg(Arg::Int(i64::try_from(offset).unwrap_or(i64::MAX)));
    sql.push(&format!(" LIMIT {limit} OFFSET {offset}"));
}

/// The `FROM … WHERE …` of an export page over versions live at `query.at`.
fn export_where(dialect: Dialect, query: &ExportQuery, after: u64, deleted: bool) -> Sql {
    let mut sql = Sql::new(" FROM resources r WHERE r.type = ");
    sql.push_arg(Arg::Text(query.resource_type.clone()));
    let after = sql.arg(Arg::Int(i64::try_from(after).unwrap_or(i64::MAX)));
    sql.push(&format!(" AND r.seq > {after}"));
    let at = sql.arg(Arg::Int(query.at.millis()));
    sql.push(&format!(
        " AND r.last_updated <= {at} AND (r.valid_to IS NULL OR r.valid_to > {at}) AND {}r.deleted",
        if deleted { "" } else { "NOT " }
    ));
    if let Some(since) = query.since {
        sql.push(" AND r.last_updated > ")
            .push_arg(Arg::Int(since.millis()));
    }
    // `c.seq > after` repeats the cursor for the compartments side, so that a merge join
    // starts at the cursor instead of the first row.
    match &query.patients {
        PatientScope::All => {}
        PatientScope::AnyPatient => {
            sql.push(&format!(
                " AND EXISTS (SELECT 1 FROM compartments c WHERE c.seq = r.seq AND c.seq > {after})"
            ));
        }
        PatientScope::Patients(ids) => {
            let list = sql.arg(Arg::TextList(ids.clone()));
            sql.push(&format!(
                " AND EXISTS (SELECT 1 FROM compartments c WHERE c.seq = r.seq AND c.seq > {after} AND {})",
                dialect.in_list("c.patient_id", &list)
            ));
        }
    }
    sql
}

/// The next cursor of a page of `len` items whose last `seq` is `last`.
fn next_cursor(len: usize, limit: usize, last: Option<i64>) -> Option<u64> {
    if len < limit {
        return None;
    }
    last.and_then(|seq| u64::try_from(seq).ok())
}

const JOB_COLUMNS: &str =
    "id, request, status, transaction_time, progress, output, error, owner, created, updated";

fn parse_json(job: &str, column: &str, text: &str) -> Result<Value> {
    serde_json::from_str(text)
        .map_err(|_| Error::Database(format!("export job {job}: the stored {column} is not JSON")))
}

fn job_from_row(mut row: Row) -> Result<ExportJob> {
    let id = row.take_text(0)?;
    let request = parse_json(&id, "request", &row.take_text(1)?)?;
    let status_text = row.take_text(2)?;
    let status = JobStatus::parse(&status_text)
        .ok_or_else(|| Error::Database(format!("export job {id}: unknown status {status_text}")))?;
    let progress = parse_json(&id, "progress", &row.take_text(4)?)?;
    let output = match row.take_opt_text(5)? {
        Some(text) => Some(parse_json(&id, "output", &text)?),
        None => None,
    };
    Ok(ExportJob {
        request,
        status,
        transaction_time: row.opt_int(3)?.map(Timestamp::from_millis),
        progress,
        output,
        error: row.take_opt_text(6)?,
        owner: row.take_opt_text(7)?,
        created: Timestamp::from_millis(row.int(8)?),
        updated: Timestamp::from_millis(row.int(9)?),
        id,
    })
}

impl Store for SqlStore {
    fn transaction(&self, writes: Vec<Write>) -> Result<Vec<WriteOutcome>> {
        // Index entries and compartments come from FHIRPath evaluation: for the large
        // transactions of loads, in parallel, before the database is locked.
        let prepared = if writes.len() >= PARALLEL_PREPARE {
            writes
                .into_par_iter()
                .map(prepare)
                .collect::<Result<Vec<_>>>()?
        } else {
            writes
                .into_iter()
                .map(prepare)
                .collect::<Result<Vec<_>>>()?
        };
        if prepared.is_empty() {
            return Ok(Vec::new());
        }
        let dialect = self.dialect;
        self.run(Mode::Write, move |conn| apply(conn, dialect, prepared))
    }

    fn read(&self, resource_type: &str, id: &str) -> Result<StoredResource> {
        self.run(Mode::Read, |conn| {
            let rows = conn.query(
                "SELECT version, last_updated, deleted, json FROM resources \
                 WHERE type = $1 AND id = $2 AND valid_to IS NULL",
                &[
                    Arg::Text(resource_type.to_owned()),
                    Arg::Text(id.to_owned()),
                ],
            )?;
            match rows.into_iter().next() {
                Some(row) => live_version(resource_type, id, row),
                None => Err(not_found(resource_type, id)),
            }
        })
    }

    fn vread(&self, resource_type: &str, id: &str, version: u64) -> Result<StoredResource> {
        self.run(Mode::Read, |conn| {
            let rows = conn.query(
                "SELECT version, last_updated, deleted, json FROM resources \
                 WHERE type = $1 AND id = $2 AND version = $3",
                &[
                    Arg::Text(resource_type.to_owned()),
                    Arg::Text(id.to_owned()),
                    Arg::Int(i64::try_from(version).unwrap_or(i64::MAX)),
                ],
            )?;
            match rows.into_iter().next() {
                Some(row) => live_version(resource_type, id, row),
                None if exists(conn, resource_type, id)? => Err(Error::VersionNotFound {
                    resource_type: resource_type.to_owned(),
                    id: id.to_owned(),
                    version,
                }),
                None => Err(not_found(resource_type, id)),
            }
        })
    }

    fn history(&self, query: &HistoryQuery) -> Result<HistoryPage> {
        let mut sql = Sql::new(" FROM resources r WHERE 1 = 1");
        match &query.scope {
            HistoryScope::System => {}
            HistoryScope::Type(resource_type) => {
                sql.push(" AND r.type = ")
                    .push_arg(Arg::Text(resource_type.clone()));
            }
            HistoryScope::Instance(resource_type, id) => {
                sql.push(" AND r.type = ")
                    .push_arg(Arg::Text(resource_type.clone()))
                    .push(" AND r.id = ")
                    .push_arg(Arg::Text(id.clone()));
            }
        }
        if let Some(since) = query.since {
            sql.push(" AND r.last_updated >= ")
                .push_arg(Arg::Int(since.millis()));
        }
        self.run(Mode::Read, |conn| {
            let total = conn.query(&format!("SELECT COUNT(*){}", sql.text), &sql.args)?;
            let total = total.first().map_or(Ok(0), |row| row.uint(0))?;
            if total == 0
                && let HistoryScope::Instance(resource_type, id) = &query.scope
                && !exists(conn, resource_type, id)?
            {
                return Err(not_found(resource_type, id));
            }
            let mut page = Sql {
                text: format!(
                    "SELECT r.type, r.id, r.version, r.last_updated, r.json{} \
                     ORDER BY r.seq DESC",
                    sql.text
                ),
                args: sql.args.clone(),
            };
            page_args(&mut page, query.count, query.offset);
            let entries = conn
                .query(&page.text, &page.args)?
                .into_iter()
                .map(|mut row| {
                    Ok(HistoryEntry {
                        resource_type: row.take_text(0)?,
                        id: row.take_text(1)?,
                        version: row.uint(2)?,
                        last_updated: Timestamp::from_millis(row.int(3)?),
                        json: row.take_opt_text(4)?,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            let more =
                (query.offset + entries.len()) < usize::try_from(total).unwrap_or(usize::MAX);
            Ok(HistoryPage {
                entries,
                total,
                more,
            })
        })
    }

    fn search(&self, query: &SearchQuery) -> Result<SearchPage> {
        let mut filter = Sql::new(" FROM resources r WHERE r.type = ");
        filter
            .push_arg(Arg::Text(query.resource_type.clone()))
            .push(" AND r.valid_to IS NULL AND NOT r.deleted");
        search::push_criteria(&mut filter, self.dialect, query)?;
        self.run(Mode::Read, |conn| {
            let total = if query.total {
                let rows = conn.query(&format!("SELECT COUNT(*){}", filter.text), &filter.args)?;
                Some(rows.first().map_or(Ok(0), |row| row.uint(0))?)
            } else {
                None
            };
            if query.count == 0 {
                return Ok(SearchPage {
                    resources: Vec::new(),
                    total,
                    more: false,
                });
            }
            let mut page = Sql {
                text: format!(
                    "SELECT r.type, r.id, r.version, r.last_updated, r.json{}{}",
                    filter.text,
                    search::order_by(query.sort)
                ),
                args: filter.args.clone(),
            };
            page_args(&mut page, query.count + 1, query.offset);
            let mut resources = conn
                .query(&page.text, &page.args)?
                .into_iter()
                .map(|row| stored(row, 0))
                .collect::<Result<Vec<_>>>()?;
            let more = resources.len() > query.count;
            resources.truncate(query.count);
            Ok(SearchPage {
                resources,
                total,
                more,
            })
        })
    }

    fn transaction_time(&self) -> Result<Timestamp> {
        let dialect = self.dialect;
        self.run(Mode::Write, |conn| {
            let (last_ts, _) = lock_clock(conn, dialect)?;
            let now = Timestamp::now().millis().max(last_ts + 1);
            conn.execute(
                "UPDATE store_clock SET last_ts = $1 WHERE id = 1",
                &[Arg::Int(now)],
            )?;
            Ok(Timestamp::from_millis(now))
        })
    }

    fn export_page(
        &self,
        query: &ExportQuery,
        after: u64,
        limit: usize,
    ) -> Result<ExportPage<StoredResource>> {
        let filter = export_where(self.dialect, query, after, false);
        let mut sql = Sql {
            text: format!(
                "SELECT r.seq, r.type, r.id, r.version, r.last_updated, r.json{} ORDER BY r.seq",
                filter.text
            ),
            args: filter.args,
        };
        page_args(&mut sql, limit, 0);
        self.run(Mode::Read, |conn| {
            let rows = conn.query(&sql.text, &sql.args)?;
            let last = rows.last().map(|row| row.int(0)).transpose()?;
            let items = rows
                .into_iter()
                .map(|row| stored(row, 1))
                .collect::<Result<Vec<_>>>()?;
            Ok(ExportPage {
                next: next_cursor(items.len(), limit, last),
                items,
            })
        })
    }

    fn deleted_page(
        &self,
        query: &ExportQuery,
        after: u64,
        limit: usize,
    ) -> Result<ExportPage<Tombstone>> {
        let filter = export_where(self.dialect, query, after, true);
        let mut sql = Sql {
            text: format!(
                "SELECT r.seq, r.type, r.id, r.version, r.last_updated{} ORDER BY r.seq",
                filter.text
            ),
            args: filter.args,
        };
        page_args(&mut sql, limit, 0);
        self.run(Mode::Read, |conn| {
            let rows = conn.query(&sql.text, &sql.args)?;
            let last = rows.last().map(|row| row.int(0)).transpose()?;
            let items = rows
                .into_iter()
                .map(|mut row| {
                    Ok(Tombstone {
                        resource_type: row.take_text(1)?,
                        id: row.take_text(2)?,
                        version: row.uint(3)?,
                        deleted_at: Timestamp::from_millis(row.int(4)?),
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(ExportPage {
                next: next_cursor(items.len(), limit, last),
                items,
            })
        })
    }

    fn counts(&self) -> Result<Vec<(String, u64)>> {
        self.run(Mode::Read, |conn| {
            conn.query(
                "SELECT type, COUNT(*) FROM resources WHERE valid_to IS NULL AND NOT deleted \
                 GROUP BY type ORDER BY type",
                &[],
            )?
            .into_iter()
            .map(|mut row| Ok((row.take_text(0)?, row.uint(1)?)))
            .collect()
        })
    }

    fn create_job(&self, request: Value, owner: Option<&str>) -> Result<ExportJob> {
        let now = Timestamp::now();
        let job = ExportJob {
            id: crate::new_id(),
            request,
            status: JobStatus::Accepted,
            transaction_time: None,
            progress: Value::Null,
            output: None,
            error: None,
            owner: owner.map(str::to_owned),
            created: now,
            updated: now,
        };
        self.run(Mode::Write, |conn| {
            conn.execute(
                &format!(
                    "INSERT INTO export_jobs ({JOB_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
                ),
                &job_args(&job),
            )
        })?;
        Ok(job)
    }

    fn get_job(&self, id: &str) -> Result<Option<ExportJob>> {
        self.run(Mode::Read, |conn| {
            conn.query(
                &format!("SELECT {JOB_COLUMNS} FROM export_jobs WHERE id = $1"),
                &[Arg::Text(id.to_owned())],
            )?
            .into_iter()
            .next()
            .map(job_from_row)
            .transpose()
        })
    }

    fn update_job(&self, job: &ExportJob) -> Result<ExportJob> {
        let mut saved = job.clone();
        saved.updated = Timestamp::now();
        let mut args = job_args(&saved);
        args.remove(8);
        let changed = self.run(Mode::Write, |conn| {
            conn.execute(
                "UPDATE export_jobs SET request = $2, status = $3, transaction_time = $4, \
                 progress = $5, output = $6, error = $7, owner = $8, updated = $9 WHERE id = $1",
                &args,
            )
        })?;
        if changed == 0 {
            return Err(Error::JobNotFound(job.id.clone()));
        }
        Ok(saved)
    }

    fn list_jobs(&self) -> Result<Vec<ExportJob>> {
        self.run(Mode::Read, |conn| {
            conn.query(
                &format!("SELECT {JOB_COLUMNS} FROM export_jobs ORDER BY created DESC, id"),
                &[],
            )?
            .into_iter()
            .map(job_from_row)
            .collect()
        })
    }

    fn delete_job(&self, id: &str) -> Result<bool> {
        let deleted = self.run(Mode::Write, |conn| {
            conn.execute(
                "DELETE FROM export_jobs WHERE id = $1",
                &[Arg::Text(id.to_owned())],
            )
        })?;
        Ok(deleted > 0)
    }
}

/// The arguments `$1`…`$10` of a job row, in [`JOB_COLUMNS`] order.
fn job_args(job: &ExportJob) -> Vec<Arg> {
    vec![
        Arg::Text(job.id.clone()),
        Arg::Text(job.request.to_string()),
        Arg::Text(job.status.as_str().to_owned()),
        Arg::OptInt(job.transaction_time.map(Timestamp::millis)),
        Arg::Text(job.progress.to_string()),
        Arg::OptText(job.output.as_ref().map(Value::to_string)),
        Arg::OptText(job.error.clone()),
        Arg::OptText(job.owner.clone()),
        Arg::Int(job.created.millis()),
        Arg::Int(job.updated.millis()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_placeholders_are_all_replaced() {
        let sqlite = render(
            SCHEMA,
            ["INTEGER", "TEXT", "INTEGER", " WITHOUT ROWID"],
            true,
        );
        assert!(!sqlite.contains('{'));
        assert!(sqlite.contains(
            "code TEXT NOT NULL,\n    PRIMARY KEY (seq, param, system, code)\n) WITHOUT ROWID"
        ));
        let postgres = render(SCHEMA, ["BIGINT", "TEXT", "BOOLEAN", ""], false);
        assert!(!postgres.contains('{') && !postgres.contains("PRIMARY KEY (seq, param"));
    }
}
