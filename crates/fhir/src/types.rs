//! The FHIR R4 type system: which elements a type has, their types and cardinality, how
//! choice (`value[x]`) and contentReference elements resolve, and the type hierarchy.
//!
//! Element facts come from fhirpath.js's R4 model (`path2Type`, `choiceTypePaths`,
//! `path2Repeating`, `pathsDefinedElsewhere`, `type2Parent`), generated into static tables.
//! Elements are described under a *type key*: a type name (`HumanName`, `Patient`) or, for
//! inline `BackboneElement`/`Element` types, the element's own path (`Patient.contact`).
//! As in FHIR snapshots, a resource's key also lists its inherited `Resource`/`DomainResource`
//! elements (`Patient.id`) and a backbone key its `id`/`extension`/`modifierExtension`.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::LazyLock;

use crate::generated::elements::{ELEMENTS, KEYS};
use crate::generated::types::{RESOURCE_TYPES, TYPES};

/// Facts about one element of a FHIR type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ElementDef {
    /// The element's path: `Patient.contact.name`; for a choice base `Observation.value`.
    pub path: &'static str,
    /// The element's name: the last segment of its path (`name`, `value`, `valueQuantity`).
    pub name: &'static str,
    /// The type code: `HumanName`, `date`, `BackboneElement`, `Element`, `Resource`,
    /// `System.String`; `""` for a choice base.
    pub type_code: &'static str,
    /// The type key under which this element's children are described: the type name
    /// (`HumanName`), for `BackboneElement`/`Element`-typed elements its own path
    /// (`Patient.contact`), for contentReference elements the target path (`Bundle.link`);
    /// `""` for primitives and choice bases.
    pub children: &'static str,
    /// Whether the element is an array.
    pub repeats: bool,
    /// For a choice base, the allowed type codes (`Quantity`, `dateTime`, `string`) in
    /// definition order; else empty.
    pub choices: &'static [&'static str],
    /// The target resource types of a Reference or canonical element, else empty.
    pub targets: &'static [&'static str],
    /// Whether the element must be present (`min` above 0). For a choice base, one of its
    /// expanded keys must be; expanded choice rows (`valueQuantity`) are never required.
    pub required: bool,
}

impl ElementDef {
    /// The element's name: the last segment of its path (`name`, `value`, `valueQuantity`).
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Whether this is a choice base (`Observation.value`), whose JSON keys are the expanded
    /// names (`valueQuantity`).
    pub fn is_choice(&self) -> bool {
        !self.choices.is_empty()
    }
}

/// What kind of type a type name denotes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TypeKind {
    /// A FHIRPath system type (`System.String`).
    System,
    /// A FHIR primitive type (`date`, `string`, `code`).
    Primitive,
    /// A complex datatype (`HumanName`, `Quantity`, `Element`, `BackboneElement`).
    Complex,
    /// A concrete resource type (`Patient`).
    Resource,
    /// An abstract resource type (`Resource`, `DomainResource`, `MetadataResource`).
    AbstractResource,
}

/// A multiply-rotate hasher (FxHash's) for short names (type names, element names, JSON keys):
/// much faster than SipHash on short strings. Not flood-resistant: use it only for maps whose
/// keys come from fixed tables, not from input. `BuildHasherDefault<NameHasher>` builds it.
#[derive(Default, Clone, Copy)]
pub struct NameHasher(u64);

impl NameHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

impl Hasher for NameHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, byte: u8) {
        self.add(u64::from(byte));
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type NameMap<V> = HashMap<&'static str, V, BuildHasherDefault<NameHasher>>;

/// Row indexes of the type and key tables by name, built on first use: lookups sit on the
/// hot path of every FHIRPath navigation.
static TYPE_INDEX: LazyLock<NameMap<usize>> = LazyLock::new(|| {
    TYPES
        .iter()
        .enumerate()
        .map(|(i, row)| (row.0, i))
        .collect()
});
static KEY_INDEX: LazyLock<NameMap<usize>> =
    LazyLock::new(|| KEYS.iter().enumerate().map(|(i, row)| (row.0, i)).collect());

fn type_row(name: &str) -> Option<&'static (&'static str, &'static str, TypeKind)> {
    TYPE_INDEX.get(name).map(|&i| &TYPES[i])
}

fn own_element(type_key: &str, name: &str) -> Option<&'static ElementDef> {
    let elements = children(type_key);
    elements
        .binary_search_by(|e| e.name.cmp(name))
        .ok()
        .map(|i| &elements[i])
}

/// Where to look next for the elements of `type_key`: its parent type; for an element path
/// the key its children are described under, or its inline type (`BackboneElement`/`Element`).
fn next_key(type_key: &str) -> Option<&'static str> {
    if let Some((_, parent, _)) = type_row(type_key) {
        return (!parent.is_empty()).then_some(*parent);
    }
    let (owner, name) = type_key.rsplit_once('.')?;
    let def = element(owner, name)?;
    if !def.children.is_empty() && def.children != type_key {
        Some(def.children)
    } else if matches!(def.type_code, "BackboneElement" | "Element") {
        Some(def.type_code)
    } else {
        None
    }
}

/// The element `name` of `type_key` (a type name or a backbone path such as
/// `Patient.contact`): looks up `{type_key}.{name}`, then walks the parent types
/// (`HumanName`→`Element`, `Patient`→`DomainResource`→`Resource`,
/// `SimpleQuantity`→`Quantity`); backbone keys fall back to `BackboneElement`/`Element`.
/// `name` may be a choice base (`value`), an expanded choice key (`valueQuantity`) or a
/// plain element.
pub fn element(type_key: &str, name: &str) -> Option<&'static ElementDef> {
    if let Some(def) = own_element(type_key, name) {
        return Some(def);
    }
    let mut key = next_key(type_key)?;
    loop {
        if let Some(def) = own_element(key, name) {
            return Some(def);
        }
        key = next_key(key)?;
    }
}

/// The elements listed directly under `type_key`, sorted by name; parent types are not
/// walked (empty for `SimpleQuantity`, whose elements are `Quantity`'s).
pub fn children(type_key: &str) -> &'static [ElementDef] {
    match KEY_INDEX.get(type_key) {
        Some(&i) => {
            let (_, start, end) = KEYS[i];
            &ELEMENTS[usize::from(start)..usize::from(end)]
        }
        None => &[],
    }
}

/// The parent of a type (`Age`→`Quantity`, `code`→`string`, `Patient`→`DomainResource`);
/// `None` for the roots (`Element`, `Resource`, system types) and unknown names.
pub fn parent(type_code: &str) -> Option<&'static str> {
    type_row(type_code).and_then(|(_, parent, _)| (!parent.is_empty()).then_some(*parent))
}

/// Whether `type_code` is `ancestor` or derives from it (`is_a("Age", "Element")`).
pub fn is_a(type_code: &str, ancestor: &str) -> bool {
    if type_code == ancestor {
        return true;
    }
    let mut current = parent(type_code);
    while let Some(t) = current {
        if t == ancestor {
            return true;
        }
        current = parent(t);
    }
    false
}

/// The `'static` spelling of a known type name (resources, datatypes, primitives,
/// `BackboneElement`, `Element`, `Resource`, `DomainResource`, `System.*`).
pub fn intern(type_name: &str) -> Option<&'static str> {
    type_row(type_name).map(|(name, _, _)| *name)
}

/// The kind of a known type name.
pub fn type_kind(type_name: &str) -> Option<TypeKind> {
    type_row(type_name).map(|(_, _, kind)| *kind)
}

/// Whether `name` is a concrete or abstract resource type (`Patient`, `DomainResource`).
pub fn is_resource_type(name: &str) -> bool {
    matches!(
        type_kind(name),
        Some(TypeKind::Resource | TypeKind::AbstractResource)
    )
}

/// Whether `name` is a concrete resource type (one that can occur as `resourceType`).
pub fn is_concrete_resource_type(name: &str) -> bool {
    type_kind(name) == Some(TypeKind::Resource)
}

/// The concrete R4 resource types, sorted.
pub fn resource_types() -> &'static [&'static str] {
    &RESOURCE_TYPES
}

/// Whether `type_code` is a FHIR primitive (`boolean`, `string`, `date`, `code`, `xhtml`, …)
/// or a FHIRPath system type (`System.String`).
pub fn is_primitive(type_code: &str) -> bool {
    matches!(
        type_kind(type_code),
        Some(TypeKind::Primitive | TypeKind::System)
    )
}

/// The JSON key suffix of a choice element of this type: `dateTime`→`DateTime`,
/// `Quantity`→`Quantity`.
pub fn choice_suffix(type_code: &str) -> String {
    let mut chars = type_code.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Every element (of all resources and datatypes, including expanded choice keys) whose
/// type code is exactly `type_code`: `elements_of_type("date")` yields `Patient.birthDate`.
pub fn elements_of_type(type_code: &str) -> impl Iterator<Item = &'static ElementDef> {
    ELEMENTS.iter().filter(move |e| e.type_code == type_code)
}
