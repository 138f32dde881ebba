//! `haven keys generate`, `haven clients add|list|remove`, and the README's secured path:
//! `haven serve --auth smart`, then `haven export` with the client id and key.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};

fn haven(home: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_haven"));
    command.env("HAVEN_HOME", home).env_remove("HAVEN_TOKEN");
    command
}

fn run(home: &Path, args: &[&str]) -> Output {
    haven(home).args(args).output().unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn keys_generate_writes_a_private_key_and_the_public_jwks() {
    let home = tempfile::tempdir().unwrap();
    let out = home.path().join("keys");
    let output = run(
        home.path(),
        &["keys", "generate", "--out", out.to_str().unwrap()],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let kid = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    let jwks = read_json(&out.join("jwks.json"));
    let key = &jwks["keys"][0];
    assert_eq!(
        (key["kty"].as_str(), key["crv"].as_str()),
        (Some("EC"), Some("P-384"))
    );
    assert_eq!(key["kid"].as_str(), Some(kid.as_str()));
    assert!(key.get("d").is_none(), "the JWKS is public");
    let pem = std::fs::read_to_string(out.join("private-key.pem")).unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(out.join("private-key.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o077,
            0,
            "the private key is readable by its owner only"
        );
    }
    // An existing key is never overwritten.
    let again = run(
        home.path(),
        &["keys", "generate", "--out", out.to_str().unwrap()],
    );
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("already exists"),
        "{}",
        stderr(&again)
    );
    assert_eq!(
        std::fs::read_to_string(out.join("private-key.pem")).unwrap(),
        pem
    );

    let rsa = home.path().join("rsa");
    let output = run(
        home.path(),
        &[
            "keys",
            "generate",
            "--alg",
            "RS384",
            "--out",
            rsa.to_str().unwrap(),
        ],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(read_json(&rsa.join("jwks.json"))["keys"][0]["kty"], "RSA");
    let bad = run(
        home.path(),
        &["keys", "generate", "--alg", "HS256", "--out", "x"],
    );
    assert!(!bad.status.success());
}

#[test]
fn clients_are_added_listed_and_removed() {
    let home = tempfile::tempdir().unwrap();
    let jwks = home.path().join("jwks.json");
    std::fs::write(
        &jwks,
        json!({"keys": [{"kty": "EC", "crv": "P-384", "kid": "k1", "x": "AA", "y": "AA"}]})
            .to_string(),
    )
    .unwrap();
    let add = run(
        home.path(),
        &[
            "clients",
            "add",
            "--id",
            "etl",
            "--jwks",
            jwks.to_str().unwrap(),
            "--scope",
            "system/*.rs",
        ],
    );
    assert!(add.status.success(), "{}", stderr(&add));
    let add = run(
        home.path(),
        &[
            "clients",
            "add",
            "--id",
            "bi",
            "--jwks-url",
            "https://bi.example.org/jwks.json",
            "--scope",
            "system/Patient.read",
        ],
    );
    assert!(add.status.success(), "{}", stderr(&add));
    assert!(
        home.path().join("clients.json").is_file(),
        "the default registry is in HAVEN_HOME"
    );

    let list = run(home.path(), &["clients", "list"]);
    let listed = String::from_utf8(list.stdout).unwrap();
    assert_eq!(
        listed,
        "etl\tsystem/*.rs\tjwks kid k1\nbi\tsystem/Patient.read\tjwks_url https://bi.example.org/jwks.json\n"
    );

    for (args, expected) in [
        (
            vec![
                "--id",
                "etl",
                "--jwks-url",
                "https://x.example.org/j",
                "--scope",
                "system/*.rs",
            ],
            "already registered",
        ),
        (
            vec![
                "--id",
                "new",
                "--jwks-url",
                "https://x.example.org/j",
                "--scope",
                "patient/*.read",
            ],
            "scope",
        ),
        (vec!["--id", "new", "--scope", "system/*.rs"], "--jwks"),
        (
            vec![
                "--id",
                "new",
                "--jwks-url",
                "https://x",
                "--jwks",
                jwks.to_str().unwrap(),
                "--scope",
                "system/*.rs",
            ],
            "cannot be used with",
        ),
    ] {
        let refused = haven(home.path())
            .args(["clients", "add"])
            .args(&args)
            .output()
            .unwrap();
        assert!(!refused.status.success(), "{args:?}");
        assert!(
            stderr(&refused).contains(expected),
            "{args:?}: {}",
            stderr(&refused)
        );
    }

    let remove = run(home.path(), &["clients", "remove", "--id", "etl"]);
    assert!(remove.status.success(), "{}", stderr(&remove));
    let again = run(home.path(), &["clients", "remove", "--id", "etl"]);
    assert!(
        stderr(&again).contains("not registered"),
        "{}",
        stderr(&again)
    );
    let list = run(home.path(), &["clients", "list"]);
    assert_eq!(String::from_utf8(list.stdout).unwrap().lines().count(), 1);
}

/// A `haven serve` child, killed when dropped.
struct Served {
    child: std::process::Child,
    base: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(home: &Path, args: &[&str]) -> Served {
    let mut child = haven(home)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(args)
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
    // Keep draining the logs so the server never blocks on a full pipe.
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    Served { child, base }
}

#[test]
fn a_registered_client_exports_from_a_secured_server() {
    let home = tempfile::tempdir().unwrap();
    let db = home.path().join("haven.db");
    {
        let store = store::open(db.to_str().unwrap()).unwrap();
        let writes = (0..5)
            .flat_map(|n| {
                [
                    store::Write::Create(json!({"resourceType": "Patient", "id": format!("p{n}")})),
                    store::Write::Create(json!({
                        "resourceType": "Observation", "id": format!("o{n}"), "status": "final",
                        "code": {"text": "pulse"}, "subject": {"reference": format!("Patient/p{n}")}
                    })),
                ]
            })
            .collect();
        store.transaction(writes).unwrap();
    }
    let keys = home.path().join("keys");
    assert!(
        run(
            home.path(),
            &["keys", "generate", "--out", keys.to_str().unwrap()]
        )
        .status
        .success()
    );
    let jwks = keys.join("jwks.json");
    let add = run(
        home.path(),
        &[
            "clients",
            "add",
            "--id",
            "pipeline",
            "--jwks",
            jwks.to_str().unwrap(),
            "--scope",
            "system/Patient.rs",
        ],
    );
    assert!(add.status.success(), "{}", stderr(&add));

    let served = serve(home.path(), &["--auth", "smart"]);
    let key = keys.join("private-key.pem");
    let out = home.path().join("out");
    let export = |out: &Path, credentials: bool| {
        let mut command = haven(home.path());
        command.args(["export", "--server", &served.base]);
        if credentials {
            command.args(["--client-id", "pipeline", "--key", key.to_str().unwrap()]);
        }
        command.arg(out).output().unwrap()
    };
    let exported = export(&out, true);
    assert!(exported.status.success(), "{}", stderr(&exported));
    let patients = std::fs::read_to_string(out.join("Patient.000.ndjson")).unwrap();
    assert_eq!(patients.lines().count(), 5);
    let manifest = read_json(&out.join("manifest.json"));
    assert_eq!(manifest["requiresAccessToken"], true);
    let types: Vec<&str> = manifest["output"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|o| o["type"].as_str())
        .collect();
    assert_eq!(
        types,
        ["Patient"],
        "Observation is outside the client's scope"
    );

    let anonymous = export(&home.path().join("anonymous"), false);
    assert!(!anonymous.status.success());
    assert!(stderr(&anonymous).contains("401"), "{}", stderr(&anonymous));

    // A removed client gets no more tokens (the server reads the registry again).
    assert!(
        run(home.path(), &["clients", "remove", "--id", "pipeline"])
            .status
            .success()
    );
    let removed = export(&home.path().join("removed"), true);
    assert!(!removed.status.success());
    assert!(
        stderr(&removed).contains("invalid_client"),
        "{}",
        stderr(&removed)
    );
}

#[test]
fn authorization_cannot_be_off_on_a_public_address() {
    let home = tempfile::tempdir().unwrap();
    let output = run(
        home.path(),
        &["serve", "--listen", "0.0.0.0:0", "--auth", "none"],
    );
    assert!(!output.status.success());
    assert!(stderr(&output).contains("loopback"), "{}", stderr(&output));
}
