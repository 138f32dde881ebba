//! Haven's Bulk Data client: drives any FHIR server's `$export` into a local folder.
//!
//! An [`Exporter`] kicks off an export (GET with a query, or POST with a `Parameters` body, with
//! `Accept: application/fhir+json` and `Prefer: respond-async`), polls the status URL honouring
//! `Retry-After` in every form peers send ([`retry::parse_retry_after`]), follows manifest pages,
//! downloads the files in parallel (a limit per host), checks every line's `resourceType` and the
//! manifest `count`, and sends a final DELETE. Both manifest shapes (STU2/3 and the STU4 ballot)
//! are read ([`Manifest`]).
//!
//! The output folder holds one NDJSON file per manifest entry (`Patient.000.ndjson`,
//! `deleted/Bundle.000.ndjson`, `error/OperationOutcome.000.ndjson`), the manifest
//! (`manifest.json`), a `log.ndjson` in the SMART bulk-data-client's format ([`log`]) and the
//! export's state under `.haven-export/` ([`state`]). Everything is written to a temporary name
//! and renamed when complete, so a run stopped at any point (even by `kill -9`) continues where
//! it stopped when run again: no new kick-off while the recorded status URL is valid, and
//! finished files are not fetched again. With [`ExportOptions::since_auto`] the next export asks
//! only for what changed since the last completed one.
//!
//! Requests that may carry a token ask a [`TokenProvider`] ([`NoAuth`], [`StaticToken`], or
//! [`SmartAuth`] for SMART Backend Services, see [`smart`]). Redirects are followed without
//! `Authorization` on a hop to another origin, and no token is sent for downloads when the
//! manifest says `requiresAccessToken: false`.
//!
//! The API is async ([`Exporter::run_async`], tokio); [`Exporter::run`] owns a runtime and
//! blocks, for synchronous callers.
//!
//! ```no_run
//! use bulk::{ExportOptions, ExportRequest, Exporter, Level};
//!
//! let mut request = ExportRequest::new("https://fhir.example.org/r4", Level::Group("g1".into()));
//! request.types = vec!["Patient".into(), "Condition".into()];
//! let summary = Exporter::new(ExportOptions::new(request, "out")).run()?;
//! println!("{} resources in {} files", summary.resources, summary.files);
//! # Ok::<(), bulk::Error>(())
//! ```

pub mod auth;
mod check;
mod error;
mod export;
pub mod log;
mod manifest;
mod request;
pub mod retry;
pub mod smart;
pub mod state;

pub use auth::{NoAuth, StaticToken, TokenProvider};
pub use error::Error;
pub use export::{Event, ExportOptions, Exporter, Summary};
pub use manifest::{FileKind, Manifest, ManifestFile};
pub use request::{ExportRequest, Level};
pub use retry::RetryPolicy;
pub use smart::{SigningKey, SmartAuth, SmartCredentials};
