//! The basic UCUM support FHIRPath needs: parsing common units into a factor and base
//! dimensions, so quantities in compatible units compare, convert and multiply.

use std::cmp::Ordering;

use rust_decimal::Decimal;

use crate::value::Quantity;

/// Base dimensions: length (m), mass (g), time (s), amount (mol).
type Dims = [i8; 4];

/// A unit reduced to base units: `value_in_base = value × factor`.
#[derive(Debug, Clone, PartialEq)]
struct Reduced {
    factor: Decimal,
    dims: Dims,
}

fn dec(s: &str) -> Decimal {
    s.parse().expect("unit factor literal")
}

/// Units that take no prefix, with their factor and dimensions.
fn special_atom(atom: &str) -> Option<Reduced> {
    let (f, dims): (&str, Dims) = match atom {
        "1" => ("1", [0, 0, 0, 0]),
        "%" => ("0.01", [0, 0, 0, 0]),
        "min" => ("60", [0, 0, 1, 0]),
        "h" => ("3600", [0, 0, 1, 0]),
        "d" => ("86400", [0, 0, 1, 0]),
        "wk" => ("604800", [0, 0, 1, 0]),
        "mo" => ("2629800", [0, 0, 1, 0]),
        "a" => ("31557600", [0, 0, 1, 0]),
        "[in_i]" => ("0.0254", [1, 0, 0, 0]),
        "[ft_i]" => ("0.3048", [1, 0, 0, 0]),
        "[yd_i]" => ("0.9144", [1, 0, 0, 0]),
        "[mi_i]" => ("1609.344", [1, 0, 0, 0]),
        "[lb_av]" => ("453.59237", [0, 1, 0, 0]),
        "[oz_av]" => ("28.349523125", [0, 1, 0, 0]),
        _ => return None,
    };
    Some(Reduced {
        factor: dec(f),
        dims,
    })
}

/// Units that take metric prefixes.
fn metric_atom(atom: &str) -> Option<Reduced> {
    let (f, dims): (&str, Dims) = match atom {
        "m" => ("1", [1, 0, 0, 0]),
        "g" => ("1", [0, 1, 0, 0]),
        "s" => ("1", [0, 0, 1, 0]),
        "mol" => ("1", [0, 0, 0, 1]),
        "L" | "l" => ("0.001", [3, 0, 0, 0]),
        _ => return None,
    };
    Some(Reduced {
        factor: dec(f),
        dims,
    })
}

fn prefix(p: &str) -> Option<Decimal> {
    Some(dec(match p {
        "k" => "1000",
        "h" => "100",
        "da" => "10",
        "d" => "0.1",
        "c" => "0.01",
        "m" => "0.001",
        "u" => "0.000001",
        "n" => "0.000000001",
        "p" => "0.000000000001",
        _ => return None,
    }))
}

fn atom(atom: &str) -> Option<Reduced> {
    if let Some(r) = special_atom(atom).or_else(|| metric_atom(atom)) {
        return Some(r);
    }
    (1..atom.len()).find_map(|i| {
        let (p, rest) = atom.split_at(i);
        let base = metric_atom(rest)?;
        Some(Reduced {
            factor: prefix(p)? * base.factor,
            dims: base.dims,
        })
    })
}

/// One term with an optional integer exponent: `m2`, `s-1`, `[in_i]`.
fn term(t: &str) -> Option<Reduced> {
    let split = t
        .char_indices()
        .rev()
        .take_while(|(_, c)| c.is_ascii_digit() || *c == '-')
        .last()
        .map_or(t.len(), |(i, _)| i);
    let (name, exp) = if split == 0 || split == t.len() || t.ends_with(']') {
        (t, 1)
    } else {
        (&t[..split], t[split..].parse::<i8>().ok()?)
    };
    let base = atom(name)?;
    let mut factor = Decimal::ONE;
    for _ in 0..exp.unsigned_abs() {
        factor *= base.factor;
    }
    if exp < 0 {
        factor = Decimal::ONE / factor;
    }
    Some(Reduced {
        factor,
        dims: base.dims.map(|d| d * exp),
    })
}

fn calendar_keyword(unit: &str) -> Option<&'static str> {
    Some(match unit {
        "year" | "years" => "a",
        "month" | "months" => "mo",
        "week" | "weeks" => "wk",
        "day" | "days" => "d",
        "hour" | "hours" => "h",
        "minute" | "minutes" => "min",
        "second" | "seconds" => "s",
        "millisecond" | "milliseconds" => "ms",
        _ => return None,
    })
}

/// Reduces a unit string (`mg`, `g/m`, `m2`, `kg.m/s2`, or a calendar keyword) to base units.
fn reduce(unit: &str) -> Option<Reduced> {
    let unit = calendar_keyword(unit).unwrap_or(unit);
    let mut result = Reduced {
        factor: Decimal::ONE,
        dims: [0; 4],
    };
    for (i, part) in unit.split('/').enumerate() {
        for t in part.split('.') {
            let r = term(t)?;
            let sign = if i == 0 { 1 } else { -1 };
            result.factor = if sign > 0 {
                result.factor * r.factor
            } else {
                result.factor / r.factor
            };
            for (d, e) in result.dims.iter_mut().zip(r.dims) {
                *d += sign * e;
            }
        }
    }
    Some(result)
}

/// Compares two quantities, converting compatible units; `None` when they are not comparable.
/// For `=` (not `equivalence`), calendar years and months only compare with each other.
pub(crate) fn compare(x: &Quantity, y: &Quantity, equivalence: bool) -> Option<Ordering> {
    if equivalence {
        // Equivalent when equal at the precision of the less precise value, in x's unit.
        let y = convert(y, &x.unit)?;
        let scale = x.value.scale().min(y.value.scale());
        return Some(x.value.round_dp(scale).cmp(&y.value.round_dp(scale)));
    }
    if x.unit == y.unit {
        return Some(x.value.cmp(&y.value));
    }
    let vague = |u: &str| matches!(u, "year" | "years" | "month" | "months");
    if !equivalence && (vague(&x.unit) || vague(&y.unit)) {
        let same = calendar_keyword(&x.unit) == calendar_keyword(&y.unit);
        return same.then(|| x.value.cmp(&y.value));
    }
    let (a, b) = (reduce(&x.unit)?, reduce(&y.unit)?);
    if a.dims != b.dims {
        return None;
    }
    Some((x.value * a.factor).cmp(&(y.value * b.factor)))
}

/// Expresses a quantity in another unit, if the units are compatible.
pub(crate) fn convert(q: &Quantity, unit: &str) -> Option<Quantity> {
    if q.unit == unit {
        return Some(q.clone());
    }
    let (from, to) = (reduce(&q.unit)?, reduce(unit)?);
    if from.dims != to.dims {
        return None;
    }
    Some(Quantity {
        value: (q.value * from.factor / to.factor).normalize(),
        unit: unit.to_string(),
    })
}

/// Multiplies (or divides) two quantities; the result is in base units (`m2`, `g/m`, `1`).
pub(crate) fn multiply(x: &Quantity, y: &Quantity, divide: bool) -> Option<Quantity> {
    let (a, b) = (reduce(&x.unit)?, reduce(&y.unit)?);
    let mut dims = a.dims;
    for (d, e) in dims.iter_mut().zip(b.dims) {
        *d += if divide { -e } else { e };
    }
    let value = if divide {
        if y.value.is_zero() {
            return None;
        }
        (x.value * a.factor) / (y.value * b.factor)
    } else {
        x.value * a.factor * y.value * b.factor
    };
    Some(Quantity {
        value: value.normalize(),
        unit: base_unit(&dims),
    })
}

fn base_unit(dims: &Dims) -> String {
    const NAMES: [&str; 4] = ["m", "g", "s", "mol"];
    let power = |name: &str, e: i8| {
        if e == 1 {
            name.to_string()
        } else {
            format!("{name}{e}")
        }
    };
    let num: Vec<String> = NAMES
        .iter()
        .zip(dims)
        .filter(|(_, e)| **e > 0)
        .map(|(n, e)| power(n, *e))
        .collect();
    let den: Vec<String> = NAMES
        .iter()
        .zip(dims)
        .filter(|(_, e)| **e < 0)
        .map(|(n, e)| power(n, -*e))
        .collect();
    let num = if num.is_empty() {
        "1".to_string()
    } else {
        num.join(".")
    };
    if den.is_empty() {
        num
    } else {
        format!("{num}/{}", den.join("."))
    }
}
