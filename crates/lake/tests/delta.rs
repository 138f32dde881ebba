//! Delta tables opened by the Python `deltalake` package (and duckdb's delta reader when it is
//! installed): an incremental run's updates and deletions are merged.

mod common;

use std::collections::BTreeMap;

use lake::{DeltaTableWriter, Destination, Formats, RunOptions, RunWriter, WriterOptions};
use serde_json::{Value, json};

/// Reads every resource table and view table under `root/delta` with Python's deltalake.
const READ_DELTA: &str = r#"
import sys, json, glob, os
from deltalake import DeltaTable
root = sys.argv[1]
out = {}
for path in sorted(glob.glob(root + "/delta/*")) + sorted(glob.glob(root + "/delta/views/*")):
    if not os.path.isdir(path + "/_delta_log"):
        continue
    dt = DeltaTable(path)
    t = dt.to_pyarrow_table()
    key = "_resource_id" if "_resource_id" in t.schema.names else "id"
    rows = t.to_pylist()
    name = path[len(root) + 1:]
    out[name] = {
        "version": dt.version(),
        "rows": t.num_rows,
        "keys": sorted(set(r[key] for r in rows)),
        "resources": {r["id"]: r["resource"] for r in rows} if "resource" in t.schema.names else {},
    }
print(json.dumps(out))
"#;

fn options(run_id: &str) -> RunOptions {
    let mut options = RunOptions::new(run_id);
    options.formats = Formats {
        ndjson: false,
        parquet: false,
        delta: true,
    };
    options
}

#[test]
fn incremental_run_merges_updates_and_applies_deletions() {
    let work = tempfile::tempdir().unwrap();
    let (base, update) = (work.path().join("base"), work.path().join("update"));
    common::synth(&base, 60, 11);
    common::synth_update(&base, &update, 8);
    let dest = Destination::open(work.path().join("lake").to_str().unwrap()).unwrap();

    // The expected state: every id at its latest version, none of the deleted.
    let mut expected: BTreeMap<String, BTreeMap<String, Value>> = BTreeMap::new();
    let mut run = RunWriter::new(&dest, options("r1")).unwrap();
    for (ty, line) in common::ndjson_lines(&base) {
        run.write_line(&line).unwrap();
        let v: Value = serde_json::from_slice(&line).unwrap();
        expected
            .entry(ty)
            .or_default()
            .insert(v["id"].as_str().unwrap().into(), v);
    }
    let first = run.finish().unwrap();
    assert_eq!(first.delta["delta/Patient"].version, Some(1));

    let mut run = RunWriter::new(&dest, options("r2")).unwrap();
    let updates = common::ndjson_lines(&update);
    let mut updated = 0;
    for (ty, line) in &updates {
        run.write_line(line).unwrap();
        let v: Value = serde_json::from_slice(line).unwrap();
        let previous = expected
            .entry(ty.clone())
            .or_default()
            .insert(v["id"].as_str().unwrap().into(), v);
        updated += usize::from(previous.is_some());
    }
    assert!(updated > 0, "the update batch modifies resources");
    // The batch's own deletions, plus two Observations and a Patient deleted here.
    let mut deletions = common::deleted_in(&update);
    let observations: Vec<String> = expected["Observation"].keys().take(2).cloned().collect();
    deletions.extend(
        observations
            .into_iter()
            .map(|id| ("Observation".to_string(), id)),
    );
    let patient = expected["Patient"].keys().next().unwrap().clone();
    deletions.push(("Patient".into(), patient));
    for (ty, id) in &deletions {
        run.delete(ty, id).unwrap();
        expected.get_mut(ty).unwrap().remove(id);
    }
    let second = run.finish().unwrap();
    assert!(second.delta["delta/Observation"].rows_replaced > 0);

    let Some(got) = common::python_json(READ_DELTA, &[work.path().join("lake").to_str().unwrap()])
    else {
        return;
    };
    for (ty, resources) in &expected {
        let table = &got[format!("delta/{ty}")];
        let ids: Vec<&String> = resources.keys().collect();
        assert_eq!(table["keys"], json!(ids), "{ty}: latest ids, none deleted");
        assert_eq!(table["rows"], resources.len(), "{ty}: one row per id");
        for (id, resource) in resources {
            let text = table["resources"][id].as_str().unwrap();
            assert_eq!(
                &serde_json::from_str::<Value>(text).unwrap(),
                resource,
                "{ty}/{id}"
            );
        }
    }
    for (view, ty) in [
        ("patient", "Patient"),
        ("observation", "Observation"),
        ("condition", "Condition"),
    ] {
        let ids: Vec<&String> = expected[ty].keys().collect();
        assert_eq!(
            got[format!("delta/views/{view}")]["keys"],
            json!(ids),
            "view {view}"
        );
    }
    assert_eq!(got["delta/Observation"]["version"], 2);
}

#[test]
fn repeated_and_deleted_keys_within_one_run_keep_the_last_state() {
    let work = tempfile::tempdir().unwrap();
    let dest = Destination::open(work.path().to_str().unwrap()).unwrap();
    let small = WriterOptions {
        rows_per_batch: 2,
        ..WriterOptions::default()
    };
    let obs = |id: &str, v: u32| {
        json!({"resourceType": "Observation", "id": id, "status": "final",
               "subject": {"reference": "Patient/p"}, "valueInteger": v})
    };
    let mut w = DeltaTableWriter::for_resources(&dest, "Observation", small).unwrap();
    for (id, v) in [("a", 1), ("b", 1), ("c", 1), ("a", 2), ("a", 3), ("d", 1)] {
        w.write(&obs(id, v)).unwrap();
    }
    w.delete("b").unwrap();
    let commit = w.commit().unwrap();
    assert_eq!(commit.rows_written, 6);

    let mut w = DeltaTableWriter::for_resources(&dest, "Observation", small).unwrap();
    w.write(&obs("c", 2)).unwrap();
    w.delete("d").unwrap();
    w.delete("never-existed").unwrap();
    let commit = w.commit().unwrap();
    assert_eq!(commit.rows_replaced, 2);

    let Some(got) = common::python_json(READ_DELTA, &[work.path().to_str().unwrap()]) else {
        return;
    };
    let table = &got["delta/Observation"];
    assert_eq!(table["keys"], json!(["a", "c"]));
    assert_eq!(table["rows"], 2);
    let value = |id: &str| {
        serde_json::from_str::<Value>(table["resources"][id].as_str().unwrap()).unwrap()["valueInteger"].clone()
    };
    assert_eq!((value("a"), value("c")), (json!(3), json!(2)));
}

#[test]
fn duckdb_reads_the_delta_tables_when_its_delta_extension_is_installed() {
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("source");
    common::synth(&source, 20, 3);
    let dest = Destination::open(work.path().join("lake").to_str().unwrap()).unwrap();
    let mut run = RunWriter::new(&dest, options("r1")).unwrap();
    let lines = common::ndjson_lines(&source);
    for (_, line) in &lines {
        run.write_line(line).unwrap();
    }
    run.finish().unwrap();
    let patients = lines.iter().filter(|(t, _)| t == "Patient").count();
    let Some(got) = common::python_json(
        r#"
import sys, json, duckdb
con = duckdb.connect()
try:
    import duckdb_extension_delta, os
    ext = os.path.join(os.path.dirname(duckdb_extension_delta.__file__), "extensions", "v" + duckdb.__version__, "delta.duckdb_extension")
    con.sql(f"LOAD '{ext}'")
except Exception as e:
    print(json.dumps({"skipped": type(e).__name__}))
    sys.exit(0)
n = con.sql(f"select count(distinct id) from delta_scan('{sys.argv[1]}/delta/Patient')").fetchall()[0][0]
v = con.sql(f"select count(*) from delta_scan('{sys.argv[1]}/delta/views/patient')").fetchall()[0][0]
print(json.dumps({"patients": n, "view_rows": v}))
"#,
        &[work.path().join("lake").to_str().unwrap()],
    ) else {
        return;
    };
    match got.get("skipped") {
        Some(why) => eprintln!(
            "duckdb delta extension not available ({why}): pip install duckdb==1.5.5 duckdb-extension-delta==1.5.5"
        ),
        None => {
            assert_eq!(got["patients"], patients);
            assert_eq!(got["view_rows"], patients);
        }
    }
}

#[test]
fn a_table_with_other_columns_is_refused() {
    let work = tempfile::tempdir().unwrap();
    let dest = Destination::open(work.path().to_str().unwrap()).unwrap();
    let views = lake::views::builtin_views();
    let patient_view = views.iter().find(|v| v.name() == "patient").unwrap();
    let w = DeltaTableWriter::for_view(&dest, patient_view, WriterOptions::default()).unwrap();
    w.commit().unwrap();
    // A different view under the same table path.
    let other = lake::views::ViewDefinition::from_json(&json!({
        "resourceType": "ViewDefinition", "name": "patient", "resource": "Patient",
        "select": [{"column": [{"name": "x", "path": "id"}]}]
    }))
    .unwrap();
    let err = DeltaTableWriter::for_view(&dest, &other, WriterOptions::default())
        .err()
        .expect("schema mismatch is refused")
        .to_string();
    assert!(err.contains("other columns"), "{err}");
}
