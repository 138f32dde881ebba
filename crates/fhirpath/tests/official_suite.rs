//! The official HL7 FHIRPath conformance suite for FHIR R4, run against this engine.
//!
//! Reads `testdata/fhirpath-r4/tests-fhir-r4.xml` (see `SOURCE.md` there), runs every active
//! test, prints each failure and a summary, and fails when the pass rate drops below
//! [`MIN_PASS_RATE`] or when a test fails that `official_suite_known_failures.txt` does not list.
//!
//! Run a subset with verbose output by passing a filter, a substring of `group/name`:
//! `FHIRPATH_SUITE_FILTER=testIif cargo test -p fhirpath --test official_suite` or
//! `cargo test -p fhirpath --test official_suite -- testIif`.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use fhirpath::{Date, DateTime, Environment, Expression, Quantity, Time, Value};
use rust_decimal::Decimal;

/// The lowest share of passing tests (in percent) that the suite accepts.
const MIN_PASS_RATE: f64 = 97.0;

/// How many characters of an item (a complex node's JSON can be long) messages show.
const MAX_ITEM_TEXT: usize = 100;

/// The environment variable that selects a subset of tests (and turns on verbose output).
const FILTER_VAR: &str = "FHIRPATH_SUITE_FILTER";

/// One test of the suite.
struct Case {
    /// `group/name`, unique in the suite.
    id: String,
    /// The FHIRPath text.
    expression: String,
    /// The input resource's file name under `input/` (`None`: the test runs on no input).
    input: Option<String>,
    /// What the test expects.
    expect: Expect,
    /// False when the outputs may come in any order (`ordered="false"`).
    ordered: bool,
    /// `mode="strict"`: evaluate with strict navigation.
    strict: bool,
}

/// What a test expects.
enum Expect {
    /// Parsing or evaluation must fail (`invalid="syntax|semantic|execution"`).
    Error,
    /// `exists()` of the result must be this boolean (`predicate="true"`).
    Exists(bool),
    /// The result must be these items.
    Items(Vec<Expected>),
}

/// One expected output item.
struct Expected {
    /// The type as written (`string`, `code`, `dateTime`), or `None` when the suite gives none.
    declared: Option<String>,
    /// The system kind the item must have (`String`, `DateTime`, …); `None` for an untyped
    /// number, which may be an Integer or a Decimal.
    kind: Option<&'static str>,
    /// The expected value.
    value: Value,
    /// The text as written in the suite, for messages.
    text: String,
}

/// One item of an actual result, reduced to what the comparison needs.
struct Got {
    /// `FHIR.string`, `System.Boolean`, …
    type_name: String,
    /// The FHIR or System type name alone (`code`, `Boolean`).
    name: &'static str,
    /// The system kind (`String`, `Integer`, …), when the item has one.
    kind: Option<&'static str>,
    /// The system value, when the item has one.
    value: Option<Value>,
    /// The item's text, for messages.
    text: String,
}

/// The result of running one test.
enum Outcome {
    Pass(String),
    Fail(String),
}

fn main() -> ExitCode {
    let started = Instant::now();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/fhirpath-r4");
    let cases = load_cases(&dir.join("tests-fhir-r4.xml"));
    let inputs = load_inputs(&dir, &cases);
    let known_path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/official_suite_known_failures.txt");
    let known = load_known_failures(&known_path);
    let filter = filter();
    let verbose = filter.is_some();

    // Panics are caught per test and reported as failures; keep the default hook quiet.
    panic::set_hook(Box::new(|_| {}));

    let mut passed = 0usize;
    let mut failed = 0usize;
    let mut unexpected = Vec::new();
    let mut fixed = Vec::new();
    for case in &cases {
        if let Some(f) = &filter
            && !case.id.contains(f.as_str())
        {
            continue;
        }
        let is_known = is_known(&known, &case.id);
        let input = case.input.as_ref().map(|name| &inputs[name]);
        let expression = one_line(&case.expression);
        match run(case, input) {
            Outcome::Pass(detail) => {
                passed += 1;
                if verbose {
                    println!("PASS {}: {expression} — {detail}", case.id);
                }
                if is_known {
                    fixed.push(case.id.clone());
                }
            }
            Outcome::Fail(detail) => {
                failed += 1;
                let mark = if is_known { " [known]" } else { "" };
                println!("FAIL {}: {expression} — {detail}{mark}", case.id);
                if !is_known {
                    unexpected.push(case.id.clone());
                }
            }
        }
    }
    panic::set_hook(Box::new(|info| eprintln!("{info}")));

    for id in &fixed {
        println!(
            "NOW PASSING {id}: listed as a known failure; remove it from {}",
            known_path.display()
        );
    }
    if filter.is_none() {
        for entry in known
            .iter()
            .filter(|k| !cases.iter().any(|c| matches_entry(k, &c.id)))
        {
            println!("STALE known failure {entry:?}: no test has this name");
        }
    }

    let total = passed + failed;
    let rate = if total == 0 {
        100.0
    } else {
        passed as f64 * 100.0 / total as f64
    };
    println!();
    println!("fhirpath official suite: {passed} passed, {failed} failed");
    println!(
        "pass rate {rate:.1}% of {total} tests (minimum {MIN_PASS_RATE}%), {} unexpected failure(s), {} s",
        unexpected.len(),
        started.elapsed().as_secs_f32()
    );

    let mut ok = true;
    if !unexpected.is_empty() {
        let listed = if unexpected.len() <= 20 {
            format!(": {}", unexpected.join(", "))
        } else {
            " (see the FAIL lines above)".to_string()
        };
        println!(
            "error: {} test(s) failed that {} does not list{listed}",
            unexpected.len(),
            known_path.display(),
        );
        ok = false;
    }
    if filter.is_none() && rate < MIN_PASS_RATE {
        println!("error: pass rate {rate:.1}% is below {MIN_PASS_RATE}%");
        ok = false;
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The test filter: the environment variable, or the first argument that is not a flag.
fn filter() -> Option<String> {
    std::env::var(FILTER_VAR)
        .ok()
        .filter(|f| !f.is_empty())
        .or_else(|| std::env::args().skip(1).find(|a| !a.starts_with('-')))
}

/// Collapses runs of whitespace so that a multi-line expression prints on one line.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Reads the suite's XML into test cases, in document order. XML comments (the disabled tests)
/// are not elements and so are skipped.
fn load_cases(path: &Path) -> Vec<Case> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let doc = roxmltree::Document::parse(&text)
        .unwrap_or_else(|e| panic!("cannot parse {}: {e}", path.display()));
    let mut cases = Vec::new();
    let mut ids = HashMap::<String, usize>::new();
    for group in doc
        .root_element()
        .children()
        .filter(|n| n.has_tag_name("group"))
    {
        let group_name = group.attribute("name").unwrap_or("unnamed-group");
        let tests = group.children().filter(|n| n.has_tag_name("test"));
        for (position, test) in tests.enumerate() {
            let name = match test.attribute("name") {
                Some(name) => name.to_string(),
                None => format!("unnamed-{}", position + 1),
            };
            let mut id = format!("{group_name}/{name}");
            let count = ids.entry(id.clone()).or_insert(0);
            *count += 1;
            if *count > 1 {
                id = format!("{id}-{count}");
            }
            cases.push(parse_case(id, test));
        }
    }
    cases
}

/// Reads one `<test>` element.
fn parse_case(id: String, test: roxmltree::Node<'_, '_>) -> Case {
    let expression_node = test
        .children()
        .find(|n| n.has_tag_name("expression"))
        .unwrap_or_else(|| panic!("{id}: no <expression>"));
    let expression = expression_node.text().unwrap_or("").to_string();
    let outputs: Vec<Expected> = test
        .children()
        .filter(|n| n.has_tag_name("output"))
        .map(|n| parse_expected(&id, n.attribute("type"), n.text().unwrap_or("")))
        .collect();
    let expect = if expression_node.attribute("invalid").is_some() {
        Expect::Error
    } else if test.attribute("predicate") == Some("true") {
        match outputs.as_slice() {
            [
                Expected {
                    value: Value::Boolean(b),
                    ..
                },
            ] => Expect::Exists(*b),
            _ => panic!("{id}: a predicate test needs exactly one boolean output"),
        }
    } else {
        Expect::Items(outputs)
    };
    Case {
        expression,
        input: test.attribute("inputfile").map(json_input_name),
        expect,
        ordered: test.attribute("ordered") != Some("false"),
        strict: test.attribute("mode") == Some("strict"),
        id,
    }
}

/// `patient-example.xml` → `patient-example.json`: the inputs are kept in their JSON form.
fn json_input_name(name: &str) -> String {
    let stem = name
        .strip_suffix(".xml")
        .or_else(|| name.strip_suffix(".json"))
        .unwrap_or(name);
    format!("{stem}.json")
}

/// Parses each input resource once.
fn load_inputs(dir: &Path, cases: &[Case]) -> HashMap<String, serde_json::Value> {
    let names: BTreeSet<&String> = cases.iter().filter_map(|c| c.input.as_ref()).collect();
    names
        .into_iter()
        .map(|name| {
            let path: PathBuf = dir.join("input").join(name);
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
            let json = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("cannot parse {}: {e}", path.display()));
            (name.clone(), json)
        })
        .collect()
}

/// Reads the known-failures list: one test per line (`group/name` or a bare `name`), with
/// everything after a `#` a comment.
fn load_known_failures(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .map(|line| line.split('#').next().unwrap_or("").trim())
        .filter(|line| !line.is_empty())
        .map(str::to_string)
        .collect()
}

/// True when a known-failures entry names this test: its whole id or its name alone.
fn matches_entry(entry: &str, id: &str) -> bool {
    entry == id || id.rsplit_once('/').is_some_and(|(_, name)| name == entry)
}

fn is_known(known: &[String], id: &str) -> bool {
    known.iter().any(|k| matches_entry(k, id))
}

/// The system kind that an expected type name stands for.
fn declared_kind(declared: &str) -> Option<&'static str> {
    Some(match declared {
        "boolean" => "Boolean",
        "integer" => "Integer",
        "decimal" => "Decimal",
        "string" | "code" | "id" => "String",
        "date" => "Date",
        "dateTime" => "DateTime",
        "time" => "Time",
        "Quantity" => "Quantity",
        _ => return None,
    })
}

/// The system kind of an untyped output, guessed from how it is written.
fn inferred_kind(text: &str) -> Option<&'static str> {
    Some(if text.starts_with("@T") {
        "Time"
    } else if text.starts_with('@') && text.contains('T') {
        "DateTime"
    } else if text.starts_with('@') {
        "Date"
    } else if text == "true" || text == "false" {
        "Boolean"
    } else if text.contains(' ') {
        "Quantity"
    } else if text.parse::<Decimal>().is_ok() {
        return None;
    } else {
        "String"
    })
}

/// Reads one `<output>`.
fn parse_expected(id: &str, declared: Option<&str>, text: &str) -> Expected {
    let kind = match declared {
        Some(t) => {
            Some(declared_kind(t).unwrap_or_else(|| panic!("{id}: unknown output type {t}")))
        }
        None => inferred_kind(text),
    };
    let bad = || -> ! {
        panic!(
            "{id}: cannot read output {text:?} as {}",
            kind.unwrap_or("a number")
        )
    };
    let value = match kind {
        Some("Boolean") => Value::Boolean(text.parse().unwrap_or_else(|_| bad())),
        Some("Integer") => Value::Integer(text.parse().unwrap_or_else(|_| bad())),
        Some("Decimal") | None => match text.parse::<i64>() {
            Ok(i) if kind.is_none() => Value::Integer(i),
            _ => Value::Decimal(text.parse().unwrap_or_else(|_| bad())),
        },
        Some("Date") => Value::Date(
            text.strip_prefix('@')
                .and_then(Date::parse)
                .unwrap_or_else(|| bad()),
        ),
        Some("DateTime") => Value::DateTime(
            text.strip_prefix('@')
                .and_then(DateTime::parse)
                .unwrap_or_else(|| bad()),
        ),
        Some("Time") => Value::Time(
            text.strip_prefix("@T")
                .and_then(Time::parse)
                .unwrap_or_else(|| bad()),
        ),
        Some("Quantity") => Value::Quantity(parse_quantity(text).unwrap_or_else(|| bad())),
        Some(_) => Value::String(text.to_string()),
    };
    Expected {
        declared: declared.map(str::to_string),
        kind,
        value,
        text: text.to_string(),
    }
}

/// Reads `5 'mg'`, `1 '1'` or `3 days`.
fn parse_quantity(text: &str) -> Option<Quantity> {
    let (number, unit) = text.split_once(' ')?;
    let unit = unit.trim();
    let unit = match unit.strip_prefix('\'') {
        Some(quoted) => quoted.strip_suffix('\'')?,
        None => unit,
    };
    Some(Quantity {
        value: number.parse().ok()?,
        unit: unit.to_string(),
    })
}

/// The system kind of a FHIR type, for the types that have one.
fn fhir_kind(name: &str) -> Option<&'static str> {
    Some(match name {
        "boolean" => "Boolean",
        "integer" | "positiveInt" | "unsignedInt" | "integer64" => "Integer",
        "decimal" => "Decimal",
        "string" | "code" | "id" | "uri" | "url" | "canonical" | "oid" | "uuid" | "markdown"
        | "base64Binary" | "xhtml" => "String",
        "date" => "Date",
        "dateTime" | "instant" => "DateTime",
        "time" => "Time",
        "Quantity" | "SimpleQuantity" | "MoneyQuantity" | "Age" | "Duration" | "Distance"
        | "Count" => "Quantity",
        _ => return None,
    })
}

/// Reduces a result item to its type, kind, value and text.
fn got(item: &fhirpath::Item<'_>) -> Got {
    let (namespace, name) = item.type_name();
    let value = item.to_value();
    let kind = match (namespace, name) {
        ("System", system) => Some(system),
        (_, "") => value.as_ref().map(Value::type_name),
        (_, fhir) => fhir_kind(fhir),
    };
    let mut text = match &value {
        Some(Value::String(s)) => format!("'{s}'"),
        _ => item.to_string(),
    };
    if let Some((cut, _)) = text.char_indices().nth(MAX_ITEM_TEXT) {
        text.truncate(cut);
        text.push('…');
    }
    Got {
        type_name: format!("{namespace}.{name}"),
        name,
        kind,
        value,
        text,
    }
}

/// Runs one test, catching panics.
fn run(case: &Case, input: Option<&serde_json::Value>) -> Outcome {
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
        let null = serde_json::Value::Null;
        let result = Expression::parse(&case.expression).and_then(|expr| match input {
            Some(resource) => {
                let env = Environment::new().with_resource(resource);
                let env = if case.strict { env.strict() } else { env };
                expr.evaluate_with(resource, &env)
                    .map(|items| items.iter().map(got).collect())
            }
            None => expr
                .evaluate_with(&null, &Environment::new())
                .map(|items| items.iter().map(got).collect::<Vec<_>>()),
        });
        judge(case, result)
    }));
    outcome.unwrap_or_else(|payload| {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_string());
        Outcome::Fail(format!(
            "expected {} got a panic: {message}",
            describe_expect(&case.expect)
        ))
    })
}

/// Compares a result with the test's expectation.
fn judge(case: &Case, result: Result<Vec<Got>, fhirpath::Error>) -> Outcome {
    let expected = describe_expect(&case.expect);
    let items = match (result, &case.expect) {
        (Err(e), Expect::Error) => {
            return Outcome::Pass(format!("expected {expected} got error: {e}"));
        }
        (Err(e), _) => return Outcome::Fail(format!("expected {expected} got error: {e}")),
        (Ok(items), _) => items,
    };
    let got = format!(
        "[{}]",
        items
            .iter()
            .map(|g| format!("{} {}", g.type_name, g.text))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let pass = match &case.expect {
        Expect::Error => false,
        Expect::Exists(exists) => items.is_empty() != *exists,
        Expect::Items(expected) if case.ordered => {
            expected.len() == items.len()
                && expected.iter().zip(&items).all(|(e, g)| item_matches(e, g))
        }
        Expect::Items(expected) => {
            expected.len() == items.len() && unordered_match(expected, &items)
        }
    };
    let detail = match &case.expect {
        Expect::Exists(_) => format!(
            "expected {expected} got {got} (exists() = {})",
            !items.is_empty()
        ),
        _ => format!("expected {expected} got {got}"),
    };
    if pass {
        Outcome::Pass(detail)
    } else {
        Outcome::Fail(detail)
    }
}

/// True when every expected item can be paired with a distinct actual item.
fn unordered_match(expected: &[Expected], items: &[Got]) -> bool {
    let mut used = vec![false; items.len()];
    expected.iter().all(|e| {
        let found = items
            .iter()
            .enumerate()
            .find(|(i, g)| !used[*i] && item_matches(e, g));
        found.map(|(i, _)| used[i] = true).is_some()
    })
}

/// Describes an expectation for messages.
fn describe_expect(expect: &Expect) -> String {
    match expect {
        Expect::Error => "an error".to_string(),
        Expect::Exists(b) => format!("exists() = {b}"),
        Expect::Items(items) => {
            let mut out = String::from("[");
            for (i, e) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                let declared = e.declared.as_deref().unwrap_or("untyped");
                match e.value {
                    Value::String(_) => write!(out, "{declared} '{}'", e.text),
                    _ => write!(out, "{declared} {}", e.text),
                }
                .expect("writing to a String");
            }
            out.push(']');
            out
        }
    }
}

/// True when an actual item has the expected type and value.
fn item_matches(expected: &Expected, got: &Got) -> bool {
    // An untyped `@2014-01-01` is also how the suite writes a DateTime of day precision.
    if expected.declared.is_none()
        && let (Value::Date(date), Some(Value::DateTime(got))) = (&expected.value, &got.value)
    {
        return got.time.is_none() && got.offset_minutes.is_none() && got.date == *date;
    }
    let type_ok = match expected.kind {
        Some(kind) => expected.declared.as_deref() == Some(got.name) || got.kind == Some(kind),
        None => matches!(got.kind, Some("Integer" | "Decimal")),
    };
    type_ok
        && got
            .value
            .as_ref()
            .is_some_and(|v| values_equal(&expected.value, v))
}

/// Semantic equality of an expected and an actual value: numbers numerically, date-times with
/// `Z` equal to `+00:00` and `ss` equal to `ss.000`, strings exactly.
fn values_equal(expected: &Value, got: &Value) -> bool {
    match (expected, got) {
        (Value::Integer(a), Value::Decimal(b)) | (Value::Decimal(b), Value::Integer(a)) => {
            Decimal::from(*a) == *b
        }
        (Value::Decimal(a), Value::Decimal(b)) => a == b,
        (Value::DateTime(a), Value::DateTime(b)) => {
            a.date == b.date
                && a.offset_minutes == b.offset_minutes
                && a.time.map(full_millis) == b.time.map(full_millis)
        }
        (Value::Time(a), Value::Time(b)) => full_millis(*a) == full_millis(*b),
        (Value::Quantity(a), Value::Quantity(b)) => a.value == b.value && a.unit == b.unit,
        _ => expected == got,
    }
}

/// A time whose seconds carry milliseconds: `10:30:00` and `10:30:00.000` are the same value.
fn full_millis(time: Time) -> Time {
    Time {
        millis: time.second.map(|_| time.millis.unwrap_or(0)),
        ..time
    }
}
