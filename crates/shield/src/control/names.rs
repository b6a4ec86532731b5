//! Allow and deny of names, on each DNS mode: answered by the shield's resolver (told at
//! once), followed by dnsmasq (restarted with a new configuration), or resolved on the host
//! now (each address allowed or denied like a literal one).

use super::*;
use crate::dns::resolver::control::{request, Request};
use crate::dns::DnsMode;

impl Container<'_> {
    pub(super) fn change_target(&self, action: Action, raw: &str, audit: bool) -> Result<Vec<Change>> {
        let (target, ports) = terok_shield_policy::target::parse_scoped(raw)?;
        if let Some(ports) = ports {
            return match target {
                Target::Net(n) => Ok(vec![self.change_scoped_net(action, n, ports, audit)?]),
                Target::Localhost => Err(ControlError::Localhost.into()),
                Target::Domain(d) => self.change_scoped_name(action, d, ports, audit),
            };
        }
        match target {
            Target::Net(n) => Ok(vec![self.change_net(action, n, raw, audit)?]),
            Target::Localhost => Err(ControlError::Localhost.into()),
            Target::Domain(d) if self.bundle.dns_mode()? == Some(DnsMode::Resolver) => {
                self.change_answered_name(action, d, audit)
            }
            Target::Domain(d) if d.starts_with("*.") => self.change_wildcard(action, d, audit),
            Target::Domain(d) => self.change_resolved_name(action, d, raw, audit),
        }
    }

    fn record_name(&self, action: Action, domain: &str) -> Result<()> {
        let mut overlay = read_tier(&self.bundle.dir, Tier::Live)?;
        upsert(&mut overlay, Entry::new(action, Target::Domain(domain.to_string())));
        write_tier(&self.bundle.dir, Tier::Live, &overlay)?;
        Ok(())
    }

    fn audit_name(&self, action: Action, domain: &str, audit: bool) {
        if audit {
            let verb = if action == Action::Allow { "allowed" } else { "denied" };
            self.audit(Row::new(&self.name, verb).dest(domain).detail(&format!("target={domain}")));
        }
    }

    /// The resolver mode: the name (or wildcard) goes into `policy/live` and the running
    /// resolver reads it at once. An allow resolves from the next question on; a deny also
    /// takes every address learned for the name out of the learned sets and ends its flows.
    /// Nothing is resolved on the host.
    fn change_answered_name(&self, action: Action, domain: String, audit: bool) -> Result<Vec<Change>> {
        let _lock = lock_bundle(&self.bundle.dir)?;
        self.record_name(action, &domain)?;
        self.audit_name(action, &domain, audit);
        let req = if action == Action::Allow { Request::Reload } else { Request::Forget(domain.clone()) };
        let removed = match (self.is_running(), request(&self.bundle, &req)) {
            (false, _) => return Ok(vec![Change { address: "recorded".into(), in_force: false }]),
            (true, Some(Ok(removed))) => removed,
            (true, Some(Err(e))) => {
                // It could not act on the change: a deny still cuts everything learned.
                if action == Action::Deny {
                    let (nft, _) = self.running()?;
                    nft.apply(&script::flush(&SetId::all_learned()))?;
                }
                return Err(ControlError::Resolver(e).into());
            }
            (true, None) => {
                // No resolver answers: the container resolves nothing anyway. A deny must
                // still cut what may have been learned: every learned address goes.
                (self.report)(Report::Warning(format!(
                    "the resolver of {} does not answer: no name resolves until the container restarts",
                    self.name
                )));
                if action == Action::Deny {
                    let (nft, _) = self.running()?;
                    nft.apply(&script::flush(&SetId::all_learned()))?;
                }
                Vec::new()
            }
        };
        if action == Action::Allow {
            return Ok(vec![Change { address: "each address the resolver answers".into(), in_force: true }]);
        }
        if removed.is_empty() {
            return Ok(vec![Change { address: "answered as nonexistent".into(), in_force: true }]);
        }
        Ok(removed.into_iter().map(|a| Change { address: a.to_string(), in_force: true }).collect())
    }

    /// The lookup and dnsmasq modes: each address the host resolves now is allowed or denied
    /// as its own target (the audit row names the domain); on the dnsmasq modes the name
    /// itself is recorded too, so dnsmasq follows it.
    fn change_resolved_name(&self, action: Action, d: String, raw: &str, audit: bool) -> Result<Vec<Change>> {
        let exempt = explicit_allows(
            &read_tiers(&self.bundle.dir)?.effective(),
            &self.bundle.read_addresses(OVERRIDE_RESOLVED)?,
        );
        let mut done = Vec::new();
        for a in crate::dns::resolve::resolve(&d, self.report) {
            if action == Action::Allow && is_guarded(a, &exempt) {
                (self.report)(Report::Note(refused_note(a, Some(&d))));
                if audit {
                    self.audit(Row::new(&self.name, "dns_rebind").dest(&a.to_string()).detail(&format!("domain={d}")));
                }
                continue;
            }
            done.push(self.change_net(action, IpNet::host(a), raw, audit)?);
        }
        if !done.is_empty() {
            self.change_dnsmasq_name(action, d)?;
        }
        Ok(done)
    }

    /// A wildcard `*.x` can only be followed by a DNS mode that follows answers; dnsmasq then
    /// fills the allow set from every answer for a name under `x` (and, as dnsmasq matches a
    /// domain with its subdomains, for `x` itself). Nothing is resolved now.
    fn change_wildcard(&self, action: Action, d: String, audit: bool) -> Result<Vec<Change>> {
        if !self.bundle.dns_mode()?.is_some_and(|m| m.follows_answers()) {
            let mode = self.bundle.read_value(crate::bundle::layout::DNS_TIER)?.unwrap_or_default();
            return Err(crate::dns::DnsError::WildcardNeedsAnswers { name: d, mode }.into());
        }
        self.change_dnsmasq_name(action, d.clone())?;
        self.audit_name(action, &d, audit);
        let what = if action == Action::Allow { "each address dnsmasq answers" } else { "sinkholed by dnsmasq" };
        Ok(vec![Change { address: what.into(), in_force: self.is_running() }])
    }

    /// On the dnsmasq modes, record the domain itself in `policy/live` and restart the
    /// container's dnsmasq with a regenerated configuration (an nftset line for an allow, a
    /// sinkhole for a deny). The firewall is untouched meanwhile: the container is never
    /// unshielded, it only waits for DNS for a moment.
    fn change_dnsmasq_name(&self, action: Action, domain: String) -> Result<()> {
        let _lock = lock_bundle(&self.bundle.dir)?;
        if self.bundle.dns_mode()?.is_some_and(|m| !m.runs_dnsmasq()) {
            return Ok(());
        }
        self.record_name(action, &domain)?;
        if !refresh_dnsmasq_conf(&self.bundle, self.report)? {
            return Ok(());
        }
        if let Some(ns) = &self.namespaces {
            self.helper.run_in(ns, &NsOp::RestartDnsmasq { state_dir: self.bundle.dir.clone() })?;
            // dnsmasq keeps no record of which name an address was learned for: a deny by
            // name forgets every learned address and ends the flows no longer admitted; the
            // names still allowed are learned again at their next lookup.
            if action == Action::Deny && self.bundle.dns_mode()?.is_some_and(|m| m.follows_answers()) {
                let (nft, _) = self.running()?;
                nft.apply(&script::flush(&SetId::all_learned()))?;
                self.end_unadmitted_flows(&nft, ns)?;
                (self.report)(Report::Note(format!(
                    "{domain}: every address learned from DNS answers was forgotten (dnsmasq does not say which name gave which); allowed names are learned again at their next lookup"
                )));
            }
        }
        Ok(())
    }
}
