//! A lake built by the pipeline from `synth` data, for the validation tests.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use pipeline::{Pipeline, PipelineConfig, RunReport, Silent};

/// A temporary folder with an identified source and the de-identified lake built from it.
pub struct Lake {
    _dir: tempfile::TempDir,
    /// The identified source (NDJSON, as `synth` writes it).
    pub source: PathBuf,
    /// The lake folder.
    pub lake: PathBuf,
    /// The key file.
    pub keys: PathBuf,
    /// The first run's report.
    pub report: RunReport,
}

/// A pipeline configuration with the safe-harbor preset.
pub fn config(source: &Path, lake: &Path, keys: &Path, formats: &str) -> PipelineConfig {
    let text = format!(
        "[source]\nfolder = {source:?}\n[deid]\npreset = \"safe-harbor\"\nkey_file = {keys:?}\n\
         generate_keys = true\n[lake]\nlocation = {lake:?}\nformats = [{formats}]\n"
    );
    PipelineConfig::from_toml(&text).unwrap()
}

/// Synthesizes `patients` patients and runs the pipeline once with the safe-harbor preset
/// into NDJSON and Parquet (with the built-in views).
pub fn lake(patients: u64) -> Lake {
    lake_with(patients, "\"ndjson\", \"parquet\"")
}

/// As [`lake`], with the given formats (`"ndjson", "parquet", "delta"`).
pub fn lake_with(patients: u64, formats: &str) -> Lake {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source");
    synth::generate(&synth::SynthOptions::new(patients, 11, &source), &|_| {}).unwrap();
    let lake = dir.path().join("lake");
    let keys = dir.path().join("keys.json");
    let report = Pipeline::new(config(&source, &lake, &keys, formats))
        .unwrap()
        .run(&Silent)
        .unwrap();
    Lake {
        _dir: dir,
        source,
        lake,
        keys,
        report,
    }
}

/// Validates the lake folder, with the source when asked.
pub fn validate(lake: &Path, source: Option<&Path>) -> validate::Report {
    let dest = lake::Destination::open(lake.to_str().unwrap()).unwrap();
    let options = validate::Options {
        source: source.map(Path::to_path_buf),
    };
    validate::validate(&dest, &options).unwrap()
}

/// The part files of `table` (`ndjson/Patient`, `parquet/Condition`) in the lake's only run.
pub fn parts(lake: &Path, table: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for run in std::fs::read_dir(lake.join(table)).unwrap() {
        for part in std::fs::read_dir(run.unwrap().path()).unwrap() {
            out.push(part.unwrap().path());
        }
    }
    out.sort();
    out
}

/// The key of a part file relative to the lake.
pub fn key(lake: &Path, part: &Path) -> String {
    part.strip_prefix(lake).unwrap().display().to_string()
}

/// Rewrites line `line` (1-based) of a gzip NDJSON part with `edit`.
pub fn edit_line(part: &Path, line: usize, edit: impl FnOnce(&mut serde_json::Value)) {
    use std::io::{Read, Write};
    let mut text = String::new();
    flate2::read::MultiGzDecoder::new(std::fs::File::open(part).unwrap())
        .read_to_string(&mut text)
        .unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let mut value: serde_json::Value = serde_json::from_str(&lines[line - 1]).unwrap();
    edit(&mut value);
    lines[line - 1] = value.to_string();
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder
        .write_all((lines.join("\n") + "\n").as_bytes())
        .unwrap();
    std::fs::write(part, encoder.finish().unwrap()).unwrap();
}

/// The findings of check `check` as (kind, file, line, path).
pub fn findings(
    report: &validate::Report,
    check: &str,
) -> Vec<(String, String, Option<u64>, Option<String>)> {
    report
        .check(check)
        .unwrap()
        .groups
        .values()
        .flat_map(|g| &g.examples)
        .map(|f| (f.kind.clone(), f.file.clone(), f.line, f.path.clone()))
        .collect()
}

/// Asserts that neither the readable nor the JSON report holds `value`.
pub fn assert_not_in_output(report: &validate::Report, value: &str) {
    assert!(
        !report.summary().contains(value),
        "the summary holds the value"
    );
    assert!(
        !report.to_json().contains(value),
        "the JSON report holds the value"
    );
}
