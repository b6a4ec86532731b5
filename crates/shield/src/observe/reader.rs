//! The NFLOG reader (observe.md §4): one small process per container, started by the bridge
//! hook in the container's network namespace. It binds NFLOG group 100 there, and for each
//! destination the firewall blocked writes one `blocked` audit row and sends one `pending`
//! event to the clearance hub per 30 s window. It also writes `dns_rebind` audit rows for
//! answers dnsmasq refused, and fans every logged packet out to `watch` and
//! `simple-clearance` through `<state_dir>/reader.sock`.
//!
//! `terok-shield-hook reader <state_dir> <container> [--emit=socket|json]
//! [--annotations=<json>] [--container-id=<id>] [--hub-socket=<path>] [--netns-pid=<pid>]`

use std::net::IpAddr;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use serde_json::{Map, Value};
use terok_shield_ruleset::constants::{NFLOG_GROUP, PREFIX_BLOCKED};

use super::dedup::Window;
use super::dnslog::{DnsLog, Line};
use super::event::{self, Fields};
use super::fanout::Fanout;
use super::hub::{self, Emitter};
use super::{dossier, nflog};
use crate::audit;
use crate::bundle::layout::{DNSMASQ_LOG, META_PATH};

const WINDOW: Duration = Duration::from_secs(30);

/// The reader's command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Args {
    pub state_dir: PathBuf,
    /// The name audit rows and events carry.
    pub container: String,
    /// `--emit=json`: events on stdout instead of the hub socket.
    pub json: bool,
    pub annotations: Map<String, Value>,
    pub container_id: String,
    pub hub_socket: Option<PathBuf>,
    /// Enter this process's network namespace first.
    pub netns_pid: Option<u32>,
}

impl Args {
    pub fn parse(args: &[String]) -> Result<Args, String> {
        let mut positional = Vec::new();
        let mut a = Args::default();
        for arg in args {
            match arg.split_once('=') {
                Some(("--emit", "json")) => a.json = true,
                Some(("--emit", "socket")) => a.json = false,
                Some(("--emit", other)) => return Err(format!("--emit must be socket or json, not {other:?}")),
                Some(("--annotations", v)) => {
                    a.annotations = match serde_json::from_str::<Value>(if v.is_empty() { "{}" } else { v }) {
                        Ok(Value::Object(m)) => m,
                        _ => {
                            eprintln!("warning: --annotations is not a JSON object; ignored");
                            Map::new()
                        }
                    }
                }
                Some(("--container-id", v)) => a.container_id = v.to_string(),
                Some(("--hub-socket", v)) => {
                    a.hub_socket = Some(PathBuf::from(v)).filter(|p| !p.as_os_str().is_empty())
                }
                Some(("--netns-pid", v)) => {
                    a.netns_pid = Some(v.parse().map_err(|_| format!("bad --netns-pid {v:?}"))?)
                }
                _ if arg.starts_with("--") => return Err(format!("unknown option {arg:?}")),
                _ => positional.push(arg.clone()),
            }
        }
        let [dir, container] = positional.as_slice() else {
            return Err("usage: reader <state_dir> <container> [--emit=socket|json] [--annotations=JSON] [--container-id=ID] [--hub-socket=PATH] [--netns-pid=PID]".into());
        };
        a.state_dir = PathBuf::from(dir);
        a.container = container.clone();
        if !a.state_dir.is_absolute() {
            return Err("the state dir must be absolute".into());
        }
        Ok(a)
    }
}

/// Run until SIGTERM/SIGINT; returns the exit code.
pub fn main(args: &[String]) -> i32 {
    super::harden();
    let a = match Args::parse(args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("nflog reader: {e}");
            return 2;
        }
    };
    let emitter = if a.json {
        Emitter::Json
    } else {
        match a.hub_socket.clone().or_else(|| hub::socket_path(&hub::runtime_dir(), &a.container_id)) {
            Some(p) => Emitter::socket(p),
            None => {
                eprintln!("nflog reader: no hub socket: pass --hub-socket or a 12-64 hex --container-id");
                return 2;
            }
        }
    };
    match run(&a, emitter) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("nflog reader: {e}");
            1
        }
    }
}

struct Reader<'a> {
    a: &'a Args,
    emitter: Emitter,
    dns: DnsLog,
    audit: Window,
    wire: Window,
    dossier: Map<String, Value>,
    meta_path: Option<PathBuf>,
    requests: u64,
    fanout: Option<Fanout>,
}

fn run(a: &Args, emitter: Emitter) -> Result<(), String> {
    // A session of its own: the hook that started it may exit, and poststop signals it alone.
    let _ = nix::unistd::setsid();
    let sigfd = super::stop_signals().map_err(|e| e.to_string())?;
    // The container, by its network namespace: the reader ends when that is gone, also when
    // no poststop comes (a start that failed after this hook, a deleted bundle).
    let container_ns = a.netns_pid.map(|pid| (pid, crate::netns::ns_inode(&crate::netns::net_ns_path(pid))));
    if let Some(pid) = a.netns_pid {
        crate::netns::enter_net_of(pid).map_err(|e| e.to_string())?;
    }
    let gone = || {
        !a.state_dir.is_dir()
            || container_ns.is_some_and(|(pid, ino)| crate::netns::ns_inode(&crate::netns::net_ns_path(pid)) != ino)
    };
    let nl = match nflog::open(NFLOG_GROUP) {
        Ok(fd) => fd,
        Err(e) => {
            // observe.md §4.3: no NFLOG, no events; the container is not affected.
            eprintln!("warning: {e}; no blocked connections will be reported");
            return Ok(());
        }
    };
    let meta_path = std::fs::read_to_string(a.state_dir.join(META_PATH)).ok().map(PathBuf::from);
    let mut r = Reader {
        a,
        emitter,
        dns: DnsLog::from_start(a.state_dir.join(DNSMASQ_LOG)),
        audit: Window::new(WINDOW),
        wire: Window::new(WINDOW),
        dossier: dossier::from_annotations(a.annotations.iter().filter_map(|(k, v)| Some((k.as_str(), v.as_str()?)))),
        meta_path,
        requests: 0,
        fanout: Fanout::bind(&a.state_dir).map_err(|e| eprintln!("warning: {e}")).ok(),
    };
    r.dns.catch_up();
    r.send(Fields::new().str("type", "container_started").str("container", &a.container).line());
    let mut buf = vec![0u8; 65536];
    let reason = loop {
        let (nl_ready, sig_ready, fan_ready) = {
            let mut fds =
                vec![PollFd::new(nl.as_fd(), PollFlags::POLLIN), PollFd::new(sigfd.as_fd(), PollFlags::POLLIN)];
            if let Some(f) = &r.fanout {
                fds.push(PollFd::new(f.listener.as_fd(), PollFlags::POLLIN));
            }
            match poll(&mut fds, PollTimeout::from(1000u16)) {
                Ok(_) | Err(nix::Error::EINTR) => {}
                Err(e) => return Err(format!("poll: {e}")),
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
        self.emitter.send(&line)
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
                audit::append_line(&self.a.state_dir, &row);
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
                audit::append_line(&self.a.state_dir, &row);
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
    fn arguments() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let a = Args::parse(&s(&[
            "/s",
            "web",
            "--emit=json",
            "--annotations={\"dossier.x\":\"1\"}",
            "--container-id=",
            "--netns-pid=42",
        ]))
        .unwrap_or_default();
        assert_eq!((a.container.as_str(), a.json, a.netns_pid, a.annotations.len()), ("web", true, Some(42), 1));
        let a = Args::parse(&s(&["/s", "web", "--annotations=[1]"])).unwrap_or_default();
        assert!(a.annotations.is_empty() && !a.json);
        assert!(Args::parse(&s(&["rel", "web"])).is_err());
        assert!(Args::parse(&s(&["/s"])).is_err());
        assert!(Args::parse(&s(&["/s", "web", "--emit=dbus"])).is_err());
        assert!(Args::parse(&s(&["/s", "web", "--bogus"])).is_err());
        assert!(is_multicast_noise(&"ff02::16".parse().unwrap_or(IpAddr::from([0u8; 4]))));
        assert!(!is_multicast_noise(&"2001:db8::1".parse().unwrap_or(IpAddr::from([0u8; 4]))));
    }
}
