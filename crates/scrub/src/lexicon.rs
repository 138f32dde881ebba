//! The word lists shipped with Haven (see `data/SOURCE.md`): first names and surnames of the
//! 1990 US Census, the names that are also common English words (SCOWL), and the clinical words
//! that are never read as names.

use std::collections::HashSet;
use std::sync::LazyLock;

fn list(text: &'static str) -> HashSet<&'static str> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

static FIRST_NAMES: LazyLock<HashSet<&'static str>> =
    LazyLock::new(|| list(include_str!("../data/first-names.txt")));
static SURNAMES: LazyLock<HashSet<&'static str>> =
    LazyLock::new(|| list(include_str!("../data/surnames.txt")));
static NAME_WORDS: LazyLock<HashSet<&'static str>> =
    LazyLock::new(|| list(include_str!("../data/name-words.txt")));
static CLINICAL_WORDS: LazyLock<HashSet<&'static str>> =
    LazyLock::new(|| list(include_str!("../data/clinical-words.txt")));

/// A word in lower case, without copying when it already is.
pub(crate) fn lower(word: &str) -> std::borrow::Cow<'_, str> {
    if word.chars().any(char::is_uppercase) {
        std::borrow::Cow::Owned(word.to_lowercase())
    } else {
        std::borrow::Cow::Borrowed(word)
    }
}

/// Whether a lower-case word is a first name of the census lists.
pub(crate) fn is_first_name(word: &str) -> bool {
    FIRST_NAMES.contains(word)
}

/// Whether a lower-case word is a surname of the census lists.
pub(crate) fn is_surname(word: &str) -> bool {
    SURNAMES.contains(word)
}

/// Whether a lower-case word is both a name and a common English word (`will`, `may`, `brown`):
/// such words are read as names only with stronger evidence, and matched only capitalised.
pub(crate) fn is_common_word(word: &str) -> bool {
    NAME_WORDS.contains(word)
}

/// Whether a lower-case word is a clinical eponym or term that the lexicon never reads as a name.
pub(crate) fn is_clinical(word: &str) -> bool {
    CLINICAL_WORDS.contains(word)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lists_load_and_answer() {
        assert!(is_first_name("annabel") && is_first_name("john"));
        assert!(is_surname("pryce") && is_surname("smith"));
        assert!(is_common_word("will") && !is_common_word("pryce"));
        assert!(is_clinical("hodgkin") && is_clinical("parkinson"));
        assert!(!is_first_name("hemoglobin"));
        assert_eq!(lower("Ann"), "ann");
    }
}
