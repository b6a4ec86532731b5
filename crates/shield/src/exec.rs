//! Subprocesses with a deadline. Every external command of the library goes through here.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A command that did not run to a successful end.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExecError {
    /// Non-zero exit, or no start at all (rc 127: not found; -1: could not be started).
    #[error("'{cmd}' failed (rc={rc}): {stderr}")]
    Failed { cmd: String, rc: i32, stderr: String },
    #[error("'{cmd}' timed out after {secs} s")]
    Timeout { cmd: String, secs: u64 },
}

type Result<T> = std::result::Result<T, ExecError>;

/// What a finished command printed and returned.
#[derive(Debug, Clone)]
pub struct Output {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

/// A command to run: program, arguments, optional stdin, deadline, environment.
#[derive(Debug, Clone)]
pub struct Cmd<'a> {
    program: &'a Path,
    args: Vec<OsString>,
    stdin: Option<&'a [u8]>,
    timeout: Duration,
    /// `Some(vars)`: start from an empty environment with only these variables.
    env: Option<Vec<(OsString, OsString)>>,
    /// Run inside these namespaces.
    namespaces: Option<&'a crate::kernel::netns::Namespaces>,
}

impl<'a> Cmd<'a> {
    pub fn new(program: &'a Path, timeout: Duration) -> Self {
        Cmd { program, args: Vec::new(), stdin: None, timeout, env: None, namespaces: None }
    }

    pub fn arg(mut self, a: impl Into<OsString>) -> Self {
        self.args.push(a.into());
        self
    }

    pub fn args<I: IntoIterator<Item = S>, S: Into<OsString>>(mut self, args: I) -> Self {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn stdin(mut self, data: &'a [u8]) -> Self {
        self.stdin = Some(data);
        self
    }

    /// Run with exactly these environment variables.
    pub fn clean_env(mut self, vars: Vec<(OsString, OsString)>) -> Self {
        self.env = Some(vars);
        self
    }

    /// Run in a container's namespaces (see [`crate::kernel::netns::Namespaces`]).
    pub fn in_namespaces(mut self, ns: &'a crate::kernel::netns::Namespaces) -> Self {
        self.namespaces = Some(ns);
        self
    }

    fn text(&self) -> String {
        let mut s = self.program.display().to_string();
        for a in &self.args {
            s.push(' ');
            s.push_str(&a.to_string_lossy());
        }
        s
    }

    /// Run, capture output, kill at the deadline.
    pub fn run(&self) -> Result<Output> {
        let mut command = Command::new(self.program);
        command.args(&self.args).stdout(Stdio::piped()).stderr(Stdio::piped());
        command.stdin(if self.stdin.is_some() { Stdio::piped() } else { Stdio::null() });
        if let Some(vars) = &self.env {
            command.env_clear().envs(vars.iter().map(|(k, v)| (k, v)));
        }
        if let Some(ns) = self.namespaces {
            ns.apply_to(&mut command);
        }
        let mut child = command.spawn().map_err(|e| ExecError::Failed {
            cmd: self.text(),
            rc: if e.kind() == std::io::ErrorKind::NotFound { 127 } else { -1 },
            stderr: e.to_string(),
        })?;
        let writer = match (child.stdin.take(), self.stdin) {
            (Some(mut pipe), Some(data)) => {
                let data = data.to_vec();
                Some(std::thread::spawn(move || {
                    let _ = pipe.write_all(&data);
                }))
            }
            _ => None,
        };
        let mut out_pipe = child.stdout.take();
        let mut err_pipe = child.stderr.take();
        let out_reader = std::thread::spawn(move || read_all(out_pipe.as_mut()));
        let err_reader = std::thread::spawn(move || read_all(err_pipe.as_mut()));
        let deadline = Instant::now() + self.timeout;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() >= deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(ExecError::Timeout { cmd: self.text(), secs: self.timeout.as_secs() });
                }
                Ok(None) => std::thread::sleep(Duration::from_micros(500)),
                Err(e) => return Err(ExecError::Failed { cmd: self.text(), rc: -1, stderr: e.to_string() }),
            }
        };
        if let Some(w) = writer {
            let _ = w.join();
        }
        let stdout = out_reader.join().unwrap_or_default();
        let stderr = err_reader.join().unwrap_or_default();
        Ok(Output { status: status.code().unwrap_or(-1), stdout, stderr })
    }

    /// Like [`Cmd::run`], but a non-zero exit is an error carrying the trimmed stderr.
    pub fn run_ok(&self) -> Result<Output> {
        let out = self.run()?;
        if out.status != 0 {
            let detail = if out.stderr.trim().is_empty() { out.stdout.trim() } else { out.stderr.trim() };
            return Err(ExecError::Failed { cmd: self.text(), rc: out.status, stderr: one_line(detail) });
        }
        Ok(out)
    }
}

/// Collapse a multi-line tool message into one line.
pub fn one_line(s: &str) -> String {
    s.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" | ")
}

/// Run `program args…` with no stdin.
pub fn run(program: &Path, args: &[&str], timeout: Duration) -> Result<Output> {
    Cmd::new(program, timeout).args(args.iter().copied()).run()
}

/// Like [`run`], but a non-zero exit is an error.
pub fn run_ok(program: &Path, args: &[&str], timeout: Duration) -> Result<Output> {
    Cmd::new(program, timeout).args(args.iter().copied()).run_ok()
}

fn read_all<R: Read>(pipe: Option<&mut R>) -> String {
    let mut buf = Vec::new();
    if let Some(p) = pipe {
        let _ = p.read_to_end(&mut buf);
    }
    String::from_utf8_lossy(&buf).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_and_times_out() {
        let sh = Path::new("/bin/sh");
        let out = run(sh, &["-c", "echo out; echo err >&2; exit 3"], Duration::from_secs(5));
        let out = out.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((out.status, out.stdout.as_str(), out.stderr.as_str()), (3, "out\n", "err\n"));
        let started = Instant::now();
        let slow = run(sh, &["-c", "sleep 5"], Duration::from_millis(200));
        assert!(matches!(slow, Err(ExecError::Timeout { .. })));
        assert!(started.elapsed() < Duration::from_secs(3));
        let e = run_ok(sh, &["-c", "echo bad >&2; echo more >&2; exit 1"], Duration::from_secs(5))
            .err()
            .map(|e| e.to_string());
        assert_eq!(e.as_deref(), Some("'/bin/sh -c echo bad >&2; echo more >&2; exit 1' failed (rc=1): bad | more"));
    }

    #[test]
    fn stdin_and_clean_environment() {
        let sh = Path::new("/bin/sh");
        let out = Cmd::new(sh, Duration::from_secs(5))
            .args(["-c", "cat; echo \"[$HOME]\""])
            .stdin(b"data\n")
            .clean_env(vec![("PATH".into(), "/usr/bin:/bin".into())])
            .run_ok()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(out.stdout, "data\n[]\n");
        let missing = Cmd::new(Path::new("/nonexistent/tool"), Duration::from_secs(1)).run();
        assert!(matches!(missing, Err(ExecError::Failed { rc: 127, .. })));
    }
}
