//! Every free-text element of R4 has a decision, and the presets carry it out.
//!
//! The elements are every `string`, `markdown`, `xhtml` and `base64Binary` element of the R4
//! tables (resources, backbone elements and datatypes, expanded choices included).
//! `free-text-elements.txt` beside this file gives each one's decision under `safe-harbor`:
//! `scrub` (kept, identifiers replaced), `redact` (an identifier by nature: removed, cut or
//! hashed) or `keep`
//! (kept as written: only where Safe Harbor allows the content, such as `Address.state`). A new
//! element in the tables without a decision fails the test.
//!
//! Each element is then checked for real: a text naming a planted patient (name, record number,
//! phone, date) is put in the element, in a resource built around it (a datatype's element in
//! up to five resources that use the datatype), with a text `contentType` beside base64 data,
//! and the resource goes through `safe-harbor` and `research` with the patient's identifiers.
//! The element must then be what its decision says, and none of the planted identifiers may
//! remain anywhere in the output. Failures name the element and host path, never a value.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use base64::Engine as _;
use deid::config::KeyKind;
use deid::{Config, Context, Engine, Today};
use serde_json::{Map, Value, json};

const TODAY: Today = Today {
    year: 2025,
    month: 9,
    day: 5,
};

/// The types whose values are text.
const TEXT_TYPES: [&str; 4] = ["string", "markdown", "xhtml", "base64Binary"];

/// The planted patient and the text planted in every element.
const GIVEN: &str = "Annabel";
const FAMILY: &str = "Quennell-Pryce";
const MRN: &str = "QX-7731-88";
const PHONE: &str = "617-555-0143";
const PLANTED: &str =
    "Seen with Annabel Quennell-Pryce (QX-7731-88), tel 617.555.0143, on 03/04/2021 for cough";
/// What must not remain anywhere in the output.
const SECRETS: [&str; 6] = [
    "Annabel", "Quennell", "7731", "555.0143", "555-0143", "03/04",
];

fn engine(preset: &str) -> Engine {
    let mut config = Config::from_json(deid::presets::preset(preset).unwrap()).unwrap();
    config.set_key(KeyKind::CryptoHash, "hash-key").unwrap();
    config.set_key(KeyKind::DateShift, "shift-key").unwrap();
    let mut identities = deid::scrub::Identities::default();
    identities.add_resource(&json!({
        "resourceType": "Patient",
        "name": [{"family": FAMILY, "given": [GIVEN]}],
        "identifier": [{"value": MRN}],
        "telecom": [{"system": "phone", "value": PHONE}]
    }));
    Engine::new(config)
        .unwrap()
        .with_today(TODAY)
        .with_identities(&identities)
}

/// One step of a path from a resource to an element: its JSON key and whether it repeats.
type Step = (&'static str, bool);

/// Up to five paths from a resource (each in another resource type) to an element of each
/// complex datatype, shortest first, not through extensions or nested resources.
fn hosts() -> BTreeMap<&'static str, Vec<(&'static str, Vec<Step>)>> {
    let mut found: BTreeMap<&'static str, Vec<(&'static str, Vec<Step>)>> = BTreeMap::new();
    let mut queue: VecDeque<(&'static str, &'static str, Vec<Step>)> =
        fhir::types::resource_types()
            .iter()
            .map(|&r| (r, r, Vec::new()))
            .collect();
    while let Some((resource, key, path)) = queue.pop_front() {
        if path.len() >= 4 {
            continue;
        }
        for def in fhir::types::children(key).iter().chain(inherited(key)) {
            let ty = def.type_code;
            if def.children.is_empty()
                || matches!(def.name, "extension" | "modifierExtension" | "contained")
                || matches!(ty, "Resource" | "Extension")
            {
                continue;
            }
            let mut next = path.clone();
            next.push((def.name, def.repeats));
            if fhir::types::type_kind(ty) == Some(fhir::types::TypeKind::Complex)
                && !matches!(ty, "BackboneElement" | "Element")
            {
                let list = found.entry(fhir::types::intern(ty).unwrap()).or_default();
                if list.len() < 5 && !list.iter().any(|(r, _)| *r == resource) {
                    list.push((resource, next.clone()));
                }
            }
            queue.push_back((resource, def.children, next));
        }
    }
    found
}

/// The elements a key inherits from `Element`/`BackboneElement` or `DomainResource` are not
/// needed for hosts; datatypes' own parents (`Age` → `Quantity`) are.
fn inherited(key: &str) -> &'static [fhir::types::ElementDef] {
    match fhir::types::parent(key) {
        Some(p)
            if !matches!(
                p,
                "Element" | "BackboneElement" | "DomainResource" | "Resource"
            ) =>
        {
            fhir::types::children(p)
        }
        _ => &[],
    }
}

/// Puts `value` at `path` in a resource of type `resource`, arrays where elements repeat, and
/// a text `contentType` beside base64 data.
fn build(resource: &str, path: &[Step], value: Value, content_type: bool) -> Value {
    let mut root = Map::new();
    root.insert("resourceType".into(), json!(resource));
    let mut node = &mut root;
    for (i, (key, repeats)) in path.iter().enumerate() {
        let last = i + 1 == path.len();
        let inner = if last {
            value.clone()
        } else {
            Value::Object(Map::new())
        };
        if last && content_type {
            node.insert("contentType".into(), json!("text/plain"));
        }
        node.insert(
            key.to_string(),
            if *repeats { json!([inner]) } else { inner },
        );
        if last {
            break;
        }
        let slot = node.get_mut(*key).unwrap();
        let slot = if *repeats { &mut slot[0] } else { slot };
        node = slot.as_object_mut().unwrap();
    }
    Value::Object(root)
}

/// The value at `path`, if present.
fn at<'v>(resource: &'v Value, path: &[Step]) -> Option<&'v Value> {
    path.iter().try_fold(resource, |node, (key, repeats)| {
        let v = node.get(*key)?;
        if *repeats { v.get(0) } else { Some(v) }
    })
}

fn all_text(v: &Value, out: &mut String) {
    match v {
        Value::String(s) => {
            out.push_str(s);
            out.push('\n');
            if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(s)
                && let Ok(text) = String::from_utf8(bytes)
            {
                out.push_str(&text);
                out.push('\n');
            }
        }
        Value::Array(items) => items.iter().for_each(|i| all_text(i, out)),
        Value::Object(m) => m.values().for_each(|i| all_text(i, out)),
        _ => {}
    }
}

/// What a preset did to the planted element: `keep` (unchanged), `scrub` (kept with
/// placeholders in it), `redact` (removed, or replaced without placeholders: cut or hashed).
fn outcome(output: &Value, path: &[Step], planted: &Value) -> &'static str {
    match at(output, path) {
        None => "redact",
        Some(v) if v == planted => "keep",
        Some(v) => {
            let mut text = String::new();
            all_text(v, &mut text);
            if text.contains("[NAME]") {
                "scrub"
            } else {
                "redact"
            }
        }
    }
}

/// An element row: its path in the tables and its type.
fn rows() -> BTreeMap<&'static str, &'static str> {
    TEXT_TYPES
        .iter()
        .flat_map(|t| fhir::types::elements_of_type(t))
        .map(|def| (def.path, def.type_code))
        .collect()
}

fn decisions() -> BTreeMap<String, String> {
    include_str!("free-text-elements.txt")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (path, decision) = l.split_once('\t').expect("PATH<TAB>DECISION");
            (path.to_string(), decision.trim().to_string())
        })
        .collect()
}

#[test]
fn every_free_text_element_has_a_decision_that_the_presets_carry_out() {
    let rows = rows();
    let decisions = decisions();
    let undecided: Vec<&&str> = rows
        .keys()
        .filter(|p| !decisions.contains_key(**p))
        .collect();
    assert!(
        undecided.is_empty(),
        "{} free-text elements have no decision in free-text-elements.txt: {undecided:?}",
        undecided.len()
    );
    let stale: Vec<&String> = decisions
        .keys()
        .filter(|p| !rows.contains_key(p.as_str()))
        .collect();
    assert!(
        stale.is_empty(),
        "decisions for elements R4 does not have: {stale:?}"
    );

    let hosts = hosts();
    let engines = [
        ("safe-harbor", engine("safe-harbor")),
        ("research", engine("research")),
    ];
    let mut failures = Vec::new();
    let mut checked = BTreeSet::new();
    for (path, ty) in &rows {
        let decision = decisions[*path].as_str();
        let (owner, name) = path.rsplit_once('.').unwrap();
        let first = owner.split('.').next().unwrap();
        let def = fhir::types::element(owner, name).unwrap();
        let mut tail: Vec<Step> = Vec::new();
        let mut key = first;
        for segment in owner.split('.').skip(1) {
            let d = fhir::types::element(key, segment).unwrap();
            tail.push((d.name, d.repeats));
            key = d.children;
        }
        let owner_key = key;
        tail.push((name, def.repeats));
        let placements: Vec<(&str, Vec<Step>)> = if fhir::types::is_concrete_resource_type(first) {
            vec![(first, tail)]
        } else if fhir::types::is_resource_type(first) {
            // Abstract (`MetadataResource`): its elements are listed under each resource too.
            Vec::new()
        } else if first == "Extension" {
            let mut full = vec![("extension", true)];
            full.extend(tail.iter().copied());
            vec![("Patient", full)]
        } else {
            hosts
                .get(first)
                .map(|hs| {
                    hs.iter()
                        .map(|(r, p)| {
                            let mut full = p.clone();
                            full.extend(tail.iter().copied());
                            (*r, full)
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        if placements.is_empty() {
            continue;
        }
        let planted = match *ty {
            "xhtml" => json!(format!(
                r#"<div xmlns="http://www.w3.org/1999/xhtml"><p>{PLANTED}</p></div>"#
            )),
            "base64Binary" => json!(base64::engine::general_purpose::STANDARD.encode(PLANTED)),
            _ => json!(PLANTED),
        };
        let mut seen = BTreeSet::new();
        for (resource, full) in placements {
            let content_type =
                *ty == "base64Binary" && fhir::types::element(owner_key, "contentType").is_some();
            let input = build(resource, &full, planted.clone(), content_type);
            for (preset, engine) in &engines {
                let mut output = input.clone();
                if let Err(error) = engine.deidentify(&mut output, &Context::default()) {
                    failures.push(format!("{preset}: {path} in {resource}: {error}"));
                    continue;
                }
                let mut text = String::new();
                all_text(&output, &mut text);
                let leaked: Vec<&str> = SECRETS
                    .iter()
                    .copied()
                    .filter(|s| text.contains(s))
                    .collect();
                let did = outcome(&output, &full, &planted);
                let allowed = match decision {
                    "keep" => did == "keep" || did == "redact",
                    "scrub" => did == "scrub" || did == "redact",
                    _ => did == "redact",
                };
                if decision != "keep" && !leaked.is_empty() {
                    failures.push(format!(
                        "{preset}: {path} (in {resource}) leaks {} planted identifiers",
                        leaked.len()
                    ));
                }
                if !allowed {
                    failures.push(format!(
                        "{preset}: {path} (in {resource}): decision {decision}, but the preset did {did}"
                    ));
                }
                seen.insert(did);
                checked.insert(*path);
            }
        }
        if decision == "scrub" && !seen.contains("scrub") {
            failures.push(format!(
                "{path}: decision scrub, but no resource scrubbed it"
            ));
        }
    }
    println!(
        "{} free-text elements decided, {} checked in resources",
        rows.len(),
        checked.len()
    );
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
