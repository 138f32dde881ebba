//! What was found in a text, which layer found it, and where.

use crate::dates::TextDate;

/// The kind of an identifier found in text, and the placeholder that replaces it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// A person's name: `[NAME]`.
    Name,
    /// A phone or fax number: `[PHONE]`.
    Phone,
    /// An email address: `[EMAIL]`.
    Email,
    /// A record, account, licence, device or social security number: `[ID]`.
    Id,
    /// A street address: `[ADDRESS]`.
    Address,
    /// A city or town of the record: `[CITY]`.
    City,
    /// A web address: `[URL]`.
    Url,
    /// An IP address: `[IP]`.
    Ip,
    /// A ZIP or postal code: `[ZIP]`.
    Zip,
    /// An age over 89: `[AGE]`.
    Age,
    /// A date: its year, its shifted value, or `[DATE]` when it has no year.
    Date,
}

impl Kind {
    /// Every kind, in placeholder order.
    pub const ALL: [Kind; 11] = [
        Kind::Name,
        Kind::Phone,
        Kind::Email,
        Kind::Id,
        Kind::Address,
        Kind::City,
        Kind::Url,
        Kind::Ip,
        Kind::Zip,
        Kind::Age,
        Kind::Date,
    ];

    /// The placeholder written in place of a value of this kind.
    pub fn placeholder(self) -> &'static str {
        match self {
            Kind::Name => "[NAME]",
            Kind::Phone => "[PHONE]",
            Kind::Email => "[EMAIL]",
            Kind::Id => "[ID]",
            Kind::Address => "[ADDRESS]",
            Kind::City => "[CITY]",
            Kind::Url => "[URL]",
            Kind::Ip => "[IP]",
            Kind::Zip => "[ZIP]",
            Kind::Age => "[AGE]",
            Kind::Date => "[DATE]",
        }
    }

    /// The kind's name in configurations and summaries (`name`, `phone`, …).
    pub fn name(self) -> &'static str {
        match self {
            Kind::Name => "name",
            Kind::Phone => "phone",
            Kind::Email => "email",
            Kind::Id => "id",
            Kind::Address => "address",
            Kind::City => "city",
            Kind::Url => "url",
            Kind::Ip => "ip",
            Kind::Zip => "zip",
            Kind::Age => "age",
            Kind::Date => "date",
        }
    }

    /// The kind named `name` (as [`Kind::name`] writes it), case-insensitively.
    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(name))
    }

    pub(crate) fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

/// The detector that found a span.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Layer {
    /// The record's own identifiers ([`crate::Dictionary`]).
    Record,
    /// A pattern for a kind that has a shape (dates, phone numbers, …).
    Pattern,
    /// The name lexicon with its context cues.
    Lexicon,
}

impl Layer {
    /// Every layer.
    pub const ALL: [Layer; 3] = [Layer::Record, Layer::Pattern, Layer::Lexicon];

    /// The layer's name in configurations and summaries (`record`, `patterns`, `names`).
    pub fn name(self) -> &'static str {
        match self {
            Layer::Record => "record",
            Layer::Pattern => "patterns",
            Layer::Lexicon => "names",
        }
    }

    /// The layer named `name` (as [`Layer::name`] writes it), case-insensitively.
    pub fn from_name(name: &str) -> Option<Layer> {
        Layer::ALL
            .into_iter()
            .find(|l| l.name().eq_ignore_ascii_case(name))
    }
}

/// One identifier found in a text: its byte range in the text as it came in, its kind, and the
/// layer that found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// The first byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
    /// What it is.
    pub kind: Kind,
    /// Which layer found it.
    pub layer: Layer,
    /// For a date, what the text says of it (year, month, day).
    pub date: Option<TextDate>,
}

impl Span {
    pub(crate) fn new(start: usize, end: usize, kind: Kind, layer: Layer) -> Span {
        Span {
            start,
            end,
            kind,
            layer,
            date: None,
        }
    }
}
