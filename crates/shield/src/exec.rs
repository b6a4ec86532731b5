//! Subprocesses with a deadline. Every external command of the library goes through here.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// What a finished command printed and returned.
#[derive(Debug, Clone)]
pub struct Output {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Run `program args…` with no stdin, capture its output, kill it after `timeout`.
pub fn run(program: &Path, args: &[&str], timeout: Duration) -> Result<Output> {
    let cmd_text = || {
        format!("{} {}", program.display(), args.join(" "))
            .trim()
            .to_string()
    };
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::Exec {
            cmd: cmd_text(),
            rc: -1,
            stderr: e.to_string(),
        })?;
    let mut out_pipe = child.stdout.take();
    let mut err_pipe = child.stderr.take();
    let out_reader = std::thread::spawn(move || read_all(out_pipe.as_mut()));
    let err_reader = std::thread::spawn(move || read_all(err_pipe.as_mut()));
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(Error::Timeout {
                    cmd: cmd_text(),
                    secs: timeout.as_secs(),
                });
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(2)),
            Err(e) => {
                return Err(Error::Exec {
                    cmd: cmd_text(),
                    rc: -1,
                    stderr: e.to_string(),
                })
            }
        }
    };
    let stdout = out_reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    Ok(Output {
        status: status.code().unwrap_or(-1),
        stdout,
        stderr,
    })
}

/// Like [`run`], but a non-zero exit is an error carrying the trimmed stderr.
pub fn run_ok(program: &Path, args: &[&str], timeout: Duration) -> Result<Output> {
    let out = run(program, args, timeout)?;
    if out.status != 0 {
        return Err(Error::Exec {
            cmd: format!("{} {}", program.display(), args.join(" ")),
            rc: out.status,
            stderr: out.stderr.trim().to_string(),
        });
    }
    Ok(out)
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
        let out = run(
            sh,
            &["-c", "echo out; echo err >&2; exit 3"],
            Duration::from_secs(5),
        );
        let out = out.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (out.status, out.stdout.as_str(), out.stderr.as_str()),
            (3, "out\n", "err\n")
        );
        let started = Instant::now();
        let slow = run(sh, &["-c", "sleep 5"], Duration::from_millis(200));
        assert!(matches!(slow, Err(Error::Timeout { .. })));
        assert!(started.elapsed() < Duration::from_secs(3));
        let e = run_ok(sh, &["-c", "echo bad >&2; exit 1"], Duration::from_secs(5))
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some("'/bin/sh -c echo bad >&2; exit 1' failed (rc=1): bad")
        );
    }
}
