//! `haven clients`: registers, lists and removes the SMART Backend Services clients that
//! `haven serve --auth smart` accepts.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};

/// The long help of `haven clients`.
const LONG_ABOUT: &str = "\
Register, list and remove the clients that `haven serve --auth smart` gives tokens to.

A client authenticates with a JWT signed by its private key (ES384 or RS384); the server checks
it with the client's public keys: a JWKS URL (preferred: the client can rotate keys on its own)
or a literal JWKS file, such as the jwks.json that `haven keys generate` writes. --scope lists
the most the client may be granted, in SMART v1 or v2 syntax: system/*.read, system/*.rs,
system/Patient.rs system/Observation.r, …

The registry is a JSON file (default: clients.json in the data directory, $HAVEN_HOME or
~/.local/share/haven); a running server reads it again when it changes.";

/// Register, list and remove SMART Backend Services clients.
#[derive(Debug, clap::Args)]
#[command(long_about = LONG_ABOUT)]
pub struct Args {
    /// What to do.
    #[command(subcommand)]
    pub action: Action,
}

/// The `haven clients` actions.
#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// Register a client.
    Add(AddArgs),
    /// List the registered clients.
    List(FileArg),
    /// Remove a client.
    Remove(RemoveArgs),
}

/// The registry file option shared by every action.
#[derive(Debug, clap::Args)]
pub struct FileArg {
    /// The registry file (default: clients.json in the data directory).
    #[arg(long, value_name = "FILE")]
    pub file: Option<PathBuf>,
}

/// `haven clients add`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("keys").required(true).args(["jwks_url", "jwks"])))]
pub struct AddArgs {
    /// The client id (the `iss` and `sub` of its assertions).
    #[arg(long)]
    pub id: String,
    /// The URL of the client's public JWKS.
    #[arg(long, value_name = "URL")]
    pub jwks_url: Option<String>,
    /// A file holding the client's public JWKS.
    #[arg(long, value_name = "FILE")]
    pub jwks: Option<PathBuf>,
    /// The scopes the client may be granted, space-separated.
    #[arg(long)]
    pub scope: String,
    /// The registry file.
    #[command(flatten)]
    pub file: FileArg,
}

/// `haven clients remove`.
#[derive(Debug, clap::Args)]
pub struct RemoveArgs {
    /// The client id.
    #[arg(long)]
    pub id: String,
    /// The registry file.
    #[command(flatten)]
    pub file: FileArg,
}

/// The registry file: `--file`, or `clients.json` in the data directory.
pub fn registry_path(file: Option<&PathBuf>) -> Result<PathBuf> {
    match file {
        Some(path) => Ok(path.clone()),
        None => Ok(super::serve::data_dir()?.join("clients.json")),
    }
}

/// Runs the action.
pub fn run(args: &Args) -> Result<ExitCode> {
    use server::auth::clients::{Client, KeySource, Registry};
    match &args.action {
        Action::Add(add) => {
            let path = registry_path(add.file.file.as_ref())?;
            let keys = match (&add.jwks_url, &add.jwks) {
                (Some(url), None) => KeySource::JwksUrl(url.clone()),
                (None, Some(file)) => {
                    let text = std::fs::read_to_string(file)
                        .with_context(|| format!("cannot read {}", file.display()))?;
                    let jwks = serde_json::from_str(&text)
                        .with_context(|| format!("{} is not JSON", file.display()))?;
                    KeySource::Jwks(jwks)
                }
                _ => bail!("give exactly one of --jwks-url and --jwks"),
            };
            let mut registry = Registry::load(&path)?;
            registry
                .add(Client {
                    id: add.id.clone(),
                    keys,
                    scope: add.scope.clone(),
                })
                .map_err(anyhow::Error::msg)?;
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
            }
            registry.save(&path)?;
            eprintln!("registered client {} in {}", add.id, path.display());
        }
        Action::List(file) => {
            let path = registry_path(file.file.as_ref())?;
            let registry = Registry::load(&path)?;
            for client in &registry.clients {
                let keys = match &client.keys {
                    KeySource::JwksUrl(url) => format!("jwks_url {url}"),
                    KeySource::Jwks(jwks) => {
                        let kids: Vec<&str> = jwks["keys"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(|k| k["kid"].as_str())
                            .collect();
                        format!("jwks kid {}", kids.join(","))
                    }
                };
                println!("{}\t{}\t{keys}", client.id, client.scope);
            }
        }
        Action::Remove(remove) => {
            let path = registry_path(remove.file.file.as_ref())?;
            let mut registry = Registry::load(&path)?;
            if !registry.remove(&remove.id) {
                bail!(
                    "client {} is not registered in {}",
                    remove.id,
                    path.display()
                );
            }
            registry.save(&path)?;
            eprintln!("removed client {} from {}", remove.id, path.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}
