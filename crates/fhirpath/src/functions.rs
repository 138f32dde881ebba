//! The FHIRPath function library, plus FHIR's and the anonymizer's extension functions.

use std::cmp::Ordering;

use rust_decimal::Decimal;
use rust_decimal::prelude::{MathematicalOps, ToPrimitive};

use crate::ast::{Expr, Function, TypeSpec};
use crate::error::Error;
use crate::eval::{
    Collection, Evaluator, Scope, all_children, boolean, compare_values, equals_items, is_type,
    resource_type, singleton, singleton_integer, to_boolean, union,
};
use crate::item::{Item, ItemKind, Node, NodeType, Path};
use crate::parser::type_argument;
use crate::value::{Date, DateTime, Quantity, Time, Value};

fn value<'a>(v: Value) -> Collection<'a> {
    vec![Item::value(v)]
}

fn string<'a>(s: impl Into<String>) -> Collection<'a> {
    value(Value::String(s.into()))
}

/// The single string of the input; `None` when empty; an error for non-strings.
fn input_string(focus: &[Item<'_>]) -> Result<Option<String>, Error> {
    match singleton(focus)?.map(Item::to_value) {
        None => Ok(None),
        Some(Some(Value::String(s))) => Ok(Some(s)),
        Some(_) => Err(Error::eval("expected a string")),
    }
}

/// The single number of the input as a decimal, remembering whether it was an integer.
fn input_number(focus: &[Item<'_>]) -> Result<Option<Value>, Error> {
    match singleton(focus)?.map(Item::to_value) {
        None => Ok(None),
        Some(Some(v @ (Value::Integer(_) | Value::Decimal(_) | Value::Quantity(_)))) => Ok(Some(v)),
        Some(_) => Err(Error::eval("expected a number")),
    }
}

impl<'a> Evaluator<'a, '_> {
    /// Evaluates `arg` once, with `$this` (or the input) as focus.
    fn arg(&self, arg: &Expr, scope: &Scope<'a>) -> Result<Collection<'a>, Error> {
        self.eval(arg, &self.this_focus(scope), scope)
    }

    fn arg_string(&self, arg: &Expr, scope: &Scope<'a>) -> Result<Option<String>, Error> {
        input_string(&self.arg(arg, scope)?)
    }

    fn arg_integer(&self, arg: &Expr, scope: &Scope<'a>) -> Result<Option<i64>, Error> {
        singleton_integer(&self.arg(arg, scope)?)
    }

    /// Evaluates `arg` for each item of `focus`, with that item as `$this` and its position as
    /// `$index`.
    fn per_item(
        &self,
        focus: &[Item<'a>],
        arg: &Expr,
        scope: &Scope<'a>,
    ) -> Result<Vec<(Item<'a>, Collection<'a>)>, Error> {
        focus
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let inner = Scope {
                    this: Some(item.clone()),
                    index: Some(i),
                    total: scope.total.clone(),
                };
                Ok((
                    item.clone(),
                    self.eval(arg, std::slice::from_ref(item), &inner)?,
                ))
            })
            .collect()
    }

    /// Calls a function on `focus`.
    pub fn call(
        &self,
        function: Function,
        args: &[Expr],
        focus: &[Item<'a>],
        scope: &Scope<'a>,
    ) -> Result<Collection<'a>, Error> {
        use Function as F;
        Ok(match function {
            F::Empty => boolean(focus.is_empty()),
            F::Exists => match args.first() {
                None => boolean(!focus.is_empty()),
                Some(criteria) => boolean(!self.filter(focus, criteria, scope)?.is_empty()),
            },
            F::All => {
                for (_, r) in self.per_item(focus, &args[0], scope)? {
                    if to_boolean(&r)? != Some(true) {
                        return Ok(boolean(false));
                    }
                }
                boolean(true)
            }
            F::AllTrue | F::AnyTrue | F::AllFalse | F::AnyFalse => {
                let mut bools = Vec::with_capacity(focus.len());
                for item in focus {
                    match item.to_value() {
                        Some(Value::Boolean(b)) => bools.push(b),
                        _ => return Err(Error::eval("expected booleans")),
                    }
                }
                boolean(match function {
                    F::AllTrue => bools.iter().all(|b| *b),
                    F::AnyTrue => bools.iter().any(|b| *b),
                    F::AllFalse => bools.iter().all(|b| !*b),
                    _ => bools.iter().any(|b| !*b),
                })
            }
            F::SubsetOf | F::SupersetOf => {
                let other = self.arg(&args[0], scope)?;
                let (sub, sup) = if function == F::SubsetOf {
                    (focus, other.as_slice())
                } else {
                    (other.as_slice(), focus)
                };
                boolean(
                    sub.iter()
                        .all(|a| sup.iter().any(|b| equals_items(a, b) == Some(true))),
                )
            }
            F::Count => value(Value::Integer(focus.len() as i64)),
            F::Distinct => union(focus.to_vec(), Vec::new()),
            F::IsDistinct => boolean(union(focus.to_vec(), Vec::new()).len() == focus.len()),
            F::Where => self.filter(focus, &args[0], scope)?,
            F::Select => {
                let mut out = Vec::new();
                for (_, r) in self.per_item(focus, &args[0], scope)? {
                    out.extend(r);
                }
                out
            }
            F::Repeat => self.repeat(focus, &args[0], scope)?,
            F::OfType => {
                let spec = type_argument(&args[0])
                    .ok_or_else(|| Error::semantic("expected a type name"))?;
                focus
                    .iter()
                    .filter(|i| is_type(i, &spec, true))
                    .cloned()
                    .collect()
            }
            F::Is | F::As => {
                if focus.len() > 1 {
                    return Err(Error::eval("'is'/'as' need a single item"));
                }
                let spec = type_argument(&args[0])
                    .ok_or_else(|| Error::semantic("expected a type name"))?;
                match focus.first() {
                    None => Vec::new(),
                    Some(item) if function == F::Is => boolean(is_type(item, &spec, false)),
                    Some(item) => {
                        if is_type(item, &spec, true) {
                            vec![item.clone()]
                        } else {
                            Vec::new()
                        }
                    }
                }
            }
            F::Single => match focus.len() {
                0 | 1 => focus.to_vec(),
                _ => return Err(Error::eval("single() found several items")),
            },
            F::First => focus.first().cloned().into_iter().collect(),
            F::Last => focus.last().cloned().into_iter().collect(),
            F::Tail => focus.iter().skip(1).cloned().collect(),
            F::Skip => {
                let n = self.arg_integer(&args[0], scope)?.unwrap_or(0);
                focus.iter().skip(n.max(0) as usize).cloned().collect()
            }
            F::Take => {
                let n = self.arg_integer(&args[0], scope)?.unwrap_or(0);
                focus.iter().take(n.max(0) as usize).cloned().collect()
            }
            F::Intersect => {
                let other = self.arg(&args[0], scope)?;
                let kept: Collection<'a> = focus
                    .iter()
                    .filter(|a| other.iter().any(|b| equals_items(a, b) == Some(true)))
                    .cloned()
                    .collect();
                union(kept, Vec::new())
            }
            F::Exclude => {
                let other = self.arg(&args[0], scope)?;
                focus
                    .iter()
                    .filter(|a| !other.iter().any(|b| equals_items(a, b) == Some(true)))
                    .cloned()
                    .collect()
            }
            F::Union => union(focus.to_vec(), self.arg(&args[0], scope)?),
            F::Combine => {
                let mut out = focus.to_vec();
                out.extend(self.arg(&args[0], scope)?);
                out
            }
            F::Iif => {
                if focus.len() > 1 {
                    return Err(Error::eval("iif() needs a single input item"));
                }
                let inner = Scope {
                    this: focus.first().cloned().or_else(|| scope.this.clone()),
                    ..scope.clone()
                };
                let cond = self.arg(&args[0], &inner)?;
                let cond = match cond.len() {
                    0 => None,
                    1 => match cond[0].to_value() {
                        Some(Value::Boolean(b)) => Some(b),
                        _ => return Err(Error::eval("iif() needs a boolean criterion")),
                    },
                    _ => return Err(Error::eval("iif() needs a single criterion")),
                };
                if cond == Some(true) {
                    self.arg(&args[1], &inner)?
                } else if let Some(otherwise) = args.get(2) {
                    self.arg(otherwise, &inner)?
                } else {
                    Vec::new()
                }
            }
            F::ToBoolean => convert(focus, to_boolean_value)?,
            F::ConvertsToBoolean => converts(focus, to_boolean_value)?,
            F::ToInteger => convert(focus, to_integer_value)?,
            F::ConvertsToInteger => converts(focus, to_integer_value)?,
            F::ToDecimal => convert(focus, to_decimal_value)?,
            F::ConvertsToDecimal => converts(focus, to_decimal_value)?,
            F::ToDate => convert(focus, to_date_value)?,
            F::ConvertsToDate => converts(focus, to_date_value)?,
            F::ToDateTime => convert(focus, to_datetime_value)?,
            F::ConvertsToDateTime => converts(focus, to_datetime_value)?,
            F::ToTime => convert(focus, to_time_value)?,
            F::ConvertsToTime => converts(focus, to_time_value)?,
            F::ToString => convert(focus, to_string_value)?,
            F::ConvertsToString => converts(focus, to_string_value)?,
            F::ToQuantity | F::ConvertsToQuantity => {
                let unit = match args.first() {
                    Some(a) => self.arg_string(a, scope)?,
                    None => None,
                };
                let q = match singleton(focus)? {
                    None => return Ok(Vec::new()),
                    Some(item) => item.to_value().and_then(to_quantity_value),
                };
                let q = match (q, unit) {
                    (Some(q), Some(unit)) => crate::ucum::convert(&q, &unit),
                    (q, None) => q,
                    (None, _) => None,
                };
                if function == F::ToQuantity {
                    q.map(|q| value(Value::Quantity(q))).unwrap_or_default()
                } else {
                    boolean(q.is_some())
                }
            }
            F::IndexOf => {
                let (Some(s), Some(sub)) =
                    (input_string(focus)?, self.arg_string(&args[0], scope)?)
                else {
                    return Ok(Vec::new());
                };
                let index = s
                    .find(&sub)
                    .map_or(-1, |byte| s[..byte].chars().count() as i64);
                value(Value::Integer(index))
            }
            F::Substring => {
                let Some(s) = input_string(focus)? else {
                    return Ok(Vec::new());
                };
                let Some(start) = self.arg_integer(&args[0], scope)? else {
                    return Ok(Vec::new());
                };
                let chars: Vec<char> = s.chars().collect();
                if start < 0 || start as usize >= chars.len() {
                    return Ok(Vec::new());
                }
                let len = match args.get(1) {
                    Some(a) => match self.arg_integer(a, scope)? {
                        Some(l) => l.max(0) as usize,
                        None => chars.len(),
                    },
                    None => chars.len(),
                };
                let start = start as usize;
                string(
                    chars[start..(start + len).min(chars.len())]
                        .iter()
                        .collect::<String>(),
                )
            }
            F::StartsWith | F::EndsWith | F::ContainsStr => {
                let Some(s) = input_string(focus)? else {
                    return Ok(Vec::new());
                };
                let Some(sub) = self.arg_string(&args[0], scope)? else {
                    return Ok(Vec::new());
                };
                boolean(match function {
                    F::StartsWith => s.starts_with(&sub),
                    F::EndsWith => s.ends_with(&sub),
                    _ => s.contains(&sub),
                })
            }
            F::Upper | F::Lower | F::Trim | F::ToChars | F::Length => {
                let Some(s) = input_string(focus)? else {
                    return Ok(Vec::new());
                };
                match function {
                    F::Upper => string(s.to_uppercase()),
                    F::Lower => string(s.to_lowercase()),
                    F::Trim => string(s.trim()),
                    F::Length => value(Value::Integer(s.chars().count() as i64)),
                    _ => s
                        .chars()
                        .map(|c| Item::value(Value::String(c.to_string())))
                        .collect(),
                }
            }
            F::Replace => {
                let Some(s) = input_string(focus)? else {
                    return Ok(Vec::new());
                };
                let (Some(pattern), Some(with)) = (
                    self.arg_string(&args[0], scope)?,
                    self.arg_string(&args[1], scope)?,
                ) else {
                    return Ok(Vec::new());
                };
                if pattern.is_empty() {
                    let mut out = with.clone();
                    for c in s.chars() {
                        out.push(c);
                        out.push_str(&with);
                    }
                    string(out)
                } else {
                    string(s.replace(&pattern, &with))
                }
            }
            F::Matches | F::MatchesFull => {
                let Some(s) = input_string(focus)? else {
                    return Ok(Vec::new());
                };
                let Some(pattern) = self.arg_string(&args[0], scope)? else {
                    return Ok(Vec::new());
                };
                let pattern = if function == F::MatchesFull {
                    format!("^(?:{pattern})$")
                } else {
                    pattern
                };
                boolean(regex(&pattern)?.is_match(&s))
            }
            F::ReplaceMatches => {
                let Some(s) = input_string(focus)? else {
                    return Ok(Vec::new());
                };
                let (Some(pattern), Some(with)) = (
                    self.arg_string(&args[0], scope)?,
                    self.arg_string(&args[1], scope)?,
                ) else {
                    return Ok(Vec::new());
                };
                if pattern.is_empty() {
                    return Ok(string(s));
                }
                string(regex(&pattern)?.replace_all(&s, with.as_str()).into_owned())
            }
            F::Split => {
                let Some(s) = input_string(focus)? else {
                    return Ok(Vec::new());
                };
                let Some(sep) = self.arg_string(&args[0], scope)? else {
                    return Ok(Vec::new());
                };
                s.split(sep.as_str())
                    .map(|p| Item::value(Value::String(p.to_string())))
                    .collect()
            }
            F::Join => {
                let sep = match args.first() {
                    Some(a) => self.arg_string(a, scope)?.unwrap_or_default(),
                    None => String::new(),
                };
                let mut parts = Vec::with_capacity(focus.len());
                for item in focus {
                    match item.to_value() {
                        Some(Value::String(s)) => parts.push(s),
                        _ => return Err(Error::eval("join() needs strings")),
                    }
                }
                string(parts.join(&sep))
            }
            F::Encode | F::Decode | F::Escape | F::Unescape => {
                let Some(s) = input_string(focus)? else {
                    return Ok(Vec::new());
                };
                let Some(format) = self.arg_string(&args[0], scope)? else {
                    return Ok(Vec::new());
                };
                match crate::text::transcode(function, &format, &s) {
                    Some(out) => string(out),
                    None => Vec::new(),
                }
            }
            F::Abs | F::Ceiling | F::Floor | F::Truncate | F::Exp | F::Ln | F::Sqrt => {
                let Some(v) = input_number(focus)? else {
                    return Ok(Vec::new());
                };
                math(function, v)?.map(value).unwrap_or_default()
            }
            F::Round => {
                let Some(v) = input_number(focus)? else {
                    return Ok(Vec::new());
                };
                let digits = match args.first() {
                    Some(a) => self.arg_integer(a, scope)?.unwrap_or(0),
                    None => 0,
                };
                if digits < 0 {
                    return Err(Error::eval("round() needs a non-negative precision"));
                }
                let d = number(&v)?;
                value(Value::Decimal(d.round_dp_with_strategy(
                    digits as u32,
                    rust_decimal::RoundingStrategy::MidpointAwayFromZero,
                )))
            }
            F::Log | F::Power => {
                let Some(v) = input_number(focus)? else {
                    return Ok(Vec::new());
                };
                let Some(arg) = input_number(&self.arg(&args[0], scope)?)? else {
                    return Ok(Vec::new());
                };
                let (x, y) = (number(&v)?, number(&arg)?);
                if function == F::Log {
                    let (Some(xf), Some(yf)) = (x.to_f64(), y.to_f64()) else {
                        return Ok(Vec::new());
                    };
                    float(xf.ln() / yf.ln()).map(value).unwrap_or_default()
                } else if let (Value::Integer(a), Value::Integer(b)) = (&v, &arg) {
                    if *b < 0 {
                        return Ok(Vec::new());
                    }
                    a.checked_pow(*b as u32)
                        .map(|p| value(Value::Integer(p)))
                        .unwrap_or_default()
                } else {
                    let (Some(xf), Some(yf)) = (x.to_f64(), y.to_f64()) else {
                        return Ok(Vec::new());
                    };
                    float(xf.powf(yf)).map(value).unwrap_or_default()
                }
            }
            F::Children => {
                let mut out = Vec::new();
                for item in focus {
                    if let ItemKind::Node(n) = &item.0 {
                        all_children(n, &mut out);
                    }
                }
                out
            }
            F::Descendants => {
                let mut out = Vec::new();
                for item in focus {
                    if let ItemKind::Node(n) = &item.0 {
                        descendants(n, &mut out);
                    }
                }
                out
            }
            F::NodesByType | F::NodesByName => {
                let Some(wanted) = self.arg_string(&args[0], scope)? else {
                    return Ok(Vec::new());
                };
                let mut out = Vec::new();
                for item in focus {
                    if let ItemKind::Node(n) = &item.0 {
                        nodes_by(n, function == F::NodesByType, &wanted, &mut out);
                    }
                }
                out
            }
            F::Trace => focus.to_vec(),
            F::Now => value(Value::DateTime(self.now)),
            F::Today => value(Value::Date(self.now.date)),
            F::TimeOfDay => value(Value::Time(self.now.time.unwrap_or(Time {
                hour: 0,
                minute: Some(0),
                second: Some(0),
                millis: Some(0),
            }))),
            F::Type => focus.iter().map(type_info).collect(),
            F::Not => match to_boolean(focus)? {
                Some(b) => boolean(!b),
                None => Vec::new(),
            },
            F::Aggregate => {
                let mut total = match args.get(1) {
                    Some(init) => self.arg(init, scope)?,
                    None => Vec::new(),
                };
                for (i, item) in focus.iter().enumerate() {
                    let inner = Scope {
                        this: Some(item.clone()),
                        index: Some(i),
                        total: Some(total.clone()),
                    };
                    total = self.eval(&args[0], std::slice::from_ref(item), &inner)?;
                }
                total
            }
            F::Sort => self.sort(focus, args, scope)?,
            F::LowBoundary | F::HighBoundary => {
                let Some(item) = singleton(focus)? else {
                    return Ok(Vec::new());
                };
                let precision = match args.first() {
                    Some(a) => self.arg_integer(a, scope)?,
                    None => None,
                };
                let Some(v) = item.to_value() else {
                    return Ok(Vec::new());
                };
                crate::boundary::boundary(&v, precision, function == F::HighBoundary)
                    .map(value)
                    .unwrap_or_default()
            }
            F::Precision => {
                let Some(item) = singleton(focus)? else {
                    return Ok(Vec::new());
                };
                match item.to_value().and_then(|v| crate::boundary::precision(&v)) {
                    Some(p) => value(Value::Integer(p)),
                    None => Vec::new(),
                }
            }
            F::Comparable => {
                let (Some(Value::Quantity(a)), Some(Value::Quantity(b))) = (
                    singleton(focus)?.and_then(Item::to_value),
                    singleton(&self.arg(&args[0], scope)?)?.and_then(Item::to_value),
                ) else {
                    return Ok(Vec::new());
                };
                boolean(crate::ucum::compare(&a, &b, false).is_some())
            }
            F::Extension => {
                let Some(url) = self.arg_string(&args[0], scope)? else {
                    return Ok(Vec::new());
                };
                let mut out = Vec::new();
                for item in focus {
                    if let ItemKind::Node(n) = &item.0 {
                        let mut exts = Vec::new();
                        crate::eval::child_nodes(n, "extension", &mut exts);
                        out.extend(exts.into_iter().filter(|e| {
                            e.json().and_then(|j| j.get("url")).and_then(|u| u.as_str())
                                == Some(url.as_str())
                        }));
                    }
                }
                out
            }
            F::HasValue => boolean(
                focus.len() == 1
                    && matches!(&focus[0].0, ItemKind::Node(n) if n.json.is_some_and(|j| !j.is_object() && !j.is_array())),
            ),
            F::GetValue => match singleton(focus)? {
                Some(item @ Item(ItemKind::Node(n))) if n.json.is_some_and(|j| !j.is_object()) => {
                    item.to_value().map(value).unwrap_or_default()
                }
                _ => Vec::new(),
            },
            F::Resolve => focus.iter().filter_map(|i| self.resolve(i)).collect(),
            F::MemberOf => return Err(Error::eval("memberOf() needs a terminology service")),
            F::ConformsTo => {
                let Some(url) = self.arg_string(&args[0], scope)? else {
                    return Ok(Vec::new());
                };
                let Some(t) = url.strip_prefix("http://hl7.org/fhir/StructureDefinition/") else {
                    return Err(Error::eval(
                        "conformsTo() knows only the base FHIR profiles",
                    ));
                };
                if !fhir::types::is_resource_type(t) && fhir::types::intern(t).is_none() {
                    return Err(Error::eval("conformsTo() names an unknown profile"));
                }
                focus
                    .iter()
                    .map(|item| {
                        Item::value(Value::Boolean(is_type(
                            item,
                            &TypeSpec {
                                namespace: None,
                                name: t.to_string(),
                            },
                            false,
                        )))
                    })
                    .collect()
            }
            F::HtmlChecks => boolean(true),
        })
    }

    fn filter(
        &self,
        focus: &[Item<'a>],
        criteria: &Expr,
        scope: &Scope<'a>,
    ) -> Result<Collection<'a>, Error> {
        let mut out = Vec::new();
        for (item, r) in self.per_item(focus, criteria, scope)? {
            if to_boolean(&r)? == Some(true) {
                out.push(item);
            }
        }
        Ok(out)
    }

    fn repeat(
        &self,
        focus: &[Item<'a>],
        expr: &Expr,
        scope: &Scope<'a>,
    ) -> Result<Collection<'a>, Error> {
        let mut out: Collection<'a> = Vec::new();
        let mut frontier = focus.to_vec();
        while !frontier.is_empty() {
            let mut next = Vec::new();
            for (_, r) in self.per_item(&frontier, expr, scope)? {
                for item in r {
                    if !out.iter().any(|o| same_item(o, &item)) {
                        out.push(item.clone());
                        next.push(item);
                    }
                }
            }
            frontier = next;
        }
        Ok(out)
    }

    fn sort(
        &self,
        focus: &[Item<'a>],
        args: &[Expr],
        scope: &Scope<'a>,
    ) -> Result<Collection<'a>, Error> {
        let mut keyed = Vec::with_capacity(focus.len());
        for (i, item) in focus.iter().enumerate() {
            let inner = Scope {
                this: Some(item.clone()),
                index: Some(i),
                total: scope.total.clone(),
            };
            let mut keys = Vec::new();
            if args.is_empty() {
                keys.push((item.to_value(), false));
            }
            for arg in args {
                let (expr, descending) = match arg {
                    Expr::Negate(inner) => (inner.as_ref(), true),
                    other => (other, false),
                };
                let k = self.eval(expr, std::slice::from_ref(item), &inner)?;
                keys.push((singleton(&k)?.and_then(Item::to_value), descending));
            }
            keyed.push((keys, item.clone()));
        }
        let mut failure = None;
        keyed.sort_by(|(a, _), (b, _)| {
            for ((x, desc), (y, _)) in a.iter().zip(b) {
                let ord = match (x, y) {
                    (None, None) => Ordering::Equal,
                    // Empty keys sort first, whatever the direction.
                    (None, Some(_)) => return Ordering::Less,
                    (Some(_), None) => return Ordering::Greater,
                    (Some(x), Some(y)) => match compare_values(x, y) {
                        Ok(Some(o)) => o,
                        Ok(None) => Ordering::Equal,
                        Err(e) => {
                            failure = Some(e);
                            Ordering::Equal
                        }
                    },
                };
                let ord = if *desc { ord.reverse() } else { ord };
                if ord != Ordering::Equal {
                    return ord;
                }
            }
            Ordering::Equal
        });
        if let Some(e) = failure {
            return Err(e);
        }
        Ok(keyed.into_iter().map(|(_, item)| item).collect())
    }

    /// Resolves a reference within the evaluated resource: `#id` to a contained resource, or
    /// `Type/id` / a full URL to a Bundle entry.
    fn resolve(&self, item: &Item<'a>) -> Option<Item<'a>> {
        let reference = match item.to_value() {
            Some(Value::String(s)) => s,
            _ => item.json()?.get("reference")?.as_str()?.to_string(),
        };
        let root = self.root;
        let node = |json: &'a serde_json::Value, path: Path<'a>| {
            Item::node(Node {
                json: Some(json),
                companion: None,
                companion_path: Path::root(),
                ty: resource_type(json),
                path,
            })
        };
        if let Some(id) = reference.strip_prefix('#') {
            let (key, contained) = root.as_object()?.get_key_value("contained")?;
            let list = contained.as_array()?;
            let i = list
                .iter()
                .position(|c| c.get("id").and_then(|v| v.as_str()) == Some(id))?;
            return Some(node(&list[i], Path::root().key(key).index(i)));
        }
        let (key, entries) = root.as_object()?.get_key_value("entry")?;
        for (i, entry) in entries.as_array()?.iter().enumerate() {
            let (rkey, resource) = entry.as_object()?.get_key_value("resource")?;
            let full_url = entry.get("fullUrl").and_then(|u| u.as_str()).unwrap_or("");
            let local = format!(
                "{}/{}",
                resource
                    .get("resourceType")
                    .and_then(|t| t.as_str())
                    .unwrap_or(""),
                resource.get("id").and_then(|t| t.as_str()).unwrap_or("")
            );
            if full_url == reference
                || local == reference
                || full_url.ends_with(&format!("/{reference}"))
            {
                return Some(node(resource, Path::root().key(key).index(i).key(rkey)));
            }
        }
        None
    }
}

/// Identity of two items for `repeat()`: the same node, or equal values.
fn same_item(a: &Item<'_>, b: &Item<'_>) -> bool {
    match (&a.0, &b.0) {
        (ItemKind::Node(x), ItemKind::Node(y)) => x.path.same_as(&y.path),
        _ => equals_items(a, b) == Some(true),
    }
}

/// All descendants of a node, depth-first in document order.
fn descendants<'a>(node: &Node<'a>, out: &mut Collection<'a>) {
    let mut children = Vec::new();
    all_children(node, &mut children);
    for child in children {
        out.push(child.clone());
        if let ItemKind::Node(n) = &child.0 {
            descendants(n, out);
        }
    }
}

/// The anonymizer's `nodesByType('T')` (exact instance type) and `nodesByName('n')`: matching
/// descendants, not looking inside nested resources.
fn nodes_by<'a>(node: &Node<'a>, by_type: bool, wanted: &str, out: &mut Collection<'a>) {
    let mut children = Vec::new();
    all_children(node, &mut children);
    for child in children {
        let ItemKind::Node(n) = &child.0 else {
            continue;
        };
        // A nested resource, not a backbone element with a `resourceType` element of its own
        // (`ExampleScenario.instance`).
        let is_resource = n.json.is_some_and(|j| j.get("resourceType").is_some())
            && (n.ty == NodeType::UNKNOWN || fhir::types::is_resource_type(n.ty.code));
        if is_resource {
            continue;
        }
        let matched = if by_type {
            n.ty.code == wanted
        } else {
            n.path.last_key() == Some(wanted)
        };
        if matched {
            out.push(child.clone());
        }
        nodes_by(n, by_type, wanted, out);
    }
}

fn type_info<'a>(item: &Item<'a>) -> Item<'a> {
    let (ns, name) = item.type_name();
    Item(ItemKind::TypeInfo(ns, name))
}

fn regex(pattern: &str) -> Result<regex::Regex, Error> {
    regex::RegexBuilder::new(pattern)
        .dot_matches_new_line(true)
        .build()
        .map_err(|_| Error::eval("invalid regular expression"))
}

fn number(v: &Value) -> Result<Decimal, Error> {
    match v {
        Value::Integer(i) => Ok(Decimal::from(*i)),
        Value::Decimal(d) => Ok(*d),
        Value::Quantity(q) => Ok(q.value),
        _ => Err(Error::eval("expected a number")),
    }
}

fn float(f: f64) -> Option<Value> {
    if !f.is_finite() {
        return None;
    }
    Decimal::from_f64_retain(f).map(|d| Value::Decimal(d.round_dp(8).normalize()))
}

fn math(function: Function, v: Value) -> Result<Option<Value>, Error> {
    use Function as F;
    if let Value::Quantity(q) = &v {
        return Ok(math(function, Value::Decimal(q.value))?.map(|r| match r {
            Value::Decimal(d) => Value::Quantity(Quantity {
                value: d,
                unit: q.unit.clone(),
            }),
            Value::Integer(i) => Value::Quantity(Quantity {
                value: Decimal::from(i),
                unit: q.unit.clone(),
            }),
            other => other,
        }));
    }
    let d = number(&v)?;
    let int = |d: Decimal| d.to_i64().map(Value::Integer);
    Ok(match function {
        F::Abs => match v {
            Value::Integer(i) => Some(Value::Integer(i.abs())),
            _ => Some(Value::Decimal(d.abs())),
        },
        F::Ceiling => int(d.ceil()),
        F::Floor => int(d.floor()),
        F::Truncate => int(d.trunc()),
        F::Exp => d.to_f64().and_then(|f| float(f.exp())),
        F::Ln => d.to_f64().and_then(|f| float(f.ln())),
        _ => {
            if d.is_sign_negative() && !d.is_zero() {
                None
            } else {
                d.sqrt().map(|r| Value::Decimal(r.round_dp(8).normalize()))
            }
        }
    })
}

fn convert<'a>(
    focus: &[Item<'a>],
    f: fn(&Value) -> Option<Value>,
) -> Result<Collection<'a>, Error> {
    let Some(item) = singleton(focus)? else {
        return Ok(Vec::new());
    };
    Ok(item
        .to_value()
        .and_then(|v| f(&v))
        .map(value)
        .unwrap_or_default())
}

fn converts<'a>(
    focus: &[Item<'a>],
    f: fn(&Value) -> Option<Value>,
) -> Result<Collection<'a>, Error> {
    let Some(item) = singleton(focus)? else {
        return Ok(Vec::new());
    };
    Ok(boolean(item.to_value().and_then(|v| f(&v)).is_some()))
}

fn to_boolean_value(v: &Value) -> Option<Value> {
    let b = match v {
        Value::Boolean(b) => *b,
        Value::Integer(1) => true,
        Value::Integer(0) => false,
        Value::Decimal(d) if *d == Decimal::ONE => true,
        Value::Decimal(d) if d.is_zero() => false,
        Value::String(s) => match s.to_lowercase().as_str() {
            "true" | "t" | "yes" | "y" | "1" | "1.0" => true,
            "false" | "f" | "no" | "n" | "0" | "0.0" => false,
            _ => return None,
        },
        _ => return None,
    };
    Some(Value::Boolean(b))
}

fn to_integer_value(v: &Value) -> Option<Value> {
    match v {
        Value::Integer(i) => Some(Value::Integer(*i)),
        Value::Boolean(b) => Some(Value::Integer(*b as i64)),
        Value::String(s) => {
            let t = s.strip_prefix('+').unwrap_or(s);
            let digits = t.strip_prefix('-').unwrap_or(t);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            t.parse().ok().map(Value::Integer)
        }
        _ => None,
    }
}

fn to_decimal_value(v: &Value) -> Option<Value> {
    match v {
        Value::Integer(i) => Some(Value::Decimal(Decimal::from(*i))),
        Value::Decimal(d) => Some(Value::Decimal(*d)),
        Value::Boolean(b) => Some(Value::Decimal(if *b {
            Decimal::ONE
        } else {
            Decimal::ZERO
        })),
        Value::String(s) => {
            let t = s.strip_prefix('+').unwrap_or(s);
            let body = t.strip_prefix('-').unwrap_or(t);
            let valid = !body.is_empty()
                && body.split('.').count() <= 2
                && body
                    .split('.')
                    .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
            if !valid {
                return None;
            }
            t.parse().ok().map(Value::Decimal)
        }
        _ => None,
    }
}

fn to_date_value(v: &Value) -> Option<Value> {
    match v {
        Value::Date(d) => Some(Value::Date(*d)),
        Value::DateTime(d) => Some(Value::Date(d.date)),
        Value::String(s) => Date::parse(s)
            .or_else(|| DateTime::parse(s).map(|d| d.date))
            .map(Value::Date),
        _ => None,
    }
}

fn to_datetime_value(v: &Value) -> Option<Value> {
    match v {
        Value::DateTime(d) => Some(Value::DateTime(*d)),
        Value::Date(d) => Some(Value::DateTime(DateTime {
            date: *d,
            time: None,
            offset_minutes: None,
        })),
        Value::String(s) => DateTime::parse(s).map(Value::DateTime),
        _ => None,
    }
}

fn to_time_value(v: &Value) -> Option<Value> {
    match v {
        Value::Time(t) => Some(Value::Time(*t)),
        Value::String(s) => Time::parse(s).map(Value::Time),
        _ => None,
    }
}

fn to_string_value(v: &Value) -> Option<Value> {
    Some(Value::String(v.to_string()))
}

/// Converts to a Quantity: numbers get unit `1`; strings are parsed as `number 'unit'` or
/// `number calendar-unit`.
fn to_quantity_value(v: Value) -> Option<Quantity> {
    match v {
        Value::Quantity(q) => Some(q),
        Value::Integer(i) => Some(Quantity {
            value: Decimal::from(i),
            unit: "1".into(),
        }),
        Value::Decimal(d) => Some(Quantity {
            value: d,
            unit: "1".into(),
        }),
        Value::Boolean(b) => Some(Quantity {
            value: if b { Decimal::ONE } else { Decimal::ZERO },
            unit: "1".into(),
        }),
        Value::String(s) => {
            let s = s.trim();
            let (num, unit) = match s.find(' ') {
                Some(i) => (&s[..i], s[i..].trim()),
                None => (s, ""),
            };
            let Some(Value::Decimal(value)) = to_decimal_value(&Value::String(num.to_string()))
            else {
                return None;
            };
            let unit = if unit.is_empty() {
                "1".to_string()
            } else if let Some(quoted) = unit.strip_prefix('\'').and_then(|u| u.strip_suffix('\''))
            {
                quoted.to_string()
            } else if crate::value::is_calendar_unit(unit) {
                unit.to_string()
            } else {
                return None;
            };
            Some(Quantity { value, unit })
        }
        _ => None,
    }
}
