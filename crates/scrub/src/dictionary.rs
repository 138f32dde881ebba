//! The record's own identifiers, compiled for matching: one automaton for words and phrases,
//! one for the words that are also common English words (matched only capitalised), a table of
//! numbers (phones, SSNs, numeric identifiers and ZIP codes, whatever their punctuation), and the
//! record's dates.

use std::collections::{HashMap, HashSet};

use aho_corasick::{AhoCorasick, AhoCorasickKind, Input, MatchKind};

use crate::dates::TextDate;
use crate::kind::{Kind, Layer, Span};

/// The record's identifying values, ready to be found in text ([`crate::Identities::build`]).
/// Matching is case-insensitive (but for names that are also common English words, matched
/// capitalised or in capitals only) and on word boundaries; numbers match whatever separators
/// they are written with (`555-942-8848`, `(555) 942 8848`, `5559428848`).
#[derive(Debug, Clone, Default)]
pub struct Dictionary {
    words: Option<Automaton>,
    cased: Option<Automaton>,
    numbers: HashMap<Box<str>, Kind>,
    /// Bit `n` is set when some number has `n` digits.
    number_lengths: u64,
    dates: HashSet<(i32, u32, u32)>,
    values: usize,
}

#[derive(Debug, Clone)]
struct Automaton {
    matcher: AhoCorasick,
    kinds: Vec<Kind>,
}

impl Automaton {
    fn new(patterns: Vec<(String, Kind)>, case_insensitive: bool) -> Option<Automaton> {
        if patterns.is_empty() {
            return None;
        }
        let matcher = AhoCorasick::builder()
            .kind(Some(AhoCorasickKind::ContiguousNFA))
            .match_kind(MatchKind::LeftmostLongest)
            .ascii_case_insensitive(case_insensitive)
            .build(patterns.iter().map(|(p, _)| p.as_str()))
            .expect("a dictionary of literal strings always compiles");
        Some(Automaton {
            matcher,
            kinds: patterns.into_iter().map(|(_, k)| k).collect(),
        })
    }

    fn find(&self, text: &str, out: &mut Vec<Span>) {
        let mut at = 0;
        while at < text.len() {
            let Some(m) = self.matcher.find(Input::new(text).span(at..text.len())) else {
                break;
            };
            if on_word_boundaries(text, m.start(), m.end()) {
                out.push(Span::new(
                    m.start(),
                    m.end(),
                    self.kinds[m.pattern().as_usize()],
                    Layer::Record,
                ));
                at = m.end();
            } else {
                at = next_char(text, m.start());
            }
        }
    }
}

/// The byte index of the character after the one at `i`.
fn next_char(text: &str, i: usize) -> usize {
    text[i..]
        .chars()
        .next()
        .map_or(text.len(), |c| i + c.len_utf8())
}

/// Whether `text[start..end]` is not part of a longer word: the characters on either side are
/// not letters or digits (checked only where the match itself starts or ends with one).
pub(crate) fn on_word_boundaries(text: &str, start: usize, end: usize) -> bool {
    let inner_first = text[start..].chars().next();
    let inner_last = text[..end].chars().next_back();
    let before = text[..start].chars().next_back();
    let after = text[end..].chars().next();
    let left = !inner_first.is_some_and(char::is_alphanumeric)
        || !before.is_some_and(char::is_alphanumeric);
    let right =
        !inner_last.is_some_and(char::is_alphanumeric) || !after.is_some_and(char::is_alphanumeric);
    left && right
}

/// Separators allowed between the digit groups of one number.
fn is_number_separator(b: u8) -> bool {
    matches!(b, b' ' | b'-' | b'.' | b'(' | b')' | b'/')
}

impl Dictionary {
    pub(crate) fn new(
        words: Vec<(String, Kind)>,
        cased: Vec<(String, Kind)>,
        numbers: HashMap<Box<str>, Kind>,
        dates: HashSet<(i32, u32, u32)>,
        values: usize,
    ) -> Dictionary {
        let number_lengths = numbers
            .keys()
            .map(|n| n.len())
            .filter(|&n| n < 64)
            .fold(0u64, |bits, n| bits | (1 << n));
        Dictionary {
            words: Automaton::new(words, true),
            cased: Automaton::new(cased, false),
            numbers,
            number_lengths,
            dates,
            values,
        }
    }

    /// The number of identifying values it was built from.
    pub fn len(&self) -> usize {
        self.values
    }

    /// Whether it holds no value.
    pub fn is_empty(&self) -> bool {
        self.values == 0
    }

    /// The bytes of heap it uses (automata, number table, dates), roughly.
    pub fn memory_usage(&self) -> usize {
        let automaton = |a: &Option<Automaton>| {
            a.as_ref().map_or(0, |a| {
                a.matcher.memory_usage() + a.kinds.capacity() * std::mem::size_of::<Kind>()
            })
        };
        let numbers: usize = self
            .numbers
            .keys()
            .map(|k| k.len() + std::mem::size_of::<(Box<str>, Kind)>() + 8)
            .sum();
        automaton(&self.words)
            + automaton(&self.cased)
            + numbers
            + self.dates.capacity() * (std::mem::size_of::<(i32, u32, u32)>() + 8)
    }

    /// Whether `date` is one of the record's dates (a birth or death date).
    pub(crate) fn has_date(&self, date: &TextDate) -> bool {
        matches!((date.year, date.month, date.day), (Some(y), Some(m), Some(d)) if self.dates.contains(&(y, m, d)))
    }

    /// Appends the record's values found in `text`.
    pub(crate) fn find(&self, text: &str, out: &mut Vec<Span>) {
        if let Some(words) = &self.words {
            words.find(text, out);
        }
        if let Some(cased) = &self.cased {
            cased.find(text, out);
        }
        if !self.numbers.is_empty() {
            self.find_numbers(text, out);
        }
    }

    /// The record's numbers in `text`: runs of digit groups joined by up to two separators
    /// whose digits, together, are one of the numbers (the longest such run wins).
    fn find_numbers(&self, text: &str, out: &mut Vec<Span>) {
        let bytes = text.as_bytes();
        let mut groups: Vec<(usize, usize)> = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i].is_ascii_digit() {
                let start = i;
                while i < bytes.len() && bytes[i].is_ascii_digit() {
                    i += 1;
                }
                groups.push((start, i));
            } else {
                i += 1;
            }
        }
        let letter_or_digit = |c: Option<char>| c.is_some_and(char::is_alphanumeric);
        let mut g = 0;
        let mut digits = String::new();
        while g < groups.len() {
            let (start, _) = groups[g];
            if letter_or_digit(text[..start].chars().next_back()) {
                g += 1;
                continue;
            }
            digits.clear();
            let mut best: Option<(usize, Kind)> = None;
            for (j, &(s, e)) in groups.iter().enumerate().skip(g) {
                if j > g {
                    let gap = &bytes[groups[j - 1].1..s];
                    if gap.is_empty()
                        || gap.len() > 2
                        || !gap.iter().all(|&b| is_number_separator(b))
                    {
                        break;
                    }
                }
                digits.push_str(&text[s..e]);
                if digits.len() >= 64 {
                    break;
                }
                if self.number_lengths & (1 << digits.len()) != 0
                    && !letter_or_digit(text[e..].chars().next())
                    && let Some(&kind) = self.numbers.get(digits.as_str())
                {
                    best = Some((j, kind));
                }
            }
            match best {
                Some((j, kind)) => {
                    let mut from = start;
                    while from > 0 && matches!(bytes[from - 1], b'(' | b'+') {
                        from -= 1;
                    }
                    let mut to = groups[j].1;
                    if bytes[from..start].contains(&b'(') && bytes.get(to) == Some(&b')') {
                        to += 1;
                    }
                    out.push(Span::new(from, to, kind, Layer::Record));
                    g = j + 1;
                }
                None => g += 1,
            }
        }
    }
}
