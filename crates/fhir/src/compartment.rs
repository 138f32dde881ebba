//! The Patient compartment: which resources belong to which patient (for `Patient/$export`,
//! `Group/$export` and per-patient keys).
//!
//! A resource is in a patient's compartment when one of the compartment's search parameters
//! for its type refers to that patient. The element paths those parameters select were
//! extracted from their FHIRPath expressions when the tables were generated
//! (`Observation.subject.where(resolve() is Patient)` → `subject`).
//!
//! Which references count as naming a patient:
//! - relative (`Patient/123`, `Patient/123/_history/2`) and absolute
//!   (`https://x/fhir/Patient/123`) references to a Patient give its id (`123`); the base of an
//!   absolute reference is dropped;
//! - `urn:uuid:`/`urn:oid:` references (as in transaction bundles) are passed to the
//!   resolver of [`compartment_patients_resolving`], which maps them to a Patient id (from
//!   the bundle's `fullUrl`s); unresolved, they are kept as-is (`urn:uuid:…`) only when the
//!   Reference says `"type": "Patient"`;
//! - contained (`#p1`), conditional and other references are ignored.

use serde_json::Value;

use crate::generated::compartment::PATIENT;
use crate::reference::Reference;

fn row(
    resource_type: &str,
) -> Option<&'static (
    &'static str,
    &'static [&'static str],
    &'static [&'static str],
)> {
    PATIENT
        .binary_search_by(|(t, _, _)| (*t).cmp(resource_type))
        .ok()
        .map(|i| &PATIENT[i])
}

/// The search parameters through which `resource_type` belongs to the Patient compartment
/// (`Observation` → `["subject", "performer"]`, `Patient` → `["link"]`); `None` when
/// resources of that type are never in it.
pub fn patient_compartment_params(resource_type: &str) -> Option<&'static [&'static str]> {
    row(resource_type).map(|(_, params, _)| *params)
}

/// The element paths, relative to the resource, that the compartment parameters of
/// `resource_type` select (`Observation` → `["subject", "performer"]`, `Claim` →
/// `["patient", "payee.party"]`); empty when the type is not in the compartment.
pub fn patient_compartment_paths(resource_type: &str) -> &'static [&'static str] {
    row(resource_type).map_or(&[], |(_, _, paths)| *paths)
}

/// Collects the values at a dotted `path` below `value`, flattening arrays on the way.
fn collect<'v>(value: &'v Value, path: &str, out: &mut Vec<&'v Value>) {
    match value {
        Value::Array(items) => items.iter().for_each(|item| collect(item, path, out)),
        _ => match path.split_once('.') {
            Some((first, rest)) => {
                if let Some(child) = value.get(first) {
                    collect(child, rest, out);
                }
            }
            None => match value.get(path) {
                Some(Value::Array(items)) => out.extend(items),
                Some(child) => out.push(child),
                None => {}
            },
        },
    }
}

/// The Patient id that one Reference object names, if any (see the module documentation).
fn patient_id(reference: &Value, resolve: &impl Fn(&str) -> Option<String>) -> Option<String> {
    let text = reference.get("reference")?.as_str()?;
    match Reference::parse(text) {
        parsed @ (Reference::Relative { .. } | Reference::Absolute { .. })
            if parsed.resource_type() == Some("Patient") =>
        {
            parsed.id().map(str::to_owned)
        }
        Reference::Uuid(_) | Reference::Oid(_) => resolve(text).or_else(|| {
            let typed = reference.get("type").and_then(Value::as_str) == Some("Patient");
            typed.then(|| text.to_owned())
        }),
        _ => None,
    }
}

/// The ids of the patients whose compartments `resource` is in, in the order of the
/// compartment parameters and without duplicates; for a Patient its own id first, then the
/// patients it links to. `urn:uuid:`/`urn:oid:` references are kept only when typed
/// `Patient`; use [`compartment_patients_resolving`] to resolve them.
pub fn compartment_patients(resource: &Value) -> Vec<String> {
    compartment_patients_resolving(resource, |_| None)
}

/// Like [`compartment_patients`], with `resolve` mapping a `urn:uuid:`/`urn:oid:` reference
/// string to the id of the Patient it denotes (for example from a bundle's `fullUrl`s), or
/// `None` when it is not a Patient or unknown.
pub fn compartment_patients_resolving(
    resource: &Value,
    resolve: impl Fn(&str) -> Option<String>,
) -> Vec<String> {
    let Some(resource_type) = resource.get("resourceType").and_then(Value::as_str) else {
        return Vec::new();
    };
    let mut ids: Vec<String> = Vec::new();
    if resource_type == "Patient"
        && let Some(id) = resource.get("id").and_then(Value::as_str)
    {
        ids.push(id.to_owned());
    }
    let mut references = Vec::new();
    for path in patient_compartment_paths(resource_type) {
        collect(resource, path, &mut references);
    }
    for reference in references {
        if let Some(id) = patient_id(reference, &resolve)
            && !ids.contains(&id)
        {
            ids.push(id);
        }
    }
    ids
}

/// The patient a resource belongs to: for a Patient its own id (`None` without one), else the first of
/// [`compartment_patients`]; `None` for resources outside the compartment (an
/// Organization) or without a patient reference.
pub fn compartment_owner(resource: &Value) -> Option<String> {
    if resource.get("resourceType").and_then(Value::as_str) == Some("Patient") {
        return resource
            .get("id")
            .and_then(Value::as_str)
            .map(str::to_owned);
    }
    compartment_patients(resource).into_iter().next()
}
