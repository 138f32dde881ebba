//! The store's errors. Messages name resource types, ids, versions and search parameter
//! codes, never resource content or search values.

use crate::time::Timestamp;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No resource (or version) of that type and id was ever stored (HTTP 404).
    #[error("{resource_type}/{id} not found")]
    NotFound {
        /// The resource type asked for.
        resource_type: String,
        /// The id asked for.
        id: String,
    },
    /// The version asked for does not exist (HTTP 404).
    #[error("{resource_type}/{id} has no version {version}")]
    VersionNotFound {
        /// The resource type asked for.
        resource_type: String,
        /// The id asked for.
        id: String,
        /// The version asked for.
        version: u64,
    },
    /// The resource (or the version asked for) is deleted (HTTP 410).
    #[error("{resource_type}/{id} was deleted at {deleted_at} (version {version})")]
    Gone {
        /// The resource type.
        resource_type: String,
        /// The id.
        id: String,
        /// The version of the tombstone.
        version: u64,
        /// When it was deleted.
        deleted_at: Timestamp,
    },
    /// A version precondition (`If-Match`) failed, or a create named an id already in use
    /// (HTTP 409/412).
    #[error("{resource_type}/{id}: {reason}")]
    Conflict {
        /// The resource type.
        resource_type: String,
        /// The id.
        id: String,
        /// What did not match.
        reason: String,
    },
    /// A resource to write is malformed (no `resourceType`, an invalid id, …) (HTTP 400).
    #[error("invalid resource: {0}")]
    Invalid(String),
    /// A search names a parameter the store does not index, or a modifier it does not
    /// support (HTTP 400, or ignored under `Prefer: handling=lenient`).
    #[error("search parameter {code} of {resource_type} is not supported{detail}")]
    UnsupportedSearch {
        /// The resource type searched.
        resource_type: String,
        /// The parameter code, with its modifier if that is what is unsupported.
        code: String,
        /// More about what is not supported, starting with `: `, or empty.
        detail: String,
    },
    /// A search value cannot be understood for its parameter (HTTP 400).
    #[error("search parameter {code}: {reason}")]
    InvalidSearch {
        /// The parameter code.
        code: String,
        /// What is wrong with the value (the value itself is not repeated).
        reason: String,
    },
    /// No export job has that id.
    #[error("export job {0} not found")]
    JobNotFound(String),
    /// The database failed: a connection, SQL or schema error (HTTP 500).
    #[error("database error: {0}")]
    Database(String),
}

/// The result type of store operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<rusqlite::Error> for Error {
    fn from(error: rusqlite::Error) -> Error {
        Error::Database(format!("sqlite: {error}"))
    }
}

#[cfg(feature = "postgres")]
impl From<postgres::Error> for Error {
    /// Keeps the SQLSTATE and primary message only: PostgreSQL's `DETAIL` can quote values.
    fn from(error: postgres::Error) -> Error {
        match error.as_db_error() {
            Some(db) => {
                Error::Database(format!("postgresql {}: {}", db.code().code(), db.message()))
            }
            None if error.is_closed() => {
                Error::Database("postgresql: connection closed".to_owned())
            }
            None => Error::Database(format!("postgresql: {error}")),
        }
    }
}
