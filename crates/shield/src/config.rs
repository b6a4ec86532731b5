//! `config.yml` of the CLI (state-and-config.md §3). Unknown keys are rejected at every level.
//!
//! A missing file means defaults. A file that is not YAML, cannot be read, or is not a
//! mapping gives a warning and defaults. A mapping that breaks the schema is an error.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use terok_shield_policy::names::validate_profile_name;

use crate::dns::{DnsMode, TtlClamp};
use crate::error::{Error, Result};

/// `mode:` of config.yml. Both values mean hook mode (the only one there is), so the key is
/// checked and then has no effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Mode {
    #[default]
    Auto,
    Hook,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAudit {
    enabled: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDns {
    tier: Option<String>,
    ttl_min: Option<u32>,
    ttl_max: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default, rename = "mode")]
    _mode: Mode,
    default_profiles: Option<Vec<String>>,
    audit: Option<RawAudit>,
    dnsmasq_path: Option<PathBuf>,
    dns: Option<RawDns>,
}

/// `dns.tier`: a DNS mode, or `auto` (the best dnsmasq-based or lookup mode the host has,
/// as before the shield had its own resolver).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DnsChoice {
    Auto,
    Mode(DnsMode),
}

/// The validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub default_profiles: Vec<String>,
    pub audit_enabled: bool,
    pub dnsmasq_path: Option<PathBuf>,
    /// How names reach the allow sets; the shield's resolver unless configured.
    pub dns_tier: DnsChoice,
    /// How long an address the resolver learned stays allowed.
    pub dns_ttl: TtlClamp,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            default_profiles: vec!["dev-standard".into()],
            audit_enabled: true,
            dnsmasq_path: None,
            dns_tier: DnsChoice::Mode(DnsMode::Resolver),
            dns_ttl: TtlClamp::default(),
        }
    }
}

/// A loaded configuration and the warnings to print.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<String>,
}

/// `<config root>/config.yml`.
pub fn config_path(config_root: &Path) -> PathBuf {
    config_root.join("config.yml")
}

/// Load and validate `path`.
pub fn load(path: &Path) -> Result<Loaded> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Loaded::default()),
        Err(e) => return Ok(warn(format!("failed to read {}: {e}", path.display()))),
    };
    parse(&text, path)
}

/// Validate config text; `path` only names the file in messages.
pub fn parse(text: &str, path: &Path) -> Result<Loaded> {
    let value: serde_json::Value = match serde_saphyr::from_str(text) {
        Ok(v) => v,
        Err(e) => return Ok(warn(format!("failed to parse {}: {}", path.display(), one_line(&e.to_string())))),
    };
    let value = match value {
        serde_json::Value::Null => serde_json::Value::Object(Default::default()),
        v @ serde_json::Value::Object(_) => v,
        other => return Ok(warn(format!("{}: expected mapping, got {}", path.display(), type_name(&other)))),
    };
    let invalid = |detail: String| Error::Config { path: path.to_path_buf(), detail };
    let raw: RawConfig = serde_path_to_error::deserialize(value).map_err(|e| {
        let at = e.path().to_string();
        let msg = one_line(&e.inner().to_string());
        invalid(if at == "." { msg } else { format!("{at}: {msg}") })
    })?;
    let mut config = Config::default();
    if let Some(profiles) = raw.default_profiles {
        if profiles.is_empty() {
            return Err(invalid("default_profiles: must list at least one profile".into()));
        }
        for (i, name) in profiles.iter().enumerate() {
            validate_profile_name(name).map_err(|e| invalid(format!("default_profiles[{i}]: {e}")))?;
        }
        config.default_profiles = profiles;
    }
    if let Some(audit) = raw.audit {
        config.audit_enabled = audit.enabled;
    }
    if let Some(p) = raw.dnsmasq_path {
        if !p.is_absolute() {
            return Err(invalid(format!("dnsmasq_path: {} is not an absolute path", p.display())));
        }
        config.dnsmasq_path = Some(p);
    }
    if let Some(dns) = raw.dns {
        if let Some(t) = dns.tier {
            config.dns_tier = match t.as_str() {
                "auto" => DnsChoice::Auto,
                other => DnsChoice::Mode(DnsMode::parse(other).ok_or_else(|| {
                    invalid(format!(
                        "dns.tier: unknown tier {} (resolver, auto, dnsmasq-live, dnsmasq-static, lookup, getent)",
                        terok_shield_policy::sanitize::quoted(other)
                    ))
                })?),
            };
        }
        let min = dns.ttl_min.unwrap_or(config.dns_ttl.min);
        let max = dns.ttl_max.unwrap_or(config.dns_ttl.max.max(min));
        config.dns_ttl = TtlClamp::new(min, max).map_err(|e| invalid(format!("dns: {e}")))?;
    }
    Ok(Loaded { config, warnings: Vec::new() })
}

fn warn(message: String) -> Loaded {
    Loaded { config: Config::default(), warnings: vec![message] }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn type_name(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Array(_) => "list",
        serde_json::Value::String(_) => "str",
        serde_json::Value::Bool(_) => "bool",
        serde_json::Value::Number(n) if n.is_f64() => "float",
        serde_json::Value::Number(_) => "int",
        serde_json::Value::Null => "NoneType",
        serde_json::Value::Object(_) => "dict",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> String {
        match parse(text, Path::new("/c/config.yml")) {
            Ok(l) if l.warnings.is_empty() => format!("{:?}", l.config),
            Ok(l) => format!("WARN {}", l.warnings.join("|")),
            Err(e) => format!("ERR {e}"),
        }
    }

    #[test]
    fn valid_files() {
        assert_eq!(check(""), format!("{:?}", Config::default()));
        let c = parse("mode: hook\ndefault_profiles: [base, dev-node]\naudit:\n  enabled: false\ndnsmasq_path: /usr/sbin/dnsmasq\n", Path::new("x"));
        let c = c.map(|l| l.config).unwrap_or_default();
        assert_eq!(c.default_profiles, ["base", "dev-node"]);
        assert!(!c.audit_enabled);
        assert_eq!(c.dnsmasq_path.as_deref(), Some(Path::new("/usr/sbin/dnsmasq")));
        assert_eq!(c.dns_tier, DnsChoice::Mode(DnsMode::Resolver));
        let c =
            parse("dns:\n  tier: dnsmasq-live\n  ttl_min: 2\n", Path::new("x")).map(|l| l.config).unwrap_or_default();
        assert_eq!((c.dns_tier, c.dns_ttl.min, c.dns_ttl.max), (DnsChoice::Mode(DnsMode::DnsmasqNftset), 2, 3600));
        let c = parse("dns: {tier: auto, ttl_max: 600}\n", Path::new("x")).map(|l| l.config).unwrap_or_default();
        assert_eq!((c.dns_tier, c.dns_ttl.max), (DnsChoice::Auto, 600));
    }

    #[test]
    fn unknown_keys_are_rejected_at_every_level() {
        assert!(
            check("bogus: 1\n").starts_with("ERR invalid /c/config.yml: bogus: unknown field `bogus`"),
            "{}",
            check("bogus: 1\n")
        );
        assert!(check("audit:\n  enabled: true\n  extra: 1\n")
            .starts_with("ERR invalid /c/config.yml: audit.extra: unknown field `extra`"));
    }

    #[test]
    fn schema_errors() {
        for (text, expect) in [
            ("mode: fast\n", "mode: unknown variant `fast`"),
            ("default_profiles: []\n", "default_profiles: must list at least one profile"),
            ("default_profiles: ['']\n", "default_profiles[0]: Unsafe profile name: ''"),
            ("default_profiles: ['../x']\n", "Unsafe profile name"),
            ("default_profiles: base\n", "default_profiles: invalid type"),
            ("audit:\n  enabled: 3\n", "audit.enabled: invalid type"),
            ("dnsmasq_path: dnsmasq\n", "dnsmasq_path: dnsmasq is not an absolute path"),
            ("dns:\n  tier: bind9\n", "dns.tier: unknown tier 'bind9'"),
            ("dns:\n  ttl_min: 0\n", "dns: ttl_min must be at least 1"),
            ("dns:\n  ttl_min: 600\n  ttl_max: 60\n", "dns: ttl_max (60) is below ttl_min (600)"),
            ("dns:\n  ttl_max: 999999\n", "dns: ttl_max must be at most 86400"),
            ("dns:\n  ttl: 5\n", "dns.ttl: unknown field"),
            ("dns:\n  ttl_min: -1\n", "dns.ttl_min: invalid value"),
        ] {
            let got = check(text);
            assert!(got.starts_with("ERR invalid /c/config.yml: ") && got.contains(expect), "{text:?}: {got}");
        }
    }

    #[test]
    fn warnings_fall_back_to_defaults() {
        assert!(check("- a\n- b\n").starts_with("WARN /c/config.yml: expected mapping, got list"));
        assert!(check("just a string\n").contains("expected mapping, got str"));
        assert!(check("mode: [unclosed\n").starts_with("WARN failed to parse /c/config.yml"));
        let missing = load(Path::new("/nonexistent/config.yml")).map(|l| l.config).unwrap_or_default();
        assert_eq!(missing, Config::default());
    }
}
