//! Helpers shared by the lake's integration tests: synthetic data, the Python readers, and the
//! object-store emulators (Azurite, moto) started and stopped by the tests themselves.

// Each test binary uses a subset of these helpers.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The pip command `.ci/run` uses to install the readers.
pub const PIP_READERS: &str = "pip install pyarrow==26.0.1 duckdb==2.0.1 deltalake==1.6.6";

/// The Python interpreter that runs the readers (`HAVEN_PYTHON`, else `python3`).
pub fn python() -> String {
    std::env::var("HAVEN_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// Runs a Python script with `args` and returns its standard output; panics with its
/// standard error when it fails, and with install instructions when a module is missing.
pub fn run_python(script: &str, args: &[&str]) -> String {
    let output = Command::new(python())
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {}: {e}; install Python 3 and `{PIP_READERS}`",
                python()
            )
        });
    let stderr = String::from_utf8_lossy(&output.stderr);
    if stderr.contains("ModuleNotFoundError") {
        panic!(
            "a Python reader is missing ({}); install them with `{PIP_READERS}`",
            stderr.trim()
        );
    }
    assert!(output.status.success(), "python failed:\n{stderr}");
    String::from_utf8(output.stdout).expect("UTF-8 output")
}

/// Runs a Python script that prints one JSON document and parses it.
pub fn python_json(script: &str, args: &[&str]) -> serde_json::Value {
    let out = run_python(script, args);
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

/// Generates `patients` synthetic patients into `dir` (NDJSON per type).
pub fn synth(dir: &Path, patients: u64, seed: u64) -> synth::SynthReport {
    synth::generate(&synth::SynthOptions::new(patients, seed, dir), &|_| {}).expect("synth runs")
}

/// Generates an update batch of `new_patients` against the output in `base`.
pub fn synth_update(base: &Path, dir: &Path, new_patients: u64) -> synth::SynthReport {
    let mut options = synth::SynthOptions::new(new_patients, 0, dir);
    options.update_of = Some(base.to_path_buf());
    synth::generate(&options, &|_| {}).expect("synth update runs")
}

/// The NDJSON lines of every `Type.NNN.ndjson` file in `dir`, in file order.
pub fn ndjson_lines(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "ndjson"))
        .collect();
    files.sort();
    let mut lines = Vec::new();
    for file in files {
        let ty = file
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .split('.')
            .next()
            .unwrap()
            .to_string();
        let reader = std::io::BufReader::new(std::fs::File::open(&file).unwrap());
        for line in reader.split(b'\n') {
            let line = line.unwrap();
            if !line.is_empty() {
                lines.push((ty.clone(), line));
            }
        }
    }
    lines
}

/// The `(type, id)` pairs listed as deleted in an update batch's `deleted/` Bundles.
pub fn deleted_in(dir: &Path) -> Vec<(String, String)> {
    let Ok(entries) = std::fs::read_dir(dir.join("deleted")) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in entries {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let bundle: serde_json::Value = serde_json::from_str(line).unwrap();
            for e in bundle["entry"].as_array().into_iter().flatten() {
                if e["request"]["method"] == "DELETE" {
                    let url = e["request"]["url"].as_str().unwrap();
                    let (ty, id) = url.split_once('/').unwrap();
                    out.push((ty.to_string(), id.to_string()));
                }
            }
        }
    }
    out
}

/// Whether emulator tests may be skipped when their tool is missing.
pub fn may_skip_emulators() -> bool {
    std::env::var("HAVEN_SKIP_EMULATORS").is_ok_and(|v| v == "1")
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process killed (by its own id) when dropped.
pub struct Emulator {
    child: Child,
    _workspace: Option<tempfile::TempDir>,
    /// The port it listens on.
    pub port: u16,
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_for_port(child: &mut Child, port: u16, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            panic!("{name} exited with {status}: {err}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    panic!("{name} did not listen on port {port} within 60 s");
}

/// Finds a tool on PATH (or in `env`), or explains how to install it; `None` when it is
/// missing and `HAVEN_SKIP_EMULATORS=1`.
fn find_tool(env: &str, names: &[&str], install: &str) -> Option<PathBuf> {
    if let Ok(path) = std::env::var(env) {
        return Some(PathBuf::from(path));
    }
    let paths = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&paths) {
        for name in names {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    if may_skip_emulators() {
        eprintln!(
            "skipping: {} not found and HAVEN_SKIP_EMULATORS=1",
            names[0]
        );
        return None;
    }
    panic!(
        "{} not found: install it with `{install}` (or set {env}), or set HAVEN_SKIP_EMULATORS=1",
        names[0]
    );
}

/// The well-known Azurite account.
pub const AZURITE_ACCOUNT: &str = "devstoreaccount1";
/// The well-known Azurite key.
pub const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// Starts Azurite's blob service on a free port; `None` when skipped.
pub fn start_azurite() -> Option<Emulator> {
    let tool = find_tool(
        "HAVEN_AZURITE",
        &["azurite-blob"],
        "npm install -g azurite@3.35.0",
    )?;
    let port = free_port();
    let workspace = tempfile::tempdir().unwrap();
    let mut child = Command::new(tool)
        .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
        .args([
            "--inMemoryPersistence",
            "--disableTelemetry",
            "--skipApiVersionCheck",
            "--loose",
        ])
        .current_dir(workspace.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("azurite starts");
    wait_for_port(&mut child, port, "azurite");
    Some(Emulator {
        child,
        _workspace: Some(workspace),
        port,
    })
}

/// Store options for Azurite on `port`.
pub fn azurite_options(port: u16) -> BTreeMap<String, String> {
    [
        ("azure_storage_account_name", AZURITE_ACCOUNT.to_string()),
        ("azure_storage_account_key", AZURITE_KEY.to_string()),
        (
            "azure_storage_endpoint",
            format!("http://127.0.0.1:{port}/{AZURITE_ACCOUNT}"),
        ),
        ("allow_http", "true".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// Creates a blob container on Azurite with a Shared Key signed request.
pub fn azurite_create_container(port: u16, container: &str) {
    use base64::Engine as _;
    use hmac::{KeyInit, Mac};
    let date = httpdate_now();
    let version = "2021-08-06";
    let to_sign = format!(
        "PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:{version}\n/{AZURITE_ACCOUNT}/{AZURITE_ACCOUNT}/{container}\nrestype:container"
    );
    let key = base64::engine::general_purpose::STANDARD
        .decode(AZURITE_KEY)
        .unwrap();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(to_sign.as_bytes());
    let signature = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    let request = format!(
        "PUT /{AZURITE_ACCOUNT}/{container}?restype=container HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
         x-ms-date: {date}\r\nx-ms-version: {version}\r\n\
         Authorization: SharedKey {AZURITE_ACCOUNT}:{signature}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response.lines().next().unwrap_or_default();
    assert!(
        status.contains(" 201 "),
        "container creation failed: {status}"
    );
}

/// The current time in the HTTP date format.
fn httpdate_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][days.rem_euclid(7) as usize];
    // Civil date from days since 1970-01-01.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{weekday}, {day:02} {} {year} {:02}:{:02}:{:02} GMT",
        months[(month - 1) as usize],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Starts moto's S3 server on a free port; `None` when skipped.
pub fn start_moto() -> Option<Emulator> {
    let tool = find_tool(
        "HAVEN_MOTO_SERVER",
        &["moto_server"],
        "pip install 'moto[server]==5.2.5'",
    )?;
    let port = free_port();
    let mut child = Command::new(tool)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("moto_server starts");
    wait_for_port(&mut child, port, "moto_server");
    Some(Emulator {
        child,
        _workspace: None,
        port,
    })
}

/// Store options for moto on `port`.
pub fn moto_options(port: u16) -> BTreeMap<String, String> {
    [
        ("aws_endpoint", format!("http://127.0.0.1:{port}")),
        ("aws_allow_http", "true".to_string()),
        ("aws_access_key_id", "testing".to_string()),
        ("aws_secret_access_key", "testing".to_string()),
        ("aws_region", "us-east-1".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// Creates a bucket on moto (with boto3, which moto brings).
pub fn moto_create_bucket(port: u16, bucket: &str) {
    run_python(
        "import sys, boto3\n\
         s3 = boto3.client('s3', endpoint_url=sys.argv[1], aws_access_key_id='testing',\n\
             aws_secret_access_key='testing', region_name='us-east-1')\n\
         s3.create_bucket(Bucket=sys.argv[2])",
        &[&format!("http://127.0.0.1:{port}"), bucket],
    );
}
