//! Allow and deny of an address or a network: one checked transaction in the kernel, then
//! the live overlay and the audit log.

use super::*;

impl Container<'_> {
    pub(super) fn change_net(&self, action: Action, net: IpNet, raw: &str, audit: bool) -> Result<Change> {
        let _lock = lock_bundle(&self.bundle.dir)?;
        if action == Action::Deny {
            // The override tier is judged before the deny tier: such a deny would change
            // nothing in the kernel while `policy/live` said it was denied.
            let overrides = crate::bundle::seeds::overrides(&self.bundle)?;
            if let Some(o) = overrides.iter().find(|o| o.overlaps(&net)) {
                return Err(ControlError::OverrideWins { element: net, by: *o }.into());
            }
        }
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
