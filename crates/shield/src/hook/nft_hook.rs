//! The nft hook (hooks.md §5): fail-closed. Any error here aborts the container start.

use terok_shield_policy::sanitize::quoted;
use terok_shield_ruleset::Posture;

use super::oci_state::OciState;
use super::{HookError, HookLog, Stage};
use std::net::IpAddr;

use super::helper_proc;
use crate::bundle::dns::Runtime;
use crate::bundle::layout::{Bundle, CONTAINER_ID, DNSMASQ_CONF, RESOLV_CONF, RULESET};
use crate::bundle::{posture, seeds};
use crate::dns::dnsmasq::{self, Stopped};
use crate::dns::DnsMode;
use crate::error::Result;
use crate::helper::Helper;
use crate::kernel::netns::{self, Namespaces};
use crate::kernel::nft::Nft;
use crate::procenv::ProcEnv;
use crate::{tools, BUNDLE_VERSION};

pub fn run(stage: Stage, input: &[u8], env: &ProcEnv, helper: &Helper, log: &mut dyn HookLog) -> Result<()> {
    let state = OciState::parse(input).map_err(HookError::from)?;
    let bundle = super::bundle_of(&state, stage, log, reap_orphans)?;
    match stage {
        Stage::CreateRuntime => create_runtime(&state, &bundle, env, helper),
        Stage::Poststop => {
            crate::container::forget(&bundle);
            stop_dnsmasq(&bundle, log);
            helper_proc::stop(&bundle, log);
            Ok(())
        }
    }
}

/// poststop of a container whose bundle was deleted while it ran: its dnsmasq and its
/// resolver, if any, are found by the bundle's paths on their command lines.
fn reap_orphans(raw_dir: Option<&str>, log: &mut dyn HookLog) {
    let Some(dir) = raw_dir.map(std::path::Path::new).filter(|d| d.is_absolute()) else { return };
    for stopped in dnsmasq::reap_orphans(&Bundle::new(dir)) {
        log.write(&format!("poststop: state dir is gone; stopped its orphaned dnsmasq ({stopped:?})"));
    }
    helper_proc::reap_orphans(raw_dir, log);
}

/// poststop: reap the container's dnsmasq. Never fails the stop (the container is gone).
fn stop_dnsmasq(bundle: &Bundle, log: &mut dyn HookLog) {
    match dnsmasq::stop(bundle) {
        Ok(Stopped::Stale(pid)) => {
            log.write(&format!("poststop: stale dnsmasq pid file (pid {pid} recycled or gone) — removed"))
        }
        Ok(Stopped::Killed(pid)) => log.write(&format!("poststop: dnsmasq (pid {pid}) survived SIGTERM; killed")),
        Ok(_) => {}
        Err(e) => log.write(&format!("poststop: {e}")),
    }
}

/// Put `addr` on the container's `lo` (where a non-loopback local DNS address lives, under
/// krun); nothing for a loopback address. `ns`: run `ip` in these namespaces (the hook has
/// not entered the container's yet).
fn on_loopback(addr: IpAddr, env: &ProcEnv, ns: Option<&Namespaces>) -> Result<()> {
    if addr.is_loopback() {
        return Ok(());
    }
    let ip = tools::find_in("ip", Some(&env.path)).ok_or(HookError::NoTool { name: "ip", package: "iproute2" })?;
    let cidr = format!("{addr}/{}", if addr.is_ipv4() { 32 } else { 128 });
    let mut cmd = crate::exec::Cmd::new(&ip, std::time::Duration::from_secs(5))
        .args(["addr", "add", &cidr, "dev", "lo"])
        .clean_env(env.child_env());
    if let Some(ns) = ns {
        cmd = cmd.in_namespaces(ns);
    }
    let out = cmd.run()?;
    // `ip` says "File exists" when the address is there already (a restart).
    if out.status != 0 && !out.stderr.contains("File exists") {
        return Err(HookError::DnsmasqAddress { cidr, detail: crate::exec::one_line(&out.stderr) }.into());
    }
    Ok(())
}

/// createRuntime, before the hook enters the container's network namespace: on the
/// resolver DNS mode, start the container's helper as its resolver (from the host's
/// namespace, where it opens its way to the host's nameservers).
fn spawn_resolver(
    state: &OciState,
    bundle: &Bundle,
    env: &ProcEnv,
    helper: &Helper,
    pid: u32,
) -> Result<Option<helper_proc::Starting>> {
    if bundle.dns_mode()? != Some(DnsMode::Resolver) {
        return Ok(None);
    }
    let listen = resolver_address(bundle)?;
    if !listen.is_loopback() {
        on_loopback(listen, env, Some(&Namespaces::of(pid)?))?;
    }
    helper_proc::spawn(state, bundle, env, helper, Some(listen))
}

/// createRuntime, in the container's network namespace: start its dnsmasq when the bundle
/// has a configuration (the dnsmasq modes). Any failure fails the start.
fn start_dnsmasq(bundle: &Bundle, env: &ProcEnv) -> Result<()> {
    let Ok(conf) = std::fs::read_to_string(bundle.path(DNSMASQ_CONF)) else { return Ok(()) };
    if let Some(addr) = crate::dns::conf::listen_address(&conf) {
        on_loopback(addr, env, None)?;
    }
    let binary = dnsmasq::launch_binary(bundle, Some(&env.path))?;
    dnsmasq::start(bundle, &binary, Some(env.child_env()))?;
    Ok(())
}

/// Where the resolver listens: the nameserver of the bundle's resolv.conf, which must be
/// one of the two local DNS addresses prepare chooses.
fn resolver_address(bundle: &Bundle) -> Result<IpAddr> {
    let text =
        std::fs::read_to_string(bundle.path(RESOLV_CONF)).map_err(|e| crate::Error::io(bundle.path(RESOLV_CONF), e))?;
    let named = crate::dns::resolv_conf::nameservers(&text);
    let allowed = [Runtime::Default, Runtime::Krun].map(Runtime::local_dns);
    match named.as_slice() {
        [one] if allowed.contains(one) => Ok(*one),
        _ => Err(HookError::ResolverAddress(named.iter().map(IpAddr::to_string).collect::<Vec<_>>().join(", ")).into()),
    }
}

fn create_runtime(state: &OciState, bundle: &Bundle, env: &ProcEnv, helper: &Helper) -> Result<()> {
    match state.annotation("terok.shield.version") {
        Some(v) if v == BUNDLE_VERSION.to_string() => {}
        other => {
            let found = other.map_or_else(|| "(missing)".to_string(), quoted);
            return Err(HookError::BundleVersion { found, want: BUNDLE_VERSION }.into());
        }
    }
    let pid = state.pid.ok_or(HookError::NoPid)?;
    check_confinement(state)?;
    write_container_id(bundle, &state.id)?;
    crate::container::record(bundle, pid)?;
    // The posture in force when the container stopped (UP when none was recorded): a
    // quarantine or a down survives a restart.
    let posture = posture::recorded(bundle)?;
    let table = if posture == Posture::Up {
        let path = bundle.path(RULESET);
        let text = std::fs::read_to_string(&path).map_err(|source| HookError::RulesetUnreadable { path, source })?;
        terok_shield_ruleset::file::table_of(&text).map_err(HookError::from)?.to_string()
    } else {
        posture::table(bundle, posture)?
    };
    let seeds = posture::seeds(posture, seeds::derive(bundle)?);
    let bin =
        tools::find_in("nft", Some(&env.path)).ok_or(tools::ToolMissing { name: "nft", hint: tools::NFT_HINT })?;
    let nft = Nft::at(bin).with_env(env.child_env());
    let resolver = spawn_resolver(state, bundle, env, helper, pid)?;
    let loaded = netns::enter_net_of(pid).map_err(crate::Error::from).and_then(|()| {
        nft.load_fresh(&table, &seeds, posture)?;
        Ok(())
    });
    if let Err(e) = loaded {
        if let Some(r) = resolver {
            r.abandon(bundle);
        }
        return Err(e);
    }
    fail_fast();
    match resolver {
        Some(r) => r.ready(bundle),
        None => start_dnsmasq(bundle, env),
    }
}

/// Refused connections should fail at once with the shield's ICMP error, but the kernel
/// rate-limits ICMP errors per destination (about one a second), so a second refusal soon
/// after the first would time out instead. Lift that limit in the container's own network
/// namespace (these sysctls are per namespace; the current one is the container's). Only
/// errors delivered to the container's own sockets are affected; new inbound traffic is
/// dropped anyway. Best effort: a failure here changes nothing about what is allowed.
fn fail_fast() {
    let _ = std::fs::write("/proc/sys/net/ipv4/icmp_ratelimit", "0");
    let _ = std::fs::write("/proc/sys/net/ipv6/icmp/ratelimit", "0");
}

/// The container's own OCI configuration grants none of the capabilities that undo the
/// firewall, and gives it a network namespace of its own (`oci_config`).
fn check_confinement(state: &OciState) -> Result<()> {
    use std::io::Read as _;
    // As large as an OCI state may be.
    const MAX: u64 = super::MAX_STATE;
    let dir = std::path::Path::new(&state.bundle);
    if !dir.is_absolute() {
        return Err(HookError::NoBundle(quoted(&state.bundle)).into());
    }
    let path = dir.join("config.json");
    let unreadable = |source| HookError::ConfigUnreadable { path: path.clone(), source };
    let mut bytes = Vec::new();
    std::fs::File::open(&path).and_then(|f| f.take(MAX + 1).read_to_end(&mut bytes)).map_err(unreadable)?;
    if bytes.len() as u64 > MAX {
        return Err(HookError::ConfigTooLarge(path).into());
    }
    super::oci_config::check(&bytes).map_err(HookError::from)?;
    Ok(())
}

fn write_container_id(bundle: &Bundle, id: &str) -> Result<()> {
    if id.is_empty() {
        return Ok(());
    }
    if !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(HookError::BadId(quoted(id)).into());
    }
    let short: String = id.chars().take(12).collect();
    crate::fsutil::write_atomic(&bundle.path(CONTAINER_ID), format!("{short}\n").as_bytes(), 0o600)
}
