//! `mechlab`: runs mechlab experiments natively on the best GPU adapter.

mod superposition;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "mechlab",
    version,
    about = "Mechanistic-interpretability lab: native runs"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train toy models of superposition (Elhage et al. 2022) and write the results as JSON.
    Superposition(superposition::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Superposition(args) => pollster::block_on(superposition::run(args)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
