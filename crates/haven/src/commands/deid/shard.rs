//! Sharded runs, for orchestrators without Spark (Kubernetes Indexed Jobs, Argo, Azure Batch):
//! `--shard I/N` de-identifies shard I's share of the input into
//! `OUTPUT/.haven-shards/of-N/shard-I/`, and `--commit` joins the N shares into OUTPUT with a
//! manifest.
//!
//! Every shard computes the same split from the input listing, without coordination: each
//! plain NDJSON file is cut into N byte ranges snapped to line starts (a shard owns the lines
//! that start in its range), and each gzip or JSON file goes whole to one shard, in turn. A
//! part keeps its file's name, folder and line numbers (for the date-shift scopes, seeded
//! streams and messages), so the parts, joined in shard order, are byte for byte what one
//! unsharded run writes.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use fhir::ndjson::{NdjsonReader, ReadOptions};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::Failure;
use super::layout::{FOLDER_SUMMARY, Input, Job};

/// The folder under OUTPUT where shards are written until they are committed.
const SHARDS_FOLDER: &str = ".haven-shards";

/// The marker a shard writes into its folder when it has finished.
const DONE_MARKER: &str = "_haven_shard.json";

/// The manifest a commit writes into OUTPUT.
pub(super) const MANIFEST: &str = "haven-deid-manifest.json";

/// One shard of a sharded run: `index` of `count`, counted from 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardSpec {
    /// This shard, from 0.
    pub index: u32,
    /// The number of shards.
    pub count: u32,
}

impl ShardSpec {
    /// Parses `I/N` (`3/8`), with `I < N`.
    pub fn parse(text: &str) -> Result<ShardSpec, String> {
        let (index, count) = text
            .split_once('/')
            .ok_or_else(|| "expected I/N, such as 0/4".to_owned())?;
        let index: u32 = index
            .trim()
            .parse()
            .map_err(|_| format!("shard index `{index}` is not a number"))?;
        let count: u32 = count
            .trim()
            .parse()
            .map_err(|_| format!("shard count `{count}` is not a number"))?;
        ShardSpec::new(index, count)
    }

    /// Shard `index` of `count`, checked.
    pub fn new(index: u32, count: u32) -> Result<ShardSpec, String> {
        if count == 0 {
            return Err("the shard count must be at least 1".to_owned());
        }
        if index >= count {
            return Err(format!(
                "shard index {index} is out of range: shards of {count} are numbered 0 to {}",
                count - 1
            ));
        }
        Ok(ShardSpec { index, count })
    }

    /// Shard `JOB_COMPLETION_INDEX` (a Kubernetes Indexed Job's pod index) of `count`.
    pub(super) fn from_environment(count: u32) -> Result<ShardSpec, Failure> {
        let index = std::env::var("JOB_COMPLETION_INDEX").map_err(|_| {
            Failure::usage(
                "--shard-count N needs --shard I/N or JOB_COMPLETION_INDEX to pick a shard",
            )
        })?;
        let index: u32 = index
            .trim()
            .parse()
            .map_err(|_| Failure::usage("JOB_COMPLETION_INDEX is not a number"))?;
        ShardSpec::new(index, count).map_err(Failure::usage)
    }
}

/// `OUTPUT/.haven-shards/of-N`: where the shards of an N-way run are written.
fn run_folder(output: &Path, count: u32) -> PathBuf {
    output.join(SHARDS_FOLDER).join(format!("of-{count}"))
}

/// The folder a shard writes into.
pub(super) fn shard_folder(output: &Path, spec: ShardSpec) -> PathBuf {
    run_folder(output, spec.count).join(format!("shard-{:05}", spec.index))
}

/// What every shard of one run agrees on: the inputs, the configuration and the keys. Its
/// fingerprint tells the shards of one run from those of another in the same OUTPUT.
#[derive(Debug)]
pub(super) struct Plan {
    /// The configuration (`preset safe-harbor` or its file).
    pub configuration: String,
    /// The SHA-256 of the configuration's text.
    pub config_sha256: String,
    /// The keys' fingerprint ([`deid::Config::key_id`]).
    pub key_id: Option<String>,
    /// The number of shards.
    pub count: u32,
    /// Every input file and its size, in run order.
    pub inputs: Vec<(String, u64)>,
}

impl Plan {
    /// The plan's fingerprint: a SHA-256 over all of it.
    fn fingerprint(&self) -> String {
        let mut hash = Sha256::new();
        hash.update(self.to_json().to_string().as_bytes());
        hex::encode(hash.finalize())
    }

    fn to_json(&self) -> Value {
        let inputs: Vec<Value> = self
            .inputs
            .iter()
            .map(|(file, bytes)| json!({"file": file, "bytes": bytes}))
            .collect();
        json!({
            "configuration": self.configuration,
            "configSha256": self.config_sha256,
            "keyId": self.key_id,
            "shards": self.count,
            "inputs": inputs,
        })
    }
}

/// The SHA-256 of a configuration's text, in hexadecimal.
pub(super) fn config_sha256(text: &[u8]) -> String {
    hex::encode(Sha256::digest(text))
}

/// Whether the shard already finished under this plan (`Ok(true)`: nothing to do). A folder
/// left by an interrupted attempt is removed; one finished under another plan is an error.
pub(super) fn already_done(folder: &Path, plan: &Plan, spec: ShardSpec) -> Result<bool, Failure> {
    match fs::read(folder.join(DONE_MARKER)) {
        Ok(bytes) => {
            let marker: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            if marker["plan"].as_str() == Some(plan.fingerprint().as_str()) {
                return Ok(true);
            }
            Err(Failure::usage(format!(
                "{} holds shard {} of another run (other inputs, configuration, keys or shard \
                 count); commit that run or remove {}",
                folder.display(),
                spec.index,
                run_folder(
                    folder.parent().and_then(Path::parent).unwrap_or(folder),
                    spec.count
                )
                .display()
            )))
        }
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            if folder.exists() {
                fs::remove_dir_all(folder).map_err(|error| {
                    Failure::output(format!("cannot remove {}: {error}", folder.display()))
                })?;
            }
            Ok(false)
        }
        Err(error) => Err(Failure::input(format!(
            "cannot read {}: {error}",
            folder.join(DONE_MARKER).display()
        ))),
    }
}

/// Keeps the jobs of shard `spec`: a byte range of every plain NDJSON file, and every N-th
/// gzip or JSON file whole.
pub(super) fn assign(jobs: &mut Vec<Job>, spec: ShardSpec) -> Result<(), Failure> {
    let (index, count) = (u64::from(spec.index), u64::from(spec.count));
    let mut whole = 0u64;
    let mut kept = Vec::new();
    for mut job in jobs.drain(..) {
        let part = match &job.input {
            Input::Stdin => {
                return Err(Failure::usage(
                    "a sharded run reads files or a folder, not standard input",
                ));
            }
            Input::Ndjson(path) if !is_gzip(path, &job.name)? => {
                let size = job.size.unwrap_or(0);
                let start = size * index / count;
                let end = size * (index + 1) / count;
                Some((path.clone(), start, end))
            }
            Input::Ndjson(_) | Input::Json(_) | Input::Part { .. } => None,
        };
        match part {
            Some((path, start, end)) => {
                job.input = Input::Part { path, start, end };
                job.size = Some(end - start);
                kept.push(job);
            }
            None => {
                if whole % count == index {
                    kept.push(job);
                }
                whole += 1;
            }
        }
    }
    *jobs = kept;
    Ok(())
}

/// Whether a file starts with the gzip magic bytes.
fn is_gzip(path: &Path, name: &str) -> Result<bool, Failure> {
    let mut magic = [0u8; 2];
    let mut file =
        File::open(path).map_err(|error| Failure::input(format!("cannot read {name}: {error}")))?;
    let read = file
        .read(&mut magic)
        .map_err(|error| Failure::input(format!("cannot read {name}: {error}")))?;
    Ok(read == 2 && magic == [0x1f, 0x8b])
}

/// Opens the lines of `path` that start in `start..end`, numbered as in the whole file.
pub(super) fn open_part(
    path: &Path,
    name: &str,
    start: u64,
    end: u64,
) -> Result<NdjsonReader<io::Take<File>>, Failure> {
    let unreadable = |error: io::Error| Failure::input(format!("cannot read {name}: {error}"));
    let mut file = File::open(path).map_err(unreadable)?;
    let length = file.metadata().map_err(unreadable)?.len();
    let from = line_start(&mut file, start, length).map_err(unreadable)?;
    let to = line_start(&mut file, end, length).map_err(unreadable)?;
    let lines_before = newlines_before(&mut file, from).map_err(unreadable)?;
    file.seek(SeekFrom::Start(from)).map_err(unreadable)?;
    let reader = NdjsonReader::new(file.take(to - from), name, ReadOptions::default())?;
    Ok(reader.after_lines(lines_before))
}

/// The first line start at or after `offset`: `offset` itself when a line ends just before
/// it, else just after the next line end (or the file's end).
fn line_start(file: &mut File, offset: u64, length: u64) -> io::Result<u64> {
    if offset == 0 || offset >= length {
        return Ok(offset.min(length));
    }
    file.seek(SeekFrom::Start(offset - 1))?;
    let mut position = offset - 1;
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            return Ok(length);
        }
        if let Some(at) = buffer[..read].iter().position(|&byte| byte == b'\n') {
            return Ok(position + at as u64 + 1);
        }
        position += read as u64;
    }
}

/// How many line ends the first `offset` bytes hold.
fn newlines_before(file: &mut File, offset: u64) -> io::Result<u64> {
    file.seek(SeekFrom::Start(0))?;
    let mut prefix = file.take(offset);
    let mut buffer = vec![0u8; 1 << 20];
    let mut count = 0u64;
    loop {
        let read = prefix.read(&mut buffer)?;
        if read == 0 {
            return Ok(count);
        }
        count += buffer[..read].iter().filter(|&&byte| byte == b'\n').count() as u64;
    }
}

/// Records that the shard finished, under its plan, with the name of its run summary
/// (written last, temp name then rename).
pub(super) fn mark_done(
    folder: &Path,
    plan: &Plan,
    spec: ShardSpec,
    summary: &str,
) -> Result<(), Failure> {
    let marker = json!({
        "shard": spec.index,
        "plan": plan.fingerprint(),
        "summary": summary,
        "run": plan.to_json(),
    });
    write_renamed(
        &folder.join(DONE_MARKER),
        serde_json::to_string_pretty(&marker)
            .unwrap_or_default()
            .as_bytes(),
    )
}

/// Writes `bytes` to a hidden temporary sibling of `path`, synced, then renames it into place.
fn write_renamed(path: &Path, bytes: &[u8]) -> Result<(), Failure> {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let temp = path.with_file_name(format!(".{name}.{}.partial", std::process::id()));
    let written = File::create(&temp).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()
    });
    written
        .and_then(|()| fs::rename(&temp, path))
        .map_err(|error| {
            let _ = fs::remove_file(&temp);
            Failure::output(format!("cannot write {}: {error}", path.display()))
        })
}

/// What a commit did.
pub(super) enum Committed {
    /// The shards were joined into OUTPUT: the files and resources published.
    Published { files: usize, resources: u64 },
    /// OUTPUT already holds this run's manifest and no shards: nothing to do.
    AlreadyCommitted,
}

/// Joins the `count` shards under OUTPUT into OUTPUT and writes the manifest: every shard
/// must have finished, under the same plan. The joined files are staged, moved into place,
/// and the manifest written last; the shards are removed after it. A commit that stops
/// half-way is repeated from the shards.
pub(super) fn commit(output: &Path, count: u32) -> Result<Committed, Failure> {
    let run = run_folder(output, count);
    if !run.is_dir() {
        if output.join(MANIFEST).is_file() {
            return Ok(Committed::AlreadyCommitted);
        }
        return Err(Failure::usage(format!(
            "{} holds no run of {count} shards to commit",
            output.display()
        )));
    }
    let mut markers = Vec::new();
    let mut missing = Vec::new();
    for index in 0..count {
        let folder = run.join(format!("shard-{index:05}"));
        match fs::read(folder.join(DONE_MARKER)) {
            Ok(bytes) => {
                let marker: Value = serde_json::from_slice(&bytes).map_err(|_| {
                    Failure::input(format!(
                        "{}: not a shard marker",
                        folder.join(DONE_MARKER).display()
                    ))
                })?;
                markers.push((folder, marker));
            }
            Err(_) => missing.push(index.to_string()),
        }
    }
    if !missing.is_empty() {
        return Err(Failure::input(format!(
            "cannot commit: {} of {count} shards have not finished (shard {}); run them, then \
             commit again",
            missing.len(),
            missing.join(", ")
        )));
    }
    let plans: BTreeSet<&str> = markers
        .iter()
        .map(|(_, marker)| marker["plan"].as_str().unwrap_or_default())
        .collect();
    if plans.len() != 1 {
        return Err(Failure::input(format!(
            "cannot commit: the shards under {} come from different runs (inputs, \
             configuration or keys differ); run them again with the same ones",
            run.display()
        )));
    }

    let mut files = BTreeSet::new();
    for (folder, marker) in &markers {
        let summary = marker["summary"].as_str().unwrap_or(FOLDER_SUMMARY);
        list_files(folder, Path::new(""), summary, &mut files)?;
    }
    let staging = output.join(format!(".haven-deid-commit-{}.partial", std::process::id()));
    let staged = join_parts(&markers, &files, &staging);
    let outputs = match staged {
        Ok(outputs) => outputs,
        Err(failure) => {
            let _ = fs::remove_dir_all(&staging);
            return Err(failure);
        }
    };
    let (manifest, resources) = manifest(&markers, outputs)?;
    for relative in &files {
        let path = output.join(relative);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(|error| {
                Failure::output(format!("cannot create {}: {error}", parent.display()))
            })?;
        }
        fs::rename(staging.join(relative), &path).map_err(|error| {
            Failure::output(format!(
                "cannot move {} into place: {error}",
                path.display()
            ))
        })?;
    }
    let _ = fs::remove_dir_all(&staging);
    write_renamed(
        &output.join(MANIFEST),
        serde_json::to_string_pretty(&manifest)
            .unwrap_or_default()
            .as_bytes(),
    )?;
    fs::remove_dir_all(&run)
        .map_err(|error| Failure::output(format!("cannot remove {}: {error}", run.display())))?;
    let _ = fs::remove_dir(output.join(SHARDS_FOLDER));
    Ok(Committed::Published {
        files: files.len(),
        resources,
    })
}

/// Adds the output files under `folder` (relative paths), leaving out the marker, the shard's
/// run summary and hidden entries.
fn list_files(
    folder: &Path,
    relative: &Path,
    summary: &str,
    files: &mut BTreeSet<PathBuf>,
) -> Result<(), Failure> {
    let here = folder.join(relative);
    let entries = fs::read_dir(&here)
        .map_err(|error| Failure::input(format!("cannot read {}: {error}", here.display())))?;
    for entry in entries {
        let entry = entry
            .map_err(|error| Failure::input(format!("cannot read {}: {error}", here.display())))?;
        let name = entry.file_name();
        let name_text = name.to_string_lossy();
        if name_text.starts_with('.')
            || (relative.as_os_str().is_empty()
                && (name_text == DONE_MARKER || name_text == summary))
        {
            continue;
        }
        let path = relative.join(&name);
        if entry.path().is_dir() {
            list_files(folder, &path, summary, files)?;
        } else {
            files.insert(path);
        }
    }
    Ok(())
}

/// Writes each output file into `staging` as its shards' parts joined in shard order; returns
/// each file's size.
fn join_parts(
    markers: &[(PathBuf, Value)],
    files: &BTreeSet<PathBuf>,
    staging: &Path,
) -> Result<BTreeMap<String, u64>, Failure> {
    let mut sizes = BTreeMap::new();
    for relative in files {
        let target = staging.join(relative);
        let cannot_write = |error: io::Error| {
            Failure::output(format!("cannot write {}: {error}", target.display()))
        };
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).map_err(cannot_write)?;
        }
        let mut out = BufWriter::new(File::create(&target).map_err(cannot_write)?);
        let mut size = 0;
        for (folder, _) in markers {
            let part = folder.join(relative);
            match File::open(&part) {
                Ok(mut file) => {
                    size += io::copy(&mut file, &mut out).map_err(cannot_write)?;
                }
                Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                Err(error) => {
                    return Err(Failure::input(format!(
                        "cannot read {}: {error}",
                        part.display()
                    )));
                }
            }
        }
        out.into_inner()
            .map_err(|error| cannot_write(error.into_error()))?
            .sync_all()
            .map_err(cannot_write)?;
        sizes.insert(relative.display().to_string(), size);
    }
    Ok(sizes)
}

/// The manifest: the run's plan, the outputs, and the shards' summaries added up; and the
/// resources written.
fn manifest(
    markers: &[(PathBuf, Value)],
    outputs: BTreeMap<String, u64>,
) -> Result<(Value, u64), Failure> {
    let mut resources_in: BTreeMap<String, u64> = BTreeMap::new();
    let mut resources_out: BTreeMap<String, u64> = BTreeMap::new();
    let mut nodes: BTreeMap<String, u64> = BTreeMap::new();
    let mut invalid = Vec::new();
    let (mut records, mut invalid_records) = (0u64, 0u64);
    let add = |into: &mut BTreeMap<String, u64>, counts: &Value| {
        for (key, count) in counts.as_object().into_iter().flatten() {
            *into.entry(key.clone()).or_default() += count.as_u64().unwrap_or(0);
        }
    };
    for (folder, marker) in markers {
        let path = folder.join(marker["summary"].as_str().unwrap_or(FOLDER_SUMMARY));
        let bytes = fs::read(&path)
            .map_err(|error| Failure::input(format!("cannot read {}: {error}", path.display())))?;
        let summary: Value = serde_json::from_slice(&bytes)
            .map_err(|_| Failure::input(format!("{}: not a run summary", path.display())))?;
        add(&mut resources_in, &summary["resourcesIn"]);
        add(&mut resources_out, &summary["resourcesOut"]);
        add(&mut nodes, &summary["nodes"]);
        records += summary["records"].as_u64().unwrap_or(0);
        invalid_records += summary["invalidRecords"].as_u64().unwrap_or(0);
        invalid.extend(summary["invalid"].as_array().into_iter().flatten().cloned());
    }
    let written = resources_out.values().sum();
    let run = &markers[0].1["run"];
    let outputs: Vec<Value> = outputs
        .into_iter()
        .map(|(file, bytes)| json!({"file": file, "bytes": bytes}))
        .collect();
    let manifest = json!({
        "haven": env!("CARGO_PKG_VERSION"),
        "committed": humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        "shards": run["shards"],
        "configuration": run["configuration"],
        "configSha256": run["configSha256"],
        "keyId": run["keyId"],
        "inputs": run["inputs"],
        "outputs": outputs,
        "records": records,
        "resourcesIn": resources_in,
        "resourcesOut": resources_out,
        "nodes": nodes,
        "invalidRecords": invalid_records,
        "invalid": invalid,
    });
    Ok((manifest, written))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Splits `text` into `count` parts the way shards do and returns each part's lines with
    /// their numbers.
    fn parts(text: &str, count: u64) -> Vec<Vec<(u64, String)>> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.ndjson");
        fs::write(&path, text).unwrap();
        let size = text.len() as u64;
        (0..count)
            .map(|index| {
                let mut reader = open_part(
                    &path,
                    "in.ndjson",
                    size * index / count,
                    size * (index + 1) / count,
                )
                .unwrap();
                let mut lines = Vec::new();
                while let Some(batch) = reader.next_batch().unwrap() {
                    for line in batch.iter() {
                        lines.push((line.number(), String::from_utf8_lossy(line.bytes()).into()));
                    }
                }
                lines
            })
            .collect()
    }

    fn whole(text: &str) -> Vec<(u64, String)> {
        parts(text, 1).remove(0)
    }

    #[test]
    fn every_line_lands_in_exactly_one_part_with_its_number() {
        let texts = [
            "{\"a\":1}\n{\"b\":22}\n{\"c\":333}\n{\"d\":4444}\n{\"e\":5}\n",
            "{\"a\":1}\n\n{\"b\":2}\r\n{\"c\":3}",
            "{\"only\":\"one long line without an end\"}",
            "",
            "\n\n\n{\"late\":1}\n",
        ];
        for text in texts {
            let expected = whole(text);
            for count in 1..=9 {
                let joined: Vec<(u64, String)> = parts(text, count).into_iter().flatten().collect();
                assert_eq!(joined, expected, "{count} parts of {text:?}");
            }
        }
    }

    #[test]
    fn lines_keep_their_numbers_across_blank_lines_and_crlf() {
        let line = |number: u64, text: &str| (number, text.to_string());
        let crlf = "{\"a\":1}\r\n\r\n{\"b\":2}\r\n{\"c\":3}";
        let expected = vec![
            line(1, "{\"a\":1}"),
            line(3, "{\"b\":2}"),
            line(4, "{\"c\":3}"),
        ];
        assert_eq!(whole(crlf), expected);
        // A cut in the middle of the second line: the first part owns it (it starts there).
        assert_eq!(
            parts("{\"a\":1}\n{\"b\":2}\n{\"c\":3}\n", 2),
            vec![
                vec![line(1, "{\"a\":1}"), line(2, "{\"b\":2}")],
                vec![line(3, "{\"c\":3}")]
            ]
        );
        assert_eq!(parts("", 3), vec![Vec::new(), Vec::new(), Vec::new()]);
    }

    #[test]
    fn a_cut_just_after_a_line_end_starts_the_next_part_there() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.ndjson");
        fs::write(&path, "ab\ncd\nef").unwrap();
        let mut file = File::open(&path).unwrap();
        let starts: Vec<u64> = (0..=9)
            .map(|offset| line_start(&mut file, offset, 8).unwrap())
            .collect();
        assert_eq!(starts, [0, 3, 3, 3, 6, 6, 6, 8, 8, 8]);
        assert_eq!(newlines_before(&mut file, 6).unwrap(), 2);
        assert_eq!(newlines_before(&mut file, 8).unwrap(), 2);
    }

    #[test]
    fn shard_specs_are_checked() {
        assert_eq!(
            ShardSpec::parse("2/5"),
            Ok(ShardSpec { index: 2, count: 5 })
        );
        for bad in ["5/5", "1/0", "x/2", "3", "-1/2"] {
            assert!(ShardSpec::parse(bad).is_err(), "{bad}");
        }
    }
}
