//! Haven's pipeline: one run takes a source (a Bulk Data server or a folder of NDJSON),
//! de-identifies every resource with the `deid` engine, and lands it in a `lake`, then records
//! the run's state and report in the lake under `_haven/`.
//!
//! - **Incremental**: the next run exports only `_since` the previous run's `transactionTime`
//!   and applies the deletions the export lists.
//! - **Resumable**: a run interrupted at any point is resumed by the next start, under the same
//!   run id; the export resumes where it stopped and landing is redone, which writes the same
//!   files and merges the same rows, so the lake ends as after an uninterrupted run.
//! - **Scheduled**: [`run_every`] repeats runs at a fixed interval.
//!
//! ```no_run
//! let config = pipeline::PipelineConfig::from_file("pipeline.toml".as_ref())?;
//! let report = pipeline::Pipeline::new(config)?.run(&pipeline::Silent)?;
//! println!("{}", report.summary());
//! # Ok::<(), pipeline::Error>(())
//! ```

mod bulk_source;
pub mod config;
mod error;
mod report;
mod run;
mod schedule;
pub mod source;
pub mod state;

pub use config::{DeidConfig, ExportLevel, LakeConfig, PipelineConfig, SmartConfig, SourceConfig};
pub use error::{Error, Result};
pub use report::{RunReport, StageReport, TypeCounts};
pub use run::{Observer, Pipeline, Silent};
pub use schedule::run_every;
