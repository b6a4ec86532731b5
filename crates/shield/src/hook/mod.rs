//! The OCI hooks (hooks.md): the nft hook (fail-closed) and the bridge hook (soft).
//!
//! `terok-shield-hook <nft|bridge> <createRuntime|poststop>` reads the OCI state on stdin.

pub mod bridge_hook;
pub mod envboot;
pub mod log;
pub mod nft_hook;
pub mod oci_state;
pub mod statedir;

use std::io::Read;

use log::HookLog;

/// Which hook program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Nft,
    Bridge,
}

/// The OCI stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    CreateRuntime,
    Poststop,
}

/// OCI state larger than this is refused (podman's is a few KiB).
const MAX_STATE: u64 = 4 * 1024 * 1024;

/// Run a hook; returns the process exit code. The nft hook exits 1 on any failure, panics
/// included; the bridge hook always exits 0.
pub fn main(args: &[String]) -> i32 {
    let (kind, stage_arg) = match args {
        [k, s] if k == "nft" => (Kind::Nft, Some(s.as_str())),
        [k, s] if k == "bridge" => (Kind::Bridge, Some(s.as_str())),
        [k] if k == "nft" => (Kind::Nft, None),
        [k] if k == "bridge" => (Kind::Bridge, None),
        [s] => (Kind::Nft, Some(s.as_str())),
        [] => (Kind::Nft, None),
        _ => (Kind::Nft, Some("")),
    };
    let mut log = HookLog::new(kind);
    let soft = kind == Kind::Bridge;
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let stage = match stage_arg {
            None | Some("createRuntime") => Stage::CreateRuntime,
            Some("poststop") => Stage::Poststop,
            Some(other) => return Err(format!("unknown stage {}", terok_shield_policy::sanitize::quoted(other))),
        };
        let mut input = Vec::new();
        std::io::stdin()
            .take(MAX_STATE + 1)
            .read_to_end(&mut input)
            .map_err(|e| format!("cannot read the OCI state: {e}"))?;
        if input.len() as u64 > MAX_STATE {
            return Err("bad OCI state: larger than 4 MiB".into());
        }
        let env = envboot::bootstrap();
        match kind {
            Kind::Nft => nft_hook::run(stage, &input, &env, &mut log),
            Kind::Bridge => bridge_hook::run(stage, &input, &env, &mut log),
        }
    }));
    if std::env::var_os("TEROK_SHIELD_HOOK_STATS").is_some() {
        log.write(&format!("stats: {kind:?} hook, peak RSS {} KiB", peak_rss_kib().unwrap_or(0)));
    }
    match result {
        Ok(Ok(())) => 0,
        Ok(Err(msg)) => {
            log.write(&msg);
            i32::from(!soft)
        }
        Err(_) => {
            log.write("internal error (panic)");
            i32::from(!soft)
        }
    }
}

/// The validated state dir of `state` as a bundle; the hook's diagnostics now also go to its
/// `hook-error.log`. When validation fails at poststop, `orphans` gets the raw annotation:
/// a bundle deleted while its container ran may have left processes behind.
fn bundle_of(
    state: &oci_state::OciState,
    stage: Stage,
    log: &mut HookLog,
    orphans: fn(Option<&str>, &mut HookLog),
) -> Result<crate::bundle::layout::Bundle, String> {
    let euid = crate::paths::effective_uid().unwrap_or(u32::MAX);
    let raw_dir = state.annotation("terok.shield.state_dir");
    match statedir::validate(raw_dir, euid) {
        Ok(dir) => {
            log.attach(&dir);
            Ok(crate::bundle::layout::Bundle::new(dir))
        }
        Err(e) => {
            if stage == Stage::Poststop {
                orphans(raw_dir, log);
            }
            Err(e)
        }
    }
}

/// This process's own peak resident set (`VmHWM`), children excluded. Logged when
/// `TEROK_SHIELD_HOOK_STATS` is set, for the memory benchmark.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}
