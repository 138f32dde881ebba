//! The true epidemic curve: Detected SARS-CoV-2 PCR results per ZIP3 area per ISO week, counted
//! from the generated resources and written beside the data.

use std::collections::BTreeMap;
use std::path::Path;

use crate::patient::{Record, Tag};
use crate::time;
use crate::{Error, Result};

/// Where the curve is written, relative to the output folder.
pub const TRUTH_FILE: &str = "_truth/covid_cases_by_zip3_week.csv";

/// One row of the curve.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct TruthRow {
    /// The first three digits of the patient's home ZIP code.
    pub zip3: String,
    /// ISO week of the result's local date, `YYYY-Www`.
    pub iso_week: String,
    /// The Monday that starts the week, `YYYY-MM-DD`.
    pub week_start: String,
    /// Detected PCR results.
    pub cases: u64,
}

/// Cases keyed by (zip3, ISO year, ISO week).
pub(crate) type Curve = BTreeMap<(String, i64, u32), u64>;

/// The ISO week (`YYYY-Www`) of the date part of a FHIR date, dateTime or instant
/// (`2020-04-08T10:00:00-05:00` → `2020-W15`): the local date as written, ignoring the offset.
pub fn iso_week_of(date: &str) -> Option<String> {
    let (y, w) = time::iso_week(time::parse_day(date)?);
    Some(format!("{y:04}-W{w:02}"))
}

/// Adds one patient's Detected PCR results to the curve.
pub(crate) fn count(record: &Record, curve: &mut Curve) {
    if record.deleted {
        return;
    }
    let zip3 = &record.person.zip[..3];
    for r in &record.resources {
        if let Tag::DetectedPcr(day) = r.tag {
            let (y, w) = time::iso_week(day);
            *curve.entry((zip3.to_string(), y, w)).or_default() += 1;
        }
    }
}

/// The curve as CSV text with a header row, sorted by zip3 then week.
pub(crate) fn to_csv(curve: &Curve) -> String {
    let mut out = String::from("zip3,iso_week,week_start,cases\n");
    for ((zip3, y, w), n) in curve {
        let monday = time::date(time::iso_week_monday(*y, *w));
        out.push_str(&format!("{zip3},{y:04}-W{w:02},{monday},{n}\n"));
    }
    out
}

/// Reads the curve written beside a generated data set (`dir/_truth/covid_cases_by_zip3_week.csv`).
pub fn read_truth(dir: &Path) -> Result<Vec<TruthRow>> {
    let path = dir.join(TRUTH_FILE);
    let text = std::fs::read_to_string(&path).map_err(|source| Error::Io {
        path: path.clone(),
        source,
    })?;
    text.lines()
        .skip(1)
        .filter(|l| !l.is_empty())
        .enumerate()
        .map(|(i, line)| {
            let f: Vec<&str> = line.split(',').collect();
            let bad = || Error::Format {
                path: path.clone(),
                message: format!("line {}: expected zip3,iso_week,week_start,cases", i + 2),
            };
            if f.len() != 4 {
                return Err(bad());
            }
            Ok(TruthRow {
                zip3: f[0].to_string(),
                iso_week: f[1].to_string(),
                week_start: f[2].to_string(),
                cases: f[3].parse().map_err(|_| bad())?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weeks_follow_the_local_date() {
        assert_eq!(
            iso_week_of("2020-04-08T10:00:00-05:00").as_deref(),
            Some("2020-W15")
        );
        assert_eq!(iso_week_of("2021-01-03").as_deref(), Some("2020-W53"));
        assert_eq!(iso_week_of("bad"), None);
    }

    #[test]
    fn csv_has_week_starts() {
        let mut c = Curve::new();
        c.insert(("021".into(), 2020, 15), 3);
        assert_eq!(
            to_csv(&c),
            "zip3,iso_week,week_start,cases\n021,2020-W15,2020-04-06,3\n"
        );
    }
}
