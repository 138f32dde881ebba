//! What the store's logic needs from a SQL engine: connections that run statements with
//! `$1`-style placeholders, read and write transactions, and the few places where the SQL of
//! SQLite and PostgreSQL differ.

use crate::error::{Error, Result};

/// A statement argument.
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    /// A 64-bit integer (`BIGINT`).
    Int(i64),
    /// Text.
    Text(String),
    /// A flag (`BOOLEAN` in PostgreSQL, 0/1 in SQLite).
    Bool(bool),
    /// Optional text (`NULL` when absent).
    OptText(Option<String>),
    /// An optional integer.
    OptInt(Option<i64>),
    /// A list of texts, used only through [`Dialect::in_list`].
    TextList(Vec<String>),
}

/// A column value read back.
#[derive(Debug, Clone)]
pub(crate) enum Cell {
    /// `NULL`.
    Null,
    /// Any integer column.
    Int(i64),
    /// A text column.
    Text(String),
    /// A PostgreSQL `BOOLEAN` (SQLite answers flags as integers).
    #[cfg(feature = "postgres")]
    Bool(bool),
}

/// One result row.
#[derive(Debug, Clone)]
pub(crate) struct Row(pub Vec<Cell>);

fn column_type(index: usize) -> Error {
    Error::Database(format!("unexpected type in result column {index}"))
}

impl Row {
    /// Column `index` as an integer.
    pub fn int(&self, index: usize) -> Result<i64> {
        match self.0.get(index) {
            Some(Cell::Int(value)) => Ok(*value),
            _ => Err(column_type(index)),
        }
    }

    /// Column `index` as an unsigned integer (versions, counts, cursors).
    pub fn uint(&self, index: usize) -> Result<u64> {
        u64::try_from(self.int(index)?).map_err(|_| column_type(index))
    }

    /// Column `index` as an optional integer.
    pub fn opt_int(&self, index: usize) -> Result<Option<i64>> {
        match self.0.get(index) {
            Some(Cell::Null) => Ok(None),
            _ => self.int(index).map(Some),
        }
    }

    /// Column `index` as text, taken out of the row.
    pub fn take_text(&mut self, index: usize) -> Result<String> {
        match self.0.get_mut(index) {
            Some(Cell::Text(value)) => Ok(std::mem::take(value)),
            _ => Err(column_type(index)),
        }
    }

    /// Column `index` as optional text, taken out of the row.
    pub fn take_opt_text(&mut self, index: usize) -> Result<Option<String>> {
        match self.0.get(index) {
            Some(Cell::Null) => Ok(None),
            _ => self.take_text(index).map(Some),
        }
    }

    /// Column `index` as a flag (a boolean, or 0/1).
    pub fn flag(&self, index: usize) -> Result<bool> {
        match self.0.get(index) {
            #[cfg(feature = "postgres")]
            Some(Cell::Bool(value)) => Ok(*value),
            Some(Cell::Int(value)) => Ok(*value != 0),
            _ => Err(column_type(index)),
        }
    }
}

/// A database connection.
pub(crate) trait Conn {
    /// Runs a statement; the number of rows it changed.
    fn execute(&mut self, sql: &str, args: &[Arg]) -> Result<u64>;
    /// Runs a query; all its rows.
    fn query(&mut self, sql: &str, args: &[Arg]) -> Result<Vec<Row>>;
    /// Inserts `rows` (each one argument per column) into `table (columns)` in the engine's
    /// fastest way: a statement prepared once in SQLite, `COPY … FROM STDIN` in PostgreSQL.
    fn insert(&mut self, table: &str, columns: &[&str], rows: Vec<Vec<Arg>>) -> Result<()>;
}

/// Whether work only reads or also writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// A read-only transaction (one consistent view of the data).
    Read,
    /// A write transaction: committed when the work succeeds, rolled back when it fails.
    Write,
}

/// A SQL engine with a pool of connections.
pub(crate) trait Backend: Send + Sync {
    /// Which SQL dialect it speaks.
    fn dialect(&self) -> Dialect;
    /// Runs `work` in one transaction on a pooled connection.
    fn run(&self, mode: Mode, work: &mut dyn FnMut(&mut dyn Conn) -> Result<()>) -> Result<()>;
}

/// The SQL dialects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// SQLite 3 (bundled with `rusqlite`).
    Sqlite,
    /// PostgreSQL (tested with 15).
    #[cfg(feature = "postgres")]
    Postgres,
}

impl Dialect {
    /// `column` is one of the texts of the [`Arg::TextList`] at `placeholder`.
    pub fn in_list(self, column: &str, placeholder: &str) -> String {
        match self {
            Dialect::Sqlite => format!("{column} IN (SELECT value FROM json_each({placeholder}))"),
            #[cfg(feature = "postgres")]
            Dialect::Postgres => format!("{column} = ANY({placeholder})"),
        }
    }

    /// `haystack` contains the text `needle`.
    pub fn contains(self, haystack: &str, needle: &str) -> String {
        match self {
            Dialect::Sqlite => format!("instr({haystack}, {needle}) > 0"),
            #[cfg(feature = "postgres")]
            Dialect::Postgres => format!("strpos({haystack}, {needle}) > 0"),
        }
    }

    /// The clause that locks the clock row until the transaction ends (SQLite's write
    /// transactions are exclusive already).
    pub fn for_update(self) -> &'static str {
        match self {
            Dialect::Sqlite => "",
            #[cfg(feature = "postgres")]
            Dialect::Postgres => " FOR UPDATE",
        }
    }
}

/// SQL text under construction, with its arguments.
#[derive(Debug, Default)]
pub(crate) struct Sql {
    pub text: String,
    pub args: Vec<Arg>,
}

impl Sql {
    /// Starts with `text`.
    pub fn new(text: &str) -> Sql {
        Sql {
            text: text.to_owned(),
            args: Vec::new(),
        }
    }

    /// Appends SQL text.
    pub fn push(&mut self, text: &str) -> &mut Sql {
        self.text.push_str(text);
        self
    }

    /// Adds an argument; its placeholder (`$n`).
    pub fn arg(&mut self, arg: Arg) -> String {
        self.args.push(arg);
        format!("${}", self.args.len())
    }

    /// Appends an argument's placeholder.
    pub fn push_arg(&mut self, arg: Arg) -> &mut Sql {
        let placeholder = self.arg(arg);
        self.push(&placeholder)
    }
}

/// Runs `statement` (which must end with `IN (`) once per chunk of `values`, closing the list.
pub(crate) fn for_each_chunk(
    conn: &mut dyn Conn,
    statement: &str,
    first: &[Arg],
    values: &[i64],
) -> Result<()> {
    for chunk in values.chunks(1000) {
        let mut sql = Sql::new(statement);
        sql.args.extend(first.iter().cloned());
        for (n, value) in chunk.iter().enumerate() {
            if n > 0 {
                sql.push(", ");
            }
            sql.push_arg(Arg::Int(*value));
        }
        sql.push(")");
        conn.execute(&sql.text, &sql.args)?;
    }
    Ok(())
}
