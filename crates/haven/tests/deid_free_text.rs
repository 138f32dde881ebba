//! Free text through the built `haven deid`: the adversarial corpus of
//! `tests/data/free-text-corpus` (31 resource types, a patient's identifiers planted in many
//! spellings in every kind of free-text element, contained resources, a Bundle, extensions,
//! base64 text and HTML attachments, narratives) de-identified with `safe-harbor` and
//! `research`. Every planted identifier must be gone, and the clinical words must stay.
//! Failures name the planted value's category and position in `free-text-planted.json`, never the value.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use base64::Engine as _;
use serde_json::{Value, json};

fn corpus() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/free-text-corpus")
}

fn planted() -> Value {
    let text = fs::read_to_string(corpus().with_file_name("free-text-planted.json"))
        .expect("planted values");
    serde_json::from_str(&text).expect("free-text-planted.json is JSON")
}

fn haven(args: &[&str], stdin: Option<&Path>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_haven"));
    command
        .args(args)
        .env("HAVEN_CRYPTO_HASH_KEY", "free-text-hash-key")
        .env("HAVEN_DATE_SHIFT_KEY", "free-text-shift-key")
        .env_remove("HAVEN_ENCRYPT_KEY")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(path) = stdin {
        command.stdin(fs::File::open(path).expect("stdin file"));
    }
    command.output().expect("run haven")
}

fn check(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(0), "stderr:\n{stderr}");
    stderr
}

/// Every string of a JSON value, base64 values decoded too, one per line.
fn strings(value: &Value, out: &mut String) {
    match value {
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
        Value::Array(items) => items.iter().for_each(|v| strings(v, out)),
        Value::Object(map) => map.values().for_each(|v| strings(v, out)),
        _ => {}
    }
}

/// The text of every resource written under `dir` (NDJSON lines and JSON documents).
fn output_text(dir: &Path) -> String {
    let mut text = String::new();
    for entry in fs::read_dir(dir).expect("output folder") {
        let path = entry.expect("entry").path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with('_') || name.starts_with('.') {
            continue;
        }
        let content = fs::read_to_string(&path).expect("output file");
        if name.ends_with(".json") {
            strings(&serde_json::from_str(&content).expect("JSON"), &mut text);
        } else {
            for line in content.lines() {
                strings(&serde_json::from_str(line).expect("NDJSON"), &mut text);
            }
        }
    }
    text
}

/// The planted values of `categories` still in `text`, named by category and position.
fn survivors(text: &str, categories: &[&str]) -> Vec<String> {
    let planted = planted();
    let lower = text.to_lowercase();
    let mut found = Vec::new();
    for category in categories {
        for (i, value) in planted[category].as_array().unwrap().iter().enumerate() {
            if lower.contains(&value.as_str().unwrap().to_lowercase()) {
                found.push(format!("{category}[{i}]"));
            }
        }
    }
    found
}

fn deidentify(preset: &str) -> (tempfile::TempDir, String, Value) {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("out");
    let output = haven(
        &[
            "deid",
            "--preset",
            preset,
            corpus().to_str().unwrap(),
            out.to_str().unwrap(),
        ],
        None,
    );
    let stderr = check(&output);
    let summary: Value = serde_json::from_str(
        &fs::read_to_string(out.join("_haven_deid_summary.json")).expect("summary"),
    )
    .expect("summary JSON");
    let text = output_text(&out);
    assert!(
        stderr.contains("identifying values of the run's people and places"),
        "{stderr}"
    );
    (dir, text, summary)
}

#[test]
fn safe_harbor_leaves_no_planted_identifier_and_keeps_the_clinical_words() {
    let (_dir, text, summary) = deidentify("safe-harbor");
    let left = survivors(&text, &["record", "patterns", "names"]);
    assert!(left.is_empty(), "planted identifiers left: {left:?}");
    for (i, word) in planted()["clinical"].as_array().unwrap().iter().enumerate() {
        assert!(
            text.contains(word.as_str().unwrap()),
            "clinical word {i} of free-text-planted.json was lost"
        );
    }
    for placeholder in [
        "[NAME]",
        "[PHONE]",
        "[ID]",
        "[ADDRESS]",
        "[EMAIL]",
        "[URL]",
        "[IP]",
        "[AGE]",
        "[CITY]",
        "[ZIP]",
    ] {
        assert!(text.contains(placeholder), "no {placeholder} in the output");
    }
    let scrub = &summary["scrub"];
    for layer in ["record", "patterns", "names"] {
        assert!(
            scrub["layers"][layer].as_u64().unwrap_or(0) > 0,
            "no replacement counted for the {layer} layer: {scrub}"
        );
    }
    assert!(
        scrub["paths"]["Observation.valueString"]["name"]
            .as_u64()
            .unwrap_or(0)
            > 0,
        "{scrub}"
    );
    assert_eq!(
        scrub["dropped"]["DocumentReference.content.attachment.data"], 1,
        "the PNG attachment is dropped: {scrub}"
    );
}

#[test]
fn research_leaves_no_record_or_shaped_identifier_and_shifts_dates_in_text() {
    let (_dir, text, summary) = deidentify("research");
    let left = survivors(&text, &["record", "patterns"]);
    assert!(left.is_empty(), "planted identifiers left: {left:?}");
    for (i, word) in planted()["clinical"].as_array().unwrap().iter().enumerate() {
        assert!(
            text.contains(word.as_str().unwrap()),
            "clinical word {i} of free-text-planted.json was lost"
        );
    }
    assert!(
        summary["scrub"]["layers"].get("names").is_none(),
        "research does not run the name lexicon: {}",
        summary["scrub"]
    );
    assert!(
        text.lines()
            .any(|l| l.contains("since 20") && l.contains("cough and fever")),
        "the date in the note is shifted, not cut to its year"
    );
}

#[test]
fn standard_input_finds_the_run_s_people_with_identities() {
    let dir = tempfile::tempdir().expect("temp dir");
    let observation = corpus().join("Observation.ndjson");
    let without = haven(
        &["deid", "--preset", "safe-harbor", "-", "-"],
        Some(&observation),
    );
    let stderr = check(&without);
    assert!(stderr.contains("--identities"), "{stderr}");
    let with = haven(
        &[
            "deid",
            "--preset",
            "safe-harbor",
            "--identities",
            corpus().to_str().unwrap(),
            "-",
            "-",
        ],
        Some(&observation),
    );
    check(&with);
    let mut text = String::new();
    for line in String::from_utf8_lossy(&with.stdout).lines() {
        strings(&serde_json::from_str(line).expect("NDJSON"), &mut text);
    }
    let left = survivors(&text, &["record"]);
    assert!(left.is_empty(), "planted identifiers left: {left:?}");
    drop(dir);
}

#[test]
fn unreadable_free_text_is_dropped_and_counted_never_quoted() {
    let dir = tempfile::tempdir().expect("temp dir");
    let input = dir.path().join("in.ndjson");
    let secret = "Wq8Jv3Secretname";
    let long_note = format!("Seen {secret} Quennell-Pryce. ").repeat(180_000);
    let resources = [
        json!({"resourceType": "Observation", "id": "x1", "status": "final", "code": {"text": "x"},
               "text": {"status": "generated", "div": format!("<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>{secret}</div>")}}),
        json!({"resourceType": "DocumentReference", "id": "x2", "status": "current",
               "content": [{"attachment": {"contentType": "text/plain", "data": "@@not base64 {secret}@@"}}]}),
        json!({"resourceType": "Observation", "id": "x3", "status": "final", "code": {"text": "long"},
               "note": [{"text": long_note}]}),
        json!({"resourceType": "Patient", "id": "p", "name": [{"family": secret}]}),
    ];
    let lines: String = resources.iter().map(|r| format!("{r}\n")).collect();
    assert!(lines.len() > 5_000_000, "a note of more than 5 MB");
    fs::write(&input, lines).unwrap();
    let out = dir.path().join("out.ndjson");
    let output = haven(
        &[
            "deid",
            "--preset",
            "safe-harbor",
            input.to_str().unwrap(),
            out.to_str().unwrap(),
        ],
        None,
    );
    let stderr = check(&output);
    assert!(!stderr.contains(secret), "{stderr}");
    assert!(stderr.contains("free text dropped"), "{stderr}");
    let written = fs::read_to_string(&out).unwrap();
    assert!(!written.contains(secret));
    let lines: Vec<Value> = written
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        lines[0].get("text").is_none(),
        "the broken narrative is dropped, its div being required: {}",
        lines[0]
    );
    assert!(
        lines[1]["content"][0]["attachment"].get("data").is_none(),
        "the undecodable attachment is dropped"
    );
    let note = lines[2]["note"][0]["text"].as_str().unwrap();
    assert!(
        note.starts_with("Seen [NAME]. Seen [NAME]."),
        "{}",
        &note[..60]
    );
}
