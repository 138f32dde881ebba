//! Engine semantics: rule precedence, nested resources, labels, scopes, the batch call.

use deid::methods::{crypto_hash, date_shift, encrypt};
use deid::{Config, Context, Engine, Error, Today};
use serde_json::{Value, json};

const TODAY: Today = Today {
    year: 2025,
    month: 9,
    day: 5,
};

fn engine(rules: Value, parameters: Value) -> Engine {
    let config = json!({"fhirVersion": "R4", "fhirPathRules": rules, "parameters": parameters});
    Engine::new(Config::from_json(&config.to_string()).unwrap())
        .unwrap()
        .with_today(TODAY)
}

fn run(engine: &Engine, mut resource: Value) -> Value {
    engine
        .deidentify(&mut resource, &Context::default())
        .unwrap();
    resource
}

fn codes(resource: &Value) -> Vec<String> {
    resource["meta"]["security"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|c| c["code"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn patient() -> Value {
    json!({
        "resourceType": "Patient",
        "id": "example",
        "name": [{"use": "official", "family": "Doe", "given": ["Jane"]}],
        "address": [{"line": ["1 Main St"], "city": "Seattle", "state": "WA", "postalCode": "98052", "country": "US"}],
        "birthDate": "1980-03-04"
    })
}

#[test]
fn first_rule_to_touch_a_node_wins() {
    let e = engine(
        json!([
            {"path": "nodesByType('Address').state", "method": "keep"},
            {"path": "nodesByType('HumanName').use", "method": "keep"},
            {"path": "nodesByType('Address')", "method": "redact"},
            {"path": "nodesByType('HumanName')", "method": "redact"}
        ]),
        json!({"enablePartialZipCodesForRedact": true}),
    );
    let out = run(&e, patient());
    assert_eq!(
        out["address"],
        json!([{"state": "WA", "postalCode": "98000"}])
    );
    assert_eq!(out["name"], json!([{"use": "official"}]));
    assert_eq!(codes(&out), ["REDACTED", "ABSTRED"]);
}

#[test]
fn keep_only_adds_no_meta() {
    let e = engine(
        json!([{"path": "Patient.name", "method": "keep"}]),
        json!({}),
    );
    assert_eq!(run(&e, patient()), patient());
}

#[test]
fn resource_rules_and_untouched_content() {
    let e = engine(json!([{"path": "Patient", "method": "redact"}]), json!({}));
    let out = run(&e, patient());
    assert_eq!(
        out,
        json!({"resourceType": "Patient", "meta": {"security": [
            {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "REDACTED", "display": "redacted"}
        ]}})
    );
    // Rules for other types and for unknown types never apply.
    let e = engine(
        json!([{"path": "Observation", "method": "redact"}, {"path": "Extension.url", "method": "redact"}, {"path": "TestResource", "method": "redact"}]),
        json!({}),
    );
    let out = run(&e, patient());
    assert_eq!(out, patient());
    assert_eq!(
        serde_json::to_string(&out).unwrap(),
        serde_json::to_string(&patient()).unwrap()
    );
}

fn observation() -> Value {
    json!({
        "resourceType": "Observation",
        "id": "o1",
        "status": "final",
        "code": {"text": "t"},
        "subject": {"reference": "Patient/example", "display": "Jane Doe"},
        "valueQuantity": {"value": 7.25, "unit": "mg"},
        "referenceRange": [{"low": {"value": 10, "unit": "TestUnit"}}]
    })
}

#[test]
fn perturb_then_redact_of_the_same_node() {
    let e = engine(
        json!([
            {"path": "Observation.referenceRange.low", "method": "perturb", "span": 2, "roundTo": 1},
            {"path": "Observation.referenceRange.low", "method": "redact"}
        ]),
        json!({}),
    );
    let out = run(&e, observation());
    let low = &out["referenceRange"][0]["low"];
    assert_eq!(low["unit"], "TestUnit");
    let v = low["value"].as_f64().unwrap();
    assert!((9.0..=11.0).contains(&v), "{v}");
    assert_eq!(codes(&out), ["PERTURBED"]);
}

#[test]
fn redact_then_perturb_of_the_parent() {
    let e = engine(
        json!([
            {"path": "Observation.referenceRange.low.value", "method": "redact"},
            {"path": "Observation.referenceRange.low", "method": "perturb", "span": 2}
        ]),
        json!({}),
    );
    let out = run(&e, observation());
    assert_eq!(
        out["referenceRange"],
        json!([{"low": {"unit": "TestUnit"}}])
    );
    assert_eq!(codes(&out), ["REDACTED"]);
}

#[test]
fn reference_aware_hashing() {
    let e = engine(
        json!([{"path": "Observation.subject", "method": "cryptoHash"}, {"path": "Resource.id", "method": "cryptoHash"}]),
        json!({"cryptoHashKey": "123"}),
    );
    let out = run(&e, observation());
    assert_eq!(
        out["subject"]["reference"],
        "Patient/698d54f0494528a759f19c8e87a9f99e75a5881b9267ee3926bcf62c992d84ba"
    );
    assert_eq!(
        out["subject"]["display"],
        crypto_hash::hash("123", "Jane Doe")
    );
    assert_eq!(out["id"], crypto_hash::hash("123", "o1"));
    assert_eq!(codes(&out), ["CRYTOHASH"]);
    // Booleans and numbers are hashed as .NET writes them, and become strings.
    let e = engine(
        json!([{"path": "Patient.active", "method": "cryptoHash"}, {"path": "Patient.multipleBirth", "method": "cryptoHash"}]),
        json!({"cryptoHashKey": "123"}),
    );
    let out = run(
        &e,
        json!({"resourceType": "Patient", "active": true, "multipleBirthInteger": 2}),
    );
    assert_eq!(out["active"], crypto_hash::hash("123", "True"));
    assert_eq!(out["multipleBirthInteger"], crypto_hash::hash("123", "2"));
}

#[test]
fn encryption_is_reversible() {
    let key = "704ab12c8e3e46d4bea600ef62a6bec7";
    let e = engine(
        json!([{"path": "Patient.name.family", "method": "encrypt"}]),
        json!({"encryptKey": key}),
    );
    let out = run(&e, patient());
    let encrypted = out["name"][0]["family"].as_str().unwrap();
    assert_ne!(encrypted, "Doe");
    assert_eq!(encrypt::decrypt(key, encrypted).unwrap(), "Doe");
    assert_eq!(codes(&out), ["MASKED"]);
}

#[test]
fn ages_over_89_are_removed() {
    let e = engine(
        json!([{"path": "nodesByType('Age')", "method": "redact"}]),
        json!({"enablePartialAgesForRedact": true}),
    );
    let history = |age: i64| {
        json!({"resourceType": "FamilyMemberHistory", "status": "completed", "patient": {"reference": "Patient/1"},
               "relationship": {"text": "father"},
               "ageAge": {"value": age, "unit": "years", "system": "http://unitsofmeasure.org", "code": "a"}})
    };
    assert_eq!(run(&e, history(65))["ageAge"], json!({"value": 65}));
    assert_eq!(run(&e, history(89))["ageAge"], json!({"value": 89}));
    assert!(run(&e, history(90)).get("ageAge").is_none());
    assert_eq!(codes(&run(&e, history(65))), ["REDACTED"]);
}

#[test]
fn dates_keep_their_year_or_shift() {
    let e = engine(
        json!([{"path": "nodesByType('date')", "method": "dateShift"}, {"path": "nodesByType('dateTime')", "method": "redact"}]),
        json!({"dateShiftKey": "dummy", "enablePartialDatesForRedact": true}),
    );
    let mut p = patient();
    p["id"] = json!("");
    p.as_object_mut().unwrap().remove("id");
    p["deceasedDateTime"] = json!("2015-02-07T13:28:17-05:00");
    p["name"][0]["period"] = json!({"start": "1925-02-07"});
    let out = run(&e, p);
    assert_eq!(out["birthDate"], "1980-02-12"); // −21 days with key `dummy` and no id
    assert_eq!(out["deceasedDateTime"], "2015");
    assert_eq!(codes(&out), ["REDACTED", "PERTURBED"]);
}

#[test]
fn the_clock_of_the_over_89_rule_is_injectable() {
    let rules = json!([{"path": "nodesByType('date')", "method": "dateShift"}]);
    let params = json!({"dateShiftKey": "dummy", "enablePartialDatesForRedact": true});
    let p = json!({"resourceType": "Patient", "birthDate": "1940-01-01"});
    let before = engine(rules.clone(), params.clone()).with_today(Today::new(2029, 12, 31));
    assert_eq!(run(&before, p.clone())["birthDate"], "1939-12-11");
    let after = engine(rules, params).with_today(Today::new(2030, 1, 1));
    assert!(run(&after, p).get("birthDate").is_none());
}

fn bundle() -> Value {
    json!({
        "resourceType": "Bundle",
        "id": "b1",
        "type": "collection",
        "entry": [
            {"fullUrl": "urn:uuid:11111111-2222-3333-4444-555555555555",
             "resource": {"resourceType": "Patient", "id": "11111111-2222-3333-4444-555555555555", "birthDate": "1980-03-04",
                          "name": [{"family": "Doe"}]}},
            {"fullUrl": "urn:uuid:66666666-2222-3333-4444-555555555555",
             "resource": {"resourceType": "Observation", "id": "o1", "status": "final", "code": {"text": "x"},
                          "subject": {"reference": "urn:uuid:11111111-2222-3333-4444-555555555555"},
                          "effectiveDateTime": "2020-03-04T10:00:00Z",
                          "contained": [{"resourceType": "Practitioner", "id": "pr", "name": [{"family": "Who"}]}]}},
            {"resource": {"resourceType": "Organization", "id": "org", "name": "Acme"}}
        ]
    })
}

#[test]
fn nested_resources_use_their_own_rules_and_labels_bubble_up() {
    let e = engine(
        json!([
            {"path": "Bundle.entry.fullUrl", "method": "redact"},
            {"path": "Practitioner.name", "method": "redact"},
            {"path": "Observation.effective", "method": "dateShift"},
            {"path": "Patient.birthDate", "method": "keep"},
            {"path": "nodesByType('HumanName')", "method": "substitute", "replaceWith": {"family": "X"}}
        ]),
        json!({"dateShiftKey": "123"}),
    );
    let out = run(&e, bundle());
    // The Bundle's rules do not reach its entries; each entry gets its own labels.
    assert!(out["entry"][0].get("fullUrl").is_none());
    assert_eq!(
        out["entry"][0]["resource"]["name"],
        json!([{"family": "X"}])
    );
    assert_eq!(codes(&out["entry"][0]["resource"]), ["SUBSTITUTED"]);
    let obs = &out["entry"][1]["resource"];
    // Contained resources are processed with their own type's rules, and get no label of
    // their own: their operations go to the container.
    assert!(obs["contained"][0].get("name").is_none());
    assert!(obs["contained"][0].get("meta").is_none());
    assert_eq!(codes(obs), ["REDACTED", "PERTURBED"]);
    // Scope `resource`: every entry shifts by the outermost resource's id.
    let offset = date_shift::offset("b1", "123");
    assert_eq!(offset, 10);
    assert_eq!(obs["effectiveDateTime"], "2020-03-14T00:00:00Z");
    // The untouched Organization gets nothing; the Bundle gets the union.
    assert_eq!(
        out["entry"][2]["resource"],
        json!({"resourceType": "Organization", "id": "org", "name": "Acme"})
    );
    assert_eq!(codes(&out), ["REDACTED", "PERTURBED", "SUBSTITUTED"]);
}

#[test]
fn patient_scope_shifts_a_patients_resources_together() {
    let e = engine(
        json!([{"path": "Resource.id", "method": "cryptoHash"}, {"path": "nodesByType('date')", "method": "dateShift"},
               {"path": "nodesByType('dateTime')", "method": "dateShift"}]),
        json!({"dateShiftKey": "k", "cryptoHashKey": "k", "dateShiftScope": "patient"}),
    );
    let out = run(&e, bundle());
    let offset = date_shift::offset("11111111-2222-3333-4444-555555555555", "k");
    let shift = |date: &str, days: i64| {
        let d = date_shift::shift(date, date_shift::DateKind::DateTime, days, false, TODAY);
        match d {
            date_shift::Shift::Shifted(s) => s,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(
        out["entry"][0]["resource"]["birthDate"],
        shift("1980-03-04", offset)
    );
    assert_eq!(
        out["entry"][1]["resource"]["effectiveDateTime"],
        shift("2020-03-04T10:00:00Z", offset)
    );
    // NDJSON: the Patient and an Observation referring to it shift alike, file by file.
    let patient = json!({"resourceType": "Patient", "id": "p7", "birthDate": "1980-03-04"});
    let observation = json!({"resourceType": "Observation", "id": "o9", "status": "final", "code": {"text": "x"},
        "subject": {"reference": "Patient/p7"}, "effectiveDateTime": "1980-03-04"});
    let p = run(&e, patient);
    let o = run(&e, observation);
    assert_eq!(p["birthDate"], o["effectiveDateTime"]);
    assert_eq!(
        p["birthDate"],
        shift("1980-03-04", date_shift::offset("p7", "k"))
    );
}

#[test]
fn file_and_folder_scopes_use_the_names() {
    let rules = json!([{"path": "nodesByType('date')", "method": "dateShift"}]);
    let e = engine(
        rules.clone(),
        json!({"dateShiftKey": "123", "dateShiftScope": "file"}),
    );
    let mut p = json!({"resourceType": "Patient", "id": "x", "birthDate": "2000-01-01"});
    let ctx = Context {
        file: Some("/data/in/patient1.json"),
        ..Context::default()
    };
    e.deidentify(&mut p, &ctx).unwrap();
    let expected = date_shift::shift(
        "2000-01-01",
        date_shift::DateKind::Date,
        date_shift::offset("patient1.json", "123"),
        false,
        TODAY,
    );
    assert_eq!(
        date_shift::Shift::Shifted(p["birthDate"].as_str().unwrap().to_string()),
        expected
    );
    let e = engine(
        rules,
        json!({"dateShiftKey": "123", "dateShiftScope": "folder"}),
    );
    let mut p = json!({"resourceType": "Patient", "id": "x", "birthDate": "2000-01-01"});
    let ctx = Context {
        folder: Some("/data/in/"),
        ..Context::default()
    };
    e.deidentify(&mut p, &ctx).unwrap();
    let expected = date_shift::shift(
        "2000-01-01",
        date_shift::DateKind::Date,
        date_shift::offset("in", "123"),
        false,
        TODAY,
    );
    assert_eq!(
        date_shift::Shift::Shifted(p["birthDate"].as_str().unwrap().to_string()),
        expected
    );
}

#[test]
fn fixed_offset_overrides_the_key() {
    let e = engine(
        json!([{"path": "nodesByType('date')", "method": "dateShift"}]),
        json!({"dateShiftFixedOffsetInDays": 7}),
    );
    assert_eq!(run(&e, patient())["birthDate"], "1980-03-11");
}

#[test]
fn nodes_by_name_and_where_filters() {
    let e = engine(
        json!([
            {"path": "nodesByName('city')", "method": "redact"},
            {"path": "Patient.name.where(use = 'official').family", "method": "redact"}
        ]),
        json!({}),
    );
    let out = run(&e, patient());
    assert!(out["address"][0].get("city").is_none());
    assert_eq!(out["address"][0]["state"], "WA");
    assert_eq!(out["name"], json!([{"use": "official", "given": ["Jane"]}]));
}

#[test]
fn extensions_on_primitives_are_reached() {
    let e = engine(
        json!([{"path": "Patient.birthDate", "method": "dateShift"}]),
        json!({"dateShiftKey": "dummy"}),
    );
    let p = json!({"resourceType": "Patient", "birthDate": "2015-02-07",
        "_birthDate": {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/patient-birthTime",
                                      "valueDateTime": "2015-02-07T13:28:17-05:00"}]}});
    let out = run(&e, p);
    assert_eq!(out["birthDate"], "2015-01-17");
    assert_eq!(
        out["_birthDate"]["extension"][0]["valueDateTime"],
        "2015-01-17T00:00:00-05:00"
    );
}

#[test]
fn seeded_runs_repeat() {
    let rules = json!([{"path": "Observation.value", "method": "perturb", "span": 5},
                       {"path": "Observation.code.text", "method": "encrypt"}]);
    let params = json!({"encryptKey": "0123456789abcdef"});
    let a = engine(rules.clone(), params.clone()).with_seed(42);
    let b = engine(rules, params).with_seed(42);
    let ctx = Context {
        sequence: 3,
        ..Context::default()
    };
    let (mut x, mut y) = (observation(), observation());
    a.deidentify(&mut x, &ctx).unwrap();
    b.deidentify(&mut y, &ctx).unwrap();
    assert_eq!(x, y);
    assert_ne!(x["code"]["text"], "t");
    let mut z = observation();
    a.deidentify(&mut z, &Context { sequence: 4, ..ctx })
        .unwrap();
    assert_ne!(x["code"]["text"], z["code"]["text"]);
}

#[test]
fn batches_keep_order_and_report_each_line() {
    let e = engine(
        json!([{"path": "nodesByType('HumanName')", "method": "redact"}, {"path": "Resource.id", "method": "cryptoHash"}]),
        json!({"cryptoHashKey": "k"}),
    );
    let good = patient().to_string();
    let lines: Vec<&[u8]> = vec![
        good.as_bytes(),
        b"{\"resourceType\": \"Patient\", \"name\": [{\"family\": \"Secret\"}], \"bogus\": \"Secret\"}",
        b"{\"resourceType\": \"Patient\", \"name\": [{\"family\": \"Secr",
        b"",
        b"{\"resourceType\": \"Organization\", \"id\": \"o\"}\r",
    ];
    let batch = e.deidentify_lines(&lines, &Context::default());
    assert_eq!(batch.lines.len(), 5);
    let first: Value = serde_json::from_str(batch.lines[0].as_ref().unwrap()).unwrap();
    assert!(first.get("name").is_none());
    for (i, expected) in [(1, "/bogus"), (2, ""), (3, "")] {
        match &batch.lines[i] {
            Err(Error::Input { element, message }) => {
                assert_eq!(element, expected);
                assert!(!message.contains("Secr"), "{message}");
            }
            other => panic!("line {i}: {other:?}"),
        }
    }
    assert!(batch.lines[4].is_ok());
    assert_eq!(batch.summary.resources.get("Patient"), Some(&1));
    assert_eq!(batch.summary.resources.get("Organization"), Some(&1));
    assert_eq!(batch.summary.nodes.get("cryptoHash"), Some(&2));
    assert_eq!(batch.summary.nodes.get("redact"), Some(&3));
}

#[test]
fn skipped_resources_are_emptied_and_counted() {
    let config = json!({"processingErrors": "skip", "fhirPathRules": [
        {"path": "nodesByType('HumanName').family", "method": "generalize", "cases": {"$this >= 0": "'x'"}}]});
    let e = Engine::new(Config::from_json(&config.to_string()).unwrap()).unwrap();
    let mut p = patient();
    let summary = e.deidentify(&mut p, &Context::default()).unwrap();
    assert_eq!(summary.skipped, 1);
    assert_eq!(p["resourceType"], "Patient");
    assert!(p.get("id").is_none());
    assert_eq!(codes(&p), ["REDACTED"]);
}

#[test]
fn errors_name_the_place_never_the_value() {
    let config = json!({"fhirPathRules": [
        {"path": "nodesByType('HumanName').family", "method": "generalize", "cases": {"$this >= 0": "'x'"}}]});
    let e = Engine::new(Config::from_json(&config.to_string()).unwrap()).unwrap();
    let mut p = patient();
    let err = e.deidentify(&mut p, &Context::default()).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("rule 0") && text.contains("/name/0/family"),
        "{text}"
    );
    assert!(!text.contains("Doe"), "{text}");
    // Generalize on a complex node is a configuration error, not skippable.
    let config = json!({"processingErrors": "skip", "fhirPathRules": [
        {"path": "Patient.name", "method": "generalize", "cases": {"true": "'x'"}}]});
    let e = Engine::new(Config::from_json(&config.to_string()).unwrap()).unwrap();
    let err = e
        .deidentify(&mut patient(), &Context::default())
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Rule {
                skippable: false,
                ..
            }
        ),
        "{err}"
    );
    // Unknown elements and resource types are input errors naming the element.
    let e = engine(json!([]), json!({}));
    let mut bad = json!({"resourceType": "Patient", "contact": [{"nickname": "Secret"}]});
    let err = e.deidentify(&mut bad, &Context::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid input at /contact/0/nickname: unknown element"
    );
    let mut bad =
        json!({"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "Nope"}}]});
    let err = e.deidentify(&mut bad, &Context::default()).unwrap_err();
    assert!(err.to_string().contains("/entry/0/resource"), "{err}");
}

#[test]
fn substitute_replaces_primitives_with_strings() {
    let e = engine(
        json!([{"path": "Patient.active", "method": "substitute", "replaceWith": "no"},
               {"path": "Patient.gender", "method": "substitute", "replaceWith": null}]),
        json!({}),
    );
    let out = run(
        &e,
        json!({"resourceType": "Patient", "active": true, "gender": "female"}),
    );
    assert_eq!(out["active"], "no");
    assert!(out.get("gender").is_none());
    assert_eq!(codes(&out), ["SUBSTITUTED"]);
    let bad = engine(
        json!([{"path": "Patient.name", "method": "substitute", "replaceWith": {"nickname": "x"}}]),
        json!({}),
    );
    let err = bad
        .deidentify(&mut patient(), &Context::default())
        .unwrap_err();
    assert!(err.to_string().contains("replaceWith/nickname"), "{err}");
}

#[test]
fn summary_counts_per_type_and_method() {
    let e = engine(
        json!([{"path": "nodesByType('HumanName')", "method": "redact"}, {"path": "Patient.birthDate", "method": "keep"}]),
        json!({}),
    );
    let mut b = bundle();
    let s = e.deidentify(&mut b, &Context::default()).unwrap();
    let resources: Vec<(&str, u64)> = s.resources.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    assert_eq!(
        resources,
        [
            ("Bundle", 1),
            ("Observation", 1),
            ("Organization", 1),
            ("Patient", 1),
            ("Practitioner", 1)
        ]
    );
    assert_eq!(s.nodes.get("redact"), Some(&2));
    assert_eq!(s.nodes.get("keep"), Some(&1));
    assert_eq!(
        s.to_json(),
        json!({"resources": {"Bundle": 1, "Observation": 1, "Organization": 1, "Patient": 1, "Practitioner": 1},
               "nodes": {"keep": 1, "redact": 2}, "skipped": 0})
    );
}
