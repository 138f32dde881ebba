//! `dateShift`: moves `date`, `dateTime` and `instant` values by a whole number of days derived
//! from a key, keeping their precision and zone.
//!
//! The offset is Microsoft's: `h = fold(UTF-8(prefix + key), h → (h·131 + byte) mod 101)`, then
//! `h − 50`, so it lies in [−50, +50]. The prefix is the outermost resource's id (scope
//! `resource`), the file name (`file`), the folder name (`folder`) or, in Haven, the id of the
//! patient the resource belongs to (`patient`). A fixed offset replaces all of this.
//!
//! A shifted value keeps its form: `2015-02-07` → `2015-01-17`; a time has every digit zeroed and
//! its zone kept (`2015-02-07T13:28:17.12345-05:00` → `2015-01-17T00:00:00.00000-05:00`). A value
//! without a day, or whose date says its subject is over 89, is redacted instead
//! ([`super::redact::redact_date`]).

use super::Today;
use super::redact::{Redaction, redact_date};

/// The date components found in a value, and where the match ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateParts {
    /// The year.
    pub year: i32,
    /// The month, when given.
    pub month: Option<u32>,
    /// The day, when given (only with a month).
    pub day: Option<u32>,
    /// Byte offset just past the matched date.
    pub end: usize,
}

fn two_digits(b: &[u8], at: usize) -> Option<u32> {
    match (b.get(at), b.get(at + 1)) {
        (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
            Some(u32::from(x - b'0') * 10 + u32::from(y - b'0'))
        }
        _ => None,
    }
}

/// Finds the first FHIR date (`YYYY`, `YYYY-MM`, `YYYY-MM-DD`, year not `0000`) in a text, as
/// the original's unanchored regular expression does.
pub fn parse_date(text: &str) -> Option<DateParts> {
    let b = text.as_bytes();
    for start in 0..b.len().saturating_sub(3) {
        let (Some(hi), Some(lo)) = (two_digits(b, start), two_digits(b, start + 2)) else {
            continue;
        };
        let year = (hi * 100 + lo) as i32;
        if year == 0 {
            continue;
        }
        let mut parts = DateParts {
            year,
            month: None,
            day: None,
            end: start + 4,
        };
        if b.get(parts.end) == Some(&b'-')
            && let Some(m) = two_digits(b, parts.end + 1)
            && (1..=12).contains(&m)
        {
            parts.month = Some(m);
            parts.end += 3;
            if b.get(parts.end) == Some(&b'-')
                && let Some(d) = two_digits(b, parts.end + 1)
                && (1..=31).contains(&d)
            {
                parts.day = Some(d);
                parts.end += 3;
            }
        }
        return Some(parts);
    }
    None
}

/// Whether a date says its subject is older than 89 today: the age in whole years at `today`
/// of someone born on that date (a missing month or day counts as 1) is over 89.
pub fn indicates_age_over_89(parts: &DateParts, today: Today) -> bool {
    let month = parts.month.unwrap_or(1);
    let day = parts.day.unwrap_or(1);
    let before_birthday = today.month < month || (today.month == month && today.day < day);
    let age = today.year - parts.year - i32::from(before_birthday);
    age > 89
}

/// The offset in days for a prefix and key: Microsoft's 101-bucket polynomial hash, minus 50.
pub fn offset(prefix: &str, key: &str) -> i64 {
    let h = prefix
        .bytes()
        .chain(key.bytes())
        .fold(0u32, |h, b| (h * 131 + u32::from(b)) % 101);
    i64::from(h) - 50
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
pub(crate) fn days_from_civil(year: i32, month: u32, day: u32) -> i64 {
    let y = i64::from(year) - i64::from(month <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day count since 0000-03-01 (that is, `days_from_civil + 719468`).
pub(crate) fn civil_from_days(z: i64) -> (i32, u32, u32) {
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = (yoe + era * 400 + i64::from(month <= 2)) as i32;
    (year, month, day)
}

fn add_days(year: i32, month: u32, day: u32, days: i64) -> Option<(i32, u32, u32)> {
    if day > days_in_month(year, month) {
        return None;
    }
    let shifted = civil_from_days(days_from_civil(year, month, day) + days + 719_468);
    (1..=9999).contains(&shifted.0).then_some(shifted)
}

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        _ => 28,
    }
}

/// The kind of date value being shifted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateKind {
    /// A FHIR `date`: the result is a date.
    Date,
    /// A FHIR `dateTime` or `instant`: a time, when present, is zeroed and its zone kept.
    DateTime,
}

/// The result of shifting one value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shift {
    /// The value was shifted (recorded as PERTURB).
    Shifted(String),
    /// The value could not be shifted and was redacted instead (recorded as REDACT).
    Redacted(Redaction),
}

/// The time part after a date (`T13:28:17.123-05:00`), with every time digit zeroed and the zone
/// kept; `None` when the text after the date is not a time.
fn zeroed_time(rest: &str) -> Option<String> {
    let time = rest.strip_prefix('T')?;
    let b = time.as_bytes();
    let mut n = 0;
    let field = |at: usize| two_digits(b, at).is_some();
    if !field(0) || b.get(2) != Some(&b':') || !field(3) {
        return None;
    }
    n += 5;
    if b.get(n) == Some(&b':') && field(n + 1) {
        n += 3;
        if b.get(n) == Some(&b'.') {
            let digits = b[n + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
            if digits > 0 {
                n += 1 + digits;
            }
        }
    }
    let zone = &time[n..];
    let zone_ok = zone.is_empty()
        || zone == "Z"
        || (zone.len() == 6
            && matches!(zone.as_bytes()[0], b'+' | b'-')
            && field(n + 1)
            && zone.as_bytes()[3] == b':'
            && field(n + 4));
    if !zone_ok {
        return None;
    }
    let zeroed: String = time[..n]
        .chars()
        .map(|c| if c.is_ascii_digit() { '0' } else { c })
        .collect();
    Some(format!("T{zeroed}{zone}"))
}

/// Shifts one value by `offset` days. Values without a day, or that indicate an age over 89 at
/// `today`, are redacted instead, to their year when `partial_dates` is on.
pub fn shift(text: &str, kind: DateKind, offset: i64, partial_dates: bool, today: Today) -> Shift {
    let fallback = || Shift::Redacted(redact_date(text, partial_dates, today));
    let Some(parts) = parse_date(text) else {
        return fallback();
    };
    let (Some(month), Some(day)) = (parts.month, parts.day) else {
        return fallback();
    };
    if indicates_age_over_89(&parts, today) {
        return fallback();
    }
    let Some((y, m, d)) = add_days(parts.year, month, day, offset) else {
        return fallback();
    };
    let date = format!("{y:04}-{m:02}-{d:02}");
    if kind == DateKind::DateTime
        && let Some(time) = zeroed_time(&text[parts.end..])
    {
        return Shift::Shifted(date + &time);
    }
    Shift::Shifted(date)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TODAY: Today = Today {
        year: 2025,
        month: 9,
        day: 5,
    };

    fn shifted(text: &str, kind: DateKind, key: &str) -> Shift {
        shift(text, kind, offset("", key), true, TODAY)
    }

    #[test]
    fn offsets_match_the_original() {
        assert_eq!(offset("", "dummy"), -21);
        assert_eq!(offset("example", "123"), 41);
        assert_eq!(offset("", "123"), 50);
        assert_eq!(offset("bundle-transaction", "123"), 7);
        let hmac = |id: &str| crate::methods::crypto_hash::hash("123", id);
        assert_eq!(offset(&hmac("example"), "123"), -20);
        assert_eq!(offset(&hmac("100150"), "123"), -41);
        assert_eq!(offset(&hmac("lipid"), "123"), -11);
        // The same prefix and key always give the same offset.
        assert_eq!(offset("p1", "k"), offset("p1", "k"));
    }

    #[test]
    fn shifts_dates_with_key_dummy() {
        use DateKind::*;
        let ok = |s: &str| Shift::Shifted(s.to_string());
        assert_eq!(shifted("2015-02-07", Date, "dummy"), ok("2015-01-17"));
        assert_eq!(shifted("2015-02-07", DateTime, "dummy"), ok("2015-01-17"));
        assert_eq!(
            shifted("2015-02-07T13:28:17-05:00", DateTime, "dummy"),
            ok("2015-01-17T00:00:00-05:00")
        );
        assert_eq!(
            shifted("2015-02-07T13:28:17Z", DateTime, "dummy"),
            ok("2015-01-17T00:00:00Z")
        );
        assert_eq!(
            shifted("2015-02-07T13:28:17.12345-05:00", DateTime, "dummy"),
            ok("2015-01-17T00:00:00.00000-05:00")
        );
        assert_eq!(
            shifted("2015-02-07T13:28:17.123+08:00", DateTime, "dummy"),
            ok("2015-01-17T00:00:00.000+08:00")
        );
        // Date and Z without a time: the Z is dropped.
        assert_eq!(
            shift(
                "2001-01-01Z",
                DateTime,
                offset("example", "123"),
                true,
                TODAY
            ),
            ok("2001-02-11")
        );
        // Across a leap day and a year boundary.
        assert_eq!(shift("2016-03-01", Date, -1, true, TODAY), ok("2016-02-29"));
        assert_eq!(shift("2015-12-31", Date, 1, true, TODAY), ok("2016-01-01"));
    }

    #[test]
    fn falls_back_to_redaction() {
        use DateKind::*;
        let red = |r: Redaction| Shift::Redacted(r);
        // Without a day: partial redaction keeps the year.
        assert_eq!(
            shifted("2015-02", Date, "dummy"),
            red(Redaction::Replace("2015".into()))
        );
        assert_eq!(
            shifted("2015", DateTime, "dummy"),
            red(Redaction::Replace("2015".into()))
        );
        assert_eq!(
            shift("2015-02", Date, -21, false, TODAY),
            red(Redaction::Remove)
        );
        // Over 89 years: removed.
        assert_eq!(shifted("1925-02-07", Date, "dummy"), red(Redaction::Remove));
        assert_eq!(shifted("1915", Date, "dummy"), red(Redaction::Remove));
        assert_eq!(
            shifted("1925-02-07T13:28:17-05:00", DateTime, "dummy"),
            red(Redaction::Remove)
        );
    }

    #[test]
    fn over_89_follows_the_clock() {
        let p = parse_date("1940-01-01").unwrap();
        assert!(!indicates_age_over_89(&p, Today::new(2029, 12, 31)));
        assert!(indicates_age_over_89(&p, Today::new(2030, 1, 1)));
        let p = parse_date("1936-06-15").unwrap();
        assert!(!indicates_age_over_89(&p, Today::new(2026, 6, 14)));
        assert!(indicates_age_over_89(&p, Today::new(2026, 6, 15)));
    }

    #[test]
    fn calendar_round_trips() {
        for days in [-800_000i64, -1, 0, 1, 10_957, 2_932_896] {
            let (y, m, d) = civil_from_days(days + 719_468);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(civil_from_days(719_468), (1970, 1, 1));
    }
}
