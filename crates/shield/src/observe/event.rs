//! The JSON shapes observers see (observe.md §3, §4): watch events, the reader's `blocked`
//! audit rows and hub payloads. Every string in them may come from the container, so each
//! is sanitised (§8) as it is put in.

use serde_json::{Map, Value};
use terok_shield_policy::sanitize::sanitize_wire;

use crate::kernel::nflog::Logged;

/// Longest string a field carries (observe.md §8).
pub const WIRE_CAP: usize = 256;

/// A JSON object under construction: fields in insertion order, strings sanitised, empty
/// strings and zero numbers left out.
#[derive(Debug, Default, Clone)]
pub struct Fields(pub Map<String, Value>);

impl Fields {
    pub fn new() -> Self {
        Fields(Map::new())
    }

    pub fn str(mut self, key: &str, value: &str) -> Self {
        if !value.is_empty() {
            self.0.insert(key.into(), sanitize_wire(value, WIRE_CAP).into());
        }
        self
    }

    /// Like [`Fields::str`], but kept when empty.
    pub fn always(mut self, key: &str, value: &str) -> Self {
        self.0.insert(key.into(), sanitize_wire(value, WIRE_CAP).into());
        self
    }

    /// A number, kept when zero.
    pub fn int(mut self, key: &str, value: u64) -> Self {
        self.0.insert(key.into(), value.into());
        self
    }

    pub fn opt(self, key: &str, value: Option<&str>) -> Self {
        match value {
            Some(v) => self.str(key, v),
            None => self,
        }
    }

    pub fn num(mut self, key: &str, value: u64) -> Self {
        if value != 0 {
            self.0.insert(key.into(), value.into());
        }
        self
    }

    /// A string map (dossier, extra), each value sanitised; left out when empty.
    pub fn map(mut self, key: &str, values: &Map<String, Value>) -> Self {
        if !values.is_empty() {
            let clean: Map<String, Value> = values
                .iter()
                .map(|(k, v)| {
                    let v = v.as_str().map_or_else(|| v.to_string(), str::to_string);
                    (sanitize_wire(k, WIRE_CAP), sanitize_wire(&v, WIRE_CAP).into())
                })
                .collect();
            self.0.insert(key.into(), clean.into());
        }
        self
    }

    /// `other`'s fields after these (already sanitised), in their order.
    pub fn merge(mut self, other: Fields) -> Self {
        self.0.extend(other.0);
        self
    }

    /// Compact JSON, no trailing newline.
    pub fn line(self) -> String {
        Value::Object(self.0).to_string()
    }
}

/// The watch action for an NFLOG prefix (observe.md §3).
pub fn nflog_action(prefix: &str) -> &'static str {
    if prefix.contains("BLOCKED") {
        "queued_connection"
    } else if prefix.contains("DENIED") {
        "blocked_connection"
    } else if prefix.contains("PRIVATE") {
        "private_range"
    } else if prefix.contains("ALLOWED") {
        "allowed_connection"
    } else if prefix.contains("BYPASS") {
        "bypass_connection"
    } else {
        "nflog"
    }
}

/// A watch event: `ts, source, action, container`, then the optional fields.
pub fn watch(ts: &str, source: &str, action: &str, container: &str) -> Fields {
    Fields::new().str("ts", ts).str("source", source).str("action", action).str("container", container)
}

/// The watch event of a logged packet.
pub(crate) fn nflog_event(ts: &str, container: &str, p: &Logged, domain: Option<&str>) -> Fields {
    watch(ts, "nflog", nflog_action(&p.prefix), container)
        .opt("domain", domain)
        .str("dest", &p.dest.to_string())
        .str("detail", &p.prefix)
        .num("port", u64::from(p.port))
        .num("proto", u64::from(p.proto))
}

/// The reader's `blocked` audit row (observe.md §1); `port` is kept even when 0.
pub(crate) fn blocked_row(
    ts: &str,
    container: &str,
    p: &Logged,
    domain: Option<&str>,
    dossier: &Map<String, Value>,
) -> Fields {
    Fields::new()
        .str("ts", ts)
        .str("container", container)
        .str("action", "blocked")
        .str("dest", &p.dest.to_string())
        .int("port", p.port.into())
        .str("proto", &p.proto_name())
        .opt("domain", domain)
        .map("dossier", dossier)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet() -> Logged {
        Logged {
            prefix: "TEROK_SHIELD_BLOCKED:".into(),
            dest: "198.51.100.11".parse().unwrap_or_else(|_| unreachable!()),
            port: 443,
            proto: 6,
        }
    }

    #[test]
    fn shapes_and_sanitising() {
        let e = nflog_event("T", "c\x1b[31m", &packet(), Some("evil\u{7}.test")).line();
        assert_eq!(
            e,
            r#"{"ts":"T","source":"nflog","action":"queued_connection","container":"c [31m","domain":"evil .test","dest":"198.51.100.11","detail":"TEROK_SHIELD_BLOCKED:","port":443,"proto":6}"#
        );
        let mut dossier = Map::new();
        dossier.insert("task".into(), "t\n1".into());
        let row = blocked_row("T", "web", &Logged { port: 0, proto: 1, ..packet() }, None, &dossier).line();
        assert_eq!(
            row,
            r#"{"ts":"T","container":"web","action":"blocked","dest":"198.51.100.11","port":0,"proto":"1","dossier":{"task":"t 1"}}"#
        );
        assert_eq!(nflog_action("TEROK_SHIELD_PRIVATE:"), "private_range");
        assert_eq!(nflog_action("other"), "nflog");
    }
}
