//! Parsing reference strings.

use fhir::reference::{Reference, is_valid_id, parse};

#[test]
fn relative_reference_names_type_and_id() {
    let parsed = parse("Patient/123");
    assert_eq!(
        parsed,
        Reference::Relative {
            resource_type: "Patient",
            id: "123",
            version: None
        }
    );
    assert_eq!(parsed.resource_type(), Some("Patient"));
    assert_eq!(parsed.id(), Some("123"));
}

#[test]
fn relative_reference_may_carry_a_version() {
    let parsed = parse("Observation/a.b-1/_history/7");
    assert_eq!(parsed.id(), Some("a.b-1"));
    assert_eq!(parsed.version(), Some("7"));
}

#[test]
fn absolute_reference_keeps_its_base() {
    assert_eq!(
        parse("https://x.example/fhir/Patient/1"),
        Reference::Absolute {
            base: "https://x.example/fhir",
            resource_type: "Patient",
            id: "1",
            version: None,
        }
    );
    assert_eq!(
        parse("http://x/Patient/1/_history/2"),
        Reference::Absolute {
            base: "http://x",
            resource_type: "Patient",
            id: "1",
            version: Some("2")
        }
    );
}

#[test]
fn contained_reference_is_the_local_id() {
    assert_eq!(parse("#p1"), Reference::Contained("p1"));
    assert_eq!(parse("#"), Reference::Contained(""));
    assert_eq!(parse("#p1").id(), None);
}

#[test]
fn urn_references_keep_the_identifier() {
    let uuid = "urn:uuid:057aa36e-b892-9964-75b9-ffb46b097e34";
    assert_eq!(
        parse(uuid),
        Reference::Uuid("057aa36e-b892-9964-75b9-ffb46b097e34")
    );
    assert_eq!(
        parse("urn:oid:1.2.840.113619"),
        Reference::Oid("1.2.840.113619")
    );
    assert_eq!(parse(uuid).resource_type(), None);
}

#[test]
fn malformed_urns_are_other() {
    assert_eq!(
        parse("urn:uuid:not-a-uuid"),
        Reference::Other("urn:uuid:not-a-uuid")
    );
    assert_eq!(parse("urn:oid:1.02"), Reference::Other("urn:oid:1.02"));
}

#[test]
fn conditional_reference_keeps_the_query() {
    let s = "Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|9999";
    assert_eq!(
        parse(s),
        Reference::Conditional {
            resource_type: "Practitioner",
            query: "identifier=http://hl7.org/fhir/sid/us-npi|9999",
        }
    );
}

#[test]
fn unknown_or_abstract_resource_types_are_other() {
    for s in [
        "Patent/1",
        "DomainResource/1",
        "patient/1",
        "HumanName/1",
        "Foo?x=1",
    ] {
        assert_eq!(parse(s), Reference::Other(s), "{s}");
    }
}

#[test]
fn ids_must_match_fhir_id_syntax() {
    let long = format!("Patient/{}", "a".repeat(65));
    for s in [
        "Patient/",
        "Patient/a_b",
        "Patient/a b",
        long.as_str(),
        "Patient/1/_history/",
    ] {
        assert_eq!(parse(s), Reference::Other(s), "{s}");
    }
    assert!(is_valid_id(&"a".repeat(64)));
}

#[test]
fn other_shapes_are_opaque() {
    for s in [
        "",
        "Patient",
        "fhir/Patient/1",
        "http://x/fhir/Patient",
        "http://Patient/1",
        "https://x/fhir/Patient/1?x=1",
        "mailto:someone",
    ] {
        assert_eq!(parse(s), Reference::Other(s), "{s}");
    }
}
