//! No error holds a value taken from a resource: every input below carries a distinctive secret
//! where a careless message would quote it (a resource type, a date, a number, a reference, a
//! generalize input, an unknown element's value, a malformed line), and neither the `Display`
//! nor the `Debug` form of any error may contain it. Element paths and keys may appear.

use deid::{Config, Context, Engine, Error};
use serde_json::{Value, json};

const SECRET: &str = "SECRET-7Hq2Zx-PHI";

fn engine(rules: Value, parameters: Value) -> Engine {
    let config = json!({"fhirVersion": "R4", "fhirPathRules": rules, "parameters": parameters});
    Engine::new(Config::from_json(&config.to_string()).unwrap()).unwrap()
}

/// Every method, on the elements the cases put secrets in.
fn all_methods() -> Engine {
    engine(
        json!([
            {"path": "Patient.gender", "method": "generalize",
             "cases": {"$this.toInteger() > 3": "'many'", "$this < @2000-01-01": "'old'"},
             "otherValues": "redact"},
            {"path": "Observation.effective", "method": "generalize",
             "cases": {"$this > @2000-01-01": "$this + 1 'kg'"}},
            {"path": "Patient.birthDate", "method": "dateShift"},
            {"path": "nodesByType('dateTime')", "method": "dateShift"},
            {"path": "Observation.value", "method": "perturb", "span": 2, "rangeType": "fixed"},
            {"path": "nodesByType('Reference').reference", "method": "cryptoHash"},
            {"path": "Patient.id", "method": "encrypt"},
            {"path": "Patient.name.single()", "method": "redact"},
            {"path": "Patient.address.where(city = 'x')", "method": "redact"},
            {"path": "nodesByType('HumanName')", "method": "redact"}
        ]),
        json!({
            "dateShiftKey": "date-key",
            "cryptoHashKey": "hash-key",
            "encryptKey": "0123456789abcdef",
            "enablePartialDatesForRedact": true
        }),
    )
}

/// Resources with the secret in a risky position, and whether de-identifying them must fail.
fn cases() -> Vec<(&'static str, Value, bool)> {
    vec![
        (
            "unknown resourceType",
            json!({"resourceType": SECRET, "id": "1"}),
            true,
        ),
        (
            "resourceType that is not a string",
            json!({"resourceType": {"text": SECRET}}),
            true,
        ),
        (
            "contained resource of an unknown type",
            json!({"resourceType": "Patient", "contained": [{"resourceType": SECRET}]}),
            true,
        ),
        (
            "Bundle entry of an unknown type",
            json!({"resourceType": "Bundle", "type": "collection",
                   "entry": [{"resource": {"resourceType": SECRET, "id": "2"}}]}),
            true,
        ),
        (
            "Bundle entry that is not an object",
            json!({"resourceType": "Bundle", "type": "collection", "entry": [{"resource": SECRET}]}),
            true,
        ),
        (
            "unknown element",
            json!({"resourceType": "Patient", "contact": [{"nickname": SECRET}]}),
            true,
        ),
        (
            "complex element given a string",
            json!({"resourceType": "Patient", "name": SECRET}),
            true,
        ),
        (
            "primitive element given an object",
            json!({"resourceType": "Patient", "name": [{"family": {"text": SECRET}}]}),
            true,
        ),
        (
            "element and companion disagreeing on arrays",
            json!({"resourceType": "Patient", "name": [{"given": [SECRET], "_given": {"id": "g"}}]}),
            true,
        ),
        (
            "companion that is not an object",
            json!({"resourceType": "Patient", "_birthDate": SECRET}),
            true,
        ),
        (
            "FHIRPath rule failing on the names",
            json!({"resourceType": "Patient", "name": [{"family": SECRET}, {"family": SECRET}]}),
            true,
        ),
        (
            "generalize case failing on a date",
            json!({"resourceType": "Observation", "status": "final", "code": {"text": "c"},
                   "effectiveDateTime": "2021-05-06"}),
            true,
        ),
        (
            "bad date to shift",
            json!({"resourceType": "Patient", "birthDate": SECRET,
                   "extension": [{"url": "u", "valueDateTime": format!("1990-{SECRET}")}]}),
            false,
        ),
        (
            "non-numeric value to perturb",
            json!({"resourceType": "Observation", "status": "final", "code": {"text": "c"},
                   "valueQuantity": {"value": SECRET, "unit": "mg"}}),
            false,
        ),
        (
            "non-numeric integer to perturb",
            json!({"resourceType": "Observation", "status": "final", "code": {"text": "c"},
                   "valueInteger": SECRET}),
            false,
        ),
        (
            "bad references to hash",
            json!({"resourceType": "Observation", "status": "final", "code": {"text": "c"},
                   "subject": {"reference": format!("Patient/{SECRET}/_history/../#")},
                   "performer": [{"reference": format!("#{SECRET}")},
                                 {"reference": format!("urn:uuid:{SECRET}")}]}),
            false,
        ),
        (
            "invalid input to generalize",
            json!({"resourceType": "Patient", "id": SECRET, "gender": SECRET}),
            true,
        ),
        (
            "where() on an unusual value",
            json!({"resourceType": "Patient", "address": [{"city": SECRET}, {"city": 7}]}),
            false,
        ),
    ]
}

/// Fails when the error's text, in either form, holds the secret.
fn assert_silent(what: &str, error: &Error) {
    for text in [
        error.to_string(),
        format!("{error:?}"),
        format!("{error:#?}"),
    ] {
        assert!(
            !text.contains(SECRET) && !text.contains("7Hq2Zx"),
            "{what}: the error quotes the input"
        );
    }
}

#[test]
fn no_error_quotes_a_value_of_the_resource() {
    let engine = all_methods();
    for (what, resource, fails) in cases() {
        let mut one = resource.clone();
        let result = engine.deidentify(&mut one, &Context::default());
        if let Err(error) = &result {
            assert_silent(what, error);
        }
        assert_eq!(result.is_err(), fails, "{what}: {result:?}");
        let line = serde_json::to_vec(&resource).unwrap();
        let batch = engine.deidentify_lines(&[&line], &Context::default());
        match &batch.lines[0] {
            Err(error) => assert_silent(what, error),
            Ok(_) => assert!(!fails, "{what}: a line succeeded"),
        }
    }
}

#[test]
fn malformed_lines_are_rejected_without_quoting_them() {
    let engine = all_methods();
    let lines = [
        format!(r#"{{"resourceType": "Patient", "name": {SECRET}}}"#),
        format!(r#"{{"resourceType": "Patient", "id": "{SECRET}"#),
        format!(r#"{{"resourceType": "Patient", "id": "{SECRET}\q"}}"#),
        format!(r#"["{SECRET}"]"#),
        format!(r#""{SECRET}""#),
        format!(r#"{{"resourceType": "{SECRET}"}}"#),
    ];
    let lines: Vec<&[u8]> = lines.iter().map(|l| l.as_bytes()).collect();
    let batch = engine.deidentify_lines(&lines, &Context::default());
    for (i, line) in batch.lines.iter().enumerate() {
        let error = line.as_ref().expect_err("a malformed line fails");
        assert_silent(&format!("line {i}"), error);
    }
}

#[test]
fn an_unknown_resource_type_is_named_as_such() {
    let engine = all_methods();
    let mut resource = json!({"resourceType": SECRET});
    let error = engine
        .deidentify(&mut resource, &Context::default())
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "invalid input at : unknown resourceType: not a FHIR R4 resource type"
    );
    let mut bundle =
        json!({"resourceType": "Bundle", "entry": [{"resource": {"resourceType": SECRET}}]});
    let error = engine
        .deidentify(&mut bundle, &Context::default())
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "invalid input at /entry/0/resource: unknown resourceType: not a FHIR R4 resource type"
    );
}
