//! `prepare CONTAINER [--profiles LIST] [--json]` and `run CONTAINER [--profiles LIST] -- IMAGE …`.

use std::ffi::OsString;

use terok_shield::prepare::{pre_start, Context as PrepareContext, Prepared, Request, Runtime};
use terok_shield::tools;

use crate::args::profile_list;
use crate::context::Context;
use crate::error::{CliError, CliResult};
use crate::output;

/// Run `f` with the library's prepare context for this invocation.
fn with_context<T>(ctx: &Context, f: impl FnOnce(&PrepareContext) -> terok_shield::error::Result<T>) -> CliResult<T> {
    let ns_dir = ctx.namespace_dir()?;
    let dirs = ctx.profile_dirs();
    let pctx = PrepareContext {
        env: &ctx.env,
        state_root: &ctx.state_root,
        ns_dir: &ns_dir,
        config: &ctx.config,
        profiles: &dirs,
        report: &output::report,
    };
    Ok(f(&pctx)?)
}

fn build(ctx: &Context, container: &str, profiles: Option<&str>, runtime: Runtime) -> CliResult<Prepared> {
    let req = Request {
        container: container.to_string(),
        profiles: profiles.map(profile_list),
        runtime,
        ..Request::default()
    };
    let prepared = with_context(ctx, |pctx| pre_start(pctx, &req))?;
    for note in &prepared.notes {
        eprintln!("{note}");
    }
    Ok(prepared)
}

/// `resolve CONTAINER [--force]`.
pub fn resolve(ctx: &Context, container: &str, force: bool) -> CliResult {
    let (addrs, notes) = with_context(ctx, |pctx| terok_shield::prepare::resolve(pctx, container, force))?;
    for note in notes {
        eprintln!("{note}");
    }
    let mut out = format!("Resolved {} IPs for {container}{}\n", addrs.len(), if force { " (forced)" } else { "" });
    for a in addrs {
        out.push_str(&format!("  {a}\n"));
    }
    output::print(&out)
}

pub fn prepare(ctx: &Context, container: &str, profiles: Option<&str>, json: bool) -> CliResult {
    let mut flags = build(ctx, container, profiles, Runtime::Default)?.flags;
    flags.extend(["--name".to_string(), container.to_string()]);
    if json {
        let items: Vec<String> = flags.iter().map(|f| serde_json::Value::from(f.as_str()).to_string()).collect();
        return output::print(&format!("[{}]\n", items.join(", ")));
    }
    output::print(&format!("{}\n", flags.iter().map(|f| shell_quote(f)).collect::<Vec<_>>().join(" ")))
}

/// Flags podman must get from terok-shield only.
const MANAGED: [&str; 6] = ["--name", "--network", "--hooks-dir", "--annotation", "--cap-add", "--cap-drop"];

pub fn run(ctx: &Context, container: &str, profiles: Option<&str>, trailing: &[OsString]) -> CliResult {
    if trailing.is_empty() {
        return Err(CliError::Message(
            "No image specified. Usage: terok-shield run <container> -- <image> [cmd...]".into(),
        ));
    }
    let mut clashes: Vec<String> = trailing
        .iter()
        .filter_map(|a| a.to_str())
        .filter(|a| a.starts_with("--"))
        .map(|a| a.split('=').next().unwrap_or(a))
        .map(|a| if a == "--net" { "--network" } else { a })
        .filter(|a| MANAGED.contains(a))
        .map(str::to_string)
        .collect();
    clashes.sort();
    clashes.dedup();
    if !clashes.is_empty() {
        return Err(CliError::Message(format!(
            "Flag(s) managed by terok-shield, cannot override: {}",
            clashes.join(", ")
        )));
    }
    let unsafe_flags = escaping_flags(trailing);
    if !unsafe_flags.is_empty() {
        return Err(CliError::Message(format!(
            "Flag(s) that would let the workload undo its firewall are refused: {}",
            unsafe_flags.join(", ")
        )));
    }
    let podman = tools::find("podman").ok_or_else(|| {
        CliError::Message("podman binary not found. Install Podman to use 'terok-shield run'.".into())
    })?;
    let flags = build(ctx, container, profiles, podman_runtime(trailing))?.flags;
    use std::os::unix::process::CommandExt;
    let err =
        std::process::Command::new(&podman).arg("run").args(["--name", container]).args(&flags).args(trailing).exec();
    Err(CliError::Message(format!("cannot run {}: {err}", podman.display())))
}

/// Flags that grant the workload CAP_NET_ADMIN, CAP_NET_RAW or CAP_SYS_ADMIN, or put it in
/// a network namespace it shares: `--privileged` (but `--privileged=false`), `--pod` and
/// `--pod-id-file` (the pod's infra container owns the namespace), `--pid` (another
/// process namespace in view is a way out). `--network`, `--cap-add`
/// and `--cap-drop` are managed flags, refused above. `--userns` is allowed: a user
/// namespace grants no capability the bounding set lacks, and the hook checks the sets.
fn escaping_flags(args: &[OsString]) -> Vec<String> {
    let mut found: Vec<String> = args
        .iter()
        .filter_map(|a| a.to_str())
        .filter_map(|a| {
            let (name, value) = a.split_once('=').map_or((a, None), |(n, v)| (n, Some(v)));
            match name {
                "--privileged" if value != Some("false") => Some(name.to_string()),
                "--pod" | "--pod-id-file" | "--pid" => Some(name.to_string()),
                _ => None,
            }
        })
        .collect();
    found.sort();
    found.dedup();
    found
}

/// The runtime named by `--runtime NAME` or `--runtime=NAME` among podman's arguments. An
/// argument of the workload that looks the same selects it too; that only moves dnsmasq
/// to the krun address, which works under any runtime.
fn podman_runtime(args: &[OsString]) -> Runtime {
    let args: Vec<&str> = args.iter().filter_map(|a| a.to_str()).collect();
    let named = args.iter().enumerate().find_map(|(i, a)| match a.strip_prefix("--runtime") {
        Some("") => args.get(i + 1).copied(),
        Some(v) => v.strip_prefix('='),
        None => None,
    });
    Runtime::from_name(named)
}

/// POSIX shell quoting, only where needed.
pub fn shell_quote(s: &str) -> String {
    let safe = !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"@%+=:,./-_".contains(&b));
    if safe {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\"'\"'"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_that_undo_the_firewall_are_found() {
        let of = |args: &[&str]| escaping_flags(&args.iter().map(OsString::from).collect::<Vec<_>>());
        assert_eq!(of(&["--privileged", "img"]), ["--privileged"]);
        assert_eq!(of(&["--privileged=true", "--pod=p", "img"]), ["--pod", "--privileged"]);
        assert_eq!(of(&["--pod-id-file", "/f", "img"]), ["--pod-id-file"]);
        assert_eq!(of(&["--pid=host", "img"]), ["--pid"]);
        assert!(of(&["--privileged=false", "--userns=keep-id", "img", "sh"]).is_empty());
    }

    #[test]
    fn runtime_from_podman_arguments() {
        let of = |args: &[&str]| podman_runtime(&args.iter().map(OsString::from).collect::<Vec<_>>());
        assert_eq!(of(&["--runtime", "krun", "img"]), Runtime::Krun);
        assert_eq!(of(&["--runtime=/usr/bin/krun", "img"]), Runtime::Krun);
        assert_eq!(of(&["--runtime", "runc", "img"]), Runtime::Default);
        assert_eq!(of(&["--runtime-flag", "krun", "img"]), Runtime::Default);
        assert_eq!(of(&["img", "krun"]), Runtime::Default);
        assert_eq!(of(&["--runtime"]), Runtime::Default);
    }
}
