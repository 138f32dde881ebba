//! The pipeline's errors: each names the stage and the file, line or setting at fault, never a
//! resource value.

/// A pipeline error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is invalid.
    #[error("{file}: {reason}")]
    Config {
        /// The configuration file (or "pipeline configuration").
        file: String,
        /// What is wrong.
        reason: String,
    },
    /// The de-identification configuration or keys are unusable.
    #[error("de-identification: {0}")]
    Deid(String),
    /// Reading the source failed.
    #[error("source: {0}")]
    Source(String),
    /// A resource could not be read or de-identified.
    #[error("{file}, line {line}: {reason}")]
    Resource {
        /// The file.
        file: String,
        /// The line (1-based).
        line: u64,
        /// What went wrong, with the element path where known.
        reason: String,
    },
    /// The lake refused a write.
    #[error("lake: {0}")]
    Lake(#[from] lake::Error),
    /// The run's state in the lake is unreadable.
    #[error("state {key}: {reason}")]
    State {
        /// The object key under the lake.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// A local file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// An I/O error on `path`.
    pub fn io(path: &std::path::Path, source: std::io::Error) -> Error {
        Error::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

impl From<fhir::ndjson::NdjsonError> for Error {
    fn from(error: fhir::ndjson::NdjsonError) -> Error {
        Error::Source(error.to_string())
    }
}

/// The pipeline's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
