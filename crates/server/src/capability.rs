//! The CapabilityStatement (`GET /fhir/metadata`): what this server really supports, built
//! from the same tables the handlers use, and the Bulk Data `$export` operations.

use serde_json::{Value, json};

/// The canonical URL of the Bulk Data CapabilityStatement this server instantiates.
pub const BULK_DATA: &str = "http://hl7.org/fhir/uv/bulkdata/CapabilityStatement/bulk-data";

/// The interactions every resource type supports.
const INTERACTIONS: &[&str] = &[
    "read",
    "vread",
    "update",
    "delete",
    "history-instance",
    "history-type",
    "create",
    "search-type",
];

/// The CapabilityStatement of a server reachable at `base_url`.
pub fn capability_statement(base_url: &str) -> Value {
    let resources: Vec<Value> = fhir::types::resource_types()
        .iter()
        .map(|resource_type| resource(resource_type))
        .collect();
    json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": store::Timestamp::now().to_string(),
        "publisher": "Haven",
        "kind": "instance",
        "instantiates": [BULK_DATA],
        "software": {"name": "Haven", "version": env!("CARGO_PKG_VERSION")},
        "implementation": {"description": "Haven FHIR R4 server", "url": base_url},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "rest": [{
            "mode": "server",
            "resource": resources,
            "interaction": [
                {"code": "transaction"},
                {"code": "batch"},
                {"code": "history-system"},
            ],
            "operation": [{
                "name": "export",
                "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export",
            }],
        }],
    })
}

fn resource(resource_type: &str) -> Value {
    let search_params: Vec<Value> = store::indexed_params(resource_type)
        .iter()
        .map(|param| {
            json!({
                "name": param.code,
                "type": format!("{:?}", param.kind).to_ascii_lowercase(),
            })
        })
        .collect();
    let mut resource = json!({
        "type": resource_type,
        "interaction": INTERACTIONS.iter().map(|code| json!({"code": code})).collect::<Vec<_>>(),
        "versioning": "versioned",
        "readHistory": true,
        "updateCreate": true,
        "conditionalCreate": true,
        "searchParam": search_params,
    });
    let operation = match resource_type {
        "Patient" => Some("http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export"),
        "Group" => Some("http://hl7.org/fhir/uv/bulkdata/OperationDefinition/group-export"),
        _ => None,
    };
    if let Some(definition) = operation {
        resource["operation"] = json!([{"name": "export", "definition": definition}]);
    }
    resource
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declares_bulk_data_and_searchable_parameters() {
        let statement = capability_statement("http://h/fhir");
        assert_eq!(statement["instantiates"][0], BULK_DATA);
        let rest = &statement["rest"][0];
        assert_eq!(rest["operation"][0]["name"], "export");
        let resources = rest["resource"].as_array().unwrap();
        let patient = resources.iter().find(|r| r["type"] == "Patient").unwrap();
        assert!(
            patient["operation"][0]["definition"]
                .as_str()
                .unwrap()
                .ends_with("/patient-export")
        );
        let names: Vec<&str> = patient["searchParam"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert!(names.contains(&"birthdate") && names.contains(&"_lastUpdated"));
        let group = resources.iter().find(|r| r["type"] == "Group").unwrap();
        assert!(
            group["operation"][0]["definition"]
                .as_str()
                .unwrap()
                .ends_with("/group-export")
        );
    }
}
