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
pub mod pipeline;
pub mod serve;
pub mod synth;
pub mod validate;
