//! Every result taken from the resource says where it sits, so callers can rewrite it.

use fhirpath::{Environment, Expression, Step};
use serde_json::json;

fn locations(expr: &str, resource: &serde_json::Value) -> Vec<String> {
    Expression::parse(expr)
        .unwrap()
        .evaluate(resource)
        .unwrap()
        .iter()
        .map(|item| item.location().map_or("-".to_string(), |l| l.to_string()))
        .collect()
}

#[test]
fn array_elements_are_located_by_index() {
    let patient =
        json!({"resourceType": "Patient", "name": [{"given": ["A", "B"]}, {"given": ["C"]}]});
    assert_eq!(
        locations("Patient.name.given", &patient),
        ["/name/0/given/0", "/name/0/given/1", "/name/1/given/0"]
    );
}

#[test]
fn computed_values_have_no_location() {
    let patient = json!({"resourceType": "Patient", "name": [{"given": ["A"]}]});
    assert_eq!(locations("Patient.name.given.count()", &patient), ["-"]);
}

#[test]
fn primitive_extensions_are_reached_through_the_companion() {
    let patient = json!({
        "resourceType": "Patient",
        "birthDate": "1970-03-30",
        "_birthDate": {"extension": [{"url": "http://example.org/time", "valueDateTime": "1970-03-30T14:30:00Z"}]}
    });
    assert_eq!(locations("Patient.birthDate", &patient), ["/birthDate"]);
    assert_eq!(
        locations("Patient.birthDate.extension.value", &patient),
        ["/_birthDate/extension/0/valueDateTime"]
    );
}

#[test]
fn a_primitive_with_only_extensions_is_located_at_its_companion() {
    let patient = json!({"resourceType": "Patient", "name": [{"given": ["A", null], "_given": [null, {"id": "x"}]}]});
    assert_eq!(
        locations("Patient.name.given", &patient),
        ["/name/0/given/0", "/name/0/_given/1"]
    );
}

#[test]
fn json_pointer_escapes_tilde_and_slash() {
    let value = json!({"a/b": {"c~d": 1}});
    let items = Expression::parse("`a/b`.`c~d`").unwrap();
    let items = items.evaluate(&value).unwrap();
    assert_eq!(items[0].location().unwrap().to_string(), "/a~1b/c~0d");
}

#[test]
fn a_location_resolves_back_to_its_node_for_rewriting() {
    let mut patient =
        json!({"resourceType": "Patient", "telecom": [{"system": "phone", "value": "555"}]});
    let found: Vec<_> = Expression::parse("Patient.telecom.where(system = 'phone').value")
        .unwrap()
        .evaluate(&patient)
        .unwrap()
        .iter()
        .filter_map(|i| i.location())
        .collect();
    assert_eq!(
        found[0].steps(),
        [
            Step::Key("telecom".into()),
            Step::Index(0),
            Step::Key("value".into())
        ]
    );
    *found[0].resolve_mut(&mut patient).unwrap() = json!("REDACTED");
    assert_eq!(patient["telecom"][0]["value"], "REDACTED");
}

#[test]
fn resource_variable_reaches_the_resource_while_evaluating_a_node() {
    let patient = json!({"resourceType": "Patient", "id": "p1", "name": [{"family": "X"}]});
    let name = &patient["name"][0];
    let env = Environment::new()
        .with_resource(&patient)
        .with_context_type("HumanName");
    let expr = Expression::parse("family & '@' & %resource.id").unwrap();
    let items = expr.evaluate_with(name, &env).unwrap();
    assert_eq!(items[0].to_string(), "X@p1");
}

#[test]
fn user_variables_are_visible() {
    let patient = json!({"resourceType": "Patient", "gender": "male"});
    let env = Environment::new().with_resource(&patient).with_variable(
        "wanted",
        Expression::parse("'male'")
            .unwrap()
            .evaluate(&patient)
            .unwrap(),
    );
    let items = Expression::parse("gender = %wanted")
        .unwrap()
        .evaluate_with(&patient, &env)
        .unwrap();
    assert_eq!(items[0].to_string(), "true");
}

#[test]
fn strict_mode_rejects_unknown_elements_and_typed_choice_keys() {
    let observation = json!({"resourceType": "Observation", "valueQuantity": {"value": 1}});
    let env = Environment::new().with_resource(&observation).strict();
    for bad in [
        "Observation.valueQuantity",
        "Observation.vlaue",
        "Patient.id",
    ] {
        let result = Expression::parse(bad)
            .unwrap()
            .evaluate_with(&observation, &env);
        assert!(result.is_err(), "{bad} should fail in strict mode");
    }
    assert!(
        Expression::parse("Observation.value")
            .unwrap()
            .evaluate_with(&observation, &env)
            .is_ok()
    );
}

#[test]
fn unknown_functions_and_types_fail_at_compile_time() {
    assert!(matches!(
        Expression::parse("name.frobnicate()"),
        Err(fhirpath::Error::Semantic(_))
    ));
    assert!(matches!(
        Expression::parse("value.ofType(Quantiy)"),
        Err(fhirpath::Error::Semantic(_))
    ));
    let err = Expression::parse("name.where(").unwrap_err();
    assert!(
        matches!(err, fhirpath::Error::Syntax { position: 11, .. }),
        "{err:?}"
    );
}

#[test]
fn expressions_are_shared_between_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Expression>();
    let expr = std::sync::Arc::new(Expression::parse("Patient.name.given").unwrap());
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let expr = expr.clone();
            std::thread::spawn(move || {
                let patient =
                    json!({"resourceType": "Patient", "name": [{"given": [format!("n{i}")]}]});
                expr.evaluate(&patient).unwrap()[0].to_string()
            })
        })
        .collect();
    let names: Vec<String> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(names, ["n0", "n1", "n2", "n3"]);
}

#[test]
fn partial_date_ranges_compare_dates_of_different_precision_as_ranges() {
    let value = json!("2010-01-02");
    let compare = |expr: &str, env: Environment| -> Vec<String> {
        Expression::parse(expr)
            .unwrap()
            .evaluate_with(&value, &env.with_context_type("date"))
            .unwrap()
            .iter()
            .map(|i| i.to_string())
            .collect()
    };
    // FHIRPath: the answer is unknown when the precisions differ.
    assert!(compare("$this = @2010", Environment::new()).is_empty());
    // As ranges: the day lies within the year; a year is both before and after its first day.
    assert_eq!(
        compare("$this = @2010", Environment::new().partial_date_ranges()),
        ["true"]
    );
    assert_eq!(
        compare("$this = @2011", Environment::new().partial_date_ranges()),
        ["false"]
    );
    assert_eq!(
        compare(
            "@2000 < @2000-01-01",
            Environment::new().partial_date_ranges()
        ),
        ["true"]
    );
    assert_eq!(
        compare(
            "@2000 >= @2000-01-01",
            Environment::new().partial_date_ranges()
        ),
        ["true"]
    );
    assert_eq!(
        compare(
            "@2000-01-01 < @2000-01-01",
            Environment::new().partial_date_ranges()
        ),
        ["false"]
    );
}
