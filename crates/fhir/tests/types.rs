//! The R4 type tables: element types, choices, contentReferences, cardinality, hierarchy.

use fhir::types::{
    self, ElementDef, TypeKind, children, choice_suffix, element, elements_of_type, intern, is_a,
    is_primitive, is_resource_type, parent, resource_types,
};

fn def(type_key: &str, name: &str) -> &'static ElementDef {
    element(type_key, name).unwrap_or_else(|| panic!("{type_key}.{name} should resolve"))
}

#[test]
fn expanded_choice_key_has_its_own_type() {
    let value = def("Observation", "valueQuantity");
    assert_eq!(value.path, "Observation.valueQuantity");
    assert_eq!(value.type_code, "Quantity");
    assert_eq!(value.children, "Quantity");
}

#[test]
fn choice_base_lists_its_eleven_types_as_fhir_type_codes() {
    let value = def("Observation", "value");
    assert!(value.is_choice());
    assert_eq!(value.type_code, "");
    assert_eq!(value.children, "");
    assert_eq!(
        value.choices,
        [
            "Quantity",
            "CodeableConcept",
            "string",
            "boolean",
            "integer",
            "Range",
            "Ratio",
            "SampledData",
            "time",
            "dateTime",
            "Period"
        ]
    );
}

#[test]
fn content_reference_children_are_described_at_the_target() {
    let link = def("Bundle.entry", "link");
    assert_eq!(link.type_code, "BackboneElement");
    assert_eq!(link.children, "Bundle.link");
    assert!(link.repeats);
    assert_eq!(def(link.children, "relation").type_code, "string");
}

#[test]
fn nested_questionnaire_items_repeat_and_reuse_item() {
    let item = def("Questionnaire.item", "item");
    assert!(item.repeats);
    assert_eq!(item.children, "Questionnaire.item");
}

#[test]
fn repeats_follows_cardinality() {
    assert!(def("Patient", "name").repeats);
    assert!(!def("Patient", "birthDate").repeats);
}

#[test]
fn backbone_elements_are_described_under_their_own_path() {
    let contact = def("Patient", "contact");
    assert_eq!(contact.type_code, "BackboneElement");
    assert_eq!(contact.children, "Patient.contact");
    assert_eq!(def("Patient.contact", "name").type_code, "HumanName");
}

#[test]
fn datatype_inline_elements_have_type_element() {
    let repeat = def("Timing", "repeat");
    assert_eq!(repeat.type_code, "Element");
    assert_eq!(repeat.children, "Timing.repeat");
    assert_eq!(def("Timing.repeat", "boundsPeriod").type_code, "Period");
}

#[test]
fn references_carry_their_target_types() {
    let other = def("Patient.link", "other");
    assert_eq!(other.type_code, "Reference");
    assert_eq!(other.targets, ["Patient", "RelatedPerson"]);
    assert!(def("Patient", "birthDate").targets.is_empty());
}

#[test]
fn primitives_have_no_children_key() {
    let birth_date = def("Patient", "birthDate");
    assert_eq!(birth_date.type_code, "date");
    assert_eq!(birth_date.children, "");
    assert_eq!(def("Element", "id").type_code, "System.String");
}

#[test]
fn type_hierarchy_walks_to_element() {
    assert_eq!(parent("Age"), Some("Quantity"));
    assert_eq!(parent("code"), Some("string"));
    assert_eq!(parent("Patient"), Some("DomainResource"));
    assert_eq!(parent("Element"), None);
    assert!(is_a("Age", "Element"));
    assert!(is_a("Age", "Age"));
    assert!(!is_a("Quantity", "Age"));
}

#[test]
fn inherited_elements_resolve_through_parents() {
    assert_eq!(def("HumanName", "extension").type_code, "Extension");
    assert_eq!(def("Patient", "id").type_code, "System.String");
    assert_eq!(def("Patient.contact", "extension").type_code, "Extension");
    assert_eq!(
        def("Patient.contact", "modifierExtension").type_code,
        "Extension"
    );
    assert_eq!(def("SimpleQuantity", "value").path, "Quantity.value");
    assert_eq!(def("MoneyQuantity", "value").path, "Quantity.value");
    assert_eq!(def("Reference", "id").type_code, "System.String");
}

#[test]
fn element_paths_with_a_datatype_resolve_through_that_type() {
    assert_eq!(def("Patient.name", "family").path, "HumanName.family");
    assert_eq!(def("Bundle.entry.link", "url").path, "Bundle.link.url");
}

#[test]
fn unknown_elements_do_not_resolve() {
    assert_eq!(element("Patient", "valueQuantity"), None);
    assert_eq!(element("NoSuchType", "id"), None);
    assert_eq!(element("Patient.nope", "id"), None);
}

#[test]
fn children_are_the_own_elements_sorted_by_name() {
    let names: Vec<&str> = children("HumanName").iter().map(ElementDef::name).collect();
    assert_eq!(
        names,
        [
            "extension",
            "family",
            "given",
            "id",
            "period",
            "prefix",
            "suffix",
            "text",
            "use"
        ]
    );
    assert!(children("SimpleQuantity").is_empty());
    assert!(
        children("Patient.contact")
            .iter()
            .any(|e| e.path == "Patient.contact.name")
    );
}

#[test]
fn elements_of_type_finds_every_use_of_a_type() {
    let dates: Vec<&str> = elements_of_type("date").map(|e| e.path).collect();
    assert!(dates.contains(&"Patient.birthDate"));
    let names: Vec<&str> = elements_of_type("HumanName").map(|e| e.path).collect();
    assert!(names.contains(&"Patient.contact.name"));
    assert!(elements_of_type("dateTime").any(|e| e.path == "Observation.effectiveDateTime"));
}

#[test]
fn intern_returns_the_static_spelling() {
    let name = String::from("HumanName");
    assert_eq!(intern(&name), Some("HumanName"));
    for known in [
        "BackboneElement",
        "Element",
        "Resource",
        "DomainResource",
        "dateTime",
    ] {
        assert_eq!(intern(known), Some(known));
    }
    assert_eq!(intern("System.String"), Some("System.String"));
    assert_eq!(intern("Humanname"), None);
}

#[test]
fn resource_types_are_the_146_concrete_ones() {
    let all = resource_types();
    assert_eq!(all.len(), 146);
    assert!(all.is_sorted());
    assert!(all.contains(&"Patient") && all.contains(&"Bundle"));
    assert!(!all.contains(&"DomainResource"));
}

#[test]
fn resource_type_test_includes_abstract_types() {
    assert!(is_resource_type("Patient"));
    assert!(is_resource_type("DomainResource"));
    assert!(is_resource_type("Resource"));
    assert!(!is_resource_type("HumanName"));
    assert!(!types::is_concrete_resource_type("DomainResource"));
    assert_eq!(
        types::type_kind("Resource"),
        Some(TypeKind::AbstractResource)
    );
}

#[test]
fn primitives_include_fhir_and_system_types() {
    for primitive in [
        "boolean",
        "integer",
        "string",
        "decimal",
        "uri",
        "url",
        "canonical",
        "base64Binary",
        "instant",
        "date",
        "dateTime",
        "time",
        "code",
        "oid",
        "id",
        "markdown",
        "unsignedInt",
        "positiveInt",
        "uuid",
        "xhtml",
        "System.String",
        "System.Decimal",
    ] {
        assert!(is_primitive(primitive), "{primitive}");
    }
    assert!(!is_primitive("Quantity"));
    assert!(!is_primitive("Patient"));
}

#[test]
fn choice_suffix_capitalises_the_type_code() {
    assert_eq!(choice_suffix("dateTime"), "DateTime");
    assert_eq!(choice_suffix("Quantity"), "Quantity");
    assert_eq!(choice_suffix("base64Binary"), "Base64Binary");
}

#[test]
fn required_elements_carry_their_minimum_cardinality() {
    assert!(def("Claim", "created").required);
    assert!(def("Observation", "code").required);
    assert!(def("Narrative", "div").required);
    assert!(def("Extension", "url").required);
    assert!(
        def("Provenance.signature", "type").required,
        "backbone-typed datatype child"
    );
    assert!(def("Bundle.entry", "link").required == def("Bundle", "link").required);
    assert!(!def("Observation", "value").required);
    assert!(def("Extension", "value").is_choice());
    assert!(
        !def("Observation", "valueQuantity").required,
        "expanded keys never are"
    );
    assert!(def("Observation.component", "code").required);
    assert!(!def("Patient", "birthDate").required);
    assert!(!def("Resource", "id").required);
}
