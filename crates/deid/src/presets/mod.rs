//! Built-in configurations, in Microsoft's format, embedded in the binary. Print one, copy it
//! and adapt it: every preset is a plain configuration file.
//!
//! The presets leave `dateShiftKey`, `cryptoHashKey` and `encryptKey` empty: the caller
//! supplies them (see [`crate::Config::set_key`], [`crate::Config::generate_missing_keys`]).
//! Haven's presets also set `enableReferenceHashForUris`, so hashed `urn:uuid:` references
//! still point at their Bundle entries, and (but for `safe-harbor-strict`) use Haven's `scrub`
//! method on free text, with its `scrubLayers`, `scrubDates` and `scrubKeep` parameters.

/// (name, description, configuration text) of every preset.
const PRESETS: &[(&str, &str, &str)] = &[
    (
        "safe-harbor",
        "HIPAA Safe Harbor (45 CFR 164.514(b)(2)) for analysts: the 18 identifier kinds removed \
         everywhere (names, addresses below state, telecom, identifiers, photos, extensions \
         other than race/ethnicity/birth sex); every date cut to its year; ages over 89 \
         removed; zip codes to 3 digits (000 for restricted areas); ids and references replaced \
         by keyed hashes, so references resolve; free text (narratives, notes, displays, text \
         attachments) kept with every identifier found in it replaced by a typed placeholder \
         ([NAME], [PHONE], [ID], …; the run's own identifiers, patterns and the name lexicon), \
         dates in it cut to their year; codes, values, units, statuses and categories kept",
        include_str!("safe-harbor.json"),
    ),
    (
        "safe-harbor-strict",
        "HIPAA Safe Harbor with no free text at all: like safe-harbor, but narratives, notes, \
         attachments, reference displays, descriptions and comments are removed instead of \
         scrubbed (Haven's safe-harbor before free-text scrubbing)",
        include_str!("safe-harbor-strict.json"),
    ),
    (
        "research",
        "Date-shifted pseudonymisation: like safe-harbor, but dates keep their day, shifted by an \
         offset that is the same for every resource of one patient (dateShiftScope patient), so \
         intervals within a patient's history stay exact; dates in free text are shifted alike, \
         and names not in the record are not looked for (add \"names\" to scrubLayers to). NOT \
         Safe Harbor: using it needs an expert determination (45 CFR 164.514(b)(1))",
        include_str!("research.json"),
    ),
    (
        "limited-data-set",
        "HIPAA limited data set (45 CFR 164.514(e)): the 16 direct identifiers removed (names, \
         street lines, telecom, identifiers, device ids, URLs, IP addresses, photos), also from \
         free text, which is kept; dates, ages, city, state and 5-digit zip codes kept; ids and \
         references replaced by keyed hashes. Needs a data use agreement",
        include_str!("limited-data-set.json"),
    ),
    (
        "ms-sample",
        "Microsoft's shipped R4 sample configuration, verbatim: Safe Harbor that also removes \
         observation values, codes and code texts, and redacts Bundle fullUrls (so urn:uuid \
         references no longer resolve)",
        include_str!("ms-sample.json"),
    ),
];

/// The configuration text of a preset, by name.
pub fn preset(name: &str) -> Option<&'static str> {
    PRESETS
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, _, text)| *text)
}

/// Every preset's name and one-line description.
pub fn presets() -> Vec<(&'static str, &'static str)> {
    PRESETS.iter().map(|(n, d, _)| (*n, *d)).collect()
}
