//! The lake's error type. Messages name the destination, object key, table or view and the
//! element concerned, never a resource's content.

/// A lake failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The destination string is not a folder path or a supported URL.
    #[error("invalid destination `{url}`: {reason}")]
    Destination {
        /// The destination as given (a path or URL; it holds no resource data).
        url: String,
        /// Why it was refused.
        reason: String,
    },
    /// An object-store operation failed.
    #[error("{action} `{key}`: {source}")]
    Store {
        /// What was being done (`put`, `get`, `list`, `delete`).
        action: &'static str,
        /// The object key (or prefix) concerned, relative to the destination.
        key: String,
        /// The store's error.
        #[source]
        source: object_store::Error,
    },
    /// A local I/O error while encoding (compression, buffering).
    #[error("{key}: {source}")]
    Io {
        /// The object being written.
        key: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Parquet or Arrow encoding or decoding failed.
    #[error("parquet `{key}`: {message}")]
    Parquet {
        /// The Parquet object concerned.
        key: String,
        /// The encoder's message (schema or I/O; no row values).
        message: String,
    },
    /// A Delta Lake operation failed.
    #[error("delta table `{table}`: {message}")]
    Delta {
        /// The table's path inside the destination.
        table: String,
        /// The Delta library's message.
        message: String,
    },
    /// A resource lacks what a writer needs (a `resourceType`, an `id`), or has the wrong type.
    #[error("resource {index} of type {resource_type}: {reason}")]
    Resource {
        /// The resource type the writer was opened for.
        resource_type: String,
        /// The 0-based position of the resource in what this writer received.
        index: u64,
        /// What is wrong (an element name, never a value).
        reason: String,
    },
    /// A resource type, run id or view name that cannot be part of an object key.
    #[error("invalid {what}: use 1 to 128 letters, digits, `.`, `_` or `-`")]
    InvalidName {
        /// Which name (`run id`, `resource type`, `view name`).
        what: &'static str,
    },
    /// A ViewDefinition is invalid or could not be evaluated.
    #[error("view `{view}`: {reason}")]
    View {
        /// The view's name.
        view: String,
        /// What is wrong (a path or FHIRPath expression, never a resource value).
        reason: String,
    },
}

/// The lake's result type.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub(crate) fn store(
        action: &'static str,
        key: impl Into<String>,
        source: object_store::Error,
    ) -> Error {
        Error::Store {
            action,
            key: key.into(),
            source,
        }
    }

    pub(crate) fn parquet(key: impl Into<String>, err: impl std::fmt::Display) -> Error {
        Error::Parquet {
            key: key.into(),
            message: err.to_string(),
        }
    }
}
