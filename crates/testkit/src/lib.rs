//! Test helpers shared by Haven's crates (a dev-dependency only, never published).
//!
//! - [`Azurite`] (Azure Blob Storage) and [`Moto`] (S3) emulators, each started by the test
//!   on a free 127.0.0.1 port and killed when dropped, with a way to create a container or a
//!   bucket and the `object_store` option map that reaches them;
//! - [`Python`]: an interpreter with the reader modules a test needs (pyarrow, DuckDB,
//!   deltalake), to run a snippet and read what it prints;
//! - [`may_skip_emulators`], [`free_port`];
//! - [`docs`]: the documentation's shell blocks, run in order against the real binary.
//!
//! Where the tools come from (`.ci/run` installs them all):
//!
//! | tool | found at | install |
//! |---|---|---|
//! | Azurite | `$HAVEN_AZURITE`, else `azurite-blob` on `PATH` | [`AZURITE_INSTALL`] |
//! | moto | `$HAVEN_MOTO_SERVER`, else `moto_server` on `PATH` | [`PIP_INSTALL`] |
//! | Python | `$HAVEN_PYTHON`, else `python3` on `PATH` | [`PIP_INSTALL`] |
//!
//! A missing tool fails the test with these instructions, unless `HAVEN_SKIP_EMULATORS=1`,
//! where the helper prints why and returns `None` so the test can return early:
//!
//! ```no_run
//! let Some(moto) = testkit::Moto::start() else { return };
//! moto.create_bucket("lake");
//! let options = moto.object_store_options();
//! # let _ = options;
//! ```

pub mod docs;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How `.ci/run` installs Azurite (its last version that runs on Node.js 20).
pub const AZURITE_INSTALL: &str = "npm install azurite@3.35.0";

/// How `.ci/run` installs moto and the Python readers.
pub const PIP_INSTALL: &str =
    "pip install pyarrow==26.0.1 duckdb==2.0.1 deltalake==1.6.6 'moto[server]==5.2.5'";

/// How long an emulator may take to listen on its port.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Whether a test may skip when an emulator or Python reader is missing
/// (`HAVEN_SKIP_EMULATORS=1`); otherwise a missing tool fails the test.
pub fn may_skip_emulators() -> bool {
    std::env::var("HAVEN_SKIP_EMULATORS").is_ok_and(|v| v == "1")
}

/// A free TCP port on 127.0.0.1 (free when asked; the caller binds it soon after).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("an ephemeral port on 127.0.0.1")
        .port()
}

/// Finds a tool: the path in environment variable `env`, else the first of `names` on
/// `PATH`. When it is missing, returns `None` (printing why) if [`may_skip_emulators`], and
/// otherwise panics with `install` as the fix.
pub fn find_tool(env: &str, names: &[&str], install: &str) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(env).map(PathBuf::from) {
        if path.is_file() {
            return Some(path);
        }
        missing(
            &format!("{env}={} is not a file", path.display()),
            env,
            install,
        );
        return None;
    }
    let paths = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&paths)
        .flat_map(|dir| names.iter().map(move |name| dir.join(name)))
        .find(|candidate| candidate.is_file());
    if found.is_none() {
        missing(&format!("{} not found", names.join(" or ")), env, install);
    }
    found
}

/// Skips (prints) or fails (panics) for a missing tool.
fn missing(what: &str, env: &str, install: &str) {
    if may_skip_emulators() {
        eprintln!("skipping: {what} (HAVEN_SKIP_EMULATORS=1)");
    } else {
        panic!(
            "{what}: install it with `{install}` (or set {env}), or set HAVEN_SKIP_EMULATORS=1 to skip"
        );
    }
}

/// A server process started by a test, listening on 127.0.0.1, killed (by its own process
/// id) when dropped. Its output goes to a log file in its own temporary folder.
#[derive(Debug)]
pub struct Emulator {
    child: Child,
    folder: tempfile::TempDir,
    port: u16,
    name: String,
}

impl Emulator {
    /// Starts `tool` with `args` in a fresh temporary folder and waits (up to a minute) until
    /// it accepts connections on 127.0.0.1:`port`; panics with its log when it exits first.
    pub fn spawn(name: &str, tool: &Path, args: &[String], port: u16) -> Emulator {
        let folder = tempfile::tempdir().expect("a temporary folder");
        let log_path = folder.path().join("emulator.log");
        let log = std::fs::File::create(&log_path).expect("the emulator's log file");
        let child = Command::new(tool)
            .args(args)
            .current_dir(folder.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("the log file handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("{name} ({}) does not start: {e}", tool.display()));
        let mut emulator = Emulator {
            child,
            folder,
            port,
            name: name.to_string(),
        };
        emulator.wait_until_listening();
        emulator
    }

    fn wait_until_listening(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("{} exited with {status}:\n{}", self.name, self.log());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "{} did not listen on 127.0.0.1:{} within {} s:\n{}",
            self.name,
            self.port,
            START_TIMEOUT.as_secs(),
            self.log()
        );
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// What it printed so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.folder.path().join("emulator.log")).unwrap_or_default()
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends one raw HTTP/1.1 request to 127.0.0.1:`port` and returns the response's status code.
fn http_status(port: u16, request: &str) -> u16 {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to the emulator");
    stream
        .write_all(request.as_bytes())
        .expect("send the request");
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .expect("read the response");
    let head = String::from_utf8_lossy(&response);
    head.split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {head:.200}"))
}

/// Azurite's blob service (Azure Blob Storage emulator), in memory, on a free port.
///
/// `object_store` reaches an emulator through its emulator mode, which takes the endpoint
/// from the environment variable [`Azurite::URL_ENV`] only (the emulator mode is also what
/// makes listings skip `startFrom`, which Azurite lacks and Delta's log listing needs). A
/// test binary that uses Azurite should therefore hold one such test, which sets
/// `URL_ENV` to [`Azurite::endpoint`] before starting any thread of its own.
#[derive(Debug)]
pub struct Azurite {
    emulator: Emulator,
}

impl Azurite {
    /// The emulator's well-known account.
    pub const ACCOUNT: &str = "devstoreaccount1";
    /// The emulator's well-known account key.
    pub const KEY: &str =
        "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
    /// The environment variable `object_store`'s (and Python deltalake's) emulator mode reads
    /// the blob endpoint from.
    pub const URL_ENV: &str = "AZURITE_BLOB_STORAGE_URL";

    /// Starts `azurite-blob` (`--inMemoryPersistence --disableTelemetry`) on a free port;
    /// `None` when it is missing and [`may_skip_emulators`].
    pub fn start() -> Option<Azurite> {
        let tool = find_tool("HAVEN_AZURITE", &["azurite-blob"], AZURITE_INSTALL)?;
        let port = free_port();
        let args = [
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            &port.to_string(),
            "--inMemoryPersistence",
            "--disableTelemetry",
            "--skipApiVersionCheck",
            "--loose",
        ]
        .map(String::from);
        Some(Azurite {
            emulator: Emulator::spawn("azurite-blob", &tool, &args, port),
        })
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.emulator.port()
    }

    /// `http://127.0.0.1:<port>`: the value for [`Azurite::URL_ENV`].
    pub fn endpoint(&self) -> String {
        self.emulator.endpoint()
    }

    /// Creates a blob container (a Shared Key signed request); panics unless Azurite answers
    /// 201 Created.
    pub fn create_container(&self, container: &str) {
        use base64::Engine as _;
        use hmac::{KeyInit, Mac};
        let date = http_date(std::time::SystemTime::now());
        let version = "2021-08-06";
        let account = Self::ACCOUNT;
        let to_sign = format!(
            "PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:{version}\n/{account}/{account}/{container}\nrestype:container"
        );
        let key = base64::engine::general_purpose::STANDARD
            .decode(Self::KEY)
            .expect("the well-known key is base64");
        let mut mac =
            hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).expect("HMAC takes any key length");
        mac.update(to_sign.as_bytes());
        let signature =
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        let request = format!(
            "PUT /{account}/{container}?restype=container HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
             x-ms-date: {date}\r\nx-ms-version: {version}\r\n\
             Authorization: SharedKey {account}:{signature}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            port = self.port()
        );
        let status = http_status(self.port(), &request);
        assert_eq!(status, 201, "creating container {container} on Azurite");
    }

    /// `object_store` options for this emulator (emulator mode, well-known account and key);
    /// they reach this instance once [`Azurite::URL_ENV`] holds [`Azurite::endpoint`].
    pub fn object_store_options(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("use_emulator".to_string(), "true".to_string()),
            ("account_name".to_string(), Self::ACCOUNT.to_string()),
            ("account_key".to_string(), Self::KEY.to_string()),
        ])
    }
}

/// moto's server (an S3 emulator), in memory, on a free port.
#[derive(Debug)]
pub struct Moto {
    emulator: Emulator,
}

impl Moto {
    /// The access key id (and secret) moto accepts.
    pub const CREDENTIAL: &str = "testing";
    /// The region the buckets are made in.
    pub const REGION: &str = "us-east-1";

    /// Starts `moto_server` on a free port; `None` when it is missing and
    /// [`may_skip_emulators`].
    pub fn start() -> Option<Moto> {
        let tool = find_tool("HAVEN_MOTO_SERVER", &["moto_server"], PIP_INSTALL)?;
        let port = free_port();
        let args = ["-H", "127.0.0.1", "-p", &port.to_string()].map(String::from);
        Some(Moto {
            emulator: Emulator::spawn("moto_server", &tool, &args, port),
        })
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.emulator.port()
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        self.emulator.endpoint()
    }

    /// Creates a bucket; panics unless moto answers 200.
    pub fn create_bucket(&self, bucket: &str) {
        let request = format!(
            "PUT /{bucket} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.port()
        );
        let status = http_status(self.port(), &request);
        assert_eq!(status, 200, "creating bucket {bucket} on moto");
    }

    /// `object_store` options for this emulator (endpoint, plain HTTP, test credentials,
    /// region); Python deltalake takes the same map as `storage_options`.
    pub fn object_store_options(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("aws_endpoint".to_string(), self.endpoint()),
            ("aws_allow_http".to_string(), "true".to_string()),
            (
                "aws_access_key_id".to_string(),
                Self::CREDENTIAL.to_string(),
            ),
            (
                "aws_secret_access_key".to_string(),
                Self::CREDENTIAL.to_string(),
            ),
            ("aws_region".to_string(), Self::REGION.to_string()),
        ])
    }
}

/// A Python interpreter that imports the modules a test asked for.
#[derive(Debug, Clone)]
pub struct Python {
    program: PathBuf,
}

impl Python {
    /// Finds the interpreter (`$HAVEN_PYTHON`, else `python3`) and checks it imports every
    /// module of `modules` (such as `["pyarrow", "duckdb", "deltalake"]`). When it or a
    /// module is missing: `None` (printing why) if [`may_skip_emulators`], else a panic with
    /// install instructions.
    pub fn find(modules: &[&str]) -> Option<Python> {
        let program =
            PathBuf::from(std::env::var_os("HAVEN_PYTHON").unwrap_or_else(|| "python3".into()));
        let check = format!("import {}", modules.join(", "));
        let ok = match Command::new(&program).arg("-c").arg(&check).output() {
            Ok(output) if output.status.success() => true,
            Ok(output) => {
                let stderr = String::from_utf8_lossy(&output.stderr);
                let reason = stderr.lines().last().unwrap_or_default();
                missing(
                    &format!("{} cannot `{check}` ({reason})", program.display()),
                    "HAVEN_PYTHON",
                    PIP_INSTALL,
                );
                false
            }
            Err(e) => {
                missing(
                    &format!("{} does not run ({e})", program.display()),
                    "HAVEN_PYTHON",
                    PIP_INSTALL,
                );
                false
            }
        };
        ok.then_some(Python { program })
    }

    /// Runs `script` (`python -c script args…`) and returns its standard output; panics with
    /// its standard error when it fails.
    pub fn run(&self, script: &str, args: &[&str]) -> String {
        // Once the snippet has succeeded, leave without interpreter teardown: the native
        // threads of the readers (deltalake's runtime) now and then abort the process while
        // Python shuts down ("terminate called without an active exception"), after the
        // snippet's work is done. A snippet that raises still exits 1 with its traceback.
        let script = format!(
            "{script}\nimport os as _os, sys as _sys\n_sys.stdout.flush()\n_sys.stderr.flush()\n_os._exit(0)\n"
        );
        let output = Command::new(&self.program)
            .arg("-c")
            .arg(&script)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("{} does not run: {e}", self.program.display()));
        assert!(
            output.status.success(),
            "the Python snippet failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).expect("the snippet prints UTF-8")
    }

    /// Runs `script`, which prints one JSON document, and parses it.
    pub fn json(&self, script: &str, args: &[&str]) -> serde_json::Value {
        let out = self.run(script, args);
        serde_json::from_str(out.trim())
            .unwrap_or_else(|e| panic!("the snippet did not print one JSON document ({e}): {out}"))
    }
}

/// `t` in the HTTP date format (`Sat, 28 Nov 2026 15:04:05 GMT`).
fn http_date(t: std::time::SystemTime) -> String {
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][days.rem_euclid(7) as usize];
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates() {
        let at = |secs| http_date(std::time::UNIX_EPOCH + Duration::from_secs(secs));
        assert_eq!(at(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(at(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(at(1_795_878_245), "Sat, 28 Nov 2026 15:04:05 GMT");
    }

    #[test]
    fn emulators_create_containers_and_buckets() {
        if let Some(azurite) = Azurite::start() {
            azurite.create_container("one");
            let dup = std::panic::catch_unwind(|| azurite.create_container("one"));
            assert!(dup.is_err(), "a second create of one container is refused");
        }
        if let Some(moto) = Moto::start() {
            moto.create_bucket("one");
            assert!(
                moto.object_store_options()["aws_endpoint"].ends_with(&moto.port().to_string())
            );
        }
    }

    #[test]
    fn python_runs_snippets() {
        let Some(python) = Python::find(&["json"]) else {
            return;
        };
        let got = python.json(
            "import sys, json; print(json.dumps(sys.argv[1:]))",
            &["a", "b"],
        );
        assert_eq!(got, serde_json::json!(["a", "b"]));
        let failed = std::panic::catch_unwind(|| python.run("raise SystemExit(3)", &[]));
        assert!(failed.is_err());
        assert!(
            std::panic::catch_unwind(|| Python::find(&["haven_no_such_module"])).is_err()
                || may_skip_emulators()
        );
    }
}
