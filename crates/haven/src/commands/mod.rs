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

/// SMART Backend Services sign-in flags, shared by `haven export` and `haven pipeline run`.
#[derive(Debug, clap::Args)]
pub struct SmartArgs {
    /// SMART Backend Services: the client id the server registered (with --key).
    #[arg(long, value_name = "ID", requires = "key")]
    pub client_id: Option<String>,
    /// SMART Backend Services: the private key, PEM or JWK (`haven keys generate`).
    #[arg(long, value_name = "FILE", requires = "client_id")]
    pub key: Option<std::path::PathBuf>,
    /// The key id, when it is not the JWK's kid or the key's thumbprint.
    #[arg(long, requires = "key")]
    pub kid: Option<String>,
    /// The scopes to ask for (default: system/*.read).
    #[arg(long, value_name = "SCOPES", requires = "key")]
    pub scope: Option<String>,
    /// The token endpoint (default: discovered).
    #[arg(long, value_name = "URL", requires = "key")]
    pub token_url: Option<String>,
}

/// Parses a `KEY=VALUE` flag value (an object-store option).
fn key_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err("expected KEY=VALUE".to_owned()),
    }
}
