//! Errors of configuration loading and of de-identification.
//!
//! No message ever contains a value taken from a resource: configuration errors name the rule by
//! its index and path, processing errors name the rule and the element path (a JSON pointer such
//! as `/name/0/given/1`).

/// Why a configuration could not be loaded or a resource could not be de-identified.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The configuration is invalid (bad JSON, duplicate key, unsupported FHIR version, invalid
    /// rule, bad key length). The message names the rule's index and path when a rule is at fault.
    #[error("invalid configuration: {0}")]
    Config(String),

    /// A key the configuration's rules need is not set (Haven never invents keys silently; see
    /// [`crate::Config::generate_missing_keys`]).
    #[error("missing key: {0} is needed by rule {1} and is not set")]
    MissingKey(&'static str, usize),

    /// The input is not a FHIR R4 resource Haven can process: bad JSON, no or unknown
    /// `resourceType`, an unknown element, or a value of the wrong JSON kind.
    #[error("invalid input at {element}: {message}")]
    Input {
        /// The element path (JSON pointer) where the problem was found; empty for the whole input.
        element: String,
        /// What is wrong, without the value.
        message: String,
    },

    /// A rule failed on one element. Only failures of `generalize` expressions are
    /// `skippable` (Microsoft's `processingErrors: skip` empties the whole resource then).
    #[error("rule {rule} (`{path}`) failed at {element}: {message}")]
    Rule {
        /// The rule's index in `fhirPathRules` (0-based).
        rule: usize,
        /// The rule's path.
        path: String,
        /// The element path (JSON pointer from the resource root) the rule failed on.
        element: String,
        /// What went wrong, without the value.
        message: String,
        /// Whether `processingErrors: skip` applies to this failure.
        skippable: bool,
    },
}

impl Error {
    /// A short message for a record's error report: the element path and what is wrong (no
    /// "invalid input" prefix), never a value.
    pub fn describe(&self) -> String {
        match self {
            Error::Input { element, message } if element.is_empty() => message.clone(),
            Error::Input { element, message } => format!("element {element}: {message}"),
            other => other.to_string(),
        }
    }

    pub(crate) fn config(message: impl Into<String>) -> Self {
        Error::Config(message.into())
    }

    pub(crate) fn rule_config(index: usize, path: &str, message: impl std::fmt::Display) -> Self {
        Error::Config(format!("rule {index} (`{path}`): {message}"))
    }

    pub(crate) fn input(element: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Input {
            element: element.into(),
            message: message.into(),
        }
    }
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
