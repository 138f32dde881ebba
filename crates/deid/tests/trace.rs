//! `Engine::deidentify_traced`: which rule acted on which element.

use serde_json::json;

fn engine(rules: serde_json::Value) -> deid::Engine {
    let config = json!({
        "fhirVersion": "R4",
        "fhirPathRules": rules,
        "parameters": {"cryptoHashKey": "k", "dateShiftKey": "d"}
    });
    deid::Engine::new(deid::Config::from_json(&config.to_string()).unwrap()).unwrap()
}

#[test]
fn the_first_rule_that_selects_an_element_owns_it() {
    let engine = engine(json!([
        {"path": "Patient.gender", "method": "keep"},
        {"path": "Patient.name", "method": "redact"},
        {"path": "Patient.id", "method": "cryptoHash"},
        {"path": "Patient.gender", "method": "redact"}
    ]));
    let mut patient = json!({"resourceType": "Patient", "id": "p1", "gender": "female",
        "name": [{"family": "Doe", "given": ["Jane"]}]});
    let (summary, touched) = engine
        .deidentify_traced(&mut patient, &deid::Context::default())
        .unwrap();
    let rule_of = |pointer: &str| {
        touched
            .iter()
            .find(|t| t.pointer == pointer)
            .map(|t| t.rule)
    };
    assert_eq!(rule_of("/gender"), Some(0));
    assert_eq!(rule_of("/name/0/family"), Some(1));
    assert_eq!(rule_of("/name/0/given/0"), Some(1));
    assert_eq!(rule_of("/id"), Some(2));
    assert_eq!(rule_of("/birthDate"), None);
    assert!(patient.get("name").is_none());
    assert_eq!(patient["gender"], "female");
    assert_eq!(summary.nodes.get("redact"), Some(&2));
}

#[test]
fn tracing_does_not_change_the_result() {
    let engine = engine(json!([
        {"path": "Patient.name", "method": "redact"},
        {"path": "Patient.birthDate", "method": "dateShift"}
    ]));
    let patient = json!({"resourceType": "Patient", "id": "p1", "birthDate": "1980-03-04",
        "name": [{"family": "Doe"}]});
    let mut plain = patient.clone();
    let mut traced = patient;
    let ctx = deid::Context::default();
    let summary = engine.deidentify(&mut plain, &ctx).unwrap();
    let (traced_summary, touched) = engine.deidentify_traced(&mut traced, &ctx).unwrap();
    assert_eq!(plain, traced);
    assert_eq!(summary, traced_summary);
    assert!(
        touched
            .iter()
            .any(|t| t.pointer == "/birthDate" && t.rule == 1)
    );
}
