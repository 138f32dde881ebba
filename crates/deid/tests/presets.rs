//! The built-in presets: they load, compile, and do what they promise on Synthea patients.

use std::io::Read;

use deid::{Config, Context, Engine, Today};
use serde_json::Value;

const TODAY: Today = Today {
    year: 2025,
    month: 9,
    day: 5,
};

fn engine(name: &str) -> Engine {
    let mut config = Config::from_json(deid::presets::preset(name).unwrap()).unwrap();
    config
        .set_key(deid::config::KeyKind::CryptoHash, "test-hash-key")
        .unwrap();
    config
        .set_key(deid::config::KeyKind::DateShift, "test-shift-key")
        .unwrap();
    Engine::new(config).unwrap().with_today(TODAY)
}

fn synthea(file: &str) -> Value {
    let path = format!(
        "{}/../../data/synthea-covid-120/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut text = String::new();
    bzip2::read::BzDecoder::new(std::fs::File::open(&path).unwrap())
        .read_to_string(&mut text)
        .unwrap();
    serde_json::from_str(&text).unwrap()
}

const PATIENTS: [&str; 2] = [
    "057aa36e-b892-9964-75b9-ffb46b097e34.json.bz2",
    "0696ac49-3128-87d3-7344-04510aa4f324.json.bz2",
];

#[test]
fn every_preset_loads_and_compiles() {
    let names: Vec<&str> = deid::presets::presets().iter().map(|(n, _)| *n).collect();
    assert_eq!(
        names,
        [
            "safe-harbor",
            "safe-harbor-strict",
            "research",
            "limited-data-set",
            "ms-sample"
        ]
    );
    for name in names {
        let mut config = Config::from_json(deid::presets::preset(name).unwrap()).unwrap();
        assert!(
            !config.missing_keys().is_empty(),
            "{name} must not ship keys"
        );
        config.generate_missing_keys();
        Engine::new(config).unwrap();
    }
    assert!(deid::presets::preset("nope").is_none());
    let description = deid::presets::presets()[2].1;
    assert!(
        description.contains("NOT Safe Harbor") && description.contains("expert determination")
    );
}

/// The patient's identifying values, from the input.
fn identifiers(bundle: &Value) -> Vec<String> {
    let patient = &bundle["entry"][0]["resource"];
    assert_eq!(patient["resourceType"], "Patient");
    let mut out = Vec::new();
    for name in patient["name"].as_array().unwrap() {
        out.push(name["family"].as_str().unwrap().to_string());
        for given in name["given"].as_array().unwrap() {
            out.push(given.as_str().unwrap().to_string());
        }
    }
    for id in patient["identifier"].as_array().unwrap() {
        out.push(id["value"].as_str().unwrap().to_string());
    }
    for t in patient["telecom"].as_array().unwrap() {
        out.push(t["value"].as_str().unwrap().to_string());
    }
    for a in patient["address"].as_array().unwrap() {
        out.push(a["city"].as_str().unwrap().to_string());
        for line in a["line"].as_array().unwrap() {
            out.push(line.as_str().unwrap().to_string());
        }
    }
    out.push(patient["birthDate"].as_str().unwrap().to_string());
    out
}

fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|i| strings(i, out)),
        Value::Object(m) => m.values().for_each(|i| strings(i, out)),
        _ => {}
    }
}

fn pcr_results(bundle: &Value) -> Vec<Value> {
    bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["resource"])
        .filter(|r| {
            r["resourceType"] == "Observation" && r["code"]["coding"][0]["code"] == "94531-1"
        })
        .map(|r| r["valueCodeableConcept"].clone())
        .collect()
}

#[test]
fn safe_harbor_removes_identifiers_and_keeps_clinical_content() {
    let e = engine("safe-harbor");
    for file in PATIENTS {
        let input = synthea(file);
        let secrets = identifiers(&input);
        let pcr = pcr_results(&input);
        let mut output = input.clone();
        e.deidentify(&mut output, &Context::default()).unwrap();
        let mut texts = Vec::new();
        strings(&output, &mut texts);
        for secret in &secrets {
            assert!(
                !texts.iter().any(|t| t.contains(secret.as_str())),
                "{file}: an identifier survived"
            );
        }
        // Every reference to an entry still resolves.
        let full_urls: Vec<&str> = output["entry"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["fullUrl"].as_str())
            .collect();
        let mut references = 0;
        for entry in output["entry"].as_array().unwrap() {
            let mut refs = Vec::new();
            collect_references(&entry["resource"], &mut refs);
            for r in refs.iter().filter(|r| r.starts_with("urn:uuid:")) {
                assert!(
                    full_urls.contains(&r.as_str()),
                    "{file}: a reference does not resolve"
                );
                references += 1;
            }
        }
        assert!(references > 100);
        // The PCR results are all still there, with their values.
        assert_eq!(pcr_results(&output), pcr, "{file}");
        // Dates are cut to their year, zip codes to 3 digits.
        let patient = &output["entry"][0]["resource"];
        // (Born in 1929: over 89, so no birth date at all.)
        assert!(patient["birthDate"].as_str().is_none_or(|d| d.len() == 4));
        let zip = patient["address"][0]["postalCode"]
            .as_str()
            .unwrap_or("00000");
        assert!(zip.ends_with("00"), "{zip}");
    }
}

fn collect_references(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get("reference") {
                out.push(r.clone());
            }
            m.values().for_each(|x| collect_references(x, out));
        }
        Value::Array(items) => items.iter().for_each(|x| collect_references(x, out)),
        _ => {}
    }
}

fn encounter_days(bundle: &Value) -> Vec<i64> {
    bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["resource"])
        .filter(|r| r["resourceType"] == "Encounter")
        .map(|r| {
            let start = r["period"]["start"].as_str().unwrap();
            let (y, m, d) = (&start[0..4], &start[5..7], &start[8..10]);
            let (y, m, d): (i64, i64, i64) =
                (y.parse().unwrap(), m.parse().unwrap(), d.parse().unwrap());
            // Days from civil (proleptic Gregorian).
            let y = if m <= 2 { y - 1 } else { y };
            let era = y.div_euclid(400);
            let yoe = y - era * 400;
            let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
            era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy
        })
        .collect()
}

#[test]
fn research_keeps_intervals_within_a_patient() {
    let e = engine("research");
    for file in PATIENTS {
        let input = synthea(file);
        let before = encounter_days(&input);
        let mut output = input.clone();
        e.deidentify(&mut output, &Context::default()).unwrap();
        let after = encounter_days(&output);
        assert_eq!(before.len(), after.len());
        let shift = after[0] - before[0];
        assert!(shift != 0 && shift.abs() <= 50, "{shift}");
        assert!(
            before.iter().zip(&after).all(|(b, a)| a - b == shift),
            "{file}"
        );
        let mut texts = Vec::new();
        strings(&output, &mut texts);
        for secret in identifiers(&input)
            .iter()
            .filter(|s| s.len() > 3 && !s.contains('-'))
        {
            assert!(
                !texts.iter().any(|t| t.contains(secret.as_str())),
                "{file}: an identifier survived"
            );
        }
    }
}

#[test]
fn limited_data_set_keeps_dates_city_and_zip() {
    let e = engine("limited-data-set");
    let input = synthea(PATIENTS[0]);
    let mut output = input.clone();
    e.deidentify(&mut output, &Context::default()).unwrap();
    let (p_in, p_out) = (
        &input["entry"][0]["resource"],
        &output["entry"][0]["resource"],
    );
    assert_eq!(p_out["birthDate"], p_in["birthDate"]);
    assert_eq!(p_out["address"][0]["city"], p_in["address"][0]["city"]);
    assert_eq!(
        p_out["address"][0]["postalCode"],
        p_in["address"][0]["postalCode"]
    );
    assert!(p_out["address"][0].get("line").is_none());
    assert!(
        p_out["name"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n.get("family").is_none() && n.get("given").is_none())
    );
    assert!(
        p_out["telecom"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t.get("value").is_none())
    );
    assert!(
        p_out["identifier"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i.get("value").is_none())
    );
}
