//! Result items: nodes of the resource (with their location) and computed values.

use std::fmt;
use std::rc::Rc;

use crate::value::Value;

/// One item of a FHIRPath result collection.
///
/// An item is either a node of the evaluated resource, which knows its FHIR type and where it
/// sits ([`Item::location`]), or a value the expression computed (a literal, a count, a
/// concatenated string), which has no location.
#[derive(Clone, Debug)]
pub struct Item<'a>(pub(crate) ItemKind<'a>);

#[derive(Clone, Debug)]
pub(crate) enum ItemKind<'a> {
    Node(Node<'a>),
    Value(Value),
    /// The result of `type()`: a namespace and a type name.
    TypeInfo(&'static str, &'static str),
}

/// A node of the resource: its JSON, the `_name` companion that holds a primitive's id and
/// extensions, its FHIR type and its path from the root.
#[derive(Clone, Debug)]
pub(crate) struct Node<'a> {
    pub json: Option<&'a serde_json::Value>,
    pub companion: Option<&'a serde_json::Value>,
    pub ty: NodeType,
    pub path: Path<'a>,
    /// Where the companion sits (the root when there is none).
    pub companion_path: Path<'a>,
}

/// The FHIR type of a node: its type code (`HumanName`, `date`, `BackboneElement`) and the key
/// under which its children are described (a type name, or a backbone element's path). An
/// empty code means the type is unknown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct NodeType {
    pub code: &'static str,
    pub key: &'static str,
}

impl NodeType {
    pub const UNKNOWN: NodeType = NodeType { code: "", key: "" };

    pub fn named(code: &'static str) -> Self {
        NodeType { code, key: code }
    }
}

/// A persistent path from the root to a node, shared between the nodes below it.
#[derive(Clone, Debug, Default)]
pub(crate) struct Path<'a>(Option<Rc<PathLink<'a>>>);

#[derive(Debug)]
struct PathLink<'a> {
    parent: Path<'a>,
    step: RawStep<'a>,
}

#[derive(Debug, Clone, Copy)]
enum RawStep<'a> {
    Key(&'a str),
    Index(usize),
}

impl<'a> Path<'a> {
    pub fn root() -> Self {
        Path(None)
    }

    pub fn key(&self, key: &'a str) -> Self {
        Path(Some(Rc::new(PathLink {
            parent: self.clone(),
            step: RawStep::Key(key),
        })))
    }

    pub fn index(&self, index: usize) -> Self {
        Path(Some(Rc::new(PathLink {
            parent: self.clone(),
            step: RawStep::Index(index),
        })))
    }

    /// The last object key on the path (the element's name), skipping array indexes.
    pub fn last_key(&self) -> Option<&'a str> {
        let mut cursor = &self.0;
        while let Some(link) = cursor {
            if let RawStep::Key(k) = link.step {
                return Some(k.strip_prefix('_').unwrap_or(k));
            }
            cursor = &link.parent.0;
        }
        None
    }

    /// True when both paths are the very same node path (cheap identity first).
    pub fn same_as(&self, other: &Path<'_>) -> bool {
        self.to_location() == other.to_location()
    }

    pub fn to_location(&self) -> Location {
        let mut steps = Vec::new();
        let mut cursor = &self.0;
        while let Some(link) = cursor {
            steps.push(match link.step {
                RawStep::Key(k) => Step::Key(k.to_string()),
                RawStep::Index(i) => Step::Index(i),
            });
            cursor = &link.parent.0;
        }
        steps.reverse();
        Location(steps)
    }
}

/// Where a node sits in the resource: the keys and array indexes from the root to it.
///
/// Its `Display` form is a JSON Pointer (RFC 6901), for example `/name/0/given/1`. A primitive
/// that has only extensions (no value) is located at its `_name` companion, for example
/// `/_birthDate`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Location(Vec<Step>);

/// One step of a [`Location`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Step {
    /// An object member.
    Key(String),
    /// An array element.
    Index(usize),
}

impl Location {
    /// The steps from the root to the node.
    pub fn steps(&self) -> &[Step] {
        &self.0
    }

    /// The node this location points at in `root`, if it is still there.
    pub fn resolve<'v>(&self, root: &'v serde_json::Value) -> Option<&'v serde_json::Value> {
        self.0.iter().try_fold(root, |node, step| match step {
            Step::Key(k) => node.get(k.as_str()),
            Step::Index(i) => node.get(*i),
        })
    }

    /// The node this location points at in `root`, mutably, if it is still there.
    pub fn resolve_mut<'v>(
        &self,
        root: &'v mut serde_json::Value,
    ) -> Option<&'v mut serde_json::Value> {
        self.0.iter().try_fold(root, |node, step| match step {
            Step::Key(k) => node.get_mut(k.as_str()),
            Step::Index(i) => node.get_mut(*i),
        })
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for step in &self.0 {
            match step {
                Step::Key(k) => write!(f, "/{}", k.replace('~', "~0").replace('/', "~1"))?,
                Step::Index(i) => write!(f, "/{i}")?,
            }
        }
        Ok(())
    }
}

impl<'a> Item<'a> {
    pub(crate) fn value(value: Value) -> Self {
        Item(ItemKind::Value(value))
    }

    pub(crate) fn node(node: Node<'a>) -> Self {
        Item(ItemKind::Node(node))
    }

    /// Where this item sits in the resource; `None` for a computed value.
    pub fn location(&self) -> Option<Location> {
        match &self.0 {
            ItemKind::Node(n) => Some(n.path.to_location()),
            ItemKind::Value(_) | ItemKind::TypeInfo(..) => None,
        }
    }

    /// The JSON of this node; `None` for a computed value or a primitive that has only
    /// extensions.
    pub fn json(&self) -> Option<&'a serde_json::Value> {
        match &self.0 {
            ItemKind::Node(n) => n.json,
            ItemKind::Value(_) | ItemKind::TypeInfo(..) => None,
        }
    }

    /// The item's type as `(namespace, name)`: `("FHIR", "HumanName")`, `("FHIR", "date")`,
    /// `("System", "Boolean")`. A node of unknown type reports `("FHIR", "")`.
    pub fn type_name(&self) -> (&'static str, &'static str) {
        match &self.0 {
            ItemKind::Node(n) => match n.ty.code.strip_prefix("System.") {
                Some(system) => ("System", system),
                None => ("FHIR", n.ty.code),
            },
            ItemKind::Value(v) => ("System", v.type_name()),
            ItemKind::TypeInfo(..) => ("System", "TypeInfo"),
        }
    }

    /// The item as a FHIRPath system value (Boolean, Integer, Decimal, String, Date, DateTime,
    /// Time, Quantity); `None` for complex nodes and primitives without a value.
    pub fn to_value(&self) -> Option<Value> {
        match &self.0 {
            ItemKind::Value(v) => Some(v.clone()),
            ItemKind::Node(n) => crate::value::from_node(n),
            ItemKind::TypeInfo(..) => None,
        }
    }
}

impl fmt::Display for Item<'_> {
    /// A system value in its FHIRPath string form; a complex node as compact JSON.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to_value() {
            Some(v) => v.fmt(f),
            None => match self.json() {
                Some(json) => json.fmt(f),
                None => Ok(()),
            },
        }
    }
}
