//! Reading the R4 input files from `data/fhir-r4`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use anyhow::{Context, Result, bail};
use flate2::read::GzDecoder;
use serde_json::Value;

/// The type of one `path2Type.json` entry.
pub struct PathType {
    /// The type code (`HumanName`, `date`, `Reference`, `System.String`, `BackboneElement`).
    pub code: String,
    /// `refType`: the target resource types of a Reference or canonical.
    pub targets: Vec<String>,
}

/// Facts from one StructureDefinition.
pub struct Structure {
    /// `kind`: `primitive-type`, `complex-type`, `resource` or `logical`.
    pub kind: String,
    /// `abstract`.
    pub is_abstract: bool,
    /// The last segment of `baseDefinition`, if any.
    pub base: Option<String>,
}

/// One SearchParameter.
pub struct SearchParameter {
    /// `code`, as used in a query.
    pub code: String,
    /// `base`: the resource types it applies to.
    pub base: Vec<String>,
    /// `type`: number, date, string, token, reference, composite, quantity, uri or special.
    pub kind: String,
    /// `expression` (FHIRPath), empty when absent.
    pub expression: String,
    /// `target`: the resource types a reference parameter may point at.
    pub targets: Vec<String>,
}

/// Everything the generator reads.
pub struct Sources {
    /// `path2Type.json`.
    pub path_types: BTreeMap<String, PathType>,
    /// `choiceTypePaths.json`, with each list in definition order.
    pub choices: BTreeMap<String, Vec<String>>,
    /// `type2Parent.json`.
    pub parents: BTreeMap<String, String>,
    /// `path2Repeating.json`.
    pub repeating: BTreeSet<String>,
    /// `pathsDefinedElsewhere.json`: contentReference path → target path.
    pub elsewhere: BTreeMap<String, String>,
    /// StructureDefinitions (resources and types) by id.
    pub structures: BTreeMap<String, Structure>,
    /// `max` of every element of the specialisations' snapshots, by path.
    pub max: BTreeMap<String, String>,
    /// The paths of the specialisations' snapshot elements with `min` above 0 (choice bases
    /// as `Observation.value[x]`).
    pub required: BTreeSet<String>,
    /// The SearchParameter bundle, in bundle order.
    pub search: Vec<SearchParameter>,
    /// The Patient compartment: resource type → its parameters (empty: never in it).
    pub compartment: Vec<(String, Vec<String>)>,
}

fn read_json(path: &Path) -> Result<Value> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let reader = BufReader::new(file);
    let value = if path.extension().is_some_and(|e| e == "gz") {
        serde_json::from_reader(BufReader::new(GzDecoder::new(reader)))
    } else {
        serde_json::from_reader(reader)
    };
    value.with_context(|| format!("parsing {}", path.display()))
}

fn object(value: &Value, what: &str) -> Result<serde_json::Map<String, Value>> {
    match value {
        Value::Object(map) => Ok(map.clone()),
        _ => bail!("{what}: expected a JSON object"),
    }
}

fn string(value: &Value, what: &str) -> Result<String> {
    value
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("{what}: expected a string"))
}

fn strings(value: Option<&Value>, what: &str) -> Result<Vec<String>> {
    match value {
        None => Ok(Vec::new()),
        Some(Value::Array(items)) => items.iter().map(|v| string(v, what)).collect(),
        Some(_) => bail!("{what}: expected an array of strings"),
    }
}

fn string_map(value: &Value, what: &str) -> Result<BTreeMap<String, String>> {
    object(value, what)?
        .iter()
        .map(|(k, v)| Ok((k.clone(), string(v, what)?)))
        .collect()
}

fn resources(bundle: &Value, what: &str) -> Result<Vec<Value>> {
    let entries = bundle
        .get("entry")
        .and_then(Value::as_array)
        .with_context(|| format!("{what}: no entries"))?;
    entries
        .iter()
        .map(|e| {
            e.get("resource")
                .cloned()
                .with_context(|| format!("{what}: entry without resource"))
        })
        .collect()
}

impl Sources {
    /// Reads all inputs below `data` (the `data/fhir-r4` folder).
    pub fn load(data: &Path) -> Result<Self> {
        let context = data.join("fhirpath-context");
        let definitions = data.join("definitions");

        let mut path_types = BTreeMap::new();
        for (path, v) in object(&read_json(&context.join("path2Type.json"))?, "path2Type")? {
            let entry = match &v {
                Value::String(code) => PathType {
                    code: code.clone(),
                    targets: Vec::new(),
                },
                Value::Object(o) => PathType {
                    code: string(o.get("code").unwrap_or(&Value::Null), "path2Type code")?,
                    targets: strings(o.get("refType"), "path2Type refType")?,
                },
                _ => bail!("path2Type: unexpected value for {path}"),
            };
            path_types.insert(path, entry);
        }
        let choices = object(
            &read_json(&context.join("choiceTypePaths.json"))?,
            "choiceTypePaths",
        )?
        .iter()
        .map(|(k, v)| Ok((k.clone(), strings(Some(v), "choiceTypePaths")?)))
        .collect::<Result<_>>()?;
        let parents = string_map(
            &read_json(&context.join("type2Parent.json"))?,
            "type2Parent",
        )?;
        let repeating = strings(
            Some(&read_json(&context.join("path2Repeating.json"))?),
            "path2Repeating",
        )?
        .into_iter()
        .collect();
        let elsewhere = string_map(
            &read_json(&context.join("pathsDefinedElsewhere.json"))?,
            "pathsDefinedElsewhere",
        )?;

        let mut structures = BTreeMap::new();
        let mut max = BTreeMap::new();
        let mut required = BTreeSet::new();
        for file in ["profiles-resources.json.gz", "profiles-types.json.gz"] {
            for sd in resources(&read_json(&definitions.join(file))?, file)? {
                if sd.get("resourceType").and_then(Value::as_str) != Some("StructureDefinition") {
                    continue;
                }
                let id = string(
                    sd.get("id").unwrap_or(&Value::Null),
                    "StructureDefinition id",
                )?;
                let specialization =
                    sd.get("derivation").and_then(Value::as_str) != Some("constraint");
                if specialization {
                    let elements = sd
                        .pointer("/snapshot/element")
                        .and_then(Value::as_array)
                        .with_context(|| format!("{file}: {id} has no snapshot"))?;
                    for element in elements {
                        if let Some(path) = element.get("path").and_then(Value::as_str)
                            && element.get("min").and_then(Value::as_u64).unwrap_or(0) > 0
                        {
                            required.insert(path.to_owned());
                        }
                        if let (Some(path), Some(m)) = (
                            element.get("path").and_then(Value::as_str),
                            element.get("max").and_then(Value::as_str),
                        ) {
                            max.insert(path.to_owned(), m.to_owned());
                        }
                    }
                }
                let structure = Structure {
                    kind: string(
                        sd.get("kind").unwrap_or(&Value::Null),
                        "StructureDefinition kind",
                    )?,
                    is_abstract: sd.get("abstract").and_then(Value::as_bool).unwrap_or(false),
                    base: sd
                        .get("baseDefinition")
                        .and_then(Value::as_str)
                        .and_then(|b| b.rsplit('/').next())
                        .map(str::to_owned),
                };
                structures.insert(id, structure);
            }
        }

        let mut search = Vec::new();
        let file = "search-parameters.json.gz";
        for sp in resources(&read_json(&definitions.join(file))?, file)? {
            let field = |name: &str| {
                sp.get(name)
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned()
            };
            search.push(SearchParameter {
                code: field("code"),
                base: strings(sp.get("base"), "SearchParameter base")?,
                kind: field("type"),
                expression: field("expression"),
                targets: strings(sp.get("target"), "SearchParameter target")?,
            });
        }

        let definition = read_json(&definitions.join("compartmentdefinition-patient.json"))?;
        let compartment = definition
            .get("resource")
            .and_then(Value::as_array)
            .context("compartment definition has no resources")?
            .iter()
            .map(|r| {
                let code = string(r.get("code").unwrap_or(&Value::Null), "compartment code")?;
                Ok((code, strings(r.get("param"), "compartment param")?))
            })
            .collect::<Result<_>>()?;

        Ok(Sources {
            path_types,
            choices,
            parents,
            repeating,
            elsewhere,
            structures,
            max,
            required,
            search,
            compartment,
        })
    }
}
