//! The posture a container is in, kept in the bundle so that it survives a stop, a start and
//! `podman restart`, and the table and seeds each posture loads.
//!
//! `up`, `down`, `down --disengage` and `quarantine` record the posture once it is in force;
//! the createRuntime hook loads the recorded one (UP when none is recorded). `reset` only
//! forgets learned addresses and leaves the posture as it is.

use terok_shield_ruleset::{NetFacts, Posture, Seeds};

use super::layout::{Bundle, LOOPBACK_PORTS, NETWORK_MODE, POSTURE, UPSTREAM_DNS};
use super::BundleError;
use crate::error::Result;

/// The recorded posture; UP when none is recorded. A file that names no posture is an
/// error (the hook then fails closed rather than guess).
pub fn recorded(bundle: &Bundle) -> Result<Posture> {
    match bundle.read_value(POSTURE)? {
        None => Ok(Posture::Up),
        Some(word) => Posture::from_label(&word).ok_or_else(|| {
            BundleError::BadPosture { path: bundle.path(POSTURE), found: terok_shield_policy::sanitize::quoted(&word) }
                .into()
        }),
    }
}

/// Record `posture` (atomically; the caller holds the bundle lock).
pub fn record(bundle: &Bundle, posture: Posture) -> Result<()> {
    crate::fsutil::write_atomic(&bundle.path(POSTURE), format!("{}\n", posture.label()).as_bytes(), 0o600)
}

/// The table text of `posture` for this bundle.
pub fn table(bundle: &Bundle, posture: Posture) -> Result<String> {
    Ok(terok_shield_ruleset::render_table(posture, &facts(bundle)?))
}

/// What of the bundle's seeds (`all`, from [`super::seeds::derive`]) `posture` loads: DOWN
/// seeds no allows, and DISENGAGED and QUARANTINE seed nothing.
pub fn seeds(posture: Posture, all: Seeds) -> Seeds {
    match posture {
        Posture::Up => all,
        Posture::Down => all.without_allows(),
        Posture::Disengaged | Posture::Quarantine => Seeds::default(),
    }
}

/// The network facts recorded at prepare: upstream DNS (none with the shield's resolver),
/// loopback ports, gateways of the recorded network mode.
pub fn facts(bundle: &Bundle) -> Result<NetFacts> {
    let dns = if bundle.dns_mode()? == Some(crate::dns::DnsMode::Resolver) {
        None
    } else {
        let dns = bundle.read_value(UPSTREAM_DNS)?.and_then(|v| v.parse().ok());
        Some(dns.ok_or_else(|| BundleError::NoUpstream(bundle.path(UPSTREAM_DNS)))?)
    };
    let base = match bundle.read_value(NETWORK_MODE)?.as_deref() {
        Some("slirp4netns") => NetFacts::slirp4netns(),
        _ => NetFacts::pasta(),
    };
    let ports: Vec<u16> = bundle
        .read_value(LOOPBACK_PORTS)?
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect();
    Ok(NetFacts { dns, ..base }.with_loopback_ports(&ports))
}
