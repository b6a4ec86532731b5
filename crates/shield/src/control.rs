//! The running-container controller: allow, deny, postures, reset, state and rules of one
//! shielded container (cli.md §2, §6-§12).
//!
//! Every change holds the bundle lock, is one atomic nft transaction inside the container's
//! namespaces, is checked in the kernel, and only then is recorded in `policy/live` (last
//! writer wins per target) and audited. On a container that is not running, the change is
//! recorded and applied by the hook at its next start.

use std::path::Path;

use terok_shield_policy::overlay::upsert;
use terok_shield_policy::rebind::is_guarded;
use terok_shield_policy::{Action, Entry, IpNet, Target, Tier};
use terok_shield_ruleset::verify::VerifyError;
use terok_shield_ruleset::{classify, script, NetFacts, Posture, Seeds, SetId, ShieldState};

use crate::audit::{self, Row};
use crate::bundle::dns::{explicit_allows, refresh_dnsmasq_conf, refused_note};
use crate::bundle::layout::{Bundle, OVERRIDE_RESOLVED};
use crate::bundle::lock_bundle;
use crate::bundle::policy::{read_tier, read_tiers, write_tier};
use crate::container::{self, ContainerError};
use crate::error::{Error, NftError, Result};
use crate::helper::{Helper, NsOp};
use crate::kernel::netns::Namespaces;
use crate::kernel::nft::{Nft, Refusal};
use crate::report::{Report, Reporter};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    #[error("'localhost' cannot be allowed or denied live")]
    Localhost,
    /// The table lacks the sets a change needs: the container is quarantined.
    #[error("the container's table has no allow/deny sets (quarantined?): run 'terok-shield up' first")]
    NoSets,
    #[error("the container's table has no allow sets (quarantined?): run 'terok-shield up' first")]
    NoLearnedSets,
    #[error("the change of {element} is not in force in the kernel (set {set})")]
    NotInForce { element: IpNet, set: SetId },
    /// The posture's table loaded but did not verify (a quarantine is in place instead).
    #[error("{} ruleset verification failed: {source}", posture_word(*.posture))]
    Unverified {
        posture: Posture,
        #[source]
        source: VerifyError,
    },
    /// An `ns` operation of the helper failed; its one-line message.
    #[error("{message}")]
    Helper { message: String },
    #[error("{}: not an absolute path", .0.display())]
    NotAbsolute(std::path::PathBuf),
}

/// The outcome of an allow or deny.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The canonical address or network changed (or what follows a wildcard).
    pub address: String,
    /// True when it is in force in the kernel now; false when the container is not running
    /// and the change waits for its next start.
    pub in_force: bool,
}

/// A container addressed by name: its bundle, and its namespaces while it runs.
pub struct Container<'a> {
    pub name: String,
    pub bundle: Bundle,
    namespaces: Option<Namespaces>,
    helper: Helper,
    report: Reporter<'a>,
}

impl<'a> Container<'a> {
    /// The container `name` under `state_root`; `helper` runs the in-namespace operations,
    /// `report` hears the notes and warnings of every change.
    pub fn open(state_root: &Path, name: &str, helper: Helper, report: Reporter<'a>) -> Result<Container<'a>> {
        let bundle = container::locate(state_root, name)?;
        let namespaces = match container::running_pid(&bundle) {
            Some(pid) => Some(Namespaces::of(pid)?),
            None => None,
        };
        Ok(Container { name: name.to_string(), bundle, namespaces, helper, report })
    }

    /// The container runs (its recorded process is alive).
    pub fn is_running(&self) -> bool {
        self.namespaces.is_some()
    }

    fn nft(&self) -> Result<Option<Nft<'_>>> {
        match &self.namespaces {
            Some(ns) => Ok(Some(Nft::locate()?.in_namespaces(ns))),
            None => Ok(None),
        }
    }

    fn running(&self) -> Result<(Nft<'_>, &Namespaces)> {
        match (self.nft()?, &self.namespaces) {
            (Some(nft), Some(ns)) => Ok((nft, ns)),
            _ => Err(ContainerError::NotRunning(self.name.clone()).into()),
        }
    }

    fn audit(&self, row: Row) {
        audit::append(&self.bundle.dir, row, self.report);
    }

    /// `nft list table inet terok_shield` in the container; empty when it is not running.
    pub fn rules(&self) -> Result<String> {
        match self.nft()? {
            Some(nft) => Ok(nft.list_table()?),
            None => Ok(String::new()),
        }
    }

    pub fn state(&self) -> ShieldState {
        classify(&self.rules().unwrap_or_default())
    }

    /// Switch the posture (ruleset.md §6.5): rebuild the table from the bundle's facts,
    /// re-seed from its policy files, carry DNS-learned addresses over (never denied ones),
    /// verify.
    pub fn set_posture(&self, posture: Posture, audit: bool) -> Result<()> {
        let (nft, ns) = self.running()?;
        let _lock = lock_bundle(&self.bundle.dir)?;
        let facts = facts(&self.bundle)?;
        let learned: Vec<(SetId, Vec<IpNet>)> = if posture == Posture::Quarantine {
            Vec::new()
        } else {
            SetId::learned_sets().into_iter().map(|s| Ok((s, nft.set_elements(s)?))).collect::<Result<_>>()?
        };
        let all = crate::bundle::seeds::derive(&self.bundle)?;
        // Learned addresses a deny covers are never carried over.
        let denied = all.t20_security_deny.clone();
        let seeds = match posture {
            Posture::Up => all,
            Posture::Down => Seeds { t40_project_allow: Vec::new(), ..all },
            Posture::Disengaged | Posture::Quarantine => Seeds::default(),
        };
        let table = terok_shield_ruleset::render_table(posture, &facts);
        nft.load(&table, &seeds, posture).map_err(|e| match e {
            NftError::Unverified(source) => ControlError::Unverified { posture, source }.into(),
            other => Error::from(other),
        })?;
        if posture == Posture::Quarantine {
            self.helper.run_in(ns, &NsOp::KillFlows(Vec::new()))?;
        }
        for (set, elements) in learned {
            let keep: Vec<IpNet> = elements.into_iter().filter(|e| !denied.iter().any(|d| d.contains(e))).collect();
            nft.add_elements(set, &keep)?;
        }
        if audit {
            let c = self.name.as_str();
            self.audit(match posture {
                Posture::Up => Row::new(c, "shield_up"),
                Posture::Down => Row::new(c, "shield_down"),
                Posture::Disengaged => Row::new(c, "shield_down").detail("disengaged=True"),
                Posture::Quarantine => Row::new(c, "shield_quarantine"),
            });
        }
        Ok(())
    }

    /// Forget DNS-learned allow state: flush the learned sets in one transaction.
    pub fn reset(&self, audit: bool) -> Result<()> {
        let (nft, _) = self.running()?;
        let _lock = lock_bundle(&self.bundle.dir)?;
        nft.apply(&script::flush(&SetId::learned_sets())).map_err(|e| match e.refusal() {
            Some(Refusal::NoSuchObject) => ControlError::NoLearnedSets.into(),
            _ => Error::from(e),
        })?;
        if audit {
            self.audit(Row::new(&self.name, "shield_reset"));
        }
        Ok(())
    }

    /// Allow `target`: an address, a network, or a domain resolved on the host (each of its
    /// addresses is allowed). Returns what changed, in order.
    pub fn allow(&self, target: &str, audit: bool) -> Result<Vec<Change>> {
        self.change_target(Action::Allow, target, audit)
    }

    pub fn deny(&self, target: &str, audit: bool) -> Result<Vec<Change>> {
        self.change_target(Action::Deny, target, audit)
    }

    fn change_target(&self, action: Action, raw: &str, audit: bool) -> Result<Vec<Change>> {
        match Target::parse(raw)? {
            Target::Net(n) => Ok(vec![self.change_net(action, n, raw, audit)?]),
            Target::Localhost => Err(ControlError::Localhost.into()),
            Target::Domain(d) if d.starts_with("*.") => self.change_wildcard(action, d, audit),
            Target::Domain(d) => {
                let exempt = explicit_allows(
                    &read_tiers(&self.bundle.dir)?.effective(),
                    &self.bundle.read_addresses(OVERRIDE_RESOLVED)?,
                );
                let mut done = Vec::new();
                for a in crate::dns::resolve::resolve(&d, self.report) {
                    if action == Action::Allow && is_guarded(a, &exempt) {
                        (self.report)(Report::Note(refused_note(a, Some(&d))));
                        if audit {
                            self.audit(
                                Row::new(&self.name, "dns_rebind").dest(&a.to_string()).detail(&format!("domain={d}")),
                            );
                        }
                        continue;
                    }
                    // Each address as its own target; the audit row names the domain.
                    done.push(self.change_net(action, IpNet::host(a), raw, audit)?);
                }
                if !done.is_empty() {
                    self.change_domain(action, d)?;
                }
                Ok(done)
            }
        }
    }

    /// A wildcard `*.x` can only be followed by a DNS mode that follows answers (dnsmasq
    /// with nftset), which then fills the allow set from every answer for a name under `x`
    /// (and, as dnsmasq matches a domain with its subdomains, for `x` itself). Nothing is
    /// resolved now.
    fn change_wildcard(&self, action: Action, d: String, audit: bool) -> Result<Vec<Change>> {
        if !self.bundle.dns_mode()?.is_some_and(|m| m.follows_answers()) {
            let mode = self.bundle.read_value(crate::bundle::layout::DNS_TIER)?.unwrap_or_default();
            return Err(crate::dns::DnsError::WildcardNeedsAnswers { name: d, mode }.into());
        }
        self.change_domain(action, d.clone())?;
        if audit {
            let verb = if action == Action::Allow { "allowed" } else { "denied" };
            self.audit(Row::new(&self.name, verb).dest(&d).detail(&format!("target={d}")));
        }
        let what = if action == Action::Allow { "each address dnsmasq answers" } else { "sinkholed by dnsmasq" };
        Ok(vec![Change { address: what.into(), in_force: self.is_running() }])
    }

    /// On the dnsmasq modes, record the domain itself in `policy/live` and restart the
    /// container's dnsmasq with a regenerated configuration (an nftset line for an allow, a
    /// sinkhole for a deny). The firewall is untouched meanwhile: the container is never
    /// unshielded, it only waits for DNS for a moment.
    fn change_domain(&self, action: Action, domain: String) -> Result<()> {
        let _lock = lock_bundle(&self.bundle.dir)?;
        if self.bundle.dns_mode()?.is_some_and(|m| !m.runs_dnsmasq()) {
            return Ok(());
        }
        let mut overlay = read_tier(&self.bundle.dir, Tier::Live)?;
        upsert(&mut overlay, Entry::new(action, Target::Domain(domain)));
        write_tier(&self.bundle.dir, Tier::Live, &overlay)?;
        if !refresh_dnsmasq_conf(&self.bundle, self.report)? {
            return Ok(());
        }
        if let Some(ns) = &self.namespaces {
            self.helper.run_in(ns, &NsOp::RestartDnsmasq { state_dir: self.bundle.dir.clone() })?;
        }
        Ok(())
    }

    fn change_net(&self, action: Action, net: IpNet, raw: &str, audit: bool) -> Result<Change> {
        let _lock = lock_bundle(&self.bundle.dir)?;
        let in_force = match &self.namespaces {
            Some(ns) if net.is_host() => {
                let (into, out_of) = sets(action, net);
                self.helper.run_in(ns, &NsOp::SetElement { into, out_of, address: net.addr() })?;
                true
            }
            Some(ns) => {
                let (nft, _) = self.running()?;
                apply(&nft, action, net)?;
                if action == Action::Deny {
                    self.helper.run_in(ns, &NsOp::KillFlows(vec![net]))?;
                }
                true
            }
            None => false,
        };
        let mut overlay = read_tier(&self.bundle.dir, Tier::Live)?;
        upsert(&mut overlay, Entry::new(action, Target::Net(net)));
        write_tier(&self.bundle.dir, Tier::Live, &overlay)?;
        if audit {
            let verb = if action == Action::Allow { "allowed" } else { "denied" };
            self.audit(Row::new(&self.name, verb).dest(&net.to_string()).detail(&format!("target={raw}")));
        }
        Ok(Change { address: net.to_string(), in_force })
    }
}

/// The set a change of `net` goes into, and the opposite one it leaves.
fn sets(action: Action, net: IpNet) -> (SetId, SetId) {
    let allow = SetId::live_change(true, net);
    let deny = SetId::live_change(false, net);
    if action == Action::Allow {
        (allow, deny)
    } else {
        (deny, allow)
    }
}

/// One transaction: take `net` out of the opposite set when it is there, and put it into
/// the wanted one; then check the wanted set in the kernel. (A delete makes the kernel wait
/// for an RCU grace period, 8-12 ms here, so it is sent only when needed; the bundle lock
/// keeps other verbs from changing the sets in between.)
fn apply(nft: &Nft, action: Action, net: IpNet) -> Result<()> {
    let (into, out_of) = sets(action, net);
    let present = nft.has_element(out_of, net)?;
    nft.apply(&script::move_element(present.then_some(out_of), into, net)).map_err(|e| match e.refusal() {
        Some(Refusal::NoSuchObject) => ControlError::NoSets.into(),
        _ => Error::from(e),
    })?;
    // The transaction took it out of the opposite set or failed as a whole; check that it
    // is in the wanted one.
    if !nft.has_element(into, net)? {
        return Err(ControlError::NotInForce { element: net, set: into }.into());
    }
    Ok(())
}

fn posture_word(p: Posture) -> &'static str {
    match p {
        Posture::Up => "Up:",
        Posture::Down => "Shield-down:",
        Posture::Disengaged => "Disengage:",
        Posture::Quarantine => "Quarantine:",
    }
}

/// The network facts recorded at prepare: upstream DNS, loopback ports, gateways of the
/// recorded network mode.
fn facts(bundle: &Bundle) -> Result<NetFacts> {
    use crate::bundle::layout::{LOOPBACK_PORTS, NETWORK_MODE, UPSTREAM_DNS};
    let dns = bundle
        .read_value(UPSTREAM_DNS)?
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| crate::bundle::BundleError::NoUpstream(bundle.path(UPSTREAM_DNS)))?;
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
