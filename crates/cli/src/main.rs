//! `terok-shield`: the operator's command line. Argument parsing and output only; the work
//! is done by the library crates.

mod args;
mod context;
mod error;
mod output;
mod verbs;

use std::process::ExitCode;

fn main() -> ExitCode {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // Internal: the CLI runs itself inside a container's namespaces to change one element.
    let helper: Option<fn(&[String]) -> i32> = match argv.get(1).and_then(|a| a.to_str()) {
        Some(terok_shield::live::ELEMENT_HELPER) => Some(terok_shield::live::element_helper_main),
        Some(terok_shield::live::KILL_FLOWS_HELPER) => Some(terok_shield::live::kill_flows_main),
        Some(terok_shield::live::DNSMASQ_HELPER) => Some(terok_shield::live::dnsmasq_helper_main),
        _ => None,
    };
    if let Some(helper) = helper {
        let args: Vec<String> = argv[2..].iter().map(|a| a.to_string_lossy().into_owned()).collect();
        return ExitCode::from(u8::try_from(helper(&args)).unwrap_or(1));
    }
    match args::parse(argv).and_then(verbs::dispatch) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => e.report(),
    }
}
