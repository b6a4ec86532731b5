//! Policy files: one `+`/`-` entry per line (state-and-config.md §5).
//!
//! ```text
//! entry = action host [":" ports] *( WS "%" key "=" value )
//! ```
//! `ports` is a port scope ([`crate::ports`]): `443`, `80,443,8000-8100`, `53/udp`. An entry
//! without one covers every port and every protocol.
//! Blank lines and `#` comments are skipped. Every error names the line and quotes it.

use std::collections::BTreeMap;
use std::fmt;

use crate::ports::Ports;
use crate::sanitize::quoted;
use crate::target::{split_host_port, Target};

/// `+` allows, `-` denies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Allow,
    Deny,
}

impl Action {
    pub fn symbol(self) -> char {
        match self {
            Action::Allow => '+',
            Action::Deny => '-',
        }
    }
}

/// One parsed policy line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub action: Action,
    pub target: Target,
    /// The ports the entry is scoped to; `None`: every port and protocol.
    pub ports: Option<Ports>,
    /// `%key=value` markers, kept sorted by key.
    pub markers: BTreeMap<String, String>,
}

impl Entry {
    pub fn new(action: Action, target: Target) -> Self {
        Entry { action, target, ports: None, markers: BTreeMap::new() }
    }

    /// Parse one line that is known to hold an entry (not blank, not a comment).
    pub fn parse(line: &str) -> Result<Entry, String> {
        let content = strip_comment(line).trim();
        let mut chars = content.chars();
        let action = match chars.next() {
            Some('+') => Action::Allow,
            Some('-') => Action::Deny,
            _ => return Err("entry must start with '+' (allow) or '-' (deny)".into()),
        };
        let mut tokens = chars.as_str().split_whitespace();
        let host_port = tokens.next().ok_or("missing target after the action")?;
        let (host, ports) = split_host_port(host_port).map_err(|e| e.to_string())?;
        let target = Target::parse(host).map_err(|e| e.to_string())?;
        if target == Target::Localhost && ports.is_none() {
            return Err("'localhost' needs an explicit port".into());
        }
        let mut markers = BTreeMap::new();
        for token in tokens {
            let (key, value) = token
                .strip_prefix('%')
                .and_then(|kv| kv.split_once('='))
                .filter(|(k, _)| !k.is_empty())
                .ok_or_else(|| format!("unexpected token {} (markers look like %key=value)", quoted(token)))?;
            if markers.insert(key.to_string(), value.to_string()).is_some() {
                return Err(format!("duplicate marker {}", quoted(key)));
            }
        }
        Ok(Entry { action, target, ports, markers })
    }
}

/// Canonical rendering: `<action><host>[:ports]` (IPv6 with ports bracketed), then ` %k=v`
/// markers sorted by key.
impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.action.symbol())?;
        match (&self.ports, &self.target) {
            (Some(p), Target::Net(n)) if !n.is_ipv4() => write!(f, "[{n}]:{p}")?,
            (Some(p), t) => write!(f, "{t}:{p}")?,
            (None, t) => write!(f, "{t}")?,
        }
        for (k, v) in &self.markers {
            write!(f, " %{k}={v}")?;
        }
        Ok(())
    }
}

fn strip_comment(line: &str) -> &str {
    line.split_once('#').map_or(line, |(before, _)| before)
}

/// A line that does not parse: `line N: <reason> ('<raw>')`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason} ({})", quoted(.raw))]
pub struct LineError {
    pub line: usize,
    pub reason: String,
    pub raw: String,
}

/// A policy text that does not parse, with where it came from (a file path or a profile).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{origin}: {error}")]
pub struct PolicyError {
    pub origin: String,
    #[source]
    pub error: LineError,
}

/// Parse a whole policy text; the first bad line aborts with its number.
pub fn parse_policy(text: &str, origin: &str) -> Result<Vec<Entry>, PolicyError> {
    let mut entries = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let content = strip_comment(raw).trim();
        if content.is_empty() {
            continue;
        }
        let entry = Entry::parse(raw).map_err(|reason| PolicyError {
            origin: origin.to_string(),
            error: LineError { line: n + 1, reason, raw: raw.to_string() },
        })?;
        entries.push(entry);
    }
    Ok(entries)
}

/// Render entries canonically, one per line with a trailing newline; empty renders as "".
pub fn render_policy(entries: &[Entry]) -> String {
    let mut out = String::new();
    for e in entries {
        out.push_str(&e.to_string());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(line: &str) -> String {
        Entry::parse(line).map(|e| e.to_string()).unwrap_or_else(|e| format!("ERR {e}"))
    }

    #[test]
    fn canonical_forms() {
        assert_eq!(round("+example.com"), "+example.com");
        assert_eq!(round("  -  Example.COM:443  # why"), "-example.com:443");
        assert_eq!(round("+[2001:DB8::1]:443 %z=1 %a=2"), "+[2001:db8::1]:443 %a=2 %z=1");
        assert_eq!(round("+2001:db8::1"), "+2001:db8::1");
        assert_eq!(round("+10.1.2.3/8"), "+10.0.0.0/8");
        assert_eq!(round("+localhost:8080"), "+localhost:8080");
        assert_eq!(round("+*.example.com"), "+*.example.com");
        assert_eq!(round("+198.51.100.0/24:443,80"), "+198.51.100.0/24:80,443");
        assert_eq!(round("+[2001:db8::/64]:53/udp"), "+[2001:db8::/64]:53/udp");
        assert_eq!(round("-host.example:8000-8100/tcp"), "-host.example:8000-8100");
    }

    #[test]
    fn errors_name_the_line_and_value() {
        let text = "# header\n+good.example\n\n+1.2.3\n";
        let e = parse_policy(text, "policy/live").err().map(|e| e.to_string());
        assert_eq!(e.as_deref(), Some("policy/live: line 4: Invalid IP/CIDR: '1.2.3' ('+1.2.3')"));
        for (bad, reason) in [
            ("example.com", "must start with '+'"),
            ("+", "missing target"),
            ("+localhost", "needs an explicit port"),
            ("+a.example junk", "unexpected token 'junk'"),
            ("+a.example %=v", "unexpected token"),
            ("+a.example %k=1 %k=2", "duplicate marker"),
            ("+a.example:0", "Invalid port"),
            ("+a.example:90-80", "Invalid port range"),
            ("+a.example:80/icmp", "Invalid protocol"),
            ("+2001:db8::/64:443", "Invalid IP/CIDR"),
            ("+300.1.2.3", "Invalid IP/CIDR: '300.1.2.3'"),
            ("+10.0.0.0/33", "Invalid IP/CIDR: '10.0.0.0/33'"),
            ("+::gg", "Invalid IP/CIDR: '::gg'"),
            ("+bad\x1bname", "Invalid domain"),
        ] {
            let msg = round(bad);
            assert!(msg.starts_with("ERR ") && msg.contains(reason), "{bad:?}: {msg}");
        }
    }

    #[test]
    fn comments_and_blank_lines_are_skipped() {
        let entries = parse_policy("\n  # c\n+a.example # trailing\n\t\n-1.2.3.4\n", "x").unwrap_or_default();
        assert_eq!(render_policy(&entries), "+a.example\n-1.2.3.4\n");
        assert_eq!(render_policy(&[]), "");
    }

    proptest::proptest! {
        #[test]
        fn rendering_reparses_to_the_same_entry(
            v4 in proptest::prelude::any::<u32>(),
            prefix in 0u8..=32,
            port in proptest::option::of((1u16.., 0u16..100, proptest::prelude::any::<bool>())),
            deny in proptest::prelude::any::<bool>(),
        ) {
            let net = crate::target::IpNet::new(std::net::Ipv4Addr::from(v4).into(), prefix).expect("prefix in range");
            let mut e = Entry::new(if deny { Action::Deny } else { Action::Allow }, Target::Net(net));
            e.ports = port.and_then(|(lo, w, udp)| {
                let proto = if udp { crate::ports::Proto::Udp } else { crate::ports::Proto::Tcp };
                Ports::new(proto, vec![crate::ports::PortRange { lo, hi: lo.saturating_add(w) }])
            });
            let again = Entry::parse(&e.to_string());
            proptest::prop_assert_eq!(again, Ok(e));
        }

        #[test]
        fn parsing_never_panics(line in "\\PC{0,80}") {
            let _ = Entry::parse(&line);
        }
    }
}
