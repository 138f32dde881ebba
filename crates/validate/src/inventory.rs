//! What the lake holds, from one listing: the files of each run's partitions by format and
//! type or view, and the Delta tables.

use std::collections::{BTreeMap, BTreeSet};

use lake::{Destination, ObjectInfo};

use crate::error::Result;

/// The partitioned files of one run.
#[derive(Debug, Default)]
pub(crate) struct RunFiles {
    /// `ndjson/<Type>/run=<id>/…` by type.
    pub ndjson: BTreeMap<String, Vec<ObjectInfo>>,
    /// `parquet/<Type>/run=<id>/…` by type.
    pub parquet: BTreeMap<String, Vec<ObjectInfo>>,
    /// `views/<name>/run=<id>/…` by view.
    pub views: BTreeMap<String, Vec<ObjectInfo>>,
    /// `deleted/<Type>/run=<id>/…` by type.
    pub deleted: BTreeMap<String, Vec<ObjectInfo>>,
}

/// The lake's files.
#[derive(Debug, Default)]
pub(crate) struct Inventory {
    /// Partitioned files by run id.
    pub runs: BTreeMap<String, RunFiles>,
    /// Delta tables: `delta/<Type>` and `delta/views/<name>`.
    pub delta: BTreeSet<String>,
}

impl Inventory {
    /// Lists the lake once and sorts its objects. Staging files of uploads that never
    /// completed (`name#n` in a folder) are not part of any table and are left out.
    pub(crate) fn list(dest: &Destination) -> Result<Inventory> {
        let mut inventory = Inventory::default();
        for object in dest.list("")? {
            let parts: Vec<&str> = object.key.split('/').collect();
            if object.key.contains('#') {
                continue;
            }
            match parts.as_slice() {
                ["delta", "views", name, "_delta_log", ..] => {
                    inventory.delta.insert(format!("delta/views/{name}"));
                }
                ["delta", name, "_delta_log", ..] => {
                    inventory.delta.insert(format!("delta/{name}"));
                }
                [format, name, run, _file]
                    if matches!(*format, "ndjson" | "parquet" | "views" | "deleted") =>
                {
                    let Some(run) = run.strip_prefix("run=") else {
                        continue;
                    };
                    let files = inventory.runs.entry(run.to_owned()).or_default();
                    let map = match *format {
                        "ndjson" => &mut files.ndjson,
                        "parquet" => &mut files.parquet,
                        "views" => &mut files.views,
                        _ => &mut files.deleted,
                    };
                    map.entry((*name).to_owned()).or_default().push(object);
                }
                _ => {}
            }
        }
        Ok(inventory)
    }
}
