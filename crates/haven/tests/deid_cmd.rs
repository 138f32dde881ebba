//! Runs the built `haven deid` on small fixtures written into temporary folders: files, gzip,
//! folders, Bundles, standard input and output, presets, Microsoft configurations, keys, seeded
//! runs, summaries, and bad input (each failing with file, line and element path, no partial
//! output, and no planted secret in any message).

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};

/// Test keys, passed through the environment; none may ever appear in a message.
const HASH_KEY: &str = "hash-key-Kq93xzTT";
const DATE_KEY: &str = "date-key-Vb71mwRR";
const ENCRYPT_KEY: &str = "enc-key-Zp4t9Lq2";

/// Identifiers planted in the fixtures.
const GIVEN: &str = "Quentinette";
const FAMILY: &str = "Zzyzxworth";
const SSN: &str = "999-12-3456";
const STREET: &str = "12 Hidden Lane";

/// A distinctive value planted in bad records; it must appear in no message.
const SECRET: &str = "SECRET-Wq8Jv3-PHI";

/// The Microsoft anonymizer test data.
fn ms_data(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/ms-anonymizer")
        .join(path)
}

/// Runs `haven` with `args` and the given environment (the `HAVEN_*` key variables of the
/// calling environment are removed first), feeding `stdin`.
fn haven_in(dir: Option<&Path>, args: &[&str], stdin: &[u8], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_haven"));
    command
        .args(args)
        .env_remove("HAVEN_CRYPTO_HASH_KEY")
        .env_remove("HAVEN_DATE_SHIFT_KEY")
        .env_remove("HAVEN_ENCRYPT_KEY")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(dir) = dir {
        command.current_dir(dir);
    }
    let mut child = command.spawn().expect("start haven");
    let mut input = child.stdin.take().expect("stdin");
    input.write_all(stdin).expect("write stdin");
    drop(input);
    child.wait_with_output().expect("run haven")
}

/// Runs `haven` with the three test keys in the environment.
fn haven(args: &[&str]) -> Output {
    haven_in(None, args, b"", &KEYS)
}

/// The test keys as environment variables.
const KEYS: [(&str, &str); 3] = [
    ("HAVEN_CRYPTO_HASH_KEY", HASH_KEY),
    ("HAVEN_DATE_SHIFT_KEY", DATE_KEY),
    ("HAVEN_ENCRYPT_KEY", ENCRYPT_KEY),
];

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).expect("UTF-8 stdout")
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).expect("UTF-8 stderr")
}

/// Asserts the exit status, showing standard error otherwise.
fn assert_status(output: &Output, status: i32) {
    assert_eq!(
        output.status.code(),
        Some(status),
        "stderr:\n{}",
        stderr(output)
    );
}

/// Asserts that none of `secrets` (nor any key) appears on standard output or error.
fn assert_silent_about(output: &Output, secrets: &[&str]) {
    let (out, err) = (stdout(output), stderr(output));
    for secret in secrets
        .iter()
        .chain([HASH_KEY, DATE_KEY, ENCRYPT_KEY].iter())
    {
        assert!(!out.contains(secret), "`{secret}` on stdout:\n{out}");
        assert!(!err.contains(secret), "`{secret}` on stderr:\n{err}");
    }
}

/// Every path under `dir`, relative and sorted (hidden ones included).
fn tree(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in fs::read_dir(dir).expect("read dir") {
            let path = entry.expect("entry").path();
            out.push(
                path.strip_prefix(root)
                    .expect("under root")
                    .display()
                    .to_string(),
            );
            if path.is_dir() {
                walk(root, &path, out);
            }
        }
    }
    let mut out = Vec::new();
    if dir.exists() {
        walk(dir, dir, &mut out);
    }
    out.sort();
    out
}

/// A Patient carrying every planted identifier.
fn patient(id: &str) -> Value {
    json!({
        "resourceType": "Patient",
        "id": id,
        "identifier": [{"system": "http://hl7.org/fhir/sid/us-ssn", "value": SSN}],
        "name": [{"family": FAMILY, "given": [GIVEN]}],
        "gender": "female",
        "birthDate": "1961-07-14",
        "address": [{"line": [STREET], "city": "Springfield", "state": "MA", "postalCode": "02139"}]
    })
}

/// A SARS-CoV-2 test result of a patient.
fn observation(id: &str, patient: &str) -> Value {
    json!({
        "resourceType": "Observation",
        "id": id,
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "94531-1"}]},
        "subject": {"reference": format!("Patient/{patient}"), "display": format!("{GIVEN} {FAMILY}")},
        "effectiveDateTime": "2020-03-04T10:00:00Z",
        "valueCodeableConcept": {"text": "Detected"}
    })
}

/// Resources as NDJSON text.
fn ndjson(resources: &[Value]) -> String {
    resources.iter().map(|r| format!("{r}\n")).collect()
}

/// A patient and two of their observations, as NDJSON.
fn sample() -> String {
    ndjson(&[
        patient("p1"),
        observation("o1", "p1"),
        observation("o2", "p1"),
    ])
}

/// The lines of NDJSON output, parsed.
fn parse_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|line| serde_json::from_str(line).expect("an output line is JSON"))
        .collect()
}

/// Asserts that no planted identifier survived in `text`.
fn assert_identifiers_removed(text: &str) {
    for planted in [GIVEN, FAMILY, SSN, STREET, "Springfield", "1961-07-14"] {
        assert!(!text.contains(planted), "`{planted}` left in the output");
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).expect("gzip");
    encoder.finish().expect("gzip")
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(bytes)
        .read_to_end(&mut out)
        .expect("gunzip");
    out
}

fn path(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

fn read_json(p: &Path) -> Value {
    serde_json::from_str(&fs::read_to_string(p).expect("read")).expect("JSON")
}

#[test]
fn ndjson_file_to_ndjson_file_removes_identifiers_and_keeps_references() {
    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (dir.path().join("in.ndjson"), dir.path().join("out.ndjson"));
    fs::write(&input, sample()).unwrap();
    let run = haven(&[
        "deid",
        "--preset",
        "safe-harbor",
        path(&input),
        path(&output),
    ]);
    assert_status(&run, 0);
    assert_silent_about(&run, &[]);
    let text = fs::read_to_string(&output).unwrap();
    assert_identifiers_removed(&text);
    let lines = parse_lines(&text);
    assert_eq!(lines.len(), 3);
    let patient_id = lines[0]["id"].as_str().unwrap();
    assert_ne!(patient_id, "p1");
    assert_eq!(lines[1]["resourceType"], "Observation");
    assert_eq!(
        lines[1]["subject"]["reference"],
        format!("Patient/{patient_id}")
    );
    assert_eq!(lines[1]["code"]["coding"][0]["code"], "94531-1");
    assert_eq!(lines[1]["valueCodeableConcept"]["text"], "Detected");
    assert_eq!(lines[0]["birthDate"], "1961");
}

#[test]
fn gzip_input_gives_gzip_output_with_the_same_lines() {
    let dir = tempfile::tempdir().unwrap();
    let plain_in = dir.path().join("in.ndjson");
    let gzip_in = dir.path().join("in.ndjson.gz");
    fs::write(&plain_in, sample()).unwrap();
    fs::write(&gzip_in, gzip(sample().as_bytes())).unwrap();
    let plain_out = dir.path().join("out.ndjson");
    let gzip_out = dir.path().join("out.ndjson.gz");
    assert_status(&haven(&["deid", path(&plain_in), path(&plain_out)]), 0);
    assert_status(&haven(&["deid", path(&gzip_in), path(&gzip_out)]), 0);
    let compressed = fs::read(&gzip_out).unwrap();
    assert_eq!(&compressed[..2], &[0x1f, 0x8b], "the output is gzip");
    assert_eq!(gunzip(&compressed), fs::read(&plain_out).unwrap());
}

#[test]
fn folder_to_folder_keeps_the_layout_and_ignores_other_files() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    fs::create_dir_all(input.join("sub/deeper")).unwrap();
    fs::write(input.join("a.ndjson"), sample()).unwrap();
    fs::write(input.join("sub/b.ndjson.gz"), gzip(sample().as_bytes())).unwrap();
    let bundle = json!({"resourceType": "Bundle", "type": "collection",
        "entry": [{"resource": patient("p9")}]});
    fs::write(input.join("sub/deeper/c.json"), bundle.to_string()).unwrap();
    fs::write(input.join("notes.txt"), "not FHIR").unwrap();
    let output = dir.path().join("out");

    let run = haven(&["deid", path(&input), path(&output)]);
    assert_status(&run, 0);
    assert!(stderr(&run).contains("notes.txt"), "{}", stderr(&run));
    assert_eq!(
        tree(&output),
        [
            "_haven_deid_summary.json",
            "a.ndjson",
            "sub",
            "sub/b.ndjson.gz",
            "sub/deeper",
            "sub/deeper/c.json"
        ]
    );
    assert_identifiers_removed(&fs::read_to_string(output.join("a.ndjson")).unwrap());
    let b = gunzip(&fs::read(output.join("sub/b.ndjson.gz")).unwrap());
    assert_eq!(parse_lines(std::str::from_utf8(&b).unwrap()).len(), 3);
    let c = read_json(&output.join("sub/deeper/c.json"));
    assert_eq!(c["entry"][0]["resource"]["resourceType"], "Patient");
    let summary = read_json(&output.join("_haven_deid_summary.json"));
    assert_eq!(summary["files"], 3);
    assert_eq!(summary["resourcesIn"]["Patient"], 2);
    assert_eq!(summary["resourcesIn"]["Bundle"], 1);
    assert_eq!(summary["resourcesProcessed"]["Patient"], 3);
}

#[test]
fn json_bundle_to_json_keeps_entries_and_urn_references() {
    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (dir.path().join("bundle.json"), dir.path().join("out.json"));
    let mut obs = observation("o1", "p1");
    obs["subject"]["reference"] = "urn:uuid:2f1c7c7e-5b1e-4d61-9d1a-0f5e2d3c4b5a".into();
    let bundle = json!({
        "resourceType": "Bundle", "id": "b1", "type": "transaction",
        "entry": [
            {"fullUrl": "urn:uuid:2f1c7c7e-5b1e-4d61-9d1a-0f5e2d3c4b5a", "resource": patient("p1"),
             "request": {"method": "POST", "url": "Patient"}},
            {"fullUrl": "urn:uuid:9a8b7c6d-1111-2222-3333-444455556666", "resource": obs,
             "request": {"method": "POST", "url": "Observation"}}
        ]
    });
    fs::write(&input, serde_json::to_string_pretty(&bundle).unwrap()).unwrap();
    let run = haven(&["deid", path(&input), path(&output)]);
    assert_status(&run, 0);
    let text = fs::read_to_string(&output).unwrap();
    assert_identifiers_removed(&text);
    let out: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(out["resourceType"], "Bundle");
    let entries = out["entry"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(
        entries[1]["resource"]["subject"]["reference"],
        entries[0]["fullUrl"]
    );
    let summary = read_json(&dir.path().join("out.json.summary.json"));
    assert_eq!(summary["resourcesOut"], json!({"Bundle": 1}));
    assert_eq!(
        summary["resourcesProcessed"],
        json!({"Bundle": 1, "Observation": 1, "Patient": 1})
    );
}

#[test]
fn stdin_to_stdout_writes_ndjson_and_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let run = haven_in(
        Some(dir.path()),
        &["deid", "-", "-"],
        sample().as_bytes(),
        &KEYS,
    );
    assert_status(&run, 0);
    let out = stdout(&run);
    assert_identifiers_removed(&out);
    assert_eq!(parse_lines(&out).len(), 3);
    assert!(tree(dir.path()).is_empty(), "{:?}", tree(dir.path()));
}

#[test]
fn microsoft_configuration_works_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("Account.json");
    // The configuration sets its own keys (`123`): no environment keys.
    let run = haven_in(
        None,
        &[
            "deid",
            "--config",
            path(&ms_data("r4-configuration-sample.json")),
            path(&ms_data("TestResources/R4OnlyResource/Account-R4.json")),
            path(&output),
        ],
        b"",
        &[],
    );
    assert_status(&run, 0);
    let expected = fs::read_to_string(ms_data(
        "TestResources/R4OnlyResource/Account-R4-target.json",
    ))
    .unwrap();
    let expected: Value = serde_json::from_str(expected.trim_start_matches('\u{feff}')).unwrap();
    assert_eq!(read_json(&output), expected);
}

#[test]
fn list_presets_names_and_describes_each_preset() {
    let run = haven(&["deid", "--list-presets"]);
    assert_status(&run, 0);
    let out = stdout(&run);
    for name in ["safe-harbor", "research", "limited-data-set", "ms-sample"] {
        assert!(
            out.lines().any(|line| line == name),
            "{name} missing:\n{out}"
        );
    }
    assert!(out.contains("expert determination"), "{out}");
}

#[test]
fn printed_presets_are_valid_configurations() {
    for name in ["safe-harbor", "research", "limited-data-set", "ms-sample"] {
        let run = haven(&["deid", "--print-preset", name]);
        assert_status(&run, 0);
        let config = deid::Config::from_json(&stdout(&run))
            .unwrap_or_else(|error| panic!("{name}: {error}"));
        assert!(!config.rules.is_empty(), "{name}");
    }
    let run = haven(&["deid", "--print-preset", "no-such-preset"]);
    assert_status(&run, 2);
    assert!(stderr(&run).contains("safe-harbor"), "{}", stderr(&run));
}

#[test]
fn printed_preset_runs_as_a_configuration_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mine.json");
    fs::write(
        &config,
        stdout(&haven(&["deid", "--print-preset", "safe-harbor"])),
    )
    .unwrap();
    let input = dir.path().join("in.ndjson");
    fs::write(&input, sample()).unwrap();
    let (a, b) = (dir.path().join("a.ndjson"), dir.path().join("b.ndjson"));
    assert_status(
        &haven(&["deid", "--preset", "safe-harbor", path(&input), path(&a)]),
        0,
    );
    assert_status(
        &haven(&["deid", "--config", path(&config), path(&input), path(&b)]),
        0,
    );
    assert_eq!(fs::read(a).unwrap(), fs::read(b).unwrap());
}

/// A configuration with the two random methods.
const RANDOM_CONFIG: &str = r#"{
  "fhirVersion": "R4",
  "fhirPathRules": [
    {"path": "Observation.value", "method": "perturb", "span": 10, "roundTo": 2},
    {"path": "Patient.name.family", "method": "encrypt"},
    {"path": "nodesByType('HumanName')", "method": "redact"},
    {"path": "nodesByType('Identifier')", "method": "redact"},
    {"path": "nodesByType('Address')", "method": "redact"},
    {"path": "nodesByType('Reference').display", "method": "redact"}
  ]
}"#;

#[test]
fn seed_makes_runs_byte_identical_whatever_the_threads() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("random.json");
    fs::write(&config, RANDOM_CONFIG).unwrap();
    let mut resources = Vec::new();
    for i in 0..200 {
        resources.push(patient(&format!("p{i}")));
        let mut obs = observation(&format!("o{i}"), &format!("p{i}"));
        obs.as_object_mut().unwrap().remove("valueCodeableConcept");
        obs["valueQuantity"] = json!({"value": 37.5, "unit": "Cel"});
        resources.push(obs);
    }
    let input = dir.path().join("in.ndjson");
    fs::write(&input, ndjson(&resources)).unwrap();
    let run = |name: &str, extra: &[&str]| {
        let out = dir.path().join(name);
        let mut args = vec!["deid", "--config", path(&config)];
        args.extend_from_slice(extra);
        args.extend_from_slice(&[path(&input), path(&out)]);
        assert_status(&haven(&args), 0);
        fs::read(out).unwrap()
    };
    let one = run("one.ndjson", &["--seed", "42", "--threads", "1"]);
    let two = run("two.ndjson", &["--seed", "42", "--threads", "2"]);
    let unseeded = run("unseeded.ndjson", &[]);
    assert_eq!(one, two);
    assert_ne!(one, unseeded);
    assert!(!String::from_utf8(one).unwrap().contains(FAMILY));
}

#[test]
fn summary_counts_match_the_input() {
    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (dir.path().join("in.ndjson"), dir.path().join("out.ndjson"));
    fs::write(
        &input,
        ndjson(&[
            patient("p1"),
            patient("p2"),
            observation("o1", "p1"),
            patient("p3"),
            observation("o2", "p2"),
        ]),
    )
    .unwrap();
    let run = haven(&["deid", path(&input), path(&output)]);
    assert_status(&run, 0);
    let summary = read_json(&dir.path().join("out.ndjson.summary.json"));
    assert_eq!(summary["files"], 1);
    assert_eq!(summary["records"], 5);
    assert_eq!(
        summary["resourcesIn"],
        json!({"Observation": 2, "Patient": 3})
    );
    assert_eq!(
        summary["resourcesOut"],
        json!({"Observation": 2, "Patient": 3})
    );
    assert_eq!(summary["invalidRecords"], 0);
    assert!(summary["nodes"]["cryptoHash"].as_u64().unwrap() >= 5);
    assert!(summary["nodes"]["redact"].as_u64().unwrap() > 0);
    let err = stderr(&run);
    assert!(
        err.contains("Patient") && err.contains("Observation"),
        "{err}"
    );
}

#[test]
fn refuses_to_run_without_keys() {
    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (dir.path().join("in.ndjson"), dir.path().join("out.ndjson"));
    fs::write(&input, sample()).unwrap();
    let run = haven_in(None, &["deid", path(&input), path(&output)], b"", &[]);
    assert_status(&run, 2);
    let err = stderr(&run);
    for needed in [
        "cryptoHashKey",
        "HAVEN_CRYPTO_HASH_KEY",
        "--key-file",
        "parameters",
        "--generate-keys",
    ] {
        assert!(err.contains(needed), "`{needed}` missing:\n{err}");
    }
    assert_eq!(tree(dir.path()), ["in.ndjson"]);
}

#[test]
fn generate_keys_writes_a_private_key_file_and_reuses_it() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.ndjson");
    fs::write(&input, sample()).unwrap();
    let out_dir = dir.path().join("results");
    let first = out_dir.join("first.ndjson");
    let run = haven_in(
        None,
        &[
            "deid",
            "--preset",
            "research",
            "--generate-keys",
            path(&input),
            path(&first),
        ],
        b"",
        &[],
    );
    assert_status(&run, 0);
    let key_file = out_dir.join("haven-keys.json");
    assert!(stderr(&run).contains(path(&key_file)), "{}", stderr(&run));
    let mode = fs::metadata(&key_file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let keys = read_json(&key_file);
    for name in ["cryptoHashKey", "dateShiftKey"] {
        let key = keys[name].as_str().unwrap_or_else(|| panic!("{name}"));
        assert!(!stderr(&run).contains(key) && !stdout(&run).contains(key));
    }

    // The same keys give the same output, from --key-file or from --generate-keys again.
    let second = out_dir.join("second.ndjson");
    let again = haven_in(
        None,
        &[
            "deid",
            "--preset",
            "research",
            "--key-file",
            path(&key_file),
            path(&input),
            path(&second),
        ],
        b"",
        &[],
    );
    assert_status(&again, 0);
    let third = out_dir.join("third.ndjson");
    let reused = haven_in(
        None,
        &[
            "deid",
            "--preset",
            "research",
            "--generate-keys",
            path(&input),
            path(&third),
        ],
        b"",
        &[],
    );
    assert_status(&reused, 0);
    assert_eq!(read_json(&key_file), keys);
    assert_eq!(fs::read(&first).unwrap(), fs::read(&second).unwrap());
    assert_eq!(fs::read(&first).unwrap(), fs::read(&third).unwrap());
}

#[test]
fn keys_never_appear_in_messages() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.ndjson");
    fs::write(
        &input,
        format!("{}{{\"resourceType\": \"Patient\",\n", sample()),
    )
    .unwrap();
    let config = dir.path().join("random.json");
    fs::write(&config, RANDOM_CONFIG).unwrap();
    let out = dir.path().join("out.ndjson");
    // A failed run, a run that skips the bad line, and an encryption key of a wrong length.
    let failed = haven(&["deid", "--config", path(&config), path(&input), path(&out)]);
    assert_status(&failed, 3);
    assert_silent_about(&failed, &[]);
    let skipped = haven(&[
        "deid",
        "--skip-invalid",
        "--config",
        path(&config),
        path(&input),
        path(&out),
    ]);
    assert_status(&skipped, 1);
    assert_silent_about(&skipped, &[]);
    let wrong = "wrong-length-key-Hs62";
    let bad_key = haven_in(
        None,
        &["deid", "--config", path(&config), path(&input), path(&out)],
        b"",
        &[("HAVEN_ENCRYPT_KEY", wrong)],
    );
    assert_status(&bad_key, 2);
    assert!(
        stderr(&bad_key).contains("HAVEN_ENCRYPT_KEY"),
        "{}",
        stderr(&bad_key)
    );
    assert_silent_about(&bad_key, &[wrong]);
}

/// Runs one bad NDJSON file (a good line, then `bad`) and checks the failure: exit 3, the
/// message holds each of `expected`, no output, no secret.
fn check_bad_line(bad: &str, expected: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("bad.ndjson");
    fs::write(
        &input,
        format!("{}\n{bad}\n{}\n", patient("p1"), patient("p2")),
    )
    .unwrap();
    let out_dir = dir.path().join("out");
    let run = haven(&["deid", path(&input), path(&out_dir.join("out.ndjson"))]);
    assert_status(&run, 3);
    let err = stderr(&run);
    assert!(err.contains(path(&input)), "no file name:\n{err}");
    assert!(err.contains("line 2"), "no line number:\n{err}");
    for part in expected {
        assert!(err.contains(part), "`{part}` missing:\n{err}");
    }
    assert_silent_about(&run, &[SECRET, GIVEN, FAMILY]);
    assert_eq!(tree(dir.path()), ["bad.ndjson"], "partial output left");
}

#[test]
fn malformed_json_line_stops_the_run() {
    check_bad_line(
        &format!(r#"{{"resourceType": "Patient", "name": [{{"family": "{SECRET}"}}"#),
        &["invalid JSON"],
    );
}

#[test]
fn a_line_that_is_an_array_is_not_a_resource() {
    check_bad_line(
        &format!(r#"[{{"resourceType": "Patient", "id": "{SECRET}"}}]"#),
        &["array"],
    );
}

#[test]
fn a_line_without_resource_type_is_not_a_resource() {
    check_bad_line(
        &format!(r#"{{"id": "x", "note": "{SECRET}"}}"#),
        &["resourceType"],
    );
}

#[test]
fn unknown_resource_type_is_rejected_without_quoting_it() {
    check_bad_line(
        &format!(r#"{{"resourceType": "{SECRET}", "name": [{{"family": "x"}}]}}"#),
        &["unknown resourceType", "not a FHIR R4 resource type"],
    );
}

#[test]
fn unknown_element_is_named_by_its_path() {
    check_bad_line(
        &format!(
            r#"{{"resourceType": "Patient", "contact": [{{"name": {{"family": "x"}}, "favouriteColour": "{SECRET}"}}]}}"#
        ),
        &["/contact/0/favouriteColour", "unknown element"],
    );
}

#[test]
fn wrong_kind_of_value_is_named_by_its_path() {
    check_bad_line(
        &format!(
            r#"{{"resourceType": "Patient", "name": [{{"family": {{"text": "{SECRET}"}}}}]}}"#
        ),
        &["/name/0/family"],
    );
}

#[test]
fn stu3_resources_are_rejected_with_the_type_or_element() {
    let dir = tempfile::tempdir().unwrap();
    for (file, expected) in [
        ("DeviceComponent.json", "DeviceComponent"),
        ("Account-Stu3.json", "/period"),
    ] {
        let input = ms_data(&format!("TestResources/Stu3OnlyResource/{file}"));
        let output = dir.path().join(file);
        let run = haven(&["deid", path(&input), path(&output)]);
        assert_status(&run, 3);
        let err = stderr(&run);
        assert!(err.contains(file) && err.contains(expected), "{err}");
    }
    assert!(tree(dir.path()).is_empty());
}

#[test]
fn bad_entry_in_a_bundle_is_named_by_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("bundle.json");
    let mut bad = patient("p2");
    bad["maritalColour"] = SECRET.into();
    let bundle = json!({"resourceType": "Bundle", "type": "collection",
        "entry": [{"resource": patient("p1")}, {"resource": bad}]});
    fs::write(&input, serde_json::to_string_pretty(&bundle).unwrap()).unwrap();
    let run = haven(&["deid", path(&input), path(&dir.path().join("out.json"))]);
    assert_status(&run, 3);
    assert!(
        stderr(&run).contains("/entry/1/resource/maritalColour"),
        "{}",
        stderr(&run)
    );
    assert_silent_about(&run, &[SECRET, GIVEN]);
    assert_eq!(tree(dir.path()), ["bundle.json"]);
}

#[test]
fn invalid_fhirpath_in_configuration_names_the_rule() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.json");
    fs::write(
        &config,
        r#"{"fhirPathRules": [
            {"path": "nodesByType('HumanName')", "method": "redact"},
            {"path": "Patient.name.where(given = ", "method": "redact"}
        ]}"#,
    )
    .unwrap();
    let input = dir.path().join("in.ndjson");
    fs::write(&input, sample()).unwrap();
    let run = haven(&[
        "deid",
        "--config",
        path(&config),
        path(&input),
        path(&dir.path().join("out.ndjson")),
    ]);
    assert_status(&run, 2);
    let err = stderr(&run);
    assert!(err.contains("config.json"), "{err}");
    assert!(err.contains("rule 1"), "{err}");
    assert!(err.contains("Patient.name.where(given = "), "{err}");
    assert_eq!(tree(dir.path()), ["config.json", "in.ndjson"]);
}

#[test]
fn unreadable_inputs_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let regular = dir.path().join("regular.txt");
    fs::write(&regular, "a file, not a folder").unwrap();
    let corrupt = dir.path().join("corrupt.ndjson.gz");
    let mut bytes = gzip(sample().as_bytes());
    let middle = bytes.len() / 2;
    bytes[middle..].iter_mut().for_each(|b| *b = !*b);
    fs::write(&corrupt, bytes).unwrap();
    let cases = [
        dir.path().join("missing.ndjson"),
        regular.join("in.ndjson"),
        corrupt.clone(),
    ];
    for input in &cases {
        let output = dir.path().join("out").join("out.ndjson");
        let run = haven(&["deid", path(input), path(&output)]);
        assert_status(&run, 3);
        assert!(stderr(&run).contains(path(input)), "{}", stderr(&run));
        assert!(
            !dir.path().join("out").exists(),
            "output left for {input:?}"
        );
    }

    // A broken link in an input folder.
    let folder = dir.path().join("folder");
    fs::create_dir(&folder).unwrap();
    fs::write(folder.join("a.ndjson"), sample()).unwrap();
    std::os::unix::fs::symlink(dir.path().join("gone.ndjson"), folder.join("b.ndjson")).unwrap();
    let output = dir.path().join("folder-out");
    let run = haven(&["deid", path(&folder), path(&output)]);
    assert_status(&run, 3);
    assert!(stderr(&run).contains("b.ndjson"), "{}", stderr(&run));
    assert!(!output.exists(), "{:?}", tree(&output));
}

#[test]
fn unwritable_outputs_fail_with_status_4() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.ndjson");
    fs::write(&input, sample()).unwrap();
    let folder = dir.path().join("folder");
    fs::create_dir(&folder).unwrap();
    fs::write(folder.join("a.ndjson"), sample()).unwrap();
    let regular = dir.path().join("regular.txt");
    fs::write(&regular, "a file, not a folder").unwrap();
    for (input, output) in [
        (&input, regular.join("out.ndjson")),
        (&folder, regular.join("out")),
        (&folder, regular.clone()),
    ] {
        let run = haven(&["deid", path(input), path(&output)]);
        assert_status(&run, 4);
        assert!(stderr(&run).contains("regular.txt"), "{}", stderr(&run));
    }
    assert_eq!(
        tree(dir.path()),
        ["folder", "folder/a.ndjson", "in.ndjson", "regular.txt"]
    );
}

#[test]
fn skip_invalid_goes_on_and_reports_each_bad_line() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("mixed.ndjson");
    let text = format!(
        "{}\n{{\"resourceType\": \"Patient\", \"name\": [{{\"family\": \"{SECRET}\"\n{}\n{{\"resourceType\": \"Patient\", \"shoeSize\": \"{SECRET}\"}}\n{}\n",
        patient("p1"),
        observation("o1", "p1"),
        observation("o2", "p1")
    );
    fs::write(&input, text).unwrap();
    let output = dir.path().join("out.ndjson");
    let run = haven(&["deid", "--skip-invalid", path(&input), path(&output)]);
    assert_status(&run, 1);
    let err = stderr(&run);
    assert!(err.contains("mixed.ndjson line 2"), "{err}");
    assert!(
        err.contains("mixed.ndjson line 4: element /shoeSize"),
        "{err}"
    );
    assert_silent_about(&run, &[SECRET]);
    assert_eq!(parse_lines(&fs::read_to_string(&output).unwrap()).len(), 3);
    let summary_text = fs::read_to_string(dir.path().join("out.ndjson.summary.json")).unwrap();
    assert!(!summary_text.contains(SECRET));
    let summary: Value = serde_json::from_str(&summary_text).unwrap();
    assert_eq!(summary["invalidRecords"], 2);
    let lines: Vec<&Value> = summary["invalid"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| &i["line"])
        .collect();
    assert_eq!(lines, [&json!(2), &json!(4)]);
    assert_eq!(
        summary["resourcesIn"],
        json!({"Observation": 2, "Patient": 2})
    );
    assert_eq!(
        summary["resourcesOut"],
        json!({"Observation": 2, "Patient": 1})
    );
}

#[test]
fn failed_folder_run_leaves_nothing_and_keeps_earlier_output() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    fs::create_dir_all(input.join("sub")).unwrap();
    fs::write(input.join("a.ndjson"), sample()).unwrap();
    fs::write(
        input.join("sub/z.ndjson"),
        format!("{}\n[\"{SECRET}\"]\n", patient("p5")),
    )
    .unwrap();
    let fresh = dir.path().join("fresh");
    let run = haven(&["deid", path(&input), path(&fresh)]);
    assert_status(&run, 3);
    assert!(stderr(&run).contains("z.ndjson line 2"), "{}", stderr(&run));
    assert_silent_about(&run, &[SECRET]);
    assert!(!fresh.exists(), "{:?}", tree(&fresh));

    // An earlier output stays as it was when a later run fails.
    let single = dir.path().join("single.ndjson");
    assert_status(
        &haven(&["deid", path(&input.join("a.ndjson")), path(&single)]),
        0,
    );
    let before = (fs::read(&single).unwrap(), tree(dir.path()));
    let run = haven(&["deid", path(&input.join("sub/z.ndjson")), path(&single)]);
    assert_status(&run, 3);
    assert_eq!((fs::read(&single).unwrap(), tree(dir.path())), before);
}

#[test]
fn help_documents_the_exit_status() {
    let run = haven(&["deid", "--help"]);
    assert_status(&run, 0);
    let out = stdout(&run);
    for line in [
        "0  success",
        "1  success, but invalid records were left out",
        "2  usage, configuration or key error",
        "3  input error",
        "4  output error",
    ] {
        assert!(out.contains(line), "`{line}` missing:\n{out}");
    }
}

#[test]
fn environment_keys_override_the_configuration_and_key_files_override_both() {
    let dir = tempfile::tempdir().unwrap();
    let config = ms_data("r4-configuration-sample.json");
    let input = ms_data("TestResources/R4OnlyResource/Account-R4.json");
    let key_file = dir.path().join("keys.json");
    fs::write(
        &key_file,
        json!({"cryptoHashKey": "123", "dateShiftKey": "123"}).to_string(),
    )
    .unwrap();
    let run = |name: &str, extra: &[&str], env: &[(&str, &str)]| {
        let output = dir.path().join(name);
        let mut args = vec!["deid", "--config", path(&config)];
        args.extend_from_slice(extra);
        args.extend_from_slice(&[path(&input), path(&output)]);
        assert_status(&haven_in(None, &args, b"", env), 0);
        read_json(&output)
    };
    let configured = run("configured.json", &[], &[]);
    let from_env = run("env.json", &[], &KEYS);
    let from_file = run("file.json", &["--key-file", path(&key_file)], &KEYS);
    assert_ne!(configured, from_env);
    assert_eq!(configured, from_file);
}

#[test]
fn bad_key_files_are_refused_without_showing_keys() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.ndjson");
    fs::write(&input, sample()).unwrap();
    let output = dir.path().join("out.ndjson");
    for (name, text, expected) in [
        (
            "typo.json",
            format!(r#"{{"cryptohashkey": "{HASH_KEY}"}}"#),
            "unknown member `cryptohashkey`",
        ),
        (
            "broken.json",
            format!(r#"{{"cryptoHashKey": {HASH_KEY}}}"#),
            "not valid JSON",
        ),
        ("missing.json", String::new(), "does not exist"),
    ] {
        let key_file = dir.path().join(name);
        if !text.is_empty() {
            fs::write(&key_file, text).unwrap();
        }
        let run = haven_in(
            None,
            &[
                "deid",
                "--key-file",
                path(&key_file),
                path(&input),
                path(&output),
            ],
            b"",
            &[],
        );
        assert_status(&run, 2);
        let err = stderr(&run);
        assert!(err.contains(name) && err.contains(expected), "{err}");
        assert_silent_about(&run, &[]);
    }
    assert!(!output.exists());
}

#[test]
fn valid_output_turns_a_microsoft_configuration_valid() {
    let patient = json!({"resourceType": "Patient", "id": "p1", "birthDate": "1980-03-04",
        "_birthDate": {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/patient-birthTime",
                                      "valueDateTime": "1980-03-04T10:00:00Z"}]}});
    let input = format!("{patient}\n");
    let run = |extra: &[&str]| {
        let mut args = vec!["deid", "--preset", "ms-sample"];
        args.extend_from_slice(extra);
        args.extend(["-", "-"]);
        let output = haven_in(None, &args, input.as_bytes(), &KEYS);
        assert_status(&output, 0);
        parse_lines(&stdout(&output)).remove(0)
    };
    let microsoft = run(&[]);
    assert!(
        microsoft["_birthDate"]["extension"][0].get("url").is_none(),
        "Microsoft's output leaves an extension without its url: {microsoft}"
    );
    let valid = run(&["--valid-output"]);
    assert!(valid.get("_birthDate").is_none(), "{valid}");
}
