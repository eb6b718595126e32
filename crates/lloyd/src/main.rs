//! `lloyd`: the one program.
//!
//! Each subcommand lives in its own module under `commands/` and owns its arguments. This
//! file only parses the command line, hands over, and turns the outcome into an exit code:
//! 0 for success, 1 when the command ran but found a problem (an invalid file, a failed
//! transfer), 2 for a usage error (clap's own convention).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod commands;
mod practices;

// mimalloc: reading an extract allocates tens of thousands of small strings, and
// mimalloc does that markedly faster than the system allocator (see docs/PERFORMANCE.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Lloyd: GP2GP, GP Connect and a Spine in a box, in one program.
#[derive(Debug, Parser)]
#[command(name = "lloyd", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    // Each line below registers one subcommand; keep one per line, in alphabetical order.
    Demo(commands::demo::Args),
    Ebxml(commands::ebxml::Args),
    Inspect(commands::inspect::Args),
    Loadgen(commands::loadgen::Args),
    Seed(commands::seed::Args),
    Serve(commands::serve::Args),
    Transfer(commands::transfer::Args),
    Translate(commands::translate::Args),
    Validate(commands::validate::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Demo(args) => commands::demo::run(args),
        Command::Ebxml(args) => commands::ebxml::run(args),
        Command::Inspect(args) => commands::inspect::run(args),
        Command::Loadgen(args) => commands::loadgen::run(args),
        Command::Seed(args) => commands::seed::run(args),
        Command::Serve(args) => commands::serve::run(args),
        Command::Transfer(args) => commands::transfer::run(args),
        Command::Translate(args) => commands::translate::run(args),
        Command::Validate(args) => commands::validate::run(args),
    }
}
