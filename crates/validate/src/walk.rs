//! A walk over a resource's JSON that knows each element's FHIR type (from the `fhir` crate's
//! type tables) and its JSON Pointer, calling back for every string and number.

use serde_json::Value;

/// Where a leaf value sits: its JSON key, the FHIR type key of the object holding it
/// (`Identifier`, `Patient.contact`), and its own FHIR type (`string`, `date`, `uri`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Site<'a> {
    /// The JSON key (for array items, the array's key).
    pub key: &'a str,
    /// The type key of the enclosing object; `None` where the type tables do not reach.
    pub parent: Option<&'static str>,
    /// The element's type code; `None` when unknown.
    pub type_code: Option<&'static str>,
}

/// A leaf value.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Leaf<'a> {
    /// A JSON string.
    Str(&'a str),
    /// A JSON number.
    Num(&'a serde_json::Number),
}

/// Walks `resource`, calling `visit(pointer, site, leaf)` for each string and number.
pub(crate) fn walk(resource: &Value, visit: &mut impl FnMut(&str, &Site<'_>, Leaf<'_>)) {
    let mut pointer = String::with_capacity(64);
    object_type(resource, None)
        .into_iter()
        .for_each(|key| walk_value(resource, Some(key), "", None, None, &mut pointer, visit));
}

/// The type key of an object: its own `resourceType` when it names a resource type, else
/// the type the element was declared with.
fn object_type(value: &Value, declared: Option<&'static str>) -> Option<&'static str> {
    if let Some(name) = value.get("resourceType").and_then(Value::as_str)
        && fhir::types::is_resource_type(name)
    {
        return fhir::types::intern(name);
    }
    declared
}

/// The (type code, children type key) of `key` inside an object of type `parent`.
fn resolve(
    parent: Option<&'static str>,
    key: &str,
) -> (Option<&'static str>, Option<&'static str>) {
    let Some(parent) = parent else {
        return (None, None);
    };
    if key.starts_with('_') {
        return (Some("Element"), Some("Element"));
    }
    let Some(def) = fhir::types::element(parent, key) else {
        return (None, None);
    };
    if def.is_choice() {
        let suffix = key.get(def.name.len()..).unwrap_or_default();
        let chosen = def
            .choices
            .iter()
            .find(|c| fhir::types::choice_suffix(c) == suffix)
            .copied();
        let children = chosen.filter(|c| !fhir::types::is_primitive(c));
        return (chosen, children);
    }
    let children = (!def.children.is_empty()).then_some(def.children);
    (Some(def.type_code), children)
}

fn walk_value(
    value: &Value,
    object_key: Option<&'static str>,
    key: &str,
    parent: Option<&'static str>,
    type_code: Option<&'static str>,
    pointer: &mut String,
    visit: &mut impl FnMut(&str, &Site<'_>, Leaf<'_>),
) {
    match value {
        Value::String(s) => visit(
            pointer,
            &Site {
                key,
                parent,
                type_code,
            },
            Leaf::Str(s),
        ),
        Value::Number(n) => visit(
            pointer,
            &Site {
                key,
                parent,
                type_code,
            },
            Leaf::Num(n),
        ),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let len = pointer.len();
                pointer.push('/');
                pointer.push_str(&i.to_string());
                walk_value(item, object_key, key, parent, type_code, pointer, visit);
                pointer.truncate(len);
            }
        }
        Value::Object(map) => {
            let own = object_type(value, object_key);
            for (child_key, child) in map {
                if child_key == "resourceType" {
                    continue;
                }
                let (child_type, child_key_type) = resolve(own, child_key);
                let len = pointer.len();
                pointer.push('/');
                push_escaped(pointer, child_key);
                walk_value(
                    child,
                    child_key_type,
                    child_key,
                    own,
                    child_type,
                    pointer,
                    visit,
                );
                pointer.truncate(len);
            }
        }
        Value::Bool(_) | Value::Null => {}
    }
}

/// Appends a JSON Pointer reference token (RFC 6901: `~` as `~0`, `/` as `~1`).
fn push_escaped(pointer: &mut String, token: &str) {
    for c in token.chars() {
        match c {
            '~' => pointer.push_str("~0"),
            '/' => pointer.push_str("~1"),
            c => pointer.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(resource: &Value) -> Vec<(String, Option<&'static str>, Option<&'static str>)> {
        let mut out = Vec::new();
        walk(resource, &mut |pointer, site, _| {
            out.push((pointer.to_owned(), site.parent, site.type_code));
        });
        out
    }

    #[test]
    fn elements_are_typed_through_choices_backbones_and_contained_resources() {
        let resource = serde_json::json!({
            "resourceType": "Observation",
            "valueQuantity": {"value": 3},
            "subject": {"reference": "Patient/1"},
            "contained": [{"resourceType": "Patient", "birthDate": "2000"}],
            "component": [{"valueString": "x"}]
        });
        let found = leaves(&resource);
        assert!(found.contains(&(
            "/valueQuantity/value".into(),
            Some("Quantity"),
            Some("decimal")
        )));
        assert!(found.contains(&(
            "/subject/reference".into(),
            Some("Reference"),
            Some("string")
        )));
        assert!(found.contains(&(
            "/contained/0/birthDate".into(),
            Some("Patient"),
            Some("date")
        )));
        assert!(
            found.contains(&(
                "/component/0/valueString".into(),
                Some("Observation.component"),
                Some("string")
            )),
            "{found:?}"
        );
    }

    #[test]
    fn pointer_tokens_are_escaped() {
        let resource = serde_json::json!({"resourceType": "Basic", "a/b~": "x"});
        assert_eq!(leaves(&resource)[0].0, "/a~1b~0");
    }
}
