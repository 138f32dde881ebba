//! Generates the `fhir` crate's R4 tables (`crates/fhir/src/generated/`) from `data/fhir-r4`.
//!
//! Usage: `fhir-tables-gen [--data DIR] [--out DIR]`; both default to the workspace's own
//! folders. The output is deterministic and formatted with `rustfmt`, so re-running the
//! generator on unchanged inputs reproduces the committed files byte for byte.

mod emit;
mod model;
mod source;

use std::path::PathBuf;

use anyhow::{Context, Result, bail};

fn main() -> Result<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut data = root.join("data/fhir-r4");
    let mut out = root.join("crates/fhir/src/generated");
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args
            .next()
            .with_context(|| format!("{arg} needs a value"))?;
        match arg.as_str() {
            "--data" => data = PathBuf::from(value),
            "--out" => out = PathBuf::from(value),
            _ => bail!("unknown argument {arg}; usage: fhir-tables-gen [--data DIR] [--out DIR]"),
        }
    }
    let sources = source::Sources::load(&data)?;
    let tables = model::Tables::build(&sources)?;
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    for (name, text) in emit::files(&tables)? {
        let path = out.join(name);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
