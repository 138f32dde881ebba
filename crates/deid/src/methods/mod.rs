//! The eight methods, each a function over one node's value (the engine walks the nodes).
//!
//! Every function takes the value's text as the original tool sees it (`node.Value.ToString()`
//! in .NET: booleans are `True`/`False`, numbers their literal text) and returns what to write
//! back, so each can be tested on its own with the original's vectors.

pub mod crypto_hash;
pub mod date_shift;
pub mod encrypt;
pub(crate) mod free_text;
pub mod generalize;
pub mod keep;
pub mod perturb;
pub mod redact;
pub mod substitute;

use serde_json::Value;

/// What a method did, as recorded for the security labels (in label order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Operation {
    /// A value removed or reduced (`REDACTED`).
    Redact,
    /// A postal code cut to its first digits (`ABSTRED`).
    Abstract,
    /// A value replaced by its keyed hash (`CRYTOHASH`, sic).
    CryptoHash,
    /// A value encrypted (`MASKED`).
    Encrypt,
    /// A value perturbed, or a date shifted (`PERTURBED`).
    Perturb,
    /// A value substituted (`SUBSTITUTED`).
    Substitute,
    /// A value generalized (`GENERALIZED`).
    Generalize,
}

impl Operation {
    /// All operations, in the order their labels are appended.
    pub const ALL: [Operation; 7] = [
        Operation::Redact,
        Operation::Abstract,
        Operation::CryptoHash,
        Operation::Encrypt,
        Operation::Perturb,
        Operation::Substitute,
        Operation::Generalize,
    ];

    pub(crate) fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// The text of a primitive JSON value as the original tool reads it (`Value.ToString()` in
/// .NET): strings as they are, numbers as written, booleans `True`/`False`. `None` for null
/// and for objects and arrays.
pub fn value_text(value: &Value) -> Option<String> {
    value_str(value).map(std::borrow::Cow::into_owned)
}

/// [`value_text`] without copying strings.
pub(crate) fn value_str(value: &Value) -> Option<std::borrow::Cow<'_, str>> {
    use std::borrow::Cow;
    match value {
        Value::String(s) => Some(Cow::Borrowed(s)),
        Value::Number(n) => Some(Cow::Owned(n.to_string())),
        Value::Bool(true) => Some(Cow::Borrowed("True")),
        Value::Bool(false) => Some(Cow::Borrowed("False")),
        _ => None,
    }
}

/// A calendar date (the clock of the over-89 rule).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Today {
    /// The year.
    pub year: i32,
    /// The month, 1–12.
    pub month: u32,
    /// The day of the month, 1–31.
    pub day: u32,
}

impl Today {
    /// A fixed date.
    pub fn new(year: i32, month: u32, day: u32) -> Today {
        Today { year, month, day }
    }

    /// Today's date (UTC) from the system clock.
    pub fn now() -> Today {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let (year, month, day) = date_shift::civil_from_days(secs as i64 / 86_400 + 719_468);
        Today { year, month, day }
    }
}
