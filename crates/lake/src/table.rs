//! The resource tables' columns: `id`, `patient`, `lastUpdated`, `resourceType` and `resource`
//! (the whole resource as JSON text), shared by the Parquet and Delta writers.

use std::sync::{Arc, OnceLock};

use arrow_array::builder::{StringBuilder, TimestampMicrosecondBuilder};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use serde_json::Value;

use crate::error::{Error, Result};

/// The resource tables' schema: `id` (string), `patient` (string, the compartment owner's id,
/// null when none), `lastUpdated` (UTC timestamp in microseconds, null when absent),
/// `resourceType` (string) and `resource` (the resource as JSON text).
pub fn resource_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            Arc::new(Schema::new(vec![
                Field::new("id", DataType::Utf8, false),
                Field::new("patient", DataType::Utf8, true),
                Field::new(
                    "lastUpdated",
                    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                    true,
                ),
                Field::new("resourceType", DataType::Utf8, false),
                Field::new("resource", DataType::Utf8, false),
            ]))
        })
        .clone()
}

/// One resource's key columns, taken from its JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyColumns {
    /// `Resource.id`.
    pub id: String,
    /// The Patient compartment owner (`fhir::compartment::compartment_owner`); for a
    /// Patient, its own id.
    pub patient: Option<String>,
    /// `meta.lastUpdated` in microseconds since the Unix epoch (UTC).
    pub last_updated: Option<i64>,
    /// `resourceType`.
    pub resource_type: String,
}

impl KeyColumns {
    /// Reads the key columns of `resource`; `reason` says which element is missing.
    pub fn of(resource: &Value) -> std::result::Result<KeyColumns, &'static str> {
        let resource_type = resource
            .get("resourceType")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or("no resourceType")?;
        let id = resource
            .get("id")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or("no id")?;
        let last_updated = match resource.pointer("/meta/lastUpdated") {
            None => None,
            Some(v) => Some(
                v.as_str()
                    .and_then(|t| parse_instant_micros(t).or_else(|| parse_partial_micros(t)))
                    .ok_or("meta.lastUpdated is not a valid instant")?,
            ),
        };
        Ok(KeyColumns {
            id: id.to_string(),
            patient: fhir::compartment::compartment_owner(resource),
            last_updated,
            resource_type: resource_type.to_string(),
        })
    }
}

/// Parses a date with no time (`2024`, `2024-01`, `2024-01-31`), as de-identification leaves a
/// `meta.lastUpdated` it generalizes, into the microseconds of its first instant (UTC).
fn parse_partial_micros(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let (year, month, day) = match b.len() {
        4 => (num_in(text, 0..4)?, 1, 1),
        7 if b[4] == b'-' => (num_in(text, 0..4)?, num_in(text, 5..7)?, 1),
        10 if b[4] == b'-' && b[7] == b'-' => (
            num_in(text, 0..4)?,
            num_in(text, 5..7)?,
            num_in(text, 8..10)?,
        ),
        _ => return None,
    };
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 * 1_000_000)
}

/// Parses a FHIR `instant` or a `dateTime` with a time and zone (`2024-01-31T10:00:00.123Z`,
/// `…+02:00`) into microseconds since the Unix epoch.
pub fn parse_instant_micros(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let num = |range| num_in(text, range);
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut rest = &text[19..];
    let mut micros = 0i64;
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        for (i, c) in fraction[..digits].bytes().enumerate().take(6) {
            micros += i64::from(c - b'0') * 10i64.pow(5 - i as u32);
        }
        rest = &fraction[digits..];
    }
    let offset_minutes = match rest.as_bytes() {
        [b'Z'] => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let (h, m) = (num_in(rest, 1..3)?, num_in(rest, 4..6)?);
            let minutes = h * 60 + m;
            if *sign == b'-' { -minutes } else { minutes }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3_600 + minute * 60 + second - offset_minutes * 60;
    Some(seconds * 1_000_000 + micros)
}

fn num_in(text: &str, range: std::ops::Range<usize>) -> Option<i64> {
    let part = text.get(range)?;
    part.bytes()
        .all(|c| c.is_ascii_digit())
        .then(|| part.parse().ok())?
}

/// Days from 1970-01-01 to a proleptic Gregorian date.
pub(crate) fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Accumulates resource rows into Arrow record batches of the [`resource_schema`].
#[derive(Default)]
pub(crate) struct ResourceRows {
    ids: StringBuilder,
    patients: StringBuilder,
    last_updated: TimestampMicrosecondBuilder,
    types: StringBuilder,
    resources: StringBuilder,
    len: usize,
    bytes: usize,
}

impl ResourceRows {
    /// Appends one resource; `json` is its JSON text.
    pub fn push(&mut self, keys: &KeyColumns, json: &str) {
        self.ids.append_value(&keys.id);
        self.patients.append_option(keys.patient.as_deref());
        self.last_updated.append_option(keys.last_updated);
        self.types.append_value(&keys.resource_type);
        self.resources.append_value(json);
        self.len += 1;
        self.bytes += json.len();
    }

    /// Rows buffered.
    pub fn len(&self) -> usize {
        self.len
    }

    /// JSON bytes buffered.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The buffered rows as a batch; the buffer is emptied.
    pub fn take_batch(&mut self) -> RecordBatch {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.ids.finish()),
            Arc::new(self.patients.finish()),
            Arc::new(self.last_updated.finish().with_timezone("UTC")),
            Arc::new(self.types.finish()),
            Arc::new(self.resources.finish()),
        ];
        self.len = 0;
        self.bytes = 0;
        RecordBatch::try_new(resource_schema(), columns).expect("columns match the schema")
    }
}

/// Parses one NDJSON line into a resource, for writers fed with line bytes. Errors name the
/// writer's type and the line's position only.
pub(crate) fn parse_line<'l>(
    line: &'l [u8],
    resource_type: &str,
    index: u64,
) -> Result<(Value, &'l str)> {
    let resource_error = |reason: &str| Error::Resource {
        resource_type: resource_type.to_string(),
        index,
        reason: reason.to_string(),
    };
    let text = std::str::from_utf8(line)
        .map_err(|_| resource_error("not UTF-8"))?
        .trim_end_matches(['\n', '\r']);
    let value: Value = serde_json::from_str(text).map_err(|e| {
        resource_error(&format!(
            "not valid JSON at column {} ({:?})",
            e.column(),
            e.classify()
        ))
    })?;
    Ok((value, text))
}

/// Checks that `resource` is of `resource_type` and reads its key columns.
pub(crate) fn keys_for(resource: &Value, resource_type: &str, index: u64) -> Result<KeyColumns> {
    let keys = KeyColumns::of(resource).map_err(|reason| Error::Resource {
        resource_type: resource_type.to_string(),
        index,
        reason: reason.to_string(),
    })?;
    if keys.resource_type != resource_type {
        return Err(Error::Resource {
            resource_type: resource_type.to_string(),
            index,
            reason: "resourceType differs from the table's type".into(),
        });
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_parse_to_utc_micros() {
        assert_eq!(parse_instant_micros("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_instant_micros("1970-01-01T00:00:01.5Z"),
            Some(1_500_000)
        );
        assert_eq!(
            parse_instant_micros("2024-03-01T12:00:00+02:00"),
            parse_instant_micros("2024-03-01T10:00:00Z")
        );
        assert_eq!(
            parse_instant_micros("2000-02-29T00:00:00.123456789Z"),
            Some(951_782_400_123_456)
        );
        assert_eq!(parse_instant_micros("2024-03-01"), None);
        assert_eq!(parse_instant_micros("2024-13-01T00:00:00Z"), None);
        assert_eq!(parse_instant_micros("2024-03-01T00:00:00"), None);
    }

    #[test]
    fn key_columns_of_an_observation() {
        let obs = serde_json::json!({
            "resourceType": "Observation", "id": "o1",
            "meta": {"lastUpdated": "2024-01-01T00:00:00Z"},
            "subject": {"reference": "Patient/p1"}
        });
        let keys = KeyColumns::of(&obs).unwrap();
        assert_eq!(keys.id, "o1");
        assert_eq!(keys.patient.as_deref(), Some("p1"));
        assert_eq!(keys.last_updated, Some(1_704_067_200_000_000));
        assert_eq!(
            KeyColumns::of(&serde_json::json!({"resourceType": "X"})),
            Err("no id")
        );
    }
}
