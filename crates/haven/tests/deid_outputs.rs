//! `haven deid`'s outputs: every shape of OUTPUT (a new folder, an existing folder, a new file
//! in a new folder, `-`), the generated key file (written only when the run succeeds), and the
//! staging a killed run leaves behind (removed by the next run).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

/// Keys for the runs that do not generate theirs.
const KEYS: [(&str, &str); 3] = [
    ("HAVEN_CRYPTO_HASH_KEY", "hash-key-outputs-Qm2"),
    ("HAVEN_DATE_SHIFT_KEY", "date-key-outputs-Lp7"),
    ("HAVEN_ENCRYPT_KEY", "enc-key-outputs-"),
];

/// `haven` in `dir`, with `env` and no key variables from the calling environment.
fn command(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_haven"));
    command
        .args(args)
        .current_dir(dir)
        .env_remove("HAVEN_CRYPTO_HASH_KEY")
        .env_remove("HAVEN_DATE_SHIFT_KEY")
        .env_remove("HAVEN_ENCRYPT_KEY")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Runs `haven` in `dir`, feeding `stdin`.
fn run(dir: &Path, args: &[&str], env: &[(&str, &str)], stdin: &[u8]) -> Output {
    let mut child = command(dir, args, env).spawn().expect("haven starts");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin)
        .expect("stdin written");
    child.wait_with_output().expect("haven runs")
}

/// Asserts the exit status, showing standard error otherwise.
fn assert_status(output: &Output, status: i32) {
    assert_eq!(
        output.status.code(),
        Some(status),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Every path under `dir`, relative and sorted.
fn tree(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in fs::read_dir(dir).expect("a readable folder") {
            let path = entry.expect("an entry").path();
            out.push(path.strip_prefix(root).unwrap().display().to_string());
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

/// `count` Patients and one Observation each, as NDJSON.
fn resources(count: usize) -> String {
    let mut text = String::new();
    for n in 0..count {
        let patient = json!({
            "resourceType": "Patient",
            "id": format!("p{n}"),
            "name": [{"family": "Quartermaine", "given": ["Odile"]}],
            "birthDate": "1961-07-14",
            "address": [{"line": ["12 Hidden Lane"], "postalCode": "02139"}]
        });
        let observation = json!({
            "resourceType": "Observation",
            "id": format!("o{n}"),
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "94531-1"}]},
            "subject": {"reference": format!("Patient/p{n}")},
            "effectiveDateTime": "2020-03-04T10:00:00Z"
        });
        text.push_str(&format!("{patient}\n{observation}\n"));
    }
    text
}

/// A folder `input/` in `dir` with two NDJSON files.
fn input_folder(dir: &Path, lines: usize) -> PathBuf {
    let input = dir.join("input");
    fs::create_dir_all(input.join("sub")).unwrap();
    fs::write(input.join("a.ndjson"), resources(lines)).unwrap();
    fs::write(input.join("sub/b.ndjson"), resources(lines)).unwrap();
    input
}

#[test]
fn every_output_shape_is_written_with_its_folders() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    input_folder(dir, 3);
    let deid = |input: &str, output: &str| {
        let output = run(dir, &["deid", input, output], &KEYS, b"");
        assert_status(&output, 0);
    };

    // A folder into a new folder (with missing parents).
    deid("input", "new/lake");
    assert_eq!(
        tree(&dir.join("new")),
        [
            "lake",
            "lake/_haven_deid_summary.json",
            "lake/a.ndjson",
            "lake/sub",
            "lake/sub/b.ndjson"
        ]
    );
    // A file into a new folder, named with a trailing slash.
    deid("input/a.ndjson", "fresh/");
    assert_eq!(
        tree(&dir.join("fresh")),
        ["a.ndjson", "a.ndjson.summary.json"]
    );
    // A file into an existing folder.
    fs::create_dir(dir.join("existing")).unwrap();
    deid("input/a.ndjson", "existing");
    assert_eq!(
        tree(&dir.join("existing")),
        ["a.ndjson", "a.ndjson.summary.json"]
    );
    // A new file in a new folder.
    deid("input/a.ndjson", "deep/er/out.ndjson");
    assert_eq!(
        tree(&dir.join("deep")),
        ["er", "er/out.ndjson", "er/out.ndjson.summary.json"]
    );
    // Standard input to standard output: six resources, no file.
    let before = tree(dir);
    let output = run(dir, &["deid", "-", "-"], &KEYS, resources(3).as_bytes());
    assert_status(&output, 0);
    assert_eq!(String::from_utf8(output.stdout).unwrap().lines().count(), 6);
    assert_eq!(tree(dir), before);

    // The same content whatever the shape.
    let written = fs::read(dir.join("fresh/a.ndjson")).unwrap();
    assert_eq!(fs::read(dir.join("existing/a.ndjson")).unwrap(), written);
    assert_eq!(fs::read(dir.join("deep/er/out.ndjson")).unwrap(), written);
    assert_eq!(fs::read(dir.join("new/lake/a.ndjson")).unwrap(), written);
}

#[test]
fn a_generated_key_file_is_written_only_when_the_run_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    input_folder(dir, 2);

    // Into a folder that does not exist yet: the run succeeds and says where the keys are.
    let output = run(
        dir,
        &["deid", "--generate-keys", "input/a.ndjson", "out/"],
        &[],
        b"",
    );
    assert_status(&output, 0);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("stored in ./haven-keys.json"), "{stderr}");
    assert_eq!(
        tree(&dir.join("out")),
        ["a.ndjson", "a.ndjson.summary.json"]
    );
    fs::remove_file(dir.join("haven-keys.json")).unwrap();

    // A run that fails on its input writes no key file and leaves no folder.
    fs::write(dir.join("bad.ndjson"), "{\"resourceType\": \"Patient\",\n").unwrap();
    let output = run(
        dir,
        &["deid", "--generate-keys", "bad.ndjson", "failed/out.ndjson"],
        &[],
        b"",
    );
    assert_status(&output, 3);
    assert!(!dir.join("failed").exists());
    assert!(!dir.join("haven-keys.json").exists());
    assert!(!dir.join("failed/haven-keys.json").exists());

    // A run that fails when it moves its output into place takes back the key file it made.
    fs::create_dir_all(dir.join("blocked/a.ndjson/in-the-way")).unwrap();
    let output = run(
        dir,
        &["deid", "--generate-keys", "input/a.ndjson", "blocked"],
        &[],
        b"",
    );
    assert_status(&output, 4);
    assert!(!dir.join("haven-keys.json").exists());
    assert_eq!(
        tree(&dir.join("blocked")),
        ["a.ndjson", "a.ndjson/in-the-way"]
    );

    // A key file that existed keeps the keys added to it, and the failure says where it is.
    fs::write(dir.join("keys.json"), "{}").unwrap();
    let output = run(
        dir,
        &[
            "deid",
            "--generate-keys",
            "--key-file",
            "keys.json",
            "input/a.ndjson",
            "blocked",
        ],
        &[],
        b"",
    );
    assert_status(&output, 4);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("stay in keys.json"), "{stderr}");
    let keys: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(dir.join("keys.json")).unwrap()).unwrap();
    assert!(keys.get("cryptoHashKey").is_some());
}

/// The staging entries (`.haven-deid-…`) under `dir`.
fn staged(dir: &Path) -> Vec<String> {
    tree(dir)
        .into_iter()
        .filter(|path| path.contains(".haven-deid-"))
        .collect()
}

#[test]
fn a_killed_run_leaves_no_staging_after_the_next_run() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    input_folder(dir, 10_000);
    let args = ["deid", "--threads", "1", "input", "out"];

    // Killed with SIGKILL while its staging folder is being written.
    let mut child = command(dir, &args, &KEYS).spawn().unwrap();
    let started = Instant::now();
    while staged(&dir.join("out")).len() < 2 && started.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let left = staged(&dir.join("out"));
    assert!(
        left.iter().any(|p| !p.contains('/')),
        "the run finished before it was killed: give it more data ({left:?})"
    );

    // The next run removes it, says so, and writes what an uninterrupted run writes.
    let output = run(dir, &args, &KEYS, b"");
    assert_status(&output, 0);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("left by an interrupted run"), "{stderr}");
    assert_eq!(staged(&dir.join("out")), Vec::<String>::new());
    let uninterrupted = run(dir, &["deid", "input", "whole"], &KEYS, b"");
    assert_status(&uninterrupted, 0);
    assert_eq!(tree(&dir.join("out")), tree(&dir.join("whole")));
    for file in ["a.ndjson", "sub/b.ndjson"] {
        assert_eq!(
            fs::read(dir.join("out").join(file)).unwrap(),
            fs::read(dir.join("whole").join(file)).unwrap(),
            "{file}"
        );
    }

    // A staged file beside a file output, from a dead process, goes too.
    fs::create_dir(dir.join("single")).unwrap();
    let dead = dir.join("single/.a.ndjson.haven-deid-4194303.partial");
    fs::write(&dead, "partial").unwrap();
    let output = run(
        dir,
        &["deid", "input/a.ndjson", "single/a.ndjson"],
        &KEYS,
        b"",
    );
    assert_status(&output, 0);
    assert!(!dead.exists());
    assert_eq!(
        tree(&dir.join("single")),
        ["a.ndjson", "a.ndjson.summary.json"]
    );
}
