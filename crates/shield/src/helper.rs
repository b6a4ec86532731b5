//! The helper executable: what the library starts, and with which arguments.
//!
//! The helper is `terok-shield-hook` ([`HELPER_BINARY`]), the small binary the OCI hook
//! descriptors run; it links no command-line machinery. The library never re-runs "whatever
//! binary linked it": a caller hands it the helper's path ([`Helper::at`]), and these are
//! the whole interface:
//!
//! | arguments | what it does | started by |
//! |---|---|---|
//! | `nft createRuntime\|poststop` | the fail-closed hook ([`crate::hook`]) | the OCI runtime |
//! | `bridge createRuntime\|poststop` | the soft hook | the OCI runtime |
//! | `reader <state_dir> <container> [options]` | the container's NFLOG reader ([`crate::observe::reader::ReaderSpec`]) | the bridge hook, detached |
//! | `ns set-element <into> <out_of> <address>` | [`NsOp::SetElement`] | a verb, inside the container's namespaces |
//! | `ns kill-flows [NET…]` | [`NsOp::KillFlows`] | a verb, likewise |
//! | `ns scoped <into> <out_of> ELEMENT…` | [`NsOp::Scoped`] | a verb, likewise |
//! | `ns end-flows` (a table listing on stdin) | [`NsOp::EndFlows`] | a posture change or a reset, likewise |
//! | `ns restart-dnsmasq <state_dir>` | [`NsOp::RestartDnsmasq`] | a verb, likewise |
//!
//! An `ns` operation exits 0 when done, [`EXIT_NO_SETS`] when the container's table has no
//! allow/deny sets (it is quarantined), [`EXIT_OVERLAP`] when the kernel refused a scoped
//! element that starts or ends inside one already there, 2 on bad arguments and 1 on any
//! other failure, with the one-line message on stderr.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use terok_shield_policy::IpNet;
use terok_shield_ruleset::{Flow, Listing, Scoped, SetId};

use crate::bundle::Bundle;
use crate::control::ControlError;
use crate::error::{Error, Result};
use crate::exec::{Cmd, ExecError};
use crate::kernel::netns::Namespaces;
use crate::kernel::{conntrack, nftnl};

/// The helper's file name (next to `terok-shield`, and in the hooks dir).
pub const HELPER_BINARY: &str = "terok-shield-hook";

/// The exit code of an `ns` operation that found no allow/deny sets in the table.
pub const EXIT_NO_SETS: u8 = 3;

/// The exit code of `ns scoped` when an element overlaps one already in the set.
pub const EXIT_OVERLAP: u8 = 4;

/// How long an `ns` operation may take.
const TIMEOUT: Duration = Duration::from_secs(10);

/// The helper executable at a known path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Helper {
    pub path: PathBuf,
}

impl Helper {
    pub fn at(path: impl Into<PathBuf>) -> Helper {
        Helper { path: path.into() }
    }

    /// Run `op` in a child that joins `ns` first (user, then network namespace).
    pub(crate) fn run_in(&self, ns: &Namespaces, op: &NsOp) -> Result<()> {
        let cmd = Cmd::new(&self.path, TIMEOUT).arg("ns").args(op.args()).stdin(op.input()).in_namespaces(ns);
        match cmd.run_ok() {
            Ok(_) => Ok(()),
            Err(ExecError::Failed { rc, .. }) if rc == i32::from(EXIT_NO_SETS) => Err(ControlError::NoSets.into()),
            Err(ExecError::Failed { rc, .. }) if rc == i32::from(EXIT_OVERLAP) => Err(ControlError::Overlap.into()),
            Err(ExecError::Failed { rc, stderr, .. }) if rc > 0 && rc != 127 => {
                Err(ControlError::Helper { message: stderr }.into())
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// One operation the helper performs inside a container's namespaces (`ns …`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NsOp {
    /// Take `address` out of `out_of` when it is there and put it into `into`, in one
    /// transaction; check that it is there; when `into` denies, end the flows to it.
    SetElement { into: SetId, out_of: SetId, address: IpAddr },
    /// Take each port-scoped element out of `out_of` where it is there, then put them all
    /// into `into` in one transaction.
    Scoped { into: SetId, out_of: SetId, elements: Vec<Scoped> },
    /// Delete the conntrack entries to these networks (all entries when empty).
    KillFlows(Vec<IpNet>),
    /// Delete every conntrack entry whose flow the table in this listing (`nft list
    /// table`, given on stdin) would not accept as a new one.
    EndFlows(String),
    /// Stop the bundle's dnsmasq and start it with the bundle's current configuration.
    RestartDnsmasq { state_dir: PathBuf },
}

impl NsOp {
    /// The arguments after `ns`.
    pub fn args(&self) -> Vec<String> {
        match self {
            NsOp::SetElement { into, out_of, address } => {
                vec!["set-element".into(), into.name().into(), out_of.name().into(), address.to_string()]
            }
            NsOp::KillFlows(nets) => {
                std::iter::once("kill-flows".to_string()).chain(nets.iter().map(IpNet::to_string)).collect()
            }
            NsOp::Scoped { into, out_of, elements } => ["scoped".to_string(), into.name().into(), out_of.name().into()]
                .into_iter()
                .chain(elements.iter().map(Scoped::to_arg))
                .collect(),
            NsOp::EndFlows(_) => vec!["end-flows".into()],
            NsOp::RestartDnsmasq { state_dir } => vec!["restart-dnsmasq".into(), state_dir.display().to_string()],
        }
    }

    /// What the operation reads on stdin.
    pub fn input(&self) -> &[u8] {
        match self {
            NsOp::EndFlows(listing) => listing.as_bytes(),
            _ => &[],
        }
    }

    /// Perform the operation here, in the current namespaces. `path_var` is the PATH the
    /// dnsmasq binary is looked up on.
    pub fn run(&self, path_var: Option<&std::ffi::OsStr>) -> Result<()> {
        match self {
            NsOp::SetElement { into, out_of, address } => set_element(*into, *out_of, *address),
            NsOp::Scoped { into, out_of, elements } => scoped(*into, *out_of, elements),
            NsOp::KillFlows(nets) => {
                conntrack::kill_flows(if nets.is_empty() { None } else { Some(nets) })?;
                Ok(())
            }
            NsOp::EndFlows(listing) => {
                end_flows(listing)?;
                Ok(())
            }
            NsOp::RestartDnsmasq { state_dir } => restart_dnsmasq(state_dir, path_var),
        }
    }

    /// The exit code an error of [`NsOp::run`] maps to.
    pub fn exit_code(e: &Error) -> u8 {
        match e {
            Error::Control(ControlError::NoSets) => EXIT_NO_SETS,
            Error::Control(ControlError::Overlap) => EXIT_OVERLAP,
            _ => 1,
        }
    }
}

/// One address moved over netlink: hash lookups, whatever the sets' sizes.
fn set_element(into: SetId, out_of: SetId, address: IpAddr) -> Result<()> {
    let mut nl = nftnl::Loader::open()?;
    if !nl.has_set(into)? {
        return Err(ControlError::NoSets.into());
    }
    let present = nl.has(out_of, address)?;
    nl.move_to(present.then_some(out_of), into, address)?;
    if !nl.has(into, address)? {
        return Err(ControlError::NotInForce { element: IpNet::host(address), set: into }.into());
    }
    if into.denies() {
        conntrack::kill_flows(Some(&[IpNet::host(address)]))?;
    }
    Ok(())
}

/// Port-scoped elements moved over netlink: out of `out_of` one by one (each only where a
/// lookup finds it: a delete the kernel refuses costs a grace period), then into `into` in
/// one transaction.
fn scoped(into: SetId, out_of: SetId, elements: &[Scoped]) -> Result<()> {
    let mut nl = nftnl::Loader::open()?;
    if !nl.has_set(into)? {
        return Err(ControlError::NoSets.into());
    }
    for e in elements {
        if nl.has_scoped(out_of, e)? {
            nl.remove_scoped(out_of, e)?;
        }
    }
    match nl.add_scoped(into, elements, None) {
        Err(crate::kernel::NetlinkError::Transaction { source, .. })
            if matches!(
                *source,
                crate::kernel::NetlinkError::SetRefused { errno: nix::errno::Errno::ENOTEMPTY, .. }
            ) =>
        {
            Err(ControlError::Overlap.into())
        }
        other => Ok(other?),
    }
}

/// End the flows `listing`'s table would not accept as new: every tracked flow is judged
/// as its next packet would be if conntrack did not carry it (a flow to one of this
/// namespace's own addresses leaves through `lo`). An entry whose tuple cannot be read is
/// ended too. Returns how many were ended.
fn end_flows(listing: &str) -> Result<usize> {
    let table = Listing::parse(listing);
    let own: Vec<IpAddr> = nix::ifaddrs::getifaddrs()
        .map_err(|e| crate::Error::io("getifaddrs", std::io::Error::from(e)))?
        .filter_map(|i| i.address)
        .filter_map(|a| {
            a.as_sockaddr_in().map(|s| IpAddr::from(s.ip())).or_else(|| a.as_sockaddr_in6().map(|s| s.ip().into()))
        })
        .collect();
    Ok(conntrack::kill_where(|flow| match flow {
        None => true,
        Some(f) => {
            let local = f.dst.is_loopback() || own.contains(&f.dst);
            !table.admits(&Flow { local, ..*f })
        }
    })?)
}

fn restart_dnsmasq(state_dir: &Path, path_var: Option<&std::ffi::OsStr>) -> Result<()> {
    let bundle = Bundle::new(state_dir);
    if !bundle.dir.is_absolute() {
        return Err(ControlError::NotAbsolute(bundle.dir).into());
    }
    let binary = crate::dns::dnsmasq::launch_binary(&bundle, path_var)?;
    crate::dns::dnsmasq::restart(&bundle, &binary).map(|_| ())
}
