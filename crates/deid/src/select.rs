//! Rule paths that the typed index answers without FHIRPath, and the per-resource index of
//! nodes by type and by name that answers every `nodesByType`/`nodesByName` rule of a plan
//! after one pass over the resource.
//!
//! A path is answered here when it is the original's fast path (`nodesByType('T')`,
//! `nodesByType('T').child`, the same with `nodesByName`), or a chain of element names from
//! the resource (`Patient.address.city`) or from `nodesByType('T')` of a complex type `T`,
//! with `.where(name = 'text')` and `.ofType(primitive)` steps. Anything else is FHIRPath.

use serde_json::Value;

use crate::tree::{Node, Tree};

/// A path over the typed index: where it starts, then steps, each applied to the nodes so far.
#[derive(Debug, Clone)]
pub(crate) struct TreePath {
    pub start: Start,
    pub steps: Vec<TreeStep>,
}

/// Where a [`TreePath`] starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Start {
    /// The resource node.
    Root,
    /// `nodesByType('T')`: the slot of `T` in the engine's type table.
    Type(u32),
    /// `nodesByName('n')`: the slot of `n` in the engine's name table.
    Name(u32),
}

/// One step of a [`TreePath`].
#[derive(Debug, Clone)]
pub(crate) enum TreeStep {
    /// `.name`: the children with this element name (`value`), or with this JSON key when it
    /// is a choice element's typed key (`valueQuantity`), as FHIRPath navigates.
    Child(String),
    /// `.where(name = 'text')`: the nodes whose only child `name` (as for [`TreeStep::Child`])
    /// is a FHIRPath string equal to `text`.
    WhereEquals(String, String),
    /// `.ofType(T)` for a FHIR primitive type `T`: primitives of exactly that type.
    OfType(String),
}

impl TreePath {
    /// Whether the nodes selected depend on values (a `where` step), not on shape alone.
    pub fn reads_values(&self) -> bool {
        self.steps
            .iter()
            .any(|s| matches!(s, TreeStep::WhereEquals(..)))
    }

    /// Whether the path starts from the index of types or names.
    pub fn indexed(&self) -> bool {
        self.start != Start::Root
    }

    /// The selected nodes in document order, nested resources left out; `None` when a `where`
    /// step meets a value it cannot compare like FHIRPath does (then FHIRPath decides).
    /// `value` gives a node's JSON.
    pub fn select<'v>(
        &self,
        tree: &Tree,
        index: &Index,
        value: impl Fn(u32) -> Option<&'v Value>,
    ) -> Option<Vec<u32>> {
        let mut nodes: Vec<u32> = match self.start {
            Start::Root => vec![0],
            Start::Type(slot) => index.types(slot).to_vec(),
            Start::Name(slot) => index.names(slot).to_vec(),
        };
        for step in &self.steps {
            match step {
                TreeStep::Child(name) => {
                    nodes = nodes
                        .iter()
                        .flat_map(|&n| tree.children(n))
                        .filter(|&c| named(tree, c, name))
                        .collect();
                }
                TreeStep::WhereEquals(name, text) => {
                    let mut keep = Vec::with_capacity(nodes.len());
                    for &n in &nodes {
                        let mut children = tree.children(n).filter(|&c| named(tree, c, name));
                        let matched = match (children.next(), children.next()) {
                            (None, _) => false,
                            (Some(c), None) if fhirpath_string(&tree.nodes[c as usize]) => {
                                match value(c) {
                                    None => false,
                                    Some(Value::String(s)) => s == text,
                                    Some(_) => return None,
                                }
                            }
                            _ => return None,
                        };
                        if matched {
                            keep.push(n);
                        }
                    }
                    nodes = keep;
                }
                TreeStep::OfType(t) => nodes.retain(|&n| {
                    let node = &tree.nodes[n as usize];
                    node.primitive && !node.system && node.ty == t
                }),
            }
        }
        nodes.retain(|&n| n == 0 || !tree.nodes[n as usize].resource);
        Some(nodes)
    }
}

/// Whether FHIRPath's `.name` selects `node`: its element name, or its JSON key (a choice
/// element's typed key such as `valueQuantity`, which FHIRPath accepts too).
fn named(tree: &Tree, node: u32, name: &str) -> bool {
    let n = &tree.nodes[node as usize];
    n.name == name || n.key == name
}

/// Whether FHIRPath sees the value of `node` as a `String` (so that `= 'text'` compares the
/// JSON text): a primitive of a type other than boolean, the numbers, and dates and times.
fn fhirpath_string(node: &Node) -> bool {
    node.primitive
        && !matches!(
            node.ty,
            "boolean"
                | "integer"
                | "positiveInt"
                | "unsignedInt"
                | "decimal"
                | "date"
                | "dateTime"
                | "instant"
                | "time"
        )
}

/// Strings (type names or element names) numbered by slot, with a quick filter on length and
/// first byte so that most lookups of names not in the table cost one bit test.
#[derive(Debug, Clone, Default)]
pub(crate) struct SlotTable {
    entries: Vec<String>,
    filter: Vec<u64>,
}

impl SlotTable {
    fn bit(s: &str) -> usize {
        s.len().min(63) * 256 + usize::from(s.as_bytes().first().copied().unwrap_or(0))
    }

    /// The slot of `s`, added when new.
    pub fn slot(&mut self, s: &str) -> u32 {
        if let Some(i) = self.get(s) {
            return i;
        }
        if self.filter.is_empty() {
            self.filter = vec![0; 64 * 256 / 64];
        }
        let bit = SlotTable::bit(s);
        self.filter[bit / 64] |= 1 << (bit % 64);
        self.entries.push(s.to_string());
        (self.entries.len() - 1) as u32
    }

    /// The slot of `s`, if it is in the table.
    pub fn get(&self, s: &str) -> Option<u32> {
        let bit = SlotTable::bit(s);
        if self
            .filter
            .get(bit / 64)
            .is_none_or(|w| w & (1 << (bit % 64)) == 0)
        {
            return None;
        }
        self.entries.iter().position(|e| e == s).map(|i| i as u32)
    }

    /// How many slots there are.
    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

/// One resource's own nodes (not those of nested resources) grouped by type slot and by name
/// slot, each group in document order.
#[derive(Debug, Default)]
pub(crate) struct Index {
    type_slots: usize,
    starts: Vec<u32>,
    nodes: Vec<u32>,
}

impl Index {
    /// Groups the nodes of `tree` in one pass (a counting sort by slot).
    pub fn build(tree: &Tree, types: &SlotTable, names: &SlotTable) -> Index {
        let slots = types.len() + names.len();
        let mut keys: Vec<(u32, u32)> = Vec::with_capacity(tree.nodes.len());
        let mut counts = vec![0u32; slots + 1];
        for (n, node) in tree.nodes.iter().enumerate() {
            if n != 0 && node.resource {
                continue;
            }
            // FHIRPath types system-typed values (an element's `id`, `Extension.url`) as
            // `System.String`, which `nodesByType` never names.
            let t = match types.get(node.ty) {
                Some(s) if !node.system => {
                    counts[s as usize] += 1;
                    s
                }
                _ => u32::MAX,
            };
            let m = names.get(node.name).map_or(u32::MAX, |s| {
                let s = s + types.len() as u32;
                counts[s as usize] += 1;
                s
            });
            if t != u32::MAX || m != u32::MAX {
                keys.push((n as u32, t));
                keys.push((n as u32, m));
            }
        }
        let mut starts = vec![0u32; slots + 1];
        for s in 0..slots {
            starts[s + 1] = starts[s] + counts[s];
        }
        let mut fill = starts.clone();
        let mut nodes = vec![0u32; starts[slots] as usize];
        for (n, s) in keys {
            if s != u32::MAX {
                nodes[fill[s as usize] as usize] = n;
                fill[s as usize] += 1;
            }
        }
        Index {
            type_slots: types.len(),
            starts,
            nodes,
        }
    }

    fn group(&self, slot: usize) -> &[u32] {
        match (self.starts.get(slot), self.starts.get(slot + 1)) {
            (Some(&a), Some(&b)) => &self.nodes[a as usize..b as usize],
            _ => &[],
        }
    }

    /// The nodes whose instance type has this slot.
    pub fn types(&self, slot: u32) -> &[u32] {
        self.group(slot as usize)
    }

    /// The nodes whose element name has this slot.
    pub fn names(&self, slot: u32) -> &[u32] {
        self.group(self.type_slots + slot as usize)
    }
}

/// Compiles a rule path (`resource_type` and `expression` as split by the engine) into a
/// [`TreePath`], or `None` when only FHIRPath can answer it.
pub(crate) fn compile(
    path: &str,
    resource_type: &str,
    expression: &str,
    types: &mut SlotTable,
    names: &mut SlotTable,
) -> Option<TreePath> {
    if let Some((t, child)) = fast_path(path, "nodesByType") {
        return Some(TreePath {
            start: Start::Type(types.slot(&t)),
            steps: child.into_iter().map(TreeStep::Child).collect(),
        });
    }
    if let Some((n, child)) = fast_path(path, "nodesByName") {
        return Some(TreePath {
            start: Start::Name(names.slot(&n)),
            steps: child.into_iter().map(TreeStep::Child).collect(),
        });
    }
    let mut p = Parser {
        s: expression,
        at: 0,
    };
    let start = if resource_type.is_empty() {
        // `nodesByType('T')` followed by steps: FHIRPath's nodesByType compares the FHIR type
        // code, which equals the index's instance type for complex types other than the
        // quantities (`SimpleQuantity` is indexed as `Quantity`).
        let t = p.function_call("nodesByType")?;
        let complex = fhir::types::type_kind(&t) == Some(fhir::types::TypeKind::Complex)
            && !matches!(
                t.as_str(),
                "Quantity" | "SimpleQuantity" | "MoneyQuantity" | "Element" | "BackboneElement"
            );
        if !complex {
            return None;
        }
        Some(t)
    } else {
        None
    };
    let mut steps = Vec::new();
    let mut first = start.is_none();
    while !p.done() {
        if !first {
            p.eat(".")?;
        }
        first = false;
        let ident = p.ident()?;
        if p.peek() == Some(b'(') {
            p.eat("(")?;
            let step = match ident {
                "where" => {
                    let name = p.member()?;
                    p.spaces();
                    p.eat("=")?;
                    p.spaces();
                    TreeStep::WhereEquals(name.to_string(), p.literal()?.to_string())
                }
                "ofType" => {
                    let t = p.ident()?;
                    (fhir::types::type_kind(t) == Some(fhir::types::TypeKind::Primitive))
                        .then(|| TreeStep::OfType(t.to_string()))?
                }
                _ => return None,
            };
            p.eat(")")?;
            steps.push(step);
        } else {
            steps.push(TreeStep::Child(member(ident)?.to_string()));
        }
    }
    if steps.is_empty() && start.is_none() {
        return None;
    }
    let start = match start {
        Some(t) => Start::Type(types.slot(&t)),
        None => Start::Root,
    };
    Some(TreePath { start, steps })
}

/// `func('Name')` or `func('Name').child` with alphanumeric names: the original's fast path.
fn fast_path(path: &str, func: &str) -> Option<(String, Option<String>)> {
    let alnum = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_alphanumeric());
    let rest = path.strip_prefix(func)?.strip_prefix('(')?;
    let rest = rest.strip_prefix(['\'', '"'])?;
    let end = rest.find(['\'', '"'])?;
    let name = &rest[..end];
    let rest = rest[end + 1..].strip_prefix(')')?;
    if !alnum(name) {
        return None;
    }
    if rest.is_empty() {
        return Some((name.to_string(), None));
    }
    let child = rest.strip_prefix('.')?;
    alnum(child).then(|| (name.to_string(), Some(child.to_string())))
}

/// An element name as a FHIRPath member: lower camel case, not a FHIRPath keyword.
fn member(ident: &str) -> Option<&str> {
    const KEYWORDS: [&str; 12] = [
        "and", "or", "xor", "implies", "div", "mod", "in", "contains", "as", "is", "true", "false",
    ];
    (ident.as_bytes()[0].is_ascii_lowercase() && !KEYWORDS.contains(&ident)).then_some(ident)
}

struct Parser<'s> {
    s: &'s str,
    at: usize,
}

impl<'s> Parser<'s> {
    fn done(&self) -> bool {
        self.at >= self.s.len()
    }

    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.at).copied()
    }

    fn eat(&mut self, token: &str) -> Option<()> {
        self.s[self.at..].starts_with(token).then(|| {
            self.at += token.len();
        })
    }

    fn spaces(&mut self) {
        while self.peek() == Some(b' ') {
            self.at += 1;
        }
    }

    /// `[A-Za-z][A-Za-z0-9]*`.
    fn ident(&mut self) -> Option<&'s str> {
        let bytes = self.s.as_bytes();
        let start = self.at;
        if !bytes.get(start)?.is_ascii_alphabetic() {
            return None;
        }
        let mut end = start + 1;
        while end < bytes.len() && bytes[end].is_ascii_alphanumeric() {
            end += 1;
        }
        self.at = end;
        Some(&self.s[start..end])
    }

    fn member(&mut self) -> Option<&'s str> {
        self.ident().and_then(member)
    }

    /// `'text'` without escapes or quotes inside.
    fn literal(&mut self) -> Option<&'s str> {
        self.eat("'")?;
        let rest = &self.s[self.at..];
        let end = rest.find('\'')?;
        let text = &rest[..end];
        if text.contains('\\') {
            return None;
        }
        self.at += end + 1;
        Some(text)
    }

    /// `name('T')` at the start: returns `T` (alphanumeric).
    fn function_call(&mut self, name: &str) -> Option<String> {
        self.eat(name)?;
        self.eat("('")?;
        let t = self.ident()?;
        self.eat("')")?;
        Some(t.to_string())
    }
}

#[cfg(test)]
mod equivalence;

#[cfg(test)]
mod tests {
    use super::*;

    fn compiled(path: &str, resource_type: &str, expression: &str) -> Option<String> {
        let (mut types, mut names) = (SlotTable::default(), SlotTable::default());
        compile(path, resource_type, expression, &mut types, &mut names)
            .map(|p| format!("{:?} {:?}", p.start, p.steps))
    }

    #[test]
    fn compiles_the_shapes_it_can_answer() {
        assert_eq!(
            compiled(
                "nodesByType('Address').city",
                "",
                "nodesByType('Address').city"
            )
            .unwrap(),
            "Type(0) [Child(\"city\")]"
        );
        assert_eq!(
            compiled(
                "Observation.value.ofType(string)",
                "Observation",
                "value.ofType(string)"
            )
            .unwrap(),
            "Root [Child(\"value\"), OfType(\"string\")]"
        );
        let p = "nodesByType('Extension').where(url = 'http://x.org/a.b')";
        assert_eq!(
            compiled(p, "", p).unwrap(),
            "Type(0) [WhereEquals(\"url\", \"http://x.org/a.b\")]"
        );
        for (path, t, e) in [
            (
                "Bundle.entry.request.url.where($this.contains('/'))",
                "Bundle",
                "entry.request.url.where($this.contains('/'))",
            ),
            (
                "Condition.onset | Condition.abatement as Age",
                "Condition",
                "onset | Condition.abatement as Age",
            ),
            (
                "nodesByType('string').where(id = 'a')",
                "",
                "nodesByType('string').where(id = 'a')",
            ),
            (
                "Patient.name.where(use = 'x\\'y')",
                "Patient",
                "name.where(use = 'x\\'y')",
            ),
            (
                "Observation.value.ofType(Quantity)",
                "Observation",
                "value.ofType(Quantity)",
            ),
            ("Patient.Patient.name", "Patient", "Patient.name"),
            ("Patient.name.first()", "Patient", "name.first()"),
            ("Patient.name.as", "Patient", "name.as"),
        ] {
            assert!(compiled(path, t, e).is_none(), "{path}");
        }
    }

    #[test]
    fn slot_tables_find_only_their_entries() {
        let mut t = SlotTable::default();
        assert_eq!(t.get("date"), None);
        assert_eq!(t.slot("date"), 0);
        assert_eq!(t.slot("dateTime"), 1);
        assert_eq!(t.slot("date"), 0);
        assert_eq!(t.get("dateTime"), Some(1));
        assert_eq!(t.get("dxte"), None);
        assert_eq!(t.len(), 2);
    }
}
