//! Parses the command line and reports failure as one line; everything else is in the library.

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    match tokenmint::cli::run(tokenmint::cli::Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tokenmint: {e:#}");
            ExitCode::FAILURE
        }
    }
}
