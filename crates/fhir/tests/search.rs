//! The R4 search parameters by resource type.

use fhir::search::{SearchParamKind, search_param, search_params};

#[test]
fn patient_birthdate_is_a_date_on_birth_date() {
    let param = search_param("Patient", "birthdate").expect("Patient.birthdate");
    assert_eq!(param.kind, SearchParamKind::Date);
    assert_eq!(param.expression, "Patient.birthDate");
}

#[test]
fn observation_code_is_a_token() {
    let param = search_param("Observation", "code").expect("Observation.code");
    assert_eq!(param.kind, SearchParamKind::Token);
    assert_eq!(param.expression, "Observation.code");
}

#[test]
fn shared_parameters_keep_only_this_types_part() {
    let param = search_param("Observation", "patient").expect("Observation.patient");
    assert_eq!(param.kind, SearchParamKind::Reference);
    assert_eq!(
        param.expression,
        "Observation.subject.where(resolve() is Patient)"
    );
    assert_eq!(param.targets, ["Patient"]);
}

#[test]
fn resource_level_parameters_are_inherited() {
    let param = search_param("Observation", "_lastUpdated").expect("_lastUpdated");
    assert_eq!(param.kind, SearchParamKind::Date);
    assert_eq!(param.expression, "Resource.meta.lastUpdated");
    assert!(search_param("Bundle", "_id").is_some());
    assert!(search_param("Observation", "_text").is_some());
    assert!(search_param("Bundle", "_text").is_none());
}

#[test]
fn search_params_lists_own_then_inherited() {
    let codes: Vec<&str> = search_params("Patient").map(|p| p.code).collect();
    assert!(codes.contains(&"birthdate"));
    assert!(codes.contains(&"_id"));
    let first_inherited = codes
        .iter()
        .position(|c| c.starts_with('_'))
        .expect("inherited");
    assert!(codes[..first_inherited].is_sorted());
}

#[test]
fn unknown_types_and_codes_have_no_parameters() {
    assert_eq!(search_params("NoSuchType").count(), 0);
    assert!(search_param("Patient", "no-such-code").is_none());
}
