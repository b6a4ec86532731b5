//! `watch CONTAINER` (observe.md §3): one JSON event per line from three sources, in one
//! loop: packets the firewall logged (from the container's NFLOG reader, through its
//! fan-out socket: NFLOG has one reader per namespace), queries dnsmasq logged for names
//! the allowlist lacks, and new audit rows. Every string is sanitised on the way out.

use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use serde_json::{Map, Value};

use super::dnslog::{DnsLog, Line};
use super::event::{self, Fields};
use super::fanout::SOCKET;
use super::tail::Tail;
use super::ObserveError;
use crate::audit::now_utc;
use crate::bundle::layout::{Bundle, AUDIT_LOG, DNSMASQ_LOG};
use crate::error::Result;

/// How often the allowed domains are re-read, and a lost reader looked for again.
const REFRESH: Duration = Duration::from_secs(30);
const RECONNECT: Duration = Duration::from_secs(2);

/// Event fields in output order (observe.md §3).
const ORDER: [&str; 11] =
    ["ts", "source", "action", "container", "domain", "query_type", "dest", "detail", "port", "proto", "extra"];

/// Where `watch` sends what it sees.
pub trait WatchSink {
    /// One event line; false when nobody reads any more (stdout closed): the watch ends.
    fn event(&mut self, line: &str) -> bool;
    /// A note for the operator (not an event).
    fn note(&mut self, msg: &str);
}

struct Watch<'a> {
    bundle: &'a Bundle,
    container: &'a str,
    audit: Tail,
    dns: Option<DnsLog>,
    allowed: Vec<String>,
    allowed_at: Instant,
    reader: Option<(UnixStream, Vec<u8>)>,
    reader_tried: Option<Instant>,
    warned: bool,
}

/// Watch until `stop` is readable (the caller's SIGINT/SIGTERM descriptor), handing each
/// event line to `sink`; stops early when the sink says nobody reads. `dnsmasq`: the
/// bundle's DNS mode runs dnsmasq.
pub fn run(bundle: &Bundle, container: &str, dnsmasq: bool, stop: BorrowedFd, sink: &mut dyn WatchSink) -> Result<()> {
    let audit_path = bundle.path(AUDIT_LOG);
    touch(&audit_path);
    let dns = dnsmasq.then(|| {
        touch(&bundle.path(DNSMASQ_LOG));
        DnsLog::at_end(bundle.path(DNSMASQ_LOG))
    });
    let mut w = Watch {
        bundle,
        container,
        audit: Tail::at_end(audit_path),
        dns,
        allowed: Vec::new(),
        allowed_at: Instant::now(),
        reader: None,
        reader_tried: None,
        warned: false,
    };
    w.allowed = allowed_domains(bundle);
    loop {
        w.connect(sink);
        let (sig, data) = {
            let mut fds = vec![PollFd::new(stop, PollFlags::POLLIN)];
            if let Some((s, _)) = &w.reader {
                fds.push(PollFd::new(s.as_fd(), PollFlags::POLLIN));
            }
            match poll(&mut fds, PollTimeout::from(1000u16)) {
                Ok(_) | Err(nix::Error::EINTR) => {}
                Err(e) => return Err(ObserveError::Poll(e).into()),
            }
            let ready = |i: usize| fds.get(i).and_then(|f| f.revents()).is_some_and(|ev| !ev.is_empty());
            (ready(0), ready(1))
        };
        if sig {
            return Ok(());
        }
        let mut lines = Vec::new();
        if data {
            lines.extend(w.reader_events());
        }
        lines.extend(w.dns_events());
        lines.extend(w.audit_events());
        for line in lines {
            if !sink.event(&line) {
                return Ok(());
            }
        }
    }
}

fn touch(path: &std::path::Path) {
    let _ = crate::fsutil::open_append(path);
}

/// The effective allowed domains (`*.x` kept as written).
fn allowed_domains(bundle: &Bundle) -> Vec<String> {
    crate::bundle::policy::read_tiers(&bundle.dir)
        .map(|t| t.effective().allow_domains().iter().map(|d| d.to_ascii_lowercase()).collect())
        .unwrap_or_default()
}

/// `domain` or one of its parents is allowed; `*.x` allows the names under `x` (not `x`).
pub(crate) fn is_allowed(domain: &str, allowed: &[String]) -> bool {
    let mut d = domain;
    let mut first = true;
    loop {
        if allowed.iter().any(|a| a == d || (!first && a.strip_prefix("*.") == Some(d))) {
            return true;
        }
        first = false;
        match d.split_once('.') {
            Some((_, parent)) => d = parent,
            None => return false,
        }
    }
}

/// Re-render an event object in the documented order, every string sanitised, unknown
/// fields dropped.
fn render(v: &Map<String, Value>) -> Option<String> {
    let mut f = Fields::new();
    for key in ORDER {
        match v.get(key) {
            Some(Value::String(s)) => f = f.str(key, s),
            Some(Value::Number(n)) => f = f.num(key, n.as_u64().unwrap_or(0)),
            Some(Value::Object(m)) => f = f.map(key, m),
            _ => {}
        }
    }
    (!f.0.is_empty()).then(|| f.line())
}

impl Watch<'_> {
    fn connect(&mut self, sink: &mut dyn WatchSink) {
        if self.reader.is_some() || self.reader_tried.is_some_and(|t| t.elapsed() < RECONNECT) {
            return;
        }
        self.reader_tried = Some(Instant::now());
        let path = self.bundle.path(SOCKET);
        match UnixStream::connect(&path).and_then(|s| s.set_nonblocking(true).map(|()| s)) {
            Ok(s) => {
                self.reader = Some((s, Vec::new()));
                self.warned = false;
            }
            Err(_) if !self.warned => {
                sink.note(&format!(
                    "watch: no NFLOG reader for {} ({} absent): connection events will follow once one runs",
                    self.container,
                    path.display()
                ));
                self.warned = true;
            }
            Err(_) => {}
        }
    }

    fn reader_events(&mut self) -> Vec<String> {
        let Some((s, partial)) = self.reader.as_mut() else { return Vec::new() };
        let mut buf = [0u8; 16384];
        let mut closed = false;
        loop {
            match s.read(&mut buf) {
                Ok(0) => {
                    closed = true;
                    break;
                }
                Ok(n) => partial.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    closed = true;
                    break;
                }
            }
        }
        let lines = super::take_lines(partial);
        if closed {
            self.reader = None;
        }
        lines
            .iter()
            .filter_map(|l| match serde_json::from_str::<Value>(l) {
                Ok(Value::Object(m)) => render(&m),
                _ => None,
            })
            .collect()
    }

    fn dns_events(&mut self) -> Vec<String> {
        if self.allowed_at.elapsed() >= REFRESH {
            self.allowed = allowed_domains(self.bundle);
            self.allowed_at = Instant::now();
        }
        let Some(dns) = self.dns.as_mut() else { return Vec::new() };
        dns.poll()
            .into_iter()
            .filter_map(|l| match l {
                Line::Query { domain, qtype } if !is_allowed(&domain, &self.allowed) => Some(
                    event::watch(&now_utc(), "dns", "blocked_query", self.container)
                        .str("domain", &domain)
                        .str("query_type", &qtype)
                        .line(),
                ),
                _ => None,
            })
            .collect()
    }

    fn audit_events(&mut self) -> Vec<String> {
        self.audit
            .lines()
            .iter()
            .filter_map(|l| match serde_json::from_str::<Value>(l) {
                Ok(Value::Object(row)) => Some(row),
                _ => None,
            })
            .map(|row| {
                let s = |k: &str| row.get(k).and_then(Value::as_str).unwrap_or("").to_string();
                let ts = Some(s("ts")).filter(|t| !t.is_empty()).unwrap_or_else(now_utc);
                let action = Some(s("action")).filter(|a| !a.is_empty()).unwrap_or_else(|| "unknown".into());
                let container = Some(s("container")).filter(|c| !c.is_empty()).unwrap_or_else(|| self.container.into());
                let port = row.get("port").and_then(Value::as_u64).unwrap_or(0);
                event::watch(&ts, "audit", &action, &container)
                    .str("domain", &s("domain"))
                    .str("dest", &s("dest"))
                    .str("detail", &s("detail"))
                    .num("port", port)
                    .line()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_names_and_parents() {
        let allowed = vec!["allowed.test".to_string(), "*.wild.test".to_string()];
        assert!(is_allowed("allowed.test", &allowed));
        assert!(is_allowed("www.allowed.test", &allowed));
        assert!(is_allowed("a.b.wild.test", &allowed));
        assert!(!is_allowed("wild.test", &allowed));
        assert!(!is_allowed("notallowed.test", &allowed));
        assert!(!is_allowed("test", &allowed));
    }

    #[test]
    fn reader_events_are_re_rendered_in_order() {
        let v: Map<String, Value> = serde_json::from_str(
            r#"{"port":80,"dest":"198.51.100.11","action":"queued_connection","source":"nflog","ts":"T","container":"c\u001b","junk":"x"}"#,
        )
        .unwrap_or_default();
        assert_eq!(
            render(&v).as_deref(),
            Some(
                r#"{"ts":"T","source":"nflog","action":"queued_connection","container":"c ","dest":"198.51.100.11","port":80}"#
            )
        );
    }
}
