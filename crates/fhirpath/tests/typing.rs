//! Typing under tree navigation: a de-identification rule that silently selects nothing leaks
//! PHI, so nodes reached by `children()`, `descendants()` and the anonymizer's functions must
//! know their FHIR types.

use fhirpath::Expression;
use serde_json::Value;

fn input(name: &str) -> Value {
    let path = format!(
        "{}/../../testdata/fhirpath-r4/input/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn strings(expr: &str, resource: &Value) -> Vec<String> {
    Expression::parse(expr)
        .unwrap()
        .evaluate(resource)
        .unwrap()
        .iter()
        .map(|item| item.to_string())
        .collect()
}

fn locations(expr: &str, resource: &Value) -> Vec<String> {
    Expression::parse(expr)
        .unwrap()
        .evaluate(resource)
        .unwrap()
        .iter()
        .map(|item| item.location().expect("a node").to_string())
        .collect()
}

#[test]
fn descendants_of_type_human_name_finds_every_given_name() {
    let patient = input("patient-example.json");
    let given = strings("Patient.descendants().ofType(HumanName).given", &patient);
    assert_eq!(
        given,
        ["Peter", "James", "Jim", "Peter", "James", "Bénédicte"]
    );
}

#[test]
fn children_of_type_human_name_finds_the_patients_names() {
    let patient = input("patient-example.json");
    assert_eq!(
        strings("Patient.children().ofType(HumanName).given", &patient).len(),
        5
    );
}

#[test]
fn descendants_where_is_human_name_reads_family_names() {
    let patient = input("patient-example.json");
    let family = strings(
        "Patient.descendants().where($this is HumanName).family",
        &patient,
    );
    assert_eq!(family, ["Chalmers", "Windsor", "du Marché"]);
}

#[test]
fn descendants_of_type_date_finds_the_birth_date() {
    let patient = input("patient-example.json");
    assert_eq!(
        strings("descendants().ofType(date)", &patient),
        ["1974-12-25"]
    );
    assert_eq!(
        locations("descendants().ofType(date)", &patient),
        ["/birthDate"]
    );
}

#[test]
fn descendants_of_type_datatypes_find_addresses_telecoms_and_identifiers() {
    let patient = input("patient-example.json");
    let count = |t: &str| {
        Expression::parse(&format!("Patient.descendants().ofType({t})"))
            .unwrap()
            .evaluate(&patient)
            .unwrap()
            .len()
    };
    assert_eq!(count("Address"), 2);
    assert_eq!(count("ContactPoint"), 5);
    assert_eq!(count("Identifier"), 1);
}

#[test]
fn descendants_of_type_reference_reads_observation_references() {
    let observation = input("observation-example.json");
    let refs = strings(
        "Observation.descendants().ofType(Reference).reference",
        &observation,
    );
    assert_eq!(refs, ["Patient/example", "Encounter/example"]);
}

#[test]
fn choice_elements_are_reached_through_their_base_name() {
    let observation = input("observation-example.json");
    assert_eq!(
        strings("Observation.value.ofType(Quantity).value", &observation),
        ["185"]
    );
    assert_eq!(
        locations("Observation.value.unit", &observation),
        ["/valueQuantity/unit"]
    );
    assert_eq!(
        strings("Observation.value is Quantity", &observation),
        ["true"]
    );
}

#[test]
fn primitive_types_come_from_the_tables() {
    let patient = input("patient-example.json");
    assert_eq!(strings("Patient.birthDate is date", &patient), ["true"]);
    assert_eq!(
        strings("Patient.birthDate is dateTime", &patient),
        ["false"]
    );
    let items = Expression::parse("Patient.gender").unwrap();
    let items = items.evaluate(&patient).unwrap();
    assert_eq!(items[0].type_name(), ("FHIR", "code"));
}

#[test]
fn nodes_by_type_returns_exact_types_outside_nested_resources() {
    let bundle = serde_json::json!({
        "resourceType": "Patient",
        "name": [{"family": "A"}],
        "contact": [{"name": {"family": "B"}}],
        "contained": [{"resourceType": "Patient", "name": [{"family": "C"}]}]
    });
    assert_eq!(
        locations("nodesByType('HumanName')", &bundle),
        ["/name/0", "/contact/0/name"]
    );
}

#[test]
fn nodes_by_name_finds_elements_at_any_depth() {
    let patient = input("patient-example.json");
    let found = locations("nodesByName('postalCode')", &patient);
    assert_eq!(
        found,
        ["/address/0/postalCode", "/contact/0/address/postalCode"]
    );
}

#[test]
fn contained_and_bundled_resources_are_typed_by_their_resource_type() {
    let bundle: Value = serde_json::from_str(
        r#"{"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "Patient",
            "birthDate": "2000-01-02",
            "contained": [{"resourceType": "Observation", "valueQuantity": {"value": 1.50}}]}}]}"#,
    )
    .unwrap();
    assert_eq!(
        locations("Bundle.entry.resource.descendants().ofType(date)", &bundle),
        ["/entry/0/resource/birthDate"]
    );
    assert_eq!(
        strings(
            "Bundle.entry.resource.contained.value.ofType(Quantity).value",
            &bundle
        ),
        ["1.50"]
    );
    assert_eq!(
        strings("Bundle.entry.resource.ofType(Patient).count()", &bundle),
        ["1"]
    );
}
