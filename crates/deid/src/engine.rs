//! The engine: a configuration compiled into a rule plan per resource type, applied to one
//! resource at a time (or to a batch of NDJSON lines).
//!
//! For each resource, rules run in file order; each rule selects nodes, and its method is
//! applied to every selected node and, recursively, to every node beneath it that no earlier
//! rule has touched (the first rule to touch a node wins; `keep` protects a subtree). Nested
//! resources (Bundle entries, contained resources) are then processed with their own type's
//! rules. Security labels are added on the way back up, and empty nodes are pruned last.

use std::collections::{HashMap, HashSet};

use fhirpath::{Environment, Expression, Step};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rayon::prelude::*;
use rust_decimal::Decimal;
use serde_json::{Map, Value};

use crate::config::{Config, DateShiftScope, Method, PerturbSettings, ProcessingErrors};
use crate::error::{Error, Result};
use crate::json::{pointer, prune, resolve, resolve_mut};
use crate::labels;
use crate::methods::date_shift::{self, DateKind, Shift};
use crate::methods::generalize::{self, Cases, Generalized};
use crate::methods::perturb::{self, NumberKind, QUANTITY_TYPES};
use crate::methods::redact::{self, Redaction, Target};
use crate::methods::{Operation, Today, crypto_hash, encrypt, keep, substitute, value_text};
use crate::summary::Summary;
use crate::tree::{self, Tree};

/// A compiled configuration, ready to de-identify resources from any number of threads.
#[derive(Debug, Clone)]
pub struct Engine {
    config: Config,
    rules: Vec<CompiledRule>,
    generic: Vec<usize>,
    by_type: HashMap<&'static str, Vec<usize>>,
    today: Option<Today>,
    seed: Option<u64>,
}

/// Where a resource comes from, for date-shift scopes `file` and `folder` and for seeded runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct Context<'a> {
    /// The input file (scope `file` uses its name, extension included).
    pub file: Option<&'a str>,
    /// The root input folder (scope `folder` uses its last component).
    pub folder: Option<&'a str>,
    /// The resource's position in its input (for example its line number); with a seed, it
    /// picks the random stream of perturb and encrypt, so results do not depend on threads.
    pub sequence: u64,
}

/// The result of [`Engine::deidentify_lines`]: one entry per input line, in input order.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    /// Each line's de-identified resource as compact JSON, or why it failed.
    pub lines: Vec<Result<String>>,
    /// The counts of every line that succeeded.
    pub summary: Summary,
}

#[derive(Debug, Clone)]
struct CompiledRule {
    index: usize,
    path: String,
    selector: Selector,
    method: CompiledMethod,
}

#[derive(Debug, Clone)]
enum Selector {
    /// `nodesByType('T')` or `nodesByType('T').child`.
    NodesByType(String, Option<String>),
    /// `nodesByName('n')` or `nodesByName('n').child`.
    NodesByName(String, Option<String>),
    /// The path is exactly a resource type: the resource node itself.
    Resource,
    /// Any other FHIRPath, evaluated on the resource.
    Path(Expression),
}

#[derive(Debug, Clone)]
enum CompiledMethod {
    Keep,
    Redact,
    DateShift,
    CryptoHash,
    Encrypt,
    Substitute(Value),
    Perturb(PerturbSettings),
    Generalize(Cases),
}

impl CompiledMethod {
    fn name(&self) -> &'static str {
        match self {
            CompiledMethod::Keep => "keep",
            CompiledMethod::Redact => "redact",
            CompiledMethod::DateShift => "dateShift",
            CompiledMethod::CryptoHash => "cryptoHash",
            CompiledMethod::Encrypt => "encrypt",
            CompiledMethod::Substitute(_) => "substitute",
            CompiledMethod::Perturb(_) => "perturb",
            CompiledMethod::Generalize(_) => "generalize",
        }
    }
}

/// Splits a rule path as the original does: a leading capitalised token is the resource type
/// the rule applies to (`Patient.name` → `Patient`, `name`); otherwise the rule is generic.
fn split_path(path: &str) -> (&str, &str) {
    let b = path.as_bytes();
    let mut n = 0;
    if b.first().is_some_and(u8::is_ascii_uppercase) {
        n = 1;
        while n < b.len() && b[n].is_ascii_alphabetic() {
            n += 1;
        }
    }
    let rest = &path[n..];
    (&path[..n], rest.strip_prefix('.').unwrap_or(rest))
}

/// `func('Name')` or `func('Name').child` with alphanumeric names: the original's fast path.
fn fast_path(path: &str, func: &str) -> Option<(String, Option<String>)> {
    let alnum = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_alphanumeric());
    let rest = path.strip_prefix(func)?.strip_prefix('(')?;
    let rest = rest.strip_prefix(['\'', '"'])?;
    let end = rest.find(['\'', '"'])?;
    let name = &rest[..end];
    let rest = rest[end + 1..].strip_prefix(')')?;
    if !alnum(name) {
        return None;
    }
    if rest.is_empty() {
        return Some((name.to_string(), None));
    }
    let child = rest.strip_prefix('.')?;
    alnum(child).then(|| (name.to_string(), Some(child.to_string())))
}

fn compile_rule(index: usize, rule: &crate::config::Rule) -> Result<(CompiledRule, &str)> {
    let path = rule.path.trim();
    let (resource_type, expression) = split_path(path);
    let selector = if let Some((t, child)) = fast_path(path, "nodesByType") {
        Selector::NodesByType(t, child)
    } else if let Some((n, child)) = fast_path(path, "nodesByName") {
        Selector::NodesByName(n, child)
    } else if !resource_type.is_empty() && expression.is_empty() {
        Selector::Resource
    } else {
        Selector::Path(
            Expression::parse(expression)
                .map_err(|e| Error::rule_config(index, path, format!("invalid FHIRPath: {e}")))?,
        )
    };
    let method = match &rule.method {
        Method::Keep => CompiledMethod::Keep,
        Method::Redact => CompiledMethod::Redact,
        Method::DateShift => CompiledMethod::DateShift,
        Method::CryptoHash => CompiledMethod::CryptoHash,
        Method::Encrypt => CompiledMethod::Encrypt,
        Method::Substitute { replace_with } => CompiledMethod::Substitute(replace_with.clone()),
        Method::Perturb(p) => CompiledMethod::Perturb(p.clone()),
        Method::Generalize(g) => {
            let compile = |text: &str| {
                Expression::parse(text).map_err(|e| {
                    Error::rule_config(index, path, format!("invalid FHIRPath in cases: {e}"))
                })
            };
            let cases = g
                .cases
                .iter()
                .map(|(p, v)| Ok((compile(p)?, compile(v)?)))
                .collect::<Result<Vec<_>>>()?;
            CompiledMethod::Generalize(Cases {
                cases,
                other_values: g.other_values,
            })
        }
    };
    Ok((
        CompiledRule {
            index,
            path: path.to_string(),
            selector,
            method,
        },
        resource_type,
    ))
}

/// Per-call state: counts, the random stream, the patient owners for scope `patient`.
struct Run<'c> {
    ctx: &'c Context<'c>,
    summary: Summary,
    rng: Option<StdRng>,
    owners: HashMap<String, String>,
    today: Today,
}

impl Run<'_> {
    fn rng(&mut self, seed: Option<u64>) -> &mut StdRng {
        let sequence = self.ctx.sequence;
        self.rng.get_or_insert_with(|| match seed {
            Some(seed) => StdRng::seed_from_u64(
                seed ^ sequence.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15),
            ),
            None => StdRng::from_rng(&mut rand::rng()),
        })
    }
}

/// Where the current resource sits and what has been done to it.
struct Scope<'a> {
    at: &'a [Step],
    tree: Tree,
    visited: Vec<bool>,
    ops: u8,
    rewritten: Vec<u32>,
}

fn join(at: &[Step], rest: Vec<Step>) -> Vec<Step> {
    let mut out = Vec::with_capacity(at.len() + rest.len());
    out.extend_from_slice(at);
    out.extend(rest);
    out
}

fn number(d: Decimal) -> Value {
    d.to_string()
        .parse::<serde_json::Number>()
        .map_or_else(|_| Value::String(d.to_string()), Value::Number)
}

impl Engine {
    /// Compiles a configuration. Fails when a rule cannot be compiled or when a key the rules
    /// need is missing (see [`Config::missing_keys`]).
    pub fn new(config: Config) -> Result<Engine> {
        if let Some((kind, rule)) = config.missing_keys().into_iter().next() {
            return Err(Error::MissingKey(kind.parameter(), rule));
        }
        let mut rules = Vec::with_capacity(config.rules.len());
        let mut generic = Vec::new();
        let mut specific: Vec<(&'static str, usize)> = Vec::new();
        for (index, rule) in config.rules.iter().enumerate() {
            let (compiled, resource_type) = compile_rule(index, rule)?;
            match resource_type {
                "" | "Resource" | "DomainResource" => generic.push(index),
                t => {
                    // A rule for an unknown type (`Extension.url`, a typo) never applies.
                    if let Some(t) = fhir::types::intern(t)
                        && fhir::types::is_concrete_resource_type(t)
                    {
                        specific.push((t, index));
                    }
                }
            }
            rules.push(compiled);
        }
        let mut by_type: HashMap<&'static str, Vec<usize>> = HashMap::new();
        for (t, index) in specific {
            by_type
                .entry(t)
                .or_insert_with(|| generic.clone())
                .push(index);
        }
        for plan in by_type.values_mut() {
            plan.sort_unstable();
        }
        Ok(Engine {
            config,
            rules,
            generic,
            by_type,
            today: None,
            seed: None,
        })
    }

    /// Fixes the date the over-89 rule counts from (default: the system clock, read per call).
    pub fn with_today(mut self, today: Today) -> Engine {
        self.today = Some(today);
        self
    }

    /// Makes perturb noise and encryption IVs reproducible: each resource draws from a stream
    /// picked by this seed and its [`Context::sequence`].
    pub fn with_seed(mut self, seed: u64) -> Engine {
        self.seed = Some(seed);
        self
    }

    /// The configuration this engine was compiled from.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The rule indexes applied to a resource type, in order.
    fn plan(&self, resource_type: &str) -> &[usize] {
        self.by_type
            .get(resource_type)
            .map_or(&self.generic, Vec::as_slice)
    }

    /// De-identifies one resource in place (a Bundle with all its entries, a resource with its
    /// contained resources) and returns what was done.
    ///
    /// With `processingErrors: skip`, a failing `generalize` case empties the whole resource to
    /// `{"resourceType": …, "meta": {"security": [REDACTED]}}` and counts it as skipped; every
    /// other failure is returned.
    pub fn deidentify(&self, resource: &mut Value, ctx: &Context<'_>) -> Result<Summary> {
        let mut run = Run {
            ctx,
            summary: Summary::default(),
            rng: None,
            owners: HashMap::new(),
            today: self.today.unwrap_or_else(Today::now),
        };
        if self.config.parameters.date_shift_scope == DateShiftScope::Patient {
            run.owners = patient_owners(resource);
        }
        match self.process_resource(&mut run, resource, &[], false) {
            Ok(_) => {}
            Err(Error::Rule {
                skippable: true, ..
            }) if self.config.processing_errors == ProcessingErrors::Skip => {
                let resource_type = resource.get("resourceType").cloned().unwrap_or(Value::Null);
                let mut summary = Summary::default();
                if let Some(t) = resource_type.as_str() {
                    summary.count_resource(t);
                }
                summary.skipped = 1;
                *resource = serde_json::json!({
                    "resourceType": resource_type,
                    "meta": {"security": [labels::coding(Operation::Redact)]}
                });
                return Ok(summary);
            }
            Err(e) => return Err(e),
        }
        prune(resource);
        Ok(run.summary)
    }

    /// De-identifies NDJSON lines (each one resource; a trailing `\r` is ignored), in parallel,
    /// returning one result per line in input order. Line `i` gets
    /// [`Context::sequence`] `ctx.sequence + i`.
    pub fn deidentify_lines(&self, lines: &[&[u8]], ctx: &Context<'_>) -> Batch {
        let results: Vec<(Result<String>, Summary)> = lines
            .par_iter()
            .enumerate()
            .map(|(i, line)| {
                let line_ctx = Context {
                    sequence: ctx.sequence + i as u64,
                    ..*ctx
                };
                match self.deidentify_line(line, &line_ctx) {
                    Ok((text, summary)) => (Ok(text), summary),
                    Err(e) => (Err(e), Summary::default()),
                }
            })
            .collect();
        let mut batch = Batch::default();
        for (line, summary) in results {
            batch.summary.merge(&summary);
            batch.lines.push(line);
        }
        batch
    }

    fn deidentify_line(&self, line: &[u8], ctx: &Context<'_>) -> Result<(String, Summary)> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            return Err(Error::input("", "blank line"));
        }
        let mut resource: Value = serde_json::from_slice(line).map_err(|e| {
            let what = match e.classify() {
                serde_json::error::Category::Eof => "incomplete JSON",
                _ => "invalid JSON",
            };
            Error::input("", format!("{what} at column {}", e.column()))
        })?;
        let summary = self.deidentify(&mut resource, ctx)?;
        Ok((resource.to_string(), summary))
    }

    /// Applies the plan of one resource (at `at` in `root`), then its nested resources, then
    /// its labels. Returns the operations recorded in it and beneath it.
    fn process_resource(
        &self,
        run: &mut Run<'_>,
        root: &mut Value,
        at: &[Step],
        contained: bool,
    ) -> Result<u8> {
        let json =
            resolve(root, at).ok_or_else(|| Error::input(pointer(at), "missing resource"))?;
        let mut tree = Tree::build(json, &pointer(at))?;
        while let Some(node) = tree.unwrapped {
            wrap_in_array(root, &join(at, tree.location(node)));
            let json = resolve(root, at).unwrap_or(&Value::Null);
            tree = Tree::build(json, &pointer(at))?;
        }
        let resource_type = tree.nodes[0].ty;
        run.summary.count_resource(resource_type);
        let mut scope = Scope {
            at,
            visited: vec![false; tree.nodes.len()],
            tree,
            ops: 0,
            rewritten: Vec::new(),
        };
        for &index in self.plan(resource_type) {
            let rule = &self.rules[index];
            let matches = self.select(rule, &scope.tree, root, at)?;
            for node in matches {
                if !scope.visited[node as usize] {
                    self.apply(rule, node, &mut scope, root, run)?;
                }
            }
            if !scope.rewritten.is_empty() {
                self.reindex(&mut scope, root)?;
            }
        }
        let nested: Vec<(Vec<Step>, bool)> = (1..scope.tree.nodes.len() as u32)
            .filter(|&n| scope.tree.nodes[n as usize].resource)
            .map(|n| {
                (
                    join(at, scope.tree.location(n)),
                    scope.tree.nodes[n as usize].name == "contained",
                )
            })
            .collect();
        let mut ops = scope.ops;
        for (location, is_contained) in nested {
            ops |= self.process_resource(run, root, &location, is_contained)?;
        }
        if !contained && let Some(Value::Object(obj)) = resolve_mut(root, at) {
            labels::add(obj, ops);
        }
        Ok(ops)
    }

    /// The nodes a rule selects in the current resource, in document order.
    fn select(
        &self,
        rule: &CompiledRule,
        tree: &Tree,
        root: &Value,
        at: &[Step],
    ) -> Result<Vec<u32>> {
        let own = |n: u32| n == 0 || !tree.nodes[n as usize].resource;
        let with_child = |nodes: Vec<u32>, child: &Option<String>| match child {
            None => nodes,
            Some(child) => nodes
                .into_iter()
                .flat_map(|n| {
                    tree.children(n)
                        .filter(|&c| tree.nodes[c as usize].name == child)
                })
                .filter(|&c| own(c))
                .collect(),
        };
        Ok(match &rule.selector {
            Selector::Resource => vec![0],
            Selector::NodesByType(t, child) => with_child(
                (0..tree.nodes.len() as u32)
                    .filter(|&n| own(n) && tree.nodes[n as usize].ty == t)
                    .collect(),
                child,
            ),
            Selector::NodesByName(name, child) => with_child(
                (0..tree.nodes.len() as u32)
                    .filter(|&n| own(n) && tree.nodes[n as usize].name == name)
                    .collect(),
                child,
            ),
            Selector::Path(expression) => {
                let resource = resolve(root, at).unwrap_or(&Value::Null);
                let env = Environment::new()
                    .with_resource(resource)
                    .with_root_resource(root);
                let items = expression
                    .evaluate_with(resource, &env)
                    .map_err(|e| Error::Rule {
                        rule: rule.index,
                        path: rule.path.clone(),
                        element: pointer(at),
                        message: e.to_string(),
                        skippable: false,
                    })?;
                let mut nodes: Vec<u32> = items
                    .iter()
                    .filter_map(|item| item.location())
                    .filter_map(|location| tree.find(location.steps()))
                    .filter(|&n| own(n))
                    .collect();
                let mut seen = HashSet::new();
                nodes.retain(|n| seen.insert(*n));
                nodes
            }
        })
    }

    /// Applies a rule's method to `node` and, recursively, to its unvisited descendants.
    fn apply(
        &self,
        rule: &CompiledRule,
        node: u32,
        scope: &mut Scope<'_>,
        root: &mut Value,
        run: &mut Run<'_>,
    ) -> Result<()> {
        self.process_node(rule, node, scope, root, run)?;
        scope.visited[node as usize] = true;
        let children: Vec<u32> = scope.tree.children(node).collect();
        for child in children {
            let c = child as usize;
            if !scope.tree.nodes[c].resource && !scope.visited[c] {
                self.apply(rule, child, scope, root, run)?;
            }
        }
        Ok(())
    }

    fn rule_error(
        &self,
        rule: &CompiledRule,
        scope: &Scope<'_>,
        node: u32,
        message: impl Into<String>,
        skippable: bool,
    ) -> Error {
        Error::Rule {
            rule: rule.index,
            path: rule.path.clone(),
            element: pointer(&join(scope.at, scope.tree.location(node))),
            message: message.into(),
            skippable,
        }
    }

    /// Applies a rule's method to one node.
    fn process_node(
        &self,
        rule: &CompiledRule,
        node: u32,
        scope: &mut Scope<'_>,
        root: &mut Value,
        run: &mut Run<'_>,
    ) -> Result<()> {
        let n = scope.tree.nodes[node as usize].clone();
        let method = rule.method.name();
        let record = |scope: &mut Scope<'_>, run: &mut Run<'_>, op: Option<Operation>| {
            if let Some(op) = op {
                scope.ops |= op.bit();
            }
            run.summary.count_node(method);
        };
        match &rule.method {
            CompiledMethod::Perturb(settings) => {
                return self.perturb(settings, node, scope, root, run);
            }
            CompiledMethod::Substitute(replacement) => {
                return self.substitute(rule, replacement, node, scope, root, run);
            }
            CompiledMethod::Generalize(_) if !n.primitive => {
                return Err(self.rule_error(
                    rule,
                    scope,
                    node,
                    "generalize applies to primitive elements only",
                    false,
                ));
            }
            _ => {}
        }
        if !n.primitive {
            return Ok(());
        }
        let Some(text) = resolve(root, scope.at)
            .and_then(|r| scope.tree.value(r, node))
            .and_then(value_text)
        else {
            return Ok(());
        };
        if text.is_empty() {
            return Ok(());
        }
        let parent_type = scope.tree.nodes[n.parent as usize].ty;
        let params = &self.config.parameters;
        match &rule.method {
            CompiledMethod::Keep => record(scope, run, keep::keep()),
            CompiledMethod::Redact => {
                let target = if matches!(n.ty, "date" | "dateTime" | "instant") {
                    Target::Date
                } else if n.ty == "decimal" && n.name == "value" && parent_type == "Age" {
                    Target::AgeValue
                } else if n.name == "postalCode" {
                    Target::PostalCode
                } else {
                    Target::Other
                };
                let settings = redact::Settings {
                    partial_ages: params.enable_partial_ages_for_redact,
                    partial_dates: params.enable_partial_dates_for_redact,
                    partial_zip_codes: params.enable_partial_zip_codes_for_redact,
                    restricted_zip_codes: &params.restricted_zip_code_tabulation_areas,
                    today: run.today,
                };
                let (redaction, op) = redact::redact(&text, target, &settings);
                write_redaction(root, scope, node, redaction);
                record(scope, run, Some(op));
            }
            CompiledMethod::DateShift => {
                let kind = match n.ty {
                    "date" => DateKind::Date,
                    "dateTime" | "instant" => DateKind::DateTime,
                    _ => return Ok(()),
                };
                let offset = self.date_shift_offset(root, scope.at, run);
                match date_shift::shift(
                    &text,
                    kind,
                    offset,
                    params.enable_partial_dates_for_redact,
                    run.today,
                ) {
                    Shift::Shifted(v) => {
                        write(root, scope, node, Some(Value::String(v)));
                        record(scope, run, Some(Operation::Perturb));
                    }
                    Shift::Redacted(r) => {
                        write_redaction(root, scope, node, r);
                        record(scope, run, Some(Operation::Redact));
                    }
                }
            }
            CompiledMethod::CryptoHash => {
                let key = params.crypto_hash_key.as_deref().unwrap_or_default();
                let reference = (n.name == "reference" && parent_type == "Reference")
                    || (params.enable_reference_hash_for_uris && n.ty == "uri");
                let hashed = if reference {
                    crypto_hash::hash_reference(key, &text)
                } else {
                    crypto_hash::hash(key, &text)
                };
                write(root, scope, node, Some(Value::String(hashed)));
                record(scope, run, Some(Operation::CryptoHash));
            }
            CompiledMethod::Encrypt => {
                let key = params.encrypt_key.as_deref().unwrap_or_default();
                let Some(encrypted) = encrypt::encrypt(key, &text, run.rng(self.seed)) else {
                    return Err(self.rule_error(
                        rule,
                        scope,
                        node,
                        "encryptKey must be 16, 24 or 32 bytes",
                        false,
                    ));
                };
                write(root, scope, node, Some(Value::String(encrypted)));
                record(scope, run, Some(Operation::Encrypt));
            }
            CompiledMethod::Generalize(cases) => {
                let outcome = {
                    let resource = resolve(root, scope.at).unwrap_or(&Value::Null);
                    let value = scope.tree.value(resource, node).unwrap_or(&Value::Null);
                    generalize::generalize(value, n.ty, cases, resource)
                };
                match outcome {
                    Ok(Generalized::Replace(v)) => write(root, scope, node, Some(v)),
                    Ok(Generalized::Remove) => write(root, scope, node, None),
                    Ok(Generalized::Unchanged) => {}
                    Err(e) => return Err(self.rule_error(rule, scope, node, e.to_string(), true)),
                }
                record(scope, run, Some(Operation::Generalize));
            }
            CompiledMethod::Perturb(_) | CompiledMethod::Substitute(_) => {}
        }
        Ok(())
    }

    /// The date-shift offset for the resource at `at`, reading the outermost resource's id as
    /// it is now (an earlier `Resource.id` hash changes it, as in the original).
    fn date_shift_offset(&self, root: &Value, at: &[Step], run: &Run<'_>) -> i64 {
        let params = &self.config.parameters;
        if let Some(fixed) = params.date_shift_fixed_offset_in_days {
            return fixed;
        }
        let file_name = |p: &str| {
            let p = p.trim_end_matches(['/', '\\']);
            p.rsplit(['/', '\\']).next().unwrap_or(p).to_string()
        };
        let mut prefix = match params.date_shift_scope {
            DateShiftScope::Resource => String::new(),
            DateShiftScope::File => run.ctx.file.map(file_name).unwrap_or_default(),
            DateShiftScope::Folder => run.ctx.folder.map(file_name).unwrap_or_default(),
            DateShiftScope::Patient => run.owners.get(&pointer(at)).cloned().unwrap_or_default(),
        };
        if prefix.is_empty() {
            prefix = root
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
        }
        let key = params.date_shift_key.as_deref().unwrap_or_default();
        date_shift::offset(&prefix, key)
    }

    fn perturb(
        &self,
        settings: &PerturbSettings,
        node: u32,
        scope: &mut Scope<'_>,
        root: &mut Value,
        run: &mut Run<'_>,
    ) -> Result<()> {
        let n = &scope.tree.nodes[node as usize];
        let value_node = if n.primitive && NumberKind::of(n.ty).is_some() {
            Some(node)
        } else if QUANTITY_TYPES.contains(&n.ty) {
            scope
                .tree
                .children(node)
                .find(|&c| scope.tree.nodes[c as usize].name == "value")
        } else {
            None
        };
        let Some(value_node) = value_node else {
            return Ok(());
        };
        if value_node != node && scope.visited[value_node as usize] {
            return Ok(());
        }
        let Some(Value::Number(number_value)) =
            resolve(root, scope.at).and_then(|r| scope.tree.value(r, value_node))
        else {
            return Ok(());
        };
        let text = number_value.to_string();
        let Some(value) = text
            .parse::<Decimal>()
            .ok()
            .or_else(|| Decimal::from_scientific(&text).ok())
        else {
            return Ok(());
        };
        let kind =
            NumberKind::of(scope.tree.nodes[value_node as usize].ty).unwrap_or(NumberKind::Decimal);
        let result = perturb::perturb(value, kind, settings, run.rng(self.seed));
        write(root, scope, value_node, Some(number(result)));
        scope.ops |= Operation::Perturb.bit();
        run.summary.count_node("perturb");
        let end = scope.tree.nodes[node as usize].end as usize;
        scope.visited[node as usize..end].fill(true);
        Ok(())
    }

    fn substitute(
        &self,
        rule: &CompiledRule,
        replacement: &Value,
        node: u32,
        scope: &mut Scope<'_>,
        root: &mut Value,
        run: &mut Run<'_>,
    ) -> Result<()> {
        let n = scope.tree.nodes[node as usize].clone();
        if n.primitive {
            let text = substitute::primitive_text(replacement);
            write(root, scope, node, text.map(Value::String));
        } else {
            let empty = Map::new();
            let replacement = match replacement {
                Value::Object(r) => r,
                Value::Null => &empty,
                _ => {
                    return Err(self.rule_error(
                        rule,
                        scope,
                        node,
                        format!("replaceWith must be a JSON object for a {} element", n.ty),
                        false,
                    ));
                }
            };
            tree::check(replacement, n.type_key).map_err(|e| {
                let detail = match e {
                    Error::Input { element, message } => format!("replaceWith{element}: {message}"),
                    other => other.to_string(),
                };
                self.rule_error(
                    rule,
                    scope,
                    node,
                    format!("replaceWith does not fit a {} element: {detail}", n.ty),
                    false,
                )
            })?;
            let Some(Value::Object(existing)) =
                resolve(root, scope.at).and_then(|r| scope.tree.value(r, node))
            else {
                return Ok(());
            };
            let mut merged =
                substitute::merge(&scope.tree, &scope.visited, node, existing, replacement);
            if node == 0
                && let Some(t) = existing.get("resourceType")
            {
                merged.shift_insert(0, "resourceType".to_string(), t.clone());
            }
            if node == 0 {
                if let Some(resource) = resolve_mut(root, scope.at) {
                    *resource = Value::Object(merged);
                }
            } else {
                write(root, scope, node, Some(Value::Object(merged)));
            }
            scope.rewritten.push(node);
        }
        scope.ops |= Operation::Substitute.bit();
        run.summary.count_node("substitute");
        let end = n.end as usize;
        scope.visited[node as usize..end].fill(true);
        Ok(())
    }

    /// Re-indexes the resource after complex substitutions changed its shape: every node under
    /// a substituted node is visited; other nodes keep their visited state.
    fn reindex(&self, scope: &mut Scope<'_>, root: &Value) -> Result<()> {
        let visited: HashSet<String> = (0..scope.tree.nodes.len() as u32)
            .filter(|&n| scope.visited[n as usize])
            .map(|n| pointer(&scope.tree.location(n)))
            .collect();
        let roots: Vec<String> = scope
            .rewritten
            .iter()
            .map(|&n| pointer(&scope.tree.location(n)))
            .collect();
        let json = resolve(root, scope.at).unwrap_or(&Value::Null);
        let tree = Tree::build(json, &pointer(scope.at))?;
        scope.visited = (0..tree.nodes.len() as u32)
            .map(|n| {
                let p = pointer(&tree.location(n));
                visited.contains(&p)
                    || roots.iter().any(|r| {
                        p == *r || (p.starts_with(r.as_str()) && p[r.len()..].starts_with('/'))
                    })
            })
            .collect();
        scope.tree = tree;
        scope.rewritten.clear();
        Ok(())
    }
}

/// Turns a repeating element written as a single value (and its `_` companion) into an array.
fn wrap_in_array(root: &mut Value, location: &[Step]) {
    let Some((Step::Key(key), container)) = location.split_last() else {
        return;
    };
    if let Some(Value::Object(obj)) = resolve_mut(root, container) {
        for k in [key.clone(), format!("_{key}")] {
            if let Some(v) = obj.get_mut(&k)
                && !v.is_array()
            {
                *v = Value::Array(vec![v.take()]);
            }
        }
    }
}

/// Writes a node's value in the current resource (`None` removes it).
fn write(root: &mut Value, scope: &Scope<'_>, node: u32, value: Option<Value>) {
    if let Some(resource) = resolve_mut(root, scope.at) {
        scope.tree.write(resource, node, value);
    }
}

fn write_redaction(root: &mut Value, scope: &Scope<'_>, node: u32, redaction: Redaction) {
    match redaction {
        Redaction::Remove => write(root, scope, node, None),
        Redaction::Unchanged => {}
        Redaction::Replace(text) => write(root, scope, node, Some(Value::String(text))),
    }
}

/// For scope `patient`: the id of the patient each resource (by JSON pointer) belongs to,
/// computed before any rule runs. Bundle references by `fullUrl` to Patient entries are
/// resolved; contained resources without a patient of their own take their container's.
fn patient_owners(root: &Value) -> HashMap<String, String> {
    let mut resolver: HashMap<String, String> = HashMap::new();
    if let Some(entries) = root.get("entry").and_then(Value::as_array) {
        for entry in entries {
            if let (Some(url), Some(resource)) = (
                entry.get("fullUrl").and_then(Value::as_str),
                entry.get("resource"),
            ) && resource.get("resourceType").and_then(Value::as_str) == Some("Patient")
                && let Some(id) = resource.get("id").and_then(Value::as_str)
            {
                resolver.insert(url.to_string(), id.to_string());
            }
        }
    }
    let mut owners = HashMap::new();
    walk_owners(root, String::new(), None, &resolver, &mut owners);
    owners
}

fn walk_owners(
    resource: &Value,
    at: String,
    inherited: Option<&str>,
    resolver: &HashMap<String, String>,
    owners: &mut HashMap<String, String>,
) {
    let own =
        fhir::compartment::compartment_patients_resolving(resource, |r| resolver.get(r).cloned())
            .into_iter()
            .next();
    let owner = own.or_else(|| inherited.map(str::to_string));
    if let Some(contained) = resource.get("contained").and_then(Value::as_array) {
        for (i, c) in contained.iter().enumerate() {
            walk_owners(
                c,
                format!("{at}/contained/{i}"),
                owner.as_deref(),
                resolver,
                owners,
            );
        }
    }
    if resource.get("resourceType").and_then(Value::as_str) == Some("Bundle")
        && let Some(entries) = resource.get("entry").and_then(Value::as_array)
    {
        for (i, e) in entries.iter().enumerate() {
            if let Some(r) = e.get("resource") {
                walk_owners(
                    r,
                    format!("{at}/entry/{i}/resource"),
                    None,
                    resolver,
                    owners,
                );
            }
        }
    }
    if let Some(owner) = owner {
        owners.insert(at, owner);
    }
}
