//! `haven`: the one command line of Haven.
//!
//! This file only parses the command line and dispatches: each subcommand is a variant of
//! [`Command`] whose flags and code live in their own module under `commands/` (for example
//! `commands/fhirpath.rs`, with its `Args` and `run`). To add a subcommand, add a module there, a
//! variant here and its arm in [`Command::run`].

mod commands;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Haven: export FHIR data, de-identify it and land it in a data lake.
#[derive(Debug, Parser)]
#[command(name = "haven", version)]
struct Cli {
    /// What to do.
    #[command(subcommand)]
    command: Command,
}

/// The subcommands of `haven`.
#[derive(Debug, Subcommand)]
enum Command {
    // Each subcommand's help text is the doc comment and `#[command]` of its `Args`.
    Fhirpath(commands::fhirpath::Args),
    Deid(commands::deid::Args),
    Synth(commands::synth::Args),
    Export(commands::export::Args),
    Pipeline(commands::pipeline::Args),
    Demo(commands::demo::Args),
    Serve(commands::serve::Args),
    Load(commands::load::Args),
    Validate(commands::validate::Args),
    Clients(commands::clients::Args),
    Keys(commands::keys::Args),
    Operators(commands::operators::Args),
}

impl Command {
    /// Runs the subcommand; its exit code on success, or the error that stopped it.
    fn run(self) -> anyhow::Result<ExitCode> {
        match self {
            Command::Fhirpath(args) => commands::fhirpath::run(&args),
            Command::Deid(args) => commands::deid::run(&args),
            Command::Synth(args) => commands::synth::run(&args),
            Command::Export(args) => commands::export::run(&args),
            Command::Pipeline(args) => commands::pipeline::run(&args),
            Command::Demo(args) => commands::demo::run(&args),
            Command::Serve(args) => commands::serve::run(&args),
            Command::Load(args) => commands::load::run(&args),
            Command::Validate(args) => commands::validate::run(&args),
            Command::Clients(args) => commands::clients::run(&args),
            Command::Keys(args) => commands::keys::run(&args),
            Command::Operators(args) => commands::operators::run(&args),
        }
    }
}

/// Exit code for errors (bad arguments, unreadable input), as `grep` uses it.
const EXIT_ERROR: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.run() {
        Ok(code) => code,
        // The reader of our output went away (`haven … | head`): nothing left to report.
        Err(error) if is_broken_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("haven: error: {error:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

/// True when the error comes from writing to a closed pipe.
fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
