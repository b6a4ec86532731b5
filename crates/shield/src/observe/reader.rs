//! The NFLOG reader (observe.md §4): one small process per container, started by the bridge
//! hook in the container's network namespace. It binds NFLOG group 100 there, and for each
//! destination the firewall blocked writes one `blocked` audit row and sends one `pending`
//! event to the clearance hub per 30 s window. It also writes `dns_rebind` audit rows for
//! answers dnsmasq refused, and fans every logged packet out to `watch` and
//! `simple-clearance` through `<state_dir>/reader.sock`.
//!
//! It runs as `<helper> reader <state_dir> <container> [--emit=socket|json]
//! [--annotations=<json>] [--container-id=<id>] [--hub-socket=<path>] [--netns-pid=<pid>]`
//! ([`ReaderSpec`]); the helper binary parses that and calls [`run`].

use std::net::IpAddr;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use serde_json::{Map, Value};
use terok_shield_ruleset::constants::{NFLOG_GROUP, PREFIX_BLOCKED};

use super::dedup::Window;
use super::dnslog::{DnsLog, Line};
use super::dossier;
use super::event::{self, Fields};
use super::fanout::Fanout;
use super::hub::Emitter;
use super::ObserveError;
use crate::audit;
use crate::bundle::layout::DNSMASQ_LOG;
use crate::kernel::{netns, nflog};
use crate::report::{Report, Reporter};

const WINDOW: Duration = Duration::from_secs(30);

/// What a reader is started with: its command line, as the bridge hook writes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReaderSpec {
    pub state_dir: PathBuf,
    /// The name audit rows and events carry.
    pub container: String,
    /// `--emit=json`: events as lines to the caller instead of the hub socket.
    pub json: bool,
    pub annotations: Map<String, Value>,
    pub container_id: String,
    pub hub_socket: Option<PathBuf>,
    /// Enter this process's network namespace first.
    pub netns_pid: Option<u32>,
}

impl ReaderSpec {
    /// The arguments after `reader`.
    pub fn args(&self) -> Vec<String> {
        let mut v = vec![
            self.state_dir.display().to_string(),
            self.container.clone(),
            format!("--emit={}", if self.json { "json" } else { "socket" }),
            format!("--annotations={}", Value::Object(self.annotations.clone())),
            format!("--container-id={}", self.container_id),
        ];
        if let Some(h) = &self.hub_socket {
            v.push(format!("--hub-socket={}", h.display()));
        }
        if let Some(pid) = self.netns_pid {
            v.push(format!("--netns-pid={pid}"));
        }
        v
    }

    /// `argv` (a process's command line) is a socket-emitting reader of `state_dir`:
    /// `<helper> reader <state_dir> <container> … --emit=socket …`.
    pub fn is_socket_reader_of(argv: &[Vec<u8>], state_dir: &Path) -> bool {
        argv.len() >= 4
            && argv[1] == b"reader"
            && argv[2] == state_dir.as_os_str().as_encoded_bytes()
            && argv[4..].iter().any(|a| a == b"--emit=socket")
    }
}

struct Reader<'a> {
    a: &'a ReaderSpec,
    report: Reporter<'a>,
    emitter: Emitter,
    dns: DnsLog,
    audit: Window,
    wire: Window,
    dossier: Map<String, Value>,
    meta_path: Option<PathBuf>,
    requests: u64,
    fanout: Option<Fanout>,
}

/// Run the reader of `a` until `stop` is readable (the caller's SIGTERM/SIGINT descriptor)
/// or the container is gone. Events go to `emitter`; warnings to `report`.
pub fn run(a: &ReaderSpec, emitter: Emitter, stop: BorrowedFd, report: Reporter) -> crate::error::Result<()> {
    // The container, by its network namespace: the reader ends when that is gone, also when
    // no poststop comes (a start that failed after this hook, a deleted bundle).
    let container_ns = a.netns_pid.map(|pid| (pid, netns::ns_inode(&netns::net_ns_path(pid))));
    if let Some(pid) = a.netns_pid {
        netns::enter_net_of(pid)?;
    }
    let gone = || {
        !a.state_dir.is_dir() || container_ns.is_some_and(|(pid, ino)| netns::ns_inode(&netns::net_ns_path(pid)) != ino)
    };
    let nl = match nflog::open(NFLOG_GROUP) {
        Ok(fd) => fd,
        Err(e) => {
            // observe.md §4.3: no NFLOG, no events; the container is not affected.
            report(Report::Warning(format!("{e}; no blocked connections will be reported")));
            return Ok(());
        }
    };
    let meta_path = crate::bundle::Bundle::new(&a.state_dir).meta_path();
    let mut r = Reader {
        a,
        report,
        emitter,
        dns: DnsLog::from_start(a.state_dir.join(DNSMASQ_LOG)),
        audit: Window::new(WINDOW),
        wire: Window::new(WINDOW),
        dossier: dossier::from_annotations(a.annotations.iter().filter_map(|(k, v)| Some((k.as_str(), v.as_str()?)))),
        meta_path,
        requests: 0,
        fanout: Fanout::bind(&a.state_dir).map_err(|e| report(Report::Warning(e.to_string()))).ok(),
    };
    r.dns.catch_up();
    r.send(Fields::new().str("type", "container_started").str("container", &a.container).line());
    let mut buf = vec![0u8; 65536];
    let reason = loop {
        let (nl_ready, sig_ready, fan_ready) = {
            let mut fds = vec![PollFd::new(nl.as_fd(), PollFlags::POLLIN), PollFd::new(stop, PollFlags::POLLIN)];
            if let Some(f) = &r.fanout {
                fds.push(PollFd::new(f.listener.as_fd(), PollFlags::POLLIN));
            }
            match poll(&mut fds, PollTimeout::from(1000u16)) {
                Ok(_) | Err(nix::Error::EINTR) => {}
                Err(e) => return Err(ObserveError::Poll(e).into()),
            }
            let ready = |i: usize| fds.get(i).and_then(|f| f.revents()).is_some_and(|ev| !ev.is_empty());
            (ready(0), ready(1), ready(2))
        };
        if sig_ready {
            break "poststop";
        }
        if gone() {
            break "eof";
        }
        if fan_ready {
            if let Some(f) = r.fanout.as_mut() {
                f.accept();
            }
        }
        if nl_ready {
            let packets = nflog::drain(&nl, &mut buf);
            r.packets(&packets);
        }
        r.rebinds();
    };
    r.send(Fields::new().str("type", "container_exited").str("container", &a.container).str("reason", reason).line());
    if let Some(f) = &r.fanout {
        f.remove();
    }
    Ok(())
}

impl Reader<'_> {
    fn send(&mut self, line: String) -> bool {
        self.emitter.send(&line, self.report)
    }

    /// Rebind refusals dnsmasq logged since the last look: one audit row each.
    fn rebinds(&mut self) {
        for line in self.dns.poll() {
            if let Line::Rebind { domain } = line {
                let row = Fields::new()
                    .str("ts", &audit::now_utc())
                    .str("container", &self.a.container)
                    .str("action", "dns_rebind")
                    .str("domain", &domain)
                    .str("detail", "answer in a guarded range refused (NXDOMAIN)")
                    .line();
                audit::append_line(&self.a.state_dir, &row, self.report);
            }
        }
    }

    fn domain(&mut self, dest: &IpAddr, refreshed: &mut bool) -> Option<String> {
        if self.dns.domain_of(dest).is_none() && !*refreshed {
            *refreshed = true;
            self.rebinds();
        }
        self.dns.domain_of(dest).map(str::to_string)
    }

    fn packets(&mut self, packets: &[nflog::Logged]) {
        let ts = audit::now_utc();
        let mut refreshed = false;
        for p in packets {
            let domain = self.domain(&p.dest, &mut refreshed);
            if let Some(f) = self.fanout.as_mut() {
                f.send(&event::nflog_event(&ts, &self.a.container, p, domain.as_deref()).line());
            }
            if !p.prefix.contains(PREFIX_BLOCKED) || is_multicast_noise(&p.dest) {
                continue;
            }
            let key = domain.clone().unwrap_or_else(|| p.dest.to_string());
            let now = Instant::now();
            let (audit_due, wire_due) = (self.audit.due(&key, now), self.wire.due(&key, now));
            if !audit_due && !wire_due {
                continue;
            }
            // Re-read for each event (an orchestrator may update it), not for each packet.
            let dossier = dossier::overlay(&self.dossier, self.meta_path.as_deref());
            if audit_due {
                let row = event::blocked_row(&ts, &self.a.container, p, domain.as_deref(), &dossier).line();
                audit::append_line(&self.a.state_dir, &row, self.report);
                self.audit.mark(&key, now);
            }
            if wire_due {
                self.requests += 1;
                let id = format!("{}:{}", self.a.container, self.requests);
                let pending = Fields::new()
                    .str("type", "pending")
                    .str("container", &self.a.container)
                    .str("id", &id)
                    .str("dest", &p.dest.to_string())
                    .int("port", p.port.into())
                    .int("proto", p.proto.into())
                    .always("domain", domain.as_deref().unwrap_or(""))
                    .map("dossier", &dossier)
                    .str("ts", &audit::now_utc_micros());
                if self.send(pending.line()) {
                    self.wire.mark(&key, now);
                }
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
    fn arguments_and_recognition() {
        let spec = ReaderSpec {
            state_dir: "/s/web".into(),
            container: "web".into(),
            annotations: serde_json::from_str(r#"{"dossier.x":"1"}"#).unwrap_or_default(),
            container_id: "0123456789ab".into(),
            netns_pid: Some(42),
            ..ReaderSpec::default()
        };
        let args = spec.args();
        assert_eq!(args[..3], ["/s/web", "web", "--emit=socket"]);
        assert!(
            args.contains(&"--netns-pid=42".to_string())
                && args.contains(&r#"--annotations={"dossier.x":"1"}"#.to_string())
        );
        let argv: Vec<Vec<u8>> = ["/h/terok-shield-hook", "reader"]
            .iter()
            .map(|s| s.as_bytes().to_vec())
            .chain(args.iter().map(|a| a.as_bytes().to_vec()))
            .collect();
        assert!(ReaderSpec::is_socket_reader_of(&argv, Path::new("/s/web")));
        assert!(!ReaderSpec::is_socket_reader_of(&argv, Path::new("/s/other")));
        let json = ReaderSpec { json: true, ..spec }.args();
        let argv: Vec<Vec<u8>> = ["h", "reader"]
            .iter()
            .map(|s| s.as_bytes().to_vec())
            .chain(json.iter().map(|a| a.as_bytes().to_vec()))
            .collect();
        assert!(!ReaderSpec::is_socket_reader_of(&argv, Path::new("/s/web")));
        assert!(is_multicast_noise(&"ff02::16".parse().unwrap_or(IpAddr::from([0u8; 4]))));
        assert!(!is_multicast_noise(&"2001:db8::1".parse().unwrap_or(IpAddr::from([0u8; 4]))));
    }
}
