//! FHIR R4 knowledge for Haven: type tables generated from the R4 definitions, resource helpers
//! (references, the Patient compartment), search parameters, and streaming NDJSON.

pub mod compartment;
mod generated;
pub mod ndjson;
pub mod reference;
pub mod search;
pub mod types;
