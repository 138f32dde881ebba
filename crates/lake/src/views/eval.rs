//! Compiling and evaluating a ViewDefinition's selects over one resource.

use fhirpath::{Environment, Expression, Item};
use serde_json::Value;

use super::{Column, ViewDefinition, normalize_type};

/// One cell of a view row.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// No value.
    Null,
    /// A boolean column's value.
    Bool(bool),
    /// An integer column's value.
    Int(i64),
    /// A decimal column's value.
    Float(f64),
    /// A string, code, date or time column's value (dates keep their FHIR text).
    Text(String),
    /// A `collection` column's values, as text.
    List(Vec<String>),
}

/// A view's `constant`s as FHIRPath literals, by name.
pub(super) type Constants = Vec<(String, String)>;

/// Reads `constant[]` into FHIRPath literal text.
pub(super) fn constants(value: Option<&Value>) -> Result<Constants, String> {
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    let items = value.as_array().ok_or("`constant` must be an array")?;
    items
        .iter()
        .map(|c| {
            let name = c
                .get("name")
                .and_then(Value::as_str)
                .ok_or("a constant needs a `name`")?;
            let (key, v) = c
                .as_object()
                .and_then(|m| m.iter().find(|(k, _)| k.starts_with("value")))
                .ok_or_else(|| format!("constant `{name}` has no value[x]"))?;
            let literal = match (&key["value".len()..], v) {
                ("Boolean", Value::Bool(b)) => b.to_string(),
                (
                    "Integer" | "Decimal" | "PositiveInt" | "UnsignedInt" | "Integer64",
                    Value::Number(n),
                ) => n.to_string(),
                ("Date" | "DateTime" | "Instant", Value::String(s)) => format!("@{s}"),
                ("Time", Value::String(s)) => format!("@T{s}"),
                (_, Value::String(s)) => string_literal(s),
                _ => return Err(format!("constant `{name}` has an unsupported {key}")),
            };
            Ok((name.to_string(), literal))
        })
        .collect()
}

/// A FHIRPath string literal.
fn string_literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\'' => out.push_str("\\'"),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// Replaces `%name` for each constant with its literal, outside string literals and quoted
/// identifiers.
fn substitute(path: &str, constants: &Constants) -> Result<String, String> {
    if constants.is_empty() || !path.contains('%') {
        return Ok(path.to_string());
    }
    let mut out = String::with_capacity(path.len());
    let mut chars = path.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '\'' | '`' => {
                out.push(c);
                while let Some((_, d)) = chars.next() {
                    out.push(d);
                    if d == '\\' {
                        if let Some((_, e)) = chars.next() {
                            out.push(e);
                        }
                    } else if d == c {
                        break;
                    }
                }
            }
            '%' => {
                let rest = &path[i + 1..];
                let len = rest
                    .find(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_'))
                    .unwrap_or(rest.len());
                let name = &rest[..len];
                match constants.iter().find(|(n, _)| n == name) {
                    Some((_, literal)) => {
                        out.push('(');
                        out.push_str(literal);
                        out.push(')');
                        for _ in 0..len {
                            chars.next();
                        }
                    }
                    None => out.push('%'),
                }
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

/// A compiled path: a FHIRPath expression, or one ending in `getResourceKey()` or
/// `getReferenceKey([Type])`, which the view evaluator implements itself.
#[derive(Debug, Clone)]
pub(crate) enum Compiled {
    /// A plain FHIRPath expression.
    Path(Expression),
    /// `[expr.]getResourceKey()`: the `id` of the resource(s) `expr` selects.
    ResourceKey(Option<Expression>),
    /// `expr.getReferenceKey([Type])`: the id each Reference names (of `Type`, if given).
    ReferenceKey(Option<Expression>, Option<String>),
}

impl Compiled {
    pub(super) fn compile(path: &str, constants: &Constants) -> Result<Compiled, String> {
        let text = substitute(path.trim(), constants)?;
        let parse =
            |source: &str| Expression::parse(source).map_err(|e| format!("path `{path}`: {e}"));
        let prefix = |head: &str| -> Result<Option<Expression>, String> {
            let head = head.trim().trim_end_matches('.');
            if head.is_empty() {
                Ok(None)
            } else {
                parse(head).map(Some)
            }
        };
        if let Some(head) = text.strip_suffix("getResourceKey()") {
            return Ok(Compiled::ResourceKey(prefix(head)?));
        }
        if let Some(open) = text.rfind("getReferenceKey(")
            && let Some(args) = text[open + "getReferenceKey(".len()..].strip_suffix(')')
        {
            let ty = args.trim().trim_matches(|c| c == '\'' || c == '`');
            let ty = (!ty.is_empty()).then(|| ty.to_string());
            return Ok(Compiled::ReferenceKey(prefix(&text[..open])?, ty));
        }
        if text.contains("getResourceKey(") || text.contains("getReferenceKey(") {
            return Err(format!(
                "path `{path}`: getResourceKey() and getReferenceKey() are supported at the end of a path only"
            ));
        }
        parse(&text).map(Compiled::Path)
    }

    /// The items the path selects from `ctx` (a plain expression only, as forEach needs).
    fn items<'a>(&self, ctx: &Ctx<'a>) -> Result<Vec<Item<'a>>, String> {
        match self {
            Compiled::Path(expr) => ctx.eval(expr),
            _ => Err("getResourceKey() and getReferenceKey() cannot be used in forEach".into()),
        }
    }

    /// The values the path gives on `ctx`, as cells to convert.
    fn values<'a>(&self, ctx: &Ctx<'a>) -> Result<Vec<Scalar>, String> {
        let nodes = |head: &Option<Expression>| -> Result<Vec<&'a Value>, String> {
            match head {
                None => Ok(vec![ctx.json]),
                Some(expr) => Ok(ctx.eval(expr)?.iter().filter_map(Item::json).collect()),
            }
        };
        match self {
            Compiled::Path(expr) => Ok(ctx.eval(expr)?.iter().map(Scalar::of).collect()),
            Compiled::ResourceKey(head) => Ok(nodes(head)?
                .into_iter()
                .filter_map(|n| n.get("id").and_then(Value::as_str))
                .map(|id| Scalar::Text(id.to_string()))
                .collect()),
            Compiled::ReferenceKey(head, ty) => Ok(nodes(head)?
                .into_iter()
                .filter_map(|n| n.get("reference").and_then(Value::as_str))
                .filter_map(|r| {
                    let parsed = fhir::reference::parse(r);
                    let matches = ty
                        .as_deref()
                        .is_none_or(|t| parsed.resource_type() == Some(t));
                    matches.then(|| parsed.id().map(|id| Scalar::Text(id.to_string())))?
                })
                .collect()),
        }
    }
}

/// The node a select is evaluated on: the resource, or an item a forEach selected.
struct Ctx<'a> {
    resource: &'a Value,
    json: &'a Value,
    ty: Option<&'static str>,
}

impl<'a> Ctx<'a> {
    fn eval(&self, expr: &Expression) -> Result<Vec<Item<'a>>, String> {
        let env = Environment::new().with_resource(self.resource);
        let env = match self.ty {
            Some(ty) => env.with_context_type(ty),
            None => env,
        };
        expr.evaluate_with(self.json, &env)
            .map_err(|e| format!("path `{}`: {e}", expr.source()))
    }
}

/// A value a column path produced, before conversion to the column's type.
enum Scalar {
    /// A FHIRPath system value.
    Value(fhirpath::Value),
    /// Text: a JSON string as written, or a complex node as JSON.
    Text(String),
}

impl Scalar {
    fn of(item: &Item<'_>) -> Scalar {
        if let Some(Value::String(s)) = item.json() {
            return Scalar::Text(s.clone());
        }
        match item.to_value() {
            Some(fhirpath::Value::String(s)) => Scalar::Text(s),
            Some(v) => Scalar::Value(v),
            None => Scalar::Text(item.json().map(Value::to_string).unwrap_or_default()),
        }
    }

    fn text(&self) -> String {
        match self {
            Scalar::Value(v) => v.to_string(),
            Scalar::Text(s) => s.clone(),
        }
    }

    /// Converts to a cell of FHIR type `code`; `Err` names the target type.
    fn cell(&self, code: &str) -> Result<Cell, &'static str> {
        use fhirpath::Value as V;
        match super::scalar_type(code) {
            arrow_schema::DataType::Boolean => match self {
                Scalar::Value(V::Boolean(b)) => Ok(Cell::Bool(*b)),
                Scalar::Text(s) if s == "true" || s == "false" => Ok(Cell::Bool(s == "true")),
                _ => Err("boolean"),
            },
            arrow_schema::DataType::Int64 => match self {
                Scalar::Value(V::Integer(i)) => Ok(Cell::Int(*i)),
                Scalar::Value(V::Decimal(d)) if d.fract().is_zero() => {
                    d.to_string().parse().map(Cell::Int).map_err(|_| "integer")
                }
                Scalar::Text(s) => s.trim().parse().map(Cell::Int).map_err(|_| "integer"),
                _ => Err("integer"),
            },
            arrow_schema::DataType::Float64 => match self {
                Scalar::Value(V::Integer(i)) => Ok(Cell::Float(*i as f64)),
                Scalar::Value(V::Decimal(d)) => d
                    .to_string()
                    .parse()
                    .map(Cell::Float)
                    .map_err(|_| "decimal"),
                Scalar::Value(V::Quantity(q)) => q
                    .value
                    .to_string()
                    .parse()
                    .map(Cell::Float)
                    .map_err(|_| "decimal"),
                Scalar::Text(s) => s.trim().parse().map(Cell::Float).map_err(|_| "decimal"),
                _ => Err("decimal"),
            },
            _ => Ok(Cell::Text(self.text())),
        }
    }
}

/// A compiled `select` element.
#[derive(Debug, Clone)]
pub(crate) struct Select {
    for_each: Option<(Compiled, bool)>,
    /// (output column index, path, collection, FHIR type)
    columns: Vec<(usize, Compiled, bool, String)>,
    selects: Vec<Select>,
    union_all: Vec<Select>,
}

impl Select {
    /// Compiles a select, appending its columns to `out` in output order.
    pub(super) fn compile(
        value: &Value,
        constants: &Constants,
        out: &mut Vec<Column>,
    ) -> Result<Select, String> {
        let for_each = match (value.get("forEach"), value.get("forEachOrNull")) {
            (Some(_), Some(_)) => return Err("a select has both forEach and forEachOrNull".into()),
            (Some(p), None) | (None, Some(p)) => {
                let path = p.as_str().ok_or("forEach must be a string")?;
                Some((
                    Compiled::compile(path, constants)?,
                    value.get("forEachOrNull").is_some(),
                ))
            }
            (None, None) => None,
        };
        let mut columns = Vec::new();
        for column in array(value, "column")? {
            let name = column
                .get("name")
                .and_then(Value::as_str)
                .ok_or("a column needs a `name`")?;
            let path = column
                .get("path")
                .and_then(Value::as_str)
                .ok_or_else(|| format!("column `{name}` needs a `path`"))?;
            let collection = column.get("collection").and_then(Value::as_bool) == Some(true);
            let fhir_type = normalize_type(
                column
                    .get("type")
                    .and_then(Value::as_str)
                    .unwrap_or("string"),
            );
            columns.push((
                out.len(),
                Compiled::compile(path, constants)?,
                collection,
                fhir_type.clone(),
            ));
            out.push(Column {
                name: name.to_string(),
                fhir_type,
                collection,
            });
        }
        let selects = array(value, "select")?
            .iter()
            .map(|s| Select::compile(s, constants, out))
            .collect::<Result<Vec<_>, _>>()?;
        let mut union_all = Vec::new();
        let branches = array(value, "unionAll")?;
        if let Some((first, rest)) = branches.split_first() {
            let start = out.len();
            union_all.push(Select::compile(first, constants, out)?);
            let shape: Vec<Column> = out[start..].to_vec();
            for branch in rest {
                let mut branch_columns = Vec::new();
                let mut compiled = Select::compile(branch, constants, &mut branch_columns)?;
                if branch_columns != shape {
                    return Err("unionAll branches must have the same columns".into());
                }
                compiled.shift(start);
                union_all.push(compiled);
            }
        }
        Ok(Select {
            for_each,
            columns,
            selects,
            union_all,
        })
    }

    /// Moves this select's column indexes by `by` (a unionAll branch compiled on its own).
    fn shift(&mut self, by: usize) {
        self.columns.iter_mut().for_each(|c| c.0 += by);
        self.selects.iter_mut().for_each(|s| s.shift(by));
        self.union_all.iter_mut().for_each(|s| s.shift(by));
    }

    /// The partial rows (column index, cell) this select gives on `ctx` (`None`: the null
    /// row of a forEachOrNull that selected nothing).
    fn rows(
        &self,
        ctx: Option<&Ctx<'_>>,
        view: &ViewDefinition,
    ) -> Result<Vec<Vec<(usize, Cell)>>, String> {
        let Some(ctx) = ctx else {
            return Ok(vec![Vec::new()]);
        };
        let contexts: Vec<Option<Ctx<'_>>> = match &self.for_each {
            None => vec![Some(Ctx {
                resource: ctx.resource,
                json: ctx.json,
                ty: ctx.ty,
            })],
            Some((path, or_null)) => {
                let items: Vec<Ctx<'_>> = path
                    .items(ctx)?
                    .iter()
                    .filter_map(|item| {
                        Some(Ctx {
                            resource: ctx.resource,
                            json: item.json()?,
                            ty: Some(item.type_name().1).filter(|t| !t.is_empty()),
                        })
                    })
                    .collect();
                if items.is_empty() && *or_null {
                    vec![None]
                } else {
                    items.into_iter().map(Some).collect()
                }
            }
        };
        let mut out = Vec::new();
        for node in &contexts {
            let mut parts: Vec<Vec<(usize, Cell)>> = vec![self.own_cells(node.as_ref(), view)?];
            for select in &self.selects {
                parts = cross(parts, select.rows(node.as_ref(), view)?);
            }
            if !self.union_all.is_empty() {
                let mut union = Vec::new();
                match node {
                    None => union.push(Vec::new()),
                    Some(_) => {
                        for branch in &self.union_all {
                            union.extend(branch.rows(node.as_ref(), view)?);
                        }
                    }
                }
                parts = cross(parts, union);
            }
            out.extend(parts);
        }
        Ok(out)
    }

    fn own_cells(
        &self,
        node: Option<&Ctx<'_>>,
        view: &ViewDefinition,
    ) -> Result<Vec<(usize, Cell)>, String> {
        let Some(node) = node else {
            return Ok(Vec::new());
        };
        let mut cells = Vec::with_capacity(self.columns.len());
        for (index, path, collection, code) in &self.columns {
            let name = &view.columns[*index].name;
            let values = path.values(node)?;
            let cell = if *collection {
                Cell::List(values.iter().map(Scalar::text).collect())
            } else {
                match values.as_slice() {
                    [] => Cell::Null,
                    [one] => one.cell(code).map_err(|target| {
                        format!("column `{name}`: a value cannot be read as {target}")
                    })?,
                    _ => {
                        return Err(format!(
                            "column `{name}`: the path gives several values (set `collection: true`)"
                        ));
                    }
                }
            };
            cells.push((*index, cell));
        }
        Ok(cells)
    }
}

/// Every combination of a row from `left` and a row from `right`.
fn cross(left: Vec<Vec<(usize, Cell)>>, right: Vec<Vec<(usize, Cell)>>) -> Vec<Vec<(usize, Cell)>> {
    let mut out = Vec::with_capacity(left.len() * right.len());
    for l in &left {
        for r in &right {
            let mut row = l.clone();
            row.extend(r.iter().cloned());
            out.push(row);
        }
    }
    out
}

/// The elements of `value[key]`, which must be an array when present.
fn array<'v>(value: &'v Value, key: &str) -> Result<&'v [Value], String> {
    match value.get(key) {
        None => Ok(&[]),
        Some(Value::Array(items)) => Ok(items),
        Some(_) => Err(format!("`{key}` must be an array")),
    }
}

/// The view's rows for one resource of its type.
pub(super) fn evaluate(view: &ViewDefinition, resource: &Value) -> Result<Vec<Vec<Cell>>, String> {
    let root = Ctx {
        resource,
        json: resource,
        ty: None,
    };
    for condition in &view.wheres {
        let keep = match condition {
            Compiled::Path(expr) => matches!(
                root.eval(expr)?.as_slice(),
                [item] if item.to_value() == Some(fhirpath::Value::Boolean(true))
            ),
            _ => return Err("a where path must give a boolean".into()),
        };
        if !keep {
            return Ok(Vec::new());
        }
    }
    let mut parts = vec![Vec::new()];
    for select in &view.selects {
        parts = cross(parts, select.rows(Some(&root), view)?);
    }
    Ok(parts
        .into_iter()
        .map(|part| {
            let mut row = vec![Cell::Null; view.columns.len()];
            for (index, cell) in part {
                row[index] = cell;
            }
            row
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn view(definition: Value) -> ViewDefinition {
        ViewDefinition::from_json(&definition).unwrap()
    }

    fn patient() -> Value {
        json!({
            "resourceType": "Patient", "id": "p1", "active": true, "birthDate": "1980-05-01",
            "name": [
                {"family": "F1", "given": ["G1", "G2"]},
                {"family": "F2"}
            ],
            "telecom": [{"system": "phone", "value": "t1"}],
            "contact": [{"telecom": [{"system": "email", "value": "e1"}]}]
        })
    }

    fn text(s: &str) -> Cell {
        Cell::Text(s.into())
    }

    #[test]
    fn columns_and_resource_key() {
        let v = view(json!({
            "resourceType": "ViewDefinition", "name": "pt", "resource": "Patient",
            "select": [{"column": [
                {"name": "id", "path": "getResourceKey()"},
                {"name": "active", "path": "active", "type": "boolean"},
                {"name": "year", "path": "birthDate.toString().substring(0, 4)", "type": "integer"},
                {"name": "families", "path": "name.family", "collection": true}
            ]}]
        }));
        assert_eq!(
            v.evaluate(&patient()).unwrap(),
            [vec![
                text("p1"),
                Cell::Bool(true),
                Cell::Int(1980),
                Cell::List(vec!["F1".into(), "F2".into()])
            ]]
        );
    }

    #[test]
    fn for_each_nested_select_and_or_null() {
        let v = view(json!({
            "resourceType": "ViewDefinition", "name": "names", "resource": "Patient",
            "select": [
                {"column": [{"name": "id", "path": "id"}]},
                {"forEach": "name", "column": [{"name": "family", "path": "family"}],
                 "select": [{"forEachOrNull": "given", "column": [{"name": "given", "path": "$this"}]}]}
            ]
        }));
        assert_eq!(
            v.evaluate(&patient()).unwrap(),
            [
                vec![text("p1"), text("F1"), text("G1")],
                vec![text("p1"), text("F1"), text("G2")],
                vec![text("p1"), text("F2"), Cell::Null],
            ]
        );
    }

    #[test]
    fn union_all_where_and_constants() {
        let v = view(json!({
            "resourceType": "ViewDefinition", "name": "tel", "resource": "Patient",
            "constant": [{"name": "sys", "valueString": "phone"}],
            "where": [{"path": "active = true"}],
            "select": [{"column": [{"name": "id", "path": "getResourceKey()"}],
                "unionAll": [
                    {"forEach": "telecom.where(system = %sys)", "column": [{"name": "v", "path": "value"}]},
                    {"forEach": "contact.telecom", "column": [{"name": "v", "path": "value"}]}
                ]}]
        }));
        assert_eq!(
            v.evaluate(&patient()).unwrap(),
            [vec![text("p1"), text("t1")], vec![text("p1"), text("e1")]]
        );
        let mut inactive = patient();
        inactive["active"] = json!(false);
        assert!(v.evaluate(&inactive).unwrap().is_empty());
    }

    #[test]
    fn reference_keys_filter_by_type() {
        let v = view(json!({
            "resourceType": "ViewDefinition", "name": "obs", "resource": "Observation",
            "select": [{"column": [
                {"name": "patient", "path": "subject.getReferenceKey(Patient)"},
                {"name": "group", "path": "subject.getReferenceKey(Group)"},
                {"name": "any", "path": "subject.getReferenceKey()"},
                {"name": "value", "path": "value.ofType(Quantity).value", "type": "decimal"}
            ]}]
        }));
        let obs = json!({"resourceType": "Observation", "id": "o",
            "subject": {"reference": "Patient/p9"}, "valueQuantity": {"value": 2.5}});
        assert_eq!(
            v.evaluate(&obs).unwrap(),
            [vec![text("p9"), Cell::Null, text("p9"), Cell::Float(2.5)]]
        );
    }

    #[test]
    fn errors_name_the_column_not_the_value() {
        let v = view(json!({
            "resourceType": "ViewDefinition", "name": "bad", "resource": "Patient",
            "select": [{"column": [{"name": "g", "path": "name.given"}]}]
        }));
        let err = v.evaluate(&patient()).unwrap_err().to_string();
        assert!(err.contains("column `g`") && !err.contains("G1"), "{err}");
        let bad = ViewDefinition::from_json(&json!({
            "resourceType": "ViewDefinition", "name": "x", "resource": "Patient",
            "select": [{"column": [{"name": "a", "path": "where(getResourceKey() = 'x')"}]}]
        }));
        assert!(bad.is_err());
    }

    #[test]
    fn constants_are_not_substituted_inside_strings() {
        let c = vec![("a".to_string(), "'x'".to_string())];
        assert_eq!(substitute("%a = '%a'", &c).unwrap(), "('x') = '%a'");
        assert_eq!(substitute("%resource.id", &c).unwrap(), "%resource.id");
    }
}
