//! Dates found in text, and what replaces them.

/// What a date in text says: any of its year, month and day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TextDate {
    /// The year, when written (two-digit years are read as the nearest past century).
    pub year: Option<i32>,
    /// The month, 1–12, when written.
    pub month: Option<u32>,
    /// The day of the month, when written.
    pub day: Option<u32>,
}

impl TextDate {
    /// A date with all three parts, checked against the calendar.
    pub(crate) fn full(year: i32, month: u32, day: u32) -> Option<TextDate> {
        ((1..=12).contains(&month) && day >= 1 && day <= days_in_month(year, month)).then_some(
            TextDate {
                year: Some(year),
                month: Some(month),
                day: Some(day),
            },
        )
    }
}

/// What happens to the dates found in text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DateAction {
    /// Each date becomes its year (HIPAA Safe Harbor); a date without a year becomes `[DATE]`.
    #[default]
    Year,
    /// Each full date is shifted by this many days and written `YYYY-MM-DD`; a date without a
    /// day becomes its year, one without a year `[DATE]`.
    Shift(i64),
    /// Dates are not identifiers here (a limited data set): they are left as written.
    Keep,
}

impl DateAction {
    /// The text written in place of `date`.
    pub(crate) fn replacement(self, date: &TextDate) -> String {
        let year = date.year.map(|y| y.to_string());
        match (self, date.year, date.month, date.day) {
            (DateAction::Shift(days), Some(y), Some(m), Some(d)) => {
                let (y, m, d) = civil_from_days(days_from_civil(y, m, d) + days);
                format!("{y:04}-{m:02}-{d:02}")
            }
            _ => year.unwrap_or_else(|| "[DATE]".to_string()),
        }
    }
}

fn is_leap(year: i32) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

pub(crate) fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i32, m: u32, d: u32) -> i64 {
    let y = i64::from(y) - i64::from(m <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date `days` after 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shifting_crosses_months_years_and_leap_days() {
        let date = TextDate::full(2020, 2, 28).unwrap();
        assert_eq!(DateAction::Shift(1).replacement(&date), "2020-02-29");
        assert_eq!(DateAction::Shift(2).replacement(&date), "2020-03-01");
        assert_eq!(DateAction::Shift(-59).replacement(&date), "2019-12-31");
        assert_eq!(DateAction::Year.replacement(&date), "2020");
        assert!(TextDate::full(2021, 2, 29).is_none());
        let no_year = TextDate {
            year: None,
            month: Some(3),
            day: Some(4),
        };
        assert_eq!(DateAction::Year.replacement(&no_year), "[DATE]");
        assert_eq!(DateAction::Shift(3).replacement(&no_year), "[DATE]");
    }
}
