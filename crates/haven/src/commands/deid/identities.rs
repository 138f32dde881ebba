//! The first pass of a run whose rules scrub free text (see [`deid::identities`]): every input
//! file, whatever the shard, so every shard scrubs alike.

use std::path::Path;

use deid::scrub::Identities;
use rayon::ThreadPool;

use super::Failure;
use super::layout::{self, Input};

/// The identifying values of the people and places in `inputs` (standard input is not read).
pub(super) fn collect<'i>(
    inputs: impl IntoIterator<Item = &'i Input>,
    pool: &ThreadPool,
) -> Result<Identities, Failure> {
    let files = inputs.into_iter().filter_map(|input| match input {
        Input::Ndjson(path) | Input::Json(path) | Input::Part { path, .. } => Some(path.as_path()),
        Input::Stdin => None,
    });
    Ok(deid::identities::collect(files, pool)?)
}

/// The identifying values of the people and places under `path` (a file or a folder, walked
/// as INPUT is), for `--identities`.
pub(super) fn collect_from(path: &Path, pool: &ThreadPool) -> Result<Identities, Failure> {
    collect(&layout::inputs(path)?, pool)
}
