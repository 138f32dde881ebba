//! Why a validation could not run (as opposed to a lake that fails it): the lake or the source
//! cannot be read. Messages name the location, key or file, never a resource value.

/// A failure to run the validation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The lake could not be opened, listed or read.
    #[error(transparent)]
    Lake(#[from] lake::Error),
    /// The lake has no `_haven/state.json`, or it cannot be read.
    #[error("{location}: {reason}")]
    State {
        /// The lake or the state key.
        location: String,
        /// What is wrong.
        reason: String,
    },
    /// The source folder cannot be read.
    #[error("source {path}{}: {reason}", line.map(|l| format!(" line {l}")).unwrap_or_default())]
    Source {
        /// The file or folder.
        path: String,
        /// The 1-based line, when a line is at fault.
        line: Option<u64>,
        /// What is wrong (never the line's content).
        reason: String,
    },
}

/// The validation's result type.
pub type Result<T> = std::result::Result<T, Error>;
