//! De-identification of FHIR R4 resources with Microsoft's FHIR anonymizer configurations.
//!
//! ```no_run
//! let config = deid::Config::from_json(deid::presets::preset("ms-sample").unwrap()).unwrap();
//! # let mut config = config; config.generate_missing_keys();
//! let engine = deid::Engine::new(config).unwrap();
//! let mut patient = serde_json::json!({"resourceType": "Patient", "id": "1", "birthDate": "1980-03-04"});
//! let summary = engine.deidentify(&mut patient, &deid::Context::default()).unwrap();
//! ```
//!
//! A [`Config`] is read from Microsoft's format (or a built-in [`presets`] entry), compiled once
//! into an [`Engine`], and the engine de-identifies one resource at a time
//! ([`Engine::deidentify`]) or a batch of NDJSON lines ([`Engine::deidentify_lines`]), from any
//! number of threads. Every call returns a [`Summary`] of counts; no error, log or panic holds a
//! value from a resource.

pub mod config;
mod engine;
pub mod error;
pub mod identities;
mod json;
pub mod keys;
mod labels;
pub mod methods;
pub mod presets;
mod select;
mod summary;
mod tree;

pub use config::Config;
pub use engine::{Batch, Context, Engine, Touched};
pub use error::{Error, Result};
pub use methods::Today;
/// The free-text detectors behind the `scrub` method (the run's identifiers are a
/// [`scrub::Identities`]).
pub use scrub;
pub use summary::{ScrubCounts, Summary};
