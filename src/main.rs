//! Parses the command line and reports failure as one line; everything else is in the library.

use std::process::ExitCode;

use clap::Parser;

/// mimalloc, measured against glibc's allocator with bench/load.sh (HS256, 64 connections):
/// 10 % more requests per second at the same peak RSS. `no_thp` keeps idle RSS at glibc's level.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    tokenmint::panics::install_hook();
    match tokenmint::cli::run(tokenmint::cli::Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tokenmint: {e:#}");
            ExitCode::FAILURE
        }
    }
}
