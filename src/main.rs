//! `keyward`: parse the command line and hand over to `cli`.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    keyward::cli::run(keyward::cli::Cli::parse())
}
