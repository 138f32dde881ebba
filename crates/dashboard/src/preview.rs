//! The de-identification preview: one resource, from the server (by type and position) or
//! pasted, before and after a preset or a pasted configuration (Microsoft's format), side by
//! side, every changed, removed or added element highlighted and the rule behind it named
//! ([`deid::Engine::deidentify_traced`]). Nothing is stored or logged; the keys the
//! configuration lacks are generated once per process and never shown.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, PoisonError};

use axum::Extension;
use axum::extract::State;
use axum::response::Html;
use serde::Deserialize;
use serde_json::Value;

use crate::Dashboard;
use crate::html::{self, Viewer, esc};

/// The furthest position a resource may be picked at.
const MAX_POSITION: usize = 10_000;

/// Resource types offered in the picker (any type can be typed).
const COMMON_TYPES: [&str; 12] = [
    "Patient",
    "Observation",
    "Condition",
    "Encounter",
    "MedicationRequest",
    "Procedure",
    "Immunization",
    "DiagnosticReport",
    "AllergyIntolerance",
    "CarePlan",
    "Claim",
    "Practitioner",
];

/// The preview's keys (generated per process, never shown) and its compiled presets.
pub(crate) struct PreviewKeys {
    date_shift: String,
    crypto_hash: String,
    encrypt: String,
    engines: Mutex<HashMap<String, Arc<deid::Engine>>>,
}

impl PreviewKeys {
    /// Fresh random keys.
    pub fn generate() -> PreviewKeys {
        let key = || hex::encode(rand::random::<[u8; 16]>());
        PreviewKeys {
            date_shift: key(),
            crypto_hash: key(),
            encrypt: key(),
            engines: Mutex::new(HashMap::new()),
        }
    }

    /// Compiles a configuration, filling the keys it lacks with this process's keys.
    fn compile(&self, mut config: deid::Config) -> Result<deid::Engine, String> {
        for (kind, _) in config.missing_keys() {
            let key = match kind {
                deid::config::KeyKind::DateShift => &self.date_shift,
                deid::config::KeyKind::CryptoHash => &self.crypto_hash,
                deid::config::KeyKind::Encrypt => &self.encrypt,
            };
            config.set_key(kind, key).map_err(|e| e.to_string())?;
        }
        deid::Engine::new(config).map_err(|e| e.to_string())
    }

    /// The engine of a preset (compiled once).
    fn preset(&self, name: &str) -> Result<Arc<deid::Engine>, String> {
        let mut engines = self.engines.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(engine) = engines.get(name) {
            return Ok(Arc::clone(engine));
        }
        let text = deid::presets::preset(name).ok_or_else(|| format!("no preset named {name}"))?;
        let config = deid::Config::from_json(text).map_err(|e| format!("preset {name}: {e}"))?;
        let engine = Arc::new(self.compile(config)?);
        engines.insert(name.to_owned(), Arc::clone(&engine));
        Ok(engine)
    }
}

/// The preview form.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct PreviewForm {
    /// `server` or `paste`.
    source: Option<String>,
    resource_type: Option<String>,
    position: Option<String>,
    resource: Option<String>,
    /// A preset name, or `custom`.
    preset: Option<String>,
    config: Option<String>,
}

/// How an element differs between the original and the result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    Changed,
    Removed,
    Added,
}

impl Change {
    fn class(self) -> &'static str {
        match self {
            Change::Changed => "changed",
            Change::Removed => "removed",
            Change::Added => "added",
        }
    }
}

/// A marked element: how it changed and the rule behind it.
type Marks = HashMap<String, (Change, String)>;

/// The children of a container: key (objects only), pointer, value.
type Children<'v> = Vec<(Option<String>, String, &'v Value)>;

fn escape_key(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// Calls `f` with the pointer of every leaf (primitive, or empty object or array) under
/// `value`.
fn leaves(value: &Value, pointer: &str, f: &mut dyn FnMut(&str)) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (key, child) in map {
                leaves(child, &format!("{pointer}/{}", escape_key(key)), f);
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for (i, child) in items.iter().enumerate() {
                leaves(child, &format!("{pointer}/{i}"), f);
            }
        }
        _ => f(pointer),
    }
}

/// The differing leaves of `before` and `after`: `(pointer, change)` for the left and right
/// sides.
fn diff(
    before: &Value,
    after: &Value,
    pointer: &str,
    left: &mut Vec<(String, Change)>,
    right: &mut Vec<(String, Change)>,
) {
    match (before, after) {
        (Value::Object(a), Value::Object(b)) if !a.is_empty() && !b.is_empty() => {
            for (key, child) in a {
                let at = format!("{pointer}/{}", escape_key(key));
                match b.get(key) {
                    Some(other) => diff(child, other, &at, left, right),
                    None => leaves(child, &at, &mut |p| {
                        left.push((p.to_owned(), Change::Removed))
                    }),
                }
            }
            for (key, child) in b {
                if !a.contains_key(key) {
                    let at = format!("{pointer}/{}", escape_key(key));
                    leaves(child, &at, &mut |p| {
                        right.push((p.to_owned(), Change::Added))
                    });
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if !a.is_empty() && !b.is_empty() => {
            for (i, child) in a.iter().enumerate() {
                let at = format!("{pointer}/{i}");
                match b.get(i) {
                    Some(other) => diff(child, other, &at, left, right),
                    None => leaves(child, &at, &mut |p| {
                        left.push((p.to_owned(), Change::Removed))
                    }),
                }
            }
            for (i, child) in b.iter().enumerate().skip(a.len()) {
                let at = format!("{pointer}/{i}");
                leaves(child, &at, &mut |p| {
                    right.push((p.to_owned(), Change::Added))
                });
            }
        }
        (a, b) if a == b => {}
        (a, b) => {
            leaves(a, pointer, &mut |p| {
                left.push((p.to_owned(), Change::Changed))
            });
            leaves(b, pointer, &mut |p| {
                right.push((p.to_owned(), Change::Changed))
            });
        }
    }
}

/// The rule that owns an element: the first rule that acted on it or on its nearest
/// ancestor; otherwise what the engine itself did.
fn rule_for(pointer: &str, owners: &HashMap<&str, usize>, config: &deid::Config) -> String {
    let mut at = pointer;
    loop {
        if let Some(&index) = owners.get(at) {
            return match config.rules.get(index) {
                Some(rule) => format!("rule {}: {} → {}", index + 1, rule.path, rule.method.name()),
                None => format!("rule {}", index + 1),
            };
        }
        match at.rfind('/') {
            Some(i) => at = &at[..i],
            None => break,
        }
    }
    if pointer.starts_with("/meta") {
        "security label added by the engine".to_owned()
    } else {
        "removed by the engine: left empty by the rules".to_owned()
    }
}

fn scalar(value: &Value) -> String {
    let (class, text) = match value {
        Value::String(_) => ("str", value.to_string()),
        Value::Number(_) => ("num", value.to_string()),
        Value::Bool(_) => ("bool", value.to_string()),
        Value::Null => ("null", "null".to_owned()),
        Value::Object(_) => ("punct", "{}".to_owned()),
        Value::Array(_) => ("punct", "[]".to_owned()),
    };
    format!(r#"<span class="{class}">{}</span>"#, esc(&text))
}

/// A string value with the spans `scrub` replaced in it marked, each titled with its kind and
/// the layer that found it; `None` when the spans do not fall in the text (they index a
/// base64 value's decoded content).
fn marked(value: &Value, spans: &[deid::scrub::Span]) -> Option<String> {
    let text = value.as_str()?;
    if spans.iter().any(|s| {
        s.end > text.len() || !text.is_char_boundary(s.start) || !text.is_char_boundary(s.end)
    }) {
        return None;
    }
    let mut out = String::from(r#"<span class="str">""#);
    let mut at = 0;
    let quoted = |part: &str| {
        let json = Value::String(part.to_owned()).to_string();
        esc(&json[1..json.len() - 1])
    };
    for span in spans {
        if span.start < at {
            return None;
        }
        out.push_str(&quoted(&text[at..span.start]));
        let _ = write!(
            out,
            r#"<mark class="scrub {layer}" title="{kind}, found by the {layer} layer">{}</mark>"#,
            quoted(&text[span.start..span.end]),
            layer = span.layer.name(),
            kind = span.kind.name()
        );
        at = span.end;
    }
    out.push_str(&quoted(&text[at..]));
    out.push_str("\"</span>");
    Some(out)
}

/// What `scrub` replaced in an element, for the changes table: `name (record) ×2, date
/// (patterns)`.
fn spans_summary(spans: &[deid::scrub::Span]) -> String {
    let mut counts: Vec<((&str, &str), usize)> = Vec::new();
    for span in spans {
        let key = (span.kind.name(), span.layer.name());
        match counts.iter_mut().find(|(k, _)| *k == key) {
            Some((_, n)) => *n += 1,
            None => counts.push((key, 1)),
        }
    }
    counts
        .iter()
        .map(|((kind, layer), n)| match n {
            1 => format!("{kind} ({layer})"),
            n => format!("{kind} ({layer}) ×{n}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The spans `scrub` replaced, by the JSON Pointer of their element.
type Scrubbed = HashMap<String, Vec<deid::scrub::Span>>;

/// A JSON value as nested lines, the marked leaves highlighted and annotated, and the spans
/// `scrub` replaced in them marked.
fn tree(
    value: &Value,
    key: Option<&str>,
    pointer: &str,
    marks: &Marks,
    scrubbed: &Scrubbed,
    out: &mut String,
) {
    let label = key
        .map(|k| {
            format!(
                r#"<span class="key">{}</span>: "#,
                esc(&Value::String(k.to_owned()).to_string())
            )
        })
        .unwrap_or_default();
    let children: Option<(char, char, Children<'_>)> = match value {
        Value::Object(map) if !map.is_empty() => Some((
            '{',
            '}',
            map.iter()
                .map(|(k, v)| (Some(k.clone()), format!("{pointer}/{}", escape_key(k)), v))
                .collect(),
        )),
        Value::Array(items) if !items.is_empty() => Some((
            '[',
            ']',
            items
                .iter()
                .enumerate()
                .map(|(i, v)| (None, format!("{pointer}/{i}"), v))
                .collect(),
        )),
        _ => None,
    };
    match children {
        Some((open, close, items)) => {
            let _ = write!(
                out,
                r#"<div class="node"><div class="line">{label}<span class="punct">{open}</span></div><div class="children">"#
            );
            for (k, p, v) in items {
                tree(v, k.as_deref(), &p, marks, scrubbed, out);
            }
            let _ = write!(
                out,
                r#"</div><div class="line"><span class="punct">{close}</span></div></div>"#
            );
        }
        None => match marks.get(pointer) {
            Some((change, rule)) => {
                let value = scrubbed
                    .get(pointer)
                    .and_then(|spans| marked(value, spans))
                    .unwrap_or_else(|| scalar(value));
                let _ = write!(
                    out,
                    r#"<div class="line {class}" data-pointer="{p}" title="{rule}">{label}{value}<span class="rule">{rule}</span></div>"#,
                    class = change.class(),
                    p = esc(pointer),
                    rule = esc(rule),
                );
            }
            None => {
                let _ = write!(out, r#"<div class="line">{label}{}</div>"#, scalar(value));
            }
        },
    }
}

/// The resource at 1-based `position` among the server's current resources of a type.
fn from_store(
    store: &dyn store::Store,
    resource_type: &str,
    position: usize,
) -> Result<Value, String> {
    let at = store.transaction_time().map_err(|e| e.to_string())?;
    let query = store::ExportQuery {
        resource_type: resource_type.to_owned(),
        at,
        since: None,
        patients: store::PatientScope::All,
    };
    let page = store
        .export_page(&query, 0, position)
        .map_err(|e| e.to_string())?;
    let found = page.items.len();
    let item = page.items.into_iter().nth(position - 1).ok_or_else(|| {
        format!(
            "the server holds {found} {resource_type} resources, fewer than position {position}"
        )
    })?;
    serde_json::from_str(&item.json)
        .map_err(|_| format!("{resource_type}/{} is not readable JSON", item.id))
}

fn form_html(viewer: &Viewer, form: &PreviewForm) -> String {
    let paste = form.source.as_deref() == Some("paste");
    let resource_type = form.resource_type.as_deref().unwrap_or("Patient");
    let position = form.position.as_deref().unwrap_or("1");
    let preset = form.preset.as_deref().unwrap_or("safe-harbor");
    let mut types = String::new();
    for t in COMMON_TYPES {
        let _ = write!(types, r#"<option value="{t}">"#);
    }
    let mut presets = String::new();
    for (name, description) in deid::presets::presets() {
        let selected = if name == preset { " selected" } else { "" };
        let _ = write!(
            presets,
            r#"<option value="{0}"{selected}>{0}: {1}</option>"#,
            esc(name),
            esc(description)
        );
    }
    let custom = if preset == "custom" { " selected" } else { "" };
    let _ = write!(
        presets,
        r#"<option value="custom"{custom}>the configuration pasted below</option>"#
    );
    format!(
        r#"<form method="post" action="/preview" class="preview-form" id="preview-form">{csrf}
<fieldset><legend>Resource</legend>
<label class="radio"><input type="radio" name="source" value="server"{server_checked}> From the server: type <input name="resource_type" list="types" value="{resource_type}" size="18"> at position <input name="position" type="number" min="1" max="{MAX_POSITION}" value="{position}"></label>
<datalist id="types">{types}</datalist>
<label class="radio"><input type="radio" name="source" value="paste"{paste_checked}> Pasted JSON:</label>
<textarea name="resource" rows="6" placeholder='{{"resourceType": "Patient", ...}}'>{resource}</textarea>
</fieldset>
<fieldset><legend>De-identification</legend>
<label>Preset <select name="preset">{presets}</select></label>
<textarea name="config" rows="4" placeholder='Microsoft anonymizer configuration: {{"fhirPathRules": [...], "parameters": {{...}}}}'>{config}</textarea>
</fieldset>
<button type="submit">Preview</button>
<p class="muted">Nothing is stored. Keys the configuration lacks are generated for this server process and never shown.</p>
</form>"#,
        csrf = viewer.csrf_field(),
        server_checked = if paste { "" } else { " checked" },
        paste_checked = if paste { " checked" } else { "" },
        resource_type = esc(resource_type),
        position = esc(position),
        resource = esc(form.resource.as_deref().unwrap_or("")),
        config = esc(form.config.as_deref().unwrap_or("")),
    )
}

/// `GET /preview`.
pub(crate) async fn page(Extension(viewer): Extension<Viewer>) -> Html<String> {
    let body = form_html(&viewer, &PreviewForm::default());
    html::page(
        "De-identification preview",
        "/preview",
        Some(&viewer),
        &body,
    )
}

/// The side-by-side result.
struct Outcome {
    before: Value,
    after: Value,
    engine_name: String,
    left: Marks,
    right: Marks,
    /// What `scrub` replaced, by element.
    scrubbed: Scrubbed,
}

fn preview(state: &Dashboard, form: &PreviewForm) -> Result<Outcome, String> {
    let before: Value = if form.source.as_deref() == Some("paste") {
        let text = form.resource.as_deref().unwrap_or("").trim();
        serde_json::from_str(text).map_err(|e| {
            format!(
                "the pasted resource is not JSON (line {}, column {})",
                e.line(),
                e.column()
            )
        })?
    } else {
        let resource_type = form.resource_type.as_deref().unwrap_or("").trim();
        if resource_type.is_empty() || !resource_type.chars().all(|c| c.is_ascii_alphabetic()) {
            return Err("give a resource type such as Patient".to_owned());
        }
        let position: usize = form
            .position
            .as_deref()
            .unwrap_or("1")
            .trim()
            .parse()
            .ok()
            .filter(|p| (1..=MAX_POSITION).contains(p))
            .ok_or_else(|| format!("the position must be a number from 1 to {MAX_POSITION}"))?;
        from_store(state.app.store.as_ref(), resource_type, position)?
    };
    if before.get("resourceType").and_then(Value::as_str).is_none() {
        return Err("the resource has no resourceType".to_owned());
    }
    let preset = form.preset.as_deref().unwrap_or("safe-harbor");
    let (engine, engine_name) = if preset == "custom" {
        let text = form.config.as_deref().unwrap_or("").trim();
        if text.is_empty() {
            return Err("paste a configuration, or pick a preset".to_owned());
        }
        let config =
            deid::Config::from_json(text).map_err(|e| format!("the pasted configuration: {e}"))?;
        (
            Arc::new(state.preview.compile(config)?),
            "the pasted configuration".to_owned(),
        )
    } else {
        (state.preview.preset(preset)?, format!("preset {preset}"))
    };
    let mut after = before.clone();
    let (_, touched) = engine
        .deidentify_traced(&mut after, &deid::Context::default())
        .map_err(|e| format!("de-identification failed: {e}"))?;
    let mut owners: HashMap<&str, usize> = HashMap::new();
    let mut scrubbed = Scrubbed::new();
    for t in &touched {
        owners.entry(t.pointer.as_str()).or_insert(t.rule);
        if !t.spans.is_empty() {
            scrubbed.insert(t.pointer.clone(), t.spans.clone());
        }
    }
    let (mut left, mut right) = (Vec::new(), Vec::new());
    diff(&before, &after, "", &mut left, &mut right);
    let config = engine.config();
    let mark = |changes: Vec<(String, Change)>| -> Marks {
        changes
            .into_iter()
            .map(|(p, c)| {
                let mut rule = rule_for(&p, &owners, config);
                if let Some(spans) = scrubbed.get(&p) {
                    rule = format!("{rule}; scrubbed: {}", spans_summary(spans));
                }
                (p, (c, rule))
            })
            .collect()
    };
    Ok(Outcome {
        left: mark(left),
        right: mark(right),
        before,
        after,
        engine_name,
        scrubbed,
    })
}

fn outcome_html(outcome: &Outcome) -> String {
    let mut left = String::new();
    tree(
        &outcome.before,
        None,
        "",
        &outcome.left,
        &outcome.scrubbed,
        &mut left,
    );
    let mut right = String::new();
    tree(
        &outcome.after,
        None,
        "",
        &outcome.right,
        &Scrubbed::new(),
        &mut right,
    );
    let mut changes: Vec<(&String, &(Change, String))> = outcome
        .left
        .iter()
        .chain(
            outcome
                .right
                .iter()
                .filter(|(_, (c, _))| *c == Change::Added),
        )
        .collect();
    changes.sort_by(|a, b| a.0.cmp(b.0));
    let mut rows = String::new();
    for (pointer, (change, rule)) in &changes {
        let _ = write!(
            rows,
            r#"<tr class="{}"><td><code>{}</code></td><td>{}</td><td>{}</td></tr>"#,
            change.class(),
            esc(pointer),
            change.class(),
            esc(rule)
        );
    }
    format!(
        r#"<div class="sides">
<section class="side" id="original"><h2>Original</h2><div class="json">{left}</div></section>
<section class="side" id="deidentified"><h2>De-identified ({name})</h2><div class="json">{right}</div></section>
</div>
<h2>{n} elements changed</h2>
<table class="changes"><thead><tr><th>Element</th><th>Change</th><th>Rule</th></tr></thead><tbody>{rows}</tbody></table>"#,
        name = esc(&outcome.engine_name),
        n = changes.len()
    )
}

/// `POST /preview`: runs the preview (on the blocking pool) and shows it under the form.
pub(crate) async fn run(
    State(state): State<Dashboard>,
    Extension(viewer): Extension<Viewer>,
    axum::Form(form): axum::Form<PreviewForm>,
) -> Html<String> {
    let (form, result) = {
        let state = state.clone();
        tokio::task::spawn_blocking(move || {
            let result = preview(&state, &form);
            (form, result)
        })
        .await
        .unwrap_or_else(|_| {
            (
                PreviewForm::default(),
                Err("the preview stopped unexpectedly".to_owned()),
            )
        })
    };
    let mut body = form_html(&viewer, &form);
    match result {
        Ok(outcome) => body.push_str(&outcome_html(&outcome)),
        Err(error) => body.push_str(&html::notice("error", &error)),
    }
    html::page(
        "De-identification preview",
        "/preview",
        Some(&viewer),
        &body,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_diff_marks_changed_removed_and_added_leaves() {
        let before = json!({"id": "a", "name": [{"family": "Doe", "given": ["J"]}], "a/b": 1});
        let after = json!({"id": "b", "a/b": 1, "meta": {"security": [{"code": "REDACTED"}]}});
        let (mut left, mut right) = (Vec::new(), Vec::new());
        diff(&before, &after, "", &mut left, &mut right);
        assert_eq!(
            left,
            vec![
                ("/id".to_owned(), Change::Changed),
                ("/name/0/family".to_owned(), Change::Removed),
                ("/name/0/given/0".to_owned(), Change::Removed),
            ]
        );
        assert_eq!(
            right,
            vec![
                ("/id".to_owned(), Change::Changed),
                ("/meta/security/0/code".to_owned(), Change::Added),
            ]
        );
    }

    #[test]
    fn a_change_is_named_after_the_rule_that_owns_the_nearest_element() {
        let config = deid::Config::from_json(
            r#"{"fhirPathRules": [{"path": "Patient.name", "method": "redact"}]}"#,
        )
        .unwrap();
        let owners: HashMap<&str, usize> = [("/name/0", 0)].into_iter().collect();
        assert_eq!(
            rule_for("/name/0/family", &owners, &config),
            "rule 1: Patient.name → redact"
        );
        assert_eq!(
            rule_for("/meta/security/0/code", &owners, &config),
            "security label added by the engine"
        );
    }

    #[test]
    fn the_tree_escapes_values_and_annotates_marked_leaves() {
        let value = json!({"name": "<script>x</script>", "id": "1"});
        let marks: Marks = [(
            "/name".to_owned(),
            (Change::Removed, "rule 1: Patient.name → redact".to_owned()),
        )]
        .into_iter()
        .collect();
        let mut out = String::new();
        tree(&value, None, "", &marks, &Scrubbed::new(), &mut out);
        assert!(!out.contains("<script>"));
        assert!(out.contains("&lt;script&gt;"));
        assert!(out.contains(r#"class="line removed" data-pointer="/name""#));
        assert!(out.contains("rule 1: Patient.name → redact"));
    }

    #[test]
    fn scrubbed_spans_are_marked_with_their_layer_and_escaped() {
        use deid::scrub::{Kind, Layer, Span};
        let value = json!({"note": "Seen <b>Ann</b> on 03/04/2021"});
        let marks: Marks = [(
            "/note".to_owned(),
            (
                Change::Changed,
                "rule 2: nodesByType('string') → scrub".to_owned(),
            ),
        )]
        .into_iter()
        .collect();
        let span = |start, end, kind, layer| Span {
            start,
            end,
            kind,
            layer,
            date: None,
        };
        let scrubbed: Scrubbed = [(
            "/note".to_owned(),
            vec![
                span(8, 11, Kind::Name, Layer::Record),
                span(19, 29, Kind::Date, Layer::Pattern),
            ],
        )]
        .into_iter()
        .collect();
        let mut out = String::new();
        tree(&value, None, "", &marks, &scrubbed, &mut out);
        assert!(out.contains(
            r#"<mark class="scrub record" title="name, found by the record layer">Ann</mark>"#
        ));
        assert!(out.contains(
            r#"<mark class="scrub patterns" title="date, found by the patterns layer">03/04/2021</mark>"#
        ));
        assert!(out.contains("&lt;b&gt;") && !out.contains("<b>"));
        assert_eq!(
            spans_summary(&scrubbed["/note"]),
            "name (record), date (patterns)"
        );
    }
}
