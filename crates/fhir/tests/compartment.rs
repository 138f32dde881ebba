//! The Patient compartment: membership and owners.

use fhir::compartment::{
    compartment_owner, compartment_patients, compartment_patients_resolving,
    patient_compartment_params, patient_compartment_paths,
};
use serde_json::{Value, json};

fn owner(resource: Value) -> Option<String> {
    compartment_owner(&resource)
}

#[test]
fn compartment_params_come_from_the_definition() {
    assert_eq!(
        patient_compartment_params("Observation"),
        Some(&["subject", "performer"][..])
    );
    assert_eq!(patient_compartment_params("Patient"), Some(&["link"][..]));
    assert_eq!(patient_compartment_params("Organization"), None);
    assert_eq!(patient_compartment_params("NoSuchType"), None);
}

#[test]
fn compartment_paths_are_extracted_from_the_expressions() {
    assert_eq!(
        patient_compartment_paths("Observation"),
        ["subject", "performer"]
    );
    assert_eq!(patient_compartment_paths("Encounter"), ["subject"]);
    assert_eq!(
        patient_compartment_paths("Claim"),
        ["patient", "payee.party"]
    );
    assert_eq!(
        patient_compartment_paths("Condition"),
        ["subject", "asserter"]
    );
    assert!(patient_compartment_paths("Organization").is_empty());
}

#[test]
fn observation_belongs_to_its_subject() {
    let observation = json!({
        "resourceType": "Observation",
        "subject": {"reference": "Patient/p1"},
        "performer": [{"reference": "Practitioner/d1"}, {"reference": "Patient/p2"}]
    });
    assert_eq!(compartment_patients(&observation), ["p1", "p2"]);
    assert_eq!(owner(observation), Some("p1".into()));
}

#[test]
fn encounter_with_an_absolute_reference_belongs_to_that_id() {
    let encounter = json!({
        "resourceType": "Encounter",
        "subject": {"reference": "https://hub.example/fhir/Patient/p7/_history/3"}
    });
    assert_eq!(owner(encounter), Some("p7".into()));
}

#[test]
fn patient_owns_itself() {
    let patient = json!({
        "resourceType": "Patient",
        "id": "p1",
        "link": [{"other": {"reference": "Patient/p0"}, "type": "replaces"}]
    });
    assert_eq!(compartment_patients(&patient), ["p1", "p0"]);
    assert_eq!(owner(patient), Some("p1".into()));
}

#[test]
fn claim_follows_nested_paths_through_arrays() {
    let claim = json!({
        "resourceType": "Claim",
        "payee": {"party": {"reference": "Patient/p3"}}
    });
    assert_eq!(owner(claim), Some("p3".into()));
    let appointment = json!({
        "resourceType": "Appointment",
        "participant": [
            {"actor": {"reference": "Location/l1"}},
            {"actor": {"reference": "Patient/p4"}}
        ]
    });
    assert_eq!(owner(appointment), Some("p4".into()));
}

#[test]
fn organization_has_no_owner() {
    let organization = json!({"resourceType": "Organization", "id": "o1"});
    assert_eq!(owner(organization), None);
}

#[test]
fn references_to_other_types_do_not_count() {
    let observation = json!({
        "resourceType": "Observation",
        "subject": {"reference": "Group/g1"},
        "performer": [{"reference": "#contained"}, {"reference": "Patient?identifier=x"}]
    });
    assert_eq!(owner(observation), None);
}

#[test]
fn urn_references_need_a_type_or_a_resolver() {
    let uuid = "urn:uuid:057aa36e-b892-9964-75b9-ffb46b097e34";
    let untyped = json!({"resourceType": "Encounter", "subject": {"reference": uuid}});
    assert_eq!(compartment_patients(&untyped), Vec::<String>::new());
    let resolved = compartment_patients_resolving(&untyped, |r| {
        r.strip_prefix("urn:uuid:").map(str::to_owned)
    });
    assert_eq!(resolved, ["057aa36e-b892-9964-75b9-ffb46b097e34"]);
    let typed = json!({
        "resourceType": "Encounter",
        "subject": {"reference": uuid, "type": "Patient"}
    });
    assert_eq!(compartment_patients(&typed), [uuid]);
}
