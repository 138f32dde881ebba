//! Search requests and their translation to SQL over the index tables.

use crate::StoredResource;
use crate::error::{Error, Result};
use crate::index::{self, normalize};
use crate::sql::{Arg, Dialect, Sql};
use crate::time::Range;
use fhir::reference::Reference;
use fhir::search::SearchParamKind;

/// A search over the current, live resources of one type.
///
/// Criteria are AND-ed; the values of one criterion are OR-ed. What each kind matches:
/// - token `[system]|[code]`: `code` (any system), `system|code`, `|code` (no system),
///   `system|` (any code of the system); modifier `:not` inverts;
/// - string: a prefix of any [`normalize`](crate::normalize)d part; `:exact` the whole text
///   as written; `:contains` any normalised substring;
/// - date: the FHIR prefixes over the value's range and the search value's range (its
///   precision): `eq` (default) the value lies within, `ne` it does not, `gt`/`lt` it reaches
///   past the end/before the start, `ge`/`le` those or `eq`, `sa`/`eb` it starts after/ends
///   before, `ap` the ranges overlap;
/// - reference: `id`, `Type/id` or an absolute URL, with an optional `:Type` modifier;
/// - `_id`: one of the ids (`:not`: none of them); `_lastUpdated`: a date over the instant;
/// - every parameter: `:missing=true|false`.
///
/// Other parameters and modifiers are [`Error::UnsupportedSearch`]; malformed values
/// [`Error::InvalidSearch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchQuery {
    /// The resource type searched.
    pub resource_type: String,
    /// The criteria, all of which must match.
    pub criteria: Vec<Criterion>,
    /// The order of the results.
    pub sort: Sort,
    /// The page size (`_count`); 0 asks for the total only.
    pub count: usize,
    /// How many matches to skip (offset paging).
    pub offset: usize,
    /// Whether to count all matches (`_total=accurate`, `_summary=count`).
    pub total: bool,
}

impl SearchQuery {
    /// All resources of a type: no criteria, storage order, 20 per page, no total.
    pub fn new(resource_type: &str) -> SearchQuery {
        SearchQuery {
            resource_type: resource_type.to_owned(),
            criteria: Vec::new(),
            sort: Sort::Stored,
            count: 20,
            offset: 0,
            total: false,
        }
    }
}

/// The order of search results. Each is total and stable: ties are broken by storage order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sort {
    /// The order in which the current versions were written.
    #[default]
    Stored,
    /// `_sort=_lastUpdated`: oldest first (the same as storage order, since instants
    /// increase with each write transaction).
    LastUpdated,
    /// `_sort=-_lastUpdated`: newest first.
    LastUpdatedDesc,
}

/// One search criterion: a parameter, an optional modifier, and values of which one must match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Criterion {
    /// The parameter code (`birthdate`, `_lastUpdated`).
    pub code: String,
    /// The modifier after `:` (`exact`, `contains`, `not`, `missing`, a resource type).
    pub modifier: Option<String>,
    /// The values (date values carry their prefix: `ge2020-01-01`).
    pub values: Vec<String>,
}

impl Criterion {
    /// A criterion from a query parameter as it appears in a URL (after percent-decoding):
    /// `name` is `code[:modifier]`, `value` is a comma-separated list in which `\,` is a
    /// literal comma.
    pub fn parse(name: &str, value: &str) -> Criterion {
        let (code, modifier) = match name.split_once(':') {
            Some((code, modifier)) => (code, Some(modifier.to_owned())),
            None => (name, None),
        };
        let mut values = vec![String::new()];
        let mut chars = value.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some(',') => values.last_mut().map_or((), |v| v.push(',')),
                    Some(other) => {
                        let last = values.last_mut().expect("values is never empty");
                        last.push('\\');
                        last.push(other);
                    }
                    None => values.last_mut().map_or((), |v| v.push('\\')),
                },
                ',' => values.push(String::new()),
                _ => values.last_mut().map_or((), |v| v.push(c)),
            }
        }
        Criterion {
            code: code.to_owned(),
            modifier,
            values,
        }
    }
}

/// One page of search results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchPage {
    /// The matching resources of this page.
    pub resources: Vec<StoredResource>,
    /// How many resources match in all, when asked for.
    pub total: Option<u64>,
    /// Whether more matches follow this page.
    pub more: bool,
}

fn unsupported(resource_type: &str, code: &str, detail: &str) -> Error {
    Error::UnsupportedSearch {
        resource_type: resource_type.to_owned(),
        code: code.to_owned(),
        detail: detail.to_owned(),
    }
}

fn invalid(code: &str, reason: &str) -> Error {
    Error::InvalidSearch {
        code: code.to_owned(),
        reason: reason.to_owned(),
    }
}

/// Appends ` AND (…)` for each criterion to `sql`, whose resource rows are aliased `r`.
pub(crate) fn push_criteria(sql: &mut Sql, dialect: Dialect, query: &SearchQuery) -> Result<()> {
    for criterion in &query.criteria {
        sql.push(" AND ");
        push_criterion(sql, dialect, &query.resource_type, criterion)?;
    }
    Ok(())
}

fn push_criterion(
    sql: &mut Sql,
    dialect: Dialect,
    resource_type: &str,
    criterion: &Criterion,
) -> Result<()> {
    let code = criterion.code.as_str();
    let modifier = criterion.modifier.as_deref();
    if criterion.values.is_empty() || criterion.values.iter().any(String::is_empty) {
        return Err(invalid(code, "empty value"));
    }
    let modifier_name = |m: &str| format!("{code}:{m}");
    if code == "_id" {
        return match modifier {
            None | Some("not") => {
                let list = sql.arg(Arg::TextList(criterion.values.clone()));
                let condition = dialect.in_list("r.id", &list);
                let negate = if modifier.is_some() { "NOT " } else { "" };
                sql.push(&format!("{negate}{condition}"));
                Ok(())
            }
            Some("missing") => push_row_missing(sql, criterion),
            Some(m) => Err(unsupported(resource_type, &modifier_name(m), "")),
        };
    }
    if code == "_lastUpdated" {
        return match modifier {
            None => push_dates(
                sql,
                code,
                &criterion.values,
                "r.last_updated",
                "(r.last_updated + 1)",
            ),
            Some("missing") => push_row_missing(sql, criterion),
            Some(m) => Err(unsupported(resource_type, &modifier_name(m), "")),
        };
    }
    let Some(plan) = index::plan(resource_type, code) else {
        return Err(unsupported(
            resource_type,
            code,
            ": not indexed by this server",
        ));
    };
    let kind = plan.param.kind;
    let table = match kind {
        SearchParamKind::Token => "idx_token",
        SearchParamKind::String => "idx_string",
        SearchParamKind::Date => "idx_date",
        _ => "idx_ref",
    };
    if modifier == Some("missing") {
        let missing = missing_flag(criterion)?;
        let param = sql.arg(Arg::Text(plan.param.code.to_owned()));
        sql.push(&format!(
            "{}EXISTS (SELECT 1 FROM {table} i WHERE i.seq = r.seq AND i.param = {param})",
            if missing { "NOT " } else { "" }
        ));
        return Ok(());
    }
    let negate = match (kind, modifier) {
        (SearchParamKind::Token, Some("not")) => true,
        (SearchParamKind::String, None | Some("exact" | "contains"))
        | (SearchParamKind::Token | SearchParamKind::Date, None)
        | (SearchParamKind::Reference, None) => false,
        (SearchParamKind::Reference, Some(m))
            if reference_type(plan.param.targets, m).is_some() =>
        {
            false
        }
        (_, Some(m)) => return Err(unsupported(resource_type, &modifier_name(m), "")),
        (_, None) => return Err(unsupported(resource_type, code, "")),
    };
    let type_arg = sql.arg(Arg::Text(resource_type.to_owned()));
    let param_arg = sql.arg(Arg::Text(plan.param.code.to_owned()));
    sql.push(&format!(
        "r.seq {}IN (SELECT i.seq FROM {table} i WHERE i.type = {type_arg} AND i.param = {param_arg} AND (",
        if negate { "NOT " } else { "" }
    ));
    match kind {
        SearchParamKind::Token => push_tokens(sql, &criterion.values),
        SearchParamKind::String => push_strings(sql, dialect, modifier, &criterion.values),
        SearchParamKind::Date => push_dates(sql, code, &criterion.values, "i.low", "i.high")?,
        _ => push_refs(sql, code, plan.param.targets, modifier, &criterion.values)?,
    }
    sql.push("))");
    Ok(())
}

fn missing_flag(criterion: &Criterion) -> Result<bool> {
    match criterion.values.as_slice() {
        [value] if value == "true" => Ok(true),
        [value] if value == "false" => Ok(false),
        _ => Err(invalid(&criterion.code, ":missing takes true or false")),
    }
}

/// `:missing` on a column every resource has.
fn push_row_missing(sql: &mut Sql, criterion: &Criterion) -> Result<()> {
    let missing = missing_flag(criterion)?;
    sql.push(if missing { "1 = 0" } else { "1 = 1" });
    Ok(())
}

fn push_or(sql: &mut Sql, index: usize) {
    if index > 0 {
        sql.push(" OR ");
    }
}

fn push_tokens(sql: &mut Sql, values: &[String]) {
    for (n, value) in values.iter().enumerate() {
        push_or(sql, n);
        let condition = match value.split_once('|') {
            None => format!("i.code = {}", sql.arg(Arg::Text(value.clone()))),
            Some((system, "")) => format!("i.system = {}", sql.arg(Arg::Text(system.to_owned()))),
            Some((system, code)) => {
                let system = sql.arg(Arg::Text(system.to_owned()));
                let code = sql.arg(Arg::Text(code.to_owned()));
                format!("i.system = {system} AND i.code = {code}")
            }
        };
        sql.push(&format!("({condition})"));
    }
}

fn push_strings(sql: &mut Sql, dialect: Dialect, modifier: Option<&str>, values: &[String]) {
    for (n, value) in values.iter().enumerate() {
        push_or(sql, n);
        let condition = match modifier {
            Some("exact") => format!("i.exact = {}", sql.arg(Arg::Text(value.clone()))),
            Some(_) => {
                let needle = sql.arg(Arg::Text(normalize(value)));
                dialect.contains("i.norm", &needle)
            }
            None => {
                let prefix = normalize(value);
                let upper = format!("{prefix}\u{10FFFF}");
                let low = sql.arg(Arg::Text(prefix));
                let high = sql.arg(Arg::Text(upper));
                format!("i.norm >= {low} AND i.norm < {high}")
            }
        };
        sql.push(&format!("({condition})"));
    }
}

/// The date prefixes of FHIR search.
const PREFIXES: &[&str] = &["eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap"];

/// Date conditions over a value range `[low, high)` given by two SQL expressions.
fn push_dates(sql: &mut Sql, code: &str, values: &[String], low: &str, high: &str) -> Result<()> {
    sql.push("(");
    for (n, value) in values.iter().enumerate() {
        push_or(sql, n);
        let (prefix, date) = match value.get(..2) {
            Some(p) if PREFIXES.contains(&p) => (p, &value[2..]),
            _ => ("eq", value.as_str()),
        };
        let range = Range::parse(date).ok_or_else(|| invalid(code, "not a FHIR date"))?;
        // Only the bounds a condition uses become arguments: PostgreSQL cannot type unused ones.
        let start = match prefix {
            "gt" | "sa" => String::new(),
            _ => sql.arg(Arg::Int(range.low)),
        };
        let end = match prefix {
            "lt" | "eb" => String::new(),
            _ => sql.arg(Arg::Int(range.high)),
        };
        let within = format!("{low} >= {start} AND {high} <= {end}");
        let condition = match prefix {
            "eq" => within,
            "ne" => format!("NOT ({within})"),
            "gt" => format!("{high} > {end}"),
            "lt" => format!("{low} < {start}"),
            "ge" => format!("{high} > {end} OR ({within})"),
            "le" => format!("{low} < {start} OR ({within})"),
            "sa" => format!("{low} >= {end}"),
            "eb" => format!("{high} <= {start}"),
            _ => format!("{low} < {end} AND {high} > {start}"),
        };
        sql.push(&format!("({condition})"));
    }
    sql.push(")");
    Ok(())
}

/// The resource type a reference modifier names, if it is one of the parameter's targets
/// (any resource type when the parameter declares none).
fn reference_type(targets: &[&'static str], modifier: &str) -> Option<&'static str> {
    let resource_type =
        fhir::types::intern(modifier).filter(|t| fhir::types::is_concrete_resource_type(t))?;
    (targets.is_empty() || targets.contains(&resource_type)).then_some(resource_type)
}

fn push_refs(
    sql: &mut Sql,
    code: &str,
    targets: &[&'static str],
    modifier: Option<&str>,
    values: &[String],
) -> Result<()> {
    let modifier_type = modifier.and_then(|m| reference_type(targets, m));
    for (n, value) in values.iter().enumerate() {
        push_or(sql, n);
        let (value_type, id) = if value.contains('/') {
            let parsed = Reference::parse(value);
            match (parsed, parsed.resource_type(), parsed.id()) {
                (Reference::Relative { .. } | Reference::Absolute { .. }, Some(t), Some(id)) => {
                    (Some(t), id)
                }
                _ => return Err(invalid(code, "not an id, Type/id or URL")),
            }
        } else {
            (None, value.as_str())
        };
        let condition = match (value_type, modifier_type) {
            (Some(a), Some(b)) if a != b => "1 = 0".to_owned(),
            (Some(t), _) | (None, Some(t)) => {
                let id_arg = sql.arg(Arg::Text(id.to_owned()));
                let type_arg = sql.arg(Arg::Text(t.to_owned()));
                format!("i.target_id = {id_arg} AND i.target_type = {type_arg}")
            }
            (None, None) => format!("i.target_id = {}", sql.arg(Arg::Text(id.to_owned()))),
        };
        sql.push(&format!("({condition})"));
    }
    Ok(())
}

/// The `ORDER BY` clause of a sort. Storage order is `lastUpdated` order (instants increase
/// with `seq`), so both sorts walk the `seq` index.
pub(crate) fn order_by(sort: Sort) -> &'static str {
    match sort {
        Sort::Stored | Sort::LastUpdated => " ORDER BY r.seq",
        Sort::LastUpdatedDesc => " ORDER BY r.seq DESC",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn criteria_split_on_unescaped_commas() {
        let c = Criterion::parse("name:exact", r"a\,b,c");
        assert_eq!(c.code, "name");
        assert_eq!(c.modifier.as_deref(), Some("exact"));
        assert_eq!(c.values, ["a,b", "c"]);
        assert_eq!(Criterion::parse("gender", "female").values, ["female"]);
    }
}
