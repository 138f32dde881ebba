//! Turning the inputs into the rows of the generated tables.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result, bail, ensure};

use crate::source::Sources;

/// The FHIRPath system types that element types refer to.
const SYSTEM_TYPES: [&str; 7] = [
    "System.Boolean",
    "System.Date",
    "System.DateTime",
    "System.Decimal",
    "System.Integer",
    "System.String",
    "System.Time",
];

/// One element row (see `fhir::types::ElementDef`).
pub struct Element {
    pub path: String,
    pub type_code: String,
    pub children: String,
    pub repeats: bool,
    pub choices: Vec<String>,
    pub targets: Vec<String>,
    /// `min` is above 0 (for a choice base: one of its expanded keys must be present).
    pub required: bool,
}

impl Element {
    /// Whether this row is a choice base.
    pub fn is_choice(&self) -> bool {
        !self.choices.is_empty()
    }
}

/// One type row: name, parent ("" for none) and the `fhir::types::TypeKind` variant.
pub struct Type {
    pub name: String,
    pub parent: String,
    pub kind: &'static str,
}

/// One search parameter row (see `fhir::search::SearchParam`).
pub struct Param {
    pub code: String,
    pub kind: &'static str,
    pub expression: String,
    pub targets: Vec<String>,
}

/// One resource type of the Patient compartment.
pub struct CompartmentRow {
    pub resource_type: String,
    pub params: Vec<String>,
    pub paths: Vec<String>,
}

/// All generated tables.
pub struct Tables {
    /// Element key (type name or backbone path) → its elements by name.
    pub elements: BTreeMap<String, BTreeMap<String, Element>>,
    /// Every known type, by name.
    pub types: Vec<Type>,
    /// The concrete resource types, sorted.
    pub resource_types: Vec<String>,
    /// Resource type (or Resource/DomainResource) → its search parameters by code.
    pub search: BTreeMap<String, BTreeMap<String, Param>>,
    /// The Patient compartment members, sorted by resource type.
    pub compartment: Vec<CompartmentRow>,
}

impl Tables {
    /// Builds and cross-checks all tables.
    pub fn build(src: &Sources) -> Result<Self> {
        let types = build_types(src)?;
        let primitive: BTreeSet<&str> = types
            .iter()
            .filter(|t| matches!(t.kind, "Primitive" | "System"))
            .map(|t| t.name.as_str())
            .collect();
        let known: BTreeSet<&str> = types.iter().map(|t| t.name.as_str()).collect();
        let resource_types = types
            .iter()
            .filter(|t| t.kind == "Resource")
            .map(|t| t.name.clone())
            .collect();
        let elements = build_elements(src, &primitive, &known)?;
        let search = build_search(src)?;
        let compartment = build_compartment(src)?;
        Ok(Tables {
            elements,
            types,
            resource_types,
            search,
            compartment,
        })
    }
}

fn build_types(src: &Sources) -> Result<Vec<Type>> {
    let mut parents = src.parents.clone();
    parents.insert("Element".into(), String::new());
    parents.insert("Resource".into(), String::new());
    // MetadataResource has elements in path2Type but no entry in type2Parent.
    let metadata = src
        .structures
        .get("MetadataResource")
        .context("no MetadataResource definition")?;
    parents.insert(
        "MetadataResource".into(),
        metadata.base.clone().unwrap_or_default(),
    );
    for name in SYSTEM_TYPES {
        parents.insert(name.into(), String::new());
    }
    let descends_from = |name: &str, ancestor: &str| {
        let mut current = name;
        loop {
            if current == ancestor {
                return true;
            }
            match parents.get(current) {
                Some(p) if !p.is_empty() => current = p,
                _ => return false,
            }
        }
    };
    let mut types = Vec::new();
    for (name, parent) in &parents {
        ensure!(
            parent.is_empty() || parents.contains_key(parent),
            "unknown parent type {parent}"
        );
        let structure = src.structures.get(name);
        let kind = if name.starts_with("System.") {
            "System"
        } else if descends_from(name, "Resource") {
            let is_abstract =
                name == "MetadataResource" || structure.is_some_and(|s| s.is_abstract);
            if is_abstract {
                "AbstractResource"
            } else {
                "Resource"
            }
        } else if structure.is_some_and(|s| s.kind == "primitive-type") {
            "Primitive"
        } else {
            "Complex"
        };
        types.push(Type {
            name: name.clone(),
            parent: parent.clone(),
            kind,
        });
    }
    Ok(types)
}

fn split_path(path: &str) -> Result<(&str, &str)> {
    path.rsplit_once('.')
        .with_context(|| format!("element path without a dot: {path}"))
}

fn build_elements(
    src: &Sources,
    primitive: &BTreeSet<&str>,
    known: &BTreeSet<&str>,
) -> Result<BTreeMap<String, BTreeMap<String, Element>>> {
    let mut rows = Vec::new();
    for (path, t) in &src.path_types {
        ensure!(
            known.contains(t.code.as_str()),
            "{path} has unknown type {}",
            t.code
        );
        let children = if matches!(t.code.as_str(), "BackboneElement" | "Element") {
            path.clone()
        } else if primitive.contains(t.code.as_str()) {
            String::new()
        } else {
            t.code.clone()
        };
        rows.push(Element {
            path: path.clone(),
            type_code: t.code.clone(),
            children,
            repeats: src.repeating.contains(path),
            choices: Vec::new(),
            targets: t.targets.clone(),
            required: src.required.contains(path),
        });
    }
    for (path, suffixes) in &src.choices {
        ensure!(
            !src.path_types.contains_key(path),
            "choice base {path} has a type"
        );
        let choices = suffixes
            .iter()
            .map(|suffix| {
                let expanded = format!("{path}{suffix}");
                let t = src
                    .path_types
                    .get(&expanded)
                    .with_context(|| format!("no type for {expanded}"))?;
                Ok(t.code.clone())
            })
            .collect::<Result<_>>()?;
        rows.push(Element {
            path: path.clone(),
            type_code: String::new(),
            children: String::new(),
            repeats: src.repeating.contains(path),
            choices,
            targets: Vec::new(),
            required: src.required.contains(&format!("{path}[x]")),
        });
    }
    for (path, target) in &src.elsewhere {
        ensure!(
            !src.path_types.contains_key(path),
            "contentReference {path} has a type"
        );
        let t = src
            .path_types
            .get(target)
            .with_context(|| format!("no type for {target}"))?;
        // path2Repeating leaves contentReference elements out: take the cardinality from
        // the StructureDefinition.
        let max = src
            .max
            .get(path)
            .with_context(|| format!("no cardinality for {path}"))?;
        rows.push(Element {
            path: path.clone(),
            type_code: t.code.clone(),
            children: target.clone(),
            repeats: src.repeating.contains(path) || !matches!(max.as_str(), "0" | "1"),
            choices: Vec::new(),
            targets: Vec::new(),
            required: src.required.contains(path),
        });
    }
    let mut elements: BTreeMap<String, BTreeMap<String, Element>> = BTreeMap::new();
    for row in rows {
        let (key, name) = split_path(&row.path)?;
        let (key, name) = (key.to_owned(), name.to_owned());
        if elements.entry(key).or_default().insert(name, row).is_some() {
            bail!("duplicate element path");
        }
    }
    Ok(elements)
}

fn search_kind(kind: &str) -> Result<&'static str> {
    Ok(match kind {
        "number" => "Number",
        "date" => "Date",
        "string" => "String",
        "token" => "Token",
        "reference" => "Reference",
        "composite" => "Composite",
        "quantity" => "Quantity",
        "uri" => "Uri",
        "special" => "Special",
        _ => bail!("unknown search parameter type {kind}"),
    })
}

/// Splits a FHIRPath expression at its top-level `|` operators.
fn union_parts(expression: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut quoted, mut start) = (0i32, false, 0);
    for (i, c) in expression.char_indices() {
        match c {
            '\'' => quoted = !quoted,
            '(' if !quoted => depth += 1,
            ')' if !quoted => depth -= 1,
            '|' if !quoted && depth == 0 => {
                parts.push(expression[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(expression[start..].trim());
    parts
}

/// Whether a union part of a search expression starts at `resource_type`.
fn part_is_for(part: &str, resource_type: &str) -> bool {
    part.trim_start_matches('(')
        .strip_prefix(resource_type)
        .is_some_and(|rest| rest.starts_with(['.', ' ', ')']) || rest.is_empty())
}

/// The parts of `expression` that apply to `resource_type`, or the whole expression.
fn expression_for(expression: &str, resource_type: &str) -> String {
    let parts: Vec<&str> = union_parts(expression)
        .into_iter()
        .filter(|p| part_is_for(p, resource_type))
        .collect();
    if parts.is_empty() {
        expression.to_owned()
    } else {
        parts.join(" | ")
    }
}

fn build_search(src: &Sources) -> Result<BTreeMap<String, BTreeMap<String, Param>>> {
    let mut search: BTreeMap<String, BTreeMap<String, Param>> = BTreeMap::new();
    for sp in &src.search {
        let kind = search_kind(&sp.kind)?;
        for base in &sp.base {
            let param = Param {
                code: sp.code.clone(),
                kind,
                expression: expression_for(&sp.expression, base),
                targets: sp.targets.clone(),
            };
            if search
                .entry(base.clone())
                .or_default()
                .insert(sp.code.clone(), param)
                .is_some()
            {
                bail!("duplicate search parameter {base}.{}", sp.code);
            }
        }
    }
    Ok(search)
}

/// The element path (relative to the resource) of one compartment expression part:
/// `Observation.subject.where(resolve() is Patient)` → `subject`.
fn compartment_path(part: &str, resource_type: &str) -> Result<String> {
    let path = part
        .strip_prefix(resource_type)
        .and_then(|p| p.strip_prefix('.'))
        .with_context(|| {
            format!("compartment expression part {part} is not for {resource_type}")
        })?;
    let path = path
        .strip_suffix(".where(resolve() is Patient)")
        .unwrap_or(path);
    ensure!(
        path.split('.')
            .all(|s| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric())),
        "unsupported compartment expression part {part}"
    );
    Ok(path.to_owned())
}

fn build_compartment(src: &Sources) -> Result<Vec<CompartmentRow>> {
    let mut by_code: BTreeMap<(&str, &str), &str> = BTreeMap::new();
    for sp in &src.search {
        for base in &sp.base {
            by_code.insert((base, &sp.code), &sp.expression);
        }
    }
    let mut rows = Vec::new();
    for (resource_type, params) in &src.compartment {
        if params.is_empty() {
            continue;
        }
        let mut paths: Vec<String> = Vec::new();
        for param in params {
            let expression = by_code
                .get(&(resource_type.as_str(), param.as_str()))
                .with_context(|| format!("no search parameter {resource_type}.{param}"))?;
            for part in union_parts(expression) {
                if part_is_for(part, resource_type) {
                    let path = compartment_path(part, resource_type)?;
                    if !paths.contains(&path) {
                        paths.push(path);
                    }
                }
            }
        }
        rows.push(CompartmentRow {
            resource_type: resource_type.clone(),
            params: params.clone(),
            paths,
        });
    }
    rows.sort_by(|a, b| a.resource_type.cmp(&b.resource_type));
    Ok(rows)
}
