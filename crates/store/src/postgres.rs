//! The PostgreSQL back end: a pool of synchronous `postgres` clients, each keeping its
//! prepared statements.
//!
//! Write transactions serialize on the store's clock row (`SELECT … FOR UPDATE`), so versions
//! and instants are handed out in commit order; reads run in `REPEATABLE READ` read-only
//! transactions so that a page and its total agree.

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

use postgres::types::{ToSql, Type};
use postgres::{Client, Config, NoTls, Statement};

use crate::error::{Error, Result};
use crate::sql::{Arg, Backend, Cell, Conn, Dialect, Mode, Row};

/// The most connections open at once; further callers wait for one to be returned.
const MAX_CONNECTIONS: usize = 16;

/// Statements each connection keeps prepared before it starts afresh.
const STATEMENT_CACHE: usize = 256;

/// A PostgreSQL database.
pub(crate) struct Postgres {
    config: Config,
    pool: Mutex<Pool>,
    returned: Condvar,
}

/// Idle connections, and how many are open in all (idle or in use).
struct Pool {
    idle: Vec<PgConn>,
    open: usize,
}

struct PgConn {
    client: Client,
    statements: HashMap<String, Statement>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl PgConn {
    fn connect(config: &Config) -> Result<PgConn> {
        Ok(PgConn {
            client: config.connect(NoTls)?,
            statements: HashMap::new(),
        })
    }

    fn statement(&mut self, sql: &str) -> Result<Statement> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(sql)?;
        if self.statements.len() >= STATEMENT_CACHE {
            self.statements.clear();
        }
        self.statements.insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }
}

impl Drop for Postgres {
    /// Closes the idle connections on a thread of their own: a `postgres::Client` blocks on
    /// its private runtime when dropped, which panics on a thread that drives async tasks
    /// (where a server drops its store when it stops).
    fn drop(&mut self) {
        let idle = std::mem::take(&mut lock(&self.pool).idle);
        if !idle.is_empty() {
            let _ = std::thread::spawn(move || drop(idle)).join();
        }
    }
}

impl Postgres {
    /// Connects to the database a `postgres://` URL names (the URL is never repeated in
    /// errors: it may hold a password).
    pub fn connect(url: &str) -> Result<Postgres> {
        let config: Config = url
            .parse()
            .map_err(|_| Error::Database("the PostgreSQL URL is malformed".to_owned()))?;
        let first = PgConn::connect(&config)?;
        Ok(Postgres {
            config,
            pool: Mutex::new(Pool {
                idle: vec![first],
                open: 1,
            }),
            returned: Condvar::new(),
        })
    }

    /// An idle connection, a new one while fewer than [`MAX_CONNECTIONS`] are open, or the
    /// next one returned.
    fn take(&self) -> Result<PgConn> {
        let mut pool = lock(&self.pool);
        loop {
            if let Some(conn) = pool.idle.pop() {
                if !conn.client.is_closed() {
                    return Ok(conn);
                }
                pool.open -= 1;
                continue;
            }
            if pool.open < MAX_CONNECTIONS {
                pool.open += 1;
                drop(pool);
                return PgConn::connect(&self.config).inspect_err(|_| {
                    lock(&self.pool).open -= 1;
                    self.returned.notify_one();
                });
            }
            pool = self
                .returned
                .wait(pool)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Returns a connection to the pool, or closes it when it is no longer usable.
    fn give_back(&self, conn: PgConn, usable: bool) {
        let mut pool = lock(&self.pool);
        if usable && !conn.client.is_closed() {
            pool.idle.push(conn);
        } else {
            pool.open -= 1;
        }
        drop(pool);
        self.returned.notify_one();
    }
}

impl Backend for Postgres {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    fn run(&self, mode: Mode, work: &mut dyn FnMut(&mut dyn Conn) -> Result<()>) -> Result<()> {
        let mut conn = self.take()?;
        if let Err(error) = conn.client.batch_execute(match mode {
            Mode::Read => "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
            Mode::Write => "BEGIN",
        }) {
            self.give_back(conn, false);
            return Err(error.into());
        }
        let result = work(&mut conn);
        let end = conn
            .client
            .batch_execute(if result.is_ok() { "COMMIT" } else { "ROLLBACK" });
        self.give_back(conn, end.is_ok());
        result?;
        Ok(end?)
    }
}

impl Conn for PgConn {
    fn execute(&mut self, sql: &str, args: &[Arg]) -> Result<u64> {
        let statement = self.statement(sql)?;
        Ok(self.client.execute(&statement, &params(args))?)
    }

    fn insert(&mut self, table: &str, columns: &[&str], rows: Vec<Vec<Arg>>) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut text = String::new();
        for row in &rows {
            for (n, arg) in row.iter().enumerate() {
                if n > 0 {
                    text.push('\t');
                }
                copy_value(arg, &mut text);
            }
            text.push('\n');
        }
        let copy = format!("COPY {table} ({}) FROM STDIN", columns.join(", "));
        let mut writer = self.client.copy_in(&copy)?;
        writer
            .write_all(text.as_bytes())
            .map_err(|error| Error::Database(format!("COPY into {table}: {error}")))?;
        writer.finish()?;
        Ok(())
    }

    fn query(&mut self, sql: &str, args: &[Arg]) -> Result<Vec<Row>> {
        let statement = self.statement(sql)?;
        self.client
            .query(&statement, &params(args))?
            .iter()
            .map(|row| {
                (0..row.len())
                    .map(|index| cell(row, index))
                    .collect::<Result<Vec<_>>>()
                    .map(Row)
            })
            .collect()
    }
}

/// Appends a value in `COPY`'s text format: `\N` for `NULL`, backslash escapes in text.
fn copy_value(arg: &Arg, out: &mut String) {
    match arg {
        Arg::Int(value) | Arg::OptInt(Some(value)) => out.push_str(&value.to_string()),
        Arg::Bool(flag) => out.push(if *flag { 't' } else { 'f' }),
        Arg::Text(text) | Arg::OptText(Some(text)) => {
            for c in text.chars() {
                match c {
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    '\t' => out.push_str("\\t"),
                    c => out.push(c),
                }
            }
        }
        Arg::OptInt(None) | Arg::OptText(None) | Arg::TextList(_) => out.push_str("\\N"),
    }
}

fn params(args: &[Arg]) -> Vec<&(dyn ToSql + Sync)> {
    args.iter()
        .map(|arg| -> &(dyn ToSql + Sync) {
            match arg {
                Arg::Int(value) => value,
                Arg::Text(text) => text,
                Arg::Bool(flag) => flag,
                Arg::OptText(text) => text,
                Arg::OptInt(value) => value,
                Arg::TextList(list) => list,
            }
        })
        .collect()
}

fn cell(row: &postgres::Row, index: usize) -> Result<Cell> {
    let column_type = row.columns()[index].type_().clone();
    let unexpected = || Error::Database(format!("unexpected type in result column {index}"));
    let cell = match column_type {
        Type::INT8 => row.try_get::<_, Option<i64>>(index)?.map(Cell::Int),
        Type::INT4 => row
            .try_get::<_, Option<i32>>(index)?
            .map(|value| Cell::Int(value.into())),
        Type::INT2 => row
            .try_get::<_, Option<i16>>(index)?
            .map(|value| Cell::Int(value.into())),
        Type::BOOL => row.try_get::<_, Option<bool>>(index)?.map(Cell::Bool),
        Type::TEXT | Type::VARCHAR | Type::NAME => {
            row.try_get::<_, Option<String>>(index)?.map(Cell::Text)
        }
        _ => return Err(unexpected()),
    };
    Ok(cell.unwrap_or(Cell::Null))
}
