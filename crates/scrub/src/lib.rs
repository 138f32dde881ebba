//! Free-text de-identification: finds the identifiers in clinical text and replaces each with a
//! typed placeholder (`[NAME]`, `[PHONE]`, …), keeping the rest of the text as it was.
//!
//! Three layers find identifiers, each switchable ([`Layers`]) and reported separately
//! ([`Layer`]):
//! - **the record's own identifiers** ([`Dictionary`]): names, identifiers, telecom, addresses and
//!   birth dates collected from the run's Patient, RelatedPerson, Person, Practitioner,
//!   PractitionerRole, Organization and Location resources ([`Identities`]), matched with one
//!   automaton, case-insensitively and on word boundaries;
//! - **patterns** for the kinds that have a shape: dates in clinicians' spellings, phone and fax
//!   numbers, email, SSN, labelled record numbers, URLs, IP addresses, ZIP codes, street
//!   addresses and ages over 89;
//! - **names of people not in the record**: a name lexicon (the 1990 US Census name lists) read
//!   with context cues ("Dr.", "reported by", a first name followed by a surname), with an
//!   allow-list of clinical eponyms ("Hodgkin", "Parkinson") that are never read as names.
//!
//! ```
//! let mut identities = scrub::Identities::default();
//! identities.add_resource(&serde_json::json!({
//!     "resourceType": "Patient",
//!     "name": [{"family": "Pryce", "given": ["Annabel"]}],
//!     "telecom": [{"system": "phone", "value": "555-942-8848"}]
//! }));
//! let scrubber = scrub::Scrubber::new(identities.build(), scrub::Settings::default());
//! let out = scrubber.scrub("Annabel Pryce called from (555) 942-8848 on 03/04/2021.");
//! assert_eq!(out, "[NAME] called from [PHONE] on 2021.");
//! ```
//!
//! Text is plain text or markdown ([`Scrubber::text`], [`Scrubber::scrub`]), XHTML ([`Scrubber::xhtml`], which stays
//! well-formed: only text and the text-bearing attributes change) or HTML
//! ([`Scrubber::html`]). Nothing here logs or returns a value in an error.

mod dates;
mod dictionary;
mod identities;
mod kind;
mod lexicon;
mod markup;
mod names;
mod patterns;
mod text;

pub use dates::{DateAction, TextDate};
pub use dictionary::Dictionary;
pub use identities::Identities;
pub use kind::{Kind, Layer, Span};
pub use markup::MarkupError;
pub use text::{Context, Layers, Scrubbed, Scrubber, Settings};
