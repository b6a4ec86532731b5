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
use terok_shield_ruleset::{classify, NetFacts, Posture, Seeds, ShieldState};

use terok_shield_policy::rebind::is_guarded;

use crate::bundle::dns::{explicit_allows, refresh_dnsmasq_conf};
use crate::bundle::layout::{Bundle, DNS_TIER, OVERRIDE_RESOLVED};
use crate::bundle::policy::{read_tier, read_tiers, write_tier};
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
    /// A binary whose `__set-element` entry point is [`element_helper_main`] (the CLI).
    pub helper: Option<std::path::PathBuf>,
}

impl Container {
    pub fn open(state_root: &std::path::Path, name: &str) -> Result<Container> {
        let bundle = container::locate(state_root, name)?;
        let namespaces = match container::running_pid(&bundle) {
            Some(pid) => Some(Namespaces::of(pid)?),
            None => None,
        };
        Ok(Container { name: name.to_string(), bundle, namespaces, helper: std::env::current_exe().ok() })
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

    fn running_nft(&self) -> Result<Nft<'_>> {
        self.nft()?.ok_or_else(|| Error::Setup(format!("container '{}' is not running", self.name)))
    }

    /// Switch the posture (ruleset.md §6.5): rebuild the table from the bundle's facts,
    /// re-seed from its policy files, carry DNS-learned addresses over (never denied ones),
    /// verify.
    pub fn set_posture(&self, posture: Posture, audit: bool) -> Result<()> {
        let nft = self.running_nft()?;
        let _lock = lock_bundle(&self.bundle.dir)?;
        let facts = facts(&self.bundle)?;
        let learned: Vec<(&str, Vec<IpNet>)> = if posture == Posture::Quarantine {
            Vec::new()
        } else {
            ["t40_dns_v4", "t40_dns_v6"].into_iter().map(|s| Ok((s, nft.set_elements(s)?))).collect::<Result<_>>()?
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
            Error::Setup(m) if m.starts_with("ruleset verification failed") => {
                Error::Setup(format!("{} {m}", posture_word(posture)))
            }
            other => other,
        })?;
        if posture == Posture::Quarantine {
            if let (Some(ns), Some(helper)) = (&self.namespaces, &self.helper) {
                kill_flows(ns, helper, &[])?;
            }
        }
        for (set, elements) in learned {
            let keep: Vec<IpNet> = elements.into_iter().filter(|e| !denied.iter().any(|d| d.contains(e))).collect();
            nft.add_elements(set, &keep)?;
        }
        if audit {
            let (action, detail) = match posture {
                Posture::Up => ("shield_up", None),
                Posture::Down => ("shield_down", None),
                Posture::Disengaged => ("shield_down", Some("disengaged=True")),
                Posture::Quarantine => ("shield_quarantine", None),
            };
            crate::audit::append(&self.bundle.dir, &self.name, action, None, detail);
        }
        Ok(())
    }

    /// Forget DNS-learned allow state: flush the learned sets in one transaction.
    pub fn reset(&self, audit: bool) -> Result<()> {
        let nft = self.running_nft()?;
        let _lock = lock_bundle(&self.bundle.dir)?;
        nft.apply("flush set inet terok_shield t40_dns_v4\nflush set inet terok_shield t40_dns_v6\n").map_err(|e| {
            match e {
                Error::Exec { stderr, .. } if stderr.contains("No such file or directory") => Error::Setup(
                    "the container's table has no allow sets (quarantined?): run 'terok-shield up' first".into(),
                ),
                other => other,
            }
        })?;
        if audit {
            crate::audit::append(&self.bundle.dir, &self.name, "shield_reset", None, None);
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
            Target::Localhost => Err(Error::Setup("'localhost' cannot be allowed or denied live".into())),
            Target::Domain(d) if d.starts_with("*.") => self.change_wildcard(action, d, audit),
            Target::Domain(d) => {
                let exempt = explicit_allows(
                    &read_tiers(&self.bundle.dir)?.effective(),
                    &self.bundle.read_addresses(OVERRIDE_RESOLVED)?,
                );
                let mut done = Vec::new();
                for a in crate::dns::resolve::resolve(&d) {
                    if action == Action::Allow && is_guarded(a, &exempt) {
                        eprintln!("{}", crate::bundle::dns::refused_note(a, Some(&d)));
                        if audit {
                            crate::audit::append(
                                &self.bundle.dir,
                                &self.name,
                                "dns_rebind",
                                Some(&a.to_string()),
                                Some(&format!("domain={d}")),
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

    /// A wildcard `*.x` can only be followed by the live tier's dnsmasq, which then fills the
    /// allow set from every answer for a name under `x` (and, as dnsmasq matches a domain
    /// with its subdomains, for `x` itself). Nothing is resolved now.
    fn change_wildcard(&self, action: Action, d: String, audit: bool) -> Result<Vec<Change>> {
        let tier = self.bundle.read_value(DNS_TIER)?.unwrap_or_default();
        if crate::dns::DnsTier::parse(&tier) != Some(crate::dns::DnsTier::DnsmasqLive) {
            return Err(Error::Setup(format!(
                "'{d}': wildcard entries need live DNS resolution, which the {tier} tier does not do; name the hosts instead"
            )));
        }
        self.change_domain(action, d.clone())?;
        if audit {
            let verb = if action == Action::Allow { "allowed" } else { "denied" };
            crate::audit::append(&self.bundle.dir, &self.name, verb, Some(&d), Some(&format!("target={d}")));
        }
        let what = if action == Action::Allow { "each address dnsmasq answers" } else { "sinkholed by dnsmasq" };
        Ok(vec![Change { address: what.into(), live: self.namespaces.is_some() }])
    }

    /// On the dnsmasq tiers, record the domain itself in `policy/live` and restart the
    /// container's dnsmasq with a regenerated configuration (an nftset line for an allow, a
    /// sinkhole for a deny). The firewall is untouched meanwhile: the container is never
    /// unshielded, it only waits for DNS for a moment.
    fn change_domain(&self, action: Action, domain: String) -> Result<()> {
        let _lock = lock_bundle(&self.bundle.dir)?;
        let tier = self.bundle.read_value(DNS_TIER)?;
        if tier.as_deref().and_then(crate::dns::DnsTier::parse).is_some_and(|t| !t.runs_dnsmasq()) {
            return Ok(());
        }
        let mut overlay = read_tier(&self.bundle.dir, Tier::Live)?;
        upsert(&mut overlay, Entry::new(action, Target::Domain(domain)));
        write_tier(&self.bundle.dir, Tier::Live, &overlay)?;
        if !refresh_dnsmasq_conf(&self.bundle)? {
            return Ok(());
        }
        if let (Some(ns), Some(helper)) = (&self.namespaces, &self.helper) {
            let dir = self.bundle.dir.display().to_string();
            run_helper(ns, helper, [DNSMASQ_HELPER.to_string(), dir])?;
        }
        Ok(())
    }

    fn change_net(&self, action: Action, net: IpNet, raw: &str, audit: bool) -> Result<Change> {
        let target = Target::Net(net);
        let _lock = lock_bundle(&self.bundle.dir)?;
        let live = match (&self.namespaces, &self.helper) {
            (Some(ns), Some(helper)) if net.is_host() => {
                apply_by_netlink(ns, helper, action, net)?;
                true
            }
            _ => match self.nft()? {
                Some(nft) => {
                    apply(&nft, action, net)?;
                    if let (Action::Deny, Some(ns), Some(helper)) = (action, &self.namespaces, &self.helper) {
                        kill_flows(ns, helper, &[net])?;
                    }
                    true
                }
                None => false,
            },
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

/// One transaction: take `net` out of the opposite set when it is there, and put it into
/// the wanted one; then check the wanted set in the kernel. (A delete makes the kernel wait
/// for an RCU grace period, 8-12 ms here, so it is sent only when needed; the bundle lock
/// keeps other verbs from changing the sets in between.)
fn apply(nft: &Nft, action: Action, net: IpNet) -> Result<()> {
    let (allow_set, deny_set) = sets(net);
    let (into, out_of) = if action == Action::Allow { (allow_set, deny_set) } else { (deny_set, allow_set) };
    let e = net.to_string();
    let mut script = String::new();
    if nft.has_element(out_of, &e)? {
        script.push_str(&format!("delete element inet terok_shield {out_of} {{ {e} }}\n"));
    }
    script.push_str(&format!("add element inet terok_shield {into} {{ {e} }}\n"));
    nft.apply(&script).map_err(|err| match err {
        Error::Exec { stderr, .. } if stderr.contains("No such file or directory") => Error::Setup(
            "the container's table has no allow/deny sets (quarantined?): run 'terok-shield up' first".into(),
        ),
        other => other,
    })?;
    // The transaction took it out of the opposite set or failed as a whole; check that it
    // is in the wanted one.
    if !nft.has_element(into, &e)? {
        return Err(Error::Setup(format!("the change of {e} is not in force in the kernel (set {into})")));
    }
    Ok(())
}

/// A single address: one short-lived helper process in the container's namespaces checks,
/// moves and verifies it over netlink (hash lookups, whatever the sets' sizes).
fn apply_by_netlink(ns: &Namespaces, helper: &std::path::Path, action: Action, net: IpNet) -> Result<()> {
    let (allow_set, deny_set) = sets(net);
    let (into, out_of) = if action == Action::Allow { (allow_set, deny_set) } else { (deny_set, allow_set) };
    run_helper(ns, helper, [ELEMENT_HELPER.to_string(), into.to_string(), out_of.to_string(), net.to_string()])
}

/// Run the helper binary with `args` inside the container's namespaces; its stderr is the
/// error message.
fn run_helper(ns: &Namespaces, helper: &std::path::Path, args: impl IntoIterator<Item = String>) -> Result<()> {
    let cmd = crate::exec::Cmd::new(helper, std::time::Duration::from_secs(10)).args(args).in_namespaces(ns);
    cmd.run_ok().map(|_| ()).map_err(|e| match e {
        Error::Exec { stderr, .. } => Error::Setup(stderr),
        other => other,
    })
}

/// The argv[1] that makes a binary run [`element_helper_main`].
pub const ELEMENT_HELPER: &str = "__set-element";
/// The argv[1] that makes a binary run [`kill_flows_main`].
pub const KILL_FLOWS_HELPER: &str = "__kill-flows";
/// The argv[1] that makes a binary run [`dnsmasq_helper_main`].
pub const DNSMASQ_HELPER: &str = "__dnsmasq-restart";

/// `<binary> __dnsmasq-restart <state_dir>`, run inside a container's namespaces: stop its
/// dnsmasq and start it again with the bundle's current configuration.
pub fn dnsmasq_helper_main(args: &[String]) -> i32 {
    let run = || -> Result<()> {
        let [dir] = args else { return Err(Error::Setup("usage: __dnsmasq-restart <state_dir>".into())) };
        let bundle = Bundle::new(dir);
        if !bundle.dir.is_absolute() {
            return Err(Error::Setup(format!("{dir}: not an absolute path")));
        }
        let binary = crate::dns::dnsmasq::launch_binary(&bundle, std::env::var_os("PATH").as_deref())?;
        crate::dns::dnsmasq::restart(&bundle, &binary).map(|_| ())
    };
    match run() {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("{e}");
            1
        }
    }
}

/// `<binary> __kill-flows [NET…]`, run inside a container's namespaces: delete the
/// conntrack entries to those networks (all entries when none is given).
pub fn kill_flows_main(args: &[String]) -> i32 {
    let nets: std::result::Result<Vec<IpNet>, _> = args.iter().map(|a| a.parse::<IpNet>()).collect();
    let result = nets
        .map_err(Error::from)
        .and_then(|n| crate::conntrack::kill_flows(if n.is_empty() { None } else { Some(&n) }));
    match result {
        Ok(_) => 0,
        Err(e) => {
            eprintln!("{e}");
            1
        }
    }
}

/// End live flows in the container through the helper binary.
fn kill_flows(ns: &Namespaces, helper: &std::path::Path, nets: &[IpNet]) -> Result<()> {
    run_helper(ns, helper, std::iter::once(KILL_FLOWS_HELPER.to_string()).chain(nets.iter().map(IpNet::to_string)))
}

/// `<binary> __set-element <into> <out_of> <address>`, run inside a container's namespaces:
/// take the address out of `out_of` when it is there, put it into `into` (one
/// transaction), and check that it is there. Returns the exit code; errors go to stderr.
pub fn element_helper_main(args: &[String]) -> i32 {
    let run = || -> Result<()> {
        let [into, out_of, addr] = args else {
            return Err(Error::Setup("usage: __set-element <into> <out_of> <address>".into()));
        };
        let address: std::net::IpAddr =
            addr.parse().map_err(|_| Error::Target(terok_shield_policy::TargetError::InvalidIp(addr.clone())))?;
        let mut nl = crate::nftnl::Loader::open()?;
        if !nl.has_set(into)? {
            return Err(Error::Setup(
                "the container's table has no allow/deny sets (quarantined?): run 'terok-shield up' first".into(),
            ));
        }
        let present = nl.has(out_of, address)?;
        nl.move_to(present.then_some(out_of.as_str()), into, address)?;
        if !nl.has(into, address)? {
            return Err(Error::Setup(format!("the change of {address} is not in force in the kernel (set {into})")));
        }
        if into.starts_with("t20_") {
            crate::conntrack::kill_flows(Some(&[IpNet::host(address)]))?;
        }
        Ok(())
    };
    match run() {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("{e}");
            1
        }
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

/// The network facts recorded at prepare: upstream DNS, loopback ports, gateways of the
/// recorded network mode.
fn facts(bundle: &Bundle) -> Result<NetFacts> {
    use crate::bundle::layout::{LOOPBACK_PORTS, NETWORK_MODE, UPSTREAM_DNS};
    let dns = bundle.read_value(UPSTREAM_DNS)?.and_then(|v| v.parse().ok()).ok_or_else(|| {
        Error::Setup(format!(
            "Cannot determine DNS for container: {} holds no address; re-create the container",
            bundle.path(UPSTREAM_DNS).display()
        ))
    })?;
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
