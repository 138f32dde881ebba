//! The engine: a configuration compiled into a rule plan per resource type, applied to one
//! resource at a time (or to a batch of NDJSON lines).
//!
//! For each resource, rules run in file order; each rule selects nodes, and its method is
//! applied to every selected node and, recursively, to every node beneath it that no earlier
//! rule has touched (the first rule to touch a node wins; `keep` protects a subtree). Nested
//! resources (Bundle entries, contained resources) are then processed with their own type's
//! rules. Security labels are added on the way back up, and empty nodes are pruned last.
//!
//! Speed: each resource is indexed once ([`Tree`]); one pass groups its nodes by type and by
//! name, which answers every `nodesByType`/`nodesByName` rule; most other rule paths are
//! answered from the index too ([`crate::select`]), and FHIRPath runs only for the rest.
//! When a plan allows it (no perturb, substitute or generalize, and no rule that reads values
//! after one that edits them), rules read the resource as it came in and their edits are
//! written after the last rule, in one pass: the first rule to touch a node wins, so no rule
//! reads a value that an earlier rule changed, and the result is the same.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use fhirpath::{Environment, Expression, Item, Step};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rayon::prelude::*;
use rust_decimal::Decimal;
use serde_json::{Map, Value};

use crate::config::{
    Config, DateShiftScope, Method, PerturbSettings, ProcessingErrors, ScrubDates,
};
use crate::error::{Error, Result};
use crate::json::{pointer, prune, prune_masking, resolve, resolve_mut};
use crate::labels;
use crate::methods::date_shift::{self, DateKind, Shift};
use crate::methods::generalize::{self, Cases, Generalized};
use crate::methods::perturb::{self, NumberKind, QUANTITY_TYPES};
use crate::methods::redact::{self, Redaction, Target};
use crate::methods::{
    Operation, Today, crypto_hash, encrypt, free_text, keep, substitute, value_str, value_text,
};
use crate::select::{self, Index, SlotTable, TreePath};
use crate::summary::Summary;
use crate::tree::{self, Tree};

/// A compiled configuration, ready to de-identify resources from any number of threads.
#[derive(Debug, Clone)]
pub struct Engine {
    config: Config,
    rules: Vec<CompiledRule>,
    generic: Plan,
    by_type: HashMap<&'static str, Plan>,
    types: SlotTable,
    names: SlotTable,
    hasher: crypto_hash::Hasher,
    /// The free-text scrubber of the `scrub` method, over the run's identifiers.
    scrubber: Arc<scrub::Scrubber>,
    /// Some rule uses `scrub`.
    scrubs: bool,
    /// A rule hashes resource ids (`Resource.id` with `cryptoHash`), contained ones included.
    hashes_ids: bool,
    today: Option<Today>,
    seed: Option<u64>,
}

/// The rules applied to one resource type, in order, and how they can run.
#[derive(Debug, Clone)]
struct Plan {
    rules: Vec<usize>,
    /// Edits can wait until every rule has selected its nodes (see the module documentation).
    buffered: bool,
    /// Some rule starts from the index of types or names.
    indexed: bool,
}

impl Plan {
    fn new(rules: Vec<usize>, compiled: &[CompiledRule]) -> Plan {
        let mut buffered = true;
        let mut edited = false;
        for &index in &rules {
            let rule = &compiled[index];
            if rule.selector.reads_values() && edited {
                buffered = false;
            }
            match rule.method {
                CompiledMethod::Keep => {}
                CompiledMethod::Perturb(_)
                | CompiledMethod::Substitute(_)
                | CompiledMethod::Generalize(_) => buffered = false,
                _ => edited = true,
            }
        }
        let indexed = rules
            .iter()
            .any(|&i| matches!(&compiled[i].selector, Selector::Tree(p, _) if p.indexed()));
        Plan {
            rules,
            buffered,
            indexed,
        }
    }
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
    /// The path is exactly a resource type: the resource node itself.
    Resource,
    /// A path the typed index answers; with a `where` step, also as FHIRPath, for values the
    /// index cannot compare.
    Tree(TreePath, Option<Expression>),
    /// Any other FHIRPath, evaluated on the resource.
    Path(Expression),
}

impl Selector {
    /// Whether the nodes selected can depend on values (not only on the resource's shape).
    fn reads_values(&self) -> bool {
        match self {
            Selector::Resource => false,
            Selector::Tree(p, _) => p.reads_values(),
            Selector::Path(_) => true,
        }
    }
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
    Scrub,
}

/// The method names, by [`CompiledMethod::slot`].
const METHOD_NAMES: [&str; 9] = [
    "keep",
    "redact",
    "dateShift",
    "cryptoHash",
    "encrypt",
    "substitute",
    "perturb",
    "generalize",
    "scrub",
];

impl CompiledMethod {
    /// The method's position in [`METHOD_NAMES`].
    fn slot(&self) -> usize {
        match self {
            CompiledMethod::Keep => 0,
            CompiledMethod::Redact => 1,
            CompiledMethod::DateShift => 2,
            CompiledMethod::CryptoHash => 3,
            CompiledMethod::Encrypt => 4,
            CompiledMethod::Substitute(_) => 5,
            CompiledMethod::Perturb(_) => 6,
            CompiledMethod::Generalize(_) => 7,
            CompiledMethod::Scrub => 8,
        }
    }
}

/// The resources a rule applies to, by the resource type its path starts with
/// ([`split_path`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Applies {
    /// Every resource: no type, `Resource` or `DomainResource`.
    All,
    /// The resources of one type.
    Type(&'static str),
    /// None: a type that is not a concrete R4 resource type (`Extension.url`, a typo).
    Never,
}

/// Which resources a rule whose path starts with `resource_type` applies to.
pub(crate) fn applies_to(resource_type: &str) -> Applies {
    match resource_type {
        "" | "Resource" | "DomainResource" => Applies::All,
        t => match fhir::types::intern(t) {
            Some(t) if fhir::types::is_concrete_resource_type(t) => Applies::Type(t),
            _ => Applies::Never,
        },
    }
}

/// Splits a rule path as the original does: a leading capitalised token is the resource type
/// the rule applies to (`Patient.name` → `Patient`, `name`); otherwise the rule is generic.
pub(crate) fn split_path(path: &str) -> (&str, &str) {
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

fn compile_rule<'r>(
    index: usize,
    rule: &'r crate::config::Rule,
    types: &mut SlotTable,
    names: &mut SlotTable,
) -> Result<(CompiledRule, &'r str)> {
    let path = rule.path.trim();
    let (resource_type, expression) = split_path(path);
    let parse = || {
        Expression::parse(expression)
            .map_err(|e| Error::rule_config(index, path, format!("invalid FHIRPath: {e}")))
    };
    let selector =
        if let Some(tree_path) = select::compile(path, resource_type, expression, types, names) {
            // The original's fast paths are never parsed as FHIRPath; the other shapes the index
            // answers always parse.
            let fallback = if tree_path.reads_values() {
                Some(parse()?)
            } else {
                None
            };
            Selector::Tree(tree_path, fallback)
        } else if !resource_type.is_empty() && expression.is_empty() {
            Selector::Resource
        } else {
            Selector::Path(parse()?)
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
        Method::Scrub => CompiledMethod::Scrub,
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

/// An element a rule acted on, from [`Engine::deidentify_traced`]: the first rule that selects
/// an element (or one of its ancestors) owns it, and later rules leave it alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Touched {
    /// The element's JSON Pointer in the resource as it came in (`/name/0/family`).
    pub pointer: String,
    /// The rule's index in [`Config::rules`].
    pub rule: usize,
    /// For `scrub`: what was replaced in the element's text (byte ranges in the text as it came
    /// in, with kind and layer).
    pub spans: Vec<scrub::Span>,
}

/// Per-call state: counts, the random stream, the patient owners for scope `patient`.
struct Run<'c> {
    ctx: &'c Context<'c>,
    summary: Summary,
    /// Values processed per method, by [`CompiledMethod::slot`] (added to `summary` at the end).
    nodes: [u64; 9],
    rng: Option<StdRng>,
    owners: HashMap<String, String>,
    today: Today,
    /// The elements each rule acted on, when tracing.
    trace: Option<Vec<Touched>>,
    /// The identifiers of the outermost resource itself (its people, its contained people,
    /// a Bundle's entries), for `scrub`.
    local: Option<scrub::Dictionary>,
}

impl Run<'_> {
    /// Records that `rule` acted on the element at `node`, when tracing.
    fn touch(&mut self, rule: &CompiledRule, scope: &Scope<'_>, node: u32) {
        if let Some(trace) = &mut self.trace {
            trace.push(Touched {
                pointer: pointer(&join(scope.at, scope.tree.location(node))),
                rule: rule.index,
                spans: Vec::new(),
            });
        }
    }

    fn count(&mut self, method: &CompiledMethod) {
        self.nodes[method.slot()] += 1;
    }

    /// The summary, with the per-method counts.
    fn finish(mut self) -> Summary {
        for (name, n) in METHOD_NAMES.iter().zip(self.nodes) {
            if n > 0 {
                self.summary.add_nodes(name, n);
            }
        }
        self.summary
    }

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

/// A nested resource to process after its container: its location, and whether it is
/// contained.
type Nested = (Vec<Step>, bool);

/// Where the current resource sits and what has been done to it.
struct Scope<'a> {
    at: &'a [Step],
    tree: Tree,
    visited: Vec<bool>,
    ops: u8,
    rewritten: Vec<u32>,
    /// For date-shift scope `patient`: the patient this resource belongs to.
    owner: Option<String>,
    /// For buffered edits of the outermost resource: its id as rewritten by an earlier rule
    /// (`Some(None)` when removed), which the date-shift offset reads.
    root_id: Option<Option<String>>,
}

impl Scope<'_> {
    /// Whether `node` is the outermost resource's own `id`.
    fn is_root_id(&self, node: u32) -> bool {
        let n = &self.tree.nodes[node as usize];
        self.at.is_empty() && n.parent == 0 && n.key == "id"
    }
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
        let (mut types, mut names) = (SlotTable::default(), SlotTable::default());
        for (index, rule) in config.rules.iter().enumerate() {
            let (compiled, resource_type) = compile_rule(index, rule, &mut types, &mut names)?;
            match applies_to(resource_type) {
                Applies::All => generic.push(index),
                Applies::Type(t) => specific.push((t, index)),
                Applies::Never => {}
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
        let by_type = by_type
            .into_iter()
            .map(|(t, mut plan)| {
                plan.sort_unstable();
                (t, Plan::new(plan, &rules))
            })
            .collect();
        let generic = Plan::new(generic, &rules);
        let hasher = crypto_hash::Hasher::new(
            config
                .parameters
                .crypto_hash_key
                .as_deref()
                .unwrap_or_default(),
        );
        let scrubs = rules
            .iter()
            .any(|r| matches!(r.method, CompiledMethod::Scrub));
        let hashes_ids = rules
            .iter()
            .any(|r| r.path == "Resource.id" && matches!(r.method, CompiledMethod::CryptoHash));
        let scrubber = Arc::new(free_text::scrubber(
            &config.parameters.scrub,
            scrub::Dictionary::default(),
        ));
        Ok(Engine {
            config,
            rules,
            generic,
            by_type,
            types,
            names,
            hasher,
            scrubber,
            scrubs,
            hashes_ids,
            today: None,
            seed: None,
        })
    }

    /// Gives `scrub` the run's identifiers (collected from the run's people and places before
    /// any resource is de-identified), found in every free-text element besides each resource's
    /// own.
    pub fn with_identities(mut self, identities: &scrub::Identities) -> Engine {
        self.scrubber = Arc::new(free_text::scrubber(
            &self.config.parameters.scrub,
            identities.build(),
        ));
        self
    }

    /// Whether some rule uses `scrub`, so that the run's identifiers are worth collecting.
    pub fn scrubs(&self) -> bool {
        self.scrubs
    }

    /// The run's identifiers as `scrub` sees them (their number and memory).
    pub fn dictionary(&self) -> &scrub::Dictionary {
        self.scrubber.dictionary()
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

    /// The plan of a resource type.
    fn plan(&self, resource_type: &str) -> &Plan {
        self.by_type.get(resource_type).unwrap_or(&self.generic)
    }

    /// De-identifies one resource in place (a Bundle with all its entries, a resource with its
    /// contained resources) and returns what was done.
    ///
    /// With `processingErrors: skip`, a failing `generalize` case empties the whole resource to
    /// `{"resourceType": …, "meta": {"security": [REDACTED]}}` and counts it as skipped; every
    /// other failure is returned.
    pub fn deidentify(&self, resource: &mut Value, ctx: &Context<'_>) -> Result<Summary> {
        self.deidentify_with(resource, ctx, None)
            .map(|(summary, _)| summary)
    }

    /// [`Engine::deidentify`], also returning the elements each rule acted on, in the order
    /// they were processed (for a preview that names the rule behind each change; slower, as
    /// it builds a pointer per element).
    pub fn deidentify_traced(
        &self,
        resource: &mut Value,
        ctx: &Context<'_>,
    ) -> Result<(Summary, Vec<Touched>)> {
        self.deidentify_with(resource, ctx, Some(Vec::new()))
            .map(|(summary, trace)| (summary, trace.unwrap_or_default()))
    }

    fn deidentify_with(
        &self,
        resource: &mut Value,
        ctx: &Context<'_>,
        trace: Option<Vec<Touched>>,
    ) -> Result<(Summary, Option<Vec<Touched>>)> {
        let mut run = Run {
            ctx,
            summary: Summary::default(),
            nodes: [0; 9],
            rng: None,
            owners: HashMap::new(),
            today: self.today.unwrap_or_else(Today::now),
            trace,
            local: None,
        };
        if self.scrubs {
            run.local = free_text::local_dictionary(resource);
        }
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
                return Ok((summary, run.trace));
            }
            Err(e) => return Err(e),
        }
        match tree::resource_type(resource, "") {
            Ok(resource_type) if self.config.parameters.valid_output => {
                prune_masking(resource, resource_type);
            }
            _ => {
                prune(resource);
            }
        }
        let trace = run.trace.take();
        Ok((run.finish(), trace))
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
                let done = self
                    .deidentify_line(line, &line_ctx)
                    .and_then(|(resource, summary)| {
                        serde_json::to_string(&resource)
                            .map(|text| (text, summary))
                            .map_err(|_| Error::input("", "the result cannot be written as JSON"))
                    });
                match done {
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

    /// De-identifies one NDJSON line (a trailing `\r` is ignored; a blank line is an error) and
    /// returns the resource with what was done. Errors give the position, never the text.
    pub fn deidentify_line(&self, line: &[u8], ctx: &Context<'_>) -> Result<(Value, Summary)> {
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
        Ok((resource, summary))
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
        let base = pointer(at);
        let json =
            resolve(root, at).ok_or_else(|| Error::input(base.as_str(), "missing resource"))?;
        let plan = self.plan(tree::resource_type(json, &base)?);
        let owner = match self.config.parameters.date_shift_scope {
            DateShiftScope::Patient => run.owners.get(&base).cloned(),
            _ => None,
        };
        let (mut ops, nested) = if plan.buffered {
            self.run_buffered(plan, run, root, at, &base, owner)?
        } else {
            self.run_immediate(plan, run, root, at, &base, owner)?
        };
        for (location, is_contained) in nested {
            ops |= self.process_resource(run, root, &location, is_contained)?;
        }
        if !contained && let Some(Value::Object(obj)) = resolve_mut(root, at) {
            labels::add(obj, ops, self.config.parameters.valid_output);
        }
        Ok(ops)
    }

    /// Runs a plan whose edits can wait: every rule selects on the resource as it came in,
    /// edits are collected, then written. Returns the operations recorded and the nested
    /// resources to process (location, whether contained).
    fn run_buffered(
        &self,
        plan: &Plan,
        run: &mut Run<'_>,
        root: &mut Value,
        at: &[Step],
        base: &str,
        owner: Option<String>,
    ) -> Result<(u8, Vec<Nested>)> {
        let (tree, values) = loop {
            let json = resolve(root, at).ok_or_else(|| Error::input(base, "missing resource"))?;
            let (tree, values) = Tree::build_with_values(json, base)?;
            let Some(node) = tree.unwrapped else {
                break (tree, values);
            };
            wrap_in_array(root, &join(at, tree.location(node)));
        };
        let root_ro: &Value = root;
        let json = values[0].unwrap_or(&Value::Null);
        run.summary.count_resource(tree.nodes[0].ty);
        let index = if plan.indexed {
            Index::build(&tree, &self.types, &self.names)
        } else {
            Index::default()
        };
        let mut scope = Scope {
            at,
            visited: vec![false; tree.nodes.len()],
            tree,
            ops: 0,
            rewritten: Vec::new(),
            owner,
            root_id: None,
        };
        let mut edits: Vec<(u32, Option<Value>)> = Vec::new();
        for &index_of_rule in &plan.rules {
            let rule = &self.rules[index_of_rule];
            let matches = self.select(rule, &scope.tree, &index, json, root_ro, at, |n| {
                values[n as usize]
            })?;
            for node in matches {
                if !scope.visited[node as usize] {
                    self.apply_buffered(rule, node, &mut scope, &values, root_ro, &mut edits, run)?;
                }
            }
        }
        if self.config.parameters.valid_output && self.hashes_ids {
            self.local_links(&scope.tree, &values, &mut edits);
        }
        let nested = nested_resources(&scope.tree, at);
        if !edits.is_empty()
            && let Some(resource) = resolve_mut(root, at)
        {
            let mut masked = Vec::new();
            for (node, value) in edits {
                if value.is_none() && self.masks(&scope.tree, node) {
                    masked.push(node);
                } else {
                    scope.tree.write(resource, node, value);
                }
            }
            // Children before parents, once every value is written.
            for node in masked.into_iter().rev() {
                self.remove_required(&scope.tree, resource, node);
            }
        }
        Ok((scope.ops, nested))
    }

    /// Applies a rule's method to `node` and its unvisited descendants, collecting the edits.
    #[allow(clippy::too_many_arguments)]
    fn apply_buffered(
        &self,
        rule: &CompiledRule,
        node: u32,
        scope: &mut Scope<'_>,
        values: &[Option<&Value>],
        root: &Value,
        edits: &mut Vec<(u32, Option<Value>)>,
        run: &mut Run<'_>,
    ) -> Result<()> {
        run.touch(rule, scope, node);
        if scope.tree.nodes[node as usize].primitive
            && let Some(text) = values[node as usize].and_then(value_str)
            && !text.is_empty()
        {
            let root_id = match &scope.root_id {
                _ if !matches!(
                    rule.method,
                    CompiledMethod::DateShift | CompiledMethod::Scrub
                ) =>
                {
                    None
                }
                Some(id) => id.clone(),
                None => root.get("id").and_then(Value::as_str).map(str::to_string),
            };
            if matches!(rule.method, CompiledMethod::Scrub) {
                let content_type = scope
                    .tree
                    .sibling(node, "contentType")
                    .and_then(|c| values[c as usize])
                    .and_then(Value::as_str);
                let found = self.scrub(node, scope, &text, content_type, root_id.as_deref(), run);
                edits.extend(found);
            } else if let Some(value) =
                self.process_primitive(rule, node, scope, &text, root_id.as_deref(), run)?
            {
                if scope.is_root_id(node) {
                    scope.root_id = Some(value.as_ref().and_then(Value::as_str).map(String::from));
                }
                edits.push((node, value));
            }
        }
        scope.visited[node as usize] = true;
        let end = scope.tree.nodes[node as usize].end;
        let mut child = node + 1;
        while child < end {
            let c = &scope.tree.nodes[child as usize];
            let next = c.end;
            if !c.resource && !scope.visited[child as usize] {
                self.apply_buffered(rule, child, scope, values, root, edits, run)?;
            }
            child = next;
        }
        Ok(())
    }

    /// Runs a plan rule by rule, each seeing the edits of the rules before it. Returns the
    /// operations recorded and the nested resources to process.
    fn run_immediate(
        &self,
        plan: &Plan,
        run: &mut Run<'_>,
        root: &mut Value,
        at: &[Step],
        base: &str,
        owner: Option<String>,
    ) -> Result<(u8, Vec<Nested>)> {
        let json = resolve(root, at).ok_or_else(|| Error::input(base, "missing resource"))?;
        let mut tree = Tree::build(json, base)?;
        while let Some(node) = tree.unwrapped {
            wrap_in_array(root, &join(at, tree.location(node)));
            let json = resolve(root, at).unwrap_or(&Value::Null);
            tree = Tree::build(json, base)?;
        }
        run.summary.count_resource(tree.nodes[0].ty);
        let mut scope = Scope {
            at,
            visited: vec![false; tree.nodes.len()],
            tree,
            ops: 0,
            rewritten: Vec::new(),
            owner,
            root_id: None,
        };
        let build_index = |tree: &Tree| {
            if plan.indexed {
                Index::build(tree, &self.types, &self.names)
            } else {
                Index::default()
            }
        };
        let mut index = build_index(&scope.tree);
        for &index_of_rule in &plan.rules {
            let rule = &self.rules[index_of_rule];
            let resource = resolve(root, at).unwrap_or(&Value::Null);
            let matches = self.select(rule, &scope.tree, &index, resource, root, at, |n| {
                scope.tree.value(resource, n)
            })?;
            for node in matches {
                if !scope.visited[node as usize] {
                    self.apply(rule, node, &mut scope, root, run)?;
                }
            }
            if !scope.rewritten.is_empty() {
                self.reindex(&mut scope, root)?;
                index = build_index(&scope.tree);
            }
        }
        Ok((scope.ops, nested_resources(&scope.tree, at)))
    }

    /// The nodes a rule selects in the current resource (`resource`, at `at` in `root`), in
    /// document order; `value` gives a node's JSON.
    #[allow(clippy::too_many_arguments)]
    fn select<'v>(
        &self,
        rule: &CompiledRule,
        tree: &Tree,
        index: &Index,
        resource: &Value,
        root: &Value,
        at: &[Step],
        value: impl Fn(u32) -> Option<&'v Value>,
    ) -> Result<Vec<u32>> {
        let expression = match &rule.selector {
            Selector::Resource => return Ok(vec![0]),
            Selector::Tree(path, fallback) => match (path.select(tree, index, value), fallback) {
                (Some(nodes), _) => return Ok(nodes),
                (None, Some(expression)) => expression,
                (None, None) => return Ok(Vec::new()),
            },
            Selector::Path(expression) => expression,
        };
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
        Ok(own_nodes(tree, &items))
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
        run.touch(rule, scope, node);
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

    /// Applies a rule's method to one node, writing at once.
    fn process_node(
        &self,
        rule: &CompiledRule,
        node: u32,
        scope: &mut Scope<'_>,
        root: &mut Value,
        run: &mut Run<'_>,
    ) -> Result<()> {
        let n = scope.tree.nodes[node as usize].clone();
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
        if let CompiledMethod::Generalize(cases) = &rule.method {
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
            scope.ops |= Operation::Generalize.bit();
            run.count(&rule.method);
            return Ok(());
        }
        let root_id = match rule.method {
            CompiledMethod::DateShift | CompiledMethod::Scrub => {
                root.get("id").and_then(Value::as_str).map(str::to_string)
            }
            _ => None,
        };
        if matches!(rule.method, CompiledMethod::Scrub) {
            let content_type = resolve(root, scope.at)
                .and_then(|r| {
                    let sibling = scope.tree.sibling(node, "contentType")?;
                    scope.tree.value(r, sibling)
                })
                .and_then(Value::as_str)
                .map(str::to_string);
            let found = self.scrub(
                node,
                scope,
                &text,
                content_type.as_deref(),
                root_id.as_deref(),
                run,
            );
            for (edited, value) in found {
                self.store(root, scope, edited, value);
            }
        } else if let Some(value) =
            self.process_primitive(rule, node, scope, &text, root_id.as_deref(), run)?
        {
            self.store(root, scope, node, value);
        }
        Ok(())
    }

    /// Writes a node's value in the current resource, as [`write`] does, but a removal that
    /// would leave a required element missing masks it instead, under `validOutput`
    /// ([`Engine::remove_required`]).
    fn store(&self, root: &mut Value, scope: &Scope<'_>, node: u32, value: Option<Value>) {
        if value.is_none() && self.masks(&scope.tree, node) {
            if let Some(resource) = resolve_mut(root, scope.at) {
                self.remove_required(&scope.tree, resource, node);
            }
        } else {
            write(root, scope, node, value);
        }
    }

    /// Whether removing `node` must keep the output valid: `validOutput` is on and the element
    /// is required.
    fn masks(&self, tree: &Tree, node: u32) -> bool {
        self.config.parameters.valid_output && tree.nodes[node as usize].required
    }

    /// Removes a required element without leaving it missing: it is masked with the
    /// `data-absent-reason` extension, or, where the element cannot carry an extension (a
    /// narrative's `div`, an extension's `url`), the element holding it goes instead (masked
    /// in turn when it is required).
    fn remove_required(&self, tree: &Tree, resource: &mut Value, node: u32) {
        let n = &tree.nodes[node as usize];
        if !n.required {
            tree.write(resource, node, None);
        } else if n.ty == "xhtml" || n.system {
            match n.parent {
                0 | tree::NONE => tree.write(resource, node, None),
                parent => self.remove_required(tree, resource, parent),
            }
        } else {
            tree.write_absent(resource, node);
        }
    }

    /// Under `validOutput`, when ids are hashed: the edits that make every local canonical link
    /// (`definitionCanonical: "#vs1"`) follow its contained resource's hashed id, as
    /// `Reference.reference` values do.
    fn local_links(
        &self,
        tree: &Tree,
        values: &[Option<&Value>],
        edits: &mut Vec<(u32, Option<Value>)>,
    ) {
        for (node, n) in tree.nodes.iter().enumerate() {
            if n.ty != "canonical" || edits.iter().any(|(e, _)| *e as usize == node) {
                continue;
            }
            if let Some(local) = values[node]
                .and_then(Value::as_str)
                .and_then(|v| v.strip_prefix('#'))
                && !local.is_empty()
            {
                let hashed = self.hasher.hash_reference(&format!("#{local}"));
                edits.push((node as u32, Some(Value::String(hashed))));
            }
        }
    }

    /// Applies `scrub` to a primitive whose text is `text` and returns the edits: the value's
    /// own and, for an attachment's data, its `size` and `hash` (which later rules then leave
    /// alone). `content_type` is the sibling `contentType`; `root_id` is the outermost
    /// resource's id as it is now (for shifted dates).
    fn scrub(
        &self,
        node: u32,
        scope: &mut Scope<'_>,
        text: &str,
        content_type: Option<&str>,
        root_id: Option<&str>,
        run: &mut Run<'_>,
    ) -> Vec<(u32, Option<Value>)> {
        let dates = match self.config.parameters.scrub.dates {
            ScrubDates::Year => scrub::DateAction::Year,
            ScrubDates::Keep => scrub::DateAction::Keep,
            ScrubDates::Shift => {
                scrub::DateAction::Shift(self.date_shift_offset(root_id, scope, run))
            }
        };
        let context = scrub::Context {
            local: run.local.as_ref(),
            dates,
        };
        let (ty, key) = {
            let n = &scope.tree.nodes[node as usize];
            (n.ty, n.key)
        };
        let outcome = free_text::scrub_value(&self.scrubber, ty, key, text, content_type, &context);
        run.count(&CompiledMethod::Scrub);
        let mut edits = Vec::new();
        let mut sibling_edit = |scope: &mut Scope<'_>, key: &str, value: Option<Value>| {
            if let Some(sibling) = scope.tree.sibling(node, key) {
                scope.visited[sibling as usize] = true;
                edits.push((sibling, value));
            }
        };
        match outcome {
            free_text::Outcome::Unchanged => return edits,
            free_text::Outcome::Replaced {
                value,
                spans,
                decoded_len,
            } => {
                run.summary
                    .scrub
                    .add(&scope.tree.element_path(node), &spans);
                if let Some(len) = decoded_len {
                    sibling_edit(scope, "size", Some(Value::from(len)));
                    sibling_edit(scope, "hash", None);
                }
                if let Some(last) = run.trace.as_mut().and_then(|t| t.last_mut()) {
                    last.spans = spans;
                }
                edits.push((node, Some(Value::String(value))));
            }
            free_text::Outcome::Dropped => {
                run.summary
                    .scrub
                    .drop_element(&scope.tree.element_path(node));
                if ty == "base64Binary" {
                    sibling_edit(scope, "hash", None);
                }
                edits.push((node, None));
            }
        }
        scope.ops |= Operation::Redact.bit();
        edits
    }

    /// Applies keep, redact, dateShift, cryptoHash or encrypt to a primitive whose text is
    /// `text` (not empty), recording the operation; returns the value to write (`None`
    /// removes it), if any. `root_id` is the outermost resource's id as it is now.
    fn process_primitive(
        &self,
        rule: &CompiledRule,
        node: u32,
        scope: &mut Scope<'_>,
        text: &str,
        root_id: Option<&str>,
        run: &mut Run<'_>,
    ) -> Result<Option<Option<Value>>> {
        let n = &scope.tree.nodes[node as usize];
        let parent_type = scope.tree.nodes[n.parent as usize].ty;
        let params = &self.config.parameters;
        let (write, op) = match &rule.method {
            CompiledMethod::Keep => (None, keep::keep()),
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
                let (redaction, op) = redact::redact(text, target, &settings);
                (redaction_write(self.valid_date(n.ty, redaction)), Some(op))
            }
            CompiledMethod::DateShift => {
                let kind = match n.ty {
                    "date" => DateKind::Date,
                    "dateTime" | "instant" => DateKind::DateTime,
                    _ => return Ok(None),
                };
                let offset = self.date_shift_offset(root_id, scope, run);
                match date_shift::shift(
                    text,
                    kind,
                    offset,
                    params.enable_partial_dates_for_redact,
                    run.today,
                ) {
                    Shift::Shifted(v) => (Some(Some(Value::String(v))), Some(Operation::Perturb)),
                    Shift::Redacted(r) => (
                        redaction_write(self.valid_date(n.ty, r)),
                        Some(Operation::Redact),
                    ),
                }
            }
            CompiledMethod::CryptoHash => {
                let reference = (n.name == "reference" && parent_type == "Reference")
                    || (params.enable_reference_hash_for_uris && n.ty == "uri");
                let valid = params.valid_output;
                let hashed = if valid && n.key == "ifNoneExist" {
                    self.hasher.hash_query(text)
                } else if reference && valid {
                    self.hasher.hash_reference_valid(text)
                } else if reference {
                    self.hasher.hash_reference(text)
                } else {
                    self.hasher.hash(text)
                };
                (
                    Some(Some(Value::String(hashed))),
                    Some(Operation::CryptoHash),
                )
            }
            CompiledMethod::Encrypt => {
                let key = params.encrypt_key.as_deref().unwrap_or_default();
                let Some(encrypted) = encrypt::encrypt(key, text, run.rng(self.seed)) else {
                    return Err(self.rule_error(
                        rule,
                        scope,
                        node,
                        "encryptKey must be 16, 24 or 32 bytes",
                        false,
                    ));
                };
                (
                    Some(Some(Value::String(encrypted))),
                    Some(Operation::Encrypt),
                )
            }
            CompiledMethod::Perturb(_)
            | CompiledMethod::Substitute(_)
            | CompiledMethod::Generalize(_)
            | CompiledMethod::Scrub => return Ok(None),
        };
        if let Some(op) = op {
            scope.ops |= op.bit();
        }
        run.count(&rule.method);
        Ok(write)
    }

    /// Under `validOutput`, an `instant` cut to its year is removed instead: an instant must
    /// be a full timestamp with a zone.
    fn valid_date(&self, ty: &str, redaction: Redaction) -> Redaction {
        match redaction {
            Redaction::Replace(_) if ty == "instant" && self.config.parameters.valid_output => {
                Redaction::Remove
            }
            other => other,
        }
    }

    /// The date-shift offset for the current resource; `root_id` is the outermost resource's
    /// id as it is now (an earlier `Resource.id` hash changes it, as in the original).
    fn date_shift_offset(&self, root_id: Option<&str>, scope: &Scope<'_>, run: &Run<'_>) -> i64 {
        let params = &self.config.parameters;
        if let Some(fixed) = params.date_shift_fixed_offset_in_days {
            return fixed;
        }
        let prefix = match params.date_shift_scope {
            DateShiftScope::Resource => "",
            DateShiftScope::File => run.ctx.file.map(last_component).unwrap_or_default(),
            DateShiftScope::Folder => run.ctx.folder.map(last_component).unwrap_or_default(),
            DateShiftScope::Patient => scope.owner.as_deref().unwrap_or_default(),
        };
        let prefix = if prefix.is_empty() {
            root_id.unwrap_or_default()
        } else {
            prefix
        };
        let key = params.date_shift_key.as_deref().unwrap_or_default();
        date_shift::offset(prefix, key)
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
        run.count(&CompiledMethod::Perturb(settings.clone()));
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
        run.count(&rule.method);
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

/// The nodes of `tree` that FHIRPath `items` (evaluated on its resource) are, in their order,
/// each once: computed values and nested resources, and whatever lies inside those, left out.
pub(crate) fn own_nodes(tree: &Tree, items: &[Item<'_>]) -> Vec<u32> {
    let own = |n: u32| n == 0 || !tree.nodes[n as usize].resource;
    let mut finder = tree.finder();
    let mut nodes: Vec<u32> = items
        .iter()
        .filter_map(Item::location)
        .filter_map(|location| finder.find(location.steps()))
        .filter(|&n| own(n))
        .collect();
    let mut seen = HashSet::new();
    nodes.retain(|n| seen.insert(*n));
    nodes
}

/// Turns a repeating element written as a single value (and its `_` companion) into an array.
pub(crate) fn wrap_in_array(root: &mut Value, location: &[Step]) {
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

/// Writes a node's value in the current resource (`None` removes it; see
/// [`Engine::store`] for removals that must keep the output valid).
fn write(root: &mut Value, scope: &Scope<'_>, node: u32, value: Option<Value>) {
    if let Some(resource) = resolve_mut(root, scope.at) {
        scope.tree.write(resource, node, value);
    }
}

/// What a redaction writes: `Some(None)` removes the value, `None` leaves it.
fn redaction_write(redaction: Redaction) -> Option<Option<Value>> {
    match redaction {
        Redaction::Remove => Some(None),
        Redaction::Unchanged => None,
        Redaction::Replace(text) => Some(Some(Value::String(text))),
    }
}

/// The last component of a file or folder path (its name).
fn last_component(path: &str) -> &str {
    let path = path.trim_end_matches(['/', '\\']);
    path.rsplit(['/', '\\']).next().unwrap_or(path)
}

/// The nested resources of a resource at `at` (location, whether contained), in order.
fn nested_resources(tree: &Tree, at: &[Step]) -> Vec<Nested> {
    (1..tree.nodes.len() as u32)
        .filter(|&n| tree.nodes[n as usize].resource)
        .map(|n| {
            (
                join(at, tree.location(n)),
                tree.nodes[n as usize].name == "contained",
            )
        })
        .collect()
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
