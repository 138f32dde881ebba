//! `redact`: removes values, with three partial variants switched on by the parameters: dates
//! keep their year (nothing when over 89 years), ages over 89 are removed and the others kept,
//! postal codes keep their first 3 characters (all zeros for restricted areas).

use rust_decimal::Decimal;

use super::date_shift::{indicates_age_over_89, parse_date};
use super::{Operation, Today};

/// What redaction does to one value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redaction {
    /// Remove the value.
    Remove,
    /// Leave the value as it is (still recorded as redaction).
    Unchanged,
    /// Replace the value by this text.
    Replace(String),
}

/// Which branch of redaction applies to a node, by its type and name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A `date`, `dateTime` or `instant` value.
    Date,
    /// The `value` of an `Age`.
    AgeValue,
    /// Any element named `postalCode`.
    PostalCode,
    /// Anything else.
    Other,
}

/// The settings redaction reads from the parameters.
#[derive(Debug, Clone, Copy)]
pub struct Settings<'a> {
    /// `enablePartialAgesForRedact`.
    pub partial_ages: bool,
    /// `enablePartialDatesForRedact`.
    pub partial_dates: bool,
    /// `enablePartialZipCodesForRedact`.
    pub partial_zip_codes: bool,
    /// `restrictedZipCodeTabulationAreas`.
    pub restricted_zip_codes: &'a [String],
    /// The date the over-89 rule counts from.
    pub today: Today,
}

/// Redacts one value's text, returning what to write and the operation to record.
pub fn redact(text: &str, target: Target, settings: &Settings<'_>) -> (Redaction, Operation) {
    match target {
        Target::Date => (
            redact_date(text, settings.partial_dates, settings.today),
            Operation::Redact,
        ),
        Target::AgeValue => (redact_age(text, settings.partial_ages), Operation::Redact),
        Target::PostalCode if settings.partial_zip_codes => (
            redact_postal_code(text, settings.restricted_zip_codes),
            Operation::Abstract,
        ),
        Target::PostalCode | Target::Other => (Redaction::Remove, Operation::Redact),
    }
}

/// Redacts a date, dateTime or instant: removed, or with `partial` its year alone (removed when
/// the date indicates an age over 89 at `today`).
pub fn redact_date(text: &str, partial: bool, today: Today) -> Redaction {
    if !partial {
        return Redaction::Remove;
    }
    match parse_date(text) {
        Some(parts) if !indicates_age_over_89(&parts, today) => {
            Redaction::Replace(format!("{:04}", parts.year))
        }
        _ => Redaction::Remove,
    }
}

/// Redacts an age's value: removed, or with `partial` removed only when over 89.
///
/// The original parses the value as an integer and fails on a decimal age; Haven compares the
/// decimal value, which gives the same result for every integer.
pub fn redact_age(text: &str, partial: bool) -> Redaction {
    if !partial {
        return Redaction::Remove;
    }
    match text.trim().parse::<Decimal>() {
        Ok(age) if age <= Decimal::from(89) => Redaction::Unchanged,
        _ => Redaction::Remove,
    }
}

/// Abstracts a postal code: every digit zeroed when it starts with a restricted prefix; else
/// the first 3 characters kept and every later digit zeroed; codes shorter than 3 characters
/// stay as they are. Haven: when letters follow the first 3 characters (a code that is not a
/// ZIP code, or text typed into the element), only the first 3 characters are kept, as the
/// letters would otherwise stay (Microsoft's tool keeps them).
pub fn redact_postal_code(text: &str, restricted: &[String]) -> Redaction {
    let zero = |c: char| if c.is_ascii_digit() { '0' } else { c };
    if text.chars().skip(3).any(char::is_alphabetic) {
        return Redaction::Replace(text.chars().take(3).collect());
    }
    if restricted.iter().any(|p| text.starts_with(p.as_str())) {
        return Redaction::Replace(text.chars().map(zero).collect());
    }
    if text.chars().count() < 3 {
        return Redaction::Unchanged;
    }
    Redaction::Replace(
        text.chars()
            .enumerate()
            .map(|(i, c)| if i < 3 { c } else { zero(c) })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn restricted() -> Vec<String> {
        [
            "036", "059", "102", "203", "205", "369", "556", "692", "821", "823", "878", "879",
            "884", "893",
        ]
        .map(String::from)
        .to_vec()
    }

    fn settings(restricted: &[String], partial: bool) -> Settings<'_> {
        Settings {
            partial_ages: partial,
            partial_dates: partial,
            partial_zip_codes: partial,
            restricted_zip_codes: restricted,
            today: Today::new(2025, 9, 5),
        }
    }

    #[test]
    fn zip_codes() {
        let r = restricted();
        let s = settings(&r, true);
        let zip = |t: &str| redact(t, Target::PostalCode, &s);
        let abs = |t: &str| (Redaction::Replace(t.to_string()), Operation::Abstract);
        assert_eq!(zip("98052"), abs("98000"));
        assert_eq!(zip("98028-1830"), abs("98000-0000"));
        assert_eq!(zip("123456789"), abs("123000000"));
        assert_eq!(zip("20301-1830"), abs("00000-0000"));
        assert_eq!(zip("203"), abs("000"));
        assert_eq!(zip("55601"), abs("00000"));
        assert_eq!(zip("12"), (Redaction::Unchanged, Operation::Abstract));
        assert_eq!(
            zip("K1A 0B1"),
            abs("K1A"),
            "letters after the first 3 are not kept"
        );
        assert_eq!(zip("Seen with Ann Pryce"), abs("See"));
        let off = settings(&r, false);
        assert_eq!(
            redact("98052", Target::PostalCode, &off),
            (Redaction::Remove, Operation::Redact)
        );
    }

    #[test]
    fn ages() {
        assert_eq!(redact_age("89", true), Redaction::Unchanged);
        assert_eq!(redact_age("57", true), Redaction::Unchanged);
        assert_eq!(redact_age("90", true), Redaction::Remove);
        assert_eq!(redact_age("91", true), Redaction::Remove);
        assert_eq!(redact_age("92", true), Redaction::Remove);
        assert_eq!(redact_age("57", false), Redaction::Remove);
        assert_eq!(redact_age("89.5", true), Redaction::Remove);
    }

    #[test]
    fn dates() {
        let today = Today::new(2025, 9, 5);
        let year = |y: &str| Redaction::Replace(y.to_string());
        assert_eq!(redact_date("2015-02-07", true, today), year("2015"));
        assert_eq!(redact_date("2015-02", true, today), year("2015"));
        assert_eq!(redact_date("2015", true, today), year("2015"));
        assert_eq!(
            redact_date("2015-02-07T13:28:17-05:00", true, today),
            year("2015")
        );
        assert_eq!(
            redact_date("1925-02-07T13:28:17-05:00", true, today),
            Redaction::Remove
        );
        assert_eq!(redact_date("1915", true, today), Redaction::Remove);
        assert_eq!(redact_date("2015-02-07", false, today), Redaction::Remove);
    }

    #[test]
    fn everything_else_is_removed() {
        let r = restricted();
        let s = settings(&r, true);
        assert_eq!(
            redact("Smith", Target::Other, &s),
            (Redaction::Remove, Operation::Redact)
        );
    }
}
