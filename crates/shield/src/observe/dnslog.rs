//! dnsmasq's query log (`log-queries=extra`), followed as it grows: the queries the workload
//! makes, the addresses answers named (the domain cache that names blocked destinations),
//! and the answers the rebind guard turned into NXDOMAIN.
//!
//! Every string here comes from the container (the names it asks for); callers sanitise.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;

use super::tail::Tail;

/// Bounds of the maps a flood of queries could grow.
const MAX_DOMAINS: usize = 8192;
const MAX_FORWARDED: usize = 1024;

/// What one log line says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// `query[AAAA] name from …`: the workload asked.
    Query { domain: String, qtype: String },
    /// `reply name is addr` / `cached name is addr`.
    Answer { domain: String, addr: IpAddr },
    /// A forwarded query answered `config name is NXDOMAIN`: the upstream's answer fell in a
    /// guarded range (`bogus-nxdomain`), so the rebind guard refused it.
    Rebind { domain: String },
}

/// A followed `dnsmasq.log`.
#[derive(Debug)]
pub struct DnsLog {
    tail: Tail,
    /// Query serial → name, for queries dnsmasq forwarded upstream.
    forwarded: HashMap<String, String>,
    domains: HashMap<IpAddr, String>,
}

impl DnsLog {
    /// Follow `path` from its current end (what happened before is not reported).
    pub fn at_end(path: PathBuf) -> Self {
        DnsLog { tail: Tail::at_end(path), forwarded: HashMap::new(), domains: HashMap::new() }
    }

    /// Follow `path` from its start (the domain cache learns the answers already logged).
    pub fn from_start(path: PathBuf) -> Self {
        DnsLog { tail: Tail::from_start(path), forwarded: HashMap::new(), domains: HashMap::new() }
    }

    /// Read what the log already holds (the domain cache learns it), reporting nothing.
    pub fn catch_up(&mut self) {
        loop {
            self.poll();
            if self.tail.caught_up() {
                break;
            }
        }
    }

    /// Keep the log under `max` bytes: emptied once read through (`Tail::truncate_past`).
    pub fn cap(&mut self, max: u64) {
        self.tail.truncate_past(max);
    }

    /// The name an answer last gave for `addr`.
    pub fn domain_of(&self, addr: &IpAddr) -> Option<&str> {
        self.domains.get(addr).map(String::as_str)
    }

    /// The complete lines written since the last poll. A file that shrank (rotated or
    /// truncated) is followed from its new start; read errors report nothing.
    pub fn poll(&mut self) -> Vec<Line> {
        self.tail.lines().iter().filter_map(|l| self.take(l)).collect()
    }

    fn take(&mut self, line: &str) -> Option<Line> {
        let (serial, words) = parse(line)?;
        match words.as_slice() {
            [q, domain, "from", ..] if q.starts_with("query[") && q.ends_with(']') => {
                Some(Line::Query { domain: normalise(domain), qtype: q["query[".len()..q.len() - 1].to_string() })
            }
            ["forwarded", domain, "to", ..] => {
                if self.forwarded.len() >= MAX_FORWARDED {
                    self.forwarded.clear();
                }
                self.forwarded.insert(serial?.to_string(), normalise(domain));
                None
            }
            ["reply" | "cached", domain, "is", addr] => {
                let addr: IpAddr = addr.parse().ok()?;
                if self.domains.len() >= MAX_DOMAINS {
                    self.domains.clear();
                }
                let domain = normalise(domain);
                self.domains.insert(addr, domain.clone());
                Some(Line::Answer { domain, addr })
            }
            ["config", domain, "is", "NXDOMAIN"] => {
                let asked = self.forwarded.remove(serial?)?;
                (asked == normalise(domain)).then_some(Line::Rebind { domain: asked })
            }
            _ => None,
        }
    }
}

/// The serial (with `log-queries=extra`) and the words after `dnsmasq[pid]: `.
fn parse(line: &str) -> Option<(Option<&str>, Vec<&str>)> {
    let (_, rest) = line.split_once("]: ")?;
    let words: Vec<&str> = rest.split_whitespace().collect();
    match words.as_slice() {
        [serial, src, tail @ ..] if serial.bytes().all(|b| b.is_ascii_digit()) && src.contains('/') => {
            Some((Some(serial), tail.to_vec()))
        }
        _ => Some((None, words)),
    }
}

fn normalise(domain: &str) -> String {
    domain.trim_end_matches('.').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const LOG: &str = "\
Nov 25 00:35:48 dnsmasq[1]: started, version 2.90 cache disabled
Nov 25 00:35:49 dnsmasq[1]: 1 127.0.0.1/48988 query[A] Allowed.Shield.Test. from 127.0.0.1
Nov 25 00:35:49 dnsmasq[1]: 1 127.0.0.1/48988 forwarded allowed.shield.test to 198.51.100.53
Nov 25 00:35:49 dnsmasq[1]: 1 127.0.0.1/48988 reply allowed.shield.test is 198.51.100.10
Nov 25 00:35:49 dnsmasq[1]: 2 127.0.0.1/39849 forwarded private.shield.test to 198.51.100.53
Nov 25 00:35:49 dnsmasq[1]: 2 127.0.0.1/39849 config private.shield.test is NXDOMAIN
Nov 25 00:35:49 dnsmasq[1]: 3 127.0.0.1/55561 config denied.shield.test is NXDOMAIN
Nov 25 00:35:49 dnsmasq[1]: 4 127.0.0.1/59283 reply gone.shield.test is NXDOMAIN
";

    #[test]
    fn lines_and_the_domain_cache() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("dnsmasq.log");
        std::fs::write(&path, &LOG[..LOG.len() - 20])?;
        let mut log = DnsLog::from_start(path.clone());
        let first = log.poll();
        // The half-written last line waits for its end.
        let mut f = std::fs::OpenOptions::new().append(true).open(&path)?;
        f.write_all(&LOG.as_bytes()[LOG.len() - 20..])?;
        let second = log.poll();
        assert_eq!(
            first,
            vec![
                Line::Query { domain: "allowed.shield.test".into(), qtype: "A".into() },
                Line::Answer {
                    domain: "allowed.shield.test".into(),
                    addr: "198.51.100.10".parse().map_err(std::io::Error::other)?
                },
                Line::Rebind { domain: "private.shield.test".into() },
            ]
        );
        // A sinkholed name (never forwarded) and an upstream NXDOMAIN are not rebinds.
        assert!(second.is_empty(), "{second:?}");
        assert_eq!(
            log.domain_of(&"198.51.100.10".parse().map_err(std::io::Error::other)?),
            Some("allowed.shield.test")
        );
        // Truncation: followed from the new start.
        std::fs::write(&path, "x dnsmasq[1]: query[AAAA] a.b from 1\n")?;
        assert_eq!(log.poll(), vec![Line::Query { domain: "a.b".into(), qtype: "AAAA".into() }]);
        // At the end: nothing old.
        assert!(DnsLog::at_end(path).poll().is_empty());
        Ok(())
    }
}
