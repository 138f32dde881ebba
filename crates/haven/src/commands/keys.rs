//! `haven keys generate`: a key pair for SMART Backend Services (the private key Haven signs
//! its client assertions with, and the public JWKS to register with a server).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use bulk::smart::{KeyAlgorithm, SigningKey};

/// The long help of `haven keys`.
const LONG_ABOUT: &str = "\
Generate a key pair for SMART Backend Services.

`haven keys generate --out DIR` writes DIR/private-key.pem (readable by its owner only) and
DIR/jwks.json, the public key set to register with the FHIR server (`haven clients add --jwks
DIR/jwks.json` for Haven's own server), or to publish at a JWKS URL. The key id (kid) is the
public key's RFC 7638 thumbprint, which `haven export --key DIR/private-key.pem` finds again on
its own. ES384 (P-384) is the default; RS384 makes a 2048-bit RSA key for servers that only
accept RSA.";

/// Generate SMART Backend Services keys.
#[derive(Debug, clap::Args)]
#[command(long_about = LONG_ABOUT)]
pub struct Args {
    /// What to do.
    #[command(subcommand)]
    pub action: Action,
}

/// The `haven keys` actions.
#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// Write a new private key and its public JWKS.
    Generate(GenerateArgs),
}

/// `haven keys generate`.
#[derive(Debug, clap::Args)]
pub struct GenerateArgs {
    /// The signature algorithm: ES384 or RS384.
    #[arg(long, default_value = "ES384")]
    pub alg: KeyAlgorithm,
    /// The folder to write private-key.pem and jwks.json to (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

/// Runs the action.
pub fn run(args: &Args) -> Result<ExitCode> {
    let Action::Generate(generate) = &args.action;
    let private = generate.out.join("private-key.pem");
    let public = generate.out.join("jwks.json");
    for path in [&private, &public] {
        if path.exists() {
            bail!(
                "{} already exists; choose another --out folder",
                path.display()
            );
        }
    }
    std::fs::create_dir_all(&generate.out)
        .with_context(|| format!("cannot create {}", generate.out.display()))?;
    let generated = SigningKey::generate(generate.alg)?;
    write_private(&private, &generated.private_pem)?;
    let jwks = serde_json::to_string_pretty(&generated.key.public_jwks())? + "\n";
    write_atomically(&public, jwks.as_bytes())?;
    println!("{}", generated.key.kid());
    eprintln!(
        "wrote {} ({}, kid {}) and {}",
        private.display(),
        generate.alg.as_str(),
        generated.key.kid(),
        public.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Writes the private key readable by its owner only, through a temporary name.
fn write_private(path: &Path, pem: &str) -> Result<()> {
    let temp = temp_name(path);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(&temp)
        .with_context(|| format!("cannot create {}", temp.display()))?;
    std::io::Write::write_all(&mut file, pem.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", temp.display()))?;
    std::fs::rename(&temp, path).with_context(|| format!("cannot write {}", path.display()))
}

/// Writes a file through a temporary name renamed into place.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let temp = temp_name(path);
    std::fs::write(&temp, bytes).with_context(|| format!("cannot write {}", temp.display()))?;
    std::fs::rename(&temp, path).with_context(|| format!("cannot write {}", path.display()))
}

fn temp_name(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}
