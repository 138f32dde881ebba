//! The name layer: names of people who are not in the record ("reported by her neighbour Ann
//! Pryce"), found with the census name lists and the context around them.
//!
//! A capitalised word is read as a name when:
//! - it follows a title (`Dr.`, `Mrs`, `Nurse`): up to three capitalised words or initials;
//! - it follows a relation or reporting cue (`neighbour`, `wife`, `reported by`, `per`) and is a
//!   first name, or a surname that is not a common English word;
//! - it is a first name followed by a surname (`Ann Pryce`), or a surname, a comma and a first
//!   name (`Pryce, Ann`), unless both are common English words (`Will Brown`);
//! - it is a first name (not a common word) in the middle of a sentence, unless a number
//!   follows it (drug names such as `Camila 28 Day Pack` are first names too);
//! - it is a capitalised word that is not a common English word, right beside a word read as a
//!   name (`Wilhelmina Thistlewood`, `Ann J. Pryce`).
//!
//! Clinical eponyms and terms (`Hodgkin`, `Parkinson`, `Down`) are never read as names, except
//! after a title.

use crate::kind::{Kind, Layer, Span};
use crate::lexicon::{is_clinical, is_common_word, is_first_name, is_surname, lower};

/// Titles before a name.
const TITLES: [&str; 11] = [
    "dr",
    "doctor",
    "mr",
    "mrs",
    "ms",
    "miss",
    "mx",
    "prof",
    "professor",
    "rev",
    "nurse",
];

/// Words after which a name is expected.
const CUES: [&str; 47] = [
    "neighbour",
    "neighbor",
    "friend",
    "wife",
    "husband",
    "partner",
    "spouse",
    "son",
    "daughter",
    "mother",
    "father",
    "mom",
    "mum",
    "dad",
    "brother",
    "sister",
    "aunt",
    "uncle",
    "cousin",
    "grandmother",
    "grandfather",
    "grandson",
    "granddaughter",
    "grandma",
    "grandpa",
    "niece",
    "nephew",
    "caregiver",
    "carer",
    "guardian",
    "colleague",
    "coworker",
    "roommate",
    "boyfriend",
    "girlfriend",
    "fiance",
    "fiancee",
    "named",
    "called",
    "per",
    "patient",
    "contact",
    "relative",
    "landlord",
    "employer",
    "sibling",
    "child",
];

/// Verbs that make a following `by`, `with` or `to` a cue (`reported by`, `spoke with`).
const CUE_VERBS: [&str; 21] = [
    "reported",
    "seen",
    "accompanied",
    "referred",
    "brought",
    "visited",
    "called",
    "examined",
    "signed",
    "dictated",
    "transcribed",
    "authored",
    "written",
    "attended",
    "evaluated",
    "spoke",
    "talked",
    "discussed",
    "met",
    "according",
    "care",
];

/// Words that may stand between a cue and the name (`by her neighbour Ann`).
const FILLERS: [&str; 9] = ["her", "his", "their", "the", "a", "an", "my", "our", "its"];

/// One word of the text.
#[derive(Debug, Clone, Copy)]
struct Token<'t> {
    start: usize,
    /// The end of the word without a possessive `'s`.
    end: usize,
    word: &'t str,
}

impl Token<'_> {
    fn capitalised(&self) -> bool {
        self.word.chars().next().is_some_and(char::is_uppercase)
    }

    fn initial(&self, text: &str) -> bool {
        let mut chars = self.word.chars();
        chars.next().is_some_and(char::is_uppercase)
            && chars.next().is_none()
            && text[self.end..].starts_with('.')
    }
}

/// The words of `text`: letters and digits, with inner apostrophes and hyphens.
fn tokens(text: &str) -> Vec<Token<'_>> {
    let mut out = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        if !c.is_alphanumeric() {
            continue;
        }
        let mut end = start + c.len_utf8();
        while let Some(&(i, c)) = chars.peek() {
            if c.is_alphanumeric() {
                end = i + c.len_utf8();
                chars.next();
            } else if matches!(c, '\'' | '’' | '-')
                && text[i + c.len_utf8()..].starts_with(char::is_alphanumeric)
            {
                chars.next();
            } else {
                break;
            }
        }
        let full = &text[start..end];
        let word = full
            .strip_suffix("'s")
            .or_else(|| full.strip_suffix("’s"))
            .unwrap_or(full);
        out.push(Token {
            start,
            end: start + word.len(),
            word,
        });
    }
    out
}

/// Whether only blanks (at most a few) stand between two words.
fn blank_between(text: &str, a: &Token<'_>, b: &Token<'_>) -> bool {
    let gap = &text[a.end..b.start];
    !gap.is_empty() && gap.len() <= 3 && gap.chars().all(|c| c == ' ' || c == '\t')
}

/// Whether a name's words may be joined by what stands between `a` and `b`: blanks, or the
/// period of an initial.
fn name_gap(text: &str, a: &Token<'_>, b: &Token<'_>) -> bool {
    blank_between(text, a, b)
        || (a.initial(text)
            && text[a.end..b.start]
                .trim_start_matches('.')
                .trim()
                .is_empty()
            && b.start > a.end + 1)
}

/// Whether a word is written with a capital and then small letters (`Annabel`, not `ANNABEL`),
/// each part of a hyphenated or apostrophed word alike (`Quennell-Pryce`, `O'Brien`).
fn title_case(word: &str) -> bool {
    word.split(['-', '\'', '’']).all(|part| {
        let mut chars = part.chars();
        chars.next().is_some_and(char::is_uppercase) && chars.all(|c| !c.is_uppercase())
    })
}

/// Whether the word at `start` stands inside a sentence: something other than the end of a
/// sentence or a line comes before it.
fn mid_sentence(text: &str, start: usize) -> bool {
    let before = text[..start].trim_end_matches([' ', '\t', '"', '(', '\'']);
    before.chars().next_back().is_some_and(|c| {
        !matches!(
            c,
            '.' | '!' | '?' | ':' | '\n' | '\r' | '#' | '-' | '*' | '>' | '|'
        )
    })
}

/// Appends the name layer's spans in `text`. `known` are the names other layers found (the
/// record's): the words beside them are read as beside any name.
pub(crate) fn find(text: &str, known: &[(usize, usize)], out: &mut Vec<Span>) {
    if !text.chars().any(char::is_uppercase) {
        return;
    }
    let tokens = tokens(text);
    let mut known = known.to_vec();
    known.sort_unstable();
    let mut next = 0;
    let mut name: Vec<bool> = tokens
        .iter()
        .map(|t| {
            while next < known.len() && known[next].1 <= t.start {
                next += 1;
            }
            known.get(next).is_some_and(|&(s, _)| s < t.end)
        })
        .collect();
    let seeded = name.clone();
    let facts: Vec<Facts> = tokens.iter().map(|t| Facts::of(t)).collect();
    for i in 0..tokens.len() {
        let word = &facts[i].lower;
        if TITLES.contains(&word.as_str()) && tokens[i].capitalised() {
            let mut j = i + 1;
            let mut count = 0;
            let mut previous = i;
            while j < tokens.len() && count < 3 {
                let gap_ok = if previous == i {
                    let gap = &text[tokens[i].end..tokens[j].start];
                    !gap.is_empty()
                        && gap.trim_start_matches('.').trim().is_empty()
                        && gap.len() <= 3
                } else {
                    name_gap(text, &tokens[previous], &tokens[j])
                };
                if !gap_ok || !tokens[j].capitalised() || TITLES.contains(&facts[j].lower.as_str())
                {
                    break;
                }
                name[j] = true;
                previous = j;
                j += 1;
                count += 1;
            }
        }
        let cue = CUES.contains(&word.as_str())
            || (matches!(word.as_str(), "by" | "with" | "to" | "of")
                && i > 0
                && CUE_VERBS.contains(&facts[i - 1].lower.as_str()));
        if cue {
            let mut j = i + 1;
            while j < tokens.len() && FILLERS.contains(&facts[j].lower.as_str()) {
                j += 1;
            }
            if j < tokens.len()
                && !tokens[j].capitalised()
                && CUES.contains(&facts[j].lower.as_str())
            {
                j += 1;
            }
            if j < tokens.len()
                && tokens[j].capitalised()
                && !facts[j].clinical
                && (facts[j].first || (facts[j].surname && !facts[j].common))
            {
                name[j] = true;
            }
        }
        let f = &facts[i];
        if f.first
            && !f.common
            && !f.clinical
            && title_case(tokens[i].word)
            && mid_sentence(text, tokens[i].start)
        {
            let number_follows = tokens
                .get(i + 1)
                .is_some_and(|t| t.word.starts_with(|c: char| c.is_ascii_digit()));
            if !number_follows {
                name[i] = true;
            }
        }
        if i + 1 < tokens.len() {
            let (a, b) = (&facts[i], &facts[i + 1]);
            let both_capitalised = tokens[i].capitalised() && tokens[i + 1].capitalised();
            let usable = !a.clinical && !b.clinical && (!a.common || !b.common);
            if both_capitalised && usable {
                if a.first && b.surname && blank_between(text, &tokens[i], &tokens[i + 1]) {
                    name[i] = true;
                    name[i + 1] = true;
                }
                let gap = &text[tokens[i].end..tokens[i + 1].start];
                if a.surname && b.first && (gap == ", " || gap == ",") {
                    name[i] = true;
                    name[i + 1] = true;
                }
            }
        }
    }
    // Words beside a name that are names too (a middle name, an initial).
    for _ in 0..2 {
        for i in 0..tokens.len() {
            if name[i] {
                continue;
            }
            let beside = (i > 0 && name[i - 1] && name_gap(text, &tokens[i - 1], &tokens[i]))
                || (i + 1 < tokens.len()
                    && name[i + 1]
                    && name_gap(text, &tokens[i], &tokens[i + 1]));
            let f = &facts[i];
            let looks =
                tokens[i].initial(text) || (!f.common && !f.clinical && title_case(tokens[i].word));
            if beside && tokens[i].capitalised() && looks {
                name[i] = true;
            }
        }
    }
    for (i, token) in tokens.iter().enumerate() {
        if name[i] && !seeded[i] {
            out.push(Span::new(
                token.start,
                token.end,
                Kind::Name,
                Layer::Lexicon,
            ));
        }
    }
}

/// What the lexicon says of one word.
struct Facts {
    lower: String,
    first: bool,
    surname: bool,
    common: bool,
    clinical: bool,
}

impl Facts {
    fn of(token: &Token<'_>) -> Facts {
        let lower = lower(token.word).into_owned();
        if !token.capitalised() {
            return Facts {
                lower,
                first: false,
                surname: false,
                common: true,
                clinical: false,
            };
        }
        Facts {
            first: is_first_name(&lower),
            surname: is_surname(&lower),
            common: is_common_word(&lower),
            clinical: is_clinical(&lower),
            lower,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(text: &str) -> Vec<&str> {
        let mut spans = Vec::new();
        find(text, &[], &mut spans);
        spans.iter().map(|s| &text[s.start..s.end]).collect()
    }

    #[test]
    fn names_with_context_are_found() {
        assert_eq!(
            names("reported by her neighbour Ann Pryce."),
            ["Ann", "Pryce"]
        );
        assert_eq!(
            names("Seen with Dr. Wilton999 Pollich983 today"),
            ["Wilton999", "Pollich983"]
        );
        assert_eq!(names("Discussed with Mrs. J. Smith"), ["J", "Smith"]);
        assert_eq!(names("PRYCE, Annabel came in"), ["PRYCE", "Annabel"]);
        assert_eq!(names("her son Will drove her"), ["Will"]);
        assert_eq!(names("then Annabel's cough"), ["Annabel"]);
        assert!(
            names("Annabel's cough").is_empty(),
            "a lone first name opening a sentence"
        );
    }

    #[test]
    fn clinical_phrases_are_not_names() {
        for text in [
            "Hodgkin lymphoma, Parkinson disease and Down syndrome",
            "Brown recluse spider bite",
            "White blood cell count",
            "Will Brown continue",
            "Acute viral pharyngitis (disorder)",
            "Patient is presenting with miscarriage in first trimester.",
            "Blue Cross Blue Shield",
            "Medication Reconciliation",
            "History and physical note",
            "Camila 28 Day Pack",
        ] {
            assert!(names(text).is_empty(), "{text}: {:?}", names(text));
        }
    }
}
