//! Small JSON helpers: duplicate-key detection (serde_json keeps the last duplicate silently).

/// The JSON pointer of the first object key that appears twice in its object, if any. `text`
/// must be valid JSON (parse it first).
pub(crate) fn find_duplicate_key(text: &str) -> Option<String> {
    let mut scanner = Scanner {
        bytes: text.as_bytes(),
        pos: 0,
        path: Vec::new(),
    };
    scanner.value()
}

struct Scanner<'a> {
    bytes: &'a [u8],
    pos: usize,
    path: Vec<String>,
}

impl Scanner<'_> {
    fn skip_ws(&mut self) {
        while self.pos < self.bytes.len() && self.bytes[self.pos].is_ascii_whitespace() {
            self.pos += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.bytes.get(self.pos).copied()
    }

    /// Reads a string token starting at `"` and returns its decoded text.
    fn string(&mut self) -> String {
        let start = self.pos;
        self.pos += 1;
        while self.pos < self.bytes.len() {
            match self.bytes[self.pos] {
                b'\\' => self.pos += 2,
                b'"' => {
                    self.pos += 1;
                    break;
                }
                _ => self.pos += 1,
            }
        }
        let raw = &self.bytes[start..self.pos.min(self.bytes.len())];
        serde_json::from_slice::<String>(raw).unwrap_or_default()
    }

    fn pointer(&self, key: &str) -> String {
        let mut out = String::new();
        for step in self.path.iter().map(String::as_str).chain([key]) {
            out.push('/');
            out.push_str(&step.replace('~', "~0").replace('/', "~1"));
        }
        out
    }

    fn value(&mut self) -> Option<String> {
        match self.peek()? {
            b'{' => {
                self.pos += 1;
                let mut seen = std::collections::HashSet::new();
                loop {
                    match self.peek()? {
                        b'}' => {
                            self.pos += 1;
                            return None;
                        }
                        b',' => self.pos += 1,
                        b'"' => {
                            let key = self.string();
                            if !seen.insert(key.clone()) {
                                return Some(self.pointer(&key));
                            }
                            self.peek();
                            self.pos += 1; // ':'
                            self.path.push(key);
                            let found = self.value();
                            self.path.pop();
                            if found.is_some() {
                                return found;
                            }
                        }
                        _ => return None,
                    }
                }
            }
            b'[' => {
                self.pos += 1;
                let mut index = 0usize;
                loop {
                    match self.peek()? {
                        b']' => {
                            self.pos += 1;
                            return None;
                        }
                        b',' => {
                            self.pos += 1;
                            index += 1;
                        }
                        _ => {
                            self.path.push(index.to_string());
                            let found = self.value();
                            self.path.pop();
                            if found.is_some() {
                                return found;
                            }
                        }
                    }
                }
            }
            b'"' => {
                self.string();
                None
            }
            _ => {
                while self.pos < self.bytes.len()
                    && !matches!(self.bytes[self.pos], b',' | b'}' | b']')
                    && !self.bytes[self.pos].is_ascii_whitespace()
                {
                    self.pos += 1;
                }
                None
            }
        }
    }
}

/// The JSON Pointer (RFC 6901) text of a path.
pub(crate) fn pointer(steps: &[fhirpath::Step]) -> String {
    let mut out = String::new();
    for step in steps {
        out.push('/');
        match step {
            fhirpath::Step::Key(k) => out.push_str(&k.replace('~', "~0").replace('/', "~1")),
            fhirpath::Step::Index(i) => out.push_str(&i.to_string()),
        }
    }
    out
}

/// The value at a path, if present.
pub(crate) fn resolve<'v>(
    root: &'v serde_json::Value,
    steps: &[fhirpath::Step],
) -> Option<&'v serde_json::Value> {
    steps.iter().try_fold(root, |node, step| match step {
        fhirpath::Step::Key(k) => node.get(k.as_str()),
        fhirpath::Step::Index(i) => node.get(*i),
    })
}

/// The value at a path, mutably, if present.
pub(crate) fn resolve_mut<'v>(
    root: &'v mut serde_json::Value,
    steps: &[fhirpath::Step],
) -> Option<&'v mut serde_json::Value> {
    steps.iter().try_fold(root, |node, step| match step {
        fhirpath::Step::Key(k) => node.get_mut(k.as_str()),
        fhirpath::Step::Index(i) => node.get_mut(*i),
    })
}

/// Removes empty nodes bottom-up (null values, empty objects and arrays, and the members that
/// held them); returns whether `value` itself is now empty. A primitive array and its `_`
/// companion are pruned together, item by item, so their positions stay aligned. Resources are
/// never empty: they keep their `resourceType`.
pub(crate) fn prune(value: &mut serde_json::Value) -> bool {
    use serde_json::Value;
    match value {
        Value::Null => true,
        Value::Array(items) => {
            items.retain_mut(|item| !prune(item));
            items.is_empty()
        }
        Value::Object(map) => {
            prune_members(map, &|_| false);
            map.is_empty()
        }
        _ => false,
    }
}

/// Prunes the members of an object but those `done` says are pruned already.
fn prune_members(
    map: &mut serde_json::Map<String, serde_json::Value>,
    done: &dyn Fn(&str) -> bool,
) {
    use serde_json::Value;
    if map.keys().any(|k| k.starts_with('_')) {
        let keys: Vec<String> = map.keys().cloned().collect();
        for key in keys {
            if done(&key) {
                continue;
            }
            let companion = format!("_{key}");
            let paired = map.get(&key).is_some_and(Value::is_array)
                && map.get(&companion).is_some_and(Value::is_array);
            if paired {
                prune_pair(map, &key, &companion);
            } else if let Some(v) = map.get_mut(&key)
                && prune(v)
            {
                map.shift_remove(&key);
            }
        }
    } else {
        map.retain(|k, v| done(k) || !prune(v));
    }
}

/// [`prune`] for `validOutput`, reading the resource with the R4 tables: a required complex
/// element that pruning empties (a `Reference` whose `display` was its only content) is masked
/// with the `data-absent-reason` extension instead of being removed. `type_key` describes
/// `value` (a resource type at the top). Returns whether `value` itself is now empty.
pub(crate) fn prune_masking(value: &mut serde_json::Value, type_key: &'static str) -> bool {
    use serde_json::Value;
    let Value::Object(map) = value else {
        return prune(value);
    };
    let keys: Vec<String> = map.keys().cloned().collect();
    let mut typed: Vec<String> = Vec::new();
    for key in keys {
        if key.starts_with('_') || key == "resourceType" {
            continue;
        }
        let Some((def, name)) = crate::tree::lookup(type_key, &key) else {
            continue;
        };
        if def.children.is_empty() || crate::tree::is_primitive_def(def) {
            continue;
        }
        let required = if name == def.name() {
            def.required
        } else {
            fhir::types::element(type_key, name).is_some_and(|base| base.required)
        };
        let Some(child) = map.get_mut(&key) else {
            continue;
        };
        typed.push(key.clone());
        let emptied = match &mut *child {
            Value::Array(items) => {
                items.retain_mut(|item| !prune_element(item, def));
                items.is_empty()
            }
            item => prune_element(item, def),
        };
        if emptied {
            if required {
                let masked = serde_json::json!({"extension": [{
                    "url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason",
                    "valueCode": "masked"
                }]});
                *child = if def.repeats {
                    Value::Array(vec![masked])
                } else {
                    masked
                };
            } else {
                map.shift_remove(&key);
            }
        }
    }
    prune_members(map, &|k| typed.iter().any(|t| t == k));
    map.is_empty()
}

/// Prunes one item of a complex element: a nested resource by its own type, anything else
/// by the element's.
fn prune_element(item: &mut serde_json::Value, def: &fhir::types::ElementDef) -> bool {
    let type_key = if def.type_code == "Resource" {
        item.get("resourceType")
            .and_then(serde_json::Value::as_str)
            .and_then(fhir::types::intern)
    } else {
        Some(def.children)
    };
    match type_key {
        Some(t) => prune_masking(item, t),
        None => prune(item),
    }
}

fn prune_pair(map: &mut serde_json::Map<String, serde_json::Value>, key: &str, companion: &str) {
    use serde_json::Value;
    let take = |map: &mut serde_json::Map<String, Value>, k: &str| match map.get_mut(k) {
        Some(Value::Array(items)) => std::mem::take(items),
        _ => Vec::new(),
    };
    let values = take(map, key);
    let companions = take(map, companion);
    let n = values.len().max(companions.len());
    let mut values = values.into_iter();
    let mut companions = companions.into_iter();
    let (mut kept_values, mut kept_companions) = (Vec::new(), Vec::new());
    for _ in 0..n {
        let mut v = values.next().unwrap_or(Value::Null);
        let mut c = companions.next().unwrap_or(Value::Null);
        let v_empty = prune(&mut v);
        let c_empty = prune(&mut c);
        if v_empty && c_empty {
            continue;
        }
        kept_values.push(if v_empty { Value::Null } else { v });
        kept_companions.push(if c_empty { Value::Null } else { c });
    }
    if kept_values.iter().all(Value::is_null) {
        map.shift_remove(key);
    } else {
        map.insert(key.to_string(), Value::Array(kept_values));
    }
    if kept_companions.iter().all(Value::is_null) {
        map.shift_remove(companion);
    } else {
        map.insert(companion.to_string(), Value::Array(kept_companions));
    }
}

#[cfg(test)]
mod tests {
    use super::find_duplicate_key;

    #[test]
    fn finds_duplicates_at_any_depth() {
        assert_eq!(find_duplicate_key(r#"{"a": 1, "b": [1, {"c": 2}]}"#), None);
        assert_eq!(
            find_duplicate_key(r#"{"a": 1, "a": 2}"#),
            Some("/a".to_string())
        );
        assert_eq!(
            find_duplicate_key(r#"{"r": [{"path": "x"}, {"path": "y", "m": "k", "m": "r"}]}"#),
            Some("/r/1/m".to_string())
        );
        assert_eq!(
            find_duplicate_key(r#"{"a\"b": {"x": "}", "y": 1}, "a\"b": 1}"#),
            Some("/a\"b".to_string())
        );
        assert_eq!(
            find_duplicate_key(r#"{"a": {"x": 1}, "b": {"x": 1}}"#),
            None
        );
    }
}
