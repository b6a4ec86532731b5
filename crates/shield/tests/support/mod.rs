//! Test hosts in throwaway network namespaces: a client namespace (the "container") linked
//! by a veth pair to a server namespace holding HTTP test hosts on documentation addresses.
//! Nothing leaves these namespaces.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// Public-looking test hosts (served), an unlisted one, a denied one, and a private one.
pub const HOST_ALLOWED_V4: &str = "198.51.100.10";
pub const HOST_UNLISTED_V4: &str = "198.51.100.11";
pub const HOST_DENIED_V4: &str = "198.51.100.12";
pub const HOST_ALLOWED_V6: &str = "2001:db8:100::10";
pub const HOST_UNLISTED_V6: &str = "2001:db8:100::11";
pub const HOST_PRIVATE_V4: &str = "10.222.222.10";
/// The test hosts serve their page on this port too.
pub const OTHER_PORT: u16 = 8080;

/// True when these tests can run: root, `ip`, `nft` and `busybox` present. Otherwise print
/// why and return false, unless `TEROK_SHIELD_REQUIRE_NETNS=1` (the README's test command),
/// where a missing prerequisite fails the test.
pub fn can_run(test: &str) -> bool {
    let missing: Vec<&str> = ["ip", "nft", "busybox"].into_iter().filter(|t| which(t).is_none()).collect();
    let root = nix::unistd::geteuid().is_root();
    let reason = match (root, missing.is_empty()) {
        (true, true) => return true,
        (false, _) => "needs root (network namespaces)".to_string(),
        (true, false) => format!("missing {} (run tests/env/setup.sh)", missing.join(", ")),
    };
    if std::env::var("TEROK_SHIELD_REQUIRE_NETNS").as_deref() == Ok("1") {
        panic!("{test}: {reason}");
    }
    eprintln!("SKIP {test}: {reason}");
    false
}

pub fn which(tool: &str) -> Option<PathBuf> {
    terok_shield::tools::find(tool)
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    out
}

fn run_ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(out.status.success(), "{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A named network namespace, deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(tag: &str) -> Netns {
        let name = format!("tsh-{}-{}-{tag}", std::process::id(), COUNTER.fetch_add(1, Ordering::SeqCst));
        run_ok(Command::new("ip").args(["netns", "add", &name]));
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    pub fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }

    pub fn ip(&self, args: &[&str]) -> String {
        run_ok(Command::new("ip").arg("-n").arg(&self.name).args(args))
    }

    /// `nft -f -` with `text` on stdin; stderr is the error.
    pub fn nft_load(&self, text: &str) -> Result<(), String> {
        self.nft_stdin(&["-f", "-"], text)
    }

    /// `nft -c -f -`: check only, change nothing.
    pub fn nft_check(&self, text: &str) -> Result<(), String> {
        self.nft_stdin(&["-c", "-f", "-"], text)
    }

    fn nft_stdin(&self, args: &[&str], text: &str) -> Result<(), String> {
        use std::io::Write;
        let mut child = self
            .cmd("nft")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn nft: {e}"));
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(text.as_bytes()).unwrap_or_else(|e| panic!("write nft stdin: {e}"));
        }
        let out = child.wait_with_output().unwrap_or_else(|e| panic!("wait nft: {e}"));
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    pub fn nft(&self, args: &[&str]) -> String {
        run_ok(self.cmd("nft").args(args))
    }

    pub fn list_table(&self) -> String {
        self.nft(&["list", "table", "inet", "terok_shield"])
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Ok(out) = Command::new("ip").args(["netns", "pids", &self.name]).output() {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("kill").arg(pid).status();
            }
        }
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}

/// The outcome of one TCP probe from the client.
#[derive(Debug, PartialEq, Eq)]
pub enum Probe {
    /// Connected and got the test page.
    Answered,
    /// Refused at once (an ICMP error, e.g. the shield's admin-prohibited reject).
    Rejected(String),
    /// Nothing came back before the deadline (dropped).
    TimedOut,
}

/// A client namespace linked to a server namespace that serves HTTP on the test hosts.
pub struct Lab {
    pub client: Netns,
    pub server: Netns,
    /// The test page on port 80 and on [`OTHER_PORT`].
    httpd: Vec<Child>,
    _www: tempfile::TempDir,
}

impl Lab {
    pub fn new() -> Lab {
        let client = Netns::new("cli");
        let server = Netns::new("srv");
        run_ok(Command::new("ip").args([
            "link",
            "add",
            "veth0",
            "netns",
            &client.name,
            "type",
            "veth",
            "peer",
            "name",
            "veth1",
            "netns",
            &server.name,
        ]));
        client.ip(&["link", "set", "veth0", "up"]);
        server.ip(&["link", "set", "veth1", "up"]);
        client.ip(&["addr", "add", "198.18.1.1/30", "dev", "veth0"]);
        server.ip(&["addr", "add", "198.18.1.2/30", "dev", "veth1"]);
        client.ip(&["addr", "add", "2001:db8:ff::1/64", "dev", "veth0", "nodad"]);
        server.ip(&["addr", "add", "2001:db8:ff::2/64", "dev", "veth1", "nodad"]);
        for host in [HOST_ALLOWED_V4, HOST_UNLISTED_V4, HOST_DENIED_V4, HOST_PRIVATE_V4] {
            server.ip(&["addr", "add", &format!("{host}/32"), "dev", "lo"]);
        }
        for host in [HOST_ALLOWED_V6, HOST_UNLISTED_V6] {
            server.ip(&["addr", "add", &format!("{host}/128"), "dev", "lo", "nodad"]);
        }
        client.ip(&["route", "add", "198.51.100.0/24", "via", "198.18.1.2"]);
        client.ip(&["route", "add", "10.222.222.0/24", "via", "198.18.1.2"]);
        client.ip(&["route", "add", "2001:db8:100::/64", "via", "2001:db8:ff::2"]);
        let www = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(www.path().join("index.html"), "tshield-ok\n").unwrap_or_else(|e| panic!("{e}"));
        let httpd = ["80", &OTHER_PORT.to_string()]
            .map(|port| {
                server
                    .cmd("busybox")
                    .args(["httpd", "-f", "-p", port, "-h"])
                    .arg(www.path())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap_or_else(|e| panic!("busybox httpd: {e}"))
            })
            .into();
        let lab = Lab { client, server, httpd, _www: www };
        lab.wait_for_httpd();
        lab
    }

    fn wait_for_httpd(&self) {
        for _ in 0..100 {
            let listening = run_ok(self.server.cmd("busybox").args(["netstat", "-ltn"]));
            if listening.contains(":80 ") && listening.contains(&format!(":{OTHER_PORT} ")) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        panic!("busybox httpd did not start in the server namespace");
    }

    /// One HTTP request from the client to `host`, waiting at most `wait_s` seconds.
    pub fn probe(&self, host: &str, wait_s: u32) -> Probe {
        self.probe_port(host, 80, wait_s)
    }

    /// One HTTP request from the client to `host`:`port`.
    pub fn probe_port(&self, host: &str, port: u16, wait_s: u32) -> Probe {
        use std::io::Write;
        let mut child = self
            .client
            .cmd("busybox")
            .args(["nc", "-w", &wait_s.to_string(), host, &port.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("busybox nc: {e}"));
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(b"GET / HTTP/1.0\r\n\r\n");
        }
        outcome(&child.wait_with_output().unwrap_or_else(|e| panic!("nc: {e}")))
    }

    /// Like [`Lab::probe_port`] over TCP, from a socket whose packets carry `mark`
    /// (`SO_MARK`): what a workload with CAP_NET_ADMIN could set.
    pub fn probe_marked(&self, host: &str, port: u16, mark: u32, wait_s: u32) -> Probe {
        const SCRIPT: &str = r#"
import socket, sys
host, port, mark, wait = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
fam = socket.AF_INET6 if ":" in host else socket.AF_INET
s = socket.socket(fam, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, 36, mark)
s.settimeout(wait)
try:
    s.connect((host, port))
    s.sendall(b"GET / HTTP/1.0\r\n\r\n")
    got = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        got += chunk
    print(got.decode(errors="replace"))
except socket.timeout:
    print("timed out", file=sys.stderr)
except OSError as e:
    print(e.strerror, file=sys.stderr)
"#;
        let out = self
            .client
            .cmd("python3")
            .args(["-c", SCRIPT, host, &port.to_string(), &mark.to_string(), &wait_s.to_string()])
            .output()
            .unwrap_or_else(|e| panic!("python3: {e}"));
        outcome(&out)
    }
}

/// What a probe's output says: the test page, a timeout (or nothing at all), or the error
/// the client printed.
fn outcome(out: &std::process::Output) -> Probe {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    if stdout.contains("tshield-ok") {
        Probe::Answered
    } else if stderr.contains("timed out") || (stderr.is_empty() && stdout.is_empty()) {
        Probe::TimedOut
    } else {
        Probe::Rejected(stderr)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for h in &mut self.httpd {
            let _ = h.kill();
            let _ = h.wait();
        }
    }
}
