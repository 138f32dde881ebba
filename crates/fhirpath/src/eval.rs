//! The evaluator: walks the syntax tree over collections of items.

use std::cmp::Ordering;

use rust_decimal::Decimal;
use serde_json::Map;

use crate::ast::{BinaryOp, Expr, TypeOp, TypeSpec};
use crate::error::Error;
use crate::expression::Environment;
use crate::item::{Item, ItemKind, Node, NodeType, Path};
use crate::value::{DateTime, Quantity, Value, compare_components};

/// A collection: the input and output of every FHIRPath expression.
pub(crate) type Collection<'a> = Vec<Item<'a>>;

/// The iteration variables of the innermost function argument: `$this`, `$index`, `$total`.
#[derive(Clone)]
pub(crate) struct Scope<'a> {
    pub this: Option<Item<'a>>,
    pub index: Option<usize>,
    pub total: Option<Collection<'a>>,
}

/// One evaluation: the environment, the input (`%context`), and the clock for `now()`.
pub(crate) struct Evaluator<'a, 'e> {
    pub env: &'e Environment<'a>,
    pub context: Item<'a>,
    pub root: &'a serde_json::Value,
    pub now: DateTime,
}

/// Boolean result helper.
pub(crate) fn boolean<'a>(b: bool) -> Collection<'a> {
    vec![Item::value(Value::Boolean(b))]
}

/// The node type of a resource, from its `resourceType`.
pub(crate) fn resource_type(json: &serde_json::Value) -> NodeType {
    json.get("resourceType")
        .and_then(|t| t.as_str())
        .and_then(fhir::types::intern)
        .map_or(NodeType::UNKNOWN, NodeType::named)
}

/// The node type of an element definition's type code; `Resource` resolves per instance.
fn element_type(
    type_code: &'static str,
    children: &'static str,
    json: Option<&serde_json::Value>,
) -> NodeType {
    if type_code == "Resource"
        && let Some(j) = json
    {
        let t = resource_type(j);
        if t != NodeType::UNKNOWN {
            return t;
        }
    }
    NodeType {
        code: type_code,
        key: children,
    }
}

/// The type of a choice alternative (`Quantity`, `dateTime`).
fn choice_type(type_code: &'static str) -> NodeType {
    if fhir::types::is_primitive(type_code) {
        NodeType {
            code: type_code,
            key: "",
        }
    } else {
        NodeType::named(type_code)
    }
}

/// The object whose members a node has: its own JSON object, or for a primitive the `_name`
/// companion (which holds `id` and `extension`).
fn members<'n, 'a>(
    node: &'n Node<'a>,
) -> Option<(
    &'a Map<String, serde_json::Value>,
    &'static str,
    &'n Path<'a>,
)> {
    match node.json {
        Some(serde_json::Value::Object(map)) => Some((map, node.ty.key, &node.path)),
        _ => match node.companion {
            Some(serde_json::Value::Object(map)) => Some((map, "Element", &node.companion_path)),
            _ => None,
        },
    }
}

/// Pushes the nodes stored under `key` in `map` (a single value or an array, with its `_key`
/// companion), typed by `ty` (or per instance for resources).
fn push_members<'a>(
    map: &'a Map<String, serde_json::Value>,
    key: &str,
    ty: impl Fn(Option<&'a serde_json::Value>) -> NodeType,
    path: &Path<'a>,
    out: &mut Collection<'a>,
) {
    push_entry(
        map.get_key_value(key),
        companion_entry(map, key),
        ty,
        path,
        out,
    );
}

/// Pushes the nodes of one member entry and its companion entry (either may be absent).
fn push_entry<'a>(
    value: Option<(&'a String, &'a serde_json::Value)>,
    companion: Option<(&'a String, &'a serde_json::Value)>,
    ty: impl Fn(Option<&'a serde_json::Value>) -> NodeType,
    path: &Path<'a>,
    out: &mut Collection<'a>,
) {
    let present = |v: Option<&'a serde_json::Value>| v.filter(|v| !v.is_null());
    let mut push = |json: Option<&'a serde_json::Value>,
                    companion_json: Option<&'a serde_json::Value>,
                    index: Option<usize>| {
        if json.is_none() && companion_json.is_none() {
            return;
        }
        let at = |k: Option<(&'a String, &'a serde_json::Value)>| {
            let p = path.key(k.map_or("", |kv| kv.0.as_str()));
            index.map_or(p.clone(), |i| p.index(i))
        };
        let companion_path = if companion_json.is_some() {
            at(companion)
        } else {
            Path::root()
        };
        out.push(Item::node(Node {
            json,
            companion: companion_json,
            ty: ty(json),
            path: if json.is_some() {
                at(value)
            } else {
                companion_path.clone()
            },
            companion_path,
        }));
    };
    let values = value.map(|v| v.1);
    let companions = companion.map(|c| c.1);
    match (values, companions) {
        (Some(serde_json::Value::Array(_)), cs)
        | (None, cs @ Some(serde_json::Value::Array(_))) => {
            let vs = values
                .and_then(|v| v.as_array())
                .map_or(&[][..], |v| v.as_slice());
            let cs = cs
                .and_then(|c| c.as_array())
                .map_or(&[][..], |c| c.as_slice());
            for i in 0..vs.len().max(cs.len()) {
                push(present(vs.get(i)), present(cs.get(i)), Some(i));
            }
        }
        (v, c) => push(present(v), present(c), None),
    }
}

/// The `_key` companion entry of `key`, looked up without allocating for ordinary key lengths.
fn companion_entry<'a>(
    map: &'a Map<String, serde_json::Value>,
    key: &str,
) -> Option<(&'a String, &'a serde_json::Value)> {
    let mut buf = [0u8; 128];
    if key.len() >= buf.len() {
        return map.get_key_value(format!("_{key}").as_str());
    }
    buf[0] = b'_';
    buf[1..=key.len()].copy_from_slice(key.as_bytes());
    let companion = std::str::from_utf8(&buf[..=key.len()]).ok()?;
    map.get_key_value(companion)
}

/// Whether `suffix` is the JSON key suffix of choice type `type_code` (`DateTime` for
/// `dateTime`), compared without allocating.
fn is_choice_suffix(type_code: &str, suffix: &str) -> bool {
    let (mut t, mut s) = (type_code.chars(), suffix.chars());
    match (t.next(), s.next()) {
        (Some(a), Some(b)) => a.to_ascii_uppercase() == b && t.eq(s),
        _ => false,
    }
}

/// The children of a node named `name`, typed from the R4 tables.
pub(crate) fn child_nodes<'a>(node: &Node<'a>, name: &str, out: &mut Collection<'a>) {
    let Some((map, key, path)) = members(node) else {
        return;
    };
    let def = if key.is_empty() {
        None
    } else {
        fhir::types::element(key, name)
    };
    match def {
        Some(def) if !def.choices.is_empty() => {
            for k in map.keys() {
                let Some(suffix) = k.strip_prefix('_').unwrap_or(k).strip_prefix(name) else {
                    continue;
                };
                // A companion is pushed with its value, unless the value is absent.
                if k.starts_with('_') && map.contains_key(&k[1..]) {
                    continue;
                }
                if let Some(choice) = def.choices.iter().find(|c| is_choice_suffix(c, suffix)) {
                    let ty = choice_type(choice);
                    push_members(map, k.strip_prefix('_').unwrap_or(k), |_| ty, path, out);
                }
            }
        }
        Some(def) => {
            push_members(
                map,
                name,
                |j| element_type(def.type_code, def.children, j),
                path,
                out,
            );
        }
        None if map.contains_key(name) || companion_entry(map, name).is_some() => {
            push_members(map, name, untyped, path, out);
        }
        None => {
            // An element of unknown type: find `name[x]`-style keys whose suffix is a type.
            for (k, _) in map.iter() {
                if let Some(suffix) = k.strip_prefix(name)
                    && suffix.starts_with(|c: char| c.is_ascii_uppercase())
                    && let Some(code) = type_from_suffix(suffix)
                {
                    let ty = choice_type(code);
                    push_members(map, k, |_| ty, path, out);
                }
            }
        }
    }
}

/// Strict navigation: the name must be an element of the node's known type, not a typed
/// choice key, and not a resource type the node is not.
fn check_strict(node: &Node<'_>, name: &str, type_name: bool) -> Result<(), Error> {
    if node.ty.key.is_empty() || node.ty.code.is_empty() {
        return Ok(());
    }
    if type_name {
        return if fhir::types::intern(name).is_some() {
            Err(Error::semantic(format!("the input is not of type {name}")))
        } else {
            Err(Error::semantic(format!(
                "'{name}' is not an element of {}",
                node.ty.code
            )))
        };
    }
    if let Some(at) = name.find(|c: char| c.is_ascii_uppercase())
        && fhir::types::element(node.ty.key, &name[..at]).is_some_and(|d| !d.choices.is_empty())
    {
        return Err(Error::semantic(format!(
            "choice element '{name}' must be named '{}' (with ofType() to pick a type)",
            &name[..at]
        )));
    }
    if fhir::types::element(node.ty.key, name).is_none() {
        return Err(Error::semantic(format!(
            "'{name}' is not an element of {}",
            node.ty.code
        )));
    }
    Ok(())
}

fn untyped(json: Option<&serde_json::Value>) -> NodeType {
    json.map_or(NodeType::UNKNOWN, resource_type)
}

/// The type code a choice key suffix names (`DateTime` → `dateTime`, `Quantity` → `Quantity`).
fn type_from_suffix(suffix: &str) -> Option<&'static str> {
    fhir::types::intern(suffix)
        .filter(|t| !fhir::types::is_primitive(t))
        .or_else(|| {
            let mut chars = suffix.chars();
            let first = chars.next()?.to_ascii_lowercase();
            let lower: String = std::iter::once(first).chain(chars).collect();
            fhir::types::intern(&lower).filter(|t| fhir::types::is_primitive(t))
        })
}

/// All children of a node, in document order.
pub(crate) fn all_children<'a>(node: &Node<'a>, out: &mut Collection<'a>) {
    let Some((map, key, path)) = members(node) else {
        return;
    };
    // Most objects have no `_name` companions; then no companion lookups are needed.
    let has_companions = map.keys().any(|k| k.starts_with('_'));
    // The type's own elements, searched first without walking the type hierarchy.
    let own = fhir::types::children(key);
    for entry in map.iter() {
        let k = entry.0.as_str();
        if k == "resourceType" {
            continue;
        }
        let (name, value, companion) = match k.strip_prefix('_') {
            // A companion is visited with its value, unless the value is absent.
            Some(base) if map.contains_key(base) => continue,
            Some(base) => (base, None, Some(entry)),
            None => (
                k,
                Some(entry),
                if has_companions {
                    companion_entry(map, k)
                } else {
                    None
                },
            ),
        };
        let def = match own.binary_search_by(|e| e.name.cmp(name)) {
            Ok(i) => Some(&own[i]),
            Err(_) if key.is_empty() => None,
            Err(_) => fhir::types::element(key, name),
        };
        match def {
            Some(def) if def.choices.is_empty() => push_entry(
                value,
                companion,
                |j| element_type(def.type_code, def.children, j),
                path,
                out,
            ),
            _ => push_entry(value, companion, untyped, path, out),
        }
    }
}

impl<'a> Evaluator<'a, '_> {
    /// Evaluates `expr` with `focus` as its input collection.
    pub fn eval(
        &self,
        expr: &Expr,
        focus: &[Item<'a>],
        scope: &Scope<'a>,
    ) -> Result<Collection<'a>, Error> {
        match expr {
            Expr::Empty => Ok(Vec::new()),
            Expr::Literal(v) => Ok(vec![Item::value(v.clone())]),
            Expr::Member(name) => self.member(focus, name),
            Expr::Path(left, right) => {
                let left = self.eval(left, focus, scope)?;
                self.eval(right, &left, scope)
            }
            Expr::Call(function, args) => self.call(*function, args, focus, scope),
            Expr::Index(base, index) => {
                let base = self.eval(base, focus, scope)?;
                let index = self.eval(index, &self.this_focus(scope), scope)?;
                let Some(i) = singleton_integer(&index)? else {
                    return Ok(Vec::new());
                };
                Ok(usize::try_from(i)
                    .ok()
                    .and_then(|i| base.get(i).cloned())
                    .into_iter()
                    .collect())
            }
            Expr::Negate(inner) => {
                let v = self.eval(inner, focus, scope)?;
                let Some(item) = singleton(&v)? else {
                    return Ok(Vec::new());
                };
                let negated = match item.to_value() {
                    Some(Value::Integer(i)) => Value::Integer(-i),
                    Some(Value::Decimal(d)) => Value::Decimal(-d),
                    Some(Value::Quantity(q)) => Value::Quantity(Quantity {
                        value: -q.value,
                        unit: q.unit,
                    }),
                    _ => return Err(Error::eval("unary minus needs a number or quantity")),
                };
                Ok(vec![Item::value(negated)])
            }
            Expr::Binary(op, left, right) => self.binary(*op, left, right, focus, scope),
            Expr::TypeOp(op, operand, spec) => {
                let v = self.eval(operand, focus, scope)?;
                if v.len() > 1 {
                    return Err(Error::eval("'is'/'as' need a single item"));
                }
                let Some(item) = v.into_iter().next() else {
                    return Ok(Vec::new());
                };
                let matches = is_type(&item, spec, *op == TypeOp::As);
                Ok(match op {
                    TypeOp::Is => boolean(matches),
                    TypeOp::As => {
                        if matches {
                            vec![item]
                        } else {
                            Vec::new()
                        }
                    }
                })
            }
            Expr::External(name) => self.external(name),
            Expr::This => Ok(scope.this.clone().into_iter().collect()),
            Expr::IndexVar => Ok(scope
                .index
                .map(|i| Item::value(Value::Integer(i as i64)))
                .into_iter()
                .collect()),
            Expr::Total => Ok(scope.total.clone().unwrap_or_default()),
        }
    }

    /// The focus for function arguments: `$this`, or the evaluation's input.
    pub fn this_focus(&self, scope: &Scope<'a>) -> Collection<'a> {
        vec![scope.this.clone().unwrap_or_else(|| self.context.clone())]
    }

    fn external(&self, name: &str) -> Result<Collection<'a>, Error> {
        let resource_node = |json: &'a serde_json::Value| {
            Item::node(Node {
                json: Some(json),
                companion: None,
                companion_path: Path::root(),
                ty: resource_type(json),
                path: Path::root(),
            })
        };
        Ok(match name {
            "context" => vec![self.context.clone()],
            "resource" => match self.env.resource {
                Some(r) => vec![resource_node(r)],
                None => vec![self.context.clone()],
            },
            "rootResource" => match self.env.root_resource.or(self.env.resource) {
                Some(r) => vec![resource_node(r)],
                None => vec![self.context.clone()],
            },
            "ucum" => vec![Item::value(Value::String(
                "http://unitsofmeasure.org".into(),
            ))],
            "sct" => vec![Item::value(Value::String("http://snomed.info/sct".into()))],
            "loinc" => vec![Item::value(Value::String("http://loinc.org".into()))],
            _ => {
                if let Some((_, v)) = self.env.variables.iter().find(|(n, _)| n == name) {
                    return Ok(v.clone());
                }
                if let Some(rest) = name.strip_prefix("vs-") {
                    return Ok(vec![Item::value(Value::String(format!(
                        "http://hl7.org/fhir/ValueSet/{rest}"
                    )))]);
                }
                if let Some(rest) = name.strip_prefix("ext-") {
                    return Ok(vec![Item::value(Value::String(format!(
                        "http://hl7.org/fhir/StructureDefinition/{rest}"
                    )))]);
                }
                return Err(Error::semantic(format!("unknown variable %{name}")));
            }
        })
    }

    /// Member navigation: children named `name`, or the items themselves when `name` is a type
    /// they are instances of (`Patient.name` on a Patient).
    fn member(&self, focus: &[Item<'a>], name: &str) -> Result<Collection<'a>, Error> {
        let mut out = Vec::new();
        let type_name = name.starts_with(|c: char| c.is_ascii_uppercase());
        for item in focus {
            match &item.0 {
                ItemKind::Node(node) => {
                    if type_name && !node.ty.code.is_empty() && fhir::types::intern(name).is_some()
                    {
                        // A type name filters: elements are never named like types.
                        if fhir::types::is_a(node.ty.code, name) {
                            out.push(item.clone());
                        } else if self.env.strict {
                            check_strict(node, name, type_name)?;
                        }
                    } else if type_name
                        && node.ty.code.is_empty()
                        && fhir::types::is_resource_type(name)
                    {
                        if node
                            .json
                            .and_then(|j| j.get("resourceType"))
                            .and_then(|t| t.as_str())
                            == Some(name)
                        {
                            out.push(item.clone());
                        }
                    } else {
                        if self.env.strict {
                            check_strict(node, name, type_name)?;
                        }
                        child_nodes(node, name, &mut out);
                    }
                }
                ItemKind::TypeInfo(namespace, type_name) => match name {
                    "namespace" => out.push(Item::value(Value::String((*namespace).into()))),
                    "name" => out.push(Item::value(Value::String((*type_name).into()))),
                    _ => {}
                },
                ItemKind::Value(_) => {}
            }
        }
        Ok(out)
    }

    fn binary(
        &self,
        op: BinaryOp,
        left: &Expr,
        right: &Expr,
        focus: &[Item<'a>],
        scope: &Scope<'a>,
    ) -> Result<Collection<'a>, Error> {
        let l = self.eval(left, focus, scope)?;
        // Boolean operators may not need their right operand.
        match op {
            BinaryOp::And | BinaryOp::Or | BinaryOp::Xor | BinaryOp::Implies => {
                let a = to_boolean(&l)?;
                let short = match (op, a) {
                    (BinaryOp::And, Some(false)) => Some(Some(false)),
                    (BinaryOp::Or, Some(true)) => Some(Some(true)),
                    (BinaryOp::Implies, Some(false)) => Some(Some(true)),
                    _ => None,
                };
                if let Some(result) = short {
                    return Ok(result.map(boolean).unwrap_or_default());
                }
                let r = self.eval(right, focus, scope)?;
                let b = to_boolean(&r)?;
                let result = match op {
                    BinaryOp::And => match (a, b) {
                        (Some(true), Some(true)) => Some(true),
                        (_, Some(false)) => Some(false),
                        _ => None,
                    },
                    BinaryOp::Or => match (a, b) {
                        (_, Some(true)) => Some(true),
                        (Some(false), Some(false)) => Some(false),
                        _ => None,
                    },
                    BinaryOp::Xor => match (a, b) {
                        (Some(x), Some(y)) => Some(x != y),
                        _ => None,
                    },
                    _ => match (a, b) {
                        (Some(true), Some(y)) => Some(y),
                        (None, Some(true)) => Some(true),
                        _ => None,
                    },
                };
                return Ok(result.map(boolean).unwrap_or_default());
            }
            _ => {}
        }
        let r = self.eval(right, focus, scope)?;
        match op {
            BinaryOp::Union => Ok(union(l, r)),
            BinaryOp::Eq | BinaryOp::Ne if self.env.partial_date_ranges => {
                if let Some(equal) = self.range_relation(op, &l, &r)? {
                    return Ok(boolean(equal));
                }
                let equal = equals_collections(&l, &r);
                Ok(equal
                    .map(|e| boolean(e == (op == BinaryOp::Eq)))
                    .unwrap_or_default())
            }
            BinaryOp::Eq => Ok(equals_collections(&l, &r).map(boolean).unwrap_or_default()),
            BinaryOp::Ne => Ok(equals_collections(&l, &r)
                .map(|b| boolean(!b))
                .unwrap_or_default()),
            BinaryOp::Equiv => Ok(boolean(equivalent_collections(&l, &r))),
            BinaryOp::NotEquiv => Ok(boolean(!equivalent_collections(&l, &r))),
            BinaryOp::In | BinaryOp::Contains => {
                let (needle, haystack) = if op == BinaryOp::In { (l, r) } else { (r, l) };
                if needle.is_empty() {
                    return Ok(Vec::new());
                }
                if needle.len() > 1 {
                    return Err(Error::eval("membership needs a single item"));
                }
                let found = haystack
                    .iter()
                    .any(|h| equals_items(&needle[0], h) == Some(true));
                Ok(boolean(found))
            }
            BinaryOp::Lt | BinaryOp::Gt | BinaryOp::Le | BinaryOp::Ge => {
                if self.env.partial_date_ranges
                    && let Some(holds) = self.range_relation(op, &l, &r)?
                {
                    return Ok(boolean(holds));
                }
                let (Some(a), Some(b)) = (singleton(&l)?, singleton(&r)?) else {
                    return Ok(Vec::new());
                };
                let (Some(a), Some(b)) = (a.to_value(), b.to_value()) else {
                    return Err(Error::eval("comparison needs primitive values"));
                };
                let Some(ord) = compare_values(&a, &b)? else {
                    return Ok(Vec::new());
                };
                Ok(boolean(match op {
                    BinaryOp::Lt => ord == Ordering::Less,
                    BinaryOp::Gt => ord == Ordering::Greater,
                    BinaryOp::Le => ord != Ordering::Greater,
                    _ => ord != Ordering::Less,
                }))
            }
            BinaryOp::Concat => {
                let text = |c: &Collection<'a>| -> Result<String, Error> {
                    Ok(match singleton(c)? {
                        Some(item) => match item.to_value() {
                            Some(Value::String(s)) => s,
                            Some(other) => other.to_string(),
                            None => String::new(),
                        },
                        None => String::new(),
                    })
                };
                Ok(vec![Item::value(Value::String(text(&l)? + &text(&r)?))])
            }
            _ => {
                let (Some(a), Some(b)) = (singleton(&l)?, singleton(&r)?) else {
                    return Ok(Vec::new());
                };
                let (Some(a), Some(b)) = (a.to_value(), b.to_value()) else {
                    return Err(Error::eval("arithmetic needs primitive values"));
                };
                Ok(crate::arith::arithmetic(op, a, b)?
                    .map(|v| vec![Item::value(v)])
                    .unwrap_or_default())
            }
        }
    }
}

impl<'a> Evaluator<'a, '_> {
    /// With [`Environment::partial_date_ranges`]: the relation `op` between two single
    /// dates/date-times of different precision, read as ranges of instants; `None` when the
    /// operands are not such a pair.
    fn range_relation(
        &self,
        op: BinaryOp,
        l: &[Item<'a>],
        r: &[Item<'a>],
    ) -> Result<Option<bool>, Error> {
        let (Some(a), Some(b)) = (singleton(l)?, singleton(r)?) else {
            return Ok(None);
        };
        let (Some(a), Some(b)) = (
            a.to_value().as_ref().and_then(as_datetime),
            b.to_value().as_ref().and_then(as_datetime),
        ) else {
            return Ok(None);
        };
        if a.precision() == b.precision() {
            return Ok(None);
        }
        let ((a_low, a_high), (b_low, b_high)) = (instant_range(&a), instant_range(&b));
        Ok(Some(match op {
            BinaryOp::Eq => a_low < b_high && b_low < a_high,
            BinaryOp::Ne => !(a_low < b_high && b_low < a_high),
            BinaryOp::Lt | BinaryOp::Le => a_low < b_high,
            _ => a_high > b_low,
        }))
    }
}

/// The instants `[low, high)` (UTC milliseconds; no zone read as UTC) a date-time of limited
/// precision stands for.
fn instant_range(d: &DateTime) -> (i64, i64) {
    let low = d.instant_millis(0);
    let high = match d.precision() {
        1 => DateTime {
            date: d.date.add_months(12),
            ..*d
        }
        .instant_millis(0),
        2 => DateTime {
            date: d.date.add_months(1),
            ..*d
        }
        .instant_millis(0),
        p => low + [86_400_000, 3_600_000, 60_000, 1000, 1][(p as usize - 3).min(4)],
    };
    (low, high)
}

/// The single item of a collection; `None` when empty; an error when there are several.
pub(crate) fn singleton<'c, 'a>(c: &'c [Item<'a>]) -> Result<Option<&'c Item<'a>>, Error> {
    match c.len() {
        0 => Ok(None),
        1 => Ok(Some(&c[0])),
        _ => Err(Error::eval("expected a single item, found a collection")),
    }
}

/// The single integer of a collection.
pub(crate) fn singleton_integer(c: &[Item<'_>]) -> Result<Option<i64>, Error> {
    match singleton(c)?.map(Item::to_value) {
        None => Ok(None),
        Some(Some(Value::Integer(i))) => Ok(Some(i)),
        Some(_) => Err(Error::eval("expected an integer")),
    }
}

/// The singleton evaluation of collections as a boolean (FHIRPath §4.5).
pub(crate) fn to_boolean(c: &[Item<'_>]) -> Result<Option<bool>, Error> {
    match c.len() {
        0 => Ok(None),
        1 => match c[0].to_value() {
            Some(Value::Boolean(b)) => Ok(Some(b)),
            _ => Ok(Some(true)),
        },
        _ => Err(Error::eval("expected a single boolean, found a collection")),
    }
}

/// `|`: merge without duplicates.
pub(crate) fn union<'a>(l: Collection<'a>, r: Collection<'a>) -> Collection<'a> {
    let mut out: Collection<'a> = Vec::with_capacity(l.len() + r.len());
    for item in l.into_iter().chain(r) {
        if !out.iter().any(|o| equals_items(o, &item) == Some(true)) {
            out.push(item);
        }
    }
    out
}

/// `=` on collections: empty when either is empty or when an item comparison is unknown.
pub(crate) fn equals_collections(l: &[Item<'_>], r: &[Item<'_>]) -> Option<bool> {
    if l.is_empty() || r.is_empty() {
        return None;
    }
    if l.len() != r.len() {
        return Some(false);
    }
    let mut result = Some(true);
    for (a, b) in l.iter().zip(r) {
        match equals_items(a, b) {
            Some(true) => {}
            Some(false) => return Some(false),
            None => result = None,
        }
    }
    result
}

/// `=` on two items.
pub(crate) fn equals_items(a: &Item<'_>, b: &Item<'_>) -> Option<bool> {
    match (a.to_value(), b.to_value()) {
        (Some(x), Some(y)) => equals_values(&x, &y),
        (None, None) => match (&a.0, &b.0) {
            (ItemKind::Node(x), ItemKind::Node(y)) => {
                Some(x.json == y.json && x.companion == y.companion)
            }
            (ItemKind::TypeInfo(n1, t1), ItemKind::TypeInfo(n2, t2)) => Some(n1 == n2 && t1 == t2),
            _ => Some(false),
        },
        _ => Some(false),
    }
}

/// `=` on two values.
pub(crate) fn equals_values(a: &Value, b: &Value) -> Option<bool> {
    match (a, b) {
        (Value::String(x), Value::String(y)) => Some(x == y),
        (Value::Boolean(x), Value::Boolean(y)) => Some(x == y),
        (Value::Quantity(x), Value::Quantity(y)) => {
            crate::ucum::compare(x, y, false).map(|o| o == Ordering::Equal)
        }
        (Value::Date(_) | Value::DateTime(_), Value::Date(_) | Value::DateTime(_))
        | (Value::Time(_), Value::Time(_)) => compare_temporal(a, b).map(|o| o == Ordering::Equal),
        _ => match (as_decimal(a), as_decimal(b)) {
            (Some(x), Some(y)) => Some(x == y),
            _ => Some(false),
        },
    }
}

/// A number as a decimal.
pub(crate) fn as_decimal(v: &Value) -> Option<Decimal> {
    match v {
        Value::Integer(i) => Some(Decimal::from(*i)),
        Value::Decimal(d) => Some(*d),
        _ => None,
    }
}

/// Compares dates, date-times and times with FHIRPath's precision rules; `None` when the
/// answer depends on missing precision.
pub(crate) fn compare_temporal(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Time(x), Value::Time(y)) => compare_components(&x.components(), &y.components()),
        (Value::Date(x), Value::Date(y)) => compare_components(&x.components(), &y.components()),
        _ => {
            let x = as_datetime(a)?;
            let y = as_datetime(b)?;
            compare_datetimes(&x, &y)
        }
    }
}

fn as_datetime(v: &Value) -> Option<DateTime> {
    match v {
        Value::DateTime(d) => Some(*d),
        Value::Date(d) => Some(DateTime {
            date: *d,
            time: None,
            offset_minutes: None,
        }),
        _ => None,
    }
}

/// Date-time comparison: both normalised to UTC when both have a time and a zone.
pub(crate) fn compare_datetimes(x: &DateTime, y: &DateTime) -> Option<Ordering> {
    // A zone on one side only makes the comparison unknown.
    if x.time.is_some()
        && y.time.is_some()
        && x.offset_minutes.is_some() != y.offset_minutes.is_some()
    {
        return None;
    }
    let normalise = |d: &DateTime| -> [Option<i64>; 6] {
        let d = match (d.time, d.offset_minutes) {
            (Some(_), Some(off)) if off != 0 => {
                let millis = d.instant_millis(0);
                let mut n = DateTime::from_millis(millis, Some(0), 7);
                n.time = n.time.map(|t| crate::value::Time {
                    minute: d.time.and_then(|t| t.minute).and(t.minute),
                    second: d.time.and_then(|t| t.second).and(t.second),
                    millis: d.time.and_then(|t| t.millis).and(t.millis),
                    ..t
                });
                n
            }
            _ => *d,
        };
        let t = d.time.map(|t| t.components()).unwrap_or([None; 3]);
        let [y, m, day] = d.date.components();
        [y, m, day, t[0], t[1], t[2]]
    };
    compare_components(&normalise(x), &normalise(y))
}

/// Ordering for `<`, `>`, `<=`, `>=`; `None` for an unknown result.
pub(crate) fn compare_values(a: &Value, b: &Value) -> Result<Option<Ordering>, Error> {
    Ok(match (a, b) {
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        (Value::Quantity(x), Value::Quantity(y)) => {
            let ord = crate::ucum::compare(x, y, false);
            if ord.is_none() {
                return Err(Error::eval(
                    "quantities with incompatible units cannot be compared",
                ));
            }
            ord
        }
        (Value::Date(_) | Value::DateTime(_), Value::Date(_) | Value::DateTime(_))
        | (Value::Time(_), Value::Time(_)) => compare_temporal(a, b),
        _ => match (as_decimal(a), as_decimal(b)) {
            (Some(x), Some(y)) => Some(x.cmp(&y)),
            _ => return Err(Error::eval("values of these types cannot be compared")),
        },
    })
}

/// `~` on collections: order-independent, both empty is true.
pub(crate) fn equivalent_collections(l: &[Item<'_>], r: &[Item<'_>]) -> bool {
    if l.len() != r.len() {
        return false;
    }
    let mut used = vec![false; r.len()];
    l.iter().all(|a| {
        match r
            .iter()
            .enumerate()
            .position(|(i, b)| !used[i] && equivalent_items(a, b))
        {
            Some(i) => {
                used[i] = true;
                true
            }
            None => false,
        }
    })
}

fn equivalent_items(a: &Item<'_>, b: &Item<'_>) -> bool {
    match (a.to_value(), b.to_value()) {
        (Some(x), Some(y)) => equivalent_values(&x, &y),
        (None, None) => match (a.json(), b.json()) {
            (Some(x), Some(y)) => equivalent_json(x, y),
            _ => false,
        },
        _ => false,
    }
}

fn equivalent_json(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value as J;
    match (a, b) {
        (J::Object(x), J::Object(y)) => {
            let keys = |m: &Map<String, J>| m.keys().filter(|k| *k != "id").count();
            keys(x) == keys(y)
                && x.iter()
                    .filter(|(k, _)| *k != "id")
                    .all(|(k, v)| y.get(k).is_some_and(|w| equivalent_json(v, w)))
        }
        (J::Array(x), J::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(v, w)| equivalent_json(v, w))
        }
        (J::String(x), J::String(y)) => normalise_text(x) == normalise_text(y),
        _ => a == b,
    }
}

fn normalise_text(s: &str) -> String {
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// `~` on two values.
pub(crate) fn equivalent_values(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::String(x), Value::String(y)) => normalise_text(x) == normalise_text(y),
        (Value::Quantity(x), Value::Quantity(y)) => {
            crate::ucum::compare(x, y, true) == Some(Ordering::Equal)
        }
        (Value::Date(_) | Value::DateTime(_), Value::Date(_) | Value::DateTime(_))
        | (Value::Time(_), Value::Time(_)) => compare_temporal(a, b) == Some(Ordering::Equal),
        _ => match (as_decimal(a), as_decimal(b)) {
            (Some(x), Some(y)) => {
                let scale = x.scale().min(y.scale());
                x.round_dp(scale) == y.round_dp(scale)
            }
            _ => a == b,
        },
    }
}

/// Whether an item is an instance of a type specifier. `is` follows inheritance everywhere
/// (a `code` is a `string`); `as` and `ofType` match primitive types exactly (`exact`), as the
/// official test suite expects.
pub(crate) fn is_type(item: &Item<'_>, spec: &TypeSpec, exact: bool) -> bool {
    let ns = spec.namespace.as_deref();
    match &item.0 {
        ItemKind::Node(node) => {
            let code = node.ty.code;
            if let Some(system) = code.strip_prefix("System.") {
                return ns != Some("FHIR") && system == spec.name;
            }
            if ns == Some("System") || code.is_empty() {
                return false;
            }
            if exact && fhir::types::is_primitive(code) {
                return code == spec.name;
            }
            fhir::types::is_a(code, &spec.name)
        }
        ItemKind::Value(v) => {
            ns != Some("FHIR") && (v.type_name() == spec.name || (spec.name == "Any"))
        }
        ItemKind::TypeInfo(..) => false,
    }
}
