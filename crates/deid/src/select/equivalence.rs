//! The typed index selects what FHIRPath selects.
//!
//! Every rule path of the built-in presets and of Microsoft's sample configurations that
//! [`compile`] turns into a [`TreePath`] is run both ways on every official R4 example and on
//! every resource of a few Synthea Bundles, exactly as the engine runs it: the path is split into
//! its resource type and expression ([`split_path`]), applies to the resources [`applies_to`]
//! says, is evaluated on each resource on its own (a Bundle, then each entry; a resource, then
//! each contained one) after repeating elements written as single values are wrapped, and
//! FHIRPath's locations count as the engine counts them ([`own_nodes`]: nested resources and
//! what is inside them left out). Where the index declines to answer (a `where` step that meets a
//! value it cannot compare), the engine asks FHIRPath, so there is nothing to compare.
//!
//! Speed: a debug build's FHIRPath walks the 250 MB of the examples at a few seconds a walk, and
//! each of the twenty-odd types of the `nodesByType('T')` rules is one walk. On the examples,
//! `nodesByType('T')` is therefore taken from one `descendants()` per resource, keeping the
//! nodes FHIRPath types as `T` outside nested resources (which is how the fhirpath crate defines
//! `nodesByType`), and the rest of the path is FHIRPath evaluated on those nodes (`%start.city`).
//! On the Synthea resources and on every resource that holds others (whose nested resources
//! `nodesByType` does not walk), every path is evaluated whole, `nodesByType` included.
//!
//! A mismatch names the rule path, the file and the differing locations, never a value.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::sync::mpsc::{self, SyncSender};
use std::time::Instant;

use fhirpath::{Environment, Expression, Item, Location, Step};
use rayon::prelude::*;
use serde_json::Value;

use super::{Index, SlotTable, TreePath, compile};
use crate::Config;
use crate::engine::{Applies, applies_to, own_nodes, split_path, wrap_in_array};
use crate::json::{pointer, resolve};
use crate::tree::Tree;

/// `descendants()`, for the starts of `nodesByType` paths.
static DESCENDANTS: LazyLock<Expression> =
    LazyLock::new(|| Expression::parse("descendants()").unwrap());

/// The Synthea Bundles checked: the shared hospital Bundle and two patients'.
const SYNTHEA: [&str; 3] = [
    "0-hospitalInformation1625911868739.json.bz2",
    "6c8f3e83-c351-ed33-c38d-6be101c275d2.json.bz2",
    "53eac4c0-8d6b-72da-2768-a6d08e687f48.json.bz2",
];

/// A rule path that the index answers, with the FHIRPath the engine would otherwise evaluate.
struct Rule {
    path: String,
    applies: Applies,
    tree_path: TreePath,
    expression: Expression,
    /// For `nodesByType('T')…`: `T`, and the rest of the path applied to `%start` (`None`
    /// when there is no rest).
    by_type: Option<(String, Option<Expression>)>,
}

/// `nodesByType('T')` (either quote) at the start of `expression`: `T` and what follows.
fn split_by_type(expression: &str) -> Option<(&str, &str)> {
    let rest = expression.strip_prefix("nodesByType(")?;
    let quote = rest.chars().next().filter(|c| matches!(c, '\'' | '"'))?;
    let (t, rest) = rest[1..].split_once(quote)?;
    Some((t, rest.strip_prefix(')')?))
}

/// The compiled rule paths, with the slot tables they were compiled into.
struct Rules {
    rules: Vec<Rule>,
    types: SlotTable,
    names: SlotTable,
}

/// What the comparison found.
#[derive(Default)]
struct Outcome {
    /// Resources compared (nested ones included).
    resources: usize,
    /// (rule, resource) pairs the index answered and FHIRPath confirmed or contradicted.
    pairs: usize,
    /// (rule, resource) pairs the index declined (FHIRPath decides in the engine).
    declined: usize,
    /// Nodes selected, summed over the pairs.
    nodes: usize,
    /// Per rule: whether it selected a node anywhere.
    used: Vec<bool>,
    /// Every difference, described by rule path, file and locations.
    mismatches: Vec<String>,
}

impl Outcome {
    fn merge(mut self, other: Outcome) -> Outcome {
        self.resources += other.resources;
        self.pairs += other.pairs;
        self.declined += other.declined;
        self.nodes += other.nodes;
        if self.used.len() < other.used.len() {
            self.used.resize(other.used.len(), false);
        }
        for (mine, theirs) in self.used.iter_mut().zip(other.used) {
            *mine |= theirs;
        }
        self.mismatches.extend(other.mismatches);
        self
    }
}

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata")
}

/// The configurations: every preset, then Microsoft's test and sample configurations.
fn configurations() -> Vec<(String, Config)> {
    let mut out: Vec<(String, Config)> = crate::presets::presets()
        .into_iter()
        .map(|(name, _)| {
            let text = crate::presets::preset(name).unwrap();
            (name.to_string(), Config::from_json(text).unwrap())
        })
        .collect();
    let folder = testdata().join("ms-anonymizer/Configurations");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files.push(testdata().join("ms-anonymizer/r4-configuration-sample.json"));
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let config = Config::from_json(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        out.push((name, config));
    }
    out
}

/// Every distinct path of `paths` that the index answers.
fn compile_rules<'p>(paths: impl IntoIterator<Item = &'p str>) -> Rules {
    let (mut types, mut names) = (SlotTable::default(), SlotTable::default());
    let mut seen = BTreeSet::new();
    let mut rules = Vec::new();
    for path in paths {
        let path = path.trim();
        if !seen.insert(path.to_string()) {
            continue;
        }
        let (resource_type, expression) = split_path(path);
        let applies = applies_to(resource_type);
        if applies == Applies::Never {
            continue;
        }
        let Some(tree_path) = compile(path, resource_type, expression, &mut types, &mut names)
        else {
            continue;
        };
        let parse =
            |text: &str| Expression::parse(text).unwrap_or_else(|e| panic!("`{path}`: {e}"));
        let by_type = split_by_type(expression).map(|(t, rest)| {
            let rest = (!rest.is_empty()).then(|| parse(&format!("%start{rest}")));
            (t.to_string(), rest)
        });
        rules.push(Rule {
            path: path.to_string(),
            applies,
            tree_path,
            expression: parse(expression),
            by_type,
        });
    }
    Rules {
        rules,
        types,
        names,
    }
}

/// Whether a location in `resource` is a nested resource or lies inside one: whether some step
/// on the way is an element of type `Resource` (by the R4 tables, not by a `resourceType` key,
/// which `ExampleScenario.instance` has too).
fn nested(resource: &Value, steps: &[Step]) -> bool {
    let Some(mut type_key) = resource
        .get("resourceType")
        .and_then(Value::as_str)
        .and_then(fhir::types::intern)
    else {
        return false;
    };
    for step in steps {
        let Step::Key(key) = step else {
            continue;
        };
        let Some(def) = fhir::types::element(type_key, key.trim_start_matches('_')) else {
            return false;
        };
        if def.type_code == "Resource" {
            return true;
        }
        if def.children.is_empty() {
            return false;
        }
        type_key = def.children;
    }
    false
}

/// One file of the corpus being checked.
struct Job<'r> {
    /// Its name, for messages.
    file: &'r str,
    /// Evaluate `nodesByType` paths whole rather than from `descendants()` (see the module
    /// documentation).
    whole: bool,
    rules: &'r Rules,
}

fn join(at: &[Step], rest: Vec<Step>) -> Vec<Step> {
    let mut out = at.to_vec();
    out.extend(rest);
    out
}

/// `nodesByType('T')` on `resource` for every `T` of the rules, from one `descendants()`: the
/// nodes FHIRPath types as `T`, nested resources and their content left out.
fn by_type<'a>(
    resource: &'a Value,
    env: &Environment<'a>,
    rules: &'a Rules,
) -> HashMap<&'a str, Vec<Item<'a>>> {
    let mut out: HashMap<&str, Vec<Item<'_>>> = rules
        .rules
        .iter()
        .filter_map(|r| r.by_type.as_ref().map(|(t, _)| (t.as_str(), Vec::new())))
        .collect();
    for item in DESCENDANTS.evaluate_with(resource, env).unwrap() {
        let (namespace, name) = item.type_name();
        if namespace == "FHIR"
            && let Some(items) = out.get_mut(name)
            && item
                .location()
                .is_some_and(|l| !nested(resource, l.steps()))
        {
            items.push(item);
        }
    }
    out
}

/// Compares every rule on the resource at `at` in `root`, then on its nested resources.
fn check(root: &mut Value, at: &[Step], job: &Job<'_>, out: &mut Outcome) {
    let base = pointer(at);
    let nested = loop {
        let resource = resolve(root, at).unwrap();
        let (tree, values) = Tree::build_with_values(resource, &base)
            .unwrap_or_else(|e| panic!("{}: {e}", job.file));
        // As the engine does: repeating elements written as single values become arrays first.
        if let Some(node) = tree.unwrapped {
            let location = join(at, tree.location(node));
            wrap_in_array(root, &location);
            continue;
        }
        break compare(root, at, &tree, &values, job, out);
    };
    for location in nested {
        check(root, &location, job, out);
    }
}

/// Compares every rule that applies to the resource at `at` in `root`, indexed as `tree`
/// with `values`; returns where its nested resources are.
fn compare(
    root: &Value,
    at: &[Step],
    tree: &Tree,
    values: &[Option<&Value>],
    job: &Job<'_>,
    out: &mut Outcome,
) -> Vec<Vec<Step>> {
    let (file, rules) = (job.file, job.rules);
    let base = pointer(at);
    let place = if base.is_empty() {
        file.to_string()
    } else {
        format!("{file} at {base}")
    };
    let resource = values[0].unwrap();
    let resource_type = tree.nodes[0].ty;
    let index = Index::build(tree, &rules.types, &rules.names);
    let env = Environment::new()
        .with_resource(resource)
        .with_root_resource(root);
    out.resources += 1;
    out.used.resize(rules.rules.len(), false);
    let shown = |nodes: &BTreeSet<u32>| -> Vec<String> {
        nodes.iter().map(|&n| pointer(&tree.location(n))).collect()
    };
    // A resource holding others is evaluated whole: `nodesByType` does not walk nested
    // resources, `descendants()` would.
    let whole = job.whole || tree.nodes.iter().skip(1).any(|n| n.resource);
    let mut starts: Option<HashMap<&str, Vec<Item<'_>>>> = None;
    for (r, rule) in rules.rules.iter().enumerate() {
        match rule.applies {
            Applies::All => {}
            Applies::Type(t) if t == resource_type => {}
            _ => continue,
        }
        let Some(selected) = rule.tree_path.select(tree, &index, |n| values[n as usize]) else {
            out.declined += 1;
            continue;
        };
        out.pairs += 1;
        let evaluated = match &rule.by_type {
            Some((t, rest)) if !whole => {
                let starts = starts.get_or_insert_with(|| by_type(resource, &env, rules));
                let start = starts.get(t.as_str()).cloned().unwrap_or_default();
                match rest {
                    Some(rest) => {
                        let env = env.clone().with_variable("start", start);
                        rest.evaluate_with(resource, &env)
                    }
                    None => Ok(start),
                }
            }
            _ => rule.expression.evaluate_with(resource, &env),
        };
        let items = match evaluated {
            Ok(items) => items,
            Err(e) => {
                out.mismatches.push(format!(
                    "`{}` on {place}: the index answers, FHIRPath fails: {e}",
                    rule.path
                ));
                continue;
            }
        };
        let by_index: BTreeSet<u32> = selected.iter().copied().collect();
        let by_fhirpath: BTreeSet<u32> = own_nodes(tree, &items).into_iter().collect();
        // Everything FHIRPath returns must be a node of this resource or lie in a nested one:
        // as many distinct own locations as nodes found (the details only when that fails).
        let own: HashSet<Location> = items
            .iter()
            .filter_map(Item::location)
            .filter(|l| !nested(resource, l.steps()))
            .collect();
        if own.len() != by_fhirpath.len() || items.iter().any(|i| i.location().is_none()) {
            let stray: Vec<String> = items
                .iter()
                .filter_map(|item| match item.location() {
                    None => Some("(a computed value)".to_string()),
                    Some(l)
                        if tree.finder().find(l.steps()).is_none()
                            && !nested(resource, l.steps()) =>
                    {
                        Some(l.to_string())
                    }
                    Some(_) => None,
                })
                .collect();
            out.mismatches.push(format!(
                "`{}` on {place}: FHIRPath items that are no node: {stray:?}",
                rule.path
            ));
        }
        if by_index.len() != selected.len() {
            out.mismatches.push(format!(
                "`{}` on {place}: the index selects a node twice",
                rule.path
            ));
        }
        if by_index != by_fhirpath {
            out.mismatches.push(format!(
                "`{}` on {place}: only the index selects {:?}; only FHIRPath selects {:?}",
                rule.path,
                shown(&(&by_index - &by_fhirpath)),
                shown(&(&by_fhirpath - &by_index)),
            ));
        }
        out.nodes += by_index.len();
        out.used[r] |= !by_index.is_empty();
    }
    (1..tree.nodes.len() as u32)
        .filter(|&n| tree.nodes[n as usize].resource)
        .map(|n| join(at, tree.location(n)))
        .collect()
}

/// Sends the corpus to `to`, as it is read: each official R4 example (the npm manifest left
/// out), then each Synthea Bundle; (file name, JSON text, whether it is Synthea's). Returns how
/// many examples there were.
fn read_corpus(to: &SyncSender<(String, Vec<u8>, bool)>) -> usize {
    let archive = File::open(testdata().join("hl7-r4-examples/hl7.fhir.r4.examples-4.0.1.tgz"))
        .expect("the examples archive is present");
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(archive));
    let mut examples = 0;
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        if !name.ends_with(".json") || name == "package/package.json" {
            continue;
        }
        let mut text = Vec::new();
        entry.read_to_end(&mut text).unwrap();
        examples += 1;
        to.send((name, text, false)).unwrap();
    }
    for name in SYNTHEA {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../data/synthea-covid-120")
            .join(name);
        let mut text = Vec::new();
        bzip2::read::MultiBzDecoder::new(File::open(&path).unwrap())
            .read_to_end(&mut text)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        to.send((name.to_string(), text, true)).unwrap();
    }
    examples
}

#[test]
fn the_index_selects_what_fhirpath_selects() {
    let started = Instant::now();
    let configs = configurations();
    let rules = compile_rules(
        configs
            .iter()
            .flat_map(|(_, c)| c.rules.iter().map(|r| r.path.as_str())),
    );
    // Decompression runs alongside the comparisons.
    let (to, from) = mpsc::sync_channel(16);
    let reader = std::thread::spawn(move || read_corpus(&to));
    let mut outcome = from
        .into_iter()
        .par_bridge()
        .map(|(name, text, whole)| {
            let mut resource: Value =
                serde_json::from_slice(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            drop(text);
            let mut out = Outcome::default();
            let job = Job {
                file: &name,
                whole,
                rules: &rules,
            };
            check(&mut resource, &[], &job, &mut out);
            out
        })
        .reduce(Outcome::default, Outcome::merge);
    let examples = reader.join().unwrap();
    outcome.mismatches.sort();
    let unused: Vec<&str> = rules
        .rules
        .iter()
        .zip(&outcome.used)
        .filter(|(_, used)| !**used)
        .map(|(r, _)| r.path.as_str())
        .collect();
    println!(
        "{} configurations, {} distinct rule paths answered by the index; {examples} examples \
         and {} Synthea Bundles: {} resources, {} (rule, resource) pairs compared, {} declined \
         to FHIRPath, {} nodes selected; in {:.1?}. Paths that selected nothing: {unused:?}",
        configs.len(),
        rules.rules.len(),
        SYNTHEA.len(),
        outcome.resources,
        outcome.pairs,
        outcome.declined,
        outcome.nodes,
        started.elapsed(),
    );
    assert_eq!(examples, 5_306);
    for mismatch in outcome.mismatches.iter().take(50) {
        println!("{mismatch}");
    }
    assert!(
        outcome.mismatches.is_empty(),
        "{} mismatches, the first: {:#?}",
        outcome.mismatches.len(),
        &outcome.mismatches[..outcome.mismatches.len().min(20)]
    );
}

/// Shapes the configurations do not use, on small resources: choice elements named by their
/// typed key, `where` on values FHIRPath does not see as strings (the index declines those),
/// companions, nested resources.
#[test]
fn the_index_selects_what_fhirpath_selects_on_other_shapes() {
    let rules = compile_rules([
        "Consent.sourceAttachment.url",
        "Consent.source",
        "Observation.valueQuantity.value",
        "Observation.value.ofType(string)",
        "Observation.component.where(valueString = 'b').code",
        "Patient.deceasedBoolean",
        "Patient.multipleBirth",
        "Patient.where(birthDate = '1974-12-25').name",
        "Patient.where(gender = 'female').name.given",
        "Patient.name.where(use = 'official').given",
        "Patient.name.where(id = 'n1').family",
        "Patient.birthDate.extension.where(url = 'u').value",
        "Patient.contact.where(gender = 'male').name",
        "nodesByType('Extension').where(url = 'u')",
        "nodesByType('HumanName').where(use = 'usual').family",
        "nodesByType('Identifier').value",
        "nodesByType('date')",
        "nodesByName('family')",
        "Bundle.entry.resource",
        "Bundle.entry.fullUrl",
    ]);
    assert_eq!(rules.rules.len(), 20);
    let resources = [
        serde_json::json!({"resourceType": "Consent", "status": "active", "scope": {"text": "s"},
            "category": [{"text": "c"}], "sourceAttachment": {"url": "http://a", "title": "t"}}),
        serde_json::json!({"resourceType": "Observation", "status": "final", "code": {"text": "c"},
            "valueQuantity": {"value": 1.5, "unit": "mg"},
            "component": [{"code": {"text": "a"}, "valueString": "b"},
                          {"code": {"text": "b"}, "valueInteger": 3}]}),
        serde_json::json!({"resourceType": "Observation", "status": "final", "code": {"text": "c"},
            "valueString": "x", "_valueString": {"extension": [{"url": "u", "valueCode": "y"}]}}),
        serde_json::json!({"resourceType": "Patient", "gender": "female",
            "birthDate": "1974-12-25",
            "_birthDate": {"extension": [{"url": "u", "valueDateTime": "1974-12-25T14:35:45-05:00"}]},
            "deceasedBoolean": false, "multipleBirthInteger": 2,
            "name": [{"id": "n1", "use": "official", "family": "f", "given": ["g1", "g2"],
                      "_given": [null, {"extension": [{"url": "u", "valueString": "z"}]}]},
                     {"use": "usual", "family": "u", "given": ["h"]}],
            "identifier": [{"value": "1"}, {"system": "s"}],
            "contact": [{"gender": "male", "name": {"family": "c"}},
                        {"gender": "female", "name": {"family": "d"}}],
            "contained": [{"resourceType": "Patient", "birthDate": "2000-01-01",
                           "name": [{"use": "official", "family": "e"}]}]}),
        serde_json::json!({"resourceType": "Bundle", "type": "collection", "entry": [
            {"fullUrl": "urn:uuid:1", "resource": {"resourceType": "Patient", "gender": "female",
                "birthDate": "1974-12-25", "name": [{"given": ["i"]}]}},
            {"fullUrl": "urn:uuid:2"}]}),
    ];
    let mut outcome = Outcome::default();
    for (i, mut resource) in resources.into_iter().enumerate() {
        let name = format!("resource {i}");
        let job = Job {
            file: &name,
            whole: i % 2 == 0,
            rules: &rules,
        };
        check(&mut resource, &[], &job, &mut outcome);
    }
    assert!(outcome.mismatches.is_empty(), "{:#?}", outcome.mismatches);
    // `where(birthDate = …)` on the three Patients is left to FHIRPath (a date is no string).
    assert_eq!(outcome.declined, 3);
    assert_eq!(outcome.resources, 7);
    // Every other path selects something, except the nested resources of the Bundle, which are
    // left to their own rules both ways.
    let unused: Vec<&str> = rules
        .rules
        .iter()
        .zip(&outcome.used)
        .filter(|(_, used)| !**used)
        .map(|(r, _)| r.path.as_str())
        .collect();
    assert_eq!(
        unused,
        [
            "Patient.where(birthDate = '1974-12-25').name",
            "Bundle.entry.resource"
        ]
    );
}
