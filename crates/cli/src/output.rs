//! Writing to the terminal: stdout for the contract output (a closed pipe ends the command
//! quietly), stderr for the library's reports.

use std::io::{IsTerminal, Write};

use terok_shield::report::{Progress, Report};

use crate::error::{CliError, CliResult};

/// Print `text` as is.
pub fn print(text: &str) -> CliResult {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes()).and_then(|()| out.flush()).map_err(|e| match e.kind() {
        std::io::ErrorKind::BrokenPipe => CliError::BrokenPipe,
        _ => CliError::Message(format!("cannot write to stdout: {e}")),
    })
}

/// Print `lines`, each followed by a newline.
pub fn lines<S: AsRef<str>>(lines: &[S]) -> CliResult {
    let mut text = String::new();
    for l in lines {
        text.push_str(l.as_ref());
        text.push('\n');
    }
    print(&text)
}

/// A warning on stderr.
pub fn warn(msg: &str) {
    eprintln!("Warning [shield]: {msg}");
}

/// Show one of the library's reports on stderr: warnings prefixed, notes as they are,
/// progress as lines (and, on a terminal, a counter redrawn in place).
pub fn report(r: Report) {
    match r {
        Report::Warning(w) => warn(&w),
        Report::Note(n) => eprintln!("{n}"),
        Report::Progress(Progress::Resolving { total, what, max_secs }) => {
            eprintln!("Resolving {total} {what} names, up to {max_secs} s.")
        }
        Report::Progress(Progress::Looked { done, total }) if std::io::stderr().is_terminal() => {
            eprint!("\r  {done}/{total}");
            if done == total {
                eprint!("\r\x1b[K");
            }
        }
        Report::Progress(Progress::Resolved { addresses, elapsed }) => {
            eprintln!("Resolved to {addresses} addresses in {:.1} s.", elapsed.as_secs_f64())
        }
        _ => {}
    }
}
