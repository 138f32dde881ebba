//! `haven operators`: adds, lists and removes the operators who may sign in to the web
//! dashboard of `haven serve --auth smart`.

use std::io::BufRead as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};

/// The long help of `haven operators`.
const LONG_ABOUT: &str = "\
Add, list and remove the operators who may sign in to the dashboard of `haven serve` (at /,
beside the FHIR API). Under --auth smart every page needs a signed-in operator; under --auth
none (loopback only) the pages are open.

The password is read from the environment variable HAVEN_OPERATOR_PASSWORD or, without it, from
the first line of standard input; never from the command line. It is stored as a salted
PBKDF2-HMAC-SHA256 hash (600,000 iterations) in a TOML file (default: operators.toml in the
data directory, $HAVEN_HOME or ~/.local/share/haven), readable by its owner only. A running
server reads the file at start-up.";

/// Add, list and remove dashboard operators.
#[derive(Debug, clap::Args)]
#[command(long_about = LONG_ABOUT)]
pub struct Args {
    /// What to do.
    #[command(subcommand)]
    pub action: Action,
}

/// The `haven operators` actions.
#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// Add an operator, or set the password of an existing one.
    Add(NameArgs),
    /// List the operators.
    List(FileArg),
    /// Remove an operator.
    Remove(NameArgs),
}

/// The operators file option shared by every action.
#[derive(Debug, clap::Args)]
pub struct FileArg {
    /// The operators file (default: operators.toml in the data directory).
    #[arg(long, value_name = "FILE")]
    pub file: Option<PathBuf>,
}

/// An action on one operator.
#[derive(Debug, clap::Args)]
pub struct NameArgs {
    /// The operator's sign-in name (letters, digits, `.`, `-`, `_`, `@`).
    #[arg(value_name = "NAME")]
    pub name: String,
    /// The operators file.
    #[command(flatten)]
    pub file: FileArg,
}

/// The operators file: `--file`, or `operators.toml` in the data directory.
pub fn operators_path(file: Option<&PathBuf>) -> Result<PathBuf> {
    match file {
        Some(path) => Ok(path.clone()),
        None => Ok(super::serve::data_dir()?.join("operators.toml")),
    }
}

/// The new password: `HAVEN_OPERATOR_PASSWORD`, or the first line of standard input.
fn read_password() -> Result<String> {
    if let Ok(password) = std::env::var("HAVEN_OPERATOR_PASSWORD") {
        return Ok(password);
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    if password.is_empty() {
        bail!("no password: set HAVEN_OPERATOR_PASSWORD or write it on standard input");
    }
    Ok(password)
}

/// Runs `haven operators`.
pub fn run(args: &Args) -> Result<ExitCode> {
    match &args.action {
        Action::Add(add) => {
            let path = operators_path(add.file.file.as_ref())?;
            let mut operators = dashboard::Operators::load(&path)?;
            let password = read_password()?;
            let existed = operators.operators.iter().any(|o| o.name == add.name);
            operators.set(
                &add.name,
                &password,
                dashboard::operators::DEFAULT_ITERATIONS,
            )?;
            operators.save(&path)?;
            let verb = if existed { "updated" } else { "added" };
            eprintln!("operator {} {verb} in {}", add.name, path.display());
        }
        Action::List(file) => {
            let path = operators_path(file.file.as_ref())?;
            for operator in dashboard::Operators::load(&path)?.operators {
                println!("{}", operator.name);
            }
        }
        Action::Remove(remove) => {
            let path = operators_path(remove.file.file.as_ref())?;
            let mut operators = dashboard::Operators::load(&path)?;
            if !operators.remove(&remove.name) {
                bail!("no operator named {} in {}", remove.name, path.display());
            }
            operators.save(&path)?;
            eprintln!("operator {} removed from {}", remove.name, path.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}
