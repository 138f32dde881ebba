//! The haven-spark suite (`python/tests`, pytest) on every engine: classic PySpark `local[2]`
//! and Spark Connect `local[2]` with the Python in `HAVEN_SPARK_PYTHON`, and Sail (in its local
//! and its local-cluster mode) with the Python in `HAVEN_SAIL_PYTHON`, each holding the built `haven-spark` wheel. Every engine's
//! sorted output must equal this build's `haven deid` output byte for byte. A missing Python
//! fails the test unless `HAVEN_SKIP_EMULATORS=1`.

use std::path::Path;
use std::process::Command;

/// How the test Pythons are made (the wheel, PySpark, Sail).
const INSTALL: &str = "scripts/spark-env.sh";

/// Runs the pytest suite on `engine` with the Python named by `python_env`.
fn suite(python_env: &str, engine: &str) {
    let Some(python) = testkit::find_tool(python_env, &[], INSTALL) else {
        return;
    };
    let tests = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../python/tests");
    let work = tempfile::tempdir().unwrap();
    // Run outside python/, so `haven_spark` is the installed wheel, not the source folder.
    let output = Command::new(&python)
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "--basetemp"])
        .arg(work.path().join("pytest"))
        .arg(&tests)
        .current_dir(work.path())
        .env("HAVEN_BIN", env!("CARGO_BIN_EXE_haven"))
        .env("HAVEN_SPARK_ENGINE", engine)
        .env("SPARK_LOCAL_IP", "127.0.0.1")
        .output()
        .expect("run pytest");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let summary = stdout.lines().last().unwrap_or_default();
    assert!(
        output.status.success(),
        "haven-spark tests failed on {engine}:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(summary.contains(" passed"), "{summary}");
    assert!(!summary.contains("skipped"), "{summary}");
}

#[test]
fn classic_spark_local() {
    suite("HAVEN_SPARK_PYTHON", "spark");
}

#[test]
fn spark_connect_local() {
    suite("HAVEN_SPARK_PYTHON", "connect");
}

#[test]
fn sail() {
    suite("HAVEN_SAIL_PYTHON", "sail");
}

#[test]
fn sail_local_cluster() {
    suite("HAVEN_SAIL_PYTHON", "sail-cluster");
}
