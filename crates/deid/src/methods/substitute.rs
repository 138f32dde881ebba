//! `substitute`: replaces a node by `replaceWith`.
//!
//! A primitive gets the replacement's text (always a JSON string; `null` removes the value).
//! A complex node is merged with the replacement object: children named in the replacement
//! replace the existing ones pairwise, surplus existing children go, surplus replacement
//! children are added, children the replacement does not name are removed; but whatever an
//! earlier rule already processed stays as it is, with the ancestors needed to hold it.

use std::collections::HashSet;

use serde_json::{Map, Value};

use crate::tree::{NONE, Tree};

/// The text a primitive is substituted with: `None` for `null` (the value is removed).
pub fn primitive_text(replace_with: &Value) -> Option<String> {
    match replace_with {
        Value::Null => None,
        Value::Object(_) | Value::Array(_) => Some(replace_with.to_string()),
        other => super::value_text(other),
    }
}

/// A value and its `_` companion, either of which may be absent.
type Pair = (Option<Value>, Option<Value>);

/// Merges the complex node `node` (whose JSON object is `existing`) with `replacement`, keeping
/// every node `visited` marks (and its ancestors). Returns the new object.
pub(crate) fn merge(
    tree: &Tree,
    visited: &[bool],
    node: u32,
    existing: &Map<String, Value>,
    replacement: &Map<String, Value>,
) -> Map<String, Value> {
    Merger { tree, visited }.object(node, existing, Some(replacement))
}

struct Merger<'t> {
    tree: &'t Tree,
    visited: &'t [bool],
}

fn items<'v>(
    value: Option<&'v Value>,
    companion: Option<&'v Value>,
) -> Vec<(Option<&'v Value>, Option<&'v Value>)> {
    match (value, companion) {
        (None, None) => Vec::new(),
        (v, c) if v.is_some_and(Value::is_array) || c.is_some_and(Value::is_array) => {
            let n = v
                .and_then(Value::as_array)
                .map_or(0, Vec::len)
                .max(c.and_then(Value::as_array).map_or(0, Vec::len));
            (0..n)
                .map(|i| {
                    (
                        v.and_then(|v| v.get(i)).filter(|x| !x.is_null()),
                        c.and_then(|c| c.get(i)).filter(|x| !x.is_null()),
                    )
                })
                .collect()
        }
        (v, c) => vec![(v, c)],
    }
}

fn pick<'v>(container: &'v Map<String, Value>, key: &str, index: u32) -> Option<&'v Value> {
    let v = container.get(key)?;
    let v = if index == NONE {
        v
    } else {
        v.get(index as usize)?
    };
    (!v.is_null()).then_some(v)
}

impl Merger<'_> {
    fn subtree_visited(&self, node: u32) -> bool {
        let n = &self.tree.nodes[node as usize];
        self.visited[node as usize..n.end as usize]
            .iter()
            .any(|v| *v)
    }

    fn object(
        &self,
        node: u32,
        existing: &Map<String, Value>,
        replacement: Option<&Map<String, Value>>,
    ) -> Map<String, Value> {
        let mut out = Map::new();
        let mut done: HashSet<&str> = HashSet::new();
        let children: Vec<u32> = self.tree.children(node).collect();
        for &first in &children {
            let key = self.tree.nodes[first as usize].key;
            if !done.insert(key) {
                continue;
            }
            let group: Vec<u32> = children
                .iter()
                .copied()
                .filter(|&c| self.tree.nodes[c as usize].key == key)
                .collect();
            let companion_key = format!("_{key}");
            let new_items = items(
                replacement.and_then(|r| r.get(key)),
                replacement.and_then(|r| r.get(&companion_key)),
            );
            let mut merged: Vec<Pair> = Vec::new();
            for i in 0..group.len().max(new_items.len()) {
                let result = match (group.get(i), new_items.get(i)) {
                    (Some(&e), r) => self.node(e, existing, r.copied()),
                    (None, Some((v, c))) => (v.cloned(), c.cloned()),
                    (None, None) => (None, None),
                };
                if result.0.is_some() || result.1.is_some() {
                    merged.push(result);
                }
            }
            let is_array = self.tree.nodes[first as usize].index != NONE
                || replacement
                    .and_then(|r| r.get(key))
                    .is_some_and(Value::is_array);
            write_items(&mut out, key, &companion_key, merged, is_array);
        }
        if let Some(replacement) = replacement {
            for (k, v) in replacement {
                let base = k.strip_prefix('_').unwrap_or(k);
                if done.contains(base) || out.contains_key(k) {
                    continue;
                }
                out.insert(k.clone(), v.clone());
            }
        }
        out
    }

    /// Merges one existing child with its replacement counterpart (if any).
    fn node(
        &self,
        e: u32,
        container: &Map<String, Value>,
        replacement: Option<(Option<&Value>, Option<&Value>)>,
    ) -> Pair {
        let n = &self.tree.nodes[e as usize];
        let value = pick(container, n.key, n.index);
        let companion = pick(container, &format!("_{}", n.key), n.index);
        if self.visited[e as usize] {
            return (value.cloned(), companion.cloned());
        }
        let (r_value, r_companion) = replacement.unwrap_or((None, None));
        if !self.subtree_visited(e) {
            return (r_value.cloned(), r_companion.cloned());
        }
        if n.primitive {
            let existing = companion
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            let merged = self.object(e, &existing, r_companion.and_then(Value::as_object));
            (
                r_value.cloned(),
                (!merged.is_empty()).then_some(Value::Object(merged)),
            )
        } else {
            let existing = value
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            let merged = self.object(e, &existing, r_value.and_then(Value::as_object));
            ((!merged.is_empty()).then_some(Value::Object(merged)), None)
        }
    }
}

fn write_items(
    out: &mut Map<String, Value>,
    key: &str,
    companion_key: &str,
    items: Vec<Pair>,
    array: bool,
) {
    if items.is_empty() {
        return;
    }
    if array {
        let any_value = items.iter().any(|(v, _)| v.is_some());
        let any_companion = items.iter().any(|(_, c)| c.is_some());
        let (values, companions): (Vec<Value>, Vec<Value>) = items
            .into_iter()
            .map(|(v, c)| (v.unwrap_or(Value::Null), c.unwrap_or(Value::Null)))
            .unzip();
        if any_value {
            out.insert(key.to_string(), Value::Array(values));
        }
        if any_companion {
            out.insert(companion_key.to_string(), Value::Array(companions));
        }
    } else if let Some((v, c)) = items.into_iter().next() {
        if let Some(v) = v {
            out.insert(key.to_string(), v);
        }
        if let Some(c) = c {
            out.insert(companion_key.to_string(), c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn primitive_texts() {
        assert_eq!(primitive_text(&json!("x")), Some("x".to_string()));
        assert_eq!(primitive_text(&json!(5)), Some("5".to_string()));
        assert_eq!(primitive_text(&json!(true)), Some("True".to_string()));
        assert_eq!(primitive_text(&Value::Null), None);
    }

    #[test]
    fn merge_keeps_visited_nodes() {
        let patient = json!({"resourceType": "Patient", "name": [{
            "family": "Doe", "given": ["A", "B"],
            "period": {"start": "2002", "end": "2010-01-01"}
        }]});
        let tree = Tree::build(&patient, "").unwrap();
        let mut visited = vec![false; tree.nodes.len()];
        let start = tree
            .finder()
            .find(&[
                fhirpath::Step::Key("name".into()),
                fhirpath::Step::Index(0),
                fhirpath::Step::Key("period".into()),
                fhirpath::Step::Key("start".into()),
            ])
            .unwrap();
        visited[start as usize] = true;
        let name = tree
            .finder()
            .find(&[fhirpath::Step::Key("name".into()), fhirpath::Step::Index(0)])
            .unwrap();
        let existing = patient["name"][0].as_object().unwrap();
        let replacement = json!({"family": "X", "given": ["Y"], "text": "Z"});
        let out = merge(
            &tree,
            &visited,
            name,
            existing,
            replacement.as_object().unwrap(),
        );
        assert_eq!(
            Value::Object(out),
            json!({"family": "X", "given": ["Y"], "period": {"start": "2002"}, "text": "Z"})
        );
    }
}
