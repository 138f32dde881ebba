//! `validOutput` (on in Haven's presets): every method writes only what the element's type
//! allows, so that a resource valid before de-identification stays valid after it. Each test
//! is one way the output used to become invalid, with Microsoft's behaviour (`validOutput`
//! off) shown beside it where it differs.

use deid::{Config, Context, Engine, Today};
use serde_json::{Value, json};

const TODAY: Today = Today {
    year: 2025,
    month: 9,
    day: 5,
};

const DAR: &str = "http://hl7.org/fhir/StructureDefinition/data-absent-reason";

fn engine(rules: Value, valid: bool) -> Engine {
    let config = json!({
        "fhirPathRules": rules,
        "parameters": {
            "cryptoHashKey": "k", "dateShiftKey": "d",
            "enablePartialDatesForRedact": true,
            "enableReferenceHashForUris": true,
            "validOutput": valid
        }
    });
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

fn masked(value: &Value) -> bool {
    value["extension"][0]["url"] == DAR && value["extension"][0]["valueCode"] == "masked"
}

#[test]
fn an_instant_cut_to_its_year_is_removed_or_masked() {
    let rules = json!([{"path": "nodesByType('instant')", "method": "redact"}]);
    let observation = json!({"resourceType": "Observation", "status": "final",
        "code": {"text": "x"}, "issued": "2021-03-04T10:00:00Z"});
    assert_eq!(
        run(&engine(rules.clone(), false), observation.clone())["issued"],
        "2021"
    );
    assert!(
        run(&engine(rules.clone(), true), observation)
            .get("issued")
            .is_none()
    );
    let provenance = json!({"resourceType": "Provenance", "target": [{"reference": "Patient/1"}],
        "recorded": "2021-03-04T10:00:00Z", "agent": [{"who": {"reference": "Practitioner/1"}}]});
    let out = run(&engine(rules, true), provenance);
    assert!(out.get("recorded").is_none());
    assert!(masked(&out["_recorded"]), "{out}");
}

#[test]
fn a_required_element_redacted_outright_is_masked() {
    let rules = json!([
        {"path": "Endpoint.address", "method": "redact"},
        {"path": "Coverage.class.value", "method": "redact"},
        {"path": "nodesByType('dateTime')", "method": "redact"}
    ]);
    let endpoint = json!({"resourceType": "Endpoint", "status": "active",
        "connectionType": {"code": "hl7-fhir-rest"}, "payloadType": [{"text": "any"}],
        "address": "https://example.org/fhir"});
    let out = run(&engine(rules.clone(), true), endpoint.clone());
    assert!(
        masked(&out["_address"]) && out.get("address").is_none(),
        "{out}"
    );
    assert!(
        run(&engine(rules.clone(), false), endpoint)
            .get("_address")
            .is_none()
    );
    let coverage = json!({"resourceType": "Coverage", "status": "active",
        "beneficiary": {"reference": "Patient/1"}, "payor": [{"reference": "Organization/1"}],
        "class": [{"type": {"text": "group"}, "value": "GRP-1"}]});
    let out = run(&engine(rules.clone(), true), coverage);
    assert!(masked(&out["class"][0]["_value"]), "{out}");
    // A date over 89 years old is removed whole, even under partial dates: masked when required.
    let claim = json!({"resourceType": "Claim", "status": "active", "type": {"text": "x"},
        "use": "claim", "patient": {"reference": "Patient/1"}, "created": "1920-01-02T00:00:00Z",
        "provider": {"reference": "Organization/1"}, "priority": {"text": "normal"},
        "insurance": [{"sequence": 1, "focal": true, "coverage": {"reference": "Coverage/1"}}]});
    let out = run(&engine(rules, true), claim);
    assert!(masked(&out["_created"]), "{out}");
}

#[test]
fn a_required_reference_emptied_by_redaction_is_masked_and_an_optional_one_removed() {
    let rules = json!([{"path": "nodesByType('Reference').display", "method": "redact"}]);
    let claim = json!({"resourceType": "Claim", "status": "active", "type": {"text": "x"},
        "use": "claim", "patient": {"reference": "Patient/1"}, "created": "2021",
        "provider": {"display": "Dr. Ann Pryce"}, "priority": {"text": "normal"},
        "insurer": {"display": "Acme Health"},
        "insurance": [{"sequence": 1, "focal": true, "coverage": {"display": "Plan of Ann"}}]});
    let out = run(&engine(rules.clone(), true), claim.clone());
    assert!(masked(&out["provider"]), "{out}");
    assert!(masked(&out["insurance"][0]["coverage"]), "{out}");
    assert!(out.get("insurer").is_none(), "optional: removed whole");
    let ms = run(&engine(rules, false), claim);
    assert!(ms.get("provider").is_none(), "Microsoft's output drops it");
}

#[test]
fn a_redacted_extension_goes_whole_and_a_dropped_narrative_with_it() {
    let rules = json!([
        {"path": "nodesByType('Extension')", "method": "redact"},
        {"path": "nodesByType('Narrative')", "method": "scrub"}
    ]);
    let patient = json!({"resourceType": "Patient", "birthDate": "1980-03-04",
        "_birthDate": {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/patient-birthTime",
                                      "valueDateTime": "1980-03-04T10:00:00Z"}]},
        "text": {"status": "generated", "div": "<div>not closed"}});
    let out = run(&engine(rules.clone(), true), patient.clone());
    assert!(out.get("_birthDate").is_none(), "no skeleton left: {out}");
    assert!(
        out.get("text").is_none(),
        "the narrative goes with its div: {out}"
    );
    let ms = run(&engine(rules, false), patient);
    assert_eq!(
        ms["_birthDate"]["extension"][0],
        json!({"valueDateTime": "1980"}),
        "Microsoft's output keeps a year in an extension without url"
    );
}

#[test]
fn references_keep_their_shape_whatever_their_base_uuid_or_oid() {
    let rules = json!([
        {"path": "nodesByType('Reference').reference", "method": "cryptoHash"},
        {"path": "Bundle.entry.fullUrl", "method": "cryptoHash"},
        {"path": "Bundle.entry.request.url", "method": "cryptoHash"},
        {"path": "Bundle.entry.request.ifNoneExist", "method": "cryptoHash"}
    ]);
    let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:aa2ed3d0-2b1c-4a8e-9a5e-3e0a8b7c1d2f",
         "resource": {"resourceType": "Observation", "status": "final", "code": {"text": "x"},
                      "subject": {"reference": "https://example-host.org/fhir-r4/Patient/3"},
                      "performer": [{"reference": "Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|9999999619"}],
                      "specimen": {"reference": "urn:oid:1.2.3.4.5"}},
         "request": {"method": "POST", "url": "Observation",
                     "ifNoneExist": "identifier=http://example.org|123"}},
        {"fullUrl": "urn:uuid:bb2ed3d0-2b1c-4a8e-9a5e-3e0a8b7c1d2f",
         "resource": {"resourceType": "Observation", "status": "final", "code": {"text": "y"},
                      "hasMember": [{"reference": "urn:uuid:aa2ed3d0-2b1c-4a8e-9a5e-3e0a8b7c1d2f"}]},
         "request": {"method": "PUT", "url": "Patient?identifier=http://example.org|456"}}
    ]});
    let out = run(&engine(rules, true), bundle);
    let first = &out["entry"][0];
    let obs = &first["resource"];
    let subject = obs["subject"]["reference"].as_str().unwrap();
    assert!(
        subject.starts_with("https://example-host.org/fhir-r4/Patient/"),
        "{subject}"
    );
    assert_eq!(
        subject.len(),
        "https://example-host.org/fhir-r4/Patient/".len() + 64
    );
    let performer = obs["performer"][0]["reference"].as_str().unwrap();
    assert!(performer.starts_with("Practitioner?identifier=") && !performer.contains("9999999619"));
    let oid = obs["specimen"]["reference"].as_str().unwrap();
    assert!(oid.starts_with("urn:oid:2.25."), "{oid}");
    let full_url = first["fullUrl"].as_str().unwrap();
    assert_eq!(full_url.len(), "urn:uuid:".len() + 36, "{full_url}");
    assert_eq!(
        out["entry"][1]["resource"]["hasMember"][0]["reference"],
        full_url
    );
    let if_none = first["request"]["ifNoneExist"].as_str().unwrap();
    assert!(
        if_none.starts_with("identifier=") && !if_none.contains("123"),
        "{if_none}"
    );
    let put = out["entry"][1]["request"]["url"].as_str().unwrap();
    assert!(
        put.starts_with("Patient?identifier=") && !put.contains("456"),
        "{put}"
    );
}

#[test]
fn local_canonical_links_follow_their_hashed_contained_ids() {
    let rules = json!([
        {"path": "Resource.id", "method": "cryptoHash"},
        {"path": "nodesByType('Reference').reference", "method": "cryptoHash"}
    ]);
    let questionnaire = json!({"resourceType": "Questionnaire", "status": "active",
        "contained": [{"resourceType": "ValueSet", "id": "verbal", "status": "active"}],
        "item": [{"linkId": "1", "type": "choice", "answerValueSet": "#verbal"}]});
    let out = run(&engine(rules.clone(), true), questionnaire.clone());
    let id = out["contained"][0]["id"].as_str().unwrap();
    assert_eq!(out["item"][0]["answerValueSet"], format!("#{id}"));
    let ms = run(&engine(rules, false), questionnaire);
    assert_eq!(
        ms["item"][0]["answerValueSet"], "#verbal",
        "Microsoft's output breaks the link"
    );
}

#[test]
fn every_label_names_its_code_system() {
    let rules =
        json!([{"path": "Observation.valueQuantity.value", "method": "perturb", "span": 1}]);
    let observation = json!({"resourceType": "Observation", "status": "final",
        "code": {"text": "x"}, "valueQuantity": {"value": 5}});
    let out = run(&engine(rules.clone(), true), observation.clone());
    assert_eq!(
        out["meta"]["security"][0]["system"],
        "http://terminology.hl7.org/CodeSystem/v3-ObservationValue"
    );
    assert_eq!(out["meta"]["security"][0]["code"], "PERTURBED");
    let ms = run(&engine(rules, false), observation);
    assert!(ms["meta"]["security"][0].get("system").is_none());
}
