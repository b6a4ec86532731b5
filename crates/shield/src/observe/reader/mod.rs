//! The container's helper process (observe.md §4): one small process per container, in the
//! container's network namespace. It binds NFLOG group 100 there, and for each destination
//! the firewall blocked writes one `blocked` audit row and sends one `pending` event to the
//! clearance hub per 30 s window. It fans every logged packet out to `watch` and
//! `simple-clearance` through `<state_dir>/reader.sock`. On the `resolver` DNS mode it is
//! also the container's resolver ([`crate::dns::resolver`]): refused names become
//! `dns_refused` rows, `watch` events and hub events by name.
//!
//! It runs as `<helper> reader <state_dir> <container> [--emit=socket|json]
//! [--annotations=<json>] [--container-id=<id>] [--hub-socket=<path>] [--netns-pid=<pid>]
//! [--dns=<addr>]` ([`ReaderSpec`]); the helper binary parses that and calls [`run`].

mod events;
mod spec;

use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use terok_shield_ruleset::constants::NFLOG_GROUP;

use super::event::Fields;
use super::fanout::Fanout;
use super::hub::Emitter;
use super::ObserveError;
use crate::bundle::Bundle;
use crate::dns::resolver::control::ControlServer;
use crate::dns::resolver::{Resolver, Upstreams};
use crate::kernel::{netns, nflog};
use crate::report::{Report, Reporter};
use events::Reader;
pub use spec::ReaderSpec;

/// Run the helper of `a` until `stop` is readable (the caller's SIGTERM/SIGINT descriptor)
/// or the container is gone. `ready` is called once everything is bound (with `--dns`, the
/// resolver answers from then on); an error before that means the helper never served.
/// Events go to `emitter`; warnings to `report`.
pub fn run(
    a: &ReaderSpec,
    emitter: Emitter,
    stop: BorrowedFd,
    report: Reporter,
    ready: &mut dyn FnMut(),
) -> crate::error::Result<()> {
    // The way out, opened here, in the namespace the hook runs in (the host's): the
    // container's namespace has no route to any nameserver.
    let upstream = match a.dns {
        Some(_) => Some(Upstreams::open(&std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default())?),
        None => None,
    };
    // The container, by its first process: the helper ends when that is gone, also when no
    // poststop comes (a start that failed after this hook, a deleted bundle). Not by that
    // process's network namespace: a PID 1 that moves itself into a new one leaves the
    // rest of the container here, and the helper stays with it.
    let container = a.netns_pid.map(|pid| (pid, crate::container::start_time(pid)));
    if let Some(pid) = a.netns_pid {
        netns::enter_net_of(pid)?;
    }
    let gone = || {
        !a.state_dir.is_dir() || container.is_some_and(|(pid, t)| t.is_none() || crate::container::start_time(pid) != t)
    };
    let bundle = Bundle::new(&a.state_dir);
    let mut resolver = match (a.dns, upstream) {
        (Some(listen), Some(up)) => Some(Resolver::bind(listen, up, bundle.clone())?),
        _ => None,
    };
    let control = match &resolver {
        Some(_) => Some(
            ControlServer::bind(&a.state_dir).map_err(|e| crate::Error::io(a.state_dir.join("resolver.sock"), e))?,
        ),
        None => None,
    };
    if resolver.is_some() {
        // Bound: questions queue in the socket until the loop below serves them.
        ready();
    }
    let nl = match nflog::open(NFLOG_GROUP) {
        Ok(fd) => Some(fd),
        Err(e) => {
            // observe.md §4.3: no NFLOG, no events; the container is not affected.
            report(Report::Warning(format!("{e}; no blocked connections will be reported")));
            None
        }
    };
    if nl.is_none() && resolver.is_none() {
        return Ok(());
    }
    let fanout = Fanout::bind(&a.state_dir).map_err(|e| report(Report::Warning(e.to_string()))).ok();
    let mut r = Reader::new(a, &bundle, report, emitter, fanout);
    // Everything is bound: give up what the loop does not need (crate::confine).
    let dossier = bundle.meta_path();
    let dossier = dossier.as_deref().map(|p| if p.exists() { p } else { p.parent().unwrap_or(p) });
    for note in crate::confine::helper(&a.state_dir, dossier, resolver.is_some()) {
        report(Report::Note(note));
    }
    ready();
    r.send(Fields::new().str("type", "container_started").str("container", &a.container).line());
    let mut buf = vec![0u8; 65536];
    let reason = loop {
        let now = Instant::now();
        let wait = resolver
            .as_ref()
            .and_then(Resolver::deadline)
            .map_or(1000, |d| d.saturating_duration_since(now).min(Duration::from_secs(1)).as_millis() as u16);
        let ready_fds = {
            let mut fds = vec![PollFd::new(stop, PollFlags::POLLIN)];
            fds.extend(nl.as_ref().map(|n| PollFd::new(n.as_fd(), PollFlags::POLLIN)));
            fds.extend(r.fanout_fd().map(|f| PollFd::new(f, PollFlags::POLLIN)));
            fds.extend(control.as_ref().map(|c| PollFd::new(c.fd(), PollFlags::POLLIN)));
            if let Some(res) = &resolver {
                fds.extend(res.fds().into_iter().map(|f| PollFd::new(f, PollFlags::POLLIN)));
            }
            match poll(&mut fds, PollTimeout::from(wait.max(1))) {
                Ok(_) | Err(nix::Error::EINTR) => {}
                Err(e) => return Err(ObserveError::Poll(e).into()),
            }
            fds.iter().map(|f| f.revents().is_some_and(|ev| !ev.is_empty())).collect::<Vec<bool>>()
        };
        if ready_fds[0] {
            break "poststop";
        }
        if gone() {
            break "eof";
        }
        r.accept_subscribers();
        if let (Some(res), Some(c)) = (resolver.as_mut(), control.as_ref()) {
            c.serve(res);
        }
        if let Some(res) = resolver.as_mut() {
            let events = res.work(Instant::now());
            r.dns_events(events);
        }
        if let Some(n) = &nl {
            let packets = nflog::drain(n, &mut buf);
            r.packets(&packets, resolver.as_ref());
        }
        r.rebinds();
        r.tick();
    };
    r.send(Fields::new().str("type", "container_exited").str("container", &a.container).str("reason", reason).line());
    r.close();
    if let Some(c) = &control {
        c.remove();
    }
    Ok(())
}
