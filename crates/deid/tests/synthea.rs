//! The `safe-harbor` and `research` presets on all of `data/synthea-covid-120`: 120 patients'
//! transaction Bundles plus the hospital and practitioner Bundles (92,114 resources).
//!
//! After `safe-harbor`: no patient's name, SSN, MRN, driver's licence, passport, phone, email,
//! street line, city or full date of birth (taken from the source Patients) appears anywhere
//! in the output, base64 contents decoded and searched too; every reference resolves to a
//! resource in the output; every SARS-CoV-2 PCR result (LOINC 94531-1) is still there with its
//! value. After `research`: the days between any two encounters of one patient are unchanged
//! (encounters more than 89 years before the test's clock are left out: their dates are
//! redacted to the year, as ages over 89 must be).
//!
//! Synthea refers to organizations, practitioners and locations with conditional references
//! (`Organization?identifier=system|value`), which the FHIR server that receives the
//! transaction resolves to the matching resource (`Organization/id`): data exported from a
//! server, which is what Haven de-identifies, never holds them. This test resolves them the
//! same way before de-identifying, against the hospital and practitioner Bundles; their ids
//! and the references to them are then hashed alike, so the references still resolve.
//!
//! Failures name the patient (by position), the kind of identifier and where it leaked, never
//! a value.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use base64::Engine as _;
use deid::config::KeyKind;
use deid::{Config, Context, Engine, Today, scrub};
use rayon::prelude::*;
use serde_json::Value;

const HASH_KEY: &str = "synthea-test-hash-key";

/// The clock of the over-89 rule, fixed so the test keeps its meaning.
const TODAY: Today = Today {
    year: 2025,
    month: 9,
    day: 5,
};

/// The PCR results in the data set (test-data.md §A.3).
const PCR_RESULTS: usize = 132;

fn engine(preset: &str) -> Engine {
    let mut config = Config::from_json(deid::presets::preset(preset).unwrap()).unwrap();
    config.set_key(KeyKind::CryptoHash, HASH_KEY).unwrap();
    config
        .set_key(KeyKind::DateShift, "synthea-test-shift-key")
        .unwrap();
    Engine::new(config).unwrap().with_today(TODAY)
}

fn hash(text: &str) -> String {
    deid::methods::crypto_hash::hash(HASH_KEY, text)
}

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/synthea-covid-120")
}

fn read_bundle(path: &Path) -> Value {
    let mut text = Vec::new();
    bzip2::read::MultiBzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_end(&mut text)
        .unwrap_or_else(|e| panic!("cannot decompress {}: {e}", path.display()));
    serde_json::from_slice(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn entries(bundle: &Value) -> impl Iterator<Item = &Value> {
    bundle["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e.get("resource"))
}

/// `Type?identifier=system|value` of every identifier of the resources, to `Type/id`.
fn conditional_targets(bundles: &[&Value], out: &mut HashMap<String, String>) {
    for resource in bundles.iter().flat_map(|b| entries(b)) {
        let (Some(t), Some(id)) = (resource["resourceType"].as_str(), resource["id"].as_str())
        else {
            continue;
        };
        for identifier in resource["identifier"].as_array().into_iter().flatten() {
            if let (Some(system), Some(value)) =
                (identifier["system"].as_str(), identifier["value"].as_str())
            {
                out.insert(
                    format!("{t}?identifier={system}|{value}"),
                    format!("{t}/{id}"),
                );
            }
        }
    }
}

/// Rewrites conditional references as the receiving server does; returns how many were left
/// unresolved.
fn resolve_conditional(value: &mut Value, targets: &HashMap<String, String>) -> usize {
    match value {
        Value::Object(map) => {
            let mut unresolved = 0;
            for (key, v) in map.iter_mut() {
                match v {
                    Value::String(s) if key == "reference" && s.contains('?') => {
                        match targets.get(s.as_str()) {
                            Some(target) => *s = target.clone(),
                            None => unresolved += 1,
                        }
                    }
                    _ => unresolved += resolve_conditional(v, targets),
                }
            }
            unresolved
        }
        Value::Array(items) => items
            .iter_mut()
            .map(|v| resolve_conditional(v, targets))
            .sum(),
        _ => 0,
    }
}

/// The identifying values of a patient, each with the kind of identifier it is.
fn secrets(patient: &Value) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let mut push = |kind: &'static str, v: &Value| {
        if let Some(s) = v.as_str().filter(|s| !s.is_empty()) {
            out.push((kind, s.to_string()));
        }
    };
    for name in patient["name"].as_array().into_iter().flatten() {
        push("name", &name["family"]);
        for given in name["given"].as_array().into_iter().flatten() {
            push("name", given);
        }
    }
    for identifier in patient["identifier"].as_array().into_iter().flatten() {
        let kind = match identifier["type"]["coding"][0]["code"].as_str() {
            Some("SS") => "SSN",
            Some("MR") => "MRN",
            Some("DL") => "driver's licence",
            Some("PPN") => "passport",
            _ => "record number",
        };
        push(kind, &identifier["value"]);
    }
    for telecom in patient["telecom"].as_array().into_iter().flatten() {
        let kind = match telecom["system"].as_str() {
            Some("email") => "email",
            Some("phone") => "phone",
            _ => "telecom",
        };
        push(kind, &telecom["value"]);
    }
    for address in patient["address"].as_array().into_iter().flatten() {
        for line in address["line"].as_array().into_iter().flatten() {
            push("street line", line);
        }
        push("city", &address["city"]);
    }
    push("date of birth", &patient["birthDate"]);
    out
}

/// Every string in `value` with its JSON pointer; base64 contents (`data` elements and other
/// strings that decode to text) are decoded and given too, at `pointer` + ` (decoded)`.
fn strings(value: &Value, at: &mut String, out: &mut Vec<(String, String)>) {
    match value {
        Value::String(s) => {
            if let Some(text) = decoded(at.ends_with("/data"), s) {
                out.push((format!("{at} (decoded)"), text));
            }
            out.push((at.clone(), s.clone()));
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let len = at.len();
                at.push_str(&format!("/{i}"));
                strings(item, at, out);
                at.truncate(len);
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                let len = at.len();
                at.push('/');
                at.push_str(key);
                strings(item, at, out);
                at.truncate(len);
            }
        }
        _ => {}
    }
}

/// The text in a base64 string: always tried for `data` elements, otherwise for long strings
/// in the base64 alphabet.
fn decoded(is_data: bool, s: &str) -> Option<String> {
    let looks_base64 = s.len() >= 24
        && s.len().is_multiple_of(4)
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'='));
    if !is_data && !looks_base64 {
        return None;
    }
    let bytes = base64::engine::general_purpose::STANDARD.decode(s).ok()?;
    String::from_utf8(bytes).ok()
}

/// Where any of the secrets occurs in the strings: (kind, resource type, pointer).
fn leaks(
    bundle: &Value,
    secrets: &[(&'static str, String)],
) -> Vec<(&'static str, String, String)> {
    let mut found = Vec::new();
    for (i, resource) in entries(bundle).enumerate() {
        let mut texts = Vec::new();
        strings(resource, &mut format!("/entry/{i}/resource"), &mut texts);
        for (kind, secret) in secrets {
            for (pointer, text) in &texts {
                if text.contains(secret.as_str()) {
                    let t = resource["resourceType"].as_str().unwrap_or("?").to_string();
                    found.push((*kind, t, pointer.clone()));
                }
            }
        }
    }
    found
}

/// `Type/id` of every resource of the Bundles.
fn literal_ids<'a>(bundles: impl IntoIterator<Item = &'a Value>) -> HashSet<String> {
    bundles
        .into_iter()
        .flat_map(entries)
        .filter_map(|r| {
            Some(format!(
                "{}/{}",
                r["resourceType"].as_str()?,
                r["id"].as_str()?
            ))
        })
        .collect()
}

/// The references of a de-identified Bundle that do not resolve: (resource type, pointer).
fn unresolved(bundle: &Value, elsewhere: &HashSet<String>) -> Vec<(String, String)> {
    let full_urls: HashSet<&str> = bundle["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["fullUrl"].as_str())
        .collect();
    let own = literal_ids([bundle]);
    let mut bad = Vec::new();
    for (i, resource) in entries(bundle).enumerate() {
        let contained: HashSet<&str> = resource["contained"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["id"].as_str())
            .collect();
        let mut references = Vec::new();
        collect_references(
            resource,
            &mut format!("/entry/{i}/resource"),
            &mut references,
        );
        for (pointer, reference) in references {
            let ok = if let Some(local) = reference.strip_prefix('#') {
                contained.contains(local)
            } else if reference.starts_with("urn:uuid:") {
                full_urls.contains(reference)
            } else {
                own.contains(reference) || elsewhere.contains(reference)
            };
            if !ok {
                let t = resource["resourceType"].as_str().unwrap_or("?").to_string();
                bad.push((t, pointer));
            }
        }
    }
    bad
}

fn collect_references<'v>(value: &'v Value, at: &mut String, out: &mut Vec<(String, &'v str)>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("reference") {
                out.push((format!("{at}/reference"), r));
            }
            for (key, item) in map {
                let len = at.len();
                at.push('/');
                at.push_str(key);
                collect_references(item, at, out);
                at.truncate(len);
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let len = at.len();
                at.push_str(&format!("/{i}"));
                collect_references(item, at, out);
                at.truncate(len);
            }
        }
        _ => {}
    }
}

/// The SARS-CoV-2 PCR results of a Bundle: (id, value).
fn pcr_results(bundle: &Value) -> Vec<(String, Value)> {
    entries(bundle)
        .filter(|r| {
            r["resourceType"] == "Observation"
                && r["code"]["coding"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|c| c["system"] == "http://loinc.org" && c["code"] == "94531-1")
        })
        .map(|r| {
            let id = r["id"].as_str().unwrap_or_default().to_string();
            (id, r["valueCodeableConcept"].clone())
        })
        .collect()
}

/// Days since 1970-01-01 of the date part (`YYYY-MM-DD`) of a date or dateTime.
fn day_number(text: &str) -> Option<i64> {
    let year: i64 = text.get(0..4)?.parse().ok()?;
    let month: i64 = text.get(5..7)?.parse().ok()?;
    let day: i64 = text.get(8..10)?.parse().ok()?;
    let y = year - i64::from(month <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + day - 1;
    Some(era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468)
}

/// Whether a date lies more than 89 years before [`TODAY`] (such dates are redacted, not
/// shifted, so that they do not reveal an age over 89).
fn over_89_years_ago(text: &str) -> bool {
    let parse = |range: std::ops::Range<usize>| text.get(range)?.parse::<i32>().ok();
    let (Some(year), Some(month), Some(day)) = (parse(0..4), parse(5..7), parse(8..10)) else {
        return false;
    };
    let before = (TODAY.month as i32, TODAY.day as i32) < (month, day);
    TODAY.year - year - i32::from(before) > 89
}

/// Each encounter's id and start, by id.
fn encounter_starts(bundle: &Value) -> HashMap<String, String> {
    entries(bundle)
        .filter(|r| r["resourceType"] == "Encounter")
        .filter_map(|r| {
            Some((
                r["id"].as_str()?.to_string(),
                r["period"]["start"].as_str()?.to_string(),
            ))
        })
        .collect()
}

/// What went wrong in one patient's Bundle (no values).
#[derive(Default)]
struct Findings {
    problems: Vec<String>,
    pcr: usize,
    shifted: bool,
    decoded_names: bool,
    /// Words of the free text that are not identifiers: (kept by safe-harbor, in the input).
    clinical_words: (usize, usize),
}

/// What counts as an identifier when measuring how much clinical text `scrub` keeps: the
/// record's own values (the Bundle's people and places) and dates. Both must go under Safe
/// Harbor; every other word replaced is clinical text lost.
fn identifier_spans(
    text: &str,
    record: &scrub::Scrubber,
    dates: &scrub::Scrubber,
) -> Vec<(usize, usize)> {
    let context = scrub::Context::default();
    record
        .find(text, &context)
        .into_iter()
        .chain(dates.find(text, &context))
        .map(|s| (s.start, s.end))
        .collect()
}

/// The words of the free text of `input` (its multi-word strings and decoded notes) that are
/// not identifiers, and how many of them are still in the same elements of `output`.
fn clinical_words(input: &Value, output: &Value) -> (usize, usize) {
    let mut identities = scrub::Identities::default();
    identities.add_resource(input);
    let settings = |record: bool, keep: Vec<scrub::Kind>| scrub::Settings {
        layers: scrub::Layers {
            record,
            patterns: !record,
            names: false,
        },
        keep,
    };
    let record = scrub::Scrubber::new(identities.build(), settings(true, Vec::new()));
    let not_dates = scrub::Kind::ALL
        .into_iter()
        .filter(|k| *k != scrub::Kind::Date)
        .collect();
    let dates = scrub::Scrubber::new(scrub::Dictionary::default(), settings(false, not_dates));
    let (mut texts_in, mut texts_out) = (Vec::new(), Vec::new());
    strings(input, &mut String::new(), &mut texts_in);
    strings(output, &mut String::new(), &mut texts_out);
    let out: HashMap<String, String> = texts_out.into_iter().collect();
    let (mut kept, mut total) = (0, 0);
    for (pointer, text) in texts_in {
        let Some(after) = out.get(&pointer) else {
            continue;
        };
        if !text.contains(char::is_whitespace) || pointer.ends_with("/data") {
            continue;
        }
        let spans = identifier_spans(&text, &record, &dates);
        let mut words: HashMap<&str, usize> = HashMap::new();
        for (start, word) in text
            .split_whitespace()
            .map(|w| (w.as_ptr() as usize - text.as_ptr() as usize, w))
        {
            let end = start + word.len();
            if !spans.iter().any(|&(s, e)| s < end && start < e) {
                *words.entry(word).or_default() += 1;
                total += 1;
            }
        }
        let mut left: HashMap<&str, usize> = HashMap::new();
        for word in after.split_whitespace() {
            *left.entry(word).or_default() += 1;
        }
        kept += words
            .iter()
            .map(|(w, n)| (*n).min(left.get(w).copied().unwrap_or(0)))
            .sum::<usize>();
    }
    (kept, total)
}

fn check_patient(
    index: usize,
    mut input: Value,
    targets: &HashMap<String, String>,
    elsewhere: &HashSet<String>,
    safe_harbor: &Engine,
    research: &Engine,
) -> Findings {
    let mut f = Findings::default();
    let unresolved_input = resolve_conditional(&mut input, targets);
    if unresolved_input > 0 {
        f.problems.push(format!(
            "patient {index}: {unresolved_input} conditional references match no hospital or \
             practitioner resource"
        ));
    }
    let Some(patient) = entries(&input).find(|r| r["resourceType"] == "Patient") else {
        f.problems
            .push(format!("patient {index}: no Patient in the Bundle"));
        return f;
    };
    let secrets = secrets(patient);
    // The search must see into notes: the source notes name the patient.
    f.decoded_names = leaks(&input, &secrets)
        .iter()
        .any(|(kind, _, pointer)| *kind == "name" && pointer.ends_with("(decoded)"));
    let pcr = pcr_results(&input);
    let starts = encounter_starts(&input);

    let mut output = input.clone();
    if let Err(e) = safe_harbor.deidentify(&mut output, &Context::default()) {
        f.problems
            .push(format!("patient {index}: safe-harbor failed: {e}"));
        return f;
    }
    for (kind, resource_type, pointer) in leaks(&output, &secrets) {
        f.problems.push(format!(
            "patient {index}: its {kind} appears after safe-harbor in a {resource_type} at \
             {pointer}"
        ));
    }
    f.clinical_words = clinical_words(&input, &output);
    for (resource_type, pointer) in unresolved(&output, elsewhere) {
        f.problems.push(format!(
            "patient {index}: a reference does not resolve after safe-harbor: {resource_type} \
             at {pointer}"
        ));
    }
    let after: HashMap<String, Value> = pcr_results(&output).into_iter().collect();
    for (id, value) in &pcr {
        match after.get(&hash(id)) {
            Some(v) if v == value && !value.is_null() => f.pcr += 1,
            Some(_) => f.problems.push(format!(
                "patient {index}: a PCR result's value changed or is missing after safe-harbor"
            )),
            None => f.problems.push(format!(
                "patient {index}: a PCR result is gone after safe-harbor"
            )),
        }
    }

    let mut shifted = input;
    if let Err(e) = research.deidentify(&mut shifted, &Context::default()) {
        f.problems
            .push(format!("patient {index}: research failed: {e}"));
        return f;
    }
    let shifted_starts = encounter_starts(&shifted);
    let mut offsets = HashSet::new();
    for (id, start) in starts.iter().filter(|(_, s)| !over_89_years_ago(s)) {
        let after = shifted_starts.get(&hash(id));
        match (after, day_number(start)) {
            (Some(after), Some(before)) if after.len() == start.len() => {
                if let Some(day) = day_number(after) {
                    offsets.insert(day - before);
                }
            }
            _ => f.problems.push(format!(
                "patient {index}: an encounter start lost its precision or is gone after \
                 research"
            )),
        }
    }
    if offsets.len() > 1 {
        f.problems.push(format!(
            "patient {index}: research changed the days between encounters ({} different \
             shifts among {} encounters)",
            offsets.len(),
            starts.len()
        ));
    }
    f.shifted = offsets.iter().any(|&d| d != 0);
    f
}

#[test]
fn safe_harbor_and_research_on_all_synthea_patients() {
    let started = std::time::Instant::now();
    let mut files: Vec<PathBuf> = std::fs::read_dir(data_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".json.bz2"))
        .collect();
    files.sort();
    let (shared, patients): (Vec<PathBuf>, Vec<PathBuf>) = files.into_iter().partition(|p| {
        let name = p.file_name().unwrap().to_string_lossy();
        name.starts_with("0-hospitalInformation") || name.starts_with("0-practitionerInformation")
    });
    assert_eq!(shared.len(), 2, "the hospital and practitioner Bundles");
    assert_eq!(patients.len(), 120, "120 patient Bundles");

    let safe_harbor = engine("safe-harbor");
    let research = engine("research");

    // The hospital and practitioner Bundles: the targets of conditional references.
    let shared: Vec<Value> = shared.par_iter().map(|p| read_bundle(p)).collect();
    let mut targets = HashMap::new();
    conditional_targets(&shared.iter().collect::<Vec<_>>(), &mut targets);
    let shared_out: Vec<Value> = shared
        .into_par_iter()
        .map(|mut b| {
            safe_harbor.deidentify(&mut b, &Context::default()).unwrap();
            b
        })
        .collect();
    let elsewhere = literal_ids(&shared_out);
    let mut problems = Vec::new();
    for (i, bundle) in shared_out.iter().enumerate() {
        for (t, pointer) in unresolved(bundle, &HashSet::new()) {
            problems.push(format!(
                "shared Bundle {i}: a reference does not resolve after safe-harbor: {t} at \
                 {pointer}"
            ));
        }
    }

    let findings = Mutex::new(Vec::new());
    patients.par_iter().enumerate().for_each(|(i, path)| {
        let f = check_patient(
            i,
            read_bundle(path),
            &targets,
            &elsewhere,
            &safe_harbor,
            &research,
        );
        findings.lock().unwrap().push(f);
    });
    let findings = findings.into_inner().unwrap();
    let pcr: usize = findings.iter().map(|f| f.pcr).sum();
    let shifted = findings.iter().filter(|f| f.shifted).count();
    let decoded = findings.iter().filter(|f| f.decoded_names).count();
    let (kept, words) = findings.iter().fold((0, 0), |(k, t), f| {
        (k + f.clinical_words.0, t + f.clinical_words.1)
    });
    let share = kept as f64 / words.max(1) as f64;
    problems.extend(findings.into_iter().flat_map(|f| f.problems));
    eprintln!(
        "synthea: 120 patients, {pcr} PCR results kept, {shifted} patients date-shifted, names \
         found in the decoded source notes of {decoded}; free text: {kept} of {words} words that \
         are not identifiers kept by safe-harbor ({:.2} %); {:.1} s",
        share * 100.0,
        started.elapsed().as_secs_f64()
    );
    assert!(
        words > 100_000,
        "the free text of Synthea is measured ({words} words)"
    );
    assert!(
        share >= 0.99,
        "safe-harbor keeps {:.2} % of the clinical words of Synthea's free text, under 99 %",
        share * 100.0
    );
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems[..problems.len().min(40)].join("\n")
    );
    assert_eq!(
        pcr, PCR_RESULTS,
        "every SARS-CoV-2 PCR result, with its value"
    );
    assert!(shifted > 100, "research shifts most patients' dates");
    assert!(
        decoded > 100,
        "the search reads the base64 notes (the source notes name their patient)"
    );
}
