//! FHIRPath system values: Boolean, Integer, Decimal, String, Date, DateTime, Time, Quantity.

use std::cmp::Ordering;
use std::fmt;

use rust_decimal::Decimal;

use crate::item::Node;

/// A FHIRPath system value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// `System.Boolean`.
    Boolean(bool),
    /// `System.Integer` (FHIR integer, positiveInt, unsignedInt).
    Integer(i64),
    /// `System.Decimal`, exact to 28 digits.
    Decimal(Decimal),
    /// `System.String` (FHIR string, code, id, uri, markdown, …).
    String(String),
    /// `System.Date`, with its precision.
    Date(Date),
    /// `System.DateTime` (FHIR dateTime, instant), with its precision and zone.
    DateTime(DateTime),
    /// `System.Time`.
    Time(Time),
    /// `System.Quantity`: a decimal and a UCUM unit or calendar duration.
    Quantity(Quantity),
}

impl Value {
    /// The system type's name: `Boolean`, `Integer`, `Decimal`, `String`, `Date`, `DateTime`,
    /// `Time` or `Quantity`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Boolean(_) => "Boolean",
            Value::Integer(_) => "Integer",
            Value::Decimal(_) => "Decimal",
            Value::String(_) => "String",
            Value::Date(_) => "Date",
            Value::DateTime(_) => "DateTime",
            Value::Time(_) => "Time",
            Value::Quantity(_) => "Quantity",
        }
    }
}

impl fmt::Display for Value {
    /// The FHIRPath `toString()` form: dates without `@`, quantities as `5 'mg'`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Boolean(b) => write!(f, "{b}"),
            Value::Integer(i) => write!(f, "{i}"),
            Value::Decimal(d) => write!(f, "{d}"),
            Value::String(s) => f.write_str(s),
            Value::Date(d) => d.fmt(f),
            Value::DateTime(d) => d.fmt(f),
            Value::Time(t) => t.fmt(f),
            Value::Quantity(q) => q.fmt(f),
        }
    }
}

/// A date with year, month or day precision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Date {
    /// The year (0001–9999).
    pub year: i32,
    /// The month (1–12), when given.
    pub month: Option<u8>,
    /// The day of the month, when given (only with a month).
    pub day: Option<u8>,
}

/// A time of day with hour, minute, second or millisecond precision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Time {
    /// The hour (0–23).
    pub hour: u8,
    /// The minute, when given.
    pub minute: Option<u8>,
    /// The second, when given.
    pub second: Option<u8>,
    /// Milliseconds, when given (only with seconds).
    pub millis: Option<u16>,
}

/// A date and optional time of day with an optional zone offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DateTime {
    /// The date part.
    pub date: Date,
    /// The time part, when given.
    pub time: Option<Time>,
    /// The zone offset in minutes east of UTC, when given (`Z` is 0).
    pub offset_minutes: Option<i16>,
}

/// A quantity: a decimal value and a unit (`mg`, `'1'`, or a calendar duration like `year`).
#[derive(Clone, Debug, PartialEq)]
pub struct Quantity {
    /// The value.
    pub value: Decimal,
    /// The unit as written: a UCUM code or a calendar duration keyword; `1` when unitless.
    pub unit: String,
}

fn digits(s: &str, n: usize) -> Option<(u32, &str)> {
    if s.len() < n || !s.as_bytes()[..n].iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some((s[..n].parse().ok()?, &s[n..]))
}

fn days_in_month(year: i32, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        _ => 28,
    }
}

impl Date {
    /// Parses `YYYY`, `YYYY-MM` or `YYYY-MM-DD`; returns the rest of the text.
    pub(crate) fn parse_prefix(s: &str) -> Option<(Date, &str)> {
        let (year, rest) = digits(s, 4)?;
        let mut date = Date {
            year: year as i32,
            month: None,
            day: None,
        };
        let Some(after) = rest.strip_prefix('-') else {
            return Some((date, rest));
        };
        let Some((month, rest2)) = digits(after, 2) else {
            return Some((date, rest));
        };
        if !(1..=12).contains(&month) {
            return None;
        }
        date.month = Some(month as u8);
        let Some(after) = rest2.strip_prefix('-') else {
            return Some((date, rest2));
        };
        let Some((day, rest3)) = digits(after, 2) else {
            return Some((date, rest2));
        };
        if day < 1 || day > days_in_month(date.year, month as u8) as u32 {
            return None;
        }
        date.day = Some(day as u8);
        Some((date, rest3))
    }

    /// Parses a whole date string (`2012`, `2012-03`, `2012-03-04`).
    pub fn parse(s: &str) -> Option<Date> {
        match Date::parse_prefix(s)? {
            (d, "") => Some(d),
            _ => None,
        }
    }

    /// 1 for year, 2 for month, 3 for day precision.
    pub(crate) fn precision(&self) -> u8 {
        1 + self.month.is_some() as u8 + self.day.is_some() as u8
    }

    pub(crate) fn components(&self) -> [Option<i64>; 3] {
        [
            Some(self.year as i64),
            self.month.map(i64::from),
            self.day.map(i64::from),
        ]
    }

    /// Days since 0000-03-01 style epoch (proleptic Gregorian), for arithmetic; missing parts
    /// count as 1.
    pub(crate) fn day_number(&self) -> i64 {
        let (y, m, d) = (
            self.year as i64,
            self.month.unwrap_or(1) as i64,
            self.day.unwrap_or(1) as i64,
        );
        let (y, m) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let doy = (153 * m + 2) / 5 + d - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146097 + doe
    }

    /// The inverse of [`Date::day_number`], at day precision.
    pub(crate) fn from_day_number(n: i64) -> Date {
        let era = n.div_euclid(146097);
        let doe = n - era * 146097;
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = doy - (153 * mp + 2) / 5 + 1;
        let m = if mp < 10 { mp + 3 } else { mp - 9 };
        let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
        Date {
            year: y as i32,
            month: Some(m as u8),
            day: Some(d as u8),
        }
    }

    /// Adds months (calendar arithmetic), clamping the day to the month's last day.
    pub(crate) fn add_months(&self, months: i64) -> Date {
        let Some(month) = self.month else {
            return Date {
                year: self.year + (months / 12) as i32,
                ..*self
            };
        };
        let total = self.year as i64 * 12 + (month as i64 - 1) + months;
        let year = total.div_euclid(12) as i32;
        let month = (total.rem_euclid(12) + 1) as u8;
        let day = self.day.map(|d| d.min(days_in_month(year, month)));
        Date {
            year,
            month: Some(month),
            day,
        }
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}", self.year)?;
        if let Some(m) = self.month {
            write!(f, "-{m:02}")?;
        }
        if let Some(d) = self.day {
            write!(f, "-{d:02}")?;
        }
        Ok(())
    }
}

impl Time {
    /// Parses `hh`, `hh:mm`, `hh:mm:ss` or `hh:mm:ss.fff`; returns the rest of the text.
    pub(crate) fn parse_prefix(s: &str) -> Option<(Time, &str)> {
        let (hour, rest) = digits(s, 2)?;
        if hour > 23 {
            return None;
        }
        let mut time = Time {
            hour: hour as u8,
            minute: None,
            second: None,
            millis: None,
        };
        let Some(after) = rest.strip_prefix(':') else {
            return Some((time, rest));
        };
        let (minute, rest) = digits(after, 2)?;
        if minute > 59 {
            return None;
        }
        time.minute = Some(minute as u8);
        let Some(after) = rest.strip_prefix(':') else {
            return Some((time, rest));
        };
        let (second, mut rest) = digits(after, 2)?;
        if second > 59 {
            return None;
        }
        time.second = Some(second as u8);
        if let Some(after) = rest.strip_prefix('.') {
            let n = after.bytes().take_while(u8::is_ascii_digit).count();
            if n == 0 {
                return None;
            }
            let frac = &after[..n];
            let mut ms = 0u32;
            for (i, b) in frac.bytes().take(3).enumerate() {
                ms += (b - b'0') as u32 * [100, 10, 1][i];
            }
            time.millis = Some(ms as u16);
            rest = &after[n..];
        }
        Some((time, rest))
    }

    /// Parses a whole time string (`14`, `14:30`, `14:30:14`, `14:30:14.559`).
    pub fn parse(s: &str) -> Option<Time> {
        match Time::parse_prefix(s)? {
            (t, "") => Some(t),
            _ => None,
        }
    }

    /// 1 hour, 2 minute, 3 second, 4 millisecond precision.
    pub(crate) fn precision(&self) -> u8 {
        1 + self.minute.is_some() as u8 + self.second.is_some() as u8 + self.millis.is_some() as u8
    }

    /// Hour, minute and seconds; seconds and milliseconds are one component, as FHIRPath
    /// compares them.
    pub(crate) fn components(&self) -> [Option<i64>; 3] {
        let sec = self
            .second
            .map(|s| s as i64 * 1000 + self.millis.unwrap_or(0) as i64);
        [Some(self.hour as i64), self.minute.map(i64::from), sec]
    }

    pub(crate) fn millis_of_day(&self) -> i64 {
        ((self.hour as i64 * 60 + self.minute.unwrap_or(0) as i64) * 60
            + self.second.unwrap_or(0) as i64)
            * 1000
            + self.millis.unwrap_or(0) as i64
    }
}

impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}", self.hour)?;
        if let Some(m) = self.minute {
            write!(f, ":{m:02}")?;
        }
        if let Some(s) = self.second {
            write!(f, ":{s:02}")?;
        }
        if let Some(ms) = self.millis {
            write!(f, ".{ms:03}")?;
        }
        Ok(())
    }
}

fn parse_offset(s: &str) -> Option<(i16, &str)> {
    if let Some(rest) = s.strip_prefix('Z') {
        return Some((0, rest));
    }
    let sign = match s.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let (h, rest) = digits(&s[1..], 2)?;
    let rest = rest.strip_prefix(':')?;
    let (m, rest) = digits(rest, 2)?;
    if h > 14 || m > 59 {
        return None;
    }
    Some((sign * (h * 60 + m) as i16, rest))
}

impl DateTime {
    /// Parses a FHIR dateTime or instant (or a FHIRPath DateTime literal without `@`):
    /// `2015`, `2015-02-04T14`, `2015-02-04T14:34:28.123+10:00`, `2015-02-04T` (date only).
    pub fn parse(s: &str) -> Option<DateTime> {
        let (date, rest) = Date::parse_prefix(s)?;
        let mut dt = DateTime {
            date,
            time: None,
            offset_minutes: None,
        };
        let Some(rest) = rest.strip_prefix('T') else {
            return if rest.is_empty() { Some(dt) } else { None };
        };
        if rest.is_empty() {
            return Some(dt);
        }
        // A time needs a full date.
        date.day?;
        let (time, rest) = Time::parse_prefix(rest)?;
        dt.time = Some(time);
        if rest.is_empty() {
            return Some(dt);
        }
        let (offset, rest) = parse_offset(rest)?;
        dt.offset_minutes = Some(offset);
        rest.is_empty().then_some(dt)
    }

    /// The number of components given: 1 year … 3 day, 4 hour … 7 millisecond.
    pub(crate) fn precision(&self) -> u8 {
        self.date.precision() + self.time.map_or(0, |t| t.precision())
    }

    /// Milliseconds since an epoch, in UTC when the zone is known (local otherwise); missing
    /// components count as their lowest value.
    pub(crate) fn instant_millis(&self, default_offset: i16) -> i64 {
        let days = self.date.day_number();
        let ms = self.time.map_or(0, |t| t.millis_of_day());
        let off = self.offset_minutes.unwrap_or(default_offset) as i64;
        days * 86_400_000 + ms - off * 60_000
    }

    /// Builds a date-time from UTC-based milliseconds, expressed at `offset`, with `precision`
    /// components.
    pub(crate) fn from_millis(millis: i64, offset: Option<i16>, precision: u8) -> DateTime {
        let local = millis + offset.unwrap_or(0) as i64 * 60_000;
        let days = local.div_euclid(86_400_000);
        let ms = local.rem_euclid(86_400_000);
        let mut date = Date::from_day_number(days);
        if precision < 3 {
            date.day = None;
        }
        if precision < 2 {
            date.month = None;
        }
        let time = (precision >= 4).then(|| Time {
            hour: (ms / 3_600_000) as u8,
            minute: (precision >= 5).then_some(((ms / 60_000) % 60) as u8),
            second: (precision >= 6).then_some(((ms / 1000) % 60) as u8),
            millis: (precision >= 7).then_some((ms % 1000) as u16),
        });
        DateTime {
            date,
            time,
            offset_minutes: if time.is_some() { offset } else { None },
        }
    }
}

impl fmt::Display for DateTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.date.fmt(f)?;
        if let Some(t) = self.time {
            write!(f, "T{t}")?;
            match self.offset_minutes {
                Some(0) => f.write_str("Z")?,
                Some(o) => {
                    let sign = if o < 0 { '-' } else { '+' };
                    write!(f, "{sign}{:02}:{:02}", o.abs() / 60, o.abs() % 60)?
                }
                None => {}
            }
        }
        Ok(())
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if crate::value::is_calendar_unit(&self.unit) {
            write!(f, "{} {}", self.value, self.unit)
        } else {
            write!(f, "{} '{}'", self.value, self.unit)
        }
    }
}

/// The calendar duration keywords of FHIRPath (singular and plural).
pub(crate) fn is_calendar_unit(unit: &str) -> bool {
    matches!(
        unit,
        "year"
            | "years"
            | "month"
            | "months"
            | "week"
            | "weeks"
            | "day"
            | "days"
            | "hour"
            | "hours"
            | "minute"
            | "minutes"
            | "second"
            | "seconds"
            | "millisecond"
            | "milliseconds"
    )
}

/// Parses a JSON number's text as a decimal, exactly.
pub(crate) fn decimal_from_json(n: &serde_json::Number) -> Option<Decimal> {
    let text = n.to_string();
    text.parse::<Decimal>()
        .ok()
        .or_else(|| Decimal::from_scientific(&text).ok())
}

/// Converts a primitive node to its system value according to its FHIR type.
pub(crate) fn from_node(node: &Node<'_>) -> Option<Value> {
    let json = node.json?;
    let code = node.ty.code;
    match json {
        serde_json::Value::Bool(b) => Some(Value::Boolean(*b)),
        serde_json::Value::Number(n) => {
            let integer = matches!(
                code,
                "integer" | "positiveInt" | "unsignedInt" | "integer64" | "System.Integer"
            ) || (code.is_empty() && n.is_i64());
            if integer && let Some(i) = n.as_i64() {
                return Some(Value::Integer(i));
            }
            decimal_from_json(n).map(Value::Decimal)
        }
        serde_json::Value::String(s) => Some(match code {
            "date" | "System.Date" => match Date::parse(s) {
                Some(d) => Value::Date(d),
                None => Value::String(s.clone()),
            },
            "dateTime" | "instant" | "System.DateTime" => match DateTime::parse(s) {
                Some(d) => Value::DateTime(d),
                None => Value::String(s.clone()),
            },
            "time" | "System.Time" => match Time::parse(s) {
                Some(t) => Value::Time(t),
                None => Value::String(s.clone()),
            },
            _ => Value::String(s.clone()),
        }),
        serde_json::Value::Object(map)
            if matches!(
                code,
                "Quantity"
                    | "Age"
                    | "Duration"
                    | "Distance"
                    | "Count"
                    | "SimpleQuantity"
                    | "MoneyQuantity"
            ) =>
        {
            let value = match map.get("value")? {
                serde_json::Value::Number(n) => decimal_from_json(n)?,
                _ => return None,
            };
            let unit = map
                .get("code")
                .and_then(|c| c.as_str())
                .or_else(|| map.get("unit").and_then(|u| u.as_str()))
                .unwrap_or("1");
            Some(Value::Quantity(Quantity {
                value,
                unit: unit.to_string(),
            }))
        }
        _ => None,
    }
}

/// Compares two partial-precision component lists as FHIRPath does: `None` when the result is
/// unknown because the precisions differ before a difference is found.
pub(crate) fn compare_components(a: &[Option<i64>], b: &[Option<i64>]) -> Option<Ordering> {
    for (x, y) in a.iter().zip(b.iter()) {
        match (x, y) {
            (Some(x), Some(y)) => match x.cmp(y) {
                Ordering::Equal => continue,
                other => return Some(other),
            },
            (None, None) => return Some(Ordering::Equal),
            _ => return None,
        }
    }
    Some(Ordering::Equal)
}
