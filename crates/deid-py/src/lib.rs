//! The `deid` engine for Python and Spark.
//!
//! [`Deidentifier::deidentify`] takes an Arrow string array of NDJSON lines (with the source
//! file of each, for date-shift scope `file`) and returns one row per line: the de-identified
//! resource with its type and id, or an error that names the file and element path and never a
//! value. It never fails for a bad record, so a Spark job can skip or count bad records in one
//! pass. With the `python` feature, the crate is the extension module `haven_spark._deid`, built
//! by maturin into the `haven-spark` wheel (see `python/` and `docs/spark.md`).

mod batch;
#[cfg(feature = "python")]
mod python;

pub use batch::{Deidentifier, ERROR, Files, ID, RESOURCE, RESOURCE_TYPE};
