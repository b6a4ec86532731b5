//! `simple-clearance CONTAINER` (observe.md §7): ask on the terminal about each blocked
//! destination and apply the answer with this program's own `allow`/`deny`.
//!
//! A refused TCP or UDP connection can be allowed whole (`a`), on its port only (`p`:
//! `allow C dest:port`), or denied (`d`).
//!
//! Blocked destinations come from the container's NFLOG reader (its fan-out socket), the one
//! process that may bind NFLOG in the container's namespace; each is asked about once per
//! session.

use std::collections::{HashSet, VecDeque};
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use terok_shield::container;
use terok_shield::observe::fanout::SOCKET;
use terok_shield::observe::take_lines;
use terok_shield_policy::sanitize::sanitize_wire;

use crate::context::Context;
use crate::error::{CliError, CliResult};

struct Blocked {
    dest: String,
    port: u64,
    /// The IP protocol number of a refused connection (0 for a name).
    proto: u64,
    domain: String,
}

impl Blocked {
    /// `dest:port` (`[v6]:port`, `/udp` for UDP) when the connection had a TCP or UDP port:
    /// what "this port only" allows.
    fn on_port(&self) -> Option<String> {
        let proto = match self.proto {
            6 => "",
            17 => "/udp",
            _ => return None,
        };
        let addr: std::net::IpAddr = self.dest.parse().ok()?;
        let port = u16::try_from(self.port).ok().filter(|p| *p > 0)?;
        Some(match addr {
            std::net::IpAddr::V4(a) => format!("{a}:{port}{proto}"),
            std::net::IpAddr::V6(a) => format!("[{a}]:{port}{proto}"),
        })
    }

    /// `<label> :<port>` for a connection; `<name> (name lookup)` for a refused name.
    fn shown(&self) -> String {
        if self.port == 0 && self.domain.is_empty() && self.dest.parse::<std::net::IpAddr>().is_err() {
            format!("{} (name lookup)", self.dest)
        } else {
            format!("{} :{}", self.label(), self.port)
        }
    }

    fn label(&self) -> String {
        if self.domain.is_empty() {
            self.dest.clone()
        } else {
            format!("{} ({})", self.dest, self.domain)
        }
    }
}

pub fn run(ctx: &Context, name: &str) -> CliResult {
    if terok_shield::observe::hub::clearance_hub_active() {
        return Err(CliError::Message(
            "the clearance hub (org.terok.Shield1) owns verdicts on the session bus; stop it first: systemctl --user stop terok-clearance-hub".into(),
        ));
    }
    let bundle = container::locate(&ctx.state_root, name)?;
    let path = bundle.path(SOCKET);
    let mut reader = UnixStream::connect(&path).map_err(|e| {
        CliError::Message(format!(
            "no NFLOG reader runs for {name} ({}: {e}); it starts with the container when terok-shield's hooks are installed",
            path.display()
        ))
    })?;
    let sigfd = crate::process::stop_signals().map_err(|e| CliError::Message(e.to_string()))?;
    let mut term = std::io::stdout();
    let say = |term: &mut std::io::Stdout, s: &str| {
        let _ = term.write_all(s.as_bytes());
        let _ = term.flush();
    };
    say(&mut term, "Watching for blocked connections... (Ctrl-C to stop)\n\n");
    let mut queue: VecDeque<Blocked> = VecDeque::new();
    let mut asked: HashSet<String> = HashSet::new();
    let (mut from_reader, mut from_user) = (Vec::new(), Vec::new());
    let stdin = std::io::stdin();
    loop {
        let (sig, rd, inp) = {
            let mut fds = [
                PollFd::new(sigfd.as_fd(), PollFlags::POLLIN),
                PollFd::new(reader.as_fd(), PollFlags::POLLIN),
                PollFd::new(stdin.as_fd(), PollFlags::POLLIN),
            ];
            let _ = poll(&mut fds, PollTimeout::from(500u16));
            let ready = |i: usize| fds[i].revents().is_some_and(|ev| !ev.is_empty());
            (ready(0), ready(1), ready(2))
        };
        if sig {
            break;
        }
        if rd && !read_some(&mut reader, &mut from_reader) {
            break;
        }
        for line in take_lines(&mut from_reader) {
            let Ok(serde_json::Value::Object(e)) = serde_json::from_str::<serde_json::Value>(&line) else { continue };
            let s = |k: &str| sanitize_wire(e.get(k).and_then(|v| v.as_str()).unwrap_or(""), 256);
            // A refused connection is asked about by address; a refused name (the shield's
            // resolver) by name, before any address exists.
            // What a verdict would allow must be exactly one address, or one plain name: never
            // a network, a wildcard or anything else the container wrote into an event.
            let b = match s("action").as_str() {
                "queued_connection" if s("dest").parse::<std::net::IpAddr>().is_ok() => Blocked {
                    dest: s("dest"),
                    port: e.get("port").and_then(|p| p.as_u64()).unwrap_or(0),
                    proto: e.get("proto").and_then(|p| p.as_u64()).unwrap_or(0),
                    domain: s("domain"),
                },
                "blocked_query" if is_plain_name(&s("domain")) => {
                    Blocked { dest: s("domain"), port: 0, proto: 0, domain: String::new() }
                }
                _ => continue,
            };
            if queue.len() >= MAX_QUEUE {
                continue;
            }
            if !asked.insert(b.dest.clone()) {
                continue;
            }
            if !queue.is_empty() {
                say(&mut term, &format!("\n[BLOCKED] {} (queued)", b.shown()));
            }
            queue.push_back(b);
            prompt(&mut term, &queue);
        }
        if inp && !read_some(&mut stdin.lock(), &mut from_user) {
            break;
        }
        for line in take_lines(&mut from_user) {
            let answer = line.trim().to_ascii_lowercase();
            if answer.is_empty() || queue.is_empty() {
                continue;
            }
            let Some(head) = queue.front() else { continue };
            let on_port = head.on_port();
            let (verb, target) = match (answer.as_str(), &on_port) {
                ("a" | "allow", _) => ("allow", head.dest.clone()),
                ("p" | "port", Some(t)) => ("allow", t.clone()),
                ("d" | "deny", _) => ("deny", head.dest.clone()),
                _ => {
                    let port = if on_port.is_some() { ", 'p' to allow this port only," } else { "" };
                    say(&mut term, &format!("  Unknown input. Type 'a' to allow{port} or 'd' to deny.\n"));
                    prompt(&mut term, &queue);
                    continue;
                }
            };
            if verdict(verb, name, &target) {
                let mark = if verb == "allow" { "✓ allowed" } else { "✗ denied" };
                let what = match &head.domain {
                    d if target != head.dest && !d.is_empty() => format!("{target} ({d})"),
                    _ if target != head.dest => target.clone(),
                    _ => head.label(),
                };
                say(&mut term, &format!("  {mark} {what}\n"));
                queue.pop_front();
            } else {
                say(&mut term, &format!("  ! verdict failed for {} (retry with a/d)\n", head.dest));
            }
            prompt(&mut term, &queue);
        }
    }
    Ok(())
}

/// Destinations waiting for a verdict at once; more are not queued (the container must not
/// be able to bury the operator in prompts).
const MAX_QUEUE: usize = 64;

/// A name the policy grammar reads as one plain domain (not an address, network or wildcard).
fn is_plain_name(name: &str) -> bool {
    matches!(terok_shield_policy::Target::parse(name), Ok(terok_shield_policy::Target::Domain(d)) if !d.starts_with("*."))
}

fn prompt(term: &mut std::io::Stdout, queue: &VecDeque<Blocked>) {
    if let Some(head) = queue.front() {
        let choices = if head.on_port().is_some() { "allow/port/deny" } else { "allow/deny" };
        let _ = write!(term, "[BLOCKED] {} — {choices}? ", head.shown());
        let _ = term.flush();
    }
}

/// Append what is available; false at end of file or on an error.
fn read_some(src: &mut impl Read, buf: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 8192];
    match src.read(&mut chunk) {
        Ok(0) => false,
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            true
        }
        Err(e) => e.kind() == std::io::ErrorKind::Interrupted || e.kind() == std::io::ErrorKind::WouldBlock,
    }
}

/// `terok-shield allow|deny <container> <dest>`, this binary, same environment.
fn verdict(verb: &str, container: &str, dest: &str) -> bool {
    let Ok(me) = std::env::current_exe() else { return false };
    std::process::Command::new(me)
        .args([verb, container, dest])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_port_only_names_the_address_port_and_protocol() {
        let b = |dest: &str, port, proto| Blocked { dest: dest.into(), port, proto, domain: String::new() };
        assert_eq!(b("198.51.100.7", 443, 6).on_port().as_deref(), Some("198.51.100.7:443"));
        assert_eq!(b("2001:db8::7", 53, 17).on_port().as_deref(), Some("[2001:db8::7]:53/udp"));
        assert_eq!(b("198.51.100.7", 0, 1).on_port(), None, "ICMP has no port");
        assert_eq!(b("198.51.100.7", 70000, 6).on_port(), None);
        assert_eq!(b("example.test", 0, 0).on_port(), None);
    }

    #[test]
    fn only_plain_names_are_offered() {
        assert!(is_plain_name("refused.shield.test"));
        for bad in ["0.0.0.0/0", "::/0", "1.0.0.0/1", "198.51.100.7", "*.example.com", "", "a b.test", "localhost"] {
            assert!(!is_plain_name(bad), "{bad}");
        }
    }
}
