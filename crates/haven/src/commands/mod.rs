//! The subcommands of `haven`, one module each.
//!
//! Every module exposes `Args` (its flags, a `clap::Args`) and `run(&Args) ->
//! anyhow::Result<ExitCode>`, and stays thin: it reads flags and input, calls the library crates
//! and prints. Errors name files, lines and element paths, never a value from a resource.

pub mod clients;
pub mod deid;
pub mod demo;
pub mod export;
pub mod fhirpath;
pub mod keys;
pub mod load;
pub mod operators;
pub mod pipeline;
pub mod serve;
pub mod synth;
pub mod validate;

/// Parses a `KEY=VALUE` flag value (an object-store option).
fn key_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err("expected KEY=VALUE".to_owned()),
    }
}
