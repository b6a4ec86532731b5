//! A command driven on a pseudo-terminal, as an operator would: what it writes is
//! collected by a thread, and the test waits for text and types answers.

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};

use crate::harness::within;

pub(crate) struct Terminal {
    child: std::process::Child,
    master: std::fs::File,
    _slave: std::os::fd::OwnedFd,
    seen: Arc<Mutex<String>>,
}

impl Terminal {
    /// Start `cmd` with its stdin, stdout and stderr on a new pseudo-terminal.
    pub(crate) fn spawn(mut cmd: std::process::Command) -> Terminal {
        let pty = nix::pty::openpty(None, None).unwrap_or_else(|e| panic!("{e}"));
        let slave = || std::process::Stdio::from(pty.slave.try_clone().unwrap_or_else(|e| panic!("{e}")));
        let child = cmd.stdin(slave()).stdout(slave()).stderr(slave()).spawn().unwrap_or_else(|e| panic!("{e}"));
        let master = std::fs::File::from(pty.master);
        let seen = Arc::new(Mutex::new(String::new()));
        let mut out = master.try_clone().unwrap_or_else(|e| panic!("{e}"));
        let sink = seen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = out.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap_or_else(|p| p.into_inner()).push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Terminal { child, master, _slave: pty.slave, seen }
    }

    /// Wait up to 10 s for `what` on the terminal; fail with everything seen if it never comes.
    pub(crate) fn wait_for(&self, what: &str) {
        let seen = || self.seen.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let ok = within(std::time::Duration::from_secs(10), || seen().contains(what));
        assert!(ok, "no {what:?} on the terminal: {}", seen());
    }

    /// Type `line` and Enter.
    pub(crate) fn type_line(&mut self, line: &str) {
        self.master.write_all(format!("{line}\n").as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    }

    /// Stop the command with `sig` and return how it ended.
    pub(crate) fn stop(mut self, sig: nix::sys::signal::Signal) -> std::process::ExitStatus {
        crate::harness::terminate(&self.child, sig);
        self.child.wait().unwrap_or_else(|e| panic!("{e}"))
    }
}
