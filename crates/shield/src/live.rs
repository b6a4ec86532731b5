//! Live control of a running container's firewall: allow, deny, state and rules
//! (cli.md §2, §6, §7, §12).
//!
//! Every change holds the bundle lock, is one atomic nft transaction inside the container's
//! namespaces, is checked in the kernel, and only then is recorded in `policy/live` (last
//! writer wins per target) and audited. On a container that is not running, the change is
//! recorded and applied by the hook at its next start.

use terok_shield_policy::overlay::upsert;
use terok_shield_policy::{Action, Entry, IpNet, Target, Tier};
use terok_shield_ruleset::constants::SetTier;
use terok_shield_ruleset::{classify, ShieldState};

use crate::bundle::layout::Bundle;
use crate::bundle::policy::{read_tier, write_tier};
use crate::container;
use crate::error::{Error, Result};
use crate::netns::Namespaces;
use crate::nft::Nft;
use crate::prepare::lock_bundle;

/// The outcome of an allow or deny.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The canonical address or network changed.
    pub address: String,
    /// True when it is in force in the kernel now; false when the container is not running
    /// and the change waits for its next start.
    pub live: bool,
}

/// A container addressed by name: its bundle, and its namespaces while it runs.
pub struct Container {
    pub name: String,
    pub bundle: Bundle,
    pub namespaces: Option<Namespaces>,
}

impl Container {
    pub fn open(state_root: &std::path::Path, name: &str) -> Result<Container> {
        let bundle = container::locate(state_root, name)?;
        let namespaces = match container::running_pid(&bundle) {
            Some(pid) => Some(Namespaces::of(pid)?),
            None => None,
        };
        Ok(Container { name: name.to_string(), bundle, namespaces })
    }

    fn nft(&self) -> Result<Option<Nft<'_>>> {
        match &self.namespaces {
            Some(ns) => Ok(Some(Nft::locate()?.in_namespaces(ns))),
            None => Ok(None),
        }
    }

    /// `nft list table inet terok_shield` in the container; empty when it is not running.
    pub fn rules(&self) -> Result<String> {
        match self.nft()? {
            Some(nft) => nft.list_table(),
            None => Ok(String::new()),
        }
    }

    pub fn state(&self) -> ShieldState {
        classify(&self.rules().unwrap_or_default())
    }

    pub fn allow(&self, target: &str, audit: bool) -> Result<Change> {
        self.change(Action::Allow, target, audit)
    }

    pub fn deny(&self, target: &str, audit: bool) -> Result<Change> {
        self.change(Action::Deny, target, audit)
    }

    fn change(&self, action: Action, raw: &str, audit: bool) -> Result<Change> {
        let target = Target::parse(raw)?;
        let net = match &target {
            Target::Net(n) => *n,
            Target::Domain(d) => {
                return Err(Error::Setup(format!("'{d}' is a domain: live domain allow/deny needs the DNS support that is not built yet; allow or deny its addresses instead")))
            }
            Target::Localhost => return Err(Error::Setup("'localhost' cannot be allowed or denied live".into())),
        };
        let _lock = lock_bundle(&self.bundle.dir)?;
        let live = match self.nft()? {
            Some(nft) => {
                apply(&nft, action, net)?;
                true
            }
            None => false,
        };
        let mut overlay = read_tier(&self.bundle.dir, Tier::Live)?;
        upsert(&mut overlay, Entry::new(action, target));
        write_tier(&self.bundle.dir, Tier::Live, &overlay)?;
        if audit {
            let verb = if action == Action::Allow { "allowed" } else { "denied" };
            crate::audit::append(
                &self.bundle.dir,
                &self.name,
                verb,
                Some(&net.to_string()),
                Some(&format!("target={raw}")),
            );
        }
        Ok(Change { address: net.to_string(), live })
    }
}

/// The sets an address or network of `net`'s family and kind lives in.
fn sets(net: IpNet) -> (&'static str, &'static str) {
    let v6 = !net.is_ipv4();
    let is_net = !net.is_host();
    (SetTier::ProjectAllow.set_name(v6, is_net), SetTier::SecurityDeny.set_name(v6, is_net))
}

/// One transaction: take `net` out of the opposite set (nft 1.0.6 has no `destroy`, so add
/// then delete, which is a no-op when absent) and put it into the wanted one; then check
/// both sets in the kernel.
fn apply(nft: &Nft, action: Action, net: IpNet) -> Result<()> {
    let (allow_set, deny_set) = sets(net);
    let (into, out_of) = if action == Action::Allow { (allow_set, deny_set) } else { (deny_set, allow_set) };
    let e = net.to_string();
    let script = format!(
        "add element inet terok_shield {out_of} {{ {e} }}\ndelete element inet terok_shield {out_of} {{ {e} }}\nadd element inet terok_shield {into} {{ {e} }}\n"
    );
    nft.apply(&script).map_err(|err| match err {
        Error::Exec { stderr, .. } if stderr.contains("No such file or directory") => Error::Setup(
            "the container's table has no allow/deny sets (quarantined?): run 'terok-shield up' first".into(),
        ),
        other => other,
    })?;
    if !nft.has_element(into, &e)? || nft.has_element(out_of, &e)? {
        return Err(Error::Setup(format!("the change of {e} is not in force in the kernel (sets {into}, {out_of})")));
    }
    Ok(())
}
