//! The errors of parsing and evaluating FHIRPath.

/// Why an expression could not be compiled or evaluated.
///
/// Messages name the expression's position or the function involved, never a value taken from
/// the resource, so they are safe to log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The expression text is not valid FHIRPath.
    #[error("syntax error at character {position}: {message}")]
    Syntax {
        /// Character offset (0-based) in the expression where the problem was found.
        position: usize,
        /// What was expected or found.
        message: String,
    },
    /// The expression is well formed but meaningless (unknown function, wrong argument count,
    /// unknown type name).
    #[error("semantic error: {0}")]
    Semantic(String),
    /// Evaluation failed (for example a function that needs one item was given several).
    #[error("evaluation error: {0}")]
    Evaluation(String),
}

impl Error {
    pub(crate) fn eval(message: impl Into<String>) -> Self {
        Error::Evaluation(message.into())
    }

    pub(crate) fn semantic(message: impl Into<String>) -> Self {
        Error::Semantic(message.into())
    }
}
