//! Throwaway PostgreSQL databases for tests and benchmarks (this crate's and the server's).
//!
//! [`database`] creates a new, empty database, on:
//! - the server that `HAVEN_TEST_POSTGRES_URL` points at, when set (its user must be allowed
//!   to create databases);
//! - otherwise a server started once per test process from the PostgreSQL binaries (`initdb`,
//!   `postgres`) found in `HAVEN_POSTGRES_BIN`, `/usr/lib/postgresql/*/bin` (newest first) or
//!   `PATH`: a fresh cluster in a temporary folder, listening on a free 127.0.0.1 port, run as
//!   user `postgres` when the tests run as root (PostgreSQL refuses to run as root). A
//!   watchdog shell holds the read end of a pipe from the test process: when the process
//!   exits, however it exits, the shell stops the server and removes its folder.
//!
//! When neither is available `database` panics, saying what to install, unless
//! `HAVEN_SKIP_POSTGRES=1` is set: then (and whenever that variable is set) it returns `None`
//! and the caller skips its PostgreSQL tests.

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use postgres::{Client, NoTls};

/// How long a started server may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Starts a cluster and waits for the end of its standard input; `$1` is the binaries'
/// folder, `$2` the cluster's folder, `$3` the port.
const SERVER_SCRIPT: &str = r#"
bin=$1 dir=$2 port=$3
if ! "$bin/initdb" -D "$dir/data" -U haven -A trust -E UTF8 --locale=C >"$dir/initdb.log" 2>&1; then
    cat "$dir/initdb.log" >&2
    rm -rf "$dir"
    exit 1
fi
"$bin/postgres" -D "$dir/data" -p "$port" -k "$dir" -c listen_addresses=127.0.0.1 \
    -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300 \
    >"$dir/postgres.log" 2>&1 &
pid=$!
cat >/dev/null
kill -INT "$pid" 2>/dev/null
wait "$pid"
rm -rf "$dir"
"#;

/// A database created for one test; dropped (with its connections) when this value is.
pub struct TestDatabase {
    url: String,
    admin_url: String,
    name: String,
}

impl TestDatabase {
    /// The database's `postgresql://` URL.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Best effort: a database left behind on a throwaway server goes with the server.
        if let Ok(mut admin) = Client::connect(&self.admin_url, NoTls) {
            let _ = admin.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}

/// A running server: the URL of its `postgres` database, and the watchdog that stops it.
struct Server {
    admin_url: String,
    _watchdog: Option<Mutex<Child>>,
}

/// A new empty database, or `None` when `HAVEN_SKIP_POSTGRES=1`. Panics with a clear message
/// when no PostgreSQL is available or the server cannot be started.
pub fn database() -> Option<TestDatabase> {
    if std::env::var("HAVEN_SKIP_POSTGRES").is_ok_and(|v| v == "1") {
        return None;
    }
    static SERVER: OnceLock<Result<Server, String>> = OnceLock::new();
    let server = match SERVER.get_or_init(server) {
        Ok(server) => server,
        Err(message) => panic!("PostgreSQL tests: {message}"),
    };
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    static CREATING: Mutex<()> = Mutex::new(());
    let name = format!(
        "haven_test_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    {
        let _one_at_a_time = CREATING.lock().unwrap_or_else(PoisonError::into_inner);
        let mut admin = Client::connect(&server.admin_url, NoTls)
            .unwrap_or_else(|error| panic!("PostgreSQL tests: cannot connect: {error}"));
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap_or_else(|error| panic!("PostgreSQL tests: cannot create a database: {error}"));
    }
    Some(TestDatabase {
        url: with_database(&server.admin_url, &name),
        admin_url: server.admin_url.clone(),
        name,
    })
}

/// `url` with its database name replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.find('?') {
        Some(at) => url.split_at(at),
        None => (url, ""),
    };
    let authority = base.find("://").map_or(0, |at| at + 3);
    let end = base[authority..]
        .find('/')
        .map_or(base.len(), |at| authority + at);
    format!("{}/{name}{query}", &base[..end])
}

fn server() -> Result<Server, String> {
    if let Ok(url) = std::env::var("HAVEN_TEST_POSTGRES_URL") {
        return Ok(Server {
            admin_url: url,
            _watchdog: None,
        });
    }
    let bin = find_binaries().ok_or_else(|| {
        "PostgreSQL's initdb and postgres were not found (in HAVEN_POSTGRES_BIN, \
         /usr/lib/postgresql/*/bin or PATH). Install them (Debian: `apt-get install -y \
         postgresql`), or set HAVEN_TEST_POSTGRES_URL to a server, or set \
         HAVEN_SKIP_POSTGRES=1 to skip the PostgreSQL tests"
            .to_owned()
    })?;
    start(&bin)
}

fn has_binaries(dir: &Path) -> bool {
    dir.join("initdb").is_file() && dir.join("postgres").is_file()
}

fn find_binaries() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("HAVEN_POSTGRES_BIN") {
        return Some(PathBuf::from(dir)).filter(|dir| has_binaries(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .collect();
    versions.sort_by_key(|(version, _)| std::cmp::Reverse(*version));
    let path = std::env::var_os("PATH").unwrap_or_default();
    versions
        .into_iter()
        .map(|(_, dir)| dir)
        .chain(std::env::split_paths(&path))
        .find(|dir| has_binaries(dir))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .map_err(|error| format!("no free local port: {error}"))
}

fn start(bin: &Path) -> Result<Server, String> {
    let root = is_root();
    let parent = if root {
        PathBuf::from("/tmp")
    } else {
        std::env::temp_dir()
    };
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos();
    let dir = parent.join(format!("haven-pg-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|error| format!("{}: {error}", dir.display()))?;
    let port = free_port()?;
    let mut command = if root {
        let chown = Command::new("chown")
            .arg("postgres:")
            .arg(&dir)
            .status()
            .map_err(|error| format!("chown: {error}"))?;
        if !chown.success() {
            return Err(
                "running as root needs a `postgres` user to run the server as \
                 (the Debian package creates it)"
                    .to_owned(),
            );
        }
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--", "sh"]);
        command
    } else {
        Command::new("sh")
    };
    let mut child = command
        .arg("-c")
        .arg(SERVER_SCRIPT)
        .arg("sh")
        .arg(bin)
        .arg(&dir)
        .arg(port.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|error| format!("cannot start the server: {error}"))?;
    let admin_url = format!("postgresql://haven@127.0.0.1:{port}/postgres");
    let started = Instant::now();
    loop {
        if Client::connect(&admin_url, NoTls).is_ok() {
            return Ok(Server {
                admin_url,
                _watchdog: Some(Mutex::new(child)),
            });
        }
        if let Ok(Some(status)) = child.try_wait() {
            let mut output = String::new();
            if let Some(mut stderr) = child.stderr.take() {
                let _ = stderr.read_to_string(&mut output);
            }
            return Err(format!("the server setup exited ({status}): {output}"));
        }
        if started.elapsed() > START_TIMEOUT {
            let log = std::fs::read_to_string(dir.join("postgres.log")).unwrap_or_default();
            return Err(format!(
                "the server did not accept connections within {START_TIMEOUT:?}: {log}"
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn database_names_are_replaced_in_urls() {
        assert_eq!(
            with_database("postgresql://u:p@h:5/postgres?sslmode=disable", "t1"),
            "postgresql://u:p@h:5/t1?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h", "t1"), "postgres://h/t1");
    }
}
