//! What the helper makes of what it sees: blocked packets and refused names become audit
//! rows (one per key per 30 s), `watch` events (each one) and hub `pending` events (one per
//! key per 30 s, marked only when the hub took it).

use std::net::IpAddr;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};
use terok_shield_ruleset::constants::PREFIX_BLOCKED;

use super::ReaderSpec;
use crate::audit;
use crate::bundle::layout::DNSMASQ_LOG;
use crate::bundle::Bundle;
use crate::dns::resolver::{Event, Resolver};
use crate::kernel::nflog;
use crate::observe::budget::{Budget, ROWS_PER_MINUTE};
use crate::observe::dedup::Window;
use crate::observe::dnslog::{DnsLog, Line};
use crate::observe::dossier;
use crate::observe::event::{self, Fields};
use crate::observe::fanout::Fanout;
use crate::observe::hub::Emitter;
use crate::report::Reporter;

const WINDOW: Duration = Duration::from_secs(30);

/// The kinds of audit row the helper writes, each with its own budget.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Blocked = 0,
    Refused = 1,
    Rebind = 2,
}

impl Kind {
    const ALL: [Kind; 3] = [Kind::Blocked, Kind::Refused, Kind::Rebind];

    /// The `action` of its rows.
    fn action(self) -> &'static str {
        match self {
            Kind::Blocked => "blocked",
            Kind::Refused => "dns_refused",
            Kind::Rebind => "dns_rebind",
        }
    }
}

/// `dnsmasq.log` is emptied once the helper has read past this many bytes.
pub const DNSMASQ_LOG_MAX: u64 = 4 << 20;

pub(super) struct Reader<'a> {
    a: &'a ReaderSpec,
    report: Reporter<'a>,
    emitter: Emitter,
    dns: DnsLog,
    audit: Window,
    budgets: [Budget; 3],
    wire: Window,
    dossier: Map<String, Value>,
    meta_path: Option<PathBuf>,
    requests: u64,
    fanout: Option<Fanout>,
}

impl<'a> Reader<'a> {
    pub fn new(
        a: &'a ReaderSpec,
        bundle: &Bundle,
        report: Reporter<'a>,
        emitter: Emitter,
        fanout: Option<Fanout>,
    ) -> Self {
        let mut r = Reader {
            a,
            report,
            emitter,
            dns: DnsLog::from_start(a.state_dir.join(DNSMASQ_LOG)),
            audit: Window::new(WINDOW),
            budgets: Kind::ALL.map(|_| Budget::new(Instant::now())),
            wire: Window::new(WINDOW),
            dossier: dossier::from_annotations(
                a.annotations.iter().filter_map(|(k, v)| Some((k.as_str(), v.as_str()?))),
            ),
            meta_path: bundle.meta_path(),
            requests: 0,
            fanout,
        };
        r.dns.catch_up();
        r
    }

    pub fn send(&mut self, line: String) -> bool {
        self.emitter.send(&line, self.report)
    }

    pub fn fanout_fd(&self) -> Option<BorrowedFd<'_>> {
        self.fanout.as_ref().map(|f| f.listener.as_fd())
    }

    pub fn accept_subscribers(&mut self) {
        if let Some(f) = self.fanout.as_mut() {
            f.accept();
        }
    }

    pub fn close(&self) {
        if let Some(f) = &self.fanout {
            f.remove();
        }
    }

    /// Write one audit row, within its kind's budget (a refused row is counted, not
    /// written): a flood of refused names cannot crowd out blocked connections, nor the
    /// other way round.
    fn row(&mut self, kind: Kind, row: &Fields) {
        if self.budgets[kind as usize].take(Instant::now()) {
            audit::append_line(&self.a.state_dir, &row.clone().line(), self.report);
        }
    }

    /// Once a loop round: a `suppressed` row per kind whose budget left rows out.
    pub fn tick(&mut self) {
        let now = Instant::now();
        for kind in Kind::ALL {
            let Some(n) = self.budgets[kind as usize].report_due(now) else { continue };
            let detail = format!("{n} {} rows left out (at most {ROWS_PER_MINUTE} a minute)", kind.action());
            let line = Fields::new()
                .str("ts", &audit::now_utc())
                .str("container", &self.a.container)
                .str("action", "suppressed")
                .str("detail", &detail)
                .int("count", n)
                .line();
            audit::append_line(&self.a.state_dir, &line, self.report);
        }
    }

    /// Rebind refusals dnsmasq logged since the last look: one audit row each. The log is
    /// kept under [`DNSMASQ_LOG_MAX`] (dnsmasq logs every query).
    pub fn rebinds(&mut self) {
        let lines = self.dns.poll();
        self.dns.cap(DNSMASQ_LOG_MAX);
        for line in lines {
            if let Line::Rebind { domain } = line {
                self.row(
                    Kind::Rebind,
                    &Fields::new()
                        .str("ts", &audit::now_utc())
                        .str("container", &self.a.container)
                        .str("action", Kind::Rebind.action())
                        .str("domain", &domain)
                        .str("detail", "answer in a guarded range refused (NXDOMAIN)"),
                );
            }
        }
    }

    /// The name a destination came from: the resolver's answers, else dnsmasq's log.
    fn domain(&mut self, dest: &IpAddr, resolver: Option<&Resolver>, refreshed: &mut bool) -> Option<String> {
        if let Some(d) = resolver.and_then(|r| r.domain_of(dest)) {
            return Some(d.to_string());
        }
        if self.dns.domain_of(dest).is_none() && !*refreshed {
            *refreshed = true;
            self.rebinds();
        }
        self.dns.domain_of(dest).map(str::to_string)
    }

    /// Both windows' verdicts for `key`; `None` when neither is due.
    fn due(&self, key: &str, now: Instant) -> Option<(bool, bool)> {
        let (audit_due, wire_due) = (self.audit.due(key, now), self.wire.due(key, now));
        (audit_due || wire_due).then_some((audit_due, wire_due))
    }

    /// Send a hub `pending` event; the window is marked only when the hub took it.
    fn pending(&mut self, key: &str, now: Instant, fields: Fields, dossier: &Map<String, Value>) {
        self.requests += 1;
        let id = format!("{}:{}", self.a.container, self.requests);
        let line = Fields::new()
            .str("type", "pending")
            .str("container", &self.a.container)
            .str("id", &id)
            .merge(fields)
            .map("dossier", dossier)
            .str("ts", &audit::now_utc_micros())
            .line();
        if self.send(line) {
            self.wire.mark(key, now);
        }
    }

    pub fn packets(&mut self, packets: &[nflog::Logged], resolver: Option<&Resolver>) {
        let ts = audit::now_utc();
        let mut refreshed = false;
        for p in packets {
            let domain = self.domain(&p.dest, resolver, &mut refreshed);
            if let Some(f) = self.fanout.as_mut() {
                f.send(&event::nflog_event(&ts, &self.a.container, p, domain.as_deref()).line());
            }
            if !p.prefix.contains(PREFIX_BLOCKED) || is_multicast_noise(&p.dest) {
                continue;
            }
            let key = domain.clone().unwrap_or_else(|| p.dest.to_string());
            let now = Instant::now();
            let Some((audit_due, wire_due)) = self.due(&key, now) else { continue };
            // Re-read for each event (an orchestrator may update it), not for each packet.
            let dossier = dossier::overlay(&self.dossier, self.meta_path.as_deref());
            if audit_due {
                self.row(Kind::Blocked, &event::blocked_row(&ts, &self.a.container, p, domain.as_deref(), &dossier));
                self.audit.mark(&key, now);
            }
            if wire_due {
                let fields = Fields::new()
                    .str("dest", &p.dest.to_string())
                    .int("port", p.port.into())
                    .int("proto", p.proto.into())
                    .always("domain", domain.as_deref().unwrap_or(""));
                self.pending(&key, now, fields, &dossier);
            }
        }
    }

    /// What the resolver did: refused names (one row, one hub event per name per window,
    /// a watch event each), rebind refusals (a row each), failures (a warning).
    pub fn dns_events(&mut self, events: Vec<Event>) {
        let ts = audit::now_utc();
        for e in events {
            match e {
                Event::Refused { name, qtype, denied } => {
                    if let Some(f) = self.fanout.as_mut() {
                        let line = event::watch(&ts, "dns", "blocked_query", &self.a.container)
                            .str("domain", &name)
                            .str("query_type", &qtype)
                            .line();
                        f.send(&line);
                    }
                    let key = format!("dns:{name}");
                    let now = Instant::now();
                    let Some((audit_due, wire_due)) = self.due(&key, now) else { continue };
                    let dossier = dossier::overlay(&self.dossier, self.meta_path.as_deref());
                    if audit_due {
                        let detail =
                            if denied { format!("{qtype} denied") } else { format!("{qtype} not on the allowlist") };
                        self.row(
                            Kind::Refused,
                            &Fields::new()
                                .str("ts", &ts)
                                .str("container", &self.a.container)
                                .str("action", Kind::Refused.action())
                                .str("domain", &name)
                                .str("detail", &detail)
                                .map("dossier", &dossier),
                        );
                        self.audit.mark(&key, now);
                    }
                    // Only a name the policy grammar reads as a plain domain is offered for
                    // clearance: a "name" such as `0.0.0.0/0` (one label can hold a slash)
                    // would become `allow C 0.0.0.0/0`.
                    let clearable = matches!(terok_shield_policy::Target::parse(&name), Ok(terok_shield_policy::Target::Domain(d)) if !d.starts_with("*."));
                    if wire_due && !denied && clearable {
                        let fields = Fields::new()
                            .always("dest", "")
                            .int("port", 0)
                            .int("proto", 0)
                            .always("domain", &name)
                            .str("query_type", &qtype);
                        self.pending(&key, now, fields, &dossier);
                    }
                }
                Event::Rebind { name, addr } => self.row(
                    Kind::Rebind,
                    &Fields::new()
                        .str("ts", &ts)
                        .str("container", &self.a.container)
                        .str("action", Kind::Rebind.action())
                        .str("dest", &addr.to_string())
                        .str("domain", &name)
                        .str("detail", "answer in a guarded range refused"),
                ),
                Event::Failed(msg) => (self.report)(crate::report::Report::Warning(msg)),
            }
        }
    }
}

/// `ff02::/16`: IPv6 link-local multicast (neighbour discovery, MLD), never a destination
/// anyone wants cleared.
fn is_multicast_noise(dest: &IpAddr) -> bool {
    matches!(dest, IpAddr::V6(v6) if v6.segments()[0] == 0xff02)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multicast_noise() {
        assert!(is_multicast_noise(&"ff02::16".parse().unwrap_or(IpAddr::from([0u8; 4]))));
        assert!(!is_multicast_noise(&"2001:db8::1".parse().unwrap_or(IpAddr::from([0u8; 4]))));
    }
}
