//! Sharded runs of the built `haven deid`: N shards (run in any order, one of them twice)
//! joined by `--commit` give byte for byte the output of one unsharded run, for every
//! date-shift scope, on a fixture with several resource types, a Bundle, contained resources
//! and a gzip file; commits before every shard is done, a second commit, the Kubernetes
//! index variable, shards of another run, and missing keys.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};

const HASH_KEY: &str = "shard-hash-key-7Tq";
const DATE_KEY: &str = "shard-date-key-9Wz";

/// Runs `haven` with the test keys in the environment, plus `env`.
fn haven(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_haven"))
        .args(args)
        .env("HAVEN_CRYPTO_HASH_KEY", HASH_KEY)
        .env("HAVEN_DATE_SHIFT_KEY", DATE_KEY)
        .env_remove("HAVEN_ENCRYPT_KEY")
        .env_remove("JOB_COMPLETION_INDEX")
        .envs(env.iter().copied())
        .output()
        .expect("run haven")
}

fn ok(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "haven failed: {stderr}");
    stderr
}

/// A folder of input: synthetic NDJSON, one file gzipped, a Bundle with a contained resource
/// as `.json`, and an NDJSON file of resources with contained ones, without a final newline.
fn fixture(dir: &Path) -> PathBuf {
    let input = dir.join("export");
    ok(&haven(
        &[
            "synth",
            "--patients",
            "12",
            "--seed",
            "4",
            "--out",
            input.to_str().unwrap(),
        ],
        &[],
    ));
    let condition = fs::read_dir(&input)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("Condition")
        })
        .expect("a Condition file");
    let text = fs::read(&condition).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&text).unwrap();
    fs::write(input.join("Condition.gz.ndjson.gz"), gz.finish().unwrap()).unwrap();
    fs::remove_file(&condition).unwrap();

    let observation = |n: u32| {
        json!({
            "resourceType": "Observation", "id": format!("obs-{n}"), "status": "final",
            "code": {"text": "pulse"}, "effectiveDateTime": format!("2020-03-{:02}T10:00:00Z", n % 28 + 1),
            "contained": [{"resourceType": "Patient", "id": "p", "birthDate": "1961-05-17",
                           "name": [{"family": "Contained", "given": ["Only"]}]}],
            "subject": {"reference": "#p"}
        })
    };
    let lines: Vec<String> = (0..40).map(|n| observation(n).to_string()).collect();
    fs::create_dir_all(input.join("extra")).unwrap();
    fs::write(input.join("extra/Observation.ndjson"), lines.join("\n")).unwrap();
    let bundle = json!({
        "resourceType": "Bundle", "type": "collection",
        "entry": [{"fullUrl": "urn:uuid:1", "resource": observation(99)},
                  {"fullUrl": "urn:uuid:2", "resource": {"resourceType": "Patient", "id": "b1",
                   "birthDate": "1970-01-02", "name": [{"family": "Bundled"}]}}]
    });
    fs::write(input.join("extra/bundle.json"), bundle.to_string()).unwrap();
    input
}

/// A Microsoft configuration that shifts dates in `scope`, hashes ids and removes names.
fn config(dir: &Path, scope: &str) -> PathBuf {
    let path = dir.join(format!("config-{scope}.json"));
    let config = json!({
        "fhirVersion": "R4",
        "fhirPathRules": [
            {"path": "nodesByType('HumanName')", "method": "redact"},
            {"path": "nodesByType('date')", "method": "dateShift"},
            {"path": "nodesByType('dateTime')", "method": "dateShift"},
            {"path": "Resource.id", "method": "cryptoHash"},
            {"path": "nodesByType('Reference').reference", "method": "cryptoHash"}
        ],
        "parameters": {"dateShiftScope": scope, "dateShiftKey": "", "cryptoHashKey": ""}
    });
    fs::write(&path, config.to_string()).unwrap();
    path
}

/// Every file under `root` (relative path → bytes).
fn tree(root: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, files: &mut BTreeMap<String, Vec<u8>>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, files);
            } else {
                let relative = path.strip_prefix(root).unwrap().display().to_string();
                files.insert(relative, fs::read(&path).unwrap());
            }
        }
    }
    let mut files = BTreeMap::new();
    walk(root, root, &mut files);
    files
}

/// The output files, without the unsharded run's summary and the sharded run's manifest.
fn outputs(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = tree(root);
    files.remove("_haven_deid_summary.json");
    files.remove("haven-deid-manifest.json");
    files
}

#[test]
fn shards_joined_equal_one_unsharded_run_for_every_date_shift_scope() {
    let dir = tempfile::tempdir().unwrap();
    let input = fixture(dir.path());
    let input_arg = input.to_str().unwrap();
    for scope in ["resource", "file", "folder"] {
        let config = config(dir.path(), scope);
        let config_arg = config.to_str().unwrap();
        let single = dir.path().join(format!("single-{scope}"));
        ok(&haven(
            &[
                "deid",
                "--config",
                config_arg,
                input_arg,
                single.to_str().unwrap(),
            ],
            &[],
        ));
        let expected = outputs(&single);
        assert!(expected.len() > 10, "{} outputs", expected.len());
        for count in [1u32, 2, 3, 5] {
            let sharded = dir.path().join(format!("sharded-{scope}-{count}"));
            let sharded_arg = sharded.to_str().unwrap();
            for index in (0..count).rev() {
                let spec = format!("{index}/{count}");
                ok(&haven(
                    &[
                        "deid",
                        "--config",
                        config_arg,
                        "--shard",
                        &spec,
                        input_arg,
                        sharded_arg,
                    ],
                    &[],
                ));
            }
            let first = format!("0/{count}");
            let again = ok(&haven(
                &[
                    "deid",
                    "--config",
                    config_arg,
                    "--shard",
                    &first,
                    input_arg,
                    sharded_arg,
                ],
                &[],
            ));
            assert!(again.contains("already done"), "{again}");
            let count_arg = count.to_string();
            ok(&haven(
                &["deid", "--commit", sharded_arg, "--shard-count", &count_arg],
                &[],
            ));
            assert_eq!(
                outputs(&sharded),
                expected,
                "{count} shards, dateShiftScope {scope}"
            );
            assert!(!sharded.join(".haven-shards").exists(), "shards removed");
        }
    }
}

#[test]
fn commits_need_every_shard_and_happen_once() {
    let dir = tempfile::tempdir().unwrap();
    let input = fixture(dir.path());
    let (input_arg, output) = (input.to_str().unwrap(), dir.path().join("out"));
    let output_arg = output.to_str().unwrap();
    // Shard 1 of 3 from the Kubernetes index variable, shard 0 by flag; shard 2 missing.
    ok(&haven(
        &["deid", "--shard-count", "3", input_arg, output_arg],
        &[("JOB_COMPLETION_INDEX", "1")],
    ));
    ok(&haven(
        &["deid", "--shard", "0/3", input_arg, output_arg],
        &[],
    ));
    let early = haven(&["deid", "--commit", output_arg, "--shard-count", "3"], &[]);
    assert_eq!(early.status.code(), Some(3));
    let message = String::from_utf8_lossy(&early.stderr);
    assert!(message.contains("shard 2"), "{message}");
    assert!(!output.join("haven-deid-manifest.json").exists());

    ok(&haven(
        &["deid", "--shard", "2/3", input_arg, output_arg],
        &[],
    ));
    ok(&haven(
        &["deid", "--commit", output_arg, "--shard-count", "3"],
        &[],
    ));
    let manifest_text = fs::read_to_string(output.join("haven-deid-manifest.json")).unwrap();
    for key in [HASH_KEY, DATE_KEY] {
        assert!(
            !manifest_text.contains(key),
            "no key material in the manifest"
        );
    }
    let manifest: Value = serde_json::from_str(&manifest_text).unwrap();
    assert_eq!(manifest["shards"], 3);
    assert_eq!(manifest["keyId"].as_str().unwrap().len(), 16);
    assert_eq!(manifest["configuration"], "preset safe-harbor");
    let written: u64 = manifest["resourcesOut"]
        .as_object()
        .unwrap()
        .values()
        .map(|n| n.as_u64().unwrap())
        .sum();
    let lines: u64 = tree(&output)
        .iter()
        .filter(|(name, _)| name.ends_with(".ndjson"))
        .map(|(_, bytes)| {
            bytes
                .split(|&b| b == b'\n')
                .filter(|l| !l.is_empty())
                .count() as u64
        })
        .sum();
    assert!(
        written >= lines && lines > 0,
        "{written} resources, {lines} plain lines"
    );

    let before = tree(&output);
    let again = ok(&haven(
        &["deid", "--commit", output_arg, "--shard-count", "3"],
        &[],
    ));
    assert!(again.contains("already committed"), "{again}");
    assert_eq!(tree(&output), before, "a second commit changes nothing");
}

#[test]
fn shards_refuse_generated_keys_other_runs_and_bad_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let input = fixture(dir.path());
    let (input_arg, output) = (input.to_str().unwrap(), dir.path().join("out"));
    let output_arg = output.to_str().unwrap();

    let generated = haven(
        &[
            "deid",
            "--shard",
            "0/2",
            "--generate-keys",
            input_arg,
            output_arg,
        ],
        &[],
    );
    assert_eq!(
        generated.status.code(),
        Some(2),
        "--generate-keys is refused"
    );

    let no_keys = Command::new(env!("CARGO_BIN_EXE_haven"))
        .args(["deid", "--shard", "0/2", input_arg, output_arg])
        .env_remove("HAVEN_CRYPTO_HASH_KEY")
        .env_remove("HAVEN_DATE_SHIFT_KEY")
        .env_remove("HAVEN_ENCRYPT_KEY")
        .output()
        .unwrap();
    assert_eq!(no_keys.status.code(), Some(2), "a shard without keys stops");

    let out_of_range = haven(&["deid", "--shard", "2/2", input_arg, output_arg], &[]);
    assert_eq!(out_of_range.status.code(), Some(2));
    let bad_index = haven(
        &["deid", "--shard-count", "2", input_arg, output_arg],
        &[("JOB_COMPLETION_INDEX", "7")],
    );
    assert_eq!(bad_index.status.code(), Some(2));

    ok(&haven(
        &["deid", "--shard", "0/2", input_arg, output_arg],
        &[],
    ));
    let other_keys = Command::new(env!("CARGO_BIN_EXE_haven"))
        .args(["deid", "--shard", "0/2", input_arg, output_arg])
        .env("HAVEN_CRYPTO_HASH_KEY", "another-hash-key")
        .env("HAVEN_DATE_SHIFT_KEY", DATE_KEY)
        .output()
        .unwrap();
    assert_eq!(other_keys.status.code(), Some(2), "shard of another run");
    let message = String::from_utf8_lossy(&other_keys.stderr);
    assert!(!message.contains("another-hash-key") && !message.contains(HASH_KEY));
}
