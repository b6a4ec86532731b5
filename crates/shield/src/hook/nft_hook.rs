//! The nft hook (hooks.md §5): fail-closed. Any error here aborts the container start.

use terok_shield_policy::sanitize::quoted;
use terok_shield_ruleset::Posture;

use super::envboot::HookEnv;
use super::log::HookLog;
use super::oci_state::OciState;
use super::Stage;
use crate::bundle::layout::{Bundle, CONTAINER_ID, DNSMASQ_CONF, RULESET};
use crate::bundle::seeds;
use crate::dns::dnsmasq::{self, Stopped};
use crate::nft::Nft;
use crate::{netns, tools, BUNDLE_VERSION};

pub fn run(stage: Stage, input: &[u8], env: &HookEnv, log: &mut HookLog) -> Result<(), String> {
    let state = OciState::parse(input)?;
    let bundle = super::bundle_of(&state, stage, log, reap_orphans)?;
    match stage {
        Stage::CreateRuntime => create_runtime(&state, &bundle, env),
        Stage::Poststop => {
            crate::container::forget(&bundle);
            stop_dnsmasq(&bundle, log);
            Ok(())
        }
    }
}

/// poststop of a container whose bundle was deleted while it ran: its dnsmasq, if any, is
/// found by the configuration path on its command line.
fn reap_orphans(raw_dir: Option<&str>, log: &mut HookLog) {
    let Some(dir) = raw_dir.map(std::path::Path::new).filter(|d| d.is_absolute()) else { return };
    for stopped in dnsmasq::reap_orphans(&Bundle::new(dir)) {
        log.write(&format!("poststop: state dir is gone; stopped its orphaned dnsmasq ({stopped:?})"));
    }
}

/// poststop: reap the container's dnsmasq. Never fails the stop (the container is gone).
fn stop_dnsmasq(bundle: &Bundle, log: &mut HookLog) {
    match dnsmasq::stop(bundle) {
        Ok(Stopped::Stale(pid)) => {
            log.write(&format!("poststop: stale dnsmasq pid file (pid {pid} recycled or gone) — removed"))
        }
        Ok(Stopped::Killed(pid)) => log.write(&format!("poststop: dnsmasq (pid {pid}) survived SIGTERM; killed")),
        Ok(_) => {}
        Err(e) => log.write(&format!("poststop: {e}")),
    }
}

/// createRuntime, in the container's network namespace: start its dnsmasq when the bundle
/// has a configuration (the dnsmasq tiers). Any failure fails the start.
fn start_dnsmasq(bundle: &Bundle, env: &HookEnv) -> Result<(), String> {
    let Ok(conf) = std::fs::read_to_string(bundle.path(DNSMASQ_CONF)) else { return Ok(()) };
    if let Some(addr) = crate::dns::conf::listen_address(&conf).filter(|a| !a.is_loopback()) {
        let ip = tools::find_in("ip", Some(&env.path)).ok_or("ip not found on PATH: install iproute2")?;
        let cidr = format!("{addr}/{}", if addr.is_ipv4() { 32 } else { 128 });
        let out = crate::exec::Cmd::new(&ip, std::time::Duration::from_secs(5))
            .args(["addr", "add", &cidr, "dev", "lo"])
            .clean_env(env.child_env())
            .run()
            .map_err(|e| e.to_string())?;
        if out.status != 0 && !out.stderr.contains("File exists") {
            return Err(format!("cannot add {cidr} to lo for dnsmasq: {}", crate::exec::one_line(&out.stderr)));
        }
    }
    let binary = dnsmasq::launch_binary(bundle, Some(&env.path)).map_err(|e| e.to_string())?;
    dnsmasq::start(bundle, &binary, Some(env.child_env())).map_err(|e| e.to_string())?;
    Ok(())
}

fn create_runtime(state: &OciState, bundle: &Bundle, env: &HookEnv) -> Result<(), String> {
    let want = BUNDLE_VERSION.to_string();
    match state.annotation("terok.shield.version") {
        Some(v) if v == want => {}
        other => {
            return Err(format!(
                "bundle version {} does not match this hook's {want}: re-create the container with this terok-shield (or re-run 'terok-shield setup' if the hooks are older than the package)",
                other.map_or_else(|| "(missing)".to_string(), quoted)
            ))
        }
    }
    let pid = state.pid.ok_or("OCI state has no pid")?;
    write_container_id(bundle, &state.id)?;
    crate::container::record(bundle, pid).map_err(|e| e.to_string())?;
    let text = std::fs::read_to_string(bundle.path(RULESET))
        .map_err(|e| format!("cannot read {}: {e}", bundle.path(RULESET).display()))?;
    let table = table_part(&text)?;
    let seeds = seeds::derive(bundle).map_err(|e| e.to_string())?;
    let bin = tools::find_in("nft", Some(&env.path)).ok_or("nft not found on PATH: install nftables")?;
    let nft = Nft::at(bin).with_env(env.child_env());
    netns::enter_net_of(pid).map_err(|e| e.to_string())?;
    nft.load(table, &seeds, Posture::Up).map_err(|e| e.to_string())?;
    fail_fast();
    start_dnsmasq(bundle, env)
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

/// The table of `ruleset.nft`: everything before the seed statements. Every line after the
/// table must be one of our `add element` statements; anything else means the file was
/// tampered with or truncated, and the start is refused.
pub fn table_part(text: &str) -> Result<&str, String> {
    let end = text.find("\nadd element ").map_or(text.len(), |i| i + 1);
    let (table, rest) = text.split_at(end);
    for line in rest.lines().filter(|l| !l.trim().is_empty()) {
        if !line.starts_with("add element inet terok_shield ") {
            return Err(format!("ruleset.nft is corrupted: unexpected line {}", quoted(line)));
        }
    }
    if !table.trim_start().starts_with("table inet terok_shield {") || !table.trim_end().ends_with('}') {
        return Err("ruleset.nft is corrupted: it does not hold the terok_shield table".into());
    }
    Ok(table)
}

fn write_container_id(bundle: &Bundle, id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Ok(());
    }
    if !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(format!("OCI state id {} is not alphanumeric", quoted(id)));
    }
    let short: String = id.chars().take(12).collect();
    crate::fsutil::write_atomic(&bundle.path(CONTAINER_ID), format!("{short}\n").as_bytes(), 0o600)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_and_seed_sections() {
        let ok = "table inet terok_shield {\n}\nadd element inet terok_shield t40_project_allow_v4 { 1.2.3.4 }\n";
        assert_eq!(table_part(ok), Ok("table inet terok_shield {\n}\n"));
        assert!(table_part("table inet terok_shield {\n}\n").is_ok());
        assert!(table_part(
            "table inet terok_shield {\n}\nadd element inet terok_shield x { 1.1.1.1 }\nflush ruleset\n"
        )
        .is_err());
        assert!(table_part("table inet terok_shield {\n").is_err());
        assert!(table_part("").is_err());
        assert!(table_part("flush ruleset\n").is_err());
    }
}
