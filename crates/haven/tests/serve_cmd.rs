//! `haven serve`: the README's path — load data with `haven load`, serve it, search it over
//! HTTP — and a clean stop on SIGTERM.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

fn haven() -> Command {
    Command::new(env!("CARGO_BIN_EXE_haven"))
}

fn synthea_file(prefix: &str) -> std::path::PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/synthea-covid-120");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            let name = path.file_name().unwrap().to_str().unwrap();
            name.starts_with(prefix) && name.ends_with(".json.bz2")
        })
        .collect();
    names.sort();
    names.remove(0)
}

#[test]
fn loaded_data_is_served_and_searchable() {
    let home = tempfile::tempdir().unwrap();
    // Default store: haven.db in $HAVEN_HOME, for both commands.
    let status = haven()
        .env("HAVEN_HOME", home.path())
        .arg("load")
        .arg(synthea_file("0-hospitalInformation"))
        .arg(synthea_file("0-practitionerInformation"))
        .arg(synthea_file("057aa36e"))
        .arg(synthea_file("0696ac49"))
        .arg(synthea_file("085e81c0"))
        .arg(synthea_file("098fc002"))
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    assert!(home.path().join("haven.db").is_file());

    let mut child = haven()
        .env("HAVEN_HOME", home.path())
        .args(["serve", "--listen", "127.0.0.1:0", "--auth", "none"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    let base = line
        .split_whitespace()
        .find(|word| word.starts_with("http://"))
        .unwrap_or_else(|| panic!("no URL in {line:?}"))
        .to_owned();
    assert!(base.ends_with("/fhir"), "{base}");

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (patients, metadata) = runtime.block_on(async {
        let client = reqwest::Client::new();
        let get = |url: String| {
            let client = client.clone();
            async move {
                let response = client
                    .get(url)
                    .header("accept", "application/fhir+json")
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 200);
                response.json::<serde_json::Value>().await.unwrap()
            }
        };
        (
            get(format!("{base}/Patient?_count=3")).await,
            get(format!("{base}/metadata")).await,
        )
    });
    assert_eq!(patients["total"], 4);
    assert_eq!(patients["entry"].as_array().unwrap().len(), 3);
    assert!(
        patients["link"]
            .as_array()
            .unwrap()
            .iter()
            .any(|link| link["relation"] == "next")
    );
    assert_eq!(metadata["resourceType"], "CapabilityStatement");

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let exit = child.wait().unwrap();
    assert!(exit.success(), "{exit}");
    let mut logs = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut logs).unwrap();
    assert!(logs.contains("/fhir/Patient"), "{logs}");
    assert!(!logs.contains("_count=3"), "queries are not logged: {logs}");
}
