//! Integration tests of `synth::generate`: determinism, reference integrity, PHI placement, the
//! truth curve, and update batches.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::Path;

use base64::Engine as _;
use serde_json::Value;
use synth::{Format, SynthOptions, SynthReport};

/// Generates `patients` patients with `seed` into `dir`.
pub fn generate(dir: &Path, patients: u64, seed: u64, format: Format) -> SynthReport {
    let mut opts = SynthOptions::new(patients, seed, dir);
    opts.format = format;
    synth::generate(&opts, &|_| {}).expect("generate")
}

/// Generates an update batch of `patients` new patients against `prev` into `dir`.
pub fn update(prev: &Path, dir: &Path, patients: u64) -> SynthReport {
    let mut opts = SynthOptions::new(patients, 0, dir);
    opts.update_of = Some(prev.to_path_buf());
    synth::generate(&opts, &|_| {}).expect("update")
}

/// Every file under `dir`, relative path → bytes.
pub fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path.strip_prefix(root).expect("under root");
                out.insert(
                    rel.to_string_lossy().replace('\\', "/"),
                    std::fs::read(&path).expect("read"),
                );
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// The text of an NDJSON file, gunzipped if its name ends in `.gz` (files are multi-member).
pub fn text(name: &str, bytes: &[u8]) -> String {
    if name.ends_with(".gz") {
        let mut s = String::new();
        flate2::read::MultiGzDecoder::new(bytes)
            .read_to_string(&mut s)
            .expect("gzip");
        s
    } else {
        String::from_utf8(bytes.to_vec()).expect("utf-8")
    }
}

/// The resources of the top-level NDJSON files of an output folder (not `deleted/`).
pub fn resources(dir: &Path) -> Vec<Value> {
    let mut out = Vec::new();
    for (name, bytes) in files(dir) {
        if name.contains('/') || !(name.ends_with(".ndjson") || name.ends_with(".ndjson.gz")) {
            continue;
        }
        for line in text(&name, &bytes).lines() {
            out.push(serde_json::from_str(line).expect("JSON line"));
        }
    }
    out
}

/// The resources of one type.
pub fn of_type<'a>(all: &'a [Value], ty: &str) -> Vec<&'a Value> {
    all.iter().filter(|r| r["resourceType"] == ty).collect()
}

/// `Type/id` of a resource.
pub fn key(r: &Value) -> String {
    format!(
        "{}/{}",
        r["resourceType"].as_str().unwrap(),
        r["id"].as_str().unwrap()
    )
}

/// Every `reference` string inside a JSON value, with whether it sits inside `contained`.
pub fn references(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if k == "reference" {
                    if let Some(s) = x.as_str() {
                        out.push(s.to_string());
                    }
                } else {
                    references(x, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| references(x, out)),
        _ => {}
    }
}

/// The deleted `Type/id`s listed in an output's `deleted/` Bundles.
pub fn deleted(dir: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (name, bytes) in files(dir) {
        if !name.starts_with("deleted/") {
            continue;
        }
        for line in text(&name, &bytes).lines() {
            let b: Value = serde_json::from_str(line).expect("bundle");
            assert_eq!(b["resourceType"], "Bundle");
            assert_eq!(b["type"], "transaction");
            for e in b["entry"].as_array().expect("entries") {
                assert_eq!(e["request"]["method"], "DELETE");
                out.insert(e["request"]["url"].as_str().expect("url").to_string());
            }
        }
    }
    out
}

/// The patient's home ZIP3 by `Patient/id`.
pub fn home_zip3(all: &[Value]) -> BTreeMap<String, String> {
    of_type(all, "Patient")
        .into_iter()
        .map(|p| {
            let home = p["address"]
                .as_array()
                .unwrap()
                .iter()
                .find(|a| a["use"] == "home")
                .expect("home address");
            (
                key(p),
                home["postalCode"].as_str().unwrap()[..3].to_string(),
            )
        })
        .collect()
}

/// Recounts the truth curve from Observations: Detected SARS-CoV-2 PCR results per home ZIP3 per
/// ISO week of the local result date.
pub fn recount(all: &[Value]) -> BTreeMap<(String, String), u64> {
    let zips = home_zip3(all);
    let mut curve = BTreeMap::new();
    for o in of_type(all, "Observation") {
        let pcr = o["code"]["coding"][0]["code"] == "94531-1";
        let detected = o["valueCodeableConcept"]["coding"][0]["code"] == "260373001";
        if pcr && detected {
            let zip3 = zips[o["subject"]["reference"].as_str().unwrap()].clone();
            let week = synth::iso_week_of(o["effectiveDateTime"].as_str().unwrap()).unwrap();
            *curve.entry((zip3, week)).or_default() += 1;
        }
    }
    curve
}

/// The truth file of an output as a map.
pub fn truth(dir: &Path) -> BTreeMap<(String, String), u64> {
    synth::read_truth(dir)
        .expect("truth")
        .into_iter()
        .map(|r| ((r.zip3, r.iso_week), r.cases))
        .collect()
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().expect("temporary folder")
}

#[test]
fn same_seed_gives_byte_identical_output_and_another_seed_differs() {
    let (a, b, c) = (tmp(), tmp(), tmp());
    generate(a.path(), 120, 7, Format::Ndjson);
    generate(b.path(), 120, 7, Format::Ndjson);
    generate(c.path(), 120, 8, Format::Ndjson);
    let (fa, fb, fc) = (files(a.path()), files(b.path()), files(c.path()));
    assert_eq!(fa.keys().collect::<Vec<_>>(), fb.keys().collect::<Vec<_>>());
    for (name, bytes) in &fa {
        assert!(
            bytes == &fb[name],
            "{name} differs between two runs with the same seed"
        );
    }
    assert_ne!(fa["Patient.000.ndjson"], fc["Patient.000.ndjson"]);
    assert!(
        !fa.keys().any(|k| k.ends_with(".part")),
        "no temporary files are left"
    );
}

#[test]
fn output_does_not_depend_on_the_thread_count() {
    let (one, many) = (tmp(), tmp());
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    pool.install(|| generate(one.path(), 300, 9, Format::NdjsonGz));
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(4)
        .build()
        .unwrap();
    pool.install(|| generate(many.path(), 300, 9, Format::NdjsonGz));
    assert!(files(one.path()) == files(many.path()));
}

#[test]
fn gzip_output_holds_the_same_lines() {
    let (plain, gz) = (tmp(), tmp());
    generate(plain.path(), 60, 3, Format::Ndjson);
    generate(gz.path(), 60, 3, Format::NdjsonGz);
    let p = files(plain.path());
    let g = files(gz.path());
    for (name, bytes) in p.iter().filter(|(n, _)| n.ends_with(".ndjson")) {
        let gz_name = format!("{name}.gz");
        assert!(
            text(&gz_name, &g[&gz_name]).as_bytes() == bytes.as_slice(),
            "{name}"
        );
    }
}

#[test]
fn ndjson_files_split_at_the_line_limit() {
    let dir = tmp();
    let mut opts = SynthOptions::new(80, 5, dir.path());
    opts.lines_per_file = 1_000;
    let report = synth::generate(&opts, &|_| {}).unwrap();
    let obs = report.by_type["Observation"];
    assert!(obs > 2_000, "enough Observations to split: {obs}");
    let names = files(dir.path());
    let parts: Vec<_> = names
        .keys()
        .filter(|k| k.starts_with("Observation."))
        .collect();
    assert_eq!(parts.len() as u64, obs.div_ceil(1_000));
    assert_eq!(
        text("x", &names["Observation.000.ndjson"]).lines().count(),
        1_000
    );
    let manifest: Value = serde_json::from_slice(&names["manifest.json"]).unwrap();
    let listed: u64 = manifest["output"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["type"] == "Observation")
        .map(|o| o["count"].as_u64().unwrap())
        .sum();
    assert_eq!(listed, obs);

    let gz = tmp();
    let mut opts = SynthOptions::new(80, 5, gz.path());
    opts.lines_per_file = 1_000;
    opts.format = Format::NdjsonGz;
    synth::generate(&opts, &|_| {}).unwrap();
    let gz_files = files(gz.path());
    for (name, bytes) in names.iter().filter(|(n, _)| n.ends_with(".ndjson")) {
        let gz_name = format!("{name}.gz");
        assert!(
            text(&gz_name, &gz_files[&gz_name]).as_bytes() == bytes.as_slice(),
            "{gz_name}"
        );
    }
}

#[test]
fn every_reference_resolves_in_ndjson_output() {
    let dir = tmp();
    let report = generate(dir.path(), 200, 11, Format::Ndjson);
    let all = resources(dir.path());
    assert_eq!(all.len() as u64, report.resources);
    let ids: BTreeSet<String> = all.iter().map(key).collect();
    assert_eq!(ids.len(), all.len(), "ids are unique per type");
    let mut checked = 0;
    for r in &all {
        let contained: BTreeSet<&str> = r["contained"]
            .as_array()
            .map(|c| c.iter().filter_map(|x| x["id"].as_str()).collect())
            .unwrap_or_default();
        let mut refs = Vec::new();
        references(r, &mut refs);
        for reference in refs {
            if let Some(local) = reference.strip_prefix('#') {
                assert!(contained.contains(local), "{} → {reference}", key(r));
            } else {
                assert!(ids.contains(&reference), "{} → {reference}", key(r));
            }
            checked += 1;
        }
    }
    assert!(
        checked > 100 * all.len() / 50,
        "{checked} references checked"
    );
    let eobs = of_type(&all, "ExplanationOfBenefit");
    assert!(
        eobs.iter()
            .all(|e| e["contained"].as_array().is_some_and(|c| c.len() == 2))
    );
}

#[test]
fn every_reference_resolves_in_bundles() {
    let dir = tmp();
    let report = generate(dir.path(), 40, 12, Format::Bundles);
    let all = files(dir.path());
    let shared: Value = serde_json::from_slice(&all["0-shared.json"]).unwrap();
    let mut conditional = BTreeSet::new();
    for e in shared["entry"].as_array().unwrap() {
        let r = &e["resource"];
        if let Some(query) = e["request"]["ifNoneExist"].as_str() {
            conditional.insert(format!("{}?{query}", r["resourceType"].as_str().unwrap()));
        }
    }
    let mut bundles = 0;
    let mut entries = 0;
    for (name, bytes) in &all {
        if !name.ends_with(".json") || name == "0-shared.json" || name == "manifest.json" {
            continue;
        }
        bundles += 1;
        let b: Value = serde_json::from_slice(bytes).unwrap();
        assert_eq!(b["type"], "transaction");
        let full: BTreeSet<&str> = b["entry"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["fullUrl"].as_str().unwrap())
            .collect();
        for e in b["entry"].as_array().unwrap() {
            entries += 1;
            assert_eq!(e["request"]["method"], "POST");
            let mut refs = Vec::new();
            references(&e["resource"], &mut refs);
            for r in refs {
                let ok = full.contains(r.as_str())
                    || conditional.contains(&r)
                    || r == "#referral"
                    || r == "#coverage";
                assert!(ok, "{name}: unresolved {r}");
            }
        }
    }
    assert_eq!(bundles, 40);
    let shared_count = shared["entry"].as_array().unwrap().len() as u64;
    assert_eq!(entries + shared_count, report.resources);
}

#[test]
fn phi_sits_where_real_exports_put_it() {
    let dir = tmp();
    generate(dir.path(), 200, 21, Format::Ndjson);
    let all = resources(dir.path());
    let patients = of_type(&all, "Patient");
    let has = |f: &dyn Fn(&Value) -> bool| patients.iter().filter(|p| f(p)).count();
    let ident = |p: &Value, code: &str| {
        p["identifier"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["type"]["coding"][0]["code"] == code)
            .map(|i| i["value"].as_str().unwrap().to_string())
    };
    let ext = |p: &Value, url: &str| {
        p["extension"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["url"].as_str().unwrap().ends_with(url))
    };
    let n = patients.len();
    assert_eq!(n, 200);
    assert_eq!(
        has(&|p| p["name"][0]["use"] == "official" && p["name"][0]["given"][0].is_string()),
        n
    );
    assert!(
        has(&|p| p["name"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["use"] == "maiden"))
            > 10
    );
    assert_eq!(
        has(&|p| ident(p, "SS").is_some_and(|s| s.starts_with("999-") && s.len() == 11)),
        n
    );
    assert_eq!(has(&|p| ident(p, "MR").is_some()), n);
    assert!(has(&|p| ident(p, "DL").is_some()) > n / 2);
    assert!(has(&|p| ident(p, "PPN").is_some()) > n / 2);
    assert_eq!(has(&|p| p["telecom"][0]["system"] == "phone"), n);
    assert_eq!(
        has(&|p| p["telecom"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["system"] == "email")),
        n
    );
    assert_eq!(
        has(&|p| p["address"][0]["line"][0].is_string()
            && p["address"][0]["postalCode"].is_string()),
        n
    );
    assert_eq!(
        has(&|p| p["address"][0]["extension"][0]["url"]
            == "http://hl7.org/fhir/StructureDefinition/geolocation"),
        n
    );
    assert_eq!(
        has(&|p| p["birthDate"].as_str().is_some_and(|d| d.len() == 10)),
        n
    );
    assert_eq!(
        has(&|p| ext(p, "patient-mothersMaidenName") && ext(p, "patient-birthPlace")),
        n
    );
    assert_eq!(
        has(&|p| p["text"]["div"]
            .as_str()
            .unwrap()
            .contains(p["name"][0]["family"].as_str().unwrap())),
        n
    );
    let deceased = has(&|p| p.get("deceasedDateTime").is_some());
    assert!((n / 20..n / 4).contains(&deceased), "{deceased} deceased");
    let old = has(&|p| {
        let d = p["birthDate"].as_str().unwrap();
        d < "1932-12-31"
    });
    assert!(old > 0, "some patients are over 89");

    let names: BTreeMap<String, (String, String)> = patients
        .iter()
        .map(|p| {
            let given = p["name"][0]["given"][0].as_str().unwrap().to_string();
            let family = p["name"][0]["family"].as_str().unwrap().to_string();
            (key(p), (given, family))
        })
        .collect();
    let mut notes = 0;
    for d in of_type(&all, "DocumentReference") {
        let Some(data) = d["content"][0]["attachment"]["data"].as_str() else {
            assert!(d["content"][0]["attachment"]["url"].is_string());
            continue;
        };
        let text = String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(data)
                .unwrap(),
        )
        .unwrap();
        let (given, family) = &names[d["subject"]["reference"].as_str().unwrap()];
        assert!(
            text.contains(given.as_str()) && text.contains(family.as_str()),
            "note names its patient"
        );
        notes += 1;
    }
    assert!(notes > n);
    for e in of_type(&all, "Encounter") {
        let (given, _) = &names[e["subject"]["reference"].as_str().unwrap()];
        assert!(
            e["subject"]["display"]
                .as_str()
                .unwrap()
                .contains(given.as_str())
        );
        assert!(
            e["participant"][0]["individual"]["display"]
                .as_str()
                .unwrap()
                .starts_with("Dr. ")
        );
        assert!(e["serviceProvider"]["display"].is_string());
    }
    let prapare = of_type(&all, "Observation")
        .into_iter()
        .filter(|o| o["code"]["coding"][0]["code"] == "56799-0" && o["valueString"].is_string())
        .count();
    assert!(prapare > 0, "PRAPARE address as valueString");
}

#[test]
fn covid_content_uses_real_codes() {
    let dir = tmp();
    generate(dir.path(), 300, 31, Format::Ndjson);
    let all = resources(dir.path());
    let code = |r: &Value, path: &str| {
        r[path]["coding"][0]["code"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let pcr: Vec<_> = of_type(&all, "Observation")
        .into_iter()
        .filter(|o| code(o, "code") == "94531-1")
        .collect();
    let detected = pcr
        .iter()
        .filter(|o| code(o, "valueCodeableConcept") == "260373001")
        .count();
    let not_detected = pcr
        .iter()
        .filter(|o| code(o, "valueCodeableConcept") == "260415000")
        .count();
    assert_eq!(detected + not_detected, pcr.len());
    assert!(
        detected > 20 && not_detected > 20,
        "{detected} detected, {not_detected} not detected"
    );
    let conditions = of_type(&all, "Condition");
    assert_eq!(
        conditions
            .iter()
            .filter(|c| code(c, "code") == "840539006")
            .count(),
        detected
    );
    let vaccines: BTreeSet<String> = of_type(&all, "Immunization")
        .iter()
        .map(|i| code(i, "vaccineCode"))
        .collect();
    for cvx in ["207", "208", "212", "140"] {
        assert!(vaccines.contains(cvx), "CVX {cvx}");
    }
    assert!(
        of_type(&all, "MedicationRequest")
            .iter()
            .any(|m| m.get("medicationReference").is_some())
    );
    assert!(
        of_type(&all, "MedicationRequest")
            .iter()
            .any(|m| m.get("medicationCodeableConcept").is_some())
    );
    let classes: BTreeSet<&str> = of_type(&all, "Encounter")
        .iter()
        .map(|e| e["class"]["code"].as_str().unwrap())
        .collect();
    assert!(
        classes.contains("AMB") && classes.contains("IMP") && classes.contains("EMER"),
        "{classes:?}"
    );
}

#[test]
fn truth_curve_matches_the_written_observations_and_has_waves() {
    let dir = tmp();
    let report = generate(dir.path(), 400, 41, Format::Ndjson);
    let all = resources(dir.path());
    let written = truth(dir.path());
    assert_eq!(recount(&all), written);
    assert_eq!(written.values().sum::<u64>(), report.covid_cases);
    let by_year = |y: &str| {
        written
            .iter()
            .filter(|((_, w), _)| w.starts_with(y))
            .map(|(_, n)| n)
            .sum::<u64>()
    };
    assert!(by_year("2020") > 0 && by_year("2021") > 0 && by_year("2022") > 0);
    let zips: BTreeSet<&String> = written.keys().map(|(z, _)| z).collect();
    assert!(zips.len() >= 5, "cases in several ZIP3 areas: {zips:?}");
    let attack = report.covid_cases as f64 / 400.0;
    assert!((0.1..0.6).contains(&attack), "attack rate {attack}");
    let rows = synth::read_truth(dir.path()).unwrap();
    assert!(rows.iter().all(|r| r.week_start.len() == 10 && r.cases > 0));
}

#[test]
fn update_batch_modifies_adds_and_deletes_consistently() {
    let (base, upd) = (tmp(), tmp());
    generate(base.path(), 300, 51, Format::Ndjson);
    let report = update(base.path(), upd.path(), 40);
    assert_eq!(report.batch, 1);
    assert_eq!(report.patients, 40);
    let before = resources(base.path());
    let after = resources(upd.path());
    let before_ids: BTreeMap<String, &Value> = before.iter().map(|r| (key(r), r)).collect();
    let deleted = deleted(upd.path());
    assert!(!deleted.is_empty(), "some deletions");
    assert_eq!(deleted.len() as u64, report.deleted);
    for d in &deleted {
        assert!(before_ids.contains_key(d), "deleted {d} existed before");
    }
    let since = "2023-01-01T00:00:00.000Z";
    let (mut modified, mut added) = (0, 0);
    for r in &after {
        let k = key(r);
        let last = r["meta"]["lastUpdated"].as_str().unwrap();
        if r["resourceType"] == "Group" {
            continue;
        }
        assert!(last > since, "{k} is newer than the previous export");
        assert!(!deleted.contains(&k), "{k} is not both written and deleted");
        match before_ids.get(&k) {
            Some(old) => {
                modified += 1;
                let v: u64 = r["meta"]["versionId"].as_str().unwrap().parse().unwrap();
                assert!(v >= 2, "{k} has a new version");
                assert_ne!(*old, r);
                assert_eq!(old["id"], r["id"]);
            }
            None => added += 1,
        }
    }
    assert!(
        modified > 0 && added > 0,
        "{modified} modified, {added} added"
    );
    let new_patients = of_type(&after, "Patient")
        .iter()
        .filter(|p| !before_ids.contains_key(&key(p)))
        .count();
    assert_eq!(new_patients, 40);

    // The merged state: earlier resources, replaced by new versions, minus deletions.
    let mut merged: BTreeMap<String, Value> = before.iter().map(|r| (key(r), r.clone())).collect();
    for r in &after {
        merged.insert(key(r), r.clone());
    }
    for d in &deleted {
        merged.remove(d);
    }
    let merged: Vec<Value> = merged.into_values().collect();
    let ids: BTreeSet<String> = merged.iter().map(key).collect();
    for r in &merged {
        let mut refs = Vec::new();
        references(r, &mut refs);
        for reference in refs.iter().filter(|r| !r.starts_with('#')) {
            assert!(
                ids.contains(reference),
                "{} → {reference} after the update",
                key(r)
            );
        }
    }
    assert_eq!(recount(&merged), truth(upd.path()));
    let group = of_type(&merged, "Group")[0];
    assert_eq!(
        group["quantity"].as_u64().unwrap() as usize,
        of_type(&merged, "Patient").len()
    );

    let manifest: Value =
        serde_json::from_slice(&std::fs::read(upd.path().join(synth::MANIFEST_FILE)).unwrap())
            .unwrap();
    assert_eq!(manifest["deleted"][0]["url"], "deleted/Bundle.000.ndjson");
    assert!(manifest["transactionTime"].as_str().unwrap() > since);
}

#[test]
fn a_second_update_replays_the_first() {
    let (base, one, two, two_again) = (tmp(), tmp(), tmp(), tmp());
    generate(base.path(), 100, 61, Format::Ndjson);
    update(base.path(), one.path(), 10);
    let r = update(one.path(), two.path(), 10);
    assert_eq!(r.batch, 2);
    update(one.path(), two_again.path(), 10);
    assert_eq!(files(two.path()), files(two_again.path()));
    let first = resources(one.path());
    for p in of_type(&resources(two.path()), "Patient") {
        let v: u64 = p["meta"]["versionId"].as_str().unwrap().parse().unwrap();
        let earlier = first.iter().find(|x| key(x) == key(p));
        if let Some(e) = earlier {
            let ev: u64 = e["meta"]["versionId"].as_str().unwrap().parse().unwrap();
            assert!(v > ev, "versions keep rising across batches");
        }
    }
}

#[test]
fn options_that_cannot_work_are_refused() {
    let (base, out) = (tmp(), tmp());
    generate(base.path(), 5, 1, Format::Ndjson);
    let mut opts = SynthOptions::new(5, 1, out.path());
    opts.update_of = Some(base.path().to_path_buf());
    opts.format = Format::Bundles;
    assert!(matches!(
        synth::generate(&opts, &|_| {}),
        Err(synth::Error::Options(_))
    ));
    opts.format = Format::Ndjson;
    opts.update_of = Some(out.path().join("missing"));
    assert!(matches!(
        synth::generate(&opts, &|_| {}),
        Err(synth::Error::Io { .. })
    ));
    assert!("parquet".parse::<Format>().is_err());
    assert_eq!("ndjson.gz".parse::<Format>().unwrap(), Format::NdjsonGz);
}

#[test]
fn progress_reports_every_patient() {
    let dir = tmp();
    let seen = std::sync::Mutex::new(Vec::new());
    let opts = SynthOptions::new(600, 1, dir.path());
    synth::generate(&opts, &|n| seen.lock().unwrap().push(n)).unwrap();
    let seen = seen.into_inner().unwrap();
    assert!(seen.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(seen.last(), Some(&600));
}
