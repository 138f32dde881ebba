//! Instants (`meta.lastUpdated`, deletion and job times) and the time ranges that FHIR date
//! search works on.

use std::fmt;

const MS_PER_DAY: i64 = 86_400_000;

/// An instant in UTC with millisecond precision: milliseconds since 1970-01-01T00:00:00Z.
///
/// Displays as a FHIR `instant` (`2024-03-01T12:30:05.120Z`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The instant `millis` milliseconds after the Unix epoch.
    pub const fn from_millis(millis: i64) -> Timestamp {
        Timestamp(millis)
    }

    /// Milliseconds since the Unix epoch.
    pub const fn millis(self) -> i64 {
        self.0
    }

    /// The current time, truncated to the millisecond.
    pub fn now() -> Timestamp {
        let since_epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp(i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX))
    }

    /// Parses a FHIR `instant`, `dateTime` or `date` (`2024-03-01T12:30:05.12+02:00`,
    /// `2024-03-01`, `2024`) as the first millisecond it denotes; a value without a zone is
    /// read as UTC. `None` when the text is not such a value.
    pub fn parse(text: &str) -> Option<Timestamp> {
        Range::parse(text).map(|range| Timestamp(range.low))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let days = self.0.div_euclid(MS_PER_DAY);
        let ms = self.0.rem_euclid(MS_PER_DAY);
        let (year, month, day) = civil_from_days(days);
        write!(
            f,
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
            ms / 3_600_000,
            ms / 60_000 % 60,
            ms / 1000 % 60,
            ms % 1000
        )
    }
}

/// A half-open range of instants `[low, high)` in milliseconds since the Unix epoch: the span a
/// FHIR date, dateTime or Period covers at its precision (`2024-03` is all of March 2024).
/// `i64::MIN` and `i64::MAX` stand for an open start or end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Range {
    pub low: i64,
    pub high: i64,
}

impl Range {
    /// The range of a FHIR `date`, `dateTime` or `instant` (and of search values, which may stop
    /// at the minute): `YYYY`, `YYYY-MM`, `YYYY-MM-DD`, `YYYY-MM-DDThh:mm[:ss[.fff…]]` with an
    /// optional `Z` or `±hh:mm` zone (none means UTC).
    pub fn parse(text: &str) -> Option<Range> {
        let mut cursor = Cursor(text.as_bytes());
        let year = cursor.digits(4)?;
        if year == 0 {
            return None;
        }
        if cursor.done() {
            let low = days_from_civil(year, 1, 1) * MS_PER_DAY;
            return Some(Range {
                low,
                high: days_from_civil(year + 1, 1, 1) * MS_PER_DAY,
            });
        }
        cursor.expect(b'-')?;
        let month = cursor.digits(2)?;
        if !(1..=12).contains(&month) {
            return None;
        }
        if cursor.done() {
            let (next_year, next_month) = if month == 12 {
                (year + 1, 1)
            } else {
                (year, month + 1)
            };
            return Some(Range {
                low: days_from_civil(year, month, 1) * MS_PER_DAY,
                high: days_from_civil(next_year, next_month, 1) * MS_PER_DAY,
            });
        }
        cursor.expect(b'-')?;
        let day = cursor.digits(2)?;
        if day < 1 || day > days_in_month(year, month) {
            return None;
        }
        let day_start = days_from_civil(year, month, day) * MS_PER_DAY;
        if cursor.done() {
            return Some(Range {
                low: day_start,
                high: day_start + MS_PER_DAY,
            });
        }
        cursor.expect(b'T')?;
        let hour = cursor.digits(2)?;
        cursor.expect(b':')?;
        let minute = cursor.digits(2)?;
        if hour > 23 || minute > 59 {
            return None;
        }
        let mut offset = hour * 3_600_000 + minute * 60_000;
        let mut width = 60_000;
        if cursor.peek() == Some(b':') {
            cursor.expect(b':')?;
            let second = cursor.digits(2)?;
            if second > 59 {
                return None;
            }
            offset += second * 1000;
            width = 1000;
            if cursor.peek() == Some(b'.') {
                cursor.expect(b'.')?;
                let (fraction, count) = cursor.fraction()?;
                offset += fraction;
                width = match count {
                    1 => 100,
                    2 => 10,
                    _ => 1,
                };
            }
        }
        let zone = match cursor.peek() {
            None => 0,
            Some(b'Z') => {
                cursor.expect(b'Z')?;
                0
            }
            Some(sign @ (b'+' | b'-')) => {
                cursor.expect(sign)?;
                let hours = cursor.digits(2)?;
                cursor.expect(b':')?;
                let minutes = cursor.digits(2)?;
                if hours > 14 || minutes > 59 {
                    return None;
                }
                let minutes = hours * 60 + minutes;
                if sign == b'+' { minutes } else { -minutes }
            }
            Some(_) => return None,
        };
        if !cursor.done() {
            return None;
        }
        let low = day_start + offset - zone * 60_000;
        Some(Range {
            low,
            high: low + width,
        })
    }
}

/// A byte cursor over date text.
struct Cursor<'a>(&'a [u8]);

impl Cursor<'_> {
    fn done(&self) -> bool {
        self.0.is_empty()
    }

    fn peek(&self) -> Option<u8> {
        self.0.first().copied()
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        let (&first, rest) = self.0.split_first()?;
        (first == byte).then(|| self.0 = rest)
    }

    fn digits(&mut self, count: usize) -> Option<i64> {
        let head = self.0.get(..count)?;
        if !head.iter().all(u8::is_ascii_digit) {
            return None;
        }
        self.0 = &self.0[count..];
        Some(head.iter().fold(0, |n, d| n * 10 + i64::from(d - b'0')))
    }

    /// Fraction digits as milliseconds (digits past the third are dropped) and how many
    /// digits there were.
    fn fraction(&mut self) -> Option<(i64, usize)> {
        let count = self.0.iter().take_while(|b| b.is_ascii_digit()).count();
        if count == 0 {
            return None;
        }
        let millis = (0..3).fold(0, |n, i| {
            n * 10
                + self
                    .0
                    .get(i)
                    .filter(|_| i < count)
                    .map_or(0, |d| i64::from(d - b'0'))
        });
        self.0 = &self.0[count..];
        Some((millis, count))
    }
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to the given proleptic Gregorian date. Years are counted from March so
/// that the leap day falls at the end of a year; eras are 400-year cycles of 146,097 days.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let march_month = (month + 9) % 12;
    let day_of_year = (153 * march_month + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let march_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * march_month + 2) / 5 + 1;
    let month = if march_month < 10 {
        march_month + 3
    } else {
        march_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> i64 {
        Timestamp::parse(text).unwrap().millis()
    }

    #[test]
    fn instants_round_trip_through_display() {
        for text in [
            "1970-01-01T00:00:00.000Z",
            "2024-02-29T23:59:59.999Z",
            "1899-12-31T00:00:00.001Z",
            "2000-03-01T12:00:00.000Z",
        ] {
            assert_eq!(Timestamp::parse(text).unwrap().to_string(), text);
        }
    }

    #[test]
    fn zones_are_converted_to_utc() {
        assert_eq!(at("2024-01-01T02:00:00+02:00"), at("2024-01-01T00:00:00Z"));
        assert_eq!(at("2023-12-31T19:30:00-04:30"), at("2024-01-01T00:00:00Z"));
    }

    #[test]
    fn ranges_follow_precision() {
        let year = Range::parse("2024").unwrap();
        assert_eq!((year.low, year.high), (at("2024-01-01"), at("2025-01-01")));
        let month = Range::parse("2024-12").unwrap();
        assert_eq!(
            (month.low, month.high),
            (at("2024-12-01"), at("2025-01-01"))
        );
        let day = Range::parse("2024-02-28").unwrap();
        assert_eq!(day.high - day.low, MS_PER_DAY);
        let minute = Range::parse("2024-02-28T10:15").unwrap();
        assert_eq!(minute.high - minute.low, 60_000);
        let tenth = Range::parse("2024-02-28T10:15:01.5Z").unwrap();
        assert_eq!(tenth.high - tenth.low, 100);
        let fine = Range::parse("2024-02-28T10:15:01.123456Z").unwrap();
        assert_eq!((fine.low % 1000, fine.high - fine.low), (123, 1));
    }

    #[test]
    fn malformed_dates_are_rejected() {
        for text in [
            "",
            "24",
            "2024-13",
            "2023-02-29",
            "2024-01-01T25:00",
            "2024-01-01T10",
            "2024-01-01 ",
            "0000",
            "2024-01-01T10:00:00+15:00",
            "2024-01-01T10:00:00.Z",
        ] {
            assert!(Range::parse(text).is_none(), "{text}");
        }
    }
}
