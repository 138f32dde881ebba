//! The errors of a Bulk Data export.
//!
//! Messages name the URL, the output file and the line; they never quote a line of NDJSON or a
//! value from a resource.

use std::path::PathBuf;

/// What stopped an export (or one of its files).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request could not be sent or its response could not be read.
    #[error("{what} {url}: {source}")]
    Http {
        /// The step (`kick-off`, `status`, `download`, …).
        what: &'static str,
        /// The URL requested.
        url: String,
        /// The underlying error.
        source: reqwest::Error,
    },
    /// The server answered with a status that ends this step.
    #[error("{what} {url}: HTTP {status}{}", outcome_suffix(.outcome))]
    Status {
        /// The step (`kick-off`, `status`, `download`, …).
        what: &'static str,
        /// The URL requested.
        url: String,
        /// The HTTP status code.
        status: u16,
        /// A summary of the OperationOutcome in the body (issue codes and diagnostics), if any.
        outcome: Option<String>,
    },
    /// The server's answer breaks the protocol (no `Content-Location`, a manifest that is not
    /// JSON, …).
    #[error("{what} {url}: {message}")]
    Protocol {
        /// The step.
        what: &'static str,
        /// The URL requested.
        url: String,
        /// What was wrong.
        message: String,
    },
    /// A downloaded file does not match the manifest (wrong `resourceType`, wrong line count,
    /// a line that is not a JSON resource or is too long).
    #[error("{file}: {message}")]
    Invalid {
        /// The output file (its name in the output folder).
        file: String,
        /// What was wrong, with the line number where there is one.
        message: String,
    },
    /// Reading or writing the output folder failed.
    #[error("{}: {source}", .path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The export state recorded in the output folder cannot be used.
    #[error("{}: {message}", .path.display())]
    State {
        /// The state file.
        path: PathBuf,
        /// What was wrong.
        message: String,
    },
    /// The token provider could not supply an access token.
    #[error("access token: {0}")]
    Auth(String),
    /// Some files could not be downloaded; the others are complete and recorded, so a re-run
    /// fetches only these.
    #[error("{} file(s) failed: {}", .0.len(), join_errors(.0))]
    Files(Vec<Error>),
}

fn outcome_suffix(outcome: &Option<String>) -> String {
    outcome
        .as_ref()
        .map(|o| format!(" ({o})"))
        .unwrap_or_default()
}

fn join_errors(errors: &[Error]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl Error {
    /// An I/O error on `path`.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
