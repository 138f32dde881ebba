//! Running the documentation: every fenced `sh` block (and `console` block, whose output is
//! checked) of a Markdown file, in order, as a user would type it, against the real `haven`.
//!
//! A block preceded by the line `<!-- docs-test: skip (reason) -->` is only illustrative: it is
//! listed by name (`FILE:LINE`) with its reason and not run. The others run one after the other
//! in one working folder per file, each as a `bash` script with `set -euo pipefail`:
//! - `haven` on `PATH` is the binary under test, and `cargo run --release -p haven --` stands
//!   for it (the test does not build a second Haven); `haven demo` reads the working folder's
//!   small `data/synthea-covid-120/` (below) instead of the whole bundled data;
//! - port 8080 becomes a free port, `HOME` is the working folder (so `~/.local/share/haven`,
//!   `haven serve`'s default store, is a fresh one), and the working folder holds the
//!   repository's `testdata/`, a small `data/synthea-covid-120/` (the hospital and
//!   practitioner Bundles and a few patients, so that a run takes seconds, not minutes) and
//!   `python/`;
//! - a `haven serve` line runs in the background (on the free port when it names none): the
//!   block goes on once the server answers, and every server is stopped when the file's
//!   blocks are done;
//! - in a `console` block, each `$ command` runs and its standard output must be the lines
//!   shown under it.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The marker that makes the next block illustrative.
const SKIP_MARKER: &str = "<!-- docs-test: skip (";

/// How long one block may run.
const BLOCK_TIMEOUT: Duration = Duration::from_secs(600);

/// A runnable block of a Markdown file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// `FILE:LINE` of the opening fence.
    pub name: String,
    /// `sh` or `console`.
    pub language: String,
    /// The block's lines, without the fence's indentation.
    pub lines: Vec<String>,
    /// Why it is skipped, when the skip marker precedes it.
    pub skip: Option<String>,
}

/// The `sh` and `console` blocks of `markdown` (named after `file`), in order.
pub fn blocks(file: &str, markdown: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut lines = markdown.lines().enumerate();
    let mut previous = "";
    while let Some((number, line)) = lines.next() {
        let trimmed = line.trim_start();
        let Some(language) = trimmed.strip_prefix("```") else {
            if !trimmed.is_empty() {
                previous = trimmed;
            }
            continue;
        };
        let indent = line.len() - trimmed.len();
        let mut body = Vec::new();
        for (_, line) in lines.by_ref() {
            if line.trim_start().starts_with("```") {
                break;
            }
            body.push(line.get(indent..).unwrap_or(line.trim_start()).to_owned());
        }
        let language = language.trim();
        if language == "sh" || language == "console" {
            let skip = previous
                .strip_prefix(SKIP_MARKER)
                .and_then(|rest| rest.strip_suffix(") -->"))
                .map(str::to_owned);
            blocks.push(Block {
                name: format!("{file}:{}", number + 1),
                language: language.to_owned(),
                lines: body,
                skip,
            });
        }
        previous = "";
    }
    blocks
}

/// Where the blocks of one file run.
pub struct Workspace {
    dir: tempfile::TempDir,
    port: u16,
    path: String,
}

impl Workspace {
    /// A fresh working folder for the blocks of one file, with `haven` (the binary at
    /// `haven`) on `PATH` and the repository's data (see the module documentation).
    pub fn new(repository: &Path, haven: &Path) -> Workspace {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let bin = dir.path().join(".bin");
        std::fs::create_dir(&bin).expect("the bin folder");
        symlink(haven, &bin.join("haven"));
        for name in ["testdata", "python"] {
            symlink(&repository.join(name), &dir.path().join(name));
        }
        let synthea = dir.path().join("data/synthea-covid-120");
        std::fs::create_dir_all(&synthea).expect("the data folder");
        let source = repository.join("data/synthea-covid-120");
        let mut names: Vec<String> = std::fs::read_dir(&source)
            .expect("the Synthea data")
            .map(|entry| entry.expect("an entry").file_name().into_string().unwrap())
            .filter(|name| name.ends_with(".json.bz2"))
            .collect();
        names.sort();
        let (shared, patients): (Vec<_>, Vec<_>) =
            names.into_iter().partition(|n| n.contains("Information"));
        for name in shared.iter().chain(patients.iter().take(3)) {
            symlink(&source.join(name), &synthea.join(name));
        }
        let path = format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        Workspace {
            dir,
            port: crate::free_port(),
            path,
        }
    }

    /// The working folder.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Runs one block (see the module documentation); `Err` with the block's name, its script
    /// and its output when it fails.
    pub fn run(&self, block: &Block) -> Result<(), String> {
        let script = self.script(block);
        let started = Instant::now();
        let mut child = Command::new("bash")
            .arg("-c")
            .arg(&script)
            .current_dir(self.path())
            .env("HOME", self.path())
            .env("PATH", &self.path)
            .env_remove("HAVEN_HOME")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|error| format!("{}: bash does not start: {error}", block.name))?;
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let out = std::thread::spawn(move || read_all(stdout));
        let err = std::thread::spawn(move || read_all(stderr));
        let status = loop {
            if let Some(status) = child.try_wait().expect("the block's status") {
                break Some(status);
            }
            if started.elapsed() > BLOCK_TIMEOUT {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let stdout = out.join().unwrap_or_default();
        let stderr = err.join().unwrap_or_default();
        let failure = |why: &str| {
            format!(
                "{}: {why}\n--- script\n{script}\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
                block.name
            )
        };
        match status {
            None => Err(failure(&format!("still running after {BLOCK_TIMEOUT:?}"))),
            Some(status) if !status.success() => Err(failure(&format!("failed ({status})"))),
            Some(_) => Ok(()),
        }
    }

    /// The bash script of a block.
    fn script(&self, block: &Block) -> String {
        let mut script = String::from(
            "set -euo pipefail\n\
             wait_for_port() { for _ in $(seq 600); do \
             (echo >/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.1; done; \
             echo \"nothing listens on port $1\" >&2; return 1; }\n\
             check_output() { if [ \"$1\" != \"$2\" ]; then \
             printf 'expected:\\n%s\\ngot:\\n%s\\n' \"$2\" \"$1\" >&2; return 1; fi; }\n",
        );
        let lines = self.substituted(&block.lines);
        if block.language == "console" {
            let mut commands: Vec<(String, Vec<String>)> = Vec::new();
            for line in lines {
                match line.strip_prefix("$ ") {
                    Some(command) => commands.push((command.to_owned(), Vec::new())),
                    None => {
                        if let Some((_, expected)) = commands.last_mut() {
                            expected.push(line);
                        }
                    }
                }
            }
            for (command, expected) in commands {
                let _ = writeln!(
                    script,
                    "check_output \"$({command})\" {}",
                    quoted(&expected.join("\n"))
                );
            }
            return script;
        }
        for line in joined(&lines) {
            if line.trim_start().starts_with("haven serve") {
                let mut command = without_comment(&line).to_owned();
                if !command.contains("--listen") {
                    command.push_str(&format!(" --listen 127.0.0.1:{}", self.port));
                }
                let _ = writeln!(
                    script,
                    "{command} >>.serve.log 2>&1 &\necho $! >>.servers\nwait_for_port {}",
                    self.port
                );
            } else {
                script.push_str(&line);
                script.push('\n');
            }
        }
        script
    }

    /// The lines with the documented port and the `cargo run` of Haven substituted.
    fn substituted(&self, lines: &[String]) -> Vec<String> {
        lines
            .iter()
            .map(|line| {
                line.replace(":8080", &format!(":{}", self.port))
                    .replace("cargo run --release -p haven --", "haven")
                    .replace("haven demo", "haven demo --data data/synthea-covid-120")
            })
            .collect()
    }
}

impl Drop for Workspace {
    /// Stops the servers the blocks started (by their process ids).
    fn drop(&mut self) {
        let pids = std::fs::read_to_string(self.path().join(".servers")).unwrap_or_default();
        for pid in pids.split_whitespace() {
            let _ = Command::new("kill").arg(pid).status();
        }
        for pid in pids.split_whitespace() {
            let gone = Path::new("/proc").join(pid);
            let started = Instant::now();
            while gone.exists() && started.elapsed() < Duration::from_secs(10) {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// Reads a pipe to its end, as text.
fn read_all(pipe: Option<impl std::io::Read>) -> String {
    let mut text = String::new();
    if let Some(mut pipe) = pipe {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        text = String::from_utf8_lossy(&bytes).into_owned();
    }
    text
}

/// Lines continued with a trailing `\` joined into one.
fn joined(lines: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut continued = false;
    for line in lines {
        if continued && let Some(last) = out.last_mut() {
            last.push('\n');
            last.push_str(line);
        } else {
            out.push(line.clone());
        }
        continued = line.ends_with('\\');
    }
    out
}

/// A command line without its trailing `# comment`.
fn without_comment(line: &str) -> &str {
    match line.find(" #") {
        Some(at) => line[..at].trim_end(),
        None => line.trim_end(),
    }
}

/// `text` as one single-quoted shell word.
fn quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

fn symlink(target: &Path, link: &Path) {
    std::os::unix::fs::symlink(target, link)
        .unwrap_or_else(|error| panic!("cannot link {}: {error}", link.display()));
}

/// The Markdown files whose blocks are run: README.md and docs/*.md, sorted.
pub fn documents(repository: &Path) -> Vec<PathBuf> {
    let mut files = vec![repository.join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(repository.join("docs"))
        .expect("the docs folder")
        .map(|entry| entry.expect("an entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_found_in_order_with_their_skip_reasons() {
        let markdown = "# T\n\n```sh\nhaven a\n```\n\n<!-- docs-test: skip (needs a cloud) -->\n  ```sh\n  haven b \\\n    --c\n  ```\n```toml\nx = 1\n```\n```console\n$ haven d\nout\n```\n";
        let found = blocks("T.md", markdown);
        assert_eq!(found.len(), 3);
        assert_eq!(found[0].name, "T.md:3");
        assert_eq!(found[0].skip, None);
        assert_eq!(found[1].skip.as_deref(), Some("needs a cloud"));
        assert_eq!(found[1].lines, ["haven b \\", "  --c"]);
        assert_eq!(joined(&found[1].lines), ["haven b \\\n  --c"]);
        assert_eq!(found[2].language, "console");
    }

    #[test]
    fn comments_are_cut_from_server_lines() {
        assert_eq!(
            without_comment("haven serve   # a hub on 127.0.0.1:8080"),
            "haven serve"
        );
    }
}
