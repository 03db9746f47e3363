//! `mechlab`: runs mechlab experiments natively on the best GPU adapter.

mod common;
mod lm;
mod sae;
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
    /// Train a sparse autoencoder and write it as a SAELens folder with its metrics.
    Sae(sae::Args),
    /// Read a SAELens folder back and print what it holds.
    SaeInspect(sae::InspectArgs),
    /// Train, sample from and read the activations of GeLU and SoLU language models
    /// (TransformerLens checkpoints).
    #[command(subcommand)]
    Lm(lm::Command),
}

fn main() -> ExitCode {
    use clap::{CommandFactory, FromArgMatches};
    use mechlab_engine::experiment::fields::help;
    use mechlab_engine::experiment::link::LinkConfig;
    use mechlab_engine::models::sae::config::SaeConfig;
    use mechlab_engine::models::toy::config::SuperpositionConfig;
    use mechlab_engine::models::transformer::lm::LmConfig;
    // `--help` lists each lab's config fields from the engine's field tables.
    let command = Cli::command()
        .mut_subcommand("superposition", |c| {
            c.after_long_help(help(SuperpositionConfig::FIELDS))
        })
        .mut_subcommand("sae", |c| c.after_long_help(help(SaeConfig::FIELDS)))
        .mut_subcommand("lm", |c| {
            c.mut_subcommand("train", |c| c.after_long_help(help(LmConfig::FIELDS)))
        });
    let cli = match Cli::from_arg_matches(&command.get_matches()) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let result = match cli.command {
        Command::Superposition(args) => pollster::block_on(superposition::run(args)),
        Command::Sae(args) => pollster::block_on(sae::run(args)),
        Command::SaeInspect(args) => sae::inspect(args),
        Command::Lm(command) => lm::run(command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
