//! A typed index over one resource's JSON: every element node (the equivalent of the original
//! tool's element tree) with its element name, FHIR instance type, and where it sits in the JSON,
//! in document pre-order.
//!
//! Nested resources (`Bundle.entry.resource`, `contained`, `Parameters.parameter.resource`)
//! appear as single leaf nodes marked `resource`; their content is indexed separately when they
//! are processed. A primitive's value and its `_name` companion (id, extensions) form one node,
//! whose children are the companion's elements.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::BuildHasherDefault;

use fhir::types::NameHasher;

use fhirpath::Step;
use serde_json::Value;

use crate::error::{Error, Result};

/// No node (the root's parent, an absent array index).
pub(crate) const NONE: u32 = u32::MAX;

/// One element node.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    /// The parent node, [`NONE`] for the resource root.
    pub parent: u32,
    /// One past the last node of this node's subtree (nodes are in pre-order).
    pub end: u32,
    /// The JSON key (`valueQuantity`, `given`); the resource type for the root.
    pub key: &'static str,
    /// The position in the JSON array, or [`NONE`].
    pub index: u32,
    /// The element name as FHIRPath sees it (`value` for `valueQuantity`).
    pub name: &'static str,
    /// The instance type (`HumanName`, `date`, `Quantity`, `Extension`, `BackboneElement`, a
    /// resource type for resources).
    pub ty: &'static str,
    /// The type key under which the children of this node are described.
    pub type_key: &'static str,
    /// A FHIR primitive (its value sits at `key`, its children in `_key`).
    pub primitive: bool,
    /// Typed by a FHIRPath system type (`System.String` for `Extension.url`, an element id),
    /// which FHIRPath's `ofType` does not count as the FHIR primitive of the same name.
    pub system: bool,
    /// A resource nested in this one (a leaf here), or the root.
    pub resource: bool,
    /// The element must be present (`min` above 0; for an expanded choice, its base's).
    pub required: bool,
}

/// The typed index of one resource.
#[derive(Debug, Clone)]
pub(crate) struct Tree {
    /// The nodes in pre-order; node 0 is the resource itself.
    pub nodes: Vec<Node>,
    /// The first node of a repeating element written as a single value instead of an array
    /// (which the original accepts, and writes back as an array).
    pub unwrapped: Option<u32>,
}

fn instance_type(def: &fhir::types::ElementDef, owner_is_resource: bool) -> &'static str {
    match def.type_code {
        "System.String" if def.name() == "id" && owner_is_resource => "id",
        "System.String" if def.name() == "url" => "uri",
        "System.String" => "string",
        "System.Boolean" => "boolean",
        "System.Integer" => "integer",
        "System.Decimal" => "decimal",
        "System.Date" => "date",
        "System.DateTime" => "dateTime",
        "System.Time" => "time",
        "SimpleQuantity" | "MoneyQuantity" => "Quantity",
        other => other,
    }
}

fn is_primitive_type(code: &str) -> bool {
    code.starts_with("System.") || fhir::types::is_primitive(code)
}

/// Whether an element's values are primitives.
pub(crate) fn is_primitive_def(def: &fhir::types::ElementDef) -> bool {
    is_primitive_type(def.type_code)
}

/// Finds the element for a JSON key: a plain element, or an expanded choice (`valueQuantity`),
/// returning the element and the FHIRPath name (`value` for `valueQuantity`).
pub(crate) fn lookup(
    type_key: &str,
    json_key: &str,
) -> Option<(&'static fhir::types::ElementDef, &'static str)> {
    let def = fhir::types::element(type_key, json_key)?;
    if def.is_choice() {
        // A bare choice base (`value`) is not a valid JSON key.
        return None;
    }
    // An expanded choice key is its base's name followed by its type's name, capitalised
    // (`value` + `Quantity`): only that split can name a choice base.
    let t = def.type_code;
    if let Some(i) = json_key.len().checked_sub(t.len())
        && i > 0
        && json_key.is_char_boundary(i)
        && is_choice_suffix(&json_key[i..], t)
        && let Some(base) = fhir::types::element(type_key, &json_key[..i])
        && base.is_choice()
        && base
            .choices
            .iter()
            .any(|c| is_choice_suffix(&json_key[i..], c))
    {
        return Some((def, base.name()));
    }
    Some((def, def.name()))
}

/// Whether `suffix` is `type_code` with its first letter capitalised (`DateTime`, `dateTime`).
fn is_choice_suffix(suffix: &str, type_code: &str) -> bool {
    let (s, t) = (suffix.as_bytes(), type_code.as_bytes());
    !t.is_empty() && s.len() == t.len() && s[0] == t[0].to_ascii_uppercase() && s[1..] == t[1..]
}

/// What indexing needs to know of an element found for a JSON key.
#[derive(Debug, Clone, Copy)]
struct Found {
    def: &'static fhir::types::ElementDef,
    /// The FHIRPath name ([`lookup`]).
    name: &'static str,
    /// The instance type in a datatype or backbone element, and in a resource.
    ty: &'static str,
    ty_in_resource: &'static str,
    primitive: bool,
    /// The element (for an expanded choice, its base) is required.
    required: bool,
}

/// Maps keyed by element names, with the fast name hasher of the type tables. Only keys that
/// name elements are stored, so a caller's keys cannot flood them.
type KeyMap<K, V> = HashMap<K, V, BuildHasherDefault<NameHasher>>;

/// The elements of one type key, by JSON key.
type FoundByKey = KeyMap<Box<str>, Found>;

thread_local! {
    /// Elements found, by the address of their type key and the JSON key: the same few
    /// hundred keys recur in every resource.
    static FOUND: RefCell<KeyMap<(usize, usize), FoundByKey>> =
        RefCell::new(KeyMap::default());
}

/// [`lookup`] of every key of `obj` (without its `_`) under `type_key`, with instance types
/// and primitiveness, through the thread's cache; appended to `out` in key order (`None` for
/// a resource's `resourceType`).
fn find_elements(
    type_key: &'static str,
    obj: &serde_json::Map<String, Value>,
    is_resource: bool,
    out: &mut Vec<Option<Found>>,
) {
    FOUND.with(|cache| {
        let mut cache = cache.borrow_mut();
        let by_key = cache
            .entry((type_key.as_ptr() as usize, type_key.len()))
            .or_default();
        for key in obj.keys() {
            if is_resource && key == "resourceType" {
                out.push(None);
                continue;
            }
            let key = key.strip_prefix('_').unwrap_or(key);
            if let Some(found) = by_key.get(key) {
                out.push(Some(*found));
                continue;
            }
            let found = lookup(type_key, key).map(|(def, name)| Found {
                def,
                name,
                ty: instance_type(def, false),
                ty_in_resource: instance_type(def, true),
                primitive: is_primitive_type(def.type_code),
                required: if name == def.name() {
                    def.required
                } else {
                    fhir::types::element(type_key, name).is_some_and(|base| base.required)
                },
            });
            if let Some(found) = found {
                by_key.insert(key.into(), found);
            }
            out.push(found);
        }
    });
}

/// The resource type of a resource's JSON, checked against R4.
pub(crate) fn resource_type(json: &Value, at: &str) -> Result<&'static str> {
    let Some(obj) = json.as_object() else {
        return Err(Error::input(at, "a resource must be a JSON object"));
    };
    match obj.get("resourceType") {
        Some(Value::String(t)) => match fhir::types::intern(t) {
            Some(t) if fhir::types::is_concrete_resource_type(t) => Ok(t),
            // Not quoted: the value is input text, which errors never hold.
            _ => Err(Error::input(
                at,
                "unknown resourceType: not a FHIR R4 resource type",
            )),
        },
        Some(_) => Err(Error::input(at, "resourceType must be a string")),
        None => Err(Error::input(at, "not a resource: no resourceType")),
    }
}

/// One step of the path to the element being indexed (kept for error messages only).
#[derive(Clone, Copy)]
enum Seg {
    /// An element key; `true` for its `_` companion.
    Key(&'static str, bool),
    /// An array position.
    Index(usize),
}

struct Builder<'p, 'v> {
    nodes: Vec<Node>,
    /// Each node's JSON, parallel to `nodes` (see [`Tree::build_with_values`]).
    values: Vec<Option<&'v Value>>,
    /// The elements of the keys of the objects being indexed (a stack, one run per object).
    found: Vec<Option<Found>>,
    base: &'p str,
    path: Vec<Seg>,
    unwrapped: Option<u32>,
}

thread_local! {
    /// Node buffers of dropped trees, reused by the next ones (a resource's nodes take a few
    /// kilobytes, beyond the allocator's fast path).
    static BUFFERS: RefCell<Vec<Vec<Node>>> = const { RefCell::new(Vec::new()) };
}

impl Drop for Tree {
    fn drop(&mut self) {
        let mut nodes = std::mem::take(&mut self.nodes);
        nodes.clear();
        BUFFERS.with(|b| {
            let mut buffers = b.borrow_mut();
            if buffers.len() < 4 {
                buffers.push(nodes);
            }
        });
    }
}

impl Tree {
    /// Indexes a resource. Errors name the element path of an unknown element or a value of the
    /// wrong JSON kind; `base` is the resource's own location, prefixed to those paths.
    pub fn build(json: &Value, base: &str) -> Result<Tree> {
        Tree::build_with_values(json, base).map(|(tree, _)| tree)
    }

    /// Indexes a resource like [`Tree::build`], also returning each node's JSON in `json`: a
    /// primitive's value (`None` when it has only a `_` companion or is null), a complex
    /// node's object, a nested resource's object.
    pub fn build_with_values<'v>(
        json: &'v Value,
        base: &str,
    ) -> Result<(Tree, Vec<Option<&'v Value>>)> {
        let ty = resource_type(json, base)?;
        let mut b = Builder {
            nodes: BUFFERS
                .with(|b| b.borrow_mut().pop())
                .unwrap_or_else(|| Vec::with_capacity(64)),
            values: Vec::with_capacity(64),
            found: Vec::with_capacity(16),
            base,
            path: Vec::with_capacity(16),
            unwrapped: None,
        };
        b.nodes.push(Node {
            parent: NONE,
            end: 1,
            key: ty,
            index: NONE,
            name: ty,
            ty,
            type_key: ty,
            primitive: false,
            system: false,
            resource: true,
            required: false,
        });
        b.values.push(Some(json));
        if let Some(obj) = json.as_object() {
            b.object(obj, 0, ty, true)?;
        }
        let end = b.nodes.len() as u32;
        b.nodes[0].end = end;
        Ok((
            Tree {
                nodes: b.nodes,
                unwrapped: b.unwrapped,
            },
            b.values,
        ))
    }

    /// The direct children of `node`.
    pub fn children(&self, node: u32) -> Children<'_> {
        Children {
            tree: self,
            next: node + 1,
            end: self.nodes[node as usize].end,
        }
    }

    /// The element path of a node, by JSON keys from its resource's type
    /// (`Observation.valueString`, `Condition.code.text`), without array positions.
    pub fn element_path(&self, node: u32) -> String {
        let mut keys = Vec::new();
        let mut at = node;
        while at != NONE {
            let n = &self.nodes[at as usize];
            keys.push(n.key);
            at = n.parent;
        }
        keys.reverse();
        keys.join(".")
    }

    /// The sibling of `node` under the JSON key `key` (`contentType` beside an attachment's
    /// `data`), when present.
    pub fn sibling(&self, node: u32, key: &str) -> Option<u32> {
        let parent = self.nodes[node as usize].parent;
        if parent == NONE {
            return None;
        }
        self.children(parent)
            .find(|&c| self.nodes[c as usize].key == key)
    }

    /// The JSON location of a node: of its value for a primitive, of its object otherwise.
    pub fn location(&self, node: u32) -> Vec<Step> {
        let mut steps = Vec::new();
        self.push_steps(node, false, &mut steps);
        steps
    }

    fn push_steps(&self, node: u32, companion: bool, steps: &mut Vec<Step>) {
        let n = &self.nodes[node as usize];
        if n.parent == NONE {
            return;
        }
        let parent = &self.nodes[n.parent as usize];
        self.push_steps(n.parent, parent.primitive, steps);
        steps.push(Step::Key(if companion {
            format!("_{}", n.key)
        } else {
            n.key.to_string()
        }));
        if n.index != NONE {
            steps.push(Step::Index(n.index as usize));
        }
    }

    /// The JSON object holding `node`: the resource for its own elements, else the parent's
    /// object, or a primitive parent's `_` companion.
    fn container<'v>(
        &self,
        resource: &'v Value,
        node: u32,
    ) -> Option<&'v serde_json::Map<String, Value>> {
        let parent = self.nodes[node as usize].parent;
        if parent == NONE {
            return None;
        }
        if parent == 0 {
            return resource.as_object();
        }
        let holder = if self.nodes[parent as usize].primitive {
            self.companion(resource, parent)?
        } else {
            self.value(resource, parent)?
        };
        holder.as_object()
    }

    fn container_mut<'v>(
        &self,
        resource: &'v mut Value,
        node: u32,
    ) -> Option<&'v mut serde_json::Map<String, Value>> {
        let parent = self.nodes[node as usize].parent;
        if parent == NONE {
            return None;
        }
        if parent == 0 {
            return resource.as_object_mut();
        }
        let p = &self.nodes[parent as usize];
        let holder = self.container_mut(resource, parent)?;
        let holder = if p.primitive {
            holder.get_mut(&format!("_{}", p.key))?
        } else {
            holder.get_mut(p.key)?
        };
        let holder = if p.index == NONE {
            holder
        } else {
            holder.get_mut(p.index as usize)?
        };
        holder.as_object_mut()
    }

    /// A node's JSON in `resource` (the resource's own JSON): a primitive's value (`None` when
    /// it has only a companion), or a complex node's object.
    pub fn value<'v>(&self, resource: &'v Value, node: u32) -> Option<&'v Value> {
        if node == 0 {
            return Some(resource);
        }
        let n = &self.nodes[node as usize];
        let v = self.container(resource, node)?.get(n.key)?;
        let v = if n.index == NONE {
            v
        } else {
            v.get(n.index as usize)?
        };
        (!v.is_null()).then_some(v)
    }

    fn companion<'v>(&self, resource: &'v Value, node: u32) -> Option<&'v Value> {
        let n = &self.nodes[node as usize];
        let v = self
            .container(resource, node)?
            .get(&format!("_{}", n.key))?;
        if n.index == NONE {
            Some(v)
        } else {
            v.get(n.index as usize)
        }
    }

    /// Masks a node with the `data-absent-reason` extension (`masked`): a complex node's object
    /// becomes `{"extension": [DAR]}`; a primitive's value is removed and its `_` companion
    /// becomes `{"extension": [DAR]}`, so that a required element is present without its value.
    pub fn write_absent(&self, resource: &mut Value, node: u32) {
        let n = &self.nodes[node as usize];
        let masked = serde_json::json!({"extension": [{
            "url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason",
            "valueCode": "masked"
        }]});
        if !n.primitive {
            self.write(resource, node, Some(masked));
            return;
        }
        self.write(resource, node, None);
        let Some(obj) = self.container_mut(resource, node) else {
            return;
        };
        let companion = format!("_{}", n.key);
        match n.index {
            NONE => {
                obj.insert(companion, masked);
            }
            i => {
                let i = i as usize;
                let slot = obj
                    .entry(companion)
                    .or_insert_with(|| Value::Array(Vec::new()));
                if let Value::Array(items) = slot {
                    if items.len() <= i {
                        items.resize(i + 1, Value::Null);
                    }
                    items[i] = masked;
                }
            }
        }
    }

    /// Writes a primitive's value (`None` removes it), creating the slot when needed.
    pub fn write(&self, resource: &mut Value, node: u32, value: Option<Value>) {
        let n = &self.nodes[node as usize];
        let Some(obj) = self.container_mut(resource, node) else {
            return;
        };
        match (n.index, value) {
            (NONE, None) => {
                obj.shift_remove(n.key);
            }
            (NONE, Some(v)) => match obj.get_mut(n.key) {
                Some(slot) => *slot = v,
                None => {
                    obj.insert(n.key.to_string(), v);
                }
            },
            (i, None) => {
                if let Some(slot) = obj.get_mut(n.key).and_then(|a| a.get_mut(i as usize)) {
                    *slot = Value::Null;
                }
            }
            (i, Some(v)) => {
                let array = obj
                    .entry(n.key.to_string())
                    .or_insert_with(|| Value::Array(Vec::new()));
                if let Value::Array(items) = array {
                    let i = i as usize;
                    if items.len() <= i {
                        items.resize(i + 1, Value::Null);
                    }
                    items[i] = v;
                }
            }
        }
    }

    /// A [`Finder`] of the nodes at locations returned by FHIRPath.
    pub fn finder(&self) -> Finder<'_> {
        Finder {
            tree: self,
            cursor: Vec::new(),
        }
    }
}

/// Finds the nodes at locations returned by FHIRPath. A lookup in an array resumes from the
/// item the previous lookup found in the same array, so that locations in document order (as
/// FHIRPath returns them) cost time linear in the array, not quadratic.
pub(crate) struct Finder<'t> {
    tree: &'t Tree,
    /// Per depth: the parent searched last and the child found in it.
    cursor: Vec<(u32, u32)>,
}

impl Finder<'_> {
    /// The node at a location (of a value, an object, or a `_name` companion), if it is one
    /// of the tree's nodes.
    pub fn find(&mut self, steps: &[Step]) -> Option<u32> {
        let tree = self.tree;
        let mut node = 0u32;
        let mut depth = 0;
        let mut i = 0;
        while i < steps.len() {
            let Step::Key(key) = &steps[i] else {
                return None;
            };
            let (key, companion) = match key.strip_prefix('_') {
                Some(k) => (k, true),
                None => (key.as_str(), false),
            };
            let index = match steps.get(i + 1) {
                Some(Step::Index(ix)) => {
                    i += 1;
                    *ix as u32
                }
                _ => NONE,
            };
            i += 1;
            let wanted = |c: &u32| {
                let n = &tree.nodes[*c as usize];
                n.key == key && n.index == index
            };
            // Items of one array are consecutive siblings in index order.
            let resume = self.cursor.get(depth).and_then(|&(parent, c)| {
                let n = &tree.nodes[c as usize];
                (parent == node && n.key == key && index != NONE && n.index <= index).then_some(c)
            });
            let end = tree.nodes[node as usize].end;
            let child = resume
                .and_then(|c| Children { tree, next: c, end }.find(wanted))
                .or_else(|| tree.children(node).find(wanted))?;
            if companion && !tree.nodes[child as usize].primitive {
                return None;
            }
            if depth < self.cursor.len() {
                self.cursor[depth] = (node, child);
            } else {
                self.cursor.push((node, child));
            }
            node = child;
            depth += 1;
        }
        Some(node)
    }
}

/// Checks that a JSON object is a valid value of the type described under `type_key` (for a
/// `substitute` replacement); errors name the element path inside the object.
pub(crate) fn check(obj: &serde_json::Map<String, Value>, type_key: &'static str) -> Result<()> {
    let mut b = Builder {
        nodes: vec![Node {
            parent: NONE,
            end: 1,
            key: type_key,
            index: NONE,
            name: type_key,
            ty: type_key,
            type_key,
            primitive: false,
            system: false,
            resource: false,
            required: false,
        }],
        values: vec![None],
        found: Vec::new(),
        base: "",
        path: Vec::new(),
        unwrapped: None,
    };
    b.object(obj, 0, type_key, false)
}

/// An iterator over a node's direct children.
pub(crate) struct Children<'t> {
    tree: &'t Tree,
    next: u32,
    end: u32,
}

impl Iterator for Children<'_> {
    type Item = u32;

    fn next(&mut self) -> Option<u32> {
        if self.next >= self.end {
            return None;
        }
        let current = self.next;
        self.next = self.tree.nodes[current as usize].end;
        Some(current)
    }
}

impl<'v> Builder<'_, 'v> {
    /// The JSON pointer of the element being indexed.
    fn pointer(&self) -> String {
        let mut out = self.base.to_string();
        for seg in &self.path {
            match seg {
                Seg::Key(key, companion) => {
                    out.push_str(if *companion { "/_" } else { "/" });
                    out.push_str(key);
                }
                Seg::Index(i) => {
                    out.push('/');
                    out.push_str(&i.to_string());
                }
            }
        }
        out
    }

    fn err(&self, message: impl Into<String>) -> Error {
        Error::input(self.pointer(), message)
    }

    /// An error at a member (of the current object) that is not a known element.
    fn err_at(&self, key: &str, message: impl Into<String>) -> Error {
        let pointer = format!(
            "{}/{}",
            self.pointer(),
            key.replace('~', "~0").replace('/', "~1")
        );
        Error::input(pointer, message)
    }

    fn with_seg<T>(&mut self, seg: Seg, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        self.path.push(seg);
        let out = f(self);
        self.path.pop();
        out
    }

    /// Indexes the elements of a JSON object whose children are described under `type_key`.
    fn object(
        &mut self,
        obj: &'v serde_json::Map<String, Value>,
        parent: u32,
        type_key: &'static str,
        is_resource: bool,
    ) -> Result<()> {
        // Most objects have no `_name` companions; then no companion lookups are needed.
        let has_companions = obj.keys().any(|k| k.starts_with('_'));
        let start = self.found.len();
        find_elements(type_key, obj, is_resource, &mut self.found);
        for (i, (key, value)) in obj.iter().enumerate() {
            if is_resource && key == "resourceType" {
                continue;
            }
            let found = self.found[start + i];
            if let Some(base) = key.strip_prefix('_') {
                if obj.contains_key(base) {
                    continue; // indexed with its value
                }
                let Some(found) = found else {
                    return Err(self.err_at(key, "unknown element"));
                };
                if !found.primitive {
                    return Err(
                        self.err_at(key, "`_` companion of an element that is not a primitive")
                    );
                }
                self.element(found, None, Some(value), parent, is_resource)?;
                continue;
            }
            let Some(found) = found else {
                return Err(self.err_at(key, "unknown element"));
            };
            let companion = if has_companions && found.primitive {
                obj.get(&format!("_{key}"))
            } else {
                None
            };
            self.element(found, Some(value), companion, parent, is_resource)?;
        }
        self.found.truncate(start);
        Ok(())
    }

    /// Indexes one element (all items of an array) with its optional `_` companion.
    fn element(
        &mut self,
        found: Found,
        value: Option<&'v Value>,
        companion: Option<&'v Value>,
        parent: u32,
        owner_is_resource: bool,
    ) -> Result<()> {
        let (def, name, primitive) = (found.def, found.name, found.primitive);
        let key = def.name();
        let ty = if owner_is_resource {
            found.ty_in_resource
        } else {
            found.ty
        };
        let nested_resource = def.type_code == "Resource";
        let shown_key = Seg::Key(key, value.is_none());
        let arrays = (value.map(Value::as_array), companion.map(Value::as_array));
        let count = match arrays {
            (Some(Some(v)), Some(Some(c))) => v.len().max(c.len()),
            (Some(Some(v)), None) => v.len(),
            (None, Some(Some(c))) => c.len(),
            (Some(None), Some(Some(_))) | (Some(Some(_)), Some(None)) => {
                return self.with_seg(shown_key, |b| {
                    Err(b.err("an element and its `_` companion disagree on being an array"))
                });
            }
            _ => {
                return self.with_seg(shown_key, |b| {
                    b.item(
                        key,
                        NONE,
                        name,
                        ty,
                        def,
                        value,
                        companion,
                        parent,
                        primitive,
                        nested_resource,
                        found.required,
                    )
                });
            }
        };
        self.with_seg(shown_key, |b| {
            for i in 0..count {
                let v = value.and_then(|v| v.get(i)).filter(|v| !v.is_null());
                let c = companion.and_then(|c| c.get(i)).filter(|c| !c.is_null());
                if v.is_none() && c.is_none() {
                    continue;
                }
                b.with_seg(Seg::Index(i), |b| {
                    b.item(
                        key,
                        i as u32,
                        name,
                        ty,
                        def,
                        v,
                        c,
                        parent,
                        primitive,
                        nested_resource,
                        found.required,
                    )
                })?;
            }
            Ok(())
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn item(
        &mut self,
        key: &'static str,
        index: u32,
        name: &'static str,
        ty: &'static str,
        def: &'static fhir::types::ElementDef,
        value: Option<&'v Value>,
        companion: Option<&'v Value>,
        parent: u32,
        primitive: bool,
        nested_resource: bool,
        required: bool,
    ) -> Result<()> {
        let me = self.nodes.len() as u32;
        if def.repeats && index == NONE && self.unwrapped.is_none() {
            self.unwrapped = Some(me);
        }
        if nested_resource {
            let Some(v) = value else {
                return Err(self.err("a resource element needs a resource"));
            };
            let rt = resource_type(v, "").map_err(|e| match e {
                Error::Input { message, .. } => self.err(message),
                other => other,
            })?;
            self.nodes.push(Node {
                parent,
                end: me + 1,
                key,
                index,
                name,
                ty: rt,
                type_key: rt,
                primitive: false,
                system: false,
                resource: true,
                required,
            });
            self.values.push(value);
            return Ok(());
        }
        if primitive {
            if let Some(v) = value
                && (v.is_object() || v.is_array())
            {
                return Err(self.err("a primitive element needs a string, number or boolean"));
            }
        } else if !value.is_some_and(Value::is_object) {
            return Err(self.err("a complex element needs a JSON object"));
        }
        let type_key = if primitive { ty } else { def.children };
        self.nodes.push(Node {
            parent,
            end: me + 1,
            key,
            index,
            name,
            ty,
            type_key,
            primitive,
            system: def.type_code.starts_with("System."),
            resource: false,
            required,
        });
        self.values.push(value.filter(|v| !v.is_null()));
        if primitive {
            if let Some(c) = companion {
                let Some(obj) = c.as_object() else {
                    return Err(self.err("a `_` companion must be a JSON object"));
                };
                let companion_key = fhir::types::intern(def.type_code)
                    .filter(|_| !def.type_code.starts_with("System."))
                    .unwrap_or("string");
                self.object(obj, me, companion_key, false)?;
            }
        } else if let Some(Value::Object(obj)) = value {
            self.object(obj, me, type_key, false)?;
        }
        let end = self.nodes.len() as u32;
        self.nodes[me as usize].end = end;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn indexes_types_names_and_locations() {
        let patient = json!({
            "resourceType": "Patient",
            "id": "p1",
            "name": [{"family": "Doe", "given": ["A", "B"], "_given": [null, {"extension": [{"url": "u", "valueString": "x"}]}]}],
            "_birthDate": {"extension": [{"url": "u", "valueDateTime": "2000-01-01"}]},
            "deceasedBoolean": false,
            "contained": [{"resourceType": "Practitioner", "id": "pr"}]
        });
        let tree = Tree::build(&patient, "").unwrap();
        let summary: Vec<String> = tree
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| {
                format!(
                    "{} {} {} {}",
                    crate::json::pointer(&tree.location(i as u32)),
                    n.name,
                    n.ty,
                    n.end
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                " Patient Patient 15",
                "/id id id 2",
                "/name/0 name HumanName 9",
                "/name/0/family family string 4",
                "/name/0/given/0 given string 5",
                "/name/0/given/1 given string 9",
                "/name/0/_given/1/extension/0 extension Extension 9",
                "/name/0/_given/1/extension/0/url url uri 8",
                "/name/0/_given/1/extension/0/valueString value string 9",
                "/birthDate birthDate date 13",
                "/_birthDate/extension/0 extension Extension 13",
                "/_birthDate/extension/0/url url uri 12",
                "/_birthDate/extension/0/valueDateTime value dateTime 13",
                "/deceasedBoolean deceased boolean 14",
                "/contained/0 contained Practitioner 15",
            ]
        );
        // A finder finds every node at its location, in document order or not, and a
        // primitive with only a companion at the companion's location too.
        let nodes = 0..tree.nodes.len() as u32;
        for order in [nodes.clone().collect::<Vec<_>>(), nodes.rev().collect()] {
            let mut finder = tree.finder();
            for n in order {
                assert_eq!(finder.find(&tree.location(n)), Some(n), "node {n}");
            }
        }
        let companion = [Step::Key("_birthDate".into())];
        assert_eq!(tree.finder().find(&companion), Some(9));
        let inside = [
            Step::Key("contained".into()),
            Step::Index(0),
            Step::Key("id".into()),
        ];
        assert_eq!(tree.finder().find(&inside), None);
    }
}
