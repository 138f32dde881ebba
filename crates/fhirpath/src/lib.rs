//! FHIRPath for Haven: a parser and evaluator of FHIRPath (normative N1, as used by FHIR R4) over
//! `serde_json::Value` resources, typed by the `fhir` crate's R4 tables.
//!
//! Every result that comes from the resource carries its [`Location`] (for example
//! `/name/0/given/1`), so callers can rewrite the selected nodes in place.
//!
//! ```
//! let patient = serde_json::json!({"resourceType": "Patient", "name": [{"given": ["Ann", "Bo"]}]});
//! let expr = fhirpath::Expression::parse("Patient.name.given").unwrap();
//! let items = expr.evaluate(&patient).unwrap();
//! assert_eq!(items[1].location().unwrap().to_string(), "/name/0/given/1");
//! ```
//!
//! An [`Expression`] compiles once and evaluates many times, from many threads.

pub use error::Error;
pub use expression::{Environment, Expression};
pub use item::{Item, Location, Step};
pub use value::{Date, DateTime, Quantity, Time, Value};

mod arith;
mod ast;
mod boundary;
mod error;
mod eval;
mod expression;
mod functions;
mod item;
mod lexer;
mod parser;
mod text;
mod ucum;
mod value;
