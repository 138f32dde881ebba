//! The pattern layer: identifiers that have a shape. One regex set tells which patterns occur
//! in a text; only those run to find their spans.

use std::sync::LazyLock;

use regex::{Captures, Regex, RegexSet};

use crate::dates::TextDate;
use crate::kind::{Kind, Layer, Span};

/// Month names and abbreviations, capitalised or in capitals (lower-case `may`, `march` are
/// words too often to be read as months).
const MONTHS: &str = "(?:Jan(?:uary)?|JAN(?:UARY)?|Feb(?:ruary)?|FEB(?:RUARY)?|Mar(?:ch)?|MAR(?:CH)?|\
Apr(?:il)?|APR(?:IL)?|May|MAY|June?|JUNE?|July?|JULY?|Aug(?:ust)?|AUG(?:UST)?|\
Sep(?:t(?:ember)?)?|SEP(?:T(?:EMBER)?)?|Oct(?:ober)?|OCT(?:OBER)?|Nov(?:ember)?|NOV(?:EMBER)?|\
Dec(?:ember)?|DEC(?:EMBER)?)";

/// Street suffixes (USPS), capitalised or in capitals.
const STREET_SUFFIXES: &str = "(?:Street|St|Avenue|Ave|Av|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|\
Way|Place|Pl|Terrace|Ter|Circle|Cir|Parkway|Pkwy|Highway|Hwy|Square|Sq|Trail|Trl|Alley|Aly|\
Crossing|Xing|Gateway|Gtwy|Heights|Hts|Loop|Mill|Mills|Passage|Path|Pike|Plaza|Plz|Point|Pt|\
Port|Ridge|Rdg|Route|Rte|Row|Run|Station|Sta|Stravenue|Summit|Turnpike|Tpke|Walk|Wynd|Branch|\
Bypass|Byp|Causeway|Cswy|Center|Ctr|Common|Commons|Corner|Cove|Creek|Crescent|Cres|Crest|\
Estates|Expressway|Expy|Extension|Ext|Ferry|Field|Fields|Fork|Forks|Freeway|Fwy|Garden|\
Gardens|Glen|Green|Grove|Harbor|Haven|Hill|Hills|Hollow|Island|Junction|Jct|Key|Knoll|Lake|\
Landing|Manor|Meadow|Meadows|Mount|Mountain|Orchard|Oval|Park|Pass|Pines|Plains|Prairie|\
Ranch|Rapids|Rest|Shore|Shores|Spring|Springs|Spur|Stream|Track|Trace|Union|Valley|View|\
Village|Ville|Vista|Well|Wells|STREET|AVENUE|ROAD|BOULEVARD|LANE|DRIVE|COURT|PLACE|TERRACE|\
CIRCLE|PARKWAY|HIGHWAY|SQUARE|TRAIL)";

/// US state and territory abbreviations (before a 5-digit ZIP code).
const STATES: &str = "(?:AL|AK|AZ|AR|CA|CO|CT|DE|DC|FL|GA|HI|ID|IL|IN|IA|KS|KY|LA|ME|MD|MA|MI|MN|MS|MO|\
MT|NE|NV|NH|NJ|NM|NY|NC|ND|OH|OK|OR|PA|RI|SC|SD|TN|TX|UT|VT|VA|WA|WV|WI|WY|PR|GU|VI|AS|MP)";

/// What a pattern finds, and how its span and value are read from a match.
#[derive(Clone, Copy)]
enum Read {
    /// The whole match is the identifier.
    Whole(Kind),
    /// Capture group 1 is the identifier (the rest is its label or context).
    Group(Kind),
    /// Capture group 1 is a labelled record number, if it has four characters or more.
    Labelled,
    /// An age: group 1 is the number, an identifier when over 89.
    Age,
    /// An IPv4 address: every part must be at most 255.
    Ipv4,
    /// A URL: trailing punctuation is not part of it.
    Url,
    /// A date, read by its shape.
    Date(DateShape),
}

/// How the groups of a date pattern map to year, month and day.
#[derive(Clone, Copy)]
enum DateShape {
    /// 1 year, 2 month, 3 day (`2021-03-04`, `2021/3/4`).
    YearMonthDay,
    /// 1 year, 2 month (`2021-03`).
    YearMonth,
    /// 1 and 2 month and day in US order unless the first is over 12, 3 year (`03/04/2021`).
    Numeric,
    /// 1 month, 2 year (`03/2021`).
    MonthYear,
    /// 1 month name, 2 day, 3 optional year (`March 4th, 2021`).
    NameDayYear,
    /// 1 day, 2 month name, 3 optional year (`4 March 2021`, `4th of March`).
    DayNameYear,
    /// 1 month name, 2 year (`March 2021`).
    NameYear,
}

struct Pattern {
    regex: Regex,
    read: Read,
}

struct Patterns {
    set: RegexSet,
    patterns: Vec<Pattern>,
}

static PATTERNS: LazyLock<Patterns> = LazyLock::new(|| {
    let label_number = r"(?:\s*(?:number|no\.?|num\.?|#))?\s*[:#.]?\s*";
    let id_value = r"([A-Za-z0-9][A-Za-z0-9-]*[0-9][A-Za-z0-9-]*)";
    let table: Vec<(String, Read)> = vec![
        // Dates.
        (
            r"\b(\d{4})-(\d{1,2})-(\d{1,2})(?:[T ]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?\b".into(),
            Read::Date(DateShape::YearMonthDay),
        ),
        (r"\b(\d{4})/(\d{1,2})/(\d{1,2})\b".into(), Read::Date(DateShape::YearMonthDay)),
        (r"\b((?:1[89]|20)\d{2})-(0[1-9]|1[0-2])\b".into(), Read::Date(DateShape::YearMonth)),
        (r"\b(\d{1,2})[/-](\d{1,2})[/-](\d{4}|\d{2})\b".into(), Read::Date(DateShape::Numeric)),
        (r"\b(\d{1,2})\.(\d{1,2})\.(\d{4})\b".into(), Read::Date(DateShape::Numeric)),
        (r"\b(0?[1-9]|1[0-2])/((?:1[89]|20)\d{2})\b".into(), Read::Date(DateShape::MonthYear)),
        (
            format!(r"\b({MONTHS})\.?\s+(\d{{1,2}})(?:st|nd|rd|th)?\b(?:,?\s+(\d{{4}})\b)?"),
            Read::Date(DateShape::NameDayYear),
        ),
        (
            format!(r"\b(\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?({MONTHS})\b\.?(?:,?\s+(\d{{4}})\b)?"),
            Read::Date(DateShape::DayNameYear),
        ),
        (format!(r"\b({MONTHS})\.?,?\s+(\d{{4}})\b"), Read::Date(DateShape::NameYear)),
        // Ages over 89.
        (
            r"(?i)\b(\d{2,3})(?:\s*|-)(?:years?|yrs?|y)(?:\s*|-)(?:old|of\s+age)\b".into(),
            Read::Age,
        ),
        (r"(?i)\b(\d{2,3})\s*(?:yo|y/o|y\.o\.)".into(), Read::Age),
        (r"(?i)\baged?\s*[:=]?\s*(\d{2,3})\b".into(), Read::Age),
        // Contact and network identifiers.
        (
            r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b".into(),
            Read::Whole(Kind::Email),
        ),
        (
            r#"(?i)\b(?:https?|ftp)://[^\s<>"']+|\bwww\.[a-z0-9-]+(?:\.[a-z0-9-]+)+[^\s<>"']*"#.into(),
            Read::Url,
        ),
        (r"\b(?:\d{1,3}\.){3}\d{1,3}\b".into(), Read::Ipv4),
        (
            r"(?i)\b(?:[0-9a-f]{1,4}:){7}[0-9a-f]{1,4}\b|\b(?:[0-9a-f]{1,4}:){1,6}:(?:[0-9a-f]{1,4}(?::[0-9a-f]{1,4})*)?\b".into(),
            Read::Whole(Kind::Ip),
        ),
        (
            r"(?:\+?1[\s.-]?)?(?:\(\d{3}\)\s?|\b\d{3}[\s.-])\d{3}[\s.-]\d{4}\b(?:\s*(?:x|ext\.?)\s*\d{1,5}\b)?".into(),
            Read::Whole(Kind::Phone),
        ),
        (
            r"(?i)\b(?:tel|phone|ph|fax|cell|mobile|pager|beeper)\b\.?(?:\s*(?:number|no\.?|#))?\s*[:#]?\s*(\+?\d[\d\s().-]{5,}\d)".into(),
            Read::Group(Kind::Phone),
        ),
        // Record numbers.
        (r"\b\d{3}-\d{2}-\d{4}\b".into(), Read::Whole(Kind::Id)),
        (
            format!(
                r"(?i)\b(?:mrn|mr\s*#|medical\s+record|record|chart|acct\.?|account|patient\s+id|pt\s+id|member\s+id|subscriber\s+id|policy|insurance\s+id|ssn|social\s+security|licen[cs]e|passport|certificate|serial|device\s+id|vin|plate|encounter\s+id|visit\s+id|case){label_number}{id_value}"
            ),
            Read::Labelled,
        ),
        (format!(r"\b(?:DL|NPI|DEA)\s*[#:]\s*{id_value}"), Read::Labelled),
        // Addresses and ZIP codes.
        (r"\b\d{5}-\d{4}\b".into(), Read::Whole(Kind::Zip)),
        (
            format!(r"(?:\b{STATES}|(?i:\bzip(?:\s*code)?|\bpostal\s+code))\s*[:#]?\s*,?\s*(\d{{5}})\b"),
            Read::Group(Kind::Zip),
        ),
        (
            format!(
                r"\b\d{{1,6}}[A-Za-z]?\s+(?:[NSEW]\.?\s+)?(?:[A-Z][A-Za-z0-9'.-]*\s+){{1,4}}{STREET_SUFFIXES}\b\.?(?:,?\s*(?:Apt|Apartment|Suite|Ste|Unit|#)\.?\s*#?\s*[A-Za-z0-9-]+)?"
            ),
            Read::Whole(Kind::Address),
        ),
        (r"(?i)\bP\.?\s*O\.?\s*Box\s+\d+".into(), Read::Whole(Kind::Address)),
    ];
    let set = RegexSet::new(table.iter().map(|(p, _)| p.as_str()))
        .expect("the built-in patterns compile");
    let patterns = table
        .into_iter()
        .map(|(p, read)| Pattern {
            regex: Regex::new(&p).expect("the built-in patterns compile"),
            read,
        })
        .collect();
    Patterns { set, patterns }
});

/// Whether a text can hold anything the patterns find: every pattern needs a digit, an `@` or
/// the start of a URL.
fn may_match(text: &str) -> bool {
    text.bytes().any(|b| b.is_ascii_digit() || b == b'@')
        || text.contains("://")
        || text.contains("www.")
        || text.contains("WWW.")
}

/// Appends the pattern layer's spans in `text`.
pub(crate) fn find(text: &str, out: &mut Vec<Span>) {
    if !may_match(text) {
        return;
    }
    let patterns = &*PATTERNS;
    for index in patterns.set.matches(text).iter() {
        let pattern = &patterns.patterns[index];
        for caps in pattern.regex.captures_iter(text) {
            if let Some(span) = read(text, &caps, pattern.read) {
                out.push(span);
            }
        }
    }
}

fn read(text: &str, caps: &Captures<'_>, read: Read) -> Option<Span> {
    let whole = caps.get(0)?;
    let span = |m: regex::Match<'_>, kind| Span::new(m.start(), m.end(), kind, Layer::Pattern);
    match read {
        Read::Whole(kind) => Some(span(whole, kind)),
        Read::Group(kind) => Some(span(caps.get(1)?, kind)),
        Read::Labelled => {
            let value = caps.get(1)?;
            (value.as_str().len() >= 4).then(|| span(value, Kind::Id))
        }
        Read::Age => {
            let number = caps.get(1)?;
            (number.as_str().parse::<u32>().ok()? > 89).then(|| span(number, Kind::Age))
        }
        Read::Ipv4 => {
            // Not four parts of a longer dotted number (an OID, a version).
            let before = text[..whole.start()].chars().next_back();
            let after = text[whole.end()..].chars().next();
            let dotted = |c: Option<char>| c.is_some_and(|c| c == '.' || c.is_ascii_digit());
            let octets = whole
                .as_str()
                .split('.')
                .all(|part| part.parse::<u32>().is_ok_and(|n| n <= 255));
            let after_dot_digit = after == Some('.')
                && text[whole.end() + 1..].starts_with(|c: char| c.is_ascii_digit());
            (octets && !dotted(before) && !after_dot_digit).then(|| span(whole, Kind::Ip))
        }
        Read::Url => {
            let text = whole.as_str();
            let trimmed = text.trim_end_matches(['.', ',', ';', ':', ')', '!', '?', ']', '\'']);
            Some(Span::new(
                whole.start(),
                whole.start() + trimmed.len(),
                Kind::Url,
                Layer::Pattern,
            ))
        }
        Read::Date(shape) => {
            let date = read_date(caps, shape)?;
            Some(Span {
                date: Some(date),
                ..span(whole, Kind::Date)
            })
        }
    }
}

fn number<T: std::str::FromStr>(caps: &Captures<'_>, group: usize) -> Option<T> {
    caps.get(group)?.as_str().parse().ok()
}

/// A year written with two digits, read as the latest such year not after 2049.
fn full_year(text: &str) -> Option<i32> {
    let year: i32 = text.parse().ok()?;
    Some(match text.len() {
        2 if year < 50 => 2000 + year,
        2 => 1900 + year,
        _ => year,
    })
}

fn month_number(name: &str) -> Option<u32> {
    let lower = name.get(..3)?.to_ascii_lowercase();
    let months = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    months
        .iter()
        .position(|m| *m == lower)
        .map(|i| i as u32 + 1)
}

fn read_date(caps: &Captures<'_>, shape: DateShape) -> Option<TextDate> {
    let partial = |year: Option<i32>, month: u32, day: Option<u32>| -> Option<TextDate> {
        if !(1..=12).contains(&month) {
            return None;
        }
        if let Some(day) = day {
            let limit = year.map_or(31, |y| crate::dates::days_in_month(y, month));
            if day == 0 || day > limit {
                return None;
            }
        }
        Some(TextDate {
            year,
            month: Some(month),
            day,
        })
    };
    match shape {
        DateShape::YearMonthDay => {
            TextDate::full(number(caps, 1)?, number(caps, 2)?, number(caps, 3)?)
        }
        DateShape::YearMonth => partial(Some(number(caps, 1)?), number(caps, 2)?, None),
        DateShape::Numeric => {
            let year = full_year(caps.get(3)?.as_str())?;
            let (a, b): (u32, u32) = (number(caps, 1)?, number(caps, 2)?);
            let (month, day) = if a > 12 { (b, a) } else { (a, b) };
            TextDate::full(year, month, day)
        }
        DateShape::MonthYear => partial(Some(number(caps, 2)?), number(caps, 1)?, None),
        DateShape::NameDayYear => partial(
            caps.get(3).and_then(|y| y.as_str().parse().ok()),
            month_number(caps.get(1)?.as_str())?,
            Some(number(caps, 2)?),
        ),
        DateShape::DayNameYear => partial(
            caps.get(3).and_then(|y| y.as_str().parse().ok()),
            month_number(caps.get(2)?.as_str())?,
            Some(number(caps, 1)?),
        ),
        DateShape::NameYear => partial(
            Some(number(caps, 2)?),
            month_number(caps.get(1)?.as_str())?,
            None,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(text: &str) -> Vec<(Kind, &str)> {
        let mut spans = Vec::new();
        find(text, &mut spans);
        spans.sort_by_key(|s| (s.start, s.end));
        spans
            .iter()
            .map(|s| (s.kind, &text[s.start..s.end]))
            .collect()
    }

    #[test]
    fn dates_in_clinicians_spellings() {
        for (text, date) in [
            ("seen 03/04/2021 for", "03/04/2021"),
            ("seen 3/4/21.", "3/4/21"),
            ("on 2021-03-04T10:00:00Z", "2021-03-04T10:00:00Z"),
            ("on 4 March 2021", "4 March 2021"),
            ("on March 4th, 2021", "March 4th, 2021"),
            ("since Mar. 4 2021", "Mar. 4 2021"),
            ("on the 4th of March", "4th of March"),
            ("in March 2021", "March 2021"),
            ("25/12/2020", "25/12/2020"),
        ] {
            let spans = found(text);
            assert!(spans.contains(&(Kind::Date, date)), "{text}: {spans:?}");
        }
        assert!(found("may 5 times").is_empty());
        assert!(found("took 2/3 of the dose; 13/14/2020").is_empty());
    }

    #[test]
    fn contact_numbers_and_addresses() {
        assert_eq!(
            found("see https://example.org/a."),
            [(Kind::Url, "https://example.org/a")]
        );
        let text = "Call (555) 942-8848 x12 or fax: 555.942.1111, email ann.p@example.org, \
                    see https://example.org/a?b=1. SSN 999-82-5655, MRN: A12345, lives at \
                    1034 Reichel Gateway Suite 64, Boston, MA 02134; host 10.0.0.12.";
        let spans = found(text);
        for expected in [
            (Kind::Phone, "(555) 942-8848 x12"),
            (Kind::Phone, "555.942.1111"),
            (Kind::Email, "ann.p@example.org"),
            (Kind::Url, "https://example.org/a?b=1"),
            (Kind::Id, "999-82-5655"),
            (Kind::Id, "A12345"),
            (Kind::Address, "1034 Reichel Gateway Suite 64"),
            (Kind::Zip, "02134"),
            (Kind::Ip, "10.0.0.12"),
        ] {
            assert!(spans.contains(&expected), "{expected:?} in {spans:?}");
        }
    }

    #[test]
    fn ages_over_89_only() {
        assert_eq!(found("a 92-year-old woman"), [(Kind::Age, "92")]);
        assert_eq!(found("aged 93"), [(Kind::Age, "93")]);
        assert_eq!(found("101 yo male"), [(Kind::Age, "101")]);
        assert!(found("a 30 year-old woman").is_empty());
        assert!(found("Chi716 is a 89 year old").is_empty());
    }

    #[test]
    fn clinical_numbers_are_not_identifiers() {
        for text in [
            "Glucose 105 mg/dL",
            "Hemoglobin A1c/Hemoglobin.total in Blood 5.6 %",
            "Amoxicillin 250 MG / Clavulanate 125 MG Oral Tablet",
            "Glomerular filtration rate/1.73 sq M.predicted",
            "BP 120/80 mmHg, HR 72",
            "version 1.2.3.4.5",
            "12345 units",
        ] {
            assert!(found(text).is_empty(), "{text}: {:?}", found(text));
        }
    }
}
