//! INPUT and OUTPUT turned into jobs, and outputs staged so that they appear only when the whole
//! run succeeds.
//!
//! A file output is first written to a hidden sibling (`.NAME.haven-deid-PID.partial`); a folder
//! output to a hidden staging folder inside it (`OUTPUT/.haven-deid-PID.partial/`). [`Staging`]
//! moves them into place on [`Staging::commit`], and removes them, with the folders the run
//! created, when it is dropped before that (an error, a panic). What a run killed outright
//! (`kill -9`, a power cut) leaves staged is removed by the next run into the same place
//! ([`remove_stale_staging`]): the process id in the name tells a dead run from a live one.
//!
//! OUTPUT names a folder when it is one or when it ends with `/`; its missing folders are
//! created (and removed again if the run fails).

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use fhir::ndjson::Compression;

use super::Failure;

/// The name of the summary written into an output folder.
pub(super) const FOLDER_SUMMARY: &str = "_haven_deid_summary.json";

/// The name of the key file `--generate-keys` writes beside OUTPUT by default.
const DEFAULT_KEY_FILE: &str = "haven-keys.json";

/// Where a job's resources come from.
#[derive(Debug)]
pub(super) enum Input {
    /// NDJSON on standard input.
    Stdin,
    /// An NDJSON file, plain or gzip.
    Ndjson(PathBuf),
    /// A JSON file holding one resource or a Bundle.
    Json(PathBuf),
    /// The lines of a plain NDJSON file that start in the byte range `start..end` (a shard).
    Part {
        /// The file.
        path: PathBuf,
        /// The range's first byte.
        start: u64,
        /// The byte after the range.
        end: u64,
    },
}

/// Where a job's output goes.
#[derive(Debug)]
pub(super) enum Target {
    /// NDJSON on standard output.
    Stdout,
    /// A file, written at `staged` and moved to `path` on commit.
    File {
        /// Where the run writes it.
        staged: PathBuf,
        /// Where it appears when the run succeeds (its name decides format and compression).
        path: PathBuf,
    },
}

impl Target {
    /// Whether the output is one JSON document (its name ends in `.json`) rather than NDJSON.
    pub(super) fn is_json(&self) -> bool {
        matches!(self, Target::File { path, .. } if kind_of(path) == Some(Kind::Json))
    }

    /// The compression its final name asks for.
    pub(super) fn compression(&self) -> Compression {
        match self {
            Target::Stdout => Compression::Plain,
            Target::File { path, .. } => Compression::for_path(path),
        }
    }
}

/// One input file (or standard input) and its output.
#[derive(Debug)]
pub(super) struct Job {
    /// The input.
    pub input: Input,
    /// The input's name in messages (its path as given, or `<stdin>`).
    pub name: String,
    /// The output.
    pub target: Target,
    /// The input's size in bytes, when known.
    pub size: Option<u64>,
    /// The input file, for the date-shift scope `file`.
    pub file: Option<String>,
    /// The input folder, for the date-shift scope `folder`.
    pub folder: Option<String>,
    /// Added to line numbers to pick the random stream of a seeded run, so that files differ.
    pub sequence: u64,
}

/// What OUTPUT is.
#[derive(Debug)]
enum Output {
    Stdout,
    File(PathBuf),
    Folder { root: PathBuf, staging: PathBuf },
}

/// INPUT and OUTPUT resolved into jobs.
#[derive(Debug)]
pub(super) struct Layout {
    input: PathBuf,
    output: PathBuf,
    kind: Output,
    jobs: Vec<Job>,
    ignored: Vec<PathBuf>,
}

/// The kinds of input file by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Json,
    Ndjson,
}

/// `.ndjson` and `.ndjson.gz` are NDJSON, `.json` is JSON (case-insensitive); others neither.
fn kind_of(path: &Path) -> Option<Kind> {
    let name = path.file_name()?.to_string_lossy().to_ascii_lowercase();
    if name.ends_with(".ndjson") || name.ends_with(".ndjson.gz") {
        Some(Kind::Ndjson)
    } else if name.ends_with(".json") {
        Some(Kind::Json)
    } else {
        None
    }
}

impl Layout {
    /// Resolves INPUT and OUTPUT (walking an input folder) without writing anything.
    pub(super) fn plan(input: &Path, output: &Path) -> Result<Layout, Failure> {
        let stdout = output.as_os_str() == "-";
        let mut layout = Layout {
            input: input.to_path_buf(),
            output: output.to_path_buf(),
            kind: Output::Stdout,
            jobs: Vec::new(),
            ignored: Vec::new(),
        };
        if input.as_os_str() == "-" {
            let target = layout.file_target(None, Kind::Ndjson)?;
            layout.jobs.push(Job {
                input: Input::Stdin,
                name: "<stdin>".into(),
                target,
                size: None,
                file: None,
                folder: None,
                sequence: 0,
            });
            return Ok(layout);
        }
        let metadata = fs::metadata(input)
            .map_err(|error| Failure::input(format!("cannot read {}: {error}", input.display())))?;
        if !metadata.is_dir() {
            let kind = kind_of(input).unwrap_or(Kind::Ndjson);
            let target = layout.file_target(Some(input), kind)?;
            let path = input.display().to_string();
            layout.jobs.push(Job {
                input: match kind {
                    Kind::Json => Input::Json(input.to_path_buf()),
                    Kind::Ndjson => Input::Ndjson(input.to_path_buf()),
                },
                name: path.clone(),
                target,
                size: Some(metadata.len()),
                file: Some(path),
                folder: input.parent().map(|p| p.display().to_string()),
                sequence: 0,
            });
            return Ok(layout);
        }
        if stdout {
            return Err(Failure::usage(
                "INPUT is a folder, so OUTPUT must be a folder too (not `-`)",
            ));
        }
        let root = resolved(input);
        if resolved(output).starts_with(&root) {
            return Err(Failure::usage(format!(
                "OUTPUT {} is inside INPUT {}: choose an output folder outside the input",
                output.display(),
                input.display()
            )));
        }
        let staging = output.join(format!(".haven-deid-{}.partial", std::process::id()));
        let mut files = Vec::new();
        walk(input, &mut files, &mut layout.ignored)?;
        let folder = input.display().to_string();
        for (path, kind, size) in files {
            let relative = path.strip_prefix(input).unwrap_or(&path).to_path_buf();
            let name = path.display().to_string();
            layout.jobs.push(Job {
                input: match kind {
                    Kind::Json => Input::Json(path),
                    Kind::Ndjson => Input::Ndjson(path),
                },
                target: Target::File {
                    staged: staging.join(&relative),
                    path: output.join(&relative),
                },
                size: Some(size),
                file: Some(name.clone()),
                folder: Some(folder.clone()),
                sequence: fnv1a(relative.to_string_lossy().as_bytes()),
                name,
            });
        }
        layout.kind = Output::Folder {
            root: output.to_path_buf(),
            staging,
        };
        Ok(layout)
    }

    /// The target of a single input (`None` for standard input) of the given kind.
    fn file_target(&mut self, input: Option<&Path>, kind: Kind) -> Result<Target, Failure> {
        let output = &self.output;
        if output.as_os_str() == "-" {
            return Ok(Target::Stdout);
        }
        let path = match input.and_then(Path::file_name) {
            Some(name) if names_folder(output) => output.join(name),
            None if names_folder(output) => {
                return Err(Failure::usage(
                    "with INPUT `-`, OUTPUT must be a file or `-`, not a folder",
                ));
            }
            _ => output.clone(),
        };
        if kind_of(&path) == Some(Kind::Json) && kind != Kind::Json {
            return Err(Failure::usage(format!(
                "{} is a `.json` file, which holds one resource: NDJSON input needs an \
                 `.ndjson` or `.ndjson.gz` output",
                path.display()
            )));
        }
        if let Some(input) = input
            && path.exists()
            && resolved(&path) == resolved(input)
        {
            return Err(Failure::usage(format!(
                "OUTPUT {} is INPUT: write the output elsewhere",
                path.display()
            )));
        }
        self.kind = Output::File(path.clone());
        Ok(Target::File {
            staged: hidden_sibling(&path),
            path,
        })
    }

    /// The jobs, in the order they run.
    pub(super) fn jobs(&self) -> &[Job] {
        &self.jobs
    }

    /// The jobs, to keep a shard's share of them (before [`Layout::prepare`]).
    pub(super) fn jobs_mut(&mut self) -> &mut Vec<Job> {
        &mut self.jobs
    }

    /// Files of the input folder that are not `.json`, `.ndjson` or `.ndjson.gz`.
    pub(super) fn ignored(&self) -> &[PathBuf] {
        &self.ignored
    }

    /// INPUT as given.
    pub(super) fn input_name(&self) -> String {
        self.input.display().to_string()
    }

    /// OUTPUT as given.
    pub(super) fn output_name(&self) -> String {
        self.output.display().to_string()
    }

    /// `haven-keys.json` beside OUTPUT; `None` when OUTPUT is `-`.
    pub(super) fn default_key_file(&self) -> Option<PathBuf> {
        if matches!(self.kind, Output::Stdout) {
            return None;
        }
        let parent = self.output.parent()?;
        let parent = if parent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            parent
        };
        Some(parent.join(DEFAULT_KEY_FILE))
    }

    /// Where the summary goes: `OUTPUT.summary.json`, `OUTPUT/_haven_deid_summary.json`, or
    /// nowhere for `-`. It is staged like the outputs, so it appears with them.
    pub(super) fn summary_target(&self) -> Option<Target> {
        match &self.kind {
            Output::Stdout => None,
            Output::File(path) => {
                let mut name = path.as_os_str().to_owned();
                name.push(".summary.json");
                let path = PathBuf::from(name);
                Some(Target::File {
                    staged: hidden_sibling(&path),
                    path,
                })
            }
            Output::Folder { root, staging } => Some(Target::File {
                staged: staging.join(FOLDER_SUMMARY),
                path: root.join(FOLDER_SUMMARY),
            }),
        }
    }

    /// Creates the output folders and the staging area, failing early when OUTPUT cannot be
    /// written, after removing what dead runs left staged there (each named in a note).
    /// Nothing is left behind if the run fails later.
    pub(super) fn prepare(&self, note: &mut dyn FnMut(String)) -> Result<Staging, Failure> {
        let mut staging = Staging::default();
        match &self.kind {
            Output::Stdout => {}
            Output::File(path) => {
                if let Some(parent) = path.parent() {
                    staging.create_dirs(parent)?;
                    remove_stale_staging(parent, note);
                }
            }
            Output::Folder { root, staging: dir } => {
                staging.create_dirs(root)?;
                remove_stale_staging(root, note);
                for job in &self.jobs {
                    if let Target::File { path, .. } = &job.target {
                        if path.is_dir() {
                            return Err(Failure::output(format!(
                                "cannot write {}: a folder of that name exists",
                                path.display()
                            )));
                        }
                        if let Some(parent) = path.parent() {
                            staging.create_dirs(parent)?;
                        }
                    }
                }
                fs::create_dir(dir).map_err(|error| cannot_create(root, &error))?;
                staging.folder = Some(dir.clone());
                for job in &self.jobs {
                    if let Target::File {
                        staged,
                        path: final_path,
                    } = &job.target
                        && let Some(parent) = staged.parent()
                    {
                        fs::create_dir_all(parent)
                            .map_err(|error| cannot_create(final_path, &error))?;
                    }
                }
            }
        }
        Ok(staging)
    }
}

/// Whether OUTPUT names a folder: an existing one, or a path written with a trailing `/`.
fn names_folder(output: &Path) -> bool {
    output.is_dir()
        || output
            .as_os_str()
            .to_string_lossy()
            .ends_with(std::path::MAIN_SEPARATOR)
}

/// The id of the process that staged `name`, if it is a staging name of `haven deid`
/// (`.haven-deid-PID.partial` or `.NAME.haven-deid-PID.partial`).
fn staging_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix('.')?.strip_suffix(".partial")?;
    let (_, pid) = rest.rsplit_once("haven-deid-")?;
    pid.parse().ok()
}

/// Whether process `pid` is gone. Only where `/proc` tells (Linux); elsewhere every process
/// counts as alive, so nothing is removed.
fn is_dead(pid: u32) -> bool {
    let proc = Path::new("/proc");
    proc.join("self").exists() && !proc.join(pid.to_string()).exists()
}

/// Removes from `dir` the staging folders and staged files of `haven deid` runs that died
/// before committing (`kill -9`, a crash): their process is gone, or it is this process (whose
/// id a dead run had, since this run has not staged anything yet). Best effort: what cannot be
/// removed stays, and the run goes on.
fn remove_stale_staging(dir: &Path, note: &mut dyn FnMut(String)) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = staging_pid(&name.to_string_lossy()) else {
            continue;
        };
        if pid != std::process::id() && !is_dead(pid) {
            continue;
        }
        let path = entry.path();
        let removed = match entry.file_type() {
            Ok(kind) if kind.is_dir() => fs::remove_dir_all(&path),
            _ => fs::remove_file(&path),
        };
        if removed.is_ok() {
            note(format!(
                "haven: removed {}, left by an interrupted run (process {pid})",
                path.display()
            ));
        }
    }
}

/// The staged name of a file output: `.NAME.haven-deid-PID.partial` beside it.
fn hidden_sibling(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    path.with_file_name(format!(
        ".{}.haven-deid-{}.partial",
        name.unwrap_or_default(),
        std::process::id()
    ))
}

/// The error of a folder that cannot be created.
fn cannot_create(path: &Path, error: &io::Error) -> Failure {
    Failure::output(format!("cannot create {}: {error}", path.display()))
}

/// Files that sit beside resources but hold none: Haven's own summary and key file, and a Bulk
/// Data export's manifest and client log.
const NOT_RESOURCES: [&str; 4] = [
    FOLDER_SUMMARY,
    DEFAULT_KEY_FILE,
    "manifest.json",
    "log.ndjson",
];

/// The inputs under `path`, a file or a folder (walked as INPUT is), without outputs.
pub(super) fn inputs(path: &Path) -> Result<Vec<Input>, Failure> {
    let metadata = fs::metadata(path)
        .map_err(|error| Failure::input(format!("cannot read {}: {error}", path.display())))?;
    let mut files = Vec::new();
    if metadata.is_dir() {
        walk(path, &mut files, &mut Vec::new())?;
    } else {
        files.push((path.to_path_buf(), kind_of(path).unwrap_or(Kind::Ndjson), 0));
    }
    Ok(files
        .into_iter()
        .map(|(path, kind, _)| match kind {
            Kind::Json => Input::Json(path),
            Kind::Ndjson => Input::Ndjson(path),
        })
        .collect())
}

/// Collects the `.json`, `.ndjson` and `.ndjson.gz` files under `dir` (sorted, recursively,
/// hidden entries skipped) with their kind and size; other files go to `ignored`.
fn walk(
    dir: &Path,
    files: &mut Vec<(PathBuf, Kind, u64)>,
    ignored: &mut Vec<PathBuf>,
) -> Result<(), Failure> {
    let unreadable =
        |error: io::Error| Failure::input(format!("cannot read folder {}: {error}", dir.display()));
    let mut entries = fs::read_dir(dir)
        .map_err(unreadable)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(unreadable)?;
    entries.sort_by_key(fs::DirEntry::file_name);
    for entry in entries {
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        let file_type = entry
            .file_type()
            .map_err(|error| Failure::input(format!("cannot read {}: {error}", path.display())))?;
        if file_type.is_dir() {
            walk(&path, files, ignored)?;
            continue;
        }
        match kind_of(&path) {
            Some(_) if NOT_RESOURCES.iter().any(|name| entry.file_name() == *name) => {
                ignored.push(path);
            }
            Some(kind) => {
                // A broken link or an unreadable entry fails when it is opened, naming it.
                let size = fs::metadata(&path).map_or(0, |m| m.len());
                files.push((path, kind, size));
            }
            None => ignored.push(path),
        }
    }
    Ok(())
}

/// The absolute path with symbolic links resolved as far as the path exists.
fn resolved(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut existing = absolute.as_path();
    let mut rest = Vec::new();
    loop {
        if let Ok(mut real) = existing.canonicalize() {
            real.extend(rest.iter().rev());
            return real;
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name);
                existing = parent;
            }
            _ => return absolute,
        }
    }
}

/// The 64-bit FNV-1a hash: a stable number per relative path for seeded runs.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The outputs of a run until they are committed: staged files to move into place, the staging
/// folder, and the folders this run created. Dropped uncommitted, it removes them all.
#[derive(Debug, Default)]
pub(super) struct Staging {
    created: Vec<PathBuf>,
    folder: Option<PathBuf>,
    moves: Vec<(PathBuf, PathBuf)>,
    committed: bool,
}

impl Staging {
    /// Creates `dir` and its missing parents, remembering which ones this run created.
    fn create_dirs(&mut self, dir: &Path) -> Result<(), Failure> {
        if dir.as_os_str().is_empty() {
            return Ok(());
        }
        let mut missing = Vec::new();
        let mut current = Some(dir);
        while let Some(path) = current.filter(|p| !p.as_os_str().is_empty()) {
            if fs::symlink_metadata(path).is_ok() {
                break;
            }
            missing.push(path.to_path_buf());
            current = path.parent();
        }
        fs::create_dir_all(dir).map_err(|error| cannot_create(dir, &error))?;
        self.created.extend(missing.into_iter().rev());
        Ok(())
    }

    /// Records a finished output, to be moved into place on commit.
    pub(super) fn add(&mut self, target: &Target) {
        if let Target::File { staged, path } = target {
            self.moves.push((staged.clone(), path.clone()));
        }
    }

    /// Moves every finished output into place and removes the staging folder.
    pub(super) fn commit(&mut self) -> Result<(), Failure> {
        for (staged, path) in &self.moves {
            fs::rename(staged, path).map_err(|error| {
                Failure::output(format!(
                    "cannot move {} into place: {error}",
                    path.display()
                ))
            })?;
        }
        self.moves.clear();
        if let Some(folder) = self.folder.take() {
            fs::remove_dir_all(&folder).map_err(|error| {
                Failure::output(format!("cannot remove {}: {error}", folder.display()))
            })?;
        }
        self.committed = true;
        Ok(())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        // Best effort: a failed run must not fail again while cleaning up.
        for (staged, _) in &self.moves {
            let _ = fs::remove_file(staged);
        }
        if let Some(folder) = &self.folder {
            let _ = fs::remove_dir_all(folder);
        }
        for dir in self.created.iter().rev() {
            let _ = fs::remove_dir(dir);
        }
    }
}

/// Writes a staged output file (the staging area is already temporary), synced; on failure the
/// staged file is removed. `path` is its final path, named in errors.
pub(super) fn write_staged(staged: &Path, path: &Path, bytes: &[u8]) -> Result<(), Failure> {
    let written = File::create(staged).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()
    });
    written.map_err(|error| {
        let _ = fs::remove_file(staged);
        Failure::output(format!("cannot write {}: {error}", path.display()))
    })
}
