//! The SQLite back end: one database file in WAL mode, one writer connection and a pool of
//! reader connections (WAL lets readers run while the writer writes).

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rusqlite::Connection;
use rusqlite::types::{ToSql, ToSqlOutput, Value as SqlValue, ValueRef};

use crate::error::{Error, Result};
use crate::sql::{Arg, Backend, Cell, Conn, Dialect, Mode, Row};

/// How long a connection waits for a lock held by another process before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Idle reader connections kept open.
const MAX_IDLE_READERS: usize = 8;

/// Statements each connection keeps prepared.
const STATEMENT_CACHE: usize = 64;

/// A SQLite database file.
pub(crate) struct Sqlite {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn configure(conn: &Connection) -> Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA temp_store = MEMORY;")?;
    Ok(())
}

impl Sqlite {
    /// Opens or creates the database file (and its folder), in WAL mode.
    pub fn open(path: &Path) -> Result<Sqlite> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|error| {
                Error::Database(format!("cannot create {}: {error}", parent.display()))
            })?;
        }
        let writer = Connection::open(path)?;
        configure(&writer)?;
        // A 64 MB page cache for the writer, and a checkpoint every ~40 MB of WAL rather than
        // every 4 MB: bulk loads write each page to the database file fewer times.
        writer.execute_batch("PRAGMA cache_size = -65536; PRAGMA wal_autocheckpoint = 10000;")?;
        let mode: String = writer.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(Error::Database(format!(
                "{}: cannot switch to WAL mode (the journal mode is {mode})",
                path.display()
            )));
        }
        Ok(Sqlite {
            path: path.to_owned(),
            writer: Mutex::new(writer),
            readers: Mutex::new(Vec::new()),
        })
    }

    fn take_reader(&self) -> Result<Connection> {
        if let Some(conn) = lock(&self.readers).pop() {
            return Ok(conn);
        }
        let conn = Connection::open(&self.path)?;
        configure(&conn)?;
        conn.execute_batch("PRAGMA query_only = ON;")?;
        Ok(conn)
    }
}

/// Commits or rolls back according to `result`.
fn finish(conn: &Connection, result: Result<()>) -> Result<()> {
    match result {
        Ok(()) => Ok(conn.execute_batch("COMMIT")?),
        Err(error) => {
            // The work's error is the one to report; a failed rollback leaves the connection
            // in a transaction, which the next use rolls back.
            let _ = conn.execute_batch("ROLLBACK");
            Err(error)
        }
    }
}

impl Backend for Sqlite {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    fn run(&self, mode: Mode, work: &mut dyn FnMut(&mut dyn Conn) -> Result<()>) -> Result<()> {
        match mode {
            Mode::Write => {
                let conn = lock(&self.writer);
                if !conn.is_autocommit() {
                    conn.execute_batch("ROLLBACK")?;
                }
                conn.execute_batch("BEGIN IMMEDIATE")?;
                let result = work(&mut SqliteConn(&conn));
                finish(&conn, result)
            }
            Mode::Read => {
                let conn = self.take_reader()?;
                if !conn.is_autocommit() {
                    conn.execute_batch("ROLLBACK")?;
                }
                conn.execute_batch("BEGIN")?;
                let result = work(&mut SqliteConn(&conn));
                let result = finish(&conn, result);
                let mut idle = lock(&self.readers);
                if idle.len() < MAX_IDLE_READERS {
                    idle.push(conn);
                }
                result
            }
        }
    }
}

/// A connection inside a transaction.
struct SqliteConn<'a>(&'a Connection);

/// SQLite numbers placeholders `?1`; the store writes them `$1`.
fn sqlite_sql(sql: &str) -> String {
    sql.replace('$', "?")
}

impl Conn for SqliteConn<'_> {
    fn execute(&mut self, sql: &str, args: &[Arg]) -> Result<u64> {
        let mut statement = self.0.prepare_cached(&sqlite_sql(sql))?;
        let changed = statement.execute(rusqlite::params_from_iter(args))?;
        Ok(changed as u64)
    }

    fn insert(&mut self, table: &str, columns: &[&str], rows: Vec<Vec<Arg>>) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let placeholders: Vec<String> = (1..=columns.len()).map(|n| format!("?{n}")).collect();
        let mut statement = self.0.prepare_cached(&format!(
            "INSERT INTO {table} ({}) VALUES ({})",
            columns.join(", "),
            placeholders.join(", ")
        ))?;
        for row in &rows {
            statement.execute(rusqlite::params_from_iter(row))?;
        }
        Ok(())
    }

    fn query(&mut self, sql: &str, args: &[Arg]) -> Result<Vec<Row>> {
        let mut statement = self.0.prepare_cached(&sqlite_sql(sql))?;
        let width = statement.column_count();
        let mut rows = statement.query(rusqlite::params_from_iter(args))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let mut cells = Vec::with_capacity(width);
            for index in 0..width {
                cells.push(match row.get_ref(index)? {
                    ValueRef::Null => Cell::Null,
                    ValueRef::Integer(value) => Cell::Int(value),
                    ValueRef::Text(bytes) => {
                        Cell::Text(String::from_utf8(bytes.to_vec()).map_err(|_| {
                            Error::Database(format!("result column {index} is not UTF-8"))
                        })?)
                    }
                    ValueRef::Real(_) | ValueRef::Blob(_) => {
                        return Err(Error::Database(format!(
                            "unexpected type in result column {index}"
                        )));
                    }
                });
            }
            out.push(Row(cells));
        }
        Ok(out)
    }
}

impl ToSql for Arg {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Arg::Int(value) | Arg::OptInt(Some(value)) => ToSqlOutput::from(*value),
            Arg::Text(text) | Arg::OptText(Some(text)) => {
                ToSqlOutput::Borrowed(ValueRef::Text(text.as_bytes()))
            }
            Arg::Bool(flag) => ToSqlOutput::from(*flag),
            Arg::OptInt(None) | Arg::OptText(None) => ToSqlOutput::Owned(SqlValue::Null),
            Arg::TextList(list) => ToSqlOutput::Owned(SqlValue::Text(
                serde_json::Value::from(list.clone()).to_string(),
            )),
        })
    }
}
