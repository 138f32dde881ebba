//! Runs the built `haven fhirpath` on the FHIRPath suite's example Patient and on NDJSON made
//! from it, and checks its output, exit codes and error messages.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

/// The example Patient of the official FHIRPath suite.
fn patient_example() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/fhirpath-r4/input/patient-example.json")
}

/// Runs `haven` with `args`, feeding `stdin` to it.
fn haven(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_haven"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start haven");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin)
        .expect("write stdin");
    child.wait_with_output().expect("run haven")
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).expect("UTF-8 stdout")
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).expect("UTF-8 stderr")
}

/// The example Patient as one compact JSON line.
fn patient_line() -> String {
    let text = std::fs::read_to_string(patient_example()).expect("read patient");
    let json: serde_json::Value = serde_json::from_str(&text).expect("parse patient");
    json.to_string()
}

#[test]
fn prints_location_type_and_value_of_each_given_name() {
    let file = patient_example();
    let output = haven(
        &["fhirpath", "Patient.name.given", file.to_str().unwrap()],
        b"",
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        "/name/0/given/0\tFHIR.string\tPeter\n\
         /name/0/given/1\tFHIR.string\tJames\n\
         /name/1/given/0\tFHIR.string\tJim\n\
         /name/2/given/0\tFHIR.string\tPeter\n\
         /name/2/given/1\tFHIR.string\tJames\n"
    );
}

#[test]
fn computed_values_have_no_location() {
    let file = patient_example();
    let output = haven(
        &[
            "fhirpath",
            "Patient.name.given.count()",
            file.to_str().unwrap(),
        ],
        b"",
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(stdout(&output), "-\tSystem.Integer\t5\n");
}

#[test]
fn json_output_is_one_object_per_result() {
    let file = patient_example();
    let output = haven(
        &["fhirpath", "--json", "Patient.name", file.to_str().unwrap()],
        b"",
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let results: Vec<serde_json::Value> = stdout(&output)
        .lines()
        .map(|line| serde_json::from_str(line).expect("each line is JSON"))
        .collect();
    assert_eq!(results.len(), 3);
    assert_eq!(results[1]["location"], "/name/1");
    assert_eq!(results[1]["type"], "FHIR.HumanName");
    assert_eq!(results[1]["value"]["given"][0], "Jim");
    assert!(results[0].get("line").is_none());

    let output = haven(
        &[
            "fhirpath",
            "--json",
            "name.given.first()",
            file.to_str().unwrap(),
        ],
        b"",
    );
    let result: serde_json::Value = serde_json::from_str(stdout(&output).trim()).expect("JSON");
    assert_eq!(
        result,
        serde_json::json!({"location": "/name/0/given/0", "type": "FHIR.string", "value": "Peter"})
    );
}

#[test]
fn a_bad_expression_exits_2_and_names_the_position() {
    let file = patient_example();
    let output = haven(
        &["fhirpath", "Patient.name.(given", file.to_str().unwrap()],
        b"",
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(stdout(&output).is_empty());
    let message = stderr(&output);
    assert!(message.contains("invalid FHIRPath expression"), "{message}");
    assert!(message.contains("at character"), "{message}");
}

#[test]
fn no_results_exits_1() {
    let file = patient_example();
    let output = haven(
        &[
            "fhirpath",
            "Patient.name.where(use = 'nickname')",
            file.to_str().unwrap(),
        ],
        b"",
    );
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(stdout(&output).is_empty());
    assert!(stderr(&output).is_empty());
}

#[test]
fn gzip_ndjson_shows_line_numbers() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("Patient.ndjson.gz");
    let mut gz = flate2::write::GzEncoder::new(
        std::fs::File::create(&path).expect("create"),
        flate2::Compression::default(),
    );
    let text = format!(
        "{}\n\n{}\n",
        patient_line(),
        r#"{"resourceType":"Patient","gender":"female"}"#
    );
    gz.write_all(text.as_bytes()).expect("write");
    gz.finish().expect("finish");

    let output = haven(&["fhirpath", "Patient.gender", path.to_str().unwrap()], b"");
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        "1\t/gender\tFHIR.code\tmale\n3\t/gender\tFHIR.code\tfemale\n"
    );

    let output = haven(
        &["fhirpath", "--json", "gender", path.to_str().unwrap()],
        b"",
    );
    let second: serde_json::Value =
        serde_json::from_str(stdout(&output).lines().nth(1).expect("two results")).expect("JSON");
    assert_eq!(second["line"], 3);
}

#[test]
fn reads_ndjson_from_stdin() {
    let input = format!("{}\n{}\n", patient_line(), patient_line());
    let output = haven(&["fhirpath", "Patient.birthDate", "-"], input.as_bytes());
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        "1\t/birthDate\tFHIR.date\t1974-12-25\n2\t/birthDate\tFHIR.date\t1974-12-25\n"
    );
}

#[test]
fn reads_a_pretty_printed_resource_from_stdin() {
    let input = std::fs::read(patient_example()).expect("read patient");
    let output = haven(&["fhirpath", "Patient.gender", "-"], &input);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(stdout(&output), "/gender\tFHIR.code\tmale\n");
}

#[test]
fn invalid_json_names_file_and_line_but_not_the_content() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("broken.ndjson");
    let text = format!(
        "{}\n{{\"resourceType\":\"Patient\",\"name\":\"Secret Person\"\n",
        patient_line()
    );
    std::fs::write(&path, text).expect("write");
    let output = haven(&["fhirpath", "Patient.id", path.to_str().unwrap()], b"");
    assert_eq!(output.status.code(), Some(2));
    let message = stderr(&output);
    assert!(
        message.contains(&format!("{}:2: invalid JSON", path.display())),
        "{message}"
    );
    assert!(!message.contains("Secret"), "{message}");
}

#[test]
fn an_unreadable_file_exits_2() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("missing.json");
    let output = haven(&["fhirpath", "Patient.id", path.to_str().unwrap()], b"");
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("cannot read"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn help_documents_the_exit_codes() {
    let output = haven(&["fhirpath", "--help"], b"");
    assert_eq!(output.status.code(), Some(0));
    let help = stdout(&output);
    assert!(help.contains("LOCATION<TAB>TYPE<TAB>VALUE"), "{help}");
    assert!(
        help.contains("1  the expression selected nothing"),
        "{help}"
    );
}
