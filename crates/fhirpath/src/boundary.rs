//! `lowBoundary()`, `highBoundary()` and `precision()`: the range a value of limited precision
//! stands for.

use rust_decimal::{Decimal, RoundingStrategy};

use crate::value::{Date, DateTime, Quantity, Time, Value};

/// The number of significant positions of a value: decimal places of a decimal, digits of a
/// date (4 year, 6 month, 8 day), date-time (up to 17 with milliseconds) or time (up to 9).
pub(crate) fn precision(v: &Value) -> Option<i64> {
    Some(match v {
        Value::Decimal(d) => d.scale() as i64,
        Value::Integer(_) => 0,
        Value::Date(d) => date_digits(d),
        Value::DateTime(dt) => date_digits(&dt.date) + dt.time.map_or(0, |t| time_digits(&t)),
        Value::Time(t) => time_digits(t),
        _ => return None,
    })
}

fn date_digits(d: &Date) -> i64 {
    [4, 6, 8][d.precision() as usize - 1]
}

fn time_digits(t: &Time) -> i64 {
    [2, 4, 6, 9][t.precision() as usize - 1]
}

/// The lowest (or highest) value `v` may stand for, to `precision` digits; `None` when the
/// precision is out of range.
pub(crate) fn boundary(v: &Value, precision: Option<i64>, high: bool) -> Option<Value> {
    match v {
        Value::Integer(i) => {
            decimal_boundary(Decimal::from(*i), precision, high).map(Value::Decimal)
        }
        Value::Decimal(d) => decimal_boundary(*d, precision, high).map(Value::Decimal),
        Value::Quantity(q) => decimal_boundary(q.value, precision, high).map(|value| {
            Value::Quantity(Quantity {
                value,
                unit: q.unit.clone(),
            })
        }),
        Value::Date(d) => {
            let p = precision.unwrap_or(8);
            let dt = datetime_boundary(
                &DateTime {
                    date: *d,
                    time: None,
                    offset_minutes: None,
                },
                p.min(8),
                high,
            )?;
            Some(Value::Date(dt.date))
        }
        Value::DateTime(dt) => {
            datetime_boundary(dt, precision.unwrap_or(17), high).map(Value::DateTime)
        }
        Value::Time(t) => {
            let p = precision.unwrap_or(9);
            let parts = match p {
                2 => 1,
                4 => 2,
                6 => 3,
                9 => 4,
                _ => return None,
            };
            let filled = fill_time(Some(*t), high);
            Some(Value::Time(truncate_time(filled, parts)))
        }
        _ => None,
    }
}

fn decimal_boundary(d: Decimal, precision: Option<i64>, high: bool) -> Option<Decimal> {
    let p = precision.unwrap_or(8);
    if !(0..=28).contains(&p) {
        return None;
    }
    let p = p as u32;
    let half = Decimal::new(5, d.scale() + 1);
    let b = if high { d + half } else { d - half };
    let tiny = Decimal::new(1, p);
    if p < d.scale() && d.abs() < tiny {
        let mut zero = Decimal::ZERO;
        zero.set_sign_negative(d.is_sign_negative());
        zero.rescale(p);
        return Some(zero);
    }
    let mut r = if b.scale() <= p {
        b
    } else {
        b.round_dp_with_strategy(
            p,
            if high {
                RoundingStrategy::ToPositiveInfinity
            } else {
                RoundingStrategy::ToNegativeInfinity
            },
        )
    };
    r.rescale(p);
    Some(r)
}

/// Fills a time's missing components with their lowest or highest values.
fn fill_time(t: Option<Time>, high: bool) -> Time {
    let t = t.unwrap_or(Time {
        hour: if high { 23 } else { 0 },
        minute: None,
        second: None,
        millis: None,
    });
    Time {
        hour: t.hour,
        minute: Some(t.minute.unwrap_or(if high { 59 } else { 0 })),
        second: Some(t.second.unwrap_or(if high { 59 } else { 0 })),
        millis: Some(t.millis.unwrap_or(if high { 999 } else { 0 })),
    }
}

fn truncate_time(t: Time, parts: u8) -> Time {
    Time {
        hour: t.hour,
        minute: t.minute.filter(|_| parts >= 2),
        second: t.second.filter(|_| parts >= 3),
        millis: t.millis.filter(|_| parts >= 4),
    }
}

fn datetime_boundary(dt: &DateTime, p: i64, high: bool) -> Option<DateTime> {
    let date_parts = match p {
        4 => 1,
        6 => 2,
        8 | 10 | 12 | 14 | 17 => 3,
        _ => return None,
    };
    let year = dt.date.year;
    let month = dt.date.month.unwrap_or(if high { 12 } else { 1 });
    let last_day = Date::from_day_number(
        Date {
            year,
            month: Some(month),
            day: Some(1),
        }
        .add_months(1)
        .day_number()
            - 1,
    )
    .day
    .unwrap_or(28);
    let day = dt.date.day.unwrap_or(if high { last_day } else { 1 });
    let date = Date {
        year,
        month: (date_parts >= 2).then_some(month),
        day: (date_parts >= 3).then_some(day),
    };
    if p <= 8 {
        return Some(DateTime {
            date,
            time: None,
            offset_minutes: None,
        });
    }
    // An hour-only time is read as hour and minute.
    let time = dt.time.map(|t| Time {
        minute: Some(t.minute.unwrap_or(0)),
        ..t
    });
    let filled = fill_time(time, high);
    let parts = match p {
        10 => 1,
        12 => 2,
        14 => 3,
        _ => 4,
    };
    let offset = dt
        .offset_minutes
        .unwrap_or(if high { -12 * 60 } else { 14 * 60 });
    Some(DateTime {
        date,
        time: Some(truncate_time(filled, parts)),
        offset_minutes: Some(offset),
    })
}
