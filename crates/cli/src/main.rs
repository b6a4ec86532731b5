//! `terok-shield`: the operator's command line. Argument parsing and output only; the work
//! is done by the library crates.

mod args;
mod context;
mod error;
mod output;
mod process;
mod verbs;

use std::process::ExitCode;

fn main() -> ExitCode {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    match args::parse(argv).and_then(verbs::dispatch) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => e.report(),
    }
}
