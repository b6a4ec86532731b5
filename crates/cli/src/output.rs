//! Writing to stdout: a closed pipe ends the command quietly.

use std::io::Write;

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
