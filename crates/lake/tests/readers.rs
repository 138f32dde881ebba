//! The NDJSON, Parquet and view tables a run writes, opened by independent readers (Python's
//! gzip, pyarrow, duckdb), on synthetic COVID-19 data.

mod common;

use std::collections::{BTreeMap, HashMap};

use lake::{Destination, Formats, RunOptions, RunWriter};
use serde_json::{Value, json};

/// Writes a synthetic data set (NDJSON and Parquet, with the built-in views) into a folder
/// lake and returns (lake folder, input lines).
fn land(patients: u64) -> (tempfile::TempDir, Vec<(String, Vec<u8>)>) {
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("source");
    common::synth(&source, patients, 7);
    let lines = common::ndjson_lines(&source);
    let dest = Destination::open(work.path().join("lake").to_str().unwrap()).unwrap();
    let mut options = RunOptions::new("r1");
    options.formats = Formats {
        ndjson: true,
        parquet: true,
        delta: false,
    };
    let mut run = RunWriter::new(&dest, options).unwrap();
    for (_, line) in &lines {
        run.write_line(line).unwrap();
    }
    let summary = run.finish().unwrap();
    let patients_landed = summary.tables["parquet/Patient"].rows;
    assert_eq!(
        patients_landed,
        lines.iter().filter(|(t, _)| t == "Patient").count() as u64
    );
    (work, lines)
}

fn lake_dir(work: &tempfile::TempDir) -> String {
    work.path().join("lake").to_str().unwrap().to_string()
}

#[test]
fn parquet_tables_open_in_pyarrow_with_the_key_columns() {
    let (work, lines) = land(60);
    let observations: Vec<Value> = lines
        .iter()
        .filter(|(t, _)| t == "Observation")
        .map(|(_, l)| serde_json::from_slice(l).unwrap())
        .collect();
    let Some(got) = common::python_json(
        r#"
import sys, json, pyarrow.dataset as ds
t = ds.dataset(sys.argv[1] + "/parquet/Observation", format="parquet", partitioning="hive").to_table()
first = t.slice(0, 1).to_pylist()[0]
print(json.dumps({
    "rows": t.num_rows,
    "columns": t.schema.names,
    "types": [str(f.type) for f in t.schema],
    "null_patients": t.column("patient").null_count,
    "first_id": first["id"],
    "first_resource": first["resource"],
    "first_updated": first["lastUpdated"].isoformat(),
    "runs": sorted(set(t.column("run").to_pylist())),
}))
"#,
        &[&lake_dir(&work)],
    ) else {
        return;
    };
    assert_eq!(got["rows"], observations.len());
    assert_eq!(
        got["columns"],
        json!([
            "id",
            "patient",
            "lastUpdated",
            "resourceType",
            "resource",
            "run"
        ])
    );
    assert_eq!(got["types"][2], "timestamp[us, tz=UTC]");
    assert_eq!(got["null_patients"], 0);
    assert_eq!(got["runs"], json!(["r1"]));
    let first = &observations[0];
    assert_eq!(got["first_id"], first["id"]);
    let resource: Value = serde_json::from_str(got["first_resource"].as_str().unwrap()).unwrap();
    assert_eq!(
        &resource, first,
        "the resource column holds the resource as written"
    );
    let updated = lake::parse_instant_micros(first["meta"]["lastUpdated"].as_str().unwrap());
    let read_back = lake::parse_instant_micros(
        &got["first_updated"]
            .as_str()
            .unwrap()
            .replace("+00:00", "Z"),
    );
    assert_eq!(read_back, updated);
}

#[test]
fn ndjson_and_parquet_agree_in_duckdb_and_gzip() {
    let (work, lines) = land(40);
    let mut by_type: BTreeMap<&str, usize> = BTreeMap::new();
    for (t, _) in &lines {
        *by_type.entry(t.as_str()).or_default() += 1;
    }
    let Some(got) = common::python_json(
        r#"
import sys, json, glob, gzip, duckdb
root = sys.argv[1]
out = {}
for path in sorted(glob.glob(root + "/parquet/*")):
    t = path.rsplit("/", 1)[1]
    pq = duckdb.sql(f"select count(*), count(distinct id), min(resourceType), max(resourceType) from read_parquet('{path}/*/*.parquet')").fetchall()[0]
    lines = 0
    for f in glob.glob(f"{root}/ndjson/{t}/run=r1/*.ndjson.gz"):
        with gzip.open(f, "rt") as g:
            for line in g:
                assert json.loads(line)["resourceType"] == t
                lines += 1
    out[t] = {"parquet": pq[0], "distinct": pq[1], "types": [pq[2], pq[3]], "ndjson": lines}
print(json.dumps(out))
"#,
        &[&lake_dir(&work)],
    ) else {
        return;
    };
    assert_eq!(got.as_object().unwrap().len(), by_type.len());
    for (t, n) in by_type {
        let table = &got[t];
        assert_eq!(table["parquet"], n, "{t}");
        assert_eq!(table["distinct"], n, "{t}");
        assert_eq!(table["ndjson"], n, "{t}");
        assert_eq!(table["types"], json!([t, t]));
    }
}

/// Positive SARS-CoV-2 PCR results (LOINC 94531-1, SNOMED 260373001 "Detected") by the
/// patient's home 3-digit ZIP, computed from the source NDJSON.
fn positives_by_zip3(lines: &[(String, Vec<u8>)]) -> BTreeMap<String, u64> {
    let mut zip3: HashMap<String, String> = HashMap::new();
    for (_, line) in lines.iter().filter(|(t, _)| t == "Patient") {
        let p: Value = serde_json::from_slice(line).unwrap();
        let home = p["address"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|a| a.get("use").is_none() || a["use"] == "home");
        if let Some(code) = home.and_then(|a| a["postalCode"].as_str()) {
            zip3.insert(p["id"].as_str().unwrap().to_string(), code[..3].to_string());
        }
    }
    let mut counts = BTreeMap::new();
    for (_, line) in lines.iter().filter(|(t, _)| t == "Observation") {
        let o: Value = serde_json::from_slice(line).unwrap();
        if o["code"]["coding"][0]["code"] == "94531-1"
            && o["valueCodeableConcept"]["coding"][0]["code"] == "260373001"
        {
            let patient = o["subject"]["reference"]
                .as_str()
                .unwrap()
                .trim_start_matches("Patient/");
            *counts.entry(zip3[patient].clone()).or_default() += 1;
        }
    }
    counts
}

#[test]
fn views_count_positive_covid_tests_by_zip3_in_duckdb() {
    let (work, lines) = land(150);
    let expected = positives_by_zip3(&lines);
    assert!(
        expected.values().sum::<u64>() > 0,
        "the data has positive tests"
    );
    let Some(got) = common::python_json(
        r#"
import sys, json, duckdb
root = sys.argv[1]
rows = duckdb.sql(f"""
    select p.zip3, count(*) as positives
    from read_parquet('{root}/views/observation/*/*.parquet') o
    join read_parquet('{root}/views/patient/*/*.parquet') p on o.patient = p.id
    where o.code = '94531-1' and o.system = 'http://loinc.org' and o.value_code = '260373001'
    group by p.zip3 order by p.zip3
""").fetchall()
types = duckdb.sql(f"select typeof(birth_year), typeof(deceased), typeof(zip3) from read_parquet('{root}/views/patient/*/*.parquet') limit 1").fetchall()[0]
print(json.dumps({"counts": {z: n for z, n in rows}, "types": list(types)}))
"#,
        &[&lake_dir(&work)],
    ) else {
        return;
    };
    let counts: BTreeMap<String, u64> = serde_json::from_value(got["counts"].clone()).unwrap();
    assert_eq!(counts, expected);
    // The generator's truth curve counts one case per positive test.
    let mut truth: BTreeMap<String, u64> = BTreeMap::new();
    for row in synth::read_truth(&work.path().join("source")).unwrap() {
        *truth.entry(row.zip3).or_default() += row.cases;
    }
    assert_eq!(counts, truth);
    assert_eq!(got["types"], json!(["BIGINT", "BOOLEAN", "VARCHAR"]));
}

#[test]
fn builtin_views_cover_every_resource_of_their_type() {
    let (work, lines) = land(30);
    let Some(got) = common::python_json(
        r#"
import sys, json, pyarrow.dataset as ds
root = sys.argv[1]
out = {}
for v in ["patient", "condition", "observation", "encounter", "immunization"]:
    t = ds.dataset(f"{root}/views/{v}", format="parquet", partitioning="hive").to_table()
    out[v] = {"rows": t.num_rows, "ids": len(set(t.column("_resource_id").to_pylist())),
              "null_patients": t.column("patient").null_count if "patient" in t.schema.names else 0}
print(json.dumps(out))
"#,
        &[&lake_dir(&work)],
    ) else {
        return;
    };
    for (view, ty) in [
        ("patient", "Patient"),
        ("condition", "Condition"),
        ("observation", "Observation"),
        ("encounter", "Encounter"),
        ("immunization", "Immunization"),
    ] {
        let n = lines.iter().filter(|(t, _)| t == ty).count();
        assert_eq!(got[view]["rows"], n, "{view}: one row per resource");
        assert_eq!(got[view]["ids"], n, "{view}");
        assert_eq!(got[view]["null_patients"], 0, "{view}");
    }
}

/// A user's own ViewDefinition, loaded from a folder of JSON files beside the built-in
/// views, lands as its own table that DuckDB reads.
#[test]
fn user_view_files_land_beside_the_builtin_views() {
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("source");
    common::synth(&source, 40, 9);
    let lines = common::ndjson_lines(&source);
    let views_dir = work.path().join("views");
    std::fs::create_dir(&views_dir).unwrap();
    let user_view = json!({
        "resourceType": "ViewDefinition",
        "name": "covid_pcr",
        "resource": "Observation",
        "where": [{"path": "code.coding.where(system = 'http://loinc.org' and code = '94531-1').exists()"}],
        "select": [{"column": [
            {"name": "patient", "path": "subject.getReferenceKey(Patient)", "type": "string"},
            {"name": "result", "path": "value.ofType(CodeableConcept).coding.first().code", "type": "code"},
            {"name": "codings", "path": "code.coding.code", "type": "code", "collection": true}
        ]}]
    });
    std::fs::write(views_dir.join("covid_pcr.json"), user_view.to_string()).unwrap();
    std::fs::write(views_dir.join("notes.txt"), "not a view").unwrap();
    let loaded = lake::views::load_views(&views_dir).unwrap();
    assert_eq!(loaded.len(), 1);

    let dest = Destination::open(lake_dir(&work).as_str()).unwrap();
    let mut options = RunOptions::new("r1");
    options.formats = Formats {
        ndjson: false,
        parquet: true,
        delta: false,
    };
    options.views.extend(loaded);
    let mut run = RunWriter::new(&dest, options).unwrap();
    for (_, line) in &lines {
        run.write_line(line).unwrap();
    }
    let summary = run.finish().unwrap();

    let (mut tests, mut detected) = (0u64, 0u64);
    for (_, line) in lines.iter().filter(|(t, _)| t == "Observation") {
        let o: Value = serde_json::from_slice(line).unwrap();
        if o["code"]["coding"][0]["code"] == "94531-1" {
            tests += 1;
            detected += u64::from(o["valueCodeableConcept"]["coding"][0]["code"] == "260373001");
        }
    }
    assert!(tests > 0 && detected > 0, "the data has PCR tests");
    assert_eq!(summary.tables["views/covid_pcr"].rows, tests);
    assert!(summary.tables.contains_key("views/patient"));

    let Some(got) = common::python_json(
        r#"
import sys, json, duckdb
root = sys.argv[1]
rows = duckdb.sql(f"""
    select count(*), count(*) filter (where result = '260373001'), count(distinct p.id),
           min(len(codings))
    from read_parquet('{root}/views/covid_pcr/*/*.parquet') c
    join read_parquet('{root}/views/patient/*/*.parquet') p on c.patient = p.id
""").fetchall()[0]
print(json.dumps(list(rows)))
"#,
        &[&lake_dir(&work)],
    ) else {
        return;
    };
    assert_eq!(got[0], tests, "every PCR test joins its patient");
    assert_eq!(got[1], detected);
    assert!(got[2].as_u64().unwrap() > 0);
    assert_eq!(got[3], 1, "the collection column is a list");
}

/// A view file that is not JSON is refused with its file name and position, and a view
/// with an unknown FHIRPath function with its name, never with resource content.
#[test]
fn broken_view_files_are_refused_with_their_location() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("broken.json");
    std::fs::write(
        &file,
        "{\n  \"resourceType\": \"ViewDefinition\",\n  oops\n}",
    )
    .unwrap();
    let err = lake::views::load_views(dir.path())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("broken.json"), "{err}");
    assert!(err.contains("line 3"), "{err}");

    let bad = json!({
        "resourceType": "ViewDefinition", "name": "bad", "resource": "Patient",
        "select": [{"column": [{"name": "x", "path": "name.noSuchFunction()"}]}]
    });
    let err = lake::views::ViewDefinition::from_json(&bad)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("bad"), "{err}");
}
