//! `nft|bridge <createRuntime|poststop>`: read the OCI state, run the hook, map the outcome
//! to an exit code. The nft hook exits 1 on any failure, panics included; the bridge hook
//! always exits 0.

use std::io::{Read, Write};
use std::path::Path;

use terok_shield::hook::{self, BadOciState, HookLog, Kind, Stage, MAX_STATE};
use terok_shield::procenv::ProcEnv;

/// Diagnostics on stderr, and in `<state_dir>/hook-error.log` once the state dir is known.
struct Log {
    prefix: &'static str,
    file: Option<std::fs::File>,
}

impl Log {
    fn new(kind: Kind) -> Self {
        let prefix = match kind {
            Kind::Nft => "terok-shield hook:",
            Kind::Bridge => "terok-shield bridge hook:",
        };
        Log { prefix, file: None }
    }
}

impl HookLog for Log {
    /// Also append to the validated state dir's `hook-error.log`; failing to open it is
    /// not an error.
    fn attach(&mut self, state_dir: &Path) {
        self.file = hook::open_error_log(state_dir).ok();
    }

    fn write(&mut self, msg: &str) {
        let line = format!("{} {}\n", self.prefix, msg.replace('\n', " "));
        let _ = std::io::stderr().write_all(line.as_bytes());
        if let Some(f) = self.file.as_mut() {
            let _ = f.write_all(line.as_bytes());
        }
    }
}

/// `[nft|bridge] [createRuntime|poststop]`, both optional (nft, createRuntime).
fn parse(args: &[String]) -> (Kind, Option<&str>) {
    match args {
        [k, s] if k == "nft" => (Kind::Nft, Some(s.as_str())),
        [k, s] if k == "bridge" => (Kind::Bridge, Some(s.as_str())),
        [k] if k == "nft" => (Kind::Nft, None),
        [k] if k == "bridge" => (Kind::Bridge, None),
        [s] => (Kind::Nft, Some(s.as_str())),
        [] => (Kind::Nft, None),
        _ => (Kind::Nft, Some("")),
    }
}

fn stage(arg: Option<&str>) -> Result<Stage, String> {
    match arg {
        None => Ok(Stage::CreateRuntime),
        Some(s) if s == Stage::CreateRuntime.as_str() => Ok(Stage::CreateRuntime),
        Some(s) if s == Stage::Poststop.as_str() => Ok(Stage::Poststop),
        Some(other) => Err(format!("unknown stage {}", terok_shield_policy::sanitize::quoted(other))),
    }
}

pub fn main(args: &[String]) -> u8 {
    let (kind, stage_arg) = parse(args);
    let mut log = Log::new(kind);
    let soft = kind == Kind::Bridge;
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let stage = stage(stage_arg)?;
        let mut input = Vec::new();
        std::io::stdin()
            .take(MAX_STATE + 1)
            .read_to_end(&mut input)
            .map_err(|e| format!("cannot read the OCI state: {e}"))?;
        if input.len() as u64 > MAX_STATE {
            return Err(BadOciState::TooLarge.to_string());
        }
        let env = ProcEnv::current();
        hook::run(kind, stage, &input, &env, &super::myself(), &mut log).map_err(|e| e.to_string())
    }));
    if std::env::var_os("TEROK_SHIELD_HOOK_STATS").is_some() {
        log.write(&format!("stats: {kind:?} hook, peak RSS {} KiB", peak_rss_kib().unwrap_or(0)));
    }
    match result {
        Ok(Ok(())) => 0,
        Ok(Err(msg)) => {
            log.write(&msg);
            u8::from(!soft)
        }
        Err(_) => {
            log.write("internal error (panic)");
            u8::from(!soft)
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
