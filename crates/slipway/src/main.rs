//! `slipway`: the one binary. Parses the command line and hands off to the library crates.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    cli::main()
}
