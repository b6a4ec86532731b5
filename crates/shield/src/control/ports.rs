//! Allow and deny with a port scope (`198.51.100.7:443`, `[2001:db8::/64]:53/udp`,
//! `api.example:443`): the port-scoped sets of the project-allow and security-deny tiers,
//! or, for a name, the scope the resolver pins its answers to.

use terok_shield_policy::Ports;
use terok_shield_ruleset::scoped::canonical;
use terok_shield_ruleset::Scoped;

use super::*;
use crate::dns::resolver::control::{request, Request};
use crate::dns::DnsMode;

impl Container<'_> {
    /// An address or network on some ports: one checked transaction over netlink in the
    /// container's namespace (out of the opposite tier's set, into this one's); when the
    /// kernel refuses it as overlapping what is there, the set is loaded again whole from the
    /// bundle's policy with the change. A deny then ends the flows the table no longer
    /// admits.
    pub(super) fn change_scoped_net(&self, action: Action, net: IpNet, ports: Ports, audit: bool) -> Result<Change> {
        let _lock = lock_bundle(&self.bundle.dir)?;
        let target = Target::Net(net);
        let tiers = read_tiers(&self.bundle.dir)?;
        let effective = tiers.effective();
        if action == Action::Allow && effective.denies.contains(&target) {
            return Err(ControlError::DeniedWhole(net.to_string()).into());
        }
        if action == Action::Deny {
            let overrides = crate::bundle::seeds::overrides(&self.bundle)?;
            if let Some(o) = overrides.iter().find(|o| o.overlaps(&net)) {
                return Err(ControlError::OverrideWins { element: net, by: *o }.into());
            }
        }
        let elements = canonical(Scoped::of(net, &ports));
        let v6 = !net.is_ipv4();
        let (into, out_of) =
            (SetId::live_scoped(action == Action::Allow, v6), SetId::live_scoped(action != Action::Allow, v6));
        let mut overlay = tiers.live.clone();
        upsert(&mut overlay, Entry { ports: Some(ports.clone()), ..Entry::new(action, target.clone()) });
        let into_tier = if action == Action::Allow { Tier::ProjectAllow } else { Tier::SecurityDeny };
        let in_force = match &self.namespaces {
            Some(ns) => {
                let op = NsOp::Scoped { into, out_of, elements: elements.clone() };
                match self.helper.run_in(ns, &op) {
                    Err(Error::Control(ControlError::Overlap)) => self.reload_ports(&tiers, &overlay, into_tier)?,
                    other => other?,
                }
                // An allow that withdraws a deny loaded into the deny tier's port map (the
                // live deny before the last start or posture change, or a profile's): that
                // tier is loaded again from the policy with the change.
                if action == Action::Allow && effective.scoped_denies.contains(&(target.clone(), ports.clone())) {
                    self.reload_ports(&tiers, &overlay, Tier::SecurityDeny)?;
                }
                if action == Action::Deny {
                    let (nft, ns) = self.running()?;
                    self.end_unadmitted_flows(&nft, ns)?;
                }
                true
            }
            None => false,
        };
        write_tier(&self.bundle.dir, Tier::Live, &overlay)?;
        let shown = format!("{}:{ports}", if v6 { format!("[{net}]") } else { net.to_string() });
        if audit {
            let verb = if action == Action::Allow { "allowed" } else { "denied" };
            self.audit(Row::new(&self.name, verb).dest(&net.to_string()).detail(&format!("target={shown}")));
        }
        Ok(Change { address: shown, in_force })
    }

    /// Load the port-scoped structures of `tier` whole (its port-scoped sets, port maps and
    /// scope set), flushed and filled from the tiers once the live overlay is `overlay`, in
    /// one transaction.
    fn reload_ports(&self, tiers: &terok_shield_policy::TierSet, overlay: &[Entry], tier: Tier) -> Result<()> {
        let (nft, _) = self.running()?;
        let mut after = tiers.clone();
        after.live = overlay.to_vec();
        let seeds = terok_shield_ruleset::Seeds::default().with_ports(&after.effective());
        let load = terok_shield_ruleset::seeds::port_load(&seeds);
        let mut text = script::flush(&SetId::port_structures(tier));
        for stmt in terok_shield_ruleset::seeds::port_statements(&load, Some(tier), usize::MAX, usize::MAX) {
            text.push_str(&stmt);
            text.push('\n');
        }
        nft.apply(&text)?;
        Ok(())
    }

    /// A name on some ports, with the shield's resolver: the scope goes into `policy/live`
    /// and the resolver pins its answers to it from the next question on. A deny with ports
    /// withdraws the allow of the name with exactly those ports, and the addresses learned
    /// for the name are forgotten (the next answer pins what is left).
    pub(super) fn change_scoped_name(
        &self,
        action: Action,
        domain: String,
        ports: Ports,
        audit: bool,
    ) -> Result<Vec<Change>> {
        let shown = format!("{domain}:{ports}");
        if self.bundle.dns_mode()? != Some(DnsMode::Resolver) {
            return Err(ControlError::PortsNeedResolver(shown).into());
        }
        let _lock = lock_bundle(&self.bundle.dir)?;
        let target = Target::Domain(domain.clone());
        let tiers = read_tiers(&self.bundle.dir)?;
        if action == Action::Deny && !tiers.effective().scoped_allows.contains(&(target.clone(), ports.clone())) {
            return Err(ControlError::NameNotScoped(shown).into());
        }
        if action == Action::Allow && tiers.effective().denies.contains(&target) {
            return Err(ControlError::DeniedWhole(domain).into());
        }
        let mut overlay = tiers.live;
        upsert(&mut overlay, Entry { ports: Some(ports), ..Entry::new(action, target) });
        write_tier(&self.bundle.dir, Tier::Live, &overlay)?;
        if audit {
            let verb = if action == Action::Allow { "allowed" } else { "denied" };
            self.audit(Row::new(&self.name, verb).dest(&domain).detail(&format!("target={shown}")));
        }
        if !self.is_running() {
            return Ok(vec![Change { address: shown, in_force: false }]);
        }
        let req = if action == Action::Allow { Request::Reload } else { Request::Forget(domain) };
        match request(&self.bundle, &req) {
            Some(Ok(_)) => Ok(vec![Change { address: shown, in_force: true }]),
            Some(Err(e)) => Err(ControlError::Resolver(e).into()),
            None => Err(ControlError::Resolver("it does not answer".into()).into()),
        }
    }
}
