//! `haven synth`: deterministic generation from the command line, and its output flowing
//! through `haven deid`.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

fn haven() -> Command {
    Command::new(env!("CARGO_BIN_EXE_haven"))
}

fn synth(out: &Path, seed: &str, threads: &str) {
    let status = haven()
        .args([
            "synth",
            "--patients",
            "30",
            "--seed",
            seed,
            "--threads",
            threads,
            "--out",
        ])
        .arg(out)
        .status()
        .unwrap();
    assert!(status.success());
}

/// Every file of a folder (recursively), by relative path.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path.strip_prefix(dir).unwrap().display().to_string();
                out.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    out
}

#[test]
fn the_same_seed_gives_byte_identical_output_whatever_the_thread_count() {
    let dir = tempfile::tempdir().unwrap();
    synth(&dir.path().join("a"), "11", "1");
    synth(&dir.path().join("b"), "11", "2");
    synth(&dir.path().join("c"), "12", "2");
    let (a, b, c) = (
        files(&dir.path().join("a")),
        files(&dir.path().join("b")),
        files(&dir.path().join("c")),
    );
    assert!(a.contains_key("Patient.000.ndjson"), "{:?}", a.keys());
    assert_eq!(a, b);
    assert_ne!(a, c);
}

#[test]
fn synthetic_patients_lose_their_names_through_safe_harbor() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    synth(&data, "5", "2");
    let patients = std::fs::read_to_string(data.join("Patient.000.ndjson")).unwrap();
    let families: Vec<String> = patients
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .map(|p| p["name"][0]["family"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(families.len(), 30);
    let out = dir.path().join("lake");
    let status = haven()
        .args(["deid", "--preset", "safe-harbor"])
        .arg(&data)
        .arg(&out)
        .env("HAVEN_CRYPTO_HASH_KEY", "test-hash-key-0123456789")
        .env("HAVEN_DATE_SHIFT_KEY", "test-shift-key")
        .env("HAVEN_ENCRYPT_KEY", "0123456789abcdef0123456789abcdef")
        .status()
        .unwrap();
    assert!(status.success());
    let output = files(&out);
    assert!(output.contains_key("Patient.000.ndjson"));
    for (name, bytes) in &output {
        let text = String::from_utf8_lossy(bytes);
        for (i, family) in families.iter().enumerate() {
            assert!(
                !text.contains(family.as_str()),
                "family name of patient {i} left in {name}"
            );
        }
    }
}
