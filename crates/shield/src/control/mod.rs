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
use terok_shield_ruleset::{classify, script, Posture, SetId, ShieldState};

mod addresses;
mod names;
mod ports;

use crate::audit::{self, Row};
use crate::bundle::dns::{explicit_allows, refresh_dnsmasq_conf, refused_note};
use crate::bundle::layout::{Bundle, OVERRIDE_RESOLVED};
use crate::bundle::lock_bundle;
use crate::bundle::policy::{read_tier, read_tiers, write_tier};
use crate::bundle::posture;
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
    /// The running resolver refused a request (its one-line reason).
    #[error("the container's resolver: {0}")]
    Resolver(String),
    #[error("{}: not an absolute path", .0.display())]
    NotAbsolute(std::path::PathBuf),
    /// The kernel refused a port-scoped element that starts or ends inside one already in
    /// its set (the caller loads the set's whole canonical content instead).
    #[error("a port-scoped element overlaps one already in its set")]
    Overlap,
    #[error("{0} is denied on every port: allow it as a whole, or remove the deny first")]
    DeniedWhole(String),
    #[error("{0}: ports on a name need the shield's resolver (dns.tier: resolver)")]
    PortsNeedResolver(String),
    #[error("{0}: no allow of this name has exactly these ports; deny the name as a whole to close it")]
    NameNotScoped(String),
    /// A deny the override tier would overrule.
    #[error(
        "{element} overlaps the override {by}, which wins over any deny: remove the override from the profile first"
    )]
    OverrideWins { element: IpNet, by: IpNet },
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
        let namespaces = container::running_namespaces(&bundle);
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

    /// The port-scoped entries of the bundle's effective policy, as policy lines
    /// (`+198.51.100.7:443`, `-[2001:db8::7]:22`, `+api.example:443`): overrides, denies,
    /// then allows.
    pub fn port_rules(&self) -> Result<Vec<String>> {
        let e = read_tiers(&self.bundle.dir)?.effective();
        let line = |action: Action, (t, p): &(Target, terok_shield_policy::Ports)| {
            Entry { ports: Some(p.clone()), ..Entry::new(action, t.clone()) }.to_string()
        };
        let mut out: Vec<String> = e.scoped_overrides.iter().map(|tp| line(Action::Allow, tp)).collect();
        out.extend(e.scoped_denies.iter().map(|tp| line(Action::Deny, tp)));
        out.extend(e.scoped_allows.iter().map(|tp| line(Action::Allow, tp)));
        Ok(out)
    }

    pub fn state(&self) -> ShieldState {
        classify(&self.rules().unwrap_or_default())
    }

    /// Switch the posture (ruleset.md §6.5): rebuild the table from the bundle's facts,
    /// re-seed from its policy files, carry DNS-learned addresses over (never denied ones;
    /// those pinned to ports too), verify.
    pub fn set_posture(&self, posture: Posture, audit: bool) -> Result<()> {
        let (nft, ns) = self.running()?;
        let _lock = lock_bundle(&self.bundle.dir)?;
        type Timed = Vec<(IpNet, Option<u64>)>;
        let learned: Vec<(SetId, Timed)> = if posture == Posture::Quarantine {
            Vec::new()
        } else {
            SetId::learned_sets().into_iter().map(|s| Ok((s, nft.timed_elements(s)?))).collect::<Result<_>>()?
        };
        type TimedScoped = Vec<(terok_shield_ruleset::Scoped, u64)>;
        let pinned: Vec<(SetId, TimedScoped)> = if posture == Posture::Quarantine {
            Vec::new()
        } else {
            [false, true]
                .map(SetId::learned_scoped)
                .into_iter()
                .map(|s| Ok((s, nft.timed_scoped(s)?)))
                .collect::<Result<_>>()?
        };
        // Learned addresses a deny covers are never carried over.
        let all = crate::bundle::seeds::derive(&self.bundle)?;
        let denied = all.t20_security_deny.clone();
        let seeds = posture::seeds(posture, all);
        let table = posture::table(&self.bundle, posture)?;
        nft.load(&table, &seeds, posture).map_err(|e| match e {
            NftError::Unverified(source) => ControlError::Unverified { posture, source }.into(),
            other => Error::from(other),
        })?;
        for (set, elements) in learned {
            let keep: Timed = elements.into_iter().filter(|(e, _)| !denied.iter().any(|d| d.contains(e))).collect();
            nft.add_learned(set, &keep)?;
        }
        for (set, elements) in pinned {
            let keep: TimedScoped =
                elements.into_iter().filter(|(e, _)| !denied.iter().any(|d| d.contains(&e.net))).collect();
            nft.add_timed_scoped(set, &keep)?;
        }
        posture::record(&self.bundle, posture)?;
        self.end_unadmitted_flows(&nft, ns)?;
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
        let (nft, ns) = self.running()?;
        let _lock = lock_bundle(&self.bundle.dir)?;
        nft.apply(&script::flush(&SetId::all_learned())).map_err(|e| match e.refusal() {
            Some(Refusal::NoSuchObject) => ControlError::NoLearnedSets.into(),
            _ => Error::from(e),
        })?;
        self.end_unadmitted_flows(&nft, ns)?;
        if audit {
            self.audit(Row::new(&self.name, "shield_reset"));
        }
        Ok(())
    }

    /// End every tracked flow the table now in the kernel would not accept as a new one
    /// (conntrack would otherwise carry a flow opened under a looser posture, or to a
    /// forgotten address, for as long as it lasts).
    /// When judging fails (a listing that cannot be had, a helper that fails or times out
    /// on a huge conntrack table), every tracked flow ends instead: never fail open.
    pub(super) fn end_unadmitted_flows(&self, nft: &Nft<'_>, ns: &Namespaces) -> Result<()> {
        let judged =
            nft.list_table().map_err(Error::from).and_then(|listing| self.helper.run_in(ns, &NsOp::EndFlows(listing)));
        if let Err(e) = judged {
            self.helper.run_in(ns, &NsOp::KillFlows(Vec::new()))?;
            (self.report)(Report::Warning(format!("{e}: every open flow of {} was ended instead", self.name)));
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
}

fn posture_word(p: Posture) -> &'static str {
    match p {
        Posture::Up => "Up:",
        Posture::Down => "Shield-down:",
        Posture::Disengaged => "Disengage:",
        Posture::Quarantine => "Quarantine:",
    }
}
