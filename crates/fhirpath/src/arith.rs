//! Arithmetic operators: numbers, quantities, strings, and date/time plus durations.

use rust_decimal::Decimal;

use crate::ast::BinaryOp;
use crate::error::Error;
use crate::eval::as_decimal;
use crate::value::{Date, DateTime, Quantity, Time, Value};

/// Applies `+ - * / div mod` to two values; `None` is an empty result (division by zero).
pub(crate) fn arithmetic(op: BinaryOp, a: Value, b: Value) -> Result<Option<Value>, Error> {
    use Value as V;
    match (op, &a, &b) {
        (BinaryOp::Add, V::String(x), V::String(y)) => {
            return Ok(Some(V::String(format!("{x}{y}"))));
        }
        (
            BinaryOp::Add | BinaryOp::Sub,
            V::Date(_) | V::DateTime(_) | V::Time(_),
            V::Quantity(q),
        ) => {
            let q = if op == BinaryOp::Sub {
                Quantity {
                    value: -q.value,
                    unit: q.unit.clone(),
                }
            } else {
                q.clone()
            };
            return shift(&a, &q).map(Some);
        }
        (_, V::Quantity(x), V::Quantity(y)) => return quantity_arithmetic(op, x, y),
        (BinaryOp::Mul | BinaryOp::Div, V::Quantity(x), V::Integer(_) | V::Decimal(_)) => {
            let n = as_decimal(&b).expect("number");
            let one = Quantity {
                value: n,
                unit: "1".into(),
            };
            return quantity_arithmetic(op, x, &one);
        }
        (BinaryOp::Mul, V::Integer(_) | V::Decimal(_), V::Quantity(y)) => {
            let n = as_decimal(&a).expect("number");
            return Ok(Some(V::Quantity(Quantity {
                value: n * y.value,
                unit: y.unit.clone(),
            })));
        }
        _ => {}
    }
    if let (V::Integer(x), V::Integer(y)) = (&a, &b) {
        let (x, y) = (*x, *y);
        return Ok(match op {
            BinaryOp::Add => x.checked_add(y).map(V::Integer),
            BinaryOp::Sub => x.checked_sub(y).map(V::Integer),
            BinaryOp::Mul => x.checked_mul(y).map(V::Integer),
            BinaryOp::IntDiv => (y != 0).then(|| V::Integer(x.div_euclid(y) + correction(x, y))),
            BinaryOp::Mod => (y != 0).then(|| V::Integer(x % y)),
            _ => {
                if y == 0 {
                    None
                } else {
                    Decimal::from(x)
                        .checked_div(Decimal::from(y))
                        .map(V::Decimal)
                }
            }
        });
    }
    let (Some(x), Some(y)) = (as_decimal(&a), as_decimal(&b)) else {
        return Err(Error::eval(
            "operands of this arithmetic operator have incompatible types",
        ));
    };
    Ok(match op {
        BinaryOp::Add => x.checked_add(y).map(V::Decimal),
        BinaryOp::Sub => x.checked_sub(y).map(V::Decimal),
        BinaryOp::Mul => x.checked_mul(y).map(V::Decimal),
        BinaryOp::Div => {
            if y.is_zero() {
                None
            } else {
                x.checked_div(y).map(|d| V::Decimal(d.normalize()))
            }
        }
        BinaryOp::IntDiv => {
            if y.is_zero() {
                None
            } else {
                (x / y).trunc().try_into().ok().map(V::Integer)
            }
        }
        _ => {
            if y.is_zero() {
                None
            } else {
                x.checked_rem(y).map(V::Decimal)
            }
        }
    })
}

/// `div` truncates toward zero; `div_euclid` rounds toward negative infinity for positive
/// divisors, so undo that for negative dividends.
fn correction(x: i64, y: i64) -> i64 {
    let truncated = x / y;
    truncated - x.div_euclid(y)
}

fn quantity_arithmetic(op: BinaryOp, x: &Quantity, y: &Quantity) -> Result<Option<Value>, Error> {
    Ok(match op {
        BinaryOp::Add | BinaryOp::Sub => {
            let Some(y) = crate::ucum::convert(y, &x.unit) else {
                return Ok(None);
            };
            let value = if op == BinaryOp::Add {
                x.value + y.value
            } else {
                x.value - y.value
            };
            Some(Value::Quantity(Quantity {
                value,
                unit: x.unit.clone(),
            }))
        }
        BinaryOp::Mul | BinaryOp::Div => {
            crate::ucum::multiply(x, y, op == BinaryOp::Div).map(Value::Quantity)
        }
        _ => return Err(Error::eval("this operator does not apply to quantities")),
    })
}

/// The calendar unit of a duration quantity, normalised to its singular keyword.
fn calendar_unit(unit: &str) -> Option<&'static str> {
    Some(match unit {
        "year" | "years" => "year",
        "month" | "months" => "month",
        "week" | "weeks" | "wk" => "week",
        "day" | "days" | "d" => "day",
        "hour" | "hours" | "h" => "hour",
        "minute" | "minutes" | "min" => "minute",
        "second" | "seconds" | "s" => "second",
        "millisecond" | "milliseconds" | "ms" => "millisecond",
        _ => return None,
    })
}

/// Adds a duration to a date, date-time or time, keeping the input's precision.
fn shift(v: &Value, q: &Quantity) -> Result<Value, Error> {
    let unit = calendar_unit(&q.unit)
        .ok_or_else(|| Error::eval("a date can only be shifted by a time-valued quantity"))?;
    // Fractions of the unit are ignored, as the specification says.
    let whole = q.value.trunc();
    let n: i64 = whole
        .try_into()
        .map_err(|_| Error::eval("duration out of range"))?;
    let millis_per = |unit: &str| -> i64 {
        match unit {
            "week" => 7 * 86_400_000,
            "day" => 86_400_000,
            "hour" => 3_600_000,
            "minute" => 60_000,
            "second" => 1000,
            _ => 1,
        }
    };
    match v {
        Value::Date(d) => Ok(Value::Date(shift_date(d, unit, n, q.value)?)),
        Value::DateTime(dt) => {
            if matches!(unit, "year" | "month") || dt.time.is_none() {
                let date = shift_date(&dt.date, unit, n, q.value)?;
                return Ok(Value::DateTime(DateTime { date, ..*dt }));
            }
            let delta = n * millis_per(unit);
            let millis = dt.instant_millis(0) + delta;
            let precision = dt.precision();
            let mut shifted =
                DateTime::from_millis(millis, Some(dt.offset_minutes.unwrap_or(0)), precision);
            shifted.offset_minutes = dt.offset_minutes;
            Ok(Value::DateTime(shifted))
        }
        Value::Time(t) => {
            if matches!(unit, "year" | "month" | "week" | "day") {
                return Err(Error::eval(
                    "a time can only be shifted by hours or smaller units",
                ));
            }
            let delta = n * millis_per(unit);
            let ms = (t.millis_of_day() + delta).rem_euclid(86_400_000);
            Ok(Value::Time(Time {
                hour: (ms / 3_600_000) as u8,
                minute: t.minute.map(|_| ((ms / 60_000) % 60) as u8),
                second: t.second.map(|_| ((ms / 1000) % 60) as u8),
                millis: t.millis.map(|_| (ms % 1000) as u16),
            }))
        }
        _ => Err(Error::eval("only dates and times can be shifted")),
    }
}

fn shift_date(d: &Date, unit: &str, n: i64, exact: Decimal) -> Result<Date, Error> {
    Ok(match unit {
        "year" => d.add_months(n * 12),
        "month" => d.add_months(n),
        _ => {
            let days = match unit {
                "week" => n * 7,
                "day" => n,
                "hour" => (exact / Decimal::from(24)).trunc().try_into().unwrap_or(0),
                _ => 0,
            };
            match (d.month, d.day) {
                (Some(_), Some(_)) => Date::from_day_number(d.day_number() + days),
                (Some(_), None) => d.add_months(days / 30),
                _ => Date {
                    year: d.year + (days / 365) as i32,
                    ..*d
                },
            }
        }
    })
}
