//! The first pass of a run that scrubs free text: the identifying values of the people and
//! places in the run's files ([`collect`]), given to the engine with
//! [`crate::Engine::with_identities`] before any resource is de-identified, so that a patient's
//! name typed into any note of the run is found.

use std::path::Path;

use fhir::ndjson::{NdjsonError, NdjsonReader, ReadOptions};
use rayon::ThreadPool;
use rayon::prelude::*;
use scrub::Identities;

/// The identifying values in `files`: `.json` files are read as one document (a resource or a
/// Bundle), the others as NDJSON (plain or gzip), in parallel batches on `pool`. Files named
/// for resource types that hold no people or places (`Observation.ndjson`) are not read
/// ([`Identities::may_hold`]); records that are not JSON are left to the main pass to report.
pub fn collect<'p>(
    files: impl IntoIterator<Item = &'p Path>,
    pool: &ThreadPool,
) -> Result<Identities, NdjsonError> {
    let mut identities = Identities::default();
    for path in files {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default();
        if !Identities::may_hold(&name) {
            continue;
        }
        let found = if name.to_ascii_lowercase().ends_with(".json") {
            from_document(path)?
        } else {
            from_lines(path, pool)?
        };
        identities.merge(found);
    }
    Ok(identities)
}

fn from_document(path: &Path) -> Result<Identities, NdjsonError> {
    let bytes = std::fs::read(path).map_err(|error| NdjsonError::File {
        file: path.display().to_string(),
        action: "read",
        error,
    })?;
    let mut identities = Identities::default();
    let _ = identities.add_json(bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(&bytes));
    Ok(identities)
}

fn from_lines(path: &Path, pool: &ThreadPool) -> Result<Identities, NdjsonError> {
    let mut reader = NdjsonReader::open(path, ReadOptions::default())?;
    let mut identities = Identities::default();
    while let Some(batch) = reader.next_batch()? {
        let lines: Vec<&[u8]> = batch.iter().map(|line| line.bytes()).collect();
        let found = pool.install(|| {
            lines
                .par_iter()
                .fold(Identities::default, |mut ids, line| {
                    let _ = ids.add_json(line);
                    ids
                })
                .reduce(Identities::default, |mut a, b| {
                    a.merge(b);
                    a
                })
        });
        identities.merge(found);
    }
    Ok(identities)
}
