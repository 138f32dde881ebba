//! Collecting a run's identifying values from its resources, before any text is scrubbed.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde_json::{Map, Value};

use crate::dictionary::Dictionary;
use crate::kind::Kind;
use crate::lexicon;

/// Resource types whose people are identified: every name, identifier, telecom, address and
/// birth date they hold is collected.
const PEOPLE: [&str; 4] = ["Patient", "RelatedPerson", "Person", "Practitioner"];

/// Resource types whose addresses and telecom are collected (not their names).
const PLACES: [&str; 3] = ["Organization", "Location", "PractitionerRole"];

/// Name parts that are titles or qualifications, not names.
const NOT_NAMES: [&str; 16] = [
    "mr", "mrs", "ms", "miss", "mx", "dr", "prof", "rev", "jr", "sr", "ii", "iii", "iv", "md",
    "phd", "rn",
];

/// Values shorter than this many characters are not collected (except names, which need 2):
/// they would match too much ordinary text.
const MIN_TERM: usize = 4;

/// Numbers with fewer digits than this are not collected.
const MIN_DIGITS: usize = 5;

/// The identifying values of a run, collected resource by resource ([`Identities::add_resource`])
/// and compiled into a [`Dictionary`] once all are in. Values are kept sorted, so every process
/// that collects the same resources, in any order, builds the same dictionary; the JSON form
/// ([`Identities::to_json`]) ships them to other processes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identities {
    /// Words and phrases (names, identifiers, emails, address lines, cities), with their kind.
    terms: BTreeMap<String, Kind>,
    /// Digits of phone numbers, numeric identifiers and ZIP codes, with their kind.
    numbers: BTreeMap<String, Kind>,
    /// Birth and death dates.
    dates: BTreeSet<(i32, u32, u32)>,
}

impl Identities {
    /// Collects the identifying values of a resource, of its contained resources and, for a
    /// Bundle, of its entries. Only the people and places listed in the crate documentation
    /// count; other resources are looked into for those only.
    pub fn add_resource(&mut self, resource: &Value) {
        let Some(obj) = resource.as_object() else {
            return;
        };
        let resource_type = obj
            .get("resourceType")
            .and_then(Value::as_str)
            .unwrap_or("");
        if PEOPLE.contains(&resource_type) {
            self.add_person(obj);
        } else if PLACES.contains(&resource_type) {
            self.add_place(obj);
        }
        for contained in obj
            .get("contained")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            self.add_resource(contained);
        }
        if resource_type == "Bundle" {
            for entry in obj
                .get("entry")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(r) = entry.get("resource") {
                    self.add_resource(r);
                }
            }
        }
    }

    /// The resource types whose values are collected: the people, then the places.
    pub const RESOURCE_TYPES: [&'static str; 7] = [
        PEOPLE[0], PEOPLE[1], PEOPLE[2], PEOPLE[3], PLACES[0], PLACES[1], PLACES[2],
    ];

    /// Whether a resource type is one whose values are collected.
    pub fn collects(resource_type: &str) -> bool {
        PEOPLE.contains(&resource_type) || PLACES.contains(&resource_type)
    }

    /// Collects from one JSON text (an NDJSON line or a `.json` document). Text that does not
    /// name a collected resource type (`"Patient"`, quoted) is not even parsed, so a pass over a
    /// whole export costs little more than reading it. Errors are JSON syntax errors (their
    /// position only).
    pub fn add_json(&mut self, json: &[u8]) -> Result<(), serde_json::Error> {
        static FINDERS: std::sync::LazyLock<Vec<memchr::memmem::Finder<'static>>> =
            std::sync::LazyLock::new(|| {
                PEOPLE
                    .iter()
                    .chain(&PLACES)
                    .map(|t| memchr::memmem::Finder::new(&format!("\"{t}\"")).into_owned())
                    .collect()
            });
        if !FINDERS.iter().any(|f| f.find(json).is_some()) {
            return Ok(());
        }
        let value: Value = serde_json::from_slice(json)?;
        self.add_resource(&value);
        Ok(())
    }

    /// Whether a file may hold collected resources, by its Bulk Data name: a file named for
    /// another resource type (`Observation.ndjson`, `Observation-2.ndjson.gz`) holds none at
    /// its top level (contained people are found with their resource), so it need not be read.
    pub fn may_hold(file_name: &str) -> bool {
        let stem: String = file_name
            .chars()
            .take_while(|c| c.is_ascii_alphabetic())
            .collect();
        let rest = &file_name[stem.len()..];
        let bulk_name = rest.starts_with(['.', '-', '_']) && rest.contains(".ndjson");
        let named_type = bulk_name && stem.chars().next().is_some_and(|c| c.is_ascii_uppercase());
        !named_type || Self::collects(&stem) || stem == "Bundle"
    }

    /// Adds every value of `other`.
    pub fn merge(&mut self, other: Identities) {
        for (t, k) in other.terms {
            self.terms.entry(t).or_insert(k);
        }
        for (n, k) in other.numbers {
            self.numbers.entry(n).or_insert(k);
        }
        self.dates.extend(other.dates);
    }

    /// The number of values collected.
    pub fn len(&self) -> usize {
        self.terms.len() + self.numbers.len() + self.dates.len()
    }

    /// Whether nothing was collected.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The values as JSON, to ship to other processes: `{"terms": [[text, kind], …],
    /// "numbers": [[digits, kind], …], "dates": ["YYYY-MM-DD", …]}`. It holds identifiers:
    /// keep it as private as the data.
    pub fn to_json(&self) -> Value {
        let pairs = |m: &BTreeMap<String, Kind>| {
            Value::Array(
                m.iter()
                    .map(|(t, k)| Value::Array(vec![t.clone().into(), k.name().into()]))
                    .collect(),
            )
        };
        serde_json::json!({
            "terms": pairs(&self.terms),
            "numbers": pairs(&self.numbers),
            "dates": self.dates.iter().map(|(y, m, d)| format!("{y:04}-{m:02}-{d:02}")).collect::<Vec<_>>(),
        })
    }

    /// Reads the JSON of [`Identities::to_json`]; `None` when it is not that shape.
    pub fn from_json(value: &Value) -> Option<Identities> {
        let pairs = |key: &str| -> Option<BTreeMap<String, Kind>> {
            value
                .get(key)?
                .as_array()?
                .iter()
                .map(|pair| {
                    let pair = pair.as_array()?;
                    Some((
                        pair.first()?.as_str()?.to_string(),
                        Kind::from_name(pair.get(1)?.as_str()?)?,
                    ))
                })
                .collect()
        };
        let dates = value
            .get("dates")?
            .as_array()?
            .iter()
            .map(|d| parse_date(d.as_str()?))
            .collect::<Option<BTreeSet<_>>>()?;
        Some(Identities {
            terms: pairs("terms")?,
            numbers: pairs("numbers")?,
            dates,
        })
    }

    /// Compiles the values into a [`Dictionary`].
    pub fn build(&self) -> Dictionary {
        let mut words = Vec::new();
        let mut cased = Vec::new();
        for (term, &kind) in &self.terms {
            let single_word = !term.contains(char::is_whitespace);
            if single_word && lexicon::is_common_word(&lexicon::lower(term)) {
                let mut forms = vec![term.clone(), capitalised(term), term.to_uppercase()];
                forms.sort();
                forms.dedup();
                cased.extend(forms.into_iter().map(|f| (f, kind)));
            } else if term.is_ascii() {
                words.push((term.clone(), kind));
            } else {
                let mut forms = vec![
                    term.clone(),
                    term.to_lowercase(),
                    term.to_uppercase(),
                    capitalised(term),
                ];
                forms.sort();
                forms.dedup();
                words.extend(forms.into_iter().map(|f| (f, kind)));
            }
        }
        let numbers: HashMap<Box<str>, Kind> = self
            .numbers
            .iter()
            .map(|(n, &k)| (n.as_str().into(), k))
            .collect();
        let dates: HashSet<(i32, u32, u32)> = self.dates.iter().copied().collect();
        Dictionary::new(words, cased, numbers, dates, self.len())
    }

    fn add_person(&mut self, obj: &Map<String, Value>) {
        for (key, value) in obj {
            match key.as_str() {
                "contained" | "text" | "resourceType" | "id" | "meta" => {}
                "birthDate" | "deceasedDateTime" => {
                    if let Some(date) = value.as_str().and_then(parse_date) {
                        self.dates.insert(date);
                    }
                }
                _ => self.walk(key, value),
            }
        }
    }

    fn add_place(&mut self, obj: &Map<String, Value>) {
        for key in ["telecom", "address", "contact"] {
            if let Some(value) = obj.get(key) {
                self.walk(key, value);
            }
        }
    }

    /// Collects by shape below a person's element `key`: names, telecom, addresses, identifiers,
    /// and the string values of name extensions (`patient-mothersMaidenName`).
    fn walk(&mut self, key: &str, value: &Value) {
        match value {
            Value::Array(items) => {
                for item in items {
                    self.walk(key, item);
                }
            }
            Value::Object(obj) => match key {
                "name" | "valueHumanName" => self.add_human_name(obj),
                "telecom" | "valueContactPoint" => self.add_contact_point(obj),
                "address" | "valueAddress" => self.add_address(obj),
                "identifier" | "valueIdentifier" => {
                    if let Some(v) = obj.get("value").and_then(Value::as_str) {
                        self.add_identifier(v);
                    }
                }
                "extension" => {
                    let url = obj.get("url").and_then(Value::as_str).unwrap_or("");
                    if url.to_ascii_lowercase().contains("name")
                        && let Some(v) = obj.get("valueString").and_then(Value::as_str)
                    {
                        self.add_name_text(v);
                    }
                    for (k, v) in obj {
                        self.walk(k, v);
                    }
                }
                _ => {
                    for (k, v) in obj {
                        self.walk(k, v);
                    }
                }
            },
            _ => {}
        }
    }

    fn add_human_name(&mut self, name: &Map<String, Value>) {
        for key in ["family", "text"] {
            if let Some(v) = name.get(key).and_then(Value::as_str) {
                self.add_name_text(v);
            }
        }
        for given in name
            .get("given")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(v) = given.as_str() {
                self.add_name_text(v);
            }
        }
    }

    /// Adds each word of a name (and each part of a hyphenated one) of two characters or more,
    /// titles and qualifications left out.
    fn add_name_text(&mut self, text: &str) {
        for word in text.split(|c: char| c.is_whitespace() || c == ',') {
            let word = word.trim_matches(|c: char| !c.is_alphanumeric());
            let mut parts = vec![word];
            if word.contains('-') {
                parts.extend(word.split('-'));
            }
            for part in parts {
                let part = part.trim_matches(|c: char| !c.is_alphanumeric());
                if part.chars().count() >= 2
                    && !part.chars().all(|c| c.is_ascii_digit())
                    && !NOT_NAMES.contains(&lexicon::lower(part).as_ref())
                {
                    self.terms.entry(part.to_string()).or_insert(Kind::Name);
                }
            }
        }
    }

    fn add_contact_point(&mut self, point: &Map<String, Value>) {
        let Some(value) = point.get("value").and_then(Value::as_str) else {
            return;
        };
        let value = value.trim();
        match point.get("system").and_then(Value::as_str) {
            Some("email") => self.add_term(value, Kind::Email),
            Some("url") => self.add_term(value, Kind::Url),
            _ if value.contains('@') => self.add_term(value, Kind::Email),
            _ => {
                if !self.add_number(value, Kind::Phone) {
                    self.add_term(value, Kind::Phone);
                }
            }
        }
    }

    fn add_address(&mut self, address: &Map<String, Value>) {
        for line in address
            .get("line")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(line) = line.as_str() {
                let line = line.trim();
                self.add_term(line, Kind::Address);
                // The street without its house number ("Reichel Gateway"), as notes write it.
                if let Some((number, street)) = line.split_once(char::is_whitespace)
                    && number.chars().any(|c| c.is_ascii_digit())
                    && street.split_whitespace().count() >= 2
                {
                    self.add_term(street.trim(), Kind::Address);
                }
            }
        }
        for key in ["city", "district"] {
            if let Some(city) = address.get(key).and_then(Value::as_str) {
                let city = city.trim();
                if city.chars().count() >= 3 {
                    self.terms.entry(city.to_string()).or_insert(Kind::City);
                }
            }
        }
        if let Some(code) = address.get("postalCode").and_then(Value::as_str) {
            let code = code.trim();
            let digits: String = code.chars().filter(char::is_ascii_digit).collect();
            if code
                .chars()
                .all(|c| c.is_ascii_digit() || c == '-' || c == ' ')
                && matches!(digits.len(), 5 | 9)
            {
                self.numbers
                    .entry(digits[..5].to_string())
                    .or_insert(Kind::Zip);
                self.numbers.entry(digits).or_insert(Kind::Zip);
            } else if code.len() >= 3 {
                self.terms.entry(code.to_string()).or_insert(Kind::Zip);
            }
        }
    }

    fn add_identifier(&mut self, value: &str) {
        let value = value.trim();
        if !self.add_number(value, Kind::Id) {
            self.add_term(value, Kind::Id);
        }
    }

    /// Adds `value` as a number when it is only digits and separators; returns whether it was
    /// a number (too short ones are dropped but still count as numbers).
    fn add_number(&mut self, value: &str, kind: Kind) -> bool {
        let is_number = value.chars().any(|c| c.is_ascii_digit())
            && value.chars().all(|c| {
                c.is_ascii_digit() || matches!(c, ' ' | '-' | '.' | '(' | ')' | '+' | '/')
            });
        if !is_number {
            return false;
        }
        let digits: String = value.chars().filter(char::is_ascii_digit).collect();
        if digits.len() >= MIN_DIGITS {
            if kind == Kind::Phone && digits.len() == 11 && digits.starts_with('1') {
                self.numbers.entry(digits[1..].to_string()).or_insert(kind);
            }
            self.numbers.entry(digits).or_insert(kind);
        }
        true
    }

    fn add_term(&mut self, value: &str, kind: Kind) {
        if value.chars().count() >= MIN_TERM {
            self.terms.entry(value.to_string()).or_insert(kind);
        }
    }
}

/// `word` with its first letter in upper case and the rest in lower case.
fn capitalised(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first
            .to_uppercase()
            .chain(chars.flat_map(char::to_lowercase))
            .collect(),
        None => String::new(),
    }
}

/// A `YYYY-MM-DD` date (a dateTime's date part included).
fn parse_date(text: &str) -> Option<(i32, u32, u32)> {
    let date = text.get(..10)?;
    let mut parts = date.split('-');
    let y = parts.next()?.parse().ok()?;
    let m = parts.next()?.parse().ok()?;
    let d = parts.next()?.parse().ok()?;
    Some((y, m, d))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn patient() -> Value {
        json!({
            "resourceType": "Patient",
            "name": [{"family": "Pryce-Jones", "given": ["Annabel", "J."], "prefix": ["Mrs."]}],
            "telecom": [{"system": "phone", "value": "+1 (555) 942-8848"},
                        {"system": "email", "value": "ann@example.org"}],
            "identifier": [{"value": "999-82-5655"}, {"value": "S99934475"}, {"value": "12"}],
            "address": [{"line": ["1034 Reichel Gateway Suite 64"], "city": "Reading",
                         "postalCode": "02134-1234"}],
            "birthDate": "1959-07-30",
            "extension": [{"url": "http://hl7.org/fhir/StructureDefinition/patient-mothersMaidenName",
                           "valueString": "Marlo857 Towne435"}],
            "contact": [{"name": {"given": ["Wilbur"], "family": "Kiehn"}}]
        })
    }

    #[test]
    fn a_patient_gives_every_identifying_value_once() {
        let mut ids = Identities::default();
        ids.add_resource(&patient());
        let terms: Vec<(&str, Kind)> = ids.terms.iter().map(|(t, k)| (t.as_str(), *k)).collect();
        for expected in [
            ("Pryce-Jones", Kind::Name),
            ("Pryce", Kind::Name),
            ("Jones", Kind::Name),
            ("Annabel", Kind::Name),
            ("Marlo857", Kind::Name),
            ("Wilbur", Kind::Name),
            ("Kiehn", Kind::Name),
            ("ann@example.org", Kind::Email),
            ("S99934475", Kind::Id),
            ("1034 Reichel Gateway Suite 64", Kind::Address),
            ("Reichel Gateway Suite 64", Kind::Address),
            ("Reading", Kind::City),
        ] {
            assert!(terms.contains(&expected), "{expected:?} in {terms:?}");
        }
        assert!(
            !terms.iter().any(|(t, _)| *t == "Mrs" || *t == "J"),
            "{terms:?}"
        );
        for number in [
            "15559428848",
            "5559428848",
            "999825655",
            "02134",
            "021341234",
        ] {
            assert!(ids.numbers.contains_key(number), "{number}");
        }
        assert!(!ids.numbers.contains_key("12"));
        assert!(ids.dates.contains(&(1959, 7, 30)));
    }

    #[test]
    fn only_texts_and_files_that_may_hold_people_are_read() {
        let mut ids = Identities::default();
        ids.add_json(br#"{"resourceType":"Observation","subject":{"reference":"Patient/1"}}"#)
            .unwrap();
        assert!(ids.is_empty());
        ids.add_json(br#"{"resourceType":"Observation","valueString":"not json"#)
            .unwrap();
        assert!(
            ids.add_json(br#"{"resourceType":"Patient","name":[{"family":"Pryce""#)
                .is_err()
        );
        ids.add_json(br#"{"resourceType":"Patient","name":[{"family":"Pryce"}]}"#)
            .unwrap();
        assert!(ids.terms.contains_key("Pryce"));
        for (name, read) in [
            ("Patient.ndjson", true),
            ("Observation.ndjson", false),
            ("Observation-2.ndjson.gz", false),
            ("Practitioner.000.ndjson", true),
            ("export.ndjson", true),
            ("1234-abc.json", true),
            ("Bundle-1.ndjson", true),
        ] {
            assert_eq!(Identities::may_hold(name), read, "{name}");
        }
    }

    #[test]
    fn the_json_form_round_trips() {
        let mut ids = Identities::default();
        ids.add_resource(&json!({"resourceType": "Bundle", "entry": [{"resource": patient()}]}));
        assert!(!ids.is_empty());
        assert_eq!(Identities::from_json(&ids.to_json()), Some(ids));
    }

    #[test]
    fn places_give_addresses_and_telecom_but_not_names() {
        let mut ids = Identities::default();
        ids.add_resource(&json!({
            "resourceType": "Organization", "name": "Milford Regional",
            "telecom": [{"value": "508-555-0101"}],
            "address": [{"line": ["14 Prospect St"], "city": "Milford", "postalCode": "01757"}]
        }));
        assert!(!ids.terms.contains_key("Milford Regional"));
        assert!(ids.numbers.contains_key("5085550101"));
        assert!(ids.terms.contains_key("14 Prospect St"));
    }
}
